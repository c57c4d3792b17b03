"""Seed-001 planning policies for the transmission co-simulation (:mod:`sim.engine`,
:class:`sim.systems.TransmissionSystem`).

Both plan the whole horizon once at :meth:`reset` from the plain :class:`sim.tsn.TransmissionCase`
with the existing solvers and then issue each hour's decision from the plan:

* :class:`UcMilpPolicy` (``"uc-milp"``): the centralised MILP, :func:`policies.tsn_milp.solve_case`;
  train routes are the arcs with ``x = 1``.
* :class:`OcdPolicy` (``"ocd"``): the OCD coordinator, :func:`policies.ocd.run_ocd`; routes are
  its incumbent's TSN paths.
* :class:`TrainDpPolicy` (``"dp"``) and :class:`GreedyTrainPolicy` (``"greedy"``): each train
  routed against the hourly LMPs of the grid without the trains (a transport DP, or the greedy
  "charge cheapest, discharge dearest" rule of :mod:`policies.train_dp`), then the power MILP
  with the routes fixed.

Hourly decision for hour ``t`` (0-based): unit outputs and commitment, wind, station charge and
discharge of the plan's column ``t`` as :class:`~sim.types.Setpoints`; a
:class:`~sim.types.Command` with a ``path`` for every route arc that starts at time point ``t``;
an exchange :class:`~sim.types.Command` for every train whose plan parks it at a station during
hour ``t``. With ``exchange_mode="track"`` (default) the exchange
takes the train from its **simulated** state to the plan's end-of-hour state
(``ct[k, t+1] - c_sim``, the same for energy); with ``"delta"`` it replays the plan's change
``ct[k, t+1] - ct[k, t]`` open-loop. Both equal the plan when the simulation follows it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from policies.ocd import OcdOptions, run_ocd
from policies.solve import diagnose_infeasible
from policies.train_dp import (
    GridPrices,
    dispatch_routes,
    grid_prices,
    route_train_dp,
    route_train_greedy,
)
from policies.tsn_milp import (
    TsnOptions,
    TsnPlan,
    WarmStart,
    arc_cost,
    build,
    operating_cost,
    screen_lines,
    solve_case,
)
from sim.errors import PolicyError
from sim.tsn import TransmissionCase, WindFarm
from sim.types import Command, Decision, Problem, Setpoints, State

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
        pos, th = case.station_pos(tr.start), tr.ready_h
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


def rolling_case(case: TransmissionCase, state: State) -> tuple[TransmissionCase, list[int]]:
    """The rest of the day from the **simulated** state at the start of hour ``state.hour``.

    Hours ``h .. T-1`` of the loads and wind; units with the previous hour's simulated on/off
    status, output (the ramp reference) and hours in that state (minimum up/down carried over);
    stations with their simulated capacity and energy; trains where they are: parked at a
    station, or in transit to ``dest`` (``ready_h`` = whole hours until the first time point
    after arrival). Stations and trains keep the day's end-of-horizon targets. A train whose
    trip ends after the horizon cannot do anything more and is left out; the kept trains'
    indices in ``case.trains`` are returned with the case."""
    h, step = int(state.hour), int(state.step_min)
    T2 = case.T - h
    if not 0 <= h < case.T:
        raise PolicyError(f"no hours left to plan at hour {h} of {case.T}")
    gam = case.gamma_h
    units = []
    for g in case.units:
        snap = next((u for u in state.units if u.name == g.name), None)
        if snap is None:
            raise PolicyError(f"state has no unit {g.name!r}")
        units.append(replace(g, u0=int(snap.on), p0_mw=float(snap.p_mw) if snap.on else 0.0,
                             hours_in_state0_h=snap.hours_in_state_h))
    wind = tuple(WindFarm(w.name, w.bus, np.asarray(w.p_avail_mw)[h:]) for w in case.wind)
    stations = []
    snaps = {s.name: s for s in state.stations}
    for s in case.stations:
        c = min(max(snaps[s.name].c_mw, 0.0), s.c_max_mw)
        e = min(max(snaps[s.name].e_mwh, 0.0), s.e_max_mwh, gam * c)
        stations.append(replace(s, c0_mw=c, e0_mwh=e, cT_mw=s.c_end_mw, eT_mwh=s.e_end_mwh))
    trains, kept = [], []
    for k, tr in enumerate(case.trains):
        snap = state.vehicle(tr.name)
        c = min(max(snap.c_mw, 0.0), tr.c_max_mw)
        e = min(max(snap.e_mwh, 0.0), tr.e_max_mwh, gam * c)
        if snap.station is not None:
            where, ready = snap.station, 0
        else:
            where = snap.dest
            ready = -(-(int(snap.arrive_min) - int(state.time_min)) // step)
        if ready >= T2:
            continue
        trains.append(replace(tr, start=where, ready_h=int(ready), c0_mw=c, e0_mwh=e,
                              cT_mw=tr.c_end_mw, eT_mwh=tr.e_end_mwh))
        kept.append(k)
    sub = replace(case, name=f"{case.name}@h{h}", T=T2, load_mw=np.asarray(case.load_mw)[h:],
                  units=tuple(units), wind=wind, stations=tuple(stations), trains=tuple(trains))
    return sub, kept


def tail_paths(paths: list[list[Arc]], h: int) -> list[list[Arc]]:
    """The arcs of ``paths`` that start at hour ``h`` or later, shifted to start at 0."""
    return [[(i, t0 - h, j, t1 - h) for i, t0, j, t1 in p if t0 >= h] for p in paths]


@dataclass
class _Window:
    """The plan being followed: made at hour ``offset`` for the trains ``kept``."""

    offset: int
    case: TransmissionCase
    plan: TsnPlan
    paths: list[list[Arc]]
    kept: list[int]


class _PlanReplayPolicy:
    """Plan at reset, then issue each hour's decision from the plan (no side effects on the
    simulation). With ``replan_every_h = k > 0`` the rest of the day is planned again every
    ``k`` hours from the simulated state (:func:`rolling_case`); with ``replan_on_deviation``
    also whenever the simulated state has left the plan (a train not where the plan has it,
    capacity or energy off by more than ``deviation_tol``). A re-plan that finds no solution
    keeps the plan being followed and is logged in ``plan_info["replans"]``.

    When the day's first plan has no solution, an infeasible model is diagnosed
    (:func:`policies.solve.diagnose_infeasible`, naming the constraint family, entity and hour)
    and, with ``fallback = "park"``, the policy follows a safe plan: every train stays at its
    station (a train in transit stays where it arrives), the stations neither charge nor
    discharge nor exchange, and the units follow an economic dispatch with unit commitment and
    line limits. The diagnosis, the planner's status and the fallback are in ``plan_info``.
    With ``fallback = "none"`` reset raises :class:`~sim.errors.PolicyError` with the diagnosis."""

    name = "plan-replay"
    FALLBACKS = ("park", "none")

    def __init__(self, exchange_mode: str = "track", keep_plan: bool = False,
                 replan_every_h: int = 0, replan_on_deviation: bool = False,
                 deviation_tol: float = 1e-4, fallback: str = "park") -> None:
        if fallback not in self.FALLBACKS:
            raise ValueError(f"fallback: must be one of {', '.join(self.FALLBACKS)}, got "
                             f"{fallback!r}")
        self.fallback = fallback
        if exchange_mode not in ("track", "delta"):
            raise ValueError(f"exchange_mode: must be 'track' or 'delta', got {exchange_mode!r}")
        if int(replan_every_h) != replan_every_h or replan_every_h < 0:
            raise ValueError(f"replan_every_h: must be a whole number of hours >= 0 (0 = plan "
                             f"once), got {replan_every_h!r}")
        if not deviation_tol > 0:
            raise ValueError(f"deviation_tol: must be > 0, got {deviation_tol!r}")
        self.exchange_mode = exchange_mode
        self.keep_plan = bool(keep_plan)
        self.replan_every_h = int(replan_every_h)
        self.replan_on_deviation = bool(replan_on_deviation)
        self.deviation_tol = float(deviation_tol)
        self.case: TransmissionCase | None = None
        self.plan: TsnPlan | None = None  # the whole day as followed (plans stitched)
        self.paths: list[list[Arc]] | None = None
        self.plan_info: dict = {}
        self._win: _Window | None = None
        self._first: tuple | None = None

    # subclasses: return (plan, paths, info). On a re-plan ``prev`` is (window being followed,
    # its remaining routes on ``case``'s clock or None when unusable, the re-plan hour)
    def _make_plan(self, case: TransmissionCase, prev: tuple | None = None
                   ) -> tuple[TsnPlan | None, list | None, dict]:
        raise NotImplementedError

    def params(self) -> dict:
        return {"exchange_mode": self.exchange_mode, "keep_plan": self.keep_plan,
                "replan_every_h": self.replan_every_h,
                "replan_on_deviation": self.replan_on_deviation,
                "deviation_tol": self.deviation_tol, "fallback": self.fallback}

    def _fallback_options(self) -> TsnOptions:
        """Options of the safe plan's economic dispatch and of the diagnosis model."""
        o = self.options
        return o.power if isinstance(o, OcdOptions) else o

    def _diagnose(self, case: TransmissionCase, hour0: int = 0) -> dict:
        """Diagnosis of ``case``'s central model (every screened line row present); hours are
        the day's (``hour0`` = the day's hour of the model's t = 0, for a re-plan)."""
        opt = self._fallback_options()
        rows = {(int(line), t) for line in screen_lines(case) for t in range(case.T)} \
            if opt.line_limits else set()
        model = build(case, "central", opt, lines=rows)
        diag = diagnose_infeasible(model.prob, describe_tsn(case, hour0))
        if diag is None:
            return {"diagnosis": "no diagnosis (elastic re-solve failed or the central model is "
                                 "feasible)", "diagnosis_detail": None}
        # The elastic re-solve spreads the violation over several rows; the element relaxed the
        # most is the headline (the shared helper's message names the earliest one).
        v = max(diag.violations, key=lambda x: x.amount)
        where = f" at hour {v.step}" if v.step is not None else ""
        of = f" of {v.entity}" if v.entity else ""
        msg = (f"{v.family}{of} broken{where}: {v.kind} {v.name} relaxed by {v.amount:.6g} "
               f"({len(diag.violations)} elements relaxed in all; earliest: {diag.message})")
        detail = dict(diag.as_dict(), family=v.family, entity=v.entity, step=v.step)
        return {"diagnosis": msg, "diagnosis_detail": detail}

    def _safe_plan(self, case: TransmissionCase, why: dict):
        """The ``"park"`` fallback plan (see the class docstring), or PolicyError."""
        plan, paths = park_plan(case, self._fallback_options())
        if not plan.has_solution:
            raise PolicyError(f"{self.name}: planning found no solution ({why['status']}): "
                              f"{why['diagnosis']}; the park fallback found none either "
                              f"({plan.outcome.status})")
        info = _plan_info(plan, {"planner": "fallback park (economic dispatch, trains parked, "
                                            "stations idle)", "fallback": "park",
                                 "planner_status": why["status"],
                                 "planner_info": why.get("planner_info"),
                                 "diagnosis": why["diagnosis"],
                                 "diagnosis_detail": why["diagnosis_detail"]})
        return plan, paths, info

    def reset(self, problem: Problem, rng: np.random.Generator | None = None) -> None:
        """Plan the horizon of ``problem.transmission``. With ``keep_plan`` a plan already made
        for this very case object is kept (replaying one plan under several grid settings)."""
        case = problem.transmission
        if case is None:
            raise PolicyError(f"{self.name}: the scenario has no transmission grid")
        if self.keep_plan and self._first is not None and self.case is case:
            plan, paths, info = self._first
        else:
            self.case = case
            plan, paths, info = self._make_plan(case)
            if plan is None or not plan.has_solution:
                status = plan.outcome.status if plan is not None else "no plan"
                why = {"status": status, "planner_info": info,
                       "diagnosis": "not diagnosed (the planner did not prove infeasibility)",
                       "diagnosis_detail": None}
                if status in ("infeasible", "no plan"):
                    why.update(self._diagnose(case))
                if self.fallback == "none":
                    raise PolicyError(f"{self.name}: planning found no solution ({status}): "
                                      f"{why['diagnosis']}")
                plan, paths, info = self._safe_plan(case, why)
            paths = paths if paths is not None else [[] for _ in case.trains]
            problems = check_paths(case, paths, plan.w)
            if problems:
                raise PolicyError(f"{self.name}: plan routes inconsistent: {problems}")
            self._first = (plan, paths, info)
        self.plan_info = dict(info, replans=[])
        self.plan, self.paths = plan, [list(p) for p in paths]
        self._win = _Window(0, case, plan, paths, list(range(len(case.trains))))

    # ------------------------------------------------------------------ re-planning
    def deviation(self, state: State) -> str | None:
        """Why the simulated ``state`` is not where the plan being followed expects, or None."""
        win, tol = self._win, self.deviation_tol
        tau = int(state.hour) - win.offset
        pos = {k: n for n, k in enumerate(win.kept)}
        names = [s.name for s in self.case.stations]
        for k, tr in enumerate(self.case.trains):
            snap = state.vehicle(tr.name)
            if k not in pos:
                if snap.station is not None:
                    return f"{tr.name} parked at {snap.station}, plan: in transit"
                continue
            n = pos[k]
            where = _planned_location(win.paths[n], win.case.trains[n], tau, names)
            if where != snap.station:
                return f"{tr.name} at {snap.station or 'transit'}, plan: {where or 'transit'}"
            for label, pv, sv in (("c_mw", win.plan.ct_mw[n, tau], snap.c_mw),
                                  ("e_mwh", win.plan.et_mwh[n, tau], snap.e_mwh)):
                if abs(pv - sv) > tol:
                    return f"{tr.name} {label} {sv:.6f}, plan {pv:.6f}"
        for i, st in enumerate(state.stations):
            for label, pv, sv in (("c_mw", win.plan.cs_mw[i, tau], st.c_mw),
                                  ("e_mwh", win.plan.es_mwh[i, tau], st.e_mwh)):
                if abs(pv - sv) > tol:
                    return f"{st.name} {label} {sv:.6f}, plan {pv:.6f}"
        return None

    def _replan(self, state: State, reason: str) -> None:
        case, h, win = self.case, int(state.hour), self._win
        entry: dict = {"hour": h, "reason": reason}
        try:
            sub, kept = rolling_case(case, state)
            prev_paths = None
            if set(kept) <= set(win.kept):  # the followed plan's remaining routes, if usable
                pos = {k: n for n, k in enumerate(win.kept)}
                tails = tail_paths([win.paths[pos[k]] for k in kept], h - win.offset)
                if not check_paths(sub, tails, np.zeros((len(kept), len(sub.stations), sub.T))
                                   + 1.0):
                    prev_paths = tails
            plan, paths, info = self._make_plan(sub, (win, prev_paths, h))
            entry.update({k: v for k, v in info.items() if not isinstance(v, (list, dict))})
            problems = [] if plan is None or not plan.has_solution else check_paths(
                sub, paths if paths is not None else [[] for _ in kept], plan.w)
            if plan is None or not plan.has_solution or problems:
                entry["kept_previous_plan"] = True
                entry["problem"] = "; ".join(problems) or "no solution"
                if plan is None or plan.outcome.status == "infeasible":
                    entry["diagnosis"] = self._diagnose(sub, h)["diagnosis"]
            else:
                paths = paths if paths is not None else [[] for _ in kept]
                self._win = _Window(h, sub, plan, paths, kept)
                self._stitch(state, self._win)
                entry["kept_previous_plan"] = False
        except Exception as exc:  # noqa: BLE001 - a failed window keeps the followed plan
            entry.update(kept_previous_plan=True, problem=f"{type(exc).__name__}: {exc}")
        self.plan_info["replans"].append(entry)

    def _stitch(self, state: State, win: _Window) -> None:
        """``self.plan`` / ``self.paths``: the hours before ``win.offset`` as followed, the rest
        from the new window (trains left out stay in transit with their simulated state)."""
        h, old, new = win.offset, self.plan, win.plan
        arr = {}
        for f in ("p_mw", "u", "wind_mw", "pch_mw", "pdis_mw", "fch_mw", "fdis_mw"):
            a = np.array(getattr(old, f), dtype=float)
            a[:, h:] = getattr(new, f)
            arr[f] = a
        for f in ("cs_mw", "es_mwh", "fe_mwh"):
            a = np.array(getattr(old, f), dtype=float)
            a[:, h:] = getattr(new, f)
            arr[f] = a
        ct, et = np.array(old.ct_mw, dtype=float), np.array(old.et_mwh, dtype=float)
        w = np.array(old.w, dtype=float)
        w[:, :, h:] = 0.0
        for k, tr in enumerate(self.case.trains):
            snap = state.vehicle(tr.name)
            ct[k, h:], et[k, h:] = snap.c_mw, snap.e_mwh
        for n, k in enumerate(win.kept):
            ct[k, h:], et[k, h:] = new.ct_mw[n], new.et_mwh[n]
            w[k, :, h:] = new.w[n]
        op, quad = operating_cost(self.case, arr["p_mw"], arr["u"],
                                  getattr(self, "pwl_segments", 8))
        paths = [[a for a in p if a[1] < h] for p in self.paths]
        for n, k in enumerate(win.kept):
            paths[k] += [(i, t0 + h, j, t1 + h) for i, t0, j, t1 in win.paths[n]]
        transport = sum(arc_cost(self.case, a) for p in paths for a in p)
        self.plan = replace(old, ct_mw=ct, et_mwh=et, w=w, operating_cost=op,
                            operating_cost_quadratic=quad, transport_cost=float(transport),
                            **arr)
        self.paths = paths

    # ------------------------------------------------------------------ decisions
    def decide(self, state: State) -> Decision:
        case = self.case
        if case is None or self._win is None:
            raise PolicyError(f"{self.name}: decide() before a successful reset()")
        t = int(state.hour)
        if not 0 <= t < case.T or state.time_min != t * state.step_min:
            raise PolicyError(f"{self.name}: no plan for time_min {state.time_min}")
        if t > 0:
            reason = None
            if self.replan_every_h and t % self.replan_every_h == 0:
                reason = f"every {self.replan_every_h} h"
            if self.replan_on_deviation:
                dev = self.deviation(state)
                if dev:
                    reason = f"deviation: {dev}"
            if reason:
                self._replan(state, reason)
        win = self._win
        plan, tau = win.plan, t - win.offset
        names = [s.name for s in case.stations]
        moves, exchanges = [], []
        for n, (k, path) in enumerate(zip(win.kept, win.paths)):
            tr = case.trains[k]
            for i, t0, j, _ in path:
                if t0 != tau:
                    continue
                if i != j:
                    moves.append(Command(tr.name, dest=names[j], path=(names[i], names[j])))
                else:
                    if self.exchange_mode == "track":
                        snap = state.vehicle(tr.name)
                        dc = plan.ct_mw[n, tau + 1] - snap.c_mw
                        de = plan.et_mwh[n, tau + 1] - snap.e_mwh
                    else:
                        dc = plan.ct_mw[n, tau + 1] - plan.ct_mw[n, tau]
                        de = plan.et_mwh[n, tau + 1] - plan.et_mwh[n, tau]
                    if abs(dc) > EXCHANGE_EPS or abs(de) > EXCHANGE_EPS:
                        exchanges.append(Command(tr.name, station=names[i], dc_mw=float(dc),
                                                 de_mwh=float(de)))
        on = plan.u[:, tau] > 0.5
        return Decision(
            commands=tuple(moves + exchanges),
            setpoints=Setpoints(
                unit_p_mw=np.where(on, np.maximum(plan.p_mw[:, tau], 0.0), 0.0),
                unit_on=tuple(on), wind_mw=np.maximum(plan.wind_mw[:, tau], 0.0),
                station_pch_mw=np.maximum(plan.pch_mw[:, tau], 0.0),
                station_pdis_mw=np.maximum(plan.pdis_mw[:, tau], 0.0)),
            note=f"{self.name} plan of hour {win.offset}, hour {t}")


