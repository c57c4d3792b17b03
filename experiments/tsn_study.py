"""The seed-001 study (``mescosim run tsn-ieee30`` / ``tsn-ieee118``): MODELS.md B.13-B.14.

From the run itself it produces:

* the M1-M3 (case 1) or M4-M6 (case 2) table: operating cost, transport cost, wind utilisation
  (46), economic indicator (47), storage utilisation (48), with the paper's numbers beside them;
* the line-rating sweep (the paper's Fig. 7) and the transport-cost sweep (train-hours against
  ``c_h``);
* the OCD runs (literal, enhanced and the further levers) against the centralised optimum, with
  the UB/LB convergence (Fig. 10);
* the centralised MES plan run as a policy in the train co-simulation (trains on the rail graph,
  a DC and an AC power flow every hour): what the DC plan did not see (AC overloads,
  voltages), and how closely the simulation followed the plan;
* ``report.md`` with the tables, the figures and the expected directions with verdicts.

The output directory is a run directory like :func:`experiments.run.write_run`'s: every table
Parquet (written as soon as it is finished), ``figures/*.png``, ``report.md`` and ``meta.json``
(config, seed, versions, git hash, wall time, summary; ``status`` is ``partial`` until
everything is written, then ``complete``).

Every solve is recorded with its status, gap, bound and times; a time-limited solve is never
reported as optimal.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.run import atomic_parquet, git_hash, versions, write_meta
from experiments.tsn_config import TsnStudyConfig
from experiments.tsn_sim import simulate
from grids.transmission import build_case
from policies.ocd import OcdOptions, OcdResult, run_ocd
from policies.tsn_milp import TsnOptions, TsnPlan, plan_flows_mw, solve_case
from policies.tsn_policies import FixedPlanPolicy, paths_from_central_model
from sim.tsn import TransmissionCase

VARIANTS = ("none", "mes", "ses_distributed", "ses_central")
METHOD = {"ieee30": {"mes": "M1", "ses_distributed": "M2", "ses_central": "M3"},
          "ieee118": {"mes": "M4", "ses_distributed": "M5", "ses_central": "M6"}}
# B.14 [S]: operating cost USD, transport cost USD, R_w %, I_econ USD/MW, U_ES %
PAPER = {
    "M1": (14074.57, 120.0, 66.12, 8.84, 28.80), "M2": (14337.89, None, 59.31, 5.91, 24.59),
    "M3": (14806.69, None, 49.18, 0.70, 6.47), "M4": (3.99e6, 4800.0, 34.75, 102.13, 27.72),
    "M5": (4.02e6, None, 20.70, 25.33, 10.89), "M6": (4.03e6, None, 19.91, 0.0, 7.18),
}
PAPER_OCD = {"ieee30": (14090.17, 14074.57), "ieee118": (4.00e6, 3.99e6)}  # (OCD, central)


@dataclass
class TsnStudyResult:
    cfg: TsnStudyConfig
    out_dir: Path
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Path] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    wall_s: float = 0.0
    cosim: dict = field(default_factory=dict)  # summary of the MES plan's co-simulation
    created_utc: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


def _opts(cfg: TsnStudyConfig) -> TsnOptions:
    s = cfg.solver
    return TsnOptions(solver=s.solver, time_limit_s=s.time_limit_s, mip_gap=s.mip_gap,
                      pwl_segments=s.pwl_segments, mode_binaries=s.mode_binaries)


def _case(cfg: TsnStudyConfig, variant: str, **extra) -> tuple[TransmissionCase, object]:
    kw = dict(cfg.case.overrides)
    for key, value in extra.items():
        if key == "line_rating_overrides_mw":
            value = {**kw.get(key, {}), **value}
        kw[key] = value
    return build_case(cfg.case.name, variant, **kw)


def plan_row(case: TransmissionCase, plan: TsnPlan, f0: float | None) -> dict:
    o = plan.outcome
    c_tot = case.storage_power_mw
    econ = (f0 - plan.operating_cost) / c_tot if (f0 is not None and c_tot) else None
    return {"operating_cost_usd": plan.operating_cost, "transport_cost_usd": plan.transport_cost,
            "total_cost_usd": plan.total_cost,
            "wind_util_pct": plan.wind_utilisation_pct(case),
            "i_econ_usd_per_mw": econ,
            "storage_util_pct": (plan.storage_utilisation_pct(case) if c_tot else None),
            "train_hours": plan.train_hours(), "status": o.status, "gap": o.gap,
            "bound_usd": o.bound, "build_s": o.build_s, "solve_s": o.solve_s,
            "line_rows": plan.line_rows, "line_rounds": plan.line_rounds}


def _say(progress, msg: str) -> None:
    if progress:
        progress(msg)


def run_tsn_study(cfg: TsnStudyConfig, out_dir: str | Path, figures: bool = True,
                  progress=None) -> TsnStudyResult:
    t_start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    res = TsnStudyResult(cfg, out)
    opt = _opts(cfg)
    name = cfg.case.name
    _write_meta(res, partial=True)

    # ------------------------------------------------------------ M1-M3 / M4-M6 and F0
    plans: dict[str, TsnPlan] = {}
    cases: dict[str, TransmissionCase] = {}
    nets: dict[str, object] = {}
    for var in VARIANTS:
        case, net = _case(cfg, var)
        plan, model = solve_case(case, opt)
        plans[var], cases[var], nets[var] = plan, case, net
        if var == "mes":
            mes_paths = paths_from_central_model(model, case) if plan.has_solution else None
        _say(progress, f"  {var}: {plan.outcome.status}, cost {plan.total_cost:,.2f} USD, "
                       f"{plan.outcome.solve_s:.1f} s")
    f0 = plans["none"].operating_cost if plans["none"].has_solution else None
    rows = []
    for var in VARIANTS:
        m = METHOD[name].get(var, "no storage")
        row = {"method": m, "variant": var, **plan_row(cases[var], plans[var], f0)}
        paper = PAPER.get(m)
        if paper:
            row.update(zip(("paper_operating_cost_usd", "paper_transport_cost_usd",
                            "paper_wind_util_pct", "paper_i_econ_usd_per_mw",
                            "paper_storage_util_pct"), paper))
        rows.append(row)
    res.tables["methods"] = pd.DataFrame(rows)
    if mes_paths is not None:  # the plan a replay follows (`mescosim replay`)
        res.tables["plans"], res.tables["plan_paths"] = plan_tables(
            cases["mes"], plans["mes"], mes_paths)
    res.tables["routes"] = _routes_table(cases["mes"], plans["mes"])
    res.tables["dispatch"] = _dispatch_table(cases["mes"], plans["mes"])
    _checkpoint(res)

    # ------------------------------------------------------------ hourly DC + AC check
    _say(progress, "  the MES plan in the train co-simulation: DC and AC power flow every hour")
    if mes_paths is not None:
        res.tables["ac_check"], res.cosim = ac_check(cases["mes"], nets["mes"], plans["mes"],
                                                     mes_paths, cfg)
    else:
        res.tables["ac_check"] = pd.DataFrame(columns=["hour", "status"])
    _checkpoint(res)

    # ------------------------------------------------------------ OCD against centralised
    central = plans["mes"]
    ocd_rows, hist_rows = [], []
    for run in cfg.ocd.runs:
        o = OcdOptions(variant=run.variant, mobility=run.mobility,
                       request_candidates=run.request_candidates, polish=run.polish,
                       rho0=run.rho0, max_iter=run.max_iter, eps=run.eps,
                       stall_iters=run.stall_iters,
                       power=TsnOptions(solver=opt.solver, time_limit_s=cfg.ocd.power_time_limit_s,
                                        mip_gap=cfg.ocd.power_gap,
                                        pwl_segments=opt.pwl_segments,
                                        mode_binaries=opt.mode_binaries))
        r: OcdResult = run_ocd(cases["mes"], o)
        rel = (r.ub - central.total_cost) / central.total_cost if central.has_solution else None
        mobility = run.mobility if run.variant == "enhanced" else "none"
        ocd_rows.append({"run": run.label, "variant": run.variant, "mobility": mobility,
                         "request_candidates": run.request_candidates, "polish": run.polish,
                         "ub_usd": r.ub, "lb_usd": r.lb, "ocd_gap": r.gap,
                         "central_usd": central.total_cost,
                         "central_status": central.outcome.status,
                         "rel_gap_vs_central": rel, "iterations": r.iterations,
                         "stop_reason": r.stop_reason, "routes_evaluated": len(r.evaluated),
                         "total_s": r.total_s,
                         "s_per_iteration": r.total_s / max(r.iterations, 1)})
        for h in r.history:
            hist_rows.append({"run": run.label, "iteration": h.v, "lb_v_usd": h.lb_v,
                              "lb_usd": h.lb, "ub_usd": h.ub, "step": h.step, "rho": h.rho,
                              "g_norm2": h.g_norm2, "routes_in_rs": h.routes_in_rs,
                              "phi_p_status": h.phi_p_status, "power_s": h.power_s,
                              "transport_s": h.transport_s, "ub_s": h.ub_s})
        _say(progress, f"  OCD {run.label}: UB {r.ub:,.2f}, "
                       f"{100 * (rel or 0):+.3f} % vs central, {r.iterations} it, "
                       f"{r.stop_reason}, {r.total_s:.1f} s")
    res.tables["ocd"] = pd.DataFrame(ocd_rows)
    res.tables["ocd_history"] = pd.DataFrame(hist_rows)
    _checkpoint(res)

    # ------------------------------------------------------------ sweeps
    sw = cfg.sweeps
    rows = []
    for rating in sw.line_ratings_mw:
        for var in VARIANTS:
            case, _ = _case(cfg, var, line_rating_overrides_mw={sw.line: rating})
            plan, _ = solve_case(case, opt)
            f0r = None
            rows.append({"line": sw.line, "rating_mw": rating, "variant": var,
                         "method": METHOD[name].get(var, "no storage"),
                         **plan_row(case, plan, f0r)})
            _say(progress, f"  {sw.line} = {rating:g} MW, {var}: {plan.outcome.status}, "
                           f"{plan.total_cost:,.2f} USD")
    res.tables["line_sweep"] = pd.DataFrame(rows)
    _checkpoint(res)
    rows = []
    for c_h in sw.transport_costs_per_h:
        case, _ = _case(cfg, "mes", transport_cost_per_h=c_h)
        plan, _ = solve_case(case, opt)
        rows.append({"transport_cost_per_h": c_h, **plan_row(case, plan, f0)})
        _say(progress, f"  c_h = {c_h:g} USD/h: {plan.train_hours():g} train-hours, "
                       f"{plan.outcome.status}")
    res.tables["transport_sweep"] = pd.DataFrame(rows)
    _checkpoint(res)

    res.summary = summarise(res)
    if figures:
        from experiments import tsn_figures

        res.figures = tsn_figures.all_figures(res.tables, cfg, out / "figures")
    res.wall_s = time.perf_counter() - t_start
    write_report(res)
    _write_meta(res, partial=False)
    return res


PLAN_ARRAYS = ("p_mw", "u", "wind_mw", "pch_mw", "pdis_mw", "cs_mw", "es_mwh", "ct_mw", "et_mwh",
               "w", "fch_mw", "fdis_mw", "fe_mwh")
PLAN_SCALARS = ("operating_cost", "operating_cost_quadratic", "transport_cost", "line_rows",
                "line_rounds", "max_overload_mw")


def plan_tables(case: TransmissionCase, plan: TsnPlan, paths: list
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The centralised MES plan as two tidy tables, ``plans.parquet`` (``policy, array, i, j,
    t, value, text``: every array of :class:`policies.tsn_milp.TsnPlan` element by element -
    ``i`` the unit/station/train, ``j`` the station of the connections ``w``, ``t`` the hour -,
    its scalars, its solve outcome and each array's shape, ``<array>.shape``) and
    ``plan_paths.parquet`` (``train, k, i, t0, j, t1``: each train's arcs on the time-space
    network), from which a replay rebuilds the plan."""
    rows = []
    for name in PLAN_ARRAYS:
        a = np.asarray(getattr(plan, name), dtype=float)
        rows.append(("central", f"{name}.shape", -1, -1, -1, float("nan"),
                     ",".join(str(n) for n in a.shape)))
        for idx in np.ndindex(a.shape):
            i, j, tt = (idx[0], idx[1], idx[2]) if a.ndim == 3 else (idx[0], -1, idx[1])
            rows.append(("central", name, int(i), int(j), int(tt), float(a[idx]), ""))
    for name in PLAN_SCALARS:
        rows.append(("central", name, -1, -1, -1, float(getattr(plan, name)), ""))
    o = plan.outcome
    for name in ("objective", "bound", "gap", "build_s", "solve_s"):
        v = getattr(o, name)
        rows.append(("central", f"outcome.{name}", -1, -1, -1,
                     float(v) if v is not None else float("nan"), ""))
    for name in ("status", "solver", "message"):
        rows.append(("central", f"outcome.{name}", -1, -1, -1, float("nan"), str(getattr(o, name))))
    for name in ("case_name", "kind"):
        rows.append(("central", name, -1, -1, -1, float("nan"), str(getattr(plan, name))))
    table = pd.DataFrame(rows, columns=["policy", "array", "i", "j", "t", "value", "text"])
    arcs = [(case.trains[k].name, k, *map(int, arc)) for k, p in enumerate(paths) for arc in p]
    return table, pd.DataFrame(arcs, columns=["train", "k", "i", "t0", "j", "t1"])


