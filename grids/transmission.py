"""Transmission cases of seed 001 (MODELS.md part B): modified IEEE 30-bus and 118-bus systems.

:func:`build_case` turns pandapower's MATPOWER ``case30`` / ``case118`` into a frozen
:class:`sim.tsn.TransmissionCase` (units with commitment data, wind, hourly bus loads, PTDF and
ratings, stations, trains or stationary storage) plus the pandapower net with a wind ``sgen`` and
one ``storage`` row per storage bus created once. :func:`evaluate_dispatch` pushes one hour of a
dispatch into that net and runs pandapower's DC and AC power flows, returning a
:class:`DispatchCheck` (non-convergence is data, never an exception).

Bus numbering
    MATPOWER numbers buses from 1; pandapower's ``case30()`` / ``case118()`` index them from 0 and
    keep the MATPOWER number in ``net.bus.name``. Everything in :class:`TransmissionCase` uses the
    **pandapower index** (``Station.bus``, ``ThermalUnit.bus``, ``bus_ids``); the MATPOWER number
    appears only in readable names (``"line 12-13"``, ``"G13"``, ``"storage bus 4"``) and in the
    B.14 data below, which is stated in MATPOWER numbers and converted with :func:`pp_bus`
    (MATPOWER bus 13 = pandapower bus 12 on both cases).

Branches
    Lines (``net.line`` order) then transformers (``net.trafo`` order), the order of pandapower's
    internal branch table. Names: ``"line F-T"`` with the MATPOWER numbers of ``from_bus`` and
    ``to_bus`` and ``"trafo H-L"`` with the high- and low-voltage buses; a parallel branch gets a
    suffix ``" #2"``. IEEE 30 has 41 lines and no transformer, IEEE 118 has 173 lines and 13
    transformers (186 branches, B.14).

Ratings
    MATPOWER ``rateA`` as pandapower converts it (``net._ppc["branch"][:, RATE_A]`` in MW,
    rounded to 1e-6 MW against conversion noise; ``max_i_ka * vn_kv * sqrt(3)`` for lines and
    ``sn_mva`` for transformers). case30 has real ratings (16 to 130 MW). case118 has
    ``rateA = 9900`` on every branch, MATPOWER's placeholder for "no limit": ratings of at least
    ``unlimited_rating_mw`` (default 9900) or 0 become ``inf``, so **case 2 has no line limit**
    unless overridden. [P] B.14: line 12-13 of case 1 is rated 40 MW (MATPOWER: 65 MW);
    ``line_rating_overrides_mw`` changes any branch by name (both orientations are accepted),
    e.g. ``{"line 12-13": 30.0}`` for the Fig. 7 sweep. A finite override of a line also sets its
    ``max_i_ka`` in the net so that pandapower's own ``loading_percent`` agrees; a transformer's
    ``sn_mva`` is left alone (it scales the impedance), so only our loadings use the override.

Costs
    From pandapower's ``poly_cost`` (MATPOWER ``gencost`` model 2): ``cp0_eur -> cost_a`` (USD/h
    when on), ``cp1_eur_per_mw -> cost_b`` (USD/MWh), ``cp2_eur_per_mw2 -> cost_c``
    (USD/MW^2h). pandapower calls the currency "eur"; MATPOWER's are dollars per hour with P in
    MW, so no scaling is needed (checked against ``rundcopp``'s ``res_cost`` in the tests).

The slack unit
    pandapower turns MATPOWER's reference generator into ``ext_grid``; it is a thermal unit like
    the others here (with its ``max_p_mw`` and cost row), at the reference bus. In the power flows
    the ``ext_grid`` is the slack: it takes whatever balances the DC flow (its dispatched value
    when the dispatch is balanced) and additionally the AC losses.

Units are named ``"G<MATPOWER bus>"`` and ordered by bus, which is MATPOWER's generator order for
both cases; the net's ``gen`` / ``ext_grid`` rows carry the same names so that
:func:`evaluate_dispatch` can map a dispatch vector onto them.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandapower as pp
import pandapower.networks as pn
from pandapower.auxiliary import LoadflowNotConverged, ppException
from pandapower.pypower.idx_brch import RATE_A
from pandapower.pypower.makePTDF import makePTDF
from scipy.optimize import linprog

from grids.profiles import SHAPES
from sim.errors import ScenarioError
from sim.tsn import FixedStorage, Station, ThermalUnit, Train, TransmissionCase, WindFarm

__all__ = [
    "CASES",
    "VARIANTS",
    "LOAD_SHAPE_MIXED",
    "DispatchCheck",
    "branch_names",
    "build_case",
    "economic_dispatch",
    "evaluate_dispatch",
    "lines_that_can_bind",
    "load_shape",
    "pp_bus",
    "ptdf_matrix",
    "wind_shape",
]

CASES = ("ieee30", "ieee118")
#: M1/M4 = "mes" (stations + trains), M2/M5 = "ses_distributed", M3/M6 = "ses_central",
#: "none" = no storage (F0 of the economic indicator (47)).
VARIANTS = ("mes", "ses_distributed", "ses_central", "none")


class _DropNumbaNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "numba cannot be imported" not in record.getMessage()


for _name in ("pandapower.auxiliary", "pandapower.run", "pandapower.powerflow"):
    _lg = logging.getLogger(_name)
    if not any(isinstance(f, _DropNumbaNotice) for f in _lg.filters):
        _lg.addFilter(_DropNumbaNotice())


# ---------------------------------------------------------------------------- B.14 case data
@dataclass(frozen=True)
class _Spec:
    """B.14 data of one case, buses in MATPOWER numbers."""

    loader: str
    station_buses_mp: tuple[int, ...]
    station_c_max_mw: float
    station_e_max_mwh: float
    train_c_max_mw: float
    train_e_max_mwh: float
    train_start: tuple[int, ...]  # 0-based station index of each train ([P] B.14)
    travel_h: int
    transport_cost_per_h: float
    wind_bus_mp: int
    wind_capacity_mw: float
    ses_distributed: tuple[float, float]  # (p_max_mw, e_max_mwh) at every station bus
    ses_central: tuple[int, float, float]  # (MATPOWER bus, p_max_mw, e_max_mwh)
    rating_overrides_mw: tuple[tuple[str, float], ...]


_SPECS: dict[str, _Spec] = {
    # Case 1 [S]: 2 trains 90 MWh / 45 MW, 3 stations 60 MWh / 30 MW, M2 120 MWh / 30 MW at
    # buses 4, 13, 15, M3 360 MWh / 90 MW at bus 10. [P]: stations at 4, 13, 15 (from M2); travel
    # 1 h, 20 USD/h; wind 100 MW at bus 13; line 12-13 rated 40 MW; trains at stations 1 and 2.
    "ieee30": _Spec("case30", (4, 13, 15), 30.0, 60.0, 45.0, 90.0, (0, 1), 1, 20.0,
                    13, 100.0, (30.0, 120.0), (10, 90.0, 360.0),
                    (("line 12-13", 40.0),)),
    # Case 2 [S]: stations at 25, 38, 77, 117 (200 MWh / 100 MW), trains 400 MWh / 200 MW, travel
    # 3 h, 200 USD/h, wind 634 MW at bus 117, M5 400 MWh / 100 MW per station bus, M6 1600 MWh /
    # 400 MW at bus 117. [P]: trains at stations 1 and 4.
    "ieee118": _Spec("case118", (25, 38, 77, 117), 100.0, 200.0, 200.0, 400.0, (0, 3), 3,
                     200.0, 117, 634.0, (100.0, 400.0), (117, 400.0, 1600.0), ()),
}

#: [P] B.14 initial state of stations and trains: capacity 50 % and energy 25 % of their maxima
#: [S]; stationary storage (B.10) starts at 25 % of its energy [S].
_C0_FRAC = 0.5
_E0_FRAC = 0.25

#: [P] B.14 unit-commitment data that MATPOWER lacks.
_UC_DEFAULTS = {
    "pmin_frac": 0.3,  # P_min = 0.3 P_max where the case has P_min = 0 (both cases, all units)
    "ramp_frac_per_h": 0.5,  # RU = RD = 0.5 P_max per hour
    "min_up_h": 3,
    "min_down_h": 3,
    "startup_cost_per_mw": 10.0,  # C_SU = 10 USD/MW x P_max; C_SD = 0
}

#: [P] B.14 "hourly load = base bus load x the A.11 load shape". The A.11 shapes are feeder
#: shapes (industrial, residential, commercial); a transmission system serves a mix, so the
#: system shape is their hour-by-hour mean, rescaled so that its peak is 1 (peak at hour 11,
#: minimum 0.523 at hours 3-4, mean 0.81). Every bus follows the same shape and the peak hour
#: carries the MATPOWER base load times ``load_scale`` (default 1).
LOAD_SHAPE_MIXED: tuple[float, ...] = tuple(
    float(v) for v in (lambda m: m / m.max())(
        np.mean([SHAPES[k] for k in ("industrial", "residential", "commercial")], axis=0)))


def load_shape(shape: str = "mixed", T: int = 24) -> np.ndarray:
    """Hourly load factor (p.u. of the peak) for hours 1..T, repeating daily.

    ``shape`` is ``"mixed"`` (:data:`LOAD_SHAPE_MIXED`) or one of the A.11 load shapes
    ``"industrial"``, ``"residential"``, ``"commercial"``.
    """
    if shape == "mixed":
        base = np.array(LOAD_SHAPE_MIXED)
    elif shape in SHAPES and shape != "solar":
        base = np.array(SHAPES[shape])
    else:
        valid = ["mixed", *sorted(k for k in SHAPES if k != "solar")]
        raise ScenarioError(f"load_shape: unknown shape {shape!r}; valid: {valid}")
    return base[np.arange(T) % 24]


def wind_shape(T: int = 24, cf_mean: float = 0.4, swing: float = 0.2,
               peak_hour: int = 3) -> np.ndarray:
    """Wind availability in p.u. of capacity for hours 1..T ([P] B.14).

    ``cf_mean + swing * cos(2 pi (h - peak_hour) / 24)`` for hour ``h = 1..T``: a deterministic
    diurnal shape peaking at night (0.6 at 03:00) with its minimum in the afternoon (0.2 at 15:00)
    and a capacity factor of exactly ``cf_mean`` = 0.4 over every whole day.
    """
    if not (0 <= cf_mean - abs(swing) and cf_mean + abs(swing) <= 1):
        raise ScenarioError(f"wind: need 0 <= cf_mean +- swing <= 1, got {cf_mean} +- {swing}")
    h = np.arange(1, T + 1)
    return cf_mean + swing * np.cos(2 * np.pi * (h - peak_hour) / 24)


# ---------------------------------------------------------------------------- net helpers
def _mp_number(net: pp.pandapowerNet, bus: int) -> int:
    return int(net.bus.at[bus, "name"])


def pp_bus(net: pp.pandapowerNet, mp_bus: int) -> int:
    """Pandapower index of the bus whose MATPOWER number is ``mp_bus``."""
    hits = net.bus.index[net.bus.name.astype(int).to_numpy() == int(mp_bus)]
    if len(hits) != 1:
        raise ScenarioError(f"bus: MATPOWER bus {mp_bus} not found (or not unique) in the net")
    return int(hits[0])


def branch_names(net: pp.pandapowerNet) -> tuple[str, ...]:
    """Readable branch names in pandapower's branch order (lines, then transformers)."""
    raw = [f"line {_mp_number(net, f)}-{_mp_number(net, t)}"
           for f, t in zip(net.line.from_bus, net.line.to_bus)]
    raw += [f"trafo {_mp_number(net, h)}-{_mp_number(net, lo)}"
            for h, lo in zip(net.trafo.hv_bus, net.trafo.lv_bus)]
    seen: dict[str, int] = {}
    out = []
    for n in raw:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n} #{seen[n]}")
    return tuple(out)


