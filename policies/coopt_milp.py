"""The ``milp`` baseline for the Co-OPT fleet: a time-expanded MILP of the whole fleet (D.4-D.6).

**Model.** For each truck ``t`` the DP's own state graph, time-expanded: a node is a state
``(phase, k, v, j)`` (mission phase, router step, road node, SOC bucket) and an arc is one DP
action (END, SERVE, MOVE, CHARGE to a target bucket, DISCHARGE if V2G is on, WAIT) built by the
DP's transition helpers (``policies.dp_router``: ``move_outcome``, ``charge_outcome``, ...). A
binary ``x[t, a]`` per arc; one unit of flow leaves the truck's start state and ends in an END
arc (flow conservation at every state). The arc cost is the DP's stage cost: toll + maintenance
per km, wage, energy at the step's OPF price (full charger power per step, the last partial),
degradation ``C_rep (dD_cal + dD_cyc)`` from the model's per-transition tables, and at SERVE
``-pen * min(delivered, requirement)`` (the unmet-demand penalty up to the constant
``pen * sum(requirement)``, as in the DP). Because SOC is a state index, the nonlinear
degradation of a transition (C.5) is an exact constant on its arc: nothing is linearised.

**Coupling** (what the sequential DP only handles greedily): every site is swapped by at most one
truck, and at most ``chargers_per_site`` trucks charge at a site in any step. The MILP optimises
the fleet jointly, so with the same cost model and SOC grid

* one truck alone: MILP optimum = DP value (a shortest path on a DAG; ``tests/test_coopt_milp.py``);
* a fleet: MILP optimum <= the sequential DP's fleet cost (the DP's plans are one feasible MILP
  solution), and the MILP's dual bound is <= it even after a time limit.

**Size.** Only states reachable from the start *and* from which an END can be reached are built
(a forward pass over ``k``, then a backward pass), so the 7-node day on the DP's 0.01 SOC grid is
built exactly; ``soc_step_frac`` in the study can coarsen the grid if a case is too large. Solves
go through ``policies.solve`` (HiGHS) with a time limit and report their typed status and gap,
never "optimal" after a time limit.

**Rolling horizon** (:class:`FleetMILP` with ``replan_min`` / ``late_tol_min``): the same
model built from mid-day start states (:func:`build_graph` ``start``), with the sites already
served closed and the charger slots of actions in progress held, solved again in the
simulation. Each re-plan assumes the rest of the day runs as modelled (no further delays): it is
the optimal continuation if nothing else goes wrong, not a hedge against what may.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import pulp
import scipy.sparse as sp

import policies.solve as solve_mod
from policies.coopt_baselines import PlanFollower
from policies.dp_router import (
    _free_cum,
    _total,
    action_of,
    apply_continuous,
    charge_outcome,
    command_of,
    discharge_outcome,
    evaluate,
    move_outcome,
    reserve,
    serve_outcome,
    wait_outcome,
)
from policies.sfi_highs import solve_matrix
from sim.coopt import (
    CHARGE,
    DISCHARGE,
    END,
    FRESH,
    MOVE,
    OLD,
    SERVE,
    WAIT,
    TruckDayProblem,
    TruckPlan,
)
from sim.types import Decision, Problem, State, VehicleState


@dataclass
class TruckGraph:
    """One truck's pruned time-expanded state graph; arc arrays are aligned."""

    problem: TruckDayProblem
    start: tuple[int, int, int, int]
    states: dict[tuple[int, int, int, int], int]  # state -> index
    tail: np.ndarray  # arc -> state index
    head: np.ndarray  # arc -> state index, -1 for END
    code: np.ndarray  # action code
    arg: np.ndarray  # node (MOVE), customer index (SERVE), target bucket (CHARGE)
    cost_usd: np.ndarray
    k_from: np.ndarray
    k_to: np.ndarray
    node: np.ndarray  # node the arc leaves

    @property
    def n_arcs(self) -> int:
        return int(self.tail.size)


