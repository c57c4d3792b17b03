"""The SimPy engine: one clock in integer minutes, one decision per step.

Per step at time ``t`` (after every arrival due at ``t`` has been processed):

1. snapshot the vehicles and sites into a frozen :class:`~sim.types.State`;
2. ask the policy for a :class:`~sim.types.Decision` (a failing policy is recorded and the step
   falls back to "everyone stays idle");
3. apply it: parked vehicles either start a trip (a SimPy process that takes the edge travel
   times) or charge/discharge for the whole step; vehicles in transit only self-discharge;
4. sum the vehicle powers per connection point, let every site dispatch its own resources and run
   its power flow;
5. record vehicles, sites, buses, lines and failures, then wait one step.

The engine never imports agents, grids or policies: it works through the protocols of
:mod:`sim.protocols`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import simpy
from simpy.events import NORMAL

from sim.errors import PolicyError, RunFailure
from sim.flexibility import vehicle_flex
from sim.protocols import GridSite, Policy, VehicleAgent
from sim.recorder import Recorder
from sim.types import Decision, Problem, State
from sim.units import hours

# Lower priority than every ordinary event: the controller wakes after arrivals at the same minute.
LATE = NORMAL + 1


class _Late(simpy.events.Event):
    """A timeout that fires after all ordinary events scheduled for the same minute."""

    def __init__(self, env: simpy.Environment, delay: int) -> None:
        super().__init__(env)
        self._ok = True
        self._value = None
        env.schedule(self, LATE, delay)


@dataclass
class Timings:
    """Wall-clock seconds spent in each part of a run."""

    policy_s: float = 0.0
    grid_s: float = 0.0
    total_s: float = 0.0
    per_site_s: dict[str, float] = field(default_factory=dict)


class Engine:
    """Runs one scenario: ``problem``, ``vehicles`` (agents), ``sites`` (grids) and ``policy``."""

    def __init__(self, problem: Problem, vehicles: Sequence[VehicleAgent],
                 sites: Sequence[GridSite],
                 policy: Policy, rng: np.random.Generator, recorder: Recorder | None = None,
                 record_arrays: bool = True) -> None:
        if problem.step_min < 1 or problem.horizon_min % problem.step_min:
            raise ValueError("horizon_min must be a positive multiple of step_min")
        self.problem = problem
        self.vehicles = list(vehicles)
        self.sites = list(sites)
        self.policy = policy
        self.rng = rng
        self.recorder = recorder if recorder is not None else Recorder()
        self.record_arrays = record_arrays
        self.timings = Timings()
        self._site_by_node = {s.node: s for s in self.sites}
        if len(self._site_by_node) != len(self.sites):
            raise ValueError("two grid sites share one road node")
        self._names = {v.name for v in self.vehicles}
        self.env = simpy.Environment()

    # ------------------------------------------------------------------ public
    def run(self) -> Recorder:
        t0 = time.perf_counter()
        self.policy.reset(self.problem, self.rng)
        self.env.process(self._controller())
        # One extra minute so that arrivals due exactly at the horizon are recorded too.
        self.env.run(until=self.problem.horizon_min + 1)
        for v in self.vehicles:
            v.close(self.problem.horizon_min, self._log)
        self.timings.total_s = time.perf_counter() - t0
        return self.recorder

    # ------------------------------------------------------------------ internals
    def _log(self, time_min: int, vehicle: str, event: str, node: str, detail: str = "") -> None:
        self.recorder.event(time_min, vehicle, event, node, detail)

    def _fail(self, time_min: int, kind: str, entity: str, status: str, message: str) -> None:
        self.recorder.failure(RunFailure(time_min, kind, entity, status, message))

    def state(self, now: int, step: int) -> State:
        dt = self.problem.step_min
        return State(time_min=now, step=step, step_min=dt,
                     vehicles=tuple(v.snapshot(now, dt) for v in self.vehicles),
                     sites=tuple(s.observe(now) for s in self.sites))

    def _decide(self, state: State) -> Decision:
        t = time.perf_counter()
        try:
            decision = self.policy.decide(state)
            if not isinstance(decision, Decision):
                raise PolicyError(f"decide() returned {type(decision).__name__}, not Decision")
        except Exception as exc:  # a policy bug or solver failure must not kill the run
            self._fail(state.time_min, "policy", self.policy.name, "error",
                       f"{type(exc).__name__}: {exc}")
            decision = Decision(note="fallback: policy failed, all idle")
        self.timings.policy_s += time.perf_counter() - t
        return decision

    def _controller(self):
        dt = self.problem.step_min
        dt_h = hours(dt)
        for step in range(self.problem.n_steps):
            now = int(self.env.now)
            state = self.state(now, step)
            decision = self._decide(state)
            for c in decision.commands:
                if c.vehicle not in self._names:
                    self._fail(now, "policy", self.policy.name, "unknown_vehicle",
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

            t = time.perf_counter()
            for site in self.sites:
                ts = time.perf_counter()
                r = site.step(now, dt, mess_p[site.node])
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
                    idx = getattr(site, "bus_index", np.arange(len(r.bus_vm_pu)))
                    self.recorder.array("buses", now, r.site, idx, r.bus_vm_pu)
                    idx = getattr(site, "line_index", np.arange(len(r.line_loading_pct)))
                    self.recorder.array("lines", now, r.site, idx, r.line_loading_pct)
            self.timings.grid_s += time.perf_counter() - t
            self.recorder.row("decisions", time_min=now, note=decision.note)
            yield _Late(self.env, dt)
