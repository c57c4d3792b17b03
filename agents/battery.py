"""Battery energy accounting with efficiencies, self-discharge and a usable window (MODELS.md A.2).

The SOC update of one step of ``dt`` hours with grid-side charge ``p_ch`` or discharge ``p_dis`` is
eq. (9) of MODELS.md A.7::

    E' = r * E + eta_ch * p_ch * dt - p_dis * dt / eta_dis,     r = retention_per_h ** dt

Every term is accumulated so that the energy balance can be checked exactly:
``E_end = E_init + charged - discharged - conversion losses - self-discharge - traction``.

Degradation models (Part C of MODELS.md; :mod:`agents.degradation`) plug in through
:class:`DegradationModel`; the default :class:`NoDegradation` keeps the state of health at 1.
:meth:`Battery.step` feeds the model once per step, whatever the step did: SOC at its start and
end (fractions of nameplate), the cell-side throughput, and the step length in minutes, also for
a vehicle parked idle or in transit (calendar ageing). Traction energy drawn between two steps
reaches the model as the SOC jump to the next step's start, which the models of
:mod:`agents.degradation` treat as a discharge.

**SOH is reported only.** The models' capacity fade does not shrink the battery: nameplate
``capacity_mwh`` and the usable window ``[e_min_mwh, e_max_mwh]`` stay as specified, and the SOC
the model sees is relative to the nameplate. Over the hours to days a run covers, the fade is a
few parts per million to per thousand, far below the window's own margins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from sim.types import BatterySpec
from sim.units import hours, retention

# Energy tolerance (MWh) for window checks: 1 mWh, far below any meaningful energy.
E_TOL_MWH = 1e-9


@runtime_checkable
class DegradationModel(Protocol):
    """A battery ageing model, fed every step by the vehicle.

    ``update`` receives the SOC before and after the step (fractions of nameplate), the cell-side
    throughput in MWh (charge + discharge), the step length and whether the vehicle was parked.
    ``soh_frac`` is the remaining capacity as a fraction of nameplate (1.0 when new).
    """

    name: str

    def reset(self) -> None: ...

    def update(self, soc_before_frac: float, soc_after_frac: float, throughput_mwh: float,
               dt_min: int, capacity_mwh: float) -> None: ...

    def soh_frac(self) -> float: ...


class NoDegradation:
    """No ageing: the state of health stays 1.0."""

    name = "none"

    def reset(self) -> None:
        pass

    def update(self, soc_before_frac: float, soc_after_frac: float, throughput_mwh: float,
               dt_min: int, capacity_mwh: float) -> None:
        pass

    def soh_frac(self) -> float:
        return 1.0


@dataclass(frozen=True)
class StepEnergy:
    """What one step did to a battery. ``p_mw`` is the grid-side power applied (charging > 0)."""

    p_requested_mw: float
    p_mw: float
    e_start_mwh: float
    e_end_mwh: float
    loss_conversion_mwh: float
    loss_self_mwh: float
    throughput_mwh: float
    clipped: bool
    bms_hold: bool


class Battery:
    """Energy state of one vehicle's battery."""

    def __init__(self, spec: BatterySpec, e_init_mwh: float,
                 degradation: DegradationModel | None = None) -> None:
        self.spec = spec
        self.e_init_mwh = float(e_init_mwh)
        self.degradation = degradation if degradation is not None else NoDegradation()
        self.reset()

    def reset(self) -> None:
        self.e_mwh = self.e_init_mwh
        self.charged_mwh = 0.0  # grid side, into the vehicle
        self.discharged_mwh = 0.0  # grid side, out of the vehicle
        self.loss_conversion_mwh = 0.0
        self.loss_self_mwh = 0.0
        self.traction_mwh = 0.0
        self.throughput_mwh = 0.0  # cell side, charge + discharge
        self.degradation.reset()

    @property
    def soc_frac(self) -> float:
        return self.e_mwh / self.spec.capacity_mwh

    @property
    def equivalent_full_cycles(self) -> float:
        """Cell-side throughput divided by twice the nameplate energy."""
        return self.throughput_mwh / (2.0 * self.spec.capacity_mwh)

    def limits(self, dt_min: int) -> tuple[float, float]:
        """Largest grid-side (charge, discharge) power in MW for a whole step of ``dt_min``.

        Both keep the energy at the end of the step inside ``[e_min, e_max]`` after self-discharge.
        """
        s = self.spec
        dt_h = hours(dt_min)
        kept = retention(s.retention_per_h, dt_min) * self.e_mwh
        p_ch = max(0.0, (s.e_max_mwh - kept) / (s.eta_ch * dt_h))
        p_dis = max(0.0, s.eta_dis * (kept - s.e_min_mwh) / dt_h)
        return min(s.p_max_mw, p_ch), min(s.p_max_mw, p_dis)

    def step(self, p_mw: float, dt_min: int, can_hold: bool = True) -> StepEnergy:
        """Apply grid-side power ``p_mw`` (charging > 0) for ``dt_min`` minutes.

        The request is clipped to :meth:`limits`. When self-discharge alone would take the energy
        below ``e_min`` and ``can_hold`` is true (the vehicle is parked at a connection point), the
        battery management draws just enough to hold the floor; this is flagged ``bms_hold``.
        """
        s = self.spec
        dt_h = hours(dt_min)
        r = retention(s.retention_per_h, dt_min)
        p_ch_max, p_dis_max = self.limits(dt_min)
        p = min(max(p_mw, -p_dis_max), p_ch_max)
        clipped = abs(p - p_mw) > 1e-12
        bms_hold = False
        kept = r * self.e_mwh
        if can_hold and kept < s.e_min_mwh - E_TOL_MWH:
            p_hold = min(s.p_max_mw, (s.e_min_mwh - kept) / (s.eta_ch * dt_h))
            if p < p_hold:
                p, bms_hold = p_hold, True
        e_start = self.e_mwh
        loss_self = e_start - kept
        if p >= 0.0:
            e_cell = s.eta_ch * p * dt_h
            loss_conv = p * dt_h - e_cell
            e_end = kept + e_cell
            self.charged_mwh += p * dt_h
        else:
            e_cell = -p * dt_h / s.eta_dis
            loss_conv = e_cell + p * dt_h
            e_end = kept - e_cell
            self.discharged_mwh += -p * dt_h
        # Clamp rounding noise at the window edges; real violations cannot reach here.
        if s.e_max_mwh < e_end <= s.e_max_mwh + E_TOL_MWH:
            e_end = s.e_max_mwh
        self.e_mwh = e_end
        self.loss_self_mwh += loss_self
        self.loss_conversion_mwh += loss_conv
        self.throughput_mwh += e_cell
        self.degradation.update(e_start / s.capacity_mwh, e_end / s.capacity_mwh, e_cell, dt_min,
                                s.capacity_mwh)
        return StepEnergy(p_requested_mw=p_mw, p_mw=p, e_start_mwh=e_start, e_end_mwh=e_end,
                          loss_conversion_mwh=loss_conv, loss_self_mwh=loss_self,
                          throughput_mwh=e_cell, clipped=clipped, bms_hold=bms_hold)

    def draw_traction(self, e_mwh: float) -> None:
        """Take traction energy (MWh) for a driven edge."""
        self.e_mwh -= e_mwh
        self.traction_mwh += e_mwh