def build_graph(p: TruckDayProblem, available: tuple[bool, ...] | None = None,
                start: tuple[int, int, int, int] | None = None,
                busy: np.ndarray | None = None) -> TruckGraph:
    """The truck's state graph from its start, pruned both ways.

    ``start`` is ``(phase, k, node, bucket)``, by default the day's start (depot, step 0,
    initial SOC); a re-plan starts from the simulated state. ``busy`` (K, N) holds charger slots
    taken outside the model (a charge in progress): a charging arc that needs a full charger is
    left out. A start from which no END can be reached gives a graph without arcs."""
    available = tuple(available) if available is not None else (True,) * len(p.customers)
    K, J = p.n_steps, p.n_soc
    start = tuple(int(x) for x in start) if start is not None else (
        FRESH, 0, p.depot, p.bucket(p.soc_init_frac))
    if not (start[0] in (FRESH, OLD) and 0 <= start[1] <= K and 0 <= start[2] < p.n_nodes
            and 0 <= start[3] < J):
        raise ValueError(f"build_graph: start {start} outside the state space")
    reach = np.zeros((2, K + 1, p.n_nodes, J), dtype=bool)
    reach[start] = True
    cust_at = {c: i for i, c in enumerate(p.customers)}
    out_nbrs = [[w for w in range(p.n_nodes) if w != v and np.isfinite(p.dist_km[v, w])]
                for v in range(p.n_nodes)]
    j_old = p.bucket(p.soc_old_frac)
    s = p.soc_grid_frac
    held = np.zeros((K, p.n_nodes), dtype=int) if busy is None else np.asarray(busy, dtype=int)
    no_busy = {v: _free_cum(p, held, v) for v in p.charging_nodes}
    rows: list[tuple] = []  # (phase, k, v, j, code, arg, phase2, k2, v2, j2, cost) vectorised

    def add(phase, k, v, js, code, arg, phase2, k2, v2, j2, cost):
        js = np.asarray(js)
        n = js.size
        rows.append((np.full(n, phase), np.full(n, k), np.full(n, v), js, np.full(n, code),
                     np.broadcast_to(arg, js.shape).astype(int), np.full(n, phase2),
                     np.broadcast_to(k2, js.shape).astype(int), np.full(n, v2),
                     np.broadcast_to(j2, js.shape).astype(int), np.asarray(cost, float)))
        if phase2 >= 0:
            reach[phase2, np.broadcast_to(k2, js.shape), v2, np.broadcast_to(j2, js.shape)] = True

    for k in range(start[1], K + 1):
        for phase in (FRESH, OLD):
            for v in range(p.n_nodes):
                js = np.flatnonzero(reach[phase, k, v])
                if js.size == 0:
                    continue
                if v == p.depot:
                    ok = js if phase == FRESH else js[s[js] >= p.soc_end_frac - 1e-9]
                    if ok.size:
                        add(phase, k, v, ok, END, -1, -1, -1, -1, -1, np.zeros(ok.size))
                if k >= K:
                    continue
                if phase == FRESH and v in cust_at and available[cust_at[v]]:
                    ci = cust_at[v]
                    _, k_e, feas, _, parts = serve_outcome(p, k, ci, js)
                    if k_e <= K and feas.any():
                        add(phase, k, v, js[feas], SERVE, ci, OLD, k_e, v, j_old,
                            _total(parts)[feas])
                for w in out_nbrs[v]:
                    n, jn, feas, parts = move_outcome(p, k, v, w, js)
                    if k + n <= K and feas.any():
                        add(phase, k, v, js[feas], MOVE, w, phase, k + n, w, jn[feas],
                            _total(parts)[feas])
                if v in no_busy:
                    fns = [(CHARGE, charge_outcome)]
                    if p.allow_v2g:
                        fns.append((DISCHARGE, discharge_outcome))
                    jt_all = np.arange(J)
                    for code, fn in fns:
                        a, b = np.meshgrid(js, jt_all, indexing="ij")
                        q, feas, _, parts = fn(p, k, v, a, b, no_busy[v])
                        feas = feas & (k + q <= K)
                        if feas.any():
                            add(phase, k, v, a[feas], code, b[feas], phase, (k + q)[feas], v,
                                b[feas], _total(parts)[feas])
                feas, parts = wait_outcome(p, phase, k, v, js)
                if feas.any():
                    add(phase, k, v, js[feas], WAIT, -1, phase, k + 1, v, js[feas],
                        _total(parts)[feas])
    if not rows:  # nothing possible from the start (e.g. the day is over away from home)
        e = np.zeros(0, dtype=int)
        return TruckGraph(p, start, {}, e, e, e, e, np.zeros(0), e, e, e)
    cols = [np.concatenate([r[i] for r in rows]) for i in range(11)]
    ph, kk, vv, jj, code, arg, ph2, k2, v2, j2, cost = cols
    # backward pass: a state is alive if one of its arcs ENDs or leads to an alive state
    alive = np.zeros_like(reach)
    keep = np.zeros(kk.size, dtype=bool)
    for kv in range(K, -1, -1):
        for phase in (OLD, FRESH):  # a SERVE with no service time leads to OLD at the same k
            idx = np.flatnonzero((kk == kv) & (ph == phase))
            ends = code[idx] == END
            ok = ends.copy()
            nz = ~ends
            ok[nz] = alive[ph2[idx[nz]], k2[idx[nz]], v2[idx[nz]], j2[idx[nz]]]
            keep[idx[ok]] = True
            alive[ph[idx[ok]], kk[idx[ok]], vv[idx[ok]], jj[idx[ok]]] = True
    ph, kk, vv, jj, code, arg, ph2, k2, v2, j2, cost = (c[keep] for c in cols)
    keys = sorted(set(zip(ph.tolist(), kk.tolist(), vv.tolist(), jj.tolist())))
    states = {st: i for i, st in enumerate(keys)}
    tail = np.array([states[t] for t in zip(ph.tolist(), kk.tolist(), vv.tolist(),
                                            jj.tolist())], dtype=int)
    head = np.array([states[h] if c != END else -1 for h, c in
                     zip(zip(ph2.tolist(), k2.tolist(), v2.tolist(), j2.tolist()),
                         code.tolist())], dtype=int)
    k_to = np.where(code == END, kk, k2)
    return TruckGraph(p, start, states, tail, head, code, arg, cost, kk, k_to, vv)


