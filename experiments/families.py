"""Sweep targets of the truck-mission and train-transmission studies: one seeded realisation per
scenario, every policy of the target on it through the one engine (common random numbers).

:mod:`experiments.sweep` runs a *target*: the DN :class:`~experiments.config.Config` (its own
path, unchanged) or one of the classes here, which share a small interface:

* ``name``, ``family`` (the registry's system: ``missions`` or ``transmission``),
  ``policies`` (list of registered names) and ``seed`` (the scenario file's seed);
* ``to_toml_dict()``: the resolved study settings plus the ``[sweep]`` section (what
  ``sweep.json``'s config hash and ``config.toml`` are made of; :func:`target_from_raw` builds
  the same target back from it);
* ``run(scenario, seed) -> (frame, policy_s)``: the tidy rows of
  :data:`experiments.sweep.RESULT_COLUMNS` and the engine wall seconds per policy.

**Trucks** (``coopt-small``, ``coopt-large``; :class:`TruckTarget`). The policies plan on the
forecast: the study's hourly OPF prices, the data's traffic profile, no disturbance. Open-loop
plans (``greedy``, ``shortest``, ``milp``) depend on the forecast only, so they are made once per
target (:meth:`TruckTarget.prepare`, in the client before any scenario runs; the MILP's plan time
is in ``sweep.json``'s ``plan_s``; a MILP stopped by ``study.milp_time_limit_s`` before it found a
solution is status ``error`` with no plan, so its trucks stay home: give it time, e.g. ``--set
study.milp_time_limit_s=300`` on a busy machine). ``dp`` plans at the engine's reset and
re-plans from the simulated state whenever the run leaves its plan. ``sweep.milp_replan_min``
(> 0) or ``sweep.milp_late_tol_min`` (>= 0) make ``milp`` the rolling policy
(:class:`policies.coopt_milp.FleetMILP`) on the MILP's own SOC grid: it starts from the
forecast plan made once and re-solves from the simulated state inside each scenario; every
solve is a solver row.

With ``sweep.oracle = true`` (``mescosim bench --oracle``) the rows of policy ``oracle`` are
the hindsight benchmark: the study's fleet MILP (its own SOC grid, ``study.milp_time_limit_s``)
solved with the scenario's *realised* traffic as its forecast and its plans followed open loop
on the same realisation; the drives' hold-ups and energy noise stay unseen (the MILP has no
model of them). Its solve's status is its solver row, and its gap, objective, dual bound and
solve time are rows of entity ``oracle`` (``milp_gap``...): an oracle stopped by the time limit
(status ``time_limit`` / ``feasible_gap``) is a feasible plan, not a proven optimum: its
objective is an upper bound of the perfect-information optimum of the MILP's model (the dual
bound a lower one), and in that model a regret against it understates the regret against the
optimum. ``bench`` counts such scenarios in the regret table (``oracle_not_optimal``).

Scenario ``seed`` draws (``SeedSequence(seed)``):

* traffic: each of the six zone/period speed factors of the profile times
  ``exp(traffic_sigma N(0, 1))`` (clipped to the profile's (0, 5]);
* per truck (by its ``vehicles.csv`` position, not by the order a policy lists it) the sequence of
  its drives' disturbances: held up with ``delay_prob`` for ``1..delay_max_min`` minutes, traction
  energy times ``max(0, 1 + energy_noise N(0, 1))``. The truck's ``k``-th drive meets the ``k``-th
  draw under every policy.

One degradation model (``sweep.model``, default the first of ``study.models``). Metrics per
policy: ``cost_usd`` (the study's ``sim_total_usd``: operating cost plus the unmet-energy
penalty), ``operating_usd``, ``served_customers``, ``delivered_kwh``, ``unmet_kwh``,
``delay_min``, ``queue_min``, ``km``, ``recorded_failures``, the CIGRE MV feeder's
``voltage_violation_bus_steps`` / ``loading_violation_line_steps`` / ``nonconverged_steps`` (AC
power flow every step with the trucks' charging) and ``soh_loss`` (fleet sum of the MESS capacity
loss fractions; per truck as entity ``truckN``); per step ``charging_mw`` and ``vm_min_pu``.

**Trains** (``tsn-ieee30``, ``tsn-ieee118``; :class:`TrainTarget`). The policies plan on the
forecast case (the study's ``build_case``). The engine's grid site runs the *realised* case:
loads ``load_mw x (1 + load_sigma N(0, 1))`` (one factor per hour and bus), wind availability
``p_avail x max(0, 1 + wind_sigma N(0, 1))`` (per farm and hour); a wind set-point above the
realised availability is cut to it (:class:`RealisedSite`), and the power flow's slack takes the
imbalance. Trains' trips are delayed (``delay_prob``, ``1..delay_max_min`` minutes, trips
``1..T`` of every train) without the policy knowing. Metrics: ``operating_cost`` and
``total_cost`` (:func:`experiments.tsn_sim.run_cost` of what was applied),
``wind_curtailed_mwh`` (realised availability not used), ``imbalance_mwh`` (sum over hours of
``|DC slack imbalance|``: energy the dispatch did not cover, the slack's), the violations of the
hourly AC power flow and ``soh_loss`` (trains' SOH loss, 0 under ``trains.degradation = none``);
per hour ``imbalance_mw`` and ``wind_curtailed_mw``. With ``sweep.oracle = true`` the rows of
policy ``oracle`` are the hindsight benchmark: the centralised MILP (``uc-milp`` with the
study's solver settings) planning on the scenario's realised loads and wind, run through the
same engine on the same realisation (the train delays stay unseen: the MILP has no model of
them). :func:`experiments.bench.bench_tables` then adds each policy's regret against it.

``--set sweep.KEY=VALUE`` sets the ``[sweep]`` section (:data:`TRUCK_SWEEP`, :data:`TRAIN_SWEEP`);
other ``--set`` keys go to the study's own settings (e.g. ``case.overrides.T=6``,
``solver.time_limit_s=30``, ``study.milp_time_limit_s=20``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import tomli_w

from sim.errors import ScenarioError

#: ``[sweep]`` settings of a truck target and their defaults (``model`` "": first study model)
TRUCK_SWEEP = {"model": "", "traffic_sigma": 0.1, "delay_prob": 0.3, "delay_max_min": 30,
               "energy_noise": 0.05, "policies": ["dp", "greedy", "shortest", "milp"],
               "milp_replan_min": 0, "milp_late_tol_min": -1, "oracle": False}
#: ``[sweep]`` settings of a train target
TRAIN_SWEEP = {"wind_sigma": 0.15, "load_sigma": 0.03, "delay_prob": 0.3,
               "delay_max_min": 90, "policies": ["uc-milp", "ocd", "idle"], "oracle": False}
#: the policy name of the hindsight rows (:meth:`TrainTarget.run` with ``sweep.oracle``)
ORACLE = "oracle"
FAMILY_OF_KIND = {"coopt-study": "missions", "tsn-study": "transmission"}
COLS = ["policy", "entity", "metric", "time_min", "value", "unit"]


def _hash(data: dict) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _with_file(raw: dict, fn):
    """Call ``fn(path)`` on ``raw`` written to a temporary TOML file (the studies' loaders read
    files)."""
    fd, name = tempfile.mkstemp(suffix=".toml", prefix="mescosim-sweep-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(tomli_w.dumps(raw).encode())
        return fn(Path(name))
    finally:
        os.unlink(name)


def _sweep_section(kind: str, given: dict) -> dict:
    defaults = TRUCK_SWEEP if kind == "coopt-study" else TRAIN_SWEEP
    bad = [f"sweep.{k}: unknown (valid: {', '.join(sorted(defaults))})" for k in given
           if k not in defaults]
    out = {**defaults, **{k: v for k, v in given.items() if k in defaults}}
    for k, v in out.items():
        if k in ("policies", "model", "milp_late_tol_min"):
            continue
        if k == "oracle":
            if not isinstance(v, bool):
                bad.append(f"sweep.oracle: true or false, got {v!r}")
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                or v < 0:
            bad.append(f"sweep.{k}: must be a number >= 0, got {v!r}")
    for k in ("delay_prob",):
        if isinstance(out[k], (int, float)) and out[k] > 1:
            bad.append(f"sweep.{k}: a probability in [0, 1], got {out[k]!r}")
    if isinstance(out["delay_max_min"], float) and not out["delay_max_min"].is_integer():
        bad.append(f"sweep.delay_max_min: whole minutes, got {out['delay_max_min']!r}")
    if "milp_replan_min" in out:
        r, tol = out["milp_replan_min"], out["milp_late_tol_min"]
        if isinstance(r, float) and not r.is_integer():
            bad.append(f"sweep.milp_replan_min: whole minutes, got {r!r}")
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not math.isfinite(tol) \
                or tol < -1 or not float(tol).is_integer():
            bad.append(f"sweep.milp_late_tol_min: whole minutes >= 0, or -1 (no re-plan on "
                       f"deviation), got {tol!r}")
    if out.get("delay_prob", 0) > 0 and out.get("delay_max_min", 0) < 1:
        bad.append("sweep.delay_max_min: must be >= 1 when sweep.delay_prob > 0")
    if "energy_noise" in out and isinstance(out["energy_noise"], (int, float)) \
            and out["energy_noise"] >= 1:
        bad.append(f"sweep.energy_noise: must be in [0, 1), got {out['energy_noise']!r}")
    pols = out["policies"]
    if not isinstance(pols, list) or not pols or not all(isinstance(p, str) and p for p in pols):
        bad.append(f"sweep.policies: a non-empty list of policy names, got {pols!r}")
    if bad:
        raise ScenarioError(bad)
    out["delay_max_min"] = int(out["delay_max_min"])
    for k in ("milp_replan_min", "milp_late_tol_min"):
        if k in out:
            out[k] = int(out[k])
    return out


def policy_problems(family: str, policies: list[str]) -> list[str]:
    """``--policies`` problems: names that do not run on ``family`` (with the valid names)."""
    from policies.registry import name_problems, names_for

    valid = names_for(family)
    out = []
    bad = []
    for p in policies:
        if ":" in p:  # a plugin named module:Class: imported and checked by the registry
            out += [m.replace("--policies.name:", "--policies:", 1)
                    for m in name_problems(p, family, "--policies")]
        elif p not in valid:
            bad.append(p)
    dup = sorted({p for p in policies if policies.count(p) > 1})
    if bad:
        out.append(f"--policies: {', '.join(repr(p) for p in bad)} do not run on this scenario's "
                   f"system ({family}); valid: {', '.join(valid)}")
    if dup:
        out.append(f"--policies: each policy once; repeated: {', '.join(dup)}")
    return out


def target_from_raw(raw: dict, source: str = "config.toml"):
    """The target of a study's raw TOML dict (with its optional ``[sweep]`` section)."""
    raw = json.loads(json.dumps(raw))  # a deep copy of plain data
    kind = (raw.get("scenario") or {}).get("kind")
    if kind not in FAMILY_OF_KIND:
        raise ScenarioError([f"{source}: scenario.kind {kind!r} is not a swept study "
                             f"(valid: {', '.join(FAMILY_OF_KIND)})"])
    sweep = _sweep_section(kind, dict(raw.pop("sweep", None) or {}))
    problems = policy_problems(FAMILY_OF_KIND[kind], sweep["policies"])
    if problems:
        raise ScenarioError(problems)
    cls = TruckTarget if kind == "coopt-study" else TrainTarget
    return cls(raw, sweep)


