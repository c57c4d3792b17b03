"""The ``dp`` router: exact backward induction over (phase, time step, node, SOC bucket) (D.4-D.6).

**Mission** (the repository's swap, D.4): a truck leaves the depot with a fresh 350 kWh MESS at
``soc_init_frac`` (0.90), drives to one construction site that still needs a swap, leaves the
fresh MESS there (delivering ``s E_cap``, at least ``soc_deliver_min_frac``), picks up the site's
depleted MESS at ``soc_old_frac`` (0.20) and must be back at the depot with it at
``soc_end_frac`` (0.60) or more by the end of the day. Traction energy comes from the carried
MESS [S-repo].

**State** ``x = (phase, k, v, j)``; phase 0 = carrying the fresh MESS, 1 = carrying the old one.
**Actions** (``sim.coopt`` codes): END at the depot (phase 1 with ``s >= s_end``, or phase 0 =
the truck does not go), SERVE an unserved site in its time window, MOVE along a road, CHARGE at a
charging site to any higher bucket up to ``soc_chg_max_frac`` (energy at ``p_chg_kw``, the last
step partial, paid at the step's price), DISCHARGE (V2G, only if ``allow_v2g``) and WAIT one step.
Waiting at the depot before departure is free (the driver starts work when the truck leaves) [P].

**Stage costs** (D.5): ``cost_per_km * d`` (toll + maintenance), wage for every step the truck is
busy, grid energy at price, degradation ``C_rep (dD_cal + dD_cyc)`` from the model's
per-transition tables, and at SERVE ``-pen * min(delivered, requirement)``: the penalty for unmet
site demand, ``pen * sum(requirement - delivered)``, differs from the sum of these stage terms
by the constant ``pen * sum(requirement)`` (``unmet_mode="energy"``, default). With
``unmet_mode="site"`` the SERVE term is ``-pen * requirement``: a site counts as met by any swap,
so the router minimises the operating cost of serving and has no reason to top up before a site.

**Recursion** (D.6): ``V(x) = min_a c(x, a) + V(f(x, a))``, ``V = +inf`` if nothing is feasible,
solved for ``k = K .. 0`` vectorised over the SOC buckets with NumPy. Every action but END
advances ``k``, so the state graph is a DAG in ``k`` and the recursion is exact for the
discretised model (``tests/test_dp_router.py`` checks it against brute-force enumeration). Ties
go to the first action in the order END, SERVE, MOVE (by node), CHARGE (by target), DISCHARGE,
WAIT. SOC after a drive is rounded *down* to a bucket (conservative, D.4), so the real SOC is
never below the planned one.

**Several trucks**: sequential DP [P]. Trucks are planned one after another in fleet order; each
sees only the sites not yet served by earlier trucks (updated remaining site demands) and the
charger slots they reserved (``chargers_per_site`` trucks per charging site and step). A truck
whose best plan is not to go (value 0) stops the sequence.

**Re-planning**: the solved value table covers every state, so :meth:`DPRouter.decide` returns
the optimal action from an observed state (phase, step, node, real SOC rounded down). In the
SimPy engine (``sim.systems.TruckMissions``) the trucks ask :meth:`DPRouter.decide`: they
follow their forward plan on the exact SOC (:func:`forward_plan`) while the simulation agrees
with it, and re-plan when it does not (another step or node, SOC off by more than
``soc_tol_frac``, or a planned action no longer feasible): the DP is solved again for that truck
from the simulated state, with the sites and charger slots of the other trucks' current plans held.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.coopt import (
    ACTION_NAMES,
    CHARGE,
    DISCHARGE,
    END,
    FRESH,
    MOVE,
    OLD,
    SERVE,
    WAIT,
    PlanStep,
    TruckDayProblem,
    TruckPlan,
)
from sim.types import Command, Decision, Problem, State, VehicleState

INF = math.inf
TIE_EPS = 1e-9


# ================================================================ transition helpers
# Each helper works on a vector of SOC buckets ``j`` (int array) and returns arrays over it; the
# DP and the scalar evaluator use the same helpers, so they cannot disagree on costs.
def _dt_h(p: TruckDayProblem, n_steps) -> np.ndarray:
    return np.asarray(n_steps, dtype=float) * p.step_min / 60.0


def _deg_usd(p: TruckDayProblem, j_from, j_to, hours) -> np.ndarray:
    return p.deg_cyc_usd[j_from, j_to] + p.deg_cal_usd_per_h[j_from, j_to] * hours


def move_outcome(p: TruckDayProblem, k: int, v: int, w: int, j: np.ndarray):
    """MOVE v -> w at step k: (n steps, next bucket, feasible, cost parts dict)."""
    n = int(p.move_steps[k, v, w])
    if n < 0:
        raise ValueError(f"no road {v} -> {w}")
    s = p.soc_grid_frac[j]
    e = float(p.move_e_kwh[k, v, w])
    epk = max(float(p.move_epeak_kwh[k, v, w]), 0.0)
    s_next = np.minimum(p.soc_grid_frac[-1], s - e / p.e_cap_kwh)
    feas = (s - epk / p.e_cap_kwh >= p.soc_min_frac - 1e-12) & (k + n <= p.n_steps)
    jn = np.floor((s_next - p.soc_min_frac) / p.soc_step_frac + 1e-9).astype(int)
    jn = np.clip(jn, 0, p.n_soc - 1)
    hours = float(_dt_h(p, n))
    parts = {"distance_usd": np.full(j.shape, p.cost_per_km_usd * p.dist_km[v, w]),
             "wage_usd": np.full(j.shape, p.wage_usd_per_h * hours),
             "energy_usd": np.zeros(j.shape),
             "degradation_usd": _deg_usd(p, j, jn, hours),
             "penalty_usd": np.zeros(j.shape)}
    return n, jn, feas, parts


def _cum_price(p: TruckDayProblem, v: int) -> np.ndarray:
    pr = np.nan_to_num(p.price_usd_per_kwh[:, v], nan=0.0)
    return np.concatenate([[0.0], np.cumsum(pr)])


def energy_steps(p: TruckDayProblem, e_kwh) -> np.ndarray:
    """Steps needed to move ``e_kwh`` at ``p_chg_kw`` (0 for no energy)."""
    per = p.p_chg_kw * p.step_min / 60.0
    return np.ceil(np.asarray(e_kwh, dtype=float) / per - 1e-9).astype(int)


def _energy_cost(p: TruckDayProblem, k: int, v: int, e_kwh: np.ndarray, q: np.ndarray,
                 cum: np.ndarray) -> np.ndarray:
    """Sum over steps r < q of price(k + r) * energy(r): full steps at p_chg, the last partial."""
    per = p.p_chg_kw * p.step_min / 60.0
    qq = np.maximum(q, 1)
    last = np.clip(k + qq - 1, 0, p.n_steps - 1)
    full_end = np.clip(k + qq - 1, 0, p.n_steps)
    price = np.nan_to_num(p.price_usd_per_kwh[:, v], nan=0.0)
    return per * (cum[full_end] - cum[k]) + price[last] * (e_kwh - (qq - 1) * per)


def charge_outcome(p: TruckDayProblem, k: int, v: int, j: np.ndarray, j2: np.ndarray,
                   free_cum: np.ndarray | None = None):
    """CHARGE at v from bucket j to bucket j2 (> j): (q, feasible, grid kWh, cost parts)."""
    s, s2 = p.soc_grid_frac[j], p.soc_grid_frac[j2]
    e_grid = np.maximum(s2 - s, 0.0) * p.e_cap_kwh / p.eta_ch
    q = energy_steps(p, e_grid)
    feas = (j2 > j) & (s2 <= p.soc_chg_max_frac + 1e-9) & (k + q <= p.n_steps)
    if free_cum is not None:
        end = np.clip(k + q, 0, p.n_steps)
        feas &= (free_cum[end] - free_cum[k]) == 0
    hours = _dt_h(p, q)
    parts = {"distance_usd": np.zeros(np.shape(feas)),
             "wage_usd": p.wage_usd_per_h * hours,
             "energy_usd": _energy_cost(p, k, v, e_grid, q, _cum_price(p, v)),
             "degradation_usd": _deg_usd(p, j, j2, hours),
             "penalty_usd": np.zeros(np.shape(feas))}
    return q, feas, e_grid, parts


def discharge_outcome(p: TruckDayProblem, k: int, v: int, j: np.ndarray, j2: np.ndarray,
                      free_cum: np.ndarray | None = None):
    """DISCHARGE (V2G) at v from bucket j down to j2: sells ``(s - s2) E_cap eta_dis``."""
    s, s2 = p.soc_grid_frac[j], p.soc_grid_frac[j2]
    e_batt = np.maximum(s - s2, 0.0) * p.e_cap_kwh
    q = energy_steps(p, e_batt)
    e_grid = e_batt * p.eta_dis
    feas = (j2 < j) & (k + q <= p.n_steps)
    if free_cum is not None:
        end = np.clip(k + q, 0, p.n_steps)
        feas &= (free_cum[end] - free_cum[k]) == 0
    hours = _dt_h(p, q)
    # the battery side at p_chg_kw sets the duration; the grid receives eta_dis of each step
    revenue = p.eta_dis * _energy_cost(p, k, v, e_batt, q, _cum_price(p, v))
    parts = {"distance_usd": np.zeros(np.shape(feas)),
             "wage_usd": p.wage_usd_per_h * hours,
             "energy_usd": -revenue,
             "degradation_usd": _deg_usd(p, j, j2, hours),
             "penalty_usd": np.zeros(np.shape(feas))}
    return q, feas, -e_grid, parts


def wait_outcome(p: TruckDayProblem, phase: int, k: int, v: int, j: np.ndarray):
    """WAIT one step. Free at the depot before departure (phase 0) [P]."""
    feas = np.full(j.shape, k + 1 <= p.n_steps)
    idle = phase == FRESH and v == p.depot
    hours = float(_dt_h(p, 1))
    zero = np.zeros(j.shape)
    parts = {"distance_usd": zero, "wage_usd": zero if idle else np.full(j.shape,
                                                                          p.wage_usd_per_h * hours),
             "energy_usd": zero, "degradation_usd": zero if idle else _deg_usd(p, j, j, hours),
             "penalty_usd": zero}
    return feas, parts


def serve_outcome(p: TruckDayProblem, k: int, ci: int, j: np.ndarray):
    """SERVE customer index ci at its node: (start step, end step, feasible, delivered, parts)."""
    k_s = max(k, p.window_start_steps[ci])
    k_e = k_s + p.serve_steps
    s = p.soc_grid_frac[j]
    feas = (s >= p.soc_deliver_min_frac - 1e-9) & (k_s <= p.window_end_steps[ci]) & (
        k_e <= p.n_steps)
    delivered = s * p.e_cap_kwh
    hours = float(_dt_h(p, k_e - k))
    wait_h = float(_dt_h(p, k_s - k))
    parts = {"distance_usd": np.zeros(j.shape), "wage_usd": np.full(j.shape,
                                                                  p.wage_usd_per_h * hours),
             "energy_usd": np.zeros(j.shape), "degradation_usd": _deg_usd(p, j, j, wait_h),
             "penalty_usd": -p.pen_unmet_usd_per_kwh * (
                 np.minimum(delivered, p.requirement_kwh[ci]) if p.unmet_mode == "energy"
                 else np.full(j.shape, p.requirement_kwh[ci]))}
    return k_s, k_e, feas, delivered, parts


def _total(parts: dict) -> np.ndarray:
    return (parts["distance_usd"] + parts["wage_usd"] + parts["energy_usd"]
            + parts["degradation_usd"] + parts["penalty_usd"])


# ================================================================ solver
@dataclass
class DPSolution:
    """Value function and argmin policy over (phase, k, node, bucket)."""

    value: np.ndarray  # (2, K + 1, N, J) USD
    kind: np.ndarray  # (2, K + 1, N, J) action code, -1 = infeasible
    arg: np.ndarray  # node (MOVE), customer index (SERVE), target bucket (CHARGE/DISCHARGE)
    available: tuple[bool, ...]
    busy: np.ndarray  # (K, N) charger slots already taken by earlier trucks
    solve_s: float = 0.0


def _free_cum(p: TruckDayProblem, busy: np.ndarray, v: int) -> np.ndarray:
    full = (busy[:, v] >= p.chargers_per_site).astype(int)
    return np.concatenate([[0], np.cumsum(full)])


def solve(p: TruckDayProblem, available: tuple[bool, ...] | None = None,
          busy: np.ndarray | None = None) -> DPSolution:
    """Backward induction for one truck (D.6)."""
    import time

    t0 = time.perf_counter()
    K, N, J = p.n_steps, p.n_nodes, p.n_soc
    available = tuple(available) if available is not None else (True,) * len(p.customers)
    if len(available) != len(p.customers):
        raise ValueError(f"available: {len(available)} flags for {len(p.customers)} customers")
    busy = np.zeros((K, N), dtype=int) if busy is None else np.asarray(busy, dtype=int)
    V = np.full((2, K + 1, N, J), INF)
    kind = np.full((2, K + 1, N, J), -1, dtype=np.int8)
    arg = np.full((2, K + 1, N, J), -1, dtype=np.int32)
    jj = np.arange(J)
    s = p.soc_grid_frac
    cust_at = {c: i for i, c in enumerate(p.customers)}
    out_nbrs = [[w for w in range(N) if w != v and np.isfinite(p.dist_km[v, w])]
                for v in range(N)]
    free = {v: _free_cum(p, busy, v) for v in p.charging_nodes}
    jt, js = np.meshgrid(jj, jj)  # js[a, b] = a (from), jt[a, b] = b (to)
    j_old = p.bucket(p.soc_old_frac)
    for k in range(K, -1, -1):
        for phase in (OLD, FRESH):
            for v in range(N):
                best = np.full(J, INF)
                bk = np.full(J, -1, dtype=np.int8)
                ba = np.full(J, -1, dtype=np.int32)

                def offer(cand, code, a, _best=best, _bk=bk, _ba=ba):
                    better = cand < _best - TIE_EPS
                    _best[better] = cand[better]
                    _bk[better] = code
                    if np.ndim(a) == 0:
                        _ba[better] = a
                    else:
                        _ba[better] = np.asarray(a)[better]

                if v == p.depot:
                    ok = np.ones(J, bool) if phase == FRESH else s >= p.soc_end_frac - 1e-9
                    offer(np.where(ok, 0.0, INF), END, -1)
                if k < K:
                    if phase == FRESH and v in cust_at and available[cust_at[v]]:
                        ci = cust_at[v]
                        _, k_e, feas, _, parts = serve_outcome(p, k, ci, jj)
                        if k_e <= K:
                            cand = np.where(feas, _total(parts) + V[OLD, k_e, v, j_old], INF)
                            offer(cand, SERVE, ci)
                    for w in out_nbrs[v]:
                        n, jn, feas, parts = move_outcome(p, k, v, w, jj)
                        if k + n <= K:
                            cand = np.where(feas, _total(parts) + V[phase, k + n, w, jn], INF)
                            offer(cand, MOVE, w)
                    if v in free:
                        q, feas, _, parts = charge_outcome(p, k, v, js, jt, free[v])
                        nxt = V[phase, np.clip(k + q, 0, K), v, jt]
                        cand = np.where(feas, _total(parts) + nxt, INF)
                        a = np.argmin(cand, axis=1)  # lowest target on ties
                        offer(cand[jj, a], CHARGE, a)
                        if p.allow_v2g:
                            q, feas, _, parts = discharge_outcome(p, k, v, js, jt, free[v])
                            nxt = V[phase, np.clip(k + q, 0, K), v, jt]
                            cand = np.where(feas, _total(parts) + nxt, INF)
                            a = np.argmin(cand, axis=1)
                            offer(cand[jj, a], DISCHARGE, a)
                    feas, parts = wait_outcome(p, phase, k, v, jj)
                    offer(np.where(feas, _total(parts) + V[phase, k + 1, v, jj], INF), WAIT, -1)
                V[phase, k, v] = best
                kind[phase, k, v] = bk
                arg[phase, k, v] = ba
    return DPSolution(V, kind, arg, available, busy, time.perf_counter() - t0)


# ================================================================ applying actions
def action_problem(p: TruckDayProblem, phase: int, k: int, v: int, code: int, a: int,
                   available: tuple[bool, ...]) -> str:
    """Why ``(code, a)`` cannot be taken at ``(phase, k, v)`` whatever the SOC ("" if it can).

    The checks shared by :func:`apply_action` (SOC bucket) and :func:`apply_continuous` (exact
    SOC); the SOC-dependent ones stay with each.
    """
    name = ACTION_NAMES[code]
    if code == END:
        return "" if v == p.depot else f"END away from the depot (node {v})"
    if k >= p.n_steps:
        return f"step {k}: the day is over"
    if code == SERVE:
        if phase != FRESH or a < 0 or a >= len(p.customers) or p.customers[a] != v:
            return f"SERVE customer index {a} not possible at node {v}"
        if not available[a]:
            return f"customer {p.customers[a]} already served"
    elif code == MOVE:
        if a < 0 or a >= p.n_nodes or a == v or not np.isfinite(p.dist_km[v, a]):
            return f"no road {v} -> {a}"
    elif code in (CHARGE, DISCHARGE):
        if v not in p.charging_nodes:
            return f"{name.upper()} at node {v}, which is not a charging site"
        if not 0 <= a < p.n_soc:
            return f"{name.upper()} target bucket {a} outside the SOC grid"
        if code == DISCHARGE and not p.allow_v2g:
            return "DISCHARGE with allow_v2g off"
    return ""


def apply_action(p: TruckDayProblem, phase: int, k: int, v: int, j: int, code: int, a: int,
                 available: tuple[bool, ...] | None = None, busy: np.ndarray | None = None
                 ) -> tuple[PlanStep | None, tuple[int, int, int, int] | None, str]:
    """Apply one action to a scalar state: (step, next state or None if END, problem or "")."""
    jv = np.array([j])
    s0 = float(p.soc_grid_frac[j])
    available = available if available is not None else (True,) * len(p.customers)
    name = ACTION_NAMES[code]
    problem = action_problem(p, phase, k, v, code, a, available)
    if problem:
        return None, None, problem
    if code == END:
        if phase == OLD and s0 < p.soc_end_frac - 1e-9:
            return None, None, f"END with SOC {s0:.2f} < soc_end {p.soc_end_frac}"
        return PlanStep(name, k, k, v, v, phase, s0, s0), None, ""
    if code == SERVE:
        k_s, k_e, feas, delivered, parts = serve_outcome(p, k, a, jv)
        if not feas[0]:
            return None, None, f"SERVE at node {v}, step {k}: SOC or window infeasible"
        j2 = p.bucket(p.soc_old_frac)
        st = PlanStep(name, k, k_e, v, v, phase, s0, float(p.soc_grid_frac[j2]),
                      customer=p.customers[a], delivered_kwh=float(delivered[0]),
                      **{x: float(y[0]) for x, y in parts.items()})
        return st, (OLD, k_e, v, j2), ""
    if code == MOVE:
        n, jn, feas, parts = move_outcome(p, k, v, a, jv)
        if not feas[0]:
            return None, None, f"MOVE {v} -> {a} at step {k}: SOC below minimum or past the day"
        st = PlanStep(name, k, k + n, v, a, phase, s0, float(p.soc_grid_frac[jn[0]]),
                      dist_km=float(p.dist_km[v, a]),
                      traction_kwh=float(p.move_e_kwh[k, v, a]),
                      **{x: float(y[0]) for x, y in parts.items()})
        return st, (phase, k + n, a, int(jn[0])), ""
    if code in (CHARGE, DISCHARGE):
        free = _free_cum(p, busy, v) if busy is not None else None
        fn = charge_outcome if code == CHARGE else discharge_outcome
        q, feas, e_grid, parts = fn(p, k, v, jv, np.array([a]), free)
        if not feas[0]:
            return None, None, f"{name.upper()} at node {v}, step {k} to bucket {a} infeasible"
        st = PlanStep(name, k, k + int(q[0]), v, v, phase, s0, float(p.soc_grid_frac[a]),
                      grid_kwh=float(e_grid[0]), **{x: float(y[0]) for x, y in parts.items()})
        return st, (phase, k + int(q[0]), v, a), ""
    if code == WAIT:
        feas, parts = wait_outcome(p, phase, k, v, jv)
        st = PlanStep(name, k, k + 1, v, v, phase, s0, s0,
                      **{x: float(y[0]) for x, y in parts.items()})
        return st, (phase, k + 1, v, j), ""
    raise ValueError(f"unknown action code {code}")


def evaluate(p: TruckDayProblem, actions: list[tuple[int, int]],
             start: tuple[int, int, int, int] | None = None,
             available: tuple[bool, ...] | None = None, busy: np.ndarray | None = None
             ) -> TruckPlan:
    """Run a list of ``(code, arg)`` actions from ``start`` under the DP's model (same costs).

    The plan is infeasible (``feasible=False`` with the reason) if an action is not allowed or
    the list does not end with END.
    """
    state = start or (FRESH, 0, p.depot, p.bucket(p.soc_init_frac))
    steps: list[PlanStep] = []
    for code, a in actions:
        if state is None:
            return TruckPlan(p.name, tuple(steps), False, "actions after END")
        st, nxt, why = apply_action(p, *state, code, a, available, busy)
        if st is None:
            return TruckPlan(p.name, tuple(steps), False, why)
        steps.append(st)
        state = nxt
    if state is not None:
        return TruckPlan(p.name, tuple(steps), False, "the plan does not END at the depot")
    return TruckPlan(p.name, tuple(steps), True)


def extract_actions(p: TruckDayProblem, sol: DPSolution,
                    start: tuple[int, int, int, int] | None = None) -> list[tuple[int, int]]:
    """Follow the argmin policy from ``start`` (default: depot, step 0, initial SOC)."""
    state = start or (FRESH, 0, p.depot, p.bucket(p.soc_init_frac))
    out = []
    while state is not None:
        phase, k, v, j = state
        code, a = int(sol.kind[state]), int(sol.arg[state])
        if code < 0:
            raise RuntimeError(f"{p.name}: no feasible action from state {state}")
        out.append((code, a))
        _, state, why = apply_action(p, phase, k, v, j, code, a, sol.available, sol.busy)
        if why:
            raise RuntimeError(f"{p.name}: the DP policy took an infeasible action: {why}")
    return out


def apply_continuous(p: TruckDayProblem, phase: int, k: int, v: int, soc: float, code: int,
                     a: int, available: tuple[bool, ...] | None = None,
                     busy: np.ndarray | None = None
                     ) -> tuple[PlanStep | None, tuple[int, int, int, float] | None, str]:
    """:func:`apply_action` on a continuous SOC: what the truck really does with the action.

    The DP decides on the bucket ``bucket(soc)`` (rounded down), but the battery keeps its exact
    SOC: a drive takes ``e / E_cap`` off it, a charge tops it up to the target bucket's SOC from
    where it is (less grid energy than from the bucket), a swap delivers ``soc E_cap``. Degradation
    costs use the per-transition tables at the buckets of the exact SOCs. This is the model the
    SimPy engine (``sim.systems.TruckMissions``) executes; its runs are compared with these plans.
    """
    available = available if available is not None else (True,) * len(p.customers)
    name = ACTION_NAMES[code]
    j = max(p.bucket(soc), 0)
    jv = np.array([j])
    top = float(p.soc_grid_frac[-1])
    problem = action_problem(p, phase, k, v, code, a, available)
    if problem:
        return None, None, problem
    if code == END:
        if phase == OLD and soc < p.soc_end_frac - 1e-9:
            return None, None, f"END with SOC {soc:.3f} < soc_end {p.soc_end_frac}"
        return PlanStep(name, k, k, v, v, phase, soc, soc), None, ""
    if code == SERVE:
        k_s = max(k, p.window_start_steps[a])
        k_e = k_s + p.serve_steps
        if soc < p.soc_deliver_min_frac - 1e-9 or k_s > p.window_end_steps[a] or k_e > p.n_steps:
            return None, None, f"SERVE at node {v}, step {k}: SOC or window infeasible"
        delivered = soc * p.e_cap_kwh
        req = p.requirement_kwh[a]
        pen = -p.pen_unmet_usd_per_kwh * (min(delivered, req) if p.unmet_mode == "energy"
                                          else req)
        st = PlanStep(name, k, k_e, v, v, phase, soc, p.soc_old_frac, customer=p.customers[a],
                      delivered_kwh=delivered, wage_usd=p.wage_usd_per_h * float(_dt_h(p, k_e - k)),
                      degradation_usd=p.deg_usd(soc, soc, float(_dt_h(p, k_s - k))),
                      penalty_usd=pen)
        return st, (OLD, k_e, v, p.soc_old_frac), ""
    if code == MOVE:
        n = int(p.move_steps[k, v, a])
        e = float(p.move_e_kwh[k, v, a])
        peak = max(float(p.move_epeak_kwh[k, v, a]), 0.0)
        if soc - peak / p.e_cap_kwh < p.soc_min_frac - 1e-12 or k + n > p.n_steps:
            return None, None, f"MOVE {v} -> {a} at step {k}: SOC below minimum or past the day"
        s1 = min(top, soc - e / p.e_cap_kwh)
        hours = float(_dt_h(p, n))
        st = PlanStep(name, k, k + n, v, a, phase, soc, s1, dist_km=float(p.dist_km[v, a]),
                      traction_kwh=e, distance_usd=p.cost_per_km_usd * float(p.dist_km[v, a]),
                      wage_usd=p.wage_usd_per_h * hours,
                      degradation_usd=p.deg_usd(soc, s1, hours))
        return st, (phase, k + n, a, s1), ""
    if code in (CHARGE, DISCHARGE):
        s2 = float(p.soc_grid_frac[a])
        if code == CHARGE:
            ok = s2 > soc + 1e-12 and s2 <= p.soc_chg_max_frac + 1e-9
            e_batt = max(s2 - soc, 0.0) * p.e_cap_kwh
            e_move = e_batt / p.eta_ch
        else:
            ok = s2 < soc - 1e-12
            e_batt = max(soc - s2, 0.0) * p.e_cap_kwh
            e_move = e_batt
        q = int(energy_steps(p, e_move))
        ok = ok and k + q <= p.n_steps
        if ok and busy is not None:
            free = _free_cum(p, busy, v)
            ok = (free[min(k + q, p.n_steps)] - free[k]) == 0
        if not ok:
            return None, None, f"{name.upper()} at node {v}, step {k} to bucket {a} infeasible"
        cost = float(_energy_cost(p, k, v, np.array([e_move]), np.array([q]),
                                  _cum_price(p, v))[0])
        grid_kwh = e_move if code == CHARGE else -e_batt * p.eta_dis
        energy_usd = cost if code == CHARGE else -p.eta_dis * cost
        hours = float(_dt_h(p, q))
        st = PlanStep(name, k, k + q, v, v, phase, soc, s2, grid_kwh=grid_kwh,
                      wage_usd=p.wage_usd_per_h * hours, energy_usd=energy_usd,
                      degradation_usd=p.deg_usd(soc, s2, hours))
        return st, (phase, k + q, v, s2), ""
    if code == WAIT:
        _, parts = wait_outcome(p, phase, k, v, jv)
        st = PlanStep(name, k, k + 1, v, v, phase, soc, soc,
                      **{x: float(y[0]) for x, y in parts.items()})
        return st, (phase, k + 1, v, soc), ""
    raise ValueError(f"unknown action code {code}")


def forward_plan(p: TruckDayProblem, sol: DPSolution,
                 start: tuple[int, int, int, float] | None = None) -> TruckPlan:
    """The DP policy run forward from ``start`` with the exact SOC (:func:`apply_continuous`).

    At each state the action is the argmin at ``bucket(soc)``; it is always feasible at the exact
    SOC, which is never below the bucket's. This is the plan the simulation is held to.
    """
    state = start or (FRESH, 0, p.depot, p.soc_init_frac)
    steps: list[PlanStep] = []
    while state is not None:
        phase, k, v, soc = state
        j = p.bucket(soc)
        if j < 0 or k > p.n_steps or int(sol.kind[phase, k, v, j]) < 0:
            return TruckPlan(p.name, tuple(steps), False,
                             f"no feasible action from phase {phase}, step {k}, node {v}, "
                             f"SOC {soc:.3f}")
        code, a = int(sol.kind[phase, k, v, j]), int(sol.arg[phase, k, v, j])
        st, state, why = apply_continuous(p, phase, k, v, soc, code, a, sol.available, sol.busy)
        if st is None:
            return TruckPlan(p.name, tuple(steps), False, why)
        steps.append(st)
    return TruckPlan(p.name, tuple(steps), True)


def reserve(p: TruckDayProblem, plan: TruckPlan, busy: np.ndarray) -> np.ndarray:
    """Charger slots taken by ``plan`` added to ``busy`` (K, N)."""
    out = np.array(busy, dtype=int, copy=True)
    for st in plan.steps:
        if st.kind in ("charge", "discharge"):
            out[st.k_start:st.k_end, st.node_from] += 1
    return out


# ================================================================ the policy
class DPRouter:
    """The ``dp`` policy for the Co-OPT fleet: sequential DP over trucks, feedback decisions.

    ``reset(problem, rng)`` solves the trucks of ``problem.missions`` in order (see the module
    docstring); :meth:`plans` gives the plans; :meth:`action_from` gives the optimal action from
    an observed state, and :meth:`decide` the command of a truck in the simulation (re-planning
    from where the truck really is). ``rng`` is unused: the DP is deterministic.
    """

    name = "dp"

    def __init__(self, stop_when_idle: bool = True, soc_tol_frac: float = 0.005,
                 replan: bool = True) -> None:
        if not 0.0 <= soc_tol_frac < 1.0:
            raise ValueError(f"DPRouter.soc_tol_frac: must be in [0, 1), got {soc_tol_frac}")
        self.stop_when_idle = stop_when_idle
        self.soc_tol_frac = float(soc_tol_frac)
        self.replan = bool(replan)

    def params(self) -> dict:
        return {"stop_when_idle": self.stop_when_idle, "soc_tol_frac": self.soc_tol_frac,
                "replan": self.replan}

    def reset(self, problem: Problem, rng: np.random.Generator | None = None) -> None:
        problems = problem.missions
        if not problems:
            raise ValueError("DPRouter.reset: no trucks")
        customers = problems[0].customers
        if any(q.customers != customers for q in problems):
            raise ValueError("DPRouter.reset: all trucks must share the customer list")
        self.problems = tuple(problems)
        available = [True] * len(customers)
        busy = np.zeros((problems[0].n_steps, problems[0].n_nodes), dtype=int)
        self.solutions: dict[str, DPSolution] = {}
        self._plans: dict[str, TruckPlan] = {}
        self._live: dict[str, TruckPlan] = {}
        self._next: dict[str, int] = {}
        self.replans = 0
        self.replan_log: list[dict] = []
        for q in problems:
            if not any(available) and self.stop_when_idle:
                break
            sol = solve(q, tuple(available), busy)
            plan = evaluate(q, extract_actions(q, sol), available=tuple(available), busy=busy)
            v0 = float(sol.value[FRESH, 0, q.depot, q.bucket(q.soc_init_frac)])
            if not plan.feasible or abs(plan.cost_usd - v0) > 1e-6 * max(1.0, abs(v0)):
                raise RuntimeError(f"{q.name}: DP plan cost {plan.cost_usd} != value {v0} "
                                   f"({plan.reason})")
            if plan.served_customer < 0 and self.stop_when_idle:
                break
            self.solutions[q.name] = sol
            self._plans[q.name] = plan
            live = forward_plan(q, sol)
            if not live.feasible:  # cannot happen: the exact SOC is never below its bucket
                raise RuntimeError(f"{q.name}: forward plan infeasible: {live.reason}")
            self._live[q.name] = live
            if plan.served_customer >= 0:
                available[customers.index(plan.served_customer)] = False
            busy = reserve(q, plan, busy)

    def plans(self) -> dict[str, TruckPlan]:
        return dict(self._plans)

    def action_from(self, truck: str, phase: int, k: int, node: int, soc_frac: float
                    ) -> tuple[int, int]:
        """The optimal ``(action code, arg)`` from an observed state of a planned truck."""
        sol = self.solutions[truck]
        p = next(q for q in self.problems if q.name == truck)
        j = p.bucket(soc_frac)
        if j < 0:
            raise ValueError(f"{truck}: SOC {soc_frac:.3f} below the grid minimum")
        code = int(sol.kind[phase, k, node, j])
        if code < 0:
            raise RuntimeError(f"{truck}: no feasible action from phase {phase}, step {k}, "
                               f"node {node}, SOC {soc_frac:.3f}")
        return code, int(sol.arg[phase, k, node, j])

    # ------------------------------------------------------------ in the simulation
    def live_plans(self) -> dict[str, TruckPlan]:
        """The plans the trucks follow: forward plans on the exact SOC, updated on re-plans."""
        return dict(self._live)

    def _world(self, truck: str, served: tuple[int, ...]
               ) -> tuple[tuple[bool, ...], np.ndarray]:
        """Sites still open to ``truck`` and the charger slots the other trucks' plans hold."""
        p = self._problem(truck)
        claimed = {pl.served_customer for n, pl in self._live.items() if n != truck}
        available = tuple(c not in served and c not in claimed for c in p.customers)
        busy = np.zeros((p.n_steps, p.n_nodes), dtype=int)
        for n, pl in self._live.items():
            if n != truck:
                busy = reserve(p, pl, busy)
        return available, busy

    def _problem(self, truck: str) -> TruckDayProblem:
        return next(q for q in self.problems if q.name == truck)

    def decide(self, state: State) -> Decision:
        """The command of every truck of ``state`` (the trucks deciding now)."""
        return Decision(tuple(command_of(self._problem(v.name), v.name,
                                         *self._act(v, state.step, state.time_min, state.served))
                              for v in state.vehicles))

    def _act(self, obs: VehicleState, k: int, time_min: int, served: tuple
             ) -> tuple[int, int]:
        """The action for an observed truck in the simulation.

        On plan (same step, node and phase as the plan's next action, SOC within
        ``soc_tol_frac``, and the action still feasible from the real state) the truck does the
        planned action. Otherwise it **re-plans**: the DP is solved again for this truck from the
        observed state, with the sites served or claimed by the other trucks' current plans
        closed and their charger slots held, and the new forward plan replaces the old one.
        """
        name = obs.name
        p = self._problem(name)
        plan, i = self._live[name], self._next.get(name, 0)
        st = plan.steps[i] if i < len(plan.steps) else None
        available, busy = self._world(name, served)
        if st is not None and st.k_start == k and st.node_from == obs.node \
                and st.phase_from == obs.phase \
                and abs(st.soc_from_frac - obs.soc_frac) <= self.soc_tol_frac:
            code, a = action_of(p, st)
            chk, _, _ = apply_continuous(p, obs.phase, k, obs.node, obs.soc_frac, code, a,
                                         available, busy)
            if chk is not None:
                self._next[name] = i + 1
                return code, a
        if not self.replan:
            return self.action_from(name, obs.phase, k, obs.node, obs.soc_frac)
        sol = solve(p, available, busy)
        new = forward_plan(p, sol, (obs.phase, k, obs.node, obs.soc_frac))
        self.replans += 1
        self.replan_log.append({"truck": name, "time_min": time_min, "k": k,
                                "node": obs.node, "soc_frac": obs.soc_frac,
                                "planned_k": st.k_start if st else -1,
                                "planned_soc_frac": st.soc_from_frac if st else float("nan"),
                                "feasible": new.feasible, "cost_usd": new.cost_usd})
        if not new.feasible or not new.steps:
            raise RuntimeError(f"{name}: re-plan from step {k}, node {obs.node}, SOC "
                               f"{obs.soc_frac:.3f} found no feasible plan ({new.reason})")
        self.solutions[name] = sol
        self._live[name] = new
        self._next[name] = 1
        return action_of(p, new.steps[0])


def command_of(p: TruckDayProblem, truck: str, code: int, arg: int) -> Command:
    """The :class:`~sim.types.Command` of an ``(action code, arg)`` of the router's grid."""
    if code == MOVE:
        return Command(truck, dest=arg, action="move")
    if code in (CHARGE, DISCHARGE):
        return Command(truck, action=ACTION_NAMES[code],
                       soc_target_frac=float(p.soc_grid_frac[arg]))
    if code == SERVE:
        return Command(truck, action="swap", site=p.customers[arg])
    return Command(truck, action=ACTION_NAMES[code])


def action_of(p: TruckDayProblem, st: PlanStep) -> tuple[int, int]:
    """The ``(action code, arg)`` of a plan step."""
    code = ACTION_NAMES.index(st.kind)
    if code == MOVE:
        return code, st.node_to
    if code in (CHARGE, DISCHARGE):
        return code, p.bucket(st.soc_to_frac)
    if code == SERVE:
        return code, p.customers.index(st.customer)
    return code, -1
