"""Power-flow and engine-step benchmarks, each beside its baseline in the same process.

    python benchmarks/bench_pf.py [--quick]

* power flow alone, per feeder and case118: plain ``runpp`` (warm start) against the adapter's
  fast paths (``ybus``, ``lightsim2grid``) and the bound: lightsim2grid's Newton-Raphson alone on
  the same Ybus/Sbus;
* the engine step on the three-DN scenario (96 x 15-min steps, policy ``greedy``, every backend)
  against a bare loop of pandapower updates + ``runpp`` with the same options and the same
  injections (taken from the engine's own run), and against ``pandapower.timeseries.
  run_timeseries`` with the same profiles (``ConstControl``);
* the batched day (``PandapowerAdapter.solve_day``) per step against the NR bound, and a
  1000-scenario x 96-step x three-feeder replay, measured on a fraction and extrapolated.

Times are wall clock (``time.perf_counter``): median and min-max over ``--reps`` repetitions.
The machine may be shared; ratios are measured in the same run.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import warnings  # noqa: E402

warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=FutureWarning)

import pandapower as pp  # noqa: E402
import pandapower.networks as pn  # noqa: E402

from grids.adapter import PandapowerAdapter, PowerFlowOptions  # noqa: E402
from grids.fastpf import _ls_solver, lightsim2grid_status  # noqa: E402

FEEDER_CASES = {  # same element layout as tests/test_fastpf.py
    "case33bw": ([13, 24, 29], {"g1": 17, "g2": 32}, 7, 30, 15, 3.0),
    "cigre_mv": ([4, 8, 12], {"g1": 11, "g2": 14}, 5, 6, 9, 2.0),
    "mv_open_ring": ([3, 5], {"g1": 4, "g2": 6}, 2, 5, 6, 1.5),
    "case118": ([10, 40], {"g1": 20}, 50, 60, 75, 4242.0),
}


def stats(times: list[float]) -> tuple[float, float, float]:
    return statistics.median(times), min(times), max(times)


def fmt(t: tuple[float, float, float], unit: float = 1e3) -> str:
    return f"{t[0] * unit:.3f} ({t[1] * unit:.3f}-{t[2] * unit:.3f})"


def _adapter(name: str, backend: str) -> PandapowerAdapter:
    from grids.feeders import make_feeder
    pv, gens, dr, es, mess, _ = FEEDER_CASES[name]
    net = pn.case118() if name == "case118" else make_feeder(name)
    return PandapowerAdapter(net, PowerFlowOptions(backend=backend), pv_buses=pv,
                             gen_buses=gens, dr_bus=dr, es_bus=es, mess_bus=mess)


def _day(a: PandapowerAdapter, name: str, steps: int, seed: int):
    rng = np.random.default_rng(seed)
    peak = FEEDER_CASES[name][5]
    scale = 50.0 if peak > 100 else 1.0
    load = peak * rng.uniform(0.8 if peak > 100 else 0.3, 1.0, steps)
    return (load, rng.uniform(0, 0.3, (steps, a.pv_index.size)) * scale,
            rng.uniform(0, 0.5, (steps, a.gen_index.size)) * scale,
            rng.uniform(0, 0.1, steps) * scale, rng.uniform(-0.2, 0.2, steps) * scale,
            rng.uniform(-0.25, 0.25, steps) * scale)


def bench_power_flow(reps: int, steps: int, out: list[dict]) -> None:
    """Per solve: runpp vs the fast paths vs the NR bound."""
    print("\n## Power flow alone (ms per solve; median (min-max) over repetitions)")
    print(f"{'net':<14}{'runpp':>24}{'ybus':>24}{'lightsim2grid':>24}{'NR bound':>24}"
          f"{'runpp/ls':>10}{'ls/bound':>10}")
    for name in FEEDER_CASES:
        res = {}
        for backend in ("runpp", "ybus", "lightsim2grid"):
            a = _adapter(name, backend)
            day = _day(a, name, steps, seed=1)
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                for k in range(steps):
                    a.apply(day[0][k], day[1][k], day[2][k], dr_mw=day[3][k],
                            es_p_mw=day[4][k], mess_p_mw=day[5][k])
                    r = a.solve()
                    assert r.converged, r.message
                times.append((time.perf_counter() - t0) / steps)
            res[backend] = stats(times)
        # bound: lightsim2grid's NR alone on the cached Ybus and the same Sbus
        m = a.fast.model
        sb = m.sbus(a.element_matrix(*day))
        solver = _ls_solver()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            for k in range(steps):
                v = m.v_solution.copy()
                solver.solve(m.ybus, v, sb[k], m.ref, m.slack_weights, m.pv, m.pq, 20, 1e-8)
            times.append((time.perf_counter() - t0) / steps)
        res["bound"] = stats(times)
        r1 = res["runpp"][0] / res["lightsim2grid"][0]
        r2 = res["lightsim2grid"][0] / res["bound"][0]
        print(f"{name:<14}{fmt(res['runpp']):>24}{fmt(res['ybus']):>24}"
              f"{fmt(res['lightsim2grid']):>24}{fmt(res['bound']):>24}{r1:>10.1f}{r2:>10.1f}")
        out.append({"section": "pf", "net": name, **{k: v[0] for k, v in res.items()}})


def bench_batched(reps: int, scenarios: int, out: list[dict]) -> None:
    """A 96-step day per feeder in one call, and the 1000-scenario replay."""
    print("\n## Batched day (96 steps in one call; ms per step, median (min-max))")
    print(f"{'net':<14}{'numpy batch':>24}{'lightsim2grid loop':>24}{'NR bound':>24}"
          f"{'best/bound':>12}")
    best_method = {}
    for name in ("case33bw", "cigre_mv", "mv_open_ring", "case118"):
        a = _adapter(name, "lightsim2grid")
        x = a.element_matrix(*_day(a, name, 96, seed=2))
        a.solve_day(x[:1])
        res = {}
        for method in ("numpy", "lightsim2grid"):
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                d = a.solve_day(x, method=method)
                times.append((time.perf_counter() - t0) / 96)
                assert d.converged.all()
            res[method] = stats(times)
        m = a.fast.model
        sb = m.sbus(x)
        solver = _ls_solver()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            for k in range(96):
                v = m.v_solution.copy()
                solver.solve(m.ybus, v, sb[k], m.ref, m.slack_weights, m.pv, m.pq, 20, 1e-8)
            times.append((time.perf_counter() - t0) / 96)
        res["bound"] = stats(times)
        best = min(("numpy", "lightsim2grid"), key=lambda k: res[k][0])
        best_method[name] = best
        print(f"{name:<14}{fmt(res['numpy']):>24}{fmt(res['lightsim2grid']):>24}"
              f"{fmt(res['bound']):>24}{res[best][0] / res['bound'][0]:>10.1f} ({best})")
        ratio = res[best][0] / res["bound"][0]
        print(f"goal: batched replay within 10x the NR bound per step ({name}): {ratio:.1f}x "
              f"-> {'met' if ratio <= 10 else 'missed'}")
        out.append({"section": "batch", "net": name, **{k: v[0] for k, v in res.items()},
                    "best": best})

    # 1000 scenarios x 96 steps x three feeders: a fraction, extrapolated
    feeders = ("case33bw", "cigre_mv", "mv_open_ring")
    adapters = {n: _adapter(n, "lightsim2grid") for n in feeders}
    xs = {n: adapters[n].element_matrix(*_day(adapters[n], n, 96 * scenarios, seed=3))
          for n in feeders}
    for n in feeders:
        adapters[n].solve_day(xs[n][:1])
    t0 = time.perf_counter()
    ok = True
    for n in feeders:
        d = adapters[n].solve_day(xs[n], method=best_method[n])
        ok &= bool(d.converged.all())
    wall = time.perf_counter() - t0
    est = wall * 1000 / scenarios
    print(f"\nreplay: {scenarios} scenarios x 96 steps x 3 feeders in {wall:.2f} s (one process, "
          f"all converged: {ok}); 1000 scenarios extrapolated: {est:.1f} s on one core, "
          f"{est / 2:.1f} s on two (independent scenarios split over two processes)")
    print(f"goal: 1000-scenario x 96-step x 3-feeder replay < 120 s on 2 cores: {est / 2:.1f} s "
          f"(extrapolated from {scenarios} scenarios) -> {'met' if est / 2 < 120 else 'missed'}")
    out.append({"section": "replay", "scenarios": scenarios, "wall_s": wall,
                "est_1000_one_core_s": est})


def _engine_run(backend: str, step_min: int):
    from experiments.build import build_world, realisation
    from experiments.config import load, resolve
    from experiments.specs import site_spec
    from policies.registry import make_policy
    from sim.engine import Engine
    from sim.systems import DnSites

    cfg = load(resolve("three-dn"), overrides=[f"scenario.step_min={step_min}",
                                               f'power_flow.backend="{backend}"'])
    noise, pol, fleet = np.random.SeedSequence(cfg.scenario.seed).spawn(3)
    specs = [site_spec(n, g, cfg.power_flow) for n, g in cfg.grids.items()]
    actual = realisation(cfg, specs, np.random.default_rng(noise))
    world = build_world(cfg, actual, np.random.default_rng(fleet))
    name, params = cfg.policy_runs()[0]
    engine = Engine(DnSites(world.problem, world.vehicles, world.sites),
                    make_policy(name, **params), rng=np.random.default_rng(pol))
    t0 = time.perf_counter()
    rec = engine.run()
    wall = time.perf_counter() - t0
    return wall, engine, rec, world


def _bare_loop(world, sites_df, steps: int) -> float:
    """pandapower updates + runpp with the engine's options and injections, no engine."""
    jobs = []
    for site in world.sites:
        a = site.adapter
        net = copy.deepcopy(a.net)
        df = sites_df[sites_df.site == site.name].sort_values("time_min")
        gen_cols = [f"dispatch_{g}_mw" for g in a.gen_names]
        jobs.append((net, a, df.load_mw.to_numpy(), (df.pv_mw.to_numpy()[:, None]
                                                     * site.pv_shares[None, :]),
                     df[gen_cols].to_numpy(), df.dispatch_dr_mw.to_numpy(),
                     (df.dispatch_es_ch_mw - df.dispatch_es_dis_mw).to_numpy(),
                     df.mess_p_mw.to_numpy()))
    o = world.sites[0].adapter.options
    t0 = time.perf_counter()
    for k in range(steps):
        for net, a, load, pv, gen, dr, es, mess in jobs:
            net.load.loc[a.load_index, "p_mw"] = a.load_p_share * load[k]
            net.load.loc[a.load_index, "q_mvar"] = a.load_q_per_mw * load[k]
            net.sgen.loc[a.pv_index, "p_mw"] = pv[k]
            net.sgen.loc[a.gen_index, "p_mw"] = gen[k]
            net.sgen.at[a.dr_index, "p_mw"] = dr[k]
            net.storage.at[a.es_index, "p_mw"] = es[k]
            net.storage.at[a.mess_index, "p_mw"] = mess[k]
            pp.runpp(net, algorithm=o.algorithm, init="results", numba=False,
                     tolerance_mva=o.tolerance_mva, max_iteration=o.max_iteration)
    return (time.perf_counter() - t0) / steps


