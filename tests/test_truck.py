"""Truck physics (MODELS.md D.2-D.3) and the Co-OPT road-data loader (D.1)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.road_data import CHARGING_BUS, load_coopt, load_network
from agents.truck import (
    NO_TRAFFIC,
    TrafficProfile,
    TruckParams,
    edge_trip,
    repo_energy_kwh,
    travel_minutes,
    travel_time_h,
    zone_split_km,
)
from experiments.coopt_study import coopt_data_dir
from sim.errors import ScenarioError

DATA = coopt_data_dir()  # the Co-OPT data shipped in the package


# ---------------------------------------------------------------- energy (D.3)
def test_flat_constant_speed_equals_hand_computed_rolling_plus_aero():
    """10 km flat at 45 km/h (12.5 m/s), no traffic, D.3 defaults. By hand:
    rolling 50,000 * 9.81 * 0.006 = 2943 N; aero 0.5 * 1.2 * 0.6 * 9.5 * 12.5^2 = 534.375 N;
    wheel energy 3477.375 N * 10,000 m / 3.6e6 = 9.6594 kWh; battery 9.6594 / 0.87 = 11.1027 kWh;
    auxiliaries 3 kW * (10/45) h = 0.6667 kWh; total 11.7694 kWh = 1.177 kWh/km (D.3 sanity check
    "about 1.18 kWh/km")."""
    t = edge_trip(10.0, 0.0, 0, 45.0, traffic=NO_TRAFFIC)
    assert t.e_kwh == pytest.approx(11.7694, rel=1e-4)
    assert t.e_kwh / 10 == pytest.approx(1.18, abs=0.005)
    assert t.travel_h == pytest.approx(10 / 45)
    no_aux = TruckParams(p_aux_kw=0.0)
    assert edge_trip(10.0, 0.0, 0, 45.0, no_aux, NO_TRAFFIC).e_kwh == pytest.approx(
        3477.375 * 1e4 / 3.6e6 / 0.87, rel=1e-9)


def test_uphill_minus_downhill_follows_the_regeneration_efficiency():
    """Whole edge graded (grade_fraction 1), 5 km at +-8 %, 40 km/h, no auxiliaries. With
    R = rolling + aero and G = m g sin(theta) l at the wheel (both kWh), uphill draws (R + G)/eta_dt
    and downhill returns eta_rg (G - R) when G > R, so up - down = (R + G)/0.87 - 0.6 (R - G)."""
    p = TruckParams(grade_fraction=1.0, p_aux_kw=0.0)
    theta = math.atan(0.08)
    r = (50_000 * 9.81 * 0.006 * math.cos(theta) + 0.5 * 1.2 * 0.6 * 9.5 * (40 / 3.6) ** 2) \
        * 5000 / 3.6e6
    g = 50_000 * 9.81 * math.sin(theta) * 5000 / 3.6e6
    up = edge_trip(5.0, 8.0, 0, 40.0, p, NO_TRAFFIC).e_kwh
    down = edge_trip(5.0, -8.0, 0, 40.0, p, NO_TRAFFIC).e_kwh
    assert g > r and down < 0
    assert up == pytest.approx((r + g) / 0.87, rel=1e-9)
    assert down == pytest.approx(0.6 * (r - g), rel=1e-9)
    assert up - down == pytest.approx((r + g) / 0.87 - 0.6 * (r - g), rel=1e-9)
    # the downhill edge never draws more than 0 at any point once the descent starts first;
    # with the flat-first convention the peak is 0 here (whole edge downhill)
    assert edge_trip(5.0, -8.0, 0, 40.0, p, NO_TRAFFIC).e_peak_kwh == 0.0


def test_one_km_climb_at_7_percent_adds_about_11_kwh():
    """D.3 sanity check: a 1 km climb at 7 % adds m g h / eta_dt = 50,000 * 9.81 * 69.83 m / 0.87
    = 10.94 kWh over the same km flat."""
    p = TruckParams(grade_fraction=1.0)
    extra = (edge_trip(1.0, 7.0, 0, 45.0, p, NO_TRAFFIC).e_kwh
             - edge_trip(1.0, 0.0, 0, 45.0, p, NO_TRAFFIC).e_kwh)
    assert extra == pytest.approx(10.94, rel=0.01)


@settings(max_examples=100, deadline=None)
@given(st.floats(0.5, 80.0), st.floats(-10.0, 10.0), st.floats(0.1, 5.0), st.floats(0.1, 20.0),
       st.integers(0, 2 * 1440))
def test_energy_grows_with_gradient_and_distance(d, g, dg, dd, t0):
    e = edge_trip(d, g, t0, 45.0).e_kwh
    assert edge_trip(d, g + dg, t0, 45.0).e_kwh > e
    assert edge_trip(d + dd, max(g, 0.0), t0, 45.0).e_kwh > edge_trip(d, max(g, 0.0), t0,
                                                                       45.0).e_kwh


def test_repo_energy_mode_matches_its_formula():
    """D.3 repository mode: 1.0 kWh/km * 40 + 1.2 + 50,000 * 9.81 * sin(0.07) * 40,000 / 3.6e6."""
    e = repo_energy_kwh(40.0, 7.0, 1.0, 1.2, 50_000)
    assert e == pytest.approx(40 + 1.2 + 50_000 * 9.81 * math.sin(0.07) * 40_000 / 3.6e6)
    assert repo_energy_kwh(40.0, -7.0, 1.0, 1.2, 50_000) < 0  # the repository's defect


def test_stop_and_go_adds_energy_only_in_congestion():
    p = TruckParams(stops_per_km=2.0)
    assert edge_trip(10, 0, 14 * 60, 45, p).e_kwh > edge_trip(10, 0, 14 * 60, 45).e_kwh
    assert edge_trip(10, 0, 0, 45, p, NO_TRAFFIC).e_kwh == edge_trip(10, 0, 0, 45,
                                                                     traffic=NO_TRAFFIC).e_kwh


# ---------------------------------------------------------------- travel time (D.2)
def test_zone_split():
    assert zone_split_km(40.0) == (2.0, 19.0, 19.0)
    assert zone_split_km(1.5) == (1.5, 0.0, 0.0)


def test_travel_time_peak_is_longer_hand_computed():
    """40 km at 50 km/h free speed. Depart 08:00 (morning factors 0.75/0.85/1.00):
    2/37.5 + 19/42.5 + 19/50 = 0.88039 h = 52.8 min -> 53 min on the clock. Depart 13:00 (the
    slower "evening" factors 0.50/0.55/0.90): 2/25 + 19/27.5 + 19/45 = 1.19313 h = 71.6 -> 72
    min."""
    tr = TrafficProfile()
    assert travel_time_h(40, 8 * 60, 50, tr) == pytest.approx(0.880392, rel=1e-6)
    assert travel_time_h(40, 13 * 60, 50, tr) == pytest.approx(1.193131, rel=1e-6)
    assert travel_minutes(40, 8 * 60, 50, tr) == 53
    assert travel_minutes(40, 13 * 60, 50, tr) == 72
    assert travel_minutes(40, 13 * 60, 50, tr) > travel_minutes(40, 8 * 60, 50, tr)


def test_fifo_integration_across_the_noon_boundary():
    """Depart 11:50 on 40 km at 50 km/h: zone 1 at 37.5 km/h takes 3.2 min (to 11:53.2); zone 2
    runs at 42.5 km/h for 6.8 min (4.8167 km) until 12:00, then 14.1833 km at 27.5 km/h
    (30.945 min); zone 3 19 km at 45 km/h (25.333 min). Total 66.279 min -> 67 on the clock.
    Repository mode uses the morning factors for the whole edge: 52.8 min."""
    tr = TrafficProfile()
    exact = (2 / 37.5 + 6.8 / 60 + (19 - 42.5 * 6.8 / 60) / 27.5 + 19 / 45) * 60
    assert travel_time_h(40, 11 * 60 + 50, 50, tr) * 60 == pytest.approx(exact, rel=1e-9)
    assert exact == pytest.approx(66.279, abs=1e-3)
    assert travel_minutes(40, 11 * 60 + 50, 50, tr) == 67
    assert travel_time_h(40, 11 * 60 + 50, 50, tr, mode="repo") == pytest.approx(0.880392,
                                                                                   rel=1e-6)


@settings(max_examples=200, deadline=None)
@given(st.floats(0.1, 120.0), st.integers(0, 3 * 1440), st.sampled_from([40.0, 45.0, 50.0]))
def test_fifo_arrivals_never_overtake(d, t0, v):
    """Leaving later never arrives earlier, exactly and on the minute clock."""
    tr = TrafficProfile()
    a0 = t0 + travel_time_h(d, t0, v, tr) * 60
    a1 = t0 + 1 + travel_time_h(d, t0 + 1, v, tr) * 60
    assert a1 >= a0 - 1e-9
    assert t0 + 1 + travel_minutes(d, t0 + 1, v, tr) >= t0 + travel_minutes(d, t0, v, tr)
    assert travel_minutes(d, t0, v, tr) >= travel_time_h(d, t0, v, tr) * 60 - 1e-9


def test_congestion_raises_auxiliary_energy():
    """D.3: congestion raises tau and hence P_aux tau; with no resistance only that term is left."""
    aux_only = TruckParams(crr=0.0, cd=0.0)
    slow = edge_trip(40, 0, 13 * 60, 50, aux_only).e_kwh
    fast = edge_trip(40, 0, 8 * 60, 50, aux_only).e_kwh
    assert slow == pytest.approx(3.0 * 1.193131, rel=1e-5)
    assert fast == pytest.approx(3.0 * 0.880392, rel=1e-5)


# ---------------------------------------------------------------- road data (D.1)
def test_networks_load_with_roles_and_bus_map():
    d = load_coopt(DATA)
    assert d.small.n_nodes == 7 and d.large.n_nodes == 16
    assert d.small.depot == 0 and d.small.charging_sites == (1, 3)
    assert d.small.construction_sites == (2, 4, 5, 6)
    assert d.large.charging_sites == (1, 3, 7, 10, 13)
    assert d.large.construction_sites == (2, 4, 5, 6, 8, 9, 11, 12, 14, 15)
    assert dict(d.small.bus_of_charging_site) == CHARGING_BUS["small"] == {1: 6, 3: 10}
    assert dict(d.large.bus_of_charging_site) == {1: 6, 3: 6, 7: 10, 10: 10, 13: 11}
    assert len(d.vehicles) == 24 and d.vehicles[5].e_per_km_kwh == 1.5
    assert d.traffic.morning == (0.75, 0.85, 1.0) and d.traffic.other == (0.5, 0.55, 0.9)
    assert [s.node for s in d.large.demands] == list(d.large.construction_sites)
    assert d.small.loads[0].excavators[1].consumption_kwh_per_h == 40


def test_directed_distances_and_negated_gradients():
    d = load_coopt(DATA)
    lg, sm = d.large, d.small
    assert lg.arc(0, 11).dist_km == 35 and lg.arc(11, 0).dist_km == 47
    assert lg.arc(10, 11).dist_km == 13 and lg.arc(11, 10).dist_km == 6
    assert lg.has_arc(10, 15) and not lg.has_arc(15, 10)
    assert not sm.has_arc(1, 3)
    assert sm.arc(0, 5).grade_pct == 10 and sm.arc(5, 0).grade_pct == -10
    assert sm.arc(3, 4).grade_pct == -8 and sm.arc(4, 3).grade_pct == 8
    assert sm.arc(0, 1).grade_pct == 0
    # 20 directed roads in the small network (10 undirected pairs of D.1)
    assert len(sm.arcs) == 20


def test_transport_graph_is_directed_and_uses_the_truck_model():
    d = load_coopt(DATA)
    v = d.vehicles[0]
    g = d.large.transport_graph(v.speed_kmh, depart_min=8 * 60, params=v.truck_params(),
                                traffic=d.traffic)
    assert g.problems(g.nodes) == []
    e = g.edge("0", "11")
    assert e["dist_km"] == 35 and e["grade_pct"] == 8
    assert e["travel_min"] == travel_minutes(35, 8 * 60, 50, d.traffic)
    assert e["energy_mwh"] == pytest.approx(edge_trip(35, 8, 8 * 60, 50).e_kwh / 1000)
    assert g.edge("11", "0")["dist_km"] == 47
    assert not g.graph.has_edge("15", "10")
    assert g.graph.nodes["13"]["bus"] == 11 and g.graph.nodes["0"]["role"] == "depot"


def _copy(tmp_path: Path) -> Path:
    dst = tmp_path / "coopt"
    shutil.copytree(DATA, dst)
    for f in dst.iterdir():
        f.chmod(0o644)
    return dst


def test_corrupted_csv_names_file_column_and_row(tmp_path):
    dst = _copy(tmp_path)
    p = dst / "large_distance_km.csv"
    lines = p.read_text().splitlines()
    cells = lines[12].split(",")  # node 11 (line 13 of the file)
    cells[1] = "4x7"
    lines[12] = ",".join(cells)
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(ScenarioError) as exc:
        load_coopt(dst)
    probs = exc.value.problems
    assert any("large_distance_km.csv: line 13, column 'Depot': not a number: '4x7'" in q
               for q in probs), probs


def test_all_problems_are_reported_at_once(tmp_path):
    dst = _copy(tmp_path)
    g = dst / "small_road_gradient.csv"
    g.write_text(g.read_text().replace("3,4,-8", "3,4,-6"))  # reverse 4->3 is 8
    v = dst / "vehicles.csv"
    v.write_text(v.read_text().replace("3,Medium,350,45,1,19,50000,1.2",
                                       "3,Medium,350,-45,1,19,50000,1.2"))
    t = dst / "traffic_intensity.csv"
    t.write_text(t.read_text().replace("2,Evening Peak,0.55", "2,Evening Peak,0"))
    with pytest.raises(ScenarioError) as exc:
        load_coopt(dst)
    text = str(exc.value)
    assert "small_road_gradient.csv: line" in text and "must be the negation" in text
    assert "vehicles.csv: line 5, column 'Average speed': must be > 0, got -45" in text
    assert "traffic_intensity.csv: line 5, column 'Traffic Intensity Index'" in text
    assert len(exc.value.problems) >= 3
    assert "Traceback" not in text


def test_missing_file_and_missing_column(tmp_path):
    dst = _copy(tmp_path)
    (dst / "small_site_loads.csv").unlink()
    d = dst / "small_site_demand.csv"
    d.write_text(d.read_text().replace("EndTime", "Finish"))
    with pytest.raises(ScenarioError) as exc:
        load_network(dst, "small")
    text = str(exc.value)
    assert "small_site_loads.csv: file not found" in text
    assert "small_site_demand.csv: line 1: missing column 'EndTime'" in text


def test_missing_reverse_gradient_is_negated_and_unlisted_arcs_are_flat(tmp_path):
    """Data README: "the reverse arc has the negated grade". Drop every row with from > to from a
    copy of the small gradient file: the loader must restore them as negations (and 0 -> 1, not
    listed at all after dropping 1 -> 0 too, is flat)."""
    dst = _copy(tmp_path)
    g = dst / "small_road_gradient.csv"
    head, *rows = g.read_text().splitlines()
    keep = [r for r in rows if int(r.split(",")[0]) < int(r.split(",")[1]) and r != "0,1,0"]
    g.write_text("\n".join([head, *keep]) + "\n")
    sm = load_network(dst, "small")
    assert sm.arc(5, 0).grade_pct == -10 and sm.arc(2, 1).grade_pct == -8
    assert sm.arc(4, 3).grade_pct == 8
    assert sm.arc(0, 1).grade_pct == 0 and sm.arc(1, 0).grade_pct == 0
    assert {(a.from_node, a.to_node): a.grade_pct for a in sm.arcs} == {
        (a.from_node, a.to_node): a.grade_pct for a in load_network(DATA, "small").arcs}


def test_vehicle_drives_the_loaded_graph_and_ages_for_its_traction():
    """End to end: a truck on the large network (depart 08:00) drives 0 -> 11 (35 km, +8 %). It
    arrives after the graph's travel minutes, its battery loses the D.3 energy, and the degradation
    model (fed every step by the battery) charges the traction discharge."""
    import simpy

    from agents.degradation import dod_curve_cycles, make_degradation
    from agents.vehicle import FleetModel
    from sim.types import BatterySpec, VehicleSpec

    d = load_coopt(DATA)
    g = d.large.transport_graph(50.0, depart_min=8 * 60, traffic=d.traffic)
    spec = VehicleSpec("t1", "truck", BatterySpec(0.35, 0.0175, 0.35, 0.5, retention_per_h=1.0),
                       "0", 0.315)
    fleet = FleetModel(g, [spec], degradation=lambda s: make_degradation("dod_curve"))
    v = fleet.vehicles[0]
    events = []
    env = simpy.Environment(initial_time=8 * 60)
    path = v.depart("11", 8 * 60, lambda *a: events.append(a))
    env.process(v.drive(env, path, lambda *a: events.append(a)))
    for k in range(1, 7):
        env.run(until=8 * 60 + 15 * k)
        v.apply_power(0.0, 15, int(env.now), lambda *a: events.append(a))
    e = g.edge("0", "11")
    assert path == ["0", "11"] and v.node == "11" and v.km == 35
    assert [a for a in events if a[2] == "arrive"][0][0] == 8 * 60 + e["travel_min"]
    assert v.battery.e_mwh == pytest.approx(0.315 - e["energy_mwh"], rel=1e-12)
    depth = e["energy_mwh"] / 0.35
    deg = v.battery.degradation
    assert deg.d_cyc == pytest.approx(1 / float(dod_curve_cycles(depth)), rel=1e-9)
    assert deg.soh_frac() < 1.0