#: Variable-name prefixes of the TSN/UC model (policies/tsn_milp.py): (entity kind, label).
TSN_FAMILIES = {
    "u": ("unit", "unit commitment (u)"), "y": ("unit", "unit start-up (y)"),
    "z": ("unit", "unit shut-down (z)"), "p": ("unit", "unit output (p)"),
    "c": ("unit", "unit cost (c)"), "pw": ("wind", "wind output (pw)"),
    "cs": ("station", "station capacity (cs)"), "es": ("station", "station energy (es)"),
    "pch": ("station", "station charging (pch)"),
    "pdis": ("station", "station discharging (pdis)"),
    "uch": ("station", "station charge mode (uch)"),
    "udis": ("station", "station discharge mode (udis)"),
    "ct": ("train", "train capacity (ct)"), "et": ("train", "train energy (et)"),
    "dcp": ("exchange", "capacity to train (dcp)"),
    "dcm": ("exchange", "capacity to station (dcm)"),
    "dep": ("exchange", "energy to train (dep)"), "dem": ("exchange", "energy to station (dem)"),
    "x": ("arc", "train route (x)"), "ac0": ("arc", "train capacity on arc (ac0)"),
    "ac1": ("arc", "train capacity on arc (ac1)"), "ae0": ("arc", "train energy on arc (ae0)"),
    "ae1": ("arc", "train energy on arc (ae1)"),
    "fch": ("fixed", "storage charging (fch)"), "fdis": ("fixed", "storage discharging (fdis)"),
    "fe": ("fixed", "storage energy (fe)"),
}


