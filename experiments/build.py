"""Turn a validated :class:`~experiments.config.Config` into the objects the engine runs.

This is the only place where scenario data meet ``agents``, ``grids`` and ``policies``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from agents.degradation import make_degradation
from agents.disruption import Outages, Traffic, draw_outages, draw_traffic
from agents.graph import TransportGraph
from agents.vehicle import FleetModel, Vehicle
from experiments.config import Config, DegradationConfig, VehicleConfig
from experiments.specs import site_spec
from grids.profiles import realise_per_step
from grids.site import DistributionSite, SiteSpec, build_site
from sim.types import BatterySpec, Problem, VehicleSpec


def vehicle_degradation(v: VehicleConfig):
    """The ageing model of vehicle ``v``'s battery (``none`` when the scenario gives none).

    The replacement cost's pack size ``e_nom_kwh`` defaults to the vehicle's nameplate
    ``capacity_mwh`` (it only scales money, never the SOH); the scenario's parameters win.
    """
    d = v.degradation if v.degradation is not None else DegradationConfig()
    return make_degradation(d.model, **{"e_nom_kwh": 1000.0 * v.capacity_mwh, **d.params})


def cycle_usd_per_mwh(model, battery: BatterySpec) -> float:
    """Cycle-ageing cost of ``model`` per MWh of grid-side throughput of ``battery``.

    One full cycle of the battery's energy window at its rated power: the model's C.5 cycle
    damage of discharging from ``E_max`` to ``E_min`` (depth from the top of the window; a
    charge costs none in that form) times the replacement cost ``C_rep``, divided by the
    grid-side energy the cycle moves (``window / eta_ch`` charged plus ``window * eta_dis``
    discharged). Calendar ageing does not depend on the throughput and is left out. 0 for a
    battery that does not age.
    """
    window = battery.e_max_mwh - battery.e_min_mwh
    if window <= 0 or battery.p_max_mw <= 0:
        return 0.0
    s_hi = battery.e_max_mwh / battery.capacity_mwh
    s_lo = battery.e_min_mwh / battery.capacity_mwh
    c_rate = battery.p_max_mw / battery.capacity_mwh
    _, d_cyc = model.transition_damage(s_hi, s_lo, (s_hi - s_lo) / c_rate, soc_ref_frac=s_hi,
                                       c_rate_per_h=c_rate)
    moved_mwh = window / battery.eta_ch + window * battery.eta_dis
    return float(model.c_rep_usd) * float(d_cyc) / moved_mwh


def vehicle_spec(v) -> VehicleSpec:
    battery = BatterySpec(capacity_mwh=v.capacity_mwh, e_min_mwh=v.e_min_mwh,
                          e_max_mwh=v.e_max_mwh, p_max_mw=v.p_max_mw, eta_ch=v.eta_ch,
                          eta_dis=v.eta_dis, retention_per_h=v.retention_per_h)
    return VehicleSpec(name=v.name, kind=v.kind, battery=battery, start_node=v.start,
                       e_init_mwh=v.e_init_mwh)


def transport_graph(cfg: Config) -> TransportGraph:
    return TransportGraph.from_edges(cfg.road.nodes,
                                     [e.model_dump(by_alias=True) for e in cfg.road.edges],
                                     symmetric=cfg.road.symmetric, kind=cfg.road.kind)


@dataclass
class World:
    """Everything one policy run needs, freshly built (nothing is shared between runs)."""

    problem: Problem
    graph: TransportGraph
    fleet: FleetModel
    vehicles: list[Vehicle]
    sites: list[DistributionSite]


@dataclass(frozen=True)
class Realisation:
    """Actual load and PV per site and step (MW), drawn once per seed and shared by policies,
    and the road as the vehicles meet it (None: free flow, no breakdowns)."""

    load_mw: np.ndarray  # (n_sites, n_steps)
    pv_mw: np.ndarray
    traffic: Traffic | None = None
    outages: dict[str, Outages] | None = None


def with_road(cfg: Config, actual: Realisation, seq: np.random.SeedSequence) -> Realisation:
    """``actual`` plus the realised traffic and breakdowns of ``cfg.uncertainty``.

    Drawn from ``seq`` (its own child of the run's SeedSequence, so the load/PV draws do not
    change), which is split once more so that turning traffic on or off leaves the breakdown
    schedule unchanged. With both off nothing is drawn and ``actual`` is returned as it is.
    """
    u = cfg.uncertainty
    if u.travel_sigma == 0 and u.breakdown_prob_per_day == 0:
        return actual
    step = cfg.scenario.step_min
    n_steps = cfg.scenario.horizon_min // step
    traffic_seq, outage_seq = seq.spawn(2)
    traffic = outages = None
    if u.travel_sigma > 0:
        graph = transport_graph(cfg)
        traffic = draw_traffic(graph.graph.edges, n_steps, step, u.travel_sigma,
                               np.random.default_rng(traffic_seq))
    if u.breakdown_prob_per_day > 0:
        outages = draw_outages([v.name for v in cfg.fleet], n_steps, step,
                               u.breakdown_prob_per_day, u.breakdown_duration_min,
                               np.random.default_rng(outage_seq))
    return replace(actual, traffic=traffic, outages=outages)


def realisation(cfg: Config, specs: list[SiteSpec], rng: np.random.Generator) -> Realisation:
    """Forecast profiles plus the scenario's AR(1) noise (MODELS.md A.10.1)."""
    step, horizon = cfg.scenario.step_min, cfg.scenario.horizon_min
    load = np.array([s.load_profile.per_step(step, horizon) * s.peak_load_mw for s in specs])
    pv = np.array([s.pv_profile.per_step(step, horizon) * s.pv_cap_mw for s in specs])
    u = cfg.uncertainty
    if u.load_sigma == 0 and u.pv_sigma == 0:
        return Realisation(load, pv)
    cap = np.array([s.pv_cap_mw for s in specs])
    # One noise value per hour (rho is hour-to-hour), held within the hour: the same seed gives
    # the same realised load and PV at every step length.
    load_act, pv_act = realise_per_step(
        [s.load_profile for s in specs], [s.pv_profile for s in specs],
        np.array([s.peak_load_mw for s in specs]), cap, step, horizon, rng,
        sigma_load=u.load_sigma, sigma_pv=u.pv_sigma, rho_per_h=u.rho, corr_load=u.load_corr,
        corr_pv=u.pv_corr)
    return Realisation(load_act, pv_act)


