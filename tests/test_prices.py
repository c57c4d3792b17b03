"""OPF locational prices (grids/prices.py): duals against finite differences, congestion."""

from __future__ import annotations

import numpy as np
import pytest

from grids.prices import (
    FEEDER_END_CONGESTED,
    HOURS,
    LocalResource,
    PriceConfig,
    hour_prices_usd_per_mwh,
    locational_spread,
    marginal_cost_fd,
    nodal_prices,
    step_prices_usd_per_kwh,
    upstream_price_usd_per_mwh,
)
from sim.errors import ScenarioError

PEAK_H = 18
# Line 7 is CIGRE MV line 9 -> 10, the only closed line into buses 10 and 11 (switch S3 on
# line 11 -> 4 is open). Capping it at 10 % makes it bind; a local resource at bus 10 then sets
# the price there.
CONGESTED = PriceConfig(method="dc", line_limits_pct=((7, 10.0),),
                        extra=(LocalResource(bus=10, p_max_mw=2.0, cost_usd_per_mwh=700.0),))


def test_dc_dual_equals_finite_difference_uncongested():
    lam = hour_prices_usd_per_mwh(PEAK_H)
    for bus in (6, 10):
        fd = marginal_cost_fd(bus, PEAK_H, eps_mw=0.01)
        assert lam[bus] == pytest.approx(fd, rel=1e-6)
    # uncongested and lossless: every bus pays the upstream price of the hour
    assert lam[10] == pytest.approx(upstream_price_usd_per_mwh()[PEAK_H], rel=1e-6)


def test_congestion_raises_the_price_at_the_bus_and_dual_matches_fd():
    base = hour_prices_usd_per_mwh(PEAK_H)
    cong = hour_prices_usd_per_mwh(PEAK_H, CONGESTED)
    assert cong[10] == pytest.approx(700.0, rel=1e-6)  # set by the local resource
    assert cong[10] > base[10] + 1.0
    assert cong[9] == pytest.approx(base[9], rel=1e-6)  # upstream of the congested line: unchanged
    assert marginal_cost_fd(10, PEAK_H, CONGESTED) == pytest.approx(cong[10], rel=1e-6)
    assert marginal_cost_fd(9, PEAK_H, CONGESTED) == pytest.approx(cong[9], rel=1e-6)


def test_congestion_without_local_supply_prices_at_voll():
    cfg = PriceConfig(method="dc", line_limits_pct=((7, 10.0),))
    lam = hour_prices_usd_per_mwh(PEAK_H, cfg)
    assert lam[10] == pytest.approx(cfg.voll_usd_per_mwh, rel=1e-6)


@pytest.mark.slow
def test_ac_dual_matches_finite_difference():
    cfg = PriceConfig(method="ac")
    lam = hour_prices_usd_per_mwh(PEAK_H, cfg)
    fd = marginal_cost_fd(10, PEAK_H, cfg, eps_mw=0.005)
    assert lam[10] == pytest.approx(fd, rel=2e-3)
    assert lam[10] > lam[1]  # losses: the far end of the feeder is dearer than its head


def test_congested_preset_prices_differ_across_buses_exactly_when_the_line_binds():
    """The studies' default: bus 10/11 prices leave bus 6's in the hours line 7 binds, and in
    such an hour each bus's dual is its finite-difference marginal cost."""
    r = nodal_prices([6, 10, 11], FEEDER_END_CONGESTED)
    spread = locational_spread(r)
    binding = {h for h in range(HOURS) if 7 in r.binding_lines[h]}
    assert binding and set(spread) == binding  # differ in every binding hour, and only then
    assert all(set(b) == {10, 11} for b in spread.values())
    assert np.all(r.shed_mw < 1e-6)
    h = PEAK_H
    assert h in binding
    lam = r.price_usd_per_mwh[h]
    assert lam[1] > lam[0] + 1.0
    for i, bus in enumerate((6, 10)):
        fd = marginal_cost_fd(bus, h, FEEDER_END_CONGESTED, eps_mw=0.01)
        assert lam[i] == pytest.approx(fd, rel=1e-6)
    # an hour in which the line does not bind: one price everywhere, also by finite difference
    h0 = min(set(range(HOURS)) - binding)
    row = r.price_usd_per_mwh[h0]
    assert row.max() - row.min() < 0.01
    assert marginal_cost_fd(10, h0, FEEDER_END_CONGESTED) == pytest.approx(row[1], rel=1e-6)


@pytest.fixture(scope="module")
def nominal():
    """The nominal feeder's day of prices at buses 6, 10 and 11 (read only by the tests)."""
    return nodal_prices([6, 10, 11])


def test_nominal_prices_vary_in_time_only(nominal):
    assert locational_spread(nominal) == {}


def test_nodal_prices_series_shape_and_time_variation(nominal):
    r = nominal
    assert r.price_usd_per_mwh.shape == (HOURS, 3)
    assert np.all(r.shed_mw < 1e-6)
    assert r.price_usd_per_mwh[PEAK_H, 0] > r.price_usd_per_mwh[3, 0]
    steps = step_prices_usd_per_kwh(r.price_usd_per_kwh, 7 * 60, 15, 48)
    assert steps.shape == (48, 3)
    assert steps[0, 0] == pytest.approx(r.price_usd_per_kwh[7, 0])
    assert steps[4, 0] == pytest.approx(r.price_usd_per_kwh[8, 0])


def test_seeded_repo_random_is_reproducible_and_needs_rng():
    a = upstream_price_usd_per_mwh(mode="repo_random", rng=np.random.default_rng(3))
    b = upstream_price_usd_per_mwh(mode="repo_random", rng=np.random.default_rng(3))
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="seeded rng"):
        upstream_price_usd_per_mwh(mode="repo_random")


def test_bad_input_names_the_field():
    with pytest.raises(ScenarioError, match="prices.method"):
        nodal_prices([6], PriceConfig(method="lp"))
    with pytest.raises(ScenarioError, match="prices.buses"):
        nodal_prices([99])
    with pytest.raises(ScenarioError, match="prices.load_shape"):
        nodal_prices([6], PriceConfig(load_shape=(1.0,) * 23))
