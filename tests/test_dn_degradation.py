"""Battery ageing of the DN fleet: ``fleet[i].degradation`` in the scenario, fed every engine step.

The SOH in ``vehicles.parquet`` is checked three ways: against the published equations written
out here (Naumann 2018 calendar + Wang 2011 cycle for LFP), against the model of
``agents/degradation.py`` fed directly with the recorded steps, and for monotonicity over random
step sequences of the DN battery.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.battery import Battery
from agents.degradation import (
    LFP_Q_CELL_AH,
    NAUMANN_CAL_EXP,
    WANG_Z,
    ZERO_C_K,
    make_degradation,
    naumann_cal_k,
)
from experiments.build import build_world, vehicle_degradation
from experiments.cli import main
from experiments.config import SCENARIO_DIR as SCENARIOS
from experiments.config import read_raw, validate
from experiments.run import run_one
from sim.types import BatterySpec

TINY = read_raw(SCENARIOS / "tiny.toml")


def _tiny(truck_deg=None, spare_deg=None, compare=()) -> dict:
    """``tiny`` with a second, idle vehicle ``spare`` parked at the depot."""
    raw = copy.deepcopy(TINY)
    spare = copy.deepcopy(raw["fleet"][0])
    spare["name"] = "spare"
    raw["fleet"].append(spare)
    for v, d in zip(raw["fleet"], (truck_deg, spare_deg)):
        if d is not None:
            v["degradation"] = d
    raw["compare"] = {"policies": list(compare)}
    return raw


@pytest.fixture(scope="module")
def lfp_run():
    cfg = validate(_tiny({"model": "lfp"}), base=SCENARIOS)
    return cfg, run_one(cfg)


def test_lfp_vehicle_ages_every_step_and_a_none_vehicle_does_not(lfp_run):
    cfg, res = lfp_run
    v = res.tables["vehicles"]
    truck = v[v.vehicle == "truck"].sort_values("time_min")
    spare = v[v.vehicle == "spare"].sort_values("time_min")
    assert len(truck) == cfg.scenario.horizon_min // cfg.scenario.step_min
    soh = truck.soh_frac.to_numpy()
    # strictly falling: parked, charging, discharging and in transit alike (calendar ageing)
    assert set(truck.status) == {"parked", "transit"}
    assert soh[0] < 1.0 and np.all(np.diff(soh) < 0)
    assert (spare.soh_frac == 1.0).all()
    m = res.metrics.set_index(["policy", "entity", "metric"]).value
    assert m[("schedule", "truck", "soh_end_frac")] == soh[-1]
    assert m[("schedule", "spare", "soh_end_frac")] == 1.0


def test_recorded_soh_equals_the_published_lfp_equations(lfp_run):
    """Method 1: the engine's record. Method 2: Naumann 2018 calendar and Wang 2011 cycle
    written out from the recorded steps (25 degC, EOL at 80 %, A123 2.3 Ah cell)."""
    cfg, res = lfp_run
    v = res.tables["vehicles"]
    truck = v[v.vehicle == "truck"].sort_values("time_min")
    cap = cfg.fleet[0].capacity_mwh
    dt_h = cfg.scenario.step_min / 60.0
    temp_k = 25.0 + ZERO_C_K
    q_eol = 0.2
    d_cal = d_cyc = 0.0
    for row in truck.itertuples():
        sa, sb = row.e_start_mwh / cap, row.e_end_mwh / cap
        k = float(naumann_cal_k(0.5 * (sa + sb), temp_k))  # 1/sqrt(s)
        d_cal += dt_h * 3600.0 / (q_eol / k) ** 2  # levelised: t / t_EOL
        if sb < sa:  # Wang: discharge Ah per cell over Ah to EOL at the step's C-rate
            c = min(max((sa - sb) / dt_h, 0.5), 10.0)
            b = np.interp(c, [0.5, 2.0, 6.0, 10.0], [31630.0, 21681.0, 12934.0, 15512.0])
            kk = b * np.exp((-31700.0 + 370.3 * c) / (8.314 * temp_k))
            ah_eol = (100.0 * q_eol / kk) ** (1.0 / 0.55)
            d_cyc += (sa - sb) * LFP_Q_CELL_AH / ah_eol
        soh = 1.0 - q_eol * (d_cal ** NAUMANN_CAL_EXP + d_cyc ** WANG_Z)
        assert row.soh_frac == pytest.approx(soh, rel=1e-12, abs=1e-14), row.time_min
    assert d_cyc > 0  # the discharge at b was counted


def test_recorded_soh_equals_the_model_fed_directly(lfp_run):
    """The engine feeds exactly the recorded step: SOC at start and end, cell throughput, step
    length. The same model fed the same numbers by hand gives the same SOH after every step."""
    cfg, res = lfp_run
    v = res.tables["vehicles"]
    truck = v[v.vehicle == "truck"].sort_values("time_min")
    cap = cfg.fleet[0].capacity_mwh
    m = make_degradation("lfp", e_nom_kwh=1000.0 * cap)
    for row in truck.itertuples():
        m.update(row.e_start_mwh / cap, row.e_end_mwh / cap, row.throughput_mwh,
                 cfg.scenario.step_min, cap)
        assert row.soh_frac == m.soh_frac(), row.time_min


def test_default_is_none_and_model_parameters_reach_the_vehicle():
    cfg = validate(_tiny(None, {"model": "nmc", "temp_c": 40.0, "include_calendar": False}),
                   base=SCENARIOS)
    assert cfg.fleet[0].degradation is None
    assert "degradation" not in cfg.to_toml_dict()["fleet"][0]  # existing configs unchanged
    world = build_world(cfg, None, np.random.default_rng(0))
    truck, spare = world.vehicles
    assert truck.battery.degradation.name == "none"
    assert spare.battery.degradation.name == "nmc"
    assert spare.battery.degradation.params()["temp_c"] == 40.0
    assert spare.battery.degradation.params()["e_nom_kwh"] == 500.0  # from capacity_mwh
    assert not spare.battery.degradation.include_calendar
    # the resolved config round-trips with its degradation table
    again = validate(cfg.to_toml_dict(), base=SCENARIOS)
    assert again == cfg and vehicle_degradation(again.fleet[1]).params()["temp_c"] == 40.0


def test_bad_degradation_is_a_scenario_error_naming_the_field(tmp_path, capsys):
    raw = _tiny({"model": "foo"}, {"model": "lfp", "temp_c": 120.0, "cycle": "wang2011"})
    raw["fleet"][1]["e_init_mwh"] = 0.9  # an unrelated problem, reported in the same pass
    path = tmp_path / "bad.toml"
    path.write_text(tomli_w.dumps(raw))
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: scenario in {path} has 4 problems:\n")
    assert ("  - fleet[0].degradation.model: unknown model 'foo'; valid: dod_curve, generalised, "
            "lfp, nmc, none\n") in err
    assert "  - fleet[1].degradation.temp_c: must be within [-40, 80] degC, got 120.0\n" in err
    assert ("  - fleet[1].degradation.cycle: unknown parameter of model 'lfp' (did you mean "
            "'cycle_model'?)") in err
    assert "  - fleet[1].e_init_mwh: 0.9 is outside the usable window" in err


@pytest.mark.parametrize("deg, message", [
    ("lfp", "fleet[0].degradation: expected a table, got string 'lfp'"),
    ({"model": 3}, "fleet[0].degradation.model: expected a string, got integer 3"),
    ({"model": "nmc", "q_cell_ah": "big"},
     "fleet[0].degradation.q_cell_ah: expected a number, got string 'big'"),
    ({"model": "none", "cycle_model": "wang2011"},
     "fleet[0].degradation.cycle_model: unknown parameter of model 'none'"),
])
def test_degradation_shape_and_value_messages(deg, message):
    from sim.errors import ScenarioError

    with pytest.raises(ScenarioError) as exc:
        validate(_tiny(deg), base=SCENARIOS)
    assert any(p.startswith(message) for p in exc.value.problems), exc.value.problems


# ---------------------------------------------------------------- the DN battery, any steps
SPEC = BatterySpec(capacity_mwh=0.5, e_min_mwh=0.05, e_max_mwh=0.475, p_max_mw=0.25)
STEP = st.tuples(st.floats(-0.3, 0.3), st.sampled_from([5, 15, 60]),
                 st.sampled_from([0.0, 0.0, 0.01, 0.04]), st.booleans())


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(["nmc", "lfp", "generalised", "dod_curve", "none"]),
       steps=st.lists(STEP, min_size=1, max_size=40))
def test_dn_battery_soh_never_increases(name, steps):
    """Random charge / discharge / idle steps, parked or not, with traction drawn between steps:
    SOH never rises, and a second model fed the steps' recorded numbers agrees exactly."""
    b = Battery(SPEC, 0.3, make_degradation(name, e_nom_kwh=500.0))
    twin = make_degradation(name, e_nom_kwh=500.0)
    soh = b.degradation.soh_frac()
    assert soh == 1.0
    for p_mw, dt_min, traction_mwh, parked in steps:
        r = b.step(p_mw, dt_min, can_hold=parked)
        twin.update(r.e_start_mwh / 0.5, r.e_end_mwh / 0.5, r.throughput_mwh, dt_min, 0.5)
        new = b.degradation.soh_frac()
        assert new <= soh and new == twin.soh_frac()
        soh = new
        if b.e_mwh - traction_mwh > SPEC.e_min_mwh:
            b.draw_traction(traction_mwh)
    if name == "none":
        assert soh == 1.0
    elif name != "dod_curve":  # the DoD curve has no calendar ageing
        assert soh < 1.0


def test_the_policy_sees_the_soh_the_run_recorded():
    """A policy's VehicleState carries the battery's SOH as of the start of the step: the value
    recorded at the end of the step before (1.0 at the first step)."""
    from experiments.build import build_world
    from policies.registry import make_policy
    from sim.engine import Engine
    from sim.systems import DnSites

    cfg = validate(_tiny({"model": "lfp"}), base=SCENARIOS)
    world = build_world(cfg, None, np.random.default_rng(0))
    seen = []

    class Watch:
        name = "watch"

        def __init__(self):
            self.inner = make_policy("idle")

        def reset(self, problem, rng):
            self.inner.reset(problem, rng)

        def params(self):
            return {}

        def decide(self, state):
            seen.append(state.vehicle("truck").soh_frac)
            return self.inner.decide(state)

    system = DnSites(world.problem, world.vehicles, world.sites, record_arrays=False)
    frames = Engine(system, Watch(), rng=np.random.default_rng(0)).run().frames()
    v = frames["vehicles"]
    recorded = v[v.vehicle == "truck"].sort_values("time_min").soh_frac.to_numpy()
    assert seen[0] == 1.0
    np.testing.assert_array_equal(seen[1:], recorded[:-1])
    assert recorded[-1] < 1.0