def describe_tsn(case: TransmissionCase, hour0: int = 0):
    """Variable name -> (family, entity, hour of the day) for :func:`diagnose_infeasible`.
    ``hour0`` is the day's hour of the model's t = 0 (a re-plan's window)."""
    names = {"unit": [g.name for g in case.units], "wind": [w.name for w in case.wind],
             "station": [s.name for s in case.stations], "train": [t.name for t in case.trains],
             "fixed": [s.name for s in case.fixed_storage]}

    def describe(name: str) -> tuple[str, str, int | None]:
        parts = name.split("_")
        fam = parts[0]
        idx = [int(p) for p in parts[1:] if p.isdigit()]
        if fam not in TSN_FAMILIES or len(idx) < 2:
            return fam, "", None
        kind, label = TSN_FAMILIES[fam]
        try:
            if kind == "exchange":  # k, i, t
                entity = f"{names['train'][idx[0]]} at {names['station'][idx[1]]}"
                step = idx[2]
            elif kind == "arc":  # k, i, t0, j, t1
                entity = (f"{names['train'][idx[0]]} {names['station'][idx[1]]}->"
                          f"{names['station'][idx[3]]}")
                step = idx[2]
            else:
                entity, step = names[kind][idx[0]], idx[1]
        except (IndexError, KeyError):
            return label, "", None
        return label, entity, hour0 + step

    return describe


