"""Transmission cases of seed 001 (grids/transmission.py) and the rail graph (agents/rail.py)."""

from __future__ import annotations

import math

import numpy as np
import pandapower as pp
import pytest

from agents.rail import rail_graph, rail_graph_from_matrix
from grids.transmission import (
    CASES,
    LOAD_SHAPE_MIXED,
    VARIANTS,
    build_case,
    economic_dispatch,
    evaluate_dispatch,
    lines_that_can_bind,
    load_shape,
    pp_bus,
    wind_shape,
)
from sim.errors import ScenarioError

#: MATPOWER case30.m generator data (bus, Pmax MW) and gencost (c2, c1, c0), 1-based buses.
CASE30_GENS = {1: (80.0, (0.02, 2.0, 0.0)), 2: (80.0, (0.0175, 1.75, 0.0)),
               22: (50.0, (0.0625, 1.0, 0.0)), 27: (55.0, (0.00834, 3.25, 0.0)),
               23: (30.0, (0.025, 3.0, 0.0)), 13: (40.0, (0.025, 3.0, 0.0))}


@pytest.fixture(scope="module")
def builds():
    """All eight builds; tests that run power flows on a net may change its injections."""
    return {(n, v): build_case(n, v) for n in CASES for v in VARIANTS}


def _net_injection(net, case):
    """MW injected at every bus (case.bus_ids order) from the net's element tables."""
    pos = {b: j for j, b in enumerate(case.bus_ids)}
    inj = np.zeros(len(case.bus_ids))
    for df, sign in ((net.gen, 1.0), (net.sgen, 1.0), (net.load, -1.0), (net.storage, -1.0)):
        for b, p, s, on in zip(df.bus, df.p_mw, df.scaling, df.in_service):
            if on:
                inj[pos[int(b)]] += sign * float(p) * float(s)
    for b, p, s, on in zip(net.shunt.bus, net.shunt.p_mw, net.shunt.step, net.shunt.in_service):
        if on:
            inj[pos[int(b)]] -= float(p) * float(s)
    return inj


def _dc_branch_flows(net):
    flows = net.res_line.p_from_mw.to_numpy(float)
    if len(net.trafo):
        flows = np.concatenate([flows, net.res_trafo.p_hv_mw.to_numpy(float)])
    return flows


# ----------------------------------------------------------------------------- PTDF
@pytest.mark.filterwarnings("ignore:tap_dependency_table:DeprecationWarning")
@pytest.mark.parametrize("name", CASES)
def test_ptdf_flows_equal_rundcpp_base_and_perturbed(name):
    case, net = build_case(name, "mes")
    assert case.ptdf.shape == (len(net.line) + len(net.trafo), len(net.bus))
    slack = int(net.ext_grid.bus.iloc[0])
    assert np.all(case.ptdf[:, case.bus_pos(slack)] == 0)
    rng = np.random.default_rng(7)
    for perturb in (False, True):
        if perturb:
            net.gen["p_mw"] = net.gen.p_mw * rng.uniform(0.5, 1.5, len(net.gen))
            net.load["p_mw"] = net.load.p_mw * rng.uniform(0.6, 1.4, len(net.load))
            net.sgen["p_mw"] = rng.uniform(0, 50, len(net.sgen))
            net.storage["p_mw"] = rng.uniform(-30, 30, len(net.storage))
        pp.rundcpp(net, numba=False)
        flows = _dc_branch_flows(net)
        ptdf_flows = case.ptdf @ _net_injection(net, case)
        assert np.max(np.abs(ptdf_flows - flows)) < 1e-6
        assert np.max(np.abs(flows)) > 10  # not trivially zero


def test_ptdf_column_is_a_real_sensitivity(builds):
    """Injecting 1 MW more at bus 13 (withdrawn at the slack) moves line 12-13 by exactly -1 MW."""
    case, _ = builds[("ieee30", "none")]
    li = case.line_names.index("line 12-13")
    assert case.ptdf[li, case.bus_pos(12)] == pytest.approx(-1.0, abs=1e-9)  # radial bus 13


