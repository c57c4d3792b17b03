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

Policies from outside the project join the registry in three ways, all checked against the
:class:`sim.protocols.Policy` contract (a class with ``reset``, ``decide`` and ``params``):

* :func:`register_policy` (``mescosim.register_policy``) in the running process;
* an entry point in the group ``mescosim.policies`` of an installed package (``name =
  "my_pkg.rules:NightCharger"``), registered on the registry's first use in every process;
* a scenario naming ``"module:Class"`` (``policy.name = "my_pkg.rules:NightCharger"``): the module
  is imported by that name (only a name holding a colon is ever imported) and the class registered
  under the full name.

A plugin class says which systems it runs on with a class attribute ``systems`` (a tuple of
:data:`SYSTEMS` keys); without one it runs on ``dn-sites``.
"""

from __future__ import annotations

import importlib
import inspect
import math
from importlib import metadata
from typing import Any

from policies.baselines import GreedyPolicy, IdlePolicy, SchedulePolicy, StationaryPolicy
from policies.coopt_baselines import GreedyNN, ShortestDistance
from policies.coopt_milp import FleetMILP
from policies.dn_dp import DnDpPolicy
from policies.dn_ocd import OcdDnPolicy
from policies.dp_router import DPRouter
from policies.milp import MilpPolicy
from policies.tsn_policies import (
    GreedyTrainPolicy,
    OcdPolicy,
    ParkPolicy,
    TrainDpPolicy,
    UcMilpPolicy,
)
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
# the DP router and the OCD coordinator on distribution sites (weighted-SFI objective)
POLICIES["dp"]["dn-sites"] = DnDpPolicy
POLICIES["ocd"]["dn-sites"] = OcdDnPolicy
POLICIES["dp"]["transmission"] = TrainDpPolicy
POLICIES["greedy"]["transmission"] = GreedyTrainPolicy

DEFAULT_SYSTEM = "dn-sites"

#: The methods of the :class:`sim.protocols.Policy` contract a registered class must have.
CONTRACT = ("reset", "decide", "params")
#: Entry-point group of installed policy plugins.
ENTRY_POINT_GROUP = "mescosim.policies"

_BUILTIN = frozenset(POLICIES)
_RUNTIME: set[str] = set()  # names registered by register_policy in this process
_BROKEN: dict[str, str] = {}  # plugin name -> why it could not be loaded
_PLUGINS_LOADED = False


def contract_problems(cls: Any, what: str) -> list[str]:
    """Why ``cls`` cannot be a policy (not a class, or a method of the contract missing)."""
    if not inspect.isclass(cls):
        return [f"{what} is not a class (got {type(cls).__name__})"]
    missing = [m for m in CONTRACT if not callable(getattr(cls, m, None))]
    if missing:
        return [f"{what} does not implement the Policy protocol (sim.protocols.Policy): no "
                f"method {', '.join(missing)}"]
    return []


def _systems_of(cls: type, systems: Any, what: str) -> tuple[tuple[str, ...], list[str]]:
    if systems is None:
        systems = getattr(cls, "systems", (DEFAULT_SYSTEM,))
    if isinstance(systems, str):
        systems = (systems,)
    try:
        systems = tuple(systems)
    except TypeError:
        return (), [f"{what}: systems must be a tuple of {', '.join(SYSTEMS)}, got {systems!r}"]
    bad = [s for s in systems if s not in SYSTEMS]
    if bad or not systems:
        return (), [f"{what}: unknown system{'s' if len(bad) > 1 else ''} "
                    f"{', '.join(map(repr, bad)) or '(none given)'}; systems: "
                    f"{', '.join(SYSTEMS)}"]
    return systems, []


def register_policy(name: str, cls: type, systems: tuple[str, ...] | str | None = None,
                    replace: bool = False) -> None:
    """Register ``cls`` as the policy ``name`` for each of ``systems``.

    ``systems`` defaults to the class attribute ``systems``, else ``("dn-sites",)``. A name of
    the built-in policies, or one registered before, is refused unless ``replace`` is true.
    Raises :class:`ScenarioError` naming every problem. The registration holds in this process
    (and in worker processes only if they register it too: use an entry point or a
    ``"module:Class"`` name for sweeps on worker processes).
    """
    load_plugins()
    what = f"policy {name!r}"
    problems = []
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        problems.append(f"policy name: expected a non-empty name without surrounding spaces, "
                        f"got {name!r}")
    elif name in _BUILTIN and not replace:
        problems.append(f"{what}: is a built-in policy; pass replace=True to replace it")
    elif name in POLICIES and not replace:
        problems.append(f"{what}: is registered already ({_where(name)}); pass replace=True "
                        f"to replace it")
    problems += contract_problems(cls, what)
    systems_t, bad = _systems_of(cls, systems, what) if not problems else ((), [])
    problems += bad
    if problems:
        raise ScenarioError(problems)
    POLICIES[name] = {s: cls for s in systems_t}
    _BROKEN.pop(name, None)
    _RUNTIME.add(name)


def unregister_policy(name: str) -> None:
    """Remove a policy registered by :func:`register_policy`, an entry point or a
    ``module:Class`` name (built-in policies stay); a name not registered is no error."""
    if name in _BUILTIN:
        raise ScenarioError([f"policy {name!r}: a built-in policy cannot be unregistered"])
    POLICIES.pop(name, None)
    _BROKEN.pop(name, None)
    _RUNTIME.discard(name)


def runtime_registered() -> frozenset[str]:
    """Names registered with :func:`register_policy` in this process (not built-in, not from an
    entry point or a ``module:Class`` name): worker processes do not know them."""
    return frozenset(_RUNTIME)


def _where(name: str) -> str:
    impl = POLICIES.get(name, {})
    cls = next(iter(impl.values()), None)
    return f"{cls.__module__}.{cls.__qualname__}" if cls is not None else "?"


def load_plugins(refresh: bool = False) -> None:
    """Register every ``mescosim.policies`` entry point once per process (again with
    ``refresh``, e.g. after installing a package); one that fails to load is remembered with the
    reason, reported when a scenario names it."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED and not refresh:
        return
    if refresh:
        importlib.invalidate_caches()
    _PLUGINS_LOADED = True
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in POLICIES:
            continue  # a built-in name is never shadowed by an installed package
        what = f"policy {ep.name!r} (entry point {ep.value} in group {ENTRY_POINT_GROUP})"
        try:
            cls = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the registry
            _BROKEN[ep.name] = f"{what} cannot be loaded: {type(exc).__name__}: {exc}"
            continue
        problems = contract_problems(cls, what)
        systems, bad = _systems_of(cls, None, what) if not problems else ((), [])
        problems += bad
        if problems:
            _BROKEN[ep.name] = "; ".join(problems)
        else:
            POLICIES[ep.name] = {s: cls for s in systems}


