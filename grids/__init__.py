"""Distribution networks: feeders, profiles, the local DN operator and the pandapower adapter.

Layer rule: this package imports only ``sim`` from the project. Names are re-exported lazily so
that ``import grids.profiles`` does not pay for importing pandapower.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "SHAPES": "grids.profiles",
    "Profile": "grids.profiles",
    "realise": "grids.profiles",
    "FEEDERS": "grids.feeders",
    "make_feeder": "grids.feeders",
    "PF_STATUSES": "grids.adapter",
    "PowerFlowOptions": "grids.adapter",
    "PowerFlowResult": "grids.adapter",
    "PandapowerAdapter": "grids.adapter",
    "OPERATOR_STATUSES": "grids.operator",
    "OperatorResult": "grids.operator",
    "LocalOperator": "grids.operator",
    "PVUnit": "grids.site",
    "SiteSpec": "grids.site",
    "check_site_spec": "grids.site",
    "DistributionSite": "grids.site",
    "build_site": "grids.site",
    "DispatchCheck": "grids.transmission",
    "build_case": "grids.transmission",
    "economic_dispatch": "grids.transmission",
    "evaluate_dispatch": "grids.transmission",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'grids' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