def load_target(path: str | Path, overrides: list[str] | None = None,
                policies: list[str] | None = None):
    """A study file (name or path) as a sweep target: ``--set sweep.*`` keys go to the
    ``[sweep]`` section, the others to the study; ``policies`` replaces ``sweep.policies``."""
    from experiments.config import apply_overrides, read_raw

    raw = apply_overrides(read_raw(path), list(overrides or []))
    if policies is not None:
        raw.setdefault("sweep", {})["policies"] = list(policies)
    return target_from_raw(raw, str(path))


def _frame(rows: list[tuple]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=COLS)
    df["time_min"] = df["time_min"].astype("Int32")
    return df


def finish_frame(df: pd.DataFrame, scenario: int, seed: int) -> pd.DataFrame:
    """The sweep's column order and types (as :func:`experiments.sweep.scenario_frame`)."""
    df = df.copy()
    df.insert(0, "seed", np.uint64(seed))
    df.insert(0, "scenario", np.int32(scenario))
    df["time_min"] = df["time_min"].astype("Int32")
    df["value"] = df["value"].astype(float)
    for c in ("policy", "entity", "metric", "unit"):
        df[c] = df[c].astype(str)
    return df[["scenario", "seed", *COLS]]


# ============================================================================ trucks
class ScriptedDisturbance:
    """A truck's drive disturbances drawn before the run: the ``k``-th drive gets entry ``k``
    (``(extra minutes, energy factor)``), whatever the policy; past the list, none."""

    active = True

    def __init__(self, draws: list[tuple[int, float]]) -> None:
        self.draws = list(draws)
        self.used = 0

    def draw(self, rng=None) -> tuple[int, float]:
        if self.used >= len(self.draws):
            return 0, 1.0
        self.used += 1
        return self.draws[self.used - 1]


