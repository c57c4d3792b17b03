"""The DP router and the OCD coordinator on distribution sites, checked against the SFI MILP.

* ``dp`` with one vehicle on a two-DN case equals the MILP's optimum on the same objective (the
  DNs' own flexibility is made dispatch-independent, so the MILP's objective is the vehicle's
  part plus a constant), and a brute force over every route (fixed-route MILP each) agrees;
* with conversion losses the SOC grid can only lose: the DP is below the MILP and close to it;
* vehicles planned one after another never overfill a DN's balance room together;
* ``ocd`` on three-dn brackets the centralised MILP: LB <= optimum <= UB (cost form).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from experiments.build import build_world
from experiments.config import load, resolve
from policies.dn_dp import DnDpPolicy, balance_room, plan_fleet, plan_vehicle, window
from policies.dn_ocd import OcdDnOptions, OcdDnPolicy, run_ocd
from policies.registry import policy_problems
from policies.sfi import Options, SfiContext, instance, make_weights
from policies.sfi_highs import build_matrix, solve_matrix
from sim.flexibility import c_norm_mw, vehicle_flex
from sim.types import BatterySpec, GeneratorSpec, Problem, SiteInfo, SiteResources, VehicleSpec

T = 5
# net load per DN; DN b's step 4 can absorb only 0.1 MW of MESS discharge (balance room)
NET_LOAD = {"a": [1.0, 1.2, 0.8, 0.9, 1.0], "b": [0.6, 0.1, 1.5, 1.4, 0.1]}
WEIGHTS = np.array([[0.7, 0.3, 0.2, 0.6, 0.5], [0.3, 0.7, 0.8, 0.4, 0.5]])
TRAVEL = {("a", "b"): 60, ("b", "a"): 60, ("a", "a"): 0, ("b", "b"): 0}


def _site(name):
    # ramps wider than the output range: the generator's F_up + F_dn = p_max - p_min whatever
    # the dispatch, so the DN's own flexibility is a constant of the objective
    r = SiteResources(generators=(GeneratorSpec("g", 0, 2.0, 0.0, 5.0, 5.0),))
    return SiteInfo(name, name, r, c_norm_mw(r), np.array(NET_LOAD[name], float), np.zeros(T))


def _two_dn(battery, e_init, n_vehicles=1):
    vehicles = tuple(VehicleSpec(f"m{i}", "truck", battery, "a", e_init)
                     for i in range(n_vehicles))
    return Problem(step_min=60, horizon_min=60 * T, nodes=("a", "b"), travel_min=TRAVEL,
                   vehicles=vehicles, sites=(_site("a"), _site("b")))


def _milp(problem, e0, fix_routes=None):
    ctx = SfiContext.from_problem(problem)
    load_, pv = ctx.forecast
    inst = instance(ctx, load_, pv, np.ones(1), WEIGHTS[None], start=({0: 0},),
                    e0=np.array([e0]), neutral=True, symmetry=False, fix_routes=fix_routes)
    out = solve_matrix(build_matrix(inst), 60, 1e-9)
    return out


def _routes(n_sites=2):
    """Every route of one vehicle parked at site 0 at step 0 (travel 1 step): (x, y)."""
    for moves in itertools.product(range(n_sites), repeat=T):  # site it heads for in step t
        x = np.zeros((1, n_sites, T + 1))
        y = np.zeros((1, n_sites, n_sites, T))
        here = 0
        for t, b in enumerate(moves):
            x[0, here, t] = 1
            y[0, here, b, t] = 1
            here = b
        x[0, here, T] = 1
        yield x, y


def _dp(problem, e0, levels):
    ctx = SfiContext.from_problem(problem)
    load_, pv = ctx.forecast
    win = window(ctx, problem, WEIGHTS, load_[0] - pv[0])
    return win, plan_vehicle(win, problem.vehicles[0].battery, {0: 0}, e0, e0, levels)


LOSSLESS = BatterySpec(1.0, 0.05, 0.95, 0.25, 1.0, 1.0, 1.0)


def test_dp_with_one_vehicle_equals_the_milp_and_the_brute_force_over_routes():
    problem = _two_dn(LOSSLESS, 0.1)
    const = WEIGHTS.sum()  # w / C_norm * (p_max - p_min) summed: the DNs' own part
    out = _milp(problem, 0.1)
    assert out.status == "optimal"
    best = max(o.objective for o in (_milp(problem, 0.1, r) for r in _routes())
               if o.has_solution)
    assert best == pytest.approx(out.objective, abs=1e-7)
    win, plan = _dp(problem, 0.1, 37)  # grid step 0.025 MWh holds the MILP's vertices
    assert plan.value == pytest.approx(out.objective - const, abs=1e-7)
    # the plan is what it says: its route re-dispatched by the MILP gives the same optimum
    x = np.zeros((1, 2, T + 1))
    y = np.zeros((1, 2, 2, T))
    here = 0
    for t in range(T):
        x[0, here, t] = 1
        nxt = plan.dest[t] if plan.dest[t] >= 0 else here
        y[0, here, nxt, t] = 1
        here = nxt
    x[0, here, T] = 1
    assert _milp(problem, 0.1, (x, y)).objective == pytest.approx(out.objective, abs=1e-7)
    # the balance room binds: at DN b, step 4, at most 0.1 MW of discharge
    lo, hi = balance_room(problem.sites, np.array([NET_LOAD["a"], NET_LOAD["b"]]))
    assert hi[1, 4] == pytest.approx(0.1) and lo[1, 4] == pytest.approx(-1.9)
    for t in range(T):
        if plan.site[t] >= 0:
            assert -plan.p_mw[t] <= win.room_hi_mw[plan.site[t], t] + 1e-9
            assert -plan.p_mw[t] >= win.room_lo_mw[plan.site[t], t] - 1e-9
    # energy: neutral, inside the window, and the flexibility value recomputes with min()
    assert plan.e_mwh[0] == plan.e_mwh[-1] == pytest.approx(0.1)
    flex = 0.0
    for t in range(T):
        n = plan.site[t]
        if n >= 0:
            p = plan.p_mw[t]
            up, dn = vehicle_flex(max(p, 0), max(-p, 0), plan.e_mwh[t + 1], 0.25, 0.05, 0.95,
                                  1.0, 1.0, 1.0, True)
            flex += WEIGHTS[n, t] / 2.0 * (up + dn)
    assert flex == pytest.approx(plan.flex_value, abs=1e-9)


def test_the_balance_room_changes_the_plan():
    # DN b cannot absorb the final 0.2 MW discharge at step 4, so the vehicle stays at DN a;
    # with room everywhere it goes to DN b for its higher weights
    problem = _two_dn(LOSSLESS, 0.1)
    _, plan = _dp(problem, 0.1, 37)
    free = window(SfiContext.from_problem(problem), problem, WEIGHTS, np.full((2, T), 1.0))
    roomy = plan_vehicle(free, LOSSLESS, {0: 0}, 0.1, 0.1, 37)
    assert (plan.site == 0).all()
    assert roomy.site[4] == 1 and roomy.value > plan.value + 0.02


def test_with_losses_the_dp_is_below_the_milp_and_close():
    lossy = BatterySpec(1.0, 0.05, 0.95, 0.25, 0.95, 0.95, 0.999)
    problem = _two_dn(lossy, 0.1)
    milp = _milp(problem, 0.1).objective - WEIGHTS.sum()
    values = [_dp(problem, 0.1, n)[1].value for n in (19, 145)]
    assert all(v <= milp + 1e-9 for v in values)
    assert milp - values[1] < 1e-3 * abs(milp)
    assert values[1] >= values[0] - 1e-12


def test_vehicles_planned_in_turn_share_the_balance_room():
    problem = _two_dn(LOSSLESS, 0.5, n_vehicles=3)
    ctx = SfiContext.from_problem(problem)
    load_, pv = ctx.forecast
    win = window(ctx, problem, WEIGHTS, load_[0] - pv[0])
    plans = plan_fleet(win, [LOSSLESS] * 3, [{0: 0}] * 3, [0.5] * 3, [0.5] * 3, 37)
    inj = np.zeros((2, T))
    for p in plans:
        for t in range(T):
            if p.site[t] >= 0:
                inj[p.site[t], t] -= p.p_mw[t]
    assert (inj <= win.room_hi_mw + 1e-9).all() and (inj >= win.room_lo_mw - 1e-9).all()
    # a vehicle alone at DN b in step 4 may use the room the others took
    alone = plan_vehicle(win, LOSSLESS, {0: 0}, 0.5, 0.5, 37)
    assert plans[0].value == pytest.approx(alone.value)
    assert all(p.value <= alone.value + 1e-12 for p in plans)


def test_a_degradation_cost_is_charged_along_the_plan():
    problem = _two_dn(LOSSLESS, 0.1)
    ctx = SfiContext.from_problem(problem)
    load_, pv = ctx.forecast
    win = window(ctx, problem, WEIGHTS, load_[0] - pv[0])

    def deg(s0, s1, dt_h):  # a cost per SOC moved
        return 0.05 * np.abs(np.asarray(s1) - np.asarray(s0))

    free = plan_vehicle(win, LOSSLESS, {0: 0}, 0.1, 0.1, 37)
    costly = plan_vehicle(win, LOSSLESS, {0: 0}, 0.1, 0.1, 37, deg_cost=deg)
    moved = np.abs(np.diff(costly.e_mwh)).sum()
    assert costly.value <= free.value
    # the value is the flexibility minus the tie-breakers and the degradation along the plan
    eps = 1e-4 * np.abs(costly.p_mw).sum() + 1e-5 * (costly.dest >= 0).sum()
    assert costly.value == pytest.approx(costly.flex_value - eps - 0.05 * moved, abs=1e-9)
    assert np.abs(np.diff(free.e_mwh)).sum() >= moved - 1e-12


@pytest.fixture(scope="module")
def three_dn_window():
    cfg = load(resolve("three-dn"))
    world = build_world(cfg, None, np.random.default_rng(1))
    problem = world.problem
    ctx = SfiContext.from_problem(problem)
    load_, pv = ctx.forecast
    w = make_weights(ctx, load_, pv, np.ones(1), "dynamic", Options("highs", 30, 5e-3))
    k, H = 8, 6
    starts = tuple({ctx.site_index(v.start_node): 0} for v in problem.vehicles)
    inst = instance(ctx, load_[:, :, k:k + H], pv[:, :, k:k + H], np.ones(1),
                    w.w[:, :, k:k + H], start=starts, neutral=True, symmetry=False)
    central = solve_matrix(build_matrix(inst), 60, 1e-7)
    assert central.status == "optimal"
    return inst, central


@pytest.mark.parametrize("variant,iters", [("enhanced", 10), ("literal", 3)])
def test_ocd_brackets_the_centralised_milp(three_dn_window, variant, iters):
    inst, central = three_dn_window
    res = run_ocd(inst, OcdDnOptions(variant, max_iter=iters))
    # cost form: cost = -objective; the optimum's cost lies in [-bound, -incumbent]
    assert res.lb <= -central.objective + 1e-7
    assert res.ub >= -central.bound - 1e-7
    assert np.isfinite(res.ub) and np.isfinite(res.lb)
    assert res.plan is not None and res.outcome.objective == -res.ub
    for h in res.history:
        assert h["power_status"] in ("optimal", "feasible_gap", "time_limit")
        assert h["lb"] <= h["ub"] + 1e-7
        assert all(e["status"] for e in h["route_evals"])
    lbs = [h["lb"] for h in res.history]
    ubs = [h["ub"] for h in res.history]
    assert lbs == sorted(lbs) and ubs == sorted(ubs, reverse=True)
    if variant == "enhanced":  # E1 + E2 close the gap on this window
        assert res.gap is not None and res.gap <= 1e-3


def test_bad_parameters_are_named():
    ctx = {"system": "dn-sites", "step_min": 60}
    msgs = policy_problems("dp", {"soc_levels": 1, "replan_min": 90}, context=ctx)
    assert any("soc_levels" in m for m in msgs) and any("replan_min" in m for m in msgs)
    msgs = policy_problems("ocd", {"variant": "fancy", "max_iter": 0}, context=ctx)
    assert any("variant" in m for m in msgs) and any("max_iter" in m for m in msgs)
    assert DnDpPolicy().params()["replan_min"] == 60
    assert OcdDnPolicy().params()["variant"] == "enhanced"


def test_an_unreachable_terminal_energy_is_planned_with_a_free_end_and_said():
    problem = _two_dn(LOSSLESS, 0.1)
    ctx = SfiContext.from_problem(problem)
    load_, pv = ctx.forecast
    win = window(ctx, problem, WEIGHTS[:, 3:], (load_[0] - pv[0])[:, 3:])  # last 2 steps
    # 0.9 MWh cannot come down to 0.1 MWh at 0.25 MW in two steps
    assert plan_vehicle(win, LOSSLESS, {0: 0}, 0.9, 0.1, 37) is None
    relaxed = []
    (plan,) = plan_fleet(win, [LOSSLESS], [{0: 0}], [0.9], [0.1], 37, relaxed=relaxed)
    assert relaxed == [0] and plan is not None
    assert plan.e_mwh[-1] >= 0.9 - 2 * 0.25 - 1e-9
