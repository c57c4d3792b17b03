"""The weighted-SFI MILP of seed 000 in matrix form, handed straight to ``highspy``.

The same model as :func:`policies.sfi_milp.build` (the PuLP reference path; tests compare the two
column by column and row by row after canonical sorting), assembled as numpy arrays:

* the first stage (routes ``x``, ``y`` and the start choice ``z``) is written once;
* one scenario block is written once, as a template whose only scenario-dependent data are the
  objective coefficients (``prob[s] * weights[s, n, t] / C_norm_n`` and the tie-breakers, all
  scaled by ``prob[s]``) and the right-hand side of the balance rows (13) (``load - pv``);
* the template is tiled over the scenarios with numpy (column offsets, scaled costs, new
  right-hand sides), so building 50 scenarios costs little more than building one.

Columns and rows keep PuLP's order, so ``names()`` gives PuLP's variable names and a solution
vector of one path can start the other. Units as in :mod:`policies.sfi_milp` (MW, MWh, h).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp

from policies.sfi_milp import (
    EPS_ENERGY_PER_MWH,
    EPS_ES_PER_MWH,
    EPS_MOVE,
    SLACK_PENALTY_PER_MWH,
    SfiInstance,
    _identical_free_vehicles,
)
from policies.solve import SolveOutcome, highs_outcome
from sim.highs import quiet_highs

INF = np.inf


class _Lp:
    """Column/row accumulator. Scenario columns carry a cost ``base * prob[s] * w[s].flat[widx]``
    (``widx`` -1: no weight) and balance rows a right-hand side ``netload[s].flat[ridx]``."""

    def __init__(self) -> None:
        self.lb: list[float] = []
        self.ub: list[float] = []
        self.integ: list[int] = []
        self.cost: list[float] = []
        self.widx: list[int] = []
        self.names: list[str] = []
        self.rr: list[int] = []
        self.rc: list[int] = []
        self.rv: list[float] = []
        self.lo: list[float] = []
        self.hi: list[float] = []
        self.ridx: list[int] = []

    def var(self, name: str, lb: float = 0.0, ub: float | None = None, integer: bool = False
            ) -> int:
        self.names.append(name)
        self.lb.append(float(lb))
        self.ub.append(INF if ub is None else float(ub))
        self.integ.append(1 if integer else 0)
        self.cost.append(0.0)
        self.widx.append(-1)
        return len(self.lb) - 1

    def binary(self, name: str) -> int:
        return self.var(name, 0.0, 1.0, True)

    def obj(self, col: int, coef: float, widx: int = -1) -> None:
        # PuLP sums repeated terms of the objective; so does this
        self.cost[col] += coef
        if widx >= 0:
            self.widx[col] = widx

    def row(self, pairs, lo: float, hi: float, ridx: int = -1) -> None:
        r = len(self.lo)
        for c, v in pairs:
            self.rr.append(r)
            self.rc.append(c)
            self.rv.append(float(v))
        self.lo.append(float(lo))
        self.hi.append(float(hi))
        self.ridx.append(ridx)

    def le(self, pairs, rhs: float) -> None:
        self.row(pairs, -INF, rhs)

    def ge(self, pairs, rhs: float) -> None:
        self.row(pairs, rhs, INF)

    def eq(self, pairs, rhs: float, ridx: int = -1) -> None:
        self.row(pairs, rhs, rhs, ridx)


@dataclass
class MatrixModel:
    """The model as arrays (maximisation). ``v`` mirrors :class:`policies.sfi_milp.SfiModel`'s
    dictionary with column indices in place of PuLP variables (``z`` holds None for a start
    that is not a choice); ``col_value`` is the last solution."""

    inst: SfiInstance
    cost: np.ndarray
    lb: np.ndarray
    ub: np.ndarray
    integ: np.ndarray
    a: sp.csc_matrix
    row_lo: np.ndarray
    row_hi: np.ndarray
    v: dict
    n_first: int
    n_scen: int
    build_s: float = 0.0
    col_value: np.ndarray | None = None
    _names: tuple[list[str], list[str]] = field(default=None, repr=False)

    @property
    def num_col(self) -> int:
        return len(self.cost)

    @property
    def num_row(self) -> int:
        return len(self.row_lo)

    def value(self, col) -> float:
        return float(self.col_value[col])

    def names(self) -> list[str]:
        """PuLP's variable names, in column order (built on demand: only tests need them)."""
        first, scen = self._names
        S = self.inst.shape[0]
        return first + [n.replace("{s}", str(s)) for s in range(S) for n in scen]


