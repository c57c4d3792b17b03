"""Build and solve times of the seed-001 models (issue 4's benchmark), on this machine.

    python benchmarks/bench_tsn.py                 # case 1 (both wind-line ratings) and case 2
    python benchmarks/bench_tsn.py --quick         # case 1 only, shorter limits
    python benchmarks/bench_tsn.py --solver cbc

Prints one row per model: build time (PuLP model plus the screening LP), solve time, status,
objective, dual bound and gap; then OCD per-iteration and total times. Targets (issue 4, 2
cores): case 1 centralised under 60 s, case 2 within 10 minutes, at the configured gap, never
by loosening it. Not a test: the numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import os
import platform
import time

from grids.transmission import build_case
from policies.ocd import OcdOptions, run_ocd
from policies.tsn_milp import TsnOptions, solve_case


def row(label, plan, wall):
    o = plan.outcome
    gap = "-" if o.gap is None else f"{100 * o.gap:.3f} %"
    bound = "-" if o.bound is None else f"{o.bound:,.2f}"
    print(f"{label:<38} {o.build_s:7.2f} {o.solve_s:8.1f} {wall:8.1f}  {o.status:<11} "
          f"{plan.total_cost:>14,.2f} {bound:>14} {gap:>9}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--solver", default="highs", choices=["highs", "cbc"])
    ap.add_argument("--gap", type=float, default=1e-4)
    args = ap.parse_args(argv)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}, pulp {md.version('pulp')}, highspy "
          f"{md.version('highspy')}, pandapower {md.version('pandapower')}; "
          f"{time.strftime('%Y-%m-%d %H:%M')}; solver {args.solver}, MIP gap {args.gap:g}")
    limit1 = 60.0 if args.quick else 300.0
    jobs = [("case 1, line 12-13 40 MW (B.14)", "ieee30", {"line 12-13": 40.0}, limit1),
            ("case 1, line 12-13 20 MW (study)", "ieee30", {"line 12-13": 20.0}, limit1)]
    if not args.quick:
        jobs.append(("case 2, line 12-117 40 MW (study)", "ieee118", {"line 12-117": 40.0},
                     600.0))
    print(f"\n{'model':<38} {'build_s':>7} {'solve_s':>8} {'wall_s':>8}  {'status':<11} "
          f"{'cost_usd':>14} {'bound_usd':>14} {'gap':>9}")
    for label, name, ratings, limit in jobs:
        for variant in ("none", "ses_distributed", "mes"):
            case, _ = build_case(name, variant, line_rating_overrides_mw=ratings)
            t0 = time.perf_counter()
            plan, _ = solve_case(case, TsnOptions(solver=args.solver, mip_gap=args.gap,
                                                  time_limit_s=limit))
            row(f"{label}: {variant}", plan, time.perf_counter() - t0)
    print("\nOCD (enhanced, exact E1 + request candidates), case 1 at 20 MW:")
    case, _ = build_case("ieee30", "mes", line_rating_overrides_mw={"line 12-13": 20.0})
    res = run_ocd(case, OcdOptions(variant="enhanced", mobility="exact", request_candidates=True,
                                   max_iter=3 if args.quick else 6,
                                   power=TsnOptions(solver=args.solver, mip_gap=args.gap,
                                                    time_limit_s=20.0)))
    for h in res.history:
        print(f"  iteration {h.v}: power layer {h.power_s:.1f} s ({h.phi_p_status}), transport "
              f"DP {1000 * h.transport_s:.1f} ms, UB evaluations {h.ub_s:.1f} s; LB "
              f"{h.lb_v:,.2f}, UB {h.ub:,.2f}")
    print(f"  total {res.total_s:.1f} s, {res.iterations} iterations, "
          f"{res.total_s / max(res.iterations, 1):.1f} s per iteration, stop: {res.stop_reason}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
