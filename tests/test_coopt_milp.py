"""The fleet MILP baseline (policies/coopt_milp.py) against the DP and brute-force enumeration."""

from __future__ import annotations

import numpy as np
import pytest

from policies.coopt_milp import build_graph, solve_fleet
from policies.dp_router import DPRouter, apply_action, evaluate, solve
from sim.coopt import CHARGE, END, FRESH, MOVE, SERVE, WAIT, TruckDayProblem
from sim.types import Problem


def fleet_problem(seed: int, name: str = "t", n_steps: int = 8, wage: float = 5.0,
                  e_scale: float = 1.0) -> TruckDayProblem:
    """4 nodes: 0 depot, 1 charger (one plug), sites 2 and 3; random energies and prices."""
    rng = np.random.default_rng(seed)
    n = 4
    dist = np.full((n, n), np.nan)
    for u, w in ((0, 1), (1, 2), (1, 3), (0, 2), (0, 3), (2, 3)):
        dist[u, w] = dist[w, u] = rng.uniform(5, 40)
    steps = np.full((n_steps, n, n), -1)
    e = np.zeros((n_steps, n, n))
    for u in range(n):
        for w in range(n):
            if np.isfinite(dist[u, w]):
                steps[:, u, w] = 1
                e[:, u, w] = e_scale * rng.uniform(10, 60)
    price = np.full((n_steps, n), np.nan)
    price[:, 1] = rng.uniform(0.1, 0.6, size=n_steps)
    n_soc = 5
    grid = 0.2 * np.arange(n_soc)
    a, b = np.meshgrid(grid, grid, indexing="ij")
    cyc = np.where(b < a, 30.0 * ((0.8 - b).clip(0) ** 2 - (0.8 - a).clip(0) ** 2), 0.0)
    cal = 0.2 * (0.5 + (a + b) / 2)
    return TruckDayProblem(
        name=name, n_nodes=n, depot=0, charging_nodes=(1,), customers=(2, 3),
        requirement_kwh=(350.0, 350.0), window_start_steps=(0, 0),
        window_end_steps=(n_steps - 1, n_steps - 1), step_min=60, t_start_min=7 * 60,
        n_steps=n_steps, soc_min_frac=0.0, soc_step_frac=0.2, n_soc=n_soc, soc_init_frac=0.8,
        soc_chg_max_frac=0.8, soc_old_frac=0.2, soc_end_frac=0.4, soc_deliver_min_frac=0.4,
        e_cap_kwh=350.0, p_chg_kw=200.0, eta_ch=0.95, eta_dis=0.95, dist_km=dist,
        move_steps=steps, move_e_kwh=e, move_epeak_kwh=e, price_usd_per_kwh=price,
        cost_per_km_usd=0.41, wage_usd_per_h=wage, serve_steps=1, deg_cyc_usd=cyc,
        deg_cal_usd_per_h=cal, pen_unmet_usd_per_kwh=1.0, chargers_per_site=1)


def plan_groups(p: TruckDayProblem) -> dict:
    """Exhaustive enumeration of one truck's complete plans, memoised per state: the cheapest
    plan for each (served customer index, set of charger steps) from the start state."""
    acts = [(END, -1), (SERVE, 0), (SERVE, 1), (WAIT, -1)]
    acts += [(MOVE, w) for w in range(p.n_nodes)] + [(CHARGE, j) for j in range(p.n_soc)]
    memo: dict = {}

    def groups(state) -> dict:
        if state in memo:
            return memo[state]
        out: dict = {}
        for code, a in acts:
            st, nxt, _ = apply_action(p, *state, code, a)
            if st is None:
                continue
            slots = frozenset(range(st.k_start, st.k_end)) if st.kind == "charge" else frozenset()
            tails = {(-1, frozenset()): 0.0} if nxt is None else groups(nxt)
            for (sv, sl), c in tails.items():
                key = (st.customer if st.kind == "serve" else sv, sl | slots)
                out[key] = min(out.get(key, np.inf), st.cost_usd + c)
        memo[state] = out
        return out

    return groups((FRESH, 0, p.depot, p.bucket(p.soc_init_frac)))