def _routes_table(case: TransmissionCase, plan: TsnPlan) -> pd.DataFrame:
    so = plan.station_of()
    rows = []
    for k, tr in enumerate(case.trains):
        for t in range(case.T):
            st = so[k, t]
            rows.append({"train": tr.name, "hour": t + 1,
                         "station": case.stations[st].name if st >= 0 else "",
                         "c_mw": plan.ct_mw[k, t + 1], "e_mwh": plan.et_mwh[k, t + 1]})
    return pd.DataFrame(rows)


def _dispatch_table(case: TransmissionCase, plan: TsnPlan) -> pd.DataFrame:
    rows = []
    for t in range(case.T):
        rows.append({"hour": t + 1, "load_mw": float(case.total_load_mw[t]),
                     "thermal_mw": float(plan.p_mw[:, t].sum()),
                     "units_on": int(plan.u[:, t].sum()),
                     "wind_mw": float(plan.wind_mw[:, t].sum()),
                     "wind_avail_mw": float(sum(w.p_avail_mw[t] for w in case.wind)),
                     "storage_dis_mw": float(plan.pdis_mw[:, t].sum() + plan.fdis_mw[:, t].sum()),
                     "storage_ch_mw": float(plan.pch_mw[:, t].sum() + plan.fch_mw[:, t].sum()),
                     **{f"station_e_mwh_{s.name}": plan.es_mwh[i, t + 1]
                        for i, s in enumerate(case.stations)},
                     **{f"station_c_mw_{s.name}": plan.cs_mw[i, t + 1]
                        for i, s in enumerate(case.stations)}})
    return pd.DataFrame(rows)


