"""Run every benchmark of the project and write ``BENCHMARKS.md``.

    python -m benchmarks --quick               # engine step, power flow, reduction, DP, sweep
    python benchmarks/run_all.py --quick --milp   # + the MILPs (build vs solve, SFI, UC/OCD)
    python benchmarks/run_all.py               # everything, full settings (tens of minutes)

Each benchmark runs in its own process (so peak memory is its own: ``ru_maxrss`` at exit) with
a time limit; its output, wall time, peak RSS and exit status go into ``BENCHMARKS.md`` with
the machine, the package versions and the date. Lines that a benchmark prints starting with
``goal:`` are collected into the summary at the top. Each benchmark prints its own baseline
measured in the same process, so the ratios do not depend on the machine's load as much as the
absolute times do (the machine may be shared: the load average is recorded).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata as md
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"

# Runs a benchmark script as __main__ and reports its peak RSS when it exits.
_RUNNER = (
    "import atexit, resource, runpy, sys\n"
    "atexit.register(lambda: print(f'@@peak_rss_mib '"
    "f'{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}', flush=True))\n"
    "sys.argv = sys.argv[1:]\n"
    "sys.path.insert(0, sys.argv[0].rsplit('/', 1)[0] + '/..')\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)

PACKAGES = ("pandapower", "lightsim2grid", "numpy", "scipy", "pandas", "simpy", "mesa", "pulp",
            "highspy", "networkx")


def jobs(quick: bool, milp: bool,
         mc_scenarios: int | None = None) -> list[tuple[str, list[str], float]]:
    """(script, arguments, time limit in s) of every benchmark to run; ``mc_scenarios`` sets
    the engine benchmark's Monte Carlo size (default 4 quick, 1000 full)."""
    q = ["--quick"] if quick else []
    mc = ["--scenarios", str(mc_scenarios)] if mc_scenarios else []
    out = [("bench_engine.py", q + mc, 1800.0 if quick and not mc_scenarios else 7200.0),
           ("bench_pf.py", q, 900.0 if quick else 2400.0),
           ("bench_reduction.py", ["--reps", "3"] if quick else [], 300.0),
           ("bench_dp.py", q, 300.0 if quick else 1200.0)]
    if milp or not quick:
        out += [("bench_milp.py", q, 900.0 if quick else 5400.0),
                ("bench_sfi.py", q, 900.0 if quick else 3600.0),
                ("bench_tsn.py", q + ["--solver", "highs"], 900.0 if quick else 3600.0),
                ("bench_tsn.py", q + ["--solver", "cbc"], 900.0 if quick else 3600.0)]
    # Sweep throughput with 1 and 2 workers (and a 2-worker Dask cluster); the memory of a
    # 100-scenario sweep in full mode only. bench_sweep.py takes a subcommand, not --quick.
    out.append(("bench_sweep.py", ["throughput", "--scenarios", "6" if quick else "40"],
                1800.0 if quick else 7200.0))
    if not quick:
        out.append(("bench_sweep.py", ["memory", "--sizes", "100"], 3600.0))
    return out


def run_job(script: str, args: list[str], limit_s: float) -> dict:
    cmd = [sys.executable, "-c", _RUNNER, str(BENCH / script), *args]
    t0 = time.perf_counter()
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=limit_s, cwd=ROOT,
                             env={**os.environ, "PYTHONWARNINGS": "ignore"})
        status = "ok" if res.returncode == 0 else f"exit code {res.returncode}"
        out, err = res.stdout, res.stderr
    except subprocess.TimeoutExpired as exc:
        status = f"stopped at its {limit_s:.0f} s limit"
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
    wall = time.perf_counter() - t0
    peak = None
    lines = []
    for line in out.splitlines():
        if line.startswith("@@peak_rss_mib "):
            peak = float(line.split()[1])
        else:
            lines.append(line)
    tail = [ln for ln in err.splitlines() if ln.strip()][-15:] if status != "ok" else []
    return {"script": script, "args": args, "status": status, "wall_s": wall, "peak_mib": peak,
            "out": "\n".join(lines), "err_tail": "\n".join(tail)}


