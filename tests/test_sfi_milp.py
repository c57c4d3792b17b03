"""The weighted-SFI MILP of seed 000 (MODELS.md A.4-A.11): exactness, identities, reference values.

* Brute force: on hand-made 2-DN / 3-DN cases with one MESS, every feasible route is enumerated,
  its dispatch is solved with the route fixed (``fix_routes``), and the full MILP must reach the
  best of them (A.7, A.8).
* Identities: occupancy of A.8, dispatch only while parked (8), SOC (9), no simultaneous charge and
  discharge (A.10.5), LP epigraph values equal to the explicit ``min()`` of A.4.
* A.11: reference values of the table (+-1 %), weights of A.6, expected directions of A.9/A.10.4.
* Solver outcomes are honest (time limits are never "optimal"; CBC agrees with HiGHS).

Tests that take more than ~20 s (the A.11 dynamic-weight MILP, the stochastic comparison) are
marked ``slow``. The tests at the end were written as strict xfails for defects found in
``policies/`` and now pass with the fixes.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from policies.sfi import (
    Options,
    SfiContext,
    instance,
    make_weights,
    redispatch,
    run,
    stochastic,
)
from policies.sfi_milp import (
    EPS_ENERGY_PER_MWH,
    EPS_ES_PER_MWH,
    EPS_MOVE,
    SLACK_PENALTY_PER_MWH,
    SfiInstance,
    build,
    route_start,
    solve_instance,
    solve_model,
)
from policies.sfi_weights import dynamic_weights, equal_weights
from sim.flexibility import c_norm_mw
from sim.types import (
    BatterySpec,
    DemandResponseSpec,
    GeneratorSpec,
    SiteInfo,
    SiteResources,
    StorageSpec,
    VehicleSpec,
    frozen_array,
)

EXACT = 1e-9  # mip_gap of the "exact" small solves
TOL = 1e-6
BAT = BatterySpec(capacity_mwh=0.5, e_min_mwh=0.1, e_max_mwh=0.475, p_max_mw=0.25)


# ============================================================================ small hand-made data
def _site(name, gens, load, pv, dr=None, es=None) -> SiteInfo:
    res = SiteResources(generators=tuple(gens), dr=dr, storage=es)
    return SiteInfo(name, name, res, c_norm_mw(res), frozen_array(load), frozen_array(pv))


def two_dn_sites() -> tuple[SiteInfo, SiteInfo]:
    """DN0: one generator + DR (C_norm 0.9 MW); DN1: one generator + ES (C_norm 0.7 MW). T = 4."""
    dn0 = _site("dn0", [GeneratorSpec("g0", 1, 1.0, 0.2, 0.3, 0.3)],
                [0.60, 0.75, 0.90, 0.70], [0.0, 0.10, 0.20, 0.05],
                dr=DemandResponseSpec(1, 0.10, 0.05, 0.20))
    dn1 = _site("dn1", [GeneratorSpec("g1", 1, 0.6, 0.1, 0.25, 0.25)],
                [0.30, 0.40, 0.50, 0.60], [0.0, 0.05, 0.10, 0.0],
                es=StorageSpec(1, 0.10, 0.10, 0.02, 0.18, 0.10))
    return dn0, dn1


def three_dn_sites(T: int) -> tuple[SiteInfo, ...]:
    """Three small DNs (generator + DR / ES / both) with smooth loads over ``T`` steps."""
    h = np.arange(T)
    dn0 = _site("dn0", [GeneratorSpec("g0", 1, 1.0, 0.2, 0.3, 0.3)],
                0.6 + 0.1 * np.sin(h / 2), np.zeros(T), dr=DemandResponseSpec(1, 0.1, 0.05, 0.3))
    dn1 = _site("dn1", [GeneratorSpec("g1", 1, 0.8, 0.1, 0.25, 0.25)],
                0.4 + 0.1 * np.cos(h / 3), 0.05 * (h % 3),
                es=StorageSpec(1, 0.1, 0.1, 0.02, 0.18, 0.1))
    dn2 = _site("dn2", [GeneratorSpec("g2", 1, 0.7, 0.1, 0.2, 0.2)],
                np.full(T, 0.35), np.zeros(T), dr=DemandResponseSpec(1, 0.05, 0.05, 0.1),
                es=StorageSpec(1, 0.05, 0.05, 0.01, 0.09, 0.05))
    return dn0, dn1, dn2


def small_instance(sites, weights, *, vehicles=1, travel=None, start="free", e0=0.25,
                   symmetry=True, **kw) -> SfiInstance:
    """An :class:`SfiInstance` with one deterministic scenario built from the sites' forecasts.

    ``start``: "free" (any DN), an int (parked there) or a dict per vehicle ``{site: step}``.
    """
    N = len(sites)
    travel = np.ones((N, N), dtype=int) if travel is None else np.asarray(travel, dtype=int)
    vehs = tuple(VehicleSpec(f"m{i}", "truck", BAT, sites[0].node, e0) for i in range(vehicles))
    if start == "free":
        st = tuple({n: 0 for n in range(N)} for _ in vehs)
    elif isinstance(start, int):
        st = tuple({start: 0} for _ in vehs)
    else:
        st = tuple(start)
    w = np.asarray(weights, dtype=float)
    if w.ndim == 2:
        w = w[None]
    return SfiInstance(
        sites=tuple(sites), vehicles=vehs, dt_h=1.0, travel_steps=travel,
        load_mw=np.array([[s.load_forecast_mw for s in sites]]),
        pv_mw=np.array([[s.pv_forecast_mw for s in sites]]), prob=np.ones(1), weights=w,
        e0_mwh=np.full(len(vehs), e0), start=st, e_end_mwh=np.full(len(vehs), e0),
        symmetry=symmetry, **kw)


EQUAL_2DN = np.full((2, 4), 0.5)
# DN0 matters in the morning, DN1 in the afternoon: a one-step move pays off
MOVING_2DN = np.array([[0.9, 0.9, 0.1, 0.1], [0.1, 0.1, 0.9, 0.9]])


# ------------------------------------------------------------------------- route enumeration
def enumerate_routes(N: int, T: int, travel, starts: dict[int, int]):
    """Every feasible single-vehicle route as ``(x (1,N,T+1), y (1,N,N,T))`` (A.8 semantics).

    ``starts`` maps a site to the step at which the vehicle is (or becomes) parked there; several
    entries mean a free choice. From a parked state ``(n, t)`` the vehicle stays one step or
    leaves for ``b`` and is parked there at ``t + travel[n, b]`` (only if that is ``<= T``).
    """
    travel = np.asarray(travel, dtype=int)
    out = []

    def rec(n, t, acts):
        if t == T:
            out.append((acts, n))
            return
        for b in range(N):
            d = 1 if b == n else int(travel[n, b])
            if t + d <= T:
                rec(b, t + d, acts + [(t, n, b)])

    for n0, t0 in starts.items():
        rec(n0, t0, [])
    routes = []
    for acts, last in out:
        x = np.zeros((1, N, T + 1))
        y = np.zeros((1, N, N, T))
        for t, a, b in acts:
            y[0, a, b, t] = 1
            x[0, a, t] = 1
        x[0, last, T] = 1
        routes.append((x, y))
    return routes


def objective_of(plan, inst: SfiInstance) -> float:
    """The A.7 objective rebuilt from a plan: weighted SFI (explicit min()) minus tie-breakers."""
    dt = inst.dt_h
    moves = plan.y.sum() - np.einsum("mnnt->", plan.y)
    per_s = (plan.value
             - EPS_ENERGY_PER_MWH * dt * (plan.ch_mw + plan.dis_mw).sum(axis=(1, 2, 3))
             - EPS_ES_PER_MWH * dt * (plan.es_ch_mw + plan.es_dis_mw).sum(axis=(1, 2))
             - SLACK_PENALTY_PER_MWH * dt * plan.slack_mw.sum(axis=(1, 2)))
    return float(per_s @ inst.prob) - EPS_MOVE * moves


def moves_of(plan) -> int:
    return int(round(plan.y.sum() - np.einsum("mnnt->", plan.y)))


def brute_force(inst: SfiInstance, starts: dict[int, int]):
    """(objective, SFI value, route) of every enumerated route, dispatch solved exactly.

    A route on which the dispatch is infeasible (e.g. too few parked hours to recharge the
    self-discharge before the energy-neutral end, (12)) is left out.
    """
    S, M, N, T = inst.shape
    assert M == 1
    rows = []
    for x, y in enumerate_routes(N, T, inst.travel_steps, starts):
        plan, out = solve_instance(replace(inst, fix_routes=(x, y)), mip_gap=EXACT)
        if out.status == "infeasible":
            continue
        assert out.status == "optimal", out
        rows.append((out.objective, float(plan.value[0]), (x, y)))
    assert rows, "no route has a feasible dispatch"
    return rows


def check_against_brute_force(inst: SfiInstance, starts: dict[int, int]):
    rows = brute_force(inst, starts)
    best = max(r[0] for r in rows)
    plan, out = solve_instance(inst, mip_gap=EXACT)
    assert out.status == "optimal", out
    assert out.objective == pytest.approx(best, abs=TOL)
    # the MILP's objective is the one of A.7 rebuilt with the explicit min() (A.4 reporting rule)
    assert objective_of(plan, inst) == pytest.approx(out.objective, abs=TOL)
    # ... and its route is one of the enumerated routes, with the best value
    same = [r for r in rows if np.array_equal(r[2][1], plan.y) and np.array_equal(r[2][0], plan.x)]
    assert len(same) == 1, "the MILP's route is not a feasible enumerated route"
    assert same[0][0] == pytest.approx(best, abs=TOL)
    assert float(plan.value[0]) == pytest.approx(same[0][1], abs=1e-4)
    return plan, rows, best


# ================================================================== 1. brute force (2 DNs, 4 h)
@pytest.mark.parametrize("start", ["free", "fixed"])
def test_brute_force_equal_weights(start):
    """Equal weights: the MILP equals the best enumerated route; the MESS stays at the DN with
    the smallest C_norm (A.11 "property to test"), so it never moves."""
    sites = two_dn_sites()
    inst = small_instance(sites, EQUAL_2DN, start="free" if start == "free" else 0)
    starts = {0: 0, 1: 0} if start == "free" else {0: 0}
    assert len(enumerate_routes(2, 4, inst.travel_steps, starts)) == 16 * len(starts)
    plan, rows, best = check_against_brute_force(inst, starts)
    if start == "free":
        assert sites[1].c_norm_mw < sites[0].c_norm_mw
        assert (plan.site_of() == 1).all()
        assert moves_of(plan) == 0


@pytest.mark.parametrize("start", ["free", "fixed"])
def test_brute_force_hour_varying_weights_move(start):
    """Hour-varying weights: the MILP equals the best enumerated route, and that route moves
    (strictly better than every route that never moves)."""
    inst = small_instance(two_dn_sites(), MOVING_2DN, start="free" if start == "free" else 0)
    starts = {0: 0, 1: 0} if start == "free" else {0: 0}
    plan, rows, best = check_against_brute_force(inst, starts)
    assert moves_of(plan) >= 1
    best_static = max(r[0] for r in rows if np.einsum("mnnt->", r[2][1]) == 4)
    assert best > best_static + 1e-3
    # DN0 while it is weighted, then DN1 (C_norm 0.7 < 0.9) for the afternoon
    site = plan.site_of()[0]
    assert site[0] == 0 and site[-1] == 1 and (site == -1).sum() == 1


@pytest.mark.parametrize("start", [{0: 0}, {0: 0, 1: 0, 2: 0}, {2: 1}],
                         ids=["parked", "free", "in-transit"])
def test_brute_force_heterogeneous_travel(start):
    """A.8 with travel steps 1, 2, 3 between three DNs, including a vehicle that starts on the
    road (arrives at DN2 at step 1): MILP == best enumerated route."""
    T = 4
    sites = three_dn_sites(T)
    travel = np.array([[1, 1, 2], [1, 1, 3], [2, 3, 1]])
    w = np.array([[0.8, 0.1, 0.1, 0.1], [0.1, 0.1, 0.8, 0.8], [0.1, 0.8, 0.1, 0.1]])
    inst = small_instance(sites, w, travel=travel, start=(start,))
    plan, rows, best = check_against_brute_force(inst, start)
    assert len(rows) >= 3


# ============================================================ 2. occupancy identity of A.8
@pytest.fixture(scope="module")
def hetero_plan():
    T = 8
    sites = three_dn_sites(T)
    travel = np.array([[1, 1, 2], [1, 1, 3], [2, 3, 1]])
    w = np.full((3, T), 0.05)
    w[2, 0:2] = w[0, 3:5] = w[1, 6:8] = 0.9
    w /= w.sum(axis=0)
    inst = small_instance(sites, w, vehicles=2, travel=travel, symmetry=False,
                          start=({0: 0, 1: 0, 2: 0}, {1: 0}))
    plan, out = solve_instance(inst, mip_gap=1e-6)
    assert out.status == "optimal", out
    return inst, plan


def _in_transit_at_start(y, travel, m, t):
    """sum over n != n', tau < t < tau + T_nn' of y[m, n, n', tau] (A.8 occupancy identity)."""
    _, N, _, T = y.shape
    return sum(y[m, a, b, tau] for a in range(N) for b in range(N) if a != b
               for tau in range(T) if tau < t < tau + travel[a, b])


def test_occupancy_identity_heterogeneous_travel(hetero_plan):
    """sum_n x[m,n,t] + (in transit at the start of t) == 1 for every vehicle and t = 0..T; with
    ``SfiPlan.transit`` (z, "on the road during step t"): sum_n y[m,n,n,t] + z[m,t] == 1, and z
    equals 1 - sum_n x + departures; arrivals land exactly travel[n, n'] steps later."""
    inst, plan = hetero_plan
    ts = inst.travel_steps
    M, N, _, T = plan.y.shape
    z = plan.transit(ts)
    assert z.shape == (M, T)
    for m in range(M):
        for t in range(T + 1):
            assert plan.x[m, :, t].sum() + _in_transit_at_start(plan.y, ts, m, t) == 1, (m, t)
        for t in range(T):
            stays = sum(plan.y[m, n, n, t] for n in range(N))
            departs = plan.y[m, :, :, t].sum() - stays
            assert stays + z[m, t] == 1, (m, t)
            assert z[m, t] == 1 - plan.x[m, :, t].sum() + departs
            for a in range(N):
                for b in range(N):
                    if plan.y[m, a, b, t] > 0.5:
                        assert plan.x[m, a, t] == 1
                        assert plan.x[m, b, t + (1 if a == b else ts[a, b])] == 1
    # the case is not trivial: some trip takes more than one step
    long_trips = [(m, a, b) for m, a, b, t in zip(*np.nonzero(plan.y)) if a != b and ts[a, b] > 1]
    assert long_trips


def test_no_dispatch_unless_parked_for_the_step(hetero_plan):
    """(8): ch = dis = 0 and no MESS flexibility at n unless y[m,n,n,t] == 1."""
    inst, plan = hetero_plan
    stay = np.einsum("mnnt->mnt", plan.y)[None]  # (1, M, N, T)
    off = stay < 0.5
    assert np.all(plan.ch_mw[off.repeat(plan.ch_mw.shape[0], 0)] <= TOL)
    assert np.all(plan.dis_mw[off.repeat(plan.dis_mw.shape[0], 0)] <= TOL)
    assert np.all(plan.flex_mess_mw[off.repeat(plan.flex_mess_mw.shape[0], 0)] <= TOL)
    assert plan.flex_mess_mw.sum() > 0


# ============================================================================ A.11 fixtures
@pytest.fixture(scope="module")
def a11():
    from experiments.build import build_world
    from experiments.config import load, resolve

    cfg = load(resolve("three-dn"))
    w = build_world(cfg, None, np.random.default_rng(0))
    ctx = SfiContext.from_problem(w.problem)
    L, PV = ctx.forecast
    pv_cap = np.array([g.pv_cap_mw for g in cfg.grids.values()])
    return ctx, L, PV, pv_cap


OPT = Options()  # the study default: HiGHS, mip_gap 1e-3, 60 s


def _study(ctx, L, PV, _cap, kind):
    prob = np.ones(1)
    W = make_weights(ctx, L, PV, prob, kind, OPT)
    out = {"weights": W}
    for name, kw in (("A", {"with_mess": False}), ("B", {}), ("fixed", {"fix_site": 0})):
        plan, o = run(instance(ctx, L, PV, prob, W.w, **kw), OPT)
        assert plan is not None and o.status == "optimal", (name, o)
        out[name] = plan
    return out


@pytest.fixture(scope="module")
def a11_equal(a11):
    return _study(*a11, "equal")


@pytest.fixture(scope="module")
def a11_dynamic(a11):
    return _study(*a11, "dynamic")


# Table A.11: (A, B, fixed DN1), per-DN mobile, per-DN fixed
REF = {
    "equal": ((17.87, 21.81, 19.63), (17.91, 16.16, 31.37), (23.18, 16.16, 19.55)),
    "dynamic": ((17.79, 21.88, 21.40), (21.96, 16.94, 19.52), (22.93, 16.03, 19.52)),
}


def _check_plan_identities(inst_sites, vehicles, plan, dt=1.0):
    # A.4 reporting rule: the LP epigraph values equal the explicit min() (exact under max)
    np.testing.assert_allclose(plan.flex_lp_stat_mw, plan.flex_stat_mw, atol=TOL, rtol=0)
    np.testing.assert_allclose(plan.flex_lp_mess_mw, plan.flex_mess_mw, atol=TOL, rtol=0)
    # A.10.5: no simultaneous charge and discharge (MESS per vehicle and step, ES per DN)
    ch, dis = plan.ch_mw.sum(axis=2), plan.dis_mw.sum(axis=2)
    assert np.minimum(ch, dis).max(initial=0.0) <= TOL
    assert np.minimum(plan.es_ch_mw, plan.es_dis_mw).max(initial=0.0) <= TOL
    # SOC (9), bounds (10), neutrality (12)
    for m, v in enumerate(vehicles):
        b = v.battery
        e = plan.e_mwh[:, m]
        rhs = (b.retention_per_h ** dt * e[:, :-1] + b.eta_ch * ch[:, m] * dt
               - dis[:, m] * dt / b.eta_dis)
        np.testing.assert_allclose(e[:, 1:], rhs, atol=TOL, rtol=0)
        assert e.min() >= b.e_min_mwh - TOL and e.max() <= b.e_max_mwh + TOL
        np.testing.assert_allclose(e[:, [0, -1]], v.e_init_mwh, atol=TOL)
    # stationary storage energy balance
    for n, s in enumerate(inst_sites):
        st = s.resources.storage
        if st is None:
            continue
        e = plan.es_e_mwh[:, n]
        rhs = e[:, :-1] + st.eta * plan.es_ch_mw[:, n] * dt - plan.es_dis_mw[:, n] * dt / st.eta
        np.testing.assert_allclose(e[:, 1:], rhs, atol=TOL, rtol=0)
    # valid data need no balance slack
    assert plan.slack_mw.max() <= TOL


# ========================================================== 3. min() == LP, modes, SOC (A.11)
def test_a11_equal_flex_min_equals_lp_and_identities(a11, a11_equal):
    ctx = a11[0]
    for name in ("A", "B", "fixed"):
        vehicles = ctx.vehicles if name != "A" else ()
        _check_plan_identities(ctx.sites, vehicles, a11_equal[name])


@pytest.mark.slow
def test_a11_dynamic_flex_min_equals_lp_and_identities(a11, a11_dynamic):
    ctx = a11[0]
    for name in ("A", "B", "fixed"):
        vehicles = ctx.vehicles if name != "A" else ()
        _check_plan_identities(ctx.sites, vehicles, a11_dynamic[name])


# ============================================================ 4. stochastic, one scenario
def _small_ctx():
    sites = two_dn_sites()
    vehs = (VehicleSpec("m0", "truck", BAT, "dn0", 0.25),)
    return SfiContext(sites, vehs, 1.0, 60, np.ones((2, 2), dtype=int))


@pytest.mark.parametrize("method", ["exact", "candidates"])
def test_stochastic_one_scenario_equals_deterministic(method):
    ctx = _small_ctx()
    L, PV = ctx.forecast
    opt = Options(mip_gap=EXACT)
    w = MOVING_2DN[None]
    det, out = run(instance(ctx, L, PV, np.ones(1), w), opt)
    assert out.status == "optimal"
    res = stochastic(ctx, L, PV, np.ones(1), w, opt, method=method, exact_gap=EXACT)
    assert res.candidates == 1
    assert res.plan.expected_value == pytest.approx(det.expected_value, abs=TOL)
    assert res.method in ("exact", "candidates")
    if method == "exact":
        assert res.exact_outcome is not None and res.exact_outcome.status == "optimal"
        assert res.gap == pytest.approx(0.0, abs=1e-5)
    # two copies of the same scenario with probability 1/2 each: same value again
    res2 = stochastic(ctx, np.repeat(L, 2, 0), np.repeat(PV, 2, 0), np.full(2, 0.5),
                      np.repeat(w, 2, 0), opt, method=method, exact_gap=EXACT)
    assert res2.plan.expected_value == pytest.approx(det.expected_value, abs=TOL)


# ======================================================================= 5. A.11 reference
def _rel(a, b):
    return abs(a - b) / abs(b)


def test_a11_equal_weights_reference(a11_equal):
    (A, B, F), per_b, per_f = REF["equal"]
    got = [float(a11_equal[k].value[0]) for k in ("A", "B", "fixed")]
    for g, r in zip(got, (A, B, F)):
        assert _rel(g, r) <= 0.01, (got, (A, B, F))
    np.testing.assert_allclose(a11_equal["B"].sfi[0].sum(axis=1), per_b, rtol=0.01)
    np.testing.assert_allclose(a11_equal["fixed"].sfi[0].sum(axis=1), per_f, rtol=0.01)
    # both MESS parked at DN3 (smallest C_norm) all day
    assert (a11_equal["B"].site_of() == 2).all()
    assert (a11_equal["fixed"].site_of() == 0).all()


@pytest.mark.slow
def test_a11_dynamic_weights_reference(a11_dynamic):
    (A, B, F), per_b, per_f = REF["dynamic"]
    got = [float(a11_dynamic[k].value[0]) for k in ("A", "B", "fixed")]
    for g, r in zip(got, (A, B, F)):
        assert _rel(g, r) <= 0.01, (got, (A, B, F))
    np.testing.assert_allclose(a11_dynamic["B"].sfi[0].sum(axis=1), per_b, rtol=0.01)
    np.testing.assert_allclose(a11_dynamic["fixed"].sfi[0].sum(axis=1), per_f, rtol=0.01)
    # route of the table: DN1 h1-17, transit h18, DN2 h19-21, transit h22, DN1 h23-24
    route = [0] * 17 + [-1] + [1] * 3 + [-1] + [0] * 2
    assert a11_dynamic["B"].site_of().tolist() == [route, route]


def test_a11_importance_deficit_and_weights(a11):
    """NI = (0.541, 0.266, 0.193); DN3 never in deficit; DN2 deficit exactly in h19-21 with
    w > 0.9 there; DN1 deficit in h8-18 except h13 (A.11 lists h8-18, see below)."""
    ctx, L, PV, _ = a11
    W = make_weights(ctx, L, PV, np.ones(1), "dynamic", OPT)
    np.testing.assert_allclose(W.ni, [0.541, 0.266, 0.193], atol=1e-3)
    fd = W.fd[0]
    assert not (fd[2] > 0).any()
    assert (np.flatnonzero(fd[1] > 0) + 1).tolist() == [19, 20, 21]
    assert (W.w[0, 1, 18:21] > 0.9).all()
    # h13 is the delicate hour: F_up^A there is not unique among SFI-optimal baseline dispatches
    # (1.153 to 1.235 MW against a requirement of 1.191 MW). The lexicographic baseline takes the
    # optimal dispatch with the least deficit, which covers h13, so by A.6 ("headroom after its own
    # optimal dispatch") DN1 has no deficit there. The A.11 prototype's h8-18 came from whichever
    # optimal dispatch its solver returned (A.11 allows for tie-breaking differences).
    assert (np.flatnonzero(fd[0] > 0) + 1).tolist() == [8, 9, 10, 11, 12, 14, 15, 16, 17, 18]


# ===================================================================== 6. expected directions
def test_a11_directions_equal(a11_equal):
    A, B, F = (float(a11_equal[k].value[0]) for k in ("A", "B", "fixed"))
    assert B > A and B > F


@pytest.mark.slow
def test_a11_directions_dynamic(a11_dynamic):
    A, B, F = (float(a11_dynamic[k].value[0]) for k in ("A", "B", "fixed"))
    assert B > A and B > F
    # A.9: fixed at DN1 helps DN1 and costs DN2 against the mobile schedule
    per_b = a11_dynamic["B"].sfi[0].sum(axis=1)
    per_f = a11_dynamic["fixed"].sfi[0].sum(axis=1)
    assert per_f[0] > per_b[0] and per_f[1] < per_b[1]


@pytest.mark.slow
def test_stochastic_not_worse_than_deterministic_route(a11, a11_dynamic):
    """A.10.4: on 100 Monte Carlo draws reduced to 5, the stochastic (candidate-route) plan's
    expectation is >= the deterministic route re-dispatched on the same set. Both use the same
    solver settings (mip_gap 1e-2 keeps the candidate solves short)."""
    from experiments.scenarios_mc import monte_carlo, reduce

    ctx, L, PV, pv_cap = a11
    np.testing.assert_allclose(pv_cap, [0.6, 0.8, 0.8])  # A.11 table
    sc = reduce(monte_carlo(L[0], PV[0], pv_cap, 100, seed=7), 5)
    Ls, PVs, p = np.array(sc.load_mw), np.array(sc.pv_mw), np.array(sc.prob)
    opt = Options(mip_gap=1e-2)
    # the weights are an input of both sides: the forecast's dynamic weights for every scenario
    # (make_weights on the 5 scenarios runs its joint baseline to the time limit, see the last
    # test, which would make this test slow and machine-dependent)
    w = np.repeat(a11_dynamic["weights"].w, len(p), axis=0)
    det = a11_dynamic["B"]
    rd, out = redispatch(ctx, (det.x, det.y), Ls, PVs, p, w, opt)
    assert rd is not None and out.status == "optimal"
    res = stochastic(ctx, Ls, PVs, p, w, opt, method="candidates")
    assert res.method == "candidates" and res.candidates >= 1
    assert res.plan.expected_value >= rd.expected_value - TOL


# =========================================================================== 7. weights
def test_weights_sum_to_one_equal_and_kappa(a11, a11_equal):
    ctx, L, PV, _ = a11
    base = a11_equal["A"]  # the A0 baseline: no MESS, equal weights
    prob = np.ones(1)
    W = dynamic_weights(L, PV, prob, base.flex_stat_up_mw, kappa=0.5)
    np.testing.assert_allclose(W.w.sum(axis=1), 1.0, atol=1e-12)
    assert (W.w > 0).all()
    # kappa = 0.2: no deficit anywhere (A.6) -> importance-proportional fallback in every hour
    W2 = dynamic_weights(L, PV, prob, base.flex_stat_up_mw, kappa=0.2)
    assert not (W2.fd > 0).any()
    fallback = (W2.ni + 1e-3) / (W2.ni + 1e-3).sum()
    np.testing.assert_allclose(W2.w[0], np.repeat(fallback[:, None], L.shape[2], 1), atol=1e-12)
    np.testing.assert_allclose(W2.w.sum(axis=1), 1.0, atol=1e-12)
    # the same through make_weights (which solves its own baseline)
    W3 = make_weights(ctx, L, PV, prob, "dynamic", OPT, kappa=0.2)
    np.testing.assert_allclose(W3.w, W2.w, atol=1e-9)
    # equal weights are 1/3
    E = make_weights(ctx, L, PV, prob, "equal", OPT)
    np.testing.assert_allclose(E.w, 1 / 3)
    np.testing.assert_allclose(equal_weights((2, 3, 24)).w, 1 / 3)


# ================================================================== 8. honest solver outcomes
def test_tiny_time_limit_is_never_optimal(a11):
    ctx, L, PV, _ = a11
    w = equal_weights(L.shape).w
    plan, out = run(instance(ctx, L, PV, np.ones(1), w), Options(time_limit_s=0.01))
    assert out.status in ("time_limit", "error"), out
    assert out.status != "optimal"
    if out.status == "error":
        assert plan is None and not out.has_solution
    else:
        assert plan is not None and out.has_solution


@pytest.mark.parametrize("solver", ["highs", "cbc"])
def test_time_limited_solve_with_incumbent_is_not_optimal(a11, solver):
    """1 s at mip_gap 1e-9 on the A.11 mobile model: an incumbent but no proof. PuLP itself calls
    this "Optimal"; the typed outcome must say ``time_limit`` (or ``error`` without incumbent)."""
    ctx, L, PV, _ = a11
    w = equal_weights(L.shape).w
    opt = Options(solver=solver, time_limit_s=1.0, mip_gap=EXACT)
    plan, out = run(instance(ctx, L, PV, np.ones(1), w), opt)
    assert out.status in ("time_limit", "error"), out
    if out.status == "time_limit":
        assert plan is not None and out.objective is not None
        assert float(plan.value[0]) == pytest.approx(out.objective, abs=1e-3)
        if solver == "highs":
            assert out.bound > out.objective and out.gap > EXACT


def _hetero_small():
    T = 8
    return small_instance(three_dn_sites(T), np.full((3, T), 1 / 3), vehicles=2,
                          travel=np.array([[1, 1, 2], [1, 1, 3], [2, 3, 1]]))


@pytest.mark.parametrize("case", ["2dn", "3dn-hetero"])
def test_cbc_agrees_with_highs(case):
    inst = small_instance(two_dn_sites(), MOVING_2DN) if case == "2dn" else _hetero_small()
    hp, ho = solve_instance(inst, solver="highs", mip_gap=EXACT)
    cp, co = solve_instance(inst, solver="cbc", mip_gap=EXACT)
    assert ho.status == "optimal" and co.status == "optimal", (ho, co)
    assert co.objective == pytest.approx(ho.objective, abs=TOL)
    assert float(cp.value[0]) == pytest.approx(float(hp.value[0]), abs=1e-4)


# ============================================ regressions: defects found here, fixed in policies/
def test_symmetry_cut_keeps_the_optimum_with_different_terminal_energy():
    """Two vehicles with the same battery, e0 and free start but different terminal energies are
    not interchangeable: the symmetry cut x[0] <= x[1] must not be added (it was)."""
    T = 3
    # DN0: net load at the generator's P_min (cannot take a discharge); DN1: headroom both ways
    s0 = _site("a", [GeneratorSpec("g0", 0, 1.0, 0.5, 0.3, 0.3)], [0.5] * T, [0.0] * T)
    s1 = _site("b", [GeneratorSpec("g1", 0, 1.0, 0.1, 0.3, 0.3)], [0.5] * T, [0.0] * T)
    lossless = BatterySpec(0.5, 0.1, 0.475, 0.25, eta_ch=1.0, eta_dis=1.0, retention_per_h=1.0)
    vehs = tuple(VehicleSpec(f"m{i}", "truck", lossless, "a", 0.3) for i in range(2))
    w = np.array([[[0.9] * T, [0.1] * T]])
    inst = SfiInstance(sites=(s0, s1), vehicles=vehs, dt_h=1.0,
                       travel_steps=np.array([[1, 9], [9, 1]]),  # nobody can move in 3 steps
                       load_mw=np.array([[s0.load_forecast_mw, s1.load_forecast_mw]]),
                       pv_mw=np.zeros((1, 2, T)), prob=np.ones(1), weights=w,
                       e0_mwh=np.array([0.3, 0.3]), start=({0: 0, 1: 0}, {0: 0, 1: 0}),
                       e_end_mwh=np.array([0.15, 0.3]))  # vehicle 0 must discharge 0.15 MWh
    _, on = solve_instance(inst, mip_gap=EXACT)
    _, off = solve_instance(replace(inst, symmetry=False), mip_gap=EXACT)
    assert on.status == off.status == "optimal"
    # symmetry breaking must not change the optimum (the cut used to give 2.07 instead of 3.97)
    assert on.objective == pytest.approx(off.objective, abs=TOL)


def test_route_start_is_a_usable_mip_start():
    """Started from the optimal route and allowed to stop at any incumbent (mip_gap 1.0), HiGHS
    must return at least the start's value. A routes-only start padded with zeros used to be
    dropped by HiGHS ("Attempting to find feasible solution by solving LP for user-supplied values
    of discrete variables" -> "Infeasible"), giving 3.92 instead of 4.55, as without a start."""
    inst = small_instance(two_dn_sites(), MOVING_2DN)
    plan, out = solve_instance(inst, mip_gap=EXACT)
    cold = solve_model(build(inst), mip_gap=1.0)
    if not cold.objective < out.objective - 1e-3:
        pytest.skip("HiGHS finds the optimum without a start: the test cannot tell")
    model = build(inst)
    warm = solve_model(model, mip_gap=1.0, start=route_start(model, plan.x, plan.y))
    assert warm.has_solution
    assert warm.objective >= out.objective - 1e-4, (warm.objective, out.objective)


def test_transit_counts_a_vehicle_that_starts_on_the_road():
    """SfiPlan.transit must count a vehicle that starts on the road (start {site: step > 0}) as in
    transit until it arrives (it used to be built from y only)."""
    T = 4
    sites = three_dn_sites(T)
    inst = small_instance(sites, np.full((3, T), 1 / 3), start=({2: 2},))
    plan, out = solve_instance(inst, mip_gap=EXACT)
    assert out.status == "optimal"
    z = plan.transit(inst.travel_steps)
    # parked (stays) or on the road, in every step
    stays = np.einsum("mnnt->mt", plan.y)
    np.testing.assert_array_equal(stays + z, 1.0)


def _lp_bound(inst) -> float:
    """The LP relaxation's optimum (every binary relaxed)."""
    import pulp

    model = build(inst)
    for v in model.prob.variables():
        if v.cat in (pulp.LpBinary, pulp.LpInteger):
            v.cat = pulp.LpContinuous
    out = solve_model(model, mip_gap=EXACT)
    assert out.status == "optimal"
    return out.objective


@pytest.mark.parametrize("case", ["moving", "hetero"])
def test_arc_energy_keeps_the_optimum_and_tightens_the_lp(case):
    """The energy-along-arcs formulation (sfi_milp._arc_energy) has the same integer optimum as
    the plain one, and an LP relaxation at least as tight (strictly tighter on the hetero case,
    where a fractional vehicle charged in one DN and discharged in another)."""
    if case == "moving":
        inst = small_instance(two_dn_sites(), MOVING_2DN)
    else:
        inst = _hetero_small()
    _, arc = solve_instance(inst, mip_gap=EXACT)
    _, plain = solve_instance(replace(inst, arc_energy=False), mip_gap=EXACT)
    assert arc.status == plain.status == "optimal"
    assert arc.objective == pytest.approx(plain.objective, abs=1e-6)
    lp_arc, lp_plain = _lp_bound(inst), _lp_bound(replace(inst, arc_energy=False))
    assert lp_arc <= lp_plain + 1e-7
    assert lp_arc >= arc.objective - 1e-7
    if case == "hetero":
        assert lp_arc < lp_plain - 1e-4, (lp_arc, lp_plain)


def test_full_start_from_a_fixed_route_model_is_complete_and_feasible():
    """The exact stochastic model is warm-started from a fixed-route re-dispatch, which has no arc
    energies: full_start must derive them, so the start sets every variable and is feasible."""
    from policies.sfi_milp import full_start

    inst = _hetero_small()
    plan, out = solve_instance(inst, mip_gap=EXACT)
    fixed = build(replace(inst, fix_routes=(plan.x, plan.y), symmetry=False))
    assert solve_model(fixed, mip_gap=EXACT).status == "optimal"
    model = build(replace(inst, symmetry=False))
    start = full_start(model, fixed)
    assert len(start) == len(model.prob.variables())
    assert any(v.name.startswith("q_") for v in start)
    for v, val in start.items():
        v.varValue = val
    for c in model.prob.constraints.values():
        r = c.value()  # lhs - rhs
        bad = abs(r) if c.sense == 0 else max(0.0, r if c.sense == -1 else -r)
        assert bad <= 1e-7, (c.name, r)
    warm = solve_model(model, mip_gap=1.0, start=start)
    assert warm.objective >= out.objective - 1e-6


def test_cbc_bound_is_a_valid_dual_bound():
    """A CBC "optimal" outcome only means "within gapRel": its bound must not be reported as the
    objective (it was: 8.551308 < the optimum 8.551854 at mip_gap 1e-2, gap 0)."""
    inst = _hetero_small()
    _, ho = solve_instance(inst, solver="highs", mip_gap=EXACT)
    _, co = solve_instance(inst, solver="cbc", mip_gap=1e-2)
    assert co.status == "optimal" and co.objective <= ho.objective + TOL
    assert co.bound is None or co.bound >= ho.objective - TOL, (co.bound, ho.objective)


def test_dynamic_weights_do_not_depend_on_the_baseline_mip_gap(a11):
    """F_up^A is not unique among optimal baseline dispatches (DN1 h13: 1.153 to 1.235 MW around
    the requirement 1.191 MW); the weights must not depend on the caller's mip_gap (they did:
    w_DN1,h13 = 0.541 at 1e-3 and 0.975 at 1e-9)."""
    ctx, L, PV, _ = a11
    loose = make_weights(ctx, L, PV, np.ones(1), "dynamic", Options(mip_gap=1e-3))
    tight = make_weights(ctx, L, PV, np.ones(1), "dynamic", Options(mip_gap=EXACT))
    np.testing.assert_allclose(loose.w, tight.w, atol=1e-3)


def test_highs_options_reach_the_solver():
    """The seeds of the uniqueness test below must really reach HiGHS (else it is vacuous)."""
    import highspy

    inst = small_instance(two_dn_sites(), MOVING_2DN)
    model = build(inst)
    out = solve_model(model, mip_gap=EXACT, options={"random_seed": 7})
    assert out.status == "optimal"
    h = model.prob.solverModel
    assert isinstance(h, highspy.Highs)
    status, value = h.getOptionValue("random_seed")
    assert value == 7


@pytest.mark.slow
def test_multi_scenario_baseline_is_lexicographic_and_unique(a11):
    """A.6 baseline of the forecast and a reduced scenario: both stages proven optimal for
    every (scenario, DN), and the weights do not depend on the solver's choice among the many
    SFI-optimal dispatches. They did: maximising SFI with a small F_up tie-break did not close its
    1e-9 gap on noisy scenarios (recorded as time_limit), and maximising the plain sum of F_up in
    stage 2 left F_up free to move between deficit hours (the weights changed by up to 0.45 with
    HiGHS's random seed). Here two random seeds must give the same deficits and weights."""
    from experiments.scenarios_mc import monte_carlo, reduce
    from policies.sfi import baseline

    ctx, L, PV, pv_cap = a11
    sc = reduce(monte_carlo(L[0], PV[0], pv_cap, 100, seed=7), 2)
    Ls = np.concatenate([L, np.array(sc.load_mw)[:1]])
    PVs = np.concatenate([PV, np.array(sc.pv_mw)[:1]])
    p = np.array([0.5, 0.5])
    ws = []
    for seed in (0, 7):  # seed 0 vs 7 moved DN1's F_up between deficit hours before
        plan = baseline(ctx, Ls, PVs, p, Options(), 0.5, options={"random_seed": seed})
        assert plan.outcome.status == "optimal", plan.outcome
        assert "stage 2: optimal 6" in plan.outcome.message, plan.outcome.message
        ws.append(dynamic_weights(Ls, PVs, p, plan.flex_stat_up_mw, 0.5))
    # Tolerance from the solver's own: stage 2 (maximise sum_t c_t / R_t = sum_t (1 - FD_t) over
    # T = 24 hours) stops within BASELINE_GAP relative or HiGHS's mip_abs_gap (1e-6) absolute,
    # so two runs' sums of FD over a day agree to 2 (BASELINE_GAP T + 1e-6); both stages also stop
    # at their own gaps, so single hours are held to 1e-4 (a solver-choice shift between deficit
    # hours, the failure this test guards against, moved weights by up to 0.45).
    from policies.sfi import BASELINE_GAP
    T = ws[0].fd.shape[-1]
    day_tol = 2 * (BASELINE_GAP * T + 1e-6)
    for w in ws[1:]:
        np.testing.assert_allclose(w.fd.sum(axis=-1), ws[0].fd.sum(axis=-1), atol=day_tol)
        np.testing.assert_allclose(w.fd, ws[0].fd, atol=1e-4)
        np.testing.assert_allclose(w.w, ws[0].w, atol=1e-4)
    assert (ws[0].fd > 0).any()  # the check is not vacuous: there are deficit hours


def test_baseline_stage_two_keeps_the_sfi_optimum(a11):
    """Stage 2 changes the dispatch but not the SFI: the baseline's accumulated SFI equals the
    stage-1 optimum (relative tolerance BASELINE_SFI_TOL), and its F_up covers at least as much of
    the requirement as the stage-1 dispatch did."""
    from policies.sfi import BASELINE_SFI_TOL, baseline

    ctx, L, PV, _ = a11
    w = equal_weights(L.shape).w
    stage1, o1 = run(instance(ctx, L, PV, np.ones(1), w, with_mess=False), Options(mip_gap=EXACT))
    assert o1.status == "optimal"
    plan = baseline(ctx, L, PV, np.ones(1), Options(), 0.5)
    assert plan.outcome.status == "optimal"
    assert plan.value[0] == pytest.approx(stage1.value[0], rel=10 * BASELINE_SFI_TOL)
    req = 0.5 * np.maximum(L - PV, 0.0)
    short = np.maximum(0.0, req - plan.flex_stat_up_mw).sum()
    short1 = np.maximum(0.0, req - stage1.flex_stat_up_mw).sum()
    assert short <= short1 + 1e-6
