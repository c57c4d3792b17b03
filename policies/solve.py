"""Typed solver outcomes for PuLP models, with HiGHS (default) or CBC.

PuLP reports "Optimal" when a time limit stopped the solver with an incumbent; here the HiGHS model
status, the incumbent, the dual bound and the gap are read directly so that a time-limited solve
is reported as ``time_limit`` (or ``feasible_gap``) and never as ``optimal``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import pulp

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

    @property
    def has_solution(self) -> bool:
        return self.status in ("optimal", "feasible_gap", "time_limit")

    def as_dict(self) -> dict:
        return asdict(self)


class _HiGHS(pulp.HiGHS):
    """PuLP's HiGHS interface plus a MIP start (``setSolution``) from variables' initial values."""

    def __init__(self, *args, start: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.start = start or {}

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


def solve(prob: pulp.LpProblem, solver: str = "highs", time_limit_s: float | None = 60.0,
          mip_gap: float = 1e-4, build_s: float = 0.0, start: dict | None = None,
          threads: int | None = None, options: dict | None = None) -> SolveOutcome:
    """Solve ``prob`` and classify the result.

    ``start`` maps PuLP variables to values for a MIP start (HiGHS only). ``mip_gap`` is the
    relative gap at which the solver may stop; a solution within it is ``optimal``.
    ``options`` are extra HiGHS options by name (e.g. ``{"random_seed": 1}``; HiGHS only).
    """
    t0 = time.perf_counter()
    solver = solver.lower()
    try:
        if solver == "highs":
            s = _HiGHS(msg=False, timeLimit=time_limit_s, gapRel=mip_gap, threads=threads,
                       start=start, **(options or {}))
        elif solver == "cbc":
            s = pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit_s, gapRel=mip_gap,
                                  threads=threads)
        else:
            raise ValueError(f"unknown solver {solver!r}; valid: highs, cbc")
        prob.solve(s)
    except Exception as exc:  # noqa: BLE001 - a solver crash is an outcome, not a traceback
        return SolveOutcome("error", solver, None, None, None, build_s,
                            time.perf_counter() - t0, f"{type(exc).__name__}: {exc}")
    solve_s = time.perf_counter() - t0
    if solver == "highs":
        return _classify_highs(prob, build_s, solve_s, mip_gap)
    return _classify_pulp(prob, solver, build_s, solve_s, time_limit_s)


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
    if ms == S.kOptimal:
        status = "optimal" if gap is None or gap <= mip_gap + 1e-12 else "feasible_gap"
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
    return SolveOutcome(status, "highs", obj, bound, gap, build_s, solve_s, msg)


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