def build_matrix(inst: SfiInstance) -> MatrixModel:
    """The model of ``inst`` as arrays; the same model as :func:`policies.sfi_milp.build`."""
    t0 = time.perf_counter()
    S, M, N, T = inst.shape
    ts = np.asarray(inst.travel_steps, dtype=int)
    lp = _Lp()

    # ---------------------------------------------------------------- first stage: routes
    x = {(m, n, t): lp.binary(f"x_{m}_{n}_{t}") for m in range(M) for n in range(N)
         for t in range(T + 1)}
    y = {}
    for m in range(M):
        for a in range(N):
            for b in range(N):
                for t in range(T):
                    if t + ts[a, b] <= T:
                        y[m, a, b, t] = lp.binary(f"y_{m}_{a}_{b}_{t}")
    z0: dict = {}
    for m in range(M):
        opts = inst.start[m]
        for n in opts:
            z0[m, n] = lp.binary(f"z_{m}_{n}") if len(opts) > 1 else None
        if len(opts) > 1:
            lp.eq([(z0[m, n], 1.0) for n in opts], 1.0)
        for n in range(N):
            for t in range(T + 1):
                init, const = [], 0.0
                if n in opts and opts[n] == t:
                    if z0[m, n] is not None:
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
                lp.eq([(x[m, n, t], 1.0)] + arrivals + init, -const)
                if t < T:
                    deps = [(y[m, n, b, t], 1.0) for b in range(N) if (m, n, b, t) in y]
                    lp.eq(deps + [(x[m, n, t], -1.0)], 0.0)
    if inst.fix_site is not None:
        for m in range(M):
            for t in range(T):
                lp.eq([(y[m, inst.fix_site, inst.fix_site, t], 1.0)], 1.0)
    if inst.fix_routes is not None:
        xf, yf = inst.fix_routes
        for key, col in x.items():
            lp.lb[col] = lp.ub[col] = float(int(round(xf[key])))
        for (m, a, b, t), col in y.items():
            lp.lb[col] = lp.ub[col] = float(int(round(yf[m, a, b, t])))
    if inst.symmetry and _identical_free_vehicles(inst) and inst.fix_routes is None:
        lp.le([(x[0, n, 0], n) for n in range(N)] + [(x[1, n, 0], -n) for n in range(N)], 0.0)
    for (_, a, b, _), col in y.items():
        if a != b:
            lp.obj(col, -EPS_MOVE)
    n_first, r_first = len(lp.lb), len(lp.lo)

    # ---------------------------------------------------------------- scenario template
    sv = _scenario_block(inst, lp, y, z0)
    n_scen, r_scen = len(lp.lb) - n_first, len(lp.lo) - r_first
    model = _tile(inst, lp, n_first, r_first, n_scen, r_scen)
    model.v = {"x": x, "y": y, "z": z0,
               "scen": [_shift(sv, s * n_scen) for s in range(S)]}
    model.build_s = time.perf_counter() - t0
    return model


def _shift(sv: dict, off: int) -> dict:
    return {k: {key: c + off for key, c in d.items()} for k, d in sv.items()}


