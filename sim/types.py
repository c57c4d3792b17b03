"""Frozen data types exchanged between the layers.

Units are in the field names: ``p_mw`` (power, MW), ``e_mwh`` (energy, MWh), ``*_min`` (integer
minutes on the simulation clock), ``soc_frac`` (0..1 of nameplate). Power signs follow pandapower:
for a battery, ``p_mw > 0`` is charging (consumption from the grid), ``p_mw < 0`` discharging.

Arrays held by these types are made read-only so that a policy cannot alter what the engine or
another policy sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from sim.arrays import frozen_array
from sim.coopt import TruckDayProblem
from sim.tsn import TransmissionCase
from sim.units import arrival_energy_mwh

# --------------------------------------------------------------------------------------------
# Static descriptions (built once from the scenario)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatterySpec:
    """Battery of one vehicle (MODELS.md A.2: Table 1 of seed 000)."""

    capacity_mwh: float
    e_min_mwh: float
    e_max_mwh: float
    p_max_mw: float  # same limit for charge and discharge, grid side
    eta_ch: float = 0.95
    eta_dis: float = 0.95
    retention_per_h: float = 0.999  # energy kept per hour (self-discharge 0.1 %/h)


@dataclass(frozen=True)
class VehicleSpec:
    """A truck or train: its battery, where it starts and with how much energy."""

    name: str
    kind: str  # "truck" | "train"
    battery: BatterySpec
    start_node: str
    e_init_mwh: float


@dataclass(frozen=True)
class GeneratorSpec:
    """Dispatchable generator of a distribution network (always on: no commitment)."""

    name: str
    bus: int
    p_max_mw: float
    p_min_mw: float
    ramp_up_mw_per_h: float
    ramp_down_mw_per_h: float


@dataclass(frozen=True)
class DemandResponseSpec:
    """Demand response as a load reduction in ``[0, p_max_mw]`` (acts as supply)."""

    bus: int
    p_max_mw: float
    ramp_mw_per_h: float
    e_max_mwh: float  # daily energy cap


@dataclass(frozen=True)
class StorageSpec:
    """Stationary storage of a distribution network."""

    bus: int
    p_ch_max_mw: float
    p_dis_max_mw: float
    e_min_mwh: float
    e_max_mwh: float
    e_init_mwh: float
    eta: float = 0.95
    ramp_mw_per_h: float | None = None


@dataclass(frozen=True)
class SiteResources:
    """The stationary flexible resources of one site (a distribution network)."""

    generators: tuple[GeneratorSpec, ...] = ()
    dr: DemandResponseSpec | None = None
    storage: StorageSpec | None = None


@dataclass(frozen=True)
class SiteInfo:
    """What a policy may know about one grid site: its road node, resources and forecasts.

    ``load_forecast_mw`` and ``pv_forecast_mw`` have one value per engine step.
    """

    name: str
    node: str
    resources: SiteResources
    c_norm_mw: float
    load_forecast_mw: np.ndarray
    pv_forecast_mw: np.ndarray

    @property
    def net_load_forecast_mw(self) -> np.ndarray:
        return frozen_array(self.load_forecast_mw - self.pv_forecast_mw)

    @property
    def own_up_capacity_mw(self) -> float:
        """Largest upward supply of the site's own resources (generators, DR, storage)."""
        r = self.resources
        cap = sum(g.p_max_mw for g in r.generators)
        if r.dr is not None:
            cap += r.dr.p_max_mw
        if r.storage is not None:
            cap += r.storage.p_dis_max_mw
        return cap


