"""The ``milp`` policy: the weighted-SFI MILP (MODELS.md A.7) as a rolling-horizon planner.

Every ``replan_every`` steps (and whenever the simulation has left the plan, e.g. a refused trip)
it builds the model for the window ``[now, now + horizon_steps)`` from the **simulated** state:
where each vehicle is (parked, or in transit and arriving at a known step), its energy, each DN's
storage energy, generator outputs (ramp reference), DR level and DR energy left today, and the
observed load/PV of the current step (forecasts after it). Between re-plans it follows the cached
plan. Energy neutrality and the storage cyclic condition apply when the window reaches the end
of the horizon. With ``horizon_steps=0`` (whole horizon) and ``replan_every=0`` (plan once) it is
the deterministic plan of A.7.

Each window's model is built as numpy arrays and handed straight to ``highspy``
(:mod:`policies.sfi_highs`, ``build = "matrix"``, the default with HiGHS): the same model as the
PuLP build (``build = "pulp"``, the reference and CBC's path; tests compare the two on the
policy's own windows), without PuLP's build and its column-by-column hand-over to HiGHS, which
took about half as long as the solve itself on ``three-dn`` (``benchmarks/bench_milp.py``).
A window that fails (no solution) falls back to the ``fallback`` baseline policy, and the
decision's note says so. Every solve's typed outcome is kept in :meth:`report`; the plan it
followed is in :meth:`plan_table`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from policies.base import BasePolicy
from policies.baselines import SAFE_RULES
from policies.sfi import Options, SfiContext, instance, make_weights
from policies.sfi_highs import build_matrix, solve_matrix
from policies.sfi_milp import build, extract, solve_model
from policies.solve import diagnose_infeasible
from sim.errors import ScenarioError
from sim.types import Command, Decision, Problem, State


class MilpPolicy(BasePolicy):
    """Rolling-horizon weighted-SFI MILP (PuLP, HiGHS by default, CBC selectable)."""

    name = "milp"

    def __init__(self, horizon_steps: int = 0, replan_every: int = 0, weights: str = "dynamic",
                 kappa: float = 0.5, alpha: float = 1.0, beta: float = 1.0, eps: float = 1e-3,
                 solver: str = "highs", time_limit_s: float = 30.0, mip_gap: float = 5e-3,
                 fallback: str = "greedy", build: str = "auto") -> None:
        self.horizon_steps = horizon_steps
        self.replan_every = replan_every
        self.weights = weights
        self.kappa = kappa
        self.alpha = alpha
        self.beta = beta
        self.eps = eps
        self.solver = solver
        self.time_limit_s = time_limit_s
        self.mip_gap = mip_gap
        self.fallback = fallback
        self.build = build

    # ------------------------------------------------------------------ set-up
    @classmethod
    def param_problems(cls, params: dict, path: str = "policy.params",
                       context: dict | None = None) -> list[str]:
        """Values the constructor accepts by type but the model cannot use."""
        p = cls.with_defaults(params)
        out = []
        if p["horizon_steps"] < 0:
            out.append(f"{path}.horizon_steps: must be >= 0 (0 = whole horizon), "
                       f"got {p['horizon_steps']}")
        if p["replan_every"] < 0:
            out.append(f"{path}.replan_every: must be >= 0 (0 = plan once), "
                       f"got {p['replan_every']}")
        if p["weights"] not in ("dynamic", "equal"):
            out.append(f"{path}.weights: must be 'dynamic' or 'equal', got {p['weights']!r}")
        if p["solver"] not in ("highs", "cbc"):
            out.append(f"{path}.solver: must be 'highs' or 'cbc', got {p['solver']!r}")
        if p["build"] not in ("auto", "matrix", "pulp"):
            out.append(f"{path}.build: must be 'auto', 'matrix' or 'pulp', got {p['build']!r}")
        elif p["build"] == "matrix" and p["solver"] == "cbc":
            out.append(f"{path}.build: 'matrix' hands the model to HiGHS; with solver 'cbc' "
                       f"use 'pulp' or 'auto'")
        for key in ("time_limit_s", "kappa", "eps"):
            if not p[key] > 0:
                out.append(f"{path}.{key}: must be > 0, got {p[key]}")
        if not 0 < p["mip_gap"] < 1:
            out.append(f"{path}.mip_gap: must be in (0, 1), got {p['mip_gap']}")
        safe = sorted(SAFE_RULES)
        if p["fallback"] not in safe:
            out.append(f"{path}.fallback: the safe policy a failed window falls back to must be "
                       f"one of {', '.join(safe)}, got {p['fallback']!r}")
        return out

    def reset(self, problem: Problem, rng: np.random.Generator) -> None:
        super().reset(problem, rng)
        problems = self.param_problems(self.params(), "policy.params")
        if problems:
            raise ScenarioError(problems)
        self._solves: list[dict] = []
        self._rows: list[dict] = []
        self._plan = None
        self._plan_start = 0
        self._fallback = SAFE_RULES[self.fallback]()
        self._fallback.reset(problem, rng)
        self.ctx = SfiContext.from_problem(problem)
        self.opt = Options(self.solver, self.time_limit_s, self.mip_gap)
        self._matrix = self.build == "matrix" or (self.build == "auto" and self.solver == "highs")
        load, pv = self.ctx.forecast
        try:
            self.w = make_weights(self.ctx, load, pv, np.ones(1), self.weights, self.opt,
                                  self.kappa, self.alpha, self.beta, self.eps)
        except Exception as exc:  # noqa: BLE001 - the no-MESS baseline gave no solution
            if self.weights != "dynamic":
                raise
            # the dynamic weights need the no-MESS baseline's solution; without one (a time
            # limit, a solver error) the policy plans with the equal weights and says so
            self.w = make_weights(self.ctx, load, pv, np.ones(1), "equal", self.opt, self.kappa,
                                  self.alpha, self.beta, self.eps)
            self._solves.append({"step": 0, "time_min": 0, "stage": "weights",
                                 "status": "error", "solver": self.solver,
                                 "message": f"no-MESS baseline for the dynamic weights: "
                                            f"{type(exc).__name__}: {exc}",
                                 "fallback": "equal weights"})

    # ------------------------------------------------------------------ planning
    def _start(self, state: State) -> tuple[tuple[dict, ...], np.ndarray]:
        step_min = self.problem.step_min
        starts, e0 = [], []
        for v in state.vehicles:
            if v.parked:
                n = self.ctx.site_index(v.node)
                if n is not None:
                    starts.append({n: 0})
                else:  # at a depot: any site, reached after the trip
                    starts.append({i: -(-self.problem.travel_min[(v.node, s.node)] // step_min)
                                   for i, s in enumerate(self.ctx.sites)})
            else:
                n = self.ctx.site_index(v.dest)
                starts.append({n: max(1, -(-(v.arrive_min - state.time_min) // step_min))})
            e0.append(v.e_mwh)
        return tuple(starts), np.array(e0)

    def _plan_window(self, state: State) -> bool:
        k = state.step
        T_all = self.problem.n_steps
        H = T_all - k if self.horizon_steps == 0 else min(self.horizon_steps, T_all - k)
        load, pv = self.ctx.forecast
        load = load[:, :, k:k + H].copy()
        pv = pv[:, :, k:k + H].copy()
        for i, s in enumerate(state.sites):  # the current step is observed, not forecast
            load[0, i, 0], pv[0, i, 0] = s.load_mw, s.pv_mw
        starts, e0 = self._start(state)
        starts = tuple({n: min(a, H) for n, a in st.items()} for st in starts)
        reaches_end = k + H == T_all
        sites = state.sites
        es0 = np.array([s.es_e_mwh if s.es_e_mwh is not None else 0.0 for s in sites])
        # Ramp references from the simulated state. DR starts the day at its state (0 at the
        # first step, which the site operator ramps from too). Generators have no reference
        # before the first step, in the operator as here, so their first step is free.
        gen_prev = None
        if all(s.gen_p_mw is not None for s in sites):
            gen_prev = np.array([g for s in sites for g in s.gen_p_mw])
        dr_left = np.array([
            (si.resources.dr.e_max_mwh - s.dr_used_mwh) if si.resources.dr else 0.0
            for s, si in zip(sites, self.ctx.sites)])
        inst = instance(self.ctx, load, pv, np.ones(1), self.w.w[:, :, k:k + H], start=starts,
                        e0=e0, neutral=reaches_end, es_cyclic=reaches_end, es_e0_mwh=es0,
                        gen_prev_mw=gen_prev,
                        dr_prev_mw=np.array([s.dr_mw for s in sites]),
                        dr_left_mwh=dr_left, symmetry=False)
        if self._matrix:
            model = build_matrix(inst)
            out = solve_matrix(model, self.opt.time_limit_s, self.opt.mip_gap)
        else:
            model = build(inst)
            out = solve_model(model, self.opt.solver, self.opt.time_limit_s, self.opt.mip_gap)
        plan = extract(model, out) if out.has_solution else None
        rec = {"step": k, "time_min": state.time_min, "horizon_steps": H,
               "build": "matrix" if self._matrix else "pulp", **out.as_dict()}
        if out.status == "infeasible":
            # the elastic re-solve works on the PuLP model (variable names): built only here
            prob = build(inst).prob if self._matrix else model.prob
            diag = diagnose_infeasible(prob, self._describe(inst, k))
            rec["diagnosis"] = diag.message if diag else "no diagnosis (elastic re-solve failed)"
            rec["diagnosis_detail"] = diag.as_dict() if diag else None
        self._solves.append(rec)
        if plan is None:
            self._plan = None
            rec["fallback"] = self.fallback
            return False
        self._plan, self._plan_start = plan, k
        for m, v in enumerate(self.problem.vehicles):
            where = plan.site_of()[m]
            for j in range(H):
                self._rows.append({
                    "plan_step": k, "time_min": (k + j) * self.problem.step_min,
                    "vehicle": v.name,
                    "site": self.ctx.sites[where[j]].name if where[j] >= 0 else "",
                    "p_mw": float(plan.ch_mw[0, m, :, j].sum() - plan.dis_mw[0, m, :, j].sum()),
                    "e_end_mwh": float(plan.e_mwh[0, m, j + 1])})
        return True

    #: Variable-name prefixes of the SFI model (policies/sfi_milp.py) and what they stand for.
    FAMILIES = {"e": ("vehicle", "vehicle SOC window (e)"),
                "ch": ("vehicle", "vehicle charging power (ch)"),
                "dis": ("vehicle", "vehicle discharging power (dis)"),
                "x": ("vehicle", "vehicle location (x)"), "y": ("vehicle", "vehicle route (y)"),
                "ese": ("site", "storage energy window (ese)"),
                "esc": ("site", "storage charging power (esc)"),
                "esd": ("site", "storage discharging power (esd)"),
                "pg": ("generator", "generator output (pg)"),
                "dr": ("site", "demand response (dr)")}

    def _describe(self, inst, k0: int):
        """Name -> (family, entity, step of the run) for the diagnosis of an infeasible window."""
        gens = inst.generators()

        def describe(name: str) -> tuple[str, str, int | None]:
            parts = name.split("_")
            fam = parts[0]
            idx = [int(p) for p in parts[1:] if p.isdigit()]
            if fam not in self.FAMILIES or not idx:
                return fam, "", None
            kind, label = self.FAMILIES[fam]
            step = k0 + idx[-1]
            # e/ch/dis/ese/esc/esd/pg/dr carry the scenario index first; x and y do not
            body = idx if fam in ("x", "y") else idx[1:]
            try:
                if kind == "vehicle":
                    entity = inst.vehicles[body[0]].name
                elif kind == "site":
                    entity = inst.sites[body[0]].name
                else:
                    n, g = gens[body[0]]
                    entity = f"{inst.sites[n].name}/{g.name}"
            except IndexError:
                entity = ""
            return label, entity, step

        return describe

    def _diverged(self, state: State) -> bool:
        """True if a parked vehicle is not where the plan has it at this step."""
        j = state.step - self._plan_start
        where = self._plan.site_of()
        for m, v in enumerate(state.vehicles):
            if j >= where.shape[1]:
                return True
            planned = self._plan.x[m, :, j]
            n = self.ctx.site_index(v.node)
            if v.parked and n is not None and planned[n] < 0.5:
                return True
        return False

    # ------------------------------------------------------------------ deciding
    def decide(self, state: State) -> Decision:
        k = state.step
        due = self._plan is None or (self.replan_every > 0 and
                                     (k - self._plan_start) >= self.replan_every)
        if not due and self._diverged(state):
            due = True
        note = ""
        if due and not self._plan_window(state):
            last = self._solves[-1]
            why = last.get("diagnosis") or last.get("message") or ""
            return Decision(self._fallback.decide(state).commands,
                            note=f"fallback {self.fallback}: {last['status']}"
                                 + (f" ({why})" if why else ""))
        if due:
            note = f"planned {self._solves[-1]['status']}"
        j = k - self._plan_start
        plan = self._plan
        cmds = []
        for m, v in enumerate(state.vehicles):
            if not v.parked:
                cmds.append(Command(v.name))
                continue
            n = self.ctx.site_index(v.node)
            if n is None:  # at a depot: go where the plan has the vehicle arrive
                dest = next(iter(i for i in range(len(self.ctx.sites))
                                 if plan.x[m, i].max() > 0.5), None)
                cmds.append(Command(v.name, dest=self.ctx.sites[dest].node)
                            if dest is not None else Command(v.name))
                continue
            moves = [b for b in range(len(self.ctx.sites))
                     if b != n and plan.y[m, n, b, j] > 0.5]
            if moves:
                cmds.append(Command(v.name, dest=self.ctx.sites[moves[0]].node))
            else:
                p = float(plan.ch_mw[0, m, n, j] - plan.dis_mw[0, m, n, j])
                p = min(max(p, -v.p_dis_max_mw), v.p_ch_max_mw)
                cmds.append(Command(v.name, p_mw=p))
        return Decision(tuple(cmds), note=note)

    # ------------------------------------------------------------------ results
    def report(self) -> dict:
        """Weights and every solve's typed outcome (for meta.json)."""
        w = getattr(self, "w", None)  # None when reset stopped before the weights
        return {"weights": self.weights, "kappa": self.kappa,
                "weights_ni": [float(x) for x in w.ni] if w is not None else [],
                "solves": list(getattr(self, "_solves", []))}

    def plan_table(self) -> pd.DataFrame:
        """Every plan made: per plan step, vehicle and planned step, site, power and energy."""
        return pd.DataFrame(self._rows, columns=["plan_step", "time_min", "vehicle", "site",
                                                 "p_mw", "e_end_mwh"])
