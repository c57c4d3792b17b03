"""The systems the one engine (:mod:`sim.engine`) runs, one class per system.

* :class:`DnSites` - vehicles on a road graph between distribution-network sites, one step of
  ``problem.step_min`` at a time: everyone decides together, parked vehicles start trips or
  charge / discharge, each site dispatches its own resources and runs its power flow;
* :class:`TransmissionSystem` - trains on a rail graph and stations on a transmission grid,
  hourly (seed 001): trains depart or exchange with their station, stations charge /
  discharge, the policy's set-points dispatch units and wind, DC and AC power flow;
* :class:`TruckMissions` - Co-OPT trucks on swap missions (seed 002): each truck decides when
  its previous action has finished, at a step boundary, and its action runs as SimPy processes.

They use the agents and the grids only through :mod:`sim.protocols` (structural typing) and
the problem types of :mod:`sim`, so they live in the ``sim`` layer.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import networkx as nx
import numpy as np
import simpy

from sim.coopt import (
    ACTION_NAMES,
    CHARGE,
    DISCHARGE,
    END,
    FRESH,
    MOVE,
    OLD,
    SERVE,
    WAIT,
    PlanStep,
    TruckDayProblem,
)
from sim.errors import PolicyError, RunFailure, ScenarioError
from sim.flexibility import vehicle_flex
from sim.protocols import ChargingGrid, GridSite, VehicleAgent
from sim.tsn import TransmissionCase
from sim.tsn_sim_types import TsnGridLike, TsnTrainLike
from sim.types import Command, Decision, Problem, State, UnitState, VehicleState
from sim.units import MIN_PER_H, hours


def _require_decision(decision: Any) -> None:
    if not isinstance(decision, Decision):
        raise PolicyError(f"decide() returned {type(decision).__name__}, not Decision")


class _Bound:
    """What every system gets from the engine at ``start``: clock, recorder, timings."""

    env: Any = None
    recorder: Any = None
    timings: Any = None
    policy_name = "policy"

    def start(self, env: Any, recorder: Any, timings: Any, policy_name: str) -> None:
        self.env, self.recorder, self.timings = env, recorder, timings
        self.policy_name = policy_name

    def _log(self, time_min: int, entity: str, event: str, node: str, detail: str = "") -> None:
        self.recorder.event(time_min, entity, event, node, detail)

    def _fail(self, time_min: int, kind: str, entity: str, status: str, message: str) -> None:
        self.recorder.failure(RunFailure(int(time_min), kind, entity, status, message))


# ============================================================================ DN sites
class DnSites(_Bound):
    """Vehicles (agents) and grid sites of a DN scenario; per step at time ``t``:

    1. snapshot the vehicles and sites into a frozen :class:`~sim.types.State`;
    2. the policy's :class:`~sim.types.Decision` (a failing policy is recorded and the step falls
       back to "everyone stays idle");
    3. apply it: parked vehicles either start a trip (a SimPy process that takes the edge travel
       times) or charge/discharge for the whole step; vehicles in transit only self-discharge;
    4. sum the vehicle powers per connection point, let every site dispatch its own resources
       and run its power flow;
    5. record vehicles, sites, buses, lines and failures.
    """

    def __init__(self, problem: Problem, vehicles: Sequence[VehicleAgent],
                 sites: Sequence[GridSite], record_arrays: bool = True) -> None:
        if problem.step_min < 1 or problem.horizon_min % problem.step_min:
            raise ValueError("horizon_min must be a positive multiple of step_min")
        self.problem = problem
        self.vehicles = list(vehicles)
        self.sites = list(sites)
        self.record_arrays = record_arrays
        self.start_min = 0
        self.step_min = problem.step_min
        self.n_steps = problem.n_steps
        self.end_min = problem.horizon_min
        self._site_by_node = {s.node: s for s in self.sites}
        if len(self._site_by_node) != len(self.sites):
            raise ValueError("two grid sites share one road node")
        self._names = {v.name for v in self.vehicles}
        self._observed = -1
        self._note = ""
        self._mess_p: dict[str, float] = {}

    def state(self, now: int, step: int) -> State:
        dt = self.problem.step_min
        return State(time_min=now, step=step, step_min=dt,
                     vehicles=tuple(v.snapshot(now, dt) for v in self.vehicles),
                     sites=tuple(s.observe(now) for s in self.sites))

    def observe(self, now: int, step: int) -> State | None:
        if self._observed == step:  # everyone decided together
            return None
        self._observed = step
        return self.state(now, step)

    def check(self, decision: Any) -> str | None:
        _require_decision(decision)
        return None

    def apply(self, decision: Decision | None, now: int, step: int, why: str) -> None:
        if decision is None:
            decision = Decision(note="fallback: policy failed, all idle")
        policy = self.policy_name
        dt = self.problem.step_min
        dt_h = hours(dt)
        for c in decision.commands:
            if c.vehicle not in self._names:
                self._fail(now, "policy", policy, "unknown_vehicle",
                           f"command for unknown vehicle {c.vehicle!r} ignored")

        mess_p = {s.node: 0.0 for s in self.sites}
        for v in self.vehicles:
            cmd = decision.command(v.name)
            p_req = float(cmd.p_mw)
            if not np.isfinite(p_req):
                self._fail(now, "policy", v.name, "invalid_power", f"p_mw={p_req!r} ignored")
                p_req = 0.0
            # a broken-down vehicle stays where it is, unplugged (agents/disruption.py)
            down = v.out_of_service(now) if v.parked else None
            moving = v.parked and cmd.dest is not None and cmd.dest != v.node
            if moving:
                problem = down or v.trip_problem(cmd.dest, dt)
                if problem is None:
                    path = v.depart(cmd.dest, now, self._log)
                    self.env.process(v.drive(self.env, path, self._log))
                else:
                    self._fail(now, "vehicle", v.name, "trip_refused", problem)
                if p_req != 0.0:
                    self._fail(now, "policy", v.name, "power_while_departing",
                               f"p_mw={p_req} ignored for a vehicle that departs")
                    p_req = 0.0
            elif not v.parked and p_req != 0.0:
                self._fail(now, "policy", v.name, "power_in_transit",
                           f"p_mw={p_req} ignored: in transit to {v.dest}")
                p_req = 0.0
            parked = v.parked
            node = v.node
            at_site = (parked and node in self._site_by_node and cmd.connected
                       and down is None)
            if down is not None and p_req != 0.0:
                self._fail(now, "vehicle", v.name, "broken_down",
                           f"p_mw={p_req} ignored: {down}")
                p_req = 0.0
            if not cmd.connected and p_req != 0.0:
                self._fail(now, "policy", v.name, "power_unplugged",
                           f"p_mw={p_req} ignored: the vehicle is not connected")
                p_req = 0.0
            if parked and not at_site and p_req != 0.0:
                self._fail(now, "policy", v.name, "no_connection",
                           f"p_mw={p_req} ignored: node {node!r} has no grid connection")
                p_req = 0.0
            res = v.apply_power(p_req, dt, now, self._log, connected=at_site)
            if res.clipped:
                self._fail(now, "vehicle", v.name, "power_clipped",
                           f"requested {res.p_requested_mw:.6g} MW, applied {res.p_mw:.6g} MW")
            if at_site:
                mess_p[node] += res.p_mw
            if not at_site and res.e_end_mwh < v.spec.battery.e_min_mwh - 1e-9:
                self._fail(now, "vehicle", v.name, "soc_below_window",
                           f"self-discharge took the energy to {res.e_end_mwh:.6f} MWh "
                           f"while not connected")
            b = v.spec.battery
            p_ch, p_dis = max(res.p_mw, 0.0), max(-res.p_mw, 0.0)
            up, dn = vehicle_flex(p_ch, p_dis, res.e_end_mwh, b.p_max_mw, b.e_min_mwh,
                                  b.e_max_mwh, b.eta_ch, b.eta_dis, dt_h, at_site)
            self.recorder.row(
                "vehicles", time_min=now, vehicle=v.name, node=node,
                site=self._site_by_node[node].name if at_site else "",
                status="parked" if parked else "transit", dest=v.dest or "",
                connected=at_site,
                p_requested_mw=res.p_requested_mw, p_mw=res.p_mw, e_start_mwh=res.e_start_mwh,
                e_end_mwh=res.e_end_mwh, soc_end_frac=res.e_end_mwh / b.capacity_mwh,
                loss_conversion_mwh=res.loss_conversion_mwh, loss_self_mwh=res.loss_self_mwh,
                throughput_mwh=res.throughput_mwh, bms_hold=res.bms_hold,
                flex_up_mw=float(up), flex_dn_mw=float(dn),
                soh_frac=v.battery.degradation.soh_frac())
        self._mess_p = mess_p
        self._note = decision.note

    def settle(self, now: int, step: int) -> None:
        dt = self.problem.step_min
        for site in self.sites:
            ts = time.perf_counter()
            r = site.step(now, dt, self._mess_p[site.node])
            self.timings.per_site_s[site.name] = (
                self.timings.per_site_s.get(site.name, 0.0) + time.perf_counter() - ts)
            self.recorder.row(
                "sites", time_min=now, site=r.site, converged=r.converged, status=r.status,
                load_mw=r.load_mw, pv_mw=r.pv_mw, mess_p_mw=r.mess_p_mw,
                residual_mw=r.residual_mw, slack_p_mw=r.slack_p_mw, losses_mw=r.losses_mw,
                vm_min_pu=r.vm_min_pu, vm_max_pu=r.vm_max_pu,
                max_line_loading_pct=r.max_line_loading_pct, flex_up_mw=r.flex_up_mw,
                flex_dn_mw=r.flex_dn_mw,
                **{f"dispatch_{k}_mw": val for k, val in r.dispatch_mw.items()})
            if not r.converged:
                self._fail(now, "power_flow", r.site, r.status, r.message)
            if self.record_arrays:
                idx = getattr(site, "bus_index", None)
                self.recorder.array("buses", now, r.site,
                                    np.arange(len(r.bus_vm_pu)) if idx is None else idx,
                                    r.bus_vm_pu)
                idx = getattr(site, "line_index", None)
                self.recorder.array("lines", now, r.site,
                                    np.arange(len(r.line_loading_pct)) if idx is None else idx,
                                    r.line_loading_pct)
        self.recorder.row("decisions", time_min=now, note=self._note)

    def close(self, end_min: int) -> None:
        for v in self.vehicles:
            v.close(end_min, self._log)


# ============================================================================ transmission
class TransmissionSystem(_Bound):
    """Trains, stations and the transmission grid site of seed 001, hourly. Every hour ``h``
    at ``time_min = 60 h`` (after every train arrival due at that minute):

    1. snapshot trains, stations and units into a frozen :class:`~sim.types.State` and record
       it (the state at the start of hour ``h`` = the plan's time point ``h``);
    2. the policy's :class:`~sim.types.Decision`: train commands (a ``path`` to depart along,
       or an exchange with the ``station``) and the grid's :class:`~sim.types.Setpoints` (a
       failing policy is recorded and the hour is skipped: no moves, no exchanges, no storage
       power, no power flow);
    3. apply it: trains depart (SimPy processes taking the rail edges' ``travel_min``; a train
       in transit cannot exchange), parked trains exchange capacity and energy with their
       station, stations charge / discharge for the hour (clipped to their limits, clipping
       recorded);
    4. push units, wind and the stations' net power into the grid site and run its DC and AC
       power flows (non-convergence is a recorded status, the run goes on);
    5. record.

    After the last hour the final state (time point ``T``) is recorded. Never steps a mesa model.
    """

    def __init__(self, case: TransmissionCase, trains: Sequence[TsnTrainLike],
                 grid: TsnGridLike, step_min: int = MIN_PER_H) -> None:
        if step_min != MIN_PER_H or case.dt_h != 1.0:
            raise ValueError("the seed-001 plans are hourly: step_min must be 60 and dt_h 1")
        self.case = case
        self.problem = Problem.for_transmission(case, step_min)
        self.trains = list(trains)
        self.grid = grid
        self.stations = list(grid.stations)
        self.start_min = 0
        self.step_min = step_min
        self.n_steps = case.T
        self.end_min = case.T * step_min
        self._train = {t.name: t for t in self.trains}
        self._station = {s.name: s for s in self.stations}
        # units as they ran in the previous hour (the case's initial condition before hour 0)
        self._units = [UnitState(g.name, bool(g.u0), float(g.p0_mw), g.hours_in_state0_h)
                       for g in case.units]
        self._observed = -1
        self._decision: Decision | None = None

    def state(self, now: int) -> State:
        return State(time_min=now, step=now // self.step_min, step_min=self.step_min,
                     vehicles=tuple(t.snapshot() for t in self.trains),
                     stations=tuple(s.snapshot() for s in self.stations),
                     units=tuple(self._units))

    def observe(self, now: int, step: int) -> State | None:
        if self._observed == step:  # everyone decided together
            return None
        self._observed = step
        state = self.state(now)
        self._record_state(state)
        return state

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

    def check(self, d: Any) -> str | None:
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

    def apply(self, decision: Decision | None, now: int, step: int, why: str) -> None:
        self._decision = decision
        if decision is None:  # the hour is skipped (settle records it)
            return
        hour = step
        moves = [c for c in decision.commands if c.station is None and
                 (c.path is not None or c.dest is not None)]
        exchanges = [c for c in decision.commands if c.station is not None]
        self.recorder.row("decisions", time_min=now, note=decision.note,
                          moves=len(moves), exchanges=len(exchanges))
        # trains: departures first (a train that leaves at the start of the hour is in
        # transit during it), then exchanges of the parked trains
        for m in moves:
            tr = self._train.get(m.vehicle)
            if tr is None:
                self._fail(now, "policy", self.policy_name, "unknown_train",
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

    def settle(self, now: int, step: int) -> None:
        hour = step
        decision = self._decision
        if decision is None:
            self.recorder.row("grid", time_min=now, hour=hour, status="no_decision",
                              converged_dc=False, converged_ac=False)
            self._advance_units(None)
            return
        sp = decision.setpoints
        dt_h = hours(self.step_min)
        # stations: one hour of charging / discharging
        p_by_bus: dict[int, float] = {}
        for i, st in enumerate(self.stations):
            res = st.run_hour(float(sp.station_pch_mw[i]), float(sp.station_pdis_mw[i]), dt_h)
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
        g = self.grid.step(hour, sp.unit_p_mw, sp.unit_on, sp.wind_mw, p_by_bus)
        self._record_grid(now, hour, decision, g, p_by_bus)
        for gi, unit in enumerate(self.case.units):
            self.recorder.row("units", time_min=now, hour=hour, unit=unit.name,
                              on=bool(sp.unit_on[gi]),
                              p_mw=float(sp.unit_p_mw[gi]) * bool(sp.unit_on[gi]))
        self._advance_units(decision)

    def close(self, end_min: int) -> None:
        self._record_state(self.state(end_min))

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
                self._fail(now, "policy", self.policy_name, "unknown_entity",
                           f"exchange {x.vehicle!r}<->{x.station!r} ignored")
                continue
            if x.vehicle in seen:
                self._fail(now, "policy", self.policy_name, "duplicate_exchange",
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


# ============================================================================ truck missions
@dataclass
class TruckRun:
    """One truck's simulated day."""

    truck: str
    steps: list[PlanStep] = field(default_factory=list)
    arrivals: list[tuple[int, int]] = field(default_factory=list)  # (node, minute) of drives
    trace: list[tuple[int, float, int, int]] = field(default_factory=list)  # min, soc, phase, node
    failures: list[str] = field(default_factory=list)
    ended: bool = False
    delay_min: int = 0
    queue_min: int = 0
    soc_low_frac: float = math.inf  # lowest SOC reached, on roads included
    damage: float = 0.0  # stepwise levelised damage (D_cal + D_cyc) of every MESS carried
    loss_frac: float = 0.0
    degradation_stepwise_usd: float = 0.0

    @property
    def ok(self) -> bool:
        return self.ended and not self.failures

    def total(self, attr: str) -> float:
        return float(sum(getattr(s, attr) for s in self.steps))

    @property
    def cost_usd(self) -> float:
        return float(sum(s.cost_usd for s in self.steps))

    @property
    def served_customer(self) -> int:
        return next((s.customer for s in self.steps if s.kind == "serve"), -1)