# ----------------------------------------------------------------------------- units, lines
def test_case118_units_capacity_and_branches(builds):
    case, net = builds[("ieee118", "none")]
    assert len(case.units) == 54
    assert sum(u.p_max_mw for u in case.units) == pytest.approx(9966, abs=0.5)
    assert len(case.line_names) == 186 == len(set(case.line_names))
    assert sum(n.startswith("trafo") for n in case.line_names) == 13
    # MATPOWER case118's rateA = 9900 everywhere: "no limit"
    assert np.all(np.isinf(case.rating_mw))
    slack = [u for u in case.units if u.name == "G69"]
    assert len(slack) == 1 and slack[0].p_max_mw == pytest.approx(805.2)
    assert slack[0].bus == int(net.ext_grid.bus.iloc[0]) == pp_bus(net, 69) == 68


def test_case30_units_match_matpower(builds):
    case, _ = builds[("ieee30", "none")]
    assert len(case.units) == 6
    assert sum(u.p_max_mw for u in case.units) == pytest.approx(335.0)
    for u in case.units:
        mp_bus = int(u.name[1:])
        pmax, (c2, c1, c0) = CASE30_GENS[mp_bus]
        assert u.bus == mp_bus - 1
        assert (u.p_max_mw, u.cost_c, u.cost_b, u.cost_a) == pytest.approx((pmax, c2, c1, c0))
        assert u.p_min_mw == pytest.approx(0.3 * pmax)  # [P] B.14, MATPOWER has 0
        assert u.ramp_up_mw_per_h == u.ramp_down_mw_per_h == pytest.approx(0.5 * pmax)
        assert u.min_up_h == u.min_down_h == 3
        assert (u.startup_cost, u.shutdown_cost) == pytest.approx((10 * pmax, 0.0))
    assert case.units[0].name == "G1"  # the ext_grid (MATPOWER reference generator)


def test_cost_units_against_pandapower_opf():
    """Our (a, b, c) give pandapower's own OPF objective for pandapower's OPF dispatch."""
    case, net = build_case("ieee30", "none")
    pp.rundcopp(net)
    p = {n: float(v) for n, v in zip(net.gen.name, net.res_gen.p_mw)}
    p.update({n: float(v) for n, v in zip(net.ext_grid.name, net.res_ext_grid.p_mw)})
    ours = sum(u.cost_a + u.cost_b * p[u.name] + u.cost_c * p[u.name] ** 2 for u in case.units)
    assert ours == pytest.approx(float(net.res_cost), rel=1e-6)


def test_economic_dispatch_equals_pandapower_dcopf_within_pwl_error():
    """Cross-method: our LP (secant segments, PTDF limits) vs pandapower's DC OPF on the same net.

    With P_min = 0 and every unit committed both solve the same problem; the wind is fixed in the
    OPF at what the LP used. Line 12-13 (40 MW) binds at night.
    """
    case, net = build_case("ieee30", "none", pmin_frac=0.0)
    pwl_bound = sum(u.cost_c * (u.p_max_mw / 20) ** 2 / 4 for u in case.units)
    for t in (3, 10):
        up, wp = economic_dispatch(case, t, committed=[True] * len(case.units))
        evaluate_dispatch(net, case, t, up, wp)  # puts the hour's loads into the net
        net.sgen["p_mw"] = wp
        net.gen["in_service"] = True
        pp.rundcopp(net)
        ours = sum(u.cost_b * p + u.cost_c * p * p for u, p in zip(case.units, up))
        opf = float(net.res_cost)
        assert opf - 1e-6 <= ours <= opf + pwl_bound + 1e-6
    assert net.res_line.loading_percent.max() <= 100 + 1e-6