@dataclass
class MilpResult:
    """The fleet MILP's outcome, plans and sizes."""

    outcome: solve_mod.SolveOutcome
    plans: dict[str, TruckPlan]
    objective_usd: float | None  # sum of the arc costs of the solution (DP cost convention)
    bound_usd: float | None
    n_vars: int
    n_cons: int
    graph_s: float


@dataclass
class FleetArrays:
    """The fleet MILP as arrays for ``highspy`` (:func:`fleet_arrays`): columns are the arcs of
    truck 0, then truck 1, ... (``offsets``); rows are PuLP's, in PuLP's order. ``cost`` is the
    negated arc cost, because :func:`policies.sfi_highs.solve_matrix` hands HiGHS a
    maximisation: max -cost x is the same model as min cost x."""

    cost: np.ndarray
    lb: np.ndarray
    ub: np.ndarray
    integ: np.ndarray
    a: sp.csc_matrix
    row_lo: np.ndarray
    row_hi: np.ndarray
    offsets: np.ndarray  # first column of each truck, and the column count at the end
    build_s: float = 0.0
    col_value: np.ndarray | None = None

    @property
    def num_col(self) -> int:
        return len(self.cost)

    @property
    def num_row(self) -> int:
        return len(self.row_lo)

    def names(self) -> list[str]:
        """PuLP's variable names, in column order (tests compare the two builds by name)."""
        return [f"x_{ti}_{a}" for ti in range(len(self.offsets) - 1)
                for a in range(self.offsets[ti + 1] - self.offsets[ti])]


def _site_terms(graphs: list[TruckGraph], ci: int) -> list[tuple[int, np.ndarray]]:
    """(truck, SERVE arcs of customer ``ci``) of every truck."""
    return [(ti, np.flatnonzero((g.code == SERVE) & (g.arg == ci))) for ti, g in enumerate(graphs)]