def _tile(inst: SfiInstance, lp: _Lp, n_first: int, r_first: int, n_scen: int, r_scen: int
          ) -> MatrixModel:
    """Repeat the scenario block (columns ``n_first..``, rows ``r_first..``) for every scenario."""
    S, M, N, T = inst.shape
    prob = np.asarray(inst.prob, dtype=float)
    w = np.asarray(inst.weights, dtype=float).reshape(S, N * T)
    net = (np.asarray(inst.load_mw) - np.asarray(inst.pv_mw)).reshape(S, N * T)
    cost, widx = np.array(lp.cost), np.array(lp.widx)
    lb, ub, integ = np.array(lp.lb), np.array(lp.ub), np.array(lp.integ, dtype=np.int32)
    lo, hi, ridx = np.array(lp.lo), np.array(lp.hi), np.array(lp.ridx)
    rr, rc, rv = np.array(lp.rr, dtype=np.int64), np.array(lp.rc, dtype=np.int64), np.array(lp.rv)

    sc = slice(n_first, None)
    base, wi = cost[sc], widx[sc]
    wfac = np.where(wi >= 0, w[:, np.maximum(wi, 0)], 1.0)  # (S, n_scen)
    cost_all = np.concatenate([cost[:n_first], (prob[:, None] * base[None] * wfac).ravel()])
    lb_all = np.concatenate([lb[:n_first], np.tile(lb[sc], S)])
    ub_all = np.concatenate([ub[:n_first], np.tile(ub[sc], S)])
    integ_all = np.concatenate([integ[:n_first], np.tile(integ[sc], S)])

    rs = slice(r_first, None)
    ri = ridx[rs]
    rhs = net[:, np.maximum(ri, 0)]  # (S, r_scen)
    lo_s = np.where(ri >= 0, rhs, lo[rs][None])
    hi_s = np.where(ri >= 0, rhs, hi[rs][None])
    row_lo = np.concatenate([lo[:r_first], lo_s.ravel()])
    row_hi = np.concatenate([hi[:r_first], hi_s.ravel()])

    first_nz = rr < r_first
    tr, tc, tv = rr[~first_nz] - r_first, rc[~first_nz], rv[~first_nz]
    scen_col = tc >= n_first
    offs = np.arange(S, dtype=np.int64)
    rows = np.concatenate([rr[first_nz],
                           (r_first + tr[None] + offs[:, None] * r_scen).ravel()])
    cols = np.concatenate([rc[first_nz],
                           (tc[None] + np.where(scen_col, offs[:, None] * n_scen, 0)).ravel()])
    vals = np.concatenate([rv[first_nz], np.tile(tv, S)])
    n_col, n_row = n_first + S * n_scen, r_first + S * r_scen
    a = sp.csc_matrix((vals, (rows, cols)), shape=(n_row, n_col))  # duplicates are summed
    model = MatrixModel(inst=inst, cost=cost_all, lb=lb_all, ub=ub_all, integ=integ_all, a=a,
                        row_lo=row_lo, row_hi=row_hi, v={}, n_first=n_first, n_scen=n_scen)
    model._names = (lp.names[:n_first], lp.names[n_first:])
    return model


