"""``mescosim replay RUN_DIR``: follow the plan a run recorded through the engine, with the AC
power flow at every step, and set the plan beside the simulation - for every scenario family.

The family is read from the run directory:

* **dn** (a scenario run with a planning policy such as the rolling-horizon ``milp``): the run's
  ``plan.parquet`` holds every plan made; the plan *followed* is, per vehicle and step, the row
  of the latest plan made at or before that step (:func:`followed_plan`). It becomes a fixed
  timetable (the ``schedule`` policy) run open loop on the run's own scenario (``config.toml``)
  with DN sites stepping their power flows (:func:`replay_dn`);
* **coopt** (``mescosim run coopt-small|coopt-large``): ``plans.parquet`` holds, per degradation
  model, policy and truck, the plan the truck followed at the start of the day (action, node,
  planned SOC and energy, cost); the replay follows it open loop
  (:class:`policies.coopt_baselines.PlanFollower`) through the engine's truck missions, the
  trucks charging from the CIGRE MV feeder in one AC power flow per step
  (:class:`grids.truck_grid.ChargingFeeder`), at the run's prices (``prices.parquet``);
* **tsn** (``mescosim run tsn-ieee30|tsn-ieee118``): ``plans.parquet`` and ``plan_paths.parquet``
  hold the centralised MES plan (dispatch, storage and train states, connections) and the
  trains' paths; the replay runs it (:class:`policies.tsn_policies.FixedPlanPolicy`) with trains
  on the rail graph and a DC and an AC power flow every hour (:func:`experiments.tsn_sim.simulate`).

Any other seed than the run's draws another realisation (the DN's load, PV, traffic and
outages; the trucks' drive delays and energy noise; seeded train delays with
``--delay-prob``). The replay directory (default ``RUN_DIR/replay-s<seed>``, never the run's
own directory, never written over) holds:

* ``planned_vs_simulated.parquet`` (tidy): ``family, model, policy, entity, step, time_min,
  metric, planned, simulated, diff`` - per vehicle/station and step the SOC, energy, cost
  (and the like), and per run (``entity = "system"``) the system's objective;
* ``violations.parquet``: ``family, model, policy, time_min, kind, element, value, limit,
  detail`` - what the planner could not see: bus voltages out of band, overloaded lines, power
  flows that did not converge, missed customers, SOC below the minimum, recorded failures;
* ``meta.json`` with the summary (per model and policy), seed, versions and git hash.
"""

from __future__ import annotations

import json
import math
import platform
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.config import read_raw, validate
from experiments.run import (
    atomic_parquet,
    git_hash,
    out_problems,
    run_one,
    versions,
    write_meta,
    write_run,
)
from sim.errors import ScenarioError

PVS_COLUMNS = ["family", "model", "policy", "entity", "step", "time_min", "metric", "planned",
               "simulated", "diff"]
VIOLATION_COLUMNS = ["family", "model", "policy", "time_min", "kind", "element", "value",
                     "limit", "detail"]
SYSTEM = "system"  # the entity of the objective rows


