"""The one policy registry (PuLP ``getSolver`` style): every policy under a unique name.

A name stands for one dispatch method; where the method exists for several systems (``greedy``,
``milp``), the registry holds its implementation for each, and the scenario's system picks it.
A system is what a :class:`~sim.types.Problem` offers (:meth:`~sim.types.Problem.offers`):

* ``dn-sites``: distribution networks with their own resources and MESS on a road graph
  (``three-dn``, ``sfi-quick``, ``tiny``);
* ``transmission``: a transmission grid with thermal units, storage stations and battery
  trains on a rail time-space network (``tsn-ieee30``, ``tsn-ieee118``);
* ``missions``: truck swap missions on a directed road graph (``coopt-small``,
  ``coopt-large``).

Every implementation has the one contract of :class:`sim.protocols.Policy`: keyword
hyper-parameters, ``reset(problem, rng)``, ``decide(state) -> Decision``, ``params()``. A name
asked of a system it does not run on is a :class:`~sim.errors.ScenarioError` that says which
systems it needs, before any run starts.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

from policies.baselines import GreedyPolicy, IdlePolicy, SchedulePolicy, StationaryPolicy
from policies.coopt_baselines import GreedyNN, ShortestDistance
from policies.coopt_milp import FleetMILP
from policies.dp_router import DPRouter
from policies.milp import MilpPolicy
from policies.tsn_policies import OcdPolicy, ParkPolicy, UcMilpPolicy
from sim.errors import ScenarioError

#: What each system is, for messages.
SYSTEMS: dict[str, str] = {
    "dn-sites": "distribution sites with MESS on a road graph (three-dn, sfi-quick, tiny)",
    "transmission": "a transmission grid with units, stations and battery trains "
                    "(tsn-ieee30, tsn-ieee118)",
    "missions": "truck swap missions on a road graph (coopt-small, coopt-large)",
}

#: name -> {system -> class}
POLICIES: dict[str, dict[str, type]] = {
    "idle": {"dn-sites": IdlePolicy, "transmission": ParkPolicy},
    "stationary": {"dn-sites": StationaryPolicy},
    "greedy": {"dn-sites": GreedyPolicy, "missions": GreedyNN},
    "schedule": {"dn-sites": SchedulePolicy},
    "milp": {"dn-sites": MilpPolicy, "missions": FleetMILP},
    "uc-milp": {"transmission": UcMilpPolicy},
    "ocd": {"transmission": OcdPolicy},
    "dp": {"missions": DPRouter},
    "shortest": {"missions": ShortestDistance},
}

DEFAULT_SYSTEM = "dn-sites"


def requires(name: str) -> frozenset[str]:
    """The systems ``name`` runs on (any one of them)."""
    return frozenset(POLICIES[name])


def names_for(system: str) -> list[str]:
    """The registered policies that run on ``system``, sorted."""
    return sorted(n for n, impl in POLICIES.items() if system in impl)


def policy_class(name: str, system: str = DEFAULT_SYSTEM) -> type:
    """The implementation of ``name`` for ``system``; ScenarioError if there is none."""
    problems = _name_problems(name, system, "policy")
    if problems:
        raise ScenarioError(problems)
    return POLICIES[name][system]


def _name_problems(name: str, system: str, path: str) -> list[str]:
    if name not in POLICIES:
        others = sorted(set(POLICIES) - set(names_for(system)))
        return [f"{path}.name: unknown policy {name!r}; valid: {', '.join(names_for(system))}"
                + (f" (on other systems: {', '.join(others)})" if others else "")]
    if system not in POLICIES[name]:
        needs = " or ".join(f"{s} ({SYSTEMS[s]})" for s in sorted(POLICIES[name]))
        return [f"{path}.name: policy {name!r} needs a scenario with {needs}; this scenario "
                f"offers {system} ({SYSTEMS.get(system, system)}); policies for it: "
                f"{', '.join(names_for(system)) or 'none'}"]
    return []


def _param_names(cls: type) -> tuple[str, ...]:
    return tuple(p for p in inspect.signature(cls.__init__).parameters if p != "self")


def policy_problems(name: str, params: dict[str, Any], path: str = "policy",
                    context: dict[str, Any] | None = None) -> list[str]:
    """Every problem with a policy name and its parameters, as ``path: message`` strings.

    ``context`` holds what the scenario knows (``system``, ``step_min``, ``horizon_min``,
    ``nodes``, ``vehicles``) when it is known; the system defaults to ``dn-sites``. Beyond
    names and types, a policy class may check its values with a classmethod
    ``param_problems(params, path, context)``.
    """
    context = context or {}
    system = context.get("system", DEFAULT_SYSTEM)
    out = _name_problems(name, system, path)
    if out:
        return out
    cls = POLICIES[name][system]
    sig = inspect.signature(cls.__init__)
    for key, value in params.items():
        if key not in sig.parameters and key in getattr(cls, "renamed_params", {}):
            out.append(f"{path}.params.{key}: {cls.renamed_params[key]}")
            continue
        if key not in sig.parameters or key == "self":
            accepted = ", ".join(_param_names(cls)) or "none"
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
        out += cls.param_problems(params, f"{path}.params", context)
    return out


def make_policy(name: str, system: str = DEFAULT_SYSTEM, **params: Any):
    """Instantiate a registered policy for ``system``; raises :class:`ScenarioError` listing
    every problem."""
    problems = policy_problems(name, params, context={"system": system})
    if problems:
        raise ScenarioError(problems)
    try:
        return POLICIES[name][system](**params)
    except ValueError as exc:  # a constructor's own check of a value
        raise ScenarioError([f"policy.params: {exc}"]) from None
