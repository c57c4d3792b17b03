"""Replay the plan a run recorded through the engine, with the AC power flow at every step.

A planning policy (the rolling-horizon ``milp``) records every plan it made in the run's
``plan.parquet``: per plan step, vehicle and planned step, the site, the power and the energy at
the end of the step. The plan it *followed* is, for every vehicle and step, the row of the
latest plan made at or before that step. :func:`replay` turns that plan into a fixed timetable
(the ``schedule`` policy: a trip where the plan leaves a site, the planned power where it parks),
runs it open loop through the engine on the run's own scenario (its ``config.toml``), with the
run's seed or another one (another realisation of the load, PV, traffic and outages), and sets
the plan beside the simulation:

* ``plan_vs_sim.parquet``: per vehicle and step, planned and simulated site, power and energy;
* the summary (:class:`ReplaySummary`): steps where the vehicle is not where the plan has it,
  the largest energy difference, the system objective of the run against the replay's
  (accumulated SFI), and the violations the plan could not see (voltage bus-steps, overloaded
  line-steps, power flows that did not converge).

The replay directory is a run directory like any other (``config.toml`` holds the timetable).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.config import read_raw, validate
from experiments.run import RunResult, atomic_parquet, out_problems, run_one, write_run
from sim.errors import ScenarioError


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


def replay(run_dir: str | Path, out: str | Path | None = None, seed: int | None = None,
           policy: str | None = None) -> tuple[RunResult, pd.DataFrame, ReplaySummary, Path]:
    """Replay the plan recorded in ``run_dir`` (see the module docstring)."""
    run_dir = Path(run_dir)
    problems = [f"{run_dir}: no {name}" for name in ("config.toml", "meta.json",
                                                       "plan.parquet", "metrics.parquet")
                if not (run_dir / name).is_file()]
    if problems:
        raise ScenarioError(problems + ["(a replay needs the run directory of a scenario run "
                                        "with a planning policy, e.g. policy.name = 'milp')"])
    meta = json.loads((run_dir / "meta.json").read_text(encoding="utf-8"))
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
    out = Path(out) if out is not None else run_dir / f"replay-s{seed}"
    problems = out_problems(out, run_dir / "config.toml")
    if problems:
        raise ScenarioError(problems)
    cfg = validate(raw, source=str(run_dir / "config.toml"), base=run_dir)
    result = run_one(cfg, seed)
    sim = result.tables["vehicles"]
    sim = sim[sim.policy == "schedule"][["vehicle", "time_min", "site", "p_mw", "e_end_mwh"]]
    both = followed[["vehicle", "time_min", "site", "p_mw", "e_end_mwh"]].merge(
        sim, on=["vehicle", "time_min"], suffixes=("_plan", "_sim"), how="left")
    both["e_diff_mwh"] = both.e_end_mwh_sim - both.e_end_mwh_plan
    planned_here = both.site_plan != ""
    m_run = pd.read_parquet(run_dir / "metrics.parquet")
    m = result.metrics
    summary = ReplaySummary(
        policy=policy, seed=seed, steps=int(len(both)),
        site_mismatch_steps=int((planned_here & (both.site_plan != both.site_sim)).sum()),
        max_abs_e_diff_mwh=float(np.nanmax(np.abs(both.e_diff_mwh))) if len(both) else 0.0,
        sfi_total_run=_system(m_run, policy, "sfi_total"),
        sfi_total_replay=_system(m, "schedule", "sfi_total"),
        voltage_violation_bus_steps=_system(m, "schedule", "voltage_violation_bus_steps"),
        loading_violation_line_steps=_system(m, "schedule", "loading_violation_line_steps"),
        nonconverged_steps=_system(m, "schedule", "nonconverged_steps"))
    result.meta["replay"] = {"run_dir": str(run_dir), **asdict(summary)}
    write_run(result, out, figures=False)
    atomic_parquet(both, out / "plan_vs_sim.parquet")
    return result, both, summary, out
