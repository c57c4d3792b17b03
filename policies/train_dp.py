"""Train routing against the grid's hourly prices: a transport DP and a greedy rule (MODELS.md B).

Both plan in two stages, the second shared:

1. **Prices.** The grid without trains and with the stations idle: the unit commitment MILP of
   :func:`policies.tsn_milp.solve_case` (stations, trains and stationary stores removed), then,
   hour by hour with that commitment fixed, a DC optimal power flow LP (the committed units'
   piecewise-linear cost chords on ``[P_min, P_max]``, wind up to its availability, the screened
   PTDF line limits; ramps and minimum up/down times are left to the UC). The LP's duals give
   the locational marginal price of every bus, ``LMP_b = d cost / d load_b`` (USD/MWh):
   the balance row's dual plus the PTDF-weighted duals of the binding line rows. An hour the LP
   cannot balance takes load shedding / spill at ``VOLL_USD_PER_MWH`` and is counted.
2. **Routes**, one per train, from its start (station, ``ready_h``) to its end station at ``T``:

   * ``dp`` (:func:`route_train_dp`): exact backward induction over (station, time point, stored
     energy level). A parked hour at station ``i`` may charge or discharge the train's energy
     through the station at ``LMP_i,t`` (``dE`` stored costs ``LMP dE / eta`` bought, a release
     earns ``LMP eta dE``), at most ``min(C_train, C_station_max)`` MW; a trip costs
     ``c_h tau`` and keeps the energy. The train must end with its end-of-day energy.
   * ``greedy`` (:func:`route_train_greedy`): the rule "charge at the cheapest reachable
     station-hour, discharge at the dearest one after it": over every pair of station-hours
     (charge before discharge) that a TSN path can visit, the largest price spread net of the
     extra transport cost; the path through both is the cheapest such TSN path. No profitable
     pair: the train stays parked.

3. **Dispatch** (:func:`dispatch_routes`): the power MILP (the OCD power layer of
   :mod:`policies.tsn_milp`) with each train's connections fixed to its route; it sets the
   exchanges, the stations and the units. With the routes fixed this is the central MILP
   restricted to those routes, so its cost is never below the central optimum (up to the MIP
   gaps), and, where parking the trains and idling the stations is feasible for the routes, not
   above the cost of doing nothing with them.

The trains are routed independently against the same prices (the prices do not see the trains).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import linprog

from policies.ocd import route_connections, shortest_path, transport_cost
from policies.tsn_milp import (
    TsnOptions,
    TsnPlan,
    arc_cost,
    build,
    extract,
    initial_line_rows,
    pwl_pieces,
    screen_lines,
    solve_case,
    solve_lazy,
)
from sim.tsn import TransmissionCase

Arc = tuple[int, int, int, int]

#: Price of load shedding / spill in the pricing LP of an hour that cannot balance (USD/MWh).
VOLL_USD_PER_MWH = 1e4


@dataclass
class GridPrices:
    """Hourly locational prices without the trains."""

    bus_lmp: np.ndarray  # (T, n_bus) USD/MWh, columns in ``case.bus_ids`` order
    station_lmp: np.ndarray  # (n_station, T)
    uc_status: str  # status of the commitment MILP
    uc_operating_cost: float | None
    lp_status: list[str]  # per hour
    slack_hours: int  # hours that needed shedding or spill
    solve_s: float


def hour_lmp(case: TransmissionCase, t: int, on: np.ndarray, pwl_segments: int = 8,
             lines: np.ndarray | None = None, load_mw: np.ndarray | None = None
             ) -> tuple[np.ndarray, float, str, bool]:
    """DC-OPF LP of hour ``t`` with the units ``on`` (bool, G): (LMP per bus, cost, status,
    slack used). ``load_mw`` overrides the hour's bus loads (finite-difference checks)."""
    load = np.asarray(case.load_mw[t] if load_mw is None else load_mw, dtype=float)
    lines = screen_lines(case) if lines is None else lines
    cost, ub, bus, base = [], [], [], 0.0
    pmin_inj = np.zeros(len(case.bus_ids))
    for gi, g in enumerate(case.units):
        if not on[gi]:
            continue
        b = case.bus_pos(g.bus)
        pmin_inj[b] += g.p_min_mw
        pieces = pwl_pieces(g, pwl_segments)
        base += max(a + s * g.p_min_mw for a, s in pieces)
        if g.p_max_mw <= g.p_min_mw:
            continue
        pts = np.linspace(g.p_min_mw, g.p_max_mw, len(pieces) + 1)
        for (_, s), p0, p1 in zip(pieces, pts[:-1], pts[1:]):
            cost.append(s)
            ub.append(p1 - p0)
            bus.append(b)
    for w in case.wind:
        cost.append(0.0)
        ub.append(float(w.p_avail_mw[t]))
        bus.append(case.bus_pos(w.bus))
    n_inj = len(cost)
    # shedding at every bus would make the LMPs meaningless: one system-wide shed and spill
    ref = 0
    cost += [VOLL_USD_PER_MWH, VOLL_USD_PER_MWH]
    ub += [None, None]
    bus += [ref, ref]
    sign = np.r_[np.ones(n_inj), 1.0, -1.0]
    bus = np.asarray(bus, dtype=int)
    a_eq = sign[None, :]
    b_eq = [float(load.sum() - pmin_inj.sum())]
    rows, rhs = [], []
    for line in lines:
        r = float(case.rating_mw[line])
        if not np.isfinite(r):
            continue
        row = case.ptdf[line]
        coef = row[bus] * sign
        flow0 = float(row @ pmin_inj - row @ load)
        rows += [coef, -coef]
        rhs += [r - flow0, r + flow0]
    res = linprog(np.asarray(cost), A_ub=np.asarray(rows) if rows else None,
                  b_ub=np.asarray(rhs) if rhs else None, A_eq=a_eq, b_eq=b_eq,
                  bounds=list(zip([0.0] * len(ub), ub)), method="highs")
    if res.status != 0:
        return np.full(len(case.bus_ids), np.nan), float("nan"), f"lp_status_{res.status}", True
    lmp = np.full(len(case.bus_ids), float(res.eqlin.marginals[0]))
    if rows:
        mu = np.asarray(res.ineqlin.marginals)
        used = [line for line in lines if np.isfinite(case.rating_mw[line])]
        for n, line in enumerate(used):
            lmp += case.ptdf[line] * (mu[2 * n] - mu[2 * n + 1])
    slack = bool(res.x[n_inj:].sum() > 1e-6)
    return lmp, float(res.fun + base), "optimal", slack


