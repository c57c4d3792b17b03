"""Plain data of the Co-OPT MESS routing problem (MODELS.md D.4-D.6), handed to ``policies``.

``experiments`` builds one :class:`TruckDayProblem` per truck from the road data
(``agents.road_data``), the truck physics (``agents.truck``: travel time and energy per departure
step), the OPF prices (``grids.prices``) and a degradation model (``agents.degradation``: the
per-transition cost tables). Policies only see these arrays, so they import nothing but ``sim``.

Units are in the names: ``_kwh``, ``_usd``, ``_frac`` (SOC as a fraction of the MESS capacity),
``_steps`` (router steps of ``step_min`` minutes from ``t_start_min``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# action kinds of a plan (D.4)
END, SERVE, MOVE, CHARGE, DISCHARGE, WAIT = 0, 1, 2, 3, 4, 5
ACTION_NAMES = ("end", "serve", "move", "charge", "discharge", "wait")
# mission phases (D.4): 0 carrying the fresh MESS, 1 carrying the customer's depleted MESS back
FRESH, OLD = 0, 1


@dataclass(frozen=True, eq=False)
class TruckDayProblem:
    """One truck's swap mission over one day on a directed road graph (D.4).

    Arrays: ``dist_km`` (N, N), NaN where there is no road; ``move_steps`` (K, N, N) router steps
    to drive ``u -> v`` departing at step ``k`` (-1: no road); ``move_e_kwh`` and
    ``move_epeak_kwh`` (K, N, N) battery energy of that drive and its peak along the edge (D.3);
    ``price_usd_per_kwh`` (K, N) grid price at charging nodes (NaN elsewhere);
    ``deg_cyc_usd`` (J, J) and ``deg_cal_usd_per_h`` (J, J) degradation cost of a SOC transition
    between buckets (C.5, reference-top rule): cycle part and calendar rate per hour.
    """

    name: str
    n_nodes: int
    depot: int
    charging_nodes: tuple[int, ...]
    customers: tuple[int, ...]
    requirement_kwh: tuple[float, ...]
    window_start_steps: tuple[int, ...]
    window_end_steps: tuple[int, ...]
    step_min: int
    t_start_min: int
    n_steps: int
    soc_min_frac: float
    soc_step_frac: float
    n_soc: int
    soc_init_frac: float
    soc_chg_max_frac: float
    soc_old_frac: float
    soc_end_frac: float
    soc_deliver_min_frac: float
    e_cap_kwh: float
    p_chg_kw: float
    eta_ch: float
    eta_dis: float
    dist_km: np.ndarray = field(repr=False)
    move_steps: np.ndarray = field(repr=False)
    move_e_kwh: np.ndarray = field(repr=False)
    move_epeak_kwh: np.ndarray = field(repr=False)
    price_usd_per_kwh: np.ndarray = field(repr=False)
    cost_per_km_usd: float
    wage_usd_per_h: float
    serve_steps: int
    deg_cyc_usd: np.ndarray = field(repr=False)
    deg_cal_usd_per_h: np.ndarray = field(repr=False)
    pen_unmet_usd_per_kwh: float
    allow_v2g: bool = False
    chargers_per_site: int = 1
    degradation_name: str = ""
    # "energy": unmet = requirement - delivered kWh; "site": unmet = requirement of unserved sites
    unmet_mode: str = "energy"

    def __post_init__(self) -> None:
        n, k, j = self.n_nodes, self.n_steps, self.n_soc
        problems = []
        shapes = {"dist_km": (n, n), "move_steps": (k, n, n), "move_e_kwh": (k, n, n),
                  "move_epeak_kwh": (k, n, n), "price_usd_per_kwh": (k, n),
                  "deg_cyc_usd": (j, j), "deg_cal_usd_per_h": (j, j)}
        for name, shape in shapes.items():
            got = np.shape(getattr(self, name))
            if got != shape:
                problems.append(f"{self.name}.{name}: shape {got}, expected {shape}")
        if not 0 <= self.depot < n:
            problems.append(f"{self.name}.depot: {self.depot} not in 0..{n - 1}")
        if len({len(self.customers), len(self.requirement_kwh), len(self.window_start_steps),
                len(self.window_end_steps)}) != 1:
            problems.append(f"{self.name}: customers, requirement_kwh and windows differ in "
                            "length")
        top = self.soc_min_frac + (j - 1) * self.soc_step_frac
        for name in ("soc_init_frac", "soc_chg_max_frac", "soc_old_frac", "soc_end_frac"):
            if not self.soc_min_frac - 1e-9 <= getattr(self, name) <= top + 1e-9:
                problems.append(f"{self.name}.{name}: {getattr(self, name)} outside the SOC grid "
                                f"[{self.soc_min_frac}, {top}]")
        if self.step_min <= 0 or self.serve_steps < 0 or self.p_chg_kw <= 0:
            problems.append(f"{self.name}: step_min and p_chg_kw must be > 0, serve_steps >= 0")
        for c in self.charging_nodes:
            if not np.all(np.isfinite(np.asarray(self.price_usd_per_kwh)[:, c])):
                problems.append(f"{self.name}.price_usd_per_kwh: no price for charging node {c}")
        if self.unmet_mode not in ("energy", "site"):
            problems.append(f"{self.name}.unmet_mode: must be 'energy' or 'site', got "
                            f"{self.unmet_mode!r}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def soc_grid_frac(self) -> np.ndarray:
        return self.soc_min_frac + self.soc_step_frac * np.arange(self.n_soc)

    def bucket(self, soc_frac: float) -> int:
        """SOC bucket, rounded down (conservative, D.4); -1 below ``soc_min_frac``."""
        x = (soc_frac - self.soc_min_frac) / self.soc_step_frac
        j = int(np.floor(x + 1e-9))
        return min(j, self.n_soc - 1) if j >= 0 else -1

    def deg_usd(self, soc_from_frac: float, soc_to_frac: float, hours: float) -> float:
        """Planning-model degradation cost (C.5 tables) of a transition between exact SOCs: the
        table entry of their buckets (rounded down, floored at the first bucket)."""
        a = max(self.bucket(soc_from_frac), 0)
        b = max(self.bucket(soc_to_frac), 0)
        return float(self.deg_cyc_usd[a, b] + self.deg_cal_usd_per_h[a, b] * hours)

    def step_clock_min(self, k: int) -> int:
        return self.t_start_min + k * self.step_min


@dataclass(frozen=True)
class PlanStep:
    """One action of a plan with its effect and cost parts (USD)."""

    kind: str
    k_start: int
    k_end: int
    node_from: int
    node_to: int
    phase_from: int
    soc_from_frac: float
    soc_to_frac: float
    customer: int = -1
    dist_km: float = 0.0
    grid_kwh: float = 0.0  # > 0 bought (charge), < 0 sold (V2G)
    delivered_kwh: float = 0.0
    traction_kwh: float = 0.0
    distance_usd: float = 0.0
    wage_usd: float = 0.0
    energy_usd: float = 0.0
    degradation_usd: float = 0.0
    penalty_usd: float = 0.0  # at SERVE: -pen * (delivered or requirement): unmet demand avoided

    @property
    def cost_usd(self) -> float:
        return (self.distance_usd + self.wage_usd + self.energy_usd + self.degradation_usd
                + self.penalty_usd)


@dataclass(frozen=True)
class TruckPlan:
    """A truck's plan: steps, feasibility, and totals."""

    truck: str
    steps: tuple[PlanStep, ...]
    feasible: bool
    reason: str = ""

    @property
    def served_customer(self) -> int:
        return next((s.customer for s in self.steps if s.kind == "serve"), -1)

    def total(self, attr: str) -> float:
        return float(sum(getattr(s, attr) for s in self.steps))

    @property
    def cost_usd(self) -> float:
        return float(sum(s.cost_usd for s in self.steps))
