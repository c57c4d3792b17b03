"""Planner fallbacks of the seed-001 policies: an infeasible day is diagnosed and replaced by
the safe ``park`` plan (trains parked, stations idle, economic dispatch), recorded in
``plan_info``; with ``fallback = "none"`` the reset fails with the diagnosis."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from experiments.tsn_sim import simulate
from policies.tsn_milp import TsnOptions, solve_case
from policies.tsn_policies import OcdPolicy, UcMilpPolicy, describe_tsn, park_plan
from sim.errors import PolicyError
from sim.types import Problem
from tests.test_tsn_sim import tiny_net
from tests.tsn_cases import tiny_case


def infeasible_case():
    """S1 must end the day with 40 MWh in 15 MW of capacity: above gamma_h * 15 = 30 MWh."""
    case = tiny_case(T=6, transport_cost_per_h=1.0)
    st = list(case.stations)
    st[0] = replace(st[0], eT_mwh=40.0)
    return replace(case, stations=tuple(st))


def _run(case, policy):
    return simulate(case, tiny_net(case), policy, np.random.default_rng(0))


@pytest.fixture(scope="module")
def parked():
    case = infeasible_case()
    pol = UcMilpPolicy(time_limit_s=30.0, mip_gap=1e-6)
    return case, pol, _run(case, pol)


def test_infeasible_plan_is_diagnosed_naming_the_station_and_hour(parked):
    _, pol, res = parked
    info = res.plan_info
    assert info["planner_status"] == "infeasible"
    assert info["fallback"] == "park"
    d = info["diagnosis_detail"]
    assert d is not None, info["diagnosis"]
    assert "S1" in info["diagnosis"] and d["entity"] == "S1"
    assert d["family"].startswith(("station", "constraint on station")), d
    assert d["step"] == 5  # the last hour, where the end target applies


def test_park_fallback_is_followed_without_failures(parked):
    case, pol, res = parked
    assert res.tables["failures"].empty
    plan = pol.plan
    assert np.all(plan.pch_mw == 0) and np.all(plan.pdis_mw == 0)
    th = res.tables["train_hours"]
    for tr in case.trains:  # every train stays at its start station all day
        assert set(th[th.train == tr.name].station) == {tr.start}
    # the dispatch balances the load less wind every hour, as a plan of its own
    supply = (plan.p_mw * (plan.u > 0.5)).sum(axis=0) + plan.wind_mw.sum(axis=0)
    assert supply == pytest.approx(case.total_load_mw, abs=1e-6)
    assert res.summary["capacity_total_mw_min"] == pytest.approx(
        res.summary["capacity_total_mw_max"], abs=1e-9)


def test_park_plan_equals_the_no_storage_dispatch():
    case = tiny_case(T=6)
    plan, paths = park_plan(case, TsnOptions(mip_gap=1e-7))
    ref, _ = solve_case(replace(case, stations=(), trains=()), TsnOptions(mip_gap=1e-7))
    assert plan.outcome.status == "optimal"
    assert plan.total_cost == pytest.approx(ref.total_cost, rel=1e-6)
    assert [p[0][0] for p in paths] == [case.station_pos(t.start) for t in case.trains]


def test_fallback_none_fails_the_reset_with_the_diagnosis():
    pol = UcMilpPolicy(time_limit_s=30.0, fallback="none")
    with pytest.raises(PolicyError, match="infeasible.*S1"):
        pol.reset(Problem.for_transmission(infeasible_case()))


def test_ocd_falls_back_too():
    case = infeasible_case()
    pol = OcdPolicy(max_iter=2, power_time_limit_s=20.0)
    res = _run(case, pol)
    assert res.plan_info["fallback"] == "park"
    assert "S1" in res.plan_info["diagnosis"]


def test_bad_fallback_name_is_rejected():
    with pytest.raises(ValueError, match="fallback: must be one of park, none"):
        UcMilpPolicy(fallback="greedy")


def test_variable_names_map_to_family_entity_and_day_hour():
    d = describe_tsn(tiny_case(T=6), hour0=3)
    assert d("es_0_2") == ("station energy (es)", "S1", 5)
    assert d("dcm_1_2_0") == ("capacity to station (dcm)", "K2 at S3", 3)
    assert d("x_0_1_4_2_5") == ("train route (x)", "K1 S2->S3", 7)
    assert d("u_1_0") == ("unit commitment (u)", "g1", 3)
    assert d("_C12") == ("", "", None)
