"""Baseline policies that every planning policy is compared against."""

from __future__ import annotations

import numpy as np

from policies.base import BasePolicy, PeakShaving
from sim.errors import ScenarioError
from sim.types import Command, Decision, Problem, State


class IdlePolicy(BasePolicy):
    """No MESS (the "before" case of MODELS.md A.9): every vehicle stays where it is, unplugged.

    It exchanges no power and offers no flexibility, so the sites run on their own resources.
    """

    name = "idle"

    def __init__(self) -> None:
        pass

    def decide(self, state: State) -> Decision:
        return Decision(tuple(Command(v.name, connected=False) for v in state.vehicles))


def _quantile_problems(p: dict, path: str) -> list[str]:
    """``low_quantile`` and ``high_quantile`` of the peak-shaving rule: 0 <= low <= high <= 1."""
    lo, hi = p.get("low_quantile", 0.25), p.get("high_quantile", 0.75)
    out = [f"{path}.{k}: must be a quantile in [0, 1], got {v!r}"
           for k, v in (("low_quantile", lo), ("high_quantile", hi)) if not 0 <= v <= 1]
    if not out and lo > hi:
        out.append(f"{path}.low_quantile: {lo} must be <= high_quantile {hi}")
    return out


class StationaryPolicy(BasePolicy):
    """All vehicles drive to one site (``site``, DN1 by default), stay there and peak-shave.

    This is the "fixed at DN1" comparison of seed 000 (MODELS.md A.9) run as a rule.
    """

    name = "stationary"

    def __init__(self, site: str = "dn1", low_quantile: float = 0.25,
                 high_quantile: float = 0.75) -> None:
        self.site = site
        self.low_quantile = low_quantile
        self.high_quantile = high_quantile

    @classmethod
    def param_problems(cls, params: dict, path: str = "policy.params",
                       context: dict | None = None) -> list[str]:
        """The quantiles, and the site when the scenario's sites are known (``sites``)."""
        out = _quantile_problems(params, path)
        sites = (context or {}).get("sites")
        site = params.get("site", "dn1")
        if sites is not None and site not in sites:
            out.append(f"{path}.site: unknown site {site!r}; sites are "
                       f"{', '.join(sorted(sites))}")
        return out

    def reset(self, problem: Problem, rng: np.random.Generator) -> None:
        super().reset(problem, rng)
        names = [s.name for s in problem.sites]
        if self.site not in names:
            raise ScenarioError([f"policy.params.site: unknown site {self.site!r}; "
                                 f"sites are {', '.join(names)}"])
        self._home = problem.site(self.site)
        self._rule = PeakShaving(problem, self.low_quantile, self.high_quantile)

    def decide(self, state: State) -> Decision:
        cmds = []
        for v in state.vehicles:
            if not v.parked:
                cmds.append(Command(v.name))
            elif v.node != self._home.node:
                cmds.append(Command(v.name, dest=self._home.node))
            else:
                cmds.append(self._rule.command(state, v, self._home))
        return Decision(tuple(cmds))


