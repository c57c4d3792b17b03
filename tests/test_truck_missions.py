"""The Co-OPT missions in the SimPy engine (sim/systems.py TruckMissions,
agents/truck.CooptTruck)."""

from __future__ import annotations

import pytest

from agents.truck import DriveDisturbance, travel_minutes
from experiments.coopt_study import simulate_fleet
from policies.coopt_baselines import PlanFollower, plan_fleet
from policies.dp_router import DPRouter
from tests.conftest import PRICES

COST_PARTS = ("distance_usd", "wage_usd", "energy_usd", "degradation_usd", "penalty_usd")


def _dp(probs, **kw):
    return DPRouter(**kw)  # the engine resets it with the missions of probs


def test_undisturbed_run_equals_the_plan(coopt_small):
    data, s, probs = coopt_small
    router = _dp(probs)
    runs, eng = simulate_fleet(router, probs, None, data, "small", s, "generalised", PRICES)
    plans = router.live_plans()
    assert router.replans == 0
    assert len(runs) == 4
    byname = {p.name: p for p in probs}
    vehicles = {f"truck{v.vehicle_id}": v for v in data.vehicles}
    net = data.networks["small"]
    for name, run in runs.items():
        plan, p = plans[name], byname[name]
        assert run.ok, run.failures
        assert [(x.kind, x.k_start, x.k_end, x.node_from, x.node_to) for x in run.steps] == [
            (x.kind, x.k_start, x.k_end, x.node_from, x.node_to) for x in plan.steps]
        for a, b in zip(run.steps, plan.steps):
            assert a.soc_from_frac == pytest.approx(b.soc_from_frac, abs=1e-9)
            assert a.soc_to_frac == pytest.approx(b.soc_to_frac, abs=1e-9)
            for part in COST_PARTS:
                assert getattr(a, part) == pytest.approx(getattr(b, part), abs=1e-6), part
        assert run.cost_usd == pytest.approx(plan.cost_usd, abs=1e-6)
        # each physical arrival: departure minute + D.2 travel minutes, within the planned step
        moves = [x for x in plan.steps if x.kind == "move"]
        assert len(run.arrivals) == len(moves)
        for (node, arr), m in zip(run.arrivals, moves):
            dep = p.step_clock_min(m.k_start)
            a = net.arc(m.node_from, m.node_to)
            assert node == m.node_to
            assert arr == dep + travel_minutes(a.dist_km, dep, vehicles[name].speed_kmh,
                                               data.traffic)
            assert p.step_clock_min(m.k_end - 1) < arr <= p.step_clock_min(m.k_end)
        # the DP's bucketed plan is conservative: the simulated SOC is never below it
        assert run.total("delivered_kwh") >= router.plans()[name].total("delivered_kwh") - 1e-9
        assert run.damage > 0 and run.degradation_stepwise_usd > 0
    assert sorted(eng.system.served) == sorted(probs[0].customers)  # all four sites swapped once


def test_disturbed_dp_replans_and_stays_feasible(coopt_small):
    data, s, probs = coopt_small
    router = _dp(probs)
    runs, _ = simulate_fleet(router, probs, None, data, "small", s, "generalised", PRICES,
                             DriveDisturbance(delay_prob=0.5, delay_max_min=40), seed=0)
    assert router.replans > 0
    assert sum(r.delay_min for r in runs.values()) > 0
    req = {c: q for c, q in zip(probs[0].customers, probs[0].requirement_kwh)}
    for run in runs.values():
        assert run.ok, run.failures
        assert run.soc_low_frac >= s.soc_min_frac - 1e-12
        assert all(s.soc_min_frac - 1e-12 <= soc <= s.soc_max_frac + 1e-12
                   for _, soc, _, _ in run.trace)
        c = run.served_customer
        assert req[c] - min(run.total("delivered_kwh"), req[c]) >= 0.0
    # every re-plan started from the simulated state, not the planned one
    assert all(e["k"] != e["planned_k"] or abs(e["soc_frac"] - e["planned_soc_frac"]) > 0
               for e in router.replan_log)


def test_open_loop_baseline_follows_its_plan_and_records_failures(coopt_small):
    data, s, probs = coopt_small
    plans = plan_fleet(probs, "greedy")
    quiet, _ = simulate_fleet(PlanFollower(plans, probs), probs, list(plans), data, "small", s,
                              "generalised", PRICES)
    for name, run in quiet.items():
        assert run.ok, run.failures
        assert [(x.kind, x.k_start, x.node_to) for x in run.steps] == [
            (x.kind, x.k_start, x.node_to) for x in plans[name].steps]
        assert run.total("dist_km") == pytest.approx(plans[name].total("dist_km"))
    # delayed, the open-loop plan runs late (it never re-plans); anything it cannot do is a
    # recorded failure, never an exception
    late, _ = simulate_fleet(PlanFollower(plans, probs), probs, list(plans), data, "small", s,
                             "generalised", PRICES, DriveDisturbance(1.0, 120), seed=3)
    assert any(a.k_start > b.k_start for name, run in late.items()
               for a, b in zip(run.steps, plans[name].steps))
    assert all(r.ok == (r.ended and not r.failures) for r in late.values())


def test_disturbance_checks_name_the_field():
    with pytest.raises(ValueError, match="delay_prob"):
        DriveDisturbance(delay_prob=1.5, delay_max_min=5)
    with pytest.raises(ValueError, match="delay_max_min must be >= 1"):
        DriveDisturbance(delay_prob=0.5)
    with pytest.raises(ValueError, match="energy_noise"):
        DriveDisturbance(energy_noise=-0.1)


def test_a_fleet_with_no_planned_truck_runs_an_empty_day(coopt_small):
    """A planner that found no plan (e.g. the fleet MILP stopped without an incumbent) sends no
    truck out: the day runs with no truck, no event and no failure, instead of an exception."""
    data, s, probs = coopt_small
    runs, eng = simulate_fleet(PlanFollower({}, probs), probs, [], data, "small", s,
                               "generalised", PRICES)
    assert runs == {} and eng.system.events == [] and eng.system.served == []