def grid_prices(case: TransmissionCase, opt: TsnOptions | None = None) -> GridPrices:
    """Hourly LMPs of ``case`` without its trains (module docstring, step 1)."""
    opt = opt or TsnOptions()
    t0 = time.perf_counter()
    bare = replace(case, name=f"{case.name}-bare", stations=(), trains=(), fixed_storage=())
    uc, _ = solve_case(bare, opt, kind="central")
    if uc.has_solution:
        on = uc.u > 0.5
        uc_cost = uc.operating_cost
    else:  # no commitment: price every unit as on (an LP bound on what the hour costs)
        on = np.ones((len(case.units), case.T), dtype=bool)
        uc_cost = None
    lines = screen_lines(case) if opt.line_limits else np.zeros(0, dtype=int)
    bus_lmp = np.zeros((case.T, len(case.bus_ids)))
    statuses, slack = [], 0
    for t in range(case.T):
        lmp, _, st, used = hour_lmp(case, t, on[:, t], opt.pwl_segments, lines)
        bus_lmp[t] = lmp
        statuses.append(st)
        slack += int(used)
    st_lmp = np.array([bus_lmp[:, case.bus_pos(s.bus)] for s in case.stations]).reshape(
        len(case.stations), case.T)
    return GridPrices(bus_lmp, st_lmp, uc.outcome.status, uc_cost, statuses, slack,
                      time.perf_counter() - t0)


def _levels(case: TransmissionCase, k: int, n_levels: int) -> tuple[float, int, int, int, int]:
    """(energy step, top level, start level, end level, levels per parked hour) of train k."""
    tr = case.trains[k]
    cap = max(min(tr.e_max_mwh, case.gamma_h * tr.c0_mw), tr.e0_mwh, tr.e_end_mwh)
    de = cap / n_levels if cap > 0 else 1.0
    m0 = int(round(tr.e0_mwh / de))
    m_end = int(round(tr.e_end_mwh / de))
    p_max = min([tr.c0_mw] + [s.c_max_mw for s in case.stations]) * case.dt_h
    return de, n_levels if cap > 0 else 0, m0, m_end, int(np.floor(p_max / de + 1e-9))


