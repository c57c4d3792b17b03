"""Baselines for the Co-OPT routing problem, evaluated under the DP's own cost model (D.7).

* ``greedy`` - the source's greedy nearest-neighbour with a one-stop charging detour
  (Co-OPT_MESS notebooks, D.8 "depot -> site -> charging site -> depot"): trucks in fleet order
  leave at 07:00; each takes the unserved site nearest to the depot (shortest-path km), drives
  there on the shortest path, swaps, then makes one charging stop at the site with the lowest
  estimated cost (toll + maintenance + wage for the detour + energy at the arrival hour's price),
  charges the old MESS to 90 % as the repository does, and drives home. If the fresh MESS cannot
  reach the site, or would arrive below the delivery minimum, it first stops at the charging site
  with the shortest depot -> charger -> site distance (still one stop per leg).
* ``shortest`` - distance-minimised routing (D.7): the same site order, depot -> site -> depot on
  the shortest path, with the charging stop at the site that adds the least distance, charging
  only to the lowest SOC bucket that still ends the day at ``soc_end_frac``.

Both produce ``(action code, arg)`` lists that :func:`policies.dp_router.evaluate` prices with
exactly the DP's stage costs (same travel steps, energies, prices, degradation tables and
penalties); a truck waits at a busy charger. A site that no truck can serve stays unmet.
"""

from __future__ import annotations

import heapq

import numpy as np

from policies.dp_router import action_of, apply_action, command_of, evaluate, reserve
from sim.coopt import CHARGE, END, FRESH, MOVE, SERVE, WAIT, TruckDayProblem, TruckPlan
from sim.types import Decision, Problem, State


def shortest_paths(dist_km: np.ndarray, src: int) -> tuple[np.ndarray, list[int]]:
    """Dijkstra on the directed km matrix (NaN = no road): distances and predecessors."""
    n = dist_km.shape[0]
    d = np.full(n, np.inf)
    pred = [-1] * n
    d[src] = 0.0
    heap = [(0.0, src)]
    while heap:
        du, u = heapq.heappop(heap)
        if du > d[u]:
            continue
        for w in range(n):
            c = dist_km[u, w]
            if w != u and np.isfinite(c) and du + c < d[w] - 1e-12:
                d[w] = du + c
                pred[w] = u
                heapq.heappush(heap, (d[w], w))
    return d, pred


def path_to(pred: list[int], src: int, dst: int) -> list[int]:
    out = [dst]
    while out[-1] != src:
        if pred[out[-1]] < 0:
            raise ValueError(f"no path {src} -> {dst}")
        out.append(pred[out[-1]])
    return out[::-1]


class _Runner:
    """Applies actions one by one, tracking the state (so the builder knows time and SOC)."""

    def __init__(self, p: TruckDayProblem, available: tuple[bool, ...], busy: np.ndarray):
        self.p, self.available, self.busy = p, available, busy
        self.state = (FRESH, 0, p.depot, p.bucket(p.soc_init_frac))
        self.actions: list[tuple[int, int]] = []
        self.failed = ""

    def do(self, code: int, arg: int = -1) -> bool:
        if self.failed or self.state is None:
            return False
        st, nxt, why = apply_action(self.p, *self.state, code, arg, self.available, self.busy)
        if st is None:
            self.failed = why
            return False
        self.actions.append((code, arg))
        self.state = nxt
        return True

    def try_action(self, code: int, arg: int = -1) -> bool:
        """Would the action be feasible now? (no state change)"""
        if self.state is None:
            return False
        st, _, _ = apply_action(self.p, *self.state, code, arg, self.available, self.busy)
        return st is not None

    def drive(self, path: list[int]) -> bool:
        return all(self.do(MOVE, w) for w in path[1:])

    def path_feasible(self, path: list[int], then: tuple[int, int] | None = None) -> bool:
        """Could the truck drive ``path`` (and then do ``then``)? No state change."""
        saved = (self.state, list(self.actions), self.failed)
        ok = self.drive(path) and (then is None or self.do(*then))
        self.state, self.actions, self.failed = saved
        return ok

    def charge_to(self, j_target: int, max_wait: int = 200) -> bool:
        for _ in range(max_wait):
            if self.try_action(CHARGE, j_target):
                return self.do(CHARGE, j_target)
            if not self.do(WAIT):  # charger busy (or day over): wait a step
                return False
        return False


