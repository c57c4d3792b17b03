"""Typed solver outcomes for PuLP models, with HiGHS (default) or CBC.

PuLP reports "Optimal" when a time limit stopped the solver with an incumbent; here the HiGHS model
status, the incumbent, the dual bound and the gap are read directly so that a time-limited solve
is reported as ``time_limit`` (or ``feasible_gap``) and never as ``optimal``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import pulp

from sim.highs import quiet_highs

STATUSES = ("optimal", "feasible_gap", "time_limit", "infeasible", "unbounded", "error")


@dataclass(frozen=True)
class SolveOutcome:
    """What a solve produced. ``objective`` and ``bound`` are in the model's own sense."""

    status: str
    solver: str
    objective: float | None
    bound: float | None
    gap: float | None
    build_s: float
    solve_s: float
    message: str = ""
    #: Time PuLP spent handing the built model to the solver (HiGHS: ``buildSolverModel``, which
    #: adds columns and rows one by one; CBC: writing the MPS file). It is part of ``solve_s``
    #: but is model-building cost: the solver's own time is ``solve_s - transfer_s``.
    transfer_s: float = 0.0
    #: Which stopping rule closed a MIP proven within tolerance: ``"relative"`` (gap at most the
    #: requested ``mip_gap``) or ``"absolute"`` (incumbent and bound within HiGHS's
    #: ``mip_abs_gap``, default 1e-6, which HiGHS also stops on); ``""`` when neither applies
    #: (an LP, a time limit, a failure, or CBC, which does not expose its bound).
    gap_closed: str = ""

    @property
    def has_solution(self) -> bool:
        return self.status in ("optimal", "feasible_gap", "time_limit")

    def as_dict(self) -> dict:
        return asdict(self)