def _charger_rows(graphs: list[TruckGraph]) -> list[tuple[int, int, list[tuple[int, np.ndarray]]]]:
    """(node, step, [(truck, arcs)]) of every charger row: the CHARGE/DISCHARGE arcs at a
    charging node that occupy step ``k``, for the (node, step) pairs that more trucks than the
    site has chargers can reach. One pass over each truck's charging arcs (no mask per step)."""
    p0 = graphs[0].problem
    hits: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = {}
    for ti, g in enumerate(graphs):
        arcs = np.flatnonzero((g.code == CHARGE) | (g.code == DISCHARGE))
        length = (g.k_to[arcs] - g.k_from[arcs]).clip(min=0)
        arc = np.repeat(arcs, length)
        step = np.repeat(g.k_from[arcs], length) + (
            np.arange(length.sum()) - np.repeat(np.cumsum(length) - length, length))
        node = g.node[arc]
        order = np.lexsort((arc, step, node))
        arc, step, node = arc[order], step[order], node[order]
        key = node * (p0.n_steps + 1) + step
        cut = np.flatnonzero(np.diff(key)) + 1
        for a_grp, v, k in zip(np.split(arc, cut), node[np.r_[0, cut]] if key.size else [],
                               step[np.r_[0, cut]] if key.size else []):
            hits.setdefault((int(v), int(k)), []).append((ti, a_grp))
    rows = []
    for v in p0.charging_nodes:
        for k in range(p0.n_steps):
            terms = hits.get((v, k), [])
            if len(terms) > p0.chargers_per_site:
                rows.append((v, k, terms))
    return rows


def fleet_pulp(graphs: list[TruckGraph]) -> tuple[pulp.LpProblem, list[list[pulp.LpVariable]]]:
    """The fleet MILP with PuLP (the reference build, and CBC's)."""
    p0 = graphs[0].problem
    prob = pulp.LpProblem("coopt_fleet", pulp.LpMinimize)
    xs = []
    obj = []
    for ti, g in enumerate(graphs):
        x = [pulp.LpVariable(f"x_{ti}_{a}", cat=pulp.LpBinary) for a in range(g.n_arcs)]
        xs.append(x)
        obj.extend(zip(x, g.cost_usd.tolist()))
        out_of: list[list[int]] = [[] for _ in g.states]
        into: list[list[int]] = [[] for _ in g.states]
        for a in range(g.n_arcs):
            out_of[g.tail[a]].append(a)
            if g.head[a] >= 0:
                into[g.head[a]].append(a)
        si = g.states[g.start]
        for i in range(len(g.states)):
            rhs = 1 if i == si else 0
            prob += (pulp.lpSum(x[a] for a in out_of[i]) - pulp.lpSum(x[a] for a in into[i])
                     == rhs), f"flow_{ti}_{i}"
    prob += pulp.LpAffineExpression(obj)
    # each site swapped at most once
    for ci in range(len(p0.customers)):
        terms = [xs[ti][a] for ti, arcs in _site_terms(graphs, ci) for a in arcs]
        if len(terms) > 1:
            prob += pulp.lpSum(terms) <= 1, f"site_{ci}"
    # charger capacity per site and step
    for v, k, terms in _charger_rows(graphs):
        prob += (pulp.lpSum(xs[ti][a] for ti, arcs in terms for a in arcs)
                 <= p0.chargers_per_site), f"charger_{v}_{k}"
    return prob, xs


def fleet_arrays(graphs: list[TruckGraph]) -> FleetArrays:
    """The same model as :func:`fleet_pulp`, as numpy arrays (no PuLP objects, no hand-over of
    PuLP's rows one by one): flow conservation from each graph's ``tail``/``head`` arrays, then
    the site and charger rows."""
    p0 = graphs[0].problem
    offsets = np.cumsum([0] + [g.n_arcs for g in graphs])
    ri, ci, val, lo = [], [], [], []
    r0 = 0
    for ti, g in enumerate(graphs):
        cols = offsets[ti] + np.arange(g.n_arcs)
        has_head = g.head >= 0
        ri += [r0 + g.tail, r0 + g.head[has_head]]
        ci += [cols, cols[has_head]]
        val += [np.ones(g.n_arcs), -np.ones(int(has_head.sum()))]
        rhs = np.zeros(len(g.states))
        rhs[g.states[g.start]] = 1.0
        lo.append(rhs)
        r0 += len(g.states)
    hi = list(lo)
    extra = []
    for c in range(len(p0.customers)):
        terms = _site_terms(graphs, c)
        if sum(a.size for _, a in terms) > 1:
            extra.append((terms, 1.0))
    extra += [(terms, float(p0.chargers_per_site)) for _, _, terms in _charger_rows(graphs)]
    for terms, cap in extra:
        cols = np.concatenate([offsets[ti] + a for ti, a in terms])
        ri.append(np.full(cols.size, r0))
        ci.append(cols)
        val.append(np.ones(cols.size))
        lo.append(np.array([-np.inf]))
        hi.append(np.array([cap]))
        r0 += 1
    n = int(offsets[-1])
    a = sp.coo_matrix((np.concatenate(val), (np.concatenate(ri), np.concatenate(ci))),
                      shape=(r0, n)).tocsc()
    a.sum_duplicates()
    cost = -np.concatenate([g.cost_usd for g in graphs]).astype(float)
    return FleetArrays(cost, np.zeros(n), np.ones(n), np.ones(n, dtype=int), a,
                       np.concatenate(lo), np.concatenate(hi), offsets)


