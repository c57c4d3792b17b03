"""The ``dp`` policy on distribution sites: exact backward induction over site x step x SOC.

The DP router of the truck system (``policies.dp_router``) brought to the three-DN MESS system
with the weighted-SFI objective of the MILP (MODELS.md A.4-A.7). Each vehicle is planned on its
own, one after the other, over the states (site, step, SOC level):

* at a site, for one step, the vehicle goes from SOC level ``j`` to level ``j2`` of a uniform grid
  of its energy window ``[E_min, E_max]``; the grid-side power that does it is exact (charging
  ``(E_j2 - r E_j) / (eta_ch dt)``, discharging ``(r E_j - E_j2) eta_dis / dt``, ``r`` the step's
  retention) and must be within ``P_max`` and within what the DN can balance (below);
* or it leaves for another site and arrives ``travel_steps`` later (self-discharge and the road's
  traction energy on the way; the arrival energy is rounded down to the grid).

The reward of a step at site ``n`` is the MILP's objective for the vehicle's own terms: its
flexibility contribution ``w[n, t] / C_norm[n] * (F_up + F_dn)`` (A.4, the explicit ``min()``
form of :func:`sim.flexibility.vehicle_flex`) at the step's dynamic weights, minus the MILP's
tie-breakers (``EPS_ENERGY_PER_MWH`` per MWh moved, ``EPS_MOVE`` per move) and minus the battery's
wear: ``deg_weight * deg_usd_per_mwh`` per MWh of grid-side throughput (charge plus discharge),
``deg_usd_per_mwh`` the vehicle's own cycle-ageing cost that the :class:`~sim.types.Problem`
carries (from its ``fleet[i].degradation`` model, 0 for the model ``none``) and ``deg_weight``
the policy's exchange rate of objective units (SFI-h) per USD. It is priced exactly where the
MILP's ``EPS_ENERGY_PER_MWH`` is (the same throughput, the same linear form), so a MILP with that
coefficient added to its energy tie-breaker has the same optimum (tested); the ``milp`` policy
itself has no wear term. A general SOC-dependent cost ``deg_cost(soc_from, soc_to, dt_h)`` can
also be given to :func:`plan_vehicle`. The terminal condition is energy neutrality (A.7 (12)):
the last level is the grid level of the vehicle's initial energy.

**The DN's balance.** In the MILP each DN balances itself (13): a MESS's net injection ``q`` is
absorbed by the DN's own generators, DR and storage. Here that is the static room
``NL - S_max <= q <= NL - S_min`` (``NL`` the forecast net load, ``S_min``/``S_max`` the smallest
and largest supply of the DN's resources; idle, ``q = 0``, is always allowed). Vehicles are
planned in fleet order and each one's injection is taken out of the room the next ones see, so later
vehicles see the earlier ones' contribution. With one vehicle and a DN whose own flexibility does
not depend on the dispatch (ramps wider than the output range), the DP's optimum is the MILP's
optimum minus that constant (``tests/test_dn_planners.py`` checks it against the MILP and a
brute force over routes).

The policy re-plans from the simulated state (positions, energies, observed load and PV of the
current step) every ``replan_min`` minutes (0: plan once), and whenever a parked vehicle is not
where its plan has it. Between re-plans each vehicle follows its plan's target energies (the
power is recomputed from its simulated energy, within its step limits).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from policies.base import BasePolicy
from policies.sfi import Options, SfiContext, make_weights
from policies.sfi_milp import EPS_ENERGY_PER_MWH, EPS_MOVE
from sim.errors import ScenarioError
from sim.flexibility import vehicle_flex
from sim.types import BatterySpec, Command, Decision, Problem, SiteInfo, State

#: ``deg_cost(soc_from_frac, soc_to_frac, dt_h) -> cost`` in objective units (arrays broadcast).
DegCost = Callable[[np.ndarray, np.ndarray, float], np.ndarray]

NEG = -np.inf


@dataclass(frozen=True)
class DnWindow:
    """The data one DP plan needs: weights, normalisations, the DNs' balance room, the roads."""

    weights: np.ndarray  # (N, T) dynamic (or equal) weights of the window's steps
    c_norm_mw: np.ndarray  # (N,)
    room_lo_mw: np.ndarray  # (N, T) smallest MESS net injection (dis - ch) the DN can balance
    room_hi_mw: np.ndarray  # (N, T) largest
    travel_steps: np.ndarray  # (N, N) int, diagonal 1
    travel_energy_mwh: np.ndarray  # (N, N)
    dt_h: float

    @property
    def shape(self) -> tuple[int, int]:
        return self.weights.shape


