"""The ``ocd`` policy on distribution sites: the OCD coordinator of MODELS.md B.11-B.12 on the
weighted-SFI model of part A.

The two layers of the three-DN system:

* **transport layer** (the MESS fleet): one route per vehicle, a longest path over (site, step)
  where staying at site ``n`` in step ``t`` is priced by the multiplier ``lambda[m, n, t]`` and a
  move costs the MILP's ``EPS_MOVE`` (the analogue of (41), solved exactly by DP in time order);
* **power layer** (the DN operators): the dispatch MILP of every DN (A.7 (13)-(15), DR, storage,
  flexibility epigraphs) with *connection variables* ``w_hat[m, n, t]`` in place of the route's
  stays (37): the vehicle may charge and discharge at ``n`` in ``t`` only when connected, and is
  connected to at most one DN per step. The DNs' models are one MILP because the vehicles'
  energies (9)-(12) link them. It is the SFI model of :mod:`policies.sfi_highs` with the route
  rows removed, the moves fixed to 0 and the stays freed as ``w_hat``.

The only relaxed constraint is ``w_hat = stays(route)`` (38). Working in the cost form of B.11
(``cost = -objective`` of the weighted-SFI MILP, a minimisation), with multipliers ``lambda``:

* ``LB(lambda) = phi_T(lambda) + phi_P(lambda)``, ``phi_P`` from the power MILP's **dual bound**
  (never its incumbent), so every LB is valid, also when the MILP stops at its time limit;
* ``UB``: each new route (the transport solution, and with ``enhanced`` the repaired route E2)
  is evaluated by the full SFI MILP with that route fixed (A.10.4 re-dispatch); its incumbent is
  a feasible solution of the original problem;
* subgradient ``g = stays(route) - w_hat``, steps (44)-(45), ``rho`` halved after iteration 10;
  stop after ``max_iter`` iterations, at relative gap ``tol``, or when the route set has not
  changed for two iterations (B.12).

``variant = "literal"`` runs (37)-(45) and Steps 1-6 as written; ``"enhanced"`` adds the
mobility cuts E1 (``w_hat[i, t] + w_hat[j, t2] <= 1`` when ``j`` cannot be reached from ``i``
between ``t`` and ``t2``; no connection before a DN can be reached from the start) and the route
repair E2. The policy plans each window from the simulated state like ``milp`` and follows the
incumbent's fixed-route dispatch; every window's UB/LB history is in :meth:`OcdDnPolicy.report`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from policies.base import BasePolicy
from policies.baselines import SAFE_RULES
from policies.sfi import Options, SfiContext, instance, make_weights
from policies.sfi_highs import MatrixModel, build_matrix, solve_matrix
from policies.sfi_milp import EPS_MOVE, SfiInstance, SfiPlan, extract
from policies.solve import SolveOutcome
from sim.errors import ScenarioError
from sim.types import Command, Decision, Problem, State

VARIANTS = ("literal", "enhanced")
REPAIR_M = 1e3  # E2: reward per matched connection request


@dataclass(frozen=True)
class OcdDnOptions:
    variant: str = "enhanced"
    max_iter: int = 20
    rho0: float = 1.0
    tol: float = 1e-3
    power_time_limit_s: float = 20.0
    route_time_limit_s: float = 20.0
    mip_gap: float = 1e-4

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")


@dataclass
class OcdDnResult:
    """The coordinator's outcome on one window (cost form: cost = -objective)."""

    ub: float  # best feasible cost (inf: none)
    lb: float  # best Lagrangian bound (-inf: none)
    plan: SfiPlan | None  # the incumbent route's dispatch
    outcome: SolveOutcome | None  # of the incumbent's fixed-route solve
    history: list[dict] = field(default_factory=list)
    routes: int = 0
    stop: str = ""

    @property
    def gap(self) -> float | None:
        if not (np.isfinite(self.ub) and np.isfinite(self.lb)):
            return None
        return max(0.0, (self.ub - self.lb) / max(abs(self.ub), 1e-9))


