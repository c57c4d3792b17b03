"""The DN ``dp`` prices each vehicle's battery wear from its own ageing model.

* the :class:`~sim.types.Problem` built from a scenario carries each vehicle's cycle-ageing cost
  per MWh of throughput (0 for the model ``none``, proportional to the pack price otherwise);
* with one vehicle on the two-DN case, the DP with a wear cost equals the MILP whose energy
  tie-breaker carries the same cost per MWh (the same linear form), and the cost changes the plan;
* a prohibitive wear cost plans no trip and no cycling; a zero one is the plan without it.
"""

from __future__ import annotations

import numpy as np
import pytest

from experiments.build import build_world, cycle_usd_per_mwh, vehicle_degradation
from experiments.config import DegradationConfig, load, resolve
from policies.dn_dp import DnDpPolicy, plan_fleet, plan_vehicle, window
from policies.registry import policy_problems
from policies.sfi import SfiContext, instance
from policies.sfi_highs import build_matrix, solve_matrix
from sim.flexibility import c_norm_mw
from sim.types import BatterySpec, GeneratorSpec, Problem, SiteInfo, SiteResources, VehicleSpec

T = 5
NET_LOAD = {"a": [1.0, 1.2, 0.8, 0.9, 1.0], "b": [0.6, 0.1, 1.5, 1.4, 0.1]}
WEIGHTS = np.array([[0.7, 0.3, 0.2, 0.6, 0.5], [0.3, 0.7, 0.8, 0.4, 0.5]])
TRAVEL = {("a", "b"): 60, ("b", "a"): 60, ("a", "a"): 0, ("b", "b"): 0}
LOSSLESS = BatterySpec(1.0, 0.05, 0.95, 0.25, 1.0, 1.0, 1.0)


def _site(name):
    # ramps wider than the output range: the DN's own flexibility is a constant of the objective
    r = SiteResources(generators=(GeneratorSpec("g", 0, 2.0, 0.0, 5.0, 5.0),))
    return SiteInfo(name, name, r, c_norm_mw(r), np.array(NET_LOAD[name], float), np.zeros(T))


def _problem(travel_energy=None):
    return Problem(step_min=60, horizon_min=60 * T, nodes=("a", "b"), travel_min=TRAVEL,
                   vehicles=(VehicleSpec("m0", "truck", LOSSLESS, "a", 0.1),),
                   sites=(_site("a"), _site("b")), travel_energy_mwh=travel_energy or {})


def _win(problem):
    ctx = SfiContext.from_problem(problem)
    load_, pv = ctx.forecast
    return window(ctx, problem, WEIGHTS, load_[0] - pv[0])


def _milp_with_wear(problem, wear_per_mwh):
    """The MILP with ``wear_per_mwh`` added to its energy tie-breaker on every ch/dis column."""
    ctx = SfiContext.from_problem(problem)
    load_, pv = ctx.forecast
    inst = instance(ctx, load_, pv, np.ones(1), WEIGHTS[None], start=({0: 0},),
                    e0=np.array([0.1]), neutral=True, symmetry=False)
    model = build_matrix(inst)
    sv = model.v["scen"][0]
    for name in ("ch", "dis"):
        for col in sv[name].values():
            model.cost[col] -= wear_per_mwh * ctx.dt_h
    return solve_matrix(model, 600, 1e-9)


def test_the_dp_with_wear_equals_the_milp_with_the_same_wear_and_the_wear_changes_the_plan():
    problem = _problem()
    win = _win(problem)
    const = WEIGHTS.sum()  # the DNs' own (dispatch-independent) part of the MILP's objective
    wear = 0.3  # objective units per MWh: enough to give up some cycling, not all of it
    out = _milp_with_wear(problem, wear)
    assert out.status == "optimal"
    plan = plan_vehicle(win, LOSSLESS, {0: 0}, 0.1, 0.1, 37, wear_per_mwh=wear)
    assert plan.value == pytest.approx(out.objective - const, abs=1e-7)
    free = plan_vehicle(win, LOSSLESS, {0: 0}, 0.1, 0.1, 37)
    moved_free, moved = np.abs(free.p_mw).sum(), np.abs(plan.p_mw).sum()
    assert moved < moved_free - 0.05  # the wear cost makes it cycle less
    # its value is the flexibility minus the tie-breakers and the wear along the plan
    eps = (1e-4 + wear) * moved + 1e-5 * (plan.dest >= 0).sum()
    assert plan.value == pytest.approx(plan.flex_value - eps, abs=1e-9)