def _action(p: TruckDayProblem, c: Command) -> tuple[int, int]:
    """The ``(action code, arg)`` of a truck's command on its mission's grid (MODELS.md D.4);
    no command (or ``"wait"``) waits one step."""
    if c.action == "end":
        return END, -1
    if c.action in ("", "move") and c.dest is not None:
        return MOVE, int(c.dest)
    if c.action in ("charge", "discharge"):
        if c.soc_target_frac is None:
            raise ValueError(f"{c.action} without soc_target_frac")
        return (CHARGE if c.action == "charge" else DISCHARGE), p.bucket(c.soc_target_frac)
    if c.action == "swap":
        if c.site not in p.customers:
            raise ValueError(f"swap at {c.site!r}: not a customer site of the mission")
        return SERVE, p.customers.index(c.site)
    if c.action in ("", "wait"):
        return WAIT, -1
    raise ValueError(f"action {c.action!r} is not a mission action (move, charge, discharge, "
                     f"swap, wait, end)")


#: How the trucks pay for charging: ``hourly`` (the price function given, e.g. the hourly OPF
#: duals solved before the run) or ``grid_opf`` (each step's price is the dual of the grid's OPF
#: with the trucks' charging of that step in it: ``grid.step_prices``).
PRICE_MODES = ("hourly", "grid_opf")

