"""The Co-OPT trucks' charging in the CIGRE MV power flow (grids/truck_grid.py ChargingFeeder,
sim/systems.py TruckMissions with a grid)."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pytest

from experiments.coopt_study import simulate_fleet
from grids.prices import FEEDER_END_CONGESTED, LOAD_SHAPE, PV_SHAPE, WIND_FACTOR
from grids.truck_grid import ChargingFeeder
from policies.dp_router import DPRouter
from tests.conftest import PRICES


def reference_vm_pu(hour: int, loads_mw: dict[int, float]) -> np.ndarray:
    """Bus voltages of a plain ``pandapower.runpp`` of the CIGRE MV benchmark built here from
    pandapower alone: the hour's load, PV and wind factors, the benchmark batteries removed,
    the dispatchable DER off, and ``loads_mw`` added as loads (bus -> MW, unity power factor)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = pn.create_cigre_network_mv(with_der="all")
    net.storage.drop(net.storage.index, inplace=True)
    net.load["p_mw"] *= LOAD_SHAPE[hour]
    net.load["q_mvar"] *= LOAD_SHAPE[hour]
    pv, wp = net.sgen.type == "PV", net.sgen.type == "WP"
    net.sgen.loc[pv, "p_mw"] *= PV_SHAPE[hour]
    net.sgen.loc[wp, "p_mw"] *= WIND_FACTOR
    net.sgen.loc[~(pv | wp), "p_mw"] = 0.0
    for bus, p in loads_mw.items():
        pp.create_load(net, bus, p_mw=p, q_mvar=0.0)
    pp.runpp(net, numba=False, tolerance_mva=1e-10)
    return net.res_bus.vm_pu.reindex(net.bus.index).to_numpy(float)


@pytest.fixture(scope="module")
def grid_run(coopt_small):
    data, s, probs = coopt_small
    feeder = ChargingFeeder(data.networks["small"].bus_of_charging_site, FEEDER_END_CONGESTED)
    runs, eng = simulate_fleet(DPRouter(), probs, None, data, "small", s, "generalised", PRICES,
                               grid=feeder)
    return runs, eng, eng.recorder.frames(), probs[0]


def test_every_step_is_settled_once_with_one_row_per_node_and_bus(grid_run, coopt_small):
    data, _, _ = coopt_small
    runs, eng, frames, p = grid_run
    sites, buses = frames["sites"], frames["buses"]
    steps = p.t_start_min + p.step_min * np.arange(p.n_steps)  # [start, end) in whole steps
    bus_of = dict(data.networks["small"].bus_of_charging_site)
    assert list(sites.columns) == ["time_min", "node", "bus", "p_mw", "vm_pu", "converged",
                                   "status"]
    assert list(buses.columns) == ["time_min", "bus", "vm_pu"]
    assert sorted(sites.time_min.unique()) == steps.tolist()
    assert len(sites) == len(steps) * len(bus_of)
    assert all(bus_of[n] == b for n, b in zip(sites.node, sites.bus))
    assert len(buses) == len(steps) * 15  # the 15 CIGRE MV buses
    assert sites.converged.all() and (sites.status == "ok").all()
    assert frames["failures"].empty
    assert (sites.p_mw > 0).any()  # the trucks charge in this run