def ac_check(case: TransmissionCase, net, plan: TsnPlan, paths: list, cfg: TsnStudyConfig
             ) -> tuple[pd.DataFrame, dict]:
    """The plan run as a policy in the train co-simulation (:func:`experiments.tsn_sim.simulate`:
    trains travel the rail graph in SimPy and exchange with the stations, pandapower runs a DC
    and an AC power flow every hour), reported per hour: what the DC plan did not see (AC-only
    overloads, buses out of band), and how closely the simulation followed the plan (its DC
    flows against the plan's PTDF flows, its states against the plan's). Returns the table and
    the co-simulation's summary."""
    pol = FixedPlanPolicy(plan, paths, info={"planner": "study central MES plan"})
    sim = simulate(case, net, pol, np.random.default_rng(cfg.scenario.seed),
                   vm_min_pu=cfg.check.vm_min_pu, vm_max_pu=cfg.check.vm_max_pu,
                   degradation=cfg.trains.degradation)
    g = sim.tables["grid"].set_index("hour")
    br = sim.tables["branches"]
    pvs = sim.tables["plan_vs_sim_hourly"].set_index("time_min")
    fails = sim.tables["failures"]
    flows = plan_flows_mw(case, plan)
    order = {n: j for j, n in enumerate(case.line_names)}

    def names(x) -> set[str]:
        return {n for n in str(x).split(";") if n and n != "nan"}

    rows = []
    for t in range(case.T):
        gr = g.loc[t] if t in g.index else None
        b = br[br.time_min == 60 * t]
        dc = np.full(len(case.line_names), np.nan)
        dc[[order[n] for n in b.branch]] = b.dc_flow_mw.to_numpy()
        dc_over = names(gr.overloaded_dc) if gr is not None else set()
        ac_over = names(gr.overloaded_ac) if gr is not None else set()
        dev = pvs.loc[60 * (t + 1)] if 60 * (t + 1) in pvs.index else None
        rows.append({"hour": t + 1, "status": gr.status if gr is not None else "missing",
                     "dc_converged": bool(gr.converged_dc) if gr is not None else False,
                     "ac_converged": bool(gr.converged_ac) if gr is not None else False,
                     "dc_max_loading_pct": float(gr.get("max_dc_loading_pct", np.nan)),
                     "ac_max_loading_pct": float(gr.get("max_ac_loading_pct", np.nan)),
                     "dc_overloads": ", ".join(sorted(dc_over)),
                     "ac_overloads": ", ".join(sorted(ac_over)),
                     "ac_only_overloads": ", ".join(sorted(ac_over - dc_over)),
                     "vm_min_pu": float(gr.get("vm_min_pu", np.nan)),
                     "vm_max_pu": float(gr.get("vm_max_pu", np.nan)),
                     "buses_out_of_band": int(gr.get("n_voltage_violations", 0) or 0),
                     "ac_losses_mw": float(gr.get("ac_losses_mw", np.nan)),
                     "dc_vs_plan_ptdf_max_diff_mw": float(np.nanmax(np.abs(dc - flows[t])))
                     if np.isfinite(dc).any() else float("nan"),
                     "sim_vs_plan_max_dev_c_mw": float(dev.max_abs_dev_c_mw)
                     if dev is not None else float("nan"),
                     "sim_vs_plan_max_dev_e_mwh": float(dev.max_abs_dev_e_mwh)
                     if dev is not None else float("nan"),
                     "trains_off_plan": int(pvs.loc[60 * t, "location_mismatches"])
                     if 60 * t in pvs.index else 0,
                     "sim_failures": int((fails.time_min == 60 * t).sum()),
                     "message": str(gr.get("message", "")) if gr is not None else ""})
    return pd.DataFrame(rows), sim.summary


