"""Sweep throughput and memory: 1 and 2 local workers, and a 2-worker Dask LocalCluster.

    python benchmarks/bench_sweep.py throughput --scenarios 6      # 24 h three-DN scenario
    python benchmarks/bench_sweep.py memory --sizes 100,1000        # client / worker peak RSS

``throughput`` runs the same scenarios (same seeds) with each backend into fresh directories and
prints scenarios per minute, the ratio against 1 local worker measured in the same run, and the
per-task overhead: ``(wall x workers / scenarios - mean task time) / mean task time``, where the
task time is the worker's own wall time for ``run_scenario``. It therefore counts pool or cluster
start-up and the idle tail as overhead. ``memory`` samples the resident memory of the client
process and of every worker process (psutil, every 0.2 s) during 2-worker local sweeps of
different sizes; flat peaks mean that results stream to disk. It also notes the client's RSS
after each finished scenario and prints it at 10 % and at 100 % of the sweep: growth within one
sweep shows up there even when the peak is set by start-up.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experiments.config import load  # noqa: E402
from experiments.sweep import run_sweep  # noqa: E402


class PeakRSS:
    """Peak RSS (MB) of this process and of each of its descendants, sampled in a thread."""

    def __init__(self, period_s: float = 0.2):
        self.period_s = period_s
        self.client_mb = 0.0
        self.worker_mb = 0.0
        self._stop = threading.Event()
        self._me = psutil.Process()

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self.client_mb = max(self.client_mb, self._me.memory_info().rss / 2**20)
                for child in self._me.children(recursive=True):
                    try:
                        self.worker_mb = max(self.worker_mb, child.memory_info().rss / 2**20)
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
            self._stop.wait(self.period_s)

    def __enter__(self):
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _one(cfg, n, seed, label, **kw):
    out = Path(tempfile.mkdtemp(prefix=f"bench-sweep-{label}-"))
    me = psutil.Process()
    after: list[float] = []  # client RSS (MB) after each finished scenario

    def note(_record):
        after.append(me.memory_info().rss / 2**20)

    try:
        with PeakRSS() as mem:
            s = run_sweep(cfg, out, n, seed, progress=False, on_result=note, **kw)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    mean_task = s.task_s / max(1, s.ran)
    overhead = (s.wall_s * s.workers / max(1, s.ran) - mean_task) / mean_task
    return {"label": label, "ran": s.ran, "ok": s.ok, "wall_s": s.wall_s,
            "per_min": s.scenarios_per_min, "workers": s.workers, "mean_task_s": mean_task,
            "overhead": overhead, "client_mb": mem.client_mb, "worker_mb": mem.worker_mb,
            "client_10pct_mb": after[max(0, len(after) // 10 - 1)] if after else float("nan"),
            "client_end_mb": after[-1] if after else float("nan")}


def throughput(args) -> None:
    from distributed import LocalCluster

    cfg = load(ROOT / "experiments/scenarios/three-dn.toml", args.set)
    print(f"three-dn, {cfg.scenario.horizon_min // 60} h in {cfg.scenario.step_min}-min steps, "
          f"policies {', '.join(n for n, _ in cfg.policy_runs())}; {args.scenarios} scenarios "
          f"per backend; load average {os.getloadavg()[0]:.1f} at start; {os.cpu_count()} CPUs")
    rows = [_one(cfg, args.scenarios, 7, "local-1", workers=1),
            _one(cfg, args.scenarios, 7, "local-2", workers=2)]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=40) as cluster:
        rows.append(_one(cfg, args.scenarios, 7, "dask-2", scheduler=cluster.scheduler_address))
    base = rows[0]["per_min"]
    print(f"{'backend':<8} {'ok':>3} {'wall s':>7} {'scen/min':>8} {'x local-1':>9} "
          f"{'task s':>7} {'overhead':>8}")
    for r in rows:
        print(f"{r['label']:<8} {r['ok']:>3} {r['wall_s']:>7.1f} {r['per_min']:>8.2f} "
              f"{r['per_min'] / base:>9.2f} {r['mean_task_s']:>7.2f} {100 * r['overhead']:>7.1f}%")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


def memory(args) -> None:
    cfg = load(ROOT / "experiments/scenarios/three-dn.toml", args.set)
    print(f"three-dn with {' '.join(args.set) or 'no overrides'}; 2 local workers; "
          f"load average {os.getloadavg()[0]:.1f}")
    print("peak RSS of the client and of the largest worker; client RSS after 10 % and 100 % "
          "of the scenarios")
    print(f"{'scenarios':>9} {'ok':>5} {'wall s':>8} {'client MB':>9} {'worker MB':>9} "
          f"{'client@10%':>10} {'client@end':>10}")
    for n in [int(x) for x in args.sizes.split(",")]:
        r = _one(cfg, n, 7, f"mem{n}", workers=2)
        print(f"{n:>9} {r['ok']:>5} {r['wall_s']:>8.1f} {r['client_mb']:>9.0f} "
              f"{r['worker_mb']:>9.0f} {r['client_10pct_mb']:>10.0f} {r['client_end_mb']:>10.0f}",
              flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("throughput")
    p.add_argument("--scenarios", type=int, default=6)
    p.add_argument("--set", action="append", default=[])
    p.set_defaults(func=throughput)
    p = sub.add_parser("memory")
    p.add_argument("--sizes", default="100,1000")
    p.add_argument("--set", action="append", default=[])
    p.set_defaults(func=memory)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