def balance_room(sites: tuple[SiteInfo, ...], net_load_mw: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) MESS net injection per site and step that the site's own resources can balance
    (static bounds of (13)); both include 0."""
    lo = np.zeros(net_load_mw.shape)
    hi = np.zeros(net_load_mw.shape)
    for n, s in enumerate(sites):
        r = s.resources
        s_max = s.own_up_capacity_mw
        s_min = sum(g.p_min_mw for g in r.generators)
        if r.storage is not None:
            s_min -= r.storage.p_ch_max_mw
        lo[n] = np.minimum(net_load_mw[n] - s_max, 0.0)
        hi[n] = np.maximum(net_load_mw[n] - s_min, 0.0)
    return lo, hi


def window(ctx: SfiContext, problem: Problem, weights: np.ndarray, net_load_mw: np.ndarray
           ) -> DnWindow:
    """A :class:`DnWindow` for the sites of ``ctx``; ``weights`` and ``net_load_mw`` are (N, T)."""
    n = len(ctx.sites)
    te = np.zeros((n, n))
    for i, a in enumerate(ctx.sites):
        for j, b in enumerate(ctx.sites):
            if i != j:
                te[i, j] = float(problem.travel_energy_mwh.get((a.node, b.node), 0.0))
    lo, hi = balance_room(ctx.sites, net_load_mw)
    return DnWindow(np.asarray(weights, float), np.array([s.c_norm_mw for s in ctx.sites]),
                    lo, hi, np.asarray(ctx.travel_steps, int), te, ctx.dt_h)


@dataclass
class VehiclePlan:
    """One vehicle's DP plan over a window of T steps."""

    site: np.ndarray  # (T,) site index where it stays during step t, -1 travelling / not there
    dest: np.ndarray  # (T,) site it leaves for at the start of step t, -1 none
    p_mw: np.ndarray  # (T,) grid-side power, > 0 charging
    e_mwh: np.ndarray  # (T + 1,) energy at the start of each step (planned)
    value: float  # objective of the plan (the DP's optimum from the start state)
    flex_value: float  # its weighted-flexibility part alone

    @property
    def injection_mw(self) -> np.ndarray:
        return -self.p_mw


class Grid:
    """The SOC grid of one battery: ``levels`` energies from E_min to E_max."""

    def __init__(self, b: BatterySpec, levels: int) -> None:
        self.b = b
        self.e = np.linspace(b.e_min_mwh, b.e_max_mwh, levels)
        self.de = self.e[1] - self.e[0]

    def floor(self, e_mwh) -> np.ndarray:
        """Index of the highest level at or below ``e_mwh`` (-1 below the window)."""
        j = np.floor((np.asarray(e_mwh, float) - self.b.e_min_mwh) / self.de + 1e-9).astype(int)
        return np.where(j < 0, -1, np.minimum(j, len(self.e) - 1))

    def nearest(self, e_mwh: float) -> int:
        return int(np.clip(round((e_mwh - self.b.e_min_mwh) / self.de), 0, len(self.e) - 1))


def _step_power(b: BatterySpec, e_from, e_to, dt_h: float):
    """(ch, dis) grid-side MW that take the energy from ``e_from`` to ``e_to`` in one step."""
    r = b.retention_per_h ** dt_h
    d = np.asarray(e_to, float) - r * np.asarray(e_from, float)
    ch = np.maximum(d, 0.0) / (b.eta_ch * dt_h)
    dis = np.maximum(-d, 0.0) * b.eta_dis / dt_h
    return ch, dis


def _stay_reward(b: BatterySpec, e_from, e_to, dt_h: float, coef: float,
                 deg_cost: DegCost | None, wear_per_mwh: float = 0.0):
    """(reward, flex reward, ch, dis) of staying one step; reward -inf where infeasible by
    power (the room is applied by the caller). ``wear_per_mwh`` (objective units per MWh of
    grid-side throughput) is added to the energy tie-breaker."""
    ch, dis = _step_power(b, e_from, e_to, dt_h)
    up, dn = vehicle_flex(ch, dis, e_to, b.p_max_mw, b.e_min_mwh, b.e_max_mwh, b.eta_ch,
                          b.eta_dis, dt_h, 1.0)
    flex = coef * (up + dn)
    rew = flex - (EPS_ENERGY_PER_MWH + wear_per_mwh) * (ch + dis) * dt_h
    if deg_cost is not None:
        rew = rew - deg_cost(np.asarray(e_from) / b.capacity_mwh,
                             np.asarray(e_to) / b.capacity_mwh, dt_h)
    ok = (ch <= b.p_max_mw + 1e-9) & (dis <= b.p_max_mw + 1e-9)
    return np.where(ok, rew, NEG), flex, ch, dis


