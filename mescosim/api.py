"""The functions behind ``import mescosim`` (thin wrappers of the command line's own code)."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from experiments.config import (
    Config,
    apply_overrides,
    builtin,
    read_raw,
    resolve,
    set_value,
    validate,
)
from sim.errors import ScenarioError

Scenario = str | os.PathLike | Config | Mapping[str, Any]
Overrides = Mapping[str, Any] | Sequence[str] | None

# ----------------------------------------------------------------------------- scenarios


def _with_overrides(raw: dict, overrides: Overrides) -> dict:
    if not overrides:
        return raw
    if isinstance(overrides, Mapping):
        problems = []
        for key, value in overrides.items():
            try:
                set_value(raw, key, copy.deepcopy(value))
            except ScenarioError as exc:
                problems += [f"overrides[{key!r}]: {p}" for p in exc.problems]
        if problems:
            raise ScenarioError(problems)
        return raw
    if isinstance(overrides, str):
        raise ScenarioError([f"overrides: expected a mapping or a list of 'KEY=VALUE' strings, "
                             f"got the string {overrides!r}"])
    return apply_overrides(raw, list(overrides))


def _raw(scenario: Scenario, overrides: Overrides) -> tuple[dict, str | None]:
    """The raw scenario data and the file it came from (None for a dict or a Config)."""
    if isinstance(scenario, Config):
        return _with_overrides(scenario.to_toml_dict(), overrides), None
    if isinstance(scenario, Mapping):
        return _with_overrides(copy.deepcopy(dict(scenario)), overrides), None
    if not isinstance(scenario, (str, os.PathLike)):
        raise ScenarioError([f"scenario: expected a built-in name, a .toml path, a Config or a "
                             f"dict, got {type(scenario).__name__}"])
    path = resolve(os.fspath(scenario))
    raw = read_raw(path)
    kind = raw.get("scenario", {}).get("kind") if isinstance(raw.get("scenario"), dict) else None
    if kind in ("tsn-study", "coopt-study"):
        raise ScenarioError([f"{path}: a {kind} with its own settings, not a simulation "
                             f"scenario; run it with `mescosim run {os.fspath(scenario)}`"])
    return _with_overrides(raw, overrides), str(path)


def load(name_or_path: Scenario, overrides: Overrides = None) -> Config:
    """A validated scenario: a built-in name (``"three-dn"``), a TOML file, a dict of the same
    shape or a :class:`~experiments.config.Config` to change.

    ``overrides`` is a mapping ``{"fleet[0].p_max_mw": 0.1, "grids.dn1.peak_load_mw": 2.0}``
    (Python values) or a list of ``"KEY=VALUE"`` strings with TOML values, as ``--set`` takes.
    Raises :class:`~sim.errors.ScenarioError` listing every problem.
    """
    raw, source = _raw(name_or_path, overrides)
    return validate(raw, source=source)


def scenarios() -> dict[str, Path]:
    """The built-in scenarios by name."""
    return builtin()


def policies() -> pd.DataFrame:
    """The policy registry: one row per policy and system it runs on, with its class."""
    from policies.registry import POLICIES, names_for

    names_for("dn-sites")  # loads installed plugins
    rows = [{"policy": name, "system": system, "class": f"{cls.__module__}.{cls.__qualname__}"}
            for name in sorted(POLICIES) for system, cls in sorted(POLICIES[name].items())]
    return pd.DataFrame(rows, columns=["policy", "system", "class"])


def grids() -> list[str]:
    """The registered feeder names (any ``pandapower.networks`` factory or a pandapower JSON
    file works as well)."""
    from grids.feeders import feeder_names

    return feeder_names()


def register_policy(name: str, cls: type, systems: Sequence[str] | str | None = None,
                    replace: bool = False) -> None:
    """Register a policy class (``reset``, ``decide``, ``params``; see
    :class:`sim.protocols.Policy`) under ``name`` for ``systems`` (``"dn-sites"``,
    ``"transmission"``, ``"missions"``; default the class attribute ``systems``, else
    ``("dn-sites",)``). A built-in name is refused unless ``replace``. Holds in this process:
    sweeps on worker processes need a ``"module:Class"`` name or a ``mescosim.policies`` entry
    point instead."""
    from policies.registry import register_policy as register

    register(name, cls, systems, replace)


def register_grid(name: str, builder: Callable[[], Any], replace: bool = False) -> None:
    """Register ``builder`` (no arguments, returns a fresh ``pandapowerNet``) as the feeder
    ``name`` of a scenario's grids. Holds in this process (see :func:`register_policy`)."""
    from grids.feeders import register_grid as register

    register(name, builder, replace)


