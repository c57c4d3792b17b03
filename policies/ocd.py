"""The OCD coordinator of seed 001 (MODELS.md B.11-B.12): Lagrangian relaxation of the
connection consensus ``w_hat = x_S`` between a transport layer and a power layer.

* Transport layer (41): one shortest path per train on the TSN (a DAG), arc costs
  ``c_a + lambda[k, i, t]`` on station arcs, solved exactly by dynamic programming in time order.
* Power layer (42): the UC/storage MILP of :mod:`policies.tsn_milp` with its own connection
  binaries ``w_hat`` priced at ``-lambda``. Its **dual bound** (never its incumbent) enters the
  lower bound, so ``LB`` is always valid.
* Multipliers (44)-(45): subgradient ``g = x_S - w_hat`` over the whole route vector, step
  ``s = rho (UB - LB^v) / ||g||^2``, ``rho`` halved after iteration 10.
* Upper bounds (step 4): every new route set in ``RS`` is evaluated by fixing the connections in
  the power MILP; ``UB = f_T + f_P``.
* Stopping (step 5): ``v >= v_max``; relative gap ``<= eps``; or ``RS`` unchanged for
  ``stall_iters`` consecutive iterations.

The two layers exchange only connection schedules and prices. Variants:

* ``"literal"``: exactly (37)-(45) and steps 1-6.
* ``"enhanced"`` (default): mobility cuts E1 in the power layer (they use only the travel times
  and start/end stations, which the paper lets the power layer know) and route repair E2
  (the feasible route closest to the power layer's request, a shortest path with station-arc
  costs ``c_a - M w_hat``).

Further levers, each a switch so that what it buys can be measured:

* ``request_candidates``: per train, also evaluate the repaired route of each train combined
  with the other trains' current routes (candidate routes from the power layer's requests).
* ``polish``: after stopping, re-evaluate the best ``polish_routes`` route sets of ``RS`` with
  the power MILP solved to ``polish_gap``; the incumbent is the best of them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from policies.tsn_milp import (
    TsnModel,
    TsnOptions,
    TsnPlan,
    arc_cost,
    build,
    connections_of_path,
    extract,
    initial_line_rows,
    solve_lazy,
)
from sim.tsn import TransmissionCase

Arc = tuple[int, int, int, int]


# ------------------------------------------------------------------------ transport layer (41)
def shortest_path(case: TransmissionCase, k: int, station_cost: np.ndarray) -> tuple[list[Arc],
                                                                                        float]:
    """Cheapest TSN path of train ``k`` from ``(start, ready_h)`` to ``(end, T)``.

    ``station_cost[i, t]`` is added to the station arc of hour ``t + 1`` (0-based column ``t``);
    route arcs cost ``c_h * tau``. Exact DP in time order (the TSN is a DAG)."""
    tr = case.trains[k]
    n, T = len(case.stations), case.T
    i0, iT = case.station_pos(tr.start), case.station_pos(tr.end)
    INF = float("inf")
    best = np.full((n, T + 1), INF)
    back: dict[tuple[int, int], Arc] = {}
    r = tr.ready_h  # a train in transit reaches its start station at hour r
    best[i0, r] = 0.0
    tau = case.travel_h
    for th in range(r, T):
        for i in range(n):
            c0 = best[i, th]
            if c0 == INF:
                continue
            # station arc
            c = c0 + float(station_cost[i, th])
            if c < best[i, th + 1] - 1e-12:
                best[i, th + 1] = c
                back[i, th + 1] = (i, th, i, th + 1)
            for j in range(n):
                if j == i:
                    continue
                th2 = th + int(tau[i, j])
                if th2 > T:
                    continue
                a = (i, th, j, th2)
                c = c0 + arc_cost(case, a)
                if c < best[j, th2] - 1e-12:
                    best[j, th2] = c
                    back[j, th2] = a
    if best[iT, T] == INF:
        raise ValueError(f"train {tr.name}: no TSN path from {tr.start} to {tr.end} in {T} h")
    path, node = [], (iT, T)
    while node != (i0, r):
        a = back[node]
        path.append(a)
        node = (a[0], a[1])
    return path[::-1], float(best[iT, T])


def route_connections(case: TransmissionCase, paths: list[list[Arc]]) -> np.ndarray:
    """(K, I, T) connection schedule of one path per train."""
    n, T = len(case.stations), case.T
    return np.stack([connections_of_path(p, n, T) for p in paths])


def transport_cost(case: TransmissionCase, paths: list[list[Arc]]) -> float:
    return float(sum(arc_cost(case, a) for p in paths for a in p))


# ------------------------------------------------------------------------ options and results
@dataclass(frozen=True)
class OcdOptions:
    variant: str = "enhanced"  # "literal" | "enhanced"
    rho0: float = 1.0
    halve_after: int = 10
    max_iter: int = 50
    eps: float = 1e-3
    stall_iters: int = 2
    repair_m: float = 1e3  # M of E2
    mobility: str = "pairwise"  # E1 form of the enhanced variant: "pairwise" | "exact"
    request_candidates: bool = False
    polish: bool = False
    polish_routes: int = 3
    polish_gap: float = 1e-6
    power: TsnOptions = field(default_factory=lambda: TsnOptions(time_limit_s=120.0,
                                                                 mip_gap=1e-4))

    def __post_init__(self) -> None:
        if self.variant not in ("literal", "enhanced"):
            raise ValueError(f"variant: must be 'literal' or 'enhanced', got {self.variant!r}")


@dataclass(frozen=True)
class OcdIteration:
    v: int
    lb_v: float  # phi(lambda^v) from the power layer's dual bound; -inf without one
    lb: float
    ub: float
    phi_t: float
    phi_p_bound: float  # nan when the power layer's solve gave no dual bound (CBC)
    phi_p_status: str
    g_norm2: float
    step: float
    rho: float
    routes_in_rs: int
    new_routes: int
    power_s: float
    transport_s: float
    ub_s: float


@dataclass
class OcdResult:
    plan: TsnPlan | None  # dispatch of the incumbent routes
    routes: list[list[Arc]] | None
    ub: float
    lb: float
    history: list[OcdIteration]
    stop_reason: str
    options: OcdOptions
    total_s: float
    evaluated: dict = field(default_factory=dict)  # route key -> UB (inf if infeasible)

    @property
    def gap(self) -> float:
        return (self.ub - self.lb) / abs(self.ub) if np.isfinite(self.ub) else float("inf")

    @property
    def iterations(self) -> int:
        return len(self.history)


def _key(paths: list[list[Arc]]) -> tuple:
    return tuple(tuple(p) for p in paths)


# ------------------------------------------------------------------------ algorithm (B.12)
def run_ocd(case: TransmissionCase, opt: OcdOptions | None = None,
            initial_routes: list[list[Arc]] | None = None) -> OcdResult:
    """Steps 1-6 of B.12 on ``case``; returns the incumbent and the UB/LB history.

    ``initial_routes`` (one TSN path per train, e.g. the rest of a plan being followed) are
    evaluated first, so the incumbent is never worse than they are."""
    opt = opt or OcdOptions()
    t_start = time.perf_counter()
    K, n, T = len(case.trains), len(case.stations), case.T
    popt = replace(opt.power, mobility=opt.mobility if opt.variant == "enhanced" else "none")
    rows = initial_line_rows(case, popt) if popt.line_limits else set()
    model = build(case, "power", popt, lines=rows)
    lam = np.zeros((K, n, T))
    ub, lb = float("inf"), float("-inf")
    best_paths: list[list[Arc]] | None = None
    best_plan: TsnPlan | None = None
    rs: dict[tuple, float] = {}
    rs_plans: dict[tuple, TsnPlan] = {}
    history: list[OcdIteration] = []
    rho, stall, stop = opt.rho0, 0, "max_iter"

    def evaluate(paths: list[list[Arc]], gap: float | None = None) -> float:
        nonlocal ub, best_paths, best_plan
        key = _key(paths)
        if key in rs and gap is None:
            return rs[key]
        w = route_connections(case, paths)
        model.fix_connections(w)
        model.set_multipliers(np.zeros_like(lam))
        if gap is not None:
            model.opt = replace(model.opt, mip_gap=gap)
        out, rounds = solve_lazy(model)
        model.opt = replace(model.opt, mip_gap=popt.mip_gap)
        model.free_connections()
        if out.has_solution:
            plan = extract(model, out, rounds)
            value = transport_cost(case, paths) + plan.operating_cost
            rs_plans[key] = plan
        else:
            value = float("inf")
        rs[key] = min(value, rs.get(key, float("inf")))
        if value < ub:
            ub, best_paths, best_plan = value, paths, rs_plans[key]
        return value

    if initial_routes is not None:
        evaluate([list(p) for p in initial_routes])
    for v in range(1, opt.max_iter + 1):
        # step 3: subproblems
        t0 = time.perf_counter()
        sp = [shortest_path(case, k, lam[k]) for k in range(K)]
        paths = [p for p, _ in sp]
        phi_t = float(sum(c for _, c in sp))
        t_tr = time.perf_counter() - t0
        t0 = time.perf_counter()
        model.set_multipliers(lam)
        out, _ = solve_lazy(model)
        t_pw = time.perf_counter() - t0
        if not out.has_solution:
            # no connections to price: stop with what the iterations so far found
            stop = f"power_layer_{out.status}"
            break
        w_hat = np.zeros_like(lam)
        for key, var in model.v["w"].items():
            w_hat[key] = round(var.varValue or 0.0)
        # a time-limited solve without a dual bound (CBC through PuLP) gives no valid lower
        # bound this iteration; the step then uses the incumbent's value, which is above phi
        lb_v = phi_t + out.bound if out.bound is not None else float("-inf")
        lb = max(lb, lb_v)
        phi_v = lb_v if out.bound is not None else phi_t + out.objective
        # step 4: upper bounds
        t0 = time.perf_counter()
        before = len(rs)
        evaluate(paths)
        if opt.variant == "enhanced":
            rep = [shortest_path(case, k, -opt.repair_m * w_hat[k])[0] for k in range(K)]
            evaluate(rep)
            if opt.request_candidates:
                for k in range(K):
                    mixed = list(paths)
                    mixed[k] = rep[k]
                    evaluate(mixed)
        t_ub = time.perf_counter() - t0
        new = len(rs) - before
        stall = stall + 1 if new == 0 else 0
        x_s = route_connections(case, paths)
        g = x_s - w_hat
        g2 = float((g ** 2).sum())
        if v > opt.halve_after:
            rho = rho / 2
        step = rho * (ub - phi_v) / g2 if g2 > 0 and np.isfinite(ub) else 0.0
        history.append(OcdIteration(v, lb_v, lb, ub, phi_t,
                                    float(out.bound) if out.bound is not None else float("nan"),
                                    out.status, g2, step, rho, len(rs), new, t_pw, t_tr, t_ub))
        # step 5: convergence
        if np.isfinite(ub) and (ub - lb) / abs(ub) <= opt.eps:
            stop = "gap"
            break
        if stall >= opt.stall_iters:
            stop = "routes_unchanged"
            break
        # step 6: multipliers (44)
        if g2 > 0:
            lam = lam + step * g
    if opt.polish and rs:
        for key in sorted(rs, key=rs.get)[: opt.polish_routes]:
            evaluate([list(p) for p in key], gap=opt.polish_gap)
    return OcdResult(best_plan, best_paths, ub, lb, history, stop, opt,
                     time.perf_counter() - t_start, dict(rs))


def power_model(case: TransmissionCase, opt: TsnOptions) -> TsnModel:
    """The power layer alone (for tests and benchmarks)."""
    return build(case, "power", opt, lines=initial_line_rows(case, opt))
