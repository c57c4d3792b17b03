"""Hypothesis mutates valid scenario files; every outcome is a clean ScenarioError or a valid run.

Mutations: delete a key, change a value's type, out-of-range and huge numbers, NaN and inf,
wrong nesting (a value wrapped in an array or a table), applied one to three at a time anywhere
in the ``tiny`` and ``three-dn`` scenarios. Most examples go through validation only (what
``mescosim check`` does); a few valid mutants are run end to end on a short horizon.
"""

from __future__ import annotations

import copy
import math
import tomllib
from functools import cache
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import grids.feeders
import grids.site
from experiments.config import SCENARIO_DIR, Config, validate
from grids.feeders import make_feeder
from sim.errors import ScenarioError

BASES = {name: tomllib.loads((SCENARIO_DIR / f"{name}.toml").read_text())
         for name in ("tiny", "three-dn")}


@cache
def _template(name: str):
    return make_feeder(name)


def _read_only_feeder(name):
    # check_site_spec only reads the net (bus indices, service flags, transformer sides), so the
    # validation may share one net per feeder; this saves pandapower's deep copy per example.
    return _template(name) if isinstance(name, str) and name in grids.feeders.FEEDERS else \
        make_feeder(name)


def _paths(node, prefix=()):
    """Every key path in a nested TOML value (tables and arrays)."""
    out = []
    items = node.items() if isinstance(node, dict) else \
        enumerate(node) if isinstance(node, list) else []
    for k, v in items:
        out.append(prefix + (k,))
        out.extend(_paths(v, prefix + (k,)))
    return out


NUMBERS = st.one_of(
    st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1e308, -1e308, 1e-300, 2**63, -2**63, math.nan, math.inf]))
SCALARS = st.one_of(NUMBERS, st.booleans(), st.text(max_size=8),
                    st.sampled_from(["dn1", "depot", "a", "b", "greedy", "milp", "case33bw",
                                     "../x", "/etc/passwd", "solar"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6)


@st.composite
def mutant(draw):
    name = draw(st.sampled_from(sorted(BASES)))
    raw = copy.deepcopy(BASES[name])
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(raw)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = raw
        for k in path[:-1]:
            parent = parent[k]
        key = path[-1]
        kind = draw(st.sampled_from(["delete", "replace", "number", "wrap_list", "wrap_table"]))
        if kind == "delete":
            del parent[key]
        elif kind == "replace":
            parent[key] = draw(VALUES)
        elif kind == "number":
            parent[key] = draw(NUMBERS)
        elif kind == "wrap_list":
            parent[key] = [parent[key]]
        else:
            parent[key] = {draw(st.sampled_from(["value", "x", "csv"])): parent[key]}
    return name, raw


@settings(max_examples=1500, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutant())
def test_validation_never_crashes(case):
    _, raw = case
    with mock.patch.object(grids.site, "make_feeder", _read_only_feeder):
        try:
            cfg = validate(raw)
        except ScenarioError as exc:
            assert exc.problems and all(isinstance(p, str) and ": " in p for p in exc.problems)
            return
    assert isinstance(cfg, Config)


# A few full runs: numeric changes to the tiny scenario on a 3-hour horizon, every policy of it.
NUMERIC = [("fleet", 0, "capacity_mwh"), ("fleet", 0, "e_init_mwh"), ("fleet", 0, "p_max_mw"),
           ("fleet", 0, "retention_per_h"), ("grids", "a", "peak_load_mw"),
           ("grids", "b", "peak_load_mw"), ("grids", "a", "pv_cap_mw"),
           ("road", "edges", 0, "travel_min"), ("uncertainty", "load_sigma")]


@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(NUMERIC), NUMBERS), min_size=1, max_size=3))
def test_tiny_runs_or_fails_cleanly(changes):
    from experiments.run import run_one

    raw = copy.deepcopy(BASES["tiny"])
    raw["scenario"]["horizon_min"] = 180
    raw["policy"]["params"]["plan"] = [e for e in raw["policy"]["params"]["plan"]
                                       if e["time_min"] < 180]
    for path, value in changes:
        node = raw
        for k in path[:-1]:
            node = node.setdefault(k, {}) if isinstance(k, str) else node[k]
        node[path[-1]] = value
    try:
        cfg = validate(raw)
        result = run_one(cfg, record_arrays=False)
    except ScenarioError as exc:
        assert exc.problems
        return
    assert result.meta["status"] == "complete"
    assert set(result.tables["vehicles"].policy) == {"schedule", "idle", "greedy"}
