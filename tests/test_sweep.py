"""Sweeps: seeds, identical results on Dask and locally, dead workers, resume, real failures.

Every sweep here runs the ``tiny`` scenario for two 60-min steps, so a scenario takes seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from experiments.config import load
from experiments.sweep import (
    SweepError,
    child_seeds,
    read_manifest,
    read_results,
    run_sweep,
)

TINY = "experiments/scenarios/tiny.toml"
SETS = ["scenario.horizon_min=120", 'policy.name="greedy"', "policy.params={}",
        'compare.policies=["idle"]', "uncertainty.load_sigma=0.1", "uncertainty.pv_sigma=0.2"]
N = 3
SEED = 7
KEY = ["scenario", "policy", "entity", "metric", "time_min"]


def _cfg(extra=()):
    return load(TINY, SETS + list(extra))


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(KEY).reset_index(drop=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The in-process sweep every other backend must reproduce."""
    out = tmp_path_factory.mktemp("ref")
    summary = run_sweep(_cfg(), out, N, SEED, workers=0, progress=False)
    assert summary.status_counts == {"ok": N}
    return _sorted(read_results(out)), read_manifest(out)


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=40) as c:
        yield c


def test_child_seeds_come_from_seedsequence_spawn():
    seeds = child_seeds(SEED, 5)
    literal = [int(c.generate_state(1, np.uint64)[0])
               for c in np.random.SeedSequence(SEED).spawn(5)]
    assert seeds == literal
    assert child_seeds(SEED, 50)[:5] == seeds  # scenario k's seed does not depend on n
    assert len(set(child_seeds(SEED, 1000))) == 1000


def test_results_are_one_tidy_table_with_the_spawned_seeds(reference):
    res, man = reference
    assert sorted(res.scenario.unique()) == list(range(N))
    assert man.seed.tolist() == child_seeds(SEED, N)
    assert set(man.status) == {"ok"}
    # common random numbers: both policies of a scenario saw the same realisation, and
    # different scenarios saw different ones
    tot = res[(res.metric == "losses_mwh") & (res.entity == "system")]
    assert tot.groupby("scenario").value.nunique().max() <= 2
    assert tot[tot.policy == "idle"].value.nunique() == N
    hourly = res[(res.metric == "sfi_weighted") & res.time_min.notna()]
    assert len(hourly) == N * 2 * 2  # scenarios x policies x steps


def test_dask_localcluster_gives_identical_results(reference, cluster, tmp_path):
    ref, ref_man = reference
    # the address form, as `mescosim sweep --scheduler tcp://HOST:PORT` uses it
    summary = run_sweep(_cfg(), tmp_path, N, SEED, scheduler=cluster.scheduler_address,
                        progress=False)
    assert summary.backend == "dask" and summary.workers == 2
    assert summary.status_counts == {"ok": N}
    pd.testing.assert_frame_equal(_sorted(read_results(tmp_path)), ref)
    man = read_manifest(tmp_path)
    assert man.seed.tolist() == ref_man.seed.tolist()
    assert man.worker.nunique() == 2  # both workers ran scenarios


def test_local_pool_gives_identical_results_and_survives_a_killed_worker(reference, tmp_path):
    ref, _ = reference
    pools = []
    killed = []

    def kill_one(record):
        if not killed:
            pool = pools[-1]
            victim = next(p for p in pool._processes.values() if p.is_alive())
            os.kill(victim.pid, signal.SIGKILL)
            killed.append(victim.pid)

    summary = run_sweep(_cfg(), tmp_path, N, SEED, workers=2, progress=False,
                        on_result=kill_one, on_pool=pools.append)
    assert killed and len(pools) == 2  # the pool broke and was replaced
    assert summary.status_counts == {"ok": N}
    attempts = read_manifest(tmp_path, all_attempts=True)
    assert len(attempts) == N and attempts.scenario.is_unique
    assert attempts.attempt.max() == 2  # the scenarios in flight ran again
    pd.testing.assert_frame_equal(_sorted(read_results(tmp_path)), ref)