@contextlib.contextmanager
def _quiet():
    # pandapower's MATPOWER-converted nets lack the pandapower-3 tap tables; it warns on every run
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="tap_dependency_table is missing",
                                category=DeprecationWarning)
        yield


def _rundcpp(net: pp.pandapowerNet) -> None:
    with _quiet():
        pp.rundcpp(net, numba=False)


def ptdf_matrix(net: pp.pandapowerNet) -> tuple[tuple[int, ...], np.ndarray, np.ndarray]:
    """PTDF of every branch and pandapower's ratings, from the net's DC bus-branch model.

    Runs ``rundcpp`` once (to build ``net._ppc``) and applies ``pandapower.pypower.makePTDF`` with
    the ``ext_grid`` bus as the slack; the columns are mapped from pandapower's internal bus order
    back to ``net.bus.index``.

    Returns
    -------
    bus_ids : tuple of int
        ``net.bus.index`` (the column order).
    ptdf : numpy.ndarray
        ``(n_branch, n_bus)``: MW on the branch (from side, lines then transformers) per MW
        injected at the bus and withdrawn at the slack; the slack column is 0.
    rating_mw : numpy.ndarray
        ``rateA`` of each branch in MW as pandapower holds it (not yet made ``inf``).
    """
    if len(net.ext_grid) != 1:
        raise ScenarioError(f"net: need exactly one ext_grid (slack), found {len(net.ext_grid)}")
    _rundcpp(net)
    ppc = net._ppc
    lookup = net._pd2ppc_lookups["bus"]
    slack_ppc = int(lookup[int(net.ext_grid.bus.iloc[0])])
    ptdf_ppc = makePTDF(ppc["baseMVA"], ppc["bus"], ppc["branch"], slack=slack_ppc)
    bus_ids = tuple(int(b) for b in net.bus.index)
    cols = np.array([lookup[b] for b in bus_ids], dtype=int)
    nbr = len(net.line) + len(net.trafo)
    ranges = net._pd2ppc_lookups["branch"]
    rows = []
    for kind in ("line", "trafo"):
        if kind in ranges:
            a, b = ranges[kind]
            rows.extend(range(a, b))
    if len(rows) != nbr:
        raise ScenarioError(f"net: internal branch table has {len(rows)} rows, expected {nbr}")
    rows = np.array(rows, dtype=int)
    ptdf = np.real(ptdf_ppc[np.ix_(rows, cols)]).astype(float)
    # pandapower's kA <-> MVA round trip leaves noise (64.99999999999926 for MATPOWER's 65)
    rating = np.round(np.real(ppc["branch"][rows, RATE_A]).astype(float), 6)
    return bus_ids, ptdf, rating


