"""Resource flexibility (MODELS.md A.4) and the DN-level SFI normalisation (A.5).

Each function returns ``(up_mw, dn_mw)``: the extra upward (more supply) and downward (less supply)
power the resource could deliver for one step of ``dt_h`` hours from the given operating point,
as the minimum of its power margin, its ramp capability and (for storage) its energy margin.
These are the explicit ``min()`` forms used for reporting (A.4 "reporting rule"). They accept
floats or numpy arrays.
"""

from __future__ import annotations

import numpy as np

from sim.types import SiteResources, StorageSpec


def _clip0(x):
    return np.maximum(x, 0.0)


def generator_flex(p_mw, p_min_mw, p_max_mw, ramp_up_mw_per_h, ramp_down_mw_per_h, dt_h):
    """A.4 generators: ``min(Pmax - P, RU dt)`` and ``min(P - Pmin, RD dt)``."""
    up = np.minimum(p_max_mw - p_mw, ramp_up_mw_per_h * dt_h)
    dn = np.minimum(p_mw - p_min_mw, ramp_down_mw_per_h * dt_h)
    return _clip0(up), _clip0(dn)


def dr_flex(dr_mw, dr_max_mw, ramp_mw_per_h, dt_h, dr_min_mw=0.0):
    """A.4 demand response (reduction ``dr_mw`` in ``[dr_min, dr_max]``)."""
    up = np.minimum(dr_max_mw - dr_mw, ramp_mw_per_h * dt_h)
    dn = np.minimum(dr_mw - dr_min_mw, ramp_mw_per_h * dt_h)
    return _clip0(up), _clip0(dn)


def storage_flex(p_net_mw, e_next_mwh, spec: StorageSpec, dt_h):
    """A.4 stationary storage; ``p_net_mw`` is the net *injection* (discharge - charge)."""
    up = np.minimum(spec.p_dis_max_mw - p_net_mw, spec.eta * (e_next_mwh - spec.e_min_mwh) / dt_h)
    dn = np.minimum(spec.p_ch_max_mw + p_net_mw, (spec.e_max_mwh - e_next_mwh) / (spec.eta * dt_h))
    if spec.ramp_mw_per_h is not None:
        up = np.minimum(up, spec.ramp_mw_per_h * dt_h)
        dn = np.minimum(dn, spec.ramp_mw_per_h * dt_h)
    return _clip0(up), _clip0(dn)


def vehicle_flex(p_ch_mw, p_dis_mw, e_next_mwh, p_max_mw, e_min_mwh, e_max_mwh, eta_ch, eta_dis,
                 dt_h, parked):
    """A.4 MESS at a DN; zero unless the vehicle is parked there for the whole step."""
    y = np.asarray(parked, dtype=float)
    up = np.minimum(p_max_mw * y - p_dis_mw + p_ch_mw, eta_dis * (e_next_mwh - e_min_mwh) / dt_h)
    dn = np.minimum(p_max_mw * y + p_dis_mw - p_ch_mw, (e_max_mwh - e_next_mwh) / (eta_ch * dt_h))
    return _clip0(up) * y, _clip0(dn) * y


def c_norm_mw(resources: SiteResources) -> float:
    """A.5 constant normalisation: largest hourly ``F_up + F_dn`` of the site's own resources."""
    total = sum(g.p_max_mw - g.p_min_mw for g in resources.generators)
    if resources.dr is not None:
        total += resources.dr.p_max_mw
    if resources.storage is not None:
        total += resources.storage.p_ch_max_mw + resources.storage.p_dis_max_mw
    return float(total)
