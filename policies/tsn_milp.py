"""Unit commitment with battery trains on a time-space network (MODELS.md B.4-B.10), in PuLP.

One builder gives every model of seed 001:

* ``kind="central"``: the centralised MILP (1)-(36). Train routes are arc binaries of the TSN and
  a train is connected to station ``i`` during hour ``t`` when it uses the station arc (38).
* ``kind="power"``: the power layer of the OCD decomposition (42). The connections are the power
  layer's own binaries ``w_hat`` with ``sum_i w_hat <= 1`` (37), optionally the mobility cuts (E1),
  and the objective carries ``- sum lambda * w_hat``. :meth:`TsnModel.set_multipliers` changes the
  prices without rebuilding, :meth:`TsnModel.fix_connections` fixes ``w_hat`` to a route's
  connections (the upper-bound evaluation of B.12 step 4) and :meth:`TsnModel.free_connections`
  undoes it.
* Cases without trains and with ``fixed_storage`` are the stationary baselines M2/M3/M5/M6
  (B.10); without either they are the no-storage reference ``F0`` of (47).

Formulation choices, all exact (no solution of the original model is cut off):

* Convex piecewise-linear cost (B.8 [P], ``pwl_segments`` chords on ``[P_min, P_max]``) as an
  epigraph in perspective form ``c >= alpha_k u + s_k P``: tight, and zero when the unit is off.
* Three-binary UC with the Rajan-Takriti minimum up/down inequalities (32)-(33) and the
  start-up/shut-down capacity cuts ``P_t <= Pmax u_t - (Pmax - SU) y_t`` and
  ``P_t <= Pmax u_t - (Pmax - SD) z_{t+1}``, which (28)-(29) imply for integer points.
* Train/station exchanges bounded by ``min(train max, station max) * w`` (valid: a station
  never holds more than its maximum).
* Line limits (36): rows only for lines that can bind. A line whose flow stays within its rating
  for every injection inside the units', wind farms' and storages' limits is dropped (exact
  screening); the rest are added lazily: solve, find the violated rows, add them, solve again.
  The final solution satisfies every line; the bound of each round is a valid lower bound.

Units: MW, MWh, hours, USD. Build / solve / extract are separate, and build time is measured
apart from solve time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import pulp

from policies.solve import SolveOutcome, solve
from sim.tsn import TransmissionCase

FLOW_TOL_MW = 1e-4  # a line counts as violated above rating + this


@dataclass(frozen=True)
class TsnOptions:
    """Solver and formulation settings of the seed-001 models."""

    solver: str = "highs"
    time_limit_s: float = 600.0
    mip_gap: float = 1e-4
    pwl_segments: int = 8
    mode_binaries: bool = True  # station charge/discharge exclusivity (13)-(15)
    line_limits: bool = True
    # power layer's knowledge of train movement: "none" (literal (37)), "pairwise" (E1 of B.11,
    # in clique form) or "exact" (the TSN path polytope from travel times and start/end stations
    # only, without the transport costs: the strongest form of E1)
    mobility: str = "pairwise"
    # carry each train's capacity and energy on its TSN arcs (extended formulation): a train
    # split 50/50 between two routes in the LP relaxation then brings only half of its battery
    # to each station, which closes most of the root gap. Exact: it only restates (16)-(23).
    arc_flows: bool = True
    # tighten the arc-flow big-Ms from the train's capacity/energy maximum to what the train can
    # hold at that time point: forward from its initial state (it can take at most one station's
    # capacity / energy per parked hour) and backward from its end target (it can give at most
    # one station's intake per hour). Exact: only states no integer solution reaches are cut.
    reach_bounds: bool = False
    # fix to 0 the TSN arcs no train path can use (not reachable from the train's start at
    # ``ready_h`` or not able to reach its end station by T); the LP already forces them to 0,
    # so this only saves HiGHS's presolve the work
    prune_arcs: bool = False
    max_line_rounds: int = 10
    threads: int | None = None


# ------------------------------------------------------------------------ TSN arcs (B.1)
def tsn_arcs(travel_h: np.ndarray, T: int) -> list[tuple[int, int, int, int]]:
    """Arcs ``(i, theta, j, theta2)`` of the TSN: station arcs ``i == j`` (``theta2 = theta+1``)
    and route arcs ``i != j`` with ``theta2 = theta + travel_h[i, j] <= T``."""
    n = travel_h.shape[0]
    arcs = []
    for th in range(T):
        for i in range(n):
            arcs.append((i, th, i, th + 1))
            for j in range(n):
                if j != i and th + int(travel_h[i, j]) <= T:
                    arcs.append((i, th, j, th + int(travel_h[i, j])))
    return arcs


def arc_cost(case: TransmissionCase, arc: tuple[int, int, int, int]) -> float:
    """Transport cost of an arc: ``c_h * tau`` on route arcs, 0 on station arcs (B.2)."""
    i, th, j, th2 = arc
    return 0.0 if i == j else case.transport_cost_per_h * (th2 - th) * case.dt_h


def connections_of_path(path: list[tuple[int, int, int, int]], n_station: int,
                        T: int) -> np.ndarray:
    """``w[i, t]`` (t = 0..T-1 for hour t+1) of one train's path: 1 on its station arcs."""
    w = np.zeros((n_station, T))
    for i, th, j, _ in path:
        if i == j:
            w[i, th] = 1.0
    return w


# ------------------------------------------------------------------------ screening
def screen_lines(case: TransmissionCase) -> np.ndarray:
    """Indices of the lines that can bind in some hour for some injection within all limits
    (exact test: :meth:`sim.tsn.TransmissionCase.lines_can_bind_box`, with a small margin)."""
    return np.flatnonzero(case.lines_can_bind_box(tol_mw=FLOW_TOL_MW).any(axis=1))


