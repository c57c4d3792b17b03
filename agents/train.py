"""Battery trains of seed 001 (MODELS.md B.6-B.7): ``mesa.Agent`` s whose trips are SimPy
processes on the rail graph.

A train carries battery **capacity** ``c_mw`` and the **energy** ``e_mwh`` stored in it. It has no
grid connection of its own (B.6 (18)); while parked at a station it exchanges capacity and energy
with that station (:meth:`TrainAgent.exchange`); in transit it exchanges nothing and loses nothing
(transport losses ignored, B.6). SimPy owns the clock: :class:`TrainFleet` is never stepped.

**Battery ageing.** Each train carries a degradation model of :mod:`agents.degradation`
(default ``none``: SOH exactly 1.0). The model sees the train's battery as one pack of the
train's nameplate ``e_max_mwh``, at SOC ``e_mwh / e_max_mwh``:

* an exchange is a SOC step of zero duration at the moment it happens (energy in: charge, energy
  out: discharge; cycle ageing at the model's ``c_rate_default_per_h``, which
  :func:`train_degradation` sets to ``1/gamma_h``, the fastest a module fills or empties);
* time between exchanges, parked or in transit, is calendar ageing at the SOC held.

The feed is lazy and exact: :meth:`TrainAgent.age_to` feeds the time since the last feed, and is
called before every exchange and by :meth:`TrainAgent.soh_frac_at` (which the engine records
every hour), so the SOH at a time point does not depend on how often it is read. SOH is
reported only: it does not shrink ``e_max_mwh`` or ``gamma_h``.

Caveat: B.5 (11) reads an exchange as modules moving with the energy inside them (E.B1). The
model does not follow modules from train to station; it ages the train's rack as a whole, and
energy handed over counts as a discharge of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import mesa
import numpy as np

from agents.battery import DegradationModel
from agents.degradation import ZeroDegradation, make_degradation
from agents.graph import TransportGraph
from sim.tsn import Train
from sim.tsn_sim_types import TsnStationLike
from sim.types import VehicleState

#: Tolerance (MW / MWh) on the state bounds: plans come from LP solvers with ~1e-7 noise.
STATE_TOL = 1e-6

EventLog = Callable[[int, str, str, str, str], None]


def _snap(x: float, lo: float, hi: float) -> float:
    """``x`` moved onto ``[lo, hi]`` when it is outside by no more than :data:`STATE_TOL`."""
    if lo - STATE_TOL <= x < lo:
        return lo
    if hi < x <= hi + STATE_TOL:
        return hi
    return x


class TrainAgent(mesa.Agent):
    """A battery train: capacity ``c_mw``, energy ``e_mwh``, parked at ``station`` or in transit.

    ``gamma_h`` is the battery coefficient: the train's energy never exceeds ``gamma_h * c_mw``.
    """

    def __init__(self, model: mesa.Model, spec: Train, graph: TransportGraph,
                 gamma_h: float, delays_min: dict[int, int] | None = None,
                 degradation: DegradationModel | None = None) -> None:
        super().__init__(model)
        self.spec = spec
        self.name = spec.name
        self.graph = graph
        self.gamma_h = float(gamma_h)
        # the battery's ageing model (module docstring); none: SOH stays 1.0
        self.degradation = degradation if degradation is not None else ZeroDegradation()
        # a disturbance the planner does not know: trip n (1-based) takes this many extra min
        self.delays_min = {int(n): int(d) for n, d in (delays_min or {}).items()}
        bad = {n: d for n, d in self.delays_min.items() if n < 1 or d < 0}
        if bad:
            raise ValueError(f"delays_min of train {self.name}: trip numbers must be >= 1 and "
                             f"delays >= 0 min, got {bad}")
        self.reset()

    def reset(self) -> None:
        self.c_mw = float(self.spec.c0_mw)
        self.e_mwh = float(self.spec.e0_mwh)
        self.station: str | None = self.spec.start
        self.origin: str = self.spec.start  # the station of the last departure
        self.dest: str | None = None
        self.arrive_min: int | None = None
        self.trips = 0
        self.travel_min_total = 0
        self.degradation.reset()
        self.aged_min = 0  # the time up to which the degradation model has been fed

    @property
    def parked(self) -> bool:
        return self.station is not None

    # ---------------------------------------------------------------- ageing
    @property
    def soc_frac(self) -> float:
        """Energy as a fraction of the train's nameplate ``e_max_mwh`` (0 without a battery)."""
        e_max = self.spec.e_max_mwh
        return self.e_mwh / e_max if e_max > 0 else 0.0

    def age_to(self, now_min: int) -> None:
        """Feed the degradation model the time from the last feed to ``now_min`` (calendar
        ageing at the SOC held since then; the SOC only changes by exchanges, each fed as it
        happens). A time before the last feed is an error: the clock never goes back."""
        now_min = int(now_min)
        if now_min < self.aged_min:
            raise ValueError(f"train {self.name}: age_to({now_min}) is before the last feed at "
                             f"minute {self.aged_min}")
        if now_min > self.aged_min:
            s = self.soc_frac
            self.degradation.update(s, s, 0.0, now_min - self.aged_min,
                                    self.spec.e_max_mwh)
            self.aged_min = now_min

    def soh_frac_at(self, now_min: int) -> float:
        """The battery's state of health at ``now_min`` (feeds the model up to then first)."""
        self.age_to(now_min)
        return float(self.degradation.soh_frac())

    def snapshot(self) -> VehicleState:
        """The train as a policy sees it: parked at its station, or in transit from ``origin``
        (the station it left) to ``dest``; SOC of its nameplate energy, SOH as of the last feed
        of its degradation model (a snapshot changes nothing)."""
        return VehicleState(self.name, self.station if self.parked else self.origin, self.parked,
                            self.dest, self.arrive_min, self.e_mwh, self.soc_frac, kind="train",
                            c_mw=self.c_mw, soh_frac=float(self.degradation.soh_frac()))

    # ---------------------------------------------------------------- trips
    def trip_problem(self, path: tuple[str, ...]) -> str | None:
        """Why the train cannot start along ``path`` now, or None."""
        if not self.parked:
            return f"in transit to {self.dest}"
        if len(path) < 2 or path[0] != self.station:
            return f"path {list(path)} must start at the train's station {self.station!r}"
        for u, v in zip(path, path[1:]):
            if not self.graph.graph.has_edge(u, v):
                return f"no rail edge {u!r}->{v!r}"
        return None

    def depart(self, env, path: tuple[str, ...], now_min: int, log: EventLog) -> str | None:
        """Leave now along ``path`` (a SimPy process is started on ``env``); returns the reason
        when the trip is refused (nothing changes then), else None."""
        problem = self.trip_problem(tuple(path))
        if problem is not None:
            return problem
        path = tuple(path)
        minutes = sum(int(self.graph.edge(u, v)["travel_min"]) for u, v in zip(path, path[1:]))
        delay = self.delays_min.get(self.trips + 1, 0)
        log(now_min, self.name, "depart", self.station or "", f"to {path[-1]} via "
            f"{'-'.join(path)}, {minutes} min" + (f" + {delay} min delay" if delay else ""))
        self.origin = path[0]
        self.station = None
        self.dest = path[-1]
        self.arrive_min = now_min + minutes + delay
        self.trips += 1
        env.process(self._travel(env, path, log, delay))
        return None

    def _travel(self, env, path: tuple[str, ...], log: EventLog, delay_min: int = 0):
        """SimPy process: each edge takes its ``travel_min`` (the last one plus any delay); the
        train is parked on arrival."""
        for u, v in zip(path, path[1:]):
            minutes = int(self.graph.edge(u, v)["travel_min"])
            if v == path[-1]:
                minutes += delay_min
            yield env.timeout(minutes)
            self.travel_min_total += minutes
            if v != path[-1]:
                log(int(env.now), self.name, "pass", v, "")
        self.station = path[-1]
        self.dest = None
        self.arrive_min = None
        log(int(env.now), self.name, "arrive", self.station, "")

    # ---------------------------------------------------------------- exchange (B.6-B.7)
    def own_exchange_problem(self, dc_mw: float, de_mwh: float, station_name: str) -> str | None:
        """The train's side of an exchange: parked at ``station_name`` and its state after the
        exchange within ``0 <= C <= C_max``, ``0 <= E <= E_max``, ``E <= gamma * C``."""
        if not (np.isfinite(dc_mw) and np.isfinite(de_mwh)):
            return f"dc_mw={dc_mw!r}, de_mwh={de_mwh!r} must be finite"
        if not self.parked:
            return f"in transit to {self.dest}: no exchange"
        if station_name != self.station:
            return f"parked at {self.station!r}, not at {station_name!r}"
        c, e = self.c_mw + dc_mw, self.e_mwh + de_mwh
        sp = self.spec
        if not -STATE_TOL <= c <= sp.c_max_mw + STATE_TOL:
            return f"train capacity would be {c:.6f} MW, outside [0, {sp.c_max_mw}]"
        if not -STATE_TOL <= e <= sp.e_max_mwh + STATE_TOL:
            return f"train energy would be {e:.6f} MWh, outside [0, {sp.e_max_mwh}]"
        if e > self.gamma_h * max(c, 0.0) + STATE_TOL:
            return (f"train energy {e:.6f} MWh would exceed gamma*C = "
                    f"{self.gamma_h * c:.6f} MWh")
        return None

    def exchange_problem(self, dc_mw: float, de_mwh: float, station: TsnStationLike) -> str | None:
        """Why ``exchange(dc_mw, de_mwh, station)`` is not allowed now, or None."""
        return (self.own_exchange_problem(dc_mw, de_mwh, station.name)
                or station.exchange_problem(dc_mw, de_mwh))

    def apply_own_exchange(self, dc_mw: float, de_mwh: float, station_name: str, now_min: int,
                           log: EventLog) -> None:
        """The train's half of an exchange whose station half the caller applies (check
        :meth:`own_exchange_problem` first). Used when several trains exchange with one
        station in the same hour: the station's limits hold for their sum."""
        self.age_to(now_min)
        s_before = self.soc_frac
        self.c_mw = _snap(self.c_mw + dc_mw, 0.0, self.spec.c_max_mw)
        self.e_mwh = _snap(self.e_mwh + de_mwh, 0.0, self.spec.e_max_mwh)
        self.degradation.update(s_before, self.soc_frac, abs(de_mwh), 0, self.spec.e_max_mwh)
        log(now_min, self.name, "exchange", station_name,
            f"dc_mw={dc_mw:+.6f} de_mwh={de_mwh:+.6f}")

    def exchange(self, dc_mw: float, de_mwh: float, station: TsnStationLike, now_min: int,
                 log: EventLog) -> str | None:
        """Move ``dc_mw`` capacity and ``de_mwh`` energy from ``station`` to this train (negative
        values: train to station). All or nothing: returns the reason when refused, else None.
        Capacity and energy are conserved between the two."""
        dc_mw, de_mwh = float(dc_mw), float(de_mwh)
        problem = self.exchange_problem(dc_mw, de_mwh, station)
        if problem is not None:
            log(now_min, self.name, "exchange_refused", self.station or "", problem)
            return problem
        if dc_mw == 0.0 and de_mwh == 0.0:
            return None
        station.apply_exchange(dc_mw, de_mwh)
        self.apply_own_exchange(dc_mw, de_mwh, station.name, now_min, log)
        return None