def route_train_dp(case: TransmissionCase, k: int, station_lmp: np.ndarray,
                   n_levels: int = 20) -> tuple[list[Arc], float, np.ndarray]:
    """Train ``k``'s route by exact backward induction over (station, time point, energy level)
    against ``station_lmp`` (I, T). Returns the TSN path, its DP value (transport cost plus
    energy bought less energy sold, USD) and the energy plan (MWh at time points
    ``ready_h..T``)."""
    tr = case.trains[k]
    n, T, eta = len(case.stations), case.T, case.eta
    i0, i_end = case.station_pos(tr.start), case.station_pos(tr.end)
    de, M, m0, m_end, dm_max = _levels(case, k, n_levels)
    INF = np.inf
    V = np.full((n, T + 1, M + 1), INF)
    V[i_end, T, m_end] = 0.0
    # choice: (kind, arg) kind 0 = park with energy change arg, 1 = travel to station arg
    kind = np.full((n, T + 1, M + 1), -1, dtype=int)
    arg = np.zeros((n, T + 1, M + 1), dtype=int)
    m = np.arange(M + 1)
    r = tr.ready_h
    for th in range(T - 1, r - 1, -1):
        for i in range(n):
            price = float(station_lmp[i, th])
            best = np.full(M + 1, INF)
            bk = np.full(M + 1, -1)
            ba = np.zeros(M + 1, dtype=int)
            for d in sorted(range(-dm_max, dm_max + 1), key=abs):  # ties: the smallest change
                to = m + d
                ok = (to >= 0) & (to <= M)
                e = d * de
                c = price * e / eta if d > 0 else price * e * eta
                cand = np.full(M + 1, INF)
                cand[ok] = c + V[i, th + 1, to[ok]]
                better = cand < best - 1e-9
                best[better], bk[better], ba[better] = cand[better], 0, d
            for j in range(n):
                if j == i:
                    continue
                th2 = th + int(case.travel_h[i, j])
                if th2 > T:
                    continue
                cand = arc_cost(case, (i, th, j, th2)) + V[j, th2]
                better = cand < best - 1e-9
                best[better], bk[better], ba[better] = cand[better], 1, j
            V[i, th], kind[i, th], arg[i, th] = best, bk, ba
    value = float(V[i0, r, m0])
    if not np.isfinite(value):
        raise ValueError(f"train {tr.name}: no TSN path from {tr.start} to {tr.end} with its "
                         f"end energy in {T} h")
    path: list[Arc] = []
    energy = [m0 * de]
    i, th, lvl = i0, r, m0
    while th < T:
        if kind[i, th, lvl] == 0:
            path.append((i, th, i, th + 1))
            lvl += int(arg[i, th, lvl])
            th += 1
            energy.append(lvl * de)
        else:
            j = int(arg[i, th, lvl])
            th2 = th + int(case.travel_h[i, j])
            path.append((i, th, j, th2))
            energy += [lvl * de] * (th2 - th)
            i, th = j, th2
    return path, value, np.asarray(energy)


def route_train_greedy(case: TransmissionCase, k: int, station_lmp: np.ndarray
                       ) -> tuple[list[Arc], dict]:
    """Train ``k``'s route by the greedy rule (module docstring): the station-hour pair with
    the largest price spread net of the extra transport cost, or parked."""
    tr = case.trains[k]
    n, T, eta = len(case.stations), case.T, case.eta
    park, park_cost = shortest_path(case, k, np.zeros((n, T)))
    # the energy one charge-then-discharge cycle moves: one hour at the train's (or the
    # smallest station's) power, within the room the train has above its start energy
    cap = min(tr.e_max_mwh, case.gamma_h * tr.c0_mw)
    p_hour = min([tr.c0_mw] + [s.c_max_mw for s in case.stations]) * case.dt_h
    energy = min(p_hour, max(cap - tr.e0_mwh, 0.0))
    order = sorted((float(station_lmp[i, t]), t, i) for i in range(n)
                   for t in range(tr.ready_h, T))
    best = (0.0, park, None)
    for pc, tc, ic in order[: max(4, n)]:  # the cheapest few station-hours to charge at
        for pd_, td, id_ in sorted(order, reverse=True):
            if td <= tc:
                continue
            spread = energy * (eta * pd_ - pc / eta)
            if spread <= best[0]:
                break  # the rest are cheaper still
            reward = np.zeros((n, T))
            reward[ic, tc] = reward[id_, td] = -1e3
            path, _ = shortest_path(case, k, reward)
            if (ic, tc, ic, tc + 1) not in path or (id_, td, id_, td + 1) not in path:
                continue
            gain = spread - (transport_cost(case, [path]) - park_cost)
            if gain > best[0] + 1e-9:
                best = (gain, path, (ic, tc, id_, td))
            break  # the dearest reachable discharge hour for this charge hour
    info = {"gain_usd": best[0], "pair": best[2]}
    return best[1], info


def dispatch_routes(case: TransmissionCase, paths: list[list[Arc]], opt: TsnOptions
                    ) -> TsnPlan:
    """The power MILP with each train's connections fixed to its route (module docstring)."""
    popt = replace(opt, mobility="none")
    rows = initial_line_rows(case, popt) if popt.line_limits else set()
    model = build(case, "power", popt, lines=rows)
    model.fix_connections(route_connections(case, paths))
    model.set_multipliers(np.zeros((len(case.trains), len(case.stations), case.T)))
    out, rounds = solve_lazy(model)
    return extract(model, out, rounds)


__all__ = ["GridPrices", "VOLL_USD_PER_MWH", "dispatch_routes", "grid_prices", "hour_lmp",
           "route_train_dp", "route_train_greedy"]
