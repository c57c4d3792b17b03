"""Frozen state and decision types of the transmission co-simulation (MODELS.md part B).

The seed-001 engine (:mod:`sim.tsn_engine`) hands a :class:`TsnState` to a policy every hour and
applies the :class:`TsnDecision` it returns: trains depart along rail paths, parked trains
exchange battery capacity and energy with their station, stations charge or discharge from the
grid, and the grid site runs a DC and an AC power flow of the hour's dispatch, returned as a
:class:`TsnGridResult`.

Sign conventions (units in the names):

* :class:`Exchange`: ``dc_mw`` / ``de_mwh`` > 0 move capacity / energy **from the station to the
  train**, < 0 from the train to the station.
* Station power: ``pch_mw`` (charging, taken from the grid) and ``pdis_mw`` (discharging) are
  both >= 0; the grid sees ``pch_mw - pdis_mw`` (pandapower's sign, > 0 = consumption).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from sim.types import frozen_array as _ro


# ---------------------------------------------------------------------------- state
@dataclass(frozen=True)
class TrainSnapshot:
    """A train at one instant. ``station`` is None while in transit (then ``dest`` is set)."""

    name: str
    station: str | None
    dest: str | None
    arrive_min: int | None
    c_mw: float
    e_mwh: float


@dataclass(frozen=True)
class StationSnapshot:
    name: str
    bus: int
    c_mw: float
    e_mwh: float


@dataclass(frozen=True)
class UnitSnapshot:
    """A thermal unit as it ran in the hour before now: on/off, output, and how many hours it
    has been in that on/off state (None: since before the run, i.e. long enough for any
    minimum up/down time). Before the first hour these are the case's ``u0`` / ``p0_mw``."""

    name: str
    on: bool
    p_mw: float
    hours_in_state_h: int | None


@dataclass(frozen=True)
class TsnState:
    """What a policy sees at the start of hour ``hour`` (0-based, ``time_min = 60 * hour``)."""

    time_min: int
    hour: int
    step_min: int
    trains: tuple[TrainSnapshot, ...]
    stations: tuple[StationSnapshot, ...]
    units: tuple[UnitSnapshot, ...] = ()

    def train(self, name: str) -> TrainSnapshot:
        for tr in self.trains:
            if tr.name == name:
                return tr
        raise KeyError(name)


# ---------------------------------------------------------------------------- decision
@dataclass(frozen=True)
class TrainMove:
    """Train ``train`` departs now along the station ``path`` (``path[0]`` = where it is)."""

    train: str
    path: tuple[str, ...]


@dataclass(frozen=True)
class Exchange:
    """Capacity and energy moved between a parked train and its station in this hour."""

    train: str
    station: str
    dc_mw: float
    de_mwh: float


@dataclass(frozen=True, eq=False)
class TsnDecision:
    """One hour of a dispatch. Vectors follow the case's unit / wind / station order."""

    unit_p_mw: np.ndarray
    unit_on: tuple[bool, ...]
    wind_mw: np.ndarray
    station_pch_mw: np.ndarray
    station_pdis_mw: np.ndarray
    moves: tuple[TrainMove, ...] = ()
    exchanges: tuple[Exchange, ...] = ()
    note: str = ""

    def __post_init__(self) -> None:
        for f in ("unit_p_mw", "wind_mw", "station_pch_mw", "station_pdis_mw"):
            object.__setattr__(self, f, _ro(getattr(self, f)))
        object.__setattr__(self, "unit_on", tuple(bool(x) for x in self.unit_on))


# ---------------------------------------------------------------------------- grid result
@dataclass(frozen=True, eq=False)
class TsnGridResult:
    """DC and AC power flows of one hour (branch arrays in the case's line order, NaN when a
    flow was not solved). ``status`` is ``"ok"``, ``"dc_not_converged"``,
    ``"ac_not_converged"``, ``"not_converged"`` (both) or ``"error"`` (bad input)."""

    hour: int
    status: str
    converged_dc: bool
    converged_ac: bool
    message: str
    dc_loading_pct: np.ndarray  # |P_dc| / rating
    ac_loading_pct: np.ndarray  # max(|S_from|, |S_to|) / rating (MVA against the MW rating)
    ac_p_loading_pct: np.ndarray  # |P_ac from side| / rating (active power only)
    vm_pu: np.ndarray
    vm_min_pu: float
    vm_max_pu: float
    overloaded_dc: tuple[str, ...]
    overloaded_ac: tuple[str, ...]
    voltage_violations: tuple[int, ...]
    ac_losses_mw: float
    slack_p_dc_mw: float
    slack_p_ac_mw: float
    dc_imbalance_mw: float
    storage_p_mw_by_bus: dict[int, float] = field(default_factory=dict)
    dc_flow_mw: np.ndarray | None = None  # P_from of the DC flow, MW (None: not given)

    def __post_init__(self) -> None:
        for f in ("dc_loading_pct", "ac_loading_pct", "ac_p_loading_pct", "vm_pu"):
            object.__setattr__(self, f, _ro(getattr(self, f)))
        if self.dc_flow_mw is None:
            object.__setattr__(self, "dc_flow_mw", np.full(len(self.dc_loading_pct), np.nan))
        object.__setattr__(self, "dc_flow_mw", _ro(self.dc_flow_mw))


# ---------------------------------------------------------------------------- protocols
class TsnStationLike(Protocol):
    """What a train needs of a station to exchange with it (implemented in ``grids``)."""

    name: str
    c_mw: float
    e_mwh: float

    def exchange_problem(self, dc_mw: float, de_mwh: float) -> str | None: ...

    def apply_exchange(self, dc_mw: float, de_mwh: float) -> None: ...


class TsnTrainLike(Protocol):
    name: str
    station: str | None

    def snapshot(self) -> TrainSnapshot: ...

    def depart(self, env, path: tuple[str, ...], now_min: int, log): ...

    def exchange(self, dc_mw: float, de_mwh: float, station: TsnStationLike, now_min: int,
                 log) -> str | None: ...

    def own_exchange_problem(self, dc_mw: float, de_mwh: float,
                             station_name: str) -> str | None: ...

    def apply_own_exchange(self, dc_mw: float, de_mwh: float, station_name: str, now_min: int,
                           log) -> None: ...


class TsnGridLike(Protocol):
    stations: list

    def step(self, hour: int, unit_p_mw, unit_on, wind_mw, storage_p_mw_by_bus
             ) -> TsnGridResult: ...


class TsnPolicyLike(Protocol):
    name: str

    def reset(self, case, rng: np.random.Generator) -> None: ...

    def decide(self, state: TsnState) -> TsnDecision: ...

    def params(self) -> dict: ...