@functools.cache
def _base(loader: str):
    """The pristine MATPOWER net (loading pandapower's JSON takes seconds), PTDF, ratings, names.

    Callers deep-copy the net; the arrays are read-only.
    """
    net = getattr(pn, loader)()
    bus_ids, ptdf, rating = ptdf_matrix(net)
    ptdf.setflags(write=False)
    rating.setflags(write=False)
    return net, bus_ids, ptdf, rating, branch_names(net)


def _resolve_branch(names: Sequence[str], key: str) -> int:
    if key in names:
        return names.index(key)
    parts = key.split(" ", 1)
    if len(parts) == 2 and "-" in parts[1]:
        a, rest = parts[1].split("-", 1)
        b, _, suffix = rest.partition(" ")
        flipped = f"{parts[0]} {b}-{a}" + (f" {suffix}" if suffix else "")
        if flipped in names:
            return names.index(flipped)
    raise ScenarioError(f"line_rating_overrides_mw: unknown branch {key!r}; names look like "
                        f"{list(names[:3])} (MATPOWER bus numbers)")


# ---------------------------------------------------------------------------- dispatch (p0)
def _dispatch_lp(units: Sequence[ThermalUnit], on: np.ndarray, wind_bus_pos: Sequence[int],
                 wind_avail: np.ndarray, load_bus: np.ndarray, ptdf: np.ndarray,
                 rating: np.ndarray, bus_pos: Sequence[int], n_seg: int = 20):
    """Single-period economic dispatch as an LP (scipy/HiGHS); None when infeasible.

    Quadratic costs become ``n_seg`` secant segments on ``[P_min, P_max]`` (exact at the
    breakpoints); wind is free and curtailable; DC line limits through the PTDF.
    """
    g_idx = [k for k, u in enumerate(units) if on[k]]
    nw = len(wind_bus_pos)
    n = len(g_idx) * n_seg + nw
    cost = np.zeros(n)
    ub = np.zeros(n)
    inj_coef = np.zeros((len(load_bus), n))  # bus injection per variable
    p_fixed = np.zeros(len(load_bus))
    for j, k in enumerate(g_idx):
        u = units[k]
        w = (u.p_max_mw - u.p_min_mw) / n_seg
        x = u.p_min_mw + w * np.arange(n_seg + 1)
        sl = slice(j * n_seg, (j + 1) * n_seg)
        cost[sl] = u.cost_b + u.cost_c * (x[:-1] + x[1:])
        ub[sl] = w
        inj_coef[bus_pos[k], sl] = 1.0
        p_fixed[bus_pos[k]] += u.p_min_mw
    for j in range(nw):
        ub[len(g_idx) * n_seg + j] = wind_avail[j]
        inj_coef[wind_bus_pos[j], len(g_idx) * n_seg + j] = 1.0
    a_eq = inj_coef.sum(axis=0, keepdims=True)
    b_eq = [load_bus.sum() - p_fixed.sum()]
    lim = np.isfinite(rating)
    a_ub = b_ub = None
    if lim.any():
        flow_coef = ptdf[lim] @ inj_coef
        flow_fixed = ptdf[lim] @ (p_fixed - load_bus)
        a_ub = np.vstack([flow_coef, -flow_coef])
        b_ub = np.concatenate([rating[lim] - flow_fixed, rating[lim] + flow_fixed])
    res = linprog(cost, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq,
                  bounds=list(zip(np.zeros(n), ub)), method="highs")
    if res.status != 0:
        return None
    p = np.zeros(len(units))
    for j, k in enumerate(g_idx):
        p[k] = units[k].p_min_mw + res.x[j * n_seg:(j + 1) * n_seg].sum()
    return p, res.x[len(g_idx) * n_seg:].copy()


def _merit_order(units: Sequence[ThermalUnit]) -> list[int]:
    """Units by full-load average cost (USD/MWh), cheapest first; ties by position."""
    avg = [(u.cost_a + u.cost_b * u.p_max_mw + u.cost_c * u.p_max_mw ** 2) / u.p_max_mw
           for u in units]
    return sorted(range(len(units)), key=lambda k: (avg[k], k))


