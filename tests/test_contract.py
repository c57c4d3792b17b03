"""One contract suite run over every registered policy (scikit-learn ``check_estimator`` style)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from experiments.build import build_world
from experiments.config import load, resolve
from policies.registry import POLICIES, make_policy
from sim.engine import Engine
from sim.types import Decision

# Parameters for policies that have required ones (and a fast rolling horizon for the MILP).
REQUIRED = {
    "milp": {"horizon_steps": 3, "replan_every": 3},
    "schedule": {"plan": [{"time_min": 0, "vehicle": "mess1", "dest": "dn3"},
                          {"time_min": 180, "vehicle": "mess1", "p_mw": -0.2},
                          {"time_min": 60, "vehicle": "mess2", "p_mw": 0.25}]},
}


@pytest.fixture(scope="module")
def cfg():
    return load(resolve("three-dn"))


class Checked:
    """Wraps a policy and checks every decision against the state it was given."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.decisions = []

    def reset(self, problem, rng):
        self.problem = problem
        self.inner.reset(problem, rng)

    def params(self):
        return self.inner.params()

    def decide(self, state):
        before = repr(state)
        d = self.inner.decide(state)
        assert repr(state) == before, "decide() must not change the state"
        assert isinstance(d, Decision)
        names = [c.vehicle for c in d.commands]
        assert len(names) == len(set(names)), "at most one command per vehicle"
        for c in d.commands:
            v = state.vehicle(c.vehicle)
            assert np.isfinite(c.p_mw)
            if c.dest is not None:
                assert c.dest in self.problem.nodes
            if not v.parked:
                assert c.p_mw == 0.0 and c.dest in (None, v.node, v.dest), "no action in transit"
            elif c.dest is not None and c.dest != v.node:
                assert c.p_mw == 0.0, "no power when departing"
            else:
                assert -v.p_dis_max_mw - 1e-9 <= c.p_mw <= v.p_ch_max_mw + 1e-9, (
                    f"{c.p_mw} outside [{-v.p_dis_max_mw}, {v.p_ch_max_mw}]")
        self.decisions.append(d)
        return d


def _run(cfg, name, seed=3):
    world = build_world(cfg, None, np.random.default_rng(seed))
    policy = Checked(make_policy(name, **REQUIRED.get(name, {})))
    engine = Engine(world.problem, world.vehicles, world.sites, policy,
                    rng=np.random.default_rng(seed), record_arrays=False)
    frames = engine.run().frames()
    return policy, frames, world


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_policy_contract(cfg, name):
    policy, frames, world = _run(cfg, name)
    fails = frames["failures"]
    assert not len(fails[fails.kind == "policy"]), fails.to_string()
    assert len(policy.decisions) == world.problem.n_steps
    assert not len(fails[fails.status == "power_clipped"]), fails.to_string()
    # deterministic for the same seed
    again, _, _ = _run(cfg, name)
    assert again.decisions == policy.decisions


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_policy_params_round_trip_and_pickle(name):
    p = make_policy(name, **REQUIRED.get(name, {}))
    params = p.params()
    assert make_policy(name, **params).params() == params
    clone = pickle.loads(pickle.dumps(p))
    assert clone.params() == params


def test_unknown_policy_lists_valid_names():
    from sim.errors import ScenarioError

    with pytest.raises(ScenarioError) as exc:
        make_policy("astar")
    assert f"valid: {', '.join(sorted(POLICIES))}" in str(exc.value)


def test_built_objects_satisfy_the_engine_protocols(cfg):
    from sim.protocols import GridSite, Policy, VehicleAgent

    world = build_world(cfg, None, np.random.default_rng(0))
    assert all(isinstance(v, VehicleAgent) for v in world.vehicles)
    assert all(isinstance(s, GridSite) for s in world.sites)
    assert all(isinstance(make_policy(n, **REQUIRED.get(n, {})), Policy) for n in POLICIES)