def _scenario_block(inst: SfiInstance, lp: _Lp, y: dict, z0: dict) -> dict:
    """One scenario's columns and rows (named with ``{s}``), in the PuLP builder's order."""
    S, M, N, T = inst.shape
    dt = inst.dt_h
    V = lp.var
    c_norm = [site.c_norm_mw for site in inst.sites]

    def wi(n: int, t: int) -> int:
        return n * T + t

    ch = {(m, n, t): V(f"ch_{{s}}_{m}_{n}_{t}", 0) for m in range(M) for n in range(N)
          for t in range(T)}
    dis = {(m, n, t): V(f"dis_{{s}}_{m}_{n}_{t}", 0) for m in range(M) for n in range(N)
           for t in range(T)}
    fu = {(m, n, t): V(f"fmu_{{s}}_{m}_{n}_{t}", 0) for m in range(M) for n in range(N)
          for t in range(T)}
    fd = {(m, n, t): V(f"fmd_{{s}}_{m}_{n}_{t}", 0) for m in range(M) for n in range(N)
          for t in range(T)}
    u = {(m, t): lp.binary(f"u_{{s}}_{m}_{t}") for m in range(M) for t in range(T)}
    e = {}
    for m, veh in enumerate(inst.vehicles):
        b = veh.battery
        tau = b.retention_per_h ** dt
        for t in range(T + 1):
            e[m, t] = V(f"e_{{s}}_{m}_{t}", b.e_min_mwh, b.e_max_mwh)
        lp.eq([(e[m, 0], 1.0)], float(inst.e0_mwh[m]))
        if inst.e_end_mwh is not None:
            lp.eq([(e[m, T], 1.0)], float(inst.e_end_mwh[m]))
        for t in range(T):
            pairs = [(e[m, t + 1], 1.0), (e[m, t], -tau)]
            pairs += [(ch[m, n, t], -b.eta_ch * dt) for n in range(N)]
            pairs += [(dis[m, n, t], dt / b.eta_dis) for n in range(N)]
            lp.eq(pairs, 0.0)
            lp.le([(ch[m, n, t], 1.0) for n in range(N)] + [(u[m, t], -b.p_max_mw)], 0.0)
            lp.le([(dis[m, n, t], 1.0) for n in range(N)] + [(u[m, t], b.p_max_mw)], b.p_max_mw)
            for n in range(N):
                stay = y.get((m, n, n, t))
                if stay is None:
                    for var in (ch, dis, fu, fd):
                        lp.ub[var[m, n, t]] = 0.0
                    continue
                lp.le([(ch[m, n, t], 1.0), (stay, -b.p_max_mw)], 0.0)
                lp.le([(dis[m, n, t], 1.0), (stay, -b.p_max_mw)], 0.0)
                lp.le([(fu[m, n, t], 1.0), (stay, -b.p_max_mw), (dis[m, n, t], 1.0),
                       (ch[m, n, t], -1.0)], 0.0)
                lp.le([(fd[m, n, t], 1.0), (stay, -b.p_max_mw), (dis[m, n, t], -1.0),
                       (ch[m, n, t], 1.0)], 0.0)
                lp.obj(fu[m, n, t], 1.0 / c_norm[n], wi(n, t))
                lp.obj(fd[m, n, t], 1.0 / c_norm[n], wi(n, t))
                lp.obj(ch[m, n, t], -EPS_ENERGY_PER_MWH * dt)
                lp.obj(dis[m, n, t], -EPS_ENERGY_PER_MWH * dt)
            lp.le([(fu[m, n, t], 1.0) for n in range(N)] + [(e[m, t + 1], -b.eta_dis / dt)],
                  -b.eta_dis * b.e_min_mwh / dt)
            lp.le([(fd[m, n, t], 1.0) for n in range(N)] + [(e[m, t + 1], 1.0 / (b.eta_ch * dt))],
                  b.e_max_mwh / (b.eta_ch * dt))
    sv = dict(ch=ch, dis=dis, fu=fu, fd=fd, u=u, e=e)
    if inst.arc_energy and inst.fix_routes is None and inst.fix_site is None:
        sv.update(_arc_energy(inst, lp, y, z0, ch, dis, fu, fd, e))

    # ---------------------------------------------------------------- DN resources
    supply = {(n, t): [] for n in range(N) for t in range(T)}
    pg, fgu, fgd = {}, {}, {}
    for gi, (n, g) in enumerate(inst.generators()):
        for t in range(T):
            pg[gi, t] = V(f"pg_{{s}}_{gi}_{t}", g.p_min_mw, g.p_max_mw)
            fgu[gi, t] = V(f"fgu_{{s}}_{gi}_{t}", 0, g.ramp_up_mw_per_h * dt)
            fgd[gi, t] = V(f"fgd_{{s}}_{gi}_{t}", 0, g.ramp_down_mw_per_h * dt)
            lp.le([(fgu[gi, t], 1.0), (pg[gi, t], 1.0)], g.p_max_mw)
            lp.le([(fgd[gi, t], 1.0), (pg[gi, t], -1.0)], -g.p_min_mw)
            supply[n, t].append((pg[gi, t], 1.0))
            lp.obj(fgu[gi, t], 1.0 / c_norm[n], wi(n, t))
            lp.obj(fgd[gi, t], 1.0 / c_norm[n], wi(n, t))
            if t >= 1:
                lp.le([(pg[gi, t], 1.0), (pg[gi, t - 1], -1.0)], g.ramp_up_mw_per_h * dt)
                lp.le([(pg[gi, t - 1], 1.0), (pg[gi, t], -1.0)], g.ramp_down_mw_per_h * dt)
            elif inst.gen_prev_mw is not None:
                prev = float(inst.gen_prev_mw[gi])
                lp.lb[pg[gi, 0]] = max(g.p_min_mw, prev - g.ramp_down_mw_per_h * dt)
                lp.ub[pg[gi, 0]] = min(g.p_max_mw, prev + g.ramp_up_mw_per_h * dt)
    drv, fdru, fdrd = {}, {}, {}
    esc, esd, ese, esu, feu, fed = {}, {}, {}, {}, {}, {}
    sig_p, sig_m = {}, {}
    for n, site in enumerate(inst.sites):
        r = site.resources
        if r.dr is not None:
            ramp = r.dr.ramp_mw_per_h * dt
            for t in range(T):
                drv[n, t] = V(f"dr_{{s}}_{n}_{t}", 0, r.dr.p_max_mw)
                fdru[n, t] = V(f"fdru_{{s}}_{n}_{t}", 0, ramp)
                fdrd[n, t] = V(f"fdrd_{{s}}_{n}_{t}", 0, ramp)
                lp.le([(fdru[n, t], 1.0), (drv[n, t], 1.0)], r.dr.p_max_mw)
                lp.le([(fdrd[n, t], 1.0), (drv[n, t], -1.0)], 0.0)
                supply[n, t].append((drv[n, t], 1.0))
                lp.obj(fdru[n, t], 1.0 / c_norm[n], wi(n, t))
                lp.obj(fdrd[n, t], 1.0 / c_norm[n], wi(n, t))
                if t >= 1:
                    lp.le([(drv[n, t], 1.0), (drv[n, t - 1], -1.0)], ramp)
                    lp.le([(drv[n, t - 1], 1.0), (drv[n, t], -1.0)], ramp)
                elif inst.dr_prev_mw is not None:
                    prev = float(inst.dr_prev_mw[n])
                    lp.lb[drv[n, 0]] = max(0.0, prev - ramp)
                    lp.ub[drv[n, 0]] = min(r.dr.p_max_mw, prev + ramp)
            left = r.dr.e_max_mwh if inst.dr_left_mwh is None else float(inst.dr_left_mwh[n])
            lp.le([(drv[n, t], dt) for t in range(T)], max(left, 0.0))
        st = r.storage
        if st is not None:
            e_init = st.e_init_mwh if inst.es_e0_mwh is None else float(inst.es_e0_mwh[n])
            for t in range(T + 1):
                ese[n, t] = V(f"ese_{{s}}_{n}_{t}", st.e_min_mwh, st.e_max_mwh)
            lp.eq([(ese[n, 0], 1.0)], e_init)
            if inst.es_cyclic:
                lp.eq([(ese[n, T], 1.0)], st.e_init_mwh)
            for t in range(T):
                esc[n, t] = V(f"esc_{{s}}_{n}_{t}", 0, st.p_ch_max_mw)
                esd[n, t] = V(f"esd_{{s}}_{n}_{t}", 0, st.p_dis_max_mw)
                esu[n, t] = lp.binary(f"esu_{{s}}_{n}_{t}")
                hi = st.ramp_mw_per_h * dt if st.ramp_mw_per_h is not None else None
                feu[n, t] = V(f"feu_{{s}}_{n}_{t}", 0, hi)
                fed[n, t] = V(f"fed_{{s}}_{n}_{t}", 0, hi)
                eta = st.eta
                lp.eq([(ese[n, t + 1], 1.0), (ese[n, t], -1.0), (esc[n, t], -eta * dt),
                       (esd[n, t], dt / eta)], 0.0)
                lp.le([(esc[n, t], 1.0), (esu[n, t], -st.p_ch_max_mw)], 0.0)
                lp.le([(esd[n, t], 1.0), (esu[n, t], st.p_dis_max_mw)], st.p_dis_max_mw)
                lp.le([(feu[n, t], 1.0), (esd[n, t], 1.0), (esc[n, t], -1.0)], st.p_dis_max_mw)
                lp.le([(feu[n, t], 1.0), (ese[n, t + 1], -eta / dt)], -eta * st.e_min_mwh / dt)
                lp.le([(fed[n, t], 1.0), (esc[n, t], 1.0), (esd[n, t], -1.0)], st.p_ch_max_mw)
                lp.le([(fed[n, t], 1.0), (ese[n, t + 1], 1.0 / (eta * dt))],
                      st.e_max_mwh / (eta * dt))
                supply[n, t] += [(esd[n, t], 1.0), (esc[n, t], -1.0)]
                lp.obj(feu[n, t], 1.0 / c_norm[n], wi(n, t))
                lp.obj(fed[n, t], 1.0 / c_norm[n], wi(n, t))
                lp.obj(esc[n, t], -EPS_ES_PER_MWH * dt)
                lp.obj(esd[n, t], -EPS_ES_PER_MWH * dt)
        for t in range(T):
            sig_p[n, t] = V(f"sp_{{s}}_{n}_{t}", 0)
            sig_m[n, t] = V(f"sm_{{s}}_{n}_{t}", 0)
            lp.obj(sig_p[n, t], -SLACK_PENALTY_PER_MWH * dt)
            lp.obj(sig_m[n, t], -SLACK_PENALTY_PER_MWH * dt)
            mess = []
            for m in range(M):
                mess += [(dis[m, n, t], 1.0), (ch[m, n, t], -1.0)]
            lp.eq(supply[n, t] + mess + [(sig_p[n, t], 1.0), (sig_m[n, t], -1.0)], 0.0,
                  ridx=wi(n, t))
    sv.update(pg=pg, fgu=fgu, fgd=fgd, dr=drv, fdru=fdru, fdrd=fdrd, esc=esc, esd=esd,
              ese=ese, esu=esu, feu=feu, fed=fed, sp=sig_p, sm=sig_m)
    return sv


