"""SimPy engine of the Co-OPT truck missions (seed 002): one clock in integer minutes.

Every truck of the fleet is a SimPy process that runs its swap mission (MODELS.md D.4) on the
directed road graph. At each decision point, a step boundary of the router's grid
(``t_start_min + k * step_min``), the engine hands the policy a frozen :class:`~sim.types.State`
holding that truck (node, phase, **simulated** SOC) and the sites served so far, and applies the
truck's :class:`~sim.types.Command` through the truck agent's SimPy generators:

* MOVE: the truck drives the arc, taking the D.2 travel time at the real departure minute
  (rounded up to whole minutes) and the D.3 energy (``agents.truck.CooptTruck.drive``), plus any
  seeded disturbance; it then waits for the next step boundary;
* CHARGE / DISCHARGE: the truck queues for the site's charger (a ``simpy.Resource``), charges at
  constant power to the target SOC, paying each clock hour's energy at that hour's price;
* SERVE: waits for the site's time window, swaps the MESS (delivering ``soc E_cap``) and holds
  the service time; WAIT holds one step; END closes the mission at the depot.

The carried battery's stepwise degradation model is fed all the while. What the simulated truck
did is recorded as :class:`sim.coopt.PlanStep` rows priced by the **planning** cost model
(distance, wage for the busy minutes, the energy actually paid, degradation from the C.5 tables,
the unmet-energy term at SERVE), so a run can be compared step by step with the plan; the
stepwise model's damage is reported beside it. A policy that raises, an action that is not
possible in the simulated state (a closed window, a served site, a SOC below the minimum on a
road) and a truck still out at the end of the day are recorded failures; the truck stops there.
The engine never imports agents, grids or policies, and never steps a mesa model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import simpy

from sim.coopt import (
    ACTION_NAMES,
    CHARGE,
    DISCHARGE,
    END,
    FRESH,
    MOVE,
    OLD,
    SERVE,
    WAIT,
    PlanStep,
    TruckDayProblem,
)
from sim.types import Command, Decision, State, VehicleState


@dataclass
class TruckRun:
    """One truck's simulated day."""

    truck: str
    steps: list[PlanStep] = field(default_factory=list)
    arrivals: list[tuple[int, int]] = field(default_factory=list)  # (node, minute) of drives
    trace: list[tuple[int, float, int, int]] = field(default_factory=list)  # min, soc, phase, node
    failures: list[str] = field(default_factory=list)
    ended: bool = False
    delay_min: int = 0
    queue_min: int = 0
    soc_low_frac: float = math.inf  # lowest SOC reached, on roads included
    damage: float = 0.0  # stepwise levelised damage (D_cal + D_cyc) of every MESS carried
    loss_frac: float = 0.0
    degradation_stepwise_usd: float = 0.0

    @property
    def ok(self) -> bool:
        return self.ended and not self.failures

    def total(self, attr: str) -> float:
        return float(sum(getattr(s, attr) for s in self.steps))

    @property
    def cost_usd(self) -> float:
        return float(sum(s.cost_usd for s in self.steps))

    @property
    def served_customer(self) -> int:
        return next((s.customer for s in self.steps if s.kind == "serve"), -1)


def _action(p: TruckDayProblem, c: Command) -> tuple[int, int]:
    """The ``(action code, arg)`` of a truck's command on its mission's grid (MODELS.md D.4);
    no command (or ``"wait"``) waits one step."""
    if c.action == "end":
        return END, -1
    if c.action in ("", "move") and c.dest is not None:
        return MOVE, int(c.dest)
    if c.action in ("charge", "discharge"):
        if c.soc_target_frac is None:
            raise ValueError(f"{c.action} without soc_target_frac")
        return (CHARGE if c.action == "charge" else DISCHARGE), p.bucket(c.soc_target_frac)
    if c.action == "swap":
        if c.site not in p.customers:
            raise ValueError(f"swap at {c.site!r}: not a customer site of the mission")
        return SERVE, p.customers.index(c.site)
    if c.action in ("", "wait"):
        return WAIT, -1
    raise ValueError(f"action {c.action!r} is not a mission action (move, charge, discharge, "
                     f"swap, wait, end)")


