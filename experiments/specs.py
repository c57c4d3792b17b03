"""The grid layer's description of a scenario's distribution networks, from the config.

Kept apart from :mod:`experiments.build` so that the config's cross-checks
(:func:`experiments.config.meaning_problems`) can build a site's spec without importing the
module that builds whole worlds from a config (which imports the config).
"""

from __future__ import annotations

from grids.adapter import PowerFlowOptions
from grids.profiles import SHAPES, Profile
from grids.site import PVUnit, SiteSpec
from sim.types import DemandResponseSpec, GeneratorSpec, SiteResources, StorageSpec


def _profile(shape, resolution_min: int) -> Profile:
    values = SHAPES[shape] if isinstance(shape, str) else shape
    return Profile(tuple(float(v) for v in values), resolution_min)


def site_spec(name: str, g, pf) -> SiteSpec:
    """The grid layer's description of one distribution network.

    ``g`` is an :class:`experiments.config.GridConfig`, ``pf`` a
    :class:`experiments.config.PowerFlowConfig`.
    """
    resources = SiteResources(
        generators=tuple(GeneratorSpec(x.name, x.bus, x.p_max_mw, x.p_min_mw, x.ramp_up_mw_per_h,
                                       x.ramp_down_mw_per_h) for x in g.generators),
        dr=DemandResponseSpec(g.dr.bus, g.dr.p_max_mw, g.dr.ramp_mw_per_h, g.dr.e_max_mwh)
        if g.dr else None,
        storage=StorageSpec(g.storage.bus, g.storage.p_ch_max_mw, g.storage.p_dis_max_mw,
                            g.storage.e_min_mwh, g.storage.e_max_mwh, g.storage.e_init_mwh,
                            g.storage.eta) if g.storage else None,
    )
    options = PowerFlowOptions(algorithm=pf.algorithm, tolerance_mva=pf.tolerance_mva,
                               max_iteration=pf.max_iteration, vm_min_pu=pf.vm_min_pu,
                               vm_max_pu=pf.vm_max_pu, loading_max_pct=pf.loading_max_pct,
                               backend=pf.backend)
    return SiteSpec(name=name, node=g.node, feeder=g.feeder, peak_load_mw=g.peak_load_mw,
                    load_profile=_profile(g.load_shape, g.load_resolution_min),
                    pv_cap_mw=g.pv_cap_mw, pv_profile=_profile(g.pv_shape, g.pv_resolution_min),
                    pv_units=tuple(PVUnit(p.bus, p.share) for p in g.pv), mess_bus=g.mess_bus,
                    resources=resources, pf=options)
