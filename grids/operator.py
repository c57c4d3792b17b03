"""The local distribution-network operator: a one-step (myopic) dispatch around the MESS.

Every step the operator solves a small MILP (in closed form, or with HiGHS) that balances the
DN as in MODELS.md eq. (13),

    sum_g P_g + PV + DR + P_es_dis - P_es_ch + (r_plus - r_minus) = L + mess_p_mw,

with ``mess_p_mw > 0`` when the MESS charges (consumes). The objective is lexicographic in
practice: first keep the residual ``r_plus - r_minus`` at zero (1e3 per MW), then maximise the
DN's own flexibility ``sum_r (F_up + F_dn) / C_norm`` with the A.4 epigraph form, then tiny
tie-breakers against storage throughput and DR energy. It is the myopic, single-DN version of the
SFI objective of A.7.

Constraints carried between steps (state kept inside the operator): generator ramps (15) around
the previous output (none on the first step), DR ramp and the daily DR energy cap (the budget
restarts at each day boundary of the clock), stationary-storage energy and its mode binary (A.10.5:
without it, the flexibility objective "burns" energy by charging and discharging at once).

Because the dispatch is myopic, the DR energy cap gets a look-ahead the A.7 model does not need:
``DR dt + dt sum_k max(0, DR - k R dt) <= remaining budget`` (k over the rest of the day), i.e. a
DR level is only allowed if the budget also pays for the forced ramp back down. Without it a
step can end with DR too high to ramp down within what is left of the budget (ramp and cap then
contradict each other). The ``max`` terms are epigraph variables, so the MILP stays linear.
The stationary storage keeps A.7's end-of-day cyclic condition reachable: after each step its
energy stays within what full-power charging or discharging could bring back to ``E_init`` in the
steps left of the day (a myopic operator would otherwise drain it to ``E_min`` early and never
recharge, because recharging lowers its upward flexibility).

Tie rule. The flexibility objective is often flat over how the demand is shared (its slopes are
multiples of ``1 / C_norm``: two generators both in the middle of their range, DR against a
discharging storage), so the optimum is not unique and a solver returns whichever vertex it meets
first. The model therefore carries a priority cost of ``PRIORITY_STEP x rank`` per MW of supply
(generators in list order get ranks 0, 1, ..., then DR, then the storage, whose supply is
``dis - ch``): among equally flexible dispatches the one that takes the supply from the
lower-ranked resources is strictly best, so the optimum is unique. The costs are far below every
other term (at most ``TIE_BREAK / 2`` per MW, ``PRIORITY_STEP`` is scaled down if needed), so
they only decide ties; the LP runs with a dual feasibility tolerance well below them. The storage
mode is the second part of the rule: the charge mode is kept unless the discharge mode's
objective is lower by more than :data:`MODE_TOL`. A rule that shares a tie equally between
resources would suit the physics as well, but it is not a vertex of the LP, so only a priority
order gives the same point on both paths.

Horizon tie-breaker (``flex_horizon_min``, 60 by default; 0 turns it off). The flexibility of the
step depends on the step: at 5-min steps every generator is ramp-limited almost anywhere in its
range, the objective is flat over how the load is shared, and the dispatch (and the feeder
losses) differ from a 60-min run of the same day. With ``flex_horizon_min=60`` the objective
also carries the generators' and DR's flexibility over 60 minutes (ramp x 60 min, the physical
ramps staying per step), weighted :data:`HORIZON_WEIGHT_GEN` (below ``TIE_BREAK``: it only
orders otherwise equal dispatches, so the storage is not preferred over a generator and does not
drain) and :data:`HORIZON_WEIGHT_DR` (above it: DR sits where its 60-min flexibility is largest,
as at 60-min steps, instead of at the least DR energy). The weights in decreasing order:
residual 1e3, step flexibility ``1 / C_norm``, DR horizon 3e-6, ``TIE_BREAK`` 1e-6, generator
horizon 3e-7, priority ``1e-7 x rank``.

Closed form (the default path, ``method="closed_form"``). With the storage mode fixed the LP is a
separable concave maximisation with a single balance row: every decision (each generator, DR,
the storage's supply ``-ch`` or ``dis``) enters the balance with +1, each flexibility epigraph
column depends on one decision only (``F_up,g = min(RU dt, Pmax - g)`` etc.), the DR ramp-down
reserve rows are increasing in DR and reduce to an upper bound on it, and the storage's energy
and net-ramp rows to bounds on ``ch`` or ``dis``. Every decision starts at its lower bound; the
segments of all the piecewise-linear objective terms are then filled in decreasing order of
slope (priority costs included, so ties go by rank) until the demand is met; what cannot be met
is the residual (its 1e3 penalty dominates every slope, which is checked). This is the LP's
optimum exactly, in a small fraction of the time of the two HiGHS runs. Any case it does not
cover (a bound crossed within the LP's tolerance, an infeasible window, a non-concave or
non-finite term) goes to the LP (``method="lp"``: highspy, one LP per storage mode), which is
also the path of ``reuse_model=False`` and of ``MESCOSIM_STEP_PATH=reference``.

If the LP fails, a merit-order rule is used instead; the operator never raises for a solver
problem and reports the status.
"""

from __future__ import annotations

import math
import os
import threading
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
from scipy.sparse import csc_array

from sim.flexibility import c_norm_mw
from sim.highs import quiet_highs
from sim.types import SiteResources
from sim.units import MIN_PER_DAY, MIN_PER_H

__all__ = ["OPERATOR_STATUSES", "OperatorResult", "LocalOperator"]

#: Every value :attr:`OperatorResult.status` can take.
OPERATOR_STATUSES = ("optimal", "feasible", "fallback", "invalid_input")

#: Residual penalty per MW (balance first).
RESIDUAL_PENALTY = 1e3
#: Tie-breaker per MW of storage throughput (ch + dis) and per MW of DR.
TIE_BREAK = 1e-6
#: Up to this many assignments of the integer columns, :func:`solve_arrays` solves one LP per
#: assignment instead of a MILP.
ENUMERATE_MAX = 4
#: Residual magnitudes below this (MW) are solver noise and are absorbed by the resources.
_SNAP_MW = 1e-6
#: A residual below this (MW) is floating-point rounding of the balance's sum (both step paths
#: add the same powers in a different order) and is reported as exactly 0.
_ROUND_MW = 1e-12
#: The tie rule's cost per MW of supply and priority rank (rank 0 costs nothing); scaled down
#: when a site has so many resources that the largest rank would reach ``TIE_BREAK / 2``.
PRIORITY_STEP = 1e-7
#: The discharge mode replaces the charge mode only if its objective is lower by more than this.
MODE_TOL = 1e-9
#: HiGHS's dual feasibility tolerance on the operator's LPs: well below ``PRIORITY_STEP`` so the
#: simplex resolves the tie rule's cost differences (its default, 1e-7, does not).
_DUAL_TOL = 1e-10
#: Step paths of :class:`LocalOperator`.
METHODS = ("closed_form", "lp")
#: Weights per MW of the generators' and of DR's flexibility over ``flex_horizon_min`` (the
#: optional horizon tie-breaker of :class:`LocalOperator`): the generators' below ``TIE_BREAK``
#: (it only orders dispatches the step's flexibility and the throughput tie-breakers leave
#: equal), DR's above it (DR then sits where its flexibility over the horizon is largest rather
#: than at the least DR energy, as it does at steps of the horizon's length).
HORIZON_WEIGHT_GEN = 3e-7
HORIZON_WEIGHT_DR = 3e-6

