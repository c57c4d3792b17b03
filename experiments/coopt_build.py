"""Build the Co-OPT routing problems (``sim.coopt.TruckDayProblem``) from data, physics and prices.

Wires ``agents.road_data`` (networks, vehicles), ``agents.truck`` (D.2 travel time and D.3
energy per departure step), ``agents.degradation`` (C.5 per-transition cost tables) and
``grids.prices`` (OPF prices at the charging buses) into the plain arrays the ``dp`` router and
the baselines read. Defaults are MODELS.md D.1/D.4/D.5 values; [P] marks proposals.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from agents.degradation import make_degradation
from agents.road_data import CooptData, RoadNetwork, VehicleRecord
from agents.truck import edge_trip
from grids.prices import PriceConfig, PriceResult, nodal_prices, step_prices_usd_per_kwh
from sim.coopt import TruckDayProblem
from sim.errors import ScenarioError


@dataclass(frozen=True)
class CooptSettings:
    """Router and cost settings (MODELS.md D.1, D.4, D.5)."""

    step_min: int = 15  # D.4 [P] 0.25 h
    t_start_h: float = 7.0  # D.4: 7:00-19:00
    t_end_h: float = 19.0
    soc_min_frac: float = 0.05  # D.4 [P] (0.10 makes site 4 infeasible)
    soc_step_frac: float = 0.01  # D.4 [P]
    soc_max_frac: float = 1.0
    soc_init_frac: float = 0.90  # fresh MESS, charge target [S-repo]
    soc_chg_max_frac: float = 0.90  # [S-repo]
    soc_old_frac: float = 0.20  # old MESS at pick-up [S-repo]
    soc_end_frac: float = 0.60  # D.4 [P]
    soc_deliver_min_frac: float = 0.50  # D.4 [P]
    p_chg_kw: float = 500.0  # charger [S-repo]
    eta_ch: float = 0.95  # [P] charger + battery round trip share on charging
    eta_dis: float = 0.95  # [P]
    toll_usd_per_km: float = 0.20  # D.5.1 [S-repo]
    maint_usd_per_km: float = 0.21  # D.5.1 [S-repo]
    serve_h: float = 0.5  # D.1 [S-repo]
    pen_unmet_usd_per_kwh: float = 1.0  # [P] D.5.4: backup diesel at a site ~ 2x peak price
    allow_v2g: bool = False  # D.4: off by default
    chargers_per_site: int = 1  # [P]
    temp_c: float = 25.0  # C.1 [P]
    c_pack_usd_per_kwh: float = 150.0  # C.1 [P]
    traffic_mode: str = "fifo"  # D.2
    n_trucks: int = 24  # vehicles.csv order; sequential DP stops when all sites are served

    def problems(self) -> list[str]:
        out = []
        if self.step_min <= 0 or 60 % self.step_min:
            out.append(f"coopt.step_min: must divide 60, got {self.step_min}")
        if not 0 <= self.t_start_h < self.t_end_h <= 24:
            out.append("coopt.t_start_h/t_end_h: need 0 <= start < end <= 24")
        if not 0 < self.soc_step_frac <= 0.1:
            out.append(f"coopt.soc_step_frac: must be in (0, 0.1], got {self.soc_step_frac}")
        if not 0 <= self.soc_min_frac < self.soc_end_frac <= self.soc_chg_max_frac <= 1:
            out.append("coopt.soc_*: need soc_min < soc_end <= soc_chg_max <= 1")
        if self.n_trucks < 1:
            out.append("coopt.n_trucks: must be >= 1")
        return out

    @classmethod
    def from_dict(cls, d: dict, path: str = "coopt") -> CooptSettings:
        names = {f.name for f in fields(cls)}
        bad = [f"{path}.{k}: unknown setting (valid: {', '.join(sorted(names))})"
               for k in d if k not in names]
        if bad:
            raise ScenarioError(bad)
        s = cls(**d)
        if s.problems():
            raise ScenarioError(s.problems())
        return s

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def n_steps(self) -> int:
        return int(round((self.t_end_h - self.t_start_h) * 60 / self.step_min))

    @property
    def t_start_min(self) -> int:
        return int(round(self.t_start_h * 60))


def charging_prices(net: RoadNetwork, cfg: PriceConfig | None = None,
                    rng: np.random.Generator | None = None) -> tuple[dict[int, np.ndarray],
                                                                     PriceResult]:
    """Hourly OPF price (USD/kWh, 24 values) at each charging node's CIGRE MV bus."""
    buses = sorted(set(net.bus_of_charging_site.values()))
    res = nodal_prices(buses, cfg or PriceConfig(), rng)
    per_node = {c: res.price_usd_per_kwh[:, buses.index(b)]
                for c, b in net.bus_of_charging_site.items()}
    return per_node, res


