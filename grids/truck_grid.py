"""The CIGRE MV feeder the Co-OPT trucks charge from, stepped with the trucks' charging power.

:class:`ChargingFeeder` implements :class:`sim.protocols.ChargingGrid` for
``sim.systems.TruckMissions``: the same CIGRE MV net and hourly base case as the prices of
:mod:`grids.prices` (``build_price_net`` and ``set_hour`` of the given
:class:`~grids.prices.PriceConfig`: loads scaled by ``load_shape``, PV by ``pv_shape``, wind at
``wind_factor``, the two benchmark batteries removed), with

* one load element per charging bus (``name="charging <bus>"``, unity power factor), created
  once at build time; a step only changes its ``p_mw`` (the sum over the charging nodes on that
  bus of their average grid-side MW over the step; discharging is a negative load);
* the OPF's dispatchable injections (the benchmark's CHP and fuel cells, ``extra`` local
  resources, the load-shedding generators) at 0 MW: the power flow has no dispatch. They run
  in the OPF only when a limit binds; a power flow with the OPF's hourly dispatch is not done
  here. Line limits of the config are not enforced by a power flow (lines may be overloaded).

The base case of a step is that of the clock hour its start minute falls in (hour ``(time_min //
60) % 24``, as ``grids.prices.step_prices_usd_per_kwh``). The power flow goes through
:class:`grids.adapter.PandapowerAdapter` (AC Newton-Raphson, warm starts, retries; a failed
power flow is a result with ``converged=False`` and a ``status``, never an exception).

By default the prices the trucks pay are the OPF duals computed before the run, without the
trucks' charging (the trucks are price takers, :mod:`grids.prices`). :meth:`ChargingFeeder.
step_prices` offers the other mode: the DC (or AC, ``cfg.method``) OPF of the step's hour on
the same net with the trucks' average charging of the step as fixed loads at their buses (the
dispatchable DER, the local resources and load shedding dispatched by the OPF, as in
:func:`grids.prices.nodal_prices`), and the duals ``lam_p`` at the charging buses as the step's
prices. With no charging in a step they are the hour's prices of :func:`grids.prices.nodal_prices`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandapower as pp

from grids.adapter import PandapowerAdapter, PowerFlowOptions, PowerFlowResult
from grids.prices import (
    HOURS,
    PriceConfig,
    build_price_net,
    bus_duals_usd_per_mwh,
    hour_upstream_usd_per_mwh,
    set_hour,
)
from sim.errors import ScenarioError
from sim.types import frozen_array

__all__ = ["ChargingFeeder"]


class ChargingFeeder:
    """The CIGRE MV feeder with one charging load per charging bus (module docstring).

    Parameters
    ----------
    bus_of_node : mapping int -> int
        Charging node of the road graph -> CIGRE MV bus (``RoadNetwork.bus_of_charging_site``).
    cfg : PriceConfig
        The hourly base case (the prices' config; only loads, PV and wind matter here).
    options : PowerFlowOptions or None
        Solver settings (the adapter's defaults if ``None``).
    name : str
        The grid's name in failure rows.
    """

    def __init__(self, bus_of_node: Mapping[int, int], cfg: PriceConfig | None = None,
                 options: PowerFlowOptions | None = None, name: str = "cigre_mv",
                 upstream_usd_per_mwh: Sequence[float] | None = None) -> None:
        self.cfg = cfg if cfg is not None else PriceConfig()
        # the upstream prices of the step OPFs (step_prices): those of the hourly prices
        self.upstream_usd_per_mwh = np.asarray(
            upstream_usd_per_mwh if upstream_usd_per_mwh is not None
            else hour_upstream_usd_per_mwh(self.cfg), dtype=float)
        if self.upstream_usd_per_mwh.shape != (HOURS,):
            raise ScenarioError(f"{name}: upstream_usd_per_mwh needs {HOURS} values")
        self._opf_net = None
        self._opf_load: dict[int, int] = {}
        self.name = name
        self.bus_of_node = {int(n): int(b) for n, b in bus_of_node.items()}
        net = build_price_net(self.cfg)
        bad = sorted({b for b in self.bus_of_node.values() if b not in net.bus.index})
        if bad:
            raise ScenarioError(f"{name}: charging buses {bad} are not CIGRE MV buses")
        net.sgen.loc[net.sgen.controllable.astype(bool), "p_mw"] = 0.0
        self.charging_load: dict[int, int] = {}
        for b in sorted(set(self.bus_of_node.values())):
            i = pp.create_load(net, b, p_mw=0.0, q_mvar=0.0, name=f"charging {b}",
                               controllable=False)
            net.load.loc[i, ["nominal_p_mw", "nominal_q_mvar"]] = [0.0, 0.0]
            self.charging_load[b] = int(i)
        self.net = net
        self.adapter = PandapowerAdapter(net, options)
        self.bus_index = self.adapter.bus_index
        self.line_index = self.adapter.line_index  # the order of a step's line loadings
        self._hour: int | None = None

    def set_base(self, hour: int) -> None:
        """Hour ``hour``'s loads, PV and wind (charging loads to 0)."""
        # the upstream price only enters the OPF's cost, not a power flow
        set_hour(self.net, hour, self.cfg, 0.0)
        self._hour = hour

    def step(self, time_min: int, dt_min: int, p_mw_by_node: Mapping[int, float]
             ) -> PowerFlowResult:
        """One AC power flow of the step ``[time_min, time_min + dt_min)`` with each charging
        node's average grid-side power ``p_mw_by_node`` (MW, > 0 = consumption)."""
        hour = (int(time_min) // 60) % HOURS
        if hour != self._hour:
            self.set_base(hour)
        p_bus = {b: 0.0 for b in self.charging_load}
        for node, p in p_mw_by_node.items():
            if int(node) not in self.bus_of_node:
                raise KeyError(f"{self.name}: node {node} has no charging bus")
            p_bus[self.bus_of_node[int(node)]] += float(p)
        bad = [b for b, p in p_bus.items() if not np.isfinite(p)]
        if bad:
            nan = frozen_array(np.full(len(self.bus_index), np.nan))
            return PowerFlowResult(converged=False, status="invalid_input",
                                   message=f"non-finite charging power at buses {bad}",
                                   vm_pu=nan, line_loading_pct=frozen_array(
                                       np.full(len(self.adapter.line_index), np.nan)))
        for b, p in p_bus.items():
            self.net.load.at[self.charging_load[b], "p_mw"] = p
        return self.adapter.solve()

    def step_prices(self, time_min: int, dt_min: int, p_mw_by_node: Mapping[int, float]
                    ) -> tuple[dict[int, float], str, str]:
        """The step's price (USD/kWh) at each charging node: the dual of the OPF of the step's
        hour with the nodes' average charging ``p_mw_by_node`` (MW) as fixed loads at their
        buses. Returns ``(prices, status, message)``; ``status`` is ``"ok"`` or
        ``"opf_failed"`` (then ``prices`` is empty and ``message`` says why), never an
        exception."""
        if self._opf_net is None:
            net = build_price_net(self.cfg)
            for b in sorted(set(self.bus_of_node.values())):
                self._opf_load[b] = int(pp.create_load(net, b, p_mw=0.0, q_mvar=0.0,
                                                       name=f"charging {b}",
                                                       controllable=False))
            net.load.loc[list(self._opf_load.values()), ["nominal_p_mw", "nominal_q_mvar"]] = 0.0
            self._opf_net = net
        net = self._opf_net
        hour = (int(time_min) // 60) % HOURS
        set_hour(net, hour, self.cfg, float(self.upstream_usd_per_mwh[hour]))
        p_bus = {b: 0.0 for b in self._opf_load}
        for node, p in p_mw_by_node.items():
            p_bus[self.bus_of_node[int(node)]] += float(p)
        if not all(np.isfinite(p) for p in p_bus.values()):
            return {}, "opf_failed", "non-finite charging power"
        for b, p in p_bus.items():
            net.load.at[self._opf_load[b], "p_mw"] = p
        try:
            lam = bus_duals_usd_per_mwh(net, self.cfg.method)
        except ScenarioError as exc:
            return {}, "opf_failed", str(exc)
        pos = {int(b): i for i, b in enumerate(net.bus.index)}
        out = {int(n): float(lam[pos[b]]) / 1000.0 for n, b in self.bus_of_node.items()}
        if not all(np.isfinite(v) for v in out.values()):
            return {}, "opf_failed", "the OPF gave no dual at a charging bus"
        return out, "ok", ""