def park_plan(case: TransmissionCase, opt: TsnOptions) -> tuple[TsnPlan, list[list[Arc]]]:
    """The safe plan: trains parked where they are (or arrive), stations idle at their current
    capacity and energy, and the units' economic dispatch (UC with line limits) of the load
    less wind. Its outcome is that of the dispatch solve."""
    sub = replace(case, name=f"{case.name}-park", stations=(), trains=(), fixed_storage=())
    ed, _ = solve_case(sub, opt, kind="central")
    T = case.T
    I, K, J = len(case.stations), len(case.trains), len(case.fixed_storage)  # noqa: E741
    w = np.zeros((K, I, T))
    paths = []
    for k, tr in enumerate(case.trains):
        i = case.station_pos(tr.start)
        w[k, i, tr.ready_h:] = 1.0
        paths.append([(i, t, i, t + 1) for t in range(tr.ready_h, T)])

    def hold(vals):
        return np.repeat(np.asarray(vals, dtype=float).reshape(-1, 1), T + 1, axis=1)

    plan = replace(
        ed, case_name=case.name, pch_mw=np.zeros((I, T)), pdis_mw=np.zeros((I, T)),
        cs_mw=hold([s.c0_mw for s in case.stations]),
        es_mwh=hold([s.e0_mwh for s in case.stations]),
        ct_mw=hold([t.c0_mw for t in case.trains]), et_mwh=hold([t.e0_mwh for t in case.trains]),
        w=w, fch_mw=np.zeros((J, T)), fdis_mw=np.zeros((J, T)),
        fe_mwh=hold([s.e0_mwh for s in case.fixed_storage]), transport_cost=0.0)
    return plan, paths


