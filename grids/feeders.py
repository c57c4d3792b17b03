"""Registry of the pandapower feeders a distribution site can be built on.

A scenario's ``feeder`` is one of:

* a registered name: the built-in :data:`FEEDERS`, a builder registered with
  :func:`register_grid` (``mescosim.register_grid``), or an entry point in the group
  ``mescosim.grids`` of an installed package (registered on the first use in every process);
* the name of any :mod:`pandapower.networks` factory that needs no arguments (for example
  ``"kerber_landnetz_freileitung_1"``, pandapower's ``create_kerber_landnetz_freileitung_1``:
  the ``create_`` prefix may be left out);
* ``"simbench:CODE"``: a SimBench network by its code (the optional ``simbench`` package;
  :mod:`grids.simbench`);
* a pandapower JSON file (``*.json``). Before pandapower reads it, every ``_module`` / ``_class``
  pair in it (nested JSON strings included) is checked: only pandapower's own classes, pandas
  frames, series and indexes, numpy arrays, scalars and dtypes, and Python's plain containers are
  accepted. Anything else is refused with a :class:`~sim.errors.ScenarioError` naming the file
  and the module, before anything named in the file is imported.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import pandapower as pp
import pandapower.networks as pn

from sim.errors import ScenarioError

__all__ = ["FEEDERS", "ENTRY_POINT_GROUP", "feeder_names", "feeder_problem", "json_problems",
           "feeder_template", "load_plugins", "make_feeder", "register_grid", "unregister_grid"]


def _case33bw() -> pp.pandapowerNet:
    """Baran & Wu 33-bus 12.66 kV radial feeder (no transformer; bus 0 is the slack)."""
    return pn.case33bw()


def _cigre_mv() -> pp.pandapowerNet:
    """CIGRE MV benchmark (110/20 kV, two feeders behind two transformers), without DER."""
    return pn.create_cigre_network_mv(with_der=False)


def _mv_open_ring() -> pp.pandapowerNet:
    """pandapower's simple 110/20 kV open-ring MV network (six 20 kV buses)."""
    return pn.simple_mv_open_ring_net()


#: Feeder name -> function returning a fresh pandapower net.
FEEDERS: dict[str, Callable[[], pp.pandapowerNet]] = {
    "case33bw": _case33bw,
    "cigre_mv": _cigre_mv,
    "mv_open_ring": _mv_open_ring,
}

#: Entry-point group of installed grid plugins (each loads a function returning a net).
ENTRY_POINT_GROUP = "mescosim.grids"

_TEMPLATES: dict[str, pp.pandapowerNet] = {}
_BUILTIN = frozenset(FEEDERS)
_BROKEN: dict[str, str] = {}
_RUNTIME: set[str] = set()
_PLUGINS_LOADED = False