def test_case30_ratings_and_line_12_13_override():
    case, net = build_case("ieee30", "mes")
    li = case.line_names.index("line 12-13")
    assert case.rating_mw[li] == 40.0  # [P] B.14 base case (MATPOWER: 65)
    assert set(np.unique(np.delete(case.rating_mw, li))) <= {16.0, 32.0, 65.0, 70.0, 90.0, 130.0}
    assert case.rating_mw[case.line_names.index("line 1-2")] == pytest.approx(130.0)
    swept, net2 = build_case("ieee30", "mes", line_rating_overrides_mw={"line 13-12": 25.0})
    assert swept.rating_mw[li] == 25.0
    assert np.array_equal(np.delete(swept.rating_mw, li), np.delete(case.rating_mw, li))
    # pandapower's own loading uses the same rating
    vn = float(net2.bus.at[11, "vn_kv"])
    assert net2.line.max_i_ka.iloc[li] * vn * math.sqrt(3) == pytest.approx(25.0)
    off, _ = build_case("ieee30", "mes", line_rating_overrides_mw={"line 12-13": math.inf})
    assert np.isinf(off.rating_mw[li])
    with pytest.raises(ScenarioError, match="unknown branch 'line 12-99'"):
        build_case("ieee30", "mes", line_rating_overrides_mw={"line 12-99": 1.0})
    with pytest.raises(ScenarioError, match=r"overrides\.colour"):
        build_case("ieee30", "mes", colour="red")
    with pytest.raises(ScenarioError, match="variant"):
        build_case("ieee30", "trains")


# ----------------------------------------------------------------------------- storage data
def test_b14_storage_data_and_equal_totals(builds):
    expect = {"ieee30": dict(st=(4, 13, 15), sc=(30.0, 60.0), tr=(45.0, 90.0), start=("S1", "S2"),
                             tau=1, ch=20.0, c=90.0, e=360.0, ses=(30.0, 120.0), cen=(10, 90.0)),
              "ieee118": dict(st=(25, 38, 77, 117), sc=(100.0, 200.0), tr=(200.0, 400.0),
                              start=("S1", "S4"), tau=3, ch=200.0, c=400.0, e=1600.0,
                              ses=(100.0, 400.0), cen=(117, 400.0))}
    for name, x in expect.items():
        mes, net = builds[(name, "mes")]
        assert [s.bus + 1 for s in mes.stations] == list(x["st"])  # MATPOWER = pandapower + 1
        assert [s.bus for s in mes.stations] == [pp_bus(net, b) for b in x["st"]]
        for s in mes.stations:
            assert (s.c_max_mw, s.e_max_mwh) == x["sc"]
            assert (s.c0_mw, s.e0_mwh) == (0.5 * x["sc"][0], 0.25 * x["sc"][1])
        assert len(mes.trains) == 2
        for tr, st in zip(mes.trains, x["start"]):
            assert (tr.c_max_mw, tr.e_max_mwh) == x["tr"]
            assert (tr.c0_mw, tr.e0_mwh) == (0.5 * x["tr"][0], 0.25 * x["tr"][1])
            assert tr.start == tr.end == st
        n = len(x["st"])
        assert np.array_equal(mes.travel_h, x["tau"] * (1 - np.eye(n, dtype=int)))
        assert mes.transport_cost_per_h == x["ch"]
        assert (mes.eta, mes.gamma_h) == (0.85, 2.0)
        # B.10 design check: equal total power and energy across the three storage variants
        c_mes = sum(s.c0_mw for s in mes.stations) + sum(t.c0_mw for t in mes.trains)
        e_mes = sum(s.e_max_mwh for s in mes.stations) + sum(t.e_max_mwh for t in mes.trains)
        e0_mes = sum(s.e0_mwh for s in mes.stations) + sum(t.e0_mwh for t in mes.trains)
        assert (c_mes, e_mes) == (x["c"], x["e"])
        for v in ("ses_distributed", "ses_central"):
            ses, _ = builds[(name, v)]
            assert not ses.stations and not ses.trains
            assert sum(f.p_max_mw for f in ses.fixed_storage) == x["c"]
            assert sum(f.e_max_mwh for f in ses.fixed_storage) == x["e"]
            assert sum(f.e0_mwh for f in ses.fixed_storage) == pytest.approx(e0_mes)
            for f in ses.fixed_storage:
                assert f.e0_mwh == 0.25 * f.e_max_mwh
        dist, _ = builds[(name, "ses_distributed")]
        assert [(f.bus + 1, f.p_max_mw, f.e_max_mwh) for f in dist.fixed_storage] == \
            [(b, *x["ses"]) for b in x["st"]]
        cen, _ = builds[(name, "ses_central")]
        assert [(f.bus + 1, f.p_max_mw) for f in cen.fixed_storage] == [x["cen"]]
        none, net0 = builds[(name, "none")]
        assert not none.stations and not none.fixed_storage and len(net0.storage) == 0


