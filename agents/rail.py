"""The rail graph between energy-storage stations (MODELS.md B.1, B.14).

Trains run between stations only; every pair of distinct stations is joined by a direct track
whose travel time is the TSN's ``tau_ij`` in whole hours (1 h on case 1, 3 h on case 2, the same
for every pair by assumption 3 of the source). The graph is what the simulation moves trains on,
with ``travel_min = 60 * travel_h``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agents.graph import TransportGraph
from sim.errors import ScenarioError
from sim.tsn import TransmissionCase

__all__ = ["rail_graph", "rail_graph_from_matrix"]


def rail_graph_from_matrix(stations: Sequence[str], travel_h) -> TransportGraph:
    """A complete directed rail graph from station names and an (n, n) travel-hours matrix.

    Parameters
    ----------
    stations : sequence of str
        Station names (the graph's nodes), unique.
    travel_h : array-like of int, shape (n, n)
        ``travel_h[i][j]`` is the travel time from station ``i`` to ``j`` in whole hours
        (>= 1 off the diagonal; the diagonal is ignored). It need not be symmetric.

    Returns
    -------
    TransportGraph
        ``kind="rail"``; an edge ``i -> j`` for every ``i != j`` with ``travel_min =
        60 * travel_h[i][j]``, ``dist_km = 0`` and ``energy_mwh = 0`` (traction energy is not
        drawn from the carried batteries, B.6 (18)).

    Raises
    ------
    sim.errors.ScenarioError
        Naming the field: duplicate names, a matrix of the wrong shape, or a travel time that is
        not a whole number of hours >= 1.
    """
    names = [str(s) for s in stations]
    problems = []
    if len(set(names)) != len(names):
        problems.append(f"stations: names must be unique, got {names}")
    arr = np.asarray(travel_h, dtype=float)
    n = len(names)
    if arr.shape != (n, n):
        problems.append(f"travel_h: shape {arr.shape}, expected ({n}, {n})")
    else:
        for i in range(n):
            for j in range(n):
                v = arr[i, j]
                if i != j and not (np.isfinite(v) and v >= 1 and v == int(v)):
                    problems.append(f"travel_h[{i}][{j}] ({names[i]}->{names[j]}): must be a "
                                    f"whole number of hours >= 1, got {v}")
    if problems:
        raise ScenarioError(problems, source="rail graph")
    edges = [{"from": names[i], "to": names[j], "travel_min": 60 * int(arr[i, j])}
             for i in range(n) for j in range(n) if i != j]
    return TransportGraph.from_edges(names, edges, symmetric=False, kind="rail")


def rail_graph(case: TransmissionCase) -> TransportGraph:
    """The rail graph between the stations of ``case`` (``case.travel_h``, whole hours)."""
    if not case.stations:
        raise ScenarioError(f"stations: case {case.name!r} has no stations (rail graphs exist "
                            f"only for the 'mes' variant)")
    return rail_graph_from_matrix([s.name for s in case.stations], case.travel_h)