# One HiGHS instance per thread, reused by every solve of :func:`solve_arrays`: creating one
# costs about as much as solving the operator's LP. ``passModel`` replaces the whole model and
# drops the previous basis, so each solve starts cold, exactly as on a fresh instance
# (``tests/test_speed_paths.py`` checks the solutions are identical).
_HIGHS = threading.local()


def _highs(time_limit_s: float):
    import highspy

    if not LocalOperator.REUSE_MODEL:
        return None
    h = getattr(_HIGHS, "h", None)
    if h is None:
        h = _HIGHS.h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("mip_rel_gap", 1e-9)
        h.setOptionValue("dual_feasibility_tolerance", _DUAL_TOL)
    # HiGHS measures ``time_limit`` on the instance's clock, which runs on across solves
    h.setOptionValue("time_limit", h.getRunTime() + float(time_limit_s))
    return h


def solve_arrays(c: np.ndarray, a: csc_array, row_lo: np.ndarray, row_hi: np.ndarray,
                 lb: np.ndarray, ub: np.ndarray, integrality: np.ndarray,
                 time_limit_s: float, fresh: bool = False) -> tuple[np.ndarray, str, str]:
    """Minimise ``c x`` s.t. ``row_lo <= A x <= row_hi``, ``lb <= x <= ub``, integer where
    ``integrality`` is 1, with HiGHS through highspy. Returns ``(x, "optimal" | "feasible",
    message)``; raises ``RuntimeError`` when HiGHS ends without a solution (the operator then
    falls back to merit order).

    With at most :data:`ENUMERATE_MAX` integer assignments (the operator's models have one
    binary, the storage mode) every assignment is fixed in turn and the LPs are solved: the
    MILP's optimum is the best of them, exactly. HiGHS's MIP machinery costs 3-5 ms on these
    17-column models where one LP takes 0.5 ms.

    Ties (objectives within :data:`MODE_TOL`) go to the first assignment tried, and values are
    tried from the top of each integer column's range down: the storage's charge mode (u = 1)
    before its discharge mode. The
    myopic operator is sensitive to this: its flexibility objective is often indifferent
    between a charging and a discharging optimum, and with discharge first the A.11 DN1 storage
    drained on day 1 of the two-day 15-min test and a MESS charge on day 2 then left a
    0.08 MW residual (``tests/test_grids.py``); charge first, and HiGHS's own MILP, do not.

    The solves reuse one HiGHS instance per thread (``fresh=True``, or
    ``LocalOperator.REUSE_MODEL`` false: a new instance per solve, the reference the reuse is
    tested against)."""
    import itertools

    import highspy

    S = highspy.HighsModelStatus
    int_cols = np.flatnonzero(np.asarray(integrality) > 0)
    values = [range(int(np.floor(ub[j])), int(np.ceil(lb[j])) - 1, -1) for j in int_cols]
    combos = math.prod(len(r) for r in values)
    enumerate_ = combos <= ENUMERATE_MAX

    # the matrix in HiGHS's types once, for every LP of the enumeration
    start, index, value = (a.indptr.astype(np.int32), a.indices.astype(np.int32),
                           a.data.astype(np.float64))

    quiet_highs()

    def run(lo: np.ndarray, hi: np.ndarray, integ: np.ndarray):
        h = None if fresh else _highs(time_limit_s)
        if h is None:  # a fresh instance per solve (the reference path)
            h = highspy.Highs()
            h.setOptionValue("output_flag", False)
            h.setOptionValue("time_limit", float(time_limit_s))
            h.setOptionValue("mip_rel_gap", 1e-9)
            h.setOptionValue("dual_feasibility_tolerance", _DUAL_TOL)
        h.passModel(a.shape[1], a.shape[0], a.nnz, 1, 1, 0.0, c, lo, hi, row_lo, row_hi,
                    start, index, value, integ.astype(np.int32))
        h.run()
        return h, h.getModelStatus(), h.getInfo()

    if not enumerate_:
        h, ms, info = run(lb, ub, np.asarray(integrality))
        has_sol = info.primal_solution_status == 2
        if ms == S.kOptimal and has_sol:
            return np.asarray(h.getSolution().col_value, dtype=float), "optimal", ""
        if has_sol and ms in (S.kTimeLimit, S.kIterationLimit, S.kInterrupt):
            return (np.asarray(h.getSolution().col_value, dtype=float), "feasible",
                    h.modelStatusToString(ms))
        raise RuntimeError(f"HiGHS status {h.modelStatusToString(ms)}")
    best, best_obj, statuses = None, np.inf, []
    zeros = np.zeros(len(c), dtype=np.int32)
    for assign in itertools.product(*values):
        lo, hi = lb.copy(), ub.copy()
        lo[int_cols] = hi[int_cols] = assign
        h, ms, info = run(lo, hi, zeros)
        statuses.append(h.modelStatusToString(ms))
        if ms == S.kOptimal and info.objective_function_value < best_obj - MODE_TOL:
            best_obj = info.objective_function_value
            best = np.asarray(h.getSolution().col_value, dtype=float)
        elif ms not in (S.kOptimal, S.kInfeasible):
            raise RuntimeError(f"HiGHS status {statuses[-1]} with the integers fixed to {assign}")
    if best is None:
        raise RuntimeError(f"HiGHS status {' / '.join(dict.fromkeys(statuses))}")
    return best, "optimal", ""


# ------------------------------------------------------------------ the closed form
#: A storage mode whose bounds cross by more than this (MW) is infeasible; by less, the LP
#: (feasibility tolerance 1e-7) decides.
_EMPTY_MW = 1e-6
#: Bounds crossed by at most this (MW, float noise) meet in a point.
_COLLAPSE_MW = 1e-9
#: Storage profiles kept per operator (the cache is emptied when it grows past this).
_ES_CACHE_MAX = 512


def _np_max(a: float, b: float) -> float:
    """``np.maximum(a, b)`` on two floats, without numpy: NaN propagates, and of two equal
    values (0.0 and -0.0) the second is returned, as numpy does."""
    return a if (a > b or a != a) else b


def _np_min(a: float, b: float) -> float:
    """``np.minimum(a, b)`` on two floats, without numpy (see :func:`_np_max`)."""
    return a if (a < b or a != a) else b


def _np_sum(xs) -> float:
    """``np.sum`` of a short sequence of floats: numpy adds fewer than 8 values in order
    from 0.0 (pairwise summation starts at 8)."""
    if len(xs) >= 8:
        return float(np.sum(np.asarray(xs, dtype=float)))
    total = 0.0
    for x in xs:
        total += x
    return total


def _dr_reserve_cap(budget_mw: float, ramp_mw: float, n_res: int) -> float:
    """Largest DR level ``x`` with ``x + sum_{k<n_res} max(0, x - (k+1) ramp) <= budget_mw``
    (the ramp-down reserve rows of the LP divided by ``dt``; the left side increases in x)."""
    for m in range(n_res + 1):  # m terms active on [m ramp, (m+1) ramp]
        if m == n_res or (m + 1) * (m + 2) * ramp_mw / 2 >= budget_mw:
            return (budget_mw + ramp_mw * m * (m + 1) / 2) / (1 + m)
    return budget_mw  # not reached