def _arc_energy(inst: SfiInstance, lp: _Lp, y, z0, ch, dis, fu, fd, e) -> dict:
    """:func:`policies.sfi_milp._arc_energy` (see there) in matrix form."""
    S, M, N, T = inst.shape
    dt = inst.dt_h
    ts = np.asarray(inst.travel_steps, dtype=int)
    qs, rs = {}, {}
    for m, veh in enumerate(inst.vehicles):
        b = veh.battery
        tau = b.retention_per_h ** dt
        e0 = float(inst.e0_mwh[m])
        q, r = {}, {}
        for (mm, a, c, t), yv in y.items():
            if mm != m:
                continue
            q[a, c, t] = lp.var(f"q_{{s}}_{m}_{a}_{c}_{t}", 0)
            lp.le([(q[a, c, t], 1.0), (yv, -b.e_max_mwh)], 0.0)
            lp.ge([(q[a, c, t], 1.0), (yv, -b.e_min_mwh)], 0.0)
            if a == c:
                r[a, t] = lp.var(f"r_{{s}}_{m}_{a}_{t}", 0)
                lp.eq([(r[a, t], 1.0), (q[a, c, t], -tau), (ch[m, a, t], -b.eta_ch * dt),
                       (dis[m, a, t], dt / b.eta_dis)], 0.0)
                lp.le([(r[a, t], 1.0), (yv, -b.e_max_mwh)], 0.0)
                lp.ge([(r[a, t], 1.0), (yv, -b.e_min_mwh)], 0.0)
                lp.le([(fu[m, a, t], 1.0), (r[a, t], -b.eta_dis / dt),
                       (yv, b.eta_dis * b.e_min_mwh / dt)], 0.0)
                lp.le([(fd[m, a, t], 1.0), (r[a, t], 1.0 / (b.eta_ch * dt)),
                       (yv, -b.e_max_mwh / (b.eta_ch * dt))], 0.0)
        opts = inst.start[m]
        init = {}
        for n, a0 in opts.items():
            zv = z0[m, n]
            coef = e0 * tau ** a0
            init[n, a0] = ([(zv, coef)], 0.0) if zv is not None else ([], coef)
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
                if t < T:
                    out = [(q[n, c, t], -1.0) for c in range(N) if (n, c, t) in q]
                    lp.eq(inflow + out, -c0)
            for (a, c, t1), qv in q.items():
                if a != c and t1 < t < t1 + ts[a, c]:
                    total.append((qv, tau ** (t - t1)))
            for n, a0 in opts.items():
                if t < a0:
                    zv = z0[m, n]
                    if zv is not None:
                        total.append((zv, e0 * tau ** t))
                    else:
                        const += e0 * tau ** t
            lp.eq(total + [(e[m, t], -1.0)], -const)
        qs.update({(m, *k): v for k, v in q.items()})
        rs.update({(m, *k): v for k, v in r.items()})
    return {"q": qs, "r": rs}


