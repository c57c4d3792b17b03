"""Time and unit helpers. The clock counts integer minutes; power is MW, energy MWh."""

from __future__ import annotations

MIN_PER_H = 60
MIN_PER_DAY = 1440


def hours(minutes: int | float) -> float:
    """Convert a duration in minutes to hours."""
    return minutes / MIN_PER_H


def energy_mwh(p_mw: float, dt_min: int | float) -> float:
    """Energy in MWh of a constant power ``p_mw`` held for ``dt_min`` minutes."""
    return p_mw * dt_min / MIN_PER_H


def retention(retention_per_h: float, dt_min: int | float) -> float:
    """Fraction of stored energy kept over ``dt_min`` minutes, given the hourly retention."""
    return retention_per_h ** (dt_min / MIN_PER_H)


def arrival_energy_mwh(e_mwh: float, retention_per_h: float, travel_min: int, step_min: int,
                       traction_mwh: float = 0.0) -> float:
    """Energy left on arrival after a trip that starts at a step boundary.

    The engine applies self-discharge per whole step, so a trip costs the self-discharge of every
    step it spans (``ceil(travel_min / step_min)`` steps) plus its traction energy.
    """
    spanned_min = -(-travel_min // step_min) * step_min
    return retention(retention_per_h, spanned_min) * e_mwh - traction_mwh