def test_charging_moves_the_bus_voltage_like_a_plain_runpp(grid_run):
    _, _, frames, _ = grid_run
    sites, buses = frames["sites"], frames["buses"]
    charging = sites[sites.p_mw > 0]
    # the two steps with the most charging power, checked against pandapower built from scratch
    for t in charging.sort_values("p_mw").time_min.unique()[-2:]:
        rows = sites[sites.time_min == t]
        loads = {}
        for r in rows.itertuples():
            loads[int(r.bus)] = loads.get(int(r.bus), 0.0) + float(r.p_mw)
        ref = reference_vm_pu((int(t) // 60) % 24, loads)
        base = reference_vm_pu((int(t) // 60) % 24, {})
        got = buses[buses.time_min == t].sort_values("bus")
        assert got.bus.tolist() == list(range(15))
        np.testing.assert_allclose(got.vm_pu.to_numpy(), ref, rtol=0, atol=1e-6)
        for r in rows[rows.p_mw > 0].itertuples():
            assert r.vm_pu == pytest.approx(ref[int(r.bus)], abs=1e-6)
            assert ref[int(r.bus)] < base[int(r.bus)] - 1e-4  # the charging pulls it down


def test_no_charging_leaves_the_base_case(grid_run):
    _, _, frames, _ = grid_run
    sites, buses = frames["sites"], frames["buses"]
    idle = sites.groupby("time_min").p_mw.apply(lambda x: (x == 0).all())
    idle_steps = idle[idle].index.to_numpy()
    assert idle_steps.size
    for t in (idle_steps[0], idle_steps[-1]):
        got = buses[buses.time_min == t].sort_values("bus").vm_pu.to_numpy()
        np.testing.assert_allclose(got, reference_vm_pu((int(t) // 60) % 24, {}), rtol=0,
                                   atol=1e-6)


def test_energy_of_the_sites_rows_is_the_trucks_grid_energy(grid_run):
    runs, _, frames, p = grid_run
    sites = frames["sites"]
    step_h = p.step_min / 60.0
    grid_kwh = sum(x.grid_kwh for r in runs.values() for x in r.steps)
    assert grid_kwh > 0
    assert (sites.p_mw * step_h).sum() == pytest.approx(grid_kwh / 1000.0, abs=1e-9)
    for node, g in sites.groupby("node"):
        kwh = sum(x.grid_kwh for r in runs.values() for x in r.steps if x.node_from == node
                  and x.kind in ("charge", "discharge"))
        assert (g.p_mw * step_h).sum() == pytest.approx(kwh / 1000.0, abs=1e-9)


def test_a_run_without_a_grid_records_nothing_and_is_otherwise_the_same(grid_run, coopt_small):
    data, s, probs = coopt_small
    runs_grid, eng_grid, _, _ = grid_run
    runs, eng = simulate_fleet(DPRouter(), probs, None, data, "small", s, "generalised", PRICES)
    frames = eng.recorder.frames()
    assert "sites" not in frames and "buses" not in frames
    assert eng.system.events == eng_grid.system.events
    assert runs.keys() == runs_grid.keys()
    for name in runs:
        assert runs[name].steps == runs_grid[name].steps
        assert runs[name].trace == runs_grid[name].trace


class _FailingGrid:
    """A grid whose power flow never converges (as a result, not an exception)."""

    name = "broken"

    def __init__(self, bus_of_node):
        self.bus_of_node = dict(bus_of_node)
        self.bus_index = np.arange(15)
        self.calls = 0

    def step(self, time_min, dt_min, p_mw_by_node):
        self.calls += 1
        return SimpleNamespace(converged=False, status="not_converged", message="diverged",
                               vm_pu=np.full(15, np.nan))


def test_a_failed_power_flow_is_a_recorded_failure_and_the_run_goes_on(coopt_small):
    data, s, probs = coopt_small
    grid = _FailingGrid(data.networks["small"].bus_of_charging_site)
    runs, eng = simulate_fleet(DPRouter(), probs, None, data, "small", s, "generalised", PRICES,
                               grid=grid)
    frames = eng.recorder.frames()
    fails = frames["failures"]
    assert grid.calls == probs[0].n_steps
    assert len(fails) == grid.calls
    assert set(fails.kind) == {"power_flow"} and set(fails.entity) == {"broken"}
    assert not frames["sites"].converged.any()
    assert all(r.ok for r in runs.values())


def test_the_feeder_reports_a_diverging_power_flow_as_data():
    feeder = ChargingFeeder({1: 6, 3: 10}, FEEDER_END_CONGESTED)
    r = feeder.step(600, 15, {1: 0.0, 3: 500.0})  # far beyond what the feeder can carry
    assert not r.converged and r.status == "not_converged"
    assert np.isnan(r.vm_pu).all()
    r = feeder.step(615, 15, {1: float("nan"), 3: 0.0})
    assert not r.converged and r.status == "invalid_input"
    r = feeder.step(630, 15, {1: 0.0, 3: 0.0})  # and it recovers
    assert r.converged
    np.testing.assert_allclose(r.vm_pu, reference_vm_pu(10, {}), rtol=0, atol=1e-6)