# ----------------------------------------------------------------------------- one run


@dataclass
class Result:
    """One run: every policy on the same realisation.

    ``tables`` holds tidy DataFrames with a ``policy`` column (``vehicles``, ``sites``,
    ``events``, ``buses``, ``lines``, ``failures``, ``decisions``, ``sfi``...); ``metrics`` the
    whole-run metrics (``policy``, ``entity``, ``metric``, ``value``); ``meta`` versions, seed,
    timings and solver outcomes; ``out`` the run directory when one was written.
    """

    config: Config
    seed: int
    tables: dict[str, pd.DataFrame]
    metrics: pd.DataFrame
    meta: dict[str, Any]
    info: dict[str, Any]
    out: Path | None = None
    figures: list[Path] = field(default_factory=list)

    def summary(self) -> pd.DataFrame:
        """One row per policy: the system metrics the command line prints."""
        from experiments.metrics import summary_table

        return summary_table(self.metrics)

    @property
    def failures(self) -> pd.DataFrame:
        """Recorded failures (power flows, solves, vehicles); empty when there were none."""
        return self.tables.get("failures", pd.DataFrame(
            columns=["policy", "time_min", "kind", "entity", "status", "message"]))

    def __repr__(self) -> str:
        pols = ", ".join(p["name"] for p in self.meta.get("policies", []))
        where = f", out={str(self.out)!r}" if self.out else ""
        return (f"Result(scenario={self.config.scenario.name!r}, seed={self.seed}, "
                f"policies=[{pols}], status={self.meta.get('status')!r}, "
                f"tables={sorted(self.tables)}{where})")


def _no_study(cfg: Config, what: str) -> None:
    if cfg.study is not None:
        raise ScenarioError([f"{cfg.scenario.name}: has a [study] section (a study run by "
                             f"`mescosim run {cfg.scenario.name}`), not a per-realisation "
                             f"simulation; {what} plain scenarios such as three-dn"])


def run(scenario: Scenario, seed: int | None = None, out: str | os.PathLike | None = None,
        figures: bool = True, overrides: Overrides = None) -> Result:
    """Run every policy of ``scenario`` on one seeded realisation (``seed`` defaults to the
    scenario's) and return the results as DataFrames. With ``out``, also write the run
    directory (Parquet tables, ``meta.json``, ``config.toml``, figures unless
    ``figures=False``); ``out`` must be new or empty."""
    from experiments.run import out_problems, run_one, write_run

    raw, source = _raw(scenario, overrides)
    cfg = validate(raw, source=source)
    _no_study(cfg, "`mescosim.run` runs")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ScenarioError([f"seed: expected an integer >= 0, got {seed!r}"])
    if out is not None:
        problems = out_problems(out, Path(source) if source else Path(os.devnull))
        if problems:
            raise ScenarioError([p.replace("--out", "out", 1) for p in problems])
    r = run_one(cfg, seed)
    res = Result(r.config, r.seed, r.tables, r.metrics, r.meta, r.info)
    if out is not None:
        write_run(r, out, figures=figures)
        res.out, res.figures, res.meta = Path(out), list(r.figures), r.meta
    return res


# ----------------------------------------------------------------------------- sweeps


@dataclass
class SweepResult:
    """A sweep directory and what the sweep did (``summary``: counts, wall time, backend)."""

    out: Path
    summary: Any

    @property
    def manifest(self) -> pd.DataFrame:
        """One row per scenario: status, error, seed, wall time."""
        from experiments.sweep import read_manifest

        return read_manifest(self.out)

    @property
    def results(self) -> pd.DataFrame:
        """Every scenario's tidy rows (scenario, seed, policy, entity, metric, time_min, value,
        unit)."""
        from experiments.sweep import read_results

        return read_results(self.out)