def solve_fleet(problems: tuple[TruckDayProblem, ...], time_limit_s: float = 60.0,
                mip_gap: float = 1e-4, solver: str = "highs", build: str = "auto",
                starts: dict[str, tuple[int, int, int, int]] | None = None,
                available: tuple[bool, ...] | None = None,
                busy: np.ndarray | None = None) -> MilpResult:
    """Solve the fleet MILP (module docstring); plans of the trucks that serve a site.

    ``build``: ``"matrix"`` (:func:`fleet_arrays` handed straight to highspy; HiGHS only),
    ``"pulp"`` (:func:`fleet_pulp`, the reference) or ``"auto"`` (matrix with HiGHS, PuLP with
    CBC). The model is the same (``tests/test_coopt_milp.py``).

    A **re-plan** from the simulated state passes ``starts`` (truck name -> ``(phase, k, node,
    bucket)`` where the truck is, or will be when its action in progress ends), ``available``
    (sites not yet served or being served) and ``busy`` (K, N charger slots held by actions in
    progress); every truck then gets a plan (also one that only drives home). A truck that can
    reach no END from its start makes the model infeasible: that is reported as the outcome
    ``infeasible`` without calling the solver."""
    if not problems:
        raise ValueError("solve_fleet: no trucks")
    if build not in ("auto", "matrix", "pulp"):
        raise ValueError(f"solve_fleet: build must be 'auto', 'matrix' or 'pulp', got {build!r}")
    if build == "matrix" and solver != "highs":
        raise ValueError(f"solve_fleet: build 'matrix' hands the model to HiGHS, not {solver!r}")
    p0 = problems[0]
    if any(q.customers != p0.customers or q.n_steps != p0.n_steps for q in problems):
        raise ValueError("solve_fleet: all trucks must share the customer list and the day")
    matrix = build == "matrix" or (build == "auto" and solver == "highs")
    t0 = time.perf_counter()
    starts = starts or {}
    graphs = [build_graph(q, available, starts.get(q.name), busy) for q in problems]
    graph_s = time.perf_counter() - t0
    stuck = [g.problem.name for g in graphs if g.start not in g.states]
    if stuck:
        out = solve_mod.SolveOutcome("infeasible", solver, None, None, None, graph_s, 0.0,
                                     f"no way home from the start state of {', '.join(stuck)}")
        return MilpResult(out, {}, None, None, 0, 0, graph_s)
    if matrix:
        fa = fleet_arrays(graphs)
        fa.build_s = time.perf_counter() - t0
        out = solve_matrix(fa, time_limit_s, mip_gap)
        # HiGHS maximised -cost: the objective and the bound back in USD (a lower bound)
        out = replace(out, objective=None if out.objective is None else -out.objective,
                      bound=None if out.bound is None else -out.bound)
        vals = ([fa.col_value[fa.offsets[i]:fa.offsets[i + 1]] for i in range(len(graphs))]
                if out.has_solution else None)
        n_vars, n_cons = fa.num_col, fa.num_row
    else:
        prob, xs = fleet_pulp(graphs)
        build_s = time.perf_counter() - t0
        out = solve_mod.solve(prob, solver=solver, time_limit_s=time_limit_s, mip_gap=mip_gap,
                              build_s=build_s)
        vals = ([np.array([v.varValue or 0.0 for v in x]) for x in xs]
                if out.has_solution else None)
        n_vars, n_cons = sum(len(x) for x in xs), prob.numConstraints()
    plans: dict[str, TruckPlan] = {}
    objective = None
    if vals is not None:
        objective = 0.0
        chosen: dict[str, list[tuple[int, int]]] = {}
        for g, v in zip(graphs, vals):
            val = v > 0.5
            objective += float(g.cost_usd[val].sum())
            chosen[g.problem.name] = _path(g, val)
        held = (np.zeros((p0.n_steps, p0.n_nodes), dtype=int) if busy is None
                else np.asarray(busy, dtype=int))
        open_ = available if available is not None else (True,) * len(p0.customers)
        busy_all = held.copy()
        raw = {}
        for g in graphs:  # evaluate each plan under the DP model, chargers of the others held
            q = g.problem
            raw[q.name] = evaluate(q, chosen[q.name], start=g.start, available=open_)
            busy_all = reserve(q, raw[q.name], busy_all) if raw[q.name].feasible else busy_all
        for g in graphs:
            q = g.problem
            pl = raw[q.name]
            if not pl.feasible:
                raise RuntimeError(f"milp: {q.name}'s solution is not a feasible DP plan: "
                                   f"{pl.reason}")
            others = busy_all - reserve(q, pl, np.zeros_like(busy_all))
            served = {raw[n].served_customer for n in raw if n != q.name}
            avail = tuple(ok and c not in served for ok, c in zip(open_, q.customers))
            pl = evaluate(q, chosen[q.name], start=g.start, available=avail, busy=others)
            if not pl.feasible:
                raise RuntimeError(f"milp: {q.name}'s plan violates the fleet coupling: "
                                   f"{pl.reason}")
            if pl.served_customer >= 0 or q.name in starts:
                plans[q.name] = pl
    return MilpResult(out, plans, objective, out.bound, n_vars, n_cons, graph_s)


