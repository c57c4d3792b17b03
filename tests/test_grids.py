"""Tests of grids/: profiles, feeders, pandapower adapter, local DN operator and sites.

The three-DN default case is MODELS.md A.11 on the pandapower feeders case33bw, CIGRE MV and the
simple MV open ring.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pandapower as pp
import pytest

import grids.operator as operator_mod
from grids.adapter import PF_STATUSES, PandapowerAdapter, PowerFlowOptions
from grids.feeders import FEEDERS, make_feeder
from grids.operator import OPERATOR_STATUSES, LocalOperator
from grids.profiles import SHAPES, Profile, realise
from grids.site import PVUnit, SiteSpec, build_site, check_site_spec
from sim.errors import ScenarioError
from sim.flexibility import c_norm_mw, dr_flex, generator_flex, storage_flex
from sim.types import DemandResponseSpec, GeneratorSpec, SiteResources, SiteStepResult, StorageSpec

TOL = 1e-6


# ------------------------------------------------------------------------------------------------
# A.11 default case
# ------------------------------------------------------------------------------------------------


def _spec(name, feeder, shape, peak, pv_cap, pv_units, gens, dr, es, mess_bus):
    """gens: (bus, Pmax, Pmin, ramp); dr: (bus, DRmax, ramp, E); es: (bus, P, Emin, Emax, Einit)."""
    return SiteSpec(
        name=name, node=name.upper(), feeder=feeder, peak_load_mw=peak,
        load_profile=Profile(SHAPES[shape], 60), pv_cap_mw=pv_cap,
        pv_profile=Profile(SHAPES["solar"], 60),
        pv_units=tuple(PVUnit(b, s) for b, s in pv_units), mess_bus=mess_bus,
        resources=SiteResources(
            generators=tuple(GeneratorSpec(f"g{i + 1}", b, pmax, pmin, r, r)
                             for i, (b, pmax, pmin, r) in enumerate(gens)),
            dr=DemandResponseSpec(*dr),
            storage=StorageSpec(es[0], es[1], es[1], es[2], es[3], es[4], eta=0.95)))


def a11_specs() -> dict[str, SiteSpec]:
    return {
        "dn1": _spec("dn1", "case33bw", "industrial", 3.0, 0.6,
                     [(13, 0.4), (24, 0.3), (29, 0.3)],
                     [(17, 2.0, 0.4, 0.5), (32, 1.2, 0.2, 0.6)],
                     (7, 0.30, 0.15, 1.2), (30, 0.30, 0.06, 0.54, 0.30), 15),
        "dn2": _spec("dn2", "cigre_mv", "residential", 2.0, 0.8,
                     [(4, 1 / 3), (8, 1 / 3), (12, 1 / 3)],
                     [(11, 1.6, 0.2, 0.4), (14, 0.8, 0.05, 0.4)],
                     (5, 0.20, 0.10, 0.8), (6, 0.20, 0.04, 0.36, 0.20), 9),
        "dn3": _spec("dn3", "mv_open_ring", "commercial", 1.5, 0.8,
                     [(3, 0.5), (5, 0.5)],
                     [(4, 1.0, 0.2, 0.3), (6, 0.4, 0.1, 0.3)],
                     (2, 0.15, 0.10, 0.6), (5, 0.15, 0.03, 0.27, 0.15), 6),
    }


SPECS = a11_specs()
DN = sorted(SPECS)


@pytest.fixture(scope="module")
def day_runs():
    """Each A.11 DN stepped through one day (60-min steps) with a small MESS schedule."""
    out = {}
    for name, spec in SPECS.items():
        site = build_site(spec, 60, 1440)
        # MESS: charge at night, discharge in the evening, idle otherwise (|p| <= 0.25 MW)
        mess = np.zeros(24)
        mess[1:5] = 0.25
        mess[17:21] = -0.25
        results, es_e = [], []
        for k in range(24):
            results.append(site.step(60 * k, 60, float(mess[k])))
            es_e.append(site.es_e_mwh)
        out[name] = (site, mess, results, np.array(es_e))
    return out


# ------------------------------------------------------------------------------------------------
# profiles
# ------------------------------------------------------------------------------------------------


def test_profile_per_step_60_and_15_min():
    p = Profile(SHAPES["industrial"], 60)
    h = p.per_step(60, 1440)
    assert h.shape == (24,)
    np.testing.assert_allclose(h, SHAPES["industrial"])
    q = p.per_step(15, 1440)
    assert q.shape == (96,)
    np.testing.assert_allclose(q, np.repeat(SHAPES["industrial"], 4))
    # 120-min steps average two hours; a two-day horizon repeats the day
    two = p.per_step(120, 2880)
    assert two.shape == (24,)
    np.testing.assert_allclose(two[:12], np.mean(np.reshape(SHAPES["industrial"], (12, 2)), 1))
    np.testing.assert_allclose(two[12:], two[:12])
    # a step that straddles profile intervals: [0, 90) and [90, 180) of (1, 2, 3)
    np.testing.assert_allclose(Profile((1.0, 2.0, 3.0), 60).per_step(90, 180), [4 / 3, 8 / 3])


def test_profile_bad_resolution_raises_scenario_error():
    with pytest.raises(ScenarioError, match="neither a whole number of days"):
        Profile((1.0, 2.0, 3.0), 60).per_step(60, 600)
    with pytest.raises(ScenarioError, match="not a whole number of 7-min steps"):
        Profile(SHAPES["solar"], 60).per_step(7, 1440)
    with pytest.raises(ScenarioError, match="resolution_min"):
        Profile(SHAPES["solar"], 0).per_step(60, 1440)


def _forecasts():
    load = np.stack([Profile(SHAPES[s], 60).per_step(60, 1440) * pk for s, pk in
                     (("industrial", 3.0), ("residential", 2.0), ("commercial", 1.5))])
    cap = np.array([0.6, 0.8, 0.8])
    pv = Profile(SHAPES["solar"], 60).per_step(60, 1440)[None, :] * cap[:, None]
    return load, pv, cap


def test_realise_reproducible_shapes_and_pv_bounds():
    load, pv, cap = _forecasts()
    l1, p1 = realise(load, pv, cap, np.random.default_rng(42))
    l2, p2 = realise(load, pv, cap, np.random.default_rng(42))
    assert l1.shape == load.shape and p1.shape == pv.shape
    np.testing.assert_array_equal(l1, l2)
    np.testing.assert_array_equal(p1, p2)
    l3, _ = realise(load, pv, cap, np.random.default_rng(43))
    assert not np.allclose(l1, l3)

    ls, ps = realise(load, pv, cap, np.random.default_rng(7), n_scenarios=500)
    assert ls.shape == (500, 3, 24) and ps.shape == (500, 3, 24)
    assert ps.min() >= 0.0
    assert np.all(ps <= cap[None, :, None] + 1e-12)
    night = pv == 0.0
    assert np.all(ps[:, night] == 0.0)
    assert np.any(ps[:, ~night] > 0.0)


def test_realise_statistics_match_a10_1():
    load, pv, cap = _forecasts()
    rho = 0.8
    ls, _ = realise(load, pv, cap, np.random.default_rng(1), n_scenarios=3000)
    xi = (ls / load[None] - 1.0) / 0.05
    # unit variance at every step (stationary start)
    assert abs(xi.std(axis=0).mean() - 1.0) < 0.03
    # lag-1 autocorrelation rho
    lag1 = np.mean(xi[..., 1:] * xi[..., :-1]) / np.mean(xi ** 2)
    assert abs(lag1 - rho) < 0.02
    # cross-site correlation of the innovations is 0.5
    e = (xi[..., 1:] - rho * xi[..., :-1]) / np.sqrt(1 - rho ** 2)
    flat = e.transpose(1, 0, 2).reshape(3, -1)
    c = np.corrcoef(flat)
    for i, j in ((0, 1), (0, 2), (1, 2)):
        assert abs(c[i, j] - 0.5) < 0.03


# ------------------------------------------------------------------------------------------------
# feeders, c_norm, spec checks
# ------------------------------------------------------------------------------------------------


def test_make_feeder_unknown_lists_valid_names():
    with pytest.raises(ScenarioError) as err:
        make_feeder("ieee_13")
    for name in FEEDERS:
        assert name in str(err.value)
    assert len(make_feeder("mv_open_ring").bus) == 7


def test_c_norm_of_a11_dns():
    got = [c_norm_mw(SPECS[n].resources) for n in DN]
    np.testing.assert_allclose(got, [3.5, 2.75, 1.55])
    site = build_site(SPECS["dn3"], 60, 1440)
    assert site.info.c_norm_mw == pytest.approx(1.55)


def test_a11_specs_are_valid():
    for name, spec in SPECS.items():
        assert check_site_spec(spec, f"grids.{name}") == []


def test_check_site_spec_lists_every_problem_with_paths():
    spec = SPECS["dn2"]
    gens = list(spec.resources.generators)
    gens[0] = dataclasses.replace(gens[0], bus=99)
    bad = dataclasses.replace(
        spec, mess_bus=77,
        resources=dataclasses.replace(spec.resources, generators=tuple(gens)))
    assert check_site_spec(bad, "grids.dn2") == [
        "grids.dn2.mess_bus: bus 77 not in net (15 buses)",
        "grids.dn2.generators[0].bus: bus 99 not in net (15 buses)",
    ]

    spec = SPECS["dn1"]
    gens = list(spec.resources.generators)
    gens[1] = dataclasses.replace(gens[1], p_min_mw=1.5, p_max_mw=1.2)
    st = dataclasses.replace(spec.resources.storage, e_init_mwh=0.6)
    worse = dataclasses.replace(
        spec, peak_load_mw=0.0,
        pv_units=(PVUnit(13, 0.4), PVUnit(24, 0.3), PVUnit(40, 0.2)),
        resources=dataclasses.replace(spec.resources, generators=tuple(gens), storage=st))
    problems = check_site_spec(worse, "grids.dn1")
    assert "grids.dn1.peak_load_mw: must be > 0, got 0.0" in problems
    assert "grids.dn1.pv[2].bus: bus 40 not in net (33 buses)" in problems
    assert "grids.dn1.pv: shares sum to 0.9, expected 1" in problems
    assert "grids.dn1.generators[1]: p_min_mw 1.5 > p_max_mw 1.2" in problems
    assert any(p.startswith("grids.dn1.storage: need e_min_mwh <= e_init_mwh") for p in problems)
    assert len(problems) == 5

    # the HV side of the substation transformer and unknown feeders
    hv = dataclasses.replace(SPECS["dn3"], mess_bus=0)
    assert check_site_spec(hv, "grids.dn3") == [
        "grids.dn3.mess_bus: bus 0 is the HV side of substation transformer 0"]
    unknown = dataclasses.replace(SPECS["dn3"], feeder="nope")
    (msg,) = check_site_spec(unknown, "x")
    assert msg.startswith("x.feeder: unknown feeder 'nope'")

    with pytest.raises(ScenarioError) as err:
        build_site(bad, 60, 1440)
    assert len(err.value.problems) == 2


# ------------------------------------------------------------------------------------------------
# adapter against plain pandapower
# ------------------------------------------------------------------------------------------------


def _reference_net(spec: SiteSpec, res: SiteStepResult) -> pp.pandapowerNet:
    """The same feeder and injections, built independently of the adapter."""
    net = make_feeder(spec.feeder)
    loads = net.load[net.load.in_service]
    p = loads.p_mw * loads.scaling
    q = loads.q_mvar * loads.scaling
    net.load.loc[loads.index, "p_mw"] = p / p.sum() * res.load_mw
    net.load.loc[loads.index, "q_mvar"] = q / p.sum() * res.load_mw
    net.load.loc[loads.index, "scaling"] = 1.0
    d = res.dispatch_mw
    for u in spec.pv_units:
        pp.create_sgen(net, u.bus, p_mw=res.pv_mw * u.share)
    r = spec.resources
    for g in r.generators:
        pp.create_sgen(net, g.bus, p_mw=d[g.name])
    pp.create_sgen(net, r.dr.bus, p_mw=d["dr"])
    pp.create_storage(net, r.storage.bus, p_mw=d["es_ch"] - d["es_dis"], max_e_mwh=1.0)
    pp.create_storage(net, spec.mess_bus, p_mw=res.mess_p_mw, max_e_mwh=1.0)
    return net


@pytest.mark.parametrize("name", DN)
def test_adapter_matches_plain_pandapower(name, day_runs):
    spec = SPECS[name]
    _, _, results, _ = day_runs[name]
    for k in (0, 3, 8, 12, 18, 19):
        res = results[k]
        assert res.converged and res.status == "ok"
        ref = _reference_net(spec, res)
        pp.runpp(ref, numba=False, tolerance_mva=1e-8)
        np.testing.assert_allclose(res.bus_vm_pu, ref.res_bus.vm_pu.to_numpy(), atol=1e-6,
                                   rtol=0)
        np.testing.assert_allclose(res.line_loading_pct, ref.res_line.loading_percent.to_numpy(),
                                   atol=1e-6, rtol=0)
        assert res.slack_p_mw == pytest.approx(ref.res_ext_grid.p_mw.sum(), abs=1e-6)
        losses = ref.res_line.pl_mw.sum() + (ref.res_trafo.pl_mw.sum() if len(ref.trafo) else 0)
        assert res.losses_mw == pytest.approx(losses, abs=1e-6)
        assert res.vm_min_pu == pytest.approx(np.nanmin(ref.res_bus.vm_pu), abs=1e-6)
        assert res.vm_max_pu == pytest.approx(np.nanmax(ref.res_bus.vm_pu), abs=1e-6)


@pytest.mark.parametrize("name", DN)
def test_adapter_warm_start_equals_cold_copy(name):
    site = build_site(SPECS[name], 60, 1440)
    for k in (5, 6, 13):
        site.step(60 * k, 60, 0.2)
        cold = copy.deepcopy(site.adapter.net)
        pp.runpp(cold, numba=False, init="dc", tolerance_mva=1e-8)
        np.testing.assert_allclose(site.last_power_flow.vm_pu, cold.res_bus.vm_pu.to_numpy(),
                                   atol=1e-6, rtol=0)
        np.testing.assert_allclose(site.last_power_flow.line_loading_pct,
                                   cold.res_line.loading_percent.to_numpy(), atol=1e-6, rtol=0)


def _dn1_adapter() -> PandapowerAdapter:
    return PandapowerAdapter(make_feeder("case33bw"), PowerFlowOptions(),
                             pv_buses=[13, 24, 29], gen_buses={"g1": 17, "g2": 32},
                             dr_bus=7, es_bus=30, mess_bus=15)


def test_adapter_nan_input_is_invalid_not_an_exception():
    a = _dn1_adapter()
    a.apply(2.0, [0.1, 0.1, 0.1], [1.0, 0.7], 0.0, 0.0, 0.0)
    assert a.solve().status == "ok"
    a.apply(2.0, [0.1, np.nan, 0.1], [1.0, 0.7], 0.0, 0.0, 0.0)
    r = a.solve()
    assert (r.converged, r.status) == (False, "invalid_input")
    assert "pv_mw_per_sgen" in r.message
    assert r.vm_pu.shape == (33,) and np.isnan(r.vm_pu).all()
    a.apply(2.0, [0.1, 0.1, 0.1], [1.0, 0.7], 0.0, 0.0, np.inf)
    assert a.solve().status == "invalid_input"
    # the net was left untouched: a valid step after the invalid one works
    a.apply(2.0, [0.1, 0.1, 0.1], [1.0, 0.7], 0.0, 0.0, 0.0)
    assert a.solve().status == "ok"

    site = build_site(SPECS["dn2"], 60, 1440)
    e0 = site.es_e_mwh
    res = site.step(0, 60, float("nan"))
    assert (res.converged, res.status) == (False, "invalid_input")
    assert site.es_e_mwh == e0 and site.operator.prev_g_mw is None


def test_adapter_isolated_bus_and_non_convergence():
    a = _dn1_adapter()
    a.apply(2.0, [0.1, 0.1, 0.1], [1.0, 0.7], 0.1, 0.0, 0.0)
    assert a.solve().converged
    a.net.line.loc[31, "in_service"] = False  # line 31-32: bus 32 (with g2) is cut off
    r = a.solve()
    assert (r.converged, r.status) == (False, "isolated_buses")
    assert "[32]" in r.message
    # the rest of the feeder still has its results
    assert np.isnan(r.vm_pu[32]) and np.isfinite(r.vm_pu[:32]).all()
    assert 0.9 < r.vm_min_pu <= r.vm_max_pu < 1.1
    a.net.line.loc[31, "in_service"] = True
    assert a.solve().status == "ok"
    # no reference bus at all: pandapower raises a UserWarning, reported as data
    a.net.ext_grid.loc[0, "in_service"] = False
    r = a.solve()
    assert (r.converged, r.status) == (False, "isolated_buses")
    assert "reference bus" in r.message
    a.net.ext_grid.loc[0, "in_service"] = True
    assert a.solve().status == "ok"
    # far too much load: Newton-Raphson diverges, reported, not raised
    a.apply(500.0, [0.0, 0.0, 0.0], [0.4, 0.2], 0.0, 0.0, 0.0)
    r = a.solve()
    assert (r.converged, r.status) == (False, "not_converged")
    a.apply(2.0, [0.1, 0.1, 0.1], [1.0, 0.7], 0.1, 0.0, 0.0)
    assert a.solve().status == "ok"
    assert set(PF_STATUSES) == {"ok", "not_converged", "isolated_buses", "invalid_input"}


def test_adapter_retries_a_failed_warm_start(monkeypatch):
    a = _dn1_adapter()
    a.apply(2.0, [0.1, 0.1, 0.1], [1.0, 0.7], 0.1, 0.0, 0.0)
    assert a.solve().message == ""
    inits = []
    real = a._runpp

    def flaky(init):
        inits.append(init)
        if init == "results":
            raise pp.LoadflowNotConverged("injected failure")
        real(init)

    monkeypatch.setattr(a, "_runpp", flaky)
    a.apply(2.1, [0.1, 0.1, 0.1], [1.0, 0.7], 0.1, 0.0, 0.0)
    r = a.solve()
    assert inits == ["results", "dc"]
    assert r.status == "ok" and r.message == (
        "init=results: not converged (injected failure); init=dc: converged")


def test_adapter_topology_change_disables_warm_start():
    # From the previous point, a warm start on the re-routed open ring lands on the spurious
    # low-voltage solution; the adapter must solve it cold instead.
    a = PandapowerAdapter(make_feeder("mv_open_ring"), pv_buses=[3, 5], gen_buses={"g1": 4},
                          dr_bus=2, es_bus=5, mess_bus=6)
    a.apply(1.0, [0.1, 0.1], [0.5])
    assert a.solve().status == "ok"
    a.net.bus.loc[6, "in_service"] = False  # bus 5 is then fed by nothing (line 4-5 is open)
    r = a.solve()
    assert r.status == "isolated_buses" and "[5]" in r.message
    assert r.vm_min_pu > 0.95


# ------------------------------------------------------------------------------------------------
# local operator over the A.11 day
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DN)
def test_operator_day_invariants(name, day_runs):
    spec = SPECS[name]
    site, mess, results, es_e = day_runs[name]
    r = spec.resources
    gnames = [g.name for g in r.generators]
    g = np.array([[res.dispatch_mw[n] for n in gnames] for res in results])
    dr = np.array([res.dispatch_mw["dr"] for res in results])
    ch = np.array([res.dispatch_mw["es_ch"] for res in results])
    dis = np.array([res.dispatch_mw["es_dis"] for res in results])
    pv = np.array([res.dispatch_mw["pv"] for res in results])
    load = np.array([res.load_mw for res in results])
    resid = np.array([res.residual_mw for res in results])

    np.testing.assert_allclose(load, site.info.load_forecast_mw)
    np.testing.assert_allclose(pv, site.info.pv_forecast_mw)
    # balance (13) and no slack needed on A.11 data
    np.testing.assert_allclose(g.sum(1) + pv + dr + dis - ch + resid, load + mess, atol=TOL)
    np.testing.assert_allclose(resid, 0.0, atol=TOL)
    assert all(res.converged and res.status == "ok" for res in results)
    assert all(res.message == "" for res in results)  # operator optimal every step
    # the substation slack carries residual + losses
    for res in results:
        assert res.slack_p_mw == pytest.approx(res.residual_mw + res.losses_mw, abs=1e-6)
    # generator limits and ramps (15)
    pmin = np.array([x.p_min_mw for x in r.generators])
    pmax = np.array([x.p_max_mw for x in r.generators])
    ramp = np.array([x.ramp_up_mw_per_h for x in r.generators])
    assert np.all(g >= pmin - TOL) and np.all(g <= pmax + TOL)
    assert np.all(np.abs(np.diff(g, axis=0)) <= ramp + TOL)
    # DR: bounds, ramp from 0, daily energy cap
    assert np.all(dr >= -TOL) and np.all(dr <= r.dr.p_max_mw + TOL)
    assert np.all(np.abs(np.diff(np.r_[0.0, dr])) <= r.dr.ramp_mw_per_h + TOL)
    assert dr.sum() * 1.0 <= r.dr.e_max_mwh + TOL
    # ES: never both, within power and energy window, energy bookkeeping
    st = r.storage
    assert np.all(np.minimum(ch, dis) == 0.0)
    assert np.all(ch <= st.p_ch_max_mw + TOL) and np.all(dis <= st.p_dis_max_mw + TOL)
    assert np.all(es_e >= st.e_min_mwh - TOL) and np.all(es_e <= st.e_max_mwh + TOL)
    e_prev = np.r_[st.e_init_mwh, es_e[:-1]]
    np.testing.assert_allclose(es_e, e_prev + st.eta * ch - dis / st.eta, atol=1e-9)
    # reported flexibility = explicit min() of sim.flexibility
    for k, res in enumerate(results):
        up = dn = 0.0
        for j, x in enumerate(r.generators):
            u, d = generator_flex(g[k, j], x.p_min_mw, x.p_max_mw, x.ramp_up_mw_per_h,
                                  x.ramp_down_mw_per_h, 1.0)
            up, dn = up + u, dn + d
        u, d = dr_flex(dr[k], r.dr.p_max_mw, r.dr.ramp_mw_per_h, 1.0)
        up, dn = up + u, dn + d
        u, d = storage_flex(dis[k] - ch[k], es_e[k], st, 1.0)
        up, dn = up + u, dn + d
        assert res.flex_up_mw == pytest.approx(float(up), abs=1e-12)
        assert res.flex_dn_mw == pytest.approx(float(dn), abs=1e-12)
        assert 0.0 <= res.flex_up_mw + res.flex_dn_mw <= site.info.c_norm_mw + TOL


def test_operator_large_mess_charge_leaves_exact_residual():
    spec = SPECS["dn1"]
    site = build_site(spec, 60, 1440)
    k = int(np.argmin(site.info.load_forecast_mw))  # min-load hour (load 1.71 MW, no PV)
    load = site.info.load_forecast_mw[k]
    r = spec.resources
    st = r.storage
    # first step after reset: no generator ramp, DR ramps from 0, ES limited by its energy
    max_supply = (sum(g.p_max_mw for g in r.generators) + min(r.dr.p_max_mw, r.dr.ramp_mw_per_h)
                  + min(st.p_dis_max_mw, (st.e_init_mwh - st.e_min_mwh) * st.eta))
    res = site.step(60 * k, 60, 3.0)
    assert res.residual_mw == pytest.approx(load + 3.0 - max_supply, abs=TOL)
    assert res.residual_mw > 1.0
    assert res.dispatch_mw["es_ch"] == 0.0
    assert res.converged
    assert res.slack_p_mw == pytest.approx(res.residual_mw + res.losses_mw, abs=1e-6)

    site.reset()
    min_supply = (sum(g.p_min_mw for g in r.generators)
                  - min(st.p_ch_max_mw, (st.e_max_mwh - st.e_init_mwh) / st.eta))
    res = site.step(60 * k, 60, -3.0)
    assert res.residual_mw == pytest.approx(load - 3.0 - min_supply, abs=TOL)
    assert res.residual_mw < -1.0
    assert res.dispatch_mw["dr"] == 0.0


def test_site_reset_reproduces_the_day():
    site = build_site(SPECS["dn3"], 60, 1440)
    first = [site.step(60 * k, 60, 0.1) for k in range(6)]
    site.reset()
    again = [site.step(60 * k, 60, 0.1) for k in range(6)]
    for a, b in zip(first, again):
        assert dict(a.dispatch_mw) == dict(b.dispatch_mw)
        np.testing.assert_allclose(a.bus_vm_pu, b.bus_vm_pu, atol=1e-9)
    assert site.observe(90).load_mw == pytest.approx(site.info.load_forecast_mw[1])
    with pytest.raises(IndexError):
        site.observe(1440)


def _run_operator(op, r, load, pv, mess, dt_min):
    """Step ``op`` and check balance, ramps, DR cap per day and ES mode at every step."""
    dt_h = dt_min / 60
    g_prev, dr_prev = None, 0.0
    dr_day = np.zeros(int(np.ceil(load.size * dt_min / 1440)))
    out = []
    for k in range(load.size):
        res = op.dispatch(dt_min * k, dt_min, load[k], pv[k], mess[k])
        assert res.status == "optimal"
        d = res.dispatch_mw
        g = np.array([d[x.name] for x in r.generators])
        supply = g.sum() + pv[k] + d["dr"] + d["es_dis"] - d["es_ch"]
        assert supply + res.residual_mw == pytest.approx(load[k] + mess[k], abs=TOL)
        if g_prev is not None:
            ramp = np.array([x.ramp_up_mw_per_h for x in r.generators]) * dt_h
            assert np.all(np.abs(g - g_prev) <= ramp + TOL)
        assert abs(d["dr"] - dr_prev) <= r.dr.ramp_mw_per_h * dt_h + TOL
        assert min(d["es_ch"], d["es_dis"]) == 0.0
        g_prev, dr_prev = g, d["dr"]
        dr_day[(dt_min * k) // 1440] += d["dr"] * dt_h
        out.append(res)
    assert np.all(dr_day <= r.dr.e_max_mwh + TOL)
    return out


def test_operator_15_min_steps_respect_ramps_and_dr_cap():
    spec = SPECS["dn1"]
    r = spec.resources
    load = spec.load_profile.per_step(15, 2880) * spec.peak_load_mw
    pv = spec.pv_profile.per_step(15, 2880) * spec.pv_cap_mw
    mess = np.zeros(load.size)
    mess[96 + 4:96 + 20] = 0.1  # day 2, 01:00-05:00
    out = _run_operator(LocalOperator(r), r, load, pv, mess, 15)
    assert max(abs(res.residual_mw) for res in out) < TOL


def test_operator_dr_energy_reserve_avoids_ramp_traps():
    # A tight DR budget and a long MESS charge push DR up; the budget must still allow the
    # ramp back down (no step may need DR above what is left of the day's energy).
    spec = SPECS["dn1"]
    r = dataclasses.replace(spec.resources,
                            dr=dataclasses.replace(spec.resources.dr, e_max_mwh=0.2))
    load = spec.load_profile.per_step(15, 1440) * spec.peak_load_mw
    pv = spec.pv_profile.per_step(15, 1440) * spec.pv_cap_mw
    mess = np.zeros(load.size)
    mess[8:40] = 1.5
    out = _run_operator(LocalOperator(r), r, load, pv, mess, 15)
    dr = np.array([res.dispatch_mw["dr"] for res in out])
    assert dr.max() > 0.0375 + 1e-9  # DR was pushed above one ramp step ...
    assert dr.sum() * 0.25 <= 0.2 + TOL  # ... and still met its cap and ramps (checked above)


def test_operator_falls_back_to_merit_order(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("solver exploded")

    monkeypatch.setattr(operator_mod, "solve_arrays", broken)
    spec = SPECS["dn2"]
    op = LocalOperator(spec.resources, method="lp")
    load = spec.load_profile.per_step(60, 1440) * spec.peak_load_mw
    pv = spec.pv_profile.per_step(60, 1440) * spec.pv_cap_mw
    for k in range(24):
        res = op.dispatch(60 * k, 60, load[k], pv[k], 0.0)
        assert res.status == "fallback" and "solver exploded" in res.message
        d = res.dispatch_mw
        supply = sum(d[g.name] for g in spec.resources.generators) + d["dr"] + d["es_dis"] \
            - d["es_ch"] + pv[k]
        assert supply + res.residual_mw == pytest.approx(load[k], abs=TOL)
        assert min(d["es_ch"], d["es_dis"]) == 0.0
    assert set(OPERATOR_STATUSES) >= {"optimal", "fallback", "invalid_input"}


@pytest.mark.parametrize("enumerate_max", [operator_mod.ENUMERATE_MAX, 0])
def test_operator_solve_equals_scipy_milp_on_its_own_models(monkeypatch, enumerate_max):
    """The operator's models of a day on each A.11 DN (15-min steps, a random MESS power),
    solved by :func:`grids.operator.solve_arrays` (one LP per storage mode, or HiGHS's MILP when
    enumeration is off) and by ``scipy.optimize.milp``: the same optimal objective, and the
    returned point satisfies every bound and row (HiGHS's feasibility tolerance)."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    monkeypatch.setattr(operator_mod, "ENUMERATE_MAX", enumerate_max)
    models = []
    orig = operator_mod.solve_arrays

    def capture(*args):
        models.append(args)
        return orig(*args)

    monkeypatch.setattr(operator_mod, "solve_arrays", capture)
    rng = np.random.default_rng(5)
    for spec in SPECS.values():
        op = LocalOperator(spec.resources, method="lp")
        load = spec.load_profile.per_step(15, 1440) * spec.peak_load_mw
        pv = spec.pv_profile.per_step(15, 1440) * spec.pv_cap_mw
        for k in range(0, 96, 4):
            op.dispatch(15 * k, 15, load[k], pv[k], float(rng.uniform(-0.6, 0.6)))
    assert len(models) == 3 * 24
    assert any(m[6].any() for m in models)  # storage mode binaries are among them
    for c, a, lo, hi, lb, ub, integ, limit in models:
        x, status, _ = orig(c, a, lo, hi, lb, ub, integ, limit)
        ref = milp(c, constraints=LinearConstraint(a, lo, hi), integrality=integ,
                   bounds=Bounds(lb, ub), options={"mip_rel_gap": 1e-12})
        assert status == "optimal" and ref.status == 0
        # 1e-6 is the tie-breakers' price of 1 MW, 3e-6 MW of flexibility: solver tolerances
        assert c @ x == pytest.approx(ref.fun, abs=1e-6)
        ax = a @ x
        assert np.all(ax >= lo - 1e-7) and np.all(ax <= hi + 1e-7)
        assert np.all(x >= lb - 1e-9) and np.all(x <= ub + 1e-9)
        assert np.all(np.abs(x[integ > 0] - np.round(x[integ > 0])) < 1e-9)
