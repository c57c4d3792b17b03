"""The DN step without pandas and without a per-run copy of the feeder.

A site prepares its feeder once per process (the driven elements created, one base-load solve
for the direct path's snapshot) and makes a net of its own only when a step goes through the
adapter or someone reads ``site.adapter``. These tests check that the direct path agrees with
the adapter's tables (the reference path) step by step, that a topology change made through
``site.adapter`` is seen at the step it is made on both paths (whenever the net was taken), and
that runs in one process stay independent.
"""

from __future__ import annotations

import numpy as np
import pandapower as pp
import pandas as pd
import pytest

from grids.adapter import PandapowerAdapter
from grids.fastpf import element_values
from grids.feeders import feeder_template, make_feeder
from grids.site import build_site
from tests.test_grids import DN, SPECS

STEP_MIN, HORIZON_MIN = 60, 1440
#: MESS power per step (MW): charging and discharging at every site.
MESS_MW = (0.3, -0.2, 0.0, 0.25, -0.3, 0.1, 0.0, -0.1) * 3


def _no_pandas(*args, **kwargs):
    raise AssertionError("pandas or runpp used on the direct path")


def _sites(name: str):
    fast = build_site(SPECS[name], STEP_MIN, HORIZON_MIN)
    ref = build_site(SPECS[name], STEP_MIN, HORIZON_MIN)
    ref.direct_pf = False
    return fast, ref


def _step(site, k: int):
    return site.step(STEP_MIN * k, STEP_MIN, MESS_MW[k])


def _assert_same(a, b, tol: float = 1e-8) -> None:
    assert (a.status, a.converged) == (b.status, b.converged)
    np.testing.assert_allclose(a.bus_vm_pu, b.bus_vm_pu, atol=tol, rtol=0)
    np.testing.assert_allclose(a.line_loading_pct, b.line_loading_pct, atol=1e-6, rtol=1e-8)
    for f in ("losses_mw", "slack_p_mw", "vm_min_pu", "vm_max_pu", "max_line_loading_pct",
              "residual_mw"):
        assert getattr(a, f) == pytest.approx(getattr(b, f), rel=1e-8, abs=1e-9), f
    assert dict(a.dispatch_mw) == dict(b.dispatch_mw)


@pytest.mark.parametrize("name", DN)
def test_a_direct_run_equals_the_reference_and_copies_no_net(name, monkeypatch):
    build_site(SPECS[name], STEP_MIN, HORIZON_MIN).step(0, STEP_MIN, 0.0)  # prepared
    copies = []
    real = PandapowerAdapter.copy

    def counted(self):
        copies.append(self)
        return real(self)

    monkeypatch.setattr(PandapowerAdapter, "copy", counted)
    fast, ref = _sites(name)
    with monkeypatch.context() as m:  # no pandas table is read or written, no runpp
        for cls in (pd.DataFrame, pd.Series):
            for attr in ("__getitem__", "__setitem__", "__getattr__"):
                m.setattr(cls, attr, _no_pandas)
        m.setattr(pp, "runpp", _no_pandas)
        out = [_step(fast, k) for k in range(24)]
    assert copies == []  # the whole day on the prepared snapshot, no net of its own
    assert fast.n_direct == 24
    for k in range(24):
        _assert_same(out[k], _step(ref, k))
    assert len(copies) == 1 and ref.n_direct == 0  # the reference made its net at step 0


@pytest.mark.parametrize("early", [False, True], ids=["net-taken-at-change", "net-taken-early"])
@pytest.mark.parametrize("change", ["cut", "tie"])
def test_a_topology_change_is_seen_at_its_step_on_both_paths(change, early):
    """dn1 (case33bw): at step 3 cut line 31 (bus 32 is isolated) or close tie line 33 (a
    mesh: every voltage moves); undone at step 5. The direct path sees the change at step 3
    exactly like the reference path, also when the net was taken before the run started."""
    fast, ref = _sites("dn1")
    control = build_site(SPECS["dn1"], STEP_MIN, HORIZON_MIN)
    held = [fast.adapter.net, ref.adapter.net] if early else None
    line, value = (31, False) if change == "cut" else (33, True)
    for k in range(8):
        if k in (3, 5):
            nets = held or [fast.adapter.net, ref.adapter.net]
            for net in nets:
                net.line.loc[line, "in_service"] = value if k == 3 else not value
        a, b, c = _step(fast, k), _step(ref, k), _step(control, k)
        _assert_same(a, b)
        if k == 2:  # the direct path carried the steps before the change (after the first
            # through the adapter when a net of its own was made before the run)
            assert fast.n_direct == (2 if early else 3)
        if k in (3, 4) and change == "cut":
            assert a.status == "isolated_buses" and np.isnan(a.bus_vm_pu[32])
        elif k in (3, 4):
            assert a.status == "ok"
            assert np.nanmax(np.abs(a.bus_vm_pu - c.bus_vm_pu)) > 1e-4  # the mesh is solved
        else:
            assert a.status == "ok"
            _assert_same(a, c, tol=1e-6)
    assert control.n_direct == 8