def test_dask_worker_killed_mid_sweep_is_retried(reference, cluster, tmp_path):
    from distributed import Client

    ref, _ = reference
    killed = []
    with Client(cluster) as client:
        pids = client.run(os.getpid)

        def kill_one(record):
            if not killed:
                pid = next(p for w, p in pids.items() if w not in record["worker"]
                           and not str(record["worker"]).endswith(f":{p}"))
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

        summary = run_sweep(_cfg(), tmp_path, N, SEED, client=client, progress=False,
                            on_result=kill_one)
    assert killed
    assert summary.status_counts == {"ok": N}
    pd.testing.assert_frame_equal(_sorted(read_results(tmp_path)), ref)


def test_interrupted_sweep_resumes_with_one_result_per_scenario(reference, tmp_path):
    ref, _ = reference
    seen = []

    def interrupt(record):
        seen.append(record["scenario"])
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(_cfg(), tmp_path, N, SEED, workers=0, progress=False, on_result=interrupt)
    assert len(list((tmp_path / "scenarios").glob("s*.parquet"))) == 2
    summary = run_sweep(_cfg(), tmp_path, N, SEED, workers=0, progress=False)
    assert summary.skipped == 2 and summary.ran == N - 2
    attempts = read_manifest(tmp_path, all_attempts=True)
    assert sorted(attempts.scenario) == list(range(N))  # nothing recomputed or duplicated
    assert len(list((tmp_path / "scenarios").glob("*"))) == N  # no temporary files left
    pd.testing.assert_frame_equal(_sorted(read_results(tmp_path)), ref)
    again = run_sweep(_cfg(), tmp_path, N, SEED, workers=0, progress=False)
    assert again.ran == 0 and again.skipped == N


def test_result_file_without_manifest_line_is_recovered(reference, tmp_path):
    run_sweep(_cfg(), tmp_path, 2, SEED, workers=0, progress=False)
    path = tmp_path / "manifest.jsonl"
    lines = path.read_text().splitlines()
    path.write_text(lines[0] + "\n" + lines[1][:20])  # crash while appending the second line
    summary = run_sweep(_cfg(), tmp_path, 2, SEED, workers=0, progress=False)
    assert summary.ran == 0
    man = read_manifest(tmp_path)
    assert man.scenario.tolist() == [0, 1] and set(man.status) == {"ok"}


def test_real_failures_are_rows_not_retried_forever_and_stop_nothing(tmp_path):
    # 150 MW on an MV ring: some load realisations are beyond the feeder's voltage collapse
    cfg = load(TINY, ["scenario.horizon_min=120", 'policy.name="idle"', "policy.params={}",
                      "compare.policies=[]", "uncertainty.load_sigma=0.3",
                      "grids.b.peak_load_mw=150.0"])
    first = run_sweep(cfg, tmp_path, N, SEED, workers=0, progress=False)
    man = read_manifest(tmp_path)
    bad = man[man.status == "nonconverged"]
    assert 0 < len(bad) < N and first.failed == len(bad) and first.ok == N - len(bad)
    assert bad.error.str.contains("did not converge").all()
    res = read_results(tmp_path)
    nc = res[(res.metric == "nonconverged_steps") & (res.entity == "system")]
    assert set(nc[nc.value > 0].scenario) == set(bad.scenario)  # the data are kept
    assert run_sweep(cfg, tmp_path, N, SEED, workers=0, progress=False).ran == 0
    retry = run_sweep(cfg, tmp_path, N, SEED, workers=0, progress=False, retry_failed=True)
    assert retry.ran == len(bad) and retry.status_counts == {"nonconverged": len(bad)}
    attempts = read_manifest(tmp_path, all_attempts=True)
    assert attempts.groupby("scenario").size().max() == 2
    assert read_manifest(tmp_path).attempt.max() == 2


def test_a_directory_holds_one_scenario_seed_and_config(tmp_path):
    run_sweep(_cfg(), tmp_path, 1, SEED, workers=0, progress=False)
    with pytest.raises(SweepError, match="seed"):
        run_sweep(_cfg(), tmp_path, 1, SEED + 1, workers=0, progress=False)
    with pytest.raises(SweepError, match="config_hash"):
        run_sweep(_cfg(["uncertainty.load_sigma=0.2"]), tmp_path, 1, SEED, workers=0,
                  progress=False)
    assert json.loads((tmp_path / "sweep.json").read_text())["seed"] == SEED