def build_world(cfg: Config, actual: Realisation | None, rng: np.random.Generator) -> World:
    """Build fresh grids, graph, fleet and the static :class:`Problem` for one policy run."""
    step, horizon = cfg.scenario.step_min, cfg.scenario.horizon_min
    specs = [site_spec(name, g, cfg.power_flow) for name, g in cfg.grids.items()]
    sites = []
    for i, spec in enumerate(specs):
        kwargs = {}
        if actual is not None:
            kwargs = {"load_actual_mw": actual.load_mw[i], "pv_actual_mw": actual.pv_mw[i]}
        sites.append(build_site(spec, step, horizon, **kwargs))
    graph = transport_graph(cfg)
    vspecs = [vehicle_spec(v) for v in cfg.fleet]
    by_name = {v.name: v for v in cfg.fleet}
    fleet = FleetModel(graph, vspecs, rng=rng,
                       degradation=lambda spec: vehicle_degradation(by_name[spec.name]),
                       traffic=actual.traffic if actual is not None else None,
                       outages=actual.outages if actual is not None else None)
    problem = Problem(step_min=step, horizon_min=horizon, nodes=graph.nodes,
                      travel_min=graph.travel_table(), paths=graph.path_table(),
                      travel_energy_mwh=graph.energy_table(),
                      vehicles=tuple(vspecs), sites=tuple(s.info for s in sites),
                      deg_usd_per_mwh={s.name: cycle_usd_per_mwh(
                          vehicle_degradation(by_name[s.name]), s.battery) for s in vspecs})
    return World(problem, graph, fleet, fleet.vehicles, sites)