def plan_vehicle(win: DnWindow, b: BatterySpec, start: dict[int, int], e0_mwh: float,
                 e_end_mwh: float | None, levels: int = 76, used_mw: np.ndarray | None = None,
                 deg_cost: DegCost | None = None, wear_per_mwh: float = 0.0
                 ) -> VehiclePlan | None:
    """The optimal plan of one vehicle by backward induction (None if no plan is feasible).

    ``start`` maps site index -> step at which the vehicle is (or arrives) there (one option is
    chosen, as in the MILP); ``e0_mwh`` is its energy now (need not be on the grid: the first
    step from it is evaluated exactly); ``e_end_mwh`` the terminal energy (rounded to the grid),
    None for a free end. ``used_mw`` (N, T) is the net injection already planned by earlier
    vehicles, taken out of the DNs' room. ``wear_per_mwh`` is the battery's wear cost in
    objective units per MWh of grid-side throughput (charge plus discharge), >= 0.
    """
    if not wear_per_mwh >= 0:
        raise ValueError(f"wear_per_mwh must be >= 0, got {wear_per_mwh}")
    N, T = win.shape
    g = Grid(b, levels)
    J = len(g.e)
    dt = win.dt_h
    used = np.zeros((N, T)) if used_mw is None else used_mw
    lo = win.room_lo_mw - used
    hi = win.room_hi_mw - used
    r_step = b.retention_per_h ** dt
    # the same (J, J) transition at every site and step: only the weight and the room differ
    ch, dis = _step_power(b, g.e[:, None], g.e[None, :], dt)
    base_rew, flex1, _, _ = _stay_reward(b, g.e[:, None], g.e[None, :], dt, 1.0, deg_cost,
                                         wear_per_mwh)
    energy_pen = (EPS_ENERGY_PER_MWH + wear_per_mwh) * (ch + dis) * dt
    deg = (base_rew - flex1 + energy_pen) if deg_cost is not None else 0.0  # = -deg cost
    q = dis - ch
    V = np.full((T + 1, N, J), NEG)
    if e_end_mwh is None:
        V[T] = 0.0
    else:
        V[T][:, g.nearest(e_end_mwh)] = 0.0
    act = np.zeros((T, N, J), dtype=int)  # >= 0: stay and go to that level; -1 - b: leave for b

    def arrival(j_or_e, n, b_, steps):
        e = (g.e[j_or_e] if isinstance(j_or_e, np.ndarray) and j_or_e.dtype.kind == "i"
             else np.asarray(j_or_e, float))
        return g.floor(e * r_step ** steps - win.travel_energy_mwh[n, b_])

    for t in range(T - 1, -1, -1):
        for n in range(N):
            coef = win.weights[n, t] / win.c_norm_mw[n]
            ok = (q >= lo[n, t] - 1e-9) & (q <= hi[n, t] + 1e-9) & np.isfinite(base_rew)
            rew = np.where(ok, flex1 * coef - energy_pen + deg, NEG)
            tot = rew + V[t + 1, n][None, :]
            best = np.argmax(tot, axis=1)
            val = tot[np.arange(J), best]
            choice = best.copy()
            for b_ in range(N):
                if b_ == n:
                    continue
                k = t + int(win.travel_steps[n, b_])
                if k > T:
                    continue
                ja = arrival(np.arange(J), n, b_, int(win.travel_steps[n, b_]))
                mv = np.where(ja >= 0, V[k, b_][np.maximum(ja, 0)] - EPS_MOVE, NEG)
                better = mv > val + 1e-12
                val = np.where(better, mv, val)
                choice = np.where(better, -1 - b_, choice)
            V[t, n] = val
            act[t, n] = choice

    # ------------------------------------------------------------ forward: from the real state
    site = -np.ones(T, dtype=int)
    dest = -np.ones(T, dtype=int)
    p = np.zeros(T)
    e_traj = np.zeros(T + 1)
    best_val, best_opt = NEG, None
    for n, a in start.items():
        if a >= T:
            continue
        if a == 0:
            r0, f0, _, _ = _stay_reward(b, e0_mwh, g.e, dt, win.weights[n, 0] / win.c_norm_mw[n],
                                        deg_cost, wear_per_mwh)
            c0, d0 = _step_power(b, e0_mwh, g.e, dt)
            ok0 = (d0 - c0 >= lo[n, 0] - 1e-9) & (d0 - c0 <= hi[n, 0] + 1e-9)
            tot0 = np.where(ok0, r0, NEG) + V[1, n]
            j2 = int(np.argmax(tot0))
            cand = [(tot0[j2], ("stay", n, j2))]
            for b_ in range(N):
                k = int(win.travel_steps[n, b_])
                if b_ != n and k <= T:
                    ja = int(arrival(e0_mwh, n, b_, k))
                    if ja >= 0:
                        cand.append((V[k, b_, ja] - EPS_MOVE, ("move", n, b_)))
            for v_, opt in cand:
                if v_ > best_val + 1e-12:
                    best_val, best_opt = v_, opt
        else:
            ja = int(g.floor(e0_mwh * r_step ** a))
            if ja >= 0 and V[a, n, ja] > best_val + 1e-12:
                best_val, best_opt = V[a, n, ja], ("arrive", n, a, ja)
    if best_opt is None or not np.isfinite(best_val):
        return None
    # walk the plan
    e_traj[0] = e0_mwh
    flex_total = 0.0
    t, n, j = 0, None, None
    kind = best_opt[0]
    if kind == "stay":
        _, n, j2 = best_opt
        c0, d0 = _step_power(b, e0_mwh, g.e[j2], dt)
        site[0], p[0] = n, float(c0 - d0)
        flex_total += float(_stay_reward(b, e0_mwh, g.e[j2], dt,
                                         win.weights[n, 0] / win.c_norm_mw[n], None)[1])
        e_traj[1] = g.e[j2]
        t, j = 1, j2
    elif kind == "move":
        _, n0, b_ = best_opt
        k = int(win.travel_steps[n0, b_])
        dest[0] = b_
        ja = int(arrival(e0_mwh, n0, b_, k))
        for s in range(1, k + 1):
            e_traj[s] = e0_mwh * r_step ** s
        e_traj[k] = g.e[ja]
        t, n, j = k, b_, ja
    else:
        _, n, a, ja = best_opt
        for s in range(1, a + 1):
            e_traj[s] = e0_mwh * r_step ** s
        e_traj[a] = g.e[ja]
        t, j = a, ja
    while t < T:
        c = act[t, n, j]
        if c >= 0:
            c_, d_ = ch[j, c], dis[j, c]
            site[t], p[t] = n, float(c_ - d_)
            flex_total += float(flex1[j, c] * win.weights[n, t] / win.c_norm_mw[n])
            e_traj[t + 1] = g.e[c]
            t, j = t + 1, int(c)
        else:
            b_ = -1 - c
            k = int(win.travel_steps[n, b_])
            dest[t] = b_
            ja = int(arrival(np.array([j]), n, b_, k)[0])
            for s in range(1, k + 1):
                e_traj[t + s] = g.e[j] * r_step ** s
            e_traj[t + k] = g.e[ja]
            t, n, j = t + k, b_, ja
    return VehiclePlan(site, dest, p, e_traj, float(best_val), flex_total)


