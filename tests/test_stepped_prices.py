"""Truck prices from the stepped grid (``study.truck_prices = "stepped_opf"``): each step's price
is the dual of the CIGRE MV OPF with the trucks' charging of that step in it
(grids/truck_grid.py ``ChargingFeeder.step_prices``, sim/systems.py ``TruckMissions`` with
``price_mode = "grid_opf"``)."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.coopt_study import simulate_fleet
from grids.prices import FEEDER_END_CONGESTED, nodal_prices
from grids.truck_grid import ChargingFeeder
from policies.coopt_baselines import PlanFollower
from policies.dp_router import DPRouter
from sim.errors import ScenarioError
from sim.systems import TruckMissions
from tests.conftest import PRICES

BUS_OF = {1: 6, 3: 10}  # the small network's charging nodes -> CIGRE MV buses


def test_without_charging_the_step_prices_are_the_hourly_prices():
    feeder = ChargingFeeder(BUS_OF, FEEDER_END_CONGESTED)
    hourly = nodal_prices([6, 10], FEEDER_END_CONGESTED).price_usd_per_kwh
    for h in (3, 11, 18):
        prices, status, _ = feeder.step_prices(60 * h + 15, 15, {1: 0.0, 3: 0.0})
        assert status == "ok"
        assert prices[1] == pytest.approx(hourly[h, 0], abs=1e-6)
        assert prices[3] == pytest.approx(hourly[h, 1], abs=1e-6)


def test_charging_behind_the_congested_line_raises_its_price_only():
    feeder = ChargingFeeder(BUS_OF, FEEDER_END_CONGESTED)
    quiet, _, _ = feeder.step_prices(3 * 60, 15, {1: 0.0, 3: 0.0})
    busy, status, _ = feeder.step_prices(3 * 60, 15, {1: 0.0, 3: 0.8})
    assert status == "ok"
    # line 7 into bus 10 is limited to about 0.76 MW: 0.8 MW of charging there makes it bind,
    # the local genset (600 USD/MWh) sets the price at bus 10; bus 6 keeps the upstream price
    assert busy[3] == pytest.approx(0.600, abs=1e-6) and quiet[3] < 0.5
    assert busy[1] == pytest.approx(quiet[1], abs=1e-6)


def test_a_mission_set_without_an_opf_grid_is_refused(coopt_small):
    _, _, probs = coopt_small
    with pytest.raises(ScenarioError, match="grid_opf"):
        TruckMissions(probs, lambda n, m: 0.3, price_mode="grid_opf")
    with pytest.raises(ScenarioError, match="price_mode"):
        TruckMissions(probs, lambda n, m: 0.3, price_mode="spot")


def test_each_charge_pays_the_step_prices_of_the_energy_it_drew(coopt_small):
    """Two ways to the same money: the charge steps' ``energy_usd`` (re-priced per truck and
    charge) and the sites table's energy per step and node times the step's price."""
    data, s, probs = coopt_small
    bus_of = data.networks["small"].bus_of_charging_site
    router = DPRouter()
    runs_h, _ = simulate_fleet(router, probs, None, data, "small", s, "generalised", PRICES,
                               grid=ChargingFeeder(bus_of, FEEDER_END_CONGESTED))
    plans = router.live_plans()
    runs, eng = simulate_fleet(PlanFollower(plans, probs), probs, list(plans), data, "small", s,
                               "generalised", PRICES,
                               grid=ChargingFeeder(bus_of, FEEDER_END_CONGESTED),
                               price_mode="grid_opf")
    assert all(r.ok for r in runs.values())
    sites = eng.recorder.frames()["sites"]
    assert "price_usd_per_kwh" in sites and sites.price_usd_per_kwh.notna().all()
    paid = sum(x.energy_usd for r in runs.values() for x in r.steps
               if x.kind in ("charge", "discharge"))
    step_h = probs[0].step_min / 60.0
    metered = float((sites.p_mw * 1000.0 * step_h * sites.price_usd_per_kwh).sum())
    assert paid == pytest.approx(metered, rel=1e-9)
    # the same charging as the hourly run (same plan, no disturbance), at other prices
    grid_h = sum(x.grid_kwh for r in runs_h.values() for x in r.steps)
    grid_s = sum(x.grid_kwh for r in runs.values() for x in r.steps)
    assert grid_s == pytest.approx(grid_h, abs=1e-9) and grid_s > 0
    paid_h = sum(x.energy_usd for r in runs_h.values() for x in r.steps)
    assert not np.isclose(paid, paid_h)