def _commit_and_dispatch(units, wind_bus_pos, wind_avail, load_bus, ptdf, rating, bus_pos,
                         committed=None):
    if committed is not None:
        on = np.asarray(committed, dtype=bool)
        out = _dispatch_lp(units, on, wind_bus_pos, wind_avail, load_bus, ptdf, rating, bus_pos)
        return on, out
    order = _merit_order(units)
    on = np.zeros(len(units), dtype=bool)
    total = load_bus.sum()
    cap = 0.0
    for k in order:  # priority list: cover the whole load without counting on the wind
        if cap >= total:
            break
        on[k] = True
        cap += units[k].p_max_mw
    for k in [None, *[k for k in order if not on[k]]]:
        if k is not None:
            on[k] = True
        out = _dispatch_lp(units, on, wind_bus_pos, wind_avail, load_bus, ptdf, rating, bus_pos)
        if out is not None:
            return on, out
    return on, None


def economic_dispatch(case: TransmissionCase, t: int, committed: Sequence[bool] | None = None,
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Single-period economic dispatch of hour row ``t`` without storage, with DC line limits.

    Parameters
    ----------
    case : TransmissionCase
    t : int
        Row of ``case.load_mw`` (0-based; MODELS.md interval ``t + 1``).
    committed : sequence of bool, optional
        Units that are on (between ``p_min_mw`` and ``p_max_mw``); the others produce 0. By
        default a priority list (full-load average cost) commits units until their capacity
        covers the hour's load, adding the next unit while the LP is infeasible.

    Returns
    -------
    (unit_p_mw, wind_p_mw) : numpy arrays in ``case.units`` / ``case.wind`` order. The quadratic
    costs are approximated by 20 secant segments per unit (LP, scipy HiGHS).

    Raises
    ------
    ValueError
        If no commitment makes the hour feasible.
    """
    if not isinstance(t, (int, np.integer)) or not 0 <= t < case.T:
        raise ValueError(f"t: hour row must be an int in [0, {case.T - 1}], got {t!r}")
    if committed is not None and len(committed) != len(case.units):
        raise ValueError(f"committed: expected {len(case.units)} values, got {len(committed)}")
    bus_pos = [case.bus_pos(u.bus) for u in case.units]
    wpos = [case.bus_pos(w.bus) for w in case.wind]
    avail = np.array([w.p_avail_mw[t] for w in case.wind])
    _, out = _commit_and_dispatch(case.units, wpos, avail, case.load_mw[t], case.ptdf,
                                  case.rating_mw, bus_pos, committed)
    if out is None:
        raise ValueError(f"committed: hour {t} has no feasible dispatch with this commitment")
    return out


def lines_that_can_bind(case: TransmissionCase, method: str = "box") -> np.ndarray:
    """Which line limits (36) can bind in which hour.

    Every injection lies in a box: units in ``[0, P_max]`` (a unit may be off), wind in
    ``[0, p_avail_mw[t]]``, a station or stationary store in ``[-P, +P]`` with ``P`` its
    ``c_max_mw`` / ``p_max_mw`` (trains never touch the grid), minus the fixed hour-``t`` load.
    ``method="box"`` compares the largest and smallest PTDF flow over that box with the rating
    (instant; the power balance is ignored). ``method="lp"`` then re-checks each flagged
    line-hour with two LPs that add the power balance (tighter: on case 1 ``"mes"`` 12 instead of
    17 lines can bind; about 4 s). Both are relaxations of every dispatch the UC model allows, so
    a line-hour that is ``False`` can never reach its limit and its two rows of (36) can be left
    out of a model.

    Returns
    -------
    numpy.ndarray of bool, shape (n_line, T)
        ``False`` also for unlimited (``inf``) lines.
    """
    if method not in ("box", "lp"):
        raise ValueError(f"method: must be 'box' or 'lp', got {method!r}")
    can = case.lines_can_bind_box()
    if method == "box":
        return can
    P = case.ptdf
    inj = [(case.bus_pos(u.bus), 0.0, u.p_max_mw) for u in case.units]
    inj += [(case.bus_pos(s.bus), -s.c_max_mw, s.c_max_mw) for s in case.stations]
    inj += [(case.bus_pos(f.bus), -f.p_max_mw, f.p_max_mw) for f in case.fixed_storage]
    for t in range(case.T):
        hour = inj + [(case.bus_pos(w.bus), 0.0, float(w.p_avail_mw[t])) for w in case.wind]
        pos = [h[0] for h in hour]
        bounds = [(h[1], h[2]) for h in hour]
        load = case.load_mw[t]
        for li in np.flatnonzero(can[:, t]):
            coef = P[li, pos]
            base = -P[li] @ load
            binds = False
            for sign in (1.0, -1.0):
                res = linprog(-sign * coef, A_eq=np.ones((1, len(hour))), b_eq=[load.sum()],
                              bounds=bounds, method="highs")
                # infeasible hour: keep the row (the model will report the infeasibility)
                if res.status != 0 or sign * (coef @ res.x + base) > case.rating_mw[li] + 1e-6:
                    binds = True
                    break
            can[li, t] = binds
    return can


# ---------------------------------------------------------------------------- build
_OVERRIDES = ("T", "load_shape", "load_scale", "wind_capacity_mw", "wind_cf_mean",
              "line_rating_overrides_mw", "unlimited_rating_mw", "transport_cost_per_h",
              "travel_h", "eta", "gamma_h", "initial_commitment", *_UC_DEFAULTS)


def build_case(name: str, variant: str = "mes", **overrides) -> tuple[TransmissionCase,
                                                                         pp.pandapowerNet]:
    """Build case ``name`` (``"ieee30"`` / ``"ieee118"``) with storage ``variant``.

    Parameters
    ----------
    name : str
        ``"ieee30"`` (case 1, M1-M3) or ``"ieee118"`` (case 2, M4-M6).
    variant : str
        ``"mes"`` (stations + trains, M1/M4), ``"ses_distributed"`` (M2/M5), ``"ses_central"``
        (M3/M6) or ``"none"`` (no storage; F0 of (47)).
    **overrides
        ``T`` (hours, default 24; shapes repeat daily), ``load_shape`` (default ``"mixed"``, see
        :func:`load_shape`), ``load_scale`` (peak load / MATPOWER base load, default 1.0),
        ``wind_capacity_mw``, ``wind_cf_mean`` (0.4), ``line_rating_overrides_mw`` (mapping
        branch name -> MW, merged over the case default ``{"line 12-13": 40.0}`` of case 1;
        ``inf`` removes a limit), ``unlimited_rating_mw`` (9900), ``transport_cost_per_h``,
        ``travel_h``, ``eta`` (0.85), ``gamma_h`` (2.0) and the UC defaults ``pmin_frac`` (0.3),
        ``ramp_frac_per_h`` (0.5), ``min_up_h`` (3), ``min_down_h`` (3),
        ``startup_cost_per_mw`` (10), ``initial_commitment`` (``"all"`` or ``"merit"``, see
        Notes).

    Returns
    -------
    (TransmissionCase, pandapowerNet)
        The net holds the MATPOWER case plus one wind ``sgen`` (``p_mw`` 0) and one ``storage``
        row (``p_mw`` 0) per station / stationary-storage bus, named ``"storage bus <MATPOWER>"``;
        its loads keep the base values in extra columns ``p_base_mw`` / ``q_base_mvar``.

    Notes
    -----
    Initial conditions ([P] B.9): ``u0 = 1`` for every unit and ``p0`` the LP dispatch of
    :func:`economic_dispatch` at the t=1 load (DC line limits, curtailable wind, no storage), with
    ``initial_commitment="all"`` (the default) whenever that is feasible. It is on case 1
    (sum of P_min 100.5 MW <= t=1 load 107.2 MW; most of the wind is curtailed in that
    dispatch). On case 2 it is not: with ``P_min = 0.3 P_max`` the minimum outputs sum to
    2,990 MW against a t=1 load of 2,403 MW. Then (and always with
    ``initial_commitment="merit"``) ``u0`` is a priority-list commitment (full-load average cost)
    whose capacity covers the t=1 load, ``p0`` its LP dispatch, and the other units start off
    (``u0 = 0``, ``p0 = 0``). Min-up/down carry-over is ignored (B.9).
    """
    if name not in _SPECS:
        raise ScenarioError(f"name: unknown case {name!r}; valid: {list(CASES)}")
    if variant not in VARIANTS:
        raise ScenarioError(f"variant: unknown variant {variant!r}; valid: {list(VARIANTS)}")
    unknown = sorted(set(overrides) - set(_OVERRIDES))
    if unknown:
        raise ScenarioError([f"overrides.{k}: unknown option; valid: {sorted(_OVERRIDES)}"
                             for k in unknown])
    spec = _SPECS[name]
    opt = {"T": 24, "load_shape": "mixed", "load_scale": 1.0,
           "wind_capacity_mw": spec.wind_capacity_mw, "wind_cf_mean": 0.4,
           "unlimited_rating_mw": 9900.0, "transport_cost_per_h": spec.transport_cost_per_h,
           "travel_h": spec.travel_h, "eta": 0.85, "gamma_h": 2.0, "initial_commitment": "all",
           **_UC_DEFAULTS}
    rating_over = dict(spec.rating_overrides_mw)
    rating_over.update(dict(overrides.pop("line_rating_overrides_mw", None) or {}))
    opt.update(overrides)
    problems = []
    for key in ("load_scale", "wind_capacity_mw", "wind_cf_mean", "unlimited_rating_mw",
                "transport_cost_per_h", "eta", "gamma_h", "pmin_frac", "ramp_frac_per_h",
                "startup_cost_per_mw"):
        v = opt[key]
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) \
                or v < 0:
            problems.append(f"overrides.{key}: must be a finite number >= 0, got {v!r}")
    for key in ("T", "travel_h", "min_up_h", "min_down_h"):
        v = opt[key]
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            problems.append(f"overrides.{key}: must be a whole number >= 1, got {v!r}")
    for k, v in rating_over.items():
        if not isinstance(v, (int, float)) or math.isnan(v) or v <= 0:
            problems.append(f"line_rating_overrides_mw[{k!r}]: must be > 0 (inf = no limit), "
                            f"got {v!r}")
    if opt["initial_commitment"] not in ("all", "merit"):
        problems.append(f"overrides.initial_commitment: must be 'all' or 'merit', got "
                        f"{opt['initial_commitment']!r}")
    if problems:
        raise ScenarioError(problems, source=f"build_case({name!r}, {variant!r})")
    T = int(opt["T"])

    base_net, bus_ids, ptdf, rating_raw, names = _base(spec.loader)
    net = copy.deepcopy(base_net)
    ptdf = ptdf.copy()
    rating = rating_raw.copy()
    rating[(rating >= opt["unlimited_rating_mw"]) | (rating <= 0)] = np.inf
    for key, v in rating_over.items():
        li = _resolve_branch(names, key)
        rating[li] = float(v)
        if li < len(net.line) and math.isfinite(v):
            # keep pandapower's own loading_percent consistent with the rating we use
            vn = float(net.bus.at[int(net.line.from_bus.iloc[li]), "vn_kv"])
            net.line.iloc[li, net.line.columns.get_loc("max_i_ka")] = v / (math.sqrt(3) * vn)

    # loads: every bus follows the same shape; the peak hour is base x load_scale
    net.load["p_base_mw"] = net.load.p_mw.astype(float)
    net.load["q_base_mvar"] = net.load.q_mvar.astype(float)
    base = net.load.groupby("bus").p_base_mw.sum().reindex(list(bus_ids), fill_value=0.0)
    factor = load_shape(opt["load_shape"], T) * opt["load_scale"]
    load_mw = np.outer(factor, base.to_numpy(float))

    # units: ext_grid (the MATPOWER reference generator) and gens, ordered by bus
    units_raw = []
    for et, df in (("ext_grid", net.ext_grid), ("gen", net.gen)):
        for idx, row in df.iterrows():
            if not bool(row.in_service):
                continue
            pc = net.poly_cost[(net.poly_cost.et == et) & (net.poly_cost.element == idx)]
            if len(pc) != 1:
                raise ScenarioError(f"poly_cost: {et} {idx} has {len(pc)} cost rows, need 1")
            units_raw.append((int(row.bus), et, int(idx), float(row.max_p_mw),
                              float(row.min_p_mw), pc.iloc[0]))
    units_raw.sort(key=lambda r: (r[0], r[1] != "ext_grid", r[2]))
    seen: dict[int, int] = {}
    templates = []
    for bus, et, idx, pmax, pmin, pc in units_raw:
        mp = _mp_number(net, bus)
        seen[mp] = seen.get(mp, 0) + 1
        uname = f"G{mp}" if seen[mp] == 1 else f"G{mp} #{seen[mp]}"
        getattr(net, et).at[idx, "name"] = uname
        p_min = pmin if pmin > 0 else opt["pmin_frac"] * pmax
        ramp = opt["ramp_frac_per_h"] * pmax
        templates.append(dict(
            name=uname, bus=bus, p_min_mw=p_min, p_max_mw=pmax, ramp_up_mw_per_h=ramp,
            ramp_down_mw_per_h=ramp, min_up_h=int(opt["min_up_h"]),
            min_down_h=int(opt["min_down_h"]),
            startup_cost=opt["startup_cost_per_mw"] * pmax, shutdown_cost=0.0,
            cost_a=float(pc.cp0_eur), cost_b=float(pc.cp1_eur_per_mw),
            cost_c=float(pc.cp2_eur_per_mw2), p0_mw=0.0, u0=0))

    # wind
    wbus = pp_bus(net, spec.wind_bus_mp)
    wind = (WindFarm(name=f"wind bus {spec.wind_bus_mp}", bus=wbus,
                     p_avail_mw=opt["wind_capacity_mw"] * wind_shape(T, opt["wind_cf_mean"])),)
    pp.create_sgen(net, wbus, p_mw=0.0, q_mvar=0.0, name=wind[0].name, type="WP",
                   controllable=False)

    # initial commitment and dispatch at t = 1 (see Notes)
    pos = {b: j for j, b in enumerate(bus_ids)}
    tmp_units = [ThermalUnit(**tp) for tp in templates]
    args = ([pos[wbus]], np.array([wind[0].p_avail_mw[0]]), load_mw[0], ptdf, rating,
            [pos[u.bus] for u in tmp_units])
    out = None
    if opt["initial_commitment"] == "all":
        on, out = _commit_and_dispatch(tmp_units, *args, committed=[True] * len(tmp_units))
    if out is None:  # "merit", or "all" cannot serve the t=1 load
        on, out = _commit_and_dispatch(tmp_units, *args)
    if out is None:
        raise ScenarioError("initial conditions: no feasible dispatch at t=1 even with every "
                            "unit committed", source=f"build_case({name!r}, {variant!r})")
    p0 = out[0]
    units = tuple(ThermalUnit(**{**tp, "p0_mw": float(p0[k]), "u0": int(on[k])})
                  for k, tp in enumerate(templates))

    # storage
    st_bus = [pp_bus(net, b) for b in spec.station_buses_mp]
    stations: tuple[Station, ...] = ()
    trains: tuple[Train, ...] = ()
    fixed: tuple[FixedStorage, ...] = ()
    travel = np.zeros((0, 0), dtype=int)
    storage_buses: list[int] = []
    if variant == "mes":
        stations = tuple(
            Station(name=f"S{i + 1}", bus=b, c_max_mw=spec.station_c_max_mw,
                    e_max_mwh=spec.station_e_max_mwh, c0_mw=_C0_FRAC * spec.station_c_max_mw,
                    e0_mwh=_E0_FRAC * spec.station_e_max_mwh)
            for i, b in enumerate(st_bus))
        trains = tuple(
            Train(name=f"K{k + 1}", c_max_mw=spec.train_c_max_mw,
                  e_max_mwh=spec.train_e_max_mwh, c0_mw=_C0_FRAC * spec.train_c_max_mw,
                  e0_mwh=_E0_FRAC * spec.train_e_max_mwh, start=f"S{i + 1}", end=f"S{i + 1}")
            for k, i in enumerate(spec.train_start))
        ns = len(stations)
        travel = np.full((ns, ns), int(opt["travel_h"]), dtype=int)
        np.fill_diagonal(travel, 0)
        storage_buses = st_bus
    elif variant == "ses_distributed":
        p_mw, e_mwh = spec.ses_distributed
        fixed = tuple(FixedStorage(name=f"SES{i + 1}", bus=b, p_max_mw=p_mw, e_max_mwh=e_mwh,
                                   e0_mwh=_E0_FRAC * e_mwh) for i, b in enumerate(st_bus))
        storage_buses = st_bus
    elif variant == "ses_central":
        mp, p_mw, e_mwh = spec.ses_central
        b = pp_bus(net, mp)
        fixed = (FixedStorage(name="SES1", bus=b, p_max_mw=p_mw, e_max_mwh=e_mwh,
                              e0_mwh=_E0_FRAC * e_mwh),)
        storage_buses = [b]
    e_at_bus = {s.bus: s.e_max_mwh for s in stations} | {f.bus: f.e_max_mwh for f in fixed}
    for b in storage_buses:  # max_e_mwh is informative only (a power flow ignores it)
        pp.create_storage(net, b, p_mw=0.0, max_e_mwh=e_at_bus[b], q_mvar=0.0,
                          name=f"storage bus {_mp_number(net, b)}")

    case = TransmissionCase(
        name=f"{name}-{variant}", T=T, bus_ids=bus_ids, load_mw=load_mw, units=units, wind=wind,
        line_names=names, ptdf=ptdf, rating_mw=rating, stations=stations, trains=trains,
        fixed_storage=fixed, travel_h=travel,
        transport_cost_per_h=float(opt["transport_cost_per_h"]) if variant == "mes" else 0.0,
        eta=float(opt["eta"]), gamma_h=float(opt["gamma_h"]), dt_h=1.0)
    return case, net


# ---------------------------------------------------------------------------- evaluation
@dataclass(frozen=True, eq=False)
class DispatchCheck:
    """DC and AC power flows of one hour of a dispatch (arrays read-only, NaN when not solved).

    Branch arrays follow ``case.line_names``; bus arrays ``case.bus_ids``. Loadings are in % of
    ``case.rating_mw`` (0 for unlimited branches): DC uses ``|P_from|``, AC the larger apparent
    power of the two ends, ``max(|S_from|, |S_to|)`` in MVA against the MW rating (conservative).
    """

    t: int
    converged_dc: bool
    converged_ac: bool
    message: str
    dc_flow_mw: np.ndarray
    dc_loading_pct: np.ndarray
    ac_p_from_mw: np.ndarray
    ac_loading_pct: np.ndarray
    vm_pu: np.ndarray
    vm_min_pu: float
    vm_max_pu: float
    overloaded_dc: tuple[str, ...]
    overloaded_ac: tuple[str, ...]
    voltage_violations: tuple[int, ...]  # pandapower bus indices outside the band
    slack_p_dc_mw: float  # what the slack unit (ext_grid) produced in the DC flow
    slack_p_ac_mw: float  # ... and in the AC flow (DC value + losses, roughly)
    dc_imbalance_mw: float  # slack_p_dc_mw - dispatched slack output (0 if balanced)
    ac_losses_mw: float
    ptdf_max_diff_mw: float  # max |PTDF flow - rundcpp flow| over branches

    def __post_init__(self) -> None:
        for f in ("dc_flow_mw", "dc_loading_pct", "ac_p_from_mw", "ac_loading_pct", "vm_pu"):
            arr = np.array(getattr(self, f), dtype=float)
            arr.setflags(write=False)
            object.__setattr__(self, f, arr)


def _vector(values, n: int, field: str, labels: Sequence[str]) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"{field}: must be {n} numbers, got {values!r}") from None
    if arr.size != n:
        raise ValueError(f"{field}: expected {n} values, got {arr.size}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        k = int(bad[0])
        raise ValueError(f"{field}[{k}] ({labels[k]}): must be finite, got {arr[k]}")
    return arr


def _branch_frames(net):
    lines = net.res_line
    if len(net.trafo):
        tr = net.res_trafo
        p_f = np.concatenate([lines.p_from_mw.to_numpy(float), tr.p_hv_mw.to_numpy(float)])
        q_f = np.concatenate([lines.q_from_mvar.to_numpy(float), tr.q_hv_mvar.to_numpy(float)])
        p_t = np.concatenate([lines.p_to_mw.to_numpy(float), tr.p_lv_mw.to_numpy(float)])
        q_t = np.concatenate([lines.q_to_mvar.to_numpy(float), tr.q_lv_mvar.to_numpy(float)])
    else:
        p_f, q_f = lines.p_from_mw.to_numpy(float), lines.q_from_mvar.to_numpy(float)
        p_t, q_t = lines.p_to_mw.to_numpy(float), lines.q_to_mvar.to_numpy(float)
    return p_f, q_f, p_t, q_t


def evaluate_dispatch(net: pp.pandapowerNet, case: TransmissionCase, t: int,
                      unit_p_mw: Sequence[float], wind_p_mw: Sequence[float],
                      storage_p_mw_by_bus: Mapping[int, float] | None = None, *,
                      unit_on: Sequence[bool] | None = None, off_units: str = "condenser",
                      vm_min_pu: float = 0.94, vm_max_pu: float = 1.06,
                      loading_max_pct: float = 100.0) -> DispatchCheck:
    """Run pandapower's DC and AC power flow of hour row ``t`` of a dispatch.

    Parameters
    ----------
    net, case : the pair returned by :func:`build_case`.
    t : int
        Row of ``case.load_mw`` (0-based; MODELS.md interval ``t + 1``).
    unit_p_mw : sequence of float
        Output of every unit in ``case.units`` order (MW). The slack unit's value is only used to
        report ``dc_imbalance_mw``: pandapower's ``ext_grid`` takes what balances the flow.
    wind_p_mw : sequence of float
        Wind output after curtailment, ``case.wind`` order (MW).
    storage_p_mw_by_bus : mapping pandapower bus -> MW, optional
        Net storage power at each storage bus, pandapower's sign (> 0 charging, < 0
        discharging); buses not given are 0. Only buses with a ``storage`` row are allowed.
    unit_on : sequence of bool, optional
        Which units are committed. Default: on iff ``unit_p_mw > 0``. The slack (``ext_grid``)
        always stays in service.
    off_units : str
        What an uncommitted generator is in the AC flow. ``"condenser"`` (default, [P]): it stays
        in service at 0 MW and holds its MATPOWER voltage set point, like a synchronous condenser,
        so the AC check shows what the active-power plan does with the reactive support of the
        base case. ``"out_of_service"``: it is switched off and gives no voltage support (much
        stricter: on case118 a UC with few committed units then leaves many buses below 0.94
        p.u., because the MW-only UC knows nothing about reactive power).
    vm_min_pu, vm_max_pu : float
        Voltage band for ``voltage_violations`` (default 0.94-1.06 p.u., case118's band).
    loading_max_pct : float
        Loading above which a branch is listed as overloaded (with a tolerance of 1e-6 %, so
        that a flow an LP put exactly on its limit is not flagged).

    Raises
    ------
    ValueError
        For bad input (NaN or wrong length in a named field, unknown storage bus, hour out of
        range, a net that does not belong to the case). A power flow that fails is not an
        error: ``converged_dc`` / ``converged_ac`` are False and its arrays NaN.
    """
    if not isinstance(t, (int, np.integer)) or not 0 <= t < case.T:
        raise ValueError(f"t: hour row must be an int in [0, {case.T - 1}], got {t!r}")
    unames = [u.name for u in case.units]
    p_units = _vector(unit_p_mw, len(case.units), "unit_p_mw", unames)
    p_wind = _vector(wind_p_mw, len(case.wind), "wind_p_mw", [w.name for w in case.wind])
    if np.any(p_units < 0):
        raise ValueError(f"unit_p_mw: outputs must be >= 0, got {p_units.min()}")
    if np.any(p_wind < 0):
        raise ValueError(f"wind_p_mw: outputs must be >= 0, got {p_wind.min()}")
    on = p_units > 0 if unit_on is None else np.asarray(unit_on, dtype=bool).reshape(-1)
    if on.size != len(case.units):
        raise ValueError(f"unit_on: expected {len(case.units)} values, got {on.size}")
    if off_units not in ("condenser", "out_of_service"):
        raise ValueError(f"off_units: must be 'condenser' or 'out_of_service', got {off_units!r}")
    if not (0 < vm_min_pu < vm_max_pu) or not loading_max_pct > 0:
        raise ValueError(f"vm_min_pu/vm_max_pu/loading_max_pct: need 0 < vm_min_pu < vm_max_pu "
                         f"and loading_max_pct > 0, got {vm_min_pu}, {vm_max_pu}, "
                         f"{loading_max_pct}")
    st_rows = {int(b): idx for idx, b in zip(net.storage.index, net.storage.bus)}
    p_storage = dict.fromkeys(st_rows, 0.0)
    for b, v in dict(storage_p_mw_by_bus or {}).items():
        if int(b) not in st_rows:
            raise ValueError(f"storage_p_mw_by_bus[{b}]: no storage row at bus {b}; storage "
                             f"buses: {sorted(st_rows)}")
        v = float(v)
        if not math.isfinite(v):
            raise ValueError(f"storage_p_mw_by_bus[{b}]: must be finite, got {v}")
        p_storage[int(b)] = v
    if tuple(int(b) for b in net.bus.index) != case.bus_ids:
        raise ValueError("net: its buses are not the case's bus_ids (pass the pair from "
                         "build_case)")

    # ---- push the hour into the net
    gen_name = {n: i for i, n in zip(net.gen.index, net.gen.name)}
    ext_name = {n: i for i, n in zip(net.ext_grid.index, net.ext_grid.name)}
    slack_k = None
    for k, name in enumerate(unames):
        if name in gen_name:
            i = gen_name[name]
            net.gen.at[i, "p_mw"] = p_units[k] if on[k] else 0.0
            net.gen.at[i, "in_service"] = bool(on[k]) or off_units == "condenser"
        elif name in ext_name:
            slack_k = k
        else:
            raise ValueError(f"net: unit {name!r} has no gen/ext_grid row (pass the pair from "
                             f"build_case)")
    pos = {b: j for j, b in enumerate(case.bus_ids)}
    bus_base = net.load.groupby("bus").p_base_mw.sum()
    lb = net.load.bus.to_numpy(int)
    target = case.load_mw[t, [pos[b] for b in lb]]
    denom = bus_base.reindex(lb).to_numpy(float)
    ratio = np.divide(target, denom, out=np.ones_like(target), where=denom > 0)
    net.load["p_mw"] = net.load.p_base_mw.to_numpy(float) * ratio
    net.load["q_mvar"] = net.load.q_base_mvar.to_numpy(float) * ratio
    wind_rows = {n: i for i, n in zip(net.sgen.index, net.sgen.name)}
    for k, w in enumerate(case.wind):
        if w.name not in wind_rows:
            raise ValueError(f"net: wind farm {w.name!r} has no sgen row")
        net.sgen.at[wind_rows[w.name], "p_mw"] = p_wind[k]
    for b, v in p_storage.items():
        net.storage.at[st_rows[b], "p_mw"] = v

    # independent injection vector for the PTDF check (MW, + = into the grid)
    inj = -case.load_mw[t].copy()
    for k, u in enumerate(case.units):
        if k != slack_k and on[k]:  # an off unit injects 0 whatever unit_p_mw says
            inj[pos[u.bus]] += p_units[k]
    for k, w in enumerate(case.wind):
        inj[pos[w.bus]] += p_wind[k]
    for b, v in p_storage.items():
        inj[pos[b]] -= v
    if len(net.shunt):
        for b, p, s in zip(net.shunt.bus, net.shunt.p_mw, net.shunt.step):
            inj[pos[int(b)]] -= float(p) * float(s)  # at 1 p.u., as in the DC flow
    rating = case.rating_mw
    finite = np.isfinite(rating)
    names = case.line_names
    nbr, nb = len(names), len(case.bus_ids)
    nan_br, nan_bus = np.full(nbr, np.nan), np.full(nb, np.nan)
    messages = []

    def pct(flow_mva):
        out = np.zeros(nbr)
        out[finite] = np.abs(flow_mva[finite]) / rating[finite] * 100.0
        return out

    # ---- DC
    dc_flow, dc_pct, slack_dc, ptdf_diff, ok_dc = nan_br, nan_br, math.nan, math.nan, False
    try:
        _rundcpp(net)
        dc_flow = _branch_frames(net)[0]
        ok_dc = bool(np.all(np.isfinite(dc_flow)))
        slack_dc = float(net.res_ext_grid.p_mw.sum())
        dc_pct = pct(dc_flow)
        ptdf_diff = float(np.max(np.abs(case.ptdf @ inj - dc_flow))) if nbr else 0.0
    except (LoadflowNotConverged, ppException, np.linalg.LinAlgError, UserWarning) as exc:
        messages.append(f"dc: {type(exc).__name__}: {exc}")
    # ---- AC (the slack absorbs the losses)
    ac_p, ac_pct, vm, slack_ac, losses, ok_ac = nan_br, nan_br, nan_bus, math.nan, math.nan, False
    for init in ("dc", "flat"):
        try:
            with _quiet():
                pp.runpp(net, init=init, numba=False, max_iteration=30)
            ok_ac = bool(net.converged)
        except (LoadflowNotConverged, ppException, np.linalg.LinAlgError, UserWarning,
                ZeroDivisionError) as exc:
            messages.append(f"ac init={init}: {type(exc).__name__}: {exc}")
            ok_ac = False
        if ok_ac:
            break
    if ok_ac:
        p_f, q_f, p_t, q_t = _branch_frames(net)
        s = np.maximum(np.hypot(p_f, q_f), np.hypot(p_t, q_t))
        ac_p, ac_pct = p_f, pct(s)
        vm = net.res_bus.vm_pu.reindex(list(case.bus_ids)).to_numpy(float)
        slack_ac = float(net.res_ext_grid.p_mw.sum())
        losses = float(np.sum(p_f + p_t))
        ok_ac = bool(np.all(np.isfinite(vm)))
        if not ok_ac:
            messages.append("ac: some buses have no voltage")
    fin_vm = vm[np.isfinite(vm)]
    viol = tuple(int(b) for b, v in zip(case.bus_ids, vm)
                 if np.isfinite(v) and not vm_min_pu <= v <= vm_max_pu)
    slack_disp = float(p_units[slack_k]) if slack_k is not None else 0.0
    return DispatchCheck(
        t=int(t), converged_dc=ok_dc, converged_ac=ok_ac, message="; ".join(messages),
        dc_flow_mw=dc_flow, dc_loading_pct=dc_pct, ac_p_from_mw=ac_p, ac_loading_pct=ac_pct,
        vm_pu=vm, vm_min_pu=float(fin_vm.min()) if fin_vm.size else math.nan,
        vm_max_pu=float(fin_vm.max()) if fin_vm.size else math.nan,
        overloaded_dc=tuple(n for n, v in zip(names, dc_pct) if v > loading_max_pct + 1e-6),
        overloaded_ac=tuple(n for n, v in zip(names, ac_pct) if v > loading_max_pct + 1e-6),
        voltage_violations=viol, slack_p_dc_mw=slack_dc, slack_p_ac_mw=slack_ac,
        dc_imbalance_mw=slack_dc - slack_disp, ac_losses_mw=losses,
        ptdf_max_diff_mw=ptdf_diff)
