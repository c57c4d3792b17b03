"""Frozen data of a transmission case with battery trains (MODELS.md part B, seed 001).

A :class:`TransmissionCase` is everything the unit-commitment / time-space-network (TSN) models
need: thermal units with their commitment data, wind farms, hourly bus loads, the DC line model
as a PTDF matrix with ratings, the energy-storage stations, the trains, the rail travel times
between stations and, for the stationary baselines (B.10), fixed storage units.

It is built by ``grids.transmission`` from pandapower's MATPOWER cases and read by
``policies`` (centralised MILP, OCD), so it lives in ``sim`` (policies may only import ``sim``).
Units are in the field names; time is in whole hours here (``dt_h``), which is how the source
paper states the model; the simulation clock converts to integer minutes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sim.arrays import frozen_array as _ro
from sim.errors import ScenarioError


@dataclass(frozen=True)
class ThermalUnit:
    """A committable thermal unit (B.9). Cost ``a*u + b*P + c*P^2`` per hour, USD."""

    name: str
    bus: int  # pandapower bus index
    p_min_mw: float
    p_max_mw: float
    ramp_up_mw_per_h: float
    ramp_down_mw_per_h: float
    min_up_h: int
    min_down_h: int
    startup_cost: float  # USD per start
    shutdown_cost: float  # USD per stop
    cost_a: float  # USD/h when on
    cost_b: float  # USD/MWh
    cost_c: float  # USD/MW^2h
    p0_mw: float  # output in the hour before t=1
    u0: int  # 1 if on in the hour before t=1
    # hours the unit has been in state ``u0`` before t=1; None = at least its minimum up/down
    # time (no carried-over restriction). A rolling re-plan sets it from the simulation.
    hours_in_state0_h: int | None = None


@dataclass(frozen=True, eq=False)
class WindFarm:
    """A wind farm with its hourly available power (curtailment allowed, (34))."""

    name: str
    bus: int
    p_avail_mw: np.ndarray  # (T,)

    def __post_init__(self) -> None:
        object.__setattr__(self, "p_avail_mw", _ro(self.p_avail_mw))


class _EndTargets:
    """End-of-horizon capacity and energy: the targets ``cT_mw`` / ``eT_mwh`` if set, else the
    initial ``c0_mw`` / ``e0_mwh`` (shared by :class:`Station` and :class:`Train`)."""

    @property
    def c_end_mw(self) -> float:
        return self.c0_mw if self.cT_mw is None else self.cT_mw

    @property
    def e_end_mwh(self) -> float:
        return self.e0_mwh if self.eT_mwh is None else self.eT_mwh


@dataclass(frozen=True)
class Station(_EndTargets):
    """An energy-storage station hosting movable battery capacity (B.5).

    ``cT_mw`` / ``eT_mwh`` are the end-of-horizon targets of (8), (12); None means the initial
    values (a day's case). A rolling re-plan starts from the simulated state and keeps the
    day's targets."""

    name: str
    bus: int
    c_max_mw: float
    e_max_mwh: float
    c0_mw: float
    e0_mwh: float
    cT_mw: float | None = None
    eT_mwh: float | None = None


@dataclass(frozen=True)
class Train(_EndTargets):
    """A battery train (B.6); ``start``/``end`` are station names.

    ``ready_h`` > 0: the train is in transit and reaches ``start`` at hour ``ready_h`` (it has
    no connection before). ``cT_mw`` / ``eT_mwh`` are the terminal targets of (21); None means
    ``c0_mw`` / ``e0_mwh``. Both serve the rolling re-plan from a simulated state."""

    name: str
    c_max_mw: float
    e_max_mwh: float
    c0_mw: float
    e0_mwh: float
    start: str
    end: str
    ready_h: int = 0
    cT_mw: float | None = None
    eT_mwh: float | None = None


@dataclass(frozen=True)
class FixedStorage:
    """A stationary energy-storage system of the baselines M2/M3/M5/M6 (B.10)."""

    name: str
    bus: int
    p_max_mw: float
    e_max_mwh: float
    e0_mwh: float


@dataclass(frozen=True, eq=False)
class TransmissionCase:
    """One UC / TSN instance. Arrays are read-only.

    ``load_mw`` is (T, n_bus) in the order of ``bus_ids``; ``ptdf`` is (n_line, n_bus) in MW of
    line flow per MW injected at the bus (withdrawn at the slack); ``rating_mw`` is (n_line,),
    ``inf`` for unlimited lines. ``travel_h`` is (n_station, n_station) in whole hours.
    """

    name: str
    T: int
    bus_ids: tuple[int, ...]
    load_mw: np.ndarray
    units: tuple[ThermalUnit, ...]
    wind: tuple[WindFarm, ...]
    line_names: tuple[str, ...]
    ptdf: np.ndarray
    rating_mw: np.ndarray
    stations: tuple[Station, ...] = ()
    trains: tuple[Train, ...] = ()
    fixed_storage: tuple[FixedStorage, ...] = ()
    travel_h: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=int))
    transport_cost_per_h: float = 0.0
    eta: float = 0.85
    gamma_h: float = 2.0  # battery coefficient: E <= gamma * C
    dt_h: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "load_mw", _ro(self.load_mw))
        object.__setattr__(self, "ptdf", _ro(self.ptdf))
        object.__setattr__(self, "rating_mw", _ro(self.rating_mw))
        object.__setattr__(self, "travel_h", _ro(self.travel_h, dtype=int))
        problems = self.check()
        if problems:
            raise ScenarioError(problems, source=f"transmission case {self.name!r}")

    # ------------------------------------------------------------------ lookups
    def bus_pos(self, bus: int) -> int:
        """Column of pandapower bus ``bus`` in ``load_mw`` and ``ptdf``."""
        return self.bus_ids.index(bus)

    def station_pos(self, name: str) -> int:
        return [s.name for s in self.stations].index(name)

    @property
    def total_load_mw(self) -> np.ndarray:
        return self.load_mw.sum(axis=1)

    @property
    def storage_power_mw(self) -> float:
        """``C_tot`` of (47)-(48): the storage power of the case (stations and trains at their
        initial capacity, plus the stationary stores)."""
        return (sum(s.c0_mw for s in self.stations) + sum(t.c0_mw for t in self.trains)
                + sum(s.p_max_mw for s in self.fixed_storage))

    def lines_can_bind_box(self, tol_mw: float = 0.0) -> np.ndarray:
        """(n_line, T) bool: can line ``l`` reach its rating (less ``tol_mw``) in hour ``t``?

        Every injection lies in a box: units in ``[0, P_max]`` (a unit may be off), wind in
        ``[0, p_avail_mw[t]]``, a station or stationary store in ``[-P, +P]`` (trains never touch
        the grid), minus the fixed hour-``t`` load. The largest and smallest PTDF flow over that
        box are compared with the rating; the power balance is ignored, so this is a relaxation of
        every dispatch: ``False`` means the limit can never bind. Unlimited lines are ``False``.
        """
        nb = len(self.bus_ids)
        lo, hi = np.zeros(nb), np.zeros(nb)
        for u in self.units:
            hi[self.bus_pos(u.bus)] += u.p_max_mw
        for s in self.stations:
            lo[self.bus_pos(s.bus)] -= s.c_max_mw
            hi[self.bus_pos(s.bus)] += s.c_max_mw
        for f in self.fixed_storage:
            lo[self.bus_pos(f.bus)] -= f.p_max_mw
            hi[self.bus_pos(f.bus)] += f.p_max_mw
        P = self.ptdf
        up = np.maximum(P * lo, P * hi).sum(axis=1)[:, None] - P @ self.load_mw.T
        down = np.minimum(P * lo, P * hi).sum(axis=1)[:, None] - P @ self.load_mw.T
        for w in self.wind:
            col = P[:, self.bus_pos(w.bus)][:, None] * w.p_avail_mw[None, :]
            up += np.maximum(col, 0.0)
            down += np.minimum(col, 0.0)
        r = self.rating_mw[:, None] - tol_mw
        return np.isfinite(r) & ((up > r) | (down < -r))

    def check(self) -> list[str]:
        """Every inconsistency, each as ``field: message`` (empty when the case is sound)."""
        out: list[str] = []
        nb, T = len(self.bus_ids), self.T
        buses = set(self.bus_ids)
        if T < 1:
            out.append(f"T: must be >= 1, got {T}")
        if self.load_mw.shape != (T, nb):
            out.append(f"load_mw: shape {self.load_mw.shape}, expected ({T}, {nb})")
        elif not np.all(np.isfinite(self.load_mw)):
            out.append("load_mw: contains NaN or inf")
        nl = len(self.line_names)
        if self.ptdf.shape != (nl, nb):
            out.append(f"ptdf: shape {self.ptdf.shape}, expected ({nl}, {nb})")
        if self.rating_mw.shape != (nl,):
            out.append(f"rating_mw: shape {self.rating_mw.shape}, expected ({nl},)")
        elif np.any(self.rating_mw <= 0):
            out.append("rating_mw: ratings must be > 0 (inf for unlimited)")
        for k, g in enumerate(self.units):
            p = f"units[{k}] ({g.name})"
            if g.bus not in buses:
                out.append(f"{p}.bus: bus {g.bus} not in the case")
            if not 0 <= g.p_min_mw <= g.p_max_mw:
                out.append(f"{p}: need 0 <= p_min_mw <= p_max_mw, got {g.p_min_mw}, {g.p_max_mw}")
            if g.min_up_h < 1 or g.min_down_h < 1:
                out.append(f"{p}: min_up_h and min_down_h must be >= 1")
            if g.cost_c < 0:
                out.append(f"{p}.cost_c: must be >= 0 (convex cost)")
            if g.u0 not in (0, 1):
                out.append(f"{p}.u0: must be 0 or 1")
            if g.hours_in_state0_h is not None and g.hours_in_state0_h < 1:
                out.append(f"{p}.hours_in_state0_h: must be >= 1 or None")
        for k, w in enumerate(self.wind):
            if w.bus not in buses:
                out.append(f"wind[{k}].bus: bus {w.bus} not in the case")
            if w.p_avail_mw.shape != (T,) or np.any(w.p_avail_mw < 0):
                out.append(f"wind[{k}].p_avail_mw: need {T} values >= 0")
        names = [s.name for s in self.stations]
        if len(set(names)) != len(names):
            out.append("stations: names must be unique")
        for k, s in enumerate(self.stations):
            p = f"stations[{k}] ({s.name})"
            if s.bus not in buses:
                out.append(f"{p}.bus: bus {s.bus} not in the case")
            if not (0 <= s.c0_mw <= s.c_max_mw and 0 <= s.e0_mwh <= s.e_max_mwh):
                out.append(f"{p}: initial capacity/energy outside [0, max]")
            if s.e0_mwh > self.gamma_h * s.c0_mw + 1e-9:
                out.append(f"{p}.e0_mwh: exceeds gamma_h * c0_mw")
            if not (0 <= s.c_end_mw <= s.c_max_mw and 0 <= s.e_end_mwh <= s.e_max_mwh):
                out.append(f"{p}: target capacity/energy outside [0, max]")
        for k, tr in enumerate(self.trains):
            p = f"trains[{k}] ({tr.name})"
            for end in ("start", "end"):
                if getattr(tr, end) not in names:
                    out.append(f"{p}.{end}: station {getattr(tr, end)!r} not in {names}")
            if not (0 <= tr.c0_mw <= tr.c_max_mw and 0 <= tr.e0_mwh <= tr.e_max_mwh):
                out.append(f"{p}: initial capacity/energy outside [0, max]")
            if tr.e0_mwh > self.gamma_h * tr.c0_mw + 1e-9:
                out.append(f"{p}.e0_mwh: exceeds gamma_h * c0_mw")
            if not (0 <= tr.c_end_mw <= tr.c_max_mw and 0 <= tr.e_end_mwh <= tr.e_max_mwh):
                out.append(f"{p}: target capacity/energy outside [0, max]")
            if not 0 <= tr.ready_h < T:
                out.append(f"{p}.ready_h: must be in [0, T) = [0, {T}), got {tr.ready_h}")
        ns = len(self.stations)
        if self.trains and self.travel_h.shape != (ns, ns):
            out.append(f"travel_h: shape {self.travel_h.shape}, expected ({ns}, {ns})")
        elif ns and self.travel_h.shape == (ns, ns):
            off = ~np.eye(ns, dtype=bool)
            if np.any(self.travel_h[off] < 1):
                out.append("travel_h: travel between two stations must take >= 1 h")
        for k, s in enumerate(self.fixed_storage):
            p = f"fixed_storage[{k}] ({s.name})"
            if s.bus not in buses:
                out.append(f"{p}.bus: bus {s.bus} not in the case")
            if not 0 <= s.e0_mwh <= s.e_max_mwh or s.p_max_mw < 0:
                out.append(f"{p}: need 0 <= e0_mwh <= e_max_mwh and p_max_mw >= 0")
        if not 0 < self.eta <= 1:
            out.append(f"eta: must be in (0, 1], got {self.eta}")
        if self.gamma_h <= 0:
            out.append(f"gamma_h: must be > 0, got {self.gamma_h}")
        return out
