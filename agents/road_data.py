"""Load the Co-OPT MESS input data (MODELS.md D.1) into frozen records and road graphs.

The data are the CSV conversions of the Excel inputs of the public repository
``joyelshamim/Co-optimization-Framework`` (seed 002; ``data/coopt/README.md``): the 7-node
``small_*`` and 16-node ``large_*`` networks (directed distance matrices, road gradients, site
demands and excavator loads), ``traffic_intensity.csv`` and ``vehicles.csv``.

Conventions [S-repo] (data README, MODELS.md D.1):

* distance matrix row = from, column = to, km; ``-1`` = no road. The matrices are used *directed,
  as given* (the large one is asymmetric, e.g. 0->11 35 km but 11->0 47 km).
* gradients in % per directed arc; an arc listed without its reverse gets the negated grade on the
  reverse; an arc in neither direction is flat. A reverse arc whose grade is not the negation is
  reported as a problem.
* node roles come from the matrix header: ``Depot``, ``Charging site k``, anything else is a
  construction site (checked against the site-demand file).
* the source maps charging sites to CIGRE MV buses (not in the CSVs; data README):
  small {1 -> 6, 3 -> 10}; large {1 -> 6, 3 -> 6, 7 -> 10, 10 -> 10, 13 -> 11}.

Validation: every problem in every file is collected and raised at once as a
:class:`sim.errors.ScenarioError`, each as ``file: line N, column 'C': message`` (the header is
line 1; ``line`` is the file line on which the CSV record ends).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from agents.graph import TransportGraph
from agents.truck import DEFAULT_TRAFFIC, DEFAULT_TRUCK, TrafficProfile, TruckParams, edge_trip
from sim.errors import ScenarioError

NETWORKS = ("small", "large")
# Charging site -> CIGRE MV bus, as the source maps them [S-repo] (data README, MODELS.md D.1).
CHARGING_BUS = {
    "small": {1: 6, 3: 10},
    "large": {1: 6, 3: 6, 7: 10, 10: 10, 13: 11},
}
MAX_ABS_GRADE_PCT = 30.0  # plausibility bound for a road gradient [P]


# ================================================================ records
@dataclass(frozen=True)
class VehicleRecord:
    """One row of ``vehicles.csv``."""

    vehicle_id: int
    vehicle_type: str
    capacity_kwh: float
    speed_kmh: float  # average (free) speed; traffic factors multiply it (D.1)
    e_per_km_kwh: float  # the repository's flat consumption (repo-compatible energy mode only)
    wage_usd_per_h: float
    mass_kg: float
    a_k_kwh: float  # the repository's fixed energy per leg

    def truck_params(self, base: TruckParams = DEFAULT_TRUCK) -> TruckParams:
        """D.3 physics with this vehicle's mass."""
        return base.with_mass(self.mass_kg)


@dataclass(frozen=True)
class SiteDemand:
    """One row of ``*_site_demand.csv``: energy need and time window of a construction site."""

    node: int
    name: str
    requirement_kwh: float
    present_kwh: float
    present_soc_pct: float
    start_h: float
    end_h: float


@dataclass(frozen=True)
class Excavator:
    capacity_kwh: float
    consumption_kwh_per_h: float


@dataclass(frozen=True)
class SiteLoad:
    """One row of ``*_site_loads.csv``: the excavators working at a site."""

    node: int
    name: str
    excavators: tuple[Excavator, ...]


@dataclass(frozen=True)
class Arc:
    """A directed road: distance (km) and gradient (%) as loaded."""

    from_node: int
    to_node: int
    dist_km: float
    grade_pct: float