def summarise(res: TsnStudyResult) -> dict:
    t = res.tables
    m = t["methods"].set_index("variant")
    out: dict = {"case": res.cfg.case.name}
    out["costs_usd"] = {v: float(m.at[v, "total_cost_usd"]) for v in m.index}
    cost = out["costs_usd"]
    out["directions"] = {
        "mes < ses_distributed": cost["mes"] < cost["ses_distributed"],
        "ses_distributed < ses_central": cost["ses_distributed"] < cost["ses_central"],
        "wind utilisation highest with MES": bool(
            m.at["mes", "wind_util_pct"] >= m[["wind_util_pct"]].drop("none").max().iloc[0]
            - 1e-9),
        "storage utilisation highest with MES": bool(
            m.at["mes", "storage_util_pct"]
            >= m["storage_util_pct"].drop("none").max() - 1e-9),
    }
    ts = t.get("transport_sweep")
    if ts is not None and len(ts) > 1:
        h = ts.sort_values("transport_cost_per_h")["train_hours"].to_numpy()
        out["directions"]["train-hours fall as transport cost rises"] = bool(
            np.all(np.diff(h) <= 1e-9) and h[0] > h[-1])
    ocd = t.get("ocd")
    if ocd is not None and len(ocd):
        out["ocd"] = ocd[["run", "rel_gap_vs_central", "iterations", "stop_reason",
                          "total_s"]].to_dict("records")
    ac = t["ac_check"]
    if "ac_only_overloads" in ac:
        c = res.cosim
        out["ac_check"] = {
            "through": "co-simulation (trains on the rail graph, hourly DC + AC power flow)",
            "ac_only_overload_hours": int((ac.ac_only_overloads != "").sum()),
            "ac_only_overload_branch_hours": int(c.get("ac_only_overload_branch_hours", 0)),
            "ac_only_overload_branches": list(c.get("ac_only_overload_branches", [])),
            "max_ac_loading_pct": float(ac.ac_max_loading_pct.max()),
            "dc_overload_hours": int((ac.dc_overloads != "").sum()),
            "voltage_problem_hours": int((ac.buses_out_of_band > 0).sum()),
            "ac_nonconverged_hours": int((~ac.ac_converged).sum()),
            "max_dc_vs_plan_ptdf_diff_mw": float(ac.dc_vs_plan_ptdf_max_diff_mw.max()),
            "max_sim_vs_plan_dev_e_mwh": float(ac.sim_vs_plan_max_dev_e_mwh.max()),
            "sim_failures": int(ac.sim_failures.sum())}
        if res.cfg.trains.degradation.model != "none":
            out["ac_check"]["train_soh_end_frac"] = dict(c.get("train_soh_end_frac", {}))
    else:
        out["ac_check"] = {"through": "not run: the MES plan has no solution"}
    statuses = list(t["methods"].status)
    out["all_central_optimal"] = all(s == "optimal" for s in statuses)
    return out


