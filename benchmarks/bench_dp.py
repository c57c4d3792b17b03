"""DP router scaling: solve time against nodes, time steps and SOC levels (MODELS.md D.6).

    python benchmarks/bench_dp.py            # synthetic grids + the real 16-node day
    python benchmarks/bench_dp.py --quick    # fewer points

Synthetic instances: N nodes on a ring with chords (out-degree ~4), a third of them charging
sites, the rest construction sites; seeded random energies and prices. One truck, one solve
(:func:`policies.dp_router.solve`). The work is ``2 phases x K x N`` NumPy blocks: each MOVE is
O(J), each CHARGE is O(J^2) at a charging node, so time grows ~linearly in N and K and between
linearly and quadratically in J (the J^2 charge blocks dominate from J ~ 100).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policies.dp_router import solve  # noqa: E402
from sim.coopt import TruckDayProblem  # noqa: E402
from sim.types import Problem


def synthetic(n: int, k: int, j: int, seed: int = 0) -> TruckDayProblem:
    rng = np.random.default_rng(seed)
    dist = np.full((n, n), np.nan)
    for u in range(n):
        for w in {(u + 1) % n, (u - 1) % n, (u + 3) % n, 0 if u else 1}:
            if w != u:
                dist[u, w] = rng.uniform(5, 40)
    steps = np.where(np.isfinite(dist)[None], rng.integers(1, 4, size=(k, n, n)), -1)
    e = np.where(np.isfinite(dist)[None], rng.uniform(-5, 40, size=(k, n, n)), 0.0)
    charging = tuple(range(1, n, 3))
    customers = tuple(c for c in range(1, n) if c not in charging)
    price = np.full((k, n), np.nan)
    price[:, list(charging)] = rng.uniform(0.25, 0.5, size=(k, len(charging)))
    ds = 0.95 / (j - 1)
    grid = 0.05 + ds * np.arange(j)
    a, b = np.meshgrid(grid, grid, indexing="ij")
    cyc = np.where(b < a, 50.0 * ((0.9 - b).clip(0) ** 2 - (0.9 - a).clip(0) ** 2), 0.0)
    cal = 0.05 * np.ones((j, j))
    return TruckDayProblem(
        name=f"syn{n}x{k}x{j}", n_nodes=n, depot=0, charging_nodes=charging,
        customers=customers, requirement_kwh=(350.0,) * len(customers),
        window_start_steps=(0,) * len(customers), window_end_steps=(k,) * len(customers),
        step_min=max(1, 720 // k), t_start_min=420, n_steps=k, soc_min_frac=0.05,
        soc_step_frac=ds, n_soc=j, soc_init_frac=float(grid[np.argmin(abs(grid - 0.9))]),
        soc_chg_max_frac=0.9, soc_old_frac=float(grid[np.argmin(abs(grid - 0.2))]),
        soc_end_frac=0.6, soc_deliver_min_frac=0.5, e_cap_kwh=350.0, p_chg_kw=500.0,
        eta_ch=0.95, eta_dis=0.95, dist_km=dist, move_steps=steps, move_e_kwh=e,
        move_epeak_kwh=np.maximum(e, 0), price_usd_per_kwh=price, cost_per_km_usd=0.41,
        wage_usd_per_h=18.0, serve_steps=2, deg_cyc_usd=cyc, deg_cal_usd_per_h=cal,
        pen_unmet_usd_per_kwh=1.0)


def timed(p: TruckDayProblem, reps: int = 1) -> float:
    best = np.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        solve(p)
        best = min(best, time.perf_counter() - t0)
    return best


def fit_exponent(xs, ts) -> float:
    return float(np.polyfit(np.log(xs), np.log(ts), 1)[0])


def main(quick: bool = False) -> None:
    base = dict(n=16, k=48, j=96)
    sweeps = {"n": [4, 8, 16, 32] if not quick else [4, 16],
              "k": [12, 24, 48, 96] if not quick else [24, 48],
              "j": [24, 48, 96, 192] if not quick else [48, 96]}
    print(f"{'vary':<5}{'nodes':>6}{'steps':>6}{'soc':>6}{'solve_s':>10}")
    for key, values in sweeps.items():
        ts = []
        for x in values:
            args = {**base, key: x}
            t = timed(synthetic(**args))
            ts.append(t)
            print(f"{key:<5}{args['n']:>6}{args['k']:>6}{args['j']:>6}{t:>10.3f}")
        print(f"      -> time ~ {key}^{fit_exponent(values, ts):.2f}")
    # the real 16-node day: the coopt-large fleet under the generalised model
    try:
        from agents.road_data import load_coopt
        from experiments.coopt_build import CooptSettings, build_problems
        from experiments.coopt_study import coopt_data_dir
        from policies.dp_router import DPRouter
    except ImportError:  # pragma: no cover
        return
    data = load_coopt(coopt_data_dir())  # the Co-OPT data shipped in the package
    flat = {c: np.linspace(0.3, 0.5, 24) for c in data.large.charging_sites}
    probs = build_problems(data, "large", "generalised", CooptSettings(), hourly_price=flat)
    t1 = timed(probs[0])
    t0 = time.perf_counter()
    r = DPRouter()
    r.reset(Problem.for_missions(probs))
    tf = time.perf_counter() - t0
    print(f"16-node Co-OPT day (K={probs[0].n_steps}, J={probs[0].n_soc}): one truck "
          f"{t1:.2f} s; fleet of {len(r.plans())} trucks (sequential DP) {tf:.2f} s")


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