# ----------------------------------------------------------------------------- transport layer


def _arrivals(inst: SfiInstance, m: int) -> np.ndarray:
    """(N,) earliest step at which vehicle ``m`` can be parked at each site."""
    ts = np.asarray(inst.travel_steps, int)
    N = len(inst.sites)
    out = np.full(N, np.iinfo(np.int64).max // 4)
    for n, a in inst.start[m].items():
        for i in range(N):
            out[i] = min(out[i], a + (0 if i == n else ts[n, i]))
    return out


def route_dp(inst: SfiInstance, m: int, stay_cost: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, float]:
    """Cheapest route of vehicle ``m`` with ``stay_cost[n, t]`` per step parked and ``EPS_MOVE``
    per move: ``(x (N, T+1), y (N, N, T), cost)`` in the layout of the SFI model (A.8)."""
    ts = np.asarray(inst.travel_steps, int)
    N, T = len(inst.sites), inst.load_mw.shape[2]
    U = np.full((T + 1, N), np.inf)
    U[T] = 0.0
    nxt = np.zeros((T, N), dtype=int)
    for t in range(T - 1, -1, -1):
        for n in range(N):
            best, arg = stay_cost[n, t] + U[t + 1, n], n
            for b in range(N):
                if b != n and t + ts[n, b] <= T:
                    c = EPS_MOVE + U[t + ts[n, b], b]
                    if c < best - 1e-12:
                        best, arg = c, b
            U[t, n], nxt[t, n] = best, arg
    opt = min(inst.start[m].items(), key=lambda kv: (U[min(kv[1], T), kv[0]], kv[0]))
    n, t = opt
    cost = float(U[min(t, T), n])
    x = np.zeros((N, T + 1))
    y = np.zeros((N, N, T))
    while t < T:
        x[n, t] = 1
        b = nxt[t, n]
        y[n, b, t] = 1
        t, n = t + (1 if b == n else ts[n, b]), b
    x[n, T] = 1
    return x, y, cost


def transport(inst: SfiInstance, stay_cost: np.ndarray
              ) -> tuple[tuple[np.ndarray, np.ndarray], float]:
    """Every vehicle's route against ``stay_cost[m, n, t]``: ``((x, y), total cost)``."""
    xs, ys, total = [], [], 0.0
    for m in range(len(inst.vehicles)):
        x, y, c = route_dp(inst, m, stay_cost[m])
        xs.append(x)
        ys.append(y)
        total += c
    return (np.array(xs), np.array(ys)), total


def stays(y: np.ndarray) -> np.ndarray:
    """(M, N, T) connection pattern of routes ``y`` (M, N, N, T)."""
    return np.einsum("mnnt->mnt", y)


# ----------------------------------------------------------------------------- power layer


@dataclass
class PowerLayer:
    """The DNs' dispatch MILP with connection variables, built once per window."""

    model: MatrixModel
    w_cols: np.ndarray  # (M, N, T) column of w_hat[m, n, t]
    base_cost: np.ndarray


def power_layer(inst: SfiInstance, variant: str) -> PowerLayer:
    inst = replace(inst, arc_energy=False, symmetry=False, fix_routes=None, fix_site=None)
    full = build_matrix(inst)
    S, M, N, T = inst.shape
    ts = np.asarray(inst.travel_steps, int)
    csr = full.a.tocsr()
    first = np.array([csr.indices[csr.indptr[r]:csr.indptr[r + 1]].max(initial=-1)
                      < full.n_first for r in range(full.num_row)])
    keep = ~first  # the route rows (only route columns) go; (8) and the epigraphs stay
    lb, ub = full.lb.copy(), full.ub.copy()
    w_cols = np.zeros((M, N, T), dtype=int)
    for (m, a, b, t), c in full.v["y"].items():
        if a == b:
            w_cols[m, a, t] = c
        else:
            lb[c] = ub[c] = 0.0
    for c in full.v["x"].values():
        lb[c] = ub[c] = 0.0
    for c in full.v["z"].values():
        if c is not None:
            lb[c] = ub[c] = 0.0
    rows, lo, hi = [], [], []
    for m in range(M):  # (37): at most one connection per vehicle and step
        for t in range(T):
            rows.append({int(w_cols[m, n, t]): 1.0 for n in range(N)})
            lo.append(-np.inf)
            hi.append(1.0)
    if variant == "enhanced":  # E1: mobility cuts and reachability from the start
        for m in range(M):
            first_t = _arrivals(inst, m)
            for n in range(N):
                for t in range(min(int(first_t[n]), T)):
                    ub[w_cols[m, n, t]] = 0.0
            for i in range(N):
                for j in range(N):
                    if i == j:
                        continue
                    for t in range(T):
                        for t2 in range(t + 1, min(t + ts[i, j], T - 1) + 1):
                            rows.append({int(w_cols[m, i, t]): 1.0, int(w_cols[m, j, t2]): 1.0})
                            lo.append(-np.inf)
                            hi.append(1.0)
    extra = sp.csr_matrix(
        ([v for r in rows for v in r.values()],
         ([k for k, r in enumerate(rows) for _ in r], [c for r in rows for c in r])),
        shape=(len(rows), full.num_col))
    a = sp.vstack([csr[keep], extra]).tocsc()
    model = replace(full, inst=inst, lb=lb, ub=ub, a=a,
                    row_lo=np.concatenate([full.row_lo[keep], lo]),
                    row_hi=np.concatenate([full.row_hi[keep], hi]), col_value=None)
    return PowerLayer(model, w_cols, full.cost.copy())


def solve_power(layer: PowerLayer, lam: np.ndarray, time_limit_s: float, mip_gap: float
                ) -> tuple[SolveOutcome, np.ndarray | None]:
    """max F_P + sum lam w_hat; returns the outcome and w_hat (None without a solution)."""
    cost = layer.base_cost.copy()
    np.add.at(cost, layer.w_cols.ravel(), lam.ravel())
    model = replace(layer.model, cost=cost, col_value=None)
    out = solve_matrix(model, time_limit_s, mip_gap)
    w = model.col_value[layer.w_cols] if out.has_solution else None
    return out, w


def evaluate_route(inst: SfiInstance, route: tuple[np.ndarray, np.ndarray], time_limit_s: float,
                   mip_gap: float) -> tuple[SolveOutcome, SfiPlan | None]:
    """The full SFI MILP with the route fixed (its incumbent is feasible for the original)."""
    model = build_matrix(replace(inst, fix_routes=route, symmetry=False))
    out = solve_matrix(model, time_limit_s, mip_gap)
    return out, (extract(model, out) if out.has_solution else None)


# ----------------------------------------------------------------------------- coordinator


def run_ocd(inst: SfiInstance, opt: OcdDnOptions | None = None) -> OcdDnResult:
    """Steps 1-6 of B.12 on the SFI model ``inst`` (one scenario)."""
    opt = opt or OcdDnOptions()
    S, M, N, T = inst.shape
    if S != 1:
        raise ValueError("run_ocd: one scenario only")
    layer = power_layer(inst, opt.variant)
    lam = np.zeros((M, N, T))
    ub, lb, rho = np.inf, -np.inf, opt.rho0
    best_plan, best_out = None, None
    seen: set[bytes] = set()
    history: list[dict] = []
    unchanged, stop = 0, "max_iter"
    for v in range(1, opt.max_iter + 1):
        t0 = time.perf_counter()
        route, phi_t = transport(inst, lam)
        p_out, w_hat = solve_power(layer, lam, opt.power_time_limit_s, opt.mip_gap)
        bound = p_out.bound if p_out.status in ("optimal", "feasible_gap", "time_limit") else None
        lb_v = phi_t - bound if bound is not None else -np.inf  # phi_P = -(max bound)
        lb = max(lb, lb_v)
        candidates = [("transport", route)]
        if opt.variant == "enhanced" and w_hat is not None:
            candidates.append(("repair", transport(inst, -REPAIR_M * np.round(w_hat))[0]))
        new, evals = 0, []
        for kind, r in candidates:
            key = r[1].astype(np.int8).tobytes()
            if key in seen:
                continue
            seen.add(key)
            new += 1
            r_out, plan = evaluate_route(inst, r, opt.route_time_limit_s, opt.mip_gap)
            ub_r = -r_out.objective if plan is not None else np.inf
            evals.append({"kind": kind, "status": r_out.status, "cost": float(ub_r)})
            if ub_r < ub:
                ub, best_plan, best_out = ub_r, plan, r_out
        g = stays(route[1]) - (w_hat if w_hat is not None else 0.0)
        g = np.where(np.abs(g) < 1e-6, 0.0, g)
        gn2 = float((g ** 2).sum())
        unchanged = unchanged + 1 if new == 0 else 0
        rec = {"iter": v, "lb_iter": float(lb_v), "lb": float(lb), "ub": float(ub),
               "phi_transport": float(phi_t),
               "power_bound": None if bound is None else float(bound),
               "power_status": p_out.status, "power_gap": p_out.gap,
               "routes_new": new, "route_evals": evals, "subgradient_norm2": gn2,
               "rho": rho, "time_s": 0.0}
        history.append(rec)
        gap = (ub - lb) / max(abs(ub), 1e-9) if np.isfinite(ub) and np.isfinite(lb) else np.inf
        if gap <= opt.tol:
            stop = "gap"
        elif unchanged >= 2:
            stop = "routes_unchanged"
        elif gn2 > 0:
            if v > 10:
                rho /= 2.0
            target = ub if np.isfinite(ub) else lb_v + max(1.0, abs(lb_v)) * 0.1
            step = rho * max(target - lb_v, 0.0) / gn2 if np.isfinite(lb_v) else rho / gn2
            lam = lam + step * g
            rec["step"] = step
        rec["time_s"] = time.perf_counter() - t0
        if stop != "max_iter":
            break
    return OcdDnResult(float(ub), float(lb), best_plan, best_out, history, len(seen), stop)


# ----------------------------------------------------------------------------- policy


def window_instance(ctx: SfiContext, problem: Problem, weights: np.ndarray, state: State,
                    horizon_steps: int) -> SfiInstance:
    """The SFI model of the window from the simulated state (as the ``milp`` policy builds it):
    positions and energies of the vehicles, the DNs' storage energy, ramp references, DR
    left, the observed load/PV of the current step and the forecast after it."""
    k = state.step
    T_all = problem.n_steps
    H = T_all - k if horizon_steps == 0 else min(horizon_steps, T_all - k)
    load, pv = ctx.forecast
    load = load[:, :, k:k + H].copy()
    pv = pv[:, :, k:k + H].copy()
    for i, s in enumerate(state.sites):
        load[0, i, 0], pv[0, i, 0] = s.load_mw, s.pv_mw
    starts, e0 = [], []
    for v in state.vehicles:
        if v.parked:
            n = ctx.site_index(v.node)
            if n is not None:
                starts.append({n: 0})
            else:
                starts.append({i: -(-problem.travel_min[(v.node, s.node)] // problem.step_min)
                               for i, s in enumerate(ctx.sites)})
        else:
            n = ctx.site_index(v.dest)
            starts.append({n: max(1, -(-(v.arrive_min - state.time_min) // problem.step_min))})
        e0.append(v.e_mwh)
    starts = [{n: min(a, H) for n, a in st.items()} for st in starts]
    reaches_end = k + H == T_all
    sites = state.sites
    es0 = np.array([s.es_e_mwh if s.es_e_mwh is not None else 0.0 for s in sites])
    gen_prev = None
    if all(s.gen_p_mw is not None for s in sites):
        gen_prev = np.array([g for s in sites for g in s.gen_p_mw])
    dr_left = np.array([(si.resources.dr.e_max_mwh - s.dr_used_mwh) if si.resources.dr else 0.0
                        for s, si in zip(sites, ctx.sites)])
    return instance(ctx, load, pv, np.ones(1), weights[:, :, k:k + H], start=tuple(starts),
                    e0=np.array(e0), neutral=reaches_end, es_cyclic=reaches_end,
                    es_e0_mwh=es0, gen_prev_mw=gen_prev,
                    dr_prev_mw=np.array([s.dr_mw for s in sites]), dr_left_mwh=dr_left,
                    symmetry=False)


class OcdDnPolicy(BasePolicy):
    """OCD coordinator: MESS routes by DP on multiplier-priced site-hours, the DNs' dispatch
    MILP with connection variables; literal or enhanced; UB/LB history in the report."""

    name = "ocd"

    def __init__(self, variant: str = "enhanced", max_iter: int = 20, rho0: float = 1.0,
                 tol: float = 1e-3, horizon_steps: int = 0, replan_every: int = 0,
                 weights: str = "dynamic", kappa: float = 0.5, power_time_limit_s: float = 20.0,
                 mip_gap: float = 1e-4, fallback: str = "greedy") -> None:
        self.variant = variant
        self.max_iter = max_iter
        self.rho0 = rho0
        self.tol = tol
        self.horizon_steps = horizon_steps
        self.replan_every = replan_every
        self.weights = weights
        self.kappa = kappa
        self.power_time_limit_s = power_time_limit_s
        self.mip_gap = mip_gap
        self.fallback = fallback

    @classmethod
    def param_problems(cls, params: dict, path: str = "policy.params",
                       context: dict | None = None) -> list[str]:
        p = cls.with_defaults(params)
        out = []
        if p["variant"] not in VARIANTS:
            out.append(f"{path}.variant: must be one of {', '.join(VARIANTS)}, "
                       f"got {p['variant']!r}")
        if p["max_iter"] < 1:
            out.append(f"{path}.max_iter: must be >= 1, got {p['max_iter']}")
        for key in ("horizon_steps", "replan_every"):
            if p[key] < 0:
                out.append(f"{path}.{key}: must be >= 0, got {p[key]}")
        if p["weights"] not in ("dynamic", "equal"):
            out.append(f"{path}.weights: must be 'dynamic' or 'equal', got {p['weights']!r}")
        for key in ("rho0", "tol", "power_time_limit_s", "kappa"):
            if not p[key] > 0:
                out.append(f"{path}.{key}: must be > 0, got {p[key]}")
        if not 0 < p["mip_gap"] < 1:
            out.append(f"{path}.mip_gap: must be in (0, 1), got {p['mip_gap']}")
        if p["fallback"] not in SAFE_RULES:
            out.append(f"{path}.fallback: must be one of {', '.join(sorted(SAFE_RULES))}, "
                       f"got {p['fallback']!r}")
        return out

    def reset(self, problem: Problem, rng: np.random.Generator) -> None:
        super().reset(problem, rng)
        problems = self.param_problems(self.params(), "policy.params")
        if problems:
            raise ScenarioError(problems)
        self._fallback = SAFE_RULES[self.fallback]()
        self._fallback.reset(problem, rng)
        self.ctx = SfiContext.from_problem(problem)
        load, pv = self.ctx.forecast
        self.w = make_weights(self.ctx, load, pv, np.ones(1), self.weights,
                              Options("highs", self.power_time_limit_s, 5e-3), self.kappa)
        self.opt = OcdDnOptions(self.variant, self.max_iter, self.rho0, self.tol,
                                self.power_time_limit_s, self.power_time_limit_s, self.mip_gap)
        self._plan = None
        self._plan_start = 0
        self._solves: list[dict] = []
        self._rows: list[dict] = []

    def _plan_window(self, state: State) -> bool:
        t0 = time.perf_counter()
        inst = window_instance(self.ctx, self.problem, self.w.w, state, self.horizon_steps)
        res = run_ocd(inst, self.opt)
        gap = res.gap
        if res.plan is None:
            status = "infeasible" if all(e["status"] == "infeasible" for h in res.history
                                         for e in h["route_evals"]) else "error"
        else:
            status = "optimal" if gap is not None and gap <= self.tol else "feasible_gap"
        rec = {"step": state.step, "time_min": state.time_min, "solver": "ocd",
               "status": status, "objective": -res.ub if np.isfinite(res.ub) else None,
               "bound": -res.lb if np.isfinite(res.lb) else None, "gap": gap,
               "ub": res.ub, "lb": res.lb, "iterations": len(res.history), "stop": res.stop,
               "routes": res.routes, "solve_s": time.perf_counter() - t0,
               "message": f"ocd {self.variant}: {len(res.history)} iterations, stop {res.stop}",
               "history": res.history}
        self._solves.append(rec)
        if res.plan is None:
            rec["fallback"] = self.fallback
            self._plan = None
            return False
        self._plan, self._plan_start = res.plan, state.step
        plan = res.plan
        H = plan.ch_mw.shape[3]
        where = plan.site_of()
        for m, v in enumerate(self.problem.vehicles):
            for j in range(H):
                self._rows.append({
                    "plan_step": state.step, "time_min": (state.step + j) * self.problem.step_min,
                    "vehicle": v.name,
                    "site": self.ctx.sites[where[m, j]].name if where[m, j] >= 0 else "",
                    "p_mw": float(plan.ch_mw[0, m, :, j].sum() - plan.dis_mw[0, m, :, j].sum()),
                    "e_end_mwh": float(plan.e_mwh[0, m, j + 1])})
        return True

    def _diverged(self, state: State) -> bool:
        j = state.step - self._plan_start
        where = self._plan.site_of()
        for m, v in enumerate(state.vehicles):
            if j >= where.shape[1]:
                return True
            n = self.ctx.site_index(v.node)
            if v.parked and n is not None and self._plan.x[m, n, j] < 0.5:
                return True
        return False

    def decide(self, state: State) -> Decision:
        k = state.step
        due = self._plan is None or (self.replan_every > 0
                                     and k - self._plan_start >= self.replan_every)
        if not due and self._diverged(state):
            due = True
        note = ""
        if due:
            if not self._plan_window(state):
                last = self._solves[-1]
                return Decision(self._fallback.decide(state).commands,
                                note=f"fallback {self.fallback}: {last['status']}")
            note = f"planned {self._solves[-1]['status']}"
        j = k - self._plan_start
        plan = self._plan
        cmds = []
        for m, v in enumerate(state.vehicles):
            if not v.parked:
                cmds.append(Command(v.name))
                continue
            n = self.ctx.site_index(v.node)
            if n is None:
                dest = next((i for i in range(len(self.ctx.sites)) if plan.x[m, i].max() > 0.5),
                            None)
                cmds.append(Command(v.name, dest=self.ctx.sites[dest].node)
                            if dest is not None else Command(v.name))
                continue
            moves = [b for b in range(len(self.ctx.sites)) if b != n and plan.y[m, n, b, j] > 0.5]
            if moves:
                cmds.append(Command(v.name, dest=self.ctx.sites[moves[0]].node))
            else:
                p = float(plan.ch_mw[0, m, n, j] - plan.dis_mw[0, m, n, j])
                cmds.append(Command(v.name, p_mw=min(max(p, -v.p_dis_max_mw), v.p_ch_max_mw)))
        return Decision(tuple(cmds), note=note)

    def report(self) -> dict:
        """Every window's OCD outcome with its UB/LB history (cost form: -objective)."""
        return {"variant": self.variant, "weights": self.weights, "kappa": self.kappa,
                "cost_sign": "cost = -(weighted-SFI objective); LB from power-MILP dual bounds",
                "solves": list(self._solves)}

    def plan_table(self) -> pd.DataFrame:
        return pd.DataFrame(self._rows, columns=["plan_step", "time_min", "vehicle", "site",
                                                 "p_mw", "e_end_mwh"])
