"""Hourly locational prices at the Co-OPT charging buses from an optimal power flow (D.5.2).

The router reads ``lambda_b(h)`` (USD/kWh) at the CIGRE MV buses that the Co-OPT charging sites
connect to (small network {1 -> bus 6, 3 -> bus 10}; large {1, 3 -> 6; 7, 10 -> 10; 13 -> 11};
``data/coopt/README.md``). This module computes them, hour by hour, as the **duals of the nodal
power balance** of an optimal power flow on pandapower's CIGRE MV benchmark
(``create_cigre_network_mv(with_der="all")``): ``net.res_bus.lam_p`` after ``rundcopp`` (DC,
lossless: energy price minus ``sum_l PTDF_lb mu_l``, the D.5.2 [P] default) or ``runopp`` (AC,
also loss and voltage components). The repository's heuristic "LMP" (inverse-Jacobian sensitivity
plus random draws) is *not* used. ``tests/test_prices.py`` checks that the dual equals the
finite-difference marginal cost ``(C(P_b + eps) - C(P_b)) / eps`` and that congestion of the line
into a bus raises its price.

The OPF model, hour ``h`` (all numbers [P], D.5.2 and this docstring):

* **loads**: every CIGRE MV load scaled by ``load_shape[h]`` (:data:`LOAD_SHAPE`, a typical
  mixed residential/commercial day with its peak 1.0 = the CIGRE nominal load at 18 h);
* **PV** sgens at ``p_mw * pv_shape[h]`` (:data:`PV_SHAPE`, clear-sky bell 6-20 h), the wind
  turbine at ``wind_factor`` (0.35) of its rating; both are fixed injections (no cost);
* **dispatchable DER** of the benchmark (CHP diesel, fuel cells) are OPF generators between 0 and
  their rating at :data:`DER_COST_USD_PER_MWH`; the two benchmark batteries are removed (their
  schedule is not given);
* **upstream supply** at the 110 kV slack (``ext_grid``) at :func:`upstream_price_usd_per_mwh`: the
  repository generator's day-ahead band ``0.6 * U(30, 60)`` cent/kWh (D.5.2) made deterministic
  as ``180 + 180 * (L(h) - L_min) / (L_max - L_min)`` USD/MWh, plus its tariff 15 cent/kWh in
  06-09 h and 17-21 h, else 8 cent/kWh. ``upstream="repo_random"`` draws the day-ahead part from
  ``U(30, 60) * 0.6`` cent/kWh with a seeded generator instead;
* **load shedding** at every load bus at ``voll_usd_per_mwh`` (3000 USD/MWh) keeps the OPF
  feasible under any line limit; shed MW are reported and are 0 in the default cases;
* **limits**: lines and transformers at ``line_rating_factor * 100 %`` of their rated current
  (pandapower ``max_loading_percent``); AC only: bus voltages within 0.9-1.1 pu.

**Locational variation.** At nominal load nothing binds, so the DC prices are one price per hour
at every bus. :data:`FEEDER_END_CONGESTED` is the [P] loaded configuration the Co-OPT studies use
by default: line 7 (bus 9 -> 10, the only closed line into buses 10 and 11) limited to 15 % of
its rating (a derated old cable, about 0.76 MW) and a 2 MW local genset at bus 10 at
600 USD/MWh [P]. The line then binds in 11 h and 16-20 h, and in those hours buses 10 and 11 pay
the local marginal cost (600 USD/MWh, or the benchmark's residential fuel cell at 560 while it
can relieve the line alone) while bus 6 pays the upstream price. :func:`locational_spread` lists
the hours and buses whose price differs from the cheapest bus.

The charging trucks are **price takers**: the prices are computed without their charging load.
Measured (hours 10 and 18, two 0.5 MW chargers at buses 6 and 10): the DC prices do not move
(relative change < 1e-8, no limit binds); the AC prices move by 2.8 % at 10 h and by a factor
of about 5 at 18 h (a limit binds at the evening peak). Price taking is therefore only safe with
the DC default; AC prices for charging fleets need the chargers in the OPF.

Units: MW and USD/MWh inside pandapower (``cp1_eur_per_mw`` holds USD/MWh: pandapower's cost
unit is currency-agnostic); the time series handed to the router is USD/kWh.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandapower as pp
import pandapower.networks as pn

from sim.errors import ScenarioError

HOURS = 24
# [P] hourly load factor of the CIGRE MV nominal loads (1.0 = nominal = the daily peak, 18 h).
LOAD_SHAPE = (0.52, 0.48, 0.46, 0.45, 0.46, 0.52, 0.64, 0.76, 0.84, 0.88, 0.90, 0.92,
              0.91, 0.89, 0.87, 0.88, 0.93, 0.98, 1.00, 0.97, 0.90, 0.78, 0.66, 0.57)
# [P] PV output factor (clear-sky bell, sunrise 6 h, sunset 20 h, peak at 13 h).
PV_SHAPE = tuple(float(max(0.0, np.sin(np.pi * (h + 0.5 - 6.0) / 14.0))) if 6 <= h < 20 else 0.0
                 for h in range(HOURS))
WIND_FACTOR = 0.35  # [P] capacity factor of the benchmark's 1.5 MW wind turbine
# [P] marginal cost of the benchmark's dispatchable DER, USD/MWh (above the upstream band, so
# they run only when a limit binds).
DER_COST_USD_PER_MWH = {"CHP diesel": 450.0, "Fuel cell": 520.0, "Residential fuel cell": 560.0}
VOLL_USD_PER_MWH = 3000.0  # [P] load shedding
# D.5.2 repository tariff, cent/kWh -> USD/MWh: 15 in 6-9 h and 17-21 h, else 8.
TARIFF_USD_PER_MWH = tuple(150.0 if (6 <= h < 9 or 17 <= h < 21) else 80.0 for h in range(HOURS))
DA_BAND_USD_PER_MWH = (180.0, 360.0)  # D.5.2: 0.6 * U(30, 60) cent/kWh


def upstream_price_usd_per_mwh(load_shape: Sequence[float] = LOAD_SHAPE, mode: str = "shape",
                               rng: np.random.Generator | None = None) -> np.ndarray:
    """Upstream (110 kV) energy price per hour, USD/MWh: day-ahead band + repository tariff.

    ``mode="shape"`` (default): ``lo + (hi - lo) * (L - L_min) / (L_max - L_min)``.
    ``mode="repo_random"``: day-ahead part ``U(lo, hi)`` from ``rng`` (required, seeded).
    """
    shape = np.asarray(load_shape, dtype=float)
    lo, hi = DA_BAND_USD_PER_MWH
    if mode == "shape":
        span = shape.max() - shape.min()
        da = lo + (hi - lo) * ((shape - shape.min()) / span if span > 0 else 0.5)
    elif mode == "repo_random":
        if rng is None:
            raise ValueError("upstream_price_usd_per_mwh: mode 'repo_random' needs a seeded rng")
        da = rng.uniform(lo, hi, size=shape.size)
    else:
        raise ValueError(f"upstream_price_usd_per_mwh: mode must be 'shape' or 'repo_random', "
                         f"got {mode!r}")
    return da + np.asarray(TARIFF_USD_PER_MWH, dtype=float)[: shape.size]


@dataclass(frozen=True)
class LocalResource:
    """An extra dispatchable injection (e.g. a local generator or demand response) [P]."""

    bus: int
    p_max_mw: float
    cost_usd_per_mwh: float


@dataclass(frozen=True)
class PriceConfig:
    """Everything the hourly OPF depends on (defaults: module docstring, all [P])."""

    method: str = "dc"  # "dc" (rundcopp) or "ac" (runopp)
    load_shape: tuple[float, ...] = LOAD_SHAPE
    pv_shape: tuple[float, ...] = PV_SHAPE
    wind_factor: float = WIND_FACTOR
    upstream: str = "shape"  # or "repo_random" (seeded)
    upstream_usd_per_mwh: tuple[float, ...] | None = None  # overrides ``upstream`` if given
    line_rating_factor: float = 1.0
    line_limits_pct: tuple[tuple[int, float], ...] = ()  # (line index, max loading %) overrides
    der_cost_usd_per_mwh: tuple[tuple[str, float], ...] = tuple(DER_COST_USD_PER_MWH.items())
    extra: tuple[LocalResource, ...] = ()
    voll_usd_per_mwh: float = VOLL_USD_PER_MWH

    def problems(self) -> list[str]:
        out = []
        if self.method not in ("dc", "ac"):
            out.append(f"prices.method: must be 'dc' or 'ac', got {self.method!r}")
        for name in ("load_shape", "pv_shape"):
            v = np.asarray(getattr(self, name), dtype=float)
            if v.shape != (HOURS,) or not np.all(np.isfinite(v)) or np.any(v < 0):
                out.append(f"prices.{name}: need {HOURS} finite values >= 0")
        if self.upstream_usd_per_mwh is not None and len(self.upstream_usd_per_mwh) != HOURS:
            out.append(f"prices.upstream_usd_per_mwh: need {HOURS} values")
        if not 0 < self.line_rating_factor <= 10:
            out.append(f"prices.line_rating_factor: must be in (0, 10], got "
                       f"{self.line_rating_factor}")
        if not 0 <= self.wind_factor <= 1:
            out.append(f"prices.wind_factor: must be in [0, 1], got {self.wind_factor}")
        return out


@dataclass(frozen=True)
class PriceResult:
    """Hourly OPF prices at ``buses`` (USD/MWh) with the OPF diagnostics of each hour."""

    buses: tuple[int, ...]
    price_usd_per_mwh: np.ndarray  # (24, len(buses))
    all_bus_price_usd_per_mwh: np.ndarray  # (24, n_bus) every bus, for figures
    cost_usd_per_h: np.ndarray  # (24,) OPF objective
    shed_mw: np.ndarray  # (24,) load shed
    max_line_loading_pct: np.ndarray  # (24,)
    binding_lines: tuple[tuple[int, ...], ...]  # per hour, lines at >= 99.9 % of their limit
    config: PriceConfig = field(repr=False)

    @property
    def price_usd_per_kwh(self) -> np.ndarray:
        return self.price_usd_per_mwh / 1000.0


# [P] the Co-OPT studies' default: line 9 -> 10 derated to 15 %, a local genset at its far end.
FEEDER_END_CONGESTED = PriceConfig(
    line_limits_pct=((7, 15.0),),
    extra=(LocalResource(bus=10, p_max_mw=2.0, cost_usd_per_mwh=600.0),))


def locational_spread(res: PriceResult, tol_usd_per_mwh: float = 0.01
                      ) -> dict[int, tuple[int, ...]]:
    """Hours in which the prices at ``res.buses`` differ: hour -> buses dearer than the cheapest
    bus of that hour by more than ``tol_usd_per_mwh``. Empty if prices vary in time only."""
    out = {}
    for h in range(res.price_usd_per_mwh.shape[0]):
        row = res.price_usd_per_mwh[h]
        dear = tuple(b for b, x in zip(res.buses, row) if x > row.min() + tol_usd_per_mwh)
        if dear:
            out[h] = dear
    return out


def build_price_net(cfg: PriceConfig = PriceConfig()) -> pp.pandapowerNet:
    """The CIGRE MV net with OPF costs and limits of ``cfg`` (loads at their nominal values)."""
    probs = cfg.problems()
    if probs:
        raise ScenarioError(probs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = pn.create_cigre_network_mv(with_der="all")
    net.storage.drop(net.storage.index, inplace=True)
    net.load["controllable"] = False
    net.sgen["controllable"] = False
    der_cost = dict(cfg.der_cost_usd_per_mwh)
    net.sgen["nominal_p_mw"] = net.sgen.p_mw
    for i, row in net.sgen.iterrows():
        if row.type in der_cost:
            net.sgen.loc[i, ["controllable", "min_p_mw", "max_p_mw", "min_q_mvar", "max_q_mvar"]] \
                = [True, 0.0, row.p_mw, 0.0, 0.0]
            pp.create_poly_cost(net, i, "sgen", cp1_eur_per_mw=der_cost[row.type])
    for r in cfg.extra:
        if r.bus not in net.bus.index:
            raise ScenarioError(f"prices.extra: bus {r.bus} is not a CIGRE MV bus")
        i = pp.create_sgen(net, r.bus, p_mw=0.0, controllable=True, min_p_mw=0.0,
                           max_p_mw=r.p_max_mw, min_q_mvar=0.0, max_q_mvar=0.0,
                           type="local", name=f"local {r.bus}")
        net.sgen.loc[i, "nominal_p_mw"] = 0.0
        pp.create_poly_cost(net, i, "sgen", cp1_eur_per_mw=r.cost_usd_per_mwh)
    for b in sorted(set(net.load.bus)):  # load shedding at VOLL: the OPF is always feasible
        i = pp.create_sgen(net, b, p_mw=0.0, controllable=True, min_p_mw=0.0, max_p_mw=1e3,
                           min_q_mvar=0.0, max_q_mvar=0.0, type="shed", name=f"shed {b}")
        net.sgen.loc[i, "nominal_p_mw"] = 0.0
        pp.create_poly_cost(net, i, "sgen", cp1_eur_per_mw=cfg.voll_usd_per_mwh)
    net.ext_grid[["min_p_mw", "max_p_mw", "min_q_mvar", "max_q_mvar"]] = [-1e3, 1e3, -1e3, 1e3]
    pp.create_poly_cost(net, net.ext_grid.index[0], "ext_grid", cp1_eur_per_mw=0.0)
    net.line["max_loading_percent"] = 100.0 * cfg.line_rating_factor
    net.trafo["max_loading_percent"] = 100.0 * cfg.line_rating_factor
    for li, pct in cfg.line_limits_pct:
        if li not in net.line.index:
            raise ScenarioError(f"prices.line_limits_pct: no line {li} in the CIGRE MV net")
        net.line.loc[li, "max_loading_percent"] = float(pct)
    net.bus["min_vm_pu"], net.bus["max_vm_pu"] = 0.9, 1.1
    net.load["nominal_p_mw"] = net.load.p_mw
    net.load["nominal_q_mvar"] = net.load.q_mvar
    return net


def set_hour(net: pp.pandapowerNet, hour: int, cfg: PriceConfig, upstream_usd_per_mwh: float
             ) -> None:
    """Put hour ``hour``'s loads, renewable injections and upstream price into ``net``."""
    f = cfg.load_shape[hour]
    net.load["p_mw"] = net.load.nominal_p_mw * f
    net.load["q_mvar"] = net.load.nominal_q_mvar * f
    fixed = ~net.sgen.controllable.astype(bool)
    pv = fixed & (net.sgen.type == "PV")
    wp = fixed & (net.sgen.type == "WP")
    net.sgen.loc[pv, "p_mw"] = net.sgen.loc[pv, "nominal_p_mw"] * cfg.pv_shape[hour]
    net.sgen.loc[wp, "p_mw"] = net.sgen.loc[wp, "nominal_p_mw"] * cfg.wind_factor
    eg = net.poly_cost.index[(net.poly_cost.et == "ext_grid")][0]
    net.poly_cost.loc[eg, "cp1_eur_per_mw"] = float(upstream_usd_per_mwh)