def _piece_bounds(terms) -> tuple[float, float] | None:
    """Where every piece ``a + b x`` of every flexibility term is >= 0 (the epigraph columns'
    lower bound 0): ``(lo, hi)``, or ``None`` if a constant piece is negative or not finite."""
    lo, hi = -math.inf, math.inf
    for pieces in terms:
        for a, b in pieces:
            if not math.isfinite(a):
                return None
            if b > 0.0:
                lo = max(lo, -a / b)
            elif b < 0.0:
                hi = min(hi, a / -b)
            elif a < 0.0:
                return None
    return lo, hi


def _clamp(c_lo: float, c_hi: float, lo: float, hi: float) -> tuple[str, float, float]:
    """The column bounds ``[c_lo, c_hi]`` cut by the bounds ``[lo, hi]`` its rows put on the
    variable: ``("ok", lo, hi)``; bounds crossed by at most :data:`_COLLAPSE_MW` meet at the
    point of the column bounds the LP would take; ``"empty"`` when they cross by more than
    :data:`_EMPTY_MW`, ``"unsure"`` in between or for column bounds the LP should judge."""
    if not (math.isfinite(c_lo) and math.isfinite(c_hi) and c_lo <= c_hi):
        return "unsure", c_lo, c_hi
    lo, hi = max(c_lo, lo), min(c_hi, hi)
    if lo <= hi:
        return "ok", lo, hi
    gap = lo - hi
    if gap <= _COLLAPSE_MW:
        x = min(max(hi, c_lo), c_hi)
        return "ok", x, x
    return ("empty" if gap > _EMPTY_MW else "unsure"), lo, hi


def _profile(terms, inv_cn: float, lin: float) -> tuple[tuple, tuple]:
    """A resource's part of the maximised objective, ``inv_cn * sum_t min_k (a + b x) + lin x``
    for ``terms = ((pieces of term 1), ...)``, as its breakpoints ``xs`` (ascending) and the
    slopes ``sl`` on ``(-inf, xs[0]), (xs[0], xs[1]), ..., (xs[-1], inf)``. Raises
    ``ArithmeticError`` unless the slopes stay far below the residual penalty."""
    events: dict[float, float] = {}
    b_sum = 0.0
    for pieces in terms:
        # the lower envelope of the lines: by slope from the largest down (the active line
        # as x -> -inf), dropping every line that is nowhere the lowest
        hull: list[tuple[float, float]] = []
        for a, b in sorted(pieces, key=lambda q: (-q[1], q[0])):
            if hull and hull[-1][1] == b:
                continue
            while len(hull) >= 2:
                (a1, b1), (a2, b2) = hull[-2], hull[-1]
                if (a - a1) / (b1 - b) <= (a2 - a1) / (b1 - b2):
                    hull.pop()
                else:
                    break
            hull.append((a, b))
        b_sum += hull[0][1]
        for (a1, b1), (a2, b2) in zip(hull, hull[1:]):
            x = (a2 - a1) / (b1 - b2)
            events[x] = events.get(x, 0.0) + (b2 - b1)
    xs: list[float] = []
    sl = [lin + inv_cn * b_sum]
    for x in sorted(events):
        b_sum += events[x]
        slope = lin + inv_cn * b_sum
        if slope != sl[-1]:
            xs.append(x)
            sl.append(slope)
    if not all(abs(v) < RESIDUAL_PENALTY / 2 for v in sl):
        raise ArithmeticError("the residual penalty does not dominate the objective's slopes")
    return tuple(xs), tuple(sl)


def _value(terms, lin: float, x: float, inv_cn: float) -> float:
    """The resource's part of the maximised objective at supply ``x``."""
    return inv_cn * sum(min(a + b * x for a, b in pieces) for pieces in terms) + lin * x


def _fill(items: list[tuple], demand: float) -> tuple[list[float], float]:
    """Maximise ``sum_i value_i(x_i) - RESIDUAL_PENALTY |demand - sum_i x_i|`` over the boxes
    ``lo_i <= x_i <= hi_i``; ``items[i] = (rank, lo, hi, xs, sl)`` with the concave ``value_i``
    as a :func:`_profile`. Every ``x_i`` starts at its lower end; the segments of all
    ``value_i`` are then filled by decreasing slope (ties by rank) until the demand is met.
    Returns the point and ``RESIDUAL_PENALTY |residual| - sum_i (value_i(x_i) - value_i(lo_i))``
    (the LP's objective up to a constant of the boxes)."""
    x = [it[1] for it in items]
    need = demand - sum(x)
    gain = 0.0
    if need > 0.0:
        segs = []
        for i, (rank, lo, hi, xs, sl) in enumerate(items):
            k = bisect_right(xs, lo)
            x0 = lo
            while x0 < hi:
                x1 = xs[k] if k < len(xs) and xs[k] < hi else hi
                segs.append((-sl[k], rank, x0, x1, i))
                x0 = x1
                k += 1
        segs.sort()
        for neg_slope, _, x0, x1, i in segs:
            if x1 - x0 >= need:
                x[i] = x0 + need
                gain -= neg_slope * need
                need = 0.0
                break
            x[i] = x1
            gain -= neg_slope * (x1 - x0)
            need -= x1 - x0
    return x, RESIDUAL_PENALTY * abs(demand - sum(x)) - gain


@dataclass(frozen=True)
class OperatorResult:
    """The local dispatch of one step.

    Attributes
    ----------
    dispatch_mw : mapping str -> float
        Output per resource (MW, all >= 0): each generator by name, ``"dr"`` (load reduction),
        ``"es_ch"`` and ``"es_dis"`` (storage charge and discharge, grid side).
    es_e_mwh : float
        Stationary-storage energy after the step (MWh); NaN if the site has no storage.
    residual_mw : float
        ``L + mess - supply`` (MW): > 0 shortage, < 0 surplus; the substation slack carries it.
    flex_up_mw, flex_dn_mw : float
        Own-resource flexibility recomputed with the explicit ``min()`` of ``sim.flexibility``.
    flex_mw : mapping str -> (float, float)
        ``(up, dn)`` per resource (generator names, ``"dr"``, ``"es"``).
    status : str
        One of :data:`OPERATOR_STATUSES`.
    message : str
        Solver detail (why the fallback was used, etc.).
    """

    dispatch_mw: Mapping[str, float]
    es_e_mwh: float
    residual_mw: float
    flex_up_mw: float
    flex_dn_mw: float
    status: str
    message: str = ""
    flex_mw: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def supply_mw(self) -> float:
        """Own-resource supply ``sum P_g + DR + dis - ch`` (MW), PV excluded."""
        d = self.dispatch_mw
        return float(sum(v for k, v in d.items() if k not in ("dr", "es_ch", "es_dis"))
                     + d.get("dr", 0.0) + d.get("es_dis", 0.0) - d.get("es_ch", 0.0))


@dataclass
class _Window:
    """Feasible intervals of one step (MW), before the balance is imposed."""

    g_lo: tuple[float, ...]  # per generator
    g_hi: tuple[float, ...]
    dr_lo: float
    dr_hi: float
    ch_hi: float
    dis_hi: float
    net_lo: float  # ES ramp window on dis - ch (or -inf/inf)
    net_hi: float


