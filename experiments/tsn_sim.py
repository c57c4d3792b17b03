"""Seed-001 co-simulation: a ``uc-milp`` or ``ocd`` plan run in the SimPy engine with trains on
the rail graph and an hourly DC + AC power flow of the dispatch (MODELS.md part B, issue 4).

:func:`simulate` wires a :class:`sim.tsn.TransmissionCase` and its pandapower net (from
:func:`grids.transmission.build_case`), a policy, the trains (:mod:`agents.train`), the stations
and grid site (:mod:`grids.tsn_site`) and the engine (:mod:`sim.engine` running a
:class:`sim.systems.TransmissionSystem`), and returns a
:class:`TsnSimResult` of tidy tables:

* ``trains``: per time point (start of each hour and the end ``T``): station or transit, C, E,
  and the battery's state of health ``soh_frac`` (1.0 under the default ageing model ``none``);
* ``stations``: per time point C, E, and the hour's applied ``pch_mw`` / ``pdis_mw``;
* ``grid``: per hour DC/AC convergence, max DC and AC loading, overloaded branches in DC and in
  AC, ``vm_min_pu`` / ``vm_max_pu`` and buses out of band, AC losses, slack powers;
* ``branches`` / ``buses``: per hour and branch DC and AC loading; per hour and bus voltage;
* ``plan_vs_sim``: per time point and entity the plan's and the simulation's C / E (and per hour
  the station powers and train locations), with the deviation;
* ``dc_blind``: what the DC plan did not see: branches overloaded in AC but not in DC, and buses
  outside the voltage band, per hour;
* ``events``, ``failures``: the engine's event log and recorded failures (with status).

Run from the shell::

    python -m experiments.tsn_sim --case ieee30 --policy uc-milp --hours 24 --out runs/tsn30
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from agents.rail import rail_graph
from agents.train import TrainFleet, train_degradation
from experiments.config import DegradationConfig
from experiments.run import atomic_parquet, clear_out, git_hash, out_problems, versions, write_meta
from grids.transmission import build_case
from grids.tsn_site import TsnGridSite
from policies.registry import make_policy, names_for
from policies.tsn_milp import operating_cost
from sim.engine import Engine
from sim.errors import ScenarioError
from sim.recorder import Recorder
from sim.systems import TransmissionSystem
from sim.tsn import TransmissionCase

#: The registered policies that run on a transmission grid with trains.
TSN_SIM_POLICIES = tuple(names_for("transmission"))


def make_tsn_policy(name: str, **params):
    """A registered policy for the transmission system (ScenarioError naming what is wrong)."""
    return make_policy(name, "transmission", **params)


@dataclass
class TsnSimResult:
    tables: dict[str, pd.DataFrame]
    summary: dict
    policy_params: dict
    plan_info: dict
    timings: dict = field(default_factory=dict)
    seed: int | None = None  # of the generator the run was given, when the caller knows it

    def write(self, out_dir: str | Path) -> Path:
        """A run directory like :func:`experiments.run.write_run`'s: Parquet tables plus
        ``meta.json`` (seed, versions, git hash, summary, params, plan info, timings), written
        atomically; ``status`` is ``partial`` until every table is written, then
        ``complete``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        meta = {"seed": self.seed, "versions": versions(), "git": git_hash(),
                "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
                "wall_s": self.timings.get("wall_s"), "summary": self.summary,
                "policy_params": self.policy_params, "plan_info": self.plan_info,
                "timings": self.timings, "tables": sorted(f"{k}.parquet" for k in self.tables)}
        meta = json.loads(json.dumps(meta, default=_json_default))  # numpy scalars as numbers
        write_meta(out, {**meta, "status": "partial"})
        for name, df in self.tables.items():
            atomic_parquet(df, out / f"{name}.parquet")
        write_meta(out, {**meta, "status": "complete"})
        return out


def _json_default(x):
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    return str(x)


def build_engine(case: TransmissionCase, net, policy, rng: np.random.Generator | None = None,
                 delays_min: dict[str, dict[int, int]] | None = None,
                 degradation: DegradationConfig | None = None,
                 **site_options) -> tuple[Engine, TrainFleet, TsnGridSite]:
    """Trains on the rail graph, stations and the grid site, and the engine around them.
    ``delays_min`` (train -> {trip number: extra minutes}) delays trips without the policy
    knowing: a disturbance. ``degradation`` is every train's battery ageing model (default
    none); its SOH is the ``soh_frac`` column of the ``trains`` table."""
    rng = rng if rng is not None else np.random.default_rng(0)
    deg = degradation if degradation is not None else DegradationConfig()
    fleet = TrainFleet(case.trains, rail_graph(case), case.gamma_h, rng=rng,
                       delays_min=delays_min,
                       degradation=lambda spec: train_degradation(deg.model, spec, case.gamma_h,
                                                                  **deg.params))
    site = TsnGridSite(case, net, **site_options)
    engine = Engine(TransmissionSystem(case, fleet.trains, site), policy, rng, Recorder())
    return engine, fleet, site