def test_runs_in_one_process_stay_independent():
    """A fault made through the first site's net reaches neither the next site built from the
    same spec nor the feeder's template; the next run is the pristine one, step for step."""
    first = build_site(SPECS["dn1"], STEP_MIN, HORIZON_MIN)
    before = [_step(first, k) for k in range(3)]
    net = first.adapter.net
    net.line.loc[31, "in_service"] = False
    net.line.loc[33, "in_service"] = True
    net.load.loc[net.load.index[0], "scaling"] = 2.0
    assert _step(first, 3).status == "isolated_buses"

    second, ref = _sites("dn1")
    for k in range(6):
        a = _step(second, k)
        if k < 3:  # the same snapshot, the same injections: the same numbers, bit for bit
            np.testing.assert_array_equal(a.bus_vm_pu, before[k].bus_vm_pu)
        _assert_same(a, _step(ref, k))
        assert a.status == "ok"
    assert second.n_direct == 6
    pristine = make_feeder("case33bw")
    for s in (second, ref):
        own = s.adapter.net
        assert own is not net
        assert own.line.in_service.equals(pristine.line.in_service)
        assert (own.load.scaling == 1.0).all()
    assert feeder_template("case33bw").line.in_service.equals(pristine.line.in_service)
    assert not feeder_template("case33bw").line.loc[33, "in_service"]


def test_site_reset_after_a_fault_keeps_its_own_net():
    """``reset`` zeroes the state but keeps the site's net as it was changed; the direct path
    then starts over from the adapter (whose topology is checked)."""
    site, ref = _sites("dn1")
    for s in (site, ref):
        for k in range(2):
            _step(s, k)
        s.adapter.net.line.loc[31, "in_service"] = False
        s.reset()
    for k in range(4):
        a, b = _step(site, k), _step(ref, k)
        _assert_same(a, b)
        assert a.status == "isolated_buses"


def test_adapter_copy_is_independent():
    a = PandapowerAdapter(make_feeder("case33bw"), pv_buses=[13], gen_buses={"g1": 17},
                          dr_bus=7, es_bus=30, mess_bus=15)
    a.apply(2.0, [0.1], [0.5], 0.1, 0.05, -0.2)
    assert a.solve().status == "ok"
    b = a.copy()
    assert b.net is not a.net and b.fast is not a.fast
    b.net.line.loc[31, "in_service"] = False
    b.apply(2.5, [0.0], [0.0])
    assert b.solve().status == "isolated_buses"
    assert a.net.line.loc[31, "in_service"]
    r = a.solve()
    assert r.status == "ok" and np.isfinite(r.bus_vm_pu if hasattr(r, "bus_vm_pu")
                                            else r.vm_pu).all()
    # a copy of a solved adapter starts cold but solves to the same point
    c = a.copy()
    np.testing.assert_allclose(c.solve().vm_pu, r.vm_pu, atol=1e-8)


@pytest.mark.parametrize("name", DN)
def test_results_of_one_solution_equal_the_batch_formulas(name):
    """``YbusModel.results_one`` (one product for both branch ends and the slack, the losses
    as one inner product) against ``results`` (pandapower's formulas, per element) on each
    feeder, with its out-of-service tie lines and, for dn1, a line cut (bus 32 then out of
    service too)."""
    spec = SPECS[name]
    site = build_site(spec, STEP_MIN, HORIZON_MIN)
    site.direct_pf = False
    for k in range(3):
        _step(site, k)
    nets = [site.adapter]
    if name == "dn1":
        cut = build_site(spec, STEP_MIN, HORIZON_MIN)
        cut.adapter.net.line.loc[31, "in_service"] = False
        cut.adapter.net.bus.loc[32, "in_service"] = False
        cut.direct_pf = False
        assert _step(cut, 0).status == "ok"
        nets.append(cut.adapter)
    for a in nets:
        m = a.fast.model
        assert m is not None
        v = m.v_solution
        sbus = m.sbus(element_values(a.net)) * (1.0 + 0.01j)  # any injections will do
        vm, loading, losses, slack = m.results_one(v, sbus)
        r = m.results(v[None, :], sbus[None, :])
        np.testing.assert_allclose(vm, r["vm_pu"][0], rtol=1e-14, atol=0)  # NaN where NaN
        np.testing.assert_allclose(loading, r["line_loading_pct"][0], rtol=1e-12, atol=1e-12)
        assert losses == pytest.approx(float(r["losses_mw"][0]), rel=1e-10, abs=1e-12)
        assert slack == pytest.approx(float(r["slack_p_mw"][0]), rel=1e-12, abs=1e-12)
        assert np.isfinite(loading).all()
        if name == "dn1":  # its five tie lines are out of service: 0 as in runpp
            assert (loading == 0).sum() >= 5


