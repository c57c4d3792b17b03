"""Travel-time (traffic) and breakdown uncertainty: seeded, off by default, and what it does.

Policies plan on the free-flow graph; vehicles drive the realisation (agents/disruption.py).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.disruption import Outages, Traffic, draw_outages, draw_traffic
from agents.vehicle import FleetModel
from experiments.build import realisation
from experiments.config import load
from experiments.run import run_one
from experiments.specs import site_spec
from experiments.sweep import read_results, run_sweep
from policies.baselines import SchedulePolicy
from sim.engine import Engine
from sim.errors import ScenarioError
from sim.systems import DnSites
from sim.types import Command, Decision
from tests.fakes import TINY_PLAN, tiny_world

TINY = "experiments/scenarios/tiny.toml"
ROAD = ["uncertainty.travel_sigma=0.3", "uncertainty.breakdown_prob_per_day=0.5",
        "uncertainty.breakdown_duration_min=120"]
EDGES = [("depot", "a"), ("a", "depot"), ("a", "b"), ("b", "a"), ("depot", "b"), ("b", "depot")]


# ----------------------------------------------------------------------------- the draws


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), sigma=st.floats(0, 2), free=st.integers(1, 600),
       entry=st.integers(-10, 3000))
def test_traffic_only_delays_in_whole_minutes_and_is_seeded(seed, sigma, free, entry):
    t1 = draw_traffic(EDGES, 24, 60, sigma, np.random.default_rng(seed))
    t2 = draw_traffic(list(reversed(EDGES)), 24, 60, sigma, np.random.default_rng(seed))
    m = t1.edge_minutes("a", "b", free, entry)
    assert isinstance(m, int) and m >= free
    assert m == t2.edge_minutes("a", "b", free, entry)  # edge order given does not matter
    k = min(max(entry // 60, 0), 23)
    assert m == max(free, math.ceil(free * float(t1.factors[("a", "b")][k]) - 1e-9))
    assert m <= math.ceil(free * math.exp(sigma * 10))  # no factor beyond a 10-sigma draw
    if sigma == 0:
        assert m == free


def test_traffic_factor_distribution_is_the_documented_one():
    f = draw_traffic(EDGES, 5000, 60, 0.1, np.random.default_rng(1)).factors
    x = np.concatenate(list(f.values()))
    assert np.all(x >= 1.0)
    assert np.mean(x == 1.0) == pytest.approx(0.5, abs=0.01)  # median of the lognormal is 1
    # E[max(1, exp(sigma z))] = Phi(0) + exp(sigma^2 / 2) Phi(sigma), P90 = exp(1.2816 sigma)
    from scipy.stats import norm

    assert x.mean() == pytest.approx(0.5 + math.exp(0.005) * norm.cdf(0.1), rel=2e-3)
    assert np.quantile(x, 0.9) == pytest.approx(math.exp(0.1 * norm.ppf(0.9)), rel=1e-2)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), p=st.floats(0, 1), steps=st.integers(1, 96),
       dur_steps=st.integers(1, 8), step=st.sampled_from([15, 60]))
def test_breakdowns_are_step_aligned_disjoint_and_seeded(seed, p, steps, dur_steps, step):
    a = draw_outages(["x", "y"], steps, step, p, dur_steps * step, np.random.default_rng(seed))
    b = draw_outages(["x", "y"], steps, step, p, dur_steps * step, np.random.default_rng(seed))
    assert a == b
    for o in a.values():
        for (s, e), nxt in zip(o.intervals, o.intervals[1:] + ((math.inf, math.inf),)):
            assert s % step == 0 and 0 <= s < steps * step and e - s == dur_steps * step
            assert e <= nxt[0]
            assert o.active(s) == (s, e) and o.active(e - 1) == (s, e)
    if p == 0:
        assert all(not o.intervals for o in a.values())
    if p == 1:
        assert a["x"].intervals[0][0] == 0 and a["x"].active(steps * step - 1) is not None


def test_bad_draw_arguments_are_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="sigma"):
        draw_traffic(EDGES, 4, 60, -0.1, rng)
    with pytest.raises(ValueError, match="probability"):
        draw_outages(["x"], 4, 60, 1.5, 60, rng)
    with pytest.raises(ValueError, match="duration"):
        draw_outages(["x"], 4, 60, 0.5, 0, rng)


# ----------------------------------------------------------------------------- the engine

PLAN = TINY_PLAN  # Blind below adds a charge request while the truck may be broken down


class Blind(SchedulePolicy):
    """The timetable, plus a charge request at ``at`` whatever the state says: the engine, not
    the policy, must keep a broken-down vehicle unplugged."""

    def __init__(self, at: int):
        super().__init__(PLAN)
        self.at = at

    def decide(self, state):
        d = super().decide(state)
        if state.time_min == self.at:
            return Decision(commands=(Command("truck", p_mw=0.2),))
        return d


def _run(traffic=None, outages=None, step_min=60, policy=None):
    problem, vehicles, sites, graph = tiny_world(step_min, 480)
    spec = vehicles[0].spec
    fleet = FleetModel(graph, [spec], rng=np.random.default_rng(0), traffic=traffic,
                       outages={"truck": outages} if outages else None)
    engine = Engine(DnSites(problem, fleet.vehicles, sites), policy or SchedulePolicy(PLAN),
                    rng=np.random.default_rng(0))
    return engine.run().frames(), sites, graph


def _trips(events: pd.DataFrame) -> list[tuple[int, int, str, str]]:
    """(depart, arrive, from, to) of every trip."""
    out, open_ = [], None
    for r in events.itertuples():
        if r.event == "depart":
            open_ = (r.time_min, r.node)
        elif r.event == "arrive":
            out.append((open_[0], r.time_min, open_[1], r.node))
    return out


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), sigma=st.floats(0, 1.5),
       step_min=st.sampled_from([15, 60]))
def test_arrivals_never_earlier_than_the_forecast_and_equal_to_the_realised_legs(
        seed, sigma, step_min):
    traffic = draw_traffic(EDGES, 480 // step_min, step_min, sigma, np.random.default_rng(seed))
    frames, _, graph = _run(traffic, step_min=step_min)
    trips = _trips(frames["events"])
    assert (frames["events"].event == "depart").any()  # (a long delay may outlast the horizon)
    for dep, arr, a, b in trips:
        assert arr - dep >= graph.travel_min(a, b)
        path = graph.shortest_path(a, b)
        legs = traffic.leg_minutes([(u, v, graph.edge(u, v)["travel_min"])
                                    for u, v in zip(path, path[1:])], dep)
        assert arr - dep == sum(legs)
    # no power while in transit, whatever the delay
    v = frames["vehicles"]
    assert (v.loc[v.status == "transit", "p_mw"] == 0).all()


def test_a_parked_breakdown_keeps_the_vehicle_parked_and_unplugged_for_its_duration():
    # truck arrives at a at 45; broken down 60-180: the charge at 60 and the trip at 180 wait
    frames, sites, _ = _run(outages=Outages(((60, 180),)), policy=Blind(60))
    v = frames["vehicles"].set_index("time_min")
    for t in (60, 120):
        assert v.loc[t, "status"] == "parked" and v.loc[t, "node"] == "a"
        assert not v.loc[t, "connected"] and v.loc[t, "p_mw"] == 0.0
        assert v.loc[t, "flex_up_mw"] == 0.0 and v.loc[t, "flex_dn_mw"] == 0.0
    assert dict(sites[0].seen)[60] == 0.0
    # the policy is told: a broken-down vehicle offers no power
    _, vehicles, _, graph = tiny_world(60, 480)
    v0 = FleetModel(graph, [vehicles[0].spec], outages={"truck": Outages(((60, 180),))}).vehicles[0]
    assert v0.snapshot(120, 60).p_ch_max_mw == 0.0 and v0.snapshot(180, 60).p_ch_max_mw > 0
    # at 180 it is back: the planned departure to b happens on time
    ev = frames["events"]
    assert [(r.time_min, r.event) for r in ev.itertuples()
            if r.event.startswith("breakdown")] == [(60, "breakdown_start"),
                                                     (180, "breakdown_end")]
    assert ((ev.event == "depart") & (ev.time_min == 180)).any()
    f = frames["failures"]
    assert f.loc[f.status == "broken_down", ["time_min", "message"]].values.tolist() == [
        [60, "p_mw=0.2 ignored: broken down until minute 180"]]


def test_a_breakdown_refuses_a_departure_and_a_breakdown_in_transit_delays_the_arrival():
    # broken down at the depot at 0: the trip to a is refused, nothing moves until 120
    frames, _, _ = _run(outages=Outages(((0, 120),)))
    f = frames["failures"]
    assert f.loc[(f.status == "trip_refused") & (f.time_min == 0), "message"].tolist() == [
        "broken down until minute 120"]
    assert (frames["vehicles"].set_index("time_min").loc[[0, 60], "node"] == "depot").all()
    # a breakdown at 240 on the a->b leg (180-270) stops the truck for 60 min: arrival 330
    frames, _, _ = _run(outages=Outages(((240, 300),)))
    trips = _trips(frames["events"])
    assert trips[1] == (180, 330, "a", "b")
    v = frames["vehicles"].set_index("time_min")
    assert (v.loc[[180, 240, 300], "status"] == "transit").all()
    bd = frames["events"][frames["events"].event.str.startswith("breakdown")]
    assert bd[["time_min", "event", "node"]].values.tolist() == [
        [240, "breakdown_start", "a"], [300, "breakdown_end", "a"]]


def test_without_disruptions_the_golden_trace_is_unchanged():
    from tests.test_engine import GOLDEN

    frames, _, _ = _run(traffic=None, outages=Outages(()))
    assert [(r.time_min, r.event, r.node) for r in frames["events"].itertuples()] == GOLDEN


# ----------------------------------------------------------------------------- runs and sweeps

BASE = ["uncertainty.load_sigma=0.1", "uncertainty.pv_sigma=0.2"]


def test_road_uncertainty_leaves_load_and_pv_draws_and_defaults_unchanged():
    cfg = load(TINY, BASE)
    off = run_one(cfg, 11, record_arrays=False)
    # the load/PV realisation is the first child of SeedSequence(seed).spawn(3), as before
    specs = [site_spec(n, g, cfg.power_flow) for n, g in cfg.grids.items()]
    act = realisation(cfg, specs, np.random.default_rng(np.random.SeedSequence(11).spawn(3)[0]))
    s = off.tables["sites"]
    for i, name in enumerate(cfg.grids):
        got = s[(s.policy == "idle") & (s.site == name)].sort_values("time_min")
        np.testing.assert_array_equal(got.load_mw.to_numpy(), act.load_mw[i])
    # explicit zeros are the defaults
    zero = run_one(load(TINY, BASE + ["uncertainty.travel_sigma=0.0",
                                      "uncertainty.breakdown_prob_per_day=0.0"]), 11,
                   record_arrays=False)
    for t in off.tables:
        pd.testing.assert_frame_equal(off.tables[t], zero.tables[t])
    # with traffic on, a policy that never drives sees exactly the same run
    on = run_one(load(TINY, BASE + ["uncertainty.travel_sigma=0.5"]), 11, record_arrays=False)
    for t in ("sites", "vehicles", "events"):
        a, b = (x.tables[t] for x in (off, on))
        pd.testing.assert_frame_equal(a[a.policy == "idle"].reset_index(drop=True),
                                      b[b.policy == "idle"].reset_index(drop=True))
    # ... and its load/PV are the same for every policy
    pd.testing.assert_frame_equal(off.tables["sites"][["policy", "time_min", "site", "load_mw",
                                                       "pv_mw"]],
                                  on.tables["sites"][["policy", "time_min", "site", "load_mw",
                                                      "pv_mw"]])


def test_breakdowns_are_failure_rows_and_the_same_for_every_policy():
    cfg = load(TINY, ["uncertainty.breakdown_prob_per_day=1.0",
                      "uncertainty.breakdown_duration_min=120"])
    r = run_one(cfg, 5, record_arrays=False)
    f = r.tables["failures"]
    bd = f[f.status == "breakdown"]
    starts = bd.groupby("policy").time_min.apply(list)
    assert set(starts.index) == {"schedule", "idle", "greedy"}
    assert all(s == starts["idle"] for s in starts)  # common random numbers
    assert starts["idle"] == [0, 120, 240, 360]  # p = 1: back to back, 120 min each
    v = r.tables["vehicles"]
    assert not v.connected.any() and (v.p_mw == 0).all() and (v.node == "depot").all()


@pytest.mark.slow
def test_sweep_with_road_uncertainty_is_identical_in_process_and_on_two_workers(tmp_path):
    cfg = load(TINY, ["scenario.horizon_min=240", 'policy.name="greedy"', "policy.params={}",
                      'compare.policies=["idle"]',
                      "uncertainty.load_sigma=0.1", "uncertainty.travel_sigma=0.4",
                      "uncertainty.breakdown_prob_per_day=0.8",
                      "uncertainty.breakdown_duration_min=60"])
    key = ["scenario", "policy", "entity", "metric", "time_min"]
    res = {}
    for w in (0, 2):
        out = tmp_path / f"w{w}"
        s = run_sweep(cfg, out, 3, 7, workers=w, progress=False)
        assert s.status_counts == {"ok": 3}
        res[w] = read_results(out).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(res[0], res[2])
    fails = res[0][(res[0].metric == "failures") & (res[0].entity == "system")]
    assert fails.value.sum() > 0  # the breakdowns happened and were counted


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize("sets, message", [
    (["uncertainty.travel_sigma=-0.1"], "uncertainty.travel_sigma: must be >= 0, got -0.1"),
    (["uncertainty.travel_sigma=3.0"], "uncertainty.travel_sigma: must be <= 2, got 3.0"),
    (['uncertainty.travel_sigma="high"'],
     "uncertainty.travel_sigma: expected a number, got string 'high'"),
    (["uncertainty.breakdown_prob_per_day=1.5"],
     "uncertainty.breakdown_prob_per_day: must be <= 1, got 1.5"),
    (["uncertainty.breakdown_duration_min=30.5"],
     "uncertainty.breakdown_duration_min: expected an integer, got number 30.5"),
    (["uncertainty.breakdown_prob_per_day=0.1"],
     "uncertainty.breakdown_duration_min: must be >= 1 when breakdown_prob_per_day is 0.1, "
     "got 0"),
    (["uncertainty.breakdown_prob_per_day=0.1", "uncertainty.breakdown_duration_min=90"],
     "uncertainty.breakdown_duration_min: 90 is not a whole number of steps of step_min=60"),
    (["uncertainty.breakdown_minutes=60"],
     "uncertainty.breakdown_minutes: unknown key (did you mean 'breakdown_duration_min'?)"),
])
def test_bad_road_uncertainty_values_name_the_field(sets, message):
    with pytest.raises(ScenarioError) as exc:
        load(TINY, sets)
    assert message in exc.value.problems


def test_a_traffic_table_covers_every_edge_of_the_scenario():
    from experiments.build import transport_graph

    cfg = load(TINY)
    t = draw_traffic(transport_graph(cfg).graph.edges, 8, 60, 0.2, np.random.default_rng(0))
    assert isinstance(t, Traffic) and set(t.factors) == set(EDGES)


def test_the_route_gantt_draws_each_breakdown(tmp_path):
    from experiments.figures import _breakdowns, route_gantt

    frames, _, _ = _run(outages=Outages(((240, 300), (420, 540))))
    assert _breakdowns(frames["events"], 480) == {"truck": [(240, 300), (420, 480)]}
    info = {"step_min": 60, "horizon_min": 480, "sites": {}, "vehicles": {"truck": {}}}
    assert route_gantt(frames, info, tmp_path / "g.png").stat().st_size > 0
