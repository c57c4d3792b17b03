"""Two kinds of failure.

* :class:`ScenarioError` is raised while a scenario is being built or validated. It carries every
  problem found, each as ``path: message``, so the user can fix them all in one pass.
* :class:`RunFailure` is *recorded*, never raised: a power flow that did not converge, a policy that
  failed, a solver that stopped early. A run keeps going and the failure is a row in its results.
"""

from __future__ import annotations

from dataclasses import dataclass


class MescosimWarning(UserWarning):
    """Warnings issued by mescosim itself (tests turn these into errors)."""


class ScenarioError(Exception):
    """A scenario is wrong. ``problems`` lists every problem found, each ``"path: message"``."""

    def __init__(self, problems: list[str] | tuple[str, ...] | str, source: str | None = None):
        if isinstance(problems, str):
            problems = [problems]
        self.problems: tuple[str, ...] = tuple(problems)
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f" in {self.source}" if self.source else ""
        n = len(self.problems)
        head = f"scenario{where} has {n} problem{'s' if n != 1 else ''}:"
        return "\n".join([head, *(f"  - {p}" for p in self.problems)])


class PolicyError(Exception):
    """A policy could not produce a decision. The engine records it and applies a safe decision."""


@dataclass(frozen=True)
class RunFailure:
    """A failure recorded during a run (not raised).

    ``kind`` is one of ``power_flow``, ``policy``, ``solver``, ``vehicle``; ``status`` is a short
    machine-readable word (``not_converged``, ``isolated_buses``, ``infeasible``, ...).
    """

    time_min: int
    kind: str
    entity: str
    status: str
    message: str