@dataclass
class BenchResult(SweepResult):
    """A benchmark: the sweep plus its tables (``stats``, ``paired``, ``solver``, ``wall``)."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


def _local_only(cfg: Config, workers: int | None, scheduler: str | None) -> None:
    """Policies and grids registered in this process do not exist in worker processes."""
    from grids.feeders import runtime_registered as grids_here
    from policies.registry import runtime_registered as policies_here

    if workers == 0 and scheduler is None:
        return
    names = [n for n, _ in cfg.policy_runs() if n in policies_here()]
    names += [g.feeder for g in cfg.grids.values() if g.feeder in grids_here()]
    if names:
        raise ScenarioError([f"{n!r}: registered with mescosim.register_* in this process only, "
                             f"which worker processes do not see; use workers=0, name the class "
                             f"'module:Class' in the scenario, or install it as an entry point "
                             f"(mescosim.policies / mescosim.grids)" for n in names])


def _sweep(raw: dict, source: str | None, scenarios: int, out, seed, workers, scheduler,
           retry_failed, progress, command: str):
    from experiments.sweep import run_sweep

    cfg = validate(raw, source=source)
    _no_study(cfg, f"`mescosim.{command}` runs")
    if isinstance(scenarios, bool) or not isinstance(scenarios, int) or scenarios < 1:
        raise ScenarioError([f"scenarios: expected an integer >= 1, got {scenarios!r}"])
    _local_only(cfg, workers, scheduler)
    seed = cfg.scenario.seed if seed is None else seed
    out = Path(out) if out is not None else Path("runs") / f"{command}-{cfg.scenario.name}-s{seed}"
    summary = run_sweep(cfg, out, scenarios, seed, workers=workers, scheduler=scheduler,
                        retry_failed=retry_failed, progress=progress)
    return cfg, out, summary


def sweep(scenario: Scenario, scenarios: int = 100, out: str | os.PathLike | None = None,
          seed: int | None = None, workers: int | None = None, scheduler: str | None = None,
          retry_failed: bool = False, progress: bool = False, figures: bool = False,
          overrides: Overrides = None) -> SweepResult:
    """Monte Carlo realisations of ``scenario`` (as ``mescosim sweep``): ``scenarios`` seeded
    realisations into ``out`` (default ``runs/sweep-<name>-s<seed>``; rerunning resumes).
    ``workers`` 0 runs in this process, None one process per CPU; ``scheduler`` a Dask
    address."""
    raw, source = _raw(scenario, overrides)
    _, out, summary = _sweep(raw, source, scenarios, out, seed, workers, scheduler, retry_failed,
                             progress, "sweep")
    if figures:
        from experiments.sweep_figures import write_all

        write_all(out)
    return SweepResult(out, summary)


def bench(scenario: Scenario, policies: Sequence[str], scenarios: int = 200,
          out: str | os.PathLike | None = None, seed: int | None = None,
          workers: int | None = None, scheduler: str | None = None, retry_failed: bool = False,
          progress: bool = False, figures: bool = False, overrides: Overrides = None,
          params: Mapping[str, Mapping[str, Any]] | None = None) -> BenchResult:
    """Every policy of ``policies`` on the same realisations (as ``mescosim bench``); the first
    is the reference of the paired differences. ``params`` gives a policy's parameters (by
    default those the scenario gives it). Returns the sweep and the benchmark tables, also
    written as ``bench_*.parquet`` in ``out``."""
    from experiments.bench import bench_tables, write_bench

    policies = list(policies) if not isinstance(policies, str) else [policies]
    if not policies or not all(isinstance(p, str) and p for p in policies):
        raise ScenarioError(["policies: expected a non-empty list of policy names"])
    dup = sorted({p for p in policies if policies.count(p) > 1})
    if dup:
        raise ScenarioError([f"policies: each policy once; repeated: {', '.join(dup)}"])
    raw, source = _raw(scenario, overrides)
    pol = raw.get("policy") if isinstance(raw.get("policy"), dict) else {}
    cmp_ = raw.get("compare") if isinstance(raw.get("compare"), dict) else {}
    known = {pol.get("name"): pol.get("params", {}), **cmp_.get("params", {}),
             **{k: dict(v) for k, v in (params or {}).items()}}
    raw["policy"] = {"name": policies[0], "params": known.get(policies[0], {}) or {}}
    raw["compare"] = {"policies": policies[1:],
                      "params": {p: known[p] for p in policies[1:] if known.get(p)}}
    _, out, summary = _sweep(raw, source, scenarios, out, seed, workers, scheduler, retry_failed,
                             progress, "bench")
    tables = bench_tables(out, policies)
    write_bench(out, tables)
    if figures and len(tables["stats"]):
        from experiments.sweep_figures import write_all

        write_all(out)
    return BenchResult(out, summary, tables)