class CooptEngine:
    """Runs the trucks of ``problems`` (matched by name with ``trucks``) through one day."""

    def __init__(self, problems: Sequence[TruckDayProblem], trucks: Sequence, policy,
                 price_usd_per_kwh: Callable[[int, int], float],
                 chargers_per_site: int | None = None) -> None:
        # no trucks is a valid day (a planner that found no plan sends none): nothing happens
        if not problems:
            raise ValueError("CooptEngine: no missions")
        self.problems: Mapping[str, TruckDayProblem] = {p.name: p for p in problems}
        missing = [t.name for t in trucks if t.name not in self.problems]
        if missing:
            raise ValueError(f"CooptEngine: no problem for trucks {missing}")
        p0 = problems[0]
        self.trucks = list(trucks)
        self.policy = policy
        self.price = price_usd_per_kwh
        self.env = simpy.Environment(initial_time=p0.t_start_min)
        cap = chargers_per_site or p0.chargers_per_site
        self.chargers = {c: simpy.Resource(self.env, capacity=cap) for c in p0.charging_nodes}
        self.served: list[int] = []
        self.events: list[tuple[int, str, str, int, str]] = []
        self.runs: dict[str, TruckRun] = {t.name: TruckRun(t.name) for t in self.trucks}

    def run(self) -> dict[str, TruckRun]:
        for t in self.trucks:
            self.env.process(self._mission(t))
        p0 = next(iter(self.problems.values()))
        self.env.run(until=p0.t_start_min + p0.n_steps * p0.step_min + 1)
        for t in self.trucks:
            r = self.runs[t.name]
            if not r.ended and not r.failures:
                r.failures.append(f"still out at the end of the day (node {t.node})")
            r.damage = t.damage()
            r.loss_frac = t.loss_frac()
            r.degradation_stepwise_usd = t.c_rep_usd() * r.damage
        return self.runs

    # ------------------------------------------------------------------ one truck
    def _log(self, truck: str, event: str, node: int, detail: str = "") -> None:
        self.events.append((int(self.env.now), truck, event, node, detail))

    def _mission(self, t):
        p = self.problems[t.name]
        r = self.runs[t.name]
        env = self.env
        t0, dk = p.t_start_min, p.step_min
        phase = FRESH
        r.trace.append((int(env.now), t.soc_frac, phase, t.node))

        def boundary() -> int:
            """The first step boundary at or after now."""
            return t0 + math.ceil((int(env.now) - t0) / dk - 1e-12) * dk

        def fail(msg: str) -> None:
            r.failures.append(f"{int(env.now)} min: {msg}")
            self._log(t.name, "failure", t.node, msg)

        while True:
            k = (int(env.now) - t0) // dk
            if k > p.n_steps:
                fail("the day is over")
                return
            state = State(int(env.now), k, dk, (VehicleState(
                t.name, t.node, True, None, None, t.soc_frac * p.e_cap_kwh / 1000.0, t.soc_frac,
                kind="truck", phase=phase),), served=tuple(self.served))
            try:
                decision = self.policy.decide(state)
                if not isinstance(decision, Decision):
                    raise TypeError(f"decide() returned {type(decision).__name__}, not Decision")
                code, arg = _action(p, decision.command(t.name))
            except Exception as exc:  # a policy failure is data: recorded, the truck stops
                fail(f"policy: {exc}")
                return
            name = ACTION_NAMES[code] if 0 <= code < len(ACTION_NAMES) else str(code)
            start, s0, v = int(env.now), t.soc_frac, t.node
            if code == END:
                if v != p.depot:
                    fail(f"END away from the depot (node {v})")
                    return
                if phase == OLD and s0 < p.soc_end_frac - 1e-9:
                    fail(f"home with SOC {s0:.3f} < soc_end {p.soc_end_frac}")
                r.steps.append(PlanStep("end", k, k, v, v, phase, s0, s0))
                r.ended = True
                self._log(t.name, "end", v)
                return
            if k >= p.n_steps:
                fail(f"{name} after the end of the day")
                return
            if code == MOVE:
                if not 0 <= arg < p.n_nodes or arg == v or not math.isfinite(p.dist_km[v, arg]):
                    fail(f"no road {v} -> {arg}")
                    return
                self._log(t.name, "depart", v, f"to {arg}")
                rec = yield from t.drive(env, arg)
                r.arrivals.append((arg, rec.arrive_min))
                r.delay_min += rec.delay_min
                r.soc_low_frac = min(r.soc_low_frac, rec.soc_low_frac)
                self._log(t.name, "arrive", arg, f"delay {rec.delay_min} min")
                if rec.stranded:
                    fail(f"SOC {rec.soc_low_frac:.3f} below the minimum {p.soc_min_frac} on "
                         f"{v} -> {arg}")
                    return
                yield from t.idle(env, boundary() - int(env.now))
                hours = (int(env.now) - start) / 60.0
                r.steps.append(PlanStep(
                    "move", k, (int(env.now) - t0) // dk, v, arg, phase, s0, t.soc_frac,
                    dist_km=rec.dist_km, traction_kwh=rec.e_kwh,
                    distance_usd=p.cost_per_km_usd * rec.dist_km,
                    wage_usd=p.wage_usd_per_h * hours,
                    degradation_usd=p.deg_usd(s0, t.soc_frac, hours)))
            elif code in (CHARGE, DISCHARGE):
                if v not in self.chargers or not 0 <= arg < p.n_soc:
                    fail(f"{name} at node {v} to bucket {arg}: not possible")
                    return
                target = float(p.soc_grid_frac[arg])
                sign = 1 if code == CHARGE else -1
                if sign * (target - s0) <= 1e-12:  # a follower's target already reached
                    self._log(t.name, f"{name}_skip", v, f"SOC {s0:.3f} vs target {target:.2f}")
                    continue
                if code == CHARGE and target > p.soc_chg_max_frac + 1e-9:
                    fail(f"charge target {target:.2f} above {p.soc_chg_max_frac}")
                    return
                self._log(t.name, f"{name}_request", v)
                rec = yield from t.charge(env, target, self.price, self.chargers[v], sign)
                r.queue_min += rec.queue_min
                self._log(t.name, f"{name}_stop", v, f"{rec.grid_kwh:.2f} kWh")
                yield from t.idle(env, boundary() - int(env.now))
                hours = (int(env.now) - start) / 60.0
                r.steps.append(PlanStep(
                    name, k, (int(env.now) - t0) // dk, v, v, phase, s0, t.soc_frac,
                    grid_kwh=rec.grid_kwh, wage_usd=p.wage_usd_per_h * hours,
                    energy_usd=rec.energy_usd, degradation_usd=p.deg_usd(s0, t.soc_frac, hours)))
            elif code == SERVE:
                ci = arg
                if not 0 <= ci < len(p.customers) or p.customers[ci] != v or phase != FRESH:
                    fail(f"SERVE customer index {ci} not possible at node {v}")
                    return
                c = p.customers[ci]
                if c in self.served:
                    fail(f"site {c} already served")
                    return
                w_start = t0 + p.window_start_steps[ci] * dk
                w_end = t0 + p.window_end_steps[ci] * dk
                if max(start, w_start) > w_end:
                    fail(f"site {c}: window closed at {w_end} min")
                    return
                if s0 < p.soc_deliver_min_frac - 1e-9:
                    fail(f"site {c}: SOC {s0:.3f} below the delivery minimum")
                    return
                yield from t.idle(env, w_start - start)
                wait_h = (int(env.now) - start) / 60.0
                delivered = t.swap(p.soc_old_frac)
                self.served.append(c)
                self._log(t.name, "serve", v, f"{delivered:.1f} kWh")
                phase = OLD
                yield from t.idle(env, p.serve_steps * dk, age=False)
                req = p.requirement_kwh[ci]
                pen = -p.pen_unmet_usd_per_kwh * (min(delivered, req) if p.unmet_mode == "energy"
                                                  else req)
                r.steps.append(PlanStep(
                    "serve", k, (int(env.now) - t0) // dk, v, v, FRESH, s0, t.soc_frac,
                    customer=c, delivered_kwh=delivered,
                    wage_usd=p.wage_usd_per_h * (int(env.now) - start) / 60.0,
                    degradation_usd=p.deg_usd(s0, s0, wait_h), penalty_usd=pen))
            elif code == WAIT:
                free = phase == FRESH and v == p.depot  # before departure: no wage [P]
                yield from t.idle(env, dk, age=not free)
                hours = dk / 60.0
                r.steps.append(PlanStep(
                    "wait", k, k + 1, v, v, phase, s0, s0,
                    wage_usd=0.0 if free else p.wage_usd_per_h * hours,
                    degradation_usd=0.0 if free else p.deg_usd(s0, s0, hours)))
            else:
                fail(f"unknown action code {code}")
                return
            r.soc_low_frac = min(r.soc_low_frac, t.soc_frac)
            r.trace.append((int(env.now), t.soc_frac, phase, t.node))
