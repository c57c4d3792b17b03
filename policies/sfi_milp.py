"""The weighted-SFI co-scheduling MILP of seed 000 (MODELS.md A.4-A.8, A.10.3), built with PuLP.

One builder covers every variant: the deterministic model is the stochastic one with a single
scenario of probability 1; fixing the routes gives the re-dispatch of A.10.4; ``vehicles=()``
gives the no-MESS baseline A0 of A.6; ``fix_site`` gives "fixed at DN1" of A.9.

Units are MW, MWh and hours; the objective is dimensionless SFI. Routing uses A.8 with integer
travel steps (``travel_steps[n, n] == 1`` means "stay one step"):

* ``x[m, n, t]`` (t = 0..T): vehicle ``m`` parked at site ``n`` at the start of step ``t``;
* ``y[m, n, n2, t]`` (t = 0..T-1): stays at ``n`` for step ``t`` (``n2 == n``) or leaves ``n`` for
  ``n2`` at the start of ``t``, arriving ``travel_steps[n, n2]`` steps later.

A vehicle's start is a set of options ``{site: arrival_step}`` (one is chosen): a parked vehicle
has ``{n0: 0}``, one in transit ``{dest: steps_to_arrival}``, and a free initial location (the
study default, E.A4) ``{n: 0 for every n}``. Build / solve / extract are separate functions
(PyPSA style) and build time is measured apart from solve time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import pulp

from policies.solve import SolveOutcome, solve
from sim.flexibility import dr_flex, generator_flex, storage_flex, vehicle_flex
from sim.types import SiteInfo, VehicleSpec

EPS_ENERGY_PER_MWH = 1e-4  # 1e-7 per kWh (A.7 tie-breaker)
EPS_MOVE = 1e-5  # per move (A.7 tie-breaker)
EPS_ES_PER_MWH = 1e-6  # against pointless stationary-storage cycling
SLACK_PENALTY_PER_MWH = 1e3  # balance slacks: must stay zero in valid data


@dataclass(frozen=True)
class SfiInstance:
    """Data of one SFI model (arrays are (scenario, site, step) unless noted)."""

    sites: tuple[SiteInfo, ...]
    vehicles: tuple[VehicleSpec, ...]
    dt_h: float
    travel_steps: np.ndarray  # (N, N) int, diagonal 1
    load_mw: np.ndarray  # (S, N, T)
    pv_mw: np.ndarray  # (S, N, T)
    prob: np.ndarray  # (S,)
    weights: np.ndarray  # (S, N, T)
    e0_mwh: np.ndarray  # (M,)
    start: tuple[dict[int, int], ...]  # per vehicle: {site index: arrival step}
    e_end_mwh: np.ndarray | None = None  # (M,) terminal energy (neutrality), None: free
    es_e0_mwh: np.ndarray | None = None  # (N,) stationary storage energy at t = 0
    es_cyclic: bool = True  # stationary storage back to its initial energy at T
    gen_prev_mw: np.ndarray | None = None  # (G,) outputs before t = 0 (ramp reference)
    dr_prev_mw: np.ndarray | None = None  # (N,)
    dr_left_mwh: np.ndarray | None = None  # (N,) remaining daily DR energy
    fix_routes: tuple[np.ndarray, np.ndarray] | None = None  # (x (M,N,T+1), y (M,N,N,T))
    fix_site: int | None = None  # every vehicle parked at this site all the time
    symmetry: bool = True
    arc_energy: bool = True  # energy along the route arcs (tighter LP, see _arc_energy)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        s, n, t = self.load_mw.shape
        return s, len(self.vehicles), n, t

    def generators(self) -> list[tuple[int, object]]:
        """(site index, generator spec) of every generator, in a fixed order."""
        return [(n, g) for n, s in enumerate(self.sites) for g in s.resources.generators]


@dataclass
class SfiModel:
    prob: pulp.LpProblem
    inst: SfiInstance
    v: dict = field(default_factory=dict)
    build_s: float = 0.0

    def value(self, var) -> float:
        return _val(var)


@dataclass
class SfiPlan:
    """A solved model: route (first stage), per-scenario dispatch, recomputed flexibility, SFI."""

    outcome: SolveOutcome
    x: np.ndarray  # (M, N, T+1)
    y: np.ndarray  # (M, N, N, T)
    ch_mw: np.ndarray  # (S, M, N, T)
    dis_mw: np.ndarray  # (S, M, N, T)
    e_mwh: np.ndarray  # (S, M, T+1)
    gen_mw: np.ndarray  # (S, G, T)
    dr_mw: np.ndarray  # (S, N, T)
    es_ch_mw: np.ndarray  # (S, N, T)
    es_dis_mw: np.ndarray  # (S, N, T)
    es_e_mwh: np.ndarray  # (S, N, T+1)
    slack_mw: np.ndarray  # (S, N, T) sigma+ + sigma-
    flex_stat_mw: np.ndarray  # (S, N, T) own resources F_up + F_dn (min() recomputation)
    flex_stat_up_mw: np.ndarray  # (S, N, T) own resources F_up alone (A.6 baseline)
    flex_mess_mw: np.ndarray  # (S, M, N, T)
    flex_lp_stat_mw: np.ndarray  # the LP's epigraph values, for checking
    flex_lp_mess_mw: np.ndarray
    sfi: np.ndarray  # (S, N, T)
    weighted: np.ndarray  # (S, N, T): w * SFI
    value: np.ndarray  # (S,): sum over t, n of w * SFI (J_s of A.10.4)

    @property
    def expected_value(self) -> float:
        return float(self.value @ self._prob)

    _prob: np.ndarray = field(default=None, repr=False)

    def transit(self, travel_steps: np.ndarray) -> np.ndarray:
        """z[m, t] of A.8: 1 while vehicle m is on the road during step t (including a vehicle
        that starts on the road, until the step at which it first appears at a site)."""
        m_, n_, _, t_ = self.y.shape
        z = np.zeros((m_, t_))
        for m in range(m_):
            first = np.flatnonzero(self.x[m].sum(axis=0)[:t_] > 0.5)
            z[m, :first[0] if len(first) else t_] = 1
        for m in range(m_):
            for a in range(n_):
                for b in range(n_):
                    if a == b:
                        continue
                    for t in np.flatnonzero(self.y[m, a, b] > 0.5):
                        z[m, t:t + int(travel_steps[a, b])] += 1
        return z

    def site_of(self) -> np.ndarray:
        """(M, T): index of the site where each vehicle stays during step t, or -1."""
        m_, n_, _, t_ = self.y.shape
        out = -np.ones((m_, t_), dtype=int)
        for n in range(n_):
            out[self.y[:, n, n, :] > 0.5] = n
        return out


def _identical_free_vehicles(inst: SfiInstance) -> bool:
    """Two interchangeable vehicles with a free start: the case of the A.7 symmetry cut."""
    return len(inst.vehicles) == 2 and inst.vehicles[0].battery == inst.vehicles[1].battery \
        and inst.e0_mwh[0] == inst.e0_mwh[1] and inst.start[0] == inst.start[1] \
        and len(inst.start[0]) > 1 and (inst.e_end_mwh is None
                                        or inst.e_end_mwh[0] == inst.e_end_mwh[1])


def _lin(pairs, const: float = 0.0) -> pulp.LpAffineExpression:
    return pulp.LpAffineExpression(pairs, constant=const)


def build(inst: SfiInstance) -> SfiModel:
    """Create the PuLP model of ``inst`` (maximisation)."""
    t0 = time.perf_counter()
    S, M, N, T = inst.shape
    dt = inst.dt_h
    ts = np.asarray(inst.travel_steps, dtype=int)
    prob = pulp.LpProblem("sfi", pulp.LpMaximize)
    cons = []
    obj: list[tuple[pulp.LpVariable, float]] = []
    V = prob.add_variable  # PuLP 3.3+: variables attached to the model (LpVariable() is deprecated)
    B = pulp.LpBinary

    def add(expr):
        cons.append(expr)

    # ---------------------------------------------------------------- first stage: routes
    x = {(m, n, t): V(f"x_{m}_{n}_{t}", cat=B) for m in range(M) for n in range(N)
         for t in range(T + 1)}
    y = {}
    for m in range(M):
        for a in range(N):
            for b in range(N):
                for t in range(T):
                    if t + ts[a, b] <= T:
                        y[m, a, b, t] = V(f"y_{m}_{a}_{b}_{t}", cat=B)
    z0 = {}
    for m in range(M):
        opts = inst.start[m]
        for n in opts:
            z0[m, n] = V(f"z_{m}_{n}", cat=B) if len(opts) > 1 else 1
        if len(opts) > 1:
            add(_lin([(z0[m, n], 1.0) for n in opts]) == 1)
        for n in range(N):
            for t in range(T + 1):
                init = []
                const = 0.0
                if n in opts and opts[n] == t:
                    if isinstance(z0[m, n], pulp.LpVariable):
                        init.append((z0[m, n], -1.0))
                    else:
                        const = -1.0
                arrivals = []
                if t >= 1:
                    if (m, n, n, t - 1) in y:
                        arrivals.append((y[m, n, n, t - 1], -1.0))
                    for a in range(N):
                        if a != n and t - ts[a, n] >= 0 and (m, a, n, t - ts[a, n]) in y:
                            arrivals.append((y[m, a, n, t - ts[a, n]], -1.0))
                # x = stays + arrivals + initial option
                add(_lin([(x[m, n, t], 1.0)] + arrivals + init, const) == 0)
                if t < T:
                    deps = [(y[m, n, b, t], 1.0) for b in range(N) if (m, n, b, t) in y]
                    add(_lin(deps + [(x[m, n, t], -1.0)]) == 0)
    if inst.fix_site is not None:
        for m in range(M):
            for t in range(T):
                add(_lin([(y[m, inst.fix_site, inst.fix_site, t], 1.0)]) == 1)
    if inst.fix_routes is not None:
        xf, yf = inst.fix_routes
        for key, var in x.items():
            var.lowBound = var.upBound = int(round(xf[key]))
        for (m, a, b, t), var in y.items():
            var.lowBound = var.upBound = int(round(yf[m, a, b, t]))
    if inst.symmetry and _identical_free_vehicles(inst) and inst.fix_routes is None:
        add(_lin([(x[0, n, 0], n) for n in range(N)] + [(x[1, n, 0], -n) for n in range(N)]) <= 0)
    for (_, a, b, _), var in y.items():
        if a != b:
            obj.append((var, -EPS_MOVE))

    gens = inst.generators()
    v_scen = []
    for s in range(S):
        p_s = float(inst.prob[s])
        w = inst.weights[s]
        sv = {}
        # ------------------------------------------------------------ MESS dispatch and SOC
        ch = {(m, n, t): V(f"ch_{s}_{m}_{n}_{t}", 0) for m in range(M) for n in range(N)
              for t in range(T)}
        dis = {(m, n, t): V(f"dis_{s}_{m}_{n}_{t}", 0) for m in range(M) for n in range(N)
               for t in range(T)}
        fu = {(m, n, t): V(f"fmu_{s}_{m}_{n}_{t}", 0) for m in range(M) for n in range(N)
              for t in range(T)}
        fd = {(m, n, t): V(f"fmd_{s}_{m}_{n}_{t}", 0) for m in range(M) for n in range(N)
              for t in range(T)}
        u = {(m, t): V(f"u_{s}_{m}_{t}", cat=B) for m in range(M) for t in range(T)}
        e = {}
        for m, veh in enumerate(inst.vehicles):
            b = veh.battery
            tau = b.retention_per_h ** dt
            for t in range(T + 1):
                e[m, t] = V(f"e_{s}_{m}_{t}", b.e_min_mwh, b.e_max_mwh)
            add(_lin([(e[m, 0], 1.0)]) == float(inst.e0_mwh[m]))
            if inst.e_end_mwh is not None:
                add(_lin([(e[m, T], 1.0)]) == float(inst.e_end_mwh[m]))
            for t in range(T):
                # (9): E_{t+1} = tau E_t + eta_ch P_ch dt - P_dis dt / eta_dis
                pairs = [(e[m, t + 1], 1.0), (e[m, t], -tau)]
                pairs += [(ch[m, n, t], -b.eta_ch * dt) for n in range(N)]
                pairs += [(dis[m, n, t], dt / b.eta_dis) for n in range(N)]
                add(_lin(pairs) == 0)
                # (11) with one mode binary per vehicle and step
                add(_lin([(ch[m, n, t], 1.0) for n in range(N)] + [(u[m, t], -b.p_max_mw)]) <= 0)
                add(_lin([(dis[m, n, t], 1.0) for n in range(N)] + [(u[m, t], b.p_max_mw)])
                    <= b.p_max_mw)
                for n in range(N):
                    stay = y.get((m, n, n, t))
                    # (8): dispatch only while parked for the whole step
                    if stay is None:
                        ch[m, n, t].upBound = dis[m, n, t].upBound = 0.0
                        fu[m, n, t].upBound = fd[m, n, t].upBound = 0.0
                        continue
                    add(_lin([(ch[m, n, t], 1.0), (stay, -b.p_max_mw)]) <= 0)
                    add(_lin([(dis[m, n, t], 1.0), (stay, -b.p_max_mw)]) <= 0)
                    # A.4 MESS flexibility epigraphs
                    add(_lin([(fu[m, n, t], 1.0), (stay, -b.p_max_mw), (dis[m, n, t], 1.0),
                              (ch[m, n, t], -1.0)]) <= 0)
                    add(_lin([(fd[m, n, t], 1.0), (stay, -b.p_max_mw), (dis[m, n, t], -1.0),
                              (ch[m, n, t], 1.0)]) <= 0)
                    coef = p_s * w[n, t] / inst.sites[n].c_norm_mw
                    obj += [(fu[m, n, t], coef), (fd[m, n, t], coef),
                            (ch[m, n, t], -p_s * EPS_ENERGY_PER_MWH * dt),
                            (dis[m, n, t], -p_s * EPS_ENERGY_PER_MWH * dt)]
                # A.4 energy terms, summed over sites: a vehicle is at one site at a time, so
                # this is the per-site epigraph, and a tighter LP relaxation when the route is
                # fractional (the per-site form lets a split vehicle count its energy N times).
                add(_lin([(fu[m, n, t], 1.0) for n in range(N)]
                         + [(e[m, t + 1], -b.eta_dis / dt)]) <= -b.eta_dis * b.e_min_mwh / dt)
                add(_lin([(fd[m, n, t], 1.0) for n in range(N)]
                         + [(e[m, t + 1], 1.0 / (b.eta_ch * dt))]) <= b.e_max_mwh / (b.eta_ch * dt))
        if inst.arc_energy and inst.fix_routes is None and inst.fix_site is None:
            _arc_energy(inst, s, V, add, y, z0, ch, dis, fu, fd, e)
        sv.update(ch=ch, dis=dis, fu=fu, fd=fd, u=u, e=e)

        # ------------------------------------------------------------ DN resources
        supply = {(n, t): [] for n in range(N) for t in range(T)}
        pg, fgu, fgd = {}, {}, {}
        for gi, (n, g) in enumerate(gens):
            coef_n = [p_s * w[n, t] / inst.sites[n].c_norm_mw for t in range(T)]
            for t in range(T):
                pg[gi, t] = V(f"pg_{s}_{gi}_{t}", g.p_min_mw, g.p_max_mw)
                fgu[gi, t] = V(f"fgu_{s}_{gi}_{t}", 0, g.ramp_up_mw_per_h * dt)
                fgd[gi, t] = V(f"fgd_{s}_{gi}_{t}", 0, g.ramp_down_mw_per_h * dt)
                add(_lin([(fgu[gi, t], 1.0), (pg[gi, t], 1.0)]) <= g.p_max_mw)
                add(_lin([(fgd[gi, t], 1.0), (pg[gi, t], -1.0)]) <= -g.p_min_mw)
                supply[n, t].append((pg[gi, t], 1.0))
                obj += [(fgu[gi, t], coef_n[t]),
                        (fgd[gi, t], coef_n[t])]
                if t >= 1:
                    add(_lin([(pg[gi, t], 1.0), (pg[gi, t - 1], -1.0)])
                        <= g.ramp_up_mw_per_h * dt)
                    add(_lin([(pg[gi, t - 1], 1.0), (pg[gi, t], -1.0)])
                        <= g.ramp_down_mw_per_h * dt)
                elif inst.gen_prev_mw is not None:
                    prev = float(inst.gen_prev_mw[gi])
                    pg[gi, 0].lowBound = max(g.p_min_mw, prev - g.ramp_down_mw_per_h * dt)
                    pg[gi, 0].upBound = min(g.p_max_mw, prev + g.ramp_up_mw_per_h * dt)
        drv, fdru, fdrd = {}, {}, {}
        esc, esd, ese, esu, feu, fed = {}, {}, {}, {}, {}, {}
        sig_p, sig_m = {}, {}
        for n, site in enumerate(inst.sites):
            r = site.resources
            coef_n = [p_s * w[n, t] / site.c_norm_mw for t in range(T)]
            if r.dr is not None:
                ramp = r.dr.ramp_mw_per_h * dt
                for t in range(T):
                    drv[n, t] = V(f"dr_{s}_{n}_{t}", 0, r.dr.p_max_mw)
                    fdru[n, t] = V(f"fdru_{s}_{n}_{t}", 0, ramp)
                    fdrd[n, t] = V(f"fdrd_{s}_{n}_{t}", 0, ramp)
                    add(_lin([(fdru[n, t], 1.0), (drv[n, t], 1.0)]) <= r.dr.p_max_mw)
                    add(_lin([(fdrd[n, t], 1.0), (drv[n, t], -1.0)]) <= 0)
                    supply[n, t].append((drv[n, t], 1.0))
                    obj += [(fdru[n, t], coef_n[t]),
                            (fdrd[n, t], coef_n[t])]
                    if t >= 1:
                        add(_lin([(drv[n, t], 1.0), (drv[n, t - 1], -1.0)]) <= ramp)
                        add(_lin([(drv[n, t - 1], 1.0), (drv[n, t], -1.0)]) <= ramp)
                    elif inst.dr_prev_mw is not None:
                        prev = float(inst.dr_prev_mw[n])
                        drv[n, 0].lowBound = max(0.0, prev - ramp)
                        drv[n, 0].upBound = min(r.dr.p_max_mw, prev + ramp)
                left = r.dr.e_max_mwh if inst.dr_left_mwh is None else float(inst.dr_left_mwh[n])
                add(_lin([(drv[n, t], dt) for t in range(T)]) <= max(left, 0.0))
            st = r.storage
            if st is not None:
                e_init = st.e_init_mwh if inst.es_e0_mwh is None else float(inst.es_e0_mwh[n])
                for t in range(T + 1):
                    ese[n, t] = V(f"ese_{s}_{n}_{t}", st.e_min_mwh, st.e_max_mwh)
                add(_lin([(ese[n, 0], 1.0)]) == e_init)
                if inst.es_cyclic:
                    add(_lin([(ese[n, T], 1.0)]) == st.e_init_mwh)
                for t in range(T):
                    esc[n, t] = V(f"esc_{s}_{n}_{t}", 0, st.p_ch_max_mw)
                    esd[n, t] = V(f"esd_{s}_{n}_{t}", 0, st.p_dis_max_mw)
                    esu[n, t] = V(f"esu_{s}_{n}_{t}", cat=B)
                    hi = st.ramp_mw_per_h * dt if st.ramp_mw_per_h is not None else None
                    feu[n, t] = V(f"feu_{s}_{n}_{t}", 0, hi)
                    fed[n, t] = V(f"fed_{s}_{n}_{t}", 0, hi)
                    eta = st.eta
                    add(_lin([(ese[n, t + 1], 1.0), (ese[n, t], -1.0), (esc[n, t], -eta * dt),
                              (esd[n, t], dt / eta)]) == 0)
                    add(_lin([(esc[n, t], 1.0), (esu[n, t], -st.p_ch_max_mw)]) <= 0)
                    add(_lin([(esd[n, t], 1.0), (esu[n, t], st.p_dis_max_mw)])
                        <= st.p_dis_max_mw)
                    # A.4 storage: p_net = dis - ch, energy after the step ese[t+1]
                    add(_lin([(feu[n, t], 1.0), (esd[n, t], 1.0), (esc[n, t], -1.0)])
                        <= st.p_dis_max_mw)
                    add(_lin([(feu[n, t], 1.0), (ese[n, t + 1], -eta / dt)])
                        <= -eta * st.e_min_mwh / dt)
                    add(_lin([(fed[n, t], 1.0), (esc[n, t], 1.0), (esd[n, t], -1.0)])
                        <= st.p_ch_max_mw)
                    add(_lin([(fed[n, t], 1.0), (ese[n, t + 1], 1.0 / (eta * dt))])
                        <= st.e_max_mwh / (eta * dt))
                    supply[n, t] += [(esd[n, t], 1.0), (esc[n, t], -1.0)]
                    obj += [(feu[n, t], coef_n[t]),
                            (fed[n, t], coef_n[t]),
                            (esc[n, t], -p_s * EPS_ES_PER_MWH * dt),
                            (esd[n, t], -p_s * EPS_ES_PER_MWH * dt)]
            for t in range(T):
                sig_p[n, t] = V(f"sp_{s}_{n}_{t}", 0)
                sig_m[n, t] = V(f"sm_{s}_{n}_{t}", 0)
                obj += [(sig_p[n, t], -p_s * SLACK_PENALTY_PER_MWH * dt),
                        (sig_m[n, t], -p_s * SLACK_PENALTY_PER_MWH * dt)]
                mess = []
                for m in range(M):
                    mess += [(dis[m, n, t], 1.0), (ch[m, n, t], -1.0)]
                # (13): supply + PV + DR + MESS + ES + slack = load
                add(_lin(supply[n, t] + mess + [(sig_p[n, t], 1.0), (sig_m[n, t], -1.0)])
                    == float(inst.load_mw[s, n, t] - inst.pv_mw[s, n, t]))
        sv.update(pg=pg, fgu=fgu, fgd=fgd, dr=drv, fdru=fdru, fdrd=fdrd, esc=esc, esd=esd,
                  ese=ese, esu=esu, feu=feu, fed=fed, sp=sig_p, sm=sig_m)
        v_scen.append(sv)

    prob += _lin(obj)
    for c in cons:
        prob.addConstraint(c)
    return SfiModel(prob, inst, {"x": x, "y": y, "z": z0, "scen": v_scen},
                    time.perf_counter() - t0)


def _arc_energy(inst: SfiInstance, s: int, V, add, y, z0, ch, dis, fu, fd, e) -> None:
    """Energy carried along the route arcs (a tighter formulation of the same model).

    For every arc ``y[m, a, b, t]`` of the time-expanded network, ``q`` is the vehicle's energy at
    departure times ``y`` and, for a stay, ``r`` its energy at the end of the step times ``y``.
    Energy is conserved at every (site, step) node like the route itself, and the vehicle's
    energy ``e`` is the sum over the arcs (plus the transit and not-yet-arrived terms), so (9)
    follows and every integer solution is unchanged. In the LP relaxation, however, each
    fractional part of a route keeps its own energy within [E_min, E_max] and its own A.4 energy
    terms: a vehicle split between two DNs can no longer charge in one part and discharge in the
    other against one shared state of charge, which was the main source of the root LP gap.
    """
    S, M, N, T = inst.shape
    dt = inst.dt_h
    ts = np.asarray(inst.travel_steps, dtype=int)
    for m, veh in enumerate(inst.vehicles):
        b = veh.battery
        tau = b.retention_per_h ** dt
        e0 = float(inst.e0_mwh[m])
        q, r = {}, {}
        for (mm, a, c, t), yv in y.items():
            if mm != m:
                continue
            q[a, c, t] = V(f"q_{s}_{m}_{a}_{c}_{t}", 0)
            add(_lin([(q[a, c, t], 1.0), (yv, -b.e_max_mwh)]) <= 0)
            add(_lin([(q[a, c, t], 1.0), (yv, -b.e_min_mwh)]) >= 0)
            if a == c:
                r[a, t] = V(f"r_{s}_{m}_{a}_{t}", 0)
                add(_lin([(r[a, t], 1.0), (q[a, c, t], -tau), (ch[m, a, t], -b.eta_ch * dt),
                          (dis[m, a, t], dt / b.eta_dis)]) == 0)
                add(_lin([(r[a, t], 1.0), (yv, -b.e_max_mwh)]) <= 0)
                add(_lin([(r[a, t], 1.0), (yv, -b.e_min_mwh)]) >= 0)
                # A.4 energy terms of the part of the vehicle parked at a
                add(_lin([(fu[m, a, t], 1.0), (r[a, t], -b.eta_dis / dt),
                          (yv, b.eta_dis * b.e_min_mwh / dt)]) <= 0)
                add(_lin([(fd[m, a, t], 1.0), (r[a, t], 1.0 / (b.eta_ch * dt)),
                          (yv, -b.e_max_mwh / (b.eta_ch * dt))]) <= 0)
        opts = inst.start[m]
        # energy of each start option where the vehicle first appears: (site, step) -> terms
        init = {}
        for n, a0 in opts.items():
            zv = z0[m, n]
            coef = e0 * tau ** a0
            init[n, a0] = ([(zv, coef)], 0.0) if isinstance(zv, pulp.LpVariable) else ([], coef)
        for t in range(T + 1):
            total, const = [], 0.0
            for n in range(N):
                terms, c0 = init.get((n, t), ([], 0.0))
                inflow = list(terms)
                if t >= 1 and (n, t - 1) in r:
                    inflow.append((r[n, t - 1], 1.0))
                for a in range(N):
                    d = ts[a, n]
                    if a != n and t - d >= 0 and (a, n, t - d) in q:
                        inflow.append((q[a, n, t - d], tau ** d))
                total += inflow
                const += c0
                if t < T:  # conservation: what arrives at (n, t) leaves it (stays or moves)
                    out = [(q[n, c, t], -1.0) for c in range(N) if (n, c, t) in q]
                    add(_lin(inflow + out, c0) == 0)
            # vehicles on the road at t, and a start option not reached yet
            for (a, c, t1), qv in q.items():
                if a != c and t1 < t < t1 + ts[a, c]:
                    total.append((qv, tau ** (t - t1)))
            for n, a0 in opts.items():
                if t < a0:
                    zv = z0[m, n]
                    if isinstance(zv, pulp.LpVariable):
                        total.append((zv, e0 * tau ** t))
                    else:
                        const += e0 * tau ** t
            add(_lin(total + [(e[m, t], -1.0)], const) == 0)


def _val(var) -> float:
    if isinstance(var, (int, float)):
        return float(var)
    v = var.varValue
    return 0.0 if v is None else float(v)


def route_start(model: SfiModel, x: np.ndarray, y: np.ndarray, solver: str = "highs",
                time_limit_s: float = 30.0) -> dict:
    """A MIP start for ``model`` with the routes ``x``/``y``: the routes' best dispatch (a
    fixed-route solve of the same instance) matched by name. Every discrete variable is set, so
    the solver only completes the continuous rest (e.g. the arc energies) with an LP. If the
    fixed-route solve finds nothing, the start is the routes alone."""
    start = {}
    for key, var in model.v["x"].items():
        start[var] = float(round(x[key]))
    for (m, a, b, t), var in model.v["y"].items():
        start[var] = float(round(y[m, a, b, t]))
    for (m, n), var in model.v["z"].items():  # the start option taken
        if isinstance(var, pulp.LpVariable):
            start[var] = float(round(x[m, n, model.inst.start[m][n]]))
    fixed = build(replace(model.inst, fix_routes=(x, y)))
    out = solve(fixed.prob, solver=solver, time_limit_s=time_limit_s, mip_gap=1e-6)
    if out.has_solution:
        start.update(full_start(model, fixed))
    return start


def full_start(model: SfiModel, solved: SfiModel) -> dict:
    """A complete MIP start for ``model`` from a solved model of the same shape (e.g. the
    fixed-route re-dispatch of a candidate route): every variable is matched by name. A partial
    start (routes only) is not enough for HiGHS, which rejects an infeasible start."""
    values = {v.name: v.varValue for v in solved.prob.variables() if v.varValue is not None}
    start = {}
    for v in model.prob.variables():
        if v.name in values:
            start[v] = values[v.name]
        elif v.name.startswith(("q_", "r_")):
            # arc energies (absent from a fixed-route model): energy at departure / at the end
            # of a stay on the arcs the route takes, 0 elsewhere; without them HiGHS would
            # complete the start with an LP over the whole model
            parts = v.name.split("_")
            s, m = parts[1], parts[2]
            t = int(parts[-1])
            a = parts[3]
            b = parts[4] if parts[0] == "q" else a
            on = values.get(f"y_{m}_{a}_{b}_{t}")
            e = values.get(f"e_{s}_{m}_{t if parts[0] == 'q' else t + 1}")
            if on is not None and e is not None:
                start[v] = e if on > 0.5 else 0.0
    return start


def solve_model(model: SfiModel, solver: str = "highs", time_limit_s: float | None = 60.0,
                mip_gap: float = 1e-4, start: dict | None = None,
                options: dict | None = None) -> SolveOutcome:
    return solve(model.prob, solver=solver, time_limit_s=time_limit_s, mip_gap=mip_gap,
                 build_s=model.build_s, start=start, options=options)


def extract(model: SfiModel, outcome: SolveOutcome) -> SfiPlan:
    """Read the solution and recompute every flexibility with the explicit ``min()`` (A.4)."""
    inst = model.inst
    val = model.value
    S, M, N, T = inst.shape
    dt = inst.dt_h
    gens = inst.generators()
    G = len(gens)
    x = np.zeros((M, N, T + 1))
    y = np.zeros((M, N, N, T))
    for key, var in model.v["x"].items():
        x[key] = round(val(var))
    for key, var in model.v["y"].items():
        y[key] = round(val(var))
    shp = {"ch": (S, M, N, T), "dis": (S, M, N, T), "e": (S, M, T + 1), "pg": (S, G, T),
           "dr": (S, N, T), "esc": (S, N, T), "esd": (S, N, T), "ese": (S, N, T + 1),
           "slack": (S, N, T), "fs_lp": (S, N, T), "fm_lp": (S, M, N, T)}
    a = {k: np.zeros(v) for k, v in shp.items()}
    for s, sv in enumerate(model.v["scen"]):
        for (m, n, t), var in sv["ch"].items():
            a["ch"][s, m, n, t] = val(var)
            a["dis"][s, m, n, t] = val(sv["dis"][m, n, t])
            a["fm_lp"][s, m, n, t] = val(sv["fu"][m, n, t]) + val(sv["fd"][m, n, t])
        for (m, t), var in sv["e"].items():
            a["e"][s, m, t] = val(var)
        for (gi, t), var in sv["pg"].items():
            a["pg"][s, gi, t] = val(var)
            n = gens[gi][0]
            a["fs_lp"][s, n, t] += val(sv["fgu"][gi, t]) + val(sv["fgd"][gi, t])
        for (n, t), var in sv["dr"].items():
            a["dr"][s, n, t] = val(var)
            a["fs_lp"][s, n, t] += val(sv["fdru"][n, t]) + val(sv["fdrd"][n, t])
        for (n, t), var in sv["esc"].items():
            a["esc"][s, n, t] = val(var)
            a["esd"][s, n, t] = val(sv["esd"][n, t])
            a["fs_lp"][s, n, t] += val(sv["feu"][n, t]) + val(sv["fed"][n, t])
        for (n, t), var in sv["ese"].items():
            a["ese"][s, n, t] = val(var)
        for (n, t), var in sv["sp"].items():
            a["slack"][s, n, t] = val(var) + val(sv["sm"][n, t])
    # flexibility by min() from the dispatch
    fs = np.zeros((S, N, T))
    fs_up = np.zeros((S, N, T))
    for gi, (n, g) in enumerate(gens):
        up, dn = generator_flex(a["pg"][:, gi, :], g.p_min_mw, g.p_max_mw, g.ramp_up_mw_per_h,
                                g.ramp_down_mw_per_h, dt)
        fs[:, n, :] += up + dn
        fs_up[:, n, :] += up
    for n, site in enumerate(inst.sites):
        r = site.resources
        if r.dr is not None:
            up, dn = dr_flex(a["dr"][:, n, :], r.dr.p_max_mw, r.dr.ramp_mw_per_h, dt)
            fs[:, n, :] += up + dn
            fs_up[:, n, :] += up
        if r.storage is not None:
            up, dn = storage_flex(a["esd"][:, n, :] - a["esc"][:, n, :], a["ese"][:, n, 1:],
                                  r.storage, dt)
            fs[:, n, :] += up + dn
            fs_up[:, n, :] += up
    fm = np.zeros((S, M, N, T))
    for m, veh in enumerate(inst.vehicles):
        b = veh.battery
        for n in range(N):
            up, dn = vehicle_flex(a["ch"][:, m, n, :], a["dis"][:, m, n, :], a["e"][:, m, 1:],
                                  b.p_max_mw, b.e_min_mwh, b.e_max_mwh, b.eta_ch, b.eta_dis, dt,
                                  y[m, n, n, :])
            fm[:, m, n, :] = up + dn
    c_norm = np.array([s.c_norm_mw for s in inst.sites])[None, :, None]
    sfi = (fs + fm.sum(axis=1)) / c_norm
    weighted = inst.weights * sfi
    plan = SfiPlan(outcome=outcome, x=x, y=y, ch_mw=a["ch"], dis_mw=a["dis"], e_mwh=a["e"],
                   gen_mw=a["pg"], dr_mw=a["dr"], es_ch_mw=a["esc"], es_dis_mw=a["esd"],
                   es_e_mwh=a["ese"], slack_mw=a["slack"], flex_stat_mw=fs,
                   flex_stat_up_mw=fs_up, flex_mess_mw=fm,
                   flex_lp_stat_mw=a["fs_lp"], flex_lp_mess_mw=a["fm_lp"], sfi=sfi,
                   weighted=weighted, value=weighted.sum(axis=(1, 2)))
    plan._prob = np.asarray(inst.prob, dtype=float)
    return plan


def solve_instance(inst: SfiInstance, solver: str = "highs", time_limit_s: float | None = 60.0,
                   mip_gap: float = 1e-4, start_routes: tuple | None = None
                   ) -> tuple[SfiPlan | None, SolveOutcome]:
    """Build, solve and extract; the plan is None when the solver found no solution."""
    model = build(inst)
    start = route_start(model, *start_routes) if start_routes is not None else None
    outcome = solve_model(model, solver, time_limit_s, mip_gap, start)
    if not outcome.has_solution:
        return None, outcome
    return extract(model, outcome), outcome