def run_opf(net: pp.pandapowerNet, method: str) -> None:
    """Run the OPF; a failure raises :class:`ScenarioError` (VOLL shedding makes it rare)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if method == "dc":
                pp.rundcopp(net)
            else:
                pp.runopp(net, init="pf", calculate_voltage_angles=True, numba=False)
        except Exception as exc:  # pandapower raises OPFNotConverged and friends
            raise ScenarioError(f"prices: {method.upper()} OPF did not converge ({exc})") from exc


def _hour_upstream(cfg: PriceConfig, rng: np.random.Generator | None) -> np.ndarray:
    if cfg.upstream_usd_per_mwh is not None:
        return np.asarray(cfg.upstream_usd_per_mwh, dtype=float)
    return upstream_price_usd_per_mwh(cfg.load_shape, cfg.upstream, rng)


def hour_upstream_usd_per_mwh(cfg: PriceConfig, rng: np.random.Generator | None = None
                              ) -> np.ndarray:
    """The 24 upstream prices (USD/MWh) the OPFs of :func:`nodal_prices` use: with a fresh
    generator of the same seed, the same draws (``upstream="repo_random"``)."""
    return _hour_upstream(cfg, rng)


def bus_duals_usd_per_mwh(net: pp.pandapowerNet, method: str) -> np.ndarray:
    """Run the OPF of a net from :func:`build_price_net` (hour set by :func:`set_hour`, any
    extra fixed loads in it) and return the duals ``lam_p`` of every bus (USD/MWh), ordered like
    ``net.bus.index``; raises :class:`ScenarioError` if the OPF does not converge."""
    run_opf(net, method)
    return net.res_bus.lam_p.reindex(net.bus.index).to_numpy()


def nodal_prices(buses: Sequence[int], cfg: PriceConfig = PriceConfig(),
                 rng: np.random.Generator | None = None) -> PriceResult:
    """Solve the OPF for each of the 24 hours; the duals ``lam_p`` at ``buses`` (USD/MWh)."""
    net = build_price_net(cfg)
    bad = [b for b in buses if b not in net.bus.index]
    if bad:
        raise ScenarioError(f"prices.buses: {bad} are not CIGRE MV buses (0..{len(net.bus) - 1})")
    up = _hour_upstream(cfg, rng)
    nb = len(net.bus)
    lam = np.zeros((HOURS, nb))
    cost = np.zeros(HOURS)
    shed = np.zeros(HOURS)
    max_load = np.zeros(HOURS)
    binding: list[tuple[int, ...]] = []
    is_shed = (net.sgen.type == "shed").to_numpy()
    for h in range(HOURS):
        set_hour(net, h, cfg, up[h])
        run_opf(net, cfg.method)
        lam[h] = net.res_bus.lam_p.reindex(net.bus.index).to_numpy()
        cost[h] = float(net.res_cost)
        shed[h] = float(net.res_sgen.p_mw.to_numpy()[is_shed].sum())
        loading = net.res_line.loading_percent.to_numpy()
        max_load[h] = float(np.nanmax(loading))
        lim = net.line.max_loading_percent.to_numpy()
        binding.append(tuple(int(i) for i in net.line.index[loading >= 0.999 * lim]))
    idx = [list(net.bus.index).index(b) for b in buses]
    return PriceResult(buses=tuple(int(b) for b in buses), price_usd_per_mwh=lam[:, idx],
                       all_bus_price_usd_per_mwh=lam, cost_usd_per_h=cost, shed_mw=shed,
                       max_line_loading_pct=max_load, binding_lines=tuple(binding), config=cfg)


def hour_prices_usd_per_mwh(hour: int, cfg: PriceConfig = PriceConfig(),
                            rng: np.random.Generator | None = None) -> np.ndarray:
    """The duals ``lam_p`` of every CIGRE MV bus (USD/MWh) for one hour."""
    if not 0 <= hour < HOURS:
        raise ValueError(f"hour must be in 0..23, got {hour}")
    net = build_price_net(cfg)
    set_hour(net, hour, cfg, _hour_upstream(cfg, rng)[hour])
    run_opf(net, cfg.method)
    return net.res_bus.lam_p.reindex(net.bus.index).to_numpy()


def marginal_cost_fd(bus: int, hour: int, cfg: PriceConfig = PriceConfig(), eps_mw: float = 0.01,
                     rng: np.random.Generator | None = None) -> float:
    """Finite-difference marginal cost (USD/MWh) of ``eps_mw`` more load at ``bus`` in ``hour``.

    ``(C(load + eps) - C(load)) / eps`` with both OPFs solved from scratch: the honest check of
    the dual ``lam_p`` that :func:`nodal_prices` reports.
    """
    net = build_price_net(cfg)
    set_hour(net, hour, cfg, _hour_upstream(cfg, rng)[hour])
    run_opf(net, cfg.method)
    c0 = float(net.res_cost)
    net2 = copy.deepcopy(net)
    pp.create_load(net2, bus, p_mw=eps_mw, q_mvar=0.0, controllable=False)
    run_opf(net2, cfg.method)
    return (float(net2.res_cost) - c0) / eps_mw


def step_prices_usd_per_kwh(hourly_usd_per_kwh: np.ndarray, t_start_min: int, step_min: int,
                            n_steps: int) -> np.ndarray:
    """Hourly prices (24, n) -> one row per router step (price of the hour the step starts in)."""
    hourly = np.asarray(hourly_usd_per_kwh, dtype=float)
    hours = ((t_start_min + step_min * np.arange(n_steps)) // 60) % HOURS
    return hourly[hours]