# ------------------------------------------------------------------------ model
@dataclass
class TsnModel:
    case: TransmissionCase
    kind: str
    opt: TsnOptions
    prob: pulp.LpProblem
    v: dict
    build_s: float
    lines: set[tuple[int, int]] = field(default_factory=set)  # (line, t) rows present
    base_objective: pulp.LpAffineExpression | None = None
    arcs: list = field(default_factory=list)

    # -- power-layer helpers (kind == "power")
    def set_multipliers(self, lam: np.ndarray) -> None:
        """Objective ``f_P - sum lambda[k, i, t] * w_hat[k, i, t]`` (42)."""
        terms = [(var, -float(lam[key])) for key, var in self.v["w"].items() if lam[key] != 0]
        self.prob.setObjective(self.base_objective + pulp.LpAffineExpression(terms))

    def fix_connections(self, w: np.ndarray) -> None:
        for key, var in self.v["w"].items():
            var.lowBound = var.upBound = float(round(w[key]))

    def free_connections(self) -> None:
        for var in self.v["w"].values():
            var.lowBound, var.upBound = 0, 1


def _lin(pairs, const: float = 0.0) -> pulp.LpAffineExpression:
    return pulp.LpAffineExpression(pairs, constant=const)


def pwl_pieces(g, n_seg: int) -> list[tuple[float, float]]:
    """``(alpha, slope)`` of the chords of ``a + b P + c P^2`` on ``[P_min, P_max]``."""
    f = lambda p: g.cost_a + g.cost_b * p + g.cost_c * p * p  # noqa: E731
    if g.cost_c == 0 or g.p_max_mw <= g.p_min_mw:
        return [(g.cost_a, g.cost_b)]
    pts = np.linspace(g.p_min_mw, g.p_max_mw, n_seg + 1)
    out = []
    for p0, p1 in zip(pts[:-1], pts[1:]):
        s = (f(p1) - f(p0)) / (p1 - p0)
        out.append((f(p0) - s * p0, s))
    return out


