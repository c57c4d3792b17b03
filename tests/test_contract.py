"""One contract suite run over every registered policy (scikit-learn ``check_estimator`` style).

Every (policy, system) pair of the registry runs on a built-in scenario of that system through
its engine, wrapped in a checker that holds each decision against the state it was given:
``decide`` does not change the state, returns a :class:`~sim.types.Decision` whose commands name
vehicles of the state with finite numbers, plus the checks of each system (power within the
battery's step limits on DN sites; set-points for every unit, wind farm and station on a
transmission grid; mission actions on truck missions). The same seed gives the same decisions.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from experiments.build import build_world
from experiments.config import load, resolve
from policies.registry import POLICIES, SYSTEMS, make_policy, names_for
from sim.engine import Engine
from sim.systems import DnSites
from sim.types import ACTIONS, Decision

# Parameters for policies that have required ones, and small settings for the planners.
REQUIRED = {
    ("milp", "dn-sites"): {"horizon_steps": 3, "replan_every": 3},
    ("schedule", "dn-sites"): {"plan": [{"time_min": 0, "vehicle": "mess1", "dest": "dn3"},
                                        {"time_min": 180, "vehicle": "mess1", "p_mw": -0.2},
                                        {"time_min": 60, "vehicle": "mess2", "p_mw": 0.25}]},
    # a limit no machine reaches on this small case: the test must not depend on machine speed
    ("milp", "missions"): {"time_limit_s": 3600.0, "mip_gap": 1e-3},
    ("uc-milp", "transmission"): {"time_limit_s": 60.0, "mip_gap": 1e-4},
    ("ocd", "transmission"): {"max_iter": 4, "power_time_limit_s": 20.0},
    ("dp", "dn-sites"): {"replan_min": 180, "soc_levels": 41},
    ("ocd", "dn-sites"): {"horizon_steps": 4, "replan_every": 4, "max_iter": 3},
}
PAIRS = sorted((name, system) for name, impl in POLICIES.items() for system in impl)


def _make(name, system="dn-sites"):
    return make_policy(name, system, **REQUIRED.get((name, system), {}))


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
        known = {v.name for v in state.vehicles}
        for c in d.commands:
            assert c.vehicle in known, f"command for {c.vehicle!r}, not a vehicle of the state"
            assert all(np.isfinite(x) for x in (c.p_mw, c.dc_mw, c.de_mwh))
            assert c.action in ACTIONS
        self.check(state, d)
        self.decisions.append(d)
        return d

    def check(self, state, d):
        names = [c.vehicle for c in d.commands]
        assert len(names) == len(set(names)), "at most one command per vehicle"
        assert d.setpoints is None, "no grid set-points on DN sites: the local operators dispatch"
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


class CheckedTrains(Checked):
    def check(self, state, d):
        case = self.problem.transmission
        sp = d.setpoints
        assert sp is not None, "the units, wind and stations need set-points"
        assert len(sp.unit_p_mw) == len(sp.unit_on) == len(case.units)
        assert len(sp.wind_mw) == len(case.wind)
        assert len(sp.station_pch_mw) == len(sp.station_pdis_mw) == len(case.stations)
        for arr in (sp.unit_p_mw, sp.wind_mw, sp.station_pch_mw, sp.station_pdis_mw):
            assert np.isfinite(arr).all() and (arr >= 0).all()
        stations = {s.name for s in case.stations}
        for c in d.commands:
            v = state.vehicle(c.vehicle)
            if c.station is not None:
                assert c.station in stations and v.parked, "exchange only when parked"
            else:
                assert c.path is not None and c.path[0] == v.node and v.parked, c


class CheckedTrucks(Checked):
    def plans(self):
        return self.inner.plans()

    def check(self, state, d):
        (v,) = state.vehicles
        (c,) = d.commands
        p = next(m for m in self.problem.missions if m.name == v.name)
        assert c.action in ("move", "charge", "discharge", "swap", "wait", "end"), c
        if c.action == "move":
            assert c.dest is not None and np.isfinite(p.dist_km[v.node, c.dest])
        if c.action in ("charge", "discharge"):
            assert v.node in p.charging_nodes
            assert p.soc_min_frac - 1e-9 <= c.soc_target_frac <= 1.0 + 1e-9
        if c.action == "swap":
            assert c.site == v.node and c.site in p.customers and c.site not in state.served


def _run(cfg, name, seed=3):
    world = build_world(cfg, None, np.random.default_rng(seed))
    policy = Checked(_make(name))
    engine = Engine(DnSites(world.problem, world.vehicles, world.sites, record_arrays=False),
                    policy, rng=np.random.default_rng(seed))
    frames = engine.run().frames()
    return policy, frames, world


@pytest.mark.parametrize("name", names_for("dn-sites"))
def test_policy_contract_on_dn_sites(cfg, name):
    policy, frames, world = _run(cfg, name)
    fails = frames["failures"]
    assert not len(fails[fails.kind == "policy"]), fails.to_string()
    assert len(policy.decisions) == world.problem.n_steps
    assert not len(fails[fails.status == "power_clipped"]), fails.to_string()
    # deterministic for the same seed
    again, _, _ = _run(cfg, name)
    assert again.decisions == policy.decisions


def _trains(name, seed=3):
    from experiments.tsn_sim import simulate
    from tests.test_tsn_sim import tiny_net
    from tests.tsn_cases import tiny_case

    case = tiny_case(T=6, transport_cost_per_h=1.0)
    policy = CheckedTrains(_make(name, "transmission"))
    res = simulate(case, tiny_net(case), policy, np.random.default_rng(seed))
    return policy, res, case


@pytest.mark.slow
@pytest.mark.parametrize("name", names_for("transmission"))
def test_policy_contract_on_a_transmission_grid(name):
    policy, res, case = _trains(name)
    fails = res.tables["failures"]
    assert not len(fails[fails.kind == "policy"]), fails.to_string()
    assert len(policy.decisions) == case.T
    again, _, _ = _trains(name)
    assert [repr(d) for d in again.decisions] == [repr(d) for d in policy.decisions]


def _trucks(name, seed=3):
    from agents.road_data import load_coopt
    from experiments.coopt_build import CooptSettings, build_problems
    from experiments.coopt_study import coopt_data_dir, simulate_fleet

    data = load_coopt(coopt_data_dir())
    hourly = {1: np.full(24, 0.12), 3: np.full(24, 0.15)}
    # the fleet MILP on the coarser grid (its size grows fast with the grid): seconds, not minutes
    s = CooptSettings(n_trucks=2, soc_step_frac=0.1 if name == "milp" else 0.05)
    probs = build_problems(data, "small", "generalised", s, hourly_price=hourly)
    policy = CheckedTrucks(_make(name, "missions"))
    runs, eng = simulate_fleet(policy, probs, None, data, "small", s, "generalised", hourly,
                               seed=seed)  # the engine resets the policy
    return policy, runs


@pytest.mark.slow
@pytest.mark.parametrize("name", names_for("missions"))
def test_policy_contract_on_truck_missions(name):
    policy, runs = _trucks(name)
    assert runs, "the policy planned no truck"
    for run in runs.values():
        assert not [f for f in run.failures if "policy" in f], run.failures
    again, _ = _trucks(name)
    assert again.decisions == policy.decisions


def _ieee30(name, hours=4, seed=3, **params):
    from experiments.tsn_sim import simulate
    from grids.transmission import build_case

    case, net = build_case("ieee30", "mes", T=hours)
    policy = CheckedTrains(make_policy(name, "transmission", **params))
    res = simulate(case, net, policy, np.random.default_rng(seed))
    return policy, res, case


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dp", "greedy"])
def test_price_routed_train_planners_on_tsn_ieee30(name):
    policy, res, case = _ieee30(name)
    fails = res.tables["failures"]
    assert not len(fails[fails.kind == "policy"]), fails.to_string()
    assert len(policy.decisions) == case.T
    assert policy.inner.plan_info["status"] == "optimal", policy.inner.plan_info
    again, _, _ = _ieee30(name)
    assert [repr(d) for d in again.decisions] == [repr(d) for d in policy.decisions]


@pytest.mark.slow
def test_rolling_fleet_milp_on_coopt_small():
    policy, runs = _trucks_with(make_policy("milp", "missions", time_limit_s=3600.0,
                                            mip_gap=1e-3, replan_min=120, late_tol_min=15))
    assert runs and all(not r.failures for r in runs.values())
    assert len(policy.inner.solves) >= 2 and policy.inner.replans >= 1
    again, _ = _trucks_with(make_policy("milp", "missions", time_limit_s=3600.0, mip_gap=1e-3,
                                        replan_min=120, late_tol_min=15))
    assert again.decisions == policy.decisions


def _trucks_with(inner, seed=3):
    from agents.road_data import load_coopt
    from experiments.coopt_build import CooptSettings, build_problems
    from experiments.coopt_study import coopt_data_dir, simulate_fleet

    data = load_coopt(coopt_data_dir())
    hourly = {1: np.full(24, 0.12), 3: np.full(24, 0.15)}
    s = CooptSettings(n_trucks=2, soc_step_frac=0.1)
    probs = build_problems(data, "small", "generalised", s, hourly_price=hourly)
    policy = CheckedTrucks(inner)
    runs, _ = simulate_fleet(policy, probs, None, data, "small", s, "generalised", hourly,
                             seed=seed)
    return policy, runs


def test_every_registered_policy_runs_on_a_system_this_suite_covers():
    assert {s for _, s in PAIRS} <= set(SYSTEMS)
    covered = set(names_for("dn-sites")) | set(names_for("transmission")) | set(
        names_for("missions"))
    assert covered == set(POLICIES)


@pytest.mark.parametrize("name,system", PAIRS)
def test_policy_params_round_trip_and_pickle(name, system):
    p = _make(name, system)
    params = p.params()
    assert make_policy(name, system, **params).params() == params
    clone = pickle.loads(pickle.dumps(p))
    assert clone.params() == params


def test_a_policy_on_a_system_it_does_not_run_on_names_what_is_missing():
    from sim.errors import ScenarioError

    with pytest.raises(ScenarioError) as exc:
        make_policy("shortest", "dn-sites")
    msg = str(exc.value)
    assert "policy 'shortest' needs a scenario with missions" in msg
    assert "offers dn-sites" in msg and "policies for it: " + ", ".join(
        names_for("dn-sites")) in msg


def test_unknown_policy_lists_valid_names():
    from sim.errors import ScenarioError

    with pytest.raises(ScenarioError) as exc:
        make_policy("astar")
    others = sorted(set(POLICIES) - set(names_for("dn-sites")))
    assert (f"valid: {', '.join(names_for('dn-sites'))} (on other systems: "
            f"{', '.join(others)})") in str(exc.value)


def test_built_objects_satisfy_the_engine_protocols(cfg):
    from sim.protocols import GridSite, Policy, VehicleAgent

    world = build_world(cfg, None, np.random.default_rng(0))
    assert all(isinstance(v, VehicleAgent) for v in world.vehicles)
    assert all(isinstance(s, GridSite) for s in world.sites)
    assert all(isinstance(_make(n, s), Policy) for n, s in PAIRS)
