"""Battery and vehicle invariants (Hypothesis) and road-graph behaviour."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.battery import Battery
from agents.graph import TransportGraph
from agents.vehicle import FleetModel
from sim.types import BatterySpec, VehicleSpec

SPEC = BatterySpec(capacity_mwh=0.5, e_min_mwh=0.1, e_max_mwh=0.475, p_max_mw=0.25)

powers = st.lists(st.floats(min_value=-1.0, max_value=1.0, allow_nan=False), min_size=1,
                  max_size=60)
steps = st.sampled_from([5, 15, 30, 60, 90])


@settings(max_examples=300, deadline=None)
@given(powers, steps, st.floats(min_value=0.1, max_value=0.475))
def test_soc_stays_in_window_and_energy_balances(ps, dt_min, e0):
    b = Battery(SPEC, e0)
    for p in ps:
        res = b.step(p, dt_min)
        assert SPEC.e_min_mwh - 1e-9 <= b.e_mwh <= SPEC.e_max_mwh + 1e-12
        assert abs(res.p_mw) <= SPEC.p_max_mw + 1e-12
        # grid-side power is never larger than asked for, except to hold the floor
        if not res.bms_hold:
            assert abs(res.p_mw) <= abs(p) + 1e-12
    balance = (e0 + b.charged_mwh - b.discharged_mwh - b.loss_conversion_mwh - b.loss_self_mwh
               - b.traction_mwh)
    assert math.isclose(balance, b.e_mwh, abs_tol=1e-12)
    assert b.loss_conversion_mwh >= -1e-15 and b.loss_self_mwh >= 0


def test_eq9_single_step_matches_formula():
    b = Battery(SPEC, 0.25)
    b.step(0.2, 60)
    assert b.e_mwh == pytest.approx(0.999 * 0.25 + 0.95 * 0.2)
    b = Battery(SPEC, 0.25)
    b.step(-0.1, 30)
    assert b.e_mwh == pytest.approx(0.999 ** 0.5 * 0.25 - 0.1 * 0.5 / 0.95)


def test_limits_are_exact_at_the_window_edges():
    b = Battery(SPEC, 0.46)
    p_ch, p_dis = b.limits(60)
    assert p_ch == pytest.approx((0.475 - 0.999 * 0.46) / 0.95)
    assert p_dis == SPEC.p_max_mw
    b.step(1.0, 60)
    assert b.e_mwh == pytest.approx(SPEC.e_max_mwh)


def test_bms_holds_the_floor_when_parked():
    b = Battery(SPEC, 0.1)
    res = b.step(0.0, 60)
    assert res.bms_hold and res.p_mw > 0
    assert b.e_mwh == pytest.approx(0.1)


def test_throughput_and_equivalent_full_cycles():
    spec = BatterySpec(1.0, 0.0, 1.0, 1.0, eta_ch=1.0, eta_dis=1.0, retention_per_h=1.0)
    b = Battery(spec, 0.0)
    b.step(1.0, 60)
    b.step(-1.0, 60)
    assert b.throughput_mwh == pytest.approx(2.0)
    assert b.equivalent_full_cycles == pytest.approx(1.0)


def _graph():
    return TransportGraph.from_edges(
        ["a", "b", "c", "d"],
        [{"from": "a", "to": "b", "travel_min": 30}, {"from": "b", "to": "c", "travel_min": 45},
         {"from": "a", "to": "c", "travel_min": 90}, {"from": "c", "to": "d", "travel_min": 10}])


def test_shortest_paths_and_travel_times():
    g = _graph()
    assert g.shortest_path("a", "c") == ["a", "b", "c"]
    assert g.travel_min("a", "d") == 85
    assert g.travel_min("d", "a") == 85  # symmetric
    assert g.problems(["a", "b", "c", "d"]) == []


def test_graph_problems_name_every_unreachable_pair():
    g = TransportGraph.from_edges(["a", "b", "x"], [{"from": "a", "to": "b", "travel_min": 60}])
    probs = g.problems(["a", "b", "x"])
    assert "road: 'x' cannot be reached from 'a'" in probs
    assert "road: 'a' cannot be reached from 'x'" in probs
    assert len(probs) == 4


def test_graph_rejects_fractional_travel():
    g = TransportGraph.from_edges(["a", "b"], [{"from": "a", "to": "b", "travel_min": 1.5}])
    assert g.problems(["a", "b"])[0].startswith("road.edges[a->b].travel_min: must be a whole")


def test_graph_travel_in_whole_steps_only_when_asked():
    g = TransportGraph.from_edges(["a", "b"], [{"from": "a", "to": "b", "travel_min": 45}])
    assert g.problems(["a"], "road") == []
    assert g.problems(["a"], "road", step_min=15) == []
    assert g.problems(["a"], "road", step_min=60) == [
        "road.edges[a->b].travel_min: must be a whole number of 60-min steps, got 45",
        "road.edges[b->a].travel_min: must be a whole number of 60-min steps, got 45"]


def test_vehicle_is_a_mesa_agent_and_fleet_cannot_step():
    import mesa

    g = _graph()
    spec = VehicleSpec("v", "truck", SPEC, "a", 0.25)
    fleet = FleetModel(g, [spec], rng=np.random.default_rng(0))
    v = fleet.vehicles[0]
    assert isinstance(v, mesa.Agent) and v.model is fleet
    with pytest.raises(RuntimeError):
        fleet.step()


def test_trip_refused_when_energy_would_leave_the_window():
    g = TransportGraph.from_edges(["a", "b"], [{"from": "a", "to": "b", "travel_min": 60,
                                                "energy_mwh": 0.2}])
    fleet = FleetModel(g, [VehicleSpec("v", "truck", SPEC, "a", 0.25)])
    v = fleet.vehicles[0]
    assert "below e_min" in v.trip_problem("b", 60)
    fleet2 = FleetModel(g, [VehicleSpec("v", "truck", SPEC, "a", 0.4)])
    assert fleet2.vehicles[0].trip_problem("b", 60) is None