def _checkpoint(res: TsnStudyResult) -> None:
    """Write every finished table now (Parquet, atomically), so an interrupted study keeps its
    work."""
    for key, df in res.tables.items():
        atomic_parquet(df, res.out_dir / f"{key}.parquet")


def _write_meta(res: TsnStudyResult, partial: bool) -> None:
    """``meta.json`` of the run directory (:func:`experiments.run.write_meta`): ``status`` is
    ``partial`` until every table, figure and the report are written, then ``complete``."""
    meta = {"scenario": res.cfg.scenario.name, "case": res.cfg.case.name,
            "seed": res.cfg.scenario.seed, "status": "partial" if partial else "complete",
            "versions": versions(), "git": git_hash(), "created_utc": res.created_utc,
            "wall_s": res.wall_s, "config": res.cfg.model_dump(mode="json"),
            "summary": res.summary,
            "tables": sorted(f"{k}.parquet" for k in res.tables),
            "figures": [f"figures/{p.name}" for p in res.figures.values()]}
    if not partial:
        _checkpoint(res)
    write_meta(res.out_dir, meta)


def _fmt(x, nd=2) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return f"{x:,}"
    return f"{x:,.{nd}f}"


def md(df: pd.DataFrame, cols: list[str], nd: int = 2) -> str:
    head = "| " + " | ".join(cols) + " |"
    sep = "|" + "---|" * len(cols)
    body = ["| " + " | ".join(_fmt(r[c], nd) if not isinstance(r[c], str) else r[c]
                              for c in cols) + " |" for _, r in df.iterrows()]
    return "\n".join([head, sep, *body])


