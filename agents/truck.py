"""Battery-truck physics: traffic-dependent travel time and terrain-aware traction energy.

MODELS.md D.2 (travel time) and D.3 (energy), as pure functions of (edge distance km, gradient %,
departure minute, truck data). The DP router precomputes them per departure step; the vehicles
that drive a :class:`agents.graph.TransportGraph` built from them (``agents.road_data``) therefore
use the same times and energies.

**Traffic (D.2).** An edge of ``d`` km lies ``min(2, d)`` km in zone 1 and the rest split equally
between zones 2 and 3 (Co-OPT data README [S-repo]); the zones are traversed in the order 1, 2, 3
[P]. The speed in zone ``z`` is ``v_free * rho_z(h)``, with ``rho`` the "traffic intensity index"
used as a speed factor: the morning-peak values for 7 <= h < 12, the "evening" values at every
other hour (E.D2, as the repository does). Default integration is FIFO-safe (Ichoua, Gendreau &
Potvin 2003, Eur. J. Oper. Res. 144:379): the speed changes at the period boundaries 07:00 and
12:00 while the truck drives. ``mode="repo"`` uses the departure period for the whole edge.

**Rounding to the clock.** The engine's clock counts whole minutes. :func:`travel_minutes`
rounds the exact travel time *up* to whole minutes, at least 1 [P]. Rounding up never lets a
truck arrive before physics allows, and since the exact arrival time is non-decreasing in the
departure time (FIFO) and the departure is a whole minute, the rounded arrival stays FIFO too.
The energy is computed from the exact (unrounded) traversal.

**Energy (D.3).** For a piece of length ``l`` at grade ``g`` (%) and speed ``u``::

    F = m g (C_rr cos(theta) + sin(theta)) + 1/2 rho_a C_d A u^2,   theta = atan(g / 100)
    E_wheel = F l / 3.6e6  [kWh]
    E_batt = E_wheel / eta_dt if E_wheel >= 0 else eta_rg * E_wheel   (regeneration)
             + P_aux tau + n_stop * 1/2 m u^2 (1 - eta_rg) / (eta_dt 3.6e6)

Parameters (all [P], MODELS.md D.3 table; sources there):

==================  ===========  ==========================================================
``mass_kg``         50,000 kg    Co-OPT vehicles.csv [S-repo] (40 t EU GCW class)
``crr``             0.006        EU tyre label C3 (Reg. (EU) 2020/740); Wong (2008)
``cd``, ``area_m2`` 0.6, 9.5 m2  tractor-trailer C_d A 5-6.5 m2; Wong (2008), Sripad &
                                 Viswanathan (2017, ACS Energy Lett. 2:1669)
``rho_air_kg_m3``   1.2 kg/m3    air at 20 degC, sea level
``g_m_s2``          9.81 m/s2
``eta_dt``          0.87         battery to wheel (inverter, motor, gear); Ehsani et al. (2018)
``eta_rg``          0.60         share of negative wheel energy recovered
``p_aux_kw``        3 kW         HVAC, compressors, controls
``grade_fraction``  0.1          share of an edge at its grade; the rest is flat (D.3 data
                                 caveat, ``grade_fraction``; ``1.0`` = repository reading)
``stops_per_km``    0 (off)      ``kappa_s``: stops/km at standstill traffic; D.3 suggests 2
                                 when stop-and-go is modelled, ``n = kappa_s l_km (1 - rho)``
==================  ===========  ==========================================================

Within each constant-speed piece the flat part is driven before the graded part [P]. This only
matters for :attr:`EdgeTrip.e_peak_kwh`, the largest cumulative energy drawn at any point along
the edge (D.4 feasibility ``Delta E^+``): putting a descent last is the conservative choice.

Sanity check (D.3): 50 t, flat, 45 km/h gives 1.18 kWh/km; a 1 km climb at 7 % adds about
``m g h / eta_dt`` = 11 kWh.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import mesa

MIN_PER_DAY = 1440
J_PER_KWH = 3.6e6


@dataclass(frozen=True)
class TrafficProfile:
    """Speed factors ``rho_z`` of zones 1..3 in the morning peak and at every other hour.

    Defaults: Co-OPT ``traffic_intensity.csv`` [S-repo] (morning 0.75/0.85/1.00, "evening"
    0.50/0.55/0.90); the morning peak is ``[07:00, 12:00)`` of every day.
    """

    morning: tuple[float, float, float] = (0.75, 0.85, 1.00)
    other: tuple[float, float, float] = (0.50, 0.55, 0.90)
    morning_start_min: int = 7 * 60
    morning_end_min: int = 12 * 60
    zone1_km: float = 2.0

    def __post_init__(self) -> None:
        for name in ("morning", "other"):
            vals = getattr(self, name)
            if len(vals) != 3 or any(not (0.0 < v <= 5.0) for v in vals):
                raise ValueError(f"TrafficProfile.{name}: need three speed factors in (0, 5], "
                                 f"got {vals!r}")
        if not 0 <= self.morning_start_min < self.morning_end_min <= MIN_PER_DAY:
            raise ValueError("TrafficProfile: need 0 <= morning_start_min < morning_end_min "
                             "<= 1440")
        if self.zone1_km < 0:
            raise ValueError("TrafficProfile.zone1_km must be >= 0")

    def is_morning(self, minute: float) -> bool:
        m = minute % MIN_PER_DAY
        return self.morning_start_min <= m < self.morning_end_min

    def factor(self, zone: int, minute: float) -> float:
        """Speed factor of ``zone`` (1, 2 or 3) at clock ``minute`` (minutes since day 0, 00:00)."""
        return (self.morning if self.is_morning(minute) else self.other)[zone - 1]

    def next_boundary_min(self, minute: float) -> float:
        """The first period boundary strictly after ``minute``."""
        day = math.floor(minute / MIN_PER_DAY) * MIN_PER_DAY
        starts = (self.morning_start_min, self.morning_end_min,
                  MIN_PER_DAY + self.morning_start_min)
        for b in starts:
            if day + b > minute:
                return float(day + b)
        return float(day + MIN_PER_DAY + self.morning_start_min)  # pragma: no cover


NO_TRAFFIC = TrafficProfile(morning=(1.0, 1.0, 1.0), other=(1.0, 1.0, 1.0))


DEFAULT_TRAFFIC = TrafficProfile()


def zone_split_km(dist_km: float, zone1_km: float = 2.0) -> tuple[float, float, float]:
    """Lengths in zones 1, 2, 3: the first ``min(zone1_km, d)`` km, then half the rest each."""
    if dist_km < 0:
        raise ValueError(f"dist_km must be >= 0, got {dist_km}")
    l1 = min(zone1_km, dist_km)
    rest = 0.5 * (dist_km - l1)
    return l1, rest, rest


@dataclass(frozen=True)
class Piece:
    """A stretch driven at constant speed: zone, length, speed, start minute, duration."""

    zone: int
    dist_km: float
    speed_kmh: float
    rho: float
    start_min: float
    duration_h: float


def traverse(dist_km: float, depart_min: float, free_speed_kmh: float,
             traffic: TrafficProfile = TrafficProfile(), mode: str = "fifo") -> list[Piece]:
    """Constant-speed pieces of an edge driven from ``depart_min`` (D.2)."""
    if free_speed_kmh <= 0:
        raise ValueError(f"free_speed_kmh must be > 0, got {free_speed_kmh}")
    if mode not in ("fifo", "repo"):
        raise ValueError(f"mode must be 'fifo' or 'repo', got {mode!r}")
    pieces: list[Piece] = []
    t = float(depart_min)
    for zone, length in enumerate(zone_split_km(dist_km, traffic.zone1_km), start=1):
        remaining = length
        if mode == "repo":
            rho = traffic.factor(zone, depart_min)
            u = free_speed_kmh * rho
            if remaining > 0:
                pieces.append(Piece(zone, remaining, u, rho, t, remaining / u))
                t += remaining / u * 60.0
            continue
        while remaining > 1e-12:
            rho = traffic.factor(zone, t)
            u = free_speed_kmh * rho
            t_b = traffic.next_boundary_min(t)
            reach_km = u * (t_b - t) / 60.0
            if reach_km >= remaining:
                dur_h = remaining / u
                pieces.append(Piece(zone, remaining, u, rho, t, dur_h))
                t += dur_h * 60.0
                remaining = 0.0
            else:
                pieces.append(Piece(zone, reach_km, u, rho, t, (t_b - t) / 60.0))
                remaining -= reach_km
                t = t_b
    return pieces


def travel_time_h(dist_km: float, depart_min: float, free_speed_kmh: float,
                  traffic: TrafficProfile = TrafficProfile(), mode: str = "fifo") -> float:
    """Exact travel time (hours) of an edge departing at ``depart_min`` (D.2)."""
    return sum(p.duration_h for p in traverse(dist_km, depart_min, free_speed_kmh, traffic, mode))


def travel_minutes(dist_km: float, depart_min: int, free_speed_kmh: float,
                   traffic: TrafficProfile = TrafficProfile(), mode: str = "fifo") -> int:
    """Travel time on the clock: the exact time rounded up to whole minutes, at least 1."""
    exact_min = travel_time_h(dist_km, depart_min, free_speed_kmh, traffic, mode) * 60.0
    return max(1, math.ceil(exact_min - 1e-9))


@dataclass(frozen=True)
class TruckParams:
    """Physical truck parameters of D.3 (all [P]; see the module docstring for sources)."""

    mass_kg: float = 50_000.0
    crr: float = 0.006
    cd: float = 0.6
    area_m2: float = 9.5
    rho_air_kg_m3: float = 1.2
    g_m_s2: float = 9.81
    eta_dt: float = 0.87
    eta_rg: float = 0.60
    p_aux_kw: float = 3.0
    grade_fraction: float = 0.1
    stops_per_km: float = 0.0

    def __post_init__(self) -> None:
        bad = []
        for name in ("mass_kg", "area_m2", "rho_air_kg_m3", "g_m_s2"):
            if not getattr(self, name) > 0:
                bad.append(f"{name} must be > 0")
        for name in ("crr", "cd", "p_aux_kw", "stops_per_km"):
            if getattr(self, name) < 0:
                bad.append(f"{name} must be >= 0")
        if not 0 < self.eta_dt <= 1:
            bad.append("eta_dt must be in (0, 1]")
        if not 0 <= self.eta_rg <= 1:
            bad.append("eta_rg must be in [0, 1]")
        if not 0 <= self.grade_fraction <= 1:
            bad.append("grade_fraction must be in [0, 1]")
        if bad:
            raise ValueError("TruckParams: " + "; ".join(bad))

    def with_mass(self, mass_kg: float) -> TruckParams:
        return replace(self, mass_kg=float(mass_kg))


DEFAULT_TRUCK = TruckParams()


def wheel_energy_kwh(dist_km: float, grade_pct: float, speed_kmh: float,
                     params: TruckParams = TruckParams()) -> float:
    """Energy at the wheels (kWh; negative downhill when gravity exceeds resistance)."""
    theta = math.atan(grade_pct / 100.0)
    u = speed_kmh / 3.6
    f = (params.mass_kg * params.g_m_s2 * (params.crr * math.cos(theta) + math.sin(theta))
         + 0.5 * params.rho_air_kg_m3 * params.cd * params.area_m2 * u * u)
    return f * dist_km * 1000.0 / J_PER_KWH


def segment_energy_kwh(dist_km: float, grade_pct: float, speed_kmh: float, duration_h: float,
                       params: TruckParams = TruckParams(), rho: float = 1.0) -> float:
    """Battery energy (kWh) of one constant-speed, constant-grade segment (D.3 formula)."""
    e_wheel = wheel_energy_kwh(dist_km, grade_pct, speed_kmh, params)
    e = e_wheel / params.eta_dt if e_wheel >= 0 else params.eta_rg * e_wheel
    e += params.p_aux_kw * duration_h
    if params.stops_per_km > 0:
        u = speed_kmh / 3.6
        n_stop = params.stops_per_km * dist_km * max(0.0, 1.0 - rho)
        e += n_stop * 0.5 * params.mass_kg * u * u * (1 - params.eta_rg) / (params.eta_dt
                                                                             * J_PER_KWH)
    return e


@dataclass(frozen=True)
class EdgeTrip:
    """One traversal of an edge: exact and clock travel time, energy, and peak energy drawn."""

    dist_km: float
    grade_pct: float
    depart_min: int
    travel_h: float
    travel_min: int
    e_kwh: float
    e_peak_kwh: float
    pieces: tuple[Piece, ...] = field(repr=False)


def edge_trip(dist_km: float, grade_pct: float, depart_min: int, free_speed_kmh: float,
              params: TruckParams = TruckParams(), traffic: TrafficProfile = TrafficProfile(),
              mode: str = "fifo") -> EdgeTrip:
    """Travel time and battery energy of an edge departing at ``depart_min`` (D.2 + D.3)."""
    pieces = traverse(dist_km, depart_min, free_speed_kmh, traffic, mode)
    e_total, peak = 0.0, 0.0
    phi = params.grade_fraction
    for p in pieces:
        for share, grade in ((1.0 - phi, 0.0), (phi, grade_pct)):  # flat first [P]
            if share <= 0:
                continue
            e_total += segment_energy_kwh(p.dist_km * share, grade, p.speed_kmh,
                                          p.duration_h * share, params, p.rho)
            peak = max(peak, e_total)
    travel_h = sum(p.duration_h for p in pieces)
    return EdgeTrip(dist_km=dist_km, grade_pct=grade_pct, depart_min=int(depart_min),
                    travel_h=travel_h, travel_min=max(1, math.ceil(travel_h * 60.0 - 1e-9)),
                    e_kwh=e_total, e_peak_kwh=peak, pieces=tuple(pieces))


def edge_energy_kwh(dist_km: float, grade_pct: float, depart_min: int, free_speed_kmh: float,
                    params: TruckParams = TruckParams(),
                    traffic: TrafficProfile = TrafficProfile(), mode: str = "fifo") -> float:
    """Battery energy (kWh) of an edge; see :func:`edge_trip`."""
    return edge_trip(dist_km, grade_pct, depart_min, free_speed_kmh, params, traffic, mode).e_kwh


def repo_energy_kwh(dist_km: float, grade_pct: float, e_per_km_kwh: float, a_k_kwh: float,
                    mass_kg: float, g_m_s2: float = 9.81) -> float:
    """Repository-compatible energy (D.3, regression only): ``e_km d + a_k + m g sin(g/100) d``.

    It takes the grade in percent divided by 100 as an angle in radians, has no drivetrain
    efficiency, and goes negative downhill without limit - do not use it for planning.
    """
    return (e_per_km_kwh * dist_km + a_k_kwh
            + mass_kg * g_m_s2 * math.sin(grade_pct / 100.0) * dist_km * 1000.0 / J_PER_KWH)


# ==================================================================== the simulated truck
@dataclass(frozen=True)
class DriveDisturbance:
    """Seeded deviations of a drive from the D.2/D.3 model (all off by default) [P].

    ``delay_prob``: chance that a drive is held up (an incident, a closed lane) for a uniform
    ``1..delay_max_min`` extra minutes, standing with the auxiliaries on (``p_aux_kw``);
    ``energy_noise``: the drive's traction energy is multiplied by ``max(0, 1 + noise N(0, 1))``.
    """

    delay_prob: float = 0.0
    delay_max_min: int = 0
    energy_noise: float = 0.0

    def __post_init__(self) -> None:
        bad = []
        if not 0.0 <= self.delay_prob <= 1.0:
            bad.append(f"delay_prob must be in [0, 1], got {self.delay_prob}")
        if int(self.delay_max_min) != self.delay_max_min or self.delay_max_min < 0:
            bad.append(f"delay_max_min must be a whole number of minutes >= 0, got "
                       f"{self.delay_max_min}")
        if self.delay_prob > 0 and self.delay_max_min < 1:
            bad.append("delay_max_min must be >= 1 when delay_prob > 0")
        if not 0.0 <= self.energy_noise < 1.0:
            bad.append(f"energy_noise must be in [0, 1), got {self.energy_noise}")
        if bad:
            raise ValueError("DriveDisturbance: " + "; ".join(bad))

    @property
    def active(self) -> bool:
        return self.delay_prob > 0 or self.energy_noise > 0

    def draw(self, rng) -> tuple[int, float]:
        """(extra minutes, energy factor) of one drive."""
        delay = 0
        if self.delay_prob > 0 and rng.random() < self.delay_prob:
            delay = int(rng.integers(1, self.delay_max_min + 1))
        f = 1.0
        if self.energy_noise > 0:
            f = max(0.0, 1.0 + self.energy_noise * float(rng.standard_normal()))
        return delay, f


@dataclass(frozen=True)
class DriveRecord:
    """One simulated drive: clock minutes, energy, and whether the SOC stayed in its window."""

    node_from: int
    node_to: int
    depart_min: int
    arrive_min: int
    delay_min: int
    dist_km: float
    e_kwh: float
    soc_low_frac: float  # lowest SOC along the edge
    stranded: bool


@dataclass(frozen=True)
class ChargeRecord:
    """One simulated charge or discharge at a charging site (grid side, signed: + bought)."""

    node: int
    queue_min: int
    start_min: int
    end_min: int
    grid_kwh: float
    energy_usd: float


class CooptTruck(mesa.Agent):
    """A Co-OPT battery truck carrying one MESS at a time (MODELS.md D.4), driven by SimPy.

    Its methods are SimPy generators that take clock time: :meth:`drive` an arc with the D.2
    travel time and D.3 energy at the real departure minute (plus a seeded
    :class:`DriveDisturbance`), :meth:`charge` at constant power with the hourly grid price
    integrated over the real charging interval, :meth:`idle`. :meth:`swap` leaves the carried MESS
    at a site and takes the site's depleted one. The carried battery's stepwise degradation model
    (``agents.degradation``) is fed every piece of clock time, in chunks of at most ``feed_min``.
    """

    def __init__(self, model: mesa.Model, name: str, arcs: dict, depot: int,
                 free_speed_kmh: float, params: TruckParams, traffic: TrafficProfile,
                 traffic_mode: str, e_cap_kwh: float, p_chg_kw: float, eta_ch: float,
                 eta_dis: float, soc_min_frac: float, soc_max_frac: float, soc_init_frac: float,
                 degradation, disturbance: DriveDisturbance = DriveDisturbance(),
                 rng=None, feed_min: int = 15) -> None:
        super().__init__(model)
        if feed_min < 1:
            raise ValueError(f"CooptTruck.feed_min must be >= 1, got {feed_min}")
        self.name = name
        self.arcs = dict(arcs)  # (u, v) -> (dist_km, grade_pct)
        self.depot = depot
        self.free_speed_kmh = free_speed_kmh
        self.params = params
        self.traffic = traffic
        self.traffic_mode = traffic_mode
        self.e_cap_kwh = e_cap_kwh
        self.p_chg_kw = p_chg_kw
        self.eta_ch, self.eta_dis = eta_ch, eta_dis
        self.soc_min_frac, self.soc_max_frac = soc_min_frac, soc_max_frac
        self.new_battery = degradation  # () -> DegradationModel of one MESS
        self.disturbance = disturbance
        self.drive_rng = rng
        self.feed_min = feed_min
        self.node = depot
        self.soc_frac = soc_init_frac
        self.battery = self.new_battery()
        self.batteries = [self.battery]  # every MESS carried today, in order
        self.km = 0.0

    # ---------------------------------------------------------------- ageing
    def _feed(self, s0: float, s1: float, dt_min: float) -> None:
        self.battery.update(s0, s1, abs(s1 - s0) * self.e_cap_kwh / 1000.0,
                            max(int(round(dt_min)), 0), self.e_cap_kwh / 1000.0)

    def _feed_ramp(self, s0: float, s1: float, dt_min: int) -> None:
        """Feed a linear SOC ramp ``s0 -> s1`` over ``dt_min`` in chunks of ``feed_min``."""
        done = 0
        while done < dt_min:
            n = min(self.feed_min, dt_min - done)
            a = s0 + (s1 - s0) * done / dt_min
            b = s0 + (s1 - s0) * (done + n) / dt_min
            self._feed(a, b, n)
            done += n

    def idle(self, env, minutes: int, age: bool = True):
        """Stand still for ``minutes`` (calendar ageing only, if ``age``)."""
        minutes = int(minutes)
        if minutes > 0:
            if age:
                self._feed_ramp(self.soc_frac, self.soc_frac, minutes)
            yield env.timeout(minutes)

    # ---------------------------------------------------------------- actions
    def drive(self, env, to: int):
        """Drive the arc ``node -> to`` departing now; returns a :class:`DriveRecord`."""
        if (self.node, to) not in self.arcs:
            raise ValueError(f"{self.name}: no road {self.node} -> {to}")
        dist_km, grade = self.arcs[(self.node, to)]
        t0 = int(env.now)
        trip = edge_trip(dist_km, grade, t0, self.free_speed_kmh, self.params, self.traffic,
                         self.traffic_mode)
        delay, f = self.disturbance.draw(self.drive_rng) if self.disturbance.active else (0, 1.0)
        aux = self.params.p_aux_kw * delay / 60.0
        e = trip.e_kwh * f + aux
        peak = max(trip.e_peak_kwh * f, 0.0) + aux
        s0 = self.soc_frac
        low = s0 - peak / self.e_cap_kwh
        s1 = min(self.soc_max_frac, s0 - e / self.e_cap_kwh)
        dt = trip.travel_min + delay
        yield env.timeout(dt)
        self._feed(s0, s1, dt)
        rec = DriveRecord(self.node, to, t0, int(env.now), delay, dist_km, e, low,
                          low < self.soc_min_frac - 1e-12)
        self.soc_frac = s1
        self.node = to
        self.km += dist_km
        return rec

    def charge(self, env, target_soc_frac: float, price, charger=None, sign: int = 1,
               meter=None):
        """Charge (``sign=1``) or discharge (``-1``) at constant ``p_chg_kw`` to the target SOC.

        ``price(node, minute)`` gives USD/kWh; the energy of each clock hour is paid at that
        hour's price (integrated exactly over the real interval). ``charger`` is a
        ``simpy.Resource`` the truck queues for. ``meter(node, t0_min, t1_min, grid_kwh)``, if
        given, is told the exact grid-side draw when the charger is taken (after any queueing):
        ``grid_kwh`` (signed like :attr:`ChargeRecord.grid_kwh`) flows at constant power over
        ``[t0_min, t1_min)``, ``t1_min`` the exact (fractional) end of the charge, not the
        whole minute the truck leaves at. Returns a :class:`ChargeRecord`.
        """
        t_req = int(env.now)
        req = charger.request() if charger is not None else None
        if req is not None:
            yield req
        q_min = int(env.now) - t_req
        if q_min:
            self._feed_ramp(self.soc_frac, self.soc_frac, q_min)
        s0 = self.soc_frac
        e_batt = abs(target_soc_frac - s0) * self.e_cap_kwh
        e_grid = e_batt / self.eta_ch if sign > 0 else e_batt  # the charger side moves p_chg
        dur_h = e_grid / self.p_chg_kw
        t0 = int(env.now)
        cost, t, end = 0.0, float(t0), t0 + dur_h * 60.0
        while t < end - 1e-12:
            t_b = min(end, (math.floor(t / 60.0 + 1e-12) + 1) * 60.0)
            cost += float(price(self.node, int(math.floor(t + 1e-9)))) * self.p_chg_kw * (
                t_b - t) / 60.0
            t = t_b
        minutes = max(1, math.ceil(dur_h * 60.0 - 1e-9)) if e_grid > 0 else 0
        grid = e_grid if sign > 0 else -e_batt * self.eta_dis
        if meter is not None and e_grid > 0:
            meter(self.node, float(t0), end, grid)
        self._feed_ramp(s0, target_soc_frac, minutes)
        yield env.timeout(minutes)
        if req is not None:
            charger.release(req)
        self.soc_frac = target_soc_frac
        usd = cost if sign > 0 else -self.eta_dis * cost
        return ChargeRecord(self.node, q_min, t0, int(env.now), grid, usd)

    def swap(self, soc_old_frac: float) -> float:
        """Leave the carried MESS (returns the kWh it holds) and take the site's depleted one."""
        delivered = self.soc_frac * self.e_cap_kwh
        self.battery = self.new_battery()
        self.batteries.append(self.battery)
        self.soc_frac = soc_old_frac
        return delivered

    def damage(self) -> float:
        """Levelised damage (D_cal + D_cyc) of every MESS carried today (C.1 (L))."""
        return float(sum(b.d_cal + b.d_cyc for b in self.batteries))

    def loss_frac(self) -> float:
        return float(sum(b.q_eol_frac * (b.d_cal + b.d_cyc) for b in self.batteries))

    def c_rep_usd(self) -> float:
        return float(self.batteries[0].c_rep_usd)


class CooptFleet(mesa.Model):
    """Owns the Co-OPT trucks. Never call :meth:`step`: SimPy is the clock."""

    def __init__(self, rng=None) -> None:
        super().__init__(rng=rng)
        self.trucks: list[CooptTruck] = []

    def step(self) -> None:  # pragma: no cover - guard against misuse
        raise RuntimeError("CooptFleet is driven by the SimPy engine; do not call step()")
