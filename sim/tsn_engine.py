"""SimPy engine of the transmission co-simulation (seed 001): one clock in integer minutes.

Every hour ``h`` at ``time_min = 60 h`` (after every train arrival due at that minute, thanks to
the low-priority controller event):

1. snapshot trains, stations and units into a frozen :class:`~sim.types.State` and record it
   (the state at the start of hour ``h`` = the plan's time point ``h``; with each train's
   battery state of health ``soh_frac``, read from the train at that minute);
2. ask the policy for a :class:`~sim.types.Decision`: train commands (a ``path`` to depart
   along, or an exchange with the ``station``) and the grid's :class:`~sim.types.Setpoints`
   (a failing policy is recorded and the hour is skipped: no moves, no exchanges, no storage
   power, no power flow);
3. apply it: trains depart (SimPy processes taking the rail edges' ``travel_min``; a train in
   transit cannot exchange), parked trains exchange capacity and energy with their station,
   stations charge / discharge for the hour (clipped to their limits, clipping recorded);
4. push units, wind and the stations' net power into the grid site and run its DC and AC power
   flows (non-convergence is a recorded status, the run goes on);
5. record, and wait 60 min.

After the last hour the final state (time point ``T``) is recorded. The engine never imports
agents, grids or policies, and never steps a mesa model.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np
import simpy

from sim.engine import _Late  # the controller wakes after the arrivals of the same minute
from sim.errors import RunFailure
from sim.recorder import Recorder
from sim.tsn import TransmissionCase
from sim.tsn_sim_types import TsnGridLike, TsnTrainLike
from sim.types import Command, Decision, Problem, State, UnitState
from sim.units import MIN_PER_H, hours


@dataclass
class TsnTimings:
    policy_reset_s: float = 0.0
    policy_s: float = 0.0
    grid_s: float = 0.0
    total_s: float = 0.0


class TsnEngine:
    """Runs one transmission co-simulation of ``case.T`` hours."""

    def __init__(self, case: TransmissionCase, trains: Sequence[TsnTrainLike], grid: TsnGridLike,
                 policy, rng: np.random.Generator,
                 recorder: Recorder | None = None, step_min: int = MIN_PER_H) -> None:
        if step_min != MIN_PER_H or case.dt_h != 1.0:
            raise ValueError("the seed-001 plans are hourly: step_min must be 60 and dt_h 1")
        self.case = case
        self.trains = list(trains)
        self.grid = grid
        self.stations = list(grid.stations)
        self.policy = policy
        self.rng = rng
        self.recorder = recorder if recorder is not None else Recorder()
        self.step_min = step_min
        self.timings = TsnTimings()
        self._train = {t.name: t for t in self.trains}
        self._station = {s.name: s for s in self.stations}
        self.env = simpy.Environment()
        self.reset_ok = False
        # units as they ran in the previous hour (the case's initial condition before hour 0)
        self._units = [UnitState(g.name, bool(g.u0), float(g.p0_mw), g.hours_in_state0_h)
                       for g in case.units]

    # ------------------------------------------------------------------ public
    def run(self) -> Recorder:
        t0 = time.perf_counter()
        try:
            self.policy.reset(Problem.for_transmission(self.case, self.step_min), self.rng)
            self.reset_ok = True
        except Exception as exc:  # a planning failure is recorded; the hours are then skipped
            self._fail(0, "policy", self.policy.name, "reset_failed",
                       f"{type(exc).__name__}: {exc}")
        self.timings.policy_reset_s = time.perf_counter() - t0
        self.env.process(self._controller())
        horizon = self.case.T * self.step_min
        self.env.run(until=horizon + 1)
        self.timings.total_s = time.perf_counter() - t0
        return self.recorder

    # ------------------------------------------------------------------ internals
    def _log(self, time_min: int, entity: str, event: str, node: str, detail: str = "") -> None:
        self.recorder.event(time_min, entity, event, node, detail)

    def _fail(self, time_min: int, kind: str, entity: str, status: str, message: str) -> None:
        self.recorder.failure(RunFailure(int(time_min), kind, entity, status, message))

    def state(self, now: int) -> State:
        return State(time_min=now, step=now // self.step_min, step_min=self.step_min,
                     vehicles=tuple(t.snapshot() for t in self.trains),
                     stations=tuple(s.snapshot() for s in self.stations),
                     units=tuple(self._units))

    def _advance_units(self, decision: Decision | None) -> None:
        """The units' state after an hour: a skipped hour (no decision) keeps them as they
        were; otherwise they ran as decided."""
        out = []
        for gi, u in enumerate(self._units):
            sp = None if decision is None else decision.setpoints
            on = u.on if sp is None else bool(sp.unit_on[gi])
            p = u.p_mw if sp is None else float(sp.unit_p_mw[gi]) * on
            h = u.hours_in_state_h
            h = (h + 1 if h is not None else None) if on == u.on else 1
            out.append(UnitState(u.name, on, p, h))
        self._units = out

    def _soh_frac(self, name: str, now: int) -> float:
        """A train's battery state of health at ``now``, from its ``soh_frac_at(now_min)`` (the
        train agents of ``agents.train``); NaN for a train object without a battery model."""
        read = getattr(self._train[name], "soh_frac_at", None)
        return float(read(now)) if read is not None else float("nan")

    def _record_state(self, state: State) -> None:
        for tr in state.vehicles:
            self.recorder.row("train_states", time_min=state.time_min, train=tr.name,
                              station=tr.station or "", status="parked" if tr.station else
                              "transit", dest=tr.dest or "", c_mw=tr.c_mw, e_mwh=tr.e_mwh,
                              soh_frac=self._soh_frac(tr.name, state.time_min))
        for st in state.stations:
            self.recorder.row("station_states", time_min=state.time_min, station=st.name,
                              bus=st.bus, c_mw=st.c_mw, e_mwh=st.e_mwh)

    def _decide(self, state: State) -> Decision | None:
        t = time.perf_counter()
        decision = None
        try:
            decision = self.policy.decide(state)
            problem = self._decision_problem(decision)
            if problem:
                self._fail(state.time_min, "policy", self.policy.name, "bad_decision", problem)
                decision = None
        except Exception as exc:  # a policy bug must not kill the run
            self._fail(state.time_min, "policy", self.policy.name, "error",
                       f"{type(exc).__name__}: {exc}")
        self.timings.policy_s += time.perf_counter() - t
        return decision

    def _decision_problem(self, d) -> str | None:
        if not isinstance(d, Decision):
            return f"decide() returned {type(d).__name__}, not Decision"
        if d.setpoints is None:
            return ("no set-points: the transmission grid's units, wind and stations are "
                    "dispatched by the policy (Decision.setpoints)")
        c, sp = self.case, d.setpoints
        for name, arr, n in (("unit_p_mw", sp.unit_p_mw, len(c.units)),
                             ("unit_on", sp.unit_on, len(c.units)),
                             ("wind_mw", sp.wind_mw, len(c.wind)),
                             ("station_pch_mw", sp.station_pch_mw, len(self.stations)),
                             ("station_pdis_mw", sp.station_pdis_mw, len(self.stations))):
            if len(arr) != n:
                return f"{name}: expected {n} values, got {len(arr)}"
        return None

    def _controller(self):
        dt_h = hours(self.step_min)
        for hour in range(self.case.T):
            now = int(self.env.now)
            state = self.state(now)
            self._record_state(state)
            decision = self._decide(state) if self.reset_ok else None
            if decision is None:
                self.recorder.row("grid", time_min=now, hour=hour, status="no_decision",
                                  converged_dc=False, converged_ac=False)
                self._advance_units(None)
                yield _Late(self.env, self.step_min)
                continue
            moves = [c for c in decision.commands if c.station is None and
                     (c.path is not None or c.dest is not None)]
            exchanges = [c for c in decision.commands if c.station is not None]
            sp = decision.setpoints
            self.recorder.row("decisions", time_min=now, note=decision.note,
                              moves=len(moves), exchanges=len(exchanges))
            # trains: departures first (a train that leaves at the start of the hour is in
            # transit during it), then exchanges of the parked trains
            for m in moves:
                tr = self._train.get(m.vehicle)
                if tr is None:
                    self._fail(now, "policy", self.policy.name, "unknown_train",
                               f"move for unknown train {m.vehicle!r} ignored")
                    continue
                path = tuple(m.path) if m.path is not None else self._path(tr, m.dest)
                problem = tr.depart(self.env, path, now, self._log)
                if problem:
                    self._fail(now, "train", m.vehicle, "trip_refused", problem)
            self._exchanges(now, exchanges)
            for tr in self.trains:  # where each train spends this hour
                snap = tr.snapshot()
                self.recorder.row("train_hours", time_min=now, hour=hour, train=tr.name,
                                  station=snap.station or "",
                                  status="parked" if snap.station else "transit",
                                  dest=snap.dest or "")
            # stations: one hour of charging / discharging
            p_by_bus: dict[int, float] = {}
            for i, st in enumerate(self.stations):
                res = st.run_hour(float(sp.station_pch_mw[i]), float(sp.station_pdis_mw[i]),
                                  dt_h)
                if res.problem:
                    self._fail(now, "station", st.name, "power_clipped", res.problem)
                p_by_bus[st.bus] = p_by_bus.get(st.bus, 0.0) + res.pch_mw - res.pdis_mw
                self.recorder.row("station_power", time_min=now, station=st.name, bus=st.bus,
                                  pch_mw=res.pch_mw, pdis_mw=res.pdis_mw,
                                  pch_requested_mw=res.pch_requested_mw,
                                  pdis_requested_mw=res.pdis_requested_mw,
                                  e_start_mwh=res.e_start_mwh, e_end_mwh=res.e_end_mwh,
                                  loss_mwh=res.loss_mwh, clipped=res.problem is not None)
            # grid: DC and AC power flow of the hour
            t0 = time.perf_counter()
            g = self.grid.step(hour, sp.unit_p_mw, sp.unit_on, sp.wind_mw, p_by_bus)
            self.timings.grid_s += time.perf_counter() - t0
            self._record_grid(now, hour, decision, g, p_by_bus)
            for gi, unit in enumerate(self.case.units):
                self.recorder.row("units", time_min=now, hour=hour, unit=unit.name,
                                  on=bool(sp.unit_on[gi]),
                                  p_mw=float(sp.unit_p_mw[gi]) * bool(sp.unit_on[gi]))
            self._advance_units(decision)
            yield _Late(self.env, self.step_min)
        self._record_state(self.state(int(self.env.now)))

    def _path(self, train, dest) -> tuple:
        """The shortest rail path from where ``train`` stands to ``dest`` (a move given by its
        destination only)."""
        try:
            return tuple(nx.shortest_path(train.graph.graph, train.station, dest,
                                          weight="travel_min"))
        except (nx.NetworkXException, KeyError):
            return (train.station, dest)  # refused by the train with the reason

    def _exchanges(self, now: int, exchanges: list[Command]) -> None:
        """Apply the hour's exchanges station by station. The exchanges of all trains at one
        station in one hour happen together (as in the plan, where only their sum enters the
        station's balance): each train's own limits are checked, then the station's limits on
        the sum; a group that fails any check is refused as a whole and recorded."""
        groups: dict[str, list] = {}
        seen: set[str] = set()
        for x in exchanges:
            if x.vehicle not in self._train or x.station not in self._station:
                self._fail(now, "policy", self.policy.name, "unknown_entity",
                           f"exchange {x.vehicle!r}<->{x.station!r} ignored")
                continue
            if x.vehicle in seen:
                self._fail(now, "policy", self.policy.name, "duplicate_exchange",
                           f"second exchange of {x.vehicle!r} in one hour ignored")
                continue
            seen.add(x.vehicle)
            groups.setdefault(x.station, []).append(x)
        for name, xs in groups.items():
            st = self._station[name]
            problems = []
            for x in xs:
                p = self._train[x.vehicle].own_exchange_problem(float(x.dc_mw),
                                                                float(x.de_mwh), name)
                if p:
                    problems.append(f"{x.vehicle}: {p}")
            dc = float(sum(x.dc_mw for x in xs))
            de = float(sum(x.de_mwh for x in xs))
            if not problems:
                p = st.exchange_problem(dc, de)
                if p:
                    problems.append(f"{'+'.join(x.vehicle for x in xs)} together: {p}")
            if problems:
                msg = "; ".join(problems)
                for x in xs:
                    self._log(now, x.vehicle, "exchange_refused", name, msg)
                    self._fail(now, "train", x.vehicle, "exchange_refused", msg)
                continue
            st.apply_exchange(dc, de)
            for x in xs:
                self._train[x.vehicle].apply_own_exchange(float(x.dc_mw), float(x.de_mwh),
                                                          name, now, self._log)

    def _record_grid(self, now: int, hour: int, d: Decision, g, p_by_bus) -> None:
        names = self.case.line_names

        def _max(a):
            a = np.asarray(a, float)
            return float(np.nanmax(a)) if a.size and np.isfinite(a).any() else float("nan")

        self.recorder.row(
            "grid", time_min=now, hour=hour, status=g.status, converged_dc=g.converged_dc,
            converged_ac=g.converged_ac, max_dc_loading_pct=_max(g.dc_loading_pct),
            max_ac_loading_pct=_max(g.ac_loading_pct), n_overloaded_dc=len(g.overloaded_dc),
            n_overloaded_ac=len(g.overloaded_ac), overloaded_dc=";".join(g.overloaded_dc),
            overloaded_ac=";".join(g.overloaded_ac), vm_min_pu=g.vm_min_pu,
            vm_max_pu=g.vm_max_pu, n_voltage_violations=len(g.voltage_violations),
            voltage_violation_buses=";".join(str(b) for b in g.voltage_violations),
            ac_losses_mw=g.ac_losses_mw, slack_p_dc_mw=g.slack_p_dc_mw,
            slack_p_ac_mw=g.slack_p_ac_mw, dc_imbalance_mw=g.dc_imbalance_mw,
            units_p_mw=float(np.sum(d.setpoints.unit_p_mw)),
            units_on=int(sum(d.setpoints.unit_on)), wind_mw=float(np.sum(d.setpoints.wind_mw)),
            storage_net_mw=float(sum(p_by_bus.values())),
            load_mw=float(self.case.total_load_mw[hour]), message=g.message)
        if g.status != "ok":
            self._fail(now, "power_flow", "grid", g.status, g.message or g.status)
        for j, name in enumerate(names):
            self.recorder.row("branches", time_min=now, branch=name,
                              rating_mw=float(self.case.rating_mw[j]),
                              dc_flow_mw=float(g.dc_flow_mw[j]),
                              dc_loading_pct=float(g.dc_loading_pct[j]),
                              ac_loading_pct=float(g.ac_loading_pct[j]),
                              ac_p_loading_pct=float(g.ac_p_loading_pct[j]))
        for b, v in zip(self.case.bus_ids, g.vm_pu):
            self.recorder.row("buses", time_min=now, bus=int(b), vm_pu=float(v))
