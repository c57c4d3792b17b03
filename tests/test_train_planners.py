"""The train ``dp`` and ``greedy`` planners on a transmission grid (policies/train_dp.py).

* The pricing LP's LMPs are the finite-difference marginal cost of load at a bus.
* The transport DP is exact on its own model: its value is the cost of the route and energy
  plan it returns, it parks on flat prices, and it travels to a price spike worth the trip.
* On tsn-ieee30 (6 hours) through the one engine: the centralised MILP is a lower bound on the
  price-routed plans' cost (its dual bound <= theirs), and they cost no more than parking.
"""

from __future__ import annotations

import numpy as np
import pytest

from policies.registry import make_policy
from policies.train_dp import grid_prices, hour_lmp, route_train_dp, route_train_greedy
from tests.tsn_cases import tiny_case


def test_lmp_is_the_marginal_cost_of_load_at_the_bus():
    case = tiny_case(T=4)
    on = np.ones(len(case.units), dtype=bool)
    for t in range(case.T):
        lmp, cost, status, slack = hour_lmp(case, t, on)
        assert status == "optimal" and not slack
        for b in range(len(case.bus_ids)):
            eps = 1e-3
            load = np.array(case.load_mw[t], dtype=float)
            load[b] += eps
            _, up, _, _ = hour_lmp(case, t, on, load_mw=load)
            load[b] -= 2 * eps
            _, dn, _, _ = hour_lmp(case, t, on, load_mw=load)
            # on a PWL cost the one-sided slopes bracket the dual (equal off a breakpoint)
            lo, hi = sorted(((cost - dn) / eps, (up - cost) / eps))
            assert lo - 1e-4 <= lmp[b] <= hi + 1e-4, (t, b, lmp[b], lo, hi)


def _replay_value(case, k, path, energy, lmp):
    """Transport cost + energy bought - energy sold of a route and its energy plan."""
    tr = case.trains[k]
    value, pos = 0.0, 0
    for i, t0, j, t1 in path:
        if i != j:
            value += case.transport_cost_per_h * (t1 - t0)
            assert energy[pos + (t1 - t0)] == energy[pos]
            pos += t1 - t0
        else:
            d = energy[pos + 1] - energy[pos]
            value += lmp[i, t0] * d / case.eta if d > 0 else lmp[i, t0] * d * case.eta
            pos += 1
    assert path[-1][2] == case.station_pos(tr.end) and path[-1][3] == case.T
    assert energy[-1] == pytest.approx(tr.e_end_mwh)
    return value


def test_train_dp_value_is_its_plan_cost_and_it_reacts_to_prices():
    case = tiny_case(T=8, transport_cost_per_h=20.0)
    flat = np.full((len(case.stations), case.T), 30.0)
    path, value, energy = route_train_dp(case, 0, flat)
    assert value == pytest.approx(0.0) and all(i == j for i, _, j, _ in path)
    # cheap hours at station 2, an expensive one at station 3 later: worth the trips
    lmp = flat.copy()
    lmp[1, 1:3] = 5.0
    lmp[2, 5] = 200.0
    path, value, energy = route_train_dp(case, 0, lmp)
    assert value == pytest.approx(_replay_value(case, 0, path, energy, lmp))
    assert value < -100.0
    assert (1, 1, 1, 2) in path or (1, 2, 1, 3) in path
    assert (2, 5, 2, 6) in path
    # the greedy rule finds the same charge / discharge stations
    gpath, info = route_train_greedy(case, 0, lmp)
    assert info["pair"] is not None and info["pair"][0] == 1 and info["pair"][2:] == (2, 5)
    assert info["gain_usd"] > 0
    # a train that cannot do better than parking under flat prices stays parked
    gpath, info = route_train_greedy(case, 0, flat)
    assert info["pair"] is None and all(i == j for i, _, j, _ in gpath)


def test_prices_without_trains_on_the_tiny_case():
    case = tiny_case(T=6)
    pr = grid_prices(case)
    assert pr.uc_status == "optimal" and pr.slack_hours == 0
    assert pr.station_lmp.shape == (3, 6) and np.isfinite(pr.station_lmp).all()


@pytest.fixture(scope="module")
def ieee30_runs():
    from experiments.tsn_sim import simulate
    from grids.transmission import build_case

    case, net = build_case("ieee30", "mes", T=6)
    out = {}
    for name, kw in [("idle", {}), ("uc-milp", {"time_limit_s": 120.0}), ("dp", {}),
                     ("greedy", {})]:
        pol = make_policy(name, "transmission", **kw)
        res = simulate(case, net, pol, np.random.default_rng(3))
        out[name] = (pol, res)
    return out


@pytest.mark.slow
def test_train_dp_is_bounded_by_the_central_milp_and_by_parking(ieee30_runs):
    uc_pol, uc = ieee30_runs["uc-milp"]
    _, idle = ieee30_runs["idle"]
    bound = uc_pol.plan.outcome.bound
    assert uc_pol.plan.outcome.status == "optimal" and bound is not None
    for name in ("dp", "greedy"):
        pol, res = ieee30_runs[name]
        fails = res.tables["failures"]
        assert not len(fails[fails.kind == "policy"]), fails.to_string()
        assert pol.plan_info["status"] == "optimal", pol.plan_info
        assert pol.plan_info["planner"].startswith(("train DP", "greedy"))
        # the simulation replays the plan: the same operating and transport cost
        assert res.summary["total_cost"] == pytest.approx(pol.plan.total_cost, rel=1e-6)
        # the centralised MILP is a bound; parking (trains idle) is an upper reference
        assert res.summary["total_cost"] >= bound - 1e-6
        assert res.summary["total_cost"] >= uc.summary["total_cost"] * (1 - 1e-4) - 1e-6
        assert res.summary["operating_cost"] <= idle.summary["operating_cost"] + 1e-6
