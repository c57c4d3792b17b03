"""Benchmark: A.10.1 Monte Carlo generation and A.10.2 fast forward selection (1000 -> 50).

Run from the repository root::

    python benchmarks/bench_reduction.py [--reps 5] [--seed 42]

Forecasts are the A.11 three-DN data: load = peak (3.0 / 2.0 / 1.5 MW) x the industrial /
residential / commercial shape, PV = cap (0.6 / 0.8 / 0.8 MW) x the solar shape, 24 hourly steps.
Times are wall-clock (time.perf_counter), median and min-max over the repetitions. The same-run
baseline is the literal pure-Python transcription of A.10.2 (``tests/test_scenarios_mc.py``) on the
first 200 scenarios, against the vectorised implementation on the same subset.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from experiments.scenarios_mc import (  # noqa: E402
    cost_matrix,
    fast_forward_selection,
    monte_carlo,
    reduce,
)
from grids.profiles import SHAPES  # noqa: E402
from tests.test_scenarios_mc import literal_forward_selection  # noqa: E402

PEAK_MW = np.array([3.0, 2.0, 1.5])
PV_CAP_MW = np.array([0.6, 0.8, 0.8])
KINDS = ("industrial", "residential", "commercial")


def a11_forecasts() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    load = PEAK_MW[:, None] * np.array([SHAPES[k] for k in KINDS])
    pv = PV_CAP_MW[:, None] * np.array(SHAPES["solar"])[None, :]
    return load, pv, PV_CAP_MW


def timed(fn, reps: int):
    """(median, min, max) seconds over ``reps`` calls and the last result."""
    times, out = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), max(times), out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5, help="repetitions per timing (default 5)")
    ap.add_argument("--seed", type=int, default=42, help="Monte Carlo seed (default 42)")
    ap.add_argument("--n", type=int, default=1000, help="scenarios to draw (default 1000)")
    ap.add_argument("--keep", type=int, default=50, help="scenarios to keep (default 50)")
    ap.add_argument("--subset", type=int, default=200, help="baseline subset size (default 200)")
    ap.add_argument("--baseline-reps", type=int, default=1,
                    help="repetitions of the slow literal baseline (default 1)")
    args = ap.parse_args(argv)

    load, pv, cap = a11_forecasts()
    rows = []

    t_mc = timed(lambda: monte_carlo(load, pv, cap, args.n, seed=args.seed), args.reps)
    full = t_mc[3]
    rows.append((f"monte_carlo N={args.n}", *t_mc[:3]))

    xi = full.stacked()
    t_cost = timed(lambda: cost_matrix(xi), args.reps)
    rows.append((f"  cost matrix {args.n}x{args.n} (D={xi.shape[1]})", *t_cost[:3]))

    t_red = timed(lambda: reduce(full, args.keep), args.reps)
    red = t_red[3]
    rows.append((f"reduce {args.n} -> {args.keep}", *t_red[:3]))

    m = args.subset
    xs, ps = xi[:m], np.full(m, 1.0 / m)
    t_fast = timed(lambda: fast_forward_selection(xs, ps, args.keep), args.reps)
    rows.append((f"fast_forward_selection {m} -> {args.keep}", *t_fast[:3]))
    t_lit = timed(lambda: literal_forward_selection(xs, ps, args.keep), args.baseline_reps)
    rows.append((f"literal (pure Python) {m} -> {args.keep}", *t_lit[:3]))

    sel_f, q_f, d_f = t_fast[3]
    sel_l, q_l, d_l = t_lit[3]
    same = sel_f.tolist() == sel_l and np.allclose(q_f, q_l, rtol=0, atol=1e-12)

    print(f"python {platform.python_version()}, numpy {np.__version__}, "
          f"{os.cpu_count()} CPUs; seed {args.seed}; reps {args.reps} "
          f"(baseline {args.baseline_reps})")
    print()
    w = max(len(r[0]) for r in rows)
    print(f"{'step':<{w}}  {'median s':>10}  {'min s':>10}  {'max s':>10}")
    print("-" * (w + 36))
    for name, med, lo, hi in rows:
        print(f"{name:<{w}}  {med:>10.4f}  {lo:>10.4f}  {hi:>10.4f}")
    print()
    print(f"speed-up on the {m}-scenario subset (literal / vectorised, medians): "
          f"{t_lit[0] / t_fast[0]:.0f}x")
    print(f"subset: same selection and q as the literal implementation: {same}; "
          f"D_K {d_f:.6f} (vectorised) vs {d_l:.6f} (literal)")
    kept_coords = int((np.ptp(xi, axis=0) > 0).sum())
    print(f"reduction {args.n} -> {args.keep}: D_K = {red.distance:.4f} (standardised units, "
          f"{kept_coords} of {xi.shape[1]} coordinates with non-zero spread); "
          f"prob min {red.prob.min():.4f} max {red.prob.max():.4f} sum {red.prob.sum():.12f}")
    print(f"goal: reduction {args.n} -> {args.keep} < 0.1 s: {t_red[0]:.3f} s (median) -> "
          f"{'met' if t_red[0] < 0.1 else 'missed'}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