def _run_timeseries(world, sites_df, steps: int) -> float:
    """pandapower's own time series with ConstControl on the same per-step injections."""
    import pandas as pd
    from pandapower.control import ConstControl
    from pandapower.timeseries import DFData, OutputWriter, run_timeseries

    total = 0.0
    for site in world.sites:
        a = site.adapter
        net = copy.deepcopy(a.net)
        df = sites_df[sites_df.site == site.name].sort_values("time_min")
        data = {}
        for j in range(len(a.load_index)):
            data[f"lp{j}"] = a.load_p_share[j] * df.load_mw.to_numpy()
            data[f"lq{j}"] = a.load_q_per_mw[j] * df.load_mw.to_numpy()
        for j in range(a.pv_index.size):
            data[f"pv{j}"] = df.pv_mw.to_numpy() * site.pv_shares[j]
        for g in a.gen_names:
            data[f"g_{g}"] = df[f"dispatch_{g}_mw"].to_numpy()
        data["dr"] = df.dispatch_dr_mw.to_numpy()
        data["es"] = (df.dispatch_es_ch_mw - df.dispatch_es_dis_mw).to_numpy()
        data["mess"] = df.mess_p_mw.to_numpy()
        ds = DFData(pd.DataFrame(data))
        nl = len(a.load_index)
        ConstControl(net, "load", "p_mw", a.load_index, data_source=ds,
                     profile_name=[f"lp{j}" for j in range(nl)])
        ConstControl(net, "load", "q_mvar", a.load_index, data_source=ds,
                     profile_name=[f"lq{j}" for j in range(nl)])
        sg = list(a.pv_index) + list(a.gen_index) + [a.dr_index]
        names = ([f"pv{j}" for j in range(a.pv_index.size)] + [f"g_{g}" for g in a.gen_names]
                 + ["dr"])
        ConstControl(net, "sgen", "p_mw", sg, data_source=ds, profile_name=names)
        ConstControl(net, "storage", "p_mw", [a.es_index, a.mess_index], data_source=ds,
                     profile_name=["es", "mess"])
        ow = OutputWriter(net, output_path=None, log_variables=[("res_bus", "vm_pu")])
        o = a.options
        t0 = time.perf_counter()
        run_timeseries(net, time_steps=range(steps), verbose=False, numba=False,
                       algorithm=o.algorithm, tolerance_mva=o.tolerance_mva,
                       max_iteration=o.max_iteration)
        total += time.perf_counter() - t0
        del ow
    return total / steps


