"""The SimPy engine: one clock in integer minutes, one controller, one policy - for every system.

There is one engine. It owns the SimPy environment, the policy (reset once with the system's
:class:`~sim.types.Problem`; a failing reset is a recorded failure, not a traceback - only a
:class:`~sim.errors.ScenarioError`, a scenario that is wrong before anything runs, is raised),
the controller process, the wrapper around ``decide`` (a policy that raises or returns something
other than a :class:`~sim.types.Decision` is a recorded failure; the time spent in the policy is
measured), the recorder and the failure log.

What differs between the systems lives in one object per system, driven through the
:class:`sim.protocols.System` protocol (the DN sites, the transmission grid with trains, the
truck missions: :mod:`sim.systems`). The controller wakes at every step boundary
``start_min + k * step_min``, **after** every arrival due at that minute (a low-priority event),
and does:

1. ``state = system.observe(now, k)``: the vehicles that decide now (``None``: nobody left);
2. ``decision = policy.decide(state)`` (checked by ``system.check``; a failure gives ``None``);
3. ``system.apply(decision, now, k, why)``: trips, exchanges, charging, mission actions,
   set-points; then back to 1 (the DN and transmission systems have everyone decide together in
   one call, the trucks one after the other, each seeing what the previous ones did);
4. ``system.settle(now, k)``: each grid's power flow once, the step's rows recorded;

then waits one step. After the last arrival the engine calls ``system.close(end_min)``.

The systems live in :mod:`sim` because they use the agents and grids only through the
protocols of :mod:`sim.protocols` (structural typing): ``sim`` imports nothing of the agents,
grids, policies or experiments layers, and the experiments build a system from concrete agents
and grids and hand it to the engine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy
from simpy.events import NORMAL

from sim.errors import RunFailure, ScenarioError
from sim.protocols import Policy, System
from sim.recorder import Recorder
from sim.types import Decision, State

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

    policy_reset_s: float = 0.0
    policy_s: float = 0.0
    grid_s: float = 0.0
    total_s: float = 0.0
    per_site_s: dict[str, float] = field(default_factory=dict)


class Engine:
    """Runs one ``system`` (:class:`sim.protocols.System`) under ``policy``."""

    def __init__(self, system: System, policy: Policy, rng: np.random.Generator,
                 recorder: Recorder | None = None,
                 on_step: Callable[[int, int], None] | None = None) -> None:
        """``on_step(step, n_steps)``, when given, is called after each settled step (a
        progress bar's hook; it must not touch the simulation)."""
        if system.step_min < 1:
            raise ValueError("step_min must be >= 1")
        self.system = system
        self.policy = policy
        self.rng = rng
        self.recorder = recorder if recorder is not None else Recorder()
        self.timings = Timings()
        self.env = simpy.Environment(initial_time=system.start_min)
        self.reset_ok = False
        self._reset_done = False
        self.on_step = on_step

    @property
    def _policy_name(self) -> str:
        return getattr(self.policy, "name", type(self.policy).__name__)

    # ------------------------------------------------------------------ public
    def reset(self) -> bool:
        """Reset the policy with the system's problem, once (``run`` does it if not done yet;
        a caller that needs the policy's plans before the run calls it first). Returns whether
        the reset worked; a failing reset is recorded and the policy is then never asked."""
        if self._reset_done:
            return self.reset_ok
        self._reset_done = True
        t = time.perf_counter()
        try:
            self.policy.reset(self.system.problem, self.rng)
            self.reset_ok = True
        except ScenarioError:
            raise
        except Exception as exc:  # a planning failure is recorded; the steps get no decision
            self._fail(self.system.start_min, "policy", self._policy_name, "reset_failed",
                       f"{type(exc).__name__}: {exc}")
        self.timings.policy_reset_s = time.perf_counter() - t
        return self.reset_ok

    def run(self) -> Recorder:
        t0 = time.perf_counter()
        before = self.timings.policy_reset_s if self._reset_done else 0.0
        self.reset()
        self.system.start(self.env, self.recorder, self.timings, self._policy_name)
        self.env.process(self._controller())
        # One extra minute so that arrivals due exactly at the end are recorded too.
        self.env.run(until=self.system.end_min + 1)
        self.system.close(self.system.end_min)
        self.timings.total_s = before + time.perf_counter() - t0
        return self.recorder

    # ------------------------------------------------------------------ internals
    def _fail(self, time_min: int, kind: str, entity: str, status: str, message: str) -> None:
        self.recorder.failure(RunFailure(int(time_min), kind, entity, status, message))

    def _decide(self, state: State) -> tuple[Decision | None, str]:
        """The policy's decision, or ``None`` and why (the failure is recorded)."""
        t = time.perf_counter()
        decision: Any = None
        why = ""
        try:
            decision = self.policy.decide(state)
            problem = self.system.check(decision)
            if problem:
                self._fail(state.time_min, "policy", self._policy_name, "bad_decision", problem)
                decision, why = None, problem
        except Exception as exc:  # a policy bug or solver failure must not kill the run
            self._fail(state.time_min, "policy", self._policy_name, "error",
                       f"{type(exc).__name__}: {exc}")
            decision, why = None, str(exc)
        self.timings.policy_s += time.perf_counter() - t
        return decision, why

    def _controller(self):
        sys_ = self.system
        for step in range(sys_.n_steps):
            now = int(self.env.now)
            state = sys_.observe(now, step)
            while state is not None:
                if self.reset_ok:
                    decision, why = self._decide(state)
                else:
                    decision, why = None, "the policy's reset failed"
                sys_.apply(decision, now, step, why)
                state = sys_.observe(now, step)
            t = time.perf_counter()
            sys_.settle(now, step)
            self.timings.grid_s += time.perf_counter() - t
            if self.on_step is not None:
                self.on_step(step + 1, sys_.n_steps)
            yield _Late(self.env, sys_.step_min)