def _planned_location(path: list[Arc], train, tau: int, names: list[str]) -> str | None:
    """Where a planned path has the train at time point ``tau``: a station name, or None in
    transit (before ``ready_h`` the train is still travelling to its start)."""
    for i, t0, j, t1 in path:
        if t0 <= tau < t1:
            return names[i] if t0 == tau or i == j else None
    if tau < train.ready_h:
        return None
    return train.end if path and tau >= path[-1][3] else train.start


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


_ROLLING = ("exchange_mode", "keep_plan", "replan_every_h", "replan_on_deviation",
            "deviation_tol", "fallback")


class UcMilpPolicy(_PlanReplayPolicy):
    """The centralised UC/TSN MILP (B.4-B.9) planned at reset and replayed hour by hour; with
    ``replan_every_h`` / ``replan_on_deviation`` planned again from the simulated state, each
    re-plan warm-started (MIP start) with the remaining part of the plan being followed."""

    name = "uc-milp"

    def __init__(self, solver: str = "highs", time_limit_s: float = 600.0,
                 mip_gap: float = 1e-4, pwl_segments: int = 8, mode_binaries: bool = True,
                 line_limits: bool = True, threads: int | None = None,
                 exchange_mode: str = "track", keep_plan: bool = False,
                 replan_every_h: int = 0, replan_on_deviation: bool = False,
                 deviation_tol: float = 1e-4, fallback: str = "park") -> None:
        super().__init__(exchange_mode, keep_plan, replan_every_h, replan_on_deviation,
                         deviation_tol, fallback)
        self.pwl_segments = int(pwl_segments)
        self.options = TsnOptions(solver=solver, time_limit_s=time_limit_s, mip_gap=mip_gap,
                                  pwl_segments=pwl_segments, mode_binaries=mode_binaries,
                                  line_limits=line_limits, threads=threads)

    def params(self) -> dict:
        o = self.options
        return {"solver": o.solver, "time_limit_s": o.time_limit_s, "mip_gap": o.mip_gap,
                "pwl_segments": o.pwl_segments, "mode_binaries": o.mode_binaries,
                "line_limits": o.line_limits, "threads": o.threads, **super().params()}

    def _make_plan(self, case, prev=None):
        warm = None
        if prev is not None and prev[1] is not None:
            win, tails, h = prev
            tau = h - win.offset
            if len(tails) == len(case.trains):
                warm = WarmStart(tails, win.plan.u[:, tau:], win.plan.pch_mw[:, tau:],
                                 win.plan.pdis_mw[:, tau:])
        plan, model = solve_case(case, self.options, kind="central", warm=warm)
        paths = paths_from_central_model(model, case) if plan.has_solution else None
        return plan, paths, _plan_info(plan, {"planner": "solve_case(central)",
                                              "warm_start": warm is not None})