def machine() -> list[str]:
    vers = []
    for p in PACKAGES:
        try:
            vers.append(f"{p} {md.version(p)}")
        except md.PackageNotFoundError:
            vers.append(f"{p} not installed")
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return [f"- date: {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}",
            f"- machine: {cpu}, {os.cpu_count()} CPUs, {platform.system()} "
            f"{platform.release()}; load average at the start {load}",
            f"- python {platform.python_version()}; " + ", ".join(vers)]


SUITE_GOAL_S = 300.0


def suite_goal(log: str | None, note: str) -> str:
    """The test-suite goal line from a pytest output file (its final ``... in N s`` line)."""
    import re

    head = f"test suite (`.venv/bin/pytest`) under {SUITE_GOAL_S:.0f} s on 2 cores"
    if not log:
        return f"{head}: not measured in this run (no --suite-log) -> missed: no measurement"
    try:
        text = Path(log).read_text(errors="replace")
    except OSError as exc:
        return f"{head}: log unreadable ({exc.strerror}) -> missed: no measurement"
    found = re.findall(r"^=*\s*(.*\b(?:passed|failed)\b.*) in ([0-9.]+)s", text, re.M)
    if not found:
        return f"{head}: the log has no final summary line (still running?) -> missed"
    summary, secs = found[-1][0].strip(), float(found[-1][1])
    why = "met" if secs < SUITE_GOAL_S else "missed: measured on a shared machine (see note)"
    return f"{head}: {secs:.0f} s ({summary}; {note or 'no note'}) -> {why}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short settings (a few minutes)")
    ap.add_argument("--milp", action="store_true", help="with --quick: also the MILPs")
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"), help="report path")
    ap.add_argument("--suite-log", default=None,
                    help="output of the README's test command (`.venv/bin/pytest`), run beside "
                         "or before this one (the suite takes minutes; it is not run here): its "
                         "final line's wall time is reported against the goal")
    ap.add_argument("--suite-note", default="", help="how the suite run was made (load etc.)")
    ap.add_argument("--mc-scenarios", type=int, default=None,
                    help="scenarios of the engine benchmark's Monte Carlo run (default 4 with "
                         "--quick, 1000 without)")
    args = ap.parse_args(argv)
    if args.mc_scenarios is not None and args.mc_scenarios < 1:
        ap.error(f"--mc-scenarios: must be >= 1, got {args.mc_scenarios}")
    header = machine()
    cmd = "python -m benchmarks" + (" --quick" if args.quick else "") + (
        " --milp" if args.milp else "") + (
        f" --mc-scenarios {args.mc_scenarios}" if args.mc_scenarios else "") + (
        " --suite-log ..." if args.suite_log else "")
    results = []
    for script, a, limit in jobs(args.quick, args.milp, args.mc_scenarios):
        print(f"running {script} {' '.join(a)} (limit {limit:.0f} s) ...", flush=True)
        r = run_job(script, a, limit)
        print(r["out"], flush=True)
        print(f"-> {r['status']}, {r['wall_s']:.1f} s, peak RSS {r['peak_mib']} MiB\n",
              flush=True)
        results.append(r)
    load_end = ", ".join(f"{x:.1f}" for x in os.getloadavg())

    md_lines = ["# Benchmarks", "",
                f"Written by `{cmd}`; every number below is from that run.", "", *header,
                f"- load average at the end {load_end}", "", "## Goals", ""]
    goals = [ln[len("goal:"):].strip() for r in results for ln in r["out"].splitlines()
             if ln.startswith("goal:")]
    goals.append(suite_goal(args.suite_log, args.suite_note))
    md_lines += [f"- {g}" for g in goals] or ["- (no benchmark reported a goal line)"]
    md_lines += ["", "## Runs", "", "| benchmark | status | wall s | peak RSS MiB |",
                 "|---|---|---|---|"]
    for r in results:
        md_lines.append(f"| `{r['script']} {' '.join(r['args'])}` | {r['status']} | "
                        f"{r['wall_s']:.1f} | {r['peak_mib'] if r['peak_mib'] else '-'} |")
    for r in results:
        md_lines += ["", f"## `{r['script']} {' '.join(r['args'])}`", "", "```", r["out"].rstrip()]
        if r["err_tail"]:
            md_lines += ["--- stderr (last lines) ---", r["err_tail"]]
        md_lines += ["```"]
    Path(args.out).write_text("\n".join(md_lines) + "\n")
    print(f"wrote {args.out}")
    return 0 if all(r["status"] == "ok" for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
