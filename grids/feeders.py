"""Registry of the pandapower feeders a distribution site can be built on."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pandapower as pp
import pandapower.networks as pn

from sim.errors import ScenarioError

__all__ = ["FEEDERS", "make_feeder"]


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


_TEMPLATES: dict[str, pp.pandapowerNet] = {}


def make_feeder(name: str) -> pp.pandapowerNet:
    """A fresh pandapower net for the feeder ``name``.

    The first call per name builds the net with its :data:`FEEDERS` function (pandapower's
    builders take 0.3-1 s); later calls return a deep copy of that pristine template (~15 ms).
    The template itself is never handed out.

    Raises
    ------
    sim.errors.ScenarioError
        If ``name`` is not a key of :data:`FEEDERS`; the message lists the valid names.
    """
    try:
        factory = FEEDERS[name]
    except (KeyError, TypeError):
        raise ScenarioError(f"feeder: unknown feeder {name!r}; valid: {', '.join(sorted(FEEDERS))}"
                            ) from None
    template = _TEMPLATES.get(name)
    if template is None:
        template = _TEMPLATES[name] = factory()
    return copy.deepcopy(template)