@dataclass(frozen=True)
class RoadNetwork:
    """One Co-OPT network: nodes, directed arcs, node roles, sites and the charging-bus map."""

    name: str
    labels: tuple[str, ...]  # header label of node i
    arcs: tuple[Arc, ...]
    depot: int
    charging_sites: tuple[int, ...]
    construction_sites: tuple[int, ...]
    bus_of_charging_site: Mapping[int, int]
    demands: tuple[SiteDemand, ...]
    loads: tuple[SiteLoad, ...]
    _arc: Mapping[tuple[int, int], Arc] = field(repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_arc", MappingProxyType(
            {(a.from_node, a.to_node): a for a in self.arcs}))

    @property
    def n_nodes(self) -> int:
        return len(self.labels)

    def role(self, node: int) -> str:
        if node == self.depot:
            return "depot"
        return "charging" if node in self.charging_sites else "construction"

    def arc(self, u: int, v: int) -> Arc:
        """The directed arc ``u -> v`` (KeyError if there is no road)."""
        return self._arc[(u, v)]

    def has_arc(self, u: int, v: int) -> bool:
        return (u, v) in self._arc

    def transport_graph(self, free_speed_kmh: float, depart_min: int = 7 * 60,
                        params: TruckParams = DEFAULT_TRUCK,
                        traffic: TrafficProfile = DEFAULT_TRAFFIC,
                        mode: str = "fifo") -> TransportGraph:
        """A directed :class:`TransportGraph` (nodes ``"0"``, ``"1"``, ...) for one departure time.

        Edge attributes: ``travel_min`` (whole minutes, rounded up; D.2), ``dist_km``,
        ``grade_pct``, ``energy_mwh`` and ``e_peak_mwh`` (D.3 battery energy and its peak along
        the edge). Node attributes: ``role``, ``label`` and, for charging sites, ``bus``. The
        values are those of a departure at ``depart_min``: a static snapshot for the simulation's
        vehicles; a time-dependent router should call :func:`agents.truck.edge_trip` per step.
        """
        edges = []
        for a in self.arcs:
            t = edge_trip(a.dist_km, a.grade_pct, depart_min, free_speed_kmh, params, traffic,
                          mode)
            edges.append({"from": str(a.from_node), "to": str(a.to_node),
                          "travel_min": t.travel_min, "dist_km": a.dist_km,
                          "grade_pct": a.grade_pct, "energy_mwh": t.e_kwh / 1000.0,
                          "e_peak_mwh": t.e_peak_kwh / 1000.0})
        g = TransportGraph.from_edges([str(i) for i in range(self.n_nodes)], edges,
                                      symmetric=False)
        for i in range(self.n_nodes):
            attrs = {"role": self.role(i), "label": self.labels[i]}
            if i in self.bus_of_charging_site:
                attrs["bus"] = self.bus_of_charging_site[i]
            g.graph.nodes[str(i)].update(attrs)
        return g


@dataclass(frozen=True)
class CooptData:
    """Everything in a Co-OPT data directory."""

    source_dir: str
    networks: Mapping[str, RoadNetwork]
    traffic: TrafficProfile
    vehicles: tuple[VehicleRecord, ...]

    @property
    def small(self) -> RoadNetwork:
        return self.networks["small"]

    @property
    def large(self) -> RoadNetwork:
        return self.networks["large"]


# ================================================================ CSV reading with problems
def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip().lower()


