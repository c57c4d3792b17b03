"""Bad inputs, flags and faults, one row each: the exit code and the exact message fragments.

Every row runs ``experiments.cli.main([...])`` in this process (stderr through ``capsys``); a
scenario row runs both ``check`` and ``run``, so that ``check`` refuses everything ``run``
refuses, and ``run`` writes nothing. The Ctrl-C row runs a real subprocess.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import tomli_w

from experiments import cli
from experiments.config import SCENARIO_DIR

ROOT = Path(__file__).resolve().parents[1]


def scenario(tmp: Path, base: str, edit: Callable[[dict], None], name: str = "s.toml") -> str:
    """A copy of built-in scenario ``base`` with ``edit`` applied, written into ``tmp``."""
    raw = tomllib.loads((SCENARIO_DIR / f"{base}.toml").read_text(encoding="utf-8"))
    edit(raw)
    path = tmp / name
    path.write_text(tomli_w.dumps(raw), encoding="utf-8")
    return str(path)


def set_at(keys: tuple, value) -> Callable[[dict], None]:
    def edit(raw: dict) -> None:
        node = raw
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return edit


def raw_file(tmp: Path, data: bytes) -> str:
    path = tmp / "raw.toml"
    path.write_bytes(data)
    return str(path)


def csv_link(tmp: Path) -> str:
    """A scenario whose CSV profile is a link to a file that is not a profile (a stand-in for a
    system file), holding a line that must never appear in a message."""
    other = tmp / "system"
    other.mkdir()
    (other / "passwd").write_text("root:x:0:0:SECRET-LINE:/root:/bin/sh\n", encoding="utf-8")
    (tmp / "profile.csv").symlink_to(other / "passwd")
    return scenario(tmp, "tiny", set_at(("grids", "a", "load_shape"),
                                        {"csv": "profile.csv", "column": "load"}))


@dataclass(frozen=True)
class Case:
    id: str
    args: Callable[[Path], list[str]]  # the arguments after the command, given a temp folder
    fragments: tuple[str, ...]
    code: int = 2


TINY = SCENARIO_DIR / "tiny.toml"
INF = math.inf

#: Scenario problems: `check` and `run` both exit 2 with these fragments, nothing is written.
SCENARIO_CASES = [
    Case("inf-p-max", lambda t: [scenario(t, "tiny", set_at(("fleet", 0, "p_max_mw"), INF))],
         ("fleet[0].p_max_mw: must be finite, got inf",)),
    Case("inf-capacity", lambda t: [scenario(t, "tiny",
                                             set_at(("fleet", 0, "capacity_mwh"), INF))],
         ("fleet[0].capacity_mwh: must be finite, got inf",)),
    Case("inf-dist", lambda t: [scenario(t, "tiny",
                                         set_at(("road", "edges", 0, "dist_km"), INF))],
         ("road.edges[0].dist_km: must be finite, got inf",)),
    Case("nan-peak-load", lambda t: [scenario(t, "tiny", set_at(("grids", "a", "peak_load_mw"),
                                                                math.nan))],
         ("grids.a.peak_load_mw: must be finite, got nan",)),
    Case("inf-degradation-param", lambda t: [scenario(t, "tiny", set_at(
        ("fleet", 0, "degradation"), {"model": "lfp", "temp_c": INF}))],
         ("has 1 problem", "fleet[0].degradation.temp_c: must be within [-40, 80] degC, got inf")),
    Case("inf-compare-param", lambda t: ["tiny", "--set", 'compare.policies=["greedy"]',
                                         "--set", "compare.params.greedy.min_gain=inf"],
         ("has 1 problem", "compare.policies[0].params.min_gain: must be finite, got inf")),
    Case("nan-in-profile", lambda t: [scenario(t, "tiny", set_at(
        ("grids", "b", "load_shape"), [0.5] * 12 + [math.nan] + [0.5] * 11))],
         ("has 1 problem", "grids.b.load_shape[12]: must be finite, got nan")),
    Case("ten-year-horizon", lambda t: ["tiny", "--set", "scenario.horizon_min=5256000"],
         ("scenario.horizon_min: 5256000 min (3650 days) is longer than the limit of 527040 "
          "min (366 days)",)),
    Case("stationary-on-tiny", lambda t: ["tiny", "--set", 'compare.policies=["stationary"]'],
         ("compare.policies[0].params.site: unknown site 'dn1'; sites are a, b",)),
    Case("window-min-0", lambda t: ["tiny", "--set", 'compare.policies=["greedy"]', "--set",
                                    "compare.params.greedy.window_min=0"],
         ("compare.policies[0].params.window_min: must be a whole number of minutes >= 1, got 0",)),
    Case("low-quantile-7", lambda t: ["tiny", "--set", 'compare.policies=["greedy"]', "--set",
                                      "compare.params.greedy.low_quantile=7"],
         ("compare.policies[0].params.low_quantile: must be a quantile in [0, 1], got 7",)),
    Case("kappa-sweep-negative", lambda t: ["sfi-quick", "--set", "study.kappa_sweep=[-1.0]"],
         ("study.kappa_sweep[0]: must be > 0 (a deficit requirement, like study.kappa), "
          "got -1.0",)),
    Case("n-reduced-5000", lambda t: ["sfi-quick", "--set", "study.n_reduced=5000"],
         ("study.n_reduced: 5000 reduced scenarios from n_scenarios=",
          "must be <= n_scenarios")),
    Case("study-inf", lambda t: ["sfi-quick", "--set", "study.time_limit_s=inf"],
         ("study.time_limit_s: must be finite, got inf",)),
    Case("coopt-small-three", lambda t: ["coopt-small", "--set", 'study.energy_noise="abc"',
                                         "--set", "coopt.step_min=7.5",
                                         "--set", "coopt.n_trucks=1.5"],
         ("has 3 problems", "study.energy_noise: expected a number, got str 'abc'",
          "coopt.step_min: expected an integer, got float 7.5",
          "coopt.n_trucks: expected an integer, got float 1.5")),
    Case("coopt-large-three", lambda t: ["coopt-large", "--set", 'study.network="huge"',
                                         "--set", "coopt.step_min=7",
                                         "--set", "coopt.n_trucks=0"],
         ("has 3 problems", "coopt.step_min: must divide 60, got 7",
          "coopt.n_trucks: must be >= 1", "study.network: must be 'small' or 'large'")),
    Case("coopt-inf", lambda t: ["coopt-small", "--set", "coopt.temp_c=inf"],
         ("has 1 problem", "coopt.temp_c: must be finite, got inf")),
    Case("coopt-noise-negative", lambda t: ["coopt-small", "--set", "study.energy_noise=-0.5"],
         ("study.energy_noise: must be >= 0.0 and <= 1.0, got -0.5",)),
    Case("tsn-line-rating-0", lambda t: ["tsn-ieee30", "--set",
                                         'case.overrides.line_rating_overrides_mw='
                                         '{"line 12-13"=0.0}'],
         ("case.overrides.line_rating_overrides_mw.line 12-13: a line rating must be > 0 MW, "
          "got 0.0",)),
    Case("tsn-sweep-rating-0", lambda t: ["tsn-ieee30", "--set", "sweeps.line_ratings_mw=[0.0]"],
         ("sweeps.line_ratings_mw", "line ratings must be > 0 MW, got [0.0]")),
    Case("tsn-inf", lambda t: ["tsn-ieee30", "--set", "solver.time_limit_s=inf"],
         ("solver.time_limit_s: must be finite, got inf",)),
    Case("tsn-name-escapes", lambda t: ["tsn-ieee30", "--set",
                                        'scenario.name="../../../ESCAPED"'],
         ("scenario.name: '../../../ESCAPED' is used in file names",)),
    Case("tsn-name-absolute", lambda t: ["tsn-ieee30", "--set",
                                         'scenario.name="/abs/ESCAPED"'],
         ("scenario.name: '/abs/ESCAPED' is used in file names",)),
    Case("set-key-not-in-file", lambda t: ["tiny", "--set", "grids.a.pf.tolerance_mva=0"],
         ("has 1 problem",
          "grids.a.pf: unknown key (from --set grids.a.pf.tolerance_mva=0)")),
    Case("set-value-out-of-range", lambda t: ["tiny", "--set", "power_flow.tolerance_mva=0"],
         ("power_flow.tolerance_mva: must be > 0, got 0 (from --set "
          "power_flow.tolerance_mva=0)",)),
    Case("toml-bom", lambda t: [raw_file(t, b"\xef\xbb\xbf" + TINY.read_bytes())],
         ("raw.toml: starts with a UTF-8 byte-order mark (BOM)",)),
    Case("toml-not-utf8", lambda t: [raw_file(t, TINY.read_bytes().replace(b"One truck",
                                                                          b"\xe9 truck"))],
         ("raw.toml: not UTF-8 text (byte 0xe9 on line 6)",)),
    Case("toml-deep", lambda t: [raw_file(t, b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n")],
         ("raw.toml: arrays or tables nested too deeply",)),
    Case("csv-link-to-system-file", lambda t: [csv_link(t)],
         ("grids.a.load_shape.csv: profile.csv is a link to a file that is not .csv",)),
]


def _main(argv: list[str], capsys) -> tuple[int, str]:
    code = cli.main(argv)
    err = capsys.readouterr().err
    return code, err


def _assert_clean(code: int, err: str, case: Case) -> None:
    assert code == case.code, err
    for frag in case.fragments:
        assert frag in err, (frag, err)
    assert "Traceback" not in err
    assert "SECRET-LINE" not in err  # never a file's contents that is not a scenario


@pytest.mark.parametrize("case", SCENARIO_CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("command", ["check", "run"])
def test_scenario_problem(case: Case, command: str, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    extra = ["--out", str(tmp_path / "out"), "--no-figures"] if command == "run" else []
    code, err = _main([command, *case.args(tmp_path), *extra], capsys)
    _assert_clean(code, err, case)
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()


# --------------------------------------------------------------------------- flags and --out
def _earlier_run(t: Path) -> Path:
    d = t / "old"
    d.mkdir()
    (d / "meta.json").write_text("{}", encoding="utf-8")
    (d / "figures").mkdir()
    return d


def _project(t: Path) -> list[str]:
    """``PROJ/config.toml --out PROJ``: the run would overwrite its own scenario."""
    proj = t / "proj"
    proj.mkdir()
    (proj / "config.toml").write_bytes(TINY.read_bytes())
    return [str(proj / "config.toml"), "--out", str(proj)]


def _not_a_run(t: Path) -> str:
    d = t / "notes"
    d.mkdir()
    (d / "keep.txt").write_text("mine", encoding="utf-8")
    return str(d)


def _a_file(t: Path) -> str:
    f = t / "f.txt"
    f.write_text("x", encoding="utf-8")
    return str(f)


FLAG_CASES = [
    Case("run-out-not-empty", lambda t: ["run", "tiny", "--out", str(_earlier_run(t))],
         ("--out:", "already holds files; a run directory is never written over",
          "give --overwrite to clear it")),
    Case("run-out-holds-scenario", lambda t: ["run", *_project(t)],
         ("holds the scenario file", "write the run elsewhere")),
    Case("run-out-holds-scenario-overwrite", lambda t: ["run", *_project(t), "--overwrite"],
         ("holds the scenario file",)),
    Case("run-out-is-file", lambda t: ["run", "tiny", "--out", _a_file(t)],
         ("--out:", "is a file, not a directory")),
    Case("run-overwrite-not-a-run-dir", lambda t: ["run", "tiny", "--out", _not_a_run(t),
                                                   "--overwrite"],
         ("is not an earlier run directory (no meta.json); --overwrite clears only run "
          "directories",)),
    Case("run-seed-negative", lambda t: ["run", "tiny", "--seed", "-1",
                                         "--out", str(t / "o")],
         ("--seed: must be >= 0",)),
    Case("tsn-sim-unknown-train", lambda t: ["tsn-sim", "--hours", "2", "--delay",
                                             "nosuch:1:30"],
         ("--delay: no train 'nosuch' in case ieee30 (trains: K1, K2)",)),
    Case("tsn-sim-delay-format", lambda t: ["tsn-sim", "--delay", "K1:x:30"],
         ("--delay: expected TRAIN:TRIP:MIN with whole numbers, got 'K1:x:30'",)),
    Case("tsn-sim-replan-negative", lambda t: ["tsn-sim", "--replan-every-h", "-1"],
         ("--replan-every-h: must be >= 0 (0: plan once), got -1",)),
    Case("tsn-sim-time-limit-negative", lambda t: ["tsn-sim", "--time-limit-s", "-1"],
         ("--time-limit-s: must be a finite number of seconds > 0, got -1",)),
    Case("tsn-sim-time-limit-inf", lambda t: ["tsn-sim", "--time-limit-s", "inf"],
         ("--time-limit-s: must be a finite number of seconds > 0, got inf",)),
    Case("tsn-sim-mip-gap-5", lambda t: ["tsn-sim", "--mip-gap", "5"],
         ("--mip-gap: must be a relative gap between 0 and 1 (exclusive), got 5",)),
    Case("tsn-sim-hours-0", lambda t: ["tsn-sim", "--hours", "0"],
         ("--hours: must be between 1 and 168 (one week: the unit-commitment MILP grows "
          "with every hour), got 0",)),
    Case("tsn-sim-hours-huge", lambda t: ["tsn-sim", "--hours", "1000000000"],
         ("--hours: must be between 1 and 168", "got 1000000000")),
    Case("tsn-sim-out-file", lambda t: ["tsn-sim", "--out", _a_file(t)],
         ("--out:", "is a file, not a directory")),
    Case("tsn-sim-out-not-empty", lambda t: ["tsn-sim", "--out", str(_earlier_run(t))],
         ("already holds files", "give --overwrite to clear it")),
    Case("tsn-sim-all-at-once", lambda t: ["tsn-sim", "--mip-gap", "5", "--replan-every-h",
                                           "-1", "--out", _a_file(t)],
         ("has 3 problems", "--mip-gap", "--replan-every-h", "--out")),
]


@pytest.mark.parametrize("case", FLAG_CASES, ids=lambda c: c.id)
def test_flag_problem(case: Case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = case.args(tmp_path)
    made = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    t0 = time.perf_counter()
    code, err = _main(argv, capsys)
    _assert_clean(code, err, case)
    # refused before anything ran: nothing new, nothing removed, and quickly
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == made
    assert time.perf_counter() - t0 < 60


# --------------------------------------------------------------------------- what does run
def test_overwrite_clears_an_earlier_run_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "r"
    assert cli.main(["run", "tiny", "--out", str(out), "--no-figures"]) == 0
    (out / "figures").mkdir(exist_ok=True)
    (out / "figures" / "old.png").write_bytes(b"not a figure of this run")
    assert cli.main(["run", "tiny", "--out", str(out), "--no-figures"]) == 2
    assert (out / "figures" / "old.png").exists()  # refused: untouched
    assert cli.main(["run", "tiny", "--out", str(out), "--no-figures", "--overwrite"]) == 0
    assert not (out / "figures" / "old.png").exists()
    assert json.loads((out / "meta.json").read_text())["status"] == "complete"
    capsys.readouterr()


def test_long_horizon_warns_with_an_estimate(capsys):
    # 366 days at 60-min steps: accepted, but check says how long it would take
    assert cli.main(["check", "three-dn", "--set", "scenario.horizon_min=527040"]) == 0
    err = capsys.readouterr().err
    assert "warning: 8,784 steps x 3 grids x 3 policies: this run will take about" in err


def test_nonconverged_power_flow_has_nan_losses_and_is_excluded_from_sfi(tmp_path, capsys,
                                                                         monkeypatch):
    """One Newton iteration to a 1e-12 MVA tolerance never converges: every site-step is a
    failed power flow; its losses are NaN (not 0.0) and it is left out of the SFI."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "r"
    assert cli.main(["run", "tiny", "--out", str(out), "--no-figures", "--set",
                     "power_flow.max_iteration=1", "--set",
                     "power_flow.tolerance_mva=1e-12"]) == 0
    capsys.readouterr()
    sites = pd.read_parquet(out / "sites.parquet")
    assert not sites["converged"].any()
    assert sites["losses_mw"].isna().all()
    sfi = pd.read_parquet(out / "sfi.parquet")
    assert sfi["excluded"].all() and sfi["sfi"].isna().all()
    m = pd.read_parquet(out / "metrics.parquet")
    sysm = m[(m.entity == "system") & (m.policy == "idle")].set_index("metric")["value"]
    assert math.isnan(sysm["losses_mwh"]) and math.isnan(sysm["sfi_total"])
    assert sysm["sfi_excluded_site_steps"] == sysm["nonconverged_steps"] == 16  # 8 h x 2 sites


# --------------------------------------------------------------------------- Ctrl-C
def test_sigint_during_simulation_leaves_an_interrupted_run_directory(tmp_path):
    out = tmp_path / "r"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiments.cli", "run", "three-dn", "--out", str(out),
         "--no-figures", "--set", "scenario.horizon_min=43200", "--set", "scenario.step_min=5"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        meta = out / "meta.json"
        deadline = time.monotonic() + 120
        while not meta.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert meta.exists(), proc.stderr.read() if proc.poll() is not None else "no meta"
        time.sleep(2.0)  # inside the simulation (30 days of 5-min steps, three policies)
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    data = json.loads(meta.read_text())
    assert data["status"] == "interrupted" and data["stage"] == "simulation"
    assert (out / "config.toml").exists()
    assert not (out / "metrics.parquet").exists()