def _three_dn_run(cut_at_step: int | None, direct: bool, monkeypatch):
    """three-dn at 15-min steps under greedy; after step ``cut_at_step`` settles, dn1's line
    31 goes out of service through ``site.adapter`` (the engine's progress hook)."""
    from experiments.build import build_world, realisation
    from experiments.config import load, resolve
    from experiments.specs import site_spec
    from grids.site import DistributionSite
    from policies.registry import make_policy
    from sim.engine import Engine
    from sim.systems import DnSites

    monkeypatch.setattr(DistributionSite, "direct_pf", direct)
    cfg = load(resolve("three-dn"), overrides=["scenario.step_min=15"])
    noise, pol, fleet = np.random.SeedSequence(cfg.scenario.seed).spawn(3)
    specs = [site_spec(n, g, cfg.power_flow) for n, g in cfg.grids.items()]
    world = build_world(cfg, realisation(cfg, specs, np.random.default_rng(noise)),
                        np.random.default_rng(fleet))
    dn1 = next(s for s in world.sites if s.name == "dn1")
    assert dn1.spec.feeder == "case33bw"

    def hook(done: int, n: int) -> None:
        if done == cut_at_step:
            dn1.adapter.net.line.loc[31, "in_service"] = False

    engine = Engine(DnSites(world.problem, world.vehicles, world.sites),
                    make_policy("greedy"), rng=np.random.default_rng(pol),
                    on_step=hook if cut_at_step is not None else None)
    sites = engine.run().frames()["sites"]
    return sites.sort_values(["site", "time_min"]).reset_index(drop=True), dn1


@pytest.mark.slow
def test_an_outage_in_a_run_is_seen_at_its_step_on_both_paths(monkeypatch):
    fast, site = _three_dn_run(40, True, monkeypatch)
    ref, _ = _three_dn_run(40, False, monkeypatch)
    assert site.n_direct > 0
    assert fast.shape == ref.shape
    num = fast.select_dtypes("number").columns
    np.testing.assert_allclose(fast[num].to_numpy(float), ref[num].to_numpy(float), rtol=1e-6,
                               atol=1e-9)
    assert fast.drop(columns=num).equals(ref.drop(columns=num))
    dn1 = fast[fast.site == "dn1"]
    cut = dn1.time_min >= 40 * 15
    assert (dn1.status[cut] == "isolated_buses").all() and (dn1.status[~cut] == "ok").all()
    assert (fast.status[fast.site != "dn1"] == "ok").all()


def test_a_step_the_direct_path_declines_goes_through_the_adapter_from_the_same_point(
        monkeypatch):
    """When the direct path declines a solution (here: every one, by a voltage floor above 1
    p.u.), the adapter's retry chain starts with a warm start from the same snapshot, as after
    its own converged solve, on a net of the site's own made at that step; its results are
    those of the reference path."""
    import grids.site as site_mod

    fast, ref = _sites("dn3")
    first = [_step(fast, 0), _step(ref, 0)]
    _assert_same(*first)
    assert fast.n_direct == 1
    monkeypatch.setattr(site_mod, "_LOW_VOLTAGE_PU", 2.0)
    for k in range(1, 4):
        a, b = _step(fast, k), _step(ref, k)
        _assert_same(a, b)
        assert a.status == "ok" and a.message == ""
    assert fast.n_direct == 1


def test_sites_built_and_stepped_in_threads_agree_with_one_built_alone():
    """A layout prepared while other threads build, copy and step sites of it (a threaded
    sweep worker): every site's day equals the one of a site stepped alone."""
    import dataclasses
    from concurrent.futures import ThreadPoolExecutor

    spec = SPECS["dn3"]
    spec = dataclasses.replace(spec, pf=dataclasses.replace(spec.pf, tolerance_mva=2e-9))

    def day(direct: bool):
        site = build_site(spec, STEP_MIN, HORIZON_MIN)
        site.direct_pf = direct
        return [_step(site, k) for k in range(8)]

    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(day, [True, False, True, False, True, True]))
    alone = day(True)
    for run in runs:
        for a, b in zip(run, alone):
            _assert_same(a, b)
