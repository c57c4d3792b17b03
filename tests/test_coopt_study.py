"""The coopt study end to end on the small network (experiments/coopt_study.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments.coopt_study import cli_run, settings_for
from sim.errors import ScenarioError

DATA = Path("/work/shared/data/coopt")
if not DATA.is_dir():  # a checkout next to the shared folder
    DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "coopt"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="Co-OPT data not available")
FLAT = {1: np.full(24, 0.40), 3: np.full(24, 0.40)}


@pytest.mark.slow
def test_small_study_dp_no_worse_than_baselines(tmp_path):
    code = cli_run("coopt-small", tmp_path, 0,
                   [f"study.data_dir='{DATA}'", "study.models=['generalised', 'nmc']",
                    "study.figures=false", "study.milp_trucks=2"])
    assert code == 0
    s = pd.read_csv(tmp_path / "summary.csv")
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
    for f in ("report.md", "plan_steps.csv", "soc_trace.csv", "prices.csv", "meta.json",
              "events.csv", "replans.csv"):
        assert (tmp_path / f).is_file()
    report = (tmp_path / "report.md").read_text()
    assert "source cost-optimised greedy: 710 km" in report
    # the congested-feeder default: bus 10 is dearer than bus 6 in some hours
    prices = pd.read_csv(tmp_path / "prices.csv", index_col="hour")
    assert (prices["bus10"] - prices["bus6"]).max() > 0.05
    assert "prices differ across buses: bus 10 dearer in hours" in report


def test_bad_settings_name_the_field():
    with pytest.raises(ScenarioError, match="unknown co-opt study"):
        settings_for("coopt-medium")
    with pytest.raises(ScenarioError, match="coopt.bogus"):
        settings_for("coopt-small", ["coopt.bogus=1"])
    with pytest.raises(ScenarioError, match="prices.method"):
        settings_for("coopt-small", ["prices.method='lp'"])
    with pytest.raises(ScenarioError, match="study.models"):
        settings_for("coopt-small", ["study.models=['xyz']"])


@pytest.mark.slow
def test_large_study_dp_no_worse_than_baselines(tmp_path):
    code = cli_run("coopt-large", tmp_path, 0,
                   [f"study.data_dir='{DATA}'", "study.models=['generalised']",
                    "study.figures=false"])
    assert code == 0
    sub = pd.read_csv(tmp_path / "summary.csv").set_index("policy")
    for b in ("greedy", "shortest"):
        assert sub.loc["dp", "total_usd"] <= sub.loc[b, "total_usd"] + 1e-6
        assert sub.loc["dp_site", "total_site_usd"] <= sub.loc[b, "total_site_usd"] + 1e-6
    assert (sub.sites_served == 10).all()
    assert "milp" not in sub.index  # the fleet MILP runs on the small case only
