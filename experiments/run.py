"""``run_one(config, seed) -> RunResult`` and run directories.

``run_one`` is pure and picklable (mesa ``batch_run``, Grid2Op ``Runner``): it builds a fresh world
for every policy of the scenario, runs them all on the same realisation of the uncertain profiles
(common random numbers), and returns tidy tables with a ``policy`` column. ``write_run`` writes a
run directory::

    config.toml      the scenario as resolved (defaults filled in)
    meta.json        versions, seed, git hash, timings, status ("partial" until complete)
    <table>.parquet  vehicles, sites, events, buses, lines, failures, decisions, sfi, metrics
    figures/*.png
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tomli_w

from experiments.build import build_world, realisation, site_spec
from experiments.config import Config
from policies.registry import make_policy
from sim.engine import Engine

PACKAGES = ("mescosim", "simpy", "mesa", "networkx", "pandapower", "numpy", "pandas", "scipy",
            "pulp", "highspy", "pydantic", "pyarrow", "matplotlib")


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


def run_one(cfg: Config, seed: int | None = None, record_arrays: bool = True) -> RunResult:
    """Run every policy of ``cfg`` on one seeded realisation and return the results."""
    from experiments.metrics import run_metrics, sfi_table

    seed = cfg.scenario.seed if seed is None else int(seed)
    started = time.perf_counter()
    noise_seq, policy_seq, fleet_seq = np.random.SeedSequence(seed).spawn(3)
    specs = [site_spec(name, g, cfg.power_flow) for name, g in cfg.grids.items()]
    actual = realisation(cfg, specs, np.random.default_rng(noise_seq))

    per_table: dict[str, list[pd.DataFrame]] = {}
    policies_meta = []
    info: dict[str, Any] = {}
    for name, params in cfg.policy_runs():
        world = build_world(cfg, actual, np.random.default_rng(fleet_seq))
        info = run_info(cfg, world)
        policy = make_policy(name, **params)
        engine = Engine(world.problem, world.vehicles, world.sites, policy,
                        rng=np.random.default_rng(policy_seq), record_arrays=record_arrays)
        recorder = engine.run()
        for table, df in recorder.frames().items():
            df.insert(0, "policy", name)
            per_table.setdefault(table, []).append(df)
        km = {v.name: v.km for v in world.vehicles}
        if hasattr(policy, "plan_table"):
            plan = policy.plan_table()
            plan.insert(0, "policy", name)
            per_table.setdefault("plan", []).append(plan)
        policies_meta.append({
            "name": name, "params": policy.params(),
            "report": policy.report() if hasattr(policy, "report") else {},
            "timings_s": {"total": engine.timings.total_s, "policy": engine.timings.policy_s,
                          "grid": engine.timings.grid_s, "per_site": engine.timings.per_site_s},
            "vehicle_km": km,
        })

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
    }
    return RunResult(cfg, seed, tables, meta, info, metrics)


# ----------------------------------------------------------------------------- run directory


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _atomic_parquet(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def default_run_dir(cfg: Config, seed: int, root: str | Path = "runs") -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{cfg.scenario.name}-s{seed}-{stamp}"


def write_meta(out: Path, meta: dict) -> None:
    _atomic_write_bytes(out / "meta.json", json.dumps(meta, indent=2, default=str).encode())


def write_run(result: RunResult, out: str | Path, figures: bool = True) -> Path:
    """Write a run directory; ``meta.json`` says ``partial`` until everything is on disk."""
    from experiments.figures import write_all

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_meta(out, {**result.meta, "status": "partial"})
    _atomic_write_bytes(out / "config.toml", tomli_w.dumps(result.config.to_toml_dict()).encode())
    for name, df in result.tables.items():
        _atomic_parquet(df, out / f"{name}.parquet")
    if result.metrics is not None:
        _atomic_parquet(result.metrics, out / "metrics.parquet")
    if figures:
        result.figures = list(write_all(result.tables, result.info, result.metrics, out))
    write_meta(out, {**result.meta, "info": result.info,
                     "figures": [str(p.relative_to(out)) for p in result.figures]})
    return out