def solve_matrix(model: MatrixModel, time_limit_s: float | None = 60.0, mip_gap: float = 1e-4,
                 start: np.ndarray | None = None, threads: int | None = None,
                 options: dict | None = None) -> SolveOutcome:
    """Solve with HiGHS (in-process) and classify like :func:`policies.solve.solve`.

    ``start`` is a full column vector (a MIP start; HiGHS checks it and ignores an infeasible
    one). ``options`` are extra HiGHS options by name.
    """
    import highspy

    t0 = time.perf_counter()
    quiet_highs()
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    if time_limit_s is not None:
        h.setOptionValue("time_limit", float(time_limit_s))
    h.setOptionValue("mip_rel_gap", float(mip_gap))
    if threads is not None:
        h.setOptionValue("threads", int(threads))
    for k, val in (options or {}).items():
        h.setOptionValue(k, val)
    a = model.a
    is_mip = bool(model.integ.any())
    transfer_s = 0.0
    try:
        t1 = time.perf_counter()
        h.passModel(model.num_col, model.num_row, a.nnz, 1, -1, 0.0,
                    model.cost, model.lb, model.ub, model.row_lo, model.row_hi,
                    a.indptr.astype(np.int32), a.indices.astype(np.int32),
                    a.data.astype(np.float64), model.integ.astype(np.int32))
        transfer_s = time.perf_counter() - t1
        if start is not None:
            sol = highspy.HighsSolution()
            sol.col_value = np.asarray(start, dtype=np.float64)
            sol.value_valid = True
            h.setSolution(sol)
        h.run()
    except Exception as exc:  # noqa: BLE001 - a solver crash is an outcome, not a traceback
        return SolveOutcome("error", "highs", None, None, None, model.build_s,
                            time.perf_counter() - t0, f"{type(exc).__name__}: {exc}")
    solve_s = time.perf_counter() - t0
    out = replace(highs_outcome(h, True, is_mip, model.build_s, solve_s, mip_gap),
                  transfer_s=transfer_s)
    if out.has_solution:
        model.col_value = np.asarray(h.getSolution().col_value, dtype=float)
    return out


