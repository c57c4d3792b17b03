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

from sim.units import arrival_energy_mwh


def frozen_array(values, dtype=float) -> np.ndarray:
    """An array (float unless ``dtype`` says otherwise) that cannot be written to."""
    arr = np.array(values, dtype=dtype)
    arr.setflags(write=False)
    return arr


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

    ``travel_min`` holds the shortest travel time between every ordered pair of road nodes;
    ``paths`` the corresponding node sequences and ``travel_energy_mwh`` the traction energy a
    vehicle's battery spends along them (0 where vehicles have their own traction supply).
    """

    step_min: int
    horizon_min: int
    nodes: tuple[str, ...]
    travel_min: Mapping[tuple[str, str], int]
    paths: Mapping[tuple[str, str], tuple[str, ...]]
    vehicles: tuple[VehicleSpec, ...]
    sites: tuple[SiteInfo, ...]
    travel_energy_mwh: Mapping[tuple[str, str], float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("travel_min", "paths", "travel_energy_mwh"):
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
    """A vehicle at the start of a step.

    When parked, ``node`` is where it is and ``dest``/``arrive_min`` are None. In transit, ``node``
    is the node it left and it cannot charge or discharge. ``p_ch_max_mw``/``p_dis_max_mw`` are the
    grid-side powers the battery can take for the whole coming step without leaving its window.
    """

    name: str
    node: str
    parked: bool
    dest: str | None
    arrive_min: int | None
    e_mwh: float
    soc_frac: float
    p_ch_max_mw: float
    p_dis_max_mw: float


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
    """Snapshot handed to ``Policy.decide`` at the start of every step."""

    time_min: int
    step: int
    step_min: int
    vehicles: tuple[VehicleState, ...]
    sites: tuple[SiteState, ...]

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


@dataclass(frozen=True)
class Command:
    """What one vehicle does this step.

    ``dest`` None (or the current node) means stay; another node starts a trip along the shortest
    path. ``p_mw`` is the grid-side power while parked (charging positive); it must be 0 for a
    vehicle that starts a trip or is in transit. ``connected=False`` leaves a parked vehicle
    unplugged: it exchanges no power and offers the site no flexibility (the "no MESS" case).
    """

    vehicle: str
    dest: str | None = None
    p_mw: float = 0.0
    connected: bool = True


@dataclass(frozen=True)
class Decision:
    """A policy's answer for one step: at most one command per vehicle (missing = stay idle)."""

    commands: tuple[Command, ...] = ()
    note: str = ""

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