def brute_force_pair(p1: TruckDayProblem, p2: TruckDayProblem) -> float:
    """Joint optimum of two trucks (distinct sites, one charger) by enumeration."""
    g1, g2 = plan_groups(p1), plan_groups(p2)
    best = np.inf
    for (s1, l1), c1 in g1.items():
        for (s2, l2), c2 in g2.items():
            if (s1 >= 0 and s1 == s2) or (l1 & l2):
                continue
            best = min(best, c1 + c2)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_single_truck_milp_equals_dp_value(seed):
    p = fleet_problem(seed)
    res = solve_fleet((p,), time_limit_s=30)
    assert res.outcome.status == "optimal"
    v = solve(p).value[FRESH, 0, p.depot, p.bucket(p.soc_init_frac)]
    assert res.objective_usd == pytest.approx(v, abs=1e-6)
    assert res.outcome.objective == pytest.approx(v, abs=1e-6)
    for pl in res.plans.values():  # the MILP's path is a feasible DP plan with the same cost
        assert pl.feasible
    assert sum(pl.cost_usd for pl in res.plans.values()) == pytest.approx(v, abs=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_fleet_milp_equals_brute_force_and_bounds_sequential_dp(seed):
    p1 = fleet_problem(seed, "t1")
    p2 = fleet_problem(seed, "t2", wage=8.0, e_scale=1.3)
    res = solve_fleet((p1, p2), time_limit_s=30)
    assert res.outcome.status == "optimal"
    bf = brute_force_pair(p1, p2)
    assert res.objective_usd == pytest.approx(bf, abs=1e-6)
    r = DPRouter()
    r.reset(Problem.for_missions((p1, p2)))
    seq = sum(pl.cost_usd for pl in r.plans().values())
    assert res.objective_usd <= seq + 1e-6  # the sequential DP is one feasible MILP solution
    # the MILP's plans honour the coupling: distinct sites, one truck on the charger at a time
    served = [pl.served_customer for pl in res.plans.values()]
    assert len(served) == len(set(served))
    slots = [{(k, st.node_from) for st in pl.steps if st.kind == "charge"
              for k in range(st.k_start, st.k_end)} for pl in res.plans.values()]
    if len(slots) == 2:
        assert not slots[0] & slots[1]


def test_joint_milp_beats_sequential_dp_somewhere():
    """The coupling matters: on some instance the joint optimum is strictly below the
    sequential DP's fleet cost (so the bound test above is not vacuous)."""
    gaps = []
    for seed in range(6):
        p1, p2 = fleet_problem(seed, "t1"), fleet_problem(seed, "t2", wage=8.0, e_scale=1.3)
        r = DPRouter()
        r.reset(Problem.for_missions((p1, p2)))
        seq = sum(pl.cost_usd for pl in r.plans().values())
        gaps.append(seq - solve_fleet((p1, p2), time_limit_s=30).objective_usd)
    assert min(gaps) >= -1e-6
    assert max(gaps) > 1.0


def test_graph_pruning_keeps_only_completable_states():
    p = fleet_problem(1)
    g = build_graph(p)
    assert g.start in g.states
    # every arc's head is a kept state and every kept state has an outgoing arc
    assert set(g.tail.tolist()) == set(range(len(g.states)))
    assert np.all((g.head >= 0) | (g.code == END))
    # every path in the graph is a feasible DP action sequence: check the arcs one by one
    inv = {i: s for s, i in g.states.items()}
    for a in range(g.n_arcs):
        ph, k, v, j = inv[int(g.tail[a])]
        st, nxt, why = apply_action(p, ph, k, v, j, int(g.code[a]), int(g.arg[a]))
        assert st is not None, why
        assert st.cost_usd == pytest.approx(g.cost_usd[a], abs=1e-9)
        if g.code[a] != END:
            assert nxt == inv[int(g.head[a])]


def test_single_truck_cases_are_not_trivial():
    served = sum(bool(solve_fleet((fleet_problem(seed),), time_limit_s=30).plans)
                 for seed in range(6))
    assert served >= 5


def test_status_gap_and_bound_are_reported():
    probs = (fleet_problem(2, "t1"), fleet_problem(2, "t2", wage=8.0, e_scale=1.3))
    res = solve_fleet(probs, time_limit_s=30)
    out = res.outcome
    assert out.status == "optimal" and out.gap is not None and out.gap <= 1e-4
    assert out.bound <= out.objective + 1e-6
    assert res.n_vars > 0 and res.n_cons > 0


def test_plans_are_evaluated_under_the_dp_model():
    p1, p2 = fleet_problem(3, "t1"), fleet_problem(3, "t2", wage=8.0, e_scale=1.3)
    res = solve_fleet((p1, p2), time_limit_s=30)
    for name, pl in res.plans.items():
        p = p1 if name == "t1" else p2
        again = evaluate(p, [(_code(s.kind), _arg(p, s)) for s in pl.steps])
        assert again.feasible and again.cost_usd == pytest.approx(pl.cost_usd, abs=1e-9)


def _code(kind: str) -> int:
    return {"end": END, "serve": SERVE, "move": MOVE, "charge": CHARGE, "wait": WAIT}[kind]


def _arg(p: TruckDayProblem, st) -> int:
    if st.kind == "move":
        return st.node_to
    if st.kind == "charge":
        return p.bucket(st.soc_to_frac)
    if st.kind == "serve":
        return p.customers.index(st.customer)
    return -1