# a CHARGE / DISCHARGE whose target is already reached re-asks the policy at the same minute;
# a policy that keeps doing so stops the truck after this many re-asks
MAX_REASKS = 100


class TruckMissions(_Bound):
    """The Co-OPT trucks of ``problems`` (seed 002, MODELS.md D.4) through one day.

    A truck decides when its previous action has finished, at a step boundary of the router's
    grid (``t_start_min + k * step_min``): the policy gets a frozen :class:`~sim.types.State`
    holding that truck (node, phase, **simulated** SOC) and the sites served so far, and the
    truck's :class:`~sim.types.Command` runs through the truck agent's SimPy generators:

    * MOVE: the truck drives the arc, taking the D.2 travel time at the real departure minute
      (rounded up to whole minutes) and the D.3 energy (``agents.truck.CooptTruck.drive``), plus
      any seeded disturbance; it then waits for the next step boundary;
    * CHARGE / DISCHARGE: the truck queues for the site's charger (a ``simpy.Resource``),
      charges at constant power to the target SOC, paying each clock hour's energy at that
      hour's price; a target already reached asks the policy again at the same minute;
    * SERVE: waits for the site's time window, swaps the MESS (delivering ``soc E_cap``) and
      holds the service time; WAIT holds one step; END closes the mission at the depot.

    Trucks ready at the same minute decide one after the other, in the order their previous
    actions finished (the first one at the start), and each action begins (its checks, the swap,
    the charger request, the drive's draw of the disturbance) before the next truck decides, so
    a truck sees the sites the previous ones served. The carried battery's stepwise degradation
    model is fed all the while. What the simulated truck did is recorded as
    :class:`sim.coopt.PlanStep` rows priced by the **planning** cost model (distance, wage for
    the busy minutes, the energy actually paid, degradation from the C.5 tables, the
    unmet-energy term at SERVE), so a run can be compared step by step with the plan; the
    stepwise model's damage is reported beside it. A policy that raises, an action that is not
    possible in the simulated state (a closed window, a served site, a SOC below the minimum on
    a road) and a truck still out at the end of the day are recorded failures (``runs``); the
    truck stops there. ``events`` lists ``(minute, truck, event, node, detail)``.

    Trucks join with :meth:`add` before the run (the trucks a planner sent out are known after
    the policy's reset).

    **The grid** (optional ``grid``, a :class:`sim.protocols.ChargingGrid`): every charge tells
    the system its exact grid-side interval when the truck takes the charger (after queueing).
    ``settle(now, k)`` settles the step **just ended**, ``[now - step_min, now)`` (``k = 0``
    settles nothing: no step has ended yet; a charge's queueing is only known when it happens):
    the average MW each charging node drew over that step (the energy of the exact charge
    intervals inside it / the step length; discharging negative) goes into ONE AC power flow of
    the grid, with the base case of the step's start. Because the controller's last wake is at
    ``end_min``, that wake settles the last step of the day; ``close`` settles any step not yet
    settled (none in a normal run), so every step of ``[start_min, end_min)`` is settled exactly
    once. Energy drawn after ``end_min`` (a charge still running when the day ends; the truck
    is then recorded as still out) is outside the day and not settled. Rows, keyed by the start
    minute of the step they cover: ``sites`` (time_min, node, bus, p_mw, vm_pu, converged,
    status), ``buses`` (time_min, bus, vm_pu) and, for a grid with
    ``line_index``, ``lines`` (time_min, line, loading_pct); a power flow that fails is a
    recorded failure (kind ``power_flow``), never an exception. Without a grid nothing is
    recorded and nothing else changes.

    **Prices** (``price_mode``, :data:`PRICE_MODES`): ``"hourly"`` (default) - a charge pays
    ``price_usd_per_kwh(node, minute)`` of each clock hour when it starts; ``"grid_opf"`` - the
    settlement of each step also solves the grid's OPF with the step's charging in it
    (``grid.step_prices``) and every charge pays, for the energy it drew in each step, that
    step's dual at its node (a failed OPF is a recorded failure of kind ``opf`` and the step
    keeps the hourly prices); the ``energy_usd`` of the charge steps is replaced at ``close``.
    The ``sites`` rows then carry the price of the step (``price_usd_per_kwh``).
    """

    def __init__(self, problems: Sequence[TruckDayProblem],
                 price_usd_per_kwh: Callable[[int, int], float],
                 trucks: Sequence = (), chargers_per_site: int | None = None,
                 grid: ChargingGrid | None = None, price_mode: str = "hourly") -> None:
        if not problems:
            raise ValueError("TruckMissions: no missions")
        if price_mode not in PRICE_MODES:
            raise ScenarioError(f"TruckMissions: price_mode must be one of "
                                f"{', '.join(PRICE_MODES)}, got {price_mode!r}")
        if price_mode == "grid_opf" and not hasattr(grid, "step_prices"):
            raise ScenarioError("TruckMissions: price_mode 'grid_opf' needs a grid with an OPF "
                                "(step_prices), e.g. grids.truck_grid.ChargingFeeder")
        self.price_mode = price_mode
        p0 = problems[0]
        if any((q.t_start_min, q.step_min, q.n_steps) != (p0.t_start_min, p0.step_min,
                                                           p0.n_steps) for q in problems):
            raise ValueError("TruckMissions: every mission must share t_start_min, step_min "
                             "and n_steps (one decision grid)")
        self.missions: dict[str, TruckDayProblem] = {p.name: p for p in problems}
        self.problem = Problem.for_missions(tuple(problems))
        self.price = price_usd_per_kwh
        self.chargers_per_site = chargers_per_site or p0.chargers_per_site
        self.start_min = p0.t_start_min
        self.step_min = p0.step_min
        self.n_steps = p0.n_steps + 1  # END is possible at the last boundary
        self.end_min = p0.t_start_min + p0.n_steps * p0.step_min
        self.trucks: list = []
        self.served: list[int] = []
        self.events: list[tuple[int, str, str, int, str]] = []
        self.runs: dict[str, TruckRun] = {}
        self.chargers: dict = {}
        self._ready: deque = deque()
        self._phase: dict[str, int] = {}
        self._deciding = None
        self._reasks: dict[str, tuple[int, int]] = {}
        self.grid = grid
        # exact grid-side draws not yet fully settled: (node, t0_min, t1_min, grid_kwh, truck)
        self._draws: list[tuple[int, float, float, float, str]] = []
        # price_mode "grid_opf": USD of each charge (truck, start minute) from the step prices,
        # and the charge steps to re-price at close: (truck, index in its steps, start minute)
        self._charge_usd: dict[tuple[str, float], float] = {}
        self._charge_steps: list[tuple[str, int, float]] = []
        self._settled_min = self.start_min
        if grid is not None:
            missing = sorted(set(p0.charging_nodes) - set(grid.bus_of_node))
            if missing:
                raise ScenarioError(f"TruckMissions: charging nodes {missing} have no bus in the "
                                    f"grid {grid.name!r}")
        for t in trucks:
            self.add(t)

    def add(self, truck) -> None:
        """A truck (``agents.truck.CooptTruck``) that runs its mission of the same name."""
        if truck.name not in self.missions:
            raise ValueError(f"TruckMissions: no problem for trucks {[truck.name]}")
        self.trucks.append(truck)
        self.runs[truck.name] = TruckRun(truck.name)

    def start(self, env: Any, recorder: Any, timings: Any, policy_name: str) -> None:
        super().start(env, recorder, timings, policy_name)
        self.chargers = {c: simpy_resource(env, self.chargers_per_site)
                         for c in next(iter(self.missions.values())).charging_nodes}
        for t in self.trucks:
            self._phase[t.name] = FRESH
            self.runs[t.name].trace.append((int(env.now), t.soc_frac, FRESH, t.node))
            self._ready.append(t)

    # ------------------------------------------------------------------ one truck
    def _tlog(self, truck: str, event: str, node: int, detail: str = "") -> None:
        self.events.append((int(self.env.now), truck, event, node, detail))

    def _tfail(self, t, msg: str) -> None:
        self.runs[t.name].failures.append(f"{int(self.env.now)} min: {msg}")
        self._tlog(t.name, "failure", t.node, msg)

    def observe(self, now: int, step: int) -> State | None:
        while self._ready:
            t = self._ready.popleft()
            p = self.missions[t.name]
            k = (now - p.t_start_min) // p.step_min
            if k > p.n_steps:
                self._tfail(t, "the day is over")
                continue
            n, count = self._reasks.get(t.name, (now, 0))
            count = count + 1 if n == now else 1
            self._reasks[t.name] = (now, count)
            if count > MAX_REASKS:
                self._tfail(t, f"policy: asked {MAX_REASKS} times at minute {now} for an "
                               f"action that takes time")
                continue
            self._deciding = t
            return State(now, k, p.step_min, (VehicleState(
                t.name, t.node, True, None, None, t.soc_frac * p.e_cap_kwh / 1000.0,
                t.soc_frac, kind="truck", phase=self._phase[t.name]),),
                served=tuple(self.served))
        return None

    def check(self, decision: Any) -> str | None:
        if not isinstance(decision, Decision):
            raise TypeError(f"decide() returned {type(decision).__name__}, not Decision")
        return None

    def apply(self, decision: Decision | None, now: int, step: int, why: str) -> None:
        t, self._deciding = self._deciding, None
        p = self.missions[t.name]
        try:
            if decision is None:
                raise PolicyError(why)
            code, arg = _action(p, decision.command(t.name))
        except Exception as exc:  # a policy failure is data: recorded, the truck stops
            self._tfail(t, f"policy: {exc}")
            return
        self._begin(t, self._act(t, code, arg))

    def settle(self, now: int, step: int) -> None:
        if self.grid is not None:
            self._settle_to(now)

    def _meter(self, node: int, t0_min: float, t1_min: float, grid_kwh: float,
               truck: str = "") -> None:
        self._draws.append((int(node), float(t0_min), float(t1_min), float(grid_kwh), truck))

    def _settle_to(self, t_min: int) -> None:
        """Settle every whole step that ended at or before ``t_min`` and is not settled yet."""
        dk = self.step_min
        while self._settled_min + dk <= t_min:
            self._settle_step(self._settled_min, self._settled_min + dk)
            self._settled_min += dk

    def _settle_step(self, a: int, b: int) -> None:
        """One power flow for the step ``[a, b)``: each charging node's average grid-side MW."""
        grid = self.grid
        step_h = hours(b - a)
        p_mw = {n: 0.0 for n in self.chargers}
        for node, t0, t1, kwh, _ in self._draws:
            overlap = min(t1, b) - max(t0, a)
            if overlap > 0:
                p_mw[node] += kwh * overlap / (t1 - t0) / 1000.0 / step_h
        price = {n: float(self.price(n, a)) for n in p_mw}
        if self.price_mode == "grid_opf":
            stepped, status, message = grid.step_prices(a, b - a, p_mw)
            if status == "ok":
                price = stepped
            else:  # recorded; the step keeps the hourly prices
                self._fail(a, "opf", grid.name, status, message)
            for node, t0, t1, kwh, truck in self._draws:
                overlap = min(t1, b) - max(t0, a)
                if overlap > 0:
                    key = (truck, t0)
                    self._charge_usd[key] = (self._charge_usd.get(key, 0.0)
                                             + price[node] * kwh * overlap / (t1 - t0))
        self._draws = [d for d in self._draws if d[2] > b]
        r = grid.step(a, b - a, p_mw)
        vm = dict(zip((int(x) for x in grid.bus_index), (float(x) for x in r.vm_pu)))
        for node in sorted(p_mw):
            bus = int(grid.bus_of_node[node])
            extra = ({"price_usd_per_kwh": price[node]} if self.price_mode == "grid_opf"
                     else {})
            self.recorder.row("sites", time_min=a, node=node, bus=bus, p_mw=p_mw[node],
                              vm_pu=vm.get(bus, float("nan")), converged=bool(r.converged),
                              status=r.status, **extra)
        for bus, v in vm.items():
            self.recorder.row("buses", time_min=a, bus=bus, vm_pu=v)
        lines = getattr(grid, "line_index", None)
        loading = getattr(r, "line_loading_pct", None)
        if lines is not None and loading is not None:
            for li, x in zip(lines, loading):
                self.recorder.row("lines", time_min=a, line=int(li), loading_pct=float(x))
        if not r.converged:
            self._fail(a, "power_flow", grid.name, r.status, r.message)

    def close(self, end_min: int) -> None:
        if self.grid is not None:
            self._settle_to(end_min)
        if self.price_mode == "grid_opf":
            self._reprice()
        for t in self.trucks:
            r = self.runs[t.name]
            if not r.ended and not r.failures:
                r.failures.append(f"still out at the end of the day (node {t.node})")
            r.damage = t.damage()
            r.loss_frac = t.loss_frac()
            r.degradation_stepwise_usd = t.c_rep_usd() * r.damage

    def _reprice(self) -> None:
        """price_mode ``grid_opf``: each charge / discharge step pays the stepped prices of
        the steps its energy flowed in; energy after ``end_min`` (never settled) keeps the
        hourly price it was given."""
        for truck, i, t0 in self._charge_steps:
            st = self.runs[truck].steps[i]
            settled = self._charge_usd.get((truck, t0), 0.0)
            rest = sum(kwh * (t1 - max(a, float(self.end_min))) / (t1 - a)
                       for _, a, t1, kwh, tr in self._draws if tr == truck and a == t0
                       and t1 > self.end_min)
            hourly = self.price(st.node_from, int(self.end_min)) * rest if rest else 0.0
            self.runs[truck].steps[i] = replace(st, energy_usd=settled + hourly)

    def _begin(self, t, action) -> None:
        """Run ``action`` up to its first wait now (before the next truck decides), the rest as
        a SimPy process; when it is done the truck is ready to decide again."""
        try:
            event = next(action)
        except StopIteration as stop:
            self._done(t, stop.value, at_once=True)
            return
        self.env.process(self._rest(t, action, event))

    def _rest(self, t, action, event):
        while True:
            try:
                value = yield event
            except BaseException as exc:  # pragma: no cover - nothing interrupts a truck
                event = action.throw(exc)
                continue
            try:
                event = action.send(value)
            except StopIteration as stop:
                self._done(t, stop.value, at_once=False)
                return

    def _done(self, t, outcome: str, at_once: bool) -> None:
        if outcome == "stop":
            return
        if outcome == "next":
            r = self.runs[t.name]
            r.soc_low_frac = min(r.soc_low_frac, t.soc_frac)
            r.trace.append((int(self.env.now), t.soc_frac, self._phase[t.name], t.node))
        # a truck whose action ended at once decides again before the others (as it did in its
        # own process); otherwise in the order the actions finished
        if at_once:
            self._ready.appendleft(t)
        else:
            self._ready.append(t)

    def _act(self, t, code: int, arg: int):
        """One action of truck ``t`` (a generator of SimPy events); returns ``"next"`` (decide
        at the next boundary), ``"skip"`` (target already reached: decide again now) or
        ``"stop"`` (ended or failed)."""
        p = self.missions[t.name]
        r = self.runs[t.name]
        env = self.env
        t0, dk = p.t_start_min, p.step_min
        phase = self._phase[t.name]
        k = (int(env.now) - t0) // dk

        def boundary() -> int:
            """The first step boundary at or after now."""
            return t0 + math.ceil((int(env.now) - t0) / dk - 1e-12) * dk

        def fail(msg: str) -> str:
            self._tfail(t, msg)
            return "stop"

        name = ACTION_NAMES[code] if 0 <= code < len(ACTION_NAMES) else str(code)
        start, s0, v = int(env.now), t.soc_frac, t.node
        if code == END:
            if v != p.depot:
                return fail(f"END away from the depot (node {v})")
            if phase == OLD and s0 < p.soc_end_frac - 1e-9:
                return fail(f"home with SOC {s0:.3f} < soc_end {p.soc_end_frac}")
            r.steps.append(PlanStep("end", k, k, v, v, phase, s0, s0))
            r.ended = True
            self._tlog(t.name, "end", v)
            return "stop"
        if k >= p.n_steps:
            return fail(f"{name} after the end of the day")
        if code == MOVE:
            if not 0 <= arg < p.n_nodes or arg == v or not math.isfinite(p.dist_km[v, arg]):
                return fail(f"no road {v} -> {arg}")
            self._tlog(t.name, "depart", v, f"to {arg}")
            rec = yield from t.drive(env, arg)
            r.arrivals.append((arg, rec.arrive_min))
            r.delay_min += rec.delay_min
            r.soc_low_frac = min(r.soc_low_frac, rec.soc_low_frac)
            self._tlog(t.name, "arrive", arg, f"delay {rec.delay_min} min")
            if rec.stranded:
                return fail(f"SOC {rec.soc_low_frac:.3f} below the minimum {p.soc_min_frac} on "
                            f"{v} -> {arg}")
            yield from t.idle(env, boundary() - int(env.now))
            hours_ = (int(env.now) - start) / 60.0
            r.steps.append(PlanStep(
                "move", k, (int(env.now) - t0) // dk, v, arg, phase, s0, t.soc_frac,
                dist_km=rec.dist_km, traction_kwh=rec.e_kwh,
                distance_usd=p.cost_per_km_usd * rec.dist_km,
                wage_usd=p.wage_usd_per_h * hours_,
                degradation_usd=p.deg_usd(s0, t.soc_frac, hours_)))
        elif code in (CHARGE, DISCHARGE):
            if v not in self.chargers or not 0 <= arg < p.n_soc:
                return fail(f"{name} at node {v} to bucket {arg}: not possible")
            target = float(p.soc_grid_frac[arg])
            sign = 1 if code == CHARGE else -1
            if sign * (target - s0) <= 1e-12:  # a follower's target already reached
                self._tlog(t.name, f"{name}_skip", v, f"SOC {s0:.3f} vs target {target:.2f}")
                return "skip"
            if code == CHARGE and target > p.soc_chg_max_frac + 1e-9:
                return fail(f"charge target {target:.2f} above {p.soc_chg_max_frac}")
            self._tlog(t.name, f"{name}_request", v)
            meter = {} if self.grid is None else {
                "meter": lambda n, a, b, kwh, name=t.name: self._meter(n, a, b, kwh, name)}
            rec = yield from t.charge(env, target, self.price, self.chargers[v], sign, **meter)
            r.queue_min += rec.queue_min
            self._tlog(t.name, f"{name}_stop", v, f"{rec.grid_kwh:.2f} kWh")
            yield from t.idle(env, boundary() - int(env.now))
            hours_ = (int(env.now) - start) / 60.0
            r.steps.append(PlanStep(
                name, k, (int(env.now) - t0) // dk, v, v, phase, s0, t.soc_frac,
                grid_kwh=rec.grid_kwh, wage_usd=p.wage_usd_per_h * hours_,
                energy_usd=rec.energy_usd, degradation_usd=p.deg_usd(s0, t.soc_frac, hours_)))
            if self.price_mode == "grid_opf" and rec.grid_kwh:
                self._charge_steps.append((t.name, len(r.steps) - 1, float(rec.start_min)))
        elif code == SERVE:
            ci = arg
            if not 0 <= ci < len(p.customers) or p.customers[ci] != v or phase != FRESH:
                return fail(f"SERVE customer index {ci} not possible at node {v}")
            c = p.customers[ci]
            if c in self.served:
                return fail(f"site {c} already served")
            w_start = t0 + p.window_start_steps[ci] * dk
            w_end = t0 + p.window_end_steps[ci] * dk
            if max(start, w_start) > w_end:
                return fail(f"site {c}: window closed at {w_end} min")
            if s0 < p.soc_deliver_min_frac - 1e-9:
                return fail(f"site {c}: SOC {s0:.3f} below the delivery minimum")
            yield from t.idle(env, w_start - start)
            wait_h = (int(env.now) - start) / 60.0
            delivered = t.swap(p.soc_old_frac)
            self.served.append(c)
            self._tlog(t.name, "serve", v, f"{delivered:.1f} kWh")
            self._phase[t.name] = OLD
            yield from t.idle(env, p.serve_steps * dk, age=False)
            req = p.requirement_kwh[ci]
            pen = -p.pen_unmet_usd_per_kwh * (min(delivered, req) if p.unmet_mode == "energy"
                                              else req)
            r.steps.append(PlanStep(
                "serve", k, (int(env.now) - t0) // dk, v, v, FRESH, s0, t.soc_frac,
                customer=c, delivered_kwh=delivered,
                wage_usd=p.wage_usd_per_h * (int(env.now) - start) / 60.0,
                degradation_usd=p.deg_usd(s0, s0, wait_h), penalty_usd=pen))
        elif code == WAIT:
            free = phase == FRESH and v == p.depot  # before departure: no wage [P]
            yield from t.idle(env, dk, age=not free)
            hours_ = dk / 60.0
            r.steps.append(PlanStep(
                "wait", k, k + 1, v, v, phase, s0, s0,
                wage_usd=0.0 if free else p.wage_usd_per_h * hours_,
                degradation_usd=0.0 if free else p.deg_usd(s0, s0, hours_)))
        else:
            return fail(f"unknown action code {code}")
        return "next"


def simpy_resource(env: Any, capacity: int) -> Any:
    """A charger: a ``simpy.Resource`` of ``capacity`` on ``env``."""
    return simpy.Resource(env, capacity=capacity)