class OcdPolicy(_PlanReplayPolicy):
    """The OCD coordinator (B.11-B.12) planned at reset; its incumbent is replayed. A re-plan
    (``replan_every_h`` / ``replan_on_deviation``) runs OCD on the rest of the day from the
    simulated state, with the followed plan's remaining routes as its first upper bound."""

    name = "ocd"

    def __init__(self, variant: str = "enhanced", max_iter: int = 50, eps: float = 1e-3,
                 rho0: float = 1.0, mobility: str = "pairwise",
                 request_candidates: bool = False, polish: bool = False,
                 power_time_limit_s: float = 120.0, power_mip_gap: float = 1e-4,
                 exchange_mode: str = "track", keep_plan: bool = False,
                 replan_every_h: int = 0, replan_on_deviation: bool = False,
                 deviation_tol: float = 1e-4, fallback: str = "park") -> None:
        super().__init__(exchange_mode, keep_plan, replan_every_h, replan_on_deviation,
                         deviation_tol, fallback)
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

    def _make_plan(self, case, prev=None):
        initial = prev[1] if prev is not None else None
        try:
            res = run_ocd(case, self.options, initial_routes=initial)
        except RuntimeError as exc:  # the power layer found no bound (e.g. infeasible)
            self.result = None
            return None, None, {"planner": "run_ocd", "ocd_error": str(exc)}
        self.result = res
        extra = {"planner": "run_ocd", "ocd_ub": res.ub, "ocd_lb": res.lb, "ocd_gap": res.gap,
                 "ocd_iterations": res.iterations, "ocd_stop": res.stop_reason,
                 "ocd_total_s": res.total_s}
        return res.plan, res.routes, _plan_info(res.plan, extra)


