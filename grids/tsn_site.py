"""Energy-storage stations and the hourly transmission-grid step of the seed-001 co-simulation.

:class:`StorageStation` is one station of MODELS.md B.5: battery capacity ``c_mw`` and energy
``e_mwh`` that trains bring and take (B.7), and charging / discharging from the grid with the
efficiency of (9): ``E += (eta * P_ch - P_dis / eta) * dt``, ``P_ch, P_dis <= C``,
``0 <= E <= min(E_max, gamma * C)``. A request outside these limits is clipped and the clipping is
reported (the engine records it as a failure row), never silently applied.

:class:`TsnGridSite` pushes one hour of a dispatch (unit outputs and commitment, wind, the
stations' net power) into the pandapower net from :func:`grids.transmission.build_case` and runs
its DC and AC power flows through :func:`grids.transmission.evaluate_dispatch`. Non-convergence
and bad input come back as a :class:`sim.tsn_sim_types.TsnGridResult` with a status.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from grids.transmission import evaluate_dispatch
from sim.tsn import Station, TransmissionCase
from sim.tsn_sim_types import TsnGridResult
from sim.types import StationState

STATE_TOL = 1e-6


def _snap(x: float, hi: float) -> float:
    """``x`` moved onto ``[0, hi]`` when it is outside by no more than :data:`STATE_TOL`."""
    if -STATE_TOL <= x < 0.0:
        return 0.0
    if hi < x <= hi + STATE_TOL:
        return hi
    return x


@dataclass(frozen=True)
class StationHour:
    """What a station did in one hour (powers as applied, after any clipping)."""

    pch_mw: float
    pdis_mw: float
    pch_requested_mw: float
    pdis_requested_mw: float
    e_start_mwh: float
    e_end_mwh: float
    loss_mwh: float  # (1 - eta) * P_ch * dt + (1/eta - 1) * P_dis * dt
    problem: str | None  # why the request was clipped, None if applied as asked


class StorageStation:
    """One energy-storage station (B.5). Mutable state: ``c_mw``, ``e_mwh``."""

    def __init__(self, spec: Station, eta: float, gamma_h: float, dt_h: float = 1.0) -> None:
        self.spec = spec
        self.dt_h = float(dt_h)
        self.name = spec.name
        self.bus = spec.bus
        self.eta = float(eta)
        self.gamma_h = float(gamma_h)
        self.reset()

    def reset(self) -> None:
        self.c_mw = float(self.spec.c0_mw)
        self.e_mwh = float(self.spec.e0_mwh)

    def snapshot(self) -> StationState:
        return StationState(self.name, self.bus, self.c_mw, self.e_mwh)

    # ---------------------------------------------------------------- exchange with a train
    def exchange_problem(self, dc_mw: float, de_mwh: float) -> str | None:
        """Why giving ``dc_mw`` / ``de_mwh`` to a train (negative: receiving) is impossible.

        Only the bounds that hold within the hour are checked here: ``0 <= C <= C_max`` and
        ``E >= 0`` after the exchange (B.5 (7), (11)). ``E <= min(E_max, gamma * C)`` is an
        end-of-hour state constraint (B.5 (10), as in the plan, where energy a train brings may
        be discharged in the same hour): it is checked after the hour's charging in
        :meth:`run_hour`.
        """
        c, e = self.c_mw - dc_mw, self.e_mwh - de_mwh
        if not -STATE_TOL <= c <= self.spec.c_max_mw + STATE_TOL:
            return f"station {self.name} capacity would be {c:.6f} MW, outside [0, " \
                   f"{self.spec.c_max_mw}]"
        if e < -STATE_TOL:
            return f"station {self.name} energy would be {e:.6f} MWh < 0"
        # the end-of-hour window must stay reachable, discharging at most C for the hour
        e_hi = min(self.spec.e_max_mwh, self.gamma_h * max(c, 0.0))
        if e - max(c, 0.0) * self.dt_h / self.eta > e_hi + STATE_TOL:
            return (f"station {self.name} would hold {e:.6f} MWh in {c:.6f} MW: above "
                    f"min(E_max, gamma*C) = {e_hi:.6f} MWh even after an hour at full discharge")
        return None

    def apply_exchange(self, dc_mw: float, de_mwh: float) -> None:
        """Give ``dc_mw`` capacity and ``de_mwh`` energy to a train (check first)."""
        self.c_mw = _snap(self.c_mw - dc_mw, self.spec.c_max_mw)
        self.e_mwh = _snap(self.e_mwh - de_mwh, math.inf)

    # ---------------------------------------------------------------- grid power
    def run_hour(self, pch_mw: float, pdis_mw: float, dt_h: float) -> StationHour:
        """Charge ``pch_mw`` and discharge ``pdis_mw`` (both >= 0) for ``dt_h`` hours.

        Clips to ``P <= C`` and to the energy window ``[0, min(E_max, gamma * C)]`` (beyond
        :data:`STATE_TOL`); the clipped powers are what the grid sees.
        """
        req_ch, req_dis = float(pch_mw), float(pdis_mw)
        problems = []
        ch, dis = req_ch, req_dis
        for label, val in (("pch_mw", ch), ("pdis_mw", dis)):
            if not math.isfinite(val) or val < -STATE_TOL:
                problems.append(f"{label}={val!r} must be finite and >= 0")
        ch = max(ch, 0.0) if math.isfinite(ch) else 0.0
        dis = max(dis, 0.0) if math.isfinite(dis) else 0.0
        c = self.c_mw
        if ch > c + STATE_TOL or dis > c + STATE_TOL:
            problems.append(f"power above capacity {c:.6f} MW (pch {ch:.6f}, pdis {dis:.6f})")
            ch, dis = min(ch, c), min(dis, c)
        e0 = self.e_mwh
        e_hi = min(self.spec.e_max_mwh, self.gamma_h * c)
        e1 = e0 + (self.eta * ch - dis / self.eta) * dt_h
        if e1 > e_hi + STATE_TOL:
            # take away charging first
            ch = max(0.0, ch - (e1 - e_hi) / (self.eta * dt_h))
            e1 = e0 + (self.eta * ch - dis / self.eta) * dt_h
            if e1 > e_hi + STATE_TOL:  # still above: the exchange left too much energy
                problems.append(f"energy {e1:.6f} MWh above min(E_max, gamma*C) = {e_hi:.6f} "
                                f"MWh even without charging")
            else:
                problems.append(f"charging clipped to {ch:.6f} MW by the energy limit "
                                f"{e_hi:.6f} MWh")
        if e1 < -STATE_TOL:
            dis = max(0.0, dis + e1 * self.eta / dt_h)
            e1 = e0 + (self.eta * ch - dis / self.eta) * dt_h
            problems.append(f"discharging clipped to {dis:.6f} MW by the empty battery")
        self.e_mwh = _snap(e1, self.spec.e_max_mwh)
        loss = ((1 - self.eta) * ch + (1 / self.eta - 1) * dis) * dt_h
        return StationHour(ch, dis, req_ch, req_dis, e0, self.e_mwh, loss,
                           "; ".join(problems) or None)


def _pct(flow_mw: np.ndarray, rating_mw: np.ndarray) -> np.ndarray:
    out = np.zeros(len(rating_mw))
    fin = np.isfinite(rating_mw)
    out[fin] = np.abs(np.asarray(flow_mw, float)[fin]) / rating_mw[fin] * 100.0
    return out


class TsnGridSite:
    """The transmission net of one case, stepped once per hour.

    ``off_units``, ``vm_min_pu``, ``vm_max_pu`` and ``loading_max_pct`` are passed to
    :func:`grids.transmission.evaluate_dispatch`.
    """

    def __init__(self, case: TransmissionCase, net, *, off_units: str = "condenser",
                 vm_min_pu: float = 0.94, vm_max_pu: float = 1.06,
                 loading_max_pct: float = 100.0) -> None:
        self.case = case
        self.net = net
        self.stations = [StorageStation(s, case.eta, case.gamma_h, case.dt_h)
                         for s in case.stations]
        self.options = dict(off_units=off_units, vm_min_pu=vm_min_pu, vm_max_pu=vm_max_pu,
                            loading_max_pct=loading_max_pct)
        self.line_names = case.line_names
        self.bus_ids = case.bus_ids

    def reset(self) -> None:
        for s in self.stations:
            s.reset()

    def step(self, hour: int, unit_p_mw: Sequence[float], unit_on: Sequence[bool],
             wind_mw: Sequence[float], storage_p_mw_by_bus: Mapping[int, float]) -> TsnGridResult:
        """DC and AC power flow of hour ``hour`` (0-based row of the case's load)."""
        nbr, nb = len(self.case.line_names), len(self.case.bus_ids)
        p_store = {int(b): float(v) for b, v in storage_p_mw_by_bus.items()}
        try:
            chk = evaluate_dispatch(self.net, self.case, int(hour), unit_p_mw, wind_mw, p_store,
                                    unit_on=list(unit_on), **self.options)
        except ValueError as exc:
            nan_br, nan_bus = np.full(nbr, np.nan), np.full(nb, np.nan)
            return TsnGridResult(int(hour), "error", False, False, f"ValueError: {exc}", nan_br,
                                 nan_br, nan_br, nan_bus, math.nan, math.nan, (), (), (), math.nan,
                                 math.nan, math.nan, math.nan, p_store)
        if chk.converged_dc and chk.converged_ac:
            status = "ok"
        elif chk.converged_dc:
            status = "ac_not_converged"
        elif chk.converged_ac:
            status = "dc_not_converged"
        else:
            status = "not_converged"
        return TsnGridResult(
            hour=int(hour), status=status, converged_dc=chk.converged_dc,
            converged_ac=chk.converged_ac, message=chk.message,
            dc_loading_pct=chk.dc_loading_pct, ac_loading_pct=chk.ac_loading_pct,
            ac_p_loading_pct=_pct(chk.ac_p_from_mw, self.case.rating_mw),
            vm_pu=chk.vm_pu, vm_min_pu=chk.vm_min_pu, vm_max_pu=chk.vm_max_pu,
            overloaded_dc=chk.overloaded_dc, overloaded_ac=chk.overloaded_ac,
            voltage_violations=chk.voltage_violations, ac_losses_mw=chk.ac_losses_mw,
            slack_p_dc_mw=chk.slack_p_dc_mw, slack_p_ac_mw=chk.slack_p_ac_mw,
            dc_imbalance_mw=chk.dc_imbalance_mw, storage_p_mw_by_bus=p_store,
            dc_flow_mw=chk.dc_flow_mw)
