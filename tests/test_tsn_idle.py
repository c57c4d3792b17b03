"""The ``idle`` baseline on a transmission grid: trains parked, stations idle, units dispatched.

Against the centralised MILP on the same case: the park plan is a feasible point of the
MILP, so the MILP's plan costs no more (to its gap); and the trains never move, the stations
never charge, discharge or exchange in the co-simulation.
"""

from __future__ import annotations

import numpy as np
import pytest

from experiments.tsn_sim import simulate
from policies.registry import make_policy
from tests.test_tsn_sim import tiny_net
from tests.tsn_cases import tiny_case

GAP = 1e-6


@pytest.fixture(scope="module")
def runs():
    case = tiny_case(T=6, transport_cost_per_h=1.0)
    out = {}
    for name in ("idle", "uc-milp"):
        pol = make_policy(name, "transmission", time_limit_s=60.0, mip_gap=GAP)
        out[name] = simulate(case, tiny_net(case), pol, np.random.default_rng(0))
    return case, out


def test_idle_trains_stay_and_stations_do_nothing(runs):
    case, out = runs
    t = out["idle"].tables
    assert len(t["failures"]) == 0, t["failures"].to_string()
    assert len(t["events"]) == 0  # no departure, no arrival, no exchange
    st = t["stations"]
    assert (st.pch_mw.fillna(0) == 0).all() and (st.pdis_mw.fillna(0) == 0).all()
    start = {tr.name: tr.start for tr in case.trains}
    th = t["train_hours"]
    assert len(th) == case.T * len(case.trains)
    assert (th.station == th.train.map(start)).all()
    tr = t["trains"]
    c0 = {x.name: x.c0_mw for x in case.trains}
    assert np.allclose(tr.c_mw, tr.train.map(c0))  # capacity never exchanged


def test_the_central_milp_costs_no_more_than_parking(runs):
    _, out = runs
    idle, milp = out["idle"].summary, out["uc-milp"].summary
    assert idle["transport_cost"] == 0.0
    assert milp["total_cost"] <= idle["total_cost"] * (1 + GAP) + 1e-6