class LocalOperator:
    """Myopic MILP dispatch of one DN's generators, DR and stationary storage.

    Parameters
    ----------
    resources : sim.types.SiteResources
        The DN's own resources (MODELS.md A.2/A.11).
    c_norm : float or None
        Flexibility normalisation (MW); default ``sim.flexibility.c_norm_mw(resources)``.
    time_limit_s : float
        HiGHS time limit per step (s).
    reuse_model : bool or None
        Build the MILP's matrix once per step length and only rewrite its state-dependent
        bounds each step; ``False`` rebuilds every array each step (the reference path).
        Default: :attr:`REUSE_MODEL`.
    method : {"closed_form", "lp"} or None
        How each step is solved (module docstring): the closed form (falling back to the LP in
        any case it does not cover) or the LP with HiGHS. Default: :attr:`METHOD`, or ``"lp"``
        when ``reuse_model`` is false.
    flex_horizon_min : int or None
        If > 0, a tie-breaker of the objective: the generators' and DR's A.4 flexibility taken
        over this many minutes instead of the step (ramp x horizon), weighted by
        :data:`HORIZON_WEIGHT_GEN` and :data:`HORIZON_WEIGHT_DR` (module docstring). The
        physical ramps stay per step; 0 turns it off. Default: :attr:`FLEX_HORIZON_MIN`.
    """

    #: Default of ``reuse_model`` (``False`` when the environment variable
    #: ``MESCOSIM_STEP_PATH`` is ``reference``: the benchmarks' previous path).
    REUSE_MODEL = os.environ.get("MESCOSIM_STEP_PATH", "") != "reference"
    #: Default of ``method`` when ``reuse_model`` is true (``"lp"`` when
    #: ``MESCOSIM_STEP_PATH`` is ``reference``).
    METHOD = "lp" if os.environ.get("MESCOSIM_STEP_PATH", "") == "reference" else "closed_form"
    #: Default of ``flex_horizon_min``: the horizon tie-breaker looks 60 minutes ahead, so the
    #: dispatch of a day with hourly profiles does not depend on the step length (``None`` or 0:
    #: the objective takes the flexibility of the step only).
    FLEX_HORIZON_MIN: int | None = 60

    def __init__(self, resources: SiteResources, c_norm: float | None = None,
                 time_limit_s: float = 10.0, reuse_model: bool | None = None,
                 method: str | None = None, flex_horizon_min: int | None = None) -> None:
        self.resources = resources
        self.gen_names = tuple(g.name for g in resources.generators)
        cn = c_norm_mw(resources) if c_norm is None else float(c_norm)
        self.c_norm_mw = cn if cn > 0 else 1.0
        self.time_limit_s = float(time_limit_s)
        self.reuse_model = bool(self.REUSE_MODEL if reuse_model is None else reuse_model)
        if method is None:
            method = self.METHOD if self.reuse_model else "lp"
        if method not in METHODS:
            raise ValueError(f"method: {method!r} is not one of {', '.join(METHODS)}")
        self.method = method
        horizon = self.FLEX_HORIZON_MIN if flex_horizon_min is None else flex_horizon_min
        if horizon is not None and not (isinstance(horizon, int) and not isinstance(horizon, bool)
                                        and horizon >= 0):
            raise ValueError(f"flex_horizon_min: {horizon!r} is not a whole number of minutes "
                             ">= 0 (0 turns the horizon tie-breaker off)")
        self.flex_horizon_min = horizon or None
        ng = len(resources.generators)
        self._rank_g = tuple(range(ng))
        self._rank_dr = ng
        self._rank_es = ng + (resources.dr is not None)
        top = self._rank_es - (resources.storage is None)  # the largest rank in use
        self._priority_step = (PRIORITY_STEP if PRIORITY_STEP * top < TIE_BREAK / 2
                               else TIE_BREAK / (2 * (top + 1)))
        # the closed form needs every slope of the objective far below the residual penalty
        # (it then meets the demand whenever it can); the coefficients of the flexibility terms
        # are 1, eta^2 and 1/eta^2
        eta = resources.storage.eta if resources.storage is not None else 1.0
        slope_max = (2.0 * max(1.0, eta * eta, 1.0 / (eta * eta)) / self.c_norm_mw + TIE_BREAK
                     + self._priority_step * (top + 1)
                     + 2.0 * (HORIZON_WEIGHT_GEN + HORIZON_WEIGHT_DR))
        self._closed_form_ok = bool(eta > 0 and slope_max < RESIDUAL_PENALTY / 2)
        #: Steps the closed form handed to the LP (an unexpected case), since construction.
        self.lp_steps = 0
        self._templates: dict[tuple, tuple] = {}
        self._static_items: dict[float, tuple] = {}
        self._es_profiles: dict[tuple, list] = {}
        # per generator, as floats: the step works on plain floats (numpy's overhead on arrays
        # of 1-3 elements is most of the cost), with numpy's semantics (_np_max, _np_min)
        gens = resources.generators
        self._g_min = tuple(float(g.p_min_mw) for g in gens)
        self._g_max = tuple(float(g.p_max_mw) for g in gens)
        self._g_ru = tuple(float(g.ramp_up_mw_per_h) for g in gens)
        self._g_rd = tuple(float(g.ramp_down_mw_per_h) for g in gens)
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Restore the initial state: no previous output, DR off, storage at its initial energy."""
        self.prev_g_mw: np.ndarray | None = None
        self.prev_dr_mw = 0.0
        self.prev_es_net_mw: float | None = None
        st = self.resources.storage
        self.es_e_mwh = float(st.e_init_mwh) if st is not None else float("nan")
        self.dr_used_mwh = 0.0
        self._day: int | None = None

    def dr_used_on(self, time_min: int) -> float:
        """DR energy (MWh) already used on the day that contains ``time_min``."""
        return float(self.dr_used_mwh) if self._day == int(time_min) // MIN_PER_DAY else 0.0

    # ------------------------------------------------------------------ windows
    def _window(self, dt_h: float, dr_left_mwh: float) -> _Window:
        r = self.resources
        p_min, p_max = self._g_min, self._g_max
        prev = self.prev_g_mw
        if prev is None:
            lo, hi = p_min, p_max
        else:
            prev = prev.tolist() if isinstance(prev, np.ndarray) else [float(x) for x in prev]
            lo, hi = [], []
            for a, b, x, rd, ru in zip(p_min, p_max, prev, self._g_rd, self._g_ru):
                g_lo = _np_max(a, x - rd * dt_h)
                lo.append(g_lo)
                # max(): only if the previous point was outside [Pmin, Pmax]
                hi.append(_np_max(_np_min(b, x + ru * dt_h), g_lo))
            lo, hi = tuple(lo), tuple(hi)
        dr_lo = dr_hi = 0.0
        if r.dr is not None:
            ramp = r.dr.ramp_mw_per_h * dt_h
            dr_lo = max(0.0, self.prev_dr_mw - ramp)
            dr_hi = min(r.dr.p_max_mw, self.prev_dr_mw + ramp, max(dr_left_mwh, 0.0) / dt_h)
            # The ramp-down reserve of the MILP keeps dr_lo <= dr_hi; if the state was forced
            # there anyway (e.g. by a fallback), the energy cap wins over the ramp.
            dr_lo = min(dr_lo, max(dr_hi, 0.0))
            dr_hi = max(dr_hi, 0.0)
        ch_hi = dis_hi = 0.0
        net_lo, net_hi = -math.inf, math.inf
        st = r.storage
        if st is not None:
            e = self.es_e_mwh
            ch_hi = max(0.0, min(st.p_ch_max_mw, (st.e_max_mwh - e) / (st.eta * dt_h)))
            dis_hi = max(0.0, min(st.p_dis_max_mw, (e - st.e_min_mwh) * st.eta / dt_h))
            if st.ramp_mw_per_h is not None and self.prev_es_net_mw is not None:
                net_lo = self.prev_es_net_mw - st.ramp_mw_per_h * dt_h
                net_hi = self.prev_es_net_mw + st.ramp_mw_per_h * dt_h
        return _Window(lo, hi, dr_lo, dr_hi, ch_hi, dis_hi, net_lo, net_hi)

    def _dr_reserve_terms(self, dt_h: float, steps_left_today: int) -> int:
        """How many future steps of today a ramp-down from DR_max would still need energy for."""
        dr = self.resources.dr
        if dr is None or dr.ramp_mw_per_h <= 0:
            return 0
        k = math.ceil(dr.p_max_mw / (dr.ramp_mw_per_h * dt_h) - 1e-12) - 1
        return max(0, min(k, steps_left_today - 1))

    def _es_energy_window(self, dt_h: float, steps_after: int) -> tuple[float, float]:
        """Bounds on the storage's energy change of the step (MWh): within ``[E_min, E_max]``
        and narrowed so that the end-of-day cyclic condition ``E = E_init`` (A.7) stays
        reachable at full power in the steps left today; always admits no change."""
        st = self.resources.storage
        e, eta = self.es_e_mwh, st.eta
        back_up = steps_after * eta * st.p_ch_max_mw * dt_h
        back_down = steps_after * st.p_dis_max_mw * dt_h / eta
        lo = max(st.e_min_mwh, st.e_init_mwh - back_up) - e
        hi = min(st.e_max_mwh, st.e_init_mwh + back_down) - e
        return min(lo, 0.0), max(hi, 0.0)

    # ------------------------------------------------------------------ the step
    def dispatch(self, time_min: int, dt_min: int, load_mw: float, pv_mw: float,
                 mess_p_mw: float) -> OperatorResult:
        """Dispatch one step of ``dt_min`` minutes starting at ``time_min`` and update the state.

        Parameters
        ----------
        time_min : int
            Start of the step on the simulation clock (min); used for the daily DR budget.
        dt_min : int
            Step length (min).
        load_mw, pv_mw : float
            Actual load and PV output of the step (MW).
        mess_p_mw : float
            MESS power at this DN (MW, > 0 charging = consumption, < 0 discharging).

        Returns
        -------
        OperatorResult
            The dispatch; ``status`` is ``"optimal"``, ``"feasible"`` (time limit with an
            incumbent), ``"fallback"`` (merit order) or ``"invalid_input"`` (state untouched).
        """
        dt_h = dt_min / MIN_PER_H
        if not (math.isfinite(load_mw) and math.isfinite(pv_mw) and math.isfinite(mess_p_mw)
                and dt_min > 0):
            return self._invalid(dt_h, f"non-finite input or dt: load={load_mw}, pv={pv_mw}, "
                                       f"mess={mess_p_mw}, dt_min={dt_min}")
        day = int(time_min) // MIN_PER_DAY
        if day != self._day:
            self._day = day
            self.dr_used_mwh = 0.0
        dr_left = (self.resources.dr.e_max_mwh - self.dr_used_mwh) if self.resources.dr else 0.0
        steps_left = max(1, math.ceil(((day + 1) * MIN_PER_DAY - time_min) / dt_min))
        win = self._window(dt_h, dr_left)
        demand = float(load_mw) + float(mess_p_mw) - float(pv_mw)

        status, message = "optimal", ""
        n_res = self._dr_reserve_terms(dt_h, steps_left)
        sol = None
        if self.method == "closed_form":
            try:
                sol = self._solve_closed_form(win, demand, dt_h, dr_left, n_res,
                                              steps_left - 1)
            except Exception:  # noqa: BLE001 - any surprise goes to the LP below
                sol = None
            if sol is None:
                self.lp_steps += 1
        if sol is None:
            try:
                sol = self._solve_milp(win, demand, dt_h, dr_left, n_res, steps_left - 1)
            except Exception as exc:  # noqa: BLE001 - the operator must never stop a run
                sol, message = None, f"MILP failed ({type(exc).__name__}: {exc})"
        if sol is not None:
            g, dr, ch, dis, status, message = sol
        else:
            status = "fallback"
            message = message or "MILP returned no solution"
            g, dr, ch, dis = self._merit_order(win, demand)
        return self._commit(g, dr, ch, dis, win, demand, dt_h, status, message)

    def _solve_closed_form(self, win: _Window, demand: float, dt_h: float, dr_left: float,
                           n_res: int, steps_after: int):
        """The LP of :meth:`_build_model` solved exactly without a solver (module docstring,
        "Closed form"); ``None`` for any case it does not cover (the LP then solves the step)."""
        r = self.resources
        if not (self._closed_form_ok and math.isfinite(demand)):
            return None
        inv_cn = 1.0 / self.c_norm_mw
        static = self._static_items.get(dt_h)
        if static is None:  # the generators' and DR's terms depend on dt only
            static = self._static_items[dt_h] = self._static_terms(dt_h)
        items = []
        for j, (xs, sl, p_lo, p_hi) in enumerate(static[0]):
            flag, lo, hi = _clamp(win.g_lo[j], win.g_hi[j], p_lo, p_hi)
            if flag != "ok":
                return None  # an infeasible window (or close to one): the LP decides
            items.append((self._rank_g[j], lo, hi, xs, sl))
        if static[1] is not None:
            xs, sl, p_lo, p_hi = static[1]
            ramp = r.dr.ramp_mw_per_h * dt_h
            if n_res:
                p_hi = min(p_hi, _dr_reserve_cap(max(dr_left, 0.0) / dt_h, ramp, n_res))
            flag, lo, hi = _clamp(win.dr_lo, win.dr_hi, p_lo, p_hi)
            if flag != "ok":
                return None
            items.append((self._rank_dr, lo, hi, xs, sl))
        st = r.storage
        if st is None:
            x, _ = _fill(items, demand)
            return self._split(x, 0.0, 0.0)
        eta, e = st.eta, self.es_e_mwh
        e_lo, e_hi = self._es_energy_window(dt_h, steps_after)
        a_up = eta * (e - st.e_min_mwh) / dt_h
        b_dn = (st.e_max_mwh - e) / (eta * dt_h)
        rank = self._rank_es
        modes = (
            # charge (u = 1): the supply is s = -ch; its rows: energy and ES net ramp
            (True, -win.ch_hi, 0.0, max(-e_hi / (eta * dt_h), win.net_lo),
             min(-e_lo / (eta * dt_h), win.net_hi)),
            # discharge (u = 0): the supply is s = dis
            (False, 0.0, win.dis_hi, max(-e_hi * eta / dt_h, win.net_lo),
             min(-e_lo * eta / dt_h, win.net_hi)))
        best = None
        # the storage's terms depend on the state only through (a_up, b_dn), which repeat
        # whenever the storage rests: the terms, their bounds, profile and values are kept per
        # value (the signs of zeros included, which == would not tell apart)
        key = (dt_h, a_up, b_dn, math.copysign(1.0, a_up), math.copysign(1.0, b_dn))
        cache = self._es_profiles
        if len(cache) > _ES_CACHE_MAX:
            cache.clear()
        for charging, c_lo, c_hi, row_lo, row_hi in modes:
            got = cache.get((charging, *key))
            if got is None:
                terms, lin = self._es_terms(charging, a_up, b_dn, dt_h)
                got = cache[(charging, *key)] = [_piece_bounds(terms), None, terms, lin, {}]
            bounds = got[0]
            if bounds is None:
                return None
            flag, lo, hi = _clamp(c_lo, c_hi, max(row_lo, bounds[0]), min(row_hi, bounds[1]))
            if flag == "unsure":
                return None  # within the LP's tolerance of infeasible: the LP decides
            if flag == "empty":
                continue  # this mode is infeasible
            if got[1] is None:
                got[1] = _profile(got[2], inv_cn, got[3])
            x, obj = _fill(items + [(rank, lo, hi, *got[1])], demand)
            values = got[4]
            v_lo = values.get((lo, math.copysign(1.0, lo)))
            if v_lo is None:
                if len(values) > _ES_CACHE_MAX:
                    values.clear()
                v_lo = values[(lo, math.copysign(1.0, lo))] = _value(got[2], got[3], lo, inv_cn)
            obj -= v_lo  # the modes' boxes differ
            if best is None or obj < best[0] - MODE_TOL:  # charge first: it keeps ties
                best = (obj, x, charging)
        if best is None:
            return None
        _, x, charging = best
        s_es = x.pop()
        return self._split(x, -s_es if charging else 0.0, s_es if not charging else 0.0)

    def _es_terms(self, charging: bool, a_up: float, b_dn: float, dt_h: float):
        """The storage's flexibility terms in its supply and its linear cost (the tie-breaker
        and the priority), in the charge or the discharge mode: ``(terms, lin)``."""
        st = self.resources.storage
        eta = st.eta
        step, rank = self._priority_step, self._rank_es
        const = () if st.ramp_mw_per_h is None else ((st.ramp_mw_per_h * dt_h, 0.0),)
        if charging:  # the supply is s = -ch
            return ((const + ((st.p_dis_max_mw, -1.0), (a_up, -eta * eta)),
                     const + ((st.p_ch_max_mw, 1.0), (b_dn, 1.0))), TIE_BREAK - step * rank)
        return ((const + ((st.p_dis_max_mw, -1.0), (a_up, -1.0)),  # the supply is s = dis
                 const + ((st.p_ch_max_mw, 1.0), (b_dn, 1.0 / (eta * eta)))),
                -(TIE_BREAK + step * rank))

    def _static_terms(self, dt_h: float):
        """The generators' and DR's objective for steps of ``dt_h`` hours: ``([(xs, sl, lo, hi)
        per generator], DR's or None)``, their :func:`_profile` and :func:`_piece_bounds`."""
        r = self.resources
        inv_cn = 1.0 / self.c_norm_mw
        step = self._priority_step
        h_h = None if self.flex_horizon_min is None else self.flex_horizon_min / MIN_PER_H

        def scaled(w: float, terms):  # a term weighted w per MW (the profile scales by 1/C_norm)
            f = w * self.c_norm_mw
            return tuple(tuple((f * a, f * b) for a, b in pieces) for pieces in terms)

        gens = []
        for j, gs in enumerate(r.generators):
            terms = (((gs.ramp_up_mw_per_h * dt_h, 0.0), (gs.p_max_mw, -1.0)),
                     ((gs.ramp_down_mw_per_h * dt_h, 0.0), (-gs.p_min_mw, 1.0)))
            if h_h is not None:
                terms += scaled(HORIZON_WEIGHT_GEN,
                                (((gs.ramp_up_mw_per_h * h_h, 0.0), (gs.p_max_mw, -1.0)),
                                 ((gs.ramp_down_mw_per_h * h_h, 0.0), (-gs.p_min_mw, 1.0))))
            gens.append(self._static_item(terms, -step * self._rank_g[j], inv_cn))
        dr = None
        if r.dr is not None:
            ramp = r.dr.ramp_mw_per_h * dt_h
            terms = (((ramp, 0.0), (r.dr.p_max_mw, -1.0)), ((ramp, 0.0), (0.0, 1.0)))
            if h_h is not None:
                ramp_h = r.dr.ramp_mw_per_h * h_h
                terms += scaled(HORIZON_WEIGHT_DR, (((ramp_h, 0.0), (r.dr.p_max_mw, -1.0)),
                                                    ((ramp_h, 0.0), (0.0, 1.0))))
            dr = self._static_item(terms, -(TIE_BREAK + step * self._rank_dr), inv_cn)
        return gens, dr

    @staticmethod
    def _static_item(terms, lin: float, inv_cn: float) -> tuple:
        bounds = _piece_bounds(terms)
        if bounds is None:  # e.g. a negative ramp: no closed form
            raise ArithmeticError("a flexibility term is negative everywhere")
        return (*_profile(terms, inv_cn, lin), *bounds)

    def _split(self, x: list[float], ch: float, dis: float):
        """``(g, dr, ch, dis, status, message)`` from the closed form's supplies."""
        ng = len(self.gen_names)
        dr = x[ng] if self.resources.dr is not None else 0.0
        return [float(v) for v in x[:ng]], float(dr), float(ch), float(dis), "optimal", ""

    def _solve_milp(self, win: _Window, demand: float, dt_h: float, dr_left: float, n_res: int,
                    steps_after: int = 0):
        if self.reuse_model:
            m = self._cached_model(win, demand, dt_h, dr_left, n_res, steps_after)
        else:
            m = self._build_model(win, demand, dt_h, dr_left, n_res, steps_after)
        c, a, row_lo, row_hi, lb, ub, integrality, cols, _ = m
        x, status, message = solve_arrays(c, a, row_lo, row_hi, lb, ub, integrality,
                                          self.time_limit_s)
        g_ix = cols["g"]
        g = x[g_ix] if g_ix.size else np.zeros(0)
        dr = float(x[cols["dr"]]) if "dr" in cols else 0.0
        ch = dis = 0.0
        if "ch" in cols:
            ch, dis = float(x[cols["ch"]]), float(x[cols["dis"]])
            if round(x[cols["u"]]) >= 1:
                dis = 0.0
            else:
                ch = 0.0
        return g, dr, ch, dis, status, message

    def _cached_model(self, win: _Window, demand: float, dt_h: float, dr_left: float,
                      n_res: int, steps_after: int):
        """The arrays of :meth:`_build_model`, with the matrix, costs and constant bounds built
        once per ``(dt, DR reserve terms, ES ramp row)`` and only the state-dependent bounds
        written per step (``tests/test_grids.py`` checks every array equals a fresh build)."""
        key = (dt_h, n_res, bool(np.isfinite(win.net_lo)))
        tpl = self._templates.get(key)
        if tpl is None:
            tpl = self._templates[key] = self._build_model(win, demand, dt_h, dr_left, n_res,
                                                           steps_after)
        c, a, row_lo, row_hi, lb, ub, integrality, cols, rows = tpl
        row_lo, row_hi, lb, ub = row_lo.copy(), row_hi.copy(), lb.copy(), ub.copy()
        g = cols["g"]
        lb[g], ub[g] = win.g_lo, win.g_hi
        if "dr" in cols:
            lb[cols["dr"]], ub[cols["dr"]] = win.dr_lo, win.dr_hi
            if "dr_budget" in rows:
                row_hi[rows["dr_budget"]] = max(dr_left, 0.0)
        st = self.resources.storage
        if st is not None:
            ub[cols["ch"]], ub[cols["dis"]] = win.ch_hi, win.dis_hi
            e, eta = self.es_e_mwh, st.eta
            i = rows["es_energy"]
            row_lo[i], row_hi[i] = self._es_energy_window(dt_h, steps_after)
            if "es_net" in rows:
                row_lo[rows["es_net"]], row_hi[rows["es_net"]] = win.net_lo, win.net_hi
            row_hi[rows["feu_e"]] = eta * (e - st.e_min_mwh) / dt_h
            row_hi[rows["fed_e"]] = (st.e_max_mwh - e) / (eta * dt_h)
        row_lo[rows["balance"]] = row_hi[rows["balance"]] = demand
        return c, a, row_lo, row_hi, lb, ub, integrality, cols, rows

    def _build_model(self, win: _Window, demand: float, dt_h: float, dr_left: float,
                     n_res: int, steps_after: int):
        """The one-step MILP as arrays ``(c, A, row_lo, row_hi, lb, ub, integrality, cols,
        rows)``; ``cols``/``rows`` name the columns and the rows whose bounds change per step."""
        r = self.resources
        gens = r.generators
        ng = len(gens)
        has_dr = r.dr is not None
        st = r.storage
        has_es = st is not None
        # variable layout: a name -> column index (vectors for the per-generator columns)
        idx: dict[str, int] = {}
        n = 0

        def block(count: int) -> np.ndarray:
            nonlocal n
            out = np.arange(n, n + count)
            n += count
            return out

        def add(name: str) -> None:
            idx[name] = int(block(1)[0])

        g_ix = block(ng)
        if has_dr:
            add("dr")
        if has_es:
            add("ch")
            add("dis")
            add("u")
        add("rp")
        add("rm")
        fgu_ix = block(ng)
        fgd_ix = block(ng)
        if has_dr:
            add("fdru")
            add("fdrd")
            for k in range(n_res):
                add(f"s{k}")
        if has_es:
            add("feu")
            add("fed")
        h_h = None if self.flex_horizon_min is None else self.flex_horizon_min / MIN_PER_H
        if h_h is not None:  # the horizon tie-breaker's epigraph columns
            hgu_ix = block(ng)
            hgd_ix = block(ng)
            if has_dr:
                add("hdru")
                add("hdrd")

        lb = np.zeros(n)
        ub = np.full(n, np.inf)
        c = np.zeros(n)
        integrality = np.zeros(n)
        rows: list[tuple[dict[int, float], float, float]] = []
        named: dict[str, int] = {}

        # generators and their flexibility (A.4, eq. 3-4): F_up <= Pmax - P, F_up <= RU dt, ...
        lb[g_ix], ub[g_ix] = win.g_lo, win.g_hi
        for j, gsp in enumerate(gens):
            ub[fgu_ix[j]] = gsp.ramp_up_mw_per_h * dt_h
            ub[fgd_ix[j]] = gsp.ramp_down_mw_per_h * dt_h
            rows.append(({fgu_ix[j]: 1.0, g_ix[j]: 1.0}, -np.inf, gsp.p_max_mw))
            rows.append(({fgd_ix[j]: 1.0, g_ix[j]: -1.0}, -np.inf, -gsp.p_min_mw))
        bal = {int(i): 1.0 for i in g_ix}
        if has_dr:
            d = idx["dr"]
            lb[d], ub[d] = win.dr_lo, win.dr_hi
            c[d] = TIE_BREAK
            bal[d] = 1.0
            ramp = r.dr.ramp_mw_per_h * dt_h
            ub[idx["fdru"]] = ramp
            ub[idx["fdrd"]] = ramp
            rows.append(({idx["fdru"]: 1.0, d: 1.0}, -np.inf, r.dr.p_max_mw))
            rows.append(({idx["fdrd"]: 1.0, d: -1.0}, -np.inf, 0.0))
            if n_res:
                # Energy for the forced ramp-down of the coming steps of today:
                # DR dt + dt sum_k max(0, DR - k R dt) <= remaining budget.
                res_row = {d: dt_h}
                for k in range(n_res):
                    s = idx[f"s{k}"]
                    rows.append(({d: 1.0, s: -1.0}, -np.inf, (k + 1) * ramp))
                    res_row[s] = dt_h
                named["dr_budget"] = len(rows)
                rows.append((res_row, -np.inf, max(dr_left, 0.0)))
        if has_es:
            ch, dis, u = idx["ch"], idx["dis"], idx["u"]
            ub[ch], ub[dis] = win.ch_hi, win.dis_hi
            ub[u] = 1.0
            integrality[u] = 1
            c[ch] = c[dis] = TIE_BREAK
            bal[ch], bal[dis] = -1.0, 1.0
            # mode binary: u = 1 charge, u = 0 discharge (never both, A.10.5)
            rows.append(({ch: 1.0, u: -st.p_ch_max_mw}, -np.inf, 0.0))
            rows.append(({dis: 1.0, u: st.p_dis_max_mw}, -np.inf, st.p_dis_max_mw))
            e, eta = self.es_e_mwh, st.eta
            named["es_energy"] = len(rows)
            rows.append(({ch: eta * dt_h, dis: -dt_h / eta},
                         *self._es_energy_window(dt_h, steps_after)))
            if np.isfinite(win.net_lo):
                named["es_net"] = len(rows)
                rows.append(({dis: 1.0, ch: -1.0}, win.net_lo, win.net_hi))
            feu, fed = idx["feu"], idx["fed"]
            if st.ramp_mw_per_h is not None:
                ub[feu] = ub[fed] = st.ramp_mw_per_h * dt_h
            # F_up <= Pdis_max - (dis - ch);  F_up <= eta/dt (E_next - Emin)
            rows.append(({feu: 1.0, dis: 1.0, ch: -1.0}, -np.inf, st.p_dis_max_mw))
            named["feu_e"] = len(rows)
            rows.append(({feu: 1.0, ch: -eta * eta, dis: 1.0}, -np.inf,
                         eta * (e - st.e_min_mwh) / dt_h))
            # F_dn <= Pch_max + (dis - ch);  F_dn <= (Emax - E_next) / (eta dt)
            rows.append(({fed: 1.0, dis: -1.0, ch: 1.0}, -np.inf, st.p_ch_max_mw))
            named["fed_e"] = len(rows)
            rows.append(({fed: 1.0, ch: 1.0, dis: -1.0 / (eta * eta)}, -np.inf,
                         (st.e_max_mwh - e) / (eta * dt_h)))
        rp, rm = idx["rp"], idx["rm"]
        bal[rp], bal[rm] = 1.0, -1.0
        named["balance"] = len(rows)
        rows.append((bal, demand, demand))
        c[rp] = c[rm] = RESIDUAL_PENALTY
        flex_vars = list(fgu_ix) + list(fgd_ix)
        if has_dr:
            flex_vars += [idx["fdru"], idx["fdrd"]]
        if has_es:
            flex_vars += [idx["feu"], idx["fed"]]
        c[np.asarray(flex_vars, dtype=int)] -= 1.0 / self.c_norm_mw
        if h_h is not None:
            # the flexibility over the horizon (its own epigraph columns, the same rows with
            # ramp x horizon as the columns' upper bounds)
            for j, gsp in enumerate(gens):
                ub[hgu_ix[j]] = gsp.ramp_up_mw_per_h * h_h
                ub[hgd_ix[j]] = gsp.ramp_down_mw_per_h * h_h
                rows.append(({hgu_ix[j]: 1.0, g_ix[j]: 1.0}, -np.inf, gsp.p_max_mw))
                rows.append(({hgd_ix[j]: 1.0, g_ix[j]: -1.0}, -np.inf, -gsp.p_min_mw))
            c[hgu_ix] -= HORIZON_WEIGHT_GEN
            c[hgd_ix] -= HORIZON_WEIGHT_GEN
            if has_dr:
                d = idx["dr"]
                ub[idx["hdru"]] = ub[idx["hdrd"]] = r.dr.ramp_mw_per_h * h_h
                rows.append(({idx["hdru"]: 1.0, d: 1.0}, -np.inf, r.dr.p_max_mw))
                rows.append(({idx["hdrd"]: 1.0, d: -1.0}, -np.inf, 0.0))
                c[idx["hdru"]] -= HORIZON_WEIGHT_DR
                c[idx["hdrd"]] -= HORIZON_WEIGHT_DR
        # the tie rule: PRIORITY_STEP x rank per MW of supply (generators in list order, DR,
        # storage; the storage's supply is dis - ch)
        step = self._priority_step
        c[g_ix] += step * np.asarray(self._rank_g, dtype=float)
        if has_dr:
            c[idx["dr"]] += step * self._rank_dr
        if has_es:
            c[idx["dis"]] += step * self._rank_es
            c[idx["ch"]] -= step * self._rank_es

        data, ri, ci = [], [], []
        for i, (coefs, _, _) in enumerate(rows):
            for j, v in coefs.items():
                ri.append(i)
                ci.append(int(j))
                data.append(v)
        a = csc_array((data, (ri, ci)), shape=(len(rows), n))
        cols: dict[str, object] = {"g": g_ix}
        cols.update({k: idx[k] for k in ("dr", "ch", "dis", "u") if k in idx})
        return (c, a, np.array([r_[1] for r_ in rows], dtype=float),
                np.array([r_[2] for r_ in rows], dtype=float), lb, ub, integrality, cols, named)

    def _merit_order(self, win: _Window, demand: float):
        """Fallback: generators from their low ends up in list order, then DR, then storage."""
        g = np.array(win.g_lo, dtype=float)
        dr = win.dr_lo
        ch = dis = 0.0
        need = demand - g.sum() - dr
        if need >= 0:
            for j in range(g.size):
                add = min(need, win.g_hi[j] - g[j])
                g[j] += add
                need -= add
            add = min(need, win.dr_hi - dr)
            dr += add
            need -= add
            dis = min(need, win.dis_hi, max(win.net_hi, 0.0))
        else:
            ch = min(-need, win.ch_hi, max(-win.net_lo, 0.0))
        return g, dr, ch, dis

    def _commit(self, g, dr, ch, dis, win: _Window, demand: float, dt_h: float, status: str,
                message: str) -> OperatorResult:
        r = self.resources
        # clip solver noise back into the windows (np.minimum(np.maximum()) on floats)
        g = [_np_min(_np_max(float(x), lo), hi) for x, lo, hi in zip(g, win.g_lo, win.g_hi)]
        dr = min(max(float(dr), win.dr_lo), win.dr_hi)
        ch = min(max(float(ch), 0.0), win.ch_hi)
        dis = min(max(float(dis), 0.0), win.dis_hi)
        residual = demand - (_np_sum(g) + dr + dis - ch)
        if abs(residual) < _SNAP_MW:
            # absorb solver-tolerance residue in generators that have room
            for j in range(len(g)):
                old = g[j]
                new = min(max(old + residual, win.g_lo[j]), win.g_hi[j])
                residual -= new - old
                g[j] = new
            residual = demand - (_np_sum(g) + dr + dis - ch)
        if abs(residual) < _ROUND_MW:
            residual = 0.0  # the rounding of the balance's sum, not a shortage or surplus
        st = r.storage
        if st is not None:
            e_next = self.es_e_mwh + st.eta * ch * dt_h - dis * dt_h / st.eta
            e_next = min(max(float(e_next), st.e_min_mwh), st.e_max_mwh)
        else:
            e_next = float("nan")

        # the A.4 flexibility of sim.flexibility (generator_flex, dr_flex, storage_flex), the
        # same expressions on floats (tests/test_operator_closed_form.py compares them)
        flex: dict[str, tuple[float, float]] = {}
        for j, name in enumerate(self.gen_names):
            up = _np_min(self._g_max[j] - g[j], self._g_ru[j] * dt_h)
            dn = _np_min(g[j] - self._g_min[j], self._g_rd[j] * dt_h)
            flex[name] = (_np_max(up, 0.0), _np_max(dn, 0.0))
        if r.dr is not None:
            ramp = r.dr.ramp_mw_per_h * dt_h
            up = _np_min(r.dr.p_max_mw - dr, ramp)
            dn = _np_min(dr - 0.0, ramp)
            flex["dr"] = (float(_np_max(up, 0.0)), float(_np_max(dn, 0.0)))
        if st is not None:
            p_net = dis - ch
            up = _np_min(st.p_dis_max_mw - p_net, st.eta * (e_next - st.e_min_mwh) / dt_h)
            dn = _np_min(st.p_ch_max_mw + p_net, (st.e_max_mwh - e_next) / (st.eta * dt_h))
            if st.ramp_mw_per_h is not None:
                up = _np_min(up, st.ramp_mw_per_h * dt_h)
                dn = _np_min(dn, st.ramp_mw_per_h * dt_h)
            flex["es"] = (float(_np_max(up, 0.0)), float(_np_max(dn, 0.0)))

        dispatch = dict(zip(self.gen_names, g))
        dispatch.update({"dr": dr, "es_ch": ch, "es_dis": dis})
        # advance the state
        if g:
            self.prev_g_mw = np.array(g, dtype=float)
        self.prev_dr_mw = dr
        self.dr_used_mwh += dr * dt_h
        if st is not None:
            self.es_e_mwh = e_next
            self.prev_es_net_mw = dis - ch
        return OperatorResult(
            dispatch_mw=MappingProxyType(dispatch), es_e_mwh=e_next, residual_mw=float(residual),
            flex_up_mw=float(sum(v[0] for v in flex.values())),
            flex_dn_mw=float(sum(v[1] for v in flex.values())),
            status=status, message=message, flex_mw=MappingProxyType(flex))

    def _invalid(self, dt_h: float, message: str) -> OperatorResult:
        """Result for unusable inputs: hold the previous set-points, do not touch the state."""
        r = self.resources
        if self.prev_g_mw is not None:
            g = self.prev_g_mw.copy()
        else:
            g = np.array([gs.p_min_mw for gs in r.generators], dtype=float)
        dispatch = {name: float(g[j]) for j, name in enumerate(self.gen_names)}
        dispatch.update({"dr": float(self.prev_dr_mw), "es_ch": 0.0, "es_dis": 0.0})
        return OperatorResult(dispatch_mw=MappingProxyType(dispatch), es_e_mwh=self.es_e_mwh,
                              residual_mw=float("nan"), flex_up_mw=float("nan"),
                              flex_dn_mw=float("nan"), status="invalid_input", message=message)