def simulate(case: TransmissionCase, net, policy, rng: np.random.Generator | None = None,
             delays_min: dict[str, dict[int, int]] | None = None,
             degradation: DegradationConfig | None = None,
             **site_options) -> TsnSimResult:
    """Run ``policy`` on ``case`` for ``case.T`` hours; see the module docstring for tables."""
    t0 = time.perf_counter()
    engine, _, _ = build_engine(case, net, policy, rng, delays_min, degradation, **site_options)
    frames = engine.run().frames()
    vm_lo = site_options.get("vm_min_pu", 0.94)
    vm_hi = site_options.get("vm_max_pu", 1.06)
    lim = site_options.get("loading_max_pct", 100.0)
    tables = _tables(case, frames)
    plan = getattr(policy, "plan", None)
    tables["plan_vs_sim"] = plan_vs_sim(case, plan, tables) if plan is not None \
        else pd.DataFrame(columns=["time_min", "entity", "variable", "plan", "sim", "dev"])
    tables["plan_vs_sim_hourly"] = plan_vs_sim_hourly(tables["plan_vs_sim"])
    tables["dc_blind"] = dc_blind(tables["branches"], tables["buses"], vm_lo, vm_hi, lim)
    timings = {"policy_reset_s": engine.timings.policy_reset_s,
               "policy_s": engine.timings.policy_s, "grid_s": engine.timings.grid_s,
               "engine_total_s": engine.timings.total_s,
               "wall_s": time.perf_counter() - t0}
    summary = summarise(case, tables, getattr(policy, "name", type(policy).__name__),
                        engine.reset_ok)
    summary.update(run_cost(case, tables, getattr(policy, "pwl_segments", 8)))
    return TsnSimResult(tables, summary, policy.params() if hasattr(policy, "params") else {},
                        dict(getattr(policy, "plan_info", {})), timings)


