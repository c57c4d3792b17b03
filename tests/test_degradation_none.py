"""The ``none`` degradation model everywhere, and the checks of model names and parameters.

``none`` takes the parameters every model shares (so that the Co-OPT study, which passes
``temp_c``, ``c_pack_usd_per_kwh`` and ``e_nom_kwh`` to each model of its list, can list it),
keeps SOH at exactly 1.0 and costs exactly 0.
"""

from __future__ import annotations

import numpy as np
import pytest

from agents.battery import Battery, NoDegradation
from agents.degradation import (
    DEGRADATION_MODELS,
    SHARED_PARAMS,
    ZeroDegradation,
    degradation_problems,
    make_degradation,
    model_parameters,
)
from experiments.coopt_build import degradation_tables
from experiments.coopt_study import _new_model, coopt_data_dir, settings_for
from sim.types import BatterySpec

SHARED = {"temp_c": 35.0, "soh_eol_frac": 0.7, "c_pack_usd_per_kwh": 120.0, "e_nom_kwh": 500.0,
          "include_calendar": False, "c_rate_default_per_h": 1.0}
DATA = coopt_data_dir()  # the packaged Co-OPT data


def test_every_model_takes_the_shared_parameters():
    assert set(SHARED) == set(SHARED_PARAMS)
    for name in DEGRADATION_MODELS:
        assert set(SHARED_PARAMS) <= set(model_parameters(name)), name
        m = make_degradation(name, **SHARED)
        assert m.params()["temp_c"] == 35.0 and m.params()["e_nom_kwh"] == 500.0


def test_none_is_exactly_no_ageing_and_no_cost():
    m = make_degradation("none", temp_c=35.0, c_pack_usd_per_kwh=150.0, e_nom_kwh=350.0)
    assert isinstance(m, ZeroDegradation) and isinstance(m, NoDegradation)
    rng = np.random.default_rng(3)
    s = 0.5
    for _ in range(500):
        s2 = float(rng.uniform(0.0, 1.0))
        m.update(s, s2, abs(s2 - s), int(rng.integers(0, 120)), 1.0)
        s = s2
    assert m.soh_frac() == 1.0 and m.loss_frac() == 0.0
    assert m.d_cal == 0.0 and m.d_cyc == 0.0 and m.c_rep_usd == 0.0
    assert m.elapsed_min > 0 and m.throughput_mwh > 0  # it counts, as the others do
    grid = np.linspace(0.1, 0.9, 5)
    a, b = np.meshgrid(grid, grid, indexing="ij")
    d_cal, d_cyc = m.transition_damage(a, b, 1.0)
    assert d_cal.shape == (5, 5) and not d_cal.any() and not d_cyc.any()
    assert m.transition_cost_usd(0.9, 0.1, 2.0) == 0.0
    d_cal, d_cyc, cycles = m.expost_damage([0.9, 0.2, 0.8, 0.1], 60)
    assert (d_cal, d_cyc) == (0.0, 0.0) and cycles and m.expost_soh_frac([0.9, 0.1], 60) == 1.0


def test_none_in_a_battery_keeps_soh_at_one():
    spec = BatterySpec(capacity_mwh=1.0, e_min_mwh=0.1, e_max_mwh=0.95, p_max_mw=0.5)
    b = Battery(spec, 0.5, make_degradation("none", e_nom_kwh=1000.0))
    for p in (0.5, -0.5, 0.0, 0.3, -0.4):
        b.step(p, 60)
        b.draw_traction(0.01)
    assert b.degradation.soh_frac() == 1.0


def test_problems_name_the_parameter():
    assert degradation_problems("lfp", {"temp_c": 30.0}) == []
    assert degradation_problems("foo")[0][0] == "model"
    assert "valid: dod_curve, generalised, lfp, nmc, none" in degradation_problems("foo")[0][1]
    found = dict(degradation_problems("lfp", {"temp_c": 100.0, "tmep": 1, "q_cell_ah": "x"}))
    assert set(found) == {"temp_c", "tmep", "q_cell_ah"}
    assert "did you mean 'temp_c'" in found["tmep"] and "expected a number" in found["q_cell_ah"]
    # model-specific parameters belong to their model only
    assert degradation_problems("none", {"cycle_model": "wang2011"})[0][0] == "cycle_model"
    for name, params, key in (("lfp", {"include_calendar": 1}, "include_calendar"),
                              ("nmc", {"q_cell_ah": 0.0}, "q_cell_ah"),
                              ("dod_curve", {"beta0": -1.0}, "beta0"),
                              ("generalised", {"soh_eol_frac": float("nan")}, "soh_eol_frac"),
                              ("none", {"c_rate_default_per_h": 0.0}, "c_rate_default_per_h"),
                              ("none", {"e_nom_kwh": float("inf")}, "e_nom_kwh")):
        assert [k for k, _ in degradation_problems(name, params)] == [key], (name, params)
        with pytest.raises(ValueError, match=key):
            make_degradation(name, **params)


def test_coopt_study_settings_accept_none_and_build_its_models():
    """The failure ``degradation model 'none' takes no parameters`` came from here: the study
    builds each model of ``study.models`` with its shared settings."""
    st, s, _ = settings_for("coopt-small", ["study.models=['none', 'lfp']"])
    assert st.models == ("none", "lfp")
    m = _new_model("none", s, 350.0)
    assert m.soh_frac() == 1.0 and m.params()["temp_c"] == s.temp_c
    cyc, cal = degradation_tables("none", s, 350.0)
    n = int(round((s.soc_max_frac - s.soc_min_frac) / s.soc_step_frac)) + 1
    assert cyc.shape == cal.shape == (n, n) and not cyc.any() and not cal.any()
    cyc_lfp, cal_lfp = degradation_tables("lfp", s, 350.0)
    assert cyc_lfp.max() > 0 and cal_lfp.min() > 0


def test_coopt_dp_day_under_none_runs_without_ageing():
    """The study's model path end to end for ``none``, without the fleet MILP: DP plans on
    the small network, run in the SimPy engine with a ``none`` model per carried MESS."""
    from agents.road_data import load_coopt
    from experiments.coopt_build import build_problems, charging_prices
    from experiments.coopt_study import simulate_fleet
    from policies.dp_router import DPRouter

    st, s, pcfg = settings_for("coopt-small", [f"study.data_dir='{DATA}'",
                                               "study.models=['none']"])
    data = load_coopt(st.data_dir)
    net = data.networks[st.network]
    hourly, _ = charging_prices(net, pcfg, np.random.default_rng(0))
    probs = build_problems(data, st.network, "none", s, hourly_price=hourly)
    router = DPRouter()
    runs, _ = simulate_fleet(router, probs, None, data, st.network, s, "none", hourly)
    plans = router.plans()  # made at the engine's reset
    assert plans and all(pl.total("degradation_usd") == 0.0 for pl in plans.values())
    assert runs and all(r.ended for r in runs.values())
    assert all(r.damage == 0.0 and r.loss_frac == 0.0 for r in runs.values())
    assert all(r.degradation_stepwise_usd == 0.0 for r in runs.values())