class ParkPolicy(_PlanReplayPolicy):
    """No trains (the "before" case on a transmission grid): every train stays at its station,
    the stations neither charge, discharge nor exchange, and the units follow an economic
    dispatch with unit commitment and line limits (:func:`park_plan`, the planners' safe
    fallback), replayed hour by hour."""

    name = "idle"

    def __init__(self, solver: str = "highs", time_limit_s: float = 600.0,
                 mip_gap: float = 1e-4, pwl_segments: int = 8, line_limits: bool = True,
                 threads: int | None = None) -> None:
        super().__init__(fallback="none")
        self.options = TsnOptions(solver=solver, time_limit_s=time_limit_s, mip_gap=mip_gap,
                                  pwl_segments=pwl_segments, line_limits=line_limits,
                                  threads=threads)

    def params(self) -> dict:
        o = self.options
        return {"solver": o.solver, "time_limit_s": o.time_limit_s, "mip_gap": o.mip_gap,
                "pwl_segments": o.pwl_segments, "line_limits": o.line_limits,
                "threads": o.threads}

    def _make_plan(self, case, prev=None):
        if prev is not None:
            raise PolicyError("idle: the park plan is not re-planned")
        plan, paths = park_plan(case, self.options)
        return plan, paths, _plan_info(plan, {"planner": "park (economic dispatch, trains "
                                                         "parked, stations idle)"})