class _HiGHS(pulp.HiGHS):
    """PuLP's HiGHS interface plus a MIP start (``setSolution``) from variables' initial values;
    the hand-over of the model (``buildSolverModel``) is timed in ``transfer_s``."""

    def __init__(self, *args, start: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.start = start or {}
        self.transfer_s = 0.0

    def actualSolve(self, lp, **kwargs):
        quiet_highs()  # PuLP makes its Highs object here (createAndConfigureSolver)
        return super().actualSolve(lp, **kwargs)

    def buildSolverModel(self, lp):
        quiet_highs()
        t0 = time.perf_counter()
        try:
            super().buildSolverModel(lp)
        finally:
            self.transfer_s += time.perf_counter() - t0

    def callSolver(self, lp):
        if self.start:
            import highspy
            import numpy as np

            h = lp.solverModel
            idx = np.array([v.index for v in self.start], dtype=np.int32)
            val = np.array([float(x) for x in self.start.values()], dtype=np.float64)
            try:
                if len(idx) == h.getNumCol():
                    sol = highspy.HighsSolution()
                    values = np.zeros(len(idx))
                    values[idx] = val
                    sol.col_value = list(values)
                    sol.value_valid = True
                    h.setSolution(sol)
                else:
                    # a partial start (e.g. routes only): HiGHS completes it itself
                    h.setSolution(len(idx), idx, val)
            except Exception:  # noqa: BLE001 - a rejected start only costs speed
                pass
        lp.solverModel.run()

    def findSolutionValues(self, lp):
        try:
            return super().findSolutionValues(lp)
        except KeyError:
            # a model status PuLP does not map: kSolutionLimit (HiGHS's node, leaf or improving-
            # solution limit). PuLP assigned the variables' values before its lookup failed;
            # report it as PuLP reports the other work limits (time, iterations), and let the
            # classifier read HiGHS's own status.
            has_sol = lp.solverModel.getInfo().primal_solution_status == 2
            return (pulp.LpStatusOptimal if has_sol else pulp.LpStatusNotSolved,
                    pulp.LpSolutionIntegerFeasible if has_sol else pulp.LpSolutionNoSolutionFound)


class _CBC(pulp.PULP_CBC_CMD):
    """PuLP's CBC command; the MPS file it writes for CBC (the hand-over) is timed in
    ``transfer_s``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.transfer_s = 0.0

    def solve_CBC(self, lp, use_mps=True):
        write = lp.writeMPS

        def timed_write(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return write(*args, **kwargs)
            finally:
                self.transfer_s += time.perf_counter() - t0

        lp.writeMPS = timed_write  # this solve only: the instance attribute is removed below
        try:
            return super().solve_CBC(lp, use_mps=use_mps)
        finally:
            del lp.writeMPS


def solve(prob: pulp.LpProblem, solver: str = "highs", time_limit_s: float | None = 60.0,
          mip_gap: float = 1e-4, build_s: float = 0.0, start: dict | None = None,
          threads: int | None = None, options: dict | None = None) -> SolveOutcome:
    """Solve ``prob`` and classify the result.

    ``start`` maps PuLP variables to values for a MIP start (HiGHS only). ``mip_gap`` is the
    relative gap at which the solver may stop; a solution within it is ``optimal``.
    ``options`` are extra HiGHS options by name (e.g. ``{"random_seed": 1}``; HiGHS only).
    The outcome's ``solve_s`` is the whole ``prob.solve`` call; ``transfer_s`` the part of it
    that PuLP spent handing the model to the solver.
    """
    t0 = time.perf_counter()
    solver = solver.lower()
    s = None
    try:
        if solver == "highs":
            s = _HiGHS(msg=False, timeLimit=time_limit_s, gapRel=mip_gap, threads=threads,
                       start=start, **(options or {}))
        elif solver == "cbc":
            s = _CBC(msg=False, timeLimit=time_limit_s, gapRel=mip_gap, threads=threads)
        else:
            raise ValueError(f"unknown solver {solver!r}; valid: highs, cbc")
        prob.solve(s)
    except Exception as exc:  # noqa: BLE001 - a solver crash is an outcome, not a traceback
        return SolveOutcome("error", solver, None, None, None, build_s,
                            time.perf_counter() - t0, f"{type(exc).__name__}: {exc}",
                            s.transfer_s if s is not None else 0.0)
    solve_s = time.perf_counter() - t0
    if solver == "highs":
        out = _classify_highs(prob, build_s, solve_s, mip_gap)
    else:
        out = _classify_pulp(prob, solver, build_s, solve_s, time_limit_s)
    return replace(out, transfer_s=s.transfer_s)


def _classify_highs(prob, build_s, solve_s, mip_gap) -> SolveOutcome:
    # PuLP hands HiGHS a minimisation (objective negated for a maximisation)
    is_mip = any(v.cat == pulp.LpInteger for v in prob.variables())
    return highs_outcome(prob.solverModel, prob.sense == pulp.LpMaximize, is_mip, build_s,
                         solve_s, mip_gap, negated=True)


def highs_outcome(h, maximize: bool, is_mip: bool, build_s: float, solve_s: float,
                  mip_gap: float, negated: bool = False) -> SolveOutcome:
    """Classify a finished ``highspy.Highs`` run. ``negated``: the model HiGHS solved is the
    negation of a maximisation (PuLP's hand-over); otherwise HiGHS's values are the model's."""
    import highspy

    ms = h.getModelStatus()
    info = h.getInfo()
    sense = -1.0 if maximize and negated else 1.0
    has_sol = info.primal_solution_status == 2  # kSolutionStatusFeasible
    obj = sense * info.objective_function_value if has_sol else None
    if is_mip:
        bound = sense * info.mip_dual_bound if math.isfinite(info.mip_dual_bound) else None
        gap = info.mip_gap if has_sol and math.isfinite(info.mip_gap) else None
    else:
        bound, gap = obj, 0.0 if has_sol else None
    S = highspy.HighsModelStatus
    closed = ""
    if is_mip and ms == S.kOptimal and has_sol:
        closed = _closed_gap(h, obj, bound, gap, mip_gap)
    if ms == S.kOptimal:
        status = "optimal" if not is_mip or gap is None or closed else "feasible_gap"
    elif ms in (S.kTimeLimit, S.kIterationLimit, S.kSolutionLimit, S.kInterrupt):
        status = "time_limit" if has_sol else "error"
    elif ms == S.kInfeasible:
        status = "infeasible"
    elif ms in (S.kUnbounded, S.kUnboundedOrInfeasible):
        status = "unbounded"
    else:
        status = "error"
    msg = h.modelStatusToString(ms)
    if status == "error" and ms in (S.kTimeLimit, S.kIterationLimit):
        msg += " before any feasible solution"
    return SolveOutcome(status, "highs", obj, bound, gap, build_s, solve_s, msg,
                        gap_closed=closed)


def _closed_gap(h, obj: float | None, bound: float | None, gap: float | None,
                mip_gap: float) -> str:
    """Which of HiGHS's two stopping rules a MIP reported optimal satisfies.

    HiGHS stops when the relative gap is at most ``mip_rel_gap`` *or* the absolute gap
    ``|objective - bound|`` is at most ``mip_abs_gap``. With a tiny requested relative gap (the
    tests ask for 1e-9) the absolute rule is the one that closes, so a solve proven within the
    absolute gap is as optimal as HiGHS ever proves it. Checked in the order relative, absolute.
    """
    if gap is None or gap <= mip_gap + 1e-12:
        return "relative"
    if obj is None or bound is None:
        return ""
    abs_gap = h.getOptionValue("mip_abs_gap")
    if isinstance(abs_gap, tuple):  # highspy >= 1.16 returns (status, value)
        abs_gap = abs_gap[-1]
    abs_gap = float(abs_gap)
    # the same 1e-12 slack as the relative rule: HiGHS compares before rounding its report
    return "absolute" if abs(obj - bound) <= abs_gap + 1e-12 else ""


def _classify_pulp(prob, solver, build_s, solve_s, time_limit_s) -> SolveOutcome:
    # CBC through PuLP: sol_status tells whether the solution is proven optimal.
    st, sol = prob.status, prob.sol_status
    obj = pulp.value(prob.objective)
    if sol == pulp.LpSolutionOptimal:
        status = "optimal"
    elif sol == pulp.LpSolutionIntegerFeasible:
        status = "time_limit" if time_limit_s and solve_s >= 0.95 * time_limit_s else "feasible_gap"
    elif st == pulp.LpStatusInfeasible or sol == pulp.LpSolutionInfeasible:
        status, obj = "infeasible", None
    elif st == pulp.LpStatusUnbounded or sol == pulp.LpSolutionUnbounded:
        status, obj = "unbounded", None
    else:
        status, obj = "error", None
    # PuLP does not expose CBC's dual bound: "optimal" means "within gapRel", so neither the
    # bound nor the exact gap is known and both are reported as unknown (None), never as 0.
    return SolveOutcome(status, solver, obj, None, None, build_s, solve_s,
                        f"{pulp.LpStatus[st]} / {pulp.LpSolution[sol]}")


# ----------------------------------------------------------------------------- diagnosis


@dataclass(frozen=True)
class Violation:
    """One bound or row the elastic re-solve had to relax to make the model feasible."""

    name: str  # PuLP variable (bounds) or constraint (rows) name
    kind: str  # "lower bound", "upper bound" or "constraint"
    amount: float  # by how much, in the variable's or row's own unit
    family: str
    entity: str
    step: int | None


@dataclass(frozen=True)
class Diagnosis:
    """Why a model is infeasible: the first (earliest) element that has to give, and all of them.

    Found by an elastic re-solve (HiGHS ``feasibilityRelaxation``): the model's constraints are
    kept hard, the bounds of its continuous variables may be violated at a penalty, and the total
    violation is minimised. If that is still infeasible, the constraints are made elastic too.
    ``message`` names the constraint family, the first step and the entity, e.g. ``"vehicle SOC
    window (e) of mess1 broken at step 2: below its lower bound 0.1 by 0.1"``.
    """

    family: str
    entity: str
    step: int | None
    message: str
    violations: tuple[Violation, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["violations"] = [asdict(v) for v in self.violations[:20]]
        return d


#: Penalty per unit of a relaxed row, against 1 per unit of a relaxed bound.
ROW_PENALTY = 1e3

#: ``describe(variable_name) -> (family, entity, step)``; step None when the name has none.
Describe = Callable[[str], tuple[str, str, int | None]]


def _default_describe(name: str) -> tuple[str, str, int | None]:
    parts = name.split("_")
    step = int(parts[-1]) if len(parts) > 1 and parts[-1].isdigit() else None
    return parts[0], "_".join(parts[1:-1]) if step is not None else "", step


def diagnose_infeasible(prob: pulp.LpProblem, describe: Describe | None = None,
                        time_limit_s: float = 30.0, tol: float = 1e-6) -> Diagnosis | None:
    """Explain an infeasible PuLP model by an elastic re-solve with HiGHS.

    Returns None if the model turns out feasible (or the relaxation cannot be solved). The
    model is re-built in a fresh HiGHS instance, so ``prob`` may have been solved with CBC.
    """
    import highspy
    import numpy as np

    describe = describe or _default_describe
    variables = prob.variables()
    # The rows in the order PuLP's HiGHS interface adds them (it iterates ``_constraints``);
    # the public ``constraints`` mapping is deprecated in PuLP 3.3.
    rows = list(prob._constraints.items())
    s = pulp.HiGHS(msg=False, timeLimit=time_limit_s)
    quiet_highs()
    try:
        prob.solverModel = highspy.Highs()
        prob.solverModel.setOptionValue("output_flag", False)
        prob.solverModel.setOptionValue("time_limit", float(time_limit_s))
        s.buildSolverModel(prob)
    except Exception:  # noqa: BLE001 - no diagnosis is better than a crash in the fallback path
        return None
    h = prob.solverModel
    lp = h.getLp()
    col_lo = np.asarray(lp.col_lower_, dtype=float)
    col_hi = np.asarray(lp.col_upper_, dtype=float)
    is_int = np.array([v.cat == pulp.LpInteger for v in variables])
    # Integer bounds (binaries) are structure, not data: never relaxed.
    col_pen = np.where(is_int, -1.0, 1.0)
    found = None
    # Rows hard first; if the bounds alone cannot make the model feasible, rows become elastic
    # at a high penalty, so that they give only where no bound can.
    for row_pen in (-1.0, ROW_PENALTY):
        h.clearSolver()
        try:
            h.feasibilityRelaxation(1.0, 1.0, row_pen, col_pen, col_pen,
                                    np.full(len(rows), row_pen))
        except Exception:  # noqa: BLE001
            return None
        sol = h.getSolution()
        if (sol.value_valid and len(sol.col_value) == len(variables)
                and math.isfinite(h.getInfo().objective_function_value)):
            found = sol
            break
    if found is None:
        return None
    x = np.asarray(found.col_value, dtype=float)
    act = np.asarray(found.row_value, dtype=float)
    viol: list[Violation] = []
    for i in np.flatnonzero(x < col_lo - tol):
        fam, ent, step = describe(variables[i].name)
        viol.append(Violation(variables[i].name, "lower bound", float(col_lo[i] - x[i]), fam, ent,
                              step))
    for i in np.flatnonzero(x > col_hi + tol):
        fam, ent, step = describe(variables[i].name)
        viol.append(Violation(variables[i].name, "upper bound", float(x[i] - col_hi[i]), fam, ent,
                              step))
    row_lo = np.asarray(lp.row_lower_, dtype=float)
    row_hi = np.asarray(lp.row_upper_, dtype=float)
    for i in np.flatnonzero((act < row_lo - tol) | (act > row_hi + tol)):
        name, con = rows[i]
        first = next(iter(con.keys()), None)
        fam, ent, step = describe(first.name) if first is not None else ("constraint", "", None)
        amount = float(max(row_lo[i] - act[i], act[i] - row_hi[i]))
        viol.append(Violation(name, "constraint", amount, f"constraint on {fam}", ent, step))
    if not viol:
        return None
    viol.sort(key=lambda v: (math.inf if v.step is None else v.step, -v.amount))
    v = viol[0]
    bound = {"lower bound": col_lo, "upper bound": col_hi}.get(v.kind)
    where = f" at step {v.step}" if v.step is not None else ""
    of = f" of {v.entity}" if v.entity else ""
    if bound is not None:
        idx = [var.name for var in variables].index(v.name)
        what = (f"{'below' if v.kind == 'lower bound' else 'above'} its {v.kind} "
                f"{bound[idx]:.6g} by {v.amount:.6g}")
    else:
        what = f"constraint {v.name} violated by {v.amount:.6g}"
    msg = f"{v.family}{of} broken{where}: {what} ({len(viol)} elements relaxed in all)"
    return Diagnosis(v.family, v.entity, v.step, msg, tuple(viol))
