"""Seed 001 models: centralised TSN/UC MILP, stationary baselines and the OCD coordinator.

Cross-method checks (DP vs MILP shortest path, our UC dispatch vs pandapower's DC OPF, lazy line
rows vs all rows, OCD vs centralised) and invariants (capacity conservation, bound validity).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandapower as pp
import pulp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grids.transmission import build_case, evaluate_dispatch
from policies.ocd import OcdOptions, route_connections, run_ocd, shortest_path
from policies.tsn_milp import (
    TsnOptions,
    add_line_rows,
    arc_cost,
    build,
    extract,
    screen_lines,
    solve_case,
    solve_lazy,
    tsn_arcs,
)
from tests.tsn_cases import tiny_case

GAP = 1e-7


@pytest.fixture(scope="module")
def central6():
    case = tiny_case(T=6)
    plan, _ = solve_case(case, TsnOptions(mip_gap=GAP, time_limit_s=120))
    assert plan.outcome.status == "optimal"
    return case, plan


# ------------------------------------------------------------------ invariants of the MILP
def test_capacity_is_conserved_and_trains_follow_paths(central6):
    case, plan = central6
    total = plan.cs_mw.sum(axis=0) + plan.ct_mw.sum(axis=0)
    assert np.allclose(total, total[0], atol=1e-6)  # B.7 consequence
    assert total[0] == pytest.approx(90.0)
    # terminal states equal initial ones (8), (12), (21)
    assert np.allclose(plan.cs_mw[:, -1], plan.cs_mw[:, 0], atol=1e-6)
    assert np.allclose(plan.es_mwh[:, -1], plan.es_mwh[:, 0], atol=1e-6)
    assert np.allclose(plan.et_mwh[:, -1], plan.et_mwh[:, 0], atol=1e-6)
    # energy within gamma * capacity, at most one station per train and hour
    assert np.all(plan.es_mwh <= case.gamma_h * plan.cs_mw + 1e-6)
    assert np.all(plan.et_mwh <= case.gamma_h * plan.ct_mw + 1e-6)
    assert np.all(plan.w.sum(axis=1) <= 1)
    # a train's first and last hour are spent at its start / end station (travel >= 1 h)
    so = plan.station_of()
    for k, tr in enumerate(case.trains):
        assert so[k, 0] in (case.station_pos(tr.start), -1)
    # the PWL cost over-estimates the quadratic one, never by more than the chord error
    assert plan.operating_cost >= plan.operating_cost_quadratic - 1e-6


def test_trains_move_energy_and_beat_no_storage(central6):
    case, plan = central6
    none, _ = solve_case(tiny_case(T=6, variant="none"), TsnOptions(mip_gap=GAP))
    assert plan.total_cost < none.total_cost - 100  # storage is worth something here
    assert plan.wind_utilisation_pct(case) >= none.wind_utilisation_pct(case)


def test_stationary_baselines_respect_energy_balance():
    case = tiny_case(T=6, variant="ses_distributed")
    plan, _ = solve_case(case, TsnOptions(mip_gap=GAP))
    eta = case.eta
    for j, s in enumerate(case.fixed_storage):
        e = plan.fe_mwh[j]
        assert e[0] == pytest.approx(s.e0_mwh) and e[-1] == pytest.approx(s.e0_mwh, abs=1e-6)
        de = np.diff(e)
        assert np.allclose(de, eta * plan.fch_mw[j] - plan.fdis_mw[j] / eta, atol=1e-6)
        assert np.all(np.minimum(plan.fch_mw[j], plan.fdis_mw[j]) <= 1e-6)  # (15)


@pytest.mark.slow
def test_lazy_line_rows_give_the_same_optimum_as_all_rows():
    """Screening + lazy rows (the default) vs every (line, hour) row from the start."""
    case = tiny_case(T=6, rating_02_mw=30.0)
    lazy, _ = solve_case(case, TsnOptions(mip_gap=GAP))
    full = build(case, "central", TsnOptions(mip_gap=GAP),
                 lines={(ln, t) for ln in range(len(case.line_names)) for t in range(case.T)
                        if np.isfinite(case.rating_mw[ln])})
    out, rounds = solve_lazy(full)
    assert rounds == 1 and out.status == "optimal"
    assert lazy.total_cost == pytest.approx(out.objective, rel=1e-6)
    assert lazy.max_overload_mw <= 1e-4
    assert lazy.line_rows < len(full.lines) or lazy.line_rounds > 1 or lazy.line_rows > 0


def test_screening_drops_only_lines_that_cannot_bind():
    case = tiny_case(T=6)
    keep = set(screen_lines(case).tolist())
    assert keep == {1}  # only line 0-2 is rated
    loose = tiny_case(T=6, rating_02_mw=1e4)
    assert screen_lines(loose).size == 0


# ------------------------------------------------------------------ transport layer (41)
def _milp_shortest_path(case, k, station_cost):
    arcs = tsn_arcs(case.travel_h, case.T)
    prob = pulp.LpProblem("sp", pulp.LpMinimize)
    x = {a: pulp.LpVariable(f"x_{'_'.join(map(str, a))}", cat=pulp.LpBinary) for a in arcs}
    cost = {a: arc_cost(case, a) + (station_cost[a[0], a[1]] if a[0] == a[2] else 0.0)
            for a in arcs}
    prob += pulp.lpSum(cost[a] * x[a] for a in arcs)
    tr = case.trains[k]
    i0, iT = case.station_pos(tr.start), case.station_pos(tr.end)
    n, T = len(case.stations), case.T
    for i, th in itertools.product(range(n), range(T + 1)):
        out_ = [x[a] for a in arcs if (a[0], a[1]) == (i, th)]
        in_ = [x[a] for a in arcs if (a[2], a[3]) == (i, th)]
        if th == 0:
            prob += pulp.lpSum(out_) == int(i == i0)
        elif th == T:
            prob += pulp.lpSum(in_) == int(i == iT)
        else:
            prob += pulp.lpSum(in_) == pulp.lpSum(out_)
    prob.solve(pulp.HiGHS(msg=False))
    assert pulp.LpStatus[prob.status] == "Optimal"
    return pulp.value(prob.objective)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), T=st.integers(3, 9), tau=st.integers(1, 3),
       c_h=st.floats(0.0, 50.0))
def test_transport_dp_equals_milp_shortest_path(seed, T, tau, c_h):
    rng = np.random.default_rng(seed)
    case = tiny_case(T=T, travel_h=tau, transport_cost_per_h=c_h)
    lam = rng.normal(0.0, 30.0, size=(len(case.trains), 3, T))
    for k in range(len(case.trains)):
        path, cost = shortest_path(case, k, lam[k])
        assert cost == pytest.approx(_milp_shortest_path(case, k, lam[k]), abs=1e-6)
        # the path is a TSN path from (start, 0) to (end, T)
        tr = case.trains[k]
        assert path[0][:2] == (case.station_pos(tr.start), 0)
        assert path[-1][2:] == (case.station_pos(tr.end), T)
        assert all(a[2:] == b[:2] for a, b in zip(path, path[1:]))
        w = route_connections(case, [path])[0]
        recomputed = sum(arc_cost(case, a) for a in path) + float((lam[k] * w).sum())
        assert recomputed == pytest.approx(cost, abs=1e-9)


# ------------------------------------------------------------------ OCD (B.11-B.12)
def test_ocd_bounds_bracket_the_centralised_optimum_and_enhanced_reaches_it(central6):
    case, plan = central6
    opt_value = plan.total_cost
    power = TsnOptions(mip_gap=GAP, time_limit_s=60)
    res = run_ocd(case, OcdOptions(variant="enhanced", mobility="exact",
                                   request_candidates=True, max_iter=15, power=power))
    for h in res.history:
        assert h.lb_v <= opt_value + 1e-4  # LB from the dual bound is valid
        assert h.ub >= opt_value - 1e-4
    assert res.ub == pytest.approx(opt_value, rel=1e-6)
    assert res.plan is not None and res.plan.has_solution
    assert res.plan.total_cost == pytest.approx(res.ub, rel=1e-9)


def test_ocd_literal_runs_the_textbook_algorithm(central6):
    case, plan = central6
    res = run_ocd(case, OcdOptions(variant="literal", max_iter=6,
                                   power=TsnOptions(mip_gap=GAP, time_limit_s=60)))
    assert 1 <= res.iterations <= 6
    assert res.stop_reason in ("max_iter", "gap", "routes_unchanged")
    assert all(h.lb_v <= plan.total_cost + 1e-4 for h in res.history)
    assert res.ub >= plan.total_cost - 1e-4
    assert all(h.new_routes >= 0 for h in res.history)
    # the first multipliers are zero: LB^1 is the relaxation without consensus
    assert res.history[0].lb_v <= res.history[0].ub


def test_ocd_without_dual_bounds_or_power_solutions_is_an_outcome(central6, monkeypatch):
    """A power layer solved without a dual bound (CBC stopped by its time limit) gives no
    lower bound that iteration but OCD goes on; one without a solution stops OCD with the
    status as its stop reason, keeping what earlier iterations found (no exception)."""
    import dataclasses

    import policies.ocd as ocd_mod

    case, plan = central6
    real = ocd_mod.solve_lazy
    calls = {"n": 0}

    def no_bound(model, start=None):
        out, rounds = real(model, start)
        calls["n"] += 1
        if model.kind == "power" and calls["n"] % 2 == 0:
            out = dataclasses.replace(out, bound=None, status="time_limit")
        return out, rounds

    monkeypatch.setattr(ocd_mod, "solve_lazy", no_bound)
    power = TsnOptions(mip_gap=GAP, time_limit_s=60)
    res = run_ocd(case, OcdOptions(variant="enhanced", max_iter=4, power=power))
    assert res.stop_reason in ("max_iter", "gap", "routes_unchanged")
    assert any(h.lb_v == float("-inf") and np.isnan(h.phi_p_bound) for h in res.history)
    assert all(h.lb_v <= plan.total_cost + 1e-4 for h in res.history)
    assert np.isfinite(res.ub) and res.ub >= plan.total_cost - 1e-4

    def failed(model, start=None):
        out, rounds = real(model, start)
        if model.kind == "power":
            out = dataclasses.replace(out, status="error", objective=None, bound=None)
        return out, rounds

    monkeypatch.setattr(ocd_mod, "solve_lazy", failed)
    res = run_ocd(case, OcdOptions(variant="enhanced", max_iter=4, power=power))
    assert res.stop_reason == "power_layer_error" and res.iterations == 0


# ------------------------------------------------------------------ against pandapower
def test_one_period_dispatch_equals_pandapower_dcopf_within_pwl_error():
    """T = 1, every unit committed, no storage: our UC dispatch vs ``pandapower.rundcopp``."""
    case, net = build_case("ieee30", "none", T=1, pmin_frac=0.0, ramp_frac_per_h=1.0)
    opt = TsnOptions(mip_gap=GAP, pwl_segments=8)
    model = build(case, "central", opt)
    for var in model.v["u"].values():
        var.lowBound = 1
    add_line_rows(model, {(ln, 0) for ln in range(len(case.line_names))
                          if np.isfinite(case.rating_mw[ln])})
    out, _ = solve_lazy(model)
    assert out.status == "optimal"
    plan = extract(model, out)
    # pandapower's OPF on the same hour, with the wind fixed at our dispatch
    evaluate_dispatch(net, case, 0, plan.p_mw[:, 0], plan.wind_mw[:, 0])
    net.sgen["p_mw"] = plan.wind_mw[:, 0]
    net.gen["in_service"] = True
    pp.rundcopp(net)
    opf = float(net.res_cost)
    pwl_bound = sum(u.cost_c * (u.p_max_mw / 8) ** 2 / 4 for u in case.units)
    assert opf - 1e-6 <= plan.operating_cost <= opf + pwl_bound + 1e-6
    assert plan.operating_cost_quadratic >= opf - 1e-3  # OPF is optimal for the true cost
