"""The same scenario at 60, 15 and 5-minute steps: what must not depend on the step length."""

from __future__ import annotations

import pytest

from experiments.config import load
from experiments.run import run_one
from policies.baselines import GreedyPolicy
from policies.registry import policy_problems

STEPS = (60, 15, 5)
HORIZON_MIN = 360
#: The losses are compared over the whole day: the start-up transient (DR ramping up over the
#: first hour at 5-min steps, in one 60-min step) is small against it.
DAY_MIN = 1440


def _run(policy: str, step_min: int, horizon_min: int = HORIZON_MIN):
    sets = [f"scenario.step_min={step_min}", f"scenario.horizon_min={horizon_min}",
            f'policy.name="{policy}"', "compare.policies=[]"]
    if policy != "greedy":
        sets.append("policy.params={}")
    res = run_one(load("three-dn", sets), record_arrays=False)
    m = res.metrics
    system = m[m["entity"] == "system"].set_index("metric")["value"]
    return res, system


@pytest.fixture(scope="module")
def idle_runs():
    return {s: _run("idle", s, DAY_MIN) for s in STEPS}


def test_idle_sees_the_same_load_and_pv_energy_at_every_step(idle_runs):
    # the hourly profiles and their hourly noise are held within the hour at every step length
    energy = {}
    for s, (res, _) in idle_runs.items():
        sites = res.tables["sites"]
        energy[s] = (sites.groupby("site")[["load_mw", "pv_mw"]].sum() * s / 60.0)
    for s in STEPS[1:]:
        assert energy[s].to_numpy() == pytest.approx(energy[60].to_numpy(), rel=1e-9)
    assert energy[60]["load_mw"].sum() > 20.0  # three feeders, a day: a real amount of energy


def test_idle_losses_agree_within_one_percent(idle_runs):
    # the local operators' horizon tie-breaker (60 min) shares the load between generators and
    # DR as a 60-min step does, so the feeders' losses do not depend on the step length
    losses = {s: sysm["losses_mwh"] for s, (_, sysm) in idle_runs.items()}
    for s in STEPS[1:]:
        assert losses[s] == pytest.approx(losses[60], rel=0.01)


def test_idle_losses_depend_on_the_step_without_the_horizon_tie_breaker(monkeypatch):
    # the same day with the tie-breaker off: the step's flexibility alone leaves the split of
    # the load between generators open at 5-min steps, and the losses move by more than 1 %
    from grids.operator import LocalOperator

    monkeypatch.setattr(LocalOperator, "FLEX_HORIZON_MIN", None)
    losses = {s: _run("idle", s, DAY_MIN)[1]["losses_mwh"] for s in (60, 5)}
    assert abs(losses[5] / losses[60] - 1.0) > 0.01


def test_greedy_window_covers_the_same_minutes_at_every_step():
    g = GreedyPolicy(window_min=180)
    assert [g.window_steps(s) * s for s in STEPS] == [180, 180, 180]
    assert GreedyPolicy(window_min=90).window_steps(60) == 2  # partial steps are covered
    assert GreedyPolicy(window_min=1).window_steps(60) == 1


def test_greedy_old_step_counted_parameter_is_refused_with_the_new_name():
    msgs = policy_problems("greedy", {"window_steps": 3})
    assert msgs == ["policy.params.window_steps: renamed to window_min, the look-ahead window "
                    "in minutes (not steps); window_steps = 3 at 60-min steps is "
                    "window_min = 180"]
    assert policy_problems("greedy", {"window_min": 0}) == [
        "policy.params.window_min: must be a whole number of minutes >= 1, got 0"]


def test_greedy_moves_the_same_vehicles_at_the_same_times_at_every_step():
    trips = {}
    for s in STEPS:
        res, _ = _run("greedy", s)
        ev = res.tables["events"]
        ev = ev[ev["event"].isin(["depart", "arrive"])]
        trips[s] = list(ev[["time_min", "vehicle", "event", "node"]].itertuples(
            index=False, name=None))
        # the peak-shaving rule charges back to the initial energy by the end, at every step
        veh = res.tables["vehicles"].sort_values("time_min")
        for name, spec in res.info["vehicles"].items():
            e_end = float(veh[veh["vehicle"] == name]["e_end_mwh"].iloc[-1])
            assert e_end == pytest.approx(spec["e_init_mwh"], abs=1e-3), (s, name)
    assert trips[60], "greedy should move a vehicle towards the largest deficit"
    assert trips[15] == trips[60]
    assert trips[5] == trips[60]


def test_hourly_noise_equals_the_per_step_draw_at_60_min_and_is_held_below():
    import numpy as np

    from grids.profiles import Profile, realise, realise_per_step

    loads = [Profile.from_shape("industrial"), Profile.from_shape("residential")]
    pvs = [Profile.from_shape("solar")] * 2
    peak, cap = np.array([3.0, 2.0]), np.array([0.6, 0.8])
    l60, p60 = realise_per_step(loads, pvs, peak, cap, 60, 1440, np.random.default_rng(3))
    fl = np.array([p.per_step(60, 1440) for p in loads]) * peak[:, None]
    fp = np.array([p.per_step(60, 1440) for p in pvs]) * cap[:, None]
    l_ref, p_ref = realise(fl, fp, cap, np.random.default_rng(3))
    assert np.allclose(l60, l_ref) and np.allclose(p60, p_ref)
    l5, p5 = realise_per_step(loads, pvs, peak, cap, 5, 1440, np.random.default_rng(3))
    assert np.allclose(l5, np.repeat(l60, 12, axis=1))
    assert np.allclose(p5, np.repeat(p60, 12, axis=1))
    l120, _ = realise_per_step(loads, pvs, peak, cap, 120, 1440, np.random.default_rng(3))
    assert np.allclose(l120, l60.reshape(2, 12, 2).mean(axis=2))