@pytest.mark.slow
def test_cli_sweep_on_a_dask_scheduler_and_worker_started_as_in_the_readme(reference, tmp_path):
    """`dask scheduler` + `dask worker` subprocesses on localhost, `mescosim sweep --scheduler`."""
    from experiments.cli import main

    ref, _ = reference
    dask = os.path.join(os.path.dirname(sys.executable), "dask")
    sched_file = tmp_path / "scheduler.json"
    logs = open(tmp_path / "dask.log", "w")
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", "--scheduler-file", str(sched_file)],
                              stdout=logs, stderr=logs)]
    try:
        # the scheduler creates its file before it has written the address into it
        deadline = time.time() + 60
        address = None
        while address is None and time.time() < deadline:
            try:
                address = json.loads(sched_file.read_text())["address"]
            except (OSError, ValueError, KeyError):
                time.sleep(0.2)
        assert address, "the dask scheduler wrote no address within 60 s"
        procs.append(subprocess.Popen([dask, "worker", address, "--nworkers", "1",
                                       "--nthreads", "1", "--no-dashboard"],
                                      stdout=logs, stderr=logs))
        out = tmp_path / "sweep"
        # one scenario: it is the reference's scenario 0 (spawned seeds do not depend on n)
        args = ["sweep", TINY, "--scenarios", "1", "--seed", str(SEED), "--out", str(out),
                "--scheduler", address, "--no-progress", "--no-figures"] + [
                    a for s in SETS for a in ("--set", s)]
        assert main(args) == 0
        pd.testing.assert_frame_equal(_sorted(read_results(out)), ref[ref.scenario == 0])
        # the same command again: everything is done, nothing runs
        assert main(args) == 0
        assert len(read_manifest(out, all_attempts=True)) == 1
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=30)
        logs.close()


def test_cli_bench_and_plot(reference, tmp_path, capsys):
    from experiments.cli import main

    out = tmp_path / "bench"
    args = ["bench", TINY, "--policies", "idle,greedy", "--scenarios", "2", "--workers", "0",
            "--out", str(out), "--no-progress", "--no-figures"] + [a for s in SETS
                                                                    for a in ("--set", s)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "paired differences" in text and "sfi_total" in text
    paired = pd.read_parquet(out / "bench_paired.parquet")
    res = read_results(out)
    tot = res[(res.entity == "system") & (res.metric == "sfi_total")].pivot_table(
        index="scenario", columns="policy", values="value")
    row = paired[(paired.metric == "sfi_total")].iloc[0]
    assert (row.a, row.b) == ("idle", "greedy")
    assert row.mean_diff == pytest.approx((tot.greedy - tot.idle).mean(), abs=1e-12)
    assert row.ci95_lo <= row.mean_diff <= row.ci95_hi
    assert main(["plot", str(out)]) == 0
    assert len(list((out / "figures").glob("sweep_*.png"))) == 5  # + time vs objective
    assert main(["sweep", "sfi-quick", "--scenarios", "1", "--out", str(tmp_path / "x")]) == 2
    assert "not a per-realisation simulation" in capsys.readouterr().err
    assert main(["bench", TINY, "--policies", "idle,nosuch", "--out", str(tmp_path / "y")]) == 2
    assert "nosuch" in capsys.readouterr().err


def test_a_bench_where_every_scenario_fails_says_so_and_exits_1(tmp_path, capsys):
    from experiments.cli import main

    out = tmp_path / "b"
    # one Newton-Raphson iteration: no power flow converges, so no scenario is ok
    assert main(["bench", TINY, "--policies", "idle", "--scenarios", "2", "--workers", "0",
                 "--no-progress", "--set", "power_flow.max_iteration=1", "--out", str(out)]) == 1
    assert "no scenario finished ok" in capsys.readouterr().err
    assert main(["plot", str(out)]) == 2
    err = capsys.readouterr().err
    assert "finished ok (manifest.jsonl: nonconverged 2); nothing to plot" in err