def test_net_has_wind_sgen_and_one_storage_row_per_storage_bus():
    for name in CASES:
        for variant in VARIANTS:
            case, net = build_case(name, variant)
            assert len(net.sgen) == 1 and net.sgen.p_mw.iloc[0] == 0
            assert int(net.sgen.bus.iloc[0]) == case.wind[0].bus
            buses = sorted({s.bus for s in case.stations} | {f.bus for f in case.fixed_storage})
            assert sorted(net.storage.bus.astype(int)) == buses, (name, variant)
            assert np.all(net.storage.p_mw == 0)


def test_all_eight_builds_pass_check(builds):
    assert len(builds) == 8
    for (name, variant), (case, _) in builds.items():
        assert case.check() == [], (name, variant)
        assert case.name == f"{name}-{variant}" and case.T == 24


# ----------------------------------------------------------------------------- profiles
def test_load_profile_follows_the_shape_with_the_base_load_at_the_peak(builds):
    shape = np.array(LOAD_SHAPE_MIXED)
    assert shape.max() == 1.0 and np.argmax(shape) == 10  # hour 11
    for name, base in (("ieee30", 189.2), ("ieee118", 4242.0)):
        case, _ = builds[(name, "none")]
        total = case.total_load_mw
        assert total.max() == pytest.approx(base)
        assert np.allclose(total / base, shape)
        # every bus follows the same shape
        peak = case.load_mw[10]
        assert np.allclose(case.load_mw, np.outer(shape, peak))
    assert np.allclose(load_shape("residential", 48)[24:], load_shape("residential", 24))
    with pytest.raises(ScenarioError, match="load_shape"):
        load_shape("solar")
    scaled, _ = build_case("ieee30", "none", load_scale=1.2)
    assert scaled.total_load_mw.max() == pytest.approx(1.2 * 189.2)


def test_wind_capacity_factor_and_night_peak(builds):
    for name, cap, bus in (("ieee30", 100.0, 13), ("ieee118", 634.0, 117)):
        case, net = builds[(name, "mes")]
        (w,) = case.wind
        assert w.bus == pp_bus(net, bus)
        cf = w.p_avail_mw / cap
        assert 0.35 <= cf.mean() <= 0.45
        assert np.argmax(cf) + 1 in (1, 2, 3, 4, 5) and 12 <= np.argmin(cf) + 1 <= 17
        assert cf.min() > 0 and cf.max() <= 1
    assert wind_shape(48).mean() == pytest.approx(0.4)


# ----------------------------------------------------------------------------- initial state
def test_initial_conditions(builds):
    c1, _ = builds[("ieee30", "mes")]
    # B.9 literally: all units on (feasible on case 1), p0 within limits, balanced at t=1
    assert all(u.u0 == 1 for u in c1.units)
    assert all(u.p_min_mw - 1e-6 <= u.p0_mw <= u.p_max_mw + 1e-6 for u in c1.units)
    p0 = sum(u.p0_mw for u in c1.units)
    assert p0 <= c1.total_load_mw[0] + 1e-6
    assert c1.total_load_mw[0] - p0 <= c1.wind[0].p_avail_mw[0] + 1e-6
    # case 2: sum of P_min exceeds the t=1 load, so a priority list is committed
    c2, _ = builds[("ieee118", "mes")]
    assert sum(u.p_min_mw for u in c2.units) > c2.total_load_mw[0]
    on = [u for u in c2.units if u.u0]
    assert 0 < len(on) < len(c2.units)
    assert all(u.p_min_mw - 1e-6 <= u.p0_mw <= u.p_max_mw + 1e-6 for u in on)
    assert all(u.p0_mw == 0 for u in c2.units if not u.u0)
    gap = c2.total_load_mw[0] - sum(u.p0_mw for u in c2.units)
    assert -1e-6 <= gap <= c2.wind[0].p_avail_mw[0] + 1e-6
    merit, _ = build_case("ieee30", "none", initial_commitment="merit")
    assert 0 < sum(u.u0 for u in merit.units) < 6


