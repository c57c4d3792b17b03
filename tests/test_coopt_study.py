"""The coopt study end to end on the small network (experiments/coopt_study.py)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agents.road_data import load_coopt
from experiments.coopt_study import StudySettings, cli_run, coopt_data_dir, settings_for
from sim.errors import ScenarioError

FLAT = {1: np.full(24, 0.40), 3: np.full(24, 0.40)}
ROOT = Path(__file__).resolve().parents[1]
TABLES = ("summary", "plan_steps", "soc_trace", "prices", "events", "replans", "sites", "buses",
          "plans")
META_KEYS = {"status", "seed", "versions", "git", "created_utc", "wall_s", "timings_s", "study",
             "coopt", "prices", "tables", "figures"}


def assert_run_directory(out: Path, seed: int) -> None:
    """Every table is a Parquet file (no CSV left), and meta.json has the run-directory keys."""
    for name in TABLES:
        path = out / f"{name}.parquet"
        assert path.read_bytes()[:4] == b"PAR1", name
        assert not (out / f"{name}.csv").exists(), name
    meta = json.loads((out / "meta.json").read_text())
    assert META_KEYS <= set(meta), META_KEYS - set(meta)
    assert meta["status"] == "complete" and meta["seed"] == seed
    assert meta["tables"] == sorted(f"{t}.parquet" for t in TABLES)
    assert {"python", "pandas", "pyarrow", "simpy"} <= set(meta["versions"])
    assert meta["git"] is None or re.fullmatch("[0-9a-f]{40}", meta["git"])
    assert meta["wall_s"] > 0 and set(meta["timings_s"]) == {"prices", "plans", "sims",
                                                              "figures"}
    assert not list(out.glob(".*.tmp"))  # every write finished (atomic: temporary, rename)


def test_packaged_data_is_the_default_and_loads():
    d = coopt_data_dir()
    assert d.is_dir() and d == ROOT / "experiments" / "data" / "coopt"
    assert {p.name for p in d.iterdir()} >= {"README.md", "vehicles.csv",
                                            "traffic_intensity.csv", "small_distance_km.csv",
                                            "large_distance_km.csv"}
    assert StudySettings().data_dir == str(d)
    assert all(settings_for(n)[0].data_dir == str(d) for n in ("coopt-small", "coopt-large"))
    data = load_coopt(d)
    assert len(data.networks["small"].labels) == 7 and len(data.networks["large"].labels) == 16
    assert len(data.vehicles) == 24


def test_packaged_data_dir_from_a_zip_import(tmp_path):
    """Imported from a zip archive, the data are extracted to a real directory."""
    archive = tmp_path / "mescosim.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for pkg in ("sim", "agents", "grids", "policies", "experiments"):
            for f in (ROOT / pkg).rglob("*"):
                if f.is_file() and "__pycache__" not in f.parts:
                    zf.write(f, f.relative_to(ROOT).as_posix())
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import experiments\n"
        "from experiments.coopt_study import coopt_data_dir\n"
        "from agents.road_data import load_coopt\n"
        "d = coopt_data_dir()\n"
        "print(experiments.__file__)\n"
        "print(d.is_dir(), len(load_coopt(d).vehicles), (d / 'README.md').is_file())\n")
    res = subprocess.run([sys.executable, "-c", code, str(archive)], capture_output=True,
                         text=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr
    where, loaded = res.stdout.splitlines()[-2:]
    assert where.startswith(str(archive))  # really imported from the archive
    assert loaded == "True 24 True"


def test_data_dir_relative_to_the_working_directory(tmp_path, monkeypatch):
    """A user's own data directory, given relative to the working directory, is the one read:
    a broken file in it is reported by name."""
    mine = tmp_path / "mydata"
    shutil.copytree(coopt_data_dir(), mine)
    (mine / "vehicles.csv").chmod(0o644)
    (mine / "vehicles.csv").write_text("not,a,vehicles,table\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ScenarioError, match="vehicles.csv") as err:
        cli_run("coopt-small", tmp_path / "out", 0, ["study.data_dir='mydata'"])
    assert "mydata" in str(err.value)
    # the run stopped before any table: its meta.json says so
    assert json.loads((tmp_path / "out" / "meta.json").read_text())["status"] == "partial"
    assert not list((tmp_path / "out").glob("*.parquet"))
    with pytest.raises(ScenarioError, match="study.data_dir: 'nowhere' is not a directory"):
        cli_run("coopt-small", tmp_path / "out2", 0, ["study.data_dir='nowhere'"])


@pytest.mark.slow
@pytest.mark.study
def test_small_study_dp_no_worse_than_baselines(tmp_path):
    code = cli_run("coopt-small", tmp_path, 0,
                   ["study.models=['generalised', 'nmc']", "study.figures=false",
                    "study.milp_trucks=2",
                    # no time limit this case reaches: the result must not depend on machine speed
                    "study.milp_time_limit_s=3600"])
    assert code == 0
    assert_run_directory(tmp_path, 0)
    s = pd.read_parquet(tmp_path / "summary.parquet")
    for m in ("generalised", "nmc"):
        sub = s[s.model == m].set_index("policy")
        assert sub.loc["dp", "total_usd"] <= sub.loc["greedy", "total_usd"] + 1e-6
        assert sub.loc["dp", "total_usd"] <= sub.loc["shortest", "total_usd"] + 1e-6
        for b in ("greedy", "shortest"):  # at the baselines' service level
            assert sub.loc["dp_site", "total_site_usd"] <= sub.loc[b, "total_site_usd"] + 1e-6
        assert (sub.degradation_usd >= 0).all()
        assert (sub.sim_degradation_stepwise_usd > 0).all()
        assert sub.sim_all_ok.all() and (sub.replans == 0).all()  # undisturbed: no re-plans
        # the SimPy run of dp equals its plan on the exact SOC; it is never worse than the
        # DP value on the rounded-down grid by more than the rounding gains it
        assert sub.loc["dp", "sim_total_usd"] <= sub.loc["greedy", "sim_total_usd"] + 1e-6
        # the fleet MILP: its dual bound never exceeds the sequential DP on the same grid, and
        # a proven optimum is no worse than it; its plans run in the engine without failure
        m_row = sub.loc["milp"]
        assert m_row.milp_status in ("optimal", "feasible_gap", "time_limit")
        assert m_row.milp_bound_usd <= m_row.milp_dp_same_grid_usd + 1e-6
        if m_row.milp_status == "optimal":
            assert m_row.milp_objective_usd <= m_row.milp_dp_same_grid_usd + 1e-6
        assert m_row.sim_failures == 0 and m_row.sim_sites_served == m_row.sites_served
    assert (tmp_path / "report.md").is_file()
    report = (tmp_path / "report.md").read_text()
    assert "source cost-optimised greedy: 710 km" in report
    # the congested-feeder default: bus 10 is dearer than bus 6 in some hours
    prices = pd.read_parquet(tmp_path / "prices.parquet").set_index("hour")
    assert list(prices.index) == list(range(24))
    assert (prices["bus10"] - prices["bus6"]).max() > 0.05
    assert "prices differ across buses: bus 10 dearer in hours" in report
    # the trucks' charging in the CIGRE MV power flow: one row per step, node, model and policy
    sites = pd.read_parquet(tmp_path / "sites.parquet")
    buses = pd.read_parquet(tmp_path / "buses.parquet")
    assert list(sites.columns) == ["model", "policy", "time_min", "node", "bus", "p_mw", "vm_pu",
                                   "converged", "status"]
    assert list(buses.columns) == ["model", "policy", "time_min", "bus", "vm_pu"]
    assert set(zip(sites.model, sites.policy)) == set(zip(s.model, s.policy))
    assert sites.converged.all() and sites.vm_pu.between(0.9, 1.1).all()
    assert set(sites.bus) == {6, 10} and (sites.p_mw > 0).any()
    assert len(buses) == 15 * len(sites) // 2
    assert "## The charging in the CIGRE MV power flow" in report


def test_bad_settings_name_the_field():
    with pytest.raises(ScenarioError, match="coopt-medium: not a built-in experiment"):
        settings_for("coopt-medium")
    with pytest.raises(ScenarioError, match="scenario.kind: a Co-OPT study has kind"):
        settings_for("three-dn")
    with pytest.raises(ScenarioError, match="coopt.bogus"):
        settings_for("coopt-small", ["coopt.bogus=1"])
    with pytest.raises(ScenarioError, match="prices.method"):
        settings_for("coopt-small", ["prices.method='lp'"])
    with pytest.raises(ScenarioError, match="study.models"):
        settings_for("coopt-small", ["study.models=['xyz']"])


@pytest.mark.slow
@pytest.mark.study
def test_large_study_dp_no_worse_than_baselines(tmp_path):
    code = cli_run("coopt-large", tmp_path, 0, ["study.models=['generalised']",
                                                 "study.figures=false"])
    assert code == 0
    assert_run_directory(tmp_path, 0)
    sub = pd.read_parquet(tmp_path / "summary.parquet").set_index("policy")
    for b in ("greedy", "shortest"):
        assert sub.loc["dp", "total_usd"] <= sub.loc[b, "total_usd"] + 1e-6
        assert sub.loc["dp_site", "total_site_usd"] <= sub.loc[b, "total_site_usd"] + 1e-6
    assert (sub.sites_served == 10).all()
    assert "milp" not in sub.index  # the fleet MILP runs on the small case only
