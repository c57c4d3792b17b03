"""The same scenario at 60, 15 and 5-minute steps: energy, losses, SFI and end SOC per policy.

    python -m benchmarks.time_resolution                      # three-dn, idle/greedy/milp, 24 h
    python -m benchmarks.time_resolution --policies idle --horizon-min 360

Prints one Markdown table (the one of docs/time-resolution.md). Every policy runs alone on the
scenario's seed, so the rows of one step length share one realisation of load and PV.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from experiments.config import load
from experiments.run import run_one

COLUMNS = ("step_min", "policy", "load_mwh", "losses_mwh", "sfi_total", "trips",
           "soc_end_minus_init_mwh", "wall_s")


def measure(scenario: str, step_min: int, policy: str, horizon_min: int | None = None) -> dict:
    """One run of ``policy`` alone on ``scenario`` at ``step_min``; the row of the table."""
    sets = [f"scenario.step_min={step_min}", f'policy.name="{policy}"', "compare.policies=[]"]
    if policy != "greedy":
        sets.append("policy.params={}")
    if horizon_min is not None:
        sets.append(f"scenario.horizon_min={horizon_min}")
    cfg = load(scenario, sets)
    t0 = time.perf_counter()
    res = run_one(cfg, record_arrays=False)
    wall = time.perf_counter() - t0
    m = res.metrics
    system = m[m["entity"] == "system"].set_index("metric")["value"]
    sites = res.tables["sites"]
    dt_h = step_min / 60.0
    veh = res.tables["vehicles"].sort_values("time_min")
    d_soc = 0.0
    for name, spec in res.info["vehicles"].items():
        v = veh[veh["vehicle"] == name]
        d_soc += float(v["e_end_mwh"].iloc[-1]) - float(spec["e_init_mwh"])
    return {"step_min": step_min, "policy": policy,
            "load_mwh": float(sites["load_mw"].sum() * dt_h),
            "losses_mwh": float(system["losses_mwh"]), "sfi_total": float(system["sfi_total"]),
            "trips": int(system["trips"]), "soc_end_minus_init_mwh": d_soc, "wall_s": wall}


def markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    out = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = [f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in COLUMNS]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="three-dn")
    ap.add_argument("--policies", default="idle,greedy,milp")
    ap.add_argument("--steps", default="60,15,5", help="step lengths in minutes")
    ap.add_argument("--horizon-min", type=int, default=None)
    a = ap.parse_args(argv)
    rows = []
    print(markdown(rows), flush=True)  # the header, then one row as each run ends
    for p in a.policies.split(","):
        for s in a.steps.split(","):
            rows.append(measure(a.scenario, int(s), p, a.horizon_min))
            print(markdown(rows[-1:]).splitlines()[-1], flush=True)
    return 0 if all(np.isfinite(r["losses_mwh"]) for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
