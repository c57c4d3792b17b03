"""Seed-001 planning policies for the transmission co-simulation (:mod:`sim.tsn_engine`).

Both plan the whole horizon once at :meth:`reset` from the plain :class:`sim.tsn.TransmissionCase`
with the existing solvers and then issue each hour's decision from the plan:

* :class:`UcMilpPolicy` (``"uc-milp"``): the centralised MILP, :func:`policies.tsn_milp.solve_case`;
  train routes are the arcs with ``x = 1``.
* :class:`OcdPolicy` (``"ocd"``): the OCD coordinator, :func:`policies.ocd.run_ocd`; routes are
  its incumbent's TSN paths.

Hourly decision for hour ``t`` (0-based): unit outputs and commitment, wind, station charge and
discharge of the plan's column ``t``; a :class:`~sim.tsn_sim_types.TrainMove` for every route arc
that starts at time point ``t``; an :class:`~sim.tsn_sim_types.Exchange` for every train whose plan
parks it at a station during hour ``t``. With ``exchange_mode="track"`` (default) the exchange
takes the train from its **simulated** state to the plan's end-of-hour state
(``ct[k, t+1] - c_sim``, the same for energy); with ``"delta"`` it replays the plan's change
``ct[k, t+1] - ct[k, t]`` open-loop. Both equal the plan when the simulation follows it.
"""

from __future__ import annotations

import numpy as np

from policies.ocd import OcdOptions, run_ocd
from policies.tsn_milp import TsnOptions, TsnPlan, solve_case
from sim.errors import PolicyError
from sim.tsn import TransmissionCase
from sim.tsn_sim_types import Exchange, TrainMove, TsnDecision, TsnState

Arc = tuple[int, int, int, int]

#: Exchanges smaller than this (MW / MWh) are not issued (solver noise).
EXCHANGE_EPS = 1e-9


def paths_from_central_model(model, case: TransmissionCase) -> list[list[Arc]]:
    """Each train's TSN path (arcs with ``x > 0.5``, in time order) from a solved central
    :class:`policies.tsn_milp.TsnModel`."""
    paths: list[list[Arc]] = [[] for _ in case.trains]
    for (k, arc), var in model.v["x"].items():
        if (var.varValue or 0.0) > 0.5:
            paths[k].append(tuple(int(a) for a in arc))
    for p in paths:
        p.sort(key=lambda a: a[1])
    return paths


def check_paths(case: TransmissionCase, paths: list[list[Arc]], w: np.ndarray) -> list[str]:
    """Problems of ``paths`` as TSN paths that agree with the connections ``w`` (K, I, T)."""
    out = []
    T = case.T
    for k, (tr, p) in enumerate(zip(case.trains, paths)):
        pos, th = case.station_pos(tr.start), 0
        for a in p:
            i, t0, j, t1 = a
            if (i, t0) != (pos, th):
                out.append(f"{tr.name}: arc {a} does not continue from ({pos}, {th})")
                break
            if i != j and t1 - t0 != int(case.travel_h[i, j]):
                out.append(f"{tr.name}: arc {a} does not take travel_h[{i}, {j}]")
            if i == j and w[k, i, t0] < 0.5:
                out.append(f"{tr.name}: parked at {i} in hour {t0} but w = 0")
            pos, th = j, t1
        if (pos, th) != (case.station_pos(tr.end), T):
            out.append(f"{tr.name}: path ends at ({pos}, {th}), not at ({tr.end}, {T})")
    return out


class _PlanReplayPolicy:
    """Plan at reset, then issue each hour's decision from the plan (no side effects)."""

    name = "plan-replay"

    def __init__(self, exchange_mode: str = "track", keep_plan: bool = False) -> None:
        if exchange_mode not in ("track", "delta"):
            raise ValueError(f"exchange_mode: must be 'track' or 'delta', got {exchange_mode!r}")
        self.exchange_mode = exchange_mode
        self.keep_plan = bool(keep_plan)
        self.case: TransmissionCase | None = None
        self.plan: TsnPlan | None = None
        self.paths: list[list[Arc]] | None = None
        self.plan_info: dict = {}

    # subclasses: return (plan, paths, info)
    def _make_plan(self, case: TransmissionCase) -> tuple[TsnPlan | None, list | None, dict]:
        raise NotImplementedError

    def params(self) -> dict:
        return {"exchange_mode": self.exchange_mode, "keep_plan": self.keep_plan}

    def reset(self, case: TransmissionCase, rng: np.random.Generator | None = None) -> None:
        """Plan the horizon of ``case``. With ``keep_plan`` a plan already made for this very
        case object is kept (replaying one plan under several grid settings)."""
        if self.keep_plan and self.plan is not None and self.case is case:
            return
        self.case = case
        plan, paths, info = self._make_plan(case)
        self.plan_info = info
        if plan is None or not plan.has_solution:
            status = plan.outcome.status if plan is not None else "no plan"
            raise PolicyError(f"{self.name}: planning found no solution ({status})")
        paths = paths if paths is not None else [[] for _ in case.trains]
        problems = check_paths(case, paths, plan.w)
        if problems:
            raise PolicyError(f"{self.name}: plan routes inconsistent: {problems}")
        self.plan, self.paths = plan, paths

    def decide(self, state: TsnState) -> TsnDecision:
        case, plan = self.case, self.plan
        if case is None or plan is None:
            raise PolicyError(f"{self.name}: decide() before a successful reset()")
        t = int(state.hour)
        if not 0 <= t < case.T or state.time_min != t * state.step_min:
            raise PolicyError(f"{self.name}: no plan for time_min {state.time_min}")
        names = [s.name for s in case.stations]
        moves, exchanges = [], []
        for k, (tr, path) in enumerate(zip(case.trains, self.paths)):
            for i, t0, j, _ in path:
                if t0 != t:
                    continue
                if i != j:
                    moves.append(TrainMove(tr.name, (names[i], names[j])))
                else:
                    if self.exchange_mode == "track":
                        snap = state.train(tr.name)
                        dc = plan.ct_mw[k, t + 1] - snap.c_mw
                        de = plan.et_mwh[k, t + 1] - snap.e_mwh
                    else:
                        dc = plan.ct_mw[k, t + 1] - plan.ct_mw[k, t]
                        de = plan.et_mwh[k, t + 1] - plan.et_mwh[k, t]
                    if abs(dc) > EXCHANGE_EPS or abs(de) > EXCHANGE_EPS:
                        exchanges.append(Exchange(tr.name, names[i], float(dc), float(de)))
        on = plan.u[:, t] > 0.5
        return TsnDecision(
            unit_p_mw=np.where(on, np.maximum(plan.p_mw[:, t], 0.0), 0.0), unit_on=tuple(on),
            wind_mw=np.maximum(plan.wind_mw[:, t], 0.0),
            station_pch_mw=np.maximum(plan.pch_mw[:, t], 0.0),
            station_pdis_mw=np.maximum(plan.pdis_mw[:, t], 0.0),
            moves=tuple(moves), exchanges=tuple(exchanges), note=f"{self.name} plan hour {t}")