@dataclass
class Replay:
    """What a replay wrote: its family, directory, seed, the per-run summaries (also in
    ``meta.json``) and the two tables."""

    family: str
    out: Path
    seed: int
    summaries: list[dict]
    planned_vs_simulated: pd.DataFrame
    violations: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The printed summary."""
        out = []
        for s in self.summaries:
            head = " ".join(str(s[k]) for k in ("model", "policy") if s.get(k))
            out.append(f"  {head}: objective planned {s['objective_planned']:.4f}, simulated "
                       f"{s['objective_simulated']:.4f} ({s['objective']}); "
                       f"{s['off_plan_steps']} step(s) off the plan; max |SOC diff| "
                       f"{s['max_abs_soc_diff']:.3g}, max |energy diff| "
                       f"{s['max_abs_energy_diff']:.3g} {s['energy_unit']}")
            v = s["violations"]
            out.append("    unseen by the plan: " + (", ".join(f"{n} {k}" for k, n in v.items())
                                                     if v else "nothing"))
        return out


# ============================================================================ DN
@dataclass(frozen=True)
class ReplaySummary:
    policy: str
    seed: int
    steps: int
    site_mismatch_steps: int
    max_abs_e_diff_mwh: float
    sfi_total_run: float
    sfi_total_replay: float
    voltage_violation_bus_steps: float
    loading_violation_line_steps: float
    nonconverged_steps: float


def followed_plan(plan: pd.DataFrame, policy: str) -> pd.DataFrame:
    """For every vehicle and step, the row of the latest plan made at or before that step."""
    p = plan[plan.policy == policy] if "policy" in plan else plan
    if p.empty:
        raise ScenarioError([f"plan.parquet: no plan of policy {policy!r}"])
    p = p.sort_values(["vehicle", "time_min", "plan_step"])
    return p.groupby(["vehicle", "time_min"], as_index=False).last()


def timetable(followed: pd.DataFrame, node_of: dict[str, str]) -> list[dict]:
    """The ``schedule`` entries that drive the followed plan: a trip at the step where a
    vehicle leaves a site (or its start) for the next site of the plan, and the planned power
    at every step it is parked at a site."""
    entries: list[dict] = []
    for vehicle, g in followed.groupby("vehicle", sort=True):
        g = g.sort_values("time_min")
        sites, times, powers = g.site.tolist(), g.time_min.tolist(), g.p_mw.tolist()
        for i, (t, site, p) in enumerate(zip(times, sites, powers)):
            if site:
                entries.append({"time_min": int(t), "vehicle": vehicle, "p_mw": float(p)})
            elif i == 0 or sites[i - 1]:
                nxt = next((s for s in sites[i + 1:] if s), None)
                if nxt is not None:
                    entries.append({"time_min": int(t), "vehicle": vehicle,
                                    "dest": node_of[nxt]})
    return sorted(entries, key=lambda e: (e["time_min"], e["vehicle"], "dest" not in e))


def _system(metrics: pd.DataFrame, policy: str, metric: str) -> float:
    m = metrics[(metrics.policy == policy) & (metrics.entity == "system")
                & (metrics.metric == metric)]
    return float(m.value.iloc[0]) if len(m) else float("nan")


def _dn_violations(tables: dict, info: dict, policy: str) -> pd.DataFrame:
    """The DN replay's violations: buses out of the voltage band, lines above their loading
    limit (the run's limits, :func:`experiments.metrics.limits`), power flows that did not
    converge, recorded failures."""
    from experiments.metrics import VIOLATION_TOL, limits

    lim = limits(info)
    rows = []

    def sel(name):
        df = tables.get(name)
        return df[df.policy == policy] if df is not None and len(df) else pd.DataFrame()

    for name, kind, lo, hi in (("buses", "voltage", lim["vm_min_pu"], lim["vm_max_pu"]),
                               ("lines", "loading", None, lim["loading_max_pct"])):
        df = sel(name)
        if not len(df):
            continue
        v = pd.to_numeric(df.value, errors="coerce").astype(float)
        bad = pd.Series(False, index=df.index)
        if lo is not None:
            bad |= v < lo - VIOLATION_TOL
        bad |= v > hi + VIOLATION_TOL
        for r, x in zip(df[bad].itertuples(index=False), v[bad]):
            limit = hi if lo is None or x > hi else lo
            rows.append(("dn", "", "schedule", int(r.time_min), kind, f"{r.site}:{r.element}",
                         float(x), float(limit), ""))
    sites = sel("sites")
    if len(sites):
        for r in sites[~sites.converged.astype(bool)].itertuples(index=False):
            rows.append(("dn", "", "schedule", int(r.time_min), "nonconverged", str(r.site),
                         math.nan, math.nan, str(r.status)))
    for r in sel("failures").itertuples(index=False):
        rows.append(("dn", "", "schedule", int(r.time_min), "failure", str(r.entity), math.nan,
                     math.nan, f"{r.status}: {r.message}"))
    return pd.DataFrame(rows, columns=VIOLATION_COLUMNS)


def replay_dn(run_dir: Path, out: Path, seed: int | None, policy: str | None, meta: dict
              ) -> Replay:
    """Replay the plan recorded in a DN run directory (see the module docstring). Writes the
    replay's own run directory (its ``config.toml`` holds the timetable), ``plan_vs_sim.parquet``
    (per vehicle and step: planned and simulated site, power and energy) and the two tidy
    tables."""
    problems = [f"{run_dir}: no {name}" for name in ("config.toml", "plan.parquet",
                                                       "metrics.parquet")
                if not (run_dir / name).is_file()]
    if problems:
        raise ScenarioError(problems + ["(a DN replay needs the run directory of a scenario run "
                                        "with a planning policy, e.g. policy.name = 'milp')"])
    plan = pd.read_parquet(run_dir / "plan.parquet")
    if policy is None:
        if plan.empty:
            raise ScenarioError([f"{run_dir}/plan.parquet: the run recorded no plan"])
        policy = str(plan.policy.iloc[0])
    followed = followed_plan(plan, policy)
    raw = read_raw(run_dir / "config.toml")
    node_of = {name: g["node"] for name, g in raw.get("grids", {}).items()}
    raw["policy"] = {"name": "schedule", "params": {"plan": timetable(followed, node_of)}}
    raw["compare"] = {"policies": []}
    seed = int(meta.get("seed", 0)) if seed is None else int(seed)
    cfg = validate(raw, source=str(run_dir / "config.toml"), base=run_dir)
    result = run_one(cfg, seed)
    sim = result.tables["vehicles"]
    sim = sim[sim.policy == "schedule"][["vehicle", "time_min", "site", "p_mw", "e_end_mwh"]]
    both = followed[["vehicle", "time_min", "site", "p_mw", "e_end_mwh"]].merge(
        sim, on=["vehicle", "time_min"], suffixes=("_plan", "_sim"), how="left")
    both["e_diff_mwh"] = both.e_end_mwh_sim - both.e_end_mwh_plan
    planned_here = both.site_plan != ""
    off = planned_here & (both.site_plan != both.site_sim)
    m_run = pd.read_parquet(run_dir / "metrics.parquet")
    m = result.metrics
    summary = ReplaySummary(
        policy=policy, seed=seed, steps=int(len(both)),
        site_mismatch_steps=int(off.sum()),
        max_abs_e_diff_mwh=float(np.nanmax(np.abs(both.e_diff_mwh))) if len(both) else 0.0,
        sfi_total_run=_system(m_run, policy, "sfi_total"),
        sfi_total_replay=_system(m, "schedule", "sfi_total"),
        voltage_violation_bus_steps=_system(m, "schedule", "voltage_violation_bus_steps"),
        loading_violation_line_steps=_system(m, "schedule", "loading_violation_line_steps"),
        nonconverged_steps=_system(m, "schedule", "nonconverged_steps"))
    # tidy planned against simulated: energy and power per vehicle and step, the objective
    step_min = int(cfg.scenario.step_min)
    parts = []
    for metric, col in (("e_end_mwh", "e_end_mwh"), ("p_mw", "p_mw")):
        parts.append(pd.DataFrame({
            "family": "dn", "model": "", "policy": policy, "entity": both.vehicle,
            "step": both.time_min // step_min,
            "time_min": both.time_min, "metric": metric, "planned": both[f"{col}_plan"],
            "simulated": both[f"{col}_sim"]}))
    parts.append(pd.DataFrame({
        "family": "dn", "model": "", "policy": policy, "entity": both.vehicle,
        "step": both.time_min // step_min, "time_min": both.time_min,
        "metric": "off_plan", "planned": 0.0, "simulated": off.astype(float)}))
    parts.append(pd.DataFrame([{
        "family": "dn", "model": "", "policy": policy, "entity": SYSTEM, "step": -1,
        "time_min": -1, "metric": "sfi_total", "planned": summary.sfi_total_run,
        "simulated": summary.sfi_total_replay}]))
    pvs = pd.concat(parts, ignore_index=True)
    pvs["diff"] = pvs.simulated - pvs.planned
    viol = _dn_violations(result.tables, result.info, "schedule")
    s = {"model": "", "policy": policy, "objective": "sfi_total (accumulated SFI of the run "
         "against the replay's)", "objective_planned": summary.sfi_total_run,
         "objective_simulated": summary.sfi_total_replay,
         "off_plan_steps": summary.site_mismatch_steps,
         "max_abs_soc_diff": float("nan"), "max_abs_energy_diff": summary.max_abs_e_diff_mwh,
         "energy_unit": "MWh", "violations": _counts(viol)}
    if len(both):
        cap = {v.name: float(v.capacity_mwh) for v in cfg.fleet}
        d = (both.e_diff_mwh / both.vehicle.map(cap)).abs()
        s["max_abs_soc_diff"] = float(np.nanmax(d)) if d.notna().any() else float("nan")
    result.meta["replay"] = {"run_dir": str(run_dir), "family": "dn", **asdict(summary),
                             "summaries": [s]}
    write_run(result, out, figures=False)
    atomic_parquet(both, out / "plan_vs_sim.parquet")
    atomic_parquet(pvs[PVS_COLUMNS], out / "planned_vs_simulated.parquet")
    atomic_parquet(viol, out / "violations.parquet")
    rep = Replay("dn", out, seed, [s], pvs[PVS_COLUMNS], viol)
    rep.notes = [f"vehicle not where planned: {summary.site_mismatch_steps} steps",
                 f"accumulated SFI: run {summary.sfi_total_run:.4f}, replay "
                 f"{summary.sfi_total_replay:.4f}",
                 f"unseen by the plan: {summary.voltage_violation_bus_steps:g} voltage "
                 f"bus-steps, {summary.loading_violation_line_steps:g} overloaded line-steps, "
                 f"{summary.nonconverged_steps:g} non-converged steps"]
    return rep


def _counts(viol: pd.DataFrame) -> dict[str, int]:
    """Violations per kind (for the summary)."""
    return {str(k): int(n) for k, n in viol.groupby("kind").size().items()} if len(viol) \
        else {}


# ============================================================================ coopt
def _plan_step(row: dict):
    from sim.coopt import PlanStep

    kw = {}
    for f in fields(PlanStep):
        v = row[f.name]
        kw[f.name] = str(v) if f.name == "kind" else (int(v) if f.type in ("int", int)
                                                        else float(v))
    return PlanStep(**kw)


def coopt_plans(df: pd.DataFrame) -> dict:
    """``{(model, policy): {truck: TruckPlan}}`` rebuilt from a run's ``plans.parquet``."""
    from sim.coopt import TruckPlan

    out: dict = {}
    for (model, pol, truck), g in df.sort_values("step").groupby(["model", "policy", "truck"],
                                                                 sort=False):
        rows = g.to_dict("records")
        out.setdefault((str(model), str(pol)), {})[str(truck)] = TruckPlan(
            str(truck), tuple(_plan_step(r) for r in rows), bool(rows[0]["plan_feasible"]),
            str(rows[0]["plan_reason"] or ""))
    return out


def fleet_totals(steps: dict[str, list], req_kwh: dict[int, float], pen_usd_per_kwh: float
                 ) -> dict[str, float]:
    """The fleet's cost terms of ``steps`` (truck -> plan steps, planned or simulated), priced
    alike: operating cost, energy delivered within the requirements, the objective of ``dp``
    (``total_usd``: operating + penalty x unmet kWh) and of ``dp_site`` (``total_site_usd``:
    operating + penalty x requirement of unserved sites)."""
    got: dict[int, float] = {}
    op = grid = km = 0.0
    for ss in steps.values():
        for x in ss:
            op += x.distance_usd + x.wage_usd + x.energy_usd + x.degradation_usd
            grid += x.grid_kwh
            km += x.dist_km
            if x.kind == "serve":
                got[x.customer] = got.get(x.customer, 0.0) + x.delivered_kwh
    delivered = sum(min(v, req_kwh.get(c, 0.0)) for c, v in got.items())
    unmet = sum(req_kwh.values()) - delivered
    unserved = sum(q for c, q in req_kwh.items() if c not in got)
    return {"operating_usd": op, "delivered_kwh": delivered, "sites_served": float(len(got)),
            "grid_kwh": grid, "km": km, "total_usd": op + pen_usd_per_kwh * unmet,
            "total_site_usd": op + pen_usd_per_kwh * unserved}


def _coopt_settings(run_dir: Path):
    from experiments.coopt_study import settings_for
    from grids.prices import LocalResource, PriceConfig

    st, s, pcfg = settings_for(run_dir / "config.toml")

    def tup(v):
        if isinstance(v, dict):
            return LocalResource(**v)
        return tuple(tup(x) for x in v) if isinstance(v, list | tuple) else v

    pcfg = PriceConfig(**{f.name: tup(getattr(pcfg, f.name)) for f in fields(pcfg)})
    return st, s, pcfg


def replay_coopt(run_dir: Path, out: Path, seed: int | None, policy: str | None,
                 model: str | None, meta: dict, delay_prob: float | None,
                 delay_max_min: int | None) -> Replay:
    """Follow the recorded truck plans open loop through the engine with the CIGRE MV feeder's
    AC power flow every step (see the module docstring)."""
    from agents.road_data import load_coopt
    from agents.truck import DriveDisturbance
    from experiments.coopt_build import build_problems
    from experiments.coopt_study import PRICE_MODE, simulate_fleet
    from grids.prices import hour_upstream_usd_per_mwh
    from grids.truck_grid import ChargingFeeder
    from policies.coopt_baselines import PlanFollower

    problems = [f"{run_dir}: no {name}" for name in ("config.toml", "plans.parquet",
                                                       "prices.parquet")
                if not (run_dir / name).is_file()]
    if problems:
        raise ScenarioError(problems + ["(a Co-OPT replay needs the run directory of "
                                        "`mescosim run coopt-small|coopt-large` that recorded "
                                        "its plans)"])
    st, s, pcfg = _coopt_settings(run_dir)
    table = pd.read_parquet(run_dir / "plans.parquet")
    bad = []
    if policy is not None and policy not in set(table.policy):
        bad.append(f"--policy: {policy!r} has no plan in {run_dir}/plans.parquet (there: "
                   f"{', '.join(sorted(set(table.policy))) or 'none'})")
    if model is not None and model not in set(table.model):
        bad.append(f"--model: {model!r} has no plan in {run_dir}/plans.parquet (there: "
                   f"{', '.join(sorted(set(table.model))) or 'none'})")
    try:
        disturbance = DriveDisturbance(
            st.delay_prob if delay_prob is None else float(delay_prob),
            st.delay_max_min if delay_max_min is None else int(delay_max_min), st.energy_noise)
    except ValueError as exc:
        bad.append(f"--delay-prob / --delay-max-min: {exc}")
    if table.empty:
        bad.append(f"{run_dir}/plans.parquet: the run recorded no plan")
    if bad:
        raise ScenarioError(bad)
    if policy is not None:
        table = table[table.policy == policy]
    if model is not None:
        table = table[table.model == model]
    seed = int(meta.get("seed", 0)) if seed is None else int(seed)
    data = load_coopt(st.data_dir)
    net = data.networks[st.network]
    prices = pd.read_parquet(run_dir / "prices.parquet").sort_values("hour")
    hourly = {int(n): prices[f"bus{b}"].to_numpy(float)
              for n, b in net.bus_of_charging_site.items()}
    req = {d.node: d.requirement_kwh for d in net.demands}
    # the run's upstream prices (a fresh generator of the run's seed draws them again)
    upstream = hour_upstream_usd_per_mwh(pcfg, np.random.default_rng(int(meta.get("seed", 0))))
    modes = table.groupby(["model", "policy"]).unmet_mode.first().to_dict()
    pvs_rows, viol_rows, summaries, extra = [], [], [], {"sites": [], "buses": [], "lines": [],
                                                         "sim_steps": []}
    probs_of: dict = {}
    for (m, pol), plans in coopt_plans(table).items():
        if m not in probs_of:
            probs_of[m] = build_problems(data, st.network, m, s, hourly_price=hourly)
        probs = probs_of[m]
        if modes[(m, pol)] != probs[0].unmet_mode:
            probs = tuple(replace(p, unmet_mode=modes[(m, pol)]) for p in probs)
        byname = {p.name: p for p in probs}
        feeder = ChargingFeeder(net.bus_of_charging_site, pcfg, upstream_usd_per_mwh=upstream)
        runs, eng = simulate_fleet(PlanFollower(plans, probs), probs, list(plans), data,
                                   st.network, s, m, hourly, disturbance, seed, grid=feeder,
                                   price_mode=PRICE_MODE[st.truck_prices])
        frames = eng.recorder.frames()
        tag = {"model": m, "policy": pol}
        for name in ("sites", "buses", "lines"):
            if name in frames:
                extra[name].append(frames[name].assign(**tag))
        off = 0
        d_soc, d_e = [0.0], [0.0]
        for truck, plan in plans.items():
            p = byname[truck]
            sim = runs[truck].steps
            cum_p = cum_s = 0.0
            for i, x in enumerate(plan.steps):
                y = sim[i] if i < len(sim) else None
                cum_p += x.cost_usd
                cum_s = cum_s + y.cost_usd if y is not None else math.nan
                same = y is not None and (y.kind, y.k_start, y.node_to) == (x.kind, x.k_start,
                                                                           x.node_to)
                off += not same
                t_min = p.t_start_min + x.k_start * p.step_min
                vals = {
                    "k_end": (x.k_end, y.k_end if y else math.nan),
                    "node": (x.node_to, y.node_to if y else math.nan),
                    "soc_frac": (x.soc_to_frac, y.soc_to_frac if y else math.nan),
                    "e_kwh": (x.soc_to_frac * p.e_cap_kwh,
                              y.soc_to_frac * p.e_cap_kwh if y else math.nan),
                    "grid_kwh": (x.grid_kwh, y.grid_kwh if y else math.nan),
                    "delivered_kwh": (x.delivered_kwh, y.delivered_kwh if y else math.nan),
                    "cost_usd": (x.cost_usd, y.cost_usd if y else math.nan),
                    "cum_cost_usd": (cum_p, cum_s),
                    "off_plan": (0.0, float(not same)),
                }
                for metric, (a, b) in vals.items():
                    pvs_rows.append(("coopt", m, pol, truck, i, t_min, metric, float(a),
                                     float(b)))
                if y is not None:
                    d_soc.append(abs(y.soc_to_frac - x.soc_to_frac))
                    d_e.append(abs(y.soc_to_frac - x.soc_to_frac) * p.e_cap_kwh)
            for x in sim:
                extra["sim_steps"].append({"model": m, "policy": pol, "truck": truck,
                                           **asdict(x), "cost_usd": x.cost_usd})
            r = runs[truck]
            if r.soc_low_frac < p.soc_min_frac - 1e-9:
                viol_rows.append(("coopt", m, pol, -1, "soc_below_min", truck,
                                  float(r.soc_low_frac), float(p.soc_min_frac),
                                  "lowest SOC of the day (roads included)"))
            for f in r.failures:
                minute = f.split(" min:", 1)[0]
                viol_rows.append(("coopt", m, pol, int(minute) if minute.isdigit() else -1,
                                  "failure", truck, math.nan, math.nan, f))
        # customers the plan serves that the simulation did not
        planned_served = {pl.served_customer for pl in plans.values()} - {-1}
        for c in sorted(planned_served - set(eng.system.served)):
            viol_rows.append(("coopt", m, pol, -1, "missed_customer", f"node {c}",
                              float(req.get(c, math.nan)), math.nan,
                              "served in the plan, not in the simulation (requirement kWh)"))
        viol_rows.extend(_feeder_violations(frames, feeder, m, pol))
        tp = fleet_totals({n: list(pl.steps) for n, pl in plans.items()}, req,
                          s.pen_unmet_usd_per_kwh)
        ts = fleet_totals({n: runs[n].steps for n in plans}, req, s.pen_unmet_usd_per_kwh)
        objective = "total_site_usd" if modes[(m, pol)] == "site" else "total_usd"
        for metric in ("total_usd", "total_site_usd", "operating_usd", "delivered_kwh",
                       "sites_served", "grid_kwh", "km"):
            pvs_rows.append(("coopt", m, pol, SYSTEM, -1, -1, metric, tp[metric], ts[metric]))
        pvs_rows.append(("coopt", m, pol, SYSTEM, -1, -1, "objective_usd", tp[objective],
                         ts[objective]))
        mine = [v for v in viol_rows if v[1] == m and v[2] == pol]
        summaries.append({
            "model": m, "policy": pol, "trucks": len(plans),
            "objective": f"{objective} (USD)", "objective_planned": tp[objective],
            "objective_simulated": ts[objective], "off_plan_steps": int(off),
            "max_abs_soc_diff": float(max(d_soc)), "max_abs_energy_diff": float(max(d_e)),
            "energy_unit": "kWh",
            "violations": _counts(pd.DataFrame(mine, columns=VIOLATION_COLUMNS))})
    pvs = pd.DataFrame(pvs_rows, columns=PVS_COLUMNS[:-1])
    pvs["diff"] = pvs.simulated - pvs.planned
    viol = pd.DataFrame(viol_rows, columns=VIOLATION_COLUMNS)
    tables = {name: (pd.concat(v, ignore_index=True) if v and isinstance(v[0], pd.DataFrame)
                     else pd.DataFrame(v)) for name, v in extra.items()}
    info = {"disturbance": asdict(disturbance), "network": st.network,
            "truck_prices": st.truck_prices,
            "prices": "the run's prices.parquet" + (
                "; each step's OPF dual with the trucks' charging in it"
                if st.truck_prices == "stepped_opf" else "")}
    return _finish("coopt", run_dir, out, seed, meta, pvs, viol, summaries, tables, info)


def _feeder_violations(frames: dict, feeder, model: str, policy: str) -> list[tuple]:
    """Voltages outside the CIGRE MV buses' band, lines above their loading limit (the limits
    of the prices' OPF), steps whose power flow did not converge."""
    rows = []
    net = feeder.net

    def limit(table, col, default):
        return table[col].astype(float) if col in table else pd.Series(default, table.index)

    b = frames.get("buses")
    if b is not None and len(b):
        lo = b.bus.map(limit(net.bus, "min_vm_pu", 0.9)).to_numpy(float)
        hi = b.bus.map(limit(net.bus, "max_vm_pu", 1.1)).to_numpy(float)
        vm = b.vm_pu.to_numpy(float)
        bad = (vm < lo - 1e-9) | (vm > hi + 1e-9)
        for r, lo_, hi_ in zip(b[bad].itertuples(index=False), lo[bad], hi[bad]):
            rows.append(("coopt", model, policy, int(r.time_min), "voltage", f"bus {r.bus}",
                         float(r.vm_pu), float(lo_ if r.vm_pu < lo_ else hi_), ""))
    li = frames.get("lines")
    if li is not None and len(li):
        cap = li.line.map(limit(net.line, "max_loading_percent", 100.0)).to_numpy(float)
        bad = li.loading_pct.to_numpy(float) > cap + 1e-6
        for r, c in zip(li[bad].itertuples(index=False), cap[bad]):
            rows.append(("coopt", model, policy, int(r.time_min), "loading", f"line {r.line}",
                         float(r.loading_pct), float(c),
                         "above the line limit of the prices' OPF (the power flow has no OPF "
                         "dispatch: trucks' charging on the hourly base case)"))
    s = frames.get("sites")
    if s is not None and len(s):
        bad = s[~s.converged.astype(bool)].groupby("time_min").status.first()
        for minute, status in bad.items():
            rows.append(("coopt", model, policy, int(minute), "nonconverged", feeder.name,
                         math.nan, math.nan, str(status)))
    return rows


# ============================================================================ writing
def _finish(family: str, run_dir: Path, out: Path, seed: int, run_meta: dict,
            pvs: pd.DataFrame, viol: pd.DataFrame, summaries: list[dict],
            tables: dict[str, pd.DataFrame], info: dict) -> Replay:
    """Write the replay directory: the two tidy tables, the simulation's own tables and
    ``meta.json`` (``partial`` until every table is written)."""
    out.mkdir(parents=True, exist_ok=True)
    meta = {"replay_of": str(run_dir), "family": family, "seed": seed,
            "run_seed": run_meta.get("seed"), "scenario": run_meta.get("scenario"),
            "info": info, "summaries": summaries, "versions": versions(), "git": git_hash(),
            "platform": platform.platform(),
            "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "tables": sorted(["planned_vs_simulated.parquet", "violations.parquet",
                              *(f"{k}.parquet" for k in tables)])}
    write_meta(out, {**meta, "status": "partial"})
    atomic_parquet(pvs[PVS_COLUMNS], out / "planned_vs_simulated.parquet")
    atomic_parquet(viol[VIOLATION_COLUMNS], out / "violations.parquet")
    for name, df in tables.items():
        atomic_parquet(df, out / f"{name}.parquet")
    write_meta(out, {**meta, "status": "complete"})
    return Replay(family, out, seed, summaries, pvs[PVS_COLUMNS], viol[VIOLATION_COLUMNS])


