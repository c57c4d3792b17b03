"""The contracts between the engine and the other layers (structural typing only)."""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from sim.types import (
    Decision,
    Problem,
    SiteInfo,
    SiteState,
    SiteStepResult,
    State,
    VehicleSpec,
    VehicleState,
)


@runtime_checkable
class Policy(Protocol):
    """Decides what the vehicles (and, where it dispatches them, the grid resources) do:
    Grid2Op's ``act(observation) -> action``, one contract for every system.

    ``reset`` is called once per run with the :class:`~sim.types.Problem` (whichever parts the
    scenario has: distribution sites, a transmission grid, truck missions); ``decide`` at every
    decision point with a :class:`~sim.types.State` and must not mutate anything it is given; it
    returns a :class:`~sim.types.Decision` (commands per vehicle, optional grid set-points).
    Hyper-parameters are explicit keyword arguments of the constructor, reported by
    ``params()``. Which systems a policy runs on is declared in the registry
    (``policies.registry``). A planning policy may also expose ``plans()``/``plan`` returning
    the plan it followed.
    """

    name: str

    def reset(self, problem: Problem, rng: np.random.Generator) -> None: ...

    def decide(self, state: State) -> Decision: ...

    def params(self) -> dict[str, Any]: ...


@runtime_checkable
class GridSite(Protocol):
    """A grid the engine steps: it observes its profiles and solves one step around the MESS.

    ``info`` is what policies may know about it (forecasts, resources). Optional attributes
    ``bus_index`` and ``line_index`` label the per-element result arrays.
    """

    name: str
    node: str
    info: SiteInfo

    def observe(self, time_min: int) -> SiteState: ...

    def step(self, time_min: int, dt_min: int, mess_p_mw: float) -> SiteStepResult: ...


@runtime_checkable
class ChargingGrid(Protocol):
    """A feeder the Co-OPT trucks' chargers are connected to (``grids.truck_grid``).

    ``bus_of_node`` maps each charging node of the road graph to its bus; ``bus_index`` lists
    the buses whose voltages a step returns (in that order). ``step(time_min, dt_min,
    p_mw_by_node)`` sets the base case of the step starting at ``time_min`` and the average
    grid-side power each charging node drew over it (MW, > 0 = consumption), runs one AC power
    flow and returns an object with ``converged``, ``status``, ``message`` and ``vm_pu``
    (ordered like ``bus_index``, NaN where there is no result); it never raises for a failed
    power flow (``grids.adapter.PowerFlowResult``).
    """

    name: str
    bus_of_node: Mapping[int, int]
    bus_index: np.ndarray

    def step(self, time_min: int, dt_min: int, p_mw_by_node: Mapping[int, float]) -> Any: ...


# log(time_min, vehicle, event, node, detail)
EventLog = Callable[[int, str, str, str, str], None]


@runtime_checkable
class VehicleAgent(Protocol):
    """What the engine needs from a vehicle (implemented by ``agents.vehicle.Vehicle``).

    ``apply_power`` returns an object with ``p_requested_mw``, ``p_mw``, ``e_start_mwh``,
    ``e_end_mwh``, ``loss_conversion_mwh``, ``loss_self_mwh``, ``throughput_mwh``, ``clipped``
    and ``bms_hold`` (``agents.battery.StepEnergy``).
    """

    name: str
    node: str
    dest: str | None
    spec: VehicleSpec

    @property
    def parked(self) -> bool: ...

    def snapshot(self, now_min: int, dt_min: int) -> VehicleState: ...

    def trip_problem(self, dest: str, dt_min: int) -> str | None: ...

    def out_of_service(self, now_min: int) -> str | None: ...

    def depart(self, dest: str, now_min: int, log: EventLog) -> list[str]: ...

    def drive(self, env: Any, path: list[str], log: EventLog) -> Generator: ...

    def apply_power(self, p_mw: float, dt_min: int, now_min: int, log: EventLog,
                    connected: bool = True) -> Any: ...

    def close(self, now_min: int, log: EventLog) -> None: ...


@runtime_checkable
class System(Protocol):
    """What differs between the systems the one :class:`sim.engine.Engine` runs (DN sites,
    a transmission grid with trains, truck missions): the engine owns the clock, the policy
    and the failure log, and drives a system through these calls.

    ``problem`` is what the policy is reset with. The controller wakes ``n_steps`` times, at
    ``start_min + k * step_min`` (after every arrival due at that minute), and the run ends at
    ``end_min`` (arrivals due then still happen). ``start`` binds the system to the run's clock,
    recorder, timings and the policy's name (for failure rows) once, before the first step. At
    each wake:

    * ``observe(now, step)`` gives the :class:`~sim.types.State` of the vehicles that decide
      now, one call after the other, until it returns ``None`` (every one due now has decided);
    * ``check(decision)`` says what is wrong with the decision the policy returned (``None``:
      usable; raising counts as a policy error);
    * ``apply(decision, now, step, why)`` applies it; ``decision`` is ``None`` when the policy
      gave no usable one (``why`` says why: the failure is already recorded);
    * ``settle(now, step)`` runs each grid's power flow once and records the step's rows.

    ``close(end_min)`` ends the run (vehicles still out, final states).
    """

    problem: Problem
    start_min: int
    step_min: int
    n_steps: int
    end_min: int

    def start(self, env: Any, recorder: Any, timings: Any, policy_name: str) -> None: ...

    def observe(self, now: int, step: int) -> State | None: ...

    def check(self, decision: Any) -> str | None: ...

    def apply(self, decision: Decision | None, now: int, step: int, why: str) -> None: ...

    def settle(self, now: int, step: int) -> None: ...

    def close(self, end_min: int) -> None: ...
