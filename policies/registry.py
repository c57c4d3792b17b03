"""The policy registry (PuLP ``getSolver`` style): name -> class, with checked parameters."""

from __future__ import annotations

import inspect
import math
from typing import Any

from policies.baselines import GreedyPolicy, IdlePolicy, SchedulePolicy, StationaryPolicy
from policies.milp import MilpPolicy
from sim.errors import ScenarioError

POLICIES: dict[str, type] = {
    "idle": IdlePolicy,
    "stationary": StationaryPolicy,
    "greedy": GreedyPolicy,
    "schedule": SchedulePolicy,
    "milp": MilpPolicy,
}


def policy_problems(name: str, params: dict[str, Any], path: str = "policy",
                    context: dict[str, Any] | None = None) -> list[str]:
    """Every problem with a policy name and its parameters, as ``path: message`` strings.

    Beyond names and types, a policy class may check its values with a classmethod
    ``param_problems(params, path, context)``; ``context`` holds what the scenario knows
    (``step_min``, ``horizon_min``, ``nodes``, ``vehicles``) when it is known.
    """
    if name not in POLICIES:
        return [f"{path}.name: unknown policy {name!r}; valid: {', '.join(sorted(POLICIES))}"]
    cls = POLICIES[name]
    sig = inspect.signature(cls.__init__)
    out = []
    for key, value in params.items():
        if key not in sig.parameters or key == "self":
            accepted = ", ".join(cls.param_names()) or "none"
            out.append(f"{path}.params.{key}: policy {name!r} takes no parameter {key!r} "
                       f"(accepted: {accepted})")
            continue
        default = sig.parameters[key].default
        if default is not inspect.Parameter.empty and default is not None:
            expected = type(default)
            ok = isinstance(value, expected) or (expected is float and isinstance(value, int))
            if isinstance(value, bool) and expected is not bool:
                ok = False
            if not ok:
                out.append(f"{path}.params.{key}: expected {expected.__name__}, "
                           f"got {type(value).__name__} {value!r}")
            elif isinstance(value, float) and not math.isfinite(value):
                out.append(f"{path}.params.{key}: must be finite, got {value!r}")
    for key, p in sig.parameters.items():
        if key != "self" and p.default is inspect.Parameter.empty and key not in params:
            out.append(f"{path}.params.{key}: policy {name!r} needs parameter {key!r}")
    if not out and hasattr(cls, "param_problems"):
        out += cls.param_problems(params, f"{path}.params", context or {})
    return out


def make_policy(name: str, **params: Any):
    """Instantiate a registered policy; raises :class:`ScenarioError` listing every problem."""
    problems = policy_problems(name, params)
    if problems:
        raise ScenarioError(problems)
    return POLICIES[name](**params)