def _counting_feeder_class():
    from grids.truck_grid import ChargingFeeder

    class CountingFeeder(ChargingFeeder):
        """The charging feeder, counting voltage and line-loading violations per step."""

        def __init__(self, *a, **k) -> None:
            super().__init__(*a, **k)
            self.v_viol = 0
            self.l_viol = 0
            self.nonconv = 0
            self.vm_min: list[tuple[int, float]] = []

        def step(self, time_min, dt_min, p_mw_by_node):
            r = super().step(time_min, dt_min, p_mw_by_node)
            if not r.converged:
                self.nonconv += 1
            else:
                self.v_viol += int(r.n_vm_violations)
                ll = np.asarray(r.line_loading_pct, float)
                self.l_viol += int(np.sum(ll > 100.0 + 1e-6))
            self.vm_min.append((int(time_min), float(r.vm_min_pu)))
            return r

    return CountingFeeder


class TruckTarget:
    family = "missions"

    def __init__(self, raw: dict, sweep: dict) -> None:
        from experiments import coopt_study

        self.raw = raw
        self.sweep = sweep
        self.name = str(raw.get("scenario", {}).get("name", "coopt"))
        self.seed = int(raw.get("scenario", {}).get("seed", 0))
        self.policies = list(sweep["policies"])
        st, s, pcfg = _with_file(raw, coopt_study.settings_for)
        problems = [f"study.{k}: a sweep draws its disturbances from sweep.{k}; leave "
                    f"study.{k} at 0" for k in ("delay_prob", "delay_max_min", "energy_noise")
                    if getattr(st, k)]
        model = sweep["model"] or st.models[0]
        if model not in st.models:
            problems.append(f"sweep.model: {model!r} is not one of study.models "
                            f"{list(st.models)}")
        if "milp" in self.policies and not st.milp:
            problems.append("--policies: milp is switched off for this study (study.milp = "
                            "false)")
        if problems:
            raise ScenarioError(problems)
        self.st, self.s, self.pcfg, self.model = st, s, pcfg, model
        self._prep = None
        self._milp_first = None  # (the MILP's own problems, its first solve) when milp rolls
        self._data = None  # the Co-OPT data (not picklable: reloaded in each worker)
        self.plan_s: dict[str, float] = {}

    def to_toml_dict(self) -> dict:
        return {**self.raw, "sweep": {**self.sweep, "model": self.model}}

    def config_hash(self) -> str:
        d = self.to_toml_dict()
        d["scenario"] = {k: v for k, v in d["scenario"].items() if k != "seed"}
        return _hash(d)

    def data(self):
        """The Co-OPT data and the study's road network."""
        if self._data is None:
            from agents.road_data import load_coopt

            if not Path(self.st.data_dir).is_dir():
                raise ScenarioError(f"study.data_dir: {self.st.data_dir!r} is not a directory")
            data = load_coopt(self.st.data_dir)
            self._data = (data, data.networks[self.st.network])
        return self._data

    def prepare(self):
        """Data, prices, problems and the open-loop plans (forecast only), once per target."""
        data, net = self.data()
        if self._prep is not None:
            return (data, net, *self._prep)
        from experiments import coopt_study
        from experiments.coopt_build import build_problems, charging_prices
        from policies.coopt_baselines import plan_fleet

        hourly, _ = charging_prices(net, self.pcfg, np.random.default_rng(self.seed))
        probs = build_problems(data, self.st.network, self.model, self.s, hourly_price=hourly)
        plans, status = {}, {}
        for pol in self.policies:
            t0 = time.perf_counter()
            if pol in ("greedy", "shortest"):
                plans[pol] = plan_fleet(probs, pol)
                status[pol] = {"optimal": 1}
            elif pol == "milp":
                plans[pol], fleet_milp, info, _ = coopt_study.milp_plans(data, self.st, self.s,
                                                                         self.model, hourly)
                status[pol] = {str(info["milp_status"]): 1}
                if self.milp_rolling:
                    self._milp_first = (fleet_milp.problems, fleet_milp.result)
            else:
                continue  # dp plans at the engine's reset, inside each scenario's run
            self.plan_s[pol] = round(time.perf_counter() - t0, 4)
        self._prep = (hourly, probs, plans, status)
        return (data, net, *self._prep)

    def __getstate__(self):
        self.prepare()  # workers get the prices and plans made once
        return {**self.__dict__, "_data": None}

    def realisation(self, seed: int) -> dict:
        """Scenario ``seed``'s traffic profile and every truck's drive disturbances."""
        from agents.truck import DriveDisturbance

        data = self.prepare()[0]
        ss_traffic, ss_drive = np.random.SeedSequence(int(seed)).spawn(2)
        rng = np.random.default_rng(ss_traffic)
        base = data.traffic
        sig = float(self.sweep["traffic_sigma"])

        def vary(vals):
            return tuple(float(np.clip(v * math.exp(sig * rng.standard_normal()), 1e-3, 5.0))
                         for v in vals)

        traffic = replace(base, morning=vary(base.morning), other=vary(base.other))
        dist = DriveDisturbance(float(self.sweep["delay_prob"]),
                                int(self.sweep["delay_max_min"]),
                                float(self.sweep["energy_noise"]))
        draws = {}
        for v, ss in zip(data.vehicles, ss_drive.spawn(len(data.vehicles))):
            r = np.random.default_rng(ss)
            draws[f"truck{v.vehicle_id}"] = [dist.draw(r) if dist.active else (0, 1.0)
                                             for _ in range(64)]
        return {"traffic": traffic, "drives": draws}

    @property
    def milp_rolling(self) -> bool:
        """Whether ``milp`` re-solves in each scenario (``sweep.milp_replan_min > 0`` or
        ``sweep.milp_late_tol_min >= 0``) instead of following the forecast plan open loop."""
        return (int(self.sweep.get("milp_replan_min", 0)) > 0
                or int(self.sweep.get("milp_late_tol_min", -1)) >= 0)

    def policy_object(self, pol: str):
        """(policy, trucks to run or None: the policy's plans say, the problems it runs on)."""
        from policies.coopt_baselines import PlanFollower
        from policies.coopt_milp import FleetMILP
        from policies.dp_router import DPRouter

        _, _, _, probs, plans, _ = self.prepare()
        if pol == "dp":
            return DPRouter(), None, probs
        if pol == "milp" and self.milp_rolling:
            # the rolling MILP on its own SOC grid, from the forecast plan made once; its
            # re-solves are in policy.solves
            milp_probs, first = self._milp_first
            policy = FleetMILP(time_limit_s=self.st.milp_time_limit_s,
                               replan_min=int(self.sweep["milp_replan_min"]),
                               late_tol_min=int(self.sweep["milp_late_tol_min"]))
            return policy.reuse_first_plan(first), None, milp_probs
        return PlanFollower(plans[pol], probs), list(plans[pol]), probs

    def hindsight_plan(self, real: dict):
        """The fleet MILP of the study (its own SOC grid, ``study.milp_time_limit_s``) solved
        with scenario ``real``'s traffic as its forecast: (plans, the problems they are
        followed on, info). The
        drives' hold-ups and energy noise stay unseen (the MILP has no model of them)."""
        from experiments import coopt_study
        from experiments.coopt_build import build_problems

        data, _, hourly, _, _, _ = self.prepare()
        seen = replace(data, traffic=real["traffic"])
        plans, _, info, _ = coopt_study.milp_plans(seen, self.st, self.s, self.model, hourly)
        # followed like the forecast ``milp`` plan: on the policies' problems, here built with
        # the realised traffic (no plans after a failed solve: the trucks stay home)
        probs = build_problems(seen, self.st.network, self.model, self.s, hourly_price=hourly)
        return plans, probs, info

    def simulate(self, pol: str, real: dict, hindsight: dict | None = None):
        """One policy on one realisation: (runs, engine, feeder, policy). ``hindsight`` (the
        :meth:`hindsight_plan` of ``real``) runs its plans open loop instead of ``pol``."""
        from agents.truck import CooptFleet, CooptTruck
        from policies.coopt_baselines import PlanFollower
        from sim.engine import Engine
        from sim.systems import TruckMissions

        data, net, hourly, _, _, _ = self.prepare()
        s = self.s
        if hindsight is not None:
            plans, probs, _ = hindsight
            policy, names = PlanFollower(plans, probs), list(plans)
        else:
            policy, names, probs = self.policy_object(pol)
        arcs = {(a.from_node, a.to_node): (a.dist_km, a.grade_pct) for a in net.arcs}
        byname = {p.name: p for p in probs}
        vehicles = {f"truck{v.vehicle_id}": v for v in data.vehicles}

        def price(node: int, minute: int) -> float:
            return float(hourly[node][int(minute // 60) % 24])

        feeder = _counting_feeder_class()(net.bus_of_charging_site, self.pcfg)
        missions = TruckMissions(probs, price, grid=feeder)
        eng = Engine(missions, policy, np.random.default_rng(0))
        if names is None:
            names = list(policy.plans()) if eng.reset() else []
        fleet = CooptFleet(rng=np.random.default_rng(0))
        from agents.degradation import make_degradation

        for name in names:
            p, v = byname[name], vehicles[name]
            fleet.trucks.append(CooptTruck(
                fleet, name, arcs, p.depot, v.speed_kmh, v.truck_params(), real["traffic"],
                s.traffic_mode, p.e_cap_kwh, p.p_chg_kw, p.eta_ch, p.eta_dis, s.soc_min_frac,
                s.soc_max_frac, s.soc_init_frac,
                lambda cap=p.e_cap_kwh: make_degradation(
                    self.model, temp_c=s.temp_c, c_pack_usd_per_kwh=s.c_pack_usd_per_kwh,
                    e_nom_kwh=cap),
                ScriptedDisturbance(real["drives"][name]), None, feed_min=p.step_min))
            missions.add(fleet.trucks[-1])
        eng.run()
        return missions.runs, eng, feeder, policy

    def run(self, scenario: int, seed: int) -> tuple[pd.DataFrame, dict[str, float]]:
        from experiments.coopt_study import sim_summary

        _, net, _, _, _, status = self.prepare()
        real = self.realisation(seed)
        parts, policy_s = [], {}
        runs_of = list(self.policies) + ([ORACLE] if self.sweep.get("oracle") else [])
        for pol in runs_of:
            t0 = time.perf_counter()
            hind = self.hindsight_plan(real) if pol == ORACLE else None
            runs, eng, feeder, policy = self.simulate(pol, real, hind)
            policy_s[pol] = round(time.perf_counter() - t0, 4)
            row = sim_summary(runs.values(), net, self.s)
            soh = {n: float(r.loss_frac) for n, r in runs.items()}
            rows = [(pol, "system", m, None, float(row[k]), u) for m, k, u in (
                ("cost_usd", "sim_total_usd", "USD"), ("operating_usd", "sim_operating_usd", "USD"),
                ("served_customers", "sim_sites_served", "sites"),
                ("delivered_kwh", "sim_delivered_kwh", "kWh"),
                ("unmet_kwh", "sim_unmet_kwh", "kWh"), ("delay_min", "sim_delay_min", "min"),
                ("queue_min", "sim_queue_min", "min"), ("km", "sim_km", "km"),
                ("recorded_failures", "sim_failures", "failures"))]
            rows += [(pol, "system", "voltage_violation_bus_steps", None, float(feeder.v_viol),
                      "bus-steps"),
                     (pol, "system", "loading_violation_line_steps", None, float(feeder.l_viol),
                      "line-steps"),
                     (pol, "system", "nonconverged_steps", None, float(feeder.nonconv), "steps"),
                     (pol, "system", "soh_loss", None, float(sum(soh.values())), "-")]
            rows += [(pol, n, "soh_loss", None, v, "-") for n, v in sorted(soh.items())]
            frames = eng.recorder.frames()
            sites = frames.get("sites")
            if sites is not None and len(sites):
                chg = sites.groupby("time_min").p_mw.sum()
                rows += [(pol, "system", "charging_mw", int(t), float(v), "MW")
                         for t, v in chg.items()]
            rows += [(pol, "system", "vm_min_pu", t, v, "p.u.") for t, v in feeder.vm_min]
            counts = dict(status.get(pol, {}))
            if pol == ORACLE:  # its one solve, and how far from proven it stopped
                info = hind[2]
                counts = {str(info["milp_status"]): 1}
                rows += [(pol, "oracle", m, None, float(info[k]), u) for m, k, u in (
                    ("milp_gap", "milp_gap", "-"), ("milp_objective_usd", "milp_objective_usd",
                                                     "USD"),
                    ("milp_bound_usd", "milp_bound_usd", "USD"),
                    ("milp_solve_s", "milp_solve_s", "s"))]
            if pol == "milp" and self.milp_rolling:  # the first plan and every re-solve
                counts = {}
                for sv in policy.solves:
                    counts[sv["status"]] = counts.get(sv["status"], 0) + 1
            if pol == "dp":
                log = getattr(policy, "replan_log", [])
                ok = 1 + sum(1 for e in log if e.get("feasible", True))
                counts = {"optimal": ok}
                bad = len(log) + 1 - ok
                if bad:
                    counts["infeasible"] = bad
            rows += [(pol, "solver", f"solves_{k}", None, float(v), "solves")
                     for k, v in sorted(counts.items())]
            parts.append(_frame(rows))
        return finish_frame(pd.concat(parts, ignore_index=True), scenario, seed), policy_s


# ============================================================================ trains
class RealisedSite:
    """The transmission grid site of the realised case (loads and wind of the scenario): wind
    set-points are cut to the realised availability; curtailment and the DC imbalance the
    slack took are kept per hour."""

    def __init__(self, realised_case, net, **options) -> None:
        from grids.tsn_site import TsnGridSite

        self.inner = TsnGridSite(realised_case, net, **options)
        self.case = realised_case
        self.stations = self.inner.stations
        self.line_names = self.inner.line_names
        self.bus_ids = self.inner.bus_ids
        self.hours: list[dict] = []

    def reset(self) -> None:
        self.inner.reset()

    def step(self, hour, unit_p_mw, unit_on, wind_mw, storage_p_mw_by_bus):
        avail = np.array([float(w.p_avail_mw[int(hour)]) for w in self.case.wind])
        used = np.minimum(np.maximum(np.asarray(wind_mw, float), 0.0), avail)
        g = self.inner.step(hour, unit_p_mw, unit_on, used, storage_p_mw_by_bus)
        self.hours.append({"hour": int(hour), "wind_avail_mw": float(avail.sum()),
                           "wind_used_mw": float(used.sum()),
                           "wind_cut_mw": float(np.sum(np.asarray(wind_mw, float) - used)),
                           "imbalance_mw": float(g.dc_imbalance_mw)})
        return g


class TrainTarget:
    family = "transmission"

    def __init__(self, raw: dict, sweep: dict) -> None:
        from experiments.tsn_config import load_tsn

        self.raw = raw
        self.sweep = sweep
        self.cfg = _with_file(raw, load_tsn)
        self.name = self.cfg.scenario.name
        self.seed = int(self.cfg.scenario.seed)
        self.policies = list(sweep["policies"])
        self.plan_s: dict[str, float] = {}
        self._case = None

    def to_toml_dict(self) -> dict:
        return {**self.raw, "sweep": dict(self.sweep)}

    def config_hash(self) -> str:
        d = self.to_toml_dict()
        d["scenario"] = {k: v for k, v in d["scenario"].items() if k != "seed"}
        return _hash(d)

    def prepare(self):
        if self._case is None:
            from grids.transmission import build_case

            self._case = build_case(self.cfg.case.name, "mes", **dict(self.cfg.case.overrides))
        return self._case

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_case"] = None  # rebuilt in the worker (a pandapower net)
        return d

    def realisation(self, seed: int) -> dict:
        """Scenario ``seed``'s realised loads, wind availability and train delays."""
        case, _ = self.prepare()
        ss_wind, ss_load, ss_delay = np.random.SeedSequence(int(seed)).spawn(3)
        rl = np.random.default_rng(ss_load)
        load = np.asarray(case.load_mw) * (1.0 + float(self.sweep["load_sigma"])
                                           * rl.standard_normal(np.shape(case.load_mw)))
        rw = np.random.default_rng(ss_wind)
        wind = [np.asarray(w.p_avail_mw) * np.maximum(
            0.0, 1.0 + float(self.sweep["wind_sigma"]) * rw.standard_normal(case.T))
            for w in case.wind]
        rd = np.random.default_rng(ss_delay)
        delays: dict[str, dict[int, int]] = {}
        for t in case.trains:
            u = rd.random(case.T)
            m = rd.integers(1, max(int(self.sweep["delay_max_min"]), 1) + 1, case.T)
            for trip in range(case.T):
                if float(self.sweep["delay_prob"]) > 0 and u[trip] < float(
                        self.sweep["delay_prob"]):
                    delays.setdefault(t.name, {})[trip + 1] = int(m[trip])
        return {"load_mw": load, "wind_avail_mw": wind, "delays_min": delays}

    def realised_case(self, real: dict):
        case, _ = self.prepare()
        wind = tuple(replace(w, p_avail_mw=a) for w, a in zip(case.wind, real["wind_avail_mw"]))
        return replace(case, load_mw=real["load_mw"], wind=wind)

    def policy_params(self, pol: str) -> dict:
        sv = self.cfg.solver
        if pol == "uc-milp":
            return {"solver": sv.solver, "time_limit_s": sv.time_limit_s, "mip_gap": sv.mip_gap,
                    "pwl_segments": sv.pwl_segments, "mode_binaries": sv.mode_binaries}
        if pol == "idle":
            return {"solver": sv.solver, "time_limit_s": sv.time_limit_s, "mip_gap": sv.mip_gap,
                    "pwl_segments": sv.pwl_segments}
        if pol == "ocd":
            runs = self.cfg.ocd.runs
            r = next((x for x in runs if x.variant == "enhanced"), runs[0] if runs else None)
            out = {"power_time_limit_s": self.cfg.ocd.power_time_limit_s,
                   "power_mip_gap": self.cfg.ocd.power_gap}
            if r is not None:
                out.update(variant=r.variant, mobility=r.mobility, max_iter=r.max_iter,
                           eps=r.eps, rho0=r.rho0, request_candidates=r.request_candidates,
                           polish=r.polish)
            return out
        return {}

    def simulate(self, pol: str, real: dict, hindsight: bool = False):
        """One policy on one realisation: (tables, cost summary, site, policy). ``hindsight``:
        the policy plans on the realised case (loads and wind of the scenario) instead of the
        forecast; the train delays stay unknown to it."""
        from agents.rail import rail_graph
        from agents.train import TrainFleet, train_degradation
        from experiments.tsn_sim import make_tsn_policy, run_cost
        from sim.engine import Engine
        from sim.recorder import Recorder
        from sim.systems import TransmissionSystem

        case, net = self.prepare()
        policy = make_tsn_policy(pol, **self.policy_params(pol))
        deg = self.cfg.trains.degradation
        rng = np.random.default_rng(0)
        fleet = TrainFleet(case.trains, rail_graph(case), case.gamma_h, rng=rng,
                           delays_min=real["delays_min"] or None,
                           degradation=lambda spec: train_degradation(
                               deg.model, spec, case.gamma_h, **deg.params))
        site = RealisedSite(self.realised_case(real), net,
                            vm_min_pu=self.cfg.check.vm_min_pu,
                            vm_max_pu=self.cfg.check.vm_max_pu)
        seen = self.realised_case(real) if hindsight else case
        eng = Engine(TransmissionSystem(seen, fleet.trains, site), policy, rng, Recorder())
        frames = eng.run().frames()
        tables = {k: (frames.get(k) if frames.get(k) is not None else pd.DataFrame())
                  for k in ("grid", "units", "train_hours", "train_states", "failures")}
        cost = run_cost(case, tables, getattr(policy, "pwl_segments", 8))
        return tables, cost, site, policy

    def run(self, scenario: int, seed: int) -> tuple[pd.DataFrame, dict[str, float]]:
        real = self.realisation(seed)
        parts, policy_s = [], {}
        runs = [(p, p, False) for p in self.policies]
        if self.sweep.get("oracle"):
            runs.append((ORACLE, "uc-milp", True))
        for pol, impl, hindsight in runs:
            t0 = time.perf_counter()
            tables, cost, site, policy = self.simulate(impl, real, hindsight)
            policy_s[pol] = round(time.perf_counter() - t0, 4)
            g = tables["grid"]
            solved = g[g.status != "no_decision"] if len(g) else g
            hrs = pd.DataFrame(site.hours)
            curt = (hrs.wind_avail_mw - hrs.wind_used_mw) if len(hrs) else pd.Series(dtype=float)
            soh = {}
            tr = tables["train_states"]
            if len(tr) and "soh_frac" in tr:
                last = tr.sort_values("time_min").groupby("train").soh_frac.last()
                soh = {str(k): float(1.0 - v) for k, v in last.items()}
            rows = [(pol, "system", "operating_cost", None, float(cost["operating_cost"]), "USD"),
                    (pol, "system", "total_cost", None, float(cost["total_cost"]), "USD"),
                    (pol, "system", "wind_curtailed_mwh", None, float(curt.sum()), "MWh"),
                    (pol, "system", "imbalance_mwh", None,
                     float(hrs.imbalance_mw.abs().sum()) if len(hrs) else 0.0, "MWh"),
                    (pol, "system", "hours_without_decision", None,
                     float(cost["hours_without_decision"]), "h"),
                    (pol, "system", "voltage_violation_bus_steps", None,
                     float(solved.n_voltage_violations.sum()) if len(solved) else 0.0,
                     "bus-steps"),
                    (pol, "system", "loading_violation_line_steps", None,
                     float(solved.n_overloaded_ac.sum()) if len(solved) else 0.0, "line-steps"),
                    (pol, "system", "nonconverged_steps", None,
                     float((solved.status != "ok").sum()) if len(solved) else 0.0, "steps"),
                    (pol, "system", "soh_loss", None, float(sum(soh.values())), "-"),
                    (pol, "system", "recorded_failures", None, float(len(tables["failures"])),
                     "failures")]
            rows += [(pol, n, "soh_loss", None, v, "-") for n, v in sorted(soh.items())]
            for h in site.hours:
                rows.append((pol, "system", "imbalance_mw", 60 * h["hour"], h["imbalance_mw"],
                             "MW"))
                rows.append((pol, "system", "wind_curtailed_mw", 60 * h["hour"],
                             h["wind_avail_mw"] - h["wind_used_mw"], "MW"))
            counts: dict[str, int] = {}
            info = dict(getattr(policy, "plan_info", {}) or {})
            for sv in info.get("solves", []) or []:
                st = str(sv.get("status", "unknown")) if isinstance(sv, dict) else "unknown"
                counts[st] = counts.get(st, 0) + 1
            if not counts and info.get("status") is not None:
                counts[str(info["status"])] = 1
            rows += [(pol, "solver", f"solves_{k}", None, float(v), "solves")
                     for k, v in sorted(counts.items())]
            parts.append(_frame(rows))
        return finish_frame(pd.concat(parts, ignore_index=True), scenario, seed), policy_s


def dn_realisation(cfg, seed: int):
    """The load/PV and road realisation ``experiments.run.run_one(cfg, seed)`` runs every policy
    on: the same ``SeedSequence(seed).spawn(4)`` children (noise first, road fourth)."""
    from experiments.build import realisation, with_road
    from experiments.specs import site_spec

    noise_seq, _policy_seq, _fleet_seq, road_seq = np.random.SeedSequence(int(seed)).spawn(4)
    specs = [site_spec(name, g, cfg.power_flow) for name, g in cfg.grids.items()]
    actual = realisation(cfg, specs, np.random.default_rng(noise_seq))
    return with_road(cfg, actual, road_seq)


def dn_hindsight_config(cfg, seed: int):
    """The DN scenario of the hindsight oracle for scenario seed ``seed``: the realised load and
    PV of that seed (:func:`dn_realisation`) as the forecast profiles (one value per step), no
    load/PV noise, and the ``milp`` policy alone, planning the whole horizon once (its other
    parameters from ``cfg`` when ``cfg`` runs ``milp``). ``run_one`` of it with the same seed
    runs the MILP with perfect information on the same realisation (the road draws, fleet and
    policy generators come from the same seed)."""
    from experiments.config import validate

    actual = dn_realisation(cfg, seed)
    raw = cfg.to_toml_dict()
    step = int(cfg.scenario.step_min)
    for i, name in enumerate(cfg.grids):
        g = raw["grids"][name]
        peak, cap = float(cfg.grids[name].peak_load_mw), float(cfg.grids[name].pv_cap_mw)
        g["load_shape"] = [float(v) / peak for v in actual.load_mw[i]]
        g["load_resolution_min"] = step
        g["pv_shape"] = [float(v) / cap if cap > 0 else 0.0 for v in actual.pv_mw[i]]
        g["pv_resolution_min"] = step
    raw["uncertainty"] = {**raw.get("uncertainty", {}), "load_sigma": 0.0, "pv_sigma": 0.0}
    params = dict(cfg.policy_runs()).get("milp", {})
    raw["policy"] = {"name": "milp", "params": {**params, "horizon_steps": 0,
                                                 "replan_every": 0}}
    raw["compare"] = {"policies": [], "params": {}}
    return validate(raw, source="oracle")


def is_study_kind(raw: dict) -> bool:
    return isinstance(raw.get("scenario"), dict) and raw["scenario"].get("kind") in FAMILY_OF_KIND


def read_toml(path: str | Path) -> dict:
    return tomllib.loads(Path(path).read_text(encoding="utf-8"))
