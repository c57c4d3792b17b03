"""``run_one(config, seed) -> RunResult`` and run directories.

``run_one`` is pure and picklable (mesa ``batch_run``, Grid2Op ``Runner``): it builds a fresh world
for every policy of the scenario, runs them all on the same realisation of the uncertain profiles
(common random numbers), and returns tidy tables with a ``policy`` column. ``write_run`` writes a
run directory::

    config.toml      the scenario as resolved (defaults filled in)
    meta.json        versions, seed, git hash, timings, solver outcomes, status ("partial" until
                     every file is written, then "complete", or "stopped" for a run that
                     power_flow.on_failure = "stop" ended early; "interrupted" when Ctrl-C
                     ended ``mescosim run``, whose directory exists from the start)
    <table>.parquet  vehicles, sites, events, buses, lines, failures, decisions, sfi, metrics
    figures/*.png
    report.html      one self-contained page of it all (experiments/html_report.py)
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tomli_w

from experiments.build import build_world, realisation, with_road
from experiments.config import Config
from experiments.specs import site_spec
from policies.registry import make_policy
from sim.engine import Engine
from sim.errors import ScenarioError
from sim.systems import DnSites

PACKAGES = ("mescosim", "simpy", "mesa", "networkx", "pandapower", "lightsim2grid", "numpy",
            "pandas", "scipy", "pulp", "highspy", "pydantic", "pyarrow", "matplotlib")


@dataclass
class RunResult:
    """Tables (tidy DataFrames with a ``policy`` column), run metadata and run-level info."""

    config: Config
    seed: int
    tables: dict[str, pd.DataFrame]
    meta: dict[str, Any]
    info: dict[str, Any]
    metrics: pd.DataFrame | None = None
    figures: list[Path] = field(default_factory=list)


def versions() -> dict[str, str]:
    """The Python and package versions a run records (read once per process: installed
    packages do not change under a running process, and reading their metadata costs more
    than a short run's steps)."""
    return dict(_versions())


@functools.cache
def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_hash() -> str | None:
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None


def run_info(cfg: Config, world) -> dict[str, Any]:
    """Run-level facts the metrics and figures need."""
    return {
        "step_min": cfg.scenario.step_min,
        "horizon_min": cfg.scenario.horizon_min,
        "sites": {s.name: {"c_norm_mw": s.c_norm_mw, "node": s.node}
                  for s in world.problem.sites},
        "vehicles": {v.name: {"capacity_mwh": v.battery.capacity_mwh,
                              "e_min_mwh": v.battery.e_min_mwh, "e_max_mwh": v.battery.e_max_mwh,
                              "p_max_mw": v.battery.p_max_mw, "e_init_mwh": v.e_init_mwh,
                              "kind": v.kind} for v in world.problem.vehicles},
        "limits": {"vm_min_pu": cfg.power_flow.vm_min_pu, "vm_max_pu": cfg.power_flow.vm_max_pu,
                   "loading_max_pct": cfg.power_flow.loading_max_pct},
    }


class PowerFlowStop(Exception):
    """Ends a run whose ``power_flow.on_failure`` is ``stop`` (raised between two steps)."""

    def __init__(self, time_min: int, site: str, status: str, message: str) -> None:
        # everything in args: SimPy re-creates an exception from a process as type(e)(*e.args)
        super().__init__(time_min, site, status, message)
        self.time_min, self.site, self.status, self.message = time_min, site, status, message

    def __str__(self) -> str:
        return f"power flow of {self.site} at minute {self.time_min}: {self.status}"


class _WatchedSite:
    """A grid site as the engine sees it, plus what the run needs to know about its power flows.

    It notes every power flow that needed a retry (its message lists each attempt's outcome),
    and with ``stop=True`` raises :class:`PowerFlowStop` when the engine next observes the site
    after a step whose power flow failed, so that the failing step itself is fully recorded.
    """

    def __init__(self, site, stop: bool, retried: list[dict]) -> None:
        self._site = site
        self._stop = stop
        self._retried = retried
        self.failed: PowerFlowStop | None = None

    def __getattr__(self, name):
        return getattr(self._site, name)

    def observe(self, now: int):
        if self.failed is not None:
            raise self.failed
        return self._site.observe(now)

    def step(self, now: int, dt: int, mess_p_mw: float):
        r = self._site.step(now, dt, mess_p_mw)
        pf = getattr(self._site, "last_power_flow", None)
        if r.converged and pf is not None and pf.message:
            self._retried.append({"time_min": now, "kind": "power_flow", "entity": r.site,
                                  "status": "retried", "message": pf.message})
        if not r.converged and self._stop and self.failed is None:
            self.failed = PowerFlowStop(now, r.site, r.status, r.message)
        return r


def _solver_failures(report: dict) -> list[dict]:
    """A failures row for every policy solve that was not proven optimal."""
    rows = []
    for sv in report.get("solves", []):
        if sv.get("status") == "optimal":
            continue
        parts = [sv.get("message", "")]
        if sv.get("gap") is not None:
            parts.append(f"gap {sv['gap']:.3g}")
        if sv.get("diagnosis"):
            parts.append(f"diagnosis: {sv['diagnosis']}")
        if sv.get("fallback"):
            parts.append(f"fell back to {sv['fallback']!r}")
        rows.append({"time_min": int(sv.get("time_min", 0)), "kind": "solver",
                     "entity": sv.get("solver", ""), "status": sv["status"],
                     "message": "; ".join(p for p in parts if p)})
    return rows


def _breakdown_failures(events: pd.DataFrame | None) -> list[dict]:
    """A failures row for every vehicle breakdown in the event log."""
    if events is None or events.empty or "event" not in events.columns:
        return []
    rows = events[events["event"] == "breakdown_start"]
    return [{"time_min": int(r.time_min), "kind": "vehicle", "entity": r.vehicle,
             "status": "breakdown", "message": f"broke down at {r.node}: {r.detail}"}
            for r in rows.itertuples()]


def run_one(cfg: Config, seed: int | None = None, record_arrays: bool = True,
            progress: Callable[[str, int, int], None] | None = None) -> RunResult:
    """Run every policy of ``cfg`` on one seeded realisation and return the results.

    Failures that do not stop the run are rows of the ``failures`` table: the engine's (power
    flows, policies, vehicles), every policy solve that was not proven optimal (with the
    infeasibility diagnosis and the fallback used), and every power flow that converged only
    after a retry. ``meta["status"]`` is ``complete``, or ``stopped`` when
    ``power_flow.on_failure = "stop"`` ended the run early (later policies are then not run).
    ``progress(policy, step, n_steps)``, when given, is called after every engine step.
    """
    from experiments.metrics import run_metrics, sfi_table

    seed = cfg.scenario.seed if seed is None else int(seed)
    started = time.perf_counter()
    # spawn(4)[:3] == spawn(3): the fourth child (traffic, breakdowns) leaves the others as
    # they were, so runs without road uncertainty are bit-identical to earlier versions
    noise_seq, policy_seq, fleet_seq, road_seq = np.random.SeedSequence(seed).spawn(4)
    specs = [site_spec(name, g, cfg.power_flow) for name, g in cfg.grids.items()]
    actual = realisation(cfg, specs, np.random.default_rng(noise_seq))
    actual = with_road(cfg, actual, road_seq)

    per_table: dict[str, list[pd.DataFrame]] = {}
    policies_meta = []
    info: dict[str, Any] = {}
    stopped: PowerFlowStop | None = None
    on_failure = cfg.power_flow.on_failure
    for name, params in cfg.policy_runs():
        world = build_world(cfg, actual, np.random.default_rng(fleet_seq))
        info = run_info(cfg, world)
        policy = make_policy(name, **params)
        retried: list[dict] = []
        sites = [_WatchedSite(s, on_failure == "stop", retried) for s in world.sites]
        hook = (lambda k, n, _name=name: progress(_name, k, n)) if progress else None
        engine = Engine(DnSites(world.problem, world.vehicles, sites, record_arrays),
                        policy, rng=np.random.default_rng(policy_seq), on_step=hook)
        try:
            recorder = engine.run()
        except PowerFlowStop as exc:
            stopped, recorder = exc, engine.recorder
        stopped = stopped or next((s.failed for s in sites if s.failed), None)
        report = policy.report() if hasattr(policy, "report") else {}
        frames = recorder.frames()
        if "sites" in frames and {"converged", "losses_mw"} <= set(frames["sites"].columns):
            st = frames["sites"]  # a power flow that did not converge has no losses
            st.loc[~st["converged"].astype(bool), "losses_mw"] = np.nan
        extra = _solver_failures(report) + retried + _breakdown_failures(frames.get("events"))
        if extra:
            frames["failures"] = pd.concat([frames.get("failures"), pd.DataFrame(extra)],
                                           ignore_index=True).sort_values(
                "time_min", kind="stable", ignore_index=True)
        for table, df in frames.items():
            df.insert(0, "policy", name)
            per_table.setdefault(table, []).append(df)
        km = {v.name: v.km for v in world.vehicles}
        if hasattr(policy, "plan_table"):
            plan = policy.plan_table()
            plan.insert(0, "policy", name)
            per_table.setdefault("plan", []).append(plan)
        statuses: dict[str, int] = {}
        for sv in report.get("solves", []):
            statuses[sv["status"]] = statuses.get(sv["status"], 0) + 1
        policies_meta.append({
            "name": name, "params": policy.params(), "report": report,
            "solver_statuses": statuses,
            "fallback_windows": sum(1 for sv in report.get("solves", []) if sv.get("fallback")),
            "timings_s": {"total": engine.timings.total_s, "policy": engine.timings.policy_s,
                          "grid": engine.timings.grid_s, "per_site": engine.timings.per_site_s},
            "vehicle_km": km,
        })
        if stopped is not None:
            break

    tables = {t: pd.concat(dfs, ignore_index=True) for t, dfs in per_table.items()}
    tables["sfi"] = sfi_table(tables, info)
    metrics = run_metrics(tables, info)
    meta = {
        "scenario": cfg.scenario.name,
        "seed": seed,
        "policies": policies_meta,
        "versions": versions(),
        "git": git_hash(),
        "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "wall_s": time.perf_counter() - started,
        "failures": int(len(tables.get("failures", []))),
        "status": "complete",
        "power_flow_on_failure": on_failure,
    }
    sites_t = tables.get("sites")
    nonconv = int((~sites_t["converged"].astype(bool)).sum()) if sites_t is not None else 0
    meta["nonconverged_steps"] = nonconv
    if on_failure == "mark" and nonconv:
        meta["marked"] = [f"{nonconv} site-steps whose power flow did not converge"]
    if stopped is not None:
        meta["status"] = "stopped"
        meta["stopped"] = {"policy": name, "time_min": stopped.time_min, "site": stopped.site,
                           "status": stopped.status, "message": stopped.message,
                           "policies_not_run": [n for n, _ in cfg.policy_runs()][
                               len(policies_meta):]}
    return RunResult(cfg, seed, tables, meta, info, metrics)


# ----------------------------------------------------------------------------- run directory


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def atomic_parquet(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def inside(root: str | Path, name: str) -> Path:
    """``root / name`` for a name that comes from a scenario; refuses anything that would leave
    ``root`` (absolute paths, ``..``, separators, a leading dot)."""
    from experiments.config import SAFE_NAME

    if not isinstance(name, str) or not SAFE_NAME.match(name) or name in (".", ".."):
        raise ScenarioError([f"output name {name!r}: must be a plain file name (letters, "
                             f"digits, '.', '_', '-'), not a path"])
    path = Path(root) / name
    if Path(os.path.abspath(path)).parent != Path(os.path.abspath(root)):
        raise ScenarioError([f"output name {name!r}: leaves the output directory {root}"])
    return path


def out_problems(out: str | Path | None, scenario: Path | None, overwrite: bool = False,
                 can_overwrite: bool = False) -> list[str]:
    """Why ``--out`` cannot take a new run directory, checked before anything runs: a run
    directory is never written over silently (an old run's figures would sit beside the new
    tables) and never holds the scenario it was run from. With ``overwrite`` an earlier run
    directory (one with a ``meta.json``) may be given: :func:`clear_out` empties it once the
    scenario has passed its checks; any other non-empty directory is still refused.
    ``can_overwrite``: the command has an ``--overwrite`` flag (the message then names it)."""
    if out is None:
        return []
    out = Path(out)
    problems = []
    if out.exists() and not out.is_dir():
        problems.append(f"--out: {out} is a file, not a directory")
    elif out.is_dir() and any(out.iterdir()):
        if not overwrite:
            how = ", remove this one or give --overwrite to clear it" if can_overwrite else \
                " or remove this one"
            problems.append(f"--out: {out} already holds files; a run directory is never "
                            f"written over: choose a new directory{how}")
        elif not (out / "meta.json").is_file():
            problems.append(f"--out: {out} holds files but is not an earlier run directory "
                            f"(no meta.json); --overwrite clears only run directories")
        elif Path.cwd().resolve().is_relative_to(out.resolve()):
            problems.append(f"--out: {out} holds the working directory; --overwrite will not "
                            f"clear it")
    try:
        if scenario is not None and scenario.resolve().is_relative_to(out.resolve()):
            problems.append(f"--out: {out} holds the scenario file {scenario}; write the run "
                            f"elsewhere")
    except OSError:
        pass
    if not problems:
        parent = next((p for p in [out, *out.parents] if p.exists()), Path("."))
        if not os.access(parent, os.W_OK):
            problems.append(f"--out: cannot create {out}: {parent} is not writable")
    return problems


def clear_out(out: str | Path) -> None:
    """Empty a run directory that :func:`out_problems` accepted (``--overwrite``)."""
    out = Path(out)
    if not out.is_dir():
        return
    for child in out.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


#: Rough wall time of one site's step (policy share included; three-dn over 7 days took
#: 19 s for 168 steps x 3 grids x 3 policies on a shared 2-core machine), for the up-front
#: estimate of :func:`estimate_run_s` (``mescosim run`` and ``check`` warn above
#: :data:`WARN_RUN_S`).
SITE_STEP_S = 0.0125
WARN_RUN_S = 600.0


def estimate_run_s(cfg: Config) -> float:
    """A rough wall time of :func:`run_one` in seconds: steps x grids x policies x
    :data:`SITE_STEP_S`."""
    steps = cfg.scenario.horizon_min // cfg.scenario.step_min
    return steps * max(len(cfg.grids), 1) * len(cfg.policy_runs()) * SITE_STEP_S


def start_run_dir(out: str | Path, cfg: Config, seed: int) -> Path:
    """Create a run directory before the simulation: ``config.toml`` and a ``meta.json`` that
    says ``partial`` (``running``), so that an interrupted run leaves a marked directory."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_meta(out, {"scenario": cfg.scenario.name, "seed": seed, "status": "partial",
                     "stage": "running", "git": git_hash(),
                     "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")})
    atomic_write_bytes(out / "config.toml", tomli_w.dumps(cfg.to_toml_dict()).encode())
    return out


def mark_interrupted(out: str | Path, stage: str) -> None:
    """Rewrite ``meta.json`` of a run directory whose run was interrupted (Ctrl-C) with status
    ``interrupted``; the tables in it, if any, are incomplete."""
    out = Path(out)
    try:
        meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        meta = {}
    meta.update(status="interrupted", stage=stage,
                interrupted_utc=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    write_meta(out, meta)


def default_run_dir(cfg: Config, seed: int, root: str | Path = "runs") -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return inside(root, f"{cfg.scenario.name}-s{seed}-{stamp}")


def write_meta(out: Path, meta: dict) -> None:
    atomic_write_bytes(out / "meta.json", json.dumps(meta, indent=2, default=str).encode())


def write_run(result: RunResult, out: str | Path, figures: bool = True) -> Path:
    """Write a run directory; ``meta.json`` says ``partial`` until everything is on disk."""
    from experiments.figures import write_all
    from experiments.html_report import write_report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_meta(out, {**result.meta, "status": "partial"})
    atomic_write_bytes(out / "config.toml", tomli_w.dumps(result.config.to_toml_dict()).encode())
    for name, df in result.tables.items():
        atomic_parquet(df, out / f"{name}.parquet")
    if result.metrics is not None:
        atomic_parquet(result.metrics, out / "metrics.parquet")
    if figures:
        result.figures = list(write_all(result.tables, result.info, result.metrics, out))
    write_report(result, out)
    final = result.meta.get("status", "complete")
    write_meta(out, {**result.meta, "status": final, "info": result.info,
                     "figures": [str(p.relative_to(out)) for p in result.figures]})
    return out
