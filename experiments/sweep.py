"""Monte Carlo sweeps: many seeded realisations of one scenario, locally or on a Dask cluster.

A sweep maps :func:`run_scenario` (``run_one`` plus a compact tidy summary) over scenario indices
``0..n-1``. Scenario ``k`` gets the seed ``child_seed(base, k)`` drawn from
``numpy.random.SeedSequence(base).spawn(n)[k]``; a spawned child depends only on ``(base, k)``, so
scenario ``k`` has the same seed whatever the worker count, the backend or ``n``.

Every policy of the scenario runs on the same realisation (common random numbers, as in
``run_one``). The sweep directory::

    sweep.json                 identity: scenario name, base seed, config hash, policies
    config.toml                the scenario as resolved
    manifest.jsonl             append-only, one JSON line per finished attempt; the last line of a
                               scenario is its state (status, error, seed, timings, attempt)
    scenarios/s000042.parquet  one tidy table per scenario that produced results, written
                               atomically (temporary file + rename) by the client
    figures/*.png              :mod:`experiments.sweep_figures`

Workers return each scenario's small table to the client, which writes it at once and forgets
it, so neither side holds more than the scenarios in flight (at most ``2 x workers``). A rerun of
the same command skips every scenario with a line in the manifest and so loses only the scenarios
that were in flight. ``retry_failed`` reruns the failures. A worker that dies is retried: by
Dask's scheduler on a cluster (up to ``distributed.scheduler.allowed-failures``), by this module
with a new process pool locally (up to ``max_attempts``); past that the scenario is a
``worker_lost`` failure row. A scenario that fails by itself (an exception, or power flows that did
not converge) is a failure row at once and is not retried unless asked.

Read the results back with :func:`read_results` / :func:`read_manifest` (pandas), or with DuckDB:
``duckdb.sql("select * from 'DIR/scenarios/*.parquet'")``.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import hashlib
import json
import multiprocessing
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import tomli_w

from experiments.config import Config, validate
from experiments.run import atomic_write_bytes

RESULT_COLUMNS = ("scenario", "seed", "policy", "entity", "metric", "time_min", "value", "unit")
#: statuses that count as a failure (``--retry-failed`` reruns them)
FAILED = ("error", "nonconverged", "worker_lost")
#: per-step series kept for every scenario (entity "system" unless stated)
HOURLY = ("sfi_weighted", "sfi", "losses_mw", "mess_p_mw", "residual_mw")
SCHEMA = pa.schema([("scenario", pa.int32()), ("seed", pa.uint64()), ("policy", pa.string()),
                    ("entity", pa.string()), ("metric", pa.string()), ("time_min", pa.int32()),
                    ("value", pa.float64()), ("unit", pa.string())])


class SweepError(Exception):
    """A sweep cannot start (wrong directory, mismatched scenario); the message says why."""


# ----------------------------------------------------------------------------- seeds and identity


def child_seeds(base_seed: int, n: int) -> list[int]:
    """Seeds of scenarios ``0..n-1``: a 64-bit integer from each ``SeedSequence(base).spawn(n)``."""
    return [int(c.generate_state(1, np.uint64)[0])
            for c in np.random.SeedSequence(int(base_seed)).spawn(int(n))]


def config_hash(cfg) -> str:
    """SHA-256 (16 hex digits) of the resolved scenario without its own seed."""
    if not isinstance(cfg, Config):  # a study target of experiments.families
        return cfg.config_hash()
    data = cfg.to_toml_dict()
    data["scenario"] = {k: v for k, v in data["scenario"].items() if k != "seed"}
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


# ----------------------------------------------------------------------------- one scenario


@dataclass
class Outcome:
    """What a worker sends back for one scenario (small: the tidy table, not the time series)."""

    scenario: int
    seed: int
    status: str
    error: str
    wall_s: float
    worker: str
    frame: pd.DataFrame | None = None
    policy_s: dict[str, float] = field(default_factory=dict)  # engine wall time per policy


def scenario_frame(result, scenario: int, seed: int) -> pd.DataFrame:
    """The tidy rows kept for one scenario: whole-run metrics, per-step series, solver counts.

    Whole-run rows have ``time_min`` null. Per-step rows: ``sfi`` per site, and for the system
    ``sfi_weighted`` (the SFI-weighted sum over sites), ``losses_mw``, ``mess_p_mw`` (fleet, grid
    side, charging positive) and ``residual_mw``. Solver rows: entity ``solver``, metric
    ``solves_<status>`` (count of solves with that typed outcome). The table depends on the seed
    only; wall times go to the manifest.

    The columns are assembled as arrays (one DataFrame at the end); the per-step system sums are
    :func:`experiments.metrics.group_sums`, equal bit for bit to pandas'
    ``groupby([policy, time_min], sort=False).sum()``.
    """
    from experiments.metrics import group_sums

    policy: list = []
    entity: list = []
    metric: list = []
    unit: list = []
    times: list[np.ndarray] = []
    null_time: list[np.ndarray] = []
    values: list[np.ndarray] = []

    def part(pol, ent, met, un, time_min, value) -> None:
        n = len(value)
        for out, v in ((policy, pol), (entity, ent), (metric, met), (unit, un)):
            out.extend(v if isinstance(v, list) else [v] * n)
        times.append(np.zeros(n, dtype=np.int64) if time_min is None
                     else np.asarray(time_min, dtype=np.int64))
        null_time.append(np.full(n, time_min is None))
        values.append(np.asarray(value, dtype=float))

    def grouped(pols, tms, vals, min_count: int = 0) -> tuple[list, list, list]:
        sums = group_sums(list(zip(pols, tms)), vals, min_count)
        return [k[0] for k in sums], [k[1] for k in sums], list(sums.values())

    m = result.metrics
    part(m["policy"].tolist(), m["entity"].tolist(), m["metric"].tolist(), m["unit"].tolist(),
         None, m["value"].to_numpy(dtype=float))
    sfi = result.tables["sfi"]
    if len(sfi):
        pols, tms = sfi["policy"].tolist(), sfi["time_min"].tolist()
        part(pols, sfi["site"].tolist(), "sfi", "-", tms, sfi["sfi"].to_numpy(dtype=float))
        gp, gt, gv = grouped(pols, tms, sfi["weighted_sfi"].to_numpy(dtype=float))
        part(gp, "system", "sfi_weighted", "-", gt, gv)
    sites = result.tables.get("sites")
    if sites is not None and len(sites):
        pols, tms = sites["policy"].tolist(), sites["time_min"].tolist()
        for col in ("losses_mw", "mess_p_mw", "residual_mw"):
            if col in sites.columns:
                gp, gt, gv = grouped(pols, tms, sites[col].to_numpy(dtype=float), 1)
                part(gp, "system", col, "MW", gt, gv)
    for p in result.meta["policies"]:
        counts: dict[str, int] = {}
        for s in (p.get("report") or {}).get("solves", []) or []:
            st = str(s.get("status", "unknown")) if isinstance(s, dict) else "unknown"
            counts[st] = counts.get(st, 0) + 1
        if counts:
            keys = sorted(counts)
            part(p["name"], "solver", [f"solves_{k}" for k in keys], "solves", None,
                 [float(counts[k]) for k in keys])
    t = np.concatenate(times)
    n = len(t)
    return pd.DataFrame({
        "scenario": np.full(n, scenario, dtype=np.int32),
        "seed": np.full(n, seed, dtype=np.uint64),
        "policy": np.array([str(x) for x in policy], dtype=object),
        "entity": np.array([str(x) for x in entity], dtype=object),
        "metric": np.array([str(x) for x in metric], dtype=object),
        "time_min": pd.arrays.IntegerArray(t, np.concatenate(null_time)).astype("Int32"),
        "value": np.concatenate(values),
        "unit": np.array([str(x) for x in unit], dtype=object),
    }, columns=list(RESULT_COLUMNS))


def target_name(cfg) -> str:
    """The scenario name of a DN config or a study target."""
    return cfg.scenario.name if isinstance(cfg, Config) else cfg.name


def target_policies(cfg) -> list[str]:
    """The policies a sweep of ``cfg`` runs, in order."""
    return [n for n, _ in cfg.policy_runs()] if isinstance(cfg, Config) else list(cfg.policies)


class DnOracleTarget:
    """A DN scenario swept with the hindsight oracle (``mescosim bench --oracle`` on a DN
    scenario): every policy of ``cfg`` as ``run_one`` runs them, then the rows of policy
    ``oracle``: the weighted-SFI ``milp`` planning the whole horizon once with perfect
    information of the scenario's realised load and PV
    (:func:`experiments.families.dn_hindsight_config`), through the same engine on the same
    realisation. :func:`experiments.bench.bench_tables` reports each policy's regret against it.
    ``config.toml`` is the DN scenario plus ``[sweep] oracle = true``."""

    family = "dn-sites"

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.name = cfg.scenario.name
        self.seed = cfg.scenario.seed
        self.policies = [n for n, _ in cfg.policy_runs()]
        self.plan_s: dict[str, float] = {}

    def to_toml_dict(self) -> dict:
        return {**self.cfg.to_toml_dict(), "sweep": {"oracle": True}}

    def config_hash(self) -> str:
        return hashlib.sha256(f"{config_hash(self.cfg)}:oracle".encode()).hexdigest()[:16]

    def prepare(self) -> None:
        return None

    def run(self, scenario: int, seed: int) -> tuple[pd.DataFrame, dict[str, float]]:
        from experiments.families import ORACLE, dn_hindsight_config
        from experiments.run import run_one

        result = run_one(self.cfg, seed)
        frames = [scenario_frame(result, scenario, seed)]
        policy_s = {p["name"]: round(float(p["timings_s"]["total"]), 4)
                    for p in result.meta["policies"]}
        oracle = run_one(dn_hindsight_config(self.cfg, seed), seed)
        of = scenario_frame(oracle, scenario, seed)
        of["policy"] = ORACLE
        frames.append(of)
        policy_s[ORACLE] = round(float(oracle.meta["policies"][0]["timings_s"]["total"]), 4)
        return pd.concat(frames, ignore_index=True), policy_s


def run_scenario(cfg, scenario: int, seed: int) -> Outcome:
    """Run every policy of ``cfg`` on scenario ``scenario`` (seed ``seed``); never raises.

    ``cfg`` is a DN :class:`~experiments.config.Config` (``run_one``) or a study target of
    :mod:`experiments.families` (its ``run``). An exception is an ``error`` outcome with its type
    and message. A run in which power flows did not converge keeps its results and has status
    ``nonconverged``.
    """
    from experiments.run import run_one

    worker = f"{socket.gethostname()}:{os.getpid()}"
    started = time.perf_counter()
    try:
        if isinstance(cfg, Config):
            result = run_one(cfg, seed)  # bus and line arrays: the violation counts need them
            frame = scenario_frame(result, scenario, seed)
            policy_s = {p["name"]: round(float(p["timings_s"]["total"]), 4)
                        for p in result.meta["policies"]}
        else:
            frame, policy_s = cfg.run(scenario, seed)
    except Exception as exc:  # noqa: BLE001 - a failed scenario is data, not a crash
        return Outcome(scenario, seed, "error", f"{type(exc).__name__}: {exc}",
                       time.perf_counter() - started, worker)
    nc = np.flatnonzero((frame["entity"].to_numpy() == "system")
                        & (frame["metric"].to_numpy() == "nonconverged_steps"))
    nc_pol, nc_val = frame["policy"].to_numpy()[nc], frame["value"].to_numpy()[nc]
    status, error = "ok", ""
    if float(np.nansum(nc_val)) > 0:
        detail = ", ".join(f"{p} {int(v)}" for p, v in zip(nc_pol, nc_val) if v > 0)
        status, error = "nonconverged", f"power flows did not converge (steps per policy: {detail})"
    return Outcome(scenario, seed, status, error, time.perf_counter() - started, worker, frame,
                   policy_s)


# ----------------------------------------------------------------------------- the directory


def scenario_path(out: Path, k: int) -> Path:
    return Path(out) / "scenarios" / f"s{k:06d}.parquet"


def _write_frame(out: Path, outcome: Outcome, record: dict) -> None:
    table = pa.Table.from_pandas(outcome.frame, schema=SCHEMA, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[b"mescosim.manifest"] = json.dumps(record).encode()
    table = table.replace_schema_metadata(meta)
    path = scenario_path(out, outcome.scenario)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _append_manifest(out: Path, record: dict) -> None:
    path = Path(out) / "manifest.jsonl"
    lead = ""
    if path.exists() and path.stat().st_size:
        with open(path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            lead = "" if fh.read(1) == b"\n" else "\n"  # end a line cut by a crash first
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(lead + json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _manifest_lines(out: Path) -> list[dict]:
    path = Path(out) / "manifest.jsonl"
    if not path.exists():
        return []
    lines = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a crash: that scenario counts as not finished
    return lines


def read_manifest(out: str | Path, all_attempts: bool = False) -> pd.DataFrame:
    """The manifest as a table: one row per scenario (its last attempt), or every attempt."""
    cols = ["scenario", "seed", "config_hash", "status", "error", "attempt", "wall_s",
            "policy_s", "worker", "finished_utc", "file"]
    lines = _manifest_lines(Path(out))
    df = pd.DataFrame(lines, columns=cols) if lines else pd.DataFrame(columns=cols)
    if len(df):
        df["seed"] = df["seed"].astype("uint64")
    if not all_attempts and len(df):
        df = df.drop_duplicates("scenario", keep="last").sort_values("scenario")
    return df.reset_index(drop=True)


def read_results(out: str | Path, columns: list[str] | None = None,
                 filters: list | None = None) -> pd.DataFrame:
    """Every scenario's table as one DataFrame (pyarrow dataset over ``scenarios/``)."""
    path = Path(out) / "scenarios"
    files = sorted(path.glob("s*.parquet"))
    if not files:
        return pd.DataFrame(columns=columns or list(RESULT_COLUMNS))
    import pyarrow.dataset as ds

    data = ds.dataset([str(f) for f in files], schema=SCHEMA, format="parquet")
    expr = None
    for col, op, val in filters or []:
        term = {"==": ds.field(col) == val, "in": ds.field(col).isin(val)}[op]
        expr = term if expr is None else expr & term
    return data.to_table(columns=columns, filter=expr).to_pandas()


