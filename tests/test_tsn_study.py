"""The seed-001 study end to end through the CLI on a short horizon (T = 4 h of case 1)."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from experiments.cli import main

SMOKE = """
[scenario]
kind = "tsn-study"
name = "tsn-smoke"
description = "case 1, 4 hours"
[case]
name = "ieee30"
[case.overrides]
T = 4
line_rating_overrides_mw = { "line 12-13" = 20.0 }
[solver]
time_limit_s = 60
mip_gap = 1e-6
[ocd]
power_time_limit_s = 30
power_gap = 1e-6
runs = [
  { label = "literal", variant = "literal", max_iter = 2 },
  {label="exact",variant="enhanced",mobility="exact",request_candidates=true,max_iter=3},
]
[sweeps]
line = "line 12-13"
line_ratings_mw = [65.0]
transport_costs_per_h = [0.0, 500.0]
"""


# every test here reads one whole train study (the smoke configuration: over 20 s), so the file
# runs in the second pass of .ci/run (pytest -m study), not in plain pytest
pytestmark = pytest.mark.study


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    d = tmp_path_factory.mktemp("tsn")
    cfg = d / "smoke.toml"
    cfg.write_text(SMOKE)
    assert main(["run", str(cfg), "--out", str(d / "out")]) == 0
    return d / "out"


TABLES = ("methods", "plans", "plan_paths", "routes", "dispatch", "ac_check", "ocd",
          "ocd_history", "line_sweep", "transport_sweep")


@pytest.mark.slow
def test_study_writes_tables_figures_and_report(study):
    for name in TABLES:
        assert (study / f"{name}.parquet").read_bytes()[:4] == b"PAR1", name
    assert not list(study.glob("*.csv")) and not list(study.glob(".*.tmp"))
    for png in ("routes", "dispatch", "fig7_line_sweep", "fig10_ocd_convergence",
                "transport_sweep"):
        assert (study / "figures" / f"{png}.png").stat().st_size > 10_000
    meta = json.loads((study / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["seed"] == 0
    assert meta["scenario"] == "tsn-smoke" and meta["config"]["case"]["overrides"]["T"] == 4
    assert {"python", "pandas", "pyarrow", "pulp", "highspy"} <= set(meta["versions"])
    assert meta["git"] is None or re.fullmatch("[0-9a-f]{40}", meta["git"])
    assert meta["wall_s"] > 0 and meta["created_utc"]
    assert meta["tables"] == sorted(f"{t}.parquet" for t in TABLES)
    assert len(meta["figures"]) == 5 and all((study / f).is_file() for f in meta["figures"])
    report = (study / "report.md").read_text()
    assert "## Directions" in report and "14,074.57" in report  # the paper's M1 beside ours


def test_methods_are_solved_and_consistent(study):
    m = pd.read_parquet(study / "methods.parquet").set_index("variant")
    assert set(m.status) == {"optimal"}
    f0 = m.at["none", "operating_cost_usd"]
    # (47): I_econ = (F0 - F_C) / C with C = 90 MW on case 1
    assert m.at["mes", "i_econ_usd_per_mw"] == pytest.approx(
        (f0 - m.at["mes", "operating_cost_usd"]) / 90.0)
    # storage never makes the optimum worse than no storage
    assert (m.total_cost_usd <= f0 + 1e-6).all()
    routes = pd.read_parquet(study / "routes.parquet")
    assert len(routes) == 2 * 4  # two trains, four hours


def test_ocd_bounds_and_exact_variant(study):
    ocd = pd.read_parquet(study / "ocd.parquet").set_index("run")
    central = ocd.central_usd.iloc[0]
    assert (ocd.lb_usd <= central + 1e-3).all()
    assert (ocd.ub_usd >= central - 1e-3).all()
    assert ocd.at["exact", "rel_gap_vs_central"] == pytest.approx(0.0, abs=1e-6)


def test_transport_cost_reduces_travel_and_ac_check_covers_every_hour(study):
    ts = pd.read_parquet(study / "transport_sweep.parquet").sort_values("transport_cost_per_h")
    assert ts.train_hours.iloc[-1] <= ts.train_hours.iloc[0]
    ac = pd.read_parquet(study / "ac_check.parquet")
    assert list(ac.hour) == [1, 2, 3, 4]
    assert ac.dc_converged.all()
    # the DC plan respects every rating in DC (what AC adds is reported separately)
    assert (ac.dc_max_loading_pct <= 100.0 + 1e-4).all()
    # the check ran the plan in the co-simulation: its pandapower DC flows are the plan's PTDF
    # flows, the trains did what the plan says, and nothing failed
    assert (ac.status == "ok").all()
    assert (ac.dc_vs_plan_ptdf_max_diff_mw <= 1e-6).all()
    assert (ac.sim_vs_plan_max_dev_e_mwh <= 1e-6).all() and (ac.trains_off_plan == 0).all()
    assert (ac.sim_failures == 0).all()