class _PriceRoutedPolicy(_PlanReplayPolicy):
    """Trains routed against the grid's hourly prices without them, then the power MILP with
    the routes fixed (:mod:`policies.train_dp`); replayed hour by hour like the planners above
    (re-planned from the simulated state with ``replan_every_h`` / ``replan_on_deviation``)."""

    def __init__(self, solver: str = "highs", time_limit_s: float = 600.0,
                 mip_gap: float = 1e-4, pwl_segments: int = 8, line_limits: bool = True,
                 threads: int | None = None, exchange_mode: str = "track",
                 replan_every_h: int = 0, replan_on_deviation: bool = False,
                 deviation_tol: float = 1e-4, fallback: str = "park") -> None:
        super().__init__(exchange_mode, False, replan_every_h, replan_on_deviation,
                         deviation_tol, fallback)
        self.pwl_segments = int(pwl_segments)
        self.options = TsnOptions(solver=solver, time_limit_s=time_limit_s, mip_gap=mip_gap,
                                  pwl_segments=pwl_segments, line_limits=line_limits,
                                  threads=threads)
        self.prices: GridPrices | None = None

    def params(self) -> dict:
        o = self.options
        p = super().params()
        del p["keep_plan"]
        return {"solver": o.solver, "time_limit_s": o.time_limit_s, "mip_gap": o.mip_gap,
                "pwl_segments": o.pwl_segments, "line_limits": o.line_limits,
                "threads": o.threads, **p}

    def _routes(self, case: TransmissionCase, prices: GridPrices) -> tuple[list, dict]:
        raise NotImplementedError

    def _make_plan(self, case, prev=None):
        t0 = time.perf_counter()
        prices = grid_prices(case, self.options)
        self.prices = prices
        paths, extra = self._routes(case, prices)
        route_s = time.perf_counter() - t0
        plan = dispatch_routes(case, paths, self.options)
        info = {"planner": self.planner, "price_uc_status": prices.uc_status,
                "price_slack_hours": prices.slack_hours, "price_s": prices.solve_s,
                "route_s": route_s, "station_lmp_mean": float(np.mean(prices.station_lmp))
                if prices.station_lmp.size else float("nan"), **extra}
        return plan, (paths if plan.has_solution else None), _plan_info(plan, info)


class TrainDpPolicy(_PriceRoutedPolicy):
    """``dp`` on a transmission grid: each train routed by the transport DP over (station,
    hour, stored energy) against the hourly LMPs of the grid without the trains
    (:func:`policies.train_dp.route_train_dp`, ``n_levels`` energy levels), then the units,
    stations and exchanges dispatched by the power MILP with the routes fixed."""

    name = "dp"
    planner = "train DP on LMPs + power MILP with routes fixed"

    def __init__(self, n_levels: int = 20, solver: str = "highs", time_limit_s: float = 600.0,
                 mip_gap: float = 1e-4, pwl_segments: int = 8, line_limits: bool = True,
                 threads: int | None = None, exchange_mode: str = "track",
                 replan_every_h: int = 0, replan_on_deviation: bool = False,
                 deviation_tol: float = 1e-4, fallback: str = "park") -> None:
        if int(n_levels) != n_levels or n_levels < 1:
            raise ValueError(f"n_levels: must be a whole number >= 1, got {n_levels!r}")
        super().__init__(solver, time_limit_s, mip_gap, pwl_segments, line_limits, threads,
                         exchange_mode, replan_every_h, replan_on_deviation, deviation_tol,
                         fallback)
        self.n_levels = int(n_levels)

    def params(self) -> dict:
        return {"n_levels": self.n_levels, **super().params()}

    def _routes(self, case, prices):
        out, values = [], []
        for k in range(len(case.trains)):
            path, value, _ = route_train_dp(case, k, prices.station_lmp, self.n_levels)
            out.append(path)
            values.append(value)
        return out, {"dp_values_usd": values}


class GreedyTrainPolicy(_PriceRoutedPolicy):
    """``greedy`` on a transmission grid: each train charges at the cheapest reachable
    station-hour and discharges at the dearest one after it, if the price spread beats the
    extra transport cost, else stays parked (:func:`policies.train_dp.route_train_greedy`);
    then the power MILP with the routes fixed."""

    name = "greedy"
    planner = "greedy train rule on LMPs + power MILP with routes fixed"

    def _routes(self, case, prices):
        out, pairs = [], []
        for k in range(len(case.trains)):
            path, info = route_train_greedy(case, k, prices.station_lmp)
            out.append(path)
            pairs.append(info["pair"])
        return out, {"greedy_pairs": pairs}


class FixedPlanPolicy(_PlanReplayPolicy):
    """A plan made elsewhere (e.g. by a study), replayed hour by hour: the co-simulation then
    checks it with trains on the rail graph and a DC + AC power flow every hour."""

    name = "fixed-plan"

    def __init__(self, plan: TsnPlan, paths: list[list[Arc]], exchange_mode: str = "track",
                 info: dict | None = None) -> None:
        super().__init__(exchange_mode)
        self._given = (plan, [list(p) for p in paths], _plan_info(plan, dict(info or {})))

    def params(self) -> dict:
        return {"plan": self._given[0].case_name, **super().params()}

    def _make_plan(self, case, prev=None):
        if prev is not None:
            raise PolicyError("fixed-plan: cannot re-plan")
        plan, paths, info = self._given
        if plan.case_name != case.name or plan.p_mw.shape[1] != case.T:
            raise PolicyError(f"fixed-plan: the plan is for {plan.case_name!r} "
                              f"({plan.p_mw.shape[1]} h), not {case.name!r} ({case.T} h)")
        return plan, paths, info