def _import_named(name: str) -> list[str]:
    """Import ``module:Class`` and register the class under ``name``; the problems if not."""
    module_name, _, qualname = name.partition(":")
    if not module_name or not qualname:
        return [f"unknown policy {name!r}: a plugin policy is named 'module:Class', e.g. "
                f"'my_pkg.rules:NightCharger'"]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        return [f"policy {name!r}: cannot import module {module_name!r} ({exc})"]
    except Exception as exc:  # noqa: BLE001 - the user's module failed while importing
        return [f"policy {name!r}: importing module {module_name!r} failed: "
                f"{type(exc).__name__}: {exc}"]
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return [f"policy {name!r}: module {module_name!r} has no class {qualname!r}"]
    what = f"policy {name!r}"
    problems = contract_problems(obj, what)
    systems, bad = _systems_of(obj, None, what) if not problems else ((), [])
    problems += bad
    if not problems:
        POLICIES[name] = {s: obj for s in systems}
    return problems


def _known(name: Any) -> list[str]:
    """Make ``name`` known if it is a plugin; the problems (without a path) if it cannot be."""
    load_plugins()
    if not isinstance(name, str):
        return [f"expected a policy name, got {type(name).__name__} {name!r}"]
    if name in POLICIES:
        return []
    if name in _BROKEN:
        return [_BROKEN[name]]
    if ":" in name:
        return _import_named(name)
    return []


def requires(name: str) -> frozenset[str]:
    """The systems ``name`` runs on (any one of them)."""
    _known(name)
    return frozenset(POLICIES[name])


def names_for(system: str) -> list[str]:
    """The registered policies that run on ``system``, sorted (``module:Class`` names a
    scenario imported are not listed)."""
    load_plugins()
    return sorted(n for n, impl in POLICIES.items() if system in impl and ":" not in n)


def policy_class(name: str, system: str = DEFAULT_SYSTEM) -> type:
    """The implementation of ``name`` for ``system``; ScenarioError if there is none."""
    problems = _name_problems(name, system, "policy")
    if problems:
        raise ScenarioError(problems)
    return POLICIES[name][system]


def _name_problems(name: str, system: str, path: str) -> list[str]:
    plugin = _known(name)
    if plugin:
        return [f"{path}.name: {p}" for p in plugin]
    if name not in POLICIES:
        others = sorted(n for n in set(POLICIES) - set(names_for(system)) if ":" not in n)
        return [f"{path}.name: unknown policy {name!r}; valid: {', '.join(names_for(system))}"
                + (f" (on other systems: {', '.join(others)})" if others else "")]
    if system not in POLICIES[name]:
        needs = " or ".join(f"{s} ({SYSTEMS[s]})" for s in sorted(POLICIES[name]))
        return [f"{path}.name: policy {name!r} needs a scenario with {needs}; this scenario "
                f"offers {system} ({SYSTEMS.get(system, system)}); policies for it: "
                f"{', '.join(names_for(system)) or 'none'}"]
    return []


def name_problems(name: str, system: str, path: str = "policy") -> list[str]:
    """Problems with the policy name ``name`` on ``system`` (a built-in or registered name, or a
    ``module:Class`` plugin, imported here), each prefixed ``path.name:``; [] when it runs."""
    return _name_problems(name, system, path)


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