def test_a_prohibitive_wear_cost_plans_no_trip_and_no_cycling_and_zero_is_the_old_plan():
    # a trip costs 0.02 MWh of traction energy that the vehicle must charge back (neutrality);
    # room everywhere, so it would go to DN b for its higher weights
    problem = _problem({("a", "b"): 0.02, ("b", "a"): 0.02})
    win = window(SfiContext.from_problem(problem), problem, WEIGHTS, np.full((2, T), 1.0))
    free = plan_fleet(win, [LOSSLESS], [{0: 0}], [0.1], [0.1], 37)[0]
    assert (free.dest >= 0).any() and np.abs(free.p_mw).sum() > 0.1  # it travels and cycles
    huge = plan_fleet(win, [LOSSLESS], [{0: 0}], [0.1], [0.1], 37, wear_per_mwh=[1e6])[0]
    assert (huge.dest < 0).all() and (huge.site == 0).all()
    assert np.abs(huge.p_mw).max() < 1e-12
    zero = plan_fleet(win, [LOSSLESS], [{0: 0}], [0.1], [0.1], 37, wear_per_mwh=[0.0])[0]
    for a, b in ((zero.p_mw, free.p_mw), (zero.e_mwh, free.e_mwh), (zero.dest, free.dest)):
        np.testing.assert_array_equal(a, b)
    assert zero.value == free.value
    with pytest.raises(ValueError, match="wear_per_mwh"):
        plan_vehicle(win, LOSSLESS, {0: 0}, 0.1, 0.1, 37, wear_per_mwh=-1.0)


def _three_dn(degradation=None):
    cfg = load(resolve("three-dn"))
    if degradation is None:
        return cfg
    fleet = [v.model_copy(update={"degradation": degradation}) for v in cfg.fleet]
    return cfg.model_copy(update={"fleet": fleet})


def test_the_problem_carries_each_vehicles_wear_cost_from_its_own_model():
    plain = build_world(_three_dn(), None, np.random.default_rng(1)).problem
    assert set(plain.deg_usd_per_mwh) == {v.name for v in plain.vehicles}
    assert all(c == 0.0 for c in plain.deg_usd_per_mwh.values())  # model "none"
    cheap = build_world(_three_dn(DegradationConfig(model="lfp", c_pack_usd_per_kwh=100.0)),
                        None, np.random.default_rng(1)).problem
    dear = build_world(_three_dn(DegradationConfig(model="lfp", c_pack_usd_per_kwh=300.0)),
                       None, np.random.default_rng(1)).problem
    for v in cheap.vehicles:
        assert cheap.deg_usd_per_mwh[v.name] > 0
        assert dear.deg_usd_per_mwh[v.name] == pytest.approx(3 * cheap.deg_usd_per_mwh[v.name])
    # the number is the model's cost of a full discharge of the window per MWh the cycle moves
    cfg = _three_dn(DegradationConfig(model="lfp", c_pack_usd_per_kwh=100.0))
    v = cheap.vehicles[0]
    model = vehicle_degradation(cfg.fleet[0])
    b = v.battery
    hi, lo = b.e_max_mwh / b.capacity_mwh, b.e_min_mwh / b.capacity_mwh
    rate = b.p_max_mw / b.capacity_mwh
    usd = model.transition_cost_usd(hi, lo, (hi - lo) / rate, soc_ref_frac=hi, c_rate_per_h=rate)
    cal = model.c_rep_usd * model.transition_damage(hi, lo, (hi - lo) / rate, soc_ref_frac=hi,
                                                    c_rate_per_h=rate)[0]
    moved = (b.e_max_mwh - b.e_min_mwh) * (1 / b.eta_ch + b.eta_dis)
    assert cycle_usd_per_mwh(model, b) == pytest.approx((usd - cal) / moved)
    assert cheap.deg_usd_per_mwh[v.name] == pytest.approx((usd - cal) / moved)
    # the policy turns it into objective units with its deg_weight
    pol = DnDpPolicy(deg_weight=2e-3)
    pol.reset(cheap, np.random.default_rng(0))
    assert pol.wear_per_mwh() == pytest.approx([2e-3 * cheap.deg_usd_per_mwh[s.name]
                                                for s in cheap.vehicles])


def test_a_bad_deg_weight_is_named():
    problems = policy_problems("dp", {"deg_weight": -1.0})
    assert any("deg_weight: must be >= 0" in p for p in problems)