def _charge_stop_cost(p: TruckDayProblem, k: int, here: int, ch: int, home: int,
                      dist_from: np.ndarray, dist_ch: dict[int, np.ndarray]) -> float:
    """Estimated cost of the detour via ``ch`` [greedy's rule]: km cost + wage + energy."""
    km = dist_from[ch] + dist_ch[ch][home]
    hours = km / 45.0  # [P] rough average speed for the estimate only
    need_kwh = (p.soc_chg_max_frac - p.soc_old_frac) * p.e_cap_kwh / p.eta_ch
    k_arr = min(p.n_steps - 1, k + int(round(dist_from[ch] / 45.0 * 60 / p.step_min)))
    price = float(p.price_usd_per_kwh[k_arr, ch])
    return p.cost_per_km_usd * km + p.wage_usd_per_h * hours + price * need_kwh


def _route_one(p: TruckDayProblem, ci: int, available: tuple[bool, ...], busy: np.ndarray,
               rule: str) -> TruckPlan:
    c = p.customers[ci]
    run = _Runner(p, available, busy)
    d_dep, pred_dep = shortest_paths(p.dist_km, p.depot)
    sp = {v: shortest_paths(p.dist_km, v) for v in set(p.charging_nodes) | {c}}
    to_c = path_to(pred_dep, p.depot, c)
    if not run.path_feasible(to_c, then=(SERVE, ci)):  # one charging stop on the way out
        ch = min(p.charging_nodes, key=lambda x: (d_dep[x] + sp[x][0][c], x))
        run.drive(path_to(pred_dep, p.depot, ch))
        run.charge_to(p.bucket(p.soc_chg_max_frac))
        run.drive(path_to(sp[ch][1], ch, c))
    else:
        run.drive(to_c)
    run.do(SERVE, ci)
    d_c, pred_c = sp[c]
    dist_ch = {x: sp[x][0] for x in p.charging_nodes}
    if rule == "greedy":
        k_now = run.state[1] if run.state else 0
        ch = min(p.charging_nodes, key=lambda x: (_charge_stop_cost(p, k_now, c, x, p.depot, d_c,
                                                                     dist_ch), x))
    else:
        ch = min(p.charging_nodes, key=lambda x: (d_c[x] + dist_ch[x][p.depot], x))
    run.drive(path_to(pred_c, c, ch))
    home = path_to(sp[ch][1], ch, p.depot)
    if rule == "greedy":
        run.charge_to(p.bucket(p.soc_chg_max_frac))
    elif not run.failed:
        # lowest target that still gets home at soc_end (try targets upwards)
        j_now = run.state[3]
        for jt in range(j_now, p.bucket(p.soc_chg_max_frac) + 1):
            saved = (run.state, list(run.actions), run.failed)
            ok = (jt == j_now or run.charge_to(jt)) and run.drive(home) and run.do(END)
            run.state, run.actions, run.failed = saved
            if ok:
                if jt > j_now:
                    run.charge_to(jt)
                break
        else:
            run.failed = run.failed or "no charge target gets the truck home at soc_end"
    run.drive(home)
    run.do(END)
    if run.failed:
        return TruckPlan(p.name, (), False, run.failed)
    return evaluate(p, run.actions, available=available, busy=busy)


