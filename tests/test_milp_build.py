"""MILP build paths (issue 8): the hand-over of a PuLP model to its solver
(``SolveOutcome.transfer_s``), the ``milp`` policy's matrix build, and run metadata.

``transfer_s`` is the part of ``solve_s`` that PuLP spends handing the built model to the solver
(HiGHS: ``buildSolverModel``; CBC: the MPS file); ``benchmarks/bench_milp.py`` counts it as build
time. The ``milp`` policy builds its windows as arrays for highspy (``build = "matrix"``, the
default with HiGHS): every window's model must be the PuLP reference model, and both paths must
plan the same day.
"""

from __future__ import annotations

import copy
import itertools
import tomllib

import numpy as np
import pulp
import pytest

import policies.milp as milp_mod
from experiments.config import SCENARIO_DIR, validate
from experiments.run import run_one, versions
from policies.coopt_milp import build_graph, fleet_arrays, fleet_pulp, solve_fleet
from policies.milp import MilpPolicy
from policies.sfi_milp import build
from policies.solve import solve
from tests.test_coopt_milp import fleet_problem
from tests.test_sfi_highs import _row, canon_matrix, canon_pulp

N, HI, CAP = 6, 3, 17


def value(i: int) -> int:
    return i % 4 + 1


def weight(i: int) -> int:
    return i % 3 + 2


def small_mip() -> pulp.LpProblem:
    """A small knapsack-like MIP that both solvers close at once."""
    p = pulp.LpProblem("small", pulp.LpMaximize)
    x = [pulp.LpVariable(f"x_{i}", 0, HI, cat=pulp.LpInteger) for i in range(N)]
    p += pulp.lpSum(value(i) * v for i, v in enumerate(x))
    p += pulp.lpSum(weight(i) * v for i, v in enumerate(x)) <= CAP, "cap"
    p += x[0] + x[1] >= 1, "cover"
    return p


def brute_force() -> int:
    best = None
    for xs in itertools.product(range(HI + 1), repeat=N):
        if sum(weight(i) * v for i, v in enumerate(xs)) <= CAP and xs[0] + xs[1] >= 1:
            val = sum(value(i) * v for i, v in enumerate(xs))
            best = val if best is None else max(best, val)
    return best


@pytest.mark.parametrize("solver", ["highs", "cbc"])
def test_transfer_time_is_measured_and_part_of_the_solve(solver):
    p = small_mip()
    out = solve(p, solver, time_limit_s=30, mip_gap=1e-9)
    assert out.status == "optimal"
    assert 0.0 < out.transfer_s <= out.solve_s
    assert out.as_dict()["transfer_s"] == out.transfer_s
    # the CBC path times PuLP's MPS writer for this solve only: nothing is left on the model
    assert "writeMPS" not in vars(p)


def test_both_solvers_agree_with_the_transfer_timers_in_place():
    objs = [solve(small_mip(), s, time_limit_s=30, mip_gap=1e-9).objective
            for s in ("highs", "cbc")]
    assert objs[0] == pytest.approx(brute_force(), abs=1e-6)
    assert objs[1] == pytest.approx(brute_force(), abs=1e-6)


def test_a_solver_error_keeps_the_outcome_typed():
    out = solve(small_mip(), "gurobi-not-here", time_limit_s=5)
    assert out.status == "error" and out.transfer_s == 0.0 and "unknown solver" in out.message


def test_versions_record_the_solver_and_power_flow_libraries():
    v = versions()
    for name in ("highspy", "pulp", "scipy", "lightsim2grid", "pandapower"):
        assert name in v
    assert v["lightsim2grid"] != "not installed"  # a dependency of the fast power-flow path


# ----------------------------------------------------------------------------- the milp policy
TINY = tomllib.loads((SCENARIO_DIR / "tiny.toml").read_text())


def tiny_milp(build_path: str):
    """The 8-hour ``tiny`` scenario under the ``milp`` policy: 4-step windows every 3 steps
    (three windows), solved to optimality so that both build paths must agree."""
    raw = copy.deepcopy(TINY)
    raw["policy"] = {"name": "milp", "params": {
        "horizon_steps": 4, "replan_every": 3, "weights": "equal", "mip_gap": 1e-7,
        "build": build_path}}
    raw["compare"] = {"policies": []}
    return validate(raw)


def test_milp_policy_windows_are_the_pulp_model(monkeypatch):
    """Every window the policy builds as arrays has PuLP's columns (names, bounds, integrality),
    objective and rows after canonical sorting, on the simulated states of a real run."""
    seen = []
    real = milp_mod.build_matrix

    def both(inst):
        mat = real(inst)
        seen.append((canon_pulp(build(inst)), canon_matrix(mat)))
        return mat

    monkeypatch.setattr(milp_mod, "build_matrix", both)
    res = run_one(tiny_milp("matrix"), record_arrays=False)
    solves = res.meta["policies"][0]["report"]["solves"]
    assert len(seen) == len(solves) == 3
    assert [s["build"] for s in solves] == ["matrix"] * 3
    for (c1, o1, r1), (c2, o2, r2) in seen:
        assert c1 == c2
        assert o1.keys() == o2.keys()
        assert max(abs(o1[k] - o2[k]) for k in o1) < 1e-12
        assert r1 == r2


