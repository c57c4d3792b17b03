"""Test doubles that implement the engine's protocols without pandapower."""

from __future__ import annotations

import numpy as np

from agents.graph import TransportGraph
from agents.vehicle import FleetModel
from sim.flexibility import c_norm_mw
from sim.types import (
    BatterySpec,
    GeneratorSpec,
    Problem,
    SiteInfo,
    SiteResources,
    SiteState,
    SiteStepResult,
    VehicleSpec,
    frozen_array,
)

BATTERY = BatterySpec(capacity_mwh=0.5, e_min_mwh=0.1, e_max_mwh=0.475, p_max_mw=0.25)


class FakeSite:
    """A grid site with a flat load whose 'power flow' just sums injections."""

    def __init__(self, name: str, node: str, n_steps: int, step_min: int, load_mw: float = 1.0):
        self.name, self.node, self.step_min = name, node, step_min
        res = SiteResources(generators=(GeneratorSpec("g", 1, 2.0, 0.0, 1.0, 1.0),))
        self.info = SiteInfo(name, node, res, c_norm_mw(res),
                             frozen_array(np.full(n_steps, load_mw)),
                             frozen_array(np.zeros(n_steps)))
        self.load_mw = load_mw
        self.seen: list[tuple[int, float]] = []

    def observe(self, time_min: int) -> SiteState:
        return SiteState(self.name, self.load_mw, 0.0)

    def step(self, time_min: int, dt_min: int, mess_p_mw: float) -> SiteStepResult:
        self.seen.append((time_min, mess_p_mw))
        return SiteStepResult(site=self.name, time_min=time_min, converged=True, status="ok",
                              vm_min_pu=1.0, vm_max_pu=1.0, max_line_loading_pct=0.0,
                              losses_mw=0.0, slack_p_mw=self.load_mw + mess_p_mw,
                              residual_mw=0.0, mess_p_mw=mess_p_mw, load_mw=self.load_mw,
                              pv_mw=0.0, flex_up_mw=0.0, flex_dn_mw=0.0)


#: The tiny world's timetable (SchedulePolicy entries): out to a, charge, to b, discharge, back.
TINY_PLAN = [
    {"time_min": 0, "vehicle": "truck", "dest": "a"},
    {"time_min": 60, "vehicle": "truck", "p_mw": 0.2},
    {"time_min": 120, "vehicle": "truck", "p_mw": 0.0},
    {"time_min": 180, "vehicle": "truck", "dest": "b"},
    {"time_min": 300, "vehicle": "truck", "p_mw": -0.2},
    {"time_min": 360, "vehicle": "truck", "dest": "a"},
]


def tiny_world(step_min: int = 60, horizon_min: int = 480, e_init_mwh: float = 0.25):
    """1 truck, 3 nodes (depot, a, b): the topology of the built-in 'tiny' scenario."""
    graph = TransportGraph.from_edges(
        ["depot", "a", "b"],
        [{"from": "depot", "to": "a", "travel_min": 45},
         {"from": "a", "to": "b", "travel_min": 90},
         {"from": "depot", "to": "b", "travel_min": 120}])
    spec = VehicleSpec("truck", "truck", BATTERY, "depot", e_init_mwh)
    fleet = FleetModel(graph, [spec], rng=np.random.default_rng(0))
    n = horizon_min // step_min
    sites = [FakeSite("a", "a", n, step_min), FakeSite("b", "b", n, step_min)]
    problem = Problem(step_min=step_min, horizon_min=horizon_min, nodes=graph.nodes,
                      travel_min=graph.travel_table(), paths=graph.path_table(),
                      vehicles=(spec,), sites=tuple(s.info for s in sites))
    return problem, fleet.vehicles, sites, graph