def train_degradation(name: str, spec: Train, gamma_h: float, **params) -> DegradationModel:
    """The ageing model ``name`` for train ``spec``: pack size ``e_nom_kwh`` from the train's
    ``e_max_mwh`` and the C-rate of an exchange ``c_rate_default_per_h = 1/gamma_h``, unless
    ``params`` set them (a ``ValueError`` names a bad name or parameter)."""
    defaults: dict = {"e_nom_kwh": 1000.0 * spec.e_max_mwh} if spec.e_max_mwh > 0 else {}
    if gamma_h > 0:
        defaults["c_rate_default_per_h"] = 1.0 / gamma_h
    return make_degradation(name, **{**defaults, **params})


class TrainFleet(mesa.Model):
    """The mesa model owning the train agents. Never call :meth:`step`: SimPy is the clock.

    ``degradation(spec)`` gives each train its battery ageing model (default: none)."""

    def __init__(self, specs: Iterable[Train], graph: TransportGraph, gamma_h: float,
                 rng: np.random.Generator | None = None,
                 delays_min: dict[str, dict[int, int]] | None = None,
                 degradation: Callable[[Train], DegradationModel] | None = None) -> None:
        super().__init__(rng=rng)
        self.graph = graph
        specs = list(specs)
        delays_min = dict(delays_min or {})
        unknown = set(delays_min) - {s.name for s in specs}
        if unknown:
            raise ValueError(f"delays_min: unknown trains {sorted(unknown)}")
        self.trains: list[TrainAgent] = [
            TrainAgent(self, s, graph, gamma_h, delays_min.get(s.name),
                       degradation(s) if degradation is not None else None) for s in specs]

    def step(self) -> None:  # pragma: no cover - guard against misuse
        raise RuntimeError("TrainFleet is driven by the SimPy engine; do not call step()")
