"""The engine: golden event trace, transit rules and invariants over random policies."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.baselines import SchedulePolicy
from sim.engine import Engine
from sim.systems import DnSites
from sim.types import Command, Decision
from tests.fakes import TINY_PLAN, tiny_world

PLAN = TINY_PLAN

GOLDEN = [
    (0, "depart", "depot"),
    (45, "arrive", "a"),
    (60, "charge_start", "a"),
    (120, "charge_stop", "a"),
    (180, "depart", "a"),
    (270, "arrive", "b"),
    (300, "discharge_start", "b"),
    (360, "discharge_stop", "b"),
    (360, "depart", "b"),
    (450, "arrive", "a"),
]


def _run(policy, step_min=60, horizon_min=480, **kw):
    problem, vehicles, sites, graph = tiny_world(step_min, horizon_min, **kw)
    engine = Engine(DnSites(problem, vehicles, sites), policy, rng=np.random.default_rng(0))
    frames = engine.run().frames()
    return frames, sites, vehicles


@pytest.mark.parametrize("step_min", [60, 15])
def test_golden_event_trace(step_min):
    frames, sites, _ = _run(SchedulePolicy(PLAN), step_min=step_min)
    trace = [(r.time_min, r.event, r.node) for r in frames["events"].itertuples()]
    assert trace == GOLDEN


def test_power_reaches_the_site_only_while_parked():
    frames, sites, _ = _run(SchedulePolicy(PLAN))
    a = dict(sites[0].seen)
    b = dict(sites[1].seen)
    assert a[60] == pytest.approx(0.2) and a[0] == 0.0 and a[120] == 0.0
    assert b[300] == pytest.approx(-0.2)
    assert all(p == 0.0 for t, p in b.items() if t != 300)
    v = frames["vehicles"]
    transit = v[v.status == "transit"]
    assert (transit.p_mw == 0).all() and (transit.flex_up_mw == 0).all()


def test_policy_exception_is_recorded_and_run_continues():
    class Broken:
        name = "broken"

        def reset(self, problem, rng):
            pass

        def decide(self, state):
            raise RuntimeError("boom")

        def params(self):
            return {}

    frames, _, _ = _run(Broken())
    f = frames["failures"]
    assert len(f) == 8 and set(f.status) == {"error"} and "boom" in f.message.iloc[0]
    assert len(frames["vehicles"]) == 8


def test_power_in_transit_is_refused_and_recorded():
    class Pushy:
        name = "pushy"

        def reset(self, problem, rng):
            self.step = 0

        def decide(self, state):
            if state.step == 0:
                return Decision((Command("truck", dest="b", p_mw=0.1),))
            return Decision((Command("truck", p_mw=0.1),))

        def params(self):
            return {}

    frames, sites, _ = _run(Pushy())
    statuses = set(frames["failures"].status)
    assert {"power_while_departing", "power_in_transit"} <= statuses
    # arrival at b after 120 min: the first power at b is at the step starting at 120
    b = dict(sites[1].seen)
    assert b[60] == 0.0 and b[120] == pytest.approx(0.1)


class RandomPolicy:
    """Random destinations and powers (including infeasible ones) for invariant tests."""

    name = "random"

    def __init__(self, seed):
        self.seed = seed

    def reset(self, problem, rng):
        self.rng = np.random.default_rng(self.seed)
        self.nodes = problem.nodes

    def decide(self, state):
        cmds = []
        for v in state.vehicles:
            if self.rng.random() < 0.3:
                cmds.append(Command(v.name, dest=str(self.rng.choice(self.nodes))))
            else:
                cmds.append(Command(v.name, p_mw=float(self.rng.uniform(-0.5, 0.5))))
        return Decision(tuple(cmds))

    def params(self):
        return {"seed": self.seed}


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([15, 30, 60]))
def test_invariants_under_random_policies(seed, step_min):
    frames, sites, vehicles = _run(RandomPolicy(seed), step_min=step_min, horizon_min=720)
    veh = frames["vehicles"]
    spec = vehicles[0].spec.battery
    # SOC stays inside its window at connection points (every node but the depot is one)
    at_site = veh[veh.site != ""]
    assert (at_site.e_end_mwh >= spec.e_min_mwh - 1e-9).all()
    assert (veh.e_end_mwh <= spec.e_max_mwh + 1e-9).all()
    # no power while in transit or away from a connection point
    assert (veh.loc[veh.status == "transit", "p_mw"] == 0).all()
    assert (veh.loc[veh.site == "", "p_mw"] == 0).all()
    # energy balance including conversion losses and self-discharge
    b = vehicles[0].battery
    assert b.e_mwh == pytest.approx(b.e_init_mwh + b.charged_mwh - b.discharged_mwh
                                    - b.loss_conversion_mwh - b.loss_self_mwh - b.traction_mwh,
                                    abs=1e-12)
    step_e = veh.e_start_mwh + np.where(veh.p_mw > 0, 0.95 * veh.p_mw, veh.p_mw / 0.95) * (
        step_min / 60) - veh.loss_self_mwh
    assert np.allclose(step_e, veh.e_end_mwh, atol=1e-12)
    # what the sites received equals what the vehicles exchanged
    site_total = sum(p for s in sites for _, p in s.seen)
    assert site_total == pytest.approx(veh.p_mw.sum(), abs=1e-12)
    # arrival never earlier than the shortest path allows
    graph = vehicles[0].graph
    ev = frames["events"]
    departs = ev[ev.event == "depart"].reset_index(drop=True)
    arrives = ev[ev.event == "arrive"].reset_index(drop=True)
    for i in range(len(arrives)):
        origin = departs.node[i]
        assert arrives.time_min[i] - departs.time_min[i] >= graph.travel_min(origin,
                                                                              arrives.node[i])
    # departures happen only at step boundaries
    assert (departs.time_min % step_min == 0).all()