def write_report(res: TsnStudyResult) -> Path:
    cfg, t, s = res.cfg, res.tables, res.summary
    name = cfg.case.name
    lines = [f"# {cfg.scenario.name}: battery trains on a TSN with UC ({name})", "",
             f"{cfg.scenario.description}", "",
             f"Reproduce: `mescosim run {cfg.scenario.name}`. Wall time {res.wall_s:.0f} s. "
             "Every number below comes from this run. The network, loads and costs are "
             "MATPOWER's with the documented [P] defaults of MODELS.md B.14 (see "
             "`grids/transmission.py`), not the paper's unpublished data, so compare "
             "directions, not levels.", "",
             "## Operating cost, transport cost and indicators (paper's Table III/V)", "",
             md(t["methods"].assign(gap_pct=100 * t["methods"].gap),
                ["method", "variant", "operating_cost_usd", "transport_cost_usd",
                 "wind_util_pct", "i_econ_usd_per_mw", "storage_util_pct", "status", "gap_pct",
                 "solve_s"]), "",
             "Paper (same columns):", ""]
    for v in ("mes", "ses_distributed", "ses_central"):
        m = METHOD[name][v]
        p = PAPER[m]
        lines.append(f"- {m} ({v}): {_fmt(p[0])}, {_fmt(p[1])}, {p[2]}, {p[3]}, {p[4]}")
    lines += ["", "I_econ (47) uses F0 = the operating cost without storage (row `none`).", "",
              "## Directions", ""]
    for k, v in s["directions"].items():
        lines.append(f"- {k}: {'yes' if v else '**no**'}")
    cost = s["costs_usd"]
    diff = cost["ses_central"] - cost["ses_distributed"]
    if abs(diff) <= 1e-6 * abs(cost["ses_central"]):
        lines += ["", "Distributed and centralised SES cost the same here (difference "
                  f"{diff:.2e} USD). When the wind line is at its rating every hour, a store at "
                  "the wind bus cannot export what it absorbs, so both layouts can only shift "
                  "thermal output in time, and they do it equally; only trains carry energy past "
                  "the congested line. The paper's strict ordering needs spare line capacity "
                  "in some hours (see the line sweep)."]
    if cost["mes"] >= cost["ses_distributed"]:
        lines += ["", "MES is not cheaper than distributed SES here: the stations hold 2 h of "
                  "energy per MW (gamma) against the SES's 4 h, and without congestion moving "
                  "capacity buys little."]
    if "ocd" in t and len(t["ocd"]):
        po, pc = PAPER_OCD[name]
        lines += ["", "## OCD against the centralised MILP", "",
                  md(t["ocd"], ["run", "variant", "mobility", "request_candidates", "polish",
                                "ub_usd", "lb_usd", "rel_gap_vs_central", "iterations",
                                "stop_reason", "total_s"], nd=4), "",
                  f"Paper: OCD {po:,.2f} vs centralised {pc:,.2f} "
                  f"({100 * (po - pc) / pc:.2f} %).",
                  "`lb_usd` comes from the power MILP's dual bound, so it is a valid bound; "
                  "`rel_gap_vs_central` is (UB - centralised) / centralised."]
    ac, sa = t["ac_check"], s["ac_check"]
    if "ac_only_overloads" in ac:
        lines += ["", "## What the DC plan did not see (the MES plan in the co-simulation)", "",
                  "The centralised MES plan is run as a policy in the train co-simulation: "
                  "trains travel the rail graph in SimPy and exchange with the stations, and "
                  "pandapower runs a DC and an AC power flow of every hour.", "",
                  md(ac, ["hour", "dc_max_loading_pct", "ac_max_loading_pct", "dc_overloads",
                          "ac_only_overloads", "vm_min_pu", "vm_max_pu", "buses_out_of_band",
                          "ac_losses_mw", "dc_vs_plan_ptdf_max_diff_mw"], nd=3), "",
                  f"AC-only overload hours: {sa['ac_only_overload_hours']} "
                  f"({sa['ac_only_overload_branch_hours']} branch-hours on "
                  f"{', '.join(sa['ac_only_overload_branches']) or 'no branch'}; "
                  f"max AC loading {sa['max_ac_loading_pct']:.1f} %); hours with buses "
                  f"outside [{cfg.check.vm_min_pu}, {cfg.check.vm_max_pu}] p.u.: "
                  f"{sa['voltage_problem_hours']}; AC not converged: "
                  f"{sa['ac_nonconverged_hours']}. The simulation's DC flows differ from the "
                  f"plan's PTDF flows by at most {sa['max_dc_vs_plan_ptdf_diff_mw']:.2e} MW and "
                  f"its states from the plan's by {sa['max_sim_vs_plan_dev_e_mwh']:.2e} MWh "
                  f"({sa['sim_failures']} recorded failures). The UC model is MW-only (DC "
                  "PTDF): reactive flows, losses and voltages are outside it."]
    else:
        lines += ["", "## What the DC plan did not see", "", sa["through"]]
    if len(t.get("line_sweep", [])):
        ls = t["line_sweep"]
        wide = ls.pivot_table(index="rating_mw", columns="variant",
                              values="total_cost_usd").reset_index()
        wide.columns = [str(c) for c in wide.columns]
        wr = ls.pivot_table(index="rating_mw", columns="variant",
                            values="wind_util_pct").reset_index()
        wr.columns = [str(c) if c == "rating_mw" else f"R_w {c}" for c in wr.columns]
        st = ls[ls.variant == "mes"].assign(gap_pct=100 * ls.gap)[
            ["rating_mw", "status", "gap_pct"]].rename(
            columns={"status": "mes status", "gap_pct": "mes gap %"})
        wide = wide.merge(wr, on="rating_mw").merge(st, on="rating_mw")
        lines += ["", f"## Sweep of {cfg.sweeps.line} rating (paper's Fig. 7), total cost USD "
                      "and wind utilisation %", "", md(wide, list(wide.columns))]
    if len(t.get("transport_sweep", [])):
        lines += ["", "## Transport cost against train-hours", "",
                  md(t["transport_sweep"], ["transport_cost_per_h", "train_hours",
                                            "transport_cost_usd", "total_cost_usd", "status"])]
    if res.figures:
        lines += ["", "## Figures", ""]
        for key, path in res.figures.items():
            lines.append(f"![{key}](figures/{path.name})")
    path = res.out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def print_summary(res: TsnStudyResult) -> None:
    t = res.tables["methods"]
    with pd.option_context("display.width", 140, "display.max_columns", 20,
                           "display.float_format", "{:,.2f}".format):
        print(t[["method", "variant", "operating_cost_usd", "transport_cost_usd",
                 "wind_util_pct", "i_econ_usd_per_mw", "storage_util_pct", "status",
                 "solve_s"]].to_string(index=False))
        if len(res.tables.get("ocd", [])):
            print()
            print(res.tables["ocd"][["run", "ub_usd", "lb_usd", "rel_gap_vs_central",
                                     "iterations", "stop_reason", "total_s"]]
                  .to_string(index=False))
    print("\ndirections:", ", ".join(f"{k}: {'yes' if v else 'NO'}"
                                     for k, v in res.summary["directions"].items()))
    print(f"wrote {res.out_dir}/ (report.md, {len(res.tables)} tables, "
          f"{len(res.figures)} figures) in {res.wall_s:.0f} s")


def cli_run(cfg: TsnStudyConfig, out: str | Path | None, figures: bool = True) -> int:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(out) if out else Path("runs") / f"{cfg.scenario.name}-{stamp}"
    print(f"tsn study {cfg.scenario.name}: writing {out}/ (progress on stderr)", flush=True)
    res = run_tsn_study(cfg, out, figures=figures,
                        progress=lambda line: print(line, file=sys.stderr, flush=True))
    print_summary(res)
    return 0