class _Table:
    """A CSV file as header + rows with their line numbers; every problem goes to ``problems``."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.fname = path.name
        self.problems = problems
        self.header: list[str] = []
        self.rows: list[tuple[int, list[str]]] = []
        self.ok = False
        if not path.is_file():
            problems.append(f"{self.fname}: file not found in {path.parent}")
            return
        try:
            with path.open(newline="", encoding="utf-8-sig") as f:
                reader = csv.reader(f)
                head = next(reader, None)
                if head is None:
                    problems.append(f"{self.fname}: file is empty")
                    return
                self.header = head
                for rec in reader:
                    if not rec or all(not c.strip() for c in rec):
                        continue
                    self.rows.append((reader.line_num, rec))
        except (UnicodeDecodeError, csv.Error) as exc:
            problems.append(f"{self.fname}: cannot be read as CSV ({exc})")
            return
        self.ok = True

    def col(self, name: str, required: bool = True) -> int | None:
        want = _norm(name)
        for i, h in enumerate(self.header):
            if _norm(h) == want:
                return i
        if required:
            self.problems.append(f"{self.fname}: line 1: missing column '{name}' (columns: "
                                 f"{', '.join(repr(h.strip()) for h in self.header)})")
        return None

    def where(self, line: int, column: str) -> str:
        return f"{self.fname}: line {line}, column '{column}'"

    def cell(self, line: int, rec: list[str], idx: int | None, column: str) -> str | None:
        if idx is None:
            return None
        if idx >= len(rec):
            self.problems.append(f"{self.where(line, column)}: missing value (row has {len(rec)} "
                                 f"fields, header has {len(self.header)})")
            return None
        return rec[idx].strip()

    def number(self, line: int, rec: list[str], idx: int | None, column: str,
               lo: float | None = None, hi: float | None = None, integer: bool = False,
               lo_open: bool = False) -> float | None:
        raw = self.cell(line, rec, idx, column)
        if raw is None:
            return None
        try:
            x = float(raw)
        except ValueError:
            self.problems.append(f"{self.where(line, column)}: not a number: {raw!r}")
            return None
        if not math.isfinite(x):
            self.problems.append(f"{self.where(line, column)}: not finite: {raw!r}")
            return None
        if integer and x != int(x):
            self.problems.append(f"{self.where(line, column)}: must be a whole number, got {raw}")
            return None
        if lo is not None and (x <= lo if lo_open else x < lo):
            self.problems.append(f"{self.where(line, column)}: must be "
                                 f"{'>' if lo_open else '>='} {lo:g}, got {raw}")
            return None
        if hi is not None and x > hi:
            self.problems.append(f"{self.where(line, column)}: must be <= {hi:g}, got {raw}")
            return None
        return int(x) if integer else x


# ================================================================ loaders
def load_traffic(path: str | Path, problems: list[str] | None = None) -> TrafficProfile | None:
    """``traffic_intensity.csv`` -> :class:`TrafficProfile` (raises unless ``problems`` given)."""
    own = problems is None
    problems = [] if own else problems
    t = _Table(Path(path), problems)
    out = None
    if t.ok:
        cz, cs, cv = t.col("Zone ID"), t.col("Time Segment"), t.col("Traffic Intensity Index")
        got: dict[tuple[str, int], float] = {}
        if None not in (cz, cs, cv):
            for line, rec in t.rows:
                z = t.number(line, rec, cz, "Zone ID", 1, 3, integer=True)
                seg = (t.cell(line, rec, cs, "Time Segment") or "").lower()
                v = t.number(line, rec, cv, "Traffic Intensity Index", 0.0, 5.0, lo_open=True)
                period = "morning" if "morning" in seg else "evening" if "evening" in seg else None
                if period is None:
                    problems.append(f"{t.where(line, 'Time Segment')}: expected 'Morning Peak' or "
                                    f"'Evening Peak', got {seg!r}")
                if z is None or v is None or period is None:
                    continue
                if (period, z) in got:
                    problems.append(f"{t.where(line, 'Zone ID')}: zone {z} {period} given twice")
                got[(period, z)] = v
            missing = [f"zone {z} {p}" for p in ("morning", "evening") for z in (1, 2, 3)
                       if (p, z) not in got]
            if missing:
                problems.append(f"{t.fname}: missing rows for {', '.join(missing)}")
            else:
                out = TrafficProfile(morning=tuple(got[("morning", z)] for z in (1, 2, 3)),
                                     other=tuple(got[("evening", z)] for z in (1, 2, 3)))
    if own and problems:
        raise ScenarioError(problems, source=str(path))
    return out


_VEHICLE_COLS = ("Vehicle ID", "Vehicle Type", "Capacity (KWh)", "Average speed",
                 "Consumption (KWh per KM)", "Driver wages (hourly)", "Mass (kg)", "A_K")


def load_vehicles(path: str | Path,
                  problems: list[str] | None = None) -> tuple[VehicleRecord, ...]:
    """``vehicles.csv`` -> vehicle records (raises unless ``problems`` given)."""
    own = problems is None
    problems = [] if own else problems
    t = _Table(Path(path), problems)
    out: list[VehicleRecord] = []
    if t.ok:
        idx = {c: t.col(c) for c in _VEHICLE_COLS}
        if None not in idx.values():
            seen: set[int] = set()
            for line, rec in t.rows:
                vid = t.number(line, rec, idx["Vehicle ID"], "Vehicle ID", 0, integer=True)
                vtype = t.cell(line, rec, idx["Vehicle Type"], "Vehicle Type")
                nums = [t.number(line, rec, idx[c], c, 0.0, lo_open=c != "A_K")
                        for c in _VEHICLE_COLS[2:]]
                if vid is not None and vid in seen:
                    problems.append(f"{t.where(line, 'Vehicle ID')}: duplicate id {vid}")
                if vid is None or vtype is None or None in nums:
                    continue
                seen.add(vid)
                out.append(VehicleRecord(vid, vtype, *nums))
    if own and problems:
        raise ScenarioError(problems, source=str(path))
    return tuple(out)


def _load_matrix(t: _Table) -> tuple[list[str], dict[tuple[int, int], float]]:
    """Distance matrix -> (labels, {(u, v): km}) for roads only."""
    labels = [h.strip() for h in t.header[1:]]
    n = len(labels)
    arcs: dict[tuple[int, int], float] = {}
    if not t.header or _norm(t.header[0]) != "node":
        t.problems.append(f"{t.fname}: line 1, column 1: expected 'Node', got "
                          f"{(t.header[0] if t.header else '')!r}")
        return labels, arcs
    if len(t.rows) != n:
        t.problems.append(f"{t.fname}: {len(t.rows)} rows for {n} columns (the matrix must be "
                          "square)")
    for r, (line, rec) in enumerate(t.rows):
        u = t.number(line, rec, 0, "Node", 0, integer=True)
        if u is not None and u != r:
            t.problems.append(f"{t.where(line, 'Node')}: expected node {r}, got {u}")
        if len(rec) != n + 1:
            t.problems.append(f"{t.fname}: line {line}: {len(rec)} fields, expected {n + 1}")
        for c in range(min(n, len(rec) - 1)):
            col = labels[c]
            d = t.number(line, rec, c + 1, col)
            if d is None:
                continue
            if r == c:
                if d != 0:
                    t.problems.append(f"{t.where(line, col)}: diagonal distance must be 0, "
                                      f"got {d:g}")
            elif d == -1:
                continue
            elif d <= 0:
                t.problems.append(f"{t.where(line, col)}: distance must be > 0 km or -1 (no "
                                  f"road), got {d:g}")
            elif r < n:
                arcs[(r, c)] = d
    return labels, arcs


def _load_gradients(t: _Table, n: int,
                    roads: dict[tuple[int, int], float]) -> dict[tuple[int, int], float]:
    cf, ct, cg = t.col("Node From"), t.col("Node To"), t.col("Gradient (%)")
    given: dict[tuple[int, int], tuple[float, int]] = {}
    if None in (cf, ct, cg):
        return {}
    for line, rec in t.rows:
        u = t.number(line, rec, cf, "Node From", 0, n - 1, integer=True)
        v = t.number(line, rec, ct, "Node To", 0, n - 1, integer=True)
        g = t.number(line, rec, cg, "Gradient (%)", -MAX_ABS_GRADE_PCT, MAX_ABS_GRADE_PCT)
        if u is None or v is None or g is None:
            continue
        if (u, v) not in roads:
            t.problems.append(f"{t.where(line, 'Node To')}: gradient for {u}->{v}, but the "
                              "distance matrix has no such road")
            continue
        if (u, v) in given:
            t.problems.append(f"{t.where(line, 'Node To')}: arc {u}->{v} given twice (first on "
                              f"line {given[(u, v)][1]})")
            continue
        given[(u, v)] = (g, line)
    grades: dict[tuple[int, int], float] = {}
    for (u, v), (g, line) in given.items():
        if (v, u) in given and (u, v) < (v, u):
            g_rev, line_rev = given[(v, u)]
            if abs(g_rev + g) > 1e-9:
                t.problems.append(f"{t.where(line_rev, 'Gradient (%)')}: {v}->{u} has {g_rev:g} "
                                  f"but {u}->{v} (line {line}) has {g:g}; the reverse grade must "
                                  "be the negation")
        grades[(u, v)] = g
        if (v, u) not in given and (v, u) in roads:
            grades[(v, u)] = -g
    return grades


def _load_demands(t: _Table, sites: set[int], n: int) -> list[SiteDemand]:
    cols = ("Node", "Customers", "Requirement of KWH", "Present KWH", "Present SOC", "StartTime",
            "EndTime")
    idx = {c: t.col(c) for c in cols}
    out: list[SiteDemand] = []
    if None in idx.values():
        return out
    for line, rec in t.rows:
        node = t.number(line, rec, idx["Node"], "Node", 0, n - 1, integer=True)
        name = t.cell(line, rec, idx["Customers"], "Customers")
        req = t.number(line, rec, idx["Requirement of KWH"], "Requirement of KWH", 0.0)
        pres = t.number(line, rec, idx["Present KWH"], "Present KWH", 0.0)
        soc = t.number(line, rec, idx["Present SOC"], "Present SOC", 0.0, 100.0)
        start = t.number(line, rec, idx["StartTime"], "StartTime", 0.0, 24.0)
        end = t.number(line, rec, idx["EndTime"], "EndTime", 0.0, 24.0)
        if node is not None and node not in sites:
            t.problems.append(f"{t.where(line, 'Node')}: node {node} is not a construction site "
                              "of the distance matrix")
        if start is not None and end is not None and not start < end:
            t.problems.append(f"{t.where(line, 'EndTime')}: time window end {end:g} h must be "
                              f"after start {start:g} h")
            continue
        if None in (node, name, req, pres, soc, start, end):
            continue
        out.append(SiteDemand(node, name, req, pres, soc, start, end))
    return out


def _load_loads(t: _Table, sites: set[int], n: int) -> list[SiteLoad]:
    c_node, c_name, c_n = t.col("Node"), t.col("Customer"), t.col("No of Excavator")
    out: list[SiteLoad] = []
    if None in (c_node, c_name, c_n):
        return out
    for line, rec in t.rows:
        node = t.number(line, rec, c_node, "Node", 0, n - 1, integer=True)
        name = t.cell(line, rec, c_name, "Customer")
        k = t.number(line, rec, c_n, "No of Excavator", 0, 20, integer=True)
        if node is not None and node not in sites:
            t.problems.append(f"{t.where(line, 'Node')}: node {node} is not a construction site "
                              "of the distance matrix")
        if k is None or node is None or name is None:
            continue
        exc = []
        for j in range(1, k + 1):
            cap_col = f"Capacity of the excavator {j} (KWh)"
            use_col = f"Consumption of excavator {j} (KWh/h)"
            cap = t.number(line, rec, t.col(cap_col), cap_col, 0.0, lo_open=True)
            use = t.number(line, rec, t.col(use_col), use_col, 0.0)
            if cap is not None and use is not None:
                exc.append(Excavator(cap, use))
        if len(exc) == k:
            out.append(SiteLoad(node, name, tuple(exc)))
    return out


def load_network(directory: str | Path, name: str,
                 problems: list[str] | None = None) -> RoadNetwork | None:
    """Load ``{name}_distance_km.csv``, ``{name}_road_gradient.csv``, ``{name}_site_demand.csv``
    and ``{name}_site_loads.csv`` from ``directory`` (raises unless ``problems`` given)."""
    own = problems is None
    problems = [] if own else problems
    d = Path(directory)
    before = len(problems)
    tdist = _Table(d / f"{name}_distance_km.csv", problems)
    labels, roads = _load_matrix(tdist) if tdist.ok else ([], {})
    n = len(labels)
    depot = [i for i, lab in enumerate(labels) if _norm(lab) == "depot"]
    charging = [i for i, lab in enumerate(labels) if _norm(lab).startswith("charging site")]
    sites = [i for i in range(n) if i not in depot and i not in charging]
    if tdist.ok and len(depot) != 1:
        problems.append(f"{tdist.fname}: line 1: need exactly one 'Depot' column, found "
                        f"{len(depot)}")
    bus_map = dict(CHARGING_BUS.get(name, {}))
    if name in CHARGING_BUS and tdist.ok and sorted(bus_map) != charging:
        problems.append(f"{tdist.fname}: line 1: charging sites {charging} do not match the "
                        f"source's bus map for the {name} network {sorted(bus_map)}")
    tgrad = _Table(d / f"{name}_road_gradient.csv", problems)
    grades = _load_gradients(tgrad, n, roads) if tgrad.ok and n else {}
    tdem = _Table(d / f"{name}_site_demand.csv", problems)
    demands = _load_demands(tdem, set(sites), n) if tdem.ok and n else []
    tload = _Table(d / f"{name}_site_loads.csv", problems)
    loads = _load_loads(tload, set(sites), n) if tload.ok and n else []
    if tdem.ok and n and len(problems) == before:
        missing = sorted(set(sites) - {s.node for s in demands})
        if missing:
            problems.append(f"{tdem.fname}: no demand row for construction site(s) {missing}")
    out = None
    if len(problems) == before:
        arcs = tuple(Arc(u, v, km, grades.get((u, v), 0.0)) for (u, v), km in sorted(roads.items()))
        out = RoadNetwork(name=name, labels=tuple(labels), arcs=arcs, depot=depot[0],
                          charging_sites=tuple(charging), construction_sites=tuple(sites),
                          bus_of_charging_site=MappingProxyType(bus_map),
                          demands=tuple(demands), loads=tuple(loads))
    if own and problems:
        raise ScenarioError(problems, source=str(d))
    return out


def load_coopt(directory: str | Path, networks: tuple[str, ...] = NETWORKS) -> CooptData:
    """Load a whole Co-OPT data directory; all problems of all files in one ScenarioError."""
    d = Path(directory)
    problems: list[str] = []
    nets = {name: load_network(d, name, problems) for name in networks}
    traffic = load_traffic(d / "traffic_intensity.csv", problems)
    vehicles = load_vehicles(d / "vehicles.csv", problems)
    if problems:
        raise ScenarioError(problems, source=str(d))
    return CooptData(source_dir=str(d), networks=MappingProxyType(nets), traffic=traffic,
                     vehicles=vehicles)