@dataclass(frozen=True)
class Problem:
    """Everything static a policy needs, handed to ``Policy.reset`` once per run.

    One type for every system; each part is present where the scenario has it:

    * distribution sites with a road graph (the three-DN MESS system): ``nodes``, ``sites``,
      ``vehicles`` and the road tables. ``travel_min`` holds the shortest travel time between
      every ordered pair of road nodes; ``paths`` the corresponding node sequences and
      ``travel_energy_mwh`` the traction energy a vehicle's battery spends along them (0 where
      vehicles have their own traction supply); ``deg_usd_per_mwh`` each vehicle's cycle-ageing
      cost per MWh of grid-side throughput (charge plus discharge) from its own ageing model
      (missing or 0: a battery that does not age, the model ``none``), for planners that price
      battery wear;
    * a transmission grid with thermal units, wind, storage stations and battery trains on a
      rail time-space network: ``transmission`` (MODELS.md part B);
    * truck swap missions on a directed road graph (the Co-OPT system): ``missions``, one
      :class:`~sim.coopt.TruckDayProblem` per truck (MODELS.md part D).

    :meth:`offers` names the parts present; a policy declares the ones it needs
    (``requires``) and a pair that cannot run is refused before the run starts.
    """

    step_min: int
    horizon_min: int
    nodes: tuple[str, ...] = ()
    travel_min: Mapping[tuple[str, str], int] = field(default_factory=dict)
    paths: Mapping[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    vehicles: tuple[VehicleSpec, ...] = ()
    sites: tuple[SiteInfo, ...] = ()
    travel_energy_mwh: Mapping[tuple[str, str], float] = field(default_factory=dict)
    transmission: TransmissionCase | None = None
    missions: tuple[TruckDayProblem, ...] = ()
    deg_usd_per_mwh: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def for_missions(cls, missions) -> Problem:
        """The problem of a Co-OPT fleet: one swap mission per truck, on the missions' clock."""
        missions = tuple(missions)
        if not missions:
            raise ValueError("Problem.for_missions: no missions")
        m = missions[0]
        return cls(step_min=m.step_min, horizon_min=m.n_steps * m.step_min, missions=missions)

    @classmethod
    def for_transmission(cls, case: TransmissionCase, step_min: int = 60) -> Problem:
        """The problem of a transmission grid with trains (hourly: ``case.T`` steps)."""
        return cls(step_min=step_min, horizon_min=case.T * step_min, transmission=case)

    def offers(self) -> frozenset[str]:
        """The parts of this problem a policy may require: ``"dn-sites"`` (distribution sites
        with their own resources and a road graph), ``"transmission"`` (thermal units, stations
        and trains), ``"missions"`` (truck swap missions)."""
        out = set()
        if self.sites:
            out.add("dn-sites")
        if self.transmission is not None:
            out.add("transmission")
        if self.missions:
            out.add("missions")
        return frozenset(out)

    def __post_init__(self) -> None:
        for name in ("travel_min", "paths", "travel_energy_mwh", "deg_usd_per_mwh"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    def arrival_energy_mwh(self, vehicle: str, e_mwh: float, origin: str, dest: str) -> float:
        """Energy ``vehicle`` would have on arriving at ``dest`` if it left ``origin`` now."""
        spec = self.vehicle(vehicle)
        return arrival_energy_mwh(e_mwh, spec.battery.retention_per_h,
                                  self.travel_min[(origin, dest)], self.step_min,
                                  self.travel_energy_mwh.get((origin, dest), 0.0))

    @property
    def n_steps(self) -> int:
        return self.horizon_min // self.step_min

    def site(self, name: str) -> SiteInfo:
        for s in self.sites:
            if s.name == name:
                return s
        raise KeyError(name)

    def site_at(self, node: str) -> SiteInfo | None:
        for s in self.sites:
            if s.node == node:
                return s
        return None

    def vehicle(self, name: str) -> VehicleSpec:
        for v in self.vehicles:
            if v.name == name:
                return v
        raise KeyError(name)


# --------------------------------------------------------------------------------------------
# Per-step snapshot and decision
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VehicleState:
    """A vehicle (truck or train) at the start of a step or decision point.

    When parked, ``node`` is where it is and ``dest``/``arrive_min`` are None. In transit, ``node``
    is the node it left and it cannot charge or discharge. ``p_ch_max_mw``/``p_dis_max_mw`` are the
    grid-side powers the battery can take for the whole coming step without leaving its window.
    A train carries battery capacity as well as energy (``c_mw``: the capacity it can exchange
    with a station, MODELS.md B.5); a Co-OPT truck is in a mission ``phase`` (0 carrying the
    fresh MESS, 1 bringing the depleted one back, MODELS.md D.4). Road nodes are the graph's own
    labels (names on the DN and rail graphs, integers on the Co-OPT graph).
    """

    name: str
    node: str | int
    parked: bool
    dest: str | int | None
    arrive_min: int | None
    e_mwh: float
    soc_frac: float
    p_ch_max_mw: float = 0.0
    p_dis_max_mw: float = 0.0
    kind: str = "truck"  # "truck" | "train"
    c_mw: float = 0.0
    phase: int = 0
    soh_frac: float = 1.0

    @property
    def station(self) -> str | int | None:
        """Where a parked vehicle stands (None in transit)."""
        return self.node if self.parked else None


@dataclass(frozen=True)
class StationState:
    """A storage station of a transmission grid: its bus, and the battery capacity and energy
    it holds (trains exchange both with it, MODELS.md B.5)."""

    name: str
    bus: int
    c_mw: float
    e_mwh: float


@dataclass(frozen=True)
class UnitState:
    """A thermal unit as it ran in the step before now: on/off, output, and how many hours it
    has been in that on/off state (None: since before the run, i.e. long enough for any
    minimum up/down time). Before the first step these are the case's ``u0`` / ``p0_mw``."""

    name: str
    on: bool
    p_mw: float
    hours_in_state_h: int | None


@dataclass(frozen=True)
class SiteState:
    """The observed condition of a site at the start of a step (actual, not forecast).

    The operating state of the site's own resources lets a planning policy start from the
    simulated state: stationary-storage energy, the previous step's generator outputs (in the
    order of ``SiteResources.generators``; None before the first step), the previous DR level and
    the DR energy used so far today.
    """

    name: str
    load_mw: float
    pv_mw: float
    es_e_mwh: float | None = None
    gen_p_mw: tuple[float, ...] | None = None
    dr_mw: float = 0.0
    dr_used_mwh: float = 0.0

    @property
    def net_load_mw(self) -> float:
        return self.load_mw - self.pv_mw


@dataclass(frozen=True)
class State:
    """Snapshot handed to ``Policy.decide`` at every decision point, for every system.

    ``vehicles`` are the vehicles that decide now (all of them on a stepped system; on the
    Co-OPT system the trucks that have finished their last action). ``sites`` are the
    distribution sites; ``stations`` and ``units`` the transmission grid's storage stations and
    thermal units; ``served`` the customer sites whose MESS has been swapped already.
    """

    time_min: int
    step: int
    step_min: int
    vehicles: tuple[VehicleState, ...]
    sites: tuple[SiteState, ...] = ()
    stations: tuple[StationState, ...] = ()
    units: tuple[UnitState, ...] = ()
    served: tuple = ()

    @property
    def hour(self) -> int:
        """The clock hour of the step (0-based)."""
        return self.time_min // 60

    @property
    def trains(self) -> tuple[VehicleState, ...]:
        return tuple(v for v in self.vehicles if v.kind == "train")

    def vehicle(self, name: str) -> VehicleState:
        for v in self.vehicles:
            if v.name == name:
                return v
        raise KeyError(name)

    def site(self, name: str) -> SiteState:
        for s in self.sites:
            if s.name == name:
                return s
        raise KeyError(name)


#: Mission actions of a :class:`Command` (a truck's swap mission, MODELS.md D.4).
ACTIONS = ("", "move", "charge", "discharge", "swap", "wait", "end")


@dataclass(frozen=True)
class Command:
    """What one vehicle does now.

    * Move: ``dest`` None (or the current node) means stay; another node starts a trip along the
      shortest path, or along ``path`` when given (``path[0]`` is where the vehicle is).
    * Power: ``p_mw`` is the grid-side power while parked (charging positive); it must be 0 for
      a vehicle that starts a trip or is in transit. ``connected=False`` leaves a parked vehicle
      unplugged: it exchanges no power and offers the site no flexibility (the "no MESS" case).
    * Exchange (trains): with ``station`` set, ``dc_mw`` / ``de_mwh`` of battery capacity and
      energy move from the station to the train (negative: to the station) this step.
    * Mission actions (Co-OPT trucks): ``action`` is ``"charge"`` / ``"discharge"`` (at the
      site's charger, to ``soc_target_frac``), ``"swap"`` (deliver the MESS to the customer
      site ``site``), ``"wait"`` (one step) or ``"end"`` (close the day at the depot); a move is
      ``action="move"`` with ``dest``.
    """

    vehicle: str
    dest: str | int | None = None
    p_mw: float = 0.0
    connected: bool = True
    path: tuple | None = None
    station: str | None = None
    dc_mw: float = 0.0
    de_mwh: float = 0.0
    action: str = ""
    soc_target_frac: float | None = None
    site: str | int | None = None


@dataclass(frozen=True, eq=False)
class Setpoints:
    """Set-points of grid resources, where a policy dispatches them itself (the unit-commitment
    policies). Vectors follow the transmission case's unit / wind / station order. Where a
    policy gives none, the sites' local operators dispatch."""

    unit_p_mw: np.ndarray
    unit_on: tuple[bool, ...]
    wind_mw: np.ndarray
    station_pch_mw: np.ndarray
    station_pdis_mw: np.ndarray

    def __post_init__(self) -> None:
        for f in ("unit_p_mw", "wind_mw", "station_pch_mw", "station_pdis_mw"):
            object.__setattr__(self, f, frozen_array(getattr(self, f)))
        object.__setattr__(self, "unit_on", tuple(bool(x) for x in self.unit_on))


@dataclass(frozen=True)
class Decision:
    """A policy's answer at a decision point: commands per vehicle (missing = stay idle) and
    optional set-points of grid resources."""

    commands: tuple[Command, ...] = ()
    note: str = ""
    setpoints: Setpoints | None = None

    def command(self, vehicle: str) -> Command:
        for c in self.commands:
            if c.vehicle == vehicle:
                return c
        return Command(vehicle)


@dataclass(frozen=True)
class SiteStepResult:
    """What a grid site returns after one step: local dispatch and power-flow outcome.

    ``residual_mw`` is the local imbalance the site's own resources could not cover (positive:
    shortage), which the substation slack carries. ``bus_vm_pu`` and ``line_loading_pct`` are
    per-element arrays (NaN where the power flow did not converge).
    """

    site: str
    time_min: int
    converged: bool
    status: str
    vm_min_pu: float
    vm_max_pu: float
    max_line_loading_pct: float
    losses_mw: float
    slack_p_mw: float
    residual_mw: float
    mess_p_mw: float
    load_mw: float
    pv_mw: float
    flex_up_mw: float
    flex_dn_mw: float
    dispatch_mw: Mapping[str, float] = field(default_factory=dict)
    bus_vm_pu: np.ndarray = field(default_factory=lambda: frozen_array([]))
    line_loading_pct: np.ndarray = field(default_factory=lambda: frozen_array([]))
    message: str = ""