def test_milp_policy_build_paths_plan_the_same_day():
    runs = {b: run_one(tiny_milp(b), record_arrays=False) for b in ("pulp", "matrix")}
    solves = {b: r.meta["policies"][0]["report"]["solves"] for b, r in runs.items()}
    assert [s["build"] for s in solves["pulp"]] == ["pulp"] * 3
    for a, b in zip(solves["pulp"], solves["matrix"]):
        assert a["status"] == b["status"] == "optimal"
        assert a["objective"] == pytest.approx(b["objective"], abs=1e-6)
    plans = {b: r.tables["plan"] for b, r in runs.items()}
    assert (plans["pulp"].site == plans["matrix"].site).all()
    assert plans["pulp"].p_mw.to_numpy() == pytest.approx(plans["matrix"].p_mw.to_numpy(),
                                                          abs=1e-6)


def test_milp_policy_build_parameter_is_validated():
    assert MilpPolicy.param_problems({"build": "numpy"}) == [
        "policy.params.build: must be 'auto', 'matrix' or 'pulp', got 'numpy'"]
    assert MilpPolicy.param_problems({"build": "matrix", "solver": "cbc"}) == [
        "policy.params.build: 'matrix' hands the model to HiGHS; with solver 'cbc' use 'pulp' "
        "or 'auto'"]
    assert MilpPolicy.param_problems({"build": "auto", "solver": "cbc"}) == []


# ----------------------------------------------------------------------------- the fleet MILP
def fleet(seed: int, trucks: int = 3):
    return tuple(fleet_problem(seed, f"t{i}", wage=5.0 + 3 * i, e_scale=1.0 + 0.3 * i)
                 for i in range(trucks))


def canon_pulp_min(prob: pulp.LpProblem) -> tuple[dict, dict, list]:
    cols = {v.name: (v.lowBound, v.upBound, v.cat == pulp.LpInteger) for v in prob.variables()}
    obj = {v.name: c for v, c in prob.objective.items() if c != 0}
    rows = []
    for c in prob.constraints():
        terms = {v.name: a for v, a in c.items()}
        rhs = -c.constant
        lo, hi = {pulp.LpConstraintLE: (-np.inf, rhs), pulp.LpConstraintEQ: (rhs, rhs)}[c.sense]
        rows.append(_row(terms, lo, hi))
    return cols, obj, sorted(rows)


@pytest.mark.parametrize("seed", range(3))
def test_fleet_arrays_are_the_pulp_model(seed):
    """Same columns (names, bounds, integrality), objective and rows (flow conservation, one
    truck per site, the charger rows) after canonical sorting; three trucks share one plug."""
    graphs = [build_graph(q) for q in fleet(seed)]
    prob, _ = fleet_pulp(graphs)
    fa = fleet_arrays(graphs)
    assert fa.num_col == len(prob.variables()) and fa.num_row == prob.numConstraints()
    names = [n for n in prob._constraints]
    assert any(n.startswith("charger_") for n in names)
    assert any(n.startswith("site_") for n in names)
    c1, o1, r1 = canon_pulp_min(prob)
    c2, o2, r2 = canon_matrix(fa, sign=-1.0)  # arrays hold -cost (max)
    assert c1 == {n: (0, 1, True) for n in c2} and c2 == {n: (0.0, 1.0, True) for n in c2}
    assert o1.keys() == o2.keys()
    assert max(abs(o1[k] - o2[k]) for k in o1) < 1e-12
    assert r1 == r2


def test_fleet_build_paths_reach_the_same_optimum():
    probs = fleet(1)
    res = {b: solve_fleet(probs, time_limit_s=30, build=b) for b in ("pulp", "matrix")}
    for r in res.values():
        assert r.outcome.status == "optimal"
    assert res["matrix"].objective_usd == pytest.approx(res["pulp"].objective_usd, abs=1e-6)
    # the outcome's objective and bound are in USD (minimisation), not HiGHS's negated form
    assert res["matrix"].outcome.objective == pytest.approx(res["pulp"].objective_usd, abs=1e-6)
    assert res["matrix"].bound_usd <= res["matrix"].objective_usd + 1e-6
    assert res["matrix"].bound_usd == pytest.approx(res["pulp"].bound_usd, abs=1e-3)
    with pytest.raises(ValueError, match="build 'matrix' hands the model to HiGHS"):
        solve_fleet(probs, build="matrix", solver="cbc")