def bench_engine(reps: int, step_min: int, out: list[dict]) -> None:
    steps = 1440 // step_min
    print(f"\n## Engine step, three-DN scenario ({steps} x {step_min}-min steps, policy greedy; "
          f"ms per step over the three DNs, median (min-max))")
    rows = {}
    world = sites_df = None
    for backend in ("runpp", "lightsim2grid"):
        walls, grid, policy = [], [], []
        for _ in range(reps):
            wall, engine, rec, w = _engine_run(backend, step_min)
            walls.append(wall / steps)
            grid.append(engine.timings.grid_s / steps)
            policy.append(engine.timings.policy_s / steps)
            if backend == "runpp":
                world, sites_df = w, rec.frames()["sites"]
        rows[f"engine ({backend})"] = stats(walls)
        rows[f"  of which sites ({backend})"] = stats(grid)
    rows["bare loop: pandas updates + runpp"] = stats(
        [_bare_loop(world, sites_df, steps) for _ in range(reps)])
    rows["pandapower run_timeseries"] = stats(
        [_run_timeseries(world, sites_df, steps) for _ in range(reps)])
    for k, v in rows.items():
        print(f"{k:<40}{fmt(v):>26}")
    bare = rows["bare loop: pandas updates + runpp"][0]
    ts = rows["pandapower run_timeseries"][0]
    for backend in ("runpp", "lightsim2grid"):
        e = rows[f"engine ({backend})"][0]
        print(f"engine ({backend}) / bare loop = {e / bare:.2f}; / run_timeseries = {e / ts:.2f}")
        met = "met" if e <= 1.1 * bare else "missed"
        print(f"goal: engine step ({backend} backend) <= 1.1x bare runpp loop: {e / bare:.2f}x "
              f"-> {met}")
        met = "met" if e <= ts else "missed"
        print(f"goal: engine step ({backend} backend) <= run_timeseries: {e / ts:.2f}x -> {met}")
        out.append({"section": "engine", "backend": backend, "engine_ms": 1e3 * e,
                    "bare_ms": 1e3 * bare, "ts_ms": 1e3 * ts, "ratio_bare": e / bare,
                    "ratio_ts": e / ts})


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int, default=None)
    args = ap.parse_args(argv)
    reps = args.reps or (3 if args.quick else 5)
    ok, why = lightsim2grid_status()
    print(f"lightsim2grid available: {ok} {why}")
    out: list[dict] = []
    bench_power_flow(reps, 12 if args.quick else 48, out)
    bench_batched(reps, 20 if args.quick else 100, out)
    bench_engine(reps if not args.quick else 2, 15, out)
    return out


if __name__ == "__main__":
    main()