class GreedyPolicy(BasePolicy):
    """Go where the deficit is largest, charge in surplus hours, discharge at peak.

    The deficit index of site ``n`` at step ``t`` is its forecast positive net load over its own
    upward capacity (generators + DR + storage), the exogenous deficit of MODELS.md A.6 (FD-exo).
    Each parked vehicle scores every site by the mean index over the ``window_min`` minutes
    starting when it could arrive there (the steps that cover them: at least one), and moves if
    the best site beats its current one by more than ``min_gain``. Vehicles are assigned in
    fleet order; a site already served by a vehicle has its index recomputed with that vehicle's
    power subtracted, so two vehicles only share a site when it is worth it. At the site,
    dispatch follows the peak-shaving rule of :class:`PeakShaving`.
    """

    name = "greedy"
    #: Parameters that were renamed, with what to write instead (checked by the registry).
    renamed_params = {
        "window_steps": "renamed to window_min, the look-ahead window in minutes (not steps); "
                        "window_steps = 3 at 60-min steps is window_min = 180",
    }

    def __init__(self, window_min: int = 180, min_gain: float = 0.05,
                 low_quantile: float = 0.25, high_quantile: float = 0.75) -> None:
        self.window_min = window_min
        self.min_gain = min_gain
        self.low_quantile = low_quantile
        self.high_quantile = high_quantile

    @classmethod
    def param_problems(cls, params: dict, path: str = "policy.params",
                       context: dict | None = None) -> list[str]:
        """Every problem with the values of ``params`` (names and types are checked by the
        registry): the look-ahead window and the quantiles."""
        out = _quantile_problems(params, path)
        w = params.get("window_min", 180)
        if isinstance(w, bool) or not isinstance(w, int) or w < 1:
            out.append(f"{path}.window_min: must be a whole number of minutes >= 1, got {w!r}")
        return out

    def window_steps(self, step_min: int) -> int:
        """Steps scored per site: those that cover ``window_min`` minutes (at least one)."""
        return max(1, -(-int(self.window_min) // int(step_min)))

    def reset(self, problem: Problem, rng: np.random.Generator) -> None:
        super().reset(problem, rng)
        problems = self.param_problems(self.params())
        if problems:
            raise ScenarioError(problems)
        self._window = self.window_steps(problem.step_min)
        self._rule = PeakShaving(problem, self.low_quantile, self.high_quantile)
        self._nl = {s.name: np.maximum(s.net_load_forecast_mw, 0.0) for s in problem.sites}
        self._cap = {s.name: max(s.own_up_capacity_mw, 1e-9) for s in problem.sites}

    def _score(self, site: str, start: int, relief_mw: float) -> float:
        n = self.problem.n_steps
        if start >= n:
            return 0.0
        window = self._nl[site][start:min(n, start + self._window)]
        return float(np.mean(np.maximum(window - relief_mw, 0.0)) / self._cap[site])

    def decide(self, state: State) -> Decision:
        relief = {s.name: 0.0 for s in self.problem.sites}
        # Vehicles already on the road will relieve their destination.
        for v in state.vehicles:
            if not v.parked and (s := self.problem.site_at(v.dest)) is not None:
                relief[s.name] += self.problem.vehicle(v.name).battery.p_max_mw
        cmds = []
        for v in state.vehicles:
            if not v.parked:
                cmds.append(Command(v.name))
                continue
            here = self.problem.site_at(v.node)
            p_max = self.problem.vehicle(v.name).battery.p_max_mw
            best, best_score = here, -np.inf
            here_score = -np.inf
            e_min = self.problem.vehicle(v.name).battery.e_min_mwh
            for s in self.problem.sites:
                if (s.node != v.node and self.problem.arrival_energy_mwh(
                        v.name, v.e_mwh, v.node, s.node) < e_min + 1e-6):
                    continue  # cannot get there without leaving the usable window
                travel = self.problem.travel_min[(v.node, s.node)]
                start = state.step + -(-travel // state.step_min)
                score = self._score(s.name, start, relief[s.name])
                if here is not None and s.name == here.name:
                    here_score = score
                if score > best_score + 1e-12:
                    best, best_score = s, score
            if best is None or (here is not None and best_score - here_score <= self.min_gain):
                best = here
            if best is None:  # parked away from every site and unable to move
                cmds.append(Command(v.name))
                continue
            relief[best.name] += p_max
            if best is not here:
                cmds.append(Command(v.name, dest=best.node))
            else:
                cmds.append(self._rule.command(state, v, here))
        return Decision(tuple(cmds))


class SchedulePolicy(BasePolicy):
    """Replays a fixed timetable (for golden traces, and to replay a plan made elsewhere).

    ``plan`` is a list of entries ``{time_min, vehicle, dest?, p_mw?}``. An entry takes effect at
    the step that contains ``time_min``. ``dest`` starts a trip there (once); ``p_mw`` sets the
    vehicle's standing power (charging positive), which holds until the next entry for that
    vehicle and is reset to 0 when the vehicle departs.
    """

    name = "schedule"

    def __init__(self, plan: list) -> None:
        self.plan = plan

    @classmethod
    def param_problems(cls, params: dict, path: str = "policy.params",
                       context: dict | None = None) -> list[str]:
        """Every problem with the timetable's entries. ``context`` (``horizon_min``, ``nodes``,
        ``vehicles``) adds the checks against the scenario when it is known: ``mescosim
        check`` passes what the scenario file says, :meth:`reset` what the problem holds."""
        context = context or {}
        horizon = context.get("horizon_min")
        nodes, names = context.get("nodes"), context.get("vehicles")
        plan = params.get("plan", [])
        if not isinstance(plan, list):
            return [f"{path}.plan: expected a list of tables, got {type(plan).__name__}"]
        problems = []
        for i, e in enumerate(plan):
            at = f"{path}.plan[{i}]"
            if not isinstance(e, dict):
                problems.append(f"{at}: expected a table")
                continue
            for k in sorted(set(e) - {"time_min", "vehicle", "dest", "p_mw"}):
                problems.append(f"{at}.{k}: unknown key")
            t = e.get("time_min")
            if not isinstance(t, int) or isinstance(t, bool) or t < 0:
                problems.append(f"{at}.time_min: must be an integer >= 0, got {t!r}")
            elif horizon is not None and t >= horizon:
                problems.append(f"{at}.time_min: must be an integer in [0, {horizon}), got {t}")
            if "vehicle" not in e:
                problems.append(f"{at}.vehicle: missing")
            elif not isinstance(e["vehicle"], str):
                problems.append(f"{at}.vehicle: expected a vehicle name, got {e['vehicle']!r}")
            elif names is not None and e["vehicle"] not in names:
                problems.append(f"{at}.vehicle: unknown vehicle {e['vehicle']!r}")
            if "dest" in e and not isinstance(e["dest"], str):
                problems.append(f"{at}.dest: expected a node name, got {e['dest']!r}")
            elif "dest" in e and nodes is not None and e["dest"] not in nodes:
                problems.append(f"{at}.dest: unknown node {e['dest']!r}")
            p = e.get("p_mw", 0.0)
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not np.isfinite(p):
                problems.append(f"{at}.p_mw: must be a finite number")
        return problems

    def reset(self, problem: Problem, rng: np.random.Generator) -> None:
        super().reset(problem, rng)
        problems = self.param_problems(
            {"plan": self.plan}, "policy.params",
            {"horizon_min": problem.horizon_min, "nodes": set(problem.nodes),
             "vehicles": {v.name for v in problem.vehicles}})
        if problems:
            raise ScenarioError(problems)
        self._by_step: dict[int, list[dict]] = {}
        for e in sorted(self.plan, key=lambda e: e["time_min"]):
            self._by_step.setdefault(e["time_min"] // problem.step_min, []).append(e)
        self._power = {v.name: 0.0 for v in problem.vehicles}

    def decide(self, state: State) -> Decision:
        dest: dict[str, str] = {}
        for e in self._by_step.get(state.step, []):
            if "dest" in e:
                dest[e["vehicle"]] = e["dest"]
            if "p_mw" in e:
                self._power[e["vehicle"]] = float(e["p_mw"])
        cmds = []
        for v in state.vehicles:
            if v.name in dest and v.parked and dest[v.name] != v.node:
                self._power[v.name] = 0.0
                cmds.append(Command(v.name, dest=dest[v.name]))
            elif v.parked:
                # Replay as far as the battery allows this step (the plan may be infeasible).
                p = min(max(self._power[v.name], -v.p_dis_max_mw), v.p_ch_max_mw)
                cmds.append(Command(v.name, p_mw=p))
            else:
                cmds.append(Command(v.name))
        return Decision(tuple(cmds))


#: The rule policies a planner may fall back to when a solve fails: they need no parameter and
#: always return a decision.
SAFE_RULES: dict[str, type[BasePolicy]] = {
    "idle": IdlePolicy,
    "stationary": StationaryPolicy,
    "greedy": GreedyPolicy,
}