def _identity(cfg, base_seed: int) -> dict:
    ident = {"scenario": target_name(cfg), "seed": int(base_seed),
             "config_hash": config_hash(cfg), "policies": target_policies(cfg)}
    if not isinstance(cfg, Config):
        ident["family"] = cfg.family
        ident["plan_s"] = dict(cfg.plan_s)  # plans made once from the forecast (trucks)
    return ident


def prepare(cfg, out: Path, base_seed: int, n: int) -> dict:
    """Create or reopen a sweep directory; refuse one made for another scenario or seed."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "scenarios").mkdir(exist_ok=True)
    ident = _identity(cfg, base_seed)
    path = out / "sweep.json"
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise SweepError(f"{path}: unreadable ({exc}); use another --out") from None
        for key in ("scenario", "seed", "config_hash"):
            if old.get(key) != ident[key]:
                raise SweepError(
                    f"{out}: holds a sweep of {key} {old.get(key)!r}, not {ident[key]!r}; "
                    "use another --out (a directory holds one scenario, seed and config)")
        ident["n_scenarios"] = max(int(old.get("n_scenarios", 0)), n)
        ident["created_utc"] = old.get("created_utc")
        if "plan_s" in old:
            ident["plan_s"] = old["plan_s"]
    else:
        ident["n_scenarios"] = n
        ident["created_utc"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    atomic_write_bytes(path, json.dumps(ident, indent=2).encode())
    if not (out / "config.toml").exists():
        atomic_write_bytes(out / "config.toml", tomli_w.dumps(cfg.to_toml_dict()).encode())
    return ident


def load_sweep_config(out: str | Path):
    """The resolved scenario a sweep directory was made with (a DN config or a study target)."""
    import tomllib

    path = Path(out) / "config.toml"
    if not path.exists():
        raise SweepError(f"{out}: not a sweep directory (no config.toml)")
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    from experiments import families

    if families.is_study_kind(raw):
        return families.target_from_raw(raw, source=str(path))
    if (raw.get("sweep") or {}).get("oracle") is True:  # a DN bench with the hindsight oracle
        return DnOracleTarget(validate({k: v for k, v in raw.items() if k != "sweep"},
                                       source=str(path)))
    return validate(raw, source=str(path))


def _recover(out: Path, lines: list[dict]) -> list[dict]:
    """Manifest lines for result files written just before a crash cut the manifest append."""
    known = {int(r["scenario"]) for r in lines}
    found = []
    for f in sorted((out / "scenarios").glob("s*.parquet")):
        k = int(f.stem[1:])
        if k in known:
            continue
        meta = pq.read_schema(f).metadata or {}
        raw = meta.get(b"mescosim.manifest")
        if raw is None:
            continue
        rec = json.loads(raw)
        rec["recovered"] = True
        _append_manifest(out, rec)
        found.append(rec)
    return found


# ----------------------------------------------------------------------------- running


@dataclass
class SweepSummary:
    out: Path
    n_scenarios: int
    skipped: int
    ran: int
    ok: int
    failed: int
    status_counts: dict[str, int]
    wall_s: float
    task_s: float  # sum of the workers' wall time per finished scenario
    backend: str
    workers: int
    records: list[dict] = field(default_factory=list)

    @property
    def scenarios_per_min(self) -> float:
        return 60.0 * self.ran / self.wall_s if self.wall_s > 0 else float("nan")


def _record(outcome: Outcome, chash: str, attempt: int) -> dict:
    return {"scenario": int(outcome.scenario), "seed": int(outcome.seed), "config_hash": chash,
            "status": outcome.status, "error": outcome.error, "attempt": int(attempt),
            "wall_s": round(float(outcome.wall_s), 4), "policy_s": outcome.policy_s,
            "worker": outcome.worker,
            "finished_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "file": (str(scenario_path(Path("."), outcome.scenario))
                     if outcome.frame is not None else "")}


#: how often a worker checks that the sweep's client is still alive (seconds)
WATCH_S = 0.5


def _client_gone(client_pid: int) -> bool:
    try:
        os.kill(client_pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # a process with that pid exists (not ours): the client is gone
        return True
    return False


def _watch_client(client_pid: int, interval_s: float = WATCH_S) -> None:
    """Worker initializer: exit at once when the client that started the pool dies.

    A client killed with SIGKILL or SIGTERM runs no clean-up, and its workers (children of the
    forkserver, not of the client) would keep running on with their memory. A daemon thread in
    each worker polls the client's pid and ends the worker with ``os._exit`` when it is gone.
    """
    def watch() -> None:
        while not _client_gone(client_pid):
            time.sleep(interval_s)
        os._exit(1)

    threading.Thread(target=watch, name="mescosim-client-watch", daemon=True).start()


def _local_pool(workers: int) -> cf.ProcessPoolExecutor:
    # forkserver: workers fork from a clean server process (no copy of the client's threads),
    # which imports the simulation once, so a new pool after a dead worker starts in moments.
    # The forkserver ends when the client's end of its pipe closes; each worker watches the
    # client (:func:`_watch_client`), so no process outlives a killed client.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["experiments.run", "experiments.sweep"])
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                  initializer=_watch_client, initargs=(os.getpid(),))


def _kill_pool(pool: cf.ProcessPoolExecutor) -> None:
    procs = list(getattr(pool, "_processes", {}) .values())
    for p in procs:
        if p.is_alive():
            p.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


def _iter_local(cfg, todo, seeds, workers, max_attempts, attempts, on_pool=None):
    """Yield outcomes from a local process pool; a dead worker means a new pool.

    When a worker process dies the pool is broken and every scenario in flight is lost with it:
    each of them counts one attempt (``attempts``, this run's tries per scenario) and runs again,
    up to ``max_attempts``, after which it is a ``worker_lost`` outcome.
    """
    queue = list(todo)
    pool = _local_pool(workers)
    if on_pool:
        on_pool(pool)
    inflight: dict[cf.Future, int] = {}
    try:
        while queue or inflight:
            while queue and len(inflight) < 2 * workers:
                k = queue.pop(0)
                attempts[k] = attempts.get(k, 0) + 1
                inflight[pool.submit(run_scenario, cfg, k, seeds[k])] = k
            done, _ = cf.wait(list(inflight), return_when=cf.FIRST_COMPLETED)
            lost: list[int] = []
            for fut in done:
                k = inflight.pop(fut)
                try:
                    outcome = fut.result()
                except cf.process.BrokenProcessPool:
                    lost.append(k)
                    continue
                yield outcome
            if not lost:
                continue
            lost += list(inflight.values())
            inflight.clear()
            _kill_pool(pool)
            for k in sorted(lost, reverse=True):
                if attempts[k] < max_attempts:
                    queue.insert(0, k)
                else:
                    yield _lost(k, seeds[k], attempts[k])
            pool = _local_pool(workers)
            if on_pool:
                on_pool(pool)
    finally:
        _kill_pool(pool)


def _lost(k: int, seed: int, attempts: int) -> Outcome:
    return Outcome(k, seed, "worker_lost",
                   f"the worker running it died {attempts} times", 0.0, "")


def _n_workers(client) -> int:
    try:
        info = client.scheduler_info(n_workers=-1)
    except TypeError:  # distributed before 2025 lists every worker without the argument
        info = client.scheduler_info()
    return max(1, len(info.get("workers", {})))


def _iter_dask(cfg, todo, seeds, client, chash):
    """Yield outcomes from a Dask cluster; its scheduler reruns the tasks of a dead worker."""
    from distributed import KilledWorker, as_completed

    queue = list(todo)
    limit = 2 * _n_workers(client)
    futures = {}

    # cfg goes with every task (a few kB): a scattered copy dies with the worker that holds it.
    def submit(k):
        fut = client.submit(run_scenario, cfg, k, seeds[k], pure=False,
                            key=f"mescosim-{chash}-{k}-{time.time_ns()}")
        futures[fut] = k
        return fut

    ac = as_completed([submit(queue.pop(0)) for _ in range(min(limit, len(queue)))])
    try:
        for fut in ac:
            k = futures.pop(fut)
            try:
                yield fut.result()
            except KilledWorker as exc:
                yield Outcome(k, seeds[k], "worker_lost", f"KilledWorker: {exc}", 0.0, "")
            except Exception as exc:  # noqa: BLE001 - run_scenario never raises: the cluster did
                yield Outcome(k, seeds[k], "worker_lost", f"{type(exc).__name__}: {exc}", 0.0,
                              "")
            fut.release()
            if queue:
                ac.add(submit(queue.pop(0)))
    finally:
        for fut in list(futures):
            fut.cancel()


def run_sweep(cfg, out: str | Path, n: int, seed: int, workers: int | None = None,
              scheduler: str | None = None, client=None, retry_failed: bool = False,
              progress: bool = True, max_attempts: int = 3,
              on_result: Callable[[dict], None] | None = None,
              on_pool: Callable | None = None) -> SweepSummary:
    """Run scenarios ``0..n-1`` of ``cfg`` into ``out``; see the module docstring.

    ``workers`` 0 runs in this process (for debugging); ``None`` uses one process per CPU.
    ``scheduler`` (``tcp://host:port`` or ``tls://...``) or an existing ``client`` runs on Dask;
    TLS settings come from Dask's configuration (``distributed.comm.tls.*``).
    ``on_result(record)`` is called after each scenario's result and manifest line are on disk.
    """
    out = Path(out)
    if n < 1:
        raise SweepError(f"--scenarios: must be >= 1, got {n}")
    if not isinstance(cfg, Config):
        cfg.prepare()  # forecast data and open-loop plans, once, before any worker starts
    ident = prepare(cfg, out, seed, n)
    chash = ident["config_hash"]
    seeds = child_seeds(seed, n)
    lines = _manifest_lines(out)
    lines += _recover(out, lines)
    last = {int(r["scenario"]): r for r in lines}
    attempts_before = {}
    for r in lines:
        attempts_before[int(r["scenario"])] = max(attempts_before.get(int(r["scenario"]), 0),
                                                  int(r.get("attempt", 1)))
    todo = [k for k in range(n)
            if k not in last or (retry_failed and last[k]["status"] in FAILED)]
    skipped = n - len(todo)
    failed_before = sum(1 for k in range(n) if k in last and k not in set(todo)
                        and last[k]["status"] in FAILED)

    if scheduler is not None or client is not None:
        backend = "dask"
    elif workers == 0:
        backend = "in-process"
    else:
        backend = "local"
    workers = (os.cpu_count() or 1) if workers is None else int(workers)

    from tqdm import tqdm

    bar = tqdm(total=n, initial=skipped, unit="scen", disable=not progress, file=sys.stderr,
               dynamic_ncols=True, desc=f"sweep {target_name(cfg)}")
    counts: dict[str, int] = {}
    records: list[dict] = []
    task_s = 0.0
    started = time.perf_counter()
    own_client = None
    attempts: dict[int, int] = {}  # this run's tries per scenario (the local pool counts them)
    try:
        if backend == "in-process":
            stream: Iterable = (run_scenario(cfg, k, seeds[k]) for k in todo)
        elif backend == "local":
            stream = _iter_local(cfg, todo, seeds, workers, max_attempts, attempts, on_pool)
        else:
            if client is None:
                from distributed import Client

                own_client = client = Client(scheduler, timeout="30s")
            workers = _n_workers(client)
            stream = _iter_dask(cfg, todo, seeds, client, chash)
        for outcome in stream:
            k = outcome.scenario
            attempt = attempts_before.get(k, 0) + attempts.get(k, 1)
            rec = _record(outcome, chash, attempt)
            if outcome.frame is not None:
                _write_frame(out, outcome, rec)
            _append_manifest(out, rec)
            task_s += outcome.wall_s
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
            records.append({k: rec[k] for k in ("scenario", "status", "wall_s", "attempt")})
            bar.update(1)
            bar.set_postfix(failed=failed_before + sum(counts.get(s, 0) for s in FAILED),
                            refresh=False)
            if on_result:
                on_result(rec)
    finally:
        bar.close()
        if own_client is not None:
            own_client.close()
    ran = sum(counts.values())
    failed = sum(counts.get(s, 0) for s in FAILED)
    return SweepSummary(out, n, skipped, ran, ran - failed, failed, counts,
                        time.perf_counter() - started, task_s, backend, workers, records)