# ----------------------------------------------------------------------------- evaluate_dispatch
@pytest.mark.parametrize("name", CASES)
def test_evaluate_balanced_dispatch_converges(builds, name):
    case, net = builds[(name, "ses_distributed")]
    t = 18
    up, wp = economic_dispatch(case, t)
    assert sum(up) + sum(wp) == pytest.approx(case.total_load_mw[t], abs=1e-6)
    chk = evaluate_dispatch(net, case, t, up, wp)
    assert chk.converged_dc and chk.converged_ac, chk.message
    for f in ("dc_flow_mw", "dc_loading_pct", "ac_p_from_mw", "ac_loading_pct", "vm_pu"):
        assert np.all(np.isfinite(getattr(chk, f))), f
    assert chk.ptdf_max_diff_mw < 1e-6
    assert abs(chk.dc_imbalance_mw) < 1e-6  # the slack produced what was dispatched
    assert chk.overloaded_dc == ()  # the dispatch respects the DC limits
    assert 0 < chk.ac_losses_mw < 0.1 * case.total_load_mw[t]
    assert chk.slack_p_ac_mw - chk.slack_p_dc_mw == pytest.approx(chk.ac_losses_mw, rel=0.3)
    assert 0.9 < chk.vm_min_pu <= chk.vm_max_pu < 1.1
    # storage rows are really used: moving 10 MW between two of them changes the DC flows
    storage = {case.fixed_storage[0].bus: -10.0, case.fixed_storage[1].bus: 10.0}
    moved = evaluate_dispatch(net, case, t, up, wp, storage)
    assert moved.ptdf_max_diff_mw < 1e-6 and abs(moved.dc_imbalance_mw) < 1e-6
    assert np.max(np.abs(moved.dc_flow_mw - chk.dc_flow_mw)) > 0.1


def test_overloaded_dispatch_is_flagged_on_the_right_branch(builds):
    case, net = builds[("ieee30", "mes")]
    t = 2
    up, wp = economic_dispatch(case, t)
    li = case.line_names.index("line 12-13")
    names = [u.name for u in case.units]
    up = np.array(up)
    up[names.index("G13")] = 40.0
    wind = np.array([min(60.0, case.wind[0].p_avail_mw[t])])
    chk = evaluate_dispatch(net, case, t, up, wind)
    assert chk.converged_dc and chk.converged_ac
    assert "line 12-13" in chk.overloaded_dc and "line 12-13" in chk.overloaded_ac
    assert chk.dc_loading_pct[li] == pytest.approx(100 * (40 + wind[0]) / 40.0, rel=1e-6)
    assert abs(chk.dc_imbalance_mw) > 1  # unbalanced on purpose: the slack took the excess
    # case 2 with an override on the radial wind connection 12-117
    c2, n2 = build_case("ieee118", "mes", line_rating_overrides_mw={"line 12-117": 100.0})
    up2, wp2 = economic_dispatch(c2, 2)  # respects the 100 MW limit (curtails)
    assert wp2[0] < c2.wind[0].p_avail_mw[2] - 1  # curtailed behind the limit
    bad = evaluate_dispatch(n2, c2, 2, up2, [c2.wind[0].p_avail_mw[2]])
    assert bad.overloaded_dc == ("line 12-117",)
    ok = evaluate_dispatch(n2, c2, 2, up2, wp2)
    assert ok.overloaded_dc == ()


def test_evaluate_dispatch_rejects_bad_input_naming_the_field(builds):
    case, net = builds[("ieee30", "mes")]
    up, wp = economic_dispatch(case, 0)
    bad = np.array(up)
    bad[2] = np.nan
    with pytest.raises(ValueError, match=r"unit_p_mw\[2\] \(G13\)"):
        evaluate_dispatch(net, case, 0, bad, wp)
    with pytest.raises(ValueError, match=r"wind_p_mw\[0\]"):
        evaluate_dispatch(net, case, 0, up, [math.nan])
    with pytest.raises(ValueError, match=r"storage_p_mw_by_bus\[3\]"):
        evaluate_dispatch(net, case, 0, up, wp, {3: math.nan})
    with pytest.raises(ValueError, match=r"storage_p_mw_by_bus\[0\]"):
        evaluate_dispatch(net, case, 0, up, wp, {0: 1.0})
    with pytest.raises(ValueError, match="unit_p_mw: expected 6"):
        evaluate_dispatch(net, case, 0, up[:3], wp)
    with pytest.raises(ValueError, match="t: hour row"):
        evaluate_dispatch(net, case, 24, up, wp)