def start_from(model: MatrixModel, solved: MatrixModel) -> np.ndarray:
    """A full MIP start for ``model`` from the solution of ``solved``, a model of the same sites,
    fleet and scenarios (e.g. the fixed-route re-dispatch of a route): every column is matched
    through the ``v`` dictionaries; the arc energies (absent from a fixed-route model) are the
    vehicle's energy at departure / at the end of a stay on the arcs the route takes, 0
    elsewhere."""
    val = solved.col_value
    out = np.zeros(model.num_col)
    for k in ("x", "y"):
        for key, c in model.v[k].items():
            out[c] = val[solved.v[k][key]]
    for key, c in model.v["z"].items():
        if c is not None and solved.v["z"].get(key) is not None:
            out[c] = val[solved.v["z"][key]]
    y = model.v["y"]
    for tv, sv in zip(model.v["scen"], solved.v["scen"]):
        for name, cols in tv.items():
            if name in sv:
                src = sv[name]
                for key, c in cols.items():
                    out[c] = val[src[key]]
        if "q" in tv and "q" not in sv:
            e = tv["e"]
            for (m, a, b, t), c in tv["q"].items():
                out[c] = out[e[m, t]] if out[y[m, a, b, t]] > 0.5 else 0.0
            for (m, a, t), c in tv["r"].items():
                out[c] = out[e[m, t + 1]] if out[y[m, a, a, t]] > 0.5 else 0.0
    return out