def plan_fleet(win: DnWindow, batteries: list[BatterySpec], starts: list[dict[int, int]],
               e0_mwh: list[float], e_end_mwh: list[float | None], levels: int = 76,
               deg_costs: list[DegCost | None] | None = None,
               relaxed: list[int] | None = None,
               wear_per_mwh: list[float] | None = None) -> list[VehiclePlan | None]:
    """Plan the vehicles one after another; each sees the room the earlier ones left.
    ``wear_per_mwh`` gives each vehicle's wear cost per MWh of throughput (default none).

    A vehicle that can no longer reach its terminal energy is planned with a free end, and its
    index is appended to ``relaxed`` (when given)."""
    N, T = win.shape
    used = np.zeros((N, T))
    out = []
    for m, b in enumerate(batteries):
        deg = deg_costs[m] if deg_costs else None
        wear = wear_per_mwh[m] if wear_per_mwh else 0.0
        plan = plan_vehicle(win, b, starts[m], e0_mwh[m], e_end_mwh[m], levels, used, deg, wear)
        if plan is None and e_end_mwh[m] is not None:
            plan = plan_vehicle(win, b, starts[m], e0_mwh[m], None, levels, used, deg, wear)
            if relaxed is not None and plan is not None:
                relaxed.append(m)
        out.append(plan)
        if plan is not None:
            for t in range(T):
                if plan.site[t] >= 0:
                    used[plan.site[t], t] += plan.injection_mw[t]
    return out


