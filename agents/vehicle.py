"""The vehicle agent: a ``mesa.Agent`` whose trips are SimPy processes.

SimPy owns the clock; mesa only owns the agent population. :class:`FleetModel` is never stepped
(``mesa.Model.step`` would advance mesa's own time).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import mesa
import numpy as np

from agents.battery import E_TOL_MWH, Battery, DegradationModel, StepEnergy
from agents.disruption import Outages, Traffic
from agents.graph import TransportGraph
from sim.protocols import EventLog
from sim.types import VehicleSpec, VehicleState
from sim.units import arrival_energy_mwh

IDLE, CHARGE, DISCHARGE = "idle", "charge", "discharge"


class Vehicle(mesa.Agent):
    """A battery truck or train.

    While parked it may charge or discharge; once a trip starts it is in transit until the SimPy
    process of :meth:`drive` reaches the destination, and it cannot exchange power meanwhile.

    With ``traffic`` the vehicle drives realised edge times instead of the graph's free-flow
    ``travel_min``; with ``outages`` it breaks down on that schedule (parked: held where it is,
    unplugged; in transit: stopped on its edge). See :mod:`agents.disruption`.
    """

    def __init__(self, model: mesa.Model, spec: VehicleSpec, graph: TransportGraph,
                 degradation: DegradationModel | None = None, traffic: Traffic | None = None,
                 outages: Outages | None = None) -> None:
        super().__init__(model)
        self.spec = spec
        self.name = spec.name
        self.kind = spec.kind
        self.graph = graph
        self.traffic = traffic
        self.outages = outages if outages is not None and outages.intervals else None
        self.battery = Battery(spec.battery, spec.e_init_mwh, degradation)
        self.reset()

    def reset(self) -> None:
        self.battery.reset()
        self.node = self.spec.start_node
        self.dest: str | None = None
        self.arrive_min: int | None = None
        self.mode = IDLE
        self.km = 0.0
        self.trips = 0
        self._legs: list[int] = []
        self._logged: set[int] = set()  # starts of breakdowns already in the event log
        self._open: tuple[int, int] | None = None  # a parked breakdown whose end is not logged

    def out_of_service(self, now_min: int) -> str | None:
        """Why the vehicle cannot move or exchange power at ``now_min`` (a breakdown), or None."""
        iv = self.outages.active(now_min) if self.outages is not None else None
        return None if iv is None else f"broken down until minute {iv[1]}"

    @property
    def parked(self) -> bool:
        return self.dest is None

    def snapshot(self, now_min: int, dt_min: int) -> VehicleState:
        usable = self.parked and self.out_of_service(now_min) is None
        p_ch, p_dis = self.battery.limits(dt_min) if usable else (0.0, 0.0)
        return VehicleState(name=self.name, node=self.node, parked=self.parked, dest=self.dest,
                            arrive_min=self.arrive_min, e_mwh=self.battery.e_mwh,
                            soc_frac=self.battery.soc_frac, p_ch_max_mw=p_ch, p_dis_max_mw=p_dis,
                            kind=self.spec.kind,
                            soh_frac=float(self.battery.degradation.soh_frac()))

    # ---------------------------------------------------------------- trips
    def trip_problem(self, dest: str, dt_min: int) -> str | None:
        """Why a trip to ``dest`` cannot start now, or None if it can."""
        if not self.parked:
            return f"in transit to {self.dest}"
        if dest not in self.graph.graph:
            return f"unknown node {dest!r}"
        path = self.graph.shortest_path(self.node, dest)
        e_arrive = arrival_energy_mwh(self.battery.e_mwh, self.spec.battery.retention_per_h,
                                      self.graph.path_minutes(path), dt_min,
                                      self.graph.path_energy_mwh(path))
        if e_arrive < self.spec.battery.e_min_mwh - E_TOL_MWH:
            return (f"would arrive with {e_arrive:.4f} MWh, below e_min "
                    f"{self.spec.battery.e_min_mwh} MWh")
        return None

    def depart(self, dest: str, now_min: int, log: EventLog):
        """Start a trip to ``dest`` now; returns the SimPy generator that drives it.

        The vehicle is in transit from this call on, so it takes no power in the current step.
        """
        path = self.graph.shortest_path(self.node, dest)
        self._set_mode(IDLE, now_min, log)
        self.dest = dest
        free = [(u, v, int(self.graph.edge(u, v)["travel_min"])) for u, v in zip(path, path[1:])]
        self._legs = ([m for _, _, m in free] if self.traffic is None
                      else self.traffic.leg_minutes(free, now_min))
        self.arrive_min = now_min + sum(self._legs)
        self.trips += 1
        detail = f"to {dest}"
        if self.traffic is not None:
            detail += f", {sum(self._legs)} min (free flow {sum(m for _, _, m in free)} min)"
        log(now_min, self.name, "depart", self.node, detail)
        return path

    def drive(self, env, path: list[str], log: EventLog):
        """SimPy process: traverse ``path`` edge by edge, taking each edge's realised time (the
        legs fixed by :meth:`depart`) plus any breakdown that starts on the way."""
        for (u, v), minutes in zip(zip(path, path[1:]), self._legs):
            edge = self.graph.edge(u, v)
            yield from self._traverse(env, u, v, minutes, log)
            self.battery.draw_traction(edge["energy_mwh"])
            self.km += edge["dist_km"]
            if v != path[-1]:
                log(int(env.now), self.name, "pass", v, "")
        self.node = path[-1]
        self.dest = None
        self.arrive_min = None
        log(int(env.now), self.name, "arrive", self.node, "")

    def _traverse(self, env, u: str, v: str, minutes: int, log: EventLog):
        left = int(minutes)
        while True:
            now = int(env.now)
            iv = self.outages.starting(now, now + left) if self.outages is not None else None
            if iv is None:
                yield env.timeout(left)
                return
            start, end = iv
            if start > now:
                yield env.timeout(start - now)
                left -= start - now
            self._logged.add(start)
            self.arrive_min += end - start
            log(start, self.name, "breakdown_start", u, f"on {u}->{v}, until minute {end}")
            yield env.timeout(end - start)
            log(end, self.name, "breakdown_end", u, f"on {u}->{v}")

    # ---------------------------------------------------------------- power
    def apply_power(self, p_mw: float, dt_min: int, now_min: int, log: EventLog,
                    connected: bool = True) -> StepEnergy:
        """Charge (``p_mw`` > 0) or discharge for one step; in transit only self-discharge runs.

        ``connected`` says whether the vehicle is parked at a grid connection point; only there can
        it exchange power (and its battery management hold the ``e_min`` floor).
        """
        if self.parked and self.outages is not None:
            self._log_parked_outage(now_min, log)
        if not self.parked or not connected:
            return self.battery.step(0.0, dt_min, can_hold=False)
        res = self.battery.step(p_mw, dt_min, can_hold=True)
        mode = CHARGE if res.p_mw > 1e-12 else DISCHARGE if res.p_mw < -1e-12 else IDLE
        self._set_mode(mode, now_min, log)
        return res

    def close(self, now_min: int, log: EventLog) -> None:
        """End of the run: close an open charge or discharge interval (and a breakdown that
        ended by then)."""
        self._set_mode(IDLE, now_min, log)
        if self._open is not None and self._open[1] <= now_min:
            log(self._open[1], self.name, "breakdown_end", self.node, "")
            self._open = None

    def _log_parked_outage(self, now_min: int, log: EventLog) -> None:
        if self._open is not None and now_min >= self._open[1]:
            log(self._open[1], self.name, "breakdown_end", self.node, "")
            self._open = None
        iv = self.outages.active(now_min)
        if iv is not None and iv[0] not in self._logged:
            self._set_mode(IDLE, now_min, log)
            self._logged.add(iv[0])
            self._open = iv
            log(iv[0], self.name, "breakdown_start", self.node, f"until minute {iv[1]}")

    def _set_mode(self, mode: str, now_min: int, log: EventLog) -> None:
        if mode == self.mode:
            return
        if self.mode != IDLE:
            log(now_min, self.name, f"{self.mode}_stop", self.node, "")
        if mode != IDLE:
            log(now_min, self.name, f"{mode}_start", self.node, "")
        self.mode = mode


class FleetModel(mesa.Model):
    """The mesa model that owns the vehicle agents. Never call :meth:`step`: SimPy is the clock."""

    def __init__(self, graph: TransportGraph, specs: Iterable[VehicleSpec],
                 rng: np.random.Generator | None = None,
                 degradation: Callable[[VehicleSpec], DegradationModel] | None = None,
                 traffic: Traffic | None = None,
                 outages: Mapping[str, Outages] | None = None) -> None:
        super().__init__(rng=rng)
        self.graph = graph
        outages = outages or {}
        self.vehicles: list[Vehicle] = [
            Vehicle(self, spec, graph, degradation(spec) if degradation else None,
                    traffic=traffic, outages=outages.get(spec.name))
            for spec in specs
        ]

    def step(self) -> None:  # pragma: no cover - guard against misuse
        raise RuntimeError("FleetModel is driven by the SimPy engine; do not call step()")
