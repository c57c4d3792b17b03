"""Build and solve times of the seed-001 models (issue 4's benchmark), on this machine.

    python benchmarks/bench_tsn.py                 # case 1 (both wind-line ratings) and case 2
    python benchmarks/bench_tsn.py --quick         # case 1 only, shorter limits
    python benchmarks/bench_tsn.py --solver cbc
    python benchmarks/bench_tsn.py --warm-start    # case 1 at 20 MW: cold vs OCD-warm-started
    python benchmarks/bench_tsn.py --levers        # case 1 at 20 MW: formulation levers
    python benchmarks/bench_tsn.py --where-gap     # case 1 at 20 MW: is the gap UC or routing?
    python benchmarks/bench_tsn.py --branching     # case 1 at 20 MW: aggregates to branch on
    python benchmarks/bench_tsn.py --levers --case ieee118 --limit-s 600

``--warm-start`` solves the congested case 1 (line 12-13 at 20 MW) centrally twice with the same
limit: cold, and with the OCD incumbent's routes, commitment and station modes as a MIP start;
it records HiGHS's incumbent and dual bound over time (a HiGHS callback) and prints the time to
reach 1 %, 0.5 % and 0.1 % gap, the final gap, wall and CPU time, and the load average.

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
from policies.tsn_milp import TsnOptions, WarmStart, solve_case


class Trajectory:
    """Incumbent and dual bound of every HiGHS solve over wall time since :meth:`begin`, from
    HiGHS callbacks (improving solutions, and a sample of the MIP interrupt callback at most
    every 0.5 s). Installed by wrapping ``policies.solve._HiGHS.callSolver``, so the solve
    itself is the one the project runs."""

    def __init__(self) -> None:
        self.points: list[tuple[float, float, float]] = []
        self.t0 = time.perf_counter()
        self._last = -1.0
        import policies.solve as solve_mod

        self._cls = solve_mod._HiGHS
        self._orig = self._cls.callSolver

    def begin(self) -> None:
        self.points, self.t0, self._last = [], time.perf_counter(), -1.0

    def __enter__(self):
        import highspy

        traj, orig = self, self._orig
        kinds = (highspy.cb.HighsCallbackType.kCallbackMipImprovingSolution,
                 highspy.cb.HighsCallbackType.kCallbackMipInterrupt)

        def call_solver(solver, lp):
            h = lp.solverModel

            def cb(ctype, msg, out, inp, user):
                now = time.perf_counter() - traj.t0
                if ctype == kinds[1] and now - traj._last < 0.5:
                    return
                traj._last = now
                traj.points.append((now, float(out.objective_function_value),
                                    float(out.mip_dual_bound)))

            h.setCallback(cb, None)
            for k in kinds:
                h.startCallback(k)
            orig(solver, lp)

        self._cls.callSolver = call_solver
        return self

    def __exit__(self, *exc) -> None:
        self._cls.callSolver = self._orig

    def time_to_gap(self, gap: float) -> float | None:
        for t, inc, bound in self.points:
            if abs(inc) < 1e20 and abs(bound) < 1e20 and (inc - bound) / abs(inc) <= gap:
                return t
        return None

    def first_incumbent(self) -> tuple[float, float] | None:
        for t, inc, _ in self.points:
            if abs(inc) < 1e20:
                return t, inc
        return None


def warm_vs_cold(solver: str, gap: float, limit_s: float, ocd_iter: int,
                 ocd_power_limit_s: float) -> None:
    print(f"\nload average at start {os.getloadavg()[0]:.2f}")
    case, _ = build_case("ieee30", "mes", line_rating_overrides_mw={"line 12-13": 20.0})
    opt = TsnOptions(solver=solver, mip_gap=gap, time_limit_s=limit_s)
    print(f"case 1, line 12-13 at 20 MW, MES; MIP gap {gap:g}, limit {limit_s:g} s\n")
    print(f"{'run':<26} {'wall_s':>7} {'cpu_s':>7} {'status':<11} {'cost_usd':>11} "
          f"{'bound_usd':>11} {'gap':>8} {'first inc (s, usd)':>22} {'t@1%':>6} {'t@0.5%':>6} "
          f"{'t@0.1%':>6}")

    def show(label, plan, traj, wall, cpu):
        o = plan.outcome
        fi = traj.first_incumbent()
        fis = f"{fi[0]:.1f}, {fi[1]:,.2f}" if fi else "-"
        tt = [traj.time_to_gap(g) for g in (1e-2, 5e-3, 1e-3)]
        tts = " ".join(f"{x:6.1f}" if x is not None else f"{'-':>6}" for x in tt)
        g = "-" if o.gap is None else f"{100 * o.gap:.3f}%"
        b = "-" if o.bound is None else f"{o.bound:,.2f}"
        print(f"{label:<26} {wall:7.1f} {cpu:7.1f} {o.status:<11} {plan.total_cost:11,.2f} "
              f"{b:>11} {g:>8} {fis:>22} {tts}")

    with Trajectory() as traj:
        traj.begin()
        t0, c0 = time.perf_counter(), time.process_time()
        cold, _ = solve_case(case, opt)
        show("cold", cold, traj, time.perf_counter() - t0, time.process_time() - c0)
        t0, c0 = time.perf_counter(), time.process_time()
        res = run_ocd(case, OcdOptions(variant="enhanced", mobility="exact",
                                       request_candidates=True, max_iter=ocd_iter,
                                       power=TsnOptions(solver=solver, mip_gap=gap,
                                                        time_limit_s=ocd_power_limit_s)))
        ocd_wall, ocd_cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"{'OCD (exact E1 + cand.)':<26} {ocd_wall:7.1f} {ocd_cpu:7.1f} "
              f"{res.stop_reason:<11} {res.ub:11,.2f} {res.lb:11,.2f} "
              f"{100 * res.gap:7.3f}%  ({res.iterations} iterations)")
        p = res.plan
        ws = WarmStart(res.routes, p.u, p.pch_mw, p.pdis_mw)
        traj.begin()
        t0, c0 = time.perf_counter(), time.process_time()
        warm, _ = solve_case(case, opt, warm=ws)
        show("warm (OCD MIP start)", warm, traj, time.perf_counter() - t0,
             time.process_time() - c0)
    print(f"OCD + warm central: {ocd_wall + warm.outcome.solve_s + warm.outcome.build_s:.1f} s "
          f"wall; load average at end {os.getloadavg()[0]:.2f}")


LEVERS = {"base": {}, "prune": {"prune_arcs": True}, "reach": {"reach_bounds": True},
          "reach+prune": {"reach_bounds": True, "prune_arcs": True}}


def levers(case_name: str, gap: float, limit_s: float, which: list[str]) -> None:
    """Root LP bound (all integrality relaxed, the start rows of the lazy line loop) and a
    time-limited MIP per formulation lever, in the same run so that the load is comparable."""
    import pulp

    from policies.solve import solve
    from policies.tsn_milp import build, initial_line_rows

    ratings = {"ieee30": {"line 12-13": 20.0}, "ieee118": {"line 12-117": 40.0}}[case_name]
    case, _ = build_case(case_name, "mes", line_rating_overrides_mw=ratings)
    rows = initial_line_rows(case, TsnOptions())
    print(f"\n{case_name} MES, {ratings}; MIP gap {gap:g}, limit {limit_s:g} s; load average "
          f"{os.getloadavg()[0]:.2f}")
    print(f"{'lever':<12} {'vars':>6} {'rows':>6} {'LP bound':>11} {'LP cpu_s':>8} "
          f"{'wall_s':>7} {'cpu_s':>7} {'status':<11} {'cost_usd':>11} {'bound_usd':>11} "
          f"{'gap':>8} {'t@1%':>6} {'t@0.5%':>6} {'load':>5}")
    for name in which:
        flags = LEVERS[name]
        m = build(case, "central", TsnOptions(**flags), lines=rows)
        nv, nr = len(m.prob.variables()), len(m.prob.constraints)
        for x in m.prob.variables():
            x.cat = pulp.LpContinuous
        c0 = time.process_time()
        lp = solve(m.prob, time_limit_s=limit_s)
        lp_cpu = time.process_time() - c0
        lpb = f"{lp.objective:,.2f}" if lp.has_solution else lp.status
        with Trajectory() as traj:
            traj.begin()
            t0, c0 = time.perf_counter(), time.process_time()
            plan, _ = solve_case(case, TsnOptions(mip_gap=gap, time_limit_s=limit_s, **flags))
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        o = plan.outcome
        tt = [traj.time_to_gap(g) for g in (1e-2, 5e-3)]
        tts = " ".join(f"{x:6.1f}" if x is not None else f"{'-':>6}" for x in tt)
        g = "-" if o.gap is None else f"{100 * o.gap:.3f}%"
        b = "-" if o.bound is None else f"{o.bound:,.2f}"
        print(f"{name:<12} {nv:6d} {nr:6d} {lpb:>11} {lp_cpu:8.1f} {wall:7.1f} {cpu:7.1f} "
              f"{o.status:<11} {plan.total_cost:11,.2f} {b:>11} {g:>8} {tts} "
              f"{os.getloadavg()[0]:5.2f}", flush=True)


#: Integer aggregates HiGHS may branch on (``--branching``): each is an integer variable set
#: equal to a sum of route binaries, so the model and its optimum are unchanged; only the
#: branching candidates differ. ``trips``: route arcs per train; ``parked``: train k parked
#: (anywhere) in hour t; ``visits``: trains parked at station i in hour t; ``arrivals``:
#: arrivals of train k at station i over the day. ``arrive-park`` is not an aggregate but a
#: dominance cut: a train that arrives at a station before the last hour parks there for at
#: least an hour (with travel times that obey the triangle inequality, as both cases' do, a
#: pass-through or a bounce is never better than going direct and waiting); it keeps an optimum.
AGGREGATES = ("trips", "parked", "visits", "arrivals", "arrive-park")


def add_aggregates(model, which: set[str]) -> None:
    import pulp

    case, v, add = model.case, model.v, model.prob.addConstraint
    K, I, T = len(case.trains), len(case.stations), case.T  # noqa: E741
    Int = pulp.LpInteger

    def agg(name, hi, terms):
        add(pulp.lpSum(terms) == pulp.LpVariable(name, 0, hi, cat=Int))

    for k in range(K):
        route = [(a, x) for (kk, a), x in v["x"].items() if kk == k and a[0] != a[2]]
        if "trips" in which:
            agg(f"agg_trips_{k}", T, [x for _, x in route])
        if "arrivals" in which:
            for i in range(I):
                agg(f"agg_arr_{k}_{i}", T, [x for a, x in route if a[2] == i])
        if "parked" in which:
            for t in range(T):
                agg(f"agg_parked_{k}_{t}", 1, [v["w"][k, i, t] for i in range(I)])
    if "arrive-park" in which:
        tau = case.travel_h
        if any(tau[i, j] + tau[j, m] < tau[i, m] for i in range(I) for j in range(I)
               for m in range(I) if len({i, j, m}) == 3):
            raise SystemExit("arrive-park: the travel times break the triangle inequality")
        for k in range(K):
            ins: dict = {}
            for (kk, a), x in v["x"].items():
                if kk == k and a[0] != a[2] and a[3] < T:
                    ins.setdefault((a[2], a[3]), []).append(x)
            for (j, th), xs in ins.items():
                add(pulp.lpSum(xs) <= v["x"][k, (j, th, j, th + 1)])
    if "visits" in which:
        for i in range(I):
            for t in range(T):
                agg(f"agg_visits_{i}_{t}", K, [v["w"][k, i, t] for k in range(K)])


def branching(limit_s: float, which: list[str], highs_options: list[dict]) -> None:
    """Case 1 at 20 MW: the central MILP with extra integer aggregates to branch on, and with
    HiGHS options, each for ``limit_s`` in the same run (no lazy line rounds: the screened start
    rows only, the same for every run)."""
    import json

    from policies.solve import solve
    from policies.tsn_milp import build, initial_line_rows

    case, _ = build_case("ieee30", "mes", line_rating_overrides_mw={"line 12-13": 20.0})
    rows = initial_line_rows(case, TsnOptions())
    print(f"\ncase 1 MES, line 12-13 at 20 MW; MIP gap 1e-4, limit {limit_s:g} s")
    print(f"{'run':<44} {'status':<11} {'cost_usd':>11} {'bound_usd':>11} {'gap':>7} "
          f"{'wall_s':>7} {'cpu_s':>7} {'load':>5}")
    runs = [(f"aggregates: {w}", set(w.split("+")), {}) for w in which]
    runs += [(f"HiGHS {json.dumps(o)}", set(), o) for o in highs_options]
    for label, aggs, options in runs:
        unknown = aggs - set(AGGREGATES) - {"base"}
        if unknown:
            raise SystemExit(f"--branching: unknown aggregate(s) {sorted(unknown)}; "
                             f"valid: base, {', '.join(AGGREGATES)} (join with +)")
        m = build(case, "central", TsnOptions(), lines=rows)
        add_aggregates(m, aggs)
        t0, c0 = time.perf_counter(), time.process_time()
        o = solve(m.prob, time_limit_s=limit_s, mip_gap=1e-4, options=options)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        g = "-" if o.gap is None else f"{100 * o.gap:.2f}%"
        print(f"{label:<44} {o.status:<11} {o.objective or float('nan'):11,.2f} "
              f"{o.bound or float('nan'):11,.2f} {g:>7} {wall:7.1f} {cpu:7.1f} "
              f"{os.getloadavg()[0]:5.2f}", flush=True)


def where_gap(limit_s: float) -> None:
    """Case 1 at 20 MW: the root LP; the LP and MILP with the routes fixed to a time-limited
    incumbent's (how tight the UC part is); the MILP with UC integer and routes relaxed."""
    import numpy as np
    import pulp

    from policies.solve import solve
    from policies.tsn_milp import build

    case, _ = build_case("ieee30", "mes", line_rating_overrides_mw={"line 12-13": 20.0})
    print(f"\nload average {os.getloadavg()[0]:.2f}")
    plan, model = solve_case(case, TsnOptions(time_limit_s=limit_s))
    o = plan.outcome
    print(f"MILP {limit_s:g} s: {o.status}, {plan.total_cost:,.2f} (bound {o.bound:,.2f})")
    on = {key for key, var in model.v["x"].items() if (var.varValue or 0) > 0.5}
    rows = set(model.lines)

    def run(label, fix_routes, integer):
        m = build(case, "central", TsnOptions(), lines=rows)
        if fix_routes:
            for key, var in m.v["x"].items():
                var.lowBound = var.upBound = 1.0 if key in on else 0.0
        for x in m.prob.variables():
            if not x.name.startswith(integer):
                x.cat = pulp.LpContinuous
        r = solve(m.prob, time_limit_s=limit_s)
        print(f"{label:<40} {r.status:<11} {r.objective:12,.2f}")
        if not fix_routes and not integer and r.has_solution:
            # payload per unit of route on the fractional travel arcs: capacity and energy
            # carried (MW, MWh) divided by the arc's x, against the trains' maxima
            val = {x.name: x.varValue or 0.0 for x in m.prob.variables()}
            dens = []
            for (k, a), var in m.v["x"].items():
                xv = var.varValue or 0.0
                if a[0] != a[2] and 1e-3 < xv < 1 - 1e-3:
                    tag = f"{k}_{a[0]}_{a[1]}_{a[2]}_{a[3]}"
                    dens.append((val[f"ac0_{tag}"] / xv, val[f"ae0_{tag}"] / xv))
            if dens:
                c, e = np.array(dens).T
                tr = case.trains[0]
                print(f"  fractional travel arcs: {len(dens)}; payload per unit x: capacity "
                      f"median {np.median(c):.1f} MW (train max {tr.c_max_mw:g}), share at the "
                      f"max {np.mean(c > tr.c_max_mw - 1e-3):.0%}; energy median "
                      f"{np.median(e):.1f} MWh (max {tr.e_max_mwh:g})")

    run("root LP (all relaxed)", False, ())
    run("routes fixed, LP", True, ())
    run("routes fixed, MILP", True, ("u_", "y_", "z_", "uch_", "udis_"))
    run("UC integer, routes relaxed", False, ("u_", "y_", "z_"))
    print(f"load average at end {os.getloadavg()[0]:.2f}")


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
    ap.add_argument("--warm-start", action="store_true",
                    help="only the cold vs OCD-warm-started central solve of case 1 at 20 MW")
    ap.add_argument("--limit-s", type=float, default=120.0, help="--warm-start solve limit")
    ap.add_argument("--ocd-iter", type=int, default=4, help="--warm-start OCD iterations")
    ap.add_argument("--levers", nargs="?", const="base,reach+prune", default=None,
                    help="formulation levers to compare (comma list of "
                         f"{', '.join(LEVERS)}; default base,reach+prune)")
    ap.add_argument("--case", default="ieee30", choices=["ieee30", "ieee118"],
                    help="--levers case")
    ap.add_argument("--where-gap", action="store_true",
                    help="case 1 at 20 MW: UC vs routing share of the root gap")
    ap.add_argument("--branching", nargs="?", default=None,
                    const="base,trips,parked,trips+arrivals,visits,arrive-park",
                    help="case 1 at 20 MW: integer aggregates to branch on (comma list of runs, "
                         f"each base or a +-joined subset of {', '.join(AGGREGATES)})")
    ap.add_argument("--highs-option", action="append", default=[], metavar="JSON",
                    help="with --branching: also a run with these HiGHS options, e.g. "
                         "'{\"mip_heuristic_effort\": 0.3}' (repeatable)")
    args = ap.parse_args(argv)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}, pulp {md.version('pulp')}, highspy "
          f"{md.version('highspy')}, pandapower {md.version('pandapower')}; "
          f"{time.strftime('%Y-%m-%d %H:%M')}; solver {args.solver}, MIP gap {args.gap:g}")
    if args.branching:
        import json

        try:
            opts = [json.loads(o) for o in args.highs_option]
        except json.JSONDecodeError as exc:
            ap.error(f"--highs-option: not JSON ({exc})")
        branching(args.limit_s, args.branching.split(","), opts)
        return 0
    if args.where_gap:
        where_gap(args.limit_s if args.limit_s != 120.0 else 90.0)
        return 0
    if args.levers:
        levers(args.case, args.gap, args.limit_s, args.levers.split(","))
        return 0
    if args.warm_start:
        if args.solver != "highs":
            ap.error("--warm-start measures HiGHS (MIP start and callbacks)")
        warm_vs_cold(args.solver, args.gap, args.limit_s, args.ocd_iter, 20.0)
        return 0
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
