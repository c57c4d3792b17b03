"""The fast power-flow path (grids/fastpf.py) against plain ``pandapower.runpp``.

Every backend must give the bus voltages of a plain ``runpp`` on a copy of the net to 1e-8 p.u.
(and line loading, losses and slack power to matching precision) on the three feeders and on
case118, also after the topology changes between two solves; the batched day must equal
per-step ``runpp``.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import grids.fastpf as fastpf
from grids.adapter import PandapowerAdapter, PowerFlowOptions
from grids.feeders import make_feeder

VM_TOL = 1e-8          # p.u.
LOADING_TOL = 1e-5     # % of rating
P_TOL = 1e-6           # MW

# feeder -> (PV buses, generator buses, DR bus, storage bus, MESS bus, peak load MW)
CASES = {
    "case33bw": ([13, 24, 29], {"g1": 17, "g2": 32}, 7, 30, 15, 3.0),
    "cigre_mv": ([4, 8, 12], {"g1": 11, "g2": 14}, 5, 6, 9, 2.0),
    "mv_open_ring": ([3, 5], {"g1": 4, "g2": 6}, 2, 5, 6, 1.5),
    "case118": ([10, 40], {"g1": 20}, 50, 60, 75, 4242.0),
}
FAST = ("ybus", "lightsim2grid")


_CASE118 = []


def _net(name):
    if name != "case118":
        return make_feeder(name)
    if not _CASE118:
        _CASE118.append(pn.case118())
    return copy.deepcopy(_CASE118[0])


def _adapter(name, backend):
    pv, gens, dr, es, mess, _ = CASES[name]
    return PandapowerAdapter(_net(name), PowerFlowOptions(backend=backend), pv_buses=pv,
                             gen_buses=gens, dr_bus=dr, es_bus=es, mess_bus=mess)


def _random_step(a, rng, peak):
    scale = 50.0 if peak > 100 else 1.0  # case118: tens of MW per unit
    low = 0.8 if peak > 100 else 0.3  # case118's generators are fixed: stay near its load
    a.apply(peak * rng.uniform(low, 1.0), rng.uniform(0, 0.3, a.pv_index.size) * scale,
            rng.uniform(0, 0.5, a.gen_index.size) * scale, dr_mw=rng.uniform(0, 0.1) * scale,
            es_p_mw=rng.uniform(-0.2, 0.2) * scale, mess_p_mw=rng.uniform(-0.25, 0.25) * scale)


def _flat(a, load_mw):
    a.apply(load_mw, np.zeros(a.pv_index.size), np.zeros(a.gen_index.size))


def _reference(net):
    ref = copy.deepcopy(net)
    pp.runpp(ref, numba=False, tolerance_mva=1e-8)
    losses = ref.res_line.pl_mw.sum() + (ref.res_trafo.pl_mw.sum() if len(ref.trafo) else 0.0)
    return (ref.res_bus.vm_pu.to_numpy(float), ref.res_line.loading_percent.to_numpy(float),
            float(losses), float(ref.res_ext_grid.p_mw.sum()))


def _assert_same(res, ref):
    vm, loading, losses, slack = ref
    np.testing.assert_allclose(res.vm_pu, vm, rtol=0, atol=VM_TOL)
    np.testing.assert_allclose(res.line_loading_pct, loading, rtol=0, atol=LOADING_TOL)
    assert res.losses_mw == pytest.approx(losses, abs=P_TOL)
    assert res.slack_p_mw == pytest.approx(slack, abs=P_TOL)


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("name", sorted(CASES))
def test_fast_solves_equal_runpp(name, backend):
    rng = np.random.default_rng(11)
    a = _adapter(name, backend)
    for _ in range(3):
        _random_step(a, rng, CASES[name][5])
        res = a.solve()
        assert res.status == "ok", res.message
        _assert_same(res, _reference(a.net))
    assert a.fast.backend == backend
    assert a.fast.n_plain == 1 and a.fast.n_fast == 2  # the fast path really ran


def _open_something(name, net):
    """Change the topology: open a closed switch or take a line out of service."""
    if name == "case33bw":
        net.line["in_service"] = True                              # close the five tie lines
        net.line.loc[net.line.index[8], "in_service"] = False      # open a main-branch line
    elif name == "cigre_mv":
        closed = net.switch.index[net.switch.closed & (net.switch.et == "l")]
        opened = net.switch.index[~net.switch.closed & (net.switch.et == "l")]
        net.switch.loc[opened[0], "closed"] = True                 # close a ring
        net.switch.loc[closed[0], "closed"] = False
    elif name == "mv_open_ring":
        opened = net.switch.index[~net.switch.closed]
        net.switch.loc[opened[0], "closed"] = True                 # close the ring
    else:
        net.line.loc[net.line.index[5], "in_service"] = False


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("name", sorted(CASES))
def test_topology_change_invalidates_the_cache(name, backend):
    rng = np.random.default_rng(5)
    a = _adapter(name, backend)
    _random_step(a, rng, CASES[name][5])
    a.solve()
    a.solve()
    plain = a.fast.n_plain
    _open_something(name, a.net)
    _random_step(a, rng, CASES[name][5])
    res = a.solve()
    assert res.status == "ok", res.message
    assert a.fast.n_plain == plain + 1  # rebuilt, not solved on the old admittance matrix
    _assert_same(res, _reference(a.net))
    _random_step(a, rng, CASES[name][5])
    fast_before = a.fast.n_fast
    res = a.solve()  # and the new matrix is reused from here on
    assert a.fast.n_fast == fast_before + 1
    _assert_same(res, _reference(a.net))


def test_option_or_backend_change_rebuilds():
    a = _adapter("case33bw", "ybus")
    _flat(a, 2.0)
    a.solve()
    a.solve()
    assert a.fast.n_fast == 1
    a.options = dataclasses.replace(a.options, tolerance_mva=1e-9)
    a.solve()
    assert a.fast.n_plain == 2  # options are part of the cache key
    a.options = dataclasses.replace(a.options, backend="runpp")
    a.solve()
    assert a.fast.backend == "runpp" and a.fast.n_fast == 0


def test_solve_result_in_net_tables_is_never_stale():
    a = _adapter("cigre_mv", "lightsim2grid")
    _flat(a, 2.0)
    a.solve()
    _flat(a, 1.0)
    a.solve()
    # columns the fast path does not compute are blanked, not left from the last runpp
    assert a.net.res_bus.p_mw.isna().all()
    assert a.net.res_line.i_ka.isna().all()


def test_lightsim2grid_missing_falls_back_with_a_reason(monkeypatch):
    monkeypatch.setattr(fastpf, "lightsim2grid_status", lambda: (False, "not installed"))
    a = _adapter("mv_open_ring", "lightsim2grid")
    a.apply(1.2, [0.1, 0.1], [0.3, 0.1])
    res = a.solve()
    res = a.solve()
    assert a.fast.backend == "ybus" and "not installed" in a.fast.reason
    assert a.fast.n_fast == 1
    _assert_same(res, _reference(a.net))


def test_unknown_backend_is_a_named_error():
    probs = PowerFlowOptions(backend="fast").problems("power_flow")
    assert probs == ["power_flow.backend: unknown power-flow backend 'fast'; valid: runpp, ybus, "
                     "lightsim2grid"]
    with pytest.raises(ValueError, match="unknown power-flow backend"):
        fastpf.FastPowerFlow(make_feeder("case33bw"), "fast")


@pytest.mark.parametrize("backend", ("runpp",) + FAST)
def test_non_convergence_is_reported_by_every_backend(backend):
    a = _adapter("case33bw", backend)
    _flat(a, 2.0)
    assert a.solve().status == "ok"
    _flat(a, 400.0)  # far beyond the feeder's transfer limit
    res = a.solve()
    assert res.status == "not_converged" and not res.converged
    _flat(a, 2.0)
    res = a.solve()  # recovers, and equals runpp again
    assert res.status == "ok"
    _assert_same(res, _reference(a.net))


def _day(a, name, steps=24, seed=3):
    rng = np.random.default_rng(seed)
    peak = CASES[name][5]
    scale = 50.0 if peak > 100 else 1.0  # case118: tens of MW per unit
    load = peak * rng.uniform(0.8 if peak > 100 else 0.3, 1.0, steps)
    pv = rng.uniform(0, 0.3, (steps, a.pv_index.size)) * scale
    gen = rng.uniform(0, 0.5, (steps, a.gen_index.size)) * scale
    dr = rng.uniform(0, 0.1, steps) * scale
    es = rng.uniform(-0.2, 0.2, steps) * scale
    mess = rng.uniform(-0.25, 0.25, steps) * scale
    return load, pv, gen, dr, es, mess


@pytest.mark.parametrize("method", ("numpy", "lightsim2grid"))
@pytest.mark.parametrize("name", sorted(CASES))
def test_batched_day_equals_per_step_runpp(name, method):
    a = _adapter(name, "runpp")
    load, pv, gen, dr, es, mess = _day(a, name, steps=6 if name == "case118" else 12)
    x = a.element_matrix(load, pv, gen, dr, es, mess)
    day = a.solve_day(x, method=method)
    assert day.converged.all()
    for k in range(load.size):
        a.apply(load[k], pv[k], gen[k], dr_mw=dr[k], es_p_mw=es[k], mess_p_mw=mess[k])
        res = a.solve()  # plain runpp (backend "runpp")
        np.testing.assert_allclose(day.vm_pu[k], res.vm_pu, rtol=0, atol=VM_TOL)
        np.testing.assert_allclose(day.line_loading_pct[k], res.line_loading_pct, rtol=0,
                                   atol=LOADING_TOL)
        assert day.losses_mw[k] == pytest.approx(res.losses_mw, abs=P_TOL)
        assert day.slack_p_mw[k] == pytest.approx(res.slack_p_mw, abs=P_TOL)
    assert a.fast.n_fast == 0  # the per-step reference really was plain runpp


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), perm_seed=st.integers(0, 2**16))
def test_batched_steps_are_independent_of_order(seed, perm_seed):
    a = _BATCH_ADAPTER
    x = a.element_matrix(*_day(a, "mv_open_ring", steps=16, seed=seed))
    perm = np.random.default_rng(perm_seed).permutation(16)
    d1 = a.solve_day(x)
    d2 = a.solve_day(x[perm])
    np.testing.assert_allclose(d2.vm_pu, d1.vm_pu[perm], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(d2.converged, d1.converged[perm])


_BATCH_ADAPTER = _adapter("mv_open_ring", "ybus")


def test_element_matrix_rejects_bad_input():
    a = _adapter("case33bw", "ybus")
    with pytest.raises(ValueError, match="pv_mw_per_sgen: expected 3 columns"):
        a.element_matrix(np.ones(4), np.ones((4, 2)))
    with pytest.raises(ValueError, match="non-finite"):
        a.element_matrix(np.array([1.0, np.nan]))