def load_plugins(refresh: bool = False) -> None:
    """Register every ``mescosim.grids`` entry point once per process (again with ``refresh``,
    e.g. after installing a package); one that fails to load is remembered with the reason."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED and not refresh:
        return
    if refresh:
        importlib.invalidate_caches()
    _PLUGINS_LOADED = True
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in FEEDERS:
            continue  # a built-in name is never shadowed by an installed package
        try:
            builder = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the registry
            _BROKEN[ep.name] = (f"grid {ep.name!r} (entry point {ep.value} in group "
                                f"{ENTRY_POINT_GROUP}) cannot be loaded: {type(exc).__name__}: "
                                f"{exc}")
            continue
        if callable(builder):
            FEEDERS[ep.name] = builder
        else:
            _BROKEN[ep.name] = (f"grid {ep.name!r} (entry point {ep.value}) is not a callable "
                                f"returning a pandapower net")


def register_grid(name: str, builder: Callable[[], pp.pandapowerNet],
                  replace: bool = False) -> None:
    """Register ``builder`` (no arguments, returns a fresh pandapower net) as the feeder ``name``.

    A built-in name or one registered before is refused unless ``replace`` is true. The
    registration holds in this process (worker processes of a sweep need an entry point).
    """
    load_plugins()
    problems = []
    if not isinstance(name, str) or not name.strip() or name.endswith(".json"):
        problems.append(f"grid name: expected a non-empty name not ending in .json, got {name!r}")
    elif name in FEEDERS and not replace:
        kind = "a built-in feeder" if name in _BUILTIN else "registered already"
        problems.append(f"grid {name!r}: is {kind}; pass replace=True to replace it")
    if not callable(builder):
        problems.append(f"grid {name!r}: the builder must be a callable returning a pandapower "
                        f"net, got {type(builder).__name__}")
    if problems:
        raise ScenarioError(problems)
    FEEDERS[name] = builder
    _TEMPLATES.pop(name, None)
    _BROKEN.pop(name, None)
    _RUNTIME.add(name)


def unregister_grid(name: str) -> None:
    """Remove a grid registered by :func:`register_grid` or an entry point (built-in feeders
    stay); a name not registered is no error."""
    if name in _BUILTIN:
        raise ScenarioError([f"grid {name!r}: a built-in feeder cannot be unregistered"])
    FEEDERS.pop(name, None)
    _TEMPLATES.pop(name, None)
    _BROKEN.pop(name, None)
    _RUNTIME.discard(name)


def runtime_registered() -> frozenset[str]:
    """Grids registered with :func:`register_grid` in this process."""
    return frozenset(_RUNTIME)


def feeder_names() -> list[str]:
    """The registered feeder names (built-in, registered and installed), sorted."""
    load_plugins()
    return sorted(FEEDERS)


def _pn_factory(name: str) -> Callable[[], pp.pandapowerNet] | None:
    """The :mod:`pandapower.networks` function ``name`` if it builds a net without arguments."""
    if not name.isidentifier() or name.startswith("_"):
        return None
    # pandapower 3 names most of them create_*; the older short names are accepted too
    f = getattr(pn, name, None) or getattr(pn, f"create_{name}", None)
    if not inspect.isfunction(f) or not f.__module__.startswith("pandapower.networks"):
        return None
    try:
        params = inspect.signature(f).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.default is inspect.Parameter.empty
           and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        return None
    return f


# ----------------------------------------------------------------------------- safe JSON

#: Python's plain types a pandapower file may name under ``builtins``.
SAFE_BUILTINS = frozenset({"dict", "list", "tuple", "set", "frozenset", "int", "float", "str",
                           "bool", "complex", "bytes", "NoneType"})
_ROOTS = ("pandapower", "pandas", "numpy", "builtins")


def _safe_class(module: str, cls: str) -> bool:
    """Whether ``module``/``cls`` of a ``_module``/``_class`` pair may be decoded.

    Only modules of the packages pandapower, pandas and numpy are imported to check the class
    (all three are loaded already); any other module is refused without importing it.
    """
    import numpy as np
    import pandas as pd

    root = module.split(".")[0]
    if root not in _ROOTS or not all(p.isidentifier() for p in module.split(".")):
        return False
    if not cls.isidentifier() or cls.startswith("_"):
        return False
    if root == "builtins":
        return module == "builtins" and cls in SAFE_BUILTINS
    if root == "numpy" and cls in ("array", "bool"):
        return module == "numpy"  # pandapower's own tags for arrays and numpy booleans
    if root == "pandapower" and cls in ("function", "method"):
        return True  # pandapower's tag for one of its own functions (its name is the value)
    try:
        obj = getattr(importlib.import_module(module), cls, None)
    except ImportError:
        return False
    if not inspect.isclass(obj):
        return False
    if root == "pandas":
        from pandas.api.extensions import ExtensionDtype

        return issubclass(obj, (pd.DataFrame, pd.Series, pd.Index, ExtensionDtype))
    if root == "numpy":
        return issubclass(obj, (np.generic, np.ndarray, np.dtype))
    return True  # a pandapower class


def _pairs(node: Any, found: list[tuple[Any, Any]], depth: int = 0) -> None:
    """Every ``_module``/``_class`` pair in ``node``, nested JSON strings included."""
    if depth > 200:
        found.append(("<nesting deeper than 200 levels>", ""))
        return
    if isinstance(node, dict):
        if "_module" in node or "_class" in node:
            found.append((node.get("_module"), node.get("_class")))
        for v in node.values():
            _pairs(v, found, depth + 1)
    elif isinstance(node, list):
        for v in node:
            _pairs(v, found, depth + 1)
    elif isinstance(node, str):
        text = node.lstrip()
        if text[:1] in ("{", "[") and ("_module" in text or "_class" in text):
            try:
                inner = json.loads(text)
            except ValueError:
                return  # plain text that pandapower will not decode either
            _pairs(inner, found, depth + 1)


def json_problems(text: str, source: str) -> list[str]:
    """Why the pandapower JSON ``text`` (from the file ``source``) must not be loaded.

    Parses the text with the :mod:`json` module alone (no object hooks) and checks every
    ``_module``/``_class`` pair; modules outside pandapower, pandas, numpy and ``builtins``
    are refused without being imported.
    """
    try:
        data = json.loads(text)
    except ValueError as exc:
        return [f"{source}: not valid JSON ({exc})"]
    found: list[tuple[Any, Any]] = []
    _pairs(data, found)
    bad: dict[str, None] = {}
    for module, cls in found:
        label = f"{module}:{cls}"
        if not isinstance(module, str) or not isinstance(cls, str) or not _safe_class(module,
                                                                                        cls):
            bad[label] = None
    if bad:
        return [f"{source}: refused: names {label} (only pandapower's own classes, pandas and "
                f"numpy data and Python's plain containers may be decoded)" for label in bad]
    if not (isinstance(data, dict) and data.get("_class") == "pandapowerNet"):
        return [f"{source}: not a pandapower net (expected a JSON object with "
                f"\"_class\": \"pandapowerNet\", as pandapower.to_json writes)"]
    return []


def _json_builder(path: Path) -> Callable[[], pp.pandapowerNet]:
    def build() -> pp.pandapowerNet:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ScenarioError([f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})"]
                                ) from None
        problems = json_problems(text, str(path))
        if problems:
            raise ScenarioError(problems)
        # the text that was checked is what pandapower reads (no second read of the file)
        try:
            return pp.from_json_string(text)
        except Exception as exc:  # noqa: BLE001 - pandapower's own decoding errors
            raise ScenarioError([f"{path}: pandapower cannot read it ({type(exc).__name__}: "
                                 f"{exc})"]) from None
    return build


def _factory(name: Any) -> tuple[Callable[[], pp.pandapowerNet] | None, str | None]:
    load_plugins()
    if not isinstance(name, str):
        return None, f"expected a feeder name or a .json file, got {type(name).__name__}"
    if name in FEEDERS:
        return FEEDERS[name], None
    if name in _BROKEN:
        return None, _BROKEN[name]
    if name.startswith("simbench:"):  # a SimBench network by code (grids/simbench.py)
        from grids.simbench import simbench_builder, simbench_problem

        why = simbench_problem(name.removeprefix("simbench:"))
        return (None, why) if why else (simbench_builder(name.removeprefix("simbench:")), None)
    if name.lower().endswith(".json"):
        path = Path(name)
        if not path.is_file():
            return None, f"no such pandapower JSON file {name!r}"
        return _json_builder(path), None
    f = _pn_factory(name)
    if f is not None:
        return f, None
    return None, (f"unknown feeder {name!r}; valid: {', '.join(sorted(FEEDERS))}, any "
                  f"pandapower.networks factory without required arguments (e.g. "
                  f"'kerber_landnetz_freileitung_1') or a pandapower .json file")


def _template(name: str) -> pp.pandapowerNet:
    template = _TEMPLATES.get(name)
    if template is None:
        factory, why = _factory(name)
        if factory is None:
            raise ScenarioError(f"feeder: {why}")
        try:
            net = factory()
        except ScenarioError:
            raise
        except Exception as exc:  # noqa: BLE001 - a builder of someone else's
            raise ScenarioError(f"feeder: building {name!r} failed: {type(exc).__name__}: "
                                f"{exc}") from None
        if not isinstance(net, pp.pandapowerNet):
            raise ScenarioError(f"feeder: {name!r} did not give a pandapower net (got "
                                f"{type(net).__name__})")
        if len(net.bus) == 0:
            raise ScenarioError(f"feeder: {name!r} has no buses")
        if len(net.ext_grid) == 0 and not (len(net.gen) and net.gen.get("slack", False).any()):
            raise ScenarioError(f"feeder: {name!r} has no slack (no ext_grid)")
        template = _TEMPLATES[name] = net
    return template


def feeder_problem(name: Any) -> str | None:
    """Why ``name`` is not a usable feeder (without a path prefix), or None. Builds the net
    (and caches it) so that a broken builder or file is reported here."""
    try:
        _template(name) if isinstance(name, str) else _factory(name)
    except ScenarioError as exc:
        return "; ".join(p.removeprefix("feeder: ") for p in exc.problems)
    if not isinstance(name, str):
        return _factory(name)[1]
    return None


def make_feeder(name: str) -> pp.pandapowerNet:
    """A fresh pandapower net for the feeder ``name`` (see the module docstring for the names).

    The first call per name builds the net (pandapower's builders take 0.3-1 s); later calls
    return a deep copy of that pristine template (~15 ms). The template itself is never handed
    out.

    Raises
    ------
    sim.errors.ScenarioError
        If ``name`` is not a usable feeder; the message says why and lists the valid names.
    """
    return copy.deepcopy(_template(name))


def feeder_template(name: str) -> pp.pandapowerNet:
    """The pristine net of the feeder ``name``, **shared and read-only**: for checks that only
    read it (bus indices, in-service flags) and as the identity of the feeder's current
    definition (a new object after :func:`register_grid` or :func:`unregister_grid`). Never
    modify it or hand it to anything that may; :func:`make_feeder` gives a private copy.

    Raises
    ------
    sim.errors.ScenarioError
        As :func:`make_feeder`.
    """
    return _template(name)