def test_non_convergence_is_data_not_an_exception(builds):
    case, net = builds[("ieee118", "none")]
    up = np.zeros(len(case.units))
    up[[u.name for u in case.units].index("G69")] = 1.0
    # every unit but the slack off and out of service: the slack must carry 2,400 MW alone
    chk = evaluate_dispatch(net, case, 2, up, [0.0], off_units="out_of_service")
    assert chk.converged_dc  # DC always solves
    assert not chk.converged_ac and np.all(np.isnan(chk.vm_pu)) and chk.message


# ----------------------------------------------------------------------------- rail graph
def test_rail_graph(builds):
    for name, tau in (("ieee30", 1), ("ieee118", 3)):
        case, _ = builds[(name, "mes")]
        g = rail_graph(case)
        assert g.kind == "rail" and g.nodes == tuple(s.name for s in case.stations)
        n = len(case.stations)
        assert g.graph.number_of_edges() == n * (n - 1)
        for a in g.nodes:
            for b in g.nodes:
                assert g.travel_min(a, b) == (0 if a == b else 60 * tau)
        assert g.problems(g.nodes) == []
    with pytest.raises(ScenarioError, match="no stations"):
        rail_graph(builds[("ieee30", "ses_central")][0])
    with pytest.raises(ScenarioError, match=r"travel_h\[0\]\[1\] \(A->B\)"):
        rail_graph_from_matrix(["A", "B"], [[0, 0.5], [1, 0]])
    asym = rail_graph_from_matrix(["A", "B", "C"], [[0, 1, 5], [2, 0, 1], [1, 1, 0]])
    assert asym.travel_min("A", "C") == 120 and asym.travel_min("B", "A") == 120


# ----------------------------------------------------------------------------- line screening
def test_lines_that_cannot_bind_never_do(builds):
    """For every screened-out line-hour the largest feasible |flow| (LP: injection box and power
    balance, i.e. a relaxation of any dispatch) stays within the rating."""
    from scipy.optimize import linprog

    for variant in ("mes", "ses_central"):
        case, _ = builds[("ieee30", variant)]
        can = lines_that_can_bind(case)
        assert can.shape == (len(case.line_names), case.T)
        assert 0 < can.any(axis=1).sum() < len(case.line_names)
        assert can[case.line_names.index("line 12-13")].all()  # the wind bottleneck
        # one variable per injector: (bus position, lower, upper) per hour
        rows = [(case.bus_pos(u.bus), 0.0, u.p_max_mw) for u in case.units]
        rows += [(case.bus_pos(s.bus), -s.c_max_mw, s.c_max_mw) for s in case.stations]
        rows += [(case.bus_pos(f.bus), -f.p_max_mw, f.p_max_mw) for f in case.fixed_storage]
        for t in (2, 10, 19):
            hour = rows + [(case.bus_pos(w.bus), 0.0, w.p_avail_mw[t]) for w in case.wind]
            pos = [r[0] for r in hour]
            bounds = [(r[1], r[2]) for r in hour]
            load = case.load_mw[t]
            for li in np.flatnonzero(~can[:, t] & np.isfinite(case.rating_mw)):
                coef = case.ptdf[li, pos]
                base = -case.ptdf[li] @ load
                for sign in (1.0, -1.0):
                    res = linprog(-sign * coef, A_eq=np.ones((1, len(hour))), b_eq=[load.sum()],
                                  bounds=bounds, method="highs")
                    assert res.status == 0
                    assert sign * (coef @ res.x + base) <= case.rating_mw[li] + 1e-6
        if variant == "mes":
            lp = lines_that_can_bind(case, method="lp")
            assert not np.any(lp & ~can) and lp.sum() < can.sum()
            assert lp[case.line_names.index("line 12-13")].all()
    c2, _ = builds[("ieee118", "mes")]
    assert not lines_that_can_bind(c2).any()  # unlimited lines never bind