def build(case: TransmissionCase, kind: str = "central", opt: TsnOptions | None = None,
          lines: set[tuple[int, int]] | None = None) -> TsnModel:
    """Build the model; ``lines`` are the (line, hour) PTDF rows to include from the start."""
    if kind not in ("central", "power"):
        raise ValueError(f"kind must be 'central' or 'power', got {kind!r}")
    opt = opt or TsnOptions()
    t0 = time.perf_counter()
    T, dt = case.T, case.dt_h
    I, K = len(case.stations), len(case.trains)  # noqa: E741
    prob = pulp.LpProblem(f"tsn_{case.name}_{kind}", pulp.LpMinimize)
    v: dict = {k: {} for k in ("u", "y", "z", "p", "c", "pw", "cs", "es", "pch", "pdis", "uch",
                               "udis", "ct", "et", "dcp", "dcm", "dep", "dem", "w", "x",
                               "fch", "fdis", "fe", "fuch", "fudis")}
    add = prob.addConstraint
    Bin, Cont = pulp.LpBinary, pulp.LpContinuous

    def var(name, lo=0.0, hi=None, cat=Cont):
        return pulp.LpVariable(name, lowBound=lo, upBound=hi, cat=cat)

    objective = []
    # ---------------------------------------------------------------- unit commitment (B.9)
    for gi, g in enumerate(case.units):
        su = max(g.p_min_mw, g.ramp_up_mw_per_h * dt)
        sd = max(g.p_min_mw, g.ramp_down_mw_per_h * dt)
        pieces = pwl_pieces(g, opt.pwl_segments)
        for t in range(T):
            u = v["u"][gi, t] = var(f"u_{gi}_{t}", cat=Bin)
            y = v["y"][gi, t] = var(f"y_{gi}_{t}", cat=Bin)
            z = v["z"][gi, t] = var(f"z_{gi}_{t}", cat=Bin)
            p = v["p"][gi, t] = var(f"p_{gi}_{t}", 0, g.p_max_mw)
            add(_lin([(p, 1), (u, -g.p_min_mw)]) >= 0)  # (27)
            add(_lin([(p, 1), (u, -g.p_max_mw)]) <= 0)
            if len(pieces) == 1:
                objective += [(u, pieces[0][0] * dt), (p, pieces[0][1] * dt)]
            else:
                c = v["c"][gi, t] = var(f"c_{gi}_{t}", 0)
                objective.append((c, dt))
                for alpha, s in pieces:
                    add(_lin([(c, 1), (u, -alpha), (p, -s)]) >= 0)
            objective += [(y, g.startup_cost), (z, g.shutdown_cost)]
            # (30)-(31)
            if t == 0:
                add(_lin([(y, 1), (z, -1), (u, -1)], g.u0) == 0)
            else:
                add(_lin([(y, 1), (z, -1), (u, -1), (v["u"][gi, t - 1], 1)]) == 0)
            add(_lin([(y, 1), (z, 1)]) <= 1)
            # ramps (28)-(29) with start-up/shut-down ramps
            if t == 0:
                add(_lin([(p, 1), (y, -su)], -g.p0_mw) <= g.ramp_up_mw_per_h * dt * g.u0)
                add(_lin([(p, -1), (u, -g.ramp_down_mw_per_h * dt), (z, -sd)], g.p0_mw) <= 0)
            else:
                pp, up = v["p"][gi, t - 1], v["u"][gi, t - 1]
                add(_lin([(p, 1), (pp, -1), (up, -g.ramp_up_mw_per_h * dt), (y, -su)]) <= 0)
                add(_lin([(pp, 1), (p, -1), (u, -g.ramp_down_mw_per_h * dt), (z, -sd)]) <= 0)
            # start-up capacity (valid, tightening)
            if su < g.p_max_mw:
                add(_lin([(p, 1), (u, -g.p_max_mw), (y, g.p_max_mw - su)]) <= 0)
        for t in range(T):
            # shut-down capacity: output before a stop is at most SD
            if sd < g.p_max_mw and t + 1 < T:
                add(_lin([(v["p"][gi, t], 1), (v["u"][gi, t], -g.p_max_mw),
                          (v["z"][gi, t + 1], g.p_max_mw - sd)]) <= 0)
            # (32)-(33) minimum up / down time
            lo_on = max(0, t - g.min_up_h + 1)
            add(_lin([(v["y"][gi, s], 1) for s in range(lo_on, t + 1)]
                     + [(v["u"][gi, t], -1)]) <= 0)
            lo_off = max(0, t - g.min_down_h + 1)
            add(_lin([(v["z"][gi, s], 1) for s in range(lo_off, t + 1)]
                     + [(v["u"][gi, t], 1)]) <= 1)
        # minimum up / down time carried over from before t = 0 (a re-plan from a simulated
        # state): a unit on (off) for h0 hours stays on (off) for the first UT - h0 (DT - h0)
        h0 = g.hours_in_state0_h
        if h0 is not None:
            left = (g.min_up_h if g.u0 else g.min_down_h) - h0
            for t in range(min(max(left, 0), T)):
                v["u"][gi, t].lowBound = v["u"][gi, t].upBound = int(g.u0)
    for wi, w in enumerate(case.wind):
        for t in range(T):
            v["pw"][wi, t] = var(f"pw_{wi}_{t}", 0, float(w.p_avail_mw[t]))  # (34)

    # ---------------------------------------------------------------- stations (B.5)
    eta, gam = case.eta, case.gamma_h
    for i, s in enumerate(case.stations):
        v["cs"][i, -1], v["es"][i, -1] = s.c0_mw, s.e0_mwh
        for t in range(T):
            v["cs"][i, t] = var(f"cs_{i}_{t}", 0, s.c_max_mw)
            v["es"][i, t] = var(f"es_{i}_{t}", 0, s.e_max_mwh)
            v["pch"][i, t] = var(f"pch_{i}_{t}", 0, s.c_max_mw)
            v["pdis"][i, t] = var(f"pdis_{i}_{t}", 0, s.c_max_mw)
            if opt.mode_binaries:
                v["uch"][i, t] = var(f"uch_{i}_{t}", cat=Bin)
                v["udis"][i, t] = var(f"udis_{i}_{t}", cat=Bin)
    # ---------------------------------------------------------------- trains (B.6) and exchanges
    for k, tr in enumerate(case.trains):
        v["ct"][k, -1], v["et"][k, -1] = tr.c0_mw, tr.e0_mwh
        for t in range(T):
            v["ct"][k, t] = var(f"ct_{k}_{t}", 0, tr.c_max_mw)
            v["et"][k, t] = var(f"et_{k}_{t}", 0, tr.e_max_mwh)
            for i, s in enumerate(case.stations):
                cmax = min(tr.c_max_mw, s.c_max_mw)
                emax = min(tr.e_max_mwh, s.e_max_mwh)
                for nm, hi in (("dcp", cmax), ("dcm", cmax), ("dep", emax), ("dem", emax)):
                    v[nm][k, i, t] = var(f"{nm}_{k}_{i}_{t}", 0, hi)
    # connections w[k, i, t]
    if opt.mobility not in ("none", "pairwise", "exact"):
        raise ValueError(f"mobility: must be none, pairwise or exact, got {opt.mobility!r}")
    if K:
        if kind == "central" or opt.mobility == "exact":
            arcs = tsn_arcs(case.travel_h, T)
            usable = ([usable_arcs(case, k, arcs) for k in range(K)] if opt.prune_arcs
                      else [None] * K)
            for a in arcs:
                for k in range(K):
                    v["x"][k, a] = var(f"x_{k}_{a[0]}_{a[1]}_{a[2]}_{a[3]}", cat=Bin)
                    if usable[k] is not None and a not in usable[k]:
                        v["x"][k, a].upBound = 0
                    if kind == "central":
                        objective.append((v["x"][k, a], arc_cost(case, a)))
            out_arcs: dict = {}
            in_arcs: dict = {}
            for a in arcs:
                out_arcs.setdefault((a[0], a[1]), []).append(a)
                in_arcs.setdefault((a[2], a[3]), []).append(a)
            for k, tr in enumerate(case.trains):
                i0, iT = case.station_pos(tr.start), case.station_pos(tr.end)
                src = (i0, tr.ready_h)  # (start, 0), or where a train in transit arrives
                for i in range(I):
                    add(_lin([(v["x"][k, a], 1) for a in out_arcs.get((i, 0), [])])
                        == (1 if (i, 0) == src else 0))  # (1)
                    add(_lin([(v["x"][k, a], 1) for a in in_arcs.get((i, T), [])])
                        == (1 if i == iT else 0))  # (2)
                    for th in range(1, T):  # (3)
                        add(_lin([(v["x"][k, a], 1) for a in in_arcs.get((i, th), [])]
                                 + [(v["x"][k, a], -1) for a in out_arcs.get((i, th), [])])
                            == (-1 if (i, th) == src else 0))
                for i in range(I):
                    for t in range(T):
                        v["w"][k, i, t] = v["x"][k, (i, t, i, t + 1)]
            if opt.arc_flows:
                _arc_flows(case, v, arcs, out_arcs, in_arcs, add, var, opt.reach_bounds)
        else:
            arcs = []
            for k, tr in enumerate(case.trains):
                i0, iT = case.station_pos(tr.start), case.station_pos(tr.end)
                for i in range(I):
                    for t in range(T):
                        v["w"][k, i, t] = var(f"w_{k}_{i}_{t}", cat=Bin)
                for t in range(T):  # (37)
                    add(_lin([(v["w"][k, i, t], 1) for i in range(I)]) <= 1)
                for t in range(min(tr.ready_h, T)):  # in transit until ready_h: a known fact
                    for i in range(I):
                        v["w"][k, i, t].upBound = 0
                if opt.mobility == "pairwise":  # (E1)
                    for i in range(I):
                        if i != i0:
                            v["w"][k, i, tr.ready_h].upBound = 0
                        if i != iT:
                            v["w"][k, i, T - 1].upBound = 0
                    # in clique form: parked at i during t excludes every other station j
                    # during t2 in (t, t + tau_ij]; the w[., t2] of one hour already exclude
                    # each other, so one row per (i, t, t2) holds all the pairwise cuts.
                    tau_max = int(case.travel_h.max()) if I > 1 else 0
                    for i in range(I):
                        for t in range(T):
                            for t2 in range(t + 1, min(T, t + tau_max + 1)):
                                others = [(v["w"][k, j, t2], 1) for j in range(I)
                                          if j != i and t2 - t <= int(case.travel_h[i, j])]
                                if others:
                                    add(_lin([(v["w"][k, i, t], 1)] + others) <= 1)
    else:
        arcs = []
    for k, tr in enumerate(case.trains):
        for t in range(T):
            # (16), (18)
            add(_lin([(v["ct"][k, t], 1)] + _prev(v["ct"], (k, t - 1))
                     + [(v["dcp"][k, i, t], -1) for i in range(I)]
                     + [(v["dcm"][k, i, t], 1) for i in range(I)], _c(v["ct"], (k, t - 1))) == 0)
            add(_lin([(v["et"][k, t], 1)] + _prev(v["et"], (k, t - 1))
                     + [(v["dep"][k, i, t], -1) for i in range(I)]
                     + [(v["dem"][k, i, t], 1) for i in range(I)], _c(v["et"], (k, t - 1))) == 0)
            add(_lin([(v["et"][k, t], 1), (v["ct"][k, t], -gam)]) <= 0)  # (19)
            # (20)
            add(_lin([(v["dcm"][k, i, t], 1) for i in range(I)] + _prev(v["ct"], (k, t - 1)),
                     _c(v["ct"], (k, t - 1))) <= 0)
            add(_lin([(v["dem"][k, i, t], 1) for i in range(I)] + _prev(v["et"], (k, t - 1)),
                     _c(v["et"], (k, t - 1))) <= 0)
            for i, s in enumerate(case.stations):
                w = v["w"][k, i, t]
                cmax = min(tr.c_max_mw, s.c_max_mw)
                emax = min(tr.e_max_mwh, s.e_max_mwh)
                add(_lin([(v["dep"][k, i, t], 1), (v["dcp"][k, i, t], -gam)]) <= 0)
                add(_lin([(v["dem"][k, i, t], 1), (v["dcm"][k, i, t], -gam)]) <= 0)
                for nm, hi in (("dcp", cmax), ("dcm", cmax), ("dep", emax), ("dem", emax)):
                    add(_lin([(v[nm][k, i, t], 1), (w, -hi)]) <= 0)  # (22)-(23)
        # (21)
        add(_lin([(v["ct"][k, T - 1], 1)]) == tr.c_end_mw)
        add(_lin([(v["et"][k, T - 1], 1)]) == tr.e_end_mwh)
    for i, s in enumerate(case.stations):
        for t in range(T):
            cin = [(v["dcm"][k, i, t], 1) for k in range(K)]  # (24): Delta C^{S+}
            cout = [(v["dcp"][k, i, t], 1) for k in range(K)]  # Delta C^{S-}
            ein = [(v["dem"][k, i, t], 1) for k in range(K)]
            eout = [(v["dep"][k, i, t], 1) for k in range(K)]
            cs, es = v["cs"][i, t], v["es"][i, t]
            # (5)
            add(_lin([(cs, 1)] + _prev(v["cs"], (i, t - 1)) + [(a, -1) for a, _ in cin]
                     + [(a, 1) for a, _ in cout], _c(v["cs"], (i, t - 1))) == 0)
            # (7)
            if cin:
                add(_lin(cin) <= s.c_max_mw)
                add(_lin(cout + _prev(v["cs"], (i, t - 1)), _c(v["cs"], (i, t - 1))) <= 0)
                add(_lin(eout + _prev(v["es"], (i, t - 1)), _c(v["es"], (i, t - 1))) <= 0)
            # (9)
            pch, pdis = v["pch"][i, t], v["pdis"][i, t]
            add(_lin([(es, 1)] + _prev(v["es"], (i, t - 1)) + [(a, -1) for a, _ in ein]
                     + [(a, 1) for a, _ in eout] + [(pch, -eta * dt), (pdis, dt / eta)],
                     _c(v["es"], (i, t - 1))) == 0)
            add(_lin([(es, 1), (cs, -gam)]) <= 0)  # (10)
            add(_lin([(pch, 1), (cs, -1)]) <= 0)  # (12)
            add(_lin([(pdis, 1), (cs, -1)]) <= 0)
            if opt.mode_binaries:  # (13)-(15)
                add(_lin([(pch, 1), (v["uch"][i, t], -s.c_max_mw)]) <= 0)
                add(_lin([(pdis, 1), (v["udis"][i, t], -s.c_max_mw)]) <= 0)
                add(_lin([(v["uch"][i, t], 1), (v["udis"][i, t], 1)]) <= 1)
        add(_lin([(v["cs"][i, T - 1], 1)]) == s.c_end_mw)  # (8)
        add(_lin([(v["es"][i, T - 1], 1)]) == s.e_end_mwh)  # (12)
    # ---------------------------------------------------------------- fixed storage (B.10)
    for i, s in enumerate(case.fixed_storage):
        for t in range(T):
            ch = v["fch"][i, t] = var(f"fch_{i}_{t}", 0, s.p_max_mw)
            dis = v["fdis"][i, t] = var(f"fdis_{i}_{t}", 0, s.p_max_mw)
            e = v["fe"][i, t] = var(f"fe_{i}_{t}", 0, s.e_max_mwh)
            prev = [(v["fe"][i, t - 1], -1)] if t else []
            add(_lin([(e, 1), *prev, (ch, -eta * dt), (dis, dt / eta)],
                     0.0 if t else -s.e0_mwh) == 0)
            if opt.mode_binaries:
                uc = v["fuch"][i, t] = var(f"fuch_{i}_{t}", cat=Bin)
                ud = v["fudis"][i, t] = var(f"fudis_{i}_{t}", cat=Bin)
                add(_lin([(ch, 1), (uc, -s.p_max_mw)]) <= 0)
                add(_lin([(dis, 1), (ud, -s.p_max_mw)]) <= 0)
                add(_lin([(uc, 1), (ud, 1)]) <= 1)
        add(_lin([(v["fe"][i, T - 1], 1)]) == s.e0_mwh)
    # ---------------------------------------------------------------- balance (35)
    for t in range(T):
        add(_lin(_injection_terms(case, v, t, None)) == float(case.total_load_mw[t]))
    prob.setObjective(_lin(objective))
    model = TsnModel(case, kind, opt, prob, v, 0.0, set(), prob.objective, arcs)
    if opt.line_limits and lines:
        add_line_rows(model, lines)
    model.build_s = time.perf_counter() - t0
    return model


