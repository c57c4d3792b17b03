"""Shared policy machinery: explicit hyper-parameters (scikit-learn style) and common rules."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from sim.types import Command, Problem, SiteInfo, State, VehicleState


class BasePolicy:
    """Stores constructor keyword arguments as attributes and reports them with :meth:`params`."""

    name = "base"

    @classmethod
    def param_names(cls) -> tuple[str, ...]:
        sig = inspect.signature(cls.__init__)
        return tuple(p for p in sig.parameters if p != "self")

    def params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.param_names()}

    @classmethod
    def with_defaults(cls, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` completed with the constructor's defaults (for ``param_problems``)."""
        sig = inspect.signature(cls.__init__)
        return {**{k: v.default for k, v in sig.parameters.items() if k != "self"}, **params}

    def reset(self, problem: Problem, rng: np.random.Generator) -> None:
        self.problem = problem
        self.rng = rng

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


class PeakShaving:
    """Charge in a site's low net-load hours, discharge in its peak hours, end near the start SOC.

    Thresholds are quantiles of the site's *forecast* net load over the horizon; the decision uses
    the *observed* net load of the step. In the last steps the vehicle charges back towards its
    initial energy (energy neutrality, MODELS.md A.7 eq. (12)) if it would otherwise fall short.
    """

    def __init__(self, problem: Problem, low_quantile: float, high_quantile: float) -> None:
        self.problem = problem
        self.low = {s.name: float(np.quantile(s.net_load_forecast_mw, low_quantile))
                    for s in problem.sites}
        self.high = {s.name: float(np.quantile(s.net_load_forecast_mw, high_quantile))
                     for s in problem.sites}

    def command(self, state: State, v: VehicleState, site: SiteInfo) -> Command:
        spec = self.problem.vehicle(v.name)
        b = spec.battery
        dt_h = state.step_min / 60.0
        steps_left = self.problem.n_steps - state.step
        deficit_mwh = spec.e_init_mwh - v.e_mwh
        # Steps of full-power charging needed to get back to the initial energy.
        need = deficit_mwh / (b.eta_ch * b.p_max_mw * dt_h) if deficit_mwh > 0 else 0.0
        if need >= steps_left - 1 and deficit_mwh > 0:
            p = min(v.p_ch_max_mw, deficit_mwh / (b.eta_ch * dt_h))
            return Command(v.name, p_mw=p)
        nl = state.site(site.name).net_load_mw
        if nl >= self.high[site.name]:
            # Spread the usable energy over this site's forecast peak steps still to come, and
            # do not discharge below what can still be recharged before the end.
            forecast = site.net_load_forecast_mw[state.step:]
            peak_steps = max(1, int(np.sum(forecast >= self.high[site.name])))
            share = b.eta_dis * max(0.0, v.e_mwh - b.e_min_mwh) / (peak_steps * dt_h)
            room = max(0.0, (steps_left - 2) * b.eta_ch * b.p_max_mw * dt_h - max(deficit_mwh, 0))
            p_dis = min(v.p_dis_max_mw, share, room * b.eta_dis / dt_h)
            return Command(v.name, p_mw=-p_dis)
        if nl <= self.low[site.name] or nl < 0.0:
            return Command(v.name, p_mw=v.p_ch_max_mw)
        return Command(v.name)