def _path(g: TruckGraph, val: np.ndarray) -> list[tuple[int, int]]:
    """The chosen arcs from the start state to END as ``(code, arg)`` actions."""
    by_tail: dict[int, int] = {}
    for a in np.flatnonzero(val):
        if int(g.tail[a]) in by_tail:
            raise RuntimeError("milp: two arcs leave one state (fractional or cyclic flow)")
        by_tail[int(g.tail[a])] = int(a)
    i = g.states[g.start]
    acts: list[tuple[int, int]] = []
    for _ in range(len(by_tail) + 1):
        a = by_tail.get(i)
        if a is None:
            raise RuntimeError("milp: the chosen arcs do not reach END")
        acts.append((int(g.code[a]), int(g.arg[a])))
        if g.code[a] == END:
            return acts
        i = int(g.head[a])
    raise RuntimeError("milp: the chosen arcs do not reach END")


class FleetMILP(PlanFollower):
    """The ``milp`` policy: joint fleet plans from :func:`solve_fleet`.

    **Single plan** (default, ``replan_min = 0`` and ``late_tol_min = -1``): planned at
    :meth:`reset` and followed open loop in the simulation (as
    :class:`policies.coopt_baselines.PlanFollower` does).

    **Rolling horizon**: the fleet MILP is solved again from the simulated state

    * every ``replan_min`` minutes (``> 0``): at the first truck decision at or after each
      multiple of ``replan_min`` from the start of the day;
    * on deviation (``late_tol_min >= 0``): when a deciding truck is later than its plan's next
      action by more than ``late_tol_min`` minutes; and, in rolling mode, whenever the truck is
      off its plan (another node or phase, the plan's next action not possible from the real
      SOC, or the plan used up).

    A re-plan starts the deciding truck where it is (phase, step, node, SOC rounded down to the
    MILP's bucket) and every other truck still out where its action in progress ends in its plan
    (the charger slots that action holds are kept out of the model; a site being served is
    closed). Sites already served are closed. Each solve's typed outcome is recorded in
    :attr:`solves` (time, reason, status, objective, bound, gap, times, whether its plans were
    adopted). Only a solve proven ``optimal`` replaces the plans; a failed or limited re-solve
    (infeasible, time limit, error) keeps the plans being followed, and the log says so.

    :meth:`reuse_first_plan` hands it a solve of the same missions made beforehand (a benchmark
    makes the forecast plan once for all its scenarios); :meth:`reset` then starts from that
    plan instead of solving again, and records that solve's outcome as its first.
    """

    name = "milp"
    _first: MilpResult | None = None

    def __init__(self, time_limit_s: float = 60.0, mip_gap: float = 1e-4,
                 solver: str = "highs", build: str = "auto", replan_min: int = 0,
                 late_tol_min: int = -1) -> None:
        if time_limit_s <= 0:
            raise ValueError(f"FleetMILP.time_limit_s: must be > 0, got {time_limit_s}")
        if int(replan_min) != replan_min or replan_min < 0:
            raise ValueError(f"FleetMILP.replan_min: must be a whole number of minutes >= 0 "
                             f"(0 = no periodic re-plan), got {replan_min!r}")
        if int(late_tol_min) != late_tol_min or late_tol_min < -1:
            raise ValueError(f"FleetMILP.late_tol_min: must be a whole number of minutes >= 0, "
                             f"or -1 (no re-plan on deviation), got {late_tol_min!r}")
        self.time_limit_s = float(time_limit_s)
        self.mip_gap = float(mip_gap)
        self.solver = solver
        self.build = build
        self.replan_min = int(replan_min)
        self.late_tol_min = int(late_tol_min)

    @property
    def rolling(self) -> bool:
        return self.replan_min > 0 or self.late_tol_min >= 0

    def params(self) -> dict:
        return {"time_limit_s": self.time_limit_s, "mip_gap": self.mip_gap,
                "solver": self.solver, "build": self.build, "replan_min": self.replan_min,
                "late_tol_min": self.late_tol_min}

    def _record(self, res: MilpResult, time_min: int, reason: str, adopted: bool,
                note: str = "") -> None:
        out = res.outcome
        self.solves.append({"time_min": int(time_min), "reason": reason, "status": out.status,
                            "objective_usd": res.objective_usd, "bound_usd": res.bound_usd,
                            "gap": out.gap, "build_s": out.build_s, "solve_s": out.solve_s,
                            "n_vars": res.n_vars, "adopted": adopted,
                            "note": note or ("plans replaced" if adopted
                                             else "kept the plans being followed")})

    def reuse_first_plan(self, result: MilpResult) -> FleetMILP:
        """Start every later :meth:`reset` from ``result`` (a solve of the same missions made
        beforehand) instead of solving the first plan again; returns ``self``."""
        self._first = result
        return self

    def reset(self, problem: Problem, rng=None) -> None:
        self.solves: list[dict] = []
        self.replans = 0
        names = {p.name for p in problem.missions}
        first = self._first
        if first is not None and not set(first.plans) <= names:
            raise ValueError(f"FleetMILP.reuse_first_plan: the plan's trucks "
                             f"{sorted(set(first.plans) - names)} are not missions of this "
                             f"problem")
        self.result = first if first is not None else solve_fleet(
            problem.missions, self.time_limit_s, self.mip_gap, self.solver, self.build)
        self._follow(dict(self.result.plans), problem.missions)
        self._record(self.result, problem.missions[0].t_start_min if problem.missions else 0,
                     "reset", True, "first plan" if first is None
                     else "first plan, solved once before the run")
        self._live = dict(self.result.plans)  # the plans being followed (steps on the grid)
        self._ended: set[str] = set()
        self._next_replan = (self.problems[0].t_start_min + self.replan_min
                             if self.replan_min and self.problems else None)

    def live_plans(self) -> dict[str, TruckPlan]:
        """The plans being followed (updated by adopted re-plans)."""
        return dict(self._live)

    # ------------------------------------------------------------------ in the simulation
    def decide(self, state: State) -> Decision:
        if not self.rolling:
            return super().decide(state)
        out = []
        for v in state.vehicles:
            code, arg = self._act(v, state)
            if code == END:
                self._ended.add(v.name)
            out.append(command_of(self._byname[v.name], v.name, code, arg))
        return Decision(tuple(out))

    def _why_replan(self, obs: VehicleState, state: State) -> str:
        """Why the truck deciding now should re-plan ("" if it should not)."""
        p = self._byname[obs.name]
        plan, i = self._live[obs.name], self._next[obs.name]
        if self._next_replan is not None and state.time_min >= self._next_replan:
            return f"every {self.replan_min} min"
        if i >= len(plan.steps):
            return "plan used up"
        st = plan.steps[i]
        if st.node_from != obs.node or st.phase_from != obs.phase:
            return (f"off plan: at node {obs.node} phase {obs.phase}, plan: node {st.node_from} "
                    f"phase {st.phase_from}")
        late = state.time_min - p.step_clock_min(st.k_start)
        if self.late_tol_min >= 0 and late > self.late_tol_min:
            return f"late by {late} min (tolerance {self.late_tol_min})"
        code, a = self._actions[obs.name][i]
        avail = tuple(c not in state.served for c in p.customers)
        chk, _, why = apply_continuous(p, obs.phase, state.step, obs.node, obs.soc_frac, code,
                                       a, avail)
        return "" if chk is not None else f"planned action not possible: {why}"

    def _act(self, obs: VehicleState, state: State) -> tuple[int, int]:
        reason = self._why_replan(obs, state)
        if reason:
            self._replan(obs, state, reason)
        i = self._next[obs.name]
        acts = self._actions[obs.name]
        if i >= len(acts):
            raise RuntimeError(f"{obs.name}: plan exhausted at step {state.step} and the "
                               f"re-plan found none")
        self._next[obs.name] = i + 1
        return acts[i]

    def _replan(self, obs: VehicleState, state: State, reason: str) -> None:
        """Solve the fleet MILP from the simulated state (class docstring)."""
        if self._next_replan is not None:
            while self._next_replan <= state.time_min:
                self._next_replan += self.replan_min
        p0 = self._byname[obs.name]
        busy = np.zeros((p0.n_steps, p0.n_nodes), dtype=int)
        closed = set(state.served)
        starts: dict[str, tuple[int, int, int, int]] = {}
        j = p0.bucket(obs.soc_frac)
        starts[obs.name] = (int(obs.phase), int(state.step), int(obs.node), max(j, -1))
        for name, plan in self._live.items():
            if name == obs.name or name in self._ended:
                continue
            i = self._next[name]
            if i == 0:  # has not decided yet: where its plan starts
                st = plan.steps[0]
                starts[name] = (st.phase_from, st.k_start, st.node_from,
                                self._byname[name].bucket(st.soc_from_frac))
                continue
            st = plan.steps[i - 1]  # the action in progress
            q = self._byname[name]
            if st.kind in ("charge", "discharge"):
                busy[max(st.k_start, state.step):st.k_end, st.node_from] += 1
            if st.kind == "serve":
                closed.add(st.customer)
            phase = OLD if st.kind == "serve" else st.phase_from
            starts[name] = (phase, st.k_end, st.node_to, q.bucket(st.soc_to_frac))
        problems = tuple(self._byname[n] for n in starts)
        avail = tuple(c not in closed for c in p0.customers)
        if starts[obs.name][3] < 0:
            res = MilpResult(solve_mod.SolveOutcome(
                "infeasible", self.solver, None, None, None, 0.0, 0.0,
                f"{obs.name}: SOC {obs.soc_frac:.3f} below the grid"), {}, None, None, 0, 0, 0.0)
        else:
            try:
                res = solve_fleet(problems, self.time_limit_s, self.mip_gap, self.solver,
                                  self.build, starts=starts, available=avail, busy=busy)
            except RuntimeError as exc:  # a solution that is not a plan: kept the old ones
                res = MilpResult(solve_mod.SolveOutcome("error", self.solver, None, None, None,
                                                        0.0, 0.0, str(exc)),
                                 {}, None, None, 0, 0, 0.0)
        self.replans += 1
        ok = res.outcome.status == "optimal" and set(res.plans) == set(starts)
        self._record(res, state.time_min, reason, ok,
                     "" if ok or res.outcome.status == "optimal"
                     else f"kept the plans being followed ({res.outcome.status}: "
                          f"{res.outcome.message})")
        if not ok:
            return
        for name, plan in res.plans.items():
            q = self._byname[name]
            self._live[name] = plan
            self._actions[name] = [action_of(q, st) for st in plan.steps]
            self._next[name] = 0


__all__ = ["FleetArrays", "FleetMILP", "MilpResult", "TruckGraph", "build_graph", "fleet_arrays",
           "fleet_pulp", "solve_fleet", "MOVE", "WAIT"]
