"""The hand-over of a PuLP model to its solver (``SolveOutcome.transfer_s``), and run metadata.

``transfer_s`` is the part of ``solve_s`` that PuLP spends handing the built model to the solver
(HiGHS: ``buildSolverModel``; CBC: the MPS file); ``benchmarks/bench_milp.py`` counts it as build
time.
"""

from __future__ import annotations

import itertools

import pulp
import pytest

from experiments.run import versions
from policies.solve import solve

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
