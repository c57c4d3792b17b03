"""Formulation levers of the central TSN/UC MILP (``TsnOptions.reach_bounds``, ``prune_arcs``).

Each lever must leave the integer optimum unchanged: on the 3-bus case and variants (longer
travel, a train in transit at the start, tighter line, other horizons) the optimum with the lever
equals the optimum without it, and the optimal paths and states lie inside what the lever allows.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pulp
import pytest

from policies.solve import solve
from policies.tsn_milp import (
    TsnOptions,
    build,
    reach_bounds,
    solve_case,
    tsn_arcs,
    usable_arcs,
)
from policies.tsn_policies import paths_from_central_model
from tests.tsn_cases import tiny_case

GAP = 1e-7


def _in_transit(case):
    """K2 starts in transit to S3 and reaches it at hour 2, with less capacity than it ends
    with; K1 starts with more energy."""
    k1, k2 = case.trains
    return replace(case, trains=(replace(k1, e0_mwh=40.0, eT_mwh=22.5),
                                 replace(k2, start="S3", ready_h=2, c0_mw=10.0, e0_mwh=5.0,
                                         cT_mw=22.5, eT_mwh=22.5)),
                   stations=tuple(replace(s, c0_mw=s.c0_mw + (12.5 if i == 0 else 0.0),
                                          cT_mw=15.0, e0_mwh=s.e0_mwh + (0.0 if i else 2.5),
                                          eT_mwh=15.0)
                                  for i, s in enumerate(case.stations)))


VARIANTS = {
    "T6": lambda: tiny_case(T=6),
    "T8 congested": lambda: tiny_case(T=8, rating_02_mw=30.0, transport_cost_per_h=1.0),
    "T7 travel 2 h": lambda: tiny_case(T=7, travel_h=2, transport_cost_per_h=0.0),
    "T6 in transit": lambda: _in_transit(tiny_case(T=6, transport_cost_per_h=1.0)),
}


@pytest.fixture(scope="module", params=list(VARIANTS))
def solved(request):
    case = VARIANTS[request.param]()
    base, model = solve_case(case, TsnOptions(mip_gap=GAP, time_limit_s=120))
    assert base.outcome.status == "optimal", base.outcome
    return case, base, paths_from_central_model(model, case)


def _lp_bound(case, **flags) -> float:
    m = build(case, "central", TsnOptions(line_limits=False, **flags))
    for x in m.prob.variables():
        x.cat = pulp.LpContinuous
    out = solve(m.prob, time_limit_s=60)
    assert out.status == "optimal"
    return out.objective


@pytest.mark.parametrize("flags", [{"reach_bounds": True}, {"prune_arcs": True},
                                   {"reach_bounds": True, "prune_arcs": True}])
def test_lever_keeps_the_integer_optimum(solved, flags):
    case, base, _ = solved
    plan, _ = solve_case(case, TsnOptions(mip_gap=GAP, time_limit_s=120, **flags))
    assert plan.outcome.status == "optimal"
    assert plan.total_cost == pytest.approx(base.total_cost, rel=1e-6, abs=1e-4)


def test_optimal_solution_lies_inside_the_lever_bounds(solved):
    """The optimum's train states never exceed :func:`reach_bounds` and its paths use only
    :func:`usable_arcs` (so neither lever cuts it off)."""
    case, base, paths = solved
    arcs = tsn_arcs(case.travel_h, case.T)
    for k, tr in enumerate(case.trains):
        cub, eub = reach_bounds(case, k)
        t0 = tr.ready_h
        assert np.all(base.ct_mw[k, t0:] <= cub[t0:] + 1e-6)
        assert np.all(base.et_mwh[k, t0:] <= eub[t0:] + 1e-6)
        assert set(paths[k]) <= usable_arcs(case, k, arcs)


def test_reach_bounds_start_and_end_at_the_trains_states():
    case = _in_transit(tiny_case(T=6))
    for k, tr in enumerate(case.trains):
        cub, eub = reach_bounds(case, k)
        assert cub[tr.ready_h] == tr.c0_mw and eub[tr.ready_h] == tr.e0_mwh
        assert cub[case.T] == tr.c_end_mw and eub[case.T] == tr.e_end_mwh
        assert np.all(cub <= tr.c_max_mw) and np.all(eub <= case.gamma_h * cub + 1e-12)


def test_reach_bounds_tighten_the_lp_relaxation_and_pruning_does_not_change_it():
    case = tiny_case(T=8, rating_02_mw=30.0, transport_cost_per_h=1.0)
    base = _lp_bound(case)
    assert _lp_bound(case, reach_bounds=True) >= base - 1e-6
    assert _lp_bound(case, prune_arcs=True) == pytest.approx(base, rel=1e-9, abs=1e-6)