# ---------------------------------------------------------------------------- tables
def _tables(case: TransmissionCase, f: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    def get(name, cols=()):
        df = f.get(name)
        return df.copy() if df is not None and len(df) else pd.DataFrame(columns=list(cols))

    trains = get("train_states", ("time_min", "train", "station", "status", "dest", "c_mw",
                                  "e_mwh", "soh_frac"))
    st = get("station_states", ("time_min", "station", "bus", "c_mw", "e_mwh"))
    sp = get("station_power", ("time_min", "station", "pch_mw", "pdis_mw"))
    if len(st):
        cols = [c for c in sp.columns if c not in ("bus", "e_start_mwh", "e_end_mwh")]
        st = st.merge(sp[cols], on=["time_min", "station"], how="left")
    for df in (trains, st):
        if len(df):
            df["hour"] = df.time_min // 60
    return {"trains": trains, "stations": st, "train_hours": get("train_hours"),
            "grid": get("grid"), "branches": get("branches"), "buses": get("buses"),
            "units": get("units", ("time_min", "hour", "unit", "on", "p_mw")),
            "events": get("events"), "failures": get("failures", ("time_min", "kind", "entity",
                                                                  "status", "message"))}


def run_cost(case: TransmissionCase, tables: dict[str, pd.DataFrame],
             pwl_segments: int = 8) -> dict:
    """What the simulated run cost (USD), from what was applied, costed as the plans are:
    thermal cost (PWL as in the MILP, and exact quadratic) with start-ups / shut-downs from the
    units table, and ``c_h`` per train-hour in transit from the train-hours table. Hours that
    were skipped (no decision) cost as if every unit were off; ``hours_without_decision``
    counts them."""
    G, T = len(case.units), case.T
    p, u = np.zeros((G, T)), np.zeros((G, T))
    un = tables.get("units")
    if un is not None and len(un):
        pos = {g.name: gi for gi, g in enumerate(case.units)}
        for row in un.itertuples(index=False):
            u[pos[row.unit], int(row.hour)] = float(row.on)
            p[pos[row.unit], int(row.hour)] = float(row.p_mw)
    op, quad = operating_cost(case, p, u, pwl_segments)
    th = tables.get("train_hours")
    transit = int((th.status == "transit").sum()) if th is not None and len(th) else 0
    transport = float(case.transport_cost_per_h * case.dt_h * transit)
    g = tables.get("grid")
    skipped = int((g.status == "no_decision").sum()) if g is not None and len(g) else T
    return {"operating_cost": op, "operating_cost_quadratic": quad,
            "transport_cost": transport, "total_cost": op + transport,
            "train_transit_hours": transit, "hours_without_decision": skipped}


def plan_vs_sim(case: TransmissionCase, plan, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Long table ``time_min, entity, variable, plan, sim, dev`` (dev = sim - plan).

    States (``c_mw``, ``e_mwh``) at the time points 0..T; station powers (``pch_mw``,
    ``pdis_mw``) per hour; train location per hour as ``station_index`` (-1 = in transit)."""
    rows = []
    tr = tables["trains"].set_index(["time_min", "train"]) if len(tables["trains"]) else None
    st = tables["stations"].set_index(["time_min", "station"]) if len(tables["stations"]) \
        else None
    for h in range(case.T + 1):
        tm = 60 * h
        for k, t in enumerate(case.trains):
            for var, arr in (("c_mw", plan.ct_mw), ("e_mwh", plan.et_mwh)):
                sim = float(tr.loc[(tm, t.name), var]) if tr is not None and \
                    (tm, t.name) in tr.index else math.nan
                rows.append((tm, t.name, var, float(arr[k, h]), sim))
        for i, s in enumerate(case.stations):
            pairs = [("c_mw", plan.cs_mw[i, h]), ("e_mwh", plan.es_mwh[i, h])]
            if h < case.T:
                pairs += [("pch_mw", plan.pch_mw[i, h]), ("pdis_mw", plan.pdis_mw[i, h])]
            for var, pv in pairs:
                sim = math.nan
                if st is not None and (tm, s.name) in st.index:
                    sim = float(st.loc[(tm, s.name), var])
                rows.append((tm, s.name, var, float(pv), sim))
    th = tables.get("train_hours")
    if th is not None and len(th):
        names = [s.name for s in case.stations]
        where = plan.station_of()
        thi = th.set_index(["hour", "train"])
        for h in range(case.T):
            for k, t in enumerate(case.trains):
                sim = math.nan
                if (h, t.name) in thi.index:
                    s_name = thi.loc[(h, t.name), "station"]
                    sim = float(names.index(s_name)) if s_name else -1.0
                rows.append((60 * h, t.name, "station_index", float(where[k, h]), sim))
    df = pd.DataFrame(rows, columns=["time_min", "entity", "variable", "plan", "sim"])
    df["dev"] = df.sim - df.plan
    return df


def plan_vs_sim_hourly(pvs: pd.DataFrame) -> pd.DataFrame:
    """Per time point: the largest |sim - plan| of capacity, energy and station power over all
    trains and stations, and how many trains are not where the plan has them."""
    cols = ["time_min", "max_abs_dev_c_mw", "max_abs_dev_e_mwh", "max_abs_dev_p_mw",
            "location_mismatches"]
    if not len(pvs):
        return pd.DataFrame(columns=cols)
    d = pvs.assign(abs_dev=pvs.dev.abs())
    piv = d.groupby(["time_min", "variable"]).abs_dev.max().unstack("variable")
    out = pd.DataFrame({"time_min": piv.index})
    out["max_abs_dev_c_mw"] = piv.get("c_mw", pd.Series(math.nan, piv.index)).to_numpy()
    out["max_abs_dev_e_mwh"] = piv.get("e_mwh", pd.Series(math.nan, piv.index)).to_numpy()
    p = pd.concat([piv.get("pch_mw", pd.Series(math.nan, piv.index)),
                   piv.get("pdis_mw", pd.Series(math.nan, piv.index))], axis=1).max(axis=1)
    out["max_abs_dev_p_mw"] = p.to_numpy()
    loc = d[d.variable == "station_index"].groupby("time_min").abs_dev.apply(
        lambda x: int((x > 0.5).sum()))
    out["location_mismatches"] = loc.reindex(piv.index, fill_value=0).to_numpy()
    return out[cols]


def dc_blind(branches: pd.DataFrame, buses: pd.DataFrame, vm_min_pu: float, vm_max_pu: float,
             loading_max_pct: float = 100.0) -> pd.DataFrame:
    """What the DC plan did not see, per hour: ``kind = "ac_only_overload"`` (AC loading above
    the limit, DC loading not) with the loadings and a ``cause`` (``"active_power"`` when the AC
    MW flow alone exceeds the rating, else ``"reactive_power"``: only the MVA does), and
    ``kind = "voltage"`` (bus outside ``[vm_min_pu, vm_max_pu]``, cause ``low`` / ``high``)."""
    cols = ["time_min", "kind", "element", "cause", "dc_loading_pct", "ac_loading_pct",
            "ac_p_loading_pct", "vm_pu"]
    parts = []
    tol = 1e-6
    if len(branches):
        b = branches[(branches.ac_loading_pct > loading_max_pct + tol)
                     & ~(branches.dc_loading_pct > loading_max_pct + tol)]
        # cause: the AC active power alone is above the limit ("active_power": the DC
        # approximation under-estimated the MW flow), or only the MVA is ("reactive_power")
        cause = np.where(b.ac_p_loading_pct > loading_max_pct + tol, "active_power",
                         "reactive_power")
        parts.append(pd.DataFrame({"time_min": b.time_min, "kind": "ac_only_overload",
                                   "element": b.branch, "cause": cause,
                                   "dc_loading_pct": b.dc_loading_pct,
                                   "ac_loading_pct": b.ac_loading_pct,
                                   "ac_p_loading_pct": b.ac_p_loading_pct, "vm_pu": math.nan}))
    if len(buses):
        v = buses[(buses.vm_pu < vm_min_pu) | (buses.vm_pu > vm_max_pu)]
        parts.append(pd.DataFrame({"time_min": v.time_min, "kind": "voltage",
                                   "element": v.bus.astype(str),
                                   "cause": np.where(v.vm_pu < vm_min_pu, "low", "high"),
                                   "dc_loading_pct": math.nan, "ac_loading_pct": math.nan,
                                   "ac_p_loading_pct": math.nan, "vm_pu": v.vm_pu}))
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=cols)
    return pd.concat(parts, ignore_index=True)[cols].sort_values(["time_min", "kind"],
                                                                 ignore_index=True)


def summarise(case: TransmissionCase, tables: dict[str, pd.DataFrame], policy_name: str,
              reset_ok: bool) -> dict:
    g, pvs, blind = tables["grid"], tables["plan_vs_sim"], tables["dc_blind"]
    tr, st = tables["trains"], tables["stations"]
    out: dict = {"case": case.name, "policy": policy_name, "T": case.T, "planned": reset_ok,
                 "failures": int(len(tables["failures"]))}
    if len(tr) and "soh_frac" in tr:
        last = tr.sort_values("time_min").groupby("train").soh_frac.last()
        out["train_soh_end_frac"] = {str(k): float(v) for k, v in last.items()}
    if len(tr) and len(st):
        total = (tr.groupby("time_min").c_mw.sum() + st.groupby("time_min").c_mw.sum())
        out["capacity_total_mw_min"] = float(total.min())
        out["capacity_total_mw_max"] = float(total.max())
    if len(pvs):
        for var in ("c_mw", "e_mwh", "pch_mw", "pdis_mw", "station_index"):
            d = pvs[pvs.variable == var].dev.abs()
            out[f"max_abs_dev_{var}"] = float(d.max()) if len(d) and d.notna().all() \
                else math.nan
    if len(g) and "converged_dc" in g:
        solved = g[g.status != "no_decision"]
        out["hours_simulated"] = int(len(solved))
        out["hours_dc_converged"] = int(solved.converged_dc.sum())
        out["hours_ac_converged"] = int(solved.converged_ac.sum())
        if "max_dc_loading_pct" in solved:
            out["max_dc_loading_pct"] = float(solved.max_dc_loading_pct.max())
            out["max_ac_loading_pct"] = float(solved.max_ac_loading_pct.max())
            out["hours_dc_overload"] = int((solved.n_overloaded_dc > 0).sum())
            out["hours_ac_overload"] = int((solved.n_overloaded_ac > 0).sum())
            out["vm_min_pu"] = float(solved.vm_min_pu.min())
            out["vm_max_pu"] = float(solved.vm_max_pu.max())
            out["hours_voltage_violation"] = int((solved.n_voltage_violations > 0).sum())
            out["ac_losses_mwh"] = float(solved.ac_losses_mw.sum())
            out["max_abs_dc_imbalance_mw"] = float(solved.dc_imbalance_mw.abs().max())
    ao = blind[blind.kind == "ac_only_overload"] if len(blind) else blind
    out["ac_only_overload_branch_hours"] = int(len(ao))
    out["ac_only_overload_branches"] = sorted(set(ao.element)) if len(ao) else []
    out["ac_only_overload_active_power_branch_hours"] = int((ao.cause == "active_power").sum()) \
        if len(ao) else 0
    if len(tables["branches"]):
        out["max_ac_p_loading_pct"] = float(tables["branches"].ac_p_loading_pct.max())
    vv = blind[blind.kind == "voltage"] if len(blind) else blind
    out["voltage_violation_bus_hours"] = int(len(vv))
    return out


# ---------------------------------------------------------------------------- CLI-ish entry
def run_tsn_sim(case_name: str = "ieee30", policy: str = "uc-milp", hours: int = 24,
                seed: int = 0, policy_params: dict | None = None,
                case_overrides: dict | None = None, **site_options) -> TsnSimResult:
    """Build the ``mes`` variant of ``case_name`` for ``hours`` hours and simulate ``policy``."""
    case, net = build_case(case_name, "mes", T=int(hours), **(case_overrides or {}))
    pol = make_tsn_policy(policy, **(policy_params or {}))
    res = simulate(case, net, pol, np.random.default_rng(seed), **site_options)
    res.seed = seed
    return res


#: The longest horizon ``tsn-sim`` takes (hours).
MAX_HOURS = 168


def flag_problems(a) -> tuple[list[str], dict[str, dict[int, int]]]:
    """Every problem with ``tsn-sim``'s flags, named by flag, before anything is built; and the
    parsed ``--delay`` values (train -> {trip: minutes})."""
    out: list[str] = []
    if not 1 <= a.hours <= MAX_HOURS:
        out.append(f"--hours: must be between 1 and {MAX_HOURS} (one week: the unit-commitment "
                   f"MILP grows with every hour), got {a.hours}")
    if a.replan_every_h < 0:
        out.append(f"--replan-every-h: must be >= 0 (0: plan once), got {a.replan_every_h}")
    if a.time_limit_s is not None and not (math.isfinite(a.time_limit_s) and a.time_limit_s > 0):
        out.append(f"--time-limit-s: must be a finite number of seconds > 0, got "
                   f"{a.time_limit_s:g}")
    if a.mip_gap is not None and not 0 < a.mip_gap < 1:
        out.append(f"--mip-gap: must be a relative gap between 0 and 1 (exclusive), got "
                   f"{a.mip_gap:g}")
    if a.ocd_max_iter is not None:
        if a.policy != "ocd":
            out.append(f"--ocd-max-iter: an option of --policy ocd, not {a.policy}")
        elif a.ocd_max_iter < 1:
            out.append(f"--ocd-max-iter: must be >= 1, got {a.ocd_max_iter}")
    if a.also_open_loop and a.off_units == "both":
        out.append("--also-open-loop: works with one --off-units mode, not both")
    delays: dict[str, dict[int, int]] = {}
    for d in a.delay:
        parts = d.split(":")
        if len(parts) != 3 or not parts[0] or not (parts[1].isdigit() and parts[2].isdigit()):
            out.append(f"--delay: expected TRAIN:TRIP:MIN with whole numbers, got {d!r}")
        elif int(parts[1]) < 1:
            out.append(f"--delay: trips are counted from 1, got {d!r}")
        else:
            delays.setdefault(parts[0], {})[int(parts[1])] = int(parts[2])
    return out, delays


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="mescosim tsn-sim", description=__doc__.split("\n\n")[0])
    ap.add_argument("scenario", nargs="?", default=None,
                    help="a tsn-study scenario (name or .toml): its case and overrides are used")
    ap.add_argument("--case", default="ieee30", choices=["ieee30", "ieee118"])
    ap.add_argument("--policy", default="uc-milp", choices=TSN_SIM_POLICIES)
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--time-limit-s", type=float, default=None)
    ap.add_argument("--mip-gap", type=float, default=None)
    ap.add_argument("--ocd-max-iter", type=int, default=None, help="OCD v_max (default 50)")
    ap.add_argument("--replan-every-h", type=int, default=0,
                    help="re-plan the rest of the day from the simulated state every k hours "
                         "(0: plan once)")
    ap.add_argument("--replan-on-deviation", action="store_true",
                    help="also re-plan when the simulation has left the plan")
    ap.add_argument("--delay", action="append", default=[], metavar="TRAIN:TRIP:MIN",
                    help="delay trip TRIP (1-based) of TRAIN by MIN minutes (a disturbance the "
                         "policy does not know); repeatable")
    ap.add_argument("--also-open-loop", action="store_true",
                    help="first follow the same initial plan without re-planning (open loop), "
                         "then with the --replan-* settings, and print both runs' outcome")
    ap.add_argument("--off-units", default="condenser",
                    choices=["condenser", "out_of_service", "both"])
    ap.add_argument("--out", default=None,
                    help="run directory (refused if it exists and holds files, unless "
                         "--overwrite)")
    ap.add_argument("--overwrite", action="store_true",
                    help="clear an earlier run directory given as --out before writing")
    a = ap.parse_args(argv)
    problems, delays = flag_problems(a)
    params: dict = {"replan_every_h": a.replan_every_h,
                    "replan_on_deviation": a.replan_on_deviation}
    if a.time_limit_s is not None:
        params["time_limit_s" if a.policy == "uc-milp" else "power_time_limit_s"] = a.time_limit_s
    if a.ocd_max_iter is not None:
        params["max_iter"] = a.ocd_max_iter
    if a.mip_gap is not None:
        params["mip_gap" if a.policy == "uc-milp" else "power_mip_gap"] = a.mip_gap
    case_name, overrides, degradation, source = a.case, {}, None, None
    if a.scenario:
        from experiments.config import resolve
        from experiments.tsn_config import load_tsn

        source = resolve(a.scenario)
        cfg = load_tsn(source)
        case_name, overrides = cfg.case.name, dict(cfg.case.overrides)
        degradation = cfg.trains.degradation
    problems += out_problems(a.out, source, a.overwrite, can_overwrite=True)
    if problems:
        raise ScenarioError(problems)
    overrides["T"] = int(a.hours)
    case, net = build_case(case_name, "mes", **overrides)
    trains = [t.name for t in case.trains]
    unknown = [f"--delay: no train {name!r} in case {case_name} (trains: {', '.join(trains)})"
               for name in delays if name not in trains]
    if unknown:
        raise ScenarioError(unknown)
    pol = make_tsn_policy(a.policy, keep_plan=True, **params)
    modes = ["condenser", "out_of_service"] if a.off_units == "both" else [a.off_units]
    loops = [False, True] if a.also_open_loop else [True]
    if a.out:
        clear_out(a.out)
    rolling = (pol.replan_every_h, pol.replan_on_deviation)
    outcome: dict = {}
    runs = [(m, r) for m in modes for r in loops]
    seed = 0  # the engine's generator (the tsn policies draw nothing from it), in meta.json
    for mode, closed in runs:  # one initial plan, kept by the policy (keep_plan)
        pol.replan_every_h, pol.replan_on_deviation = rolling if closed else (0, False)
        res = simulate(case, net, pol, np.random.default_rng(seed), delays_min=delays or None,
                       degradation=degradation, off_units=mode)
        res.seed = seed
        res.summary["off_units"] = mode
        label = "re-planned" if closed and any(rolling) else "plan once"
        s = res.summary
        outcome[label] = {k: s.get(k) for k in (
            "total_cost", "operating_cost", "transport_cost", "failures",
            "max_abs_dc_imbalance_mw", "hours_ac_overload", "max_ac_loading_pct")}
        outcome[label]["exchanges_refused"] = int(
            (res.tables["failures"].status == "exchange_refused").sum())
        outcome[label]["replans"] = len(res.plan_info.get("replans", []))
        print(json.dumps({"summary": res.summary, "timings": res.timings,
                          "plan_info": res.plan_info}, indent=2, default=_json_default))
        g = res.tables["grid"]
        if len(g) and "max_dc_loading_pct" in g:
            cols = ["hour", "status", "max_dc_loading_pct", "max_ac_loading_pct",
                    "overloaded_dc", "overloaded_ac", "vm_min_pu", "vm_max_pu",
                    "n_voltage_violations", "ac_losses_mw"]
            with pd.option_context("display.width", 200, "display.max_columns", 20):
                print(g[cols].round(3).to_string(index=False))
        if a.out:
            out = Path(a.out) / mode if len(modes) > 1 else Path(a.out)
            if a.also_open_loop:
                out = out / ("closed_loop" if closed else "open_loop")
            print(f"written to {res.write(out)}")
    if a.also_open_loop:
        print("\n" + pd.DataFrame(outcome).to_string())
    return 0


if __name__ == "__main__":  # pragma: no cover
    import sys

    try:
        raise SystemExit(main())
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
