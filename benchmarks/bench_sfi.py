"""Benchmark: the weighted-SFI MILP of seed 000 on the A.11 three-DN data (MODELS.md A.7, A.10).

Run from the repository root::

    python benchmarks/bench_sfi.py [--quick] [--reps 3] [--seed 42]

Rows (build = PuLP model construction, solve = the solver call incl. PuLP's hand-over; wall
clock, median over ``--reps`` repetitions when one run takes less than ``--cheap-s`` seconds,
otherwise a single run; the deterministic HiGHS row is always repeated ``--reps`` times; ``cpu s``
is the CPU time of in-process HiGHS solves, and the load average is printed, because the machine
may be shared):

* the no-MESS baseline A0 (equal weights) and the dynamic weights (A0 solved by
  ``policies.sfi.baseline``, lexicographic: max SFI, then min deficit, + eq. (1));
* the deterministic mobile model with dynamic weights, with HiGHS and with CBC (study default
  ``Options()``: mip_gap 1e-3, 60 s);
* a fixed-route re-dispatch of one scenario (A.10.4 step 1);
* the two-stage model on ``--n`` Monte Carlo scenarios (A.10.1, seed 42) reduced to 50
  (``--quick``: 8) by fast forward selection (A.10.2):
  - build of the full two-stage model: PuLP (reference) against the matrix path
    (``policies.sfi_highs.build_matrix``, numpy straight to highspy), with the ratio;
  - the exact model by scenario decomposition (``stochastic(..., method="exact",
    exact_time_limit_s=120, exact_gap=5e-3)`` = ``policies.sfi.decomposed``): build and solve
    time apart, CPU time, the valid dual bound (sum of the scenario MILPs' dual bounds) and the
    incumbent (best route re-dispatched on every scenario), peak RSS;
  - ``--monolithic``: the full model in one HiGHS solve (matrix path, warm-started from the
    decomposition's plan, ``--exact-time`` s), to compare its bound;
  - ``--root-lp``: the LP relaxation of the full model with dual simplex and with interior point
    (``--exact-time`` s each);
  - ``--candidates``: the candidate-route fallback (A.10.5; candidate solves use ``--cand-gap``);
  - ``--cbc``: the full model with CBC (cold, same limits).

Timings from A.10.5 (prototype: PuLP 3.3 + HiGHS) are printed for comparison where the spec
gives one.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.metadata as md
import os
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import warnings  # noqa: E402

warnings.filterwarnings("ignore", category=DeprecationWarning)  # PuLP 3 -> 4 API notices

from experiments.build import build_world  # noqa: E402
from experiments.config import load, resolve  # noqa: E402
from experiments.scenarios_mc import monte_carlo, reduce  # noqa: E402
from policies.sfi import (  # noqa: E402
    Options,
    SfiContext,
    baseline,
    instance,
    make_weights,
    stochastic,
)
from policies.sfi_highs import build_matrix, solve_matrix, start_from  # noqa: E402
from policies.sfi_milp import build, extract, solve_model  # noqa: E402
from policies.sfi_weights import dynamic_weights, equal_weights  # noqa: E402


def _fmt(v, spec=".4f"):
    if v is None:
        return "-"
    if isinstance(v, float) and not np.isfinite(v):
        return "-"
    return format(float(v), spec)


class Table:
    def __init__(self):
        self.rows = []

    def add(self, name, build_s, solve_s, reps, status, objective=None, bound=None, gap=None,
            ref="", cpu_s=None):
        self.rows.append((name, build_s, solve_s, cpu_s, reps, status, objective, bound, gap,
                          ref))

    def print(self):
        w = max(len(r[0]) for r in self.rows)
        head = (f"{'model':<{w}}  {'build s':>8}  {'solve s':>8}  {'cpu s':>7}  {'reps':>4}  "
                f"{'status':<12}  "
                f"{'objective':>10}  {'bound':>10}  {'gap':>8}  spec A.10.5")
        print(head)
        print("-" * len(head))
        for name, b, s, cpu, reps, status, obj, bound, gap, ref in self.rows:
            print(f"{name:<{w}}  {_fmt(b, '.3f'):>8}  {_fmt(s, '.3f'):>8}  {_fmt(cpu, '.2f'):>7}  "
                  f"{reps:>4}  "
                  f"{status:<12}  {_fmt(obj):>10}  {_fmt(bound):>10}  {_fmt(gap, '.2e'):>8}  {ref}")


def solve_rows(inst, opt: Options, reps: int, cheap_s: float):
    """Build + solve ``inst`` (repeated while cheap); median build and solve times, last result.
    The solve's CPU time of this process is kept too (HiGHS runs in-process, single-threaded
    here; CBC runs in a subprocess, so its CPU time is not measured): on a shared machine it
    shows how much of the wall time was waiting for a core."""
    builds, solves, cpus, out, model = [], [], [], None, None
    for _ in range(max(reps, 1)):
        model = build(inst)
        c0 = time.process_time()
        out = solve_model(model, opt.solver, opt.time_limit_s, opt.mip_gap)
        cpus.append(time.process_time() - c0)
        builds.append(model.build_s)
        solves.append(out.solve_s)
        if model.build_s + out.solve_s > cheap_s:
            break
    plan = extract(model, out) if out.has_solution else None
    cpu = statistics.median(cpus) if opt.solver == "highs" else None
    return statistics.median(builds), statistics.median(solves), len(solves), out, plan, cpu


def timed(fn, reps: int, cheap_s: float):
    times, res = [], None
    for _ in range(max(reps, 1)):
        t0 = time.perf_counter()
        res = fn()
        times.append(time.perf_counter() - t0)
        if times[-1] > cheap_s:
            break
    return statistics.median(times), len(times), res


def _rss_gib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def git_version() -> str:
    """Short commit of the repository, with "+dirty" when policies/ has uncommitted changes."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "policies"], cwd=ROOT, text=True,
                               capture_output=True, check=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def weights_with_outcome(ctx, load_mw, pv_mw, prob, opt: Options):
    """``make_weights(..., "dynamic", opt)`` (A.6 defaults) written out, to keep the baseline's
    solve outcome: the no-MESS baseline A0, then eq. (1)."""
    base = baseline(ctx, load_mw, pv_mw, prob, opt)
    w = dynamic_weights(load_mw, pv_mw, np.asarray(prob, float), base.flex_stat_up_mw)
    return w, base.outcome


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="8 reduced scenarios instead of 50; no CBC on the stochastic model")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of cheap rows (default 3)")
    ap.add_argument("--cheap-s", type=float, default=5.0,
                    help="a row is repeated only if one run takes less than this (default 5 s)")
    ap.add_argument("--seed", type=int, default=42, help="Monte Carlo seed (default 42)")
    ap.add_argument("--n", type=int, default=1000, help="Monte Carlo draws (default 1000)")
    ap.add_argument("--cand-gap", type=float, default=5e-3,
                    help="mip_gap of the candidate-route solves (default 5e-3 = exact_gap)")
    ap.add_argument("--exact-time", type=float, default=120.0,
                    help="time limit of the exact two-stage solve (default 120 s)")
    ap.add_argument("--monolithic", action="store_true",
                    help="also solve the full model in one HiGHS run (matrix path)")
    ap.add_argument("--root-lp", action="store_true",
                    help="also time the full model's LP relaxation: dual simplex vs IPM")
    ap.add_argument("--candidates", action="store_true",
                    help="also run the candidate-route fallback (A.10.5)")
    ap.add_argument("--cbc", action="store_true", help="also run the full model with CBC")
    ap.add_argument("--workers", type=int, default=2,
                    help="processes of the decomposition's scenario solves (default 2)")
    ap.add_argument("--forecast-weights", action="store_true",
                    help="weights of the forecast on every scenario instead of the scenarios' "
                         "own no-MESS baseline (skips a long baseline; the model is the same)")
    args = ap.parse_args(argv)
    keep = 8 if args.quick else 50

    print("bench_sfi: weighted-SFI MILP on the A.11 three-DN data")
    print(f"date {_dt.datetime.now().isoformat(timespec='seconds')}; machine "
          f"{platform.machine()} {platform.system()} {platform.release()}, "
          f"{os.cpu_count()} cores (affinity {len(os.sched_getaffinity(0))}); "
          f"python {platform.python_version()}")
    print(f"code {git_version()}; pulp {md.version('pulp')}, highspy {md.version('highspy')}, "
          f"numpy {np.__version__}; "
          f"mode {'--quick' if args.quick else 'full'} ({keep} scenarios), seed {args.seed}"
          + ("; forecast weights on every scenario" if args.forecast_weights else ""))
    print(f"load average (1, 5, 15 min) at the start: {os.getloadavg()}")
    print()

    t0 = time.perf_counter()
    cfg = load(resolve("three-dn"))
    world = build_world(cfg, None, np.random.default_rng(0))
    ctx = SfiContext.from_problem(world.problem)
    L, PV = ctx.forecast
    pv_cap = np.array([g.pv_cap_mw for g in cfg.grids.values()])
    print(f"world built in {time.perf_counter() - t0:.2f} s; sites "
          f"{[s.node for s in ctx.sites]}, {len(ctx.vehicles)} MESS, T = {L.shape[2]}, "
          f"travel steps {ctx.travel_steps.tolist()}")
    print()

    tab = Table()
    opt = Options()
    one = np.ones(1)

    # ---------------------------------------------------------------- deterministic rows
    w_eq = equal_weights(L.shape).w
    b, s, n, out, _, cpu = solve_rows(instance(ctx, L, PV, one, w_eq, with_mess=False), opt,
                                      args.reps, args.cheap_s)
    tab.add("no-MESS baseline A0 (equal w)", b, s, n, out.status, out.objective, out.bound,
            out.gap, "~1 s", cpu)

    sec, n, W = timed(lambda: weights_with_outcome(ctx, L, PV, one, opt), args.reps,
                      args.cheap_s)
    W, bo = W
    same = np.allclose(W.w, make_weights(ctx, L, PV, one, "dynamic", opt).w, atol=1e-12)
    tab.add("dynamic weights (A0 lexicographic + eq. 1)", bo.build_s, sec, n, bo.status,
            bo.objective, bo.bound, bo.gap)

    det_inst = instance(ctx, L, PV, one, W.w)
    b, s, n, out, det, cpu = solve_rows(det_inst, opt, args.reps, 60.0)
    tab.add("deterministic mobile, dynamic w, HiGHS", b, s, n, out.status, out.objective,
            out.bound, out.gap, "~12 s", cpu)
    b, s, n, out_c, det_c, _ = solve_rows(det_inst, Options(solver="cbc"), 1, args.cheap_s)
    tab.add("deterministic mobile, dynamic w, CBC", b, s, n, out_c.status, out_c.objective,
            out_c.bound, out_c.gap)
    if det is not None:
        b, s, n, out, _, cpu = solve_rows(instance(ctx, L, PV, one, W.w,
                                                   fix_routes=(det.x, det.y), symmetry=False),
                                          opt, args.reps, args.cheap_s)
        tab.add("fixed-route re-dispatch, 1 scenario", b, s, n, out.status, out.objective,
                out.bound, out.gap, "~0.4 s", cpu)

    # ---------------------------------------------------------------- scenarios
    mc_s, _, full = timed(lambda: monte_carlo(L[0], PV[0], pv_cap, args.n, seed=args.seed),
                          args.reps, args.cheap_s)
    red_s, n_red, sc = timed(lambda: reduce(full, keep), args.reps, args.cheap_s)
    tab.add(f"monte_carlo {args.n} draws", None, mc_s, args.reps, "-")
    tab.add(f"reduce {args.n} -> {keep} (fast forward)", None, red_s, n_red, "-",
            ref="~3 s (1000 -> 50)")
    Ls, PVs, p = np.array(sc.load_mw), np.array(sc.pv_mw), np.array(sc.prob)
    if args.forecast_weights:
        Ws = replace(W, w=np.repeat(W.w[:1], len(p), axis=0))
    else:
        sec, n, Ws = timed(lambda: weights_with_outcome(ctx, Ls, PVs, p, opt), 1, args.cheap_s)
        Ws, bo = Ws
        tab.add(f"dynamic weights, {keep} scenarios (A0 baseline)", bo.build_s, sec, n,
                bo.status, bo.objective, bo.bound, bo.gap)

    sto_inst = instance(ctx, Ls, PVs, p, Ws.w, symmetry=False)
    pb = []
    for _ in range(max(args.reps, 1)):
        pm = build(sto_inst)
        pb.append(pm.build_s)
        if pm.build_s > args.cheap_s:
            break
    del pm
    mb = [build_matrix(sto_inst).build_s for _ in range(max(args.reps, 1))]
    tab.add(f"build full model, {keep} sc., PuLP", statistics.median(pb), None, len(pb), "-")
    tab.add(f"build full model, {keep} sc., matrix", statistics.median(mb), None, len(mb), "-",
            ref=f"PuLP / matrix = {statistics.median(pb) / statistics.median(mb):.1f}x")

    t0, c0, k0 = time.perf_counter(), time.process_time(), _children_cpu()
    res = stochastic(ctx, Ls, PVs, p, Ws.w, Options(), method="exact",
                     exact_time_limit_s=args.exact_time, exact_gap=5e-3, workers=args.workers)
    total_s = time.perf_counter() - t0
    total_cpu = time.process_time() - c0 + _children_cpu() - k0  # incl. the worker processes
    ex = res.exact_outcome
    tab.add(f"stochastic exact, decomposition, {keep} sc., {args.workers} proc.", ex.build_s,
            ex.solve_s, 1,
            ex.status, ex.objective, ex.bound, ex.gap, ">300 s, no closing", total_cpu)
    print(f"peak RSS after the decomposition: {_rss_gib():.2f} GiB")

    if args.monolithic:
        mm = build_matrix(sto_inst)
        fixed = build_matrix(replace(sto_inst, fix_routes=(res.plan.x, res.plan.y)))
        of = solve_matrix(fixed, 60.0, 1e-3)
        c0 = time.process_time()
        om = solve_matrix(mm, args.exact_time, 5e-3, start=start_from(mm, fixed))
        tab.add(f"stochastic exact, monolithic HiGHS (matrix), warm, {keep} sc.", mm.build_s,
                om.solve_s, 1, om.status, om.objective, om.bound, om.gap,
                f"start {of.objective:.4f}", time.process_time() - c0)
        print(f"peak RSS after the monolithic solve: {_rss_gib():.2f} GiB")
        del mm, fixed
    if args.root_lp:
        for algo in ("simplex", "ipm"):
            lpm = build_matrix(sto_inst)
            lpm.integ[:] = 0
            c0 = time.process_time()
            ol = solve_matrix(lpm, args.exact_time, 0.0, options={"solver": algo})
            tab.add(f"LP relaxation of the full model, {algo}, {keep} sc.", lpm.build_s,
                    ol.solve_s, 1, ol.status, ol.objective, ol.bound, None, "",
                    time.process_time() - c0)
    if args.candidates:
        cand_opt = Options(mip_gap=args.cand_gap)
        t0 = time.perf_counter()
        rc = stochastic(ctx, Ls, PVs, p, Ws.w, cand_opt, method="candidates")
        tab.add(f"stochastic candidates (A.10.5), {rc.candidates} routes", None,
                time.perf_counter() - t0, 1, rc.outcome.status, rc.outcome.objective)
    if args.cbc:
        b, s_, n, out_sc, _, _ = solve_rows(
            sto_inst, Options(solver="cbc", time_limit_s=args.exact_time, mip_gap=5e-3), 1,
            args.cheap_s)
        tab.add(f"stochastic exact, CBC, cold, {keep} sc.", b, s_, n, out_sc.status,
                out_sc.objective, out_sc.bound, out_sc.gap)

    tab.print()
    print(f"load average (1, 5, 15 min) at the end: {os.getloadavg()}")
    print()
    print(f"deterministic (forecast, dynamic weights; identical to make_weights: {same}):")
    if det is not None:
        route = det.site_of()
        both = "" if (route[0] == route).all() else f" / {route[1].tolist()}"
        print(f"  HiGHS value {det.value[0]:.4f}; per-DN SFI "
              f"{np.round(det.sfi[0].sum(axis=1), 2).tolist()}; route (site per hour, -1 = road) "
              f"{route[0].tolist()}{both}")
    if det_c is not None:
        print(f"  CBC value {det_c.value[0]:.4f} ({out_c.status})")
    print(f"scenarios: {args.n} draws (seed {args.seed}) -> {keep}, D_K {sc.distance:.4f}, "
          f"prob min {p.min():.4f} max {p.max():.4f}")
    print(f"stochastic exact (decomposition, gap target 5e-3, {args.exact_time:g} s): "
          f"{ex.status}; objective of (18) {_fmt(ex.objective)} (incumbent), dual bound "
          f"{_fmt(ex.bound)} (sum of scenario MILP bounds), gap "
          f"{_fmt(ex.gap, '.3%') if ex.gap is not None else '-'}; expected weighted SFI "
          f"{res.plan.expected_value:.4f}; {total_s:.1f} s wall, {total_cpu:.1f} s CPU "
          f"(all {args.workers} processes); "
          f"build {ex.build_s:.2f} s = {100 * ex.build_s / ex.solve_s:.1f} % of the solve")
    print(f"  {ex.message}")
    print(f"  timings {', '.join(f'{k} {v:.1f} s' for k, v in res.timings_s.items())}")
    print(f"  route {res.plan.site_of()[0].tolist()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
