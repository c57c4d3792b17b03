"""Print MODELS.md A.11's reference results next to ours (mean profile, HiGHS).

    python benchmarks/a11_reference.py [--gap 1e-4]

Solves the no-MESS baseline, the mobile plan and "fixed at DN1" under equal and dynamic weights
(kappa 0.5, alpha = beta = 1, eps 1e-3) and prints values, per-DN SFI, routes and timings.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from experiments.build import build_world
from experiments.config import load, resolve
from policies.sfi import Options, SfiContext, instance, make_weights, run

REFERENCE = {  # MODELS.md A.11: weights -> (A, B, fixed DN1)
    "equal": (17.87, 21.81, 19.63),
    "dynamic": (17.79, 21.88, 21.40),
}


def route(plan, ctx) -> str:
    where = plan.site_of()
    out = []
    for m in range(where.shape[0]):
        names = [ctx.sites[n].name if n >= 0 else "transit" for n in where[m]]
        runs, start = [], 0
        for t in range(1, len(names) + 1):
            if t == len(names) or names[t] != names[start]:
                runs.append(f"{names[start]} h{start + 1}-{t}")
                start = t
        out.append(", ".join(runs))
    return " | ".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gap", type=float, default=1e-4)
    args = ap.parse_args()
    world = build_world(load(resolve("three-dn")), None, np.random.default_rng(0))
    ctx = SfiContext.from_problem(world.problem)
    load_mw, pv_mw = ctx.forecast
    prob = np.ones(1)
    opt = Options(mip_gap=args.gap, time_limit_s=300)
    print(f"A.11 reference vs mescosim (HiGHS, mip_gap {args.gap:g})")
    for kind in ("equal", "dynamic"):
        w = make_weights(ctx, load_mw, pv_mw, prob, kind, opt)
        if kind == "dynamic":
            fd = w.fd[0]
            hours = {s.name: [int(t) + 1 for t in np.flatnonzero(fd[i] > 0)]
                     for i, s in enumerate(ctx.sites)}
            print(f"  NI = {np.round(w.ni, 3).tolist()}, deficit hours (1-based) = {hours}")
        for label, kw, mess, ref in (("A (no MESS)", {}, False, 0), ("B (mobile)", {}, True, 1),
                                     ("fixed at DN1", {"fix_site": 0}, True, 2)):
            t0 = time.perf_counter()
            plan, out = run(instance(ctx, load_mw, pv_mw, prob, w.w, with_mess=mess, **kw), opt)
            dt = time.perf_counter() - t0
            val = plan.value[0]
            r = REFERENCE[kind][ref]
            per_dn = np.round(plan.sfi[0].sum(axis=1), 2).tolist()
            diff = 100 * (val / r - 1)
            print(f"  {kind:7s} {label:13s} {val:7.3f}  ref {r:5.2f}  ({diff:+.2f} %)"
                  f"  per-DN {per_dn}  {out.status}, {dt:.1f} s")
            if mess and not kw:
                print(f"          route: {route(plan, ctx)}")


if __name__ == "__main__":
    main()
