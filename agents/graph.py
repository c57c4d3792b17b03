"""Road and rail graphs: a directed NetworkX graph with integer travel minutes on every edge.

Edge attributes: ``travel_min`` (int >= 1, required), ``dist_km`` (optional, default 0) and
``energy_mwh`` (traction energy drawn from the battery, default 0; MODELS.md A.2 assumes the truck
has its own traction supply). Nodes may carry ``site`` (the grid site whose connection point is at
that node).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import networkx as nx


class TransportGraph:
    """A road or rail network on which vehicles drive along shortest (fastest) paths."""

    def __init__(self, graph: nx.DiGraph, kind: str = "road") -> None:
        self.graph = graph
        self.kind = kind
        self._paths: dict[str, dict[str, list[str]]] | None = None
        self._times: dict[str, dict[str, int]] | None = None

    @classmethod
    def from_edges(cls, nodes: Iterable[str], edges: Iterable[Mapping], symmetric: bool = True,
                   kind: str = "road") -> TransportGraph:
        """Build from node names and edge records ``{"from", "to", "travel_min", ...}``.

        With ``symmetric`` every edge is added in both directions (unless the reverse is given).
        """
        g = nx.DiGraph()
        g.add_nodes_from(nodes)
        given = set()
        for e in edges:
            attrs = {k: v for k, v in e.items() if k not in ("from", "to")}
            attrs.setdefault("dist_km", 0.0)
            attrs.setdefault("energy_mwh", 0.0)
            g.add_edge(e["from"], e["to"], **attrs)
            given.add((e["from"], e["to"]))
        if symmetric:
            for u, v in list(given):
                if (v, u) not in given:
                    g.add_edge(v, u, **g.edges[u, v])
        return cls(g, kind)

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(self.graph.nodes)

    def problems(self, must_reach: Iterable[str], path: str = "road",
                 step_min: int | None = None) -> list[str]:
        """Every problem with this graph, as ``path: message`` strings (empty if none).

        Checks travel times (whole minutes >= 1, and whole steps when ``step_min`` is given), and
        that every node in ``must_reach`` can reach every other one (each failing pair is named).
        """
        out: list[str] = []
        for u, v, d in self.graph.edges(data=True):
            t = d.get("travel_min")
            if not isinstance(t, int) or isinstance(t, bool) or t < 1:
                out.append(f"{path}.edges[{u}->{v}].travel_min: must be a whole number of minutes"
                           f" >= 1, got {t!r}")
            elif step_min is not None and t % int(step_min):
                out.append(f"{path}.edges[{u}->{v}].travel_min: must be a whole number of "
                           f"{int(step_min)}-min steps, got {t}")
            if d.get("energy_mwh", 0.0) < 0:
                out.append(f"{path}.edges[{u}->{v}].energy_mwh: must be >= 0")
        if out:
            return out
        needed = list(dict.fromkeys(must_reach))
        for n in needed:
            if n not in self.graph:
                out.append(f"{path}.nodes: node {n!r} is not in the {self.kind} graph")
        needed = [n for n in needed if n in self.graph]
        for a in needed:
            reach = nx.descendants(self.graph, a)
            for b in needed:
                if a != b and b not in reach:
                    out.append(f"{path}: {b!r} cannot be reached from {a!r}")
        return out

    def _all_pairs(self) -> None:
        if self._paths is None:
            self._paths = {}
            self._times = {}
            for src, (dist, paths) in nx.all_pairs_dijkstra(self.graph, weight="travel_min"):
                self._times[src] = {k: int(v) for k, v in dist.items()}
                self._paths[src] = paths

    def shortest_path(self, a: str, b: str) -> list[str]:
        """Fastest node sequence from ``a`` to ``b`` (ties: NetworkX's deterministic order)."""
        self._all_pairs()
        return list(self._paths[a][b])

    def travel_min(self, a: str, b: str) -> int:
        """Shortest travel time in minutes (0 for ``a == b``)."""
        self._all_pairs()
        return self._times[a][b]

    def travel_table(self) -> dict[tuple[str, str], int]:
        self._all_pairs()
        return {(a, b): t for a, row in self._times.items() for b, t in row.items()}

    def path_table(self) -> dict[tuple[str, str], tuple[str, ...]]:
        self._all_pairs()
        return {(a, b): tuple(p) for a, row in self._paths.items() for b, p in row.items()}

    def energy_table(self) -> dict[tuple[str, str], float]:
        """Traction energy (MWh) along every shortest path."""
        return {pair: self.path_energy_mwh(list(p)) for pair, p in self.path_table().items()}

    def edge(self, u: str, v: str) -> Mapping:
        return self.graph.edges[u, v]

    def path_energy_mwh(self, path: list[str]) -> float:
        return float(sum(self.graph.edges[u, v]["energy_mwh"] for u, v in zip(path, path[1:])))

    def path_minutes(self, path: list[str]) -> int:
        return int(sum(self.graph.edges[u, v]["travel_min"] for u, v in zip(path, path[1:])))