# ============================================================================ entry point
FAMILIES = ("dn", "coopt", "tsn")


def family_of(run_dir: str | Path) -> tuple[str, dict]:
    """The scenario family of a run directory and its ``meta.json``; a ScenarioError (exit 2)
    when ``run_dir`` is not a finished run directory or its family cannot be replayed."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ScenarioError([f"{run_dir}: not a directory; a replay needs the run directory of "
                             f"`mescosim run`"])
    path = run_dir / "meta.json"
    if not path.is_file():
        raise ScenarioError([f"{run_dir}: not a run directory (no meta.json)"])
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ScenarioError([f"{path}: not readable as JSON ({exc})"]) from None
    if not isinstance(meta, dict):
        raise ScenarioError([f"{path}: not a run's meta.json (not a JSON object)"])
    if "replay_of" in meta or "replay" in meta:
        raise ScenarioError([f"{run_dir}: a replay directory; replay the run it came from "
                             f"({meta.get('replay_of') or meta['replay'].get('run_dir')})"])
    if meta.get("status") not in (None, "complete"):
        raise ScenarioError([f"{path}: status {meta.get('status')!r}: the run did not finish, "
                             f"its plan may be incomplete"])
    if "coopt" in meta and "study" in meta:
        return "coopt", meta
    if isinstance(meta.get("config"), dict) and "case" in meta["config"]:
        return "tsn", meta
    if (run_dir / "plan.parquet").is_file():
        return "dn", meta
    if (run_dir / "config.toml").is_file():
        raise ScenarioError([f"{run_dir}: no plan.parquet: the run's policy recorded no plan "
                             f"(a DN run is replayed when its policy plans, e.g. "
                             f"policy.name = 'milp')"])
    raise ScenarioError([f"{run_dir}: a run of scenario {meta.get('scenario')!r} whose family "
                         f"cannot be replayed (replayable: DN runs with a planning policy, "
                         f"coopt-small / coopt-large, tsn-ieee30 / tsn-ieee118)"])


def replay(run_dir: str | Path, out: str | Path | None = None, seed: int | None = None,
           policy: str | None = None, model: str | None = None,
           delay_prob: float | None = None, delay_max_min: int | None = None) -> Replay:
    """Replay the plan recorded in ``run_dir`` (see the module docstring): into ``out``
    (default ``run_dir/replay-s<seed>``), on the realisation of ``seed`` (default the run's).
    ``policy`` / ``model`` pick the plans (default every recorded one); ``delay_prob`` and
    ``delay_max_min`` hold drives / train trips up (default: the run's own settings; the DN
    family takes its disturbances from the scenario and refuses them)."""
    run_dir = Path(run_dir)
    family, meta = family_of(run_dir)
    bad = []
    if family == "dn" and (delay_prob is not None or delay_max_min is not None):
        bad.append("--delay-prob / --delay-max-min: a DN run's disturbances come from its "
                   "scenario ([uncertainty], outages); replay it with another --seed")
    if family != "coopt" and model is not None:
        bad.append(f"--model: only Co-OPT runs record plans per degradation model, this is a "
                   f"{family} run")
    if family == "tsn" and delay_prob is not None and not 0 <= delay_prob <= 1:
        bad.append(f"--delay-prob: must be in [0, 1], got {delay_prob}")
    if family == "tsn" and delay_max_min is not None and delay_max_min < 0:
        bad.append(f"--delay-max-min: must be >= 0, got {delay_max_min}")
    run_seed = int(meta.get("seed") or 0)
    seed_ = run_seed if seed is None else int(seed)
    out_path = Path(out) if out is not None else run_dir / f"replay-s{seed_}"
    try:
        same = out_path.resolve() == run_dir.resolve()
    except OSError:
        same = False
    if same:
        bad.append(f"--out: {out_path} is the run directory; a replay never writes over the "
                   f"run's own tables")
    else:
        bad += out_problems(out_path, run_dir / "meta.json")
    if bad:
        raise ScenarioError(bad)
    if family == "dn":
        return replay_dn(run_dir, out_path, seed, policy, meta)
    if family == "coopt":
        return replay_coopt(run_dir, out_path, seed, policy, model, meta, delay_prob,
                            delay_max_min)
    return replay_tsn(run_dir, out_path, seed, policy, meta, delay_prob, delay_max_min)


# ============================================================================ tsn
def tsn_plan(table: pd.DataFrame, paths: pd.DataFrame, n_trains: int):
    """The :class:`policies.tsn_milp.TsnPlan` and the trains' paths rebuilt from a run's
    ``plans.parquet`` and ``plan_paths.parquet`` (:func:`experiments.tsn_study.plan_tables`)."""
    from experiments.tsn_study import PLAN_ARRAYS, PLAN_SCALARS
    from policies.solve import SolveOutcome
    from policies.tsn_milp import TsnPlan

    by = {a: g for a, g in table.groupby("array")}
    missing = [a for a in (*(f"{x}.shape" for x in PLAN_ARRAYS), *PLAN_SCALARS, "case_name",
                           "kind", "outcome.status") if a not in by]
    if missing:
        raise ScenarioError([f"plans.parquet: not a transmission plan (no {', '.join(missing)})"])

    def array(name):
        shape = tuple(int(n) for n in str(by[f"{name}.shape"].text.iloc[0]).split(","))
        a = np.zeros(shape)
        g = by.get(name)
        if g is None:
            return a
        if len(shape) == 3:
            a[g.i.to_numpy(), g.j.to_numpy(), g.t.to_numpy()] = g.value.to_numpy()
        else:
            a[g.i.to_numpy(), g.t.to_numpy()] = g.value.to_numpy()
        return a

    def scalar(name):
        v = float(by[name].value.iloc[0])
        return None if math.isnan(v) else v

    def text(name):
        return str(by[name].text.iloc[0]) if name in by else ""

    outcome = SolveOutcome(text("outcome.status"), text("outcome.solver"),
                           scalar("outcome.objective"), scalar("outcome.bound"),
                           scalar("outcome.gap"), scalar("outcome.build_s") or 0.0,
                           scalar("outcome.solve_s") or 0.0, text("outcome.message"))
    arrays = {a: array(a) for a in PLAN_ARRAYS}
    arrays["u"] = arrays["u"].round()
    plan = TsnPlan(case_name=text("case_name"), kind=text("kind"), outcome=outcome,
                   **arrays, **{s: (int(scalar(s)) if s in ("line_rows", "line_rounds")
                                    else float(scalar(s))) for s in PLAN_SCALARS})
    out: list[list] = [[] for _ in range(n_trains)]
    for r in paths.sort_values(["k", "t0"]).itertuples(index=False):
        out[int(r.k)].append((int(r.i), int(r.t0), int(r.j), int(r.t1)))
    return plan, out


def replay_tsn(run_dir: Path, out: Path, seed: int | None, policy: str | None, meta: dict,
               delay_prob: float | None, delay_max_min: int | None) -> Replay:
    """Run the recorded MES plan with trains on the rail graph and a DC and an AC power flow
    every hour (see the module docstring); ``delay_prob`` holds each planned trip up by
    ``1..delay_max_min`` minutes (seeded by ``seed``), which the plan does not know."""
    from experiments.tsn_config import TsnStudyConfig
    from experiments.tsn_sim import simulate
    from grids.transmission import build_case
    from policies.tsn_policies import FixedPlanPolicy

    problems = [f"{run_dir}: no {name}" for name in ("plans.parquet", "plan_paths.parquet")
                if not (run_dir / name).is_file()]
    if problems:
        raise ScenarioError(problems + ["(the study records the centralised MES plan when it "
                                        "found one; a run without it has no plan to replay)"])
    if policy not in (None, "central"):
        raise ScenarioError([f"--policy: a transmission run records one plan, 'central' (the "
                             f"centralised MES MILP), not {policy!r}"])
    try:
        cfg = TsnStudyConfig.model_validate(meta["config"])
    except Exception as exc:  # pydantic's ValidationError: the run's config is not readable
        raise ScenarioError([f"{run_dir}/meta.json: config is not a transmission study's "
                             f"({exc})"]) from None
    seed = int(meta.get("seed") or 0) if seed is None else int(seed)
    case, net = build_case(cfg.case.name, "mes", **dict(cfg.case.overrides))
    plan, paths = tsn_plan(pd.read_parquet(run_dir / "plans.parquet"),
                           pd.read_parquet(run_dir / "plan_paths.parquet"), len(case.trains))
    rng = np.random.default_rng(seed)
    p, dmax = float(delay_prob or 0.0), int(delay_max_min or 0)
    if p > 0 and dmax < 1:
        raise ScenarioError(["--delay-max-min: must be >= 1 when --delay-prob > 0"])
    delays: dict[str, dict[int, int]] = {}
    if p > 0:
        drng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
        for k, tr in enumerate(case.trains):
            trips = sum(1 for a in paths[k] if a[0] != a[2])
            d = {n: int(drng.integers(1, dmax + 1)) for n in range(1, trips + 1)
                 if drng.random() < p}
            if d:
                delays[tr.name] = d
    sim = simulate(case, net, FixedPlanPolicy(plan, paths, info={"planner": "replay"}), rng,
                   delays_min=delays or None, degradation=cfg.trains.degradation,
                   vm_min_pu=cfg.check.vm_min_pu, vm_max_pu=cfg.check.vm_max_pu)
    pv = sim.tables["plan_vs_sim"]
    pvs = pd.DataFrame({"family": "tsn", "model": case.name, "policy": "central",
                        "entity": pv.entity.astype(str), "step": pv.time_min // 60,
                        "time_min": pv.time_min, "metric": pv.variable, "planned": pv.plan,
                        "simulated": pv.sim})
    sys_rows = [("operating_cost_usd", plan.operating_cost, sim.summary["operating_cost"]),
                ("transport_cost_usd", plan.transport_cost, sim.summary["transport_cost"]),
                ("objective_usd", plan.total_cost, sim.summary["total_cost"]),
                ("train_hours", plan.train_hours(), float(sim.summary["train_transit_hours"]))]
    pvs = pd.concat([pvs, pd.DataFrame(
        [("tsn", case.name, "central", SYSTEM, -1, -1, m, float(a), float(b))
         for m, a, b in sys_rows], columns=PVS_COLUMNS[:-1])], ignore_index=True)
    pvs["diff"] = pvs.simulated - pvs.planned
    viol = []
    for r in sim.tables["dc_blind"].itertuples(index=False):
        kind = "loading" if r.kind == "ac_only_overload" else "voltage"
        value = r.ac_loading_pct if kind == "loading" else r.vm_pu
        limit = 100.0 if kind == "loading" else (cfg.check.vm_min_pu if r.cause == "low"
                                                 else cfg.check.vm_max_pu)
        viol.append(("tsn", case.name, "central", int(r.time_min), kind, str(r.element),
                     float(value), float(limit), f"{r.kind}, {r.cause}"))
    g = sim.tables["grid"]
    if len(g):
        for r in g[~g.converged_ac.astype(bool) | ~g.converged_dc.astype(bool)].itertuples(
                index=False):
            viol.append(("tsn", case.name, "central", int(r.time_min), "nonconverged", "grid",
                         math.nan, math.nan, f"{r.status}: DC {bool(r.converged_dc)}, AC "
                                             f"{bool(r.converged_ac)}"))
    for r in sim.tables["failures"].itertuples(index=False):
        viol.append(("tsn", case.name, "central", int(r.time_min), "failure", str(r.entity),
                     math.nan, math.nan, f"{r.status}: {r.message}"))
    viol = pd.DataFrame(viol, columns=VIOLATION_COLUMNS)
    dev = pv.assign(a=pv.sim.sub(pv.plan).abs())
    loc = dev[dev.variable == "station_index"]
    e = dev[(dev.variable == "e_mwh") & dev.entity.isin([t.name for t in case.trains])]
    cap = {t.name: max(float(plan.et_mwh[k].max()), 1e-9) for k, t in enumerate(case.trains)}
    soc = (e.a / e.entity.map(cap)) if len(e) else pd.Series(dtype=float)
    summaries = [{
        "model": case.name, "policy": "central", "trains": len(case.trains),
        "objective": "total cost (USD): thermal operating + transport",
        "objective_planned": plan.total_cost, "objective_simulated": sim.summary["total_cost"],
        "off_plan_steps": int((loc.a > 0.5).sum()),
        "max_abs_soc_diff": float(soc.max()) if len(soc) else 0.0,
        "max_abs_energy_diff": float(dev[dev.variable == "e_mwh"].a.max()) if len(dev) else 0.0,
        "energy_unit": "MWh", "violations": _counts(viol)}]
    tables = {k: sim.tables[k] for k in ("trains", "stations", "grid", "units", "failures")}
    info = {"case": case.name, "T_h": case.T, "delays_min": delays,
            "soc_note": "train SOC difference relative to the train's largest planned energy"}
    return _finish("tsn", run_dir, out, seed, meta, pvs, viol, summaries, tables, info)