def degradation_tables(model_name: str, s: CooptSettings, e_cap_kwh: float
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(J, J) cycle cost (USD) and calendar cost rate (USD/h) between SOC buckets (C.5)."""
    model = make_degradation(model_name, temp_c=s.temp_c, c_pack_usd_per_kwh=s.c_pack_usd_per_kwh,
                             e_nom_kwh=e_cap_kwh)
    n = int(round((s.soc_max_frac - s.soc_min_frac) / s.soc_step_frac)) + 1
    grid = s.soc_min_frac + s.soc_step_frac * np.arange(n)
    a, b = np.meshgrid(grid, grid, indexing="ij")
    c_rate = getattr(model, "c_rate_default_per_h", 0.5)
    d_cal, d_cyc = model.transition_damage(a, b, 1.0, s.soc_chg_max_frac, c_rate_per_h=c_rate)
    c_rep = model.c_rep_usd
    return np.asarray(d_cyc) * c_rep, np.asarray(d_cal) * c_rep


def move_tables(net: RoadNetwork, v: VehicleRecord, s: CooptSettings, data: CooptData
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(K, N, N) steps, energy and peak energy of every road per departure step (D.2, D.3)."""
    K, N = s.n_steps, net.n_nodes
    steps = np.full((K, N, N), -1, dtype=int)
    e = np.zeros((K, N, N))
    epk = np.zeros((K, N, N))
    params = v.truck_params()
    for k in range(K):
        t0 = s.t_start_min + k * s.step_min
        for a in net.arcs:
            t = edge_trip(a.dist_km, a.grade_pct, t0, v.speed_kmh, params, data.traffic,
                          s.traffic_mode)
            steps[k, a.from_node, a.to_node] = max(1, math.ceil(t.travel_min / s.step_min
                                                                - 1e-9))
            e[k, a.from_node, a.to_node] = t.e_kwh
            epk[k, a.from_node, a.to_node] = t.e_peak_kwh
    return steps, e, epk


def build_problems(data: CooptData, network: str, degradation: str,
                   s: CooptSettings = CooptSettings(),
                   hourly_price: dict[int, np.ndarray] | None = None,
                   price_cfg: PriceConfig | None = None) -> tuple[TruckDayProblem, ...]:
    """One problem per truck (vehicles.csv order, first ``n_trucks``)."""
    if s.problems():
        raise ScenarioError(s.problems())
    if network not in data.networks:
        raise ScenarioError(f"coopt.network: unknown network {network!r}; valid: "
                            f"{', '.join(data.networks)}")
    net = data.networks[network]
    if hourly_price is None:
        hourly_price, _ = charging_prices(net, price_cfg)
    K, N = s.n_steps, net.n_nodes
    price = np.full((24, N), np.nan)
    for c, series in hourly_price.items():
        price[:, c] = series
    price_k = step_prices_usd_per_kwh(price, s.t_start_min, s.step_min, K)
    dist = np.full((N, N), np.nan)
    for a in net.arcs:
        dist[a.from_node, a.to_node] = a.dist_km
    demands = sorted(net.demands, key=lambda d: d.node)

    def step_of(h: float) -> int:
        return int(math.floor((h * 60 - s.t_start_min) / s.step_min + 1e-9))

    cache: dict[tuple, tuple] = {}
    deg_cache: dict[float, tuple] = {}
    out = []
    for v in data.vehicles[: s.n_trucks]:
        key = (v.speed_kmh, v.mass_kg)
        if key not in cache:
            cache[key] = move_tables(net, v, s, data)
        if v.capacity_kwh not in deg_cache:
            deg_cache[v.capacity_kwh] = degradation_tables(degradation, s, v.capacity_kwh)
        steps, e, epk = cache[key]
        cyc, cal = deg_cache[v.capacity_kwh]
        out.append(TruckDayProblem(
            name=f"truck{v.vehicle_id}", n_nodes=N, depot=net.depot,
            charging_nodes=tuple(net.charging_sites),
            customers=tuple(d.node for d in demands),
            requirement_kwh=tuple(d.requirement_kwh for d in demands),
            window_start_steps=tuple(max(0, step_of(d.start_h)) for d in demands),
            window_end_steps=tuple(min(K, step_of(d.end_h)) for d in demands),
            step_min=s.step_min, t_start_min=s.t_start_min, n_steps=K,
            soc_min_frac=s.soc_min_frac, soc_step_frac=s.soc_step_frac, n_soc=cyc.shape[0],
            soc_init_frac=s.soc_init_frac, soc_chg_max_frac=s.soc_chg_max_frac,
            soc_old_frac=s.soc_old_frac, soc_end_frac=s.soc_end_frac,
            soc_deliver_min_frac=s.soc_deliver_min_frac, e_cap_kwh=v.capacity_kwh,
            p_chg_kw=s.p_chg_kw, eta_ch=s.eta_ch, eta_dis=s.eta_dis, dist_km=dist,
            move_steps=steps, move_e_kwh=e, move_epeak_kwh=epk, price_usd_per_kwh=price_k,
            cost_per_km_usd=s.toll_usd_per_km + s.maint_usd_per_km,
            wage_usd_per_h=v.wage_usd_per_h,
            serve_steps=int(math.ceil(s.serve_h * 60 / s.step_min - 1e-9)),
            deg_cyc_usd=cyc, deg_cal_usd_per_h=cal,
            pen_unmet_usd_per_kwh=s.pen_unmet_usd_per_kwh, allow_v2g=s.allow_v2g,
            chargers_per_site=s.chargers_per_site, degradation_name=degradation))
    return tuple(out)
