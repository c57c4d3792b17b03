"""The transmission grid's power-flow result and the protocols of trains, stations and grid.

The policy sees :class:`~sim.types.State` and answers with :class:`~sim.types.Decision`, as on
every system; here are the pieces particular to a transmission grid: the hour's DC and AC power
flows (:class:`TsnGridResult`) and what the engine needs of trains, stations and the grid.

Sign conventions (units in the names):

* an exchange command: ``dc_mw`` / ``de_mwh`` > 0 move capacity / energy **from the station to
  the train**, < 0 from the train to the station.
* Station power: ``pch_mw`` (charging, taken from the grid) and ``pdis_mw`` (discharging) are
  both >= 0; the grid sees ``pch_mw - pdis_mw`` (pandapower's sign, > 0 = consumption).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from sim.arrays import frozen_array as _ro
from sim.types import VehicleState


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

    def snapshot(self) -> VehicleState: ...

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
