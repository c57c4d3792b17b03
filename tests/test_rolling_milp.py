"""The truck ``milp`` as a rolling-horizon policy: re-solved from the simulated state.

Without disturbance the re-solves reproduce the single plan's day exactly (the MILP is solved to
optimality from where the plan says the trucks are); with seeded delays the policy re-plans on
lateness and its day is no worse than the open-loop plan's on the same realisation.
"""

from __future__ import annotations

import numpy as np
import pytest

from agents.truck import DriveDisturbance
from policies.coopt_milp import FleetMILP, build_graph, solve_fleet
from policies.registry import make_policy
from sim.coopt import FRESH, OLD
from sim.errors import ScenarioError


@pytest.fixture(scope="module")
def world():
    from agents.road_data import load_coopt
    from experiments.coopt_build import CooptSettings, build_problems
    from experiments.coopt_study import coopt_data_dir

    data = load_coopt(coopt_data_dir())
    hourly = {1: np.full(24, 0.12), 3: np.full(24, 0.15)}
    s = CooptSettings(n_trucks=2, soc_step_frac=0.1)
    probs = build_problems(data, "small", "generalised", s, hourly_price=hourly)
    return data, hourly, s, probs


def _day(world, policy, disturbance=None, seed=3):
    from experiments.coopt_study import simulate_fleet

    data, hourly, s, probs = world
    runs, _ = simulate_fleet(policy, probs, None, data, "small", s, "generalised", hourly,
                             disturbance=disturbance, seed=seed)
    return runs


def _totals(runs):
    return (sum(r.cost_usd for r in runs.values()),
            sum(r.total("grid_kwh") for r in runs.values()),
            sum(r.total("delivered_kwh") for r in runs.values()),
            [f for r in runs.values() for f in r.failures])


def test_replan_parameters_are_checked():
    with pytest.raises(ScenarioError, match="replan_min"):
        make_policy("milp", "missions", replan_min=-5)
    with pytest.raises(ScenarioError, match="late_tol_min"):
        make_policy("milp", "missions", late_tol_min=-2)
    assert not FleetMILP().rolling and FleetMILP(replan_min=30).rolling


def test_a_start_mid_day_builds_the_rest_of_the_day_only(world):
    p = world[3][0]
    g0 = build_graph(p)
    start = (OLD, 20, p.depot, p.bucket(0.6))
    g = build_graph(p, start=start)
    assert g.start in g.states and g.k_from.min() == 20
    assert g.n_arcs < g0.n_arcs
    # past the end of the day away from home: no way back, the solve says so
    away = next(v for v in range(p.n_nodes) if v != p.depot)
    res = solve_fleet((p,), starts={p.name: (FRESH, p.n_steps, away, 3)})
    assert res.outcome.status == "infeasible" and not res.plans


@pytest.mark.slow
def test_rolling_without_disturbance_equals_the_single_plan(world):
    single = FleetMILP()
    rolling = FleetMILP(replan_min=60, late_tol_min=0)
    a = _totals(_day(world, single))
    b = _totals(_day(world, rolling))
    assert not a[3] and not b[3]
    # the re-solves happened, were optimal and were adopted
    assert rolling.replans >= 3
    assert all(x["status"] == "optimal" and x["adopted"] for x in rolling.solves)
    assert [x["reason"] for x in rolling.solves[1:]] == ["every 60 min"] * rolling.replans
    assert b[0] == pytest.approx(a[0], abs=1e-6)
    assert b[1] == pytest.approx(a[1], abs=1e-6)
    assert b[2] == pytest.approx(a[2], abs=1e-6)
    assert single.replans == 0 and len(single.solves) == 1


@pytest.mark.slow
def test_with_seeded_delays_the_rolling_milp_replans_and_does_no_worse(world):
    d = DriveDisturbance(delay_prob=1.0, delay_max_min=40)
    single = FleetMILP()
    rolling = FleetMILP(late_tol_min=0)
    a = _totals(_day(world, single, d, seed=3))
    b = _totals(_day(world, rolling, d, seed=3))
    assert len(rolling.solves) >= 2, "a second solve is recorded"
    assert any(x["reason"].startswith("late by") for x in rolling.solves[1:])
    for x in rolling.solves:
        assert x["status"] in ("optimal", "feasible_gap", "time_limit", "infeasible",
                               "unbounded", "error")
        assert x["adopted"] == (x["status"] == "optimal")
    assert len(b[3]) <= len(a[3])
    assert b[0] <= a[0] + 1e-6