def plan_fleet(problems: tuple[TruckDayProblem, ...], rule: str) -> dict[str, TruckPlan]:
    """Plans of the ``greedy`` or ``shortest`` baseline for the fleet (one site per truck)."""
    if rule not in ("greedy", "shortest"):
        raise ValueError(f"rule must be 'greedy' or 'shortest', got {rule!r}")
    p0 = problems[0]
    d_dep, _ = shortest_paths(p0.dist_km, p0.depot)
    order = sorted(range(len(p0.customers)), key=lambda i: (d_dep[p0.customers[i]], i))
    available = [True] * len(p0.customers)
    busy = np.zeros((p0.n_steps, p0.n_nodes), dtype=int)
    plans: dict[str, TruckPlan] = {}
    self_unmet: list[str] = []
    ti = 0
    for ci in order:
        if ti >= len(problems):
            break  # no trucks left: the remaining sites stay unmet
        p = problems[ti]
        plan = _route_one(p, ci, tuple(available), busy, rule)
        if plan.feasible:
            plans[p.name] = plan
            available[ci] = False
            busy = reserve(p, plan, busy)
            ti += 1
        else:  # this site cannot be served by this rule: unmet; the truck tries the next site
            self_unmet.append(f"site {p.customers[ci]}: {plan.reason}")
    plan_fleet.last_unmet = self_unmet  # type: ignore[attr-defined]
    return plans


class PlanFollower:
    """Open-loop execution of fixed plans in the simulation: each truck does its plan's next
    action whatever its simulated state; it never re-plans, so a late truck or a low SOC shows
    up as a recorded failure. The planners below plan at :meth:`reset` and follow their plans;
    ``PlanFollower(plans, problems)`` follows plans made elsewhere."""

    name = "follow"
    replans = 0

    def __init__(self, plans: dict[str, TruckPlan] | None = None,
                 problems: tuple[TruckDayProblem, ...] = ()) -> None:
        if plans is not None:
            self._follow(plans, tuple(problems))

    def params(self) -> dict:
        return {}

    def _follow(self, plans: dict[str, TruckPlan], problems: tuple[TruckDayProblem, ...]
                ) -> None:
        self._plans = dict(plans)
        self.problems = problems
        self._byname = {p.name: p for p in problems}
        self._actions = {n: [action_of(self._byname[n], st) for st in pl.steps]
                         for n, pl in plans.items()}
        self._next = {n: 0 for n in plans}

    def reset(self, problem: Problem, rng=None) -> None:
        """Follow the plans given at construction, from their first step, on the missions of
        ``problem`` (nothing is planned here)."""
        self._follow(getattr(self, "_plans", {}), problem.missions)

    def plans(self) -> dict[str, TruckPlan]:
        return dict(self._plans)

    def decide(self, state: State) -> Decision:
        out = []
        for v in state.vehicles:
            acts = self._actions[v.name]
            i = self._next[v.name]
            if i >= len(acts):
                raise RuntimeError(f"{v.name}: plan exhausted at step {state.step}")
            self._next[v.name] = i + 1
            out.append(command_of(self._byname[v.name], v.name, *acts[i]))
        return Decision(tuple(out))


class GreedyNN(PlanFollower):
    """The source's greedy nearest-neighbour with a one-stop charging detour, planned at reset
    and followed open loop."""

    name = "greedy"

    def __init__(self) -> None:
        super().__init__()

    def reset(self, problem: Problem, rng=None) -> None:
        self._follow(plan_fleet(problem.missions, "greedy"), problem.missions)


class ShortestDistance(PlanFollower):
    """Distance-minimised routing with the least-distance charging stop and minimal charge,
    planned at reset and followed open loop."""

    name = "shortest"

    def __init__(self) -> None:
        super().__init__()

    def reset(self, problem: Problem, rng=None) -> None:
        self._follow(plan_fleet(problem.missions, "shortest"), problem.missions)


__all__ = ["GreedyNN", "PlanFollower", "ShortestDistance", "plan_fleet", "shortest_paths", "WAIT",
           "END"]
