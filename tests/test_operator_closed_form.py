"""The local operator's closed-form step against its LP (HiGHS) on the same model.

The closed form (``LocalOperator(method="closed_form")``, the default) fills the segments of the
flexibility objective by decreasing slope; the LP path solves the same model, tie costs included,
with highspy. With the tie rule of ``grids/operator.py`` the optimum is unique, so the two must
give the same objective and the same dispatch, on random resources and states (Hypothesis) and
over whole multi-step trajectories with the state carried.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grids.operator import (
    HORIZON_WEIGHT_DR,
    HORIZON_WEIGHT_GEN,
    PRIORITY_STEP,
    RESIDUAL_PENALTY,
    TIE_BREAK,
    LocalOperator,
    OperatorResult,
)
from sim.flexibility import dr_flex, generator_flex
from sim.types import DemandResponseSpec, GeneratorSpec, SiteResources, StorageSpec
from tests.test_grids import SPECS


def objective(op: LocalOperator, res: OperatorResult) -> float:
    """The LP's objective (minimised) at a dispatch, from the documented model: the residual
    penalty, minus the flexibility over C_norm, the throughput tie-breakers, the tie rule's
    PRIORITY_STEP x rank per MW of supply (generators in list order, DR, storage) and, with
    ``flex_horizon_min``, minus the weighted flexibility of generators and DR over it."""
    r = op.resources
    d = res.dispatch_mw
    obj = RESIDUAL_PENALTY * abs(res.residual_mw)
    if op.flex_horizon_min is not None:
        h = op.flex_horizon_min / 60.0
        for g in r.generators:
            up, dn = generator_flex(d[g.name], g.p_min_mw, g.p_max_mw, g.ramp_up_mw_per_h,
                                    g.ramp_down_mw_per_h, h)
            obj -= HORIZON_WEIGHT_GEN * float(up + dn)
        if r.dr is not None:
            up, dn = dr_flex(d["dr"], r.dr.p_max_mw, r.dr.ramp_mw_per_h, h)
            obj -= HORIZON_WEIGHT_DR * float(up + dn)
    obj -= (res.flex_up_mw + res.flex_dn_mw) / op.c_norm_mw
    obj += TIE_BREAK * (d["dr"] + d["es_ch"] + d["es_dis"])
    rank = 0
    for g in r.generators:
        obj += PRIORITY_STEP * rank * d[g.name]
        rank += 1
    if r.dr is not None:
        obj += PRIORITY_STEP * rank * d["dr"]
        rank += 1
    if r.storage is not None:
        obj += PRIORITY_STEP * rank * (d["es_dis"] - d["es_ch"])
    return obj


def _step_both(a: LocalOperator, b: LocalOperator, t: int, dt: int, load: float, pv: float,
               mess: float):
    n_lp = a.lp_steps
    ra = a.dispatch(t, dt, load, pv, mess)
    rb = b.dispatch(t, dt, load, pv, mess)
    return ra, rb, a.lp_steps > n_lp


def _assert_same(a: LocalOperator, ra: OperatorResult, rb: OperatorResult, tol: float = 1e-7):
    assert ra.status == rb.status, (ra.message, rb.message)
    assert dict(ra.dispatch_mw) == pytest.approx(dict(rb.dispatch_mw), abs=tol)
    assert ra.residual_mw == pytest.approx(rb.residual_mw, abs=tol)
    assert ra.es_e_mwh == pytest.approx(rb.es_e_mwh, abs=tol, nan_ok=True)


# ------------------------------------------------------------------------------- random cases
ramp = st.one_of(st.just(0.0), st.floats(0.01, 2.0))


@st.composite
def cases(draw):
    gens = []
    for j in range(draw(st.integers(0, 3))):
        p_min = draw(st.floats(0.0, 1.0))
        p_max = p_min + draw(st.floats(0.05, 2.0))
        gens.append(GeneratorSpec(f"g{j + 1}", j, p_max, p_min, draw(ramp), draw(ramp)))
    dr = None
    if draw(st.booleans()):
        dr = DemandResponseSpec(0, draw(st.floats(0.01, 0.6)), draw(st.floats(0.01, 0.6)),
                                draw(st.floats(0.0, 2.0)))
    es = None
    if draw(st.booleans()):
        e_min = draw(st.floats(0.0, 0.3))
        e_max = e_min + draw(st.floats(0.05, 1.0))
        es = StorageSpec(0, draw(st.floats(0.02, 0.6)), draw(st.floats(0.02, 0.6)), e_min, e_max,
                         draw(st.floats(e_min, e_max)), eta=draw(st.floats(0.8, 1.0)),
                         ramp_mw_per_h=draw(st.one_of(st.none(), st.floats(0.02, 1.0))))
    res = SiteResources(generators=tuple(gens), dr=dr, storage=es)
    dt = draw(st.sampled_from([5, 15, 60]))
    state = {
        "prev_g_mw": (None if not gens or draw(st.booleans()) else
                      np.array([draw(st.floats(g.p_min_mw, g.p_max_mw)) for g in gens])),
        "prev_dr_mw": draw(st.floats(0.0, dr.p_max_mw)) if dr is not None else 0.0,
        "es_e_mwh": draw(st.floats(es.e_min_mwh, es.e_max_mwh)) if es is not None else math.nan,
        "prev_es_net_mw": (None if es is None or draw(st.booleans()) else
                           draw(st.floats(-es.p_ch_max_mw, es.p_dis_max_mw))),
    }
    time_min = dt * draw(st.integers(0, 1440 // dt - 1))
    cap = (sum(g.p_max_mw for g in gens) + (dr.p_max_mw if dr else 0.0)
           + (es.p_dis_max_mw if es else 0.0))
    demand = draw(st.floats(-1.0, cap + 1.0))
    horizon = draw(st.sampled_from([0, 30, 60, 120]))
    return res, dt, state, time_min, demand, horizon


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_closed_form_equals_the_lp_on_random_resources_and_states(case):
    res, dt, state, time_min, demand, horizon = case
    a = LocalOperator(res, method="closed_form", flex_horizon_min=horizon)
    b = LocalOperator(res, method="lp", flex_horizon_min=horizon)
    for op in (a, b):
        for k, v in state.items():
            setattr(op, k, v.copy() if isinstance(v, np.ndarray) else v)
    load, mess = max(demand, 0.0), min(demand, 0.0)  # demand = load + mess - pv
    ra, rb, handed_over = _step_both(a, b, time_min, dt, load, 0.0, mess)
    if handed_over:  # the closed form gave the step to the LP: the same solver on both
        return
    assert ra.status == "optimal" and ra.message == ""
    if rb.status != "optimal":  # the LP failed where the closed form did not: never expected
        pytest.fail(f"LP {rb.status}: {rb.message}")
    oa, ob = objective(a, ra), objective(b, rb)
    assert oa == pytest.approx(ob, rel=1e-9, abs=1e-9)
    _assert_same(a, ra, rb)


def test_random_cases_are_mostly_solved_in_closed_form():
    """The property test above is not vacuous: on the same kind of draws the closed form
    itself solves nearly every step (the rest are LP-infeasible windows or ties with the
    tolerance of an empty box)."""
    rng = np.random.default_rng(11)
    own = total = 0
    for _ in range(300):
        gens = tuple(GeneratorSpec(f"g{j}", j, 1.0 + rng.random(), 0.2 * rng.random(),
                                   rng.random(), rng.random()) for j in range(rng.integers(0, 4)))
        dr = DemandResponseSpec(0, 0.3, 0.2 * rng.random() + 0.01, 2 * rng.random())
        es = StorageSpec(0, 0.3, 0.3, 0.05, 0.6, 0.3, eta=0.8 + 0.2 * rng.random(),
                         ramp_mw_per_h=None if rng.random() < 0.5 else 0.3)
        op = LocalOperator(SiteResources(gens, dr, es), method="closed_form")
        dt = int(rng.choice([5, 15, 60]))
        for k in range(4):
            op.dispatch(dt * k, dt, float(rng.uniform(0, 4)), 0.0, float(rng.uniform(-1, 1)))
            total += 1
        own += 4 - op.lp_steps
    assert own >= 0.95 * total


# ------------------------------------------------------------------------------- trajectories
@pytest.mark.parametrize("horizon", [0, 60])
@pytest.mark.parametrize("step_min", [60, 15])
@pytest.mark.parametrize("name", sorted(SPECS))
def test_trajectories_equal_on_the_a11_dns(name, step_min, horizon):
    """Two days of each A.11 DN with a random MESS power, the state carried by each path: the
    same dispatch, storage energy and residual at every step, and the closed form solved every
    step itself (with and without the horizon tie-breaker)."""
    spec = SPECS[name]
    span_min = 2 * 1440
    load = spec.load_profile.per_step(step_min, span_min) * spec.peak_load_mw
    pv = spec.pv_profile.per_step(step_min, span_min) * spec.pv_cap_mw
    rng = np.random.default_rng(sorted(SPECS).index(name) + step_min)
    mess = rng.uniform(-0.6, 0.6, load.size)
    mess[rng.random(load.size) < 0.3] = 0.0
    a = LocalOperator(spec.resources, method="closed_form", flex_horizon_min=horizon)
    b = LocalOperator(spec.resources, method="lp", flex_horizon_min=horizon)
    for i in range(load.size):
        ra, rb, _ = _step_both(a, b, i * step_min, step_min, load[i], pv[i], mess[i])
        _assert_same(a, ra, rb)
        assert objective(a, ra) == pytest.approx(objective(b, rb), rel=1e-9, abs=1e-9)
    assert a.lp_steps == 0


# ------------------------------------------------------------------------------- residual
def test_closed_form_reports_the_exact_residual_when_demand_cannot_be_met():
    """Above the largest supply every resource is at its upper end and the residual is the rest;
    below the smallest (everything at its lower end, the storage charging fully) it is the
    surplus. The bounds here are written out from the specs, independently of the operator."""
    r = SPECS["dn1"].resources
    st_ = r.storage
    dt_h = 1.0
    op = LocalOperator(r, method="closed_form")
    # first step: no generator ramp; DR ramps from 0; the storage's energy window after the
    # step keeps E_init reachable at full power in the 23 hours left, i.e. [E_min, E_max]
    max_supply = (sum(g.p_max_mw for g in r.generators)
                  + min(r.dr.p_max_mw, r.dr.ramp_mw_per_h * dt_h)
                  + min(st_.p_dis_max_mw, (st_.e_init_mwh - st_.e_min_mwh) * st_.eta / dt_h))
    res = op.dispatch(0, 60, max_supply + 2.5, 0.0, 0.0)
    assert op.lp_steps == 0 and res.status == "optimal"
    assert res.residual_mw == pytest.approx(2.5, abs=1e-12)
    assert res.dispatch_mw["es_ch"] == 0.0

    op.reset()
    min_supply = (sum(g.p_min_mw for g in r.generators)
                  - min(st_.p_ch_max_mw, (st_.e_max_mwh - st_.e_init_mwh) / (st_.eta * dt_h)))
    res = op.dispatch(0, 60, 0.0, 0.0, min_supply - 1.25)
    assert op.lp_steps == 0 and res.status == "optimal"
    assert res.residual_mw == pytest.approx(-1.25, abs=1e-12)
    assert res.dispatch_mw["dr"] == 0.0 and res.dispatch_mw["es_dis"] == 0.0
    lp = LocalOperator(r, method="lp").dispatch(0, 60, 0.0, 0.0, min_supply - 1.25)
    assert lp.residual_mw == pytest.approx(res.residual_mw, abs=1e-9)


# ------------------------------------------------------------------------------- the tie rule
def test_tie_goes_to_the_first_generator_on_both_paths():
    """Two identical generators in the middle of their range (flat flexibility), both at their
    lower ramp limit: the first in the list ramps fully before the second moves, on both
    paths."""
    gens = (GeneratorSpec("a", 0, 2.0, 0.0, 0.2, 0.2), GeneratorSpec("b", 1, 2.0, 0.0, 0.2, 0.2))
    for method in ("closed_form", "lp"):
        op = LocalOperator(SiteResources(gens), method=method)
        op.prev_g_mw = np.array([1.0, 1.0])
        res = op.dispatch(0, 60, 2.15, 0.0, 0.0)
        assert res.dispatch_mw["a"] == pytest.approx(1.2, abs=1e-9), method
        assert res.dispatch_mw["b"] == pytest.approx(0.95, abs=1e-9), method


@pytest.mark.parametrize("method", ["closed_form", "lp"])
def test_horizon_tie_breaker_keeps_the_two_day_15_min_dn1_run_balanced(method):
    """With the flexibility tie-breaker over 60 minutes the two-day 15-min run of
    ``tests/test_grids.py`` (a MESS charge on day 2) still has no residual and the storage does
    not drain to E_min (taking the whole flexibility objective over 60 minutes did both)."""
    spec = SPECS["dn1"]
    r = spec.resources
    load = spec.load_profile.per_step(15, 2880) * spec.peak_load_mw
    pv = spec.pv_profile.per_step(15, 2880) * spec.pv_cap_mw
    mess = np.zeros(load.size)
    mess[96 + 4:96 + 20] = 0.1
    op = LocalOperator(r, method=method, flex_horizon_min=60)
    out = [op.dispatch(15 * k, 15, load[k], pv[k], mess[k]) for k in range(load.size)]
    assert all(x.status == "optimal" for x in out)
    assert max(abs(x.residual_mw) for x in out) < 1e-6
    assert min(x.es_e_mwh for x in out) > r.storage.e_min_mwh + 0.05


def test_method_selection():
    r = SPECS["dn2"].resources
    assert LocalOperator(r).method == LocalOperator.METHOD
    assert LocalOperator(r, reuse_model=False).method == "lp"
    assert LocalOperator(r, reuse_model=False, method="closed_form").method == "closed_form"
    with pytest.raises(ValueError, match="method"):
        LocalOperator(r, method="simplex")
    assert LocalOperator(r).flex_horizon_min == LocalOperator.FLEX_HORIZON_MIN
    assert LocalOperator(r, flex_horizon_min=0).flex_horizon_min is None
    assert LocalOperator(r, flex_horizon_min=30).flex_horizon_min == 30
    for bad in (-60, 1.5, True):
        with pytest.raises(ValueError, match="flex_horizon_min"):
            LocalOperator(r, flex_horizon_min=bad)