def reach_bounds(case: TransmissionCase, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(T+1,) upper bounds on train ``k``'s capacity (MW) and energy (MWh) at each time point.

    Forward from its initial state at ``ready_h``: in one parked hour a train takes at most what
    one station holds at the start of that hour ((7): ``cout <= cs_{t-1}``; ``c0`` / ``e0`` of the
    stations at t = 0, their maxima later). Backward from its end target: in one hour it gives at
    most one station's intake (``sum_k dcm <= c_max``, ``dem <= gamma dcm`` and ``<= e_max``).
    Both capped by the train's maxima, the fleet's total capacity (conserved) and
    ``gamma_h`` times the capacity bound. Valid for every integer (and LP) point of the model."""
    T, gam, tr = case.T, case.gamma_h, case.trains[k]
    st = case.stations
    c_tot = sum(s.c0_mw for s in st) + sum(t.c0_mw for t in case.trains)
    cf, ef = np.full(T + 1, float(tr.c_max_mw)), np.full(T + 1, float(tr.e_max_mwh))
    cf[tr.ready_h], ef[tr.ready_h] = tr.c0_mw, tr.e0_mwh
    for th in range(tr.ready_h, T):
        give_c = max(s.c0_mw if th == 0 else s.c_max_mw for s in st)
        give_e = max(s.e0_mwh if th == 0 else min(s.e_max_mwh, gam * s.c_max_mw) for s in st)
        cf[th + 1] = min(tr.c_max_mw, c_tot, cf[th] + give_c)
        ef[th + 1] = min(tr.e_max_mwh, gam * cf[th + 1], ef[th] + give_e)
    cb, eb = np.full(T + 1, float(tr.c_max_mw)), np.full(T + 1, float(tr.e_max_mwh))
    cb[T], eb[T] = tr.c_end_mw, tr.e_end_mwh
    take_c = max(s.c_max_mw for s in st)
    take_e = max(min(s.e_max_mwh, gam * s.c_max_mw) for s in st)
    for th in range(T - 1, -1, -1):
        cb[th] = min(tr.c_max_mw, c_tot, cb[th + 1] + take_c)
        eb[th] = min(tr.e_max_mwh, gam * cb[th], eb[th + 1] + take_e)
    return np.minimum(cf, cb), np.minimum(np.minimum(ef, eb), gam * np.minimum(cf, cb))


def usable_arcs(case: TransmissionCase, k: int, arcs: list) -> set:
    """Arcs of ``arcs`` on some path of train ``k`` from (start, ready_h) to (end, T)."""
    tr, T = case.trains[k], case.T
    src, dst = (case.station_pos(tr.start), tr.ready_h), (case.station_pos(tr.end), T)
    fwd, bwd = {src}, {dst}
    for a in sorted(arcs, key=lambda a: a[1]):
        if (a[0], a[1]) in fwd:
            fwd.add((a[2], a[3]))
    for a in sorted(arcs, key=lambda a: -a[3]):
        if (a[2], a[3]) in bwd:
            bwd.add((a[0], a[1]))
    return {a for a in arcs if (a[0], a[1]) in fwd and (a[2], a[3]) in bwd}


def _arc_flows(case, v, arcs, out_arcs, in_arcs, add, var, tight: bool = False) -> None:
    """Capacity and energy of each train on each arc it uses (see ``TsnOptions.arc_flows``).

    ``c0/e0`` at the start of an arc, ``c1/e1`` at its end; they differ only on station arcs,
    by the exchanges of that hour. Conservation at every TSN node; start and end nodes carry the
    train's initial (= terminal, (21)) capacity and energy. With ``tight`` the big-Ms are the
    time-dependent :func:`reach_bounds` (a route arc holds the state of both its ends)."""
    T, gam = case.T, case.gamma_h
    for k, tr in enumerate(case.trains):
        cmax, emax = tr.c_max_mw, tr.e_max_mwh
        if tight:
            cub, eub = reach_bounds(case, k)
        else:
            cub, eub = np.full(T + 1, float(cmax)), np.full(T + 1, float(emax))
        c0, e0, c1, e1 = {}, {}, {}, {}
        for a in arcs:
            x = v["x"][k, a]
            tag = f"{k}_{a[0]}_{a[1]}_{a[2]}_{a[3]}"
            mc = float(min(cub[a[1]], cub[a[3]] if a[0] != a[2] else cmax))
            me = float(min(eub[a[1]], eub[a[3]] if a[0] != a[2] else emax))
            c0[a] = var(f"ac0_{tag}", 0, cmax)
            e0[a] = var(f"ae0_{tag}", 0, emax)
            add(_lin([(c0[a], 1), (x, -mc)]) <= 0)
            add(_lin([(e0[a], 1), (x, -me)]) <= 0)
            add(_lin([(e0[a], 1), (c0[a], -gam)]) <= 0)
            if a[0] == a[2]:
                i, t = a[0], a[1]
                c1[a] = var(f"ac1_{tag}", 0, cmax)
                e1[a] = var(f"ae1_{tag}", 0, emax)
                add(_lin([(c1[a], 1), (x, -float(cub[a[3]]))]) <= 0)
                add(_lin([(e1[a], 1), (x, -float(eub[a[3]]))]) <= 0)
                add(_lin([(e1[a], 1), (c1[a], -gam)]) <= 0)
                add(_lin([(c1[a], 1), (c0[a], -1), (v["dcp"][k, i, t], -1),
                          (v["dcm"][k, i, t], 1)]) == 0)
                add(_lin([(e1[a], 1), (e0[a], -1), (v["dep"][k, i, t], -1),
                          (v["dem"][k, i, t], 1)]) == 0)
                add(_lin([(v["dcm"][k, i, t], 1), (c0[a], -1)]) <= 0)
                add(_lin([(v["dem"][k, i, t], 1), (e0[a], -1)]) <= 0)
            else:
                c1[a], e1[a] = c0[a], e0[a]
        i0, iT = case.station_pos(tr.start), case.station_pos(tr.end)
        src = (i0, tr.ready_h)
        for i in range(len(case.stations)):
            for th in range(T + 1):
                outs, ins = out_arcs.get((i, th), []), in_arcs.get((i, th), [])
                for start, end, init, target in ((c0, c1, tr.c0_mw, tr.c_end_mw),
                                                  (e0, e1, tr.e0_mwh, tr.e_end_mwh)):
                    supply = init if (i, th) == src else 0.0
                    if th == 0:
                        add(_lin([(start[a], 1) for a in outs]) == supply)
                    elif th == T:
                        add(_lin([(end[a], 1) for a in ins]) == (target if i == iT else 0.0))
                    else:
                        add(_lin([(end[a], 1) for a in ins]
                                 + [(start[a], -1) for a in outs]) == -supply)


def _prev(d, key):
    """``[(var, -1)]`` for the previous state when it is a variable (else the constant goes to
    :func:`_c`)."""
    x = d[key]
    return [(x, -1)] if not isinstance(x, (int, float)) else []


def _c(d, key) -> float:
    x = d[key]
    return -float(x) if isinstance(x, (int, float)) else 0.0


def _bus_terms(case: TransmissionCase, v: dict, t: int) -> list[tuple[int, object, float]]:
    """``(bus position, variable, sign)`` of every injection at hour ``t``."""
    out = []
    for gi, g in enumerate(case.units):
        out.append((case.bus_pos(g.bus), v["p"][gi, t], 1.0))
    for wi, w in enumerate(case.wind):
        out.append((case.bus_pos(w.bus), v["pw"][wi, t], 1.0))
    for i, s in enumerate(case.stations):
        b = case.bus_pos(s.bus)
        out += [(b, v["pdis"][i, t], 1.0), (b, v["pch"][i, t], -1.0)]
    for i, s in enumerate(case.fixed_storage):
        b = case.bus_pos(s.bus)
        out += [(b, v["fdis"][i, t], 1.0), (b, v["fch"][i, t], -1.0)]
    return out


def _injection_terms(case, v, t, line):
    if line is None:
        return [(x, sg) for _, x, sg in _bus_terms(case, v, t)]
    row = case.ptdf[line]
    return [(x, sg * row[b]) for b, x, sg in _bus_terms(case, v, t) if row[b] != 0.0]


def add_line_rows(model: TsnModel, rows: set[tuple[int, int]]) -> int:
    """Add the PTDF limits (36) of ``(line, hour)`` rows not yet in the model; returns how many."""
    case, n = model.case, 0
    for line, t in sorted(rows):
        if (line, t) in model.lines:
            continue
        terms = _injection_terms(case, model.v, t, line)
        load_flow = float(case.ptdf[line] @ case.load_mw[t])
        r = float(case.rating_mw[line])
        expr = _lin(terms, -load_flow)
        model.prob.addConstraint(expr <= r, name=f"flow_hi_{line}_{t}")
        model.prob.addConstraint(expr >= -r, name=f"flow_lo_{line}_{t}")
        model.lines.add((line, t))
        n += 1
    return n


# ------------------------------------------------------------------------ results
@dataclass(frozen=True)
class TsnPlan:
    """A solved seed-001 model. Arrays are (entity, hour) unless noted; hours are 1..T."""

    case_name: str
    kind: str
    outcome: SolveOutcome
    p_mw: np.ndarray  # (G, T) thermal output
    u: np.ndarray  # (G, T) commitment
    wind_mw: np.ndarray  # (W, T)
    pch_mw: np.ndarray  # (I, T) stations' charging from the grid
    pdis_mw: np.ndarray  # (I, T)
    cs_mw: np.ndarray  # (I, T+1) station capacity, column 0 = initial
    es_mwh: np.ndarray  # (I, T+1)
    ct_mw: np.ndarray  # (K, T+1)
    et_mwh: np.ndarray  # (K, T+1)
    w: np.ndarray  # (K, I, T) connections
    fch_mw: np.ndarray  # (J, T) fixed storage
    fdis_mw: np.ndarray
    fe_mwh: np.ndarray  # (J, T+1)
    operating_cost: float  # thermal cost with PWL, start-up and shut-down (USD)
    operating_cost_quadratic: float  # the same with the exact quadratic cost
    transport_cost: float
    line_rows: int  # PTDF rows in the final model
    line_rounds: int
    max_overload_mw: float  # over every line and hour (<= tolerance when feasible)

    @property
    def total_cost(self) -> float:
        return self.operating_cost + self.transport_cost

    @property
    def has_solution(self) -> bool:
        return self.outcome.has_solution

    def wind_utilisation_pct(self, case: TransmissionCase) -> float:
        """(46)."""
        avail = sum(float(w.p_avail_mw.sum()) for w in case.wind)
        return 100.0 * float(self.wind_mw.sum()) / avail if avail else float("nan")

    def storage_utilisation_pct(self, case: TransmissionCase) -> float:
        """(48): throughput over T hours of the total storage power."""
        c_tot = case.storage_power_mw
        thr = (self.pch_mw.sum() + self.pdis_mw.sum() + self.fch_mw.sum()
               + self.fdis_mw.sum()) * case.dt_h
        return 100.0 * float(thr) / (case.T * case.dt_h * c_tot) if c_tot else float("nan")

    def train_hours(self) -> float:
        """Hours the trains spend travelling."""
        return float(self.w.shape[2] * self.w.shape[0] - self.w.sum()) if self.w.size else 0.0

    def station_of(self) -> np.ndarray:
        """(K, T): station index each train is parked at during hour t, -1 in transit."""
        K, I, T = self.w.shape  # noqa: E741
        out = -np.ones((K, T), dtype=int)
        for k in range(K):
            for t in range(T):
                hit = np.flatnonzero(self.w[k, :, t] > 0.5)
                if hit.size:
                    out[k, t] = int(hit[0])
        return out


def _val(x) -> float:
    if isinstance(x, (int, float)):
        return float(x)
    return 0.0 if x.varValue is None else float(x.varValue)


def _grid(d: dict, shape: tuple, offset: int = 0) -> np.ndarray:
    a = np.zeros(shape)
    for key, x in d.items():
        idx = list(key)
        idx[-1] += offset
        a[tuple(idx)] = _val(x)
    return a


def flows_mw(case: TransmissionCase, plan_inj: np.ndarray) -> np.ndarray:
    """(T, L) PTDF flows of a (T, n_bus) net injection."""
    return plan_inj @ case.ptdf.T


def plan_flows_mw(case: TransmissionCase, plan: TsnPlan) -> np.ndarray:
    """(T, L) PTDF line flows (MW) of a plan's dispatch: committed units, wind, stations and
    stationary stores, less the load."""
    inj = -np.array(case.load_mw, dtype=float)
    for g, u in enumerate(case.units):
        inj[:, case.bus_pos(u.bus)] += plan.p_mw[g] * (plan.u[g] > 0.5)
    for wi, w in enumerate(case.wind):
        inj[:, case.bus_pos(w.bus)] += plan.wind_mw[wi]
    for i, s in enumerate(case.stations):
        inj[:, case.bus_pos(s.bus)] += plan.pdis_mw[i] - plan.pch_mw[i]
    for j, s in enumerate(case.fixed_storage):
        inj[:, case.bus_pos(s.bus)] += plan.fdis_mw[j] - plan.fch_mw[j]
    return flows_mw(case, inj)


def net_injection_mw(case: TransmissionCase, v: dict) -> np.ndarray:
    inj = -np.array(case.load_mw, dtype=float)
    for t in range(case.T):
        for b, x, sg in _bus_terms(case, v, t):
            inj[t, b] += sg * _val(x)
    return inj


def violated_rows(model: TsnModel) -> tuple[set[tuple[int, int]], float]:
    """Rows (line, hour) the current solution violates, and the largest overload (MW)."""
    case = model.case
    f = flows_mw(case, net_injection_mw(case, model.v))
    over = np.abs(f) - case.rating_mw[None, :]
    over = np.where(np.isfinite(over), over, -np.inf)
    t_idx, l_idx = np.nonzero(over > FLOW_TOL_MW)
    worst = float(over.max()) if over.size else 0.0
    return {(int(ll), int(tt)) for tt, ll in zip(t_idx, l_idx)}, max(worst, 0.0)


def extract(model: TsnModel, outcome: SolveOutcome, rounds: int = 0) -> TsnPlan:
    case = model.case
    T, G, W = case.T, len(case.units), len(case.wind)
    I, K, J = len(case.stations), len(case.trains), len(case.fixed_storage)  # noqa: E741
    v = model.v
    p, u = _grid(v["p"], (G, T)), np.round(_grid(v["u"], (G, T)))
    op_pwl = op_quad = 0.0
    for gi, g in enumerate(case.units):
        pieces = pwl_pieces(g, model.opt.pwl_segments)
        for t in range(T):
            if u[gi, t] > 0.5:
                op_pwl += max(a + s * p[gi, t] for a, s in pieces) * case.dt_h
                op_quad += (g.cost_a + g.cost_b * p[gi, t] + g.cost_c * p[gi, t] ** 2) * case.dt_h
            su = _val(v["y"][gi, t]) * g.startup_cost + _val(v["z"][gi, t]) * g.shutdown_cost
            op_pwl += su
            op_quad += su
    w = np.zeros((K, I, T))
    for (k, i, t), x in v["w"].items():
        w[k, i, t] = round(_val(x))
    transport = 0.0
    if model.kind == "central":
        transport = sum(arc_cost(case, a) * round(_val(x)) for (k, a), x in v["x"].items())
    else:
        transport = route_cost_of_connections(case, w)

    def states(d, n, init):
        a = np.zeros((n, T + 1))
        for e in range(n):
            a[e, 0] = init[e]
            for t in range(T):
                a[e, t + 1] = _val(d[e, t])
        return a

    _, worst = violated_rows(model)
    return TsnPlan(
        case.name, model.kind, outcome, p, u, _grid(v["pw"], (W, T)),
        _grid(v["pch"], (I, T)), _grid(v["pdis"], (I, T)),
        states(v["cs"], I, [s.c0_mw for s in case.stations]),
        states(v["es"], I, [s.e0_mwh for s in case.stations]),
        states(v["ct"], K, [tr.c0_mw for tr in case.trains]),
        states(v["et"], K, [tr.e0_mwh for tr in case.trains]),
        w, _grid(v["fch"], (J, T)), _grid(v["fdis"], (J, T)),
        np.hstack([np.array([[s.e0_mwh] for s in case.fixed_storage]).reshape(J, 1),
                   _grid(v["fe"], (J, T))]),
        float(op_pwl), float(op_quad), float(transport), len(model.lines), rounds, worst)


def route_cost_of_connections(case: TransmissionCase, w: np.ndarray) -> float:
    """Transport cost implied by connection schedules: ``c_h`` per hour not parked.

    Valid for routes that are TSN paths (every hour is either parked or travelling); the hours a
    train is still in transit before its ``ready_h`` are a sunk cost and not counted."""
    K, _, T = w.shape
    sunk = sum(tr.ready_h for tr in case.trains)
    return float(case.transport_cost_per_h * case.dt_h * (K * T - sunk - w.sum()))


def solve_lazy(model: TsnModel, start: dict | None = None) -> tuple[SolveOutcome, int]:
    """Solve, then add violated line rows and solve again until none is violated.

    Returns the last outcome (its status says whether the final model was solved to the gap)
    and the number of rounds. The build time of added rows is counted in ``build_s``;
    ``solve_s`` and ``transfer_s`` (PuLP's hand-over to the solver) are summed over the rounds.
    """
    opt = model.opt
    rounds, total_solve, total_transfer = 0, 0.0, 0.0
    t_start = time.perf_counter()
    while True:
        remaining = None
        if opt.time_limit_s is not None:
            remaining = max(1.0, opt.time_limit_s - (time.perf_counter() - t_start))
        out = solve(model.prob, solver=opt.solver, time_limit_s=remaining, mip_gap=opt.mip_gap,
                    build_s=model.build_s, start=start, threads=opt.threads)
        total_solve += out.solve_s
        total_transfer += out.transfer_s
        rounds += 1
        if not out.has_solution or not opt.line_limits:
            break
        viol, _ = violated_rows(model)
        if not viol or rounds >= opt.max_line_rounds:
            if viol:
                out = replace(out, status="error",
                              message=out.message + f"; {len(viol)} line rows still violated")
            break
        t0 = time.perf_counter()
        add_line_rows(model, viol)
        model.build_s += time.perf_counter() - t0
        start = None
    return replace(out, solve_s=total_solve, build_s=model.build_s,
                   transfer_s=total_transfer), rounds


def initial_line_rows(case: TransmissionCase, opt: TsnOptions) -> set[tuple[int, int]]:
    """Rows to start from: the screened lines' rows that bind (>= 90 % of rating) in the LP
    relaxation with every screened row present. A cheap LP that usually finds them all."""
    cand = screen_lines(case)
    if not opt.line_limits or cand.size == 0:
        return set()
    rows = {(int(line), t) for line in cand for t in range(case.T)}
    relax = replace(opt, mode_binaries=False)
    m = build(case, "power" if case.trains else "central", relax, lines=rows)
    for x in m.prob.variables():
        x.cat = pulp.LpContinuous
    out = solve(m.prob, solver="highs", time_limit_s=60.0, mip_gap=opt.mip_gap)
    if not out.has_solution:
        return set()
    f = flows_mw(case, net_injection_mw(case, m.v))
    load = np.abs(f) / case.rating_mw[None, :]
    return {(int(line), t) for line in cand for t in range(case.T) if load[t, line] >= 0.9}


@dataclass(frozen=True)
class WarmStart:
    """A known solution to start a central solve from (a MIP start): each train's TSN path and,
    optionally, the commitment ``u`` (G, T) and the stations' charge / discharge (I, T) that
    fix the mode binaries. HiGHS completes the continuous part itself (a partial start)."""

    paths: list
    u: np.ndarray | None = None
    pch_mw: np.ndarray | None = None
    pdis_mw: np.ndarray | None = None


def warm_start_values(model: TsnModel, ws: WarmStart) -> dict:
    """``{variable: value}`` of the binaries of ``model`` (kind ``central``) set by ``ws``."""
    case, v = model.case, model.v
    out: dict = {}
    if v["x"]:
        on = {(k, tuple(int(x) for x in a)) for k, p in enumerate(ws.paths) for a in p}
        for (k, a), var in v["x"].items():
            out[var] = 1.0 if (k, a) in on else 0.0
    if ws.u is not None:
        for gi, g in enumerate(case.units):
            prev = float(g.u0)
            for t in range(case.T):
                u = float(round(ws.u[gi, t]))
                out[v["u"][gi, t]] = u
                out[v["y"][gi, t]] = max(u - prev, 0.0)
                out[v["z"][gi, t]] = max(prev - u, 0.0)
                prev = u
    if ws.pch_mw is not None and v["uch"]:
        for (i, t), var in v["uch"].items():
            out[var] = 1.0 if ws.pch_mw[i, t] > 1e-9 else 0.0
            out[v["udis"][i, t]] = 1.0 if (ws.pdis_mw[i, t] > 1e-9
                                           and ws.pch_mw[i, t] <= 1e-9) else 0.0
    return out


def operating_cost(case: TransmissionCase, p_mw: np.ndarray, u: np.ndarray,
                   pwl_segments: int = 8) -> tuple[float, float]:
    """Thermal cost (USD) of outputs ``p_mw`` and commitment ``u`` (G, T): with the PWL cost
    of the model and with the exact quadratic, both with start-up / shut-down costs counted
    from the case's ``u0``. Used to cost a simulated run like a plan."""
    pwl = quad = 0.0
    for gi, g in enumerate(case.units):
        pieces = pwl_pieces(g, pwl_segments)
        prev = int(g.u0)
        for t in range(u.shape[1]):
            on = int(round(u[gi, t]))
            if on:
                p = float(p_mw[gi, t])
                pwl += max(a + s * p for a, s in pieces) * case.dt_h
                quad += (g.cost_a + g.cost_b * p + g.cost_c * p * p) * case.dt_h
            sw = g.startup_cost * max(on - prev, 0) + g.shutdown_cost * max(prev - on, 0)
            pwl += sw
            quad += sw
            prev = on
    return float(pwl), float(quad)


def solve_case(case: TransmissionCase, opt: TsnOptions | None = None,
               kind: str = "central", warm: WarmStart | None = None
               ) -> tuple[TsnPlan, TsnModel]:
    """Build with the screened start rows, solve with lazy lines, extract. ``warm`` (central
    models only) is handed to HiGHS as a MIP start."""
    opt = opt or TsnOptions()
    t0 = time.perf_counter()
    rows = initial_line_rows(case, opt) if opt.line_limits else set()
    pre_s = time.perf_counter() - t0
    model = build(case, kind, opt, lines=rows)
    model.build_s += pre_s
    start = warm_start_values(model, warm) if warm is not None and kind == "central" else None
    out, rounds = solve_lazy(model, start=start)
    return extract(model, out, rounds), model