def _plan_info(plan: TsnPlan | None, extra: dict) -> dict:
    info = dict(extra)
    if plan is not None:
        info.update(status=plan.outcome.status, gap=plan.outcome.gap,
                    build_s=plan.outcome.build_s, solve_s=plan.outcome.solve_s,
                    operating_cost=plan.operating_cost,
                    operating_cost_quadratic=plan.operating_cost_quadratic,
                    transport_cost=plan.transport_cost, total_cost=plan.total_cost,
                    max_overload_mw=plan.max_overload_mw, line_rows=plan.line_rows)
    return info


class UcMilpPolicy(_PlanReplayPolicy):
    """The centralised UC/TSN MILP (B.4-B.9) planned once at reset and replayed hour by hour."""

    name = "uc-milp"

    def __init__(self, solver: str = "highs", time_limit_s: float = 600.0,
                 mip_gap: float = 1e-4, pwl_segments: int = 8, mode_binaries: bool = True,
                 line_limits: bool = True, threads: int | None = None,
                 exchange_mode: str = "track", keep_plan: bool = False) -> None:
        super().__init__(exchange_mode, keep_plan)
        self.options = TsnOptions(solver=solver, time_limit_s=time_limit_s, mip_gap=mip_gap,
                                  pwl_segments=pwl_segments, mode_binaries=mode_binaries,
                                  line_limits=line_limits, threads=threads)

    def params(self) -> dict:
        o = self.options
        return {"solver": o.solver, "time_limit_s": o.time_limit_s, "mip_gap": o.mip_gap,
                "pwl_segments": o.pwl_segments, "mode_binaries": o.mode_binaries,
                "line_limits": o.line_limits, "threads": o.threads, **super().params()}

    def _make_plan(self, case):
        plan, model = solve_case(case, self.options, kind="central")
        paths = paths_from_central_model(model, case) if plan.has_solution else None
        return plan, paths, _plan_info(plan, {"planner": "solve_case(central)"})


class OcdPolicy(_PlanReplayPolicy):
    """The OCD coordinator (B.11-B.12) planned once at reset; its incumbent is replayed."""

    name = "ocd"

    def __init__(self, variant: str = "enhanced", max_iter: int = 50, eps: float = 1e-3,
                 rho0: float = 1.0, mobility: str = "pairwise",
                 request_candidates: bool = False, polish: bool = False,
                 power_time_limit_s: float = 120.0, power_mip_gap: float = 1e-4,
                 exchange_mode: str = "track", keep_plan: bool = False) -> None:
        super().__init__(exchange_mode, keep_plan)
        self.options = OcdOptions(
            variant=variant, max_iter=max_iter, eps=eps, rho0=rho0, mobility=mobility,
            request_candidates=request_candidates, polish=polish,
            power=TsnOptions(time_limit_s=power_time_limit_s, mip_gap=power_mip_gap))
        self.result = None

    def params(self) -> dict:
        o = self.options
        return {"variant": o.variant, "max_iter": o.max_iter, "eps": o.eps, "rho0": o.rho0,
                "mobility": o.mobility, "request_candidates": o.request_candidates,
                "polish": o.polish, "power_time_limit_s": o.power.time_limit_s,
                "power_mip_gap": o.power.mip_gap, **super().params()}

    def _make_plan(self, case):
        res = run_ocd(case, self.options)
        self.result = res
        extra = {"planner": "run_ocd", "ocd_ub": res.ub, "ocd_lb": res.lb, "ocd_gap": res.gap,
                 "ocd_iterations": res.iterations, "ocd_stop": res.stop_reason,
                 "ocd_total_s": res.total_s}
        return res.plan, res.routes, _plan_info(res.plan, extra)