class DnDpPolicy(BasePolicy):
    """Exact DP over site x step x SOC with the weighted-SFI objective, vehicles in turn,
    re-planned from the simulated state every ``replan_min`` minutes. Each vehicle's wear is
    priced at ``deg_weight`` objective units (SFI-h) per USD of its cycle-ageing cost
    (``Problem.deg_usd_per_mwh``; the default 1e-3 values 1000 USD of wear like one DN's whole
    normalised flexibility for an hour; 0 plans as if the batteries did not age)."""

    name = "dp"

    def __init__(self, soc_levels: int = 76, replan_min: int = 60, weights: str = "dynamic",
                 kappa: float = 0.5, alpha: float = 1.0, beta: float = 1.0, eps: float = 1e-3,
                 time_limit_s: float = 30.0, deg_weight: float = 1e-3) -> None:
        self.soc_levels = soc_levels
        self.replan_min = replan_min
        self.weights = weights
        self.kappa = kappa
        self.alpha = alpha
        self.beta = beta
        self.eps = eps
        self.time_limit_s = time_limit_s
        self.deg_weight = deg_weight

    @classmethod
    def param_problems(cls, params: dict, path: str = "policy.params",
                       context: dict | None = None) -> list[str]:
        p = cls.with_defaults(params)
        out = []
        if p["soc_levels"] < 2:
            out.append(f"{path}.soc_levels: must be >= 2, got {p['soc_levels']}")
        if p["replan_min"] < 0:
            out.append(f"{path}.replan_min: must be >= 0 (0 = plan once), got {p['replan_min']}")
        step = (context or {}).get("step_min")
        if step and p["replan_min"] > 0 and p["replan_min"] % step:
            out.append(f"{path}.replan_min: must be a multiple of the step ({step} min), "
                       f"got {p['replan_min']}")
        if p["weights"] not in ("dynamic", "equal"):
            out.append(f"{path}.weights: must be 'dynamic' or 'equal', got {p['weights']!r}")
        for key in ("time_limit_s", "kappa", "eps"):
            if not p[key] > 0:
                out.append(f"{path}.{key}: must be > 0, got {p[key]}")
        if not 0 <= p["deg_weight"] < float("inf"):
            out.append(f"{path}.deg_weight: must be >= 0 and finite (SFI-h per USD of battery "
                       f"wear), got {p['deg_weight']}")
        return out

    def reset(self, problem: Problem, rng: np.random.Generator) -> None:
        super().reset(problem, rng)
        problems = self.param_problems(self.params(), "policy.params",
                                       {"step_min": problem.step_min})
        if problems:
            raise ScenarioError(problems)
        self.ctx = SfiContext.from_problem(problem)
        load, pv = self.ctx.forecast
        self.w = make_weights(self.ctx, load, pv, np.ones(1), self.weights,
                              Options("highs", self.time_limit_s, 5e-3), self.kappa, self.alpha,
                              self.beta, self.eps)
        self._plans: list[VehiclePlan | None] | None = None
        self._plan_start = 0
        self._solves: list[dict] = []
        self._rows: list[dict] = []

    # ------------------------------------------------------------------ planning
    def _start(self, v, now_min: int) -> tuple[dict[int, int], float]:
        step_min = self.problem.step_min
        if v.parked:
            n = self.ctx.site_index(v.node)
            if n is not None:
                return {n: 0}, v.e_mwh
            return ({i: -(-self.problem.travel_min[(v.node, s.node)] // step_min)
                     for i, s in enumerate(self.ctx.sites)}, v.e_mwh)
        n = self.ctx.site_index(v.dest)
        return {n: max(1, -(-(v.arrive_min - now_min) // step_min))}, v.e_mwh

    def _replan(self, state: State) -> None:
        t0 = time.perf_counter()
        k = state.step
        T_all = self.problem.n_steps
        load, pv = self.ctx.forecast
        nl = (load[0] - pv[0])[:, k:].copy()
        for i, s in enumerate(state.sites):  # the current step is observed, not forecast
            nl[i, 0] = s.load_mw - s.pv_mw
        win = window(self.ctx, self.problem, self.w.w[0][:, k:T_all], nl)
        starts, e0 = zip(*(self._start(v, state.time_min) for v in state.vehicles))
        batteries = [spec.battery for spec in self.problem.vehicles]
        e_end = [spec.e_init_mwh for spec in self.problem.vehicles]
        relaxed: list[int] = []
        plans = plan_fleet(win, batteries, list(starts), list(e0), e_end, self.soc_levels,
                           relaxed=relaxed, wear_per_mwh=self.wear_per_mwh())
        self._plans, self._plan_start = plans, k
        msg = (f"exact backward induction on {self.soc_levels} SOC levels per vehicle, "
               f"vehicles in fleet order")
        if relaxed:
            msg += ("; energy neutrality unreachable, planned with a free end: "
                    + ", ".join(self.problem.vehicles[m].name for m in relaxed))
        self._solves.append({"step": k, "time_min": state.time_min, "solver": "dp",
                             "status": "optimal" if all(p is not None for p in plans)
                             and not relaxed else "infeasible",
                             "message": msg,
                             "objective": float(sum(p.value for p in plans if p is not None)),
                             "flex_objective": float(sum(p.flex_value for p in plans
                                                         if p is not None)),
                             "solve_s": time.perf_counter() - t0})
        for spec, plan in zip(self.problem.vehicles, plans):
            if plan is None:
                continue
            for j in range(len(plan.p_mw)):
                self._rows.append({
                    "plan_step": k, "time_min": (k + j) * self.problem.step_min,
                    "vehicle": spec.name,
                    "site": self.ctx.sites[plan.site[j]].name if plan.site[j] >= 0 else "",
                    "p_mw": float(plan.p_mw[j]), "e_end_mwh": float(plan.e_mwh[j + 1])})

    def wear_per_mwh(self) -> list[float]:
        """Each vehicle's wear cost in objective units per MWh of grid-side throughput."""
        deg = self.problem.deg_usd_per_mwh
        return [self.deg_weight * float(deg.get(spec.name, 0.0))
                for spec in self.problem.vehicles]

    def _due(self, state: State) -> bool:
        if self._plans is None:
            return True
        every = self.replan_min // self.problem.step_min
        j = state.step - self._plan_start
        if every > 0 and j >= every:
            return True
        for v, plan in zip(state.vehicles, self._plans):
            if plan is None:
                return True
            n = self.ctx.site_index(v.node)
            if v.parked and n is not None and plan.site[j] != n and plan.dest[j] < 0:
                return True
        return False

    def decide(self, state: State) -> Decision:
        note = ""
        if self._due(state):
            self._replan(state)
            note = f"planned {self._solves[-1]['status']}"
        j = state.step - self._plan_start
        cmds = []
        for v, plan in zip(state.vehicles, self._plans):
            if not v.parked or plan is None:
                cmds.append(Command(v.name))
                continue
            n = self.ctx.site_index(v.node)
            if plan.dest[j] >= 0 and plan.dest[j] != n:
                cmds.append(Command(v.name, dest=self.ctx.sites[plan.dest[j]].node))
            elif n is None:  # at a depot: go to the first site of the plan
                first = next((s for s in plan.site if s >= 0), -1)
                cmds.append(Command(v.name, dest=self.ctx.sites[first].node)
                            if first >= 0 else Command(v.name))
            elif plan.site[j] == n:
                b = self.problem.vehicle(v.name).battery
                c, d = _step_power(b, v.e_mwh, plan.e_mwh[j + 1], self.ctx.dt_h)
                pw = float(c - d)
                cmds.append(Command(v.name, p_mw=min(max(pw, -v.p_dis_max_mw), v.p_ch_max_mw)))
            else:
                cmds.append(Command(v.name))
        return Decision(tuple(cmds), note=note)

    # ------------------------------------------------------------------ results
    def report(self) -> dict:
        """Weights and every plan's outcome (for meta.json)."""
        return {"weights": self.weights, "kappa": self.kappa, "soc_levels": self.soc_levels,
                "deg_weight": self.deg_weight, "wear_per_mwh": self.wear_per_mwh(),
                "weights_ni": [float(x) for x in self.w.ni], "solves": list(self._solves)}

    def plan_table(self) -> pd.DataFrame:
        return pd.DataFrame(self._rows, columns=["plan_step", "time_min", "vehicle", "site",
                                                 "p_mw", "e_end_mwh"])

