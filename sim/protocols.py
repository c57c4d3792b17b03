"""The contracts between the engine and the other layers (structural typing only)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from sim.types import Decision, Problem, SiteState, SiteStepResult, State


@runtime_checkable
class Policy(Protocol):
    """Decides what the vehicles do (Grid2Op ``act(observation) -> action``).

    ``reset`` is called once per run; ``decide`` once per step and must not mutate anything it is
    given. Hyper-parameters are explicit keyword arguments of the constructor, reported by
    ``params()``. A planning policy may also expose ``plan()`` returning the plan it followed.
    """

    name: str

    def reset(self, problem: Problem, rng: np.random.Generator) -> None: ...

    def decide(self, state: State) -> Decision: ...

    def params(self) -> dict[str, Any]: ...


class GridSite(Protocol):
    """A grid the engine steps: it observes its profiles and solves one step around the MESS."""

    name: str
    node: str

    def observe(self, time_min: int) -> SiteState: ...

    def step(self, time_min: int, dt_min: int, mess_p_mw: float) -> SiteStepResult: ...


class VehicleAgent(Protocol):
    """What the engine needs from a vehicle (implemented by ``agents.vehicle.Vehicle``)."""

    name: str

    def snapshot(self, now_min: int, dt_min: int) -> Any: ...

    def apply_power(self, p_mw: float, dt_min: int, now_min: int) -> Mapping[str, float]: ...
