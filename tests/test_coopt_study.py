"""The coopt study end to end on the small network (experiments/coopt_study.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agents.road_data import load_coopt
from experiments.coopt_build import CooptSettings, build_problems
from experiments.coopt_study import cli_run, replay_plan, settings_for
from policies.dp_router import DPRouter
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
                    "study.figures=false"])
    assert code == 0
    s = pd.read_csv(tmp_path / "summary.csv")
    for m in ("generalised", "nmc"):
        sub = s[s.model == m].set_index("policy")
        assert sub.loc["dp", "total_usd"] <= sub.loc["greedy", "total_usd"] + 1e-6
        assert sub.loc["dp", "total_usd"] <= sub.loc["shortest", "total_usd"] + 1e-6
        for b in ("greedy", "shortest"):  # at the baselines' service level
            assert sub.loc["dp_site", "total_site_usd"] <= sub.loc[b, "total_site_usd"] + 1e-6
        assert (sub.degradation_usd >= 0).all() and (sub.replay_degradation_usd >= 0).all()
        assert sub.replay_all_ok.all()
    for f in ("report.md", "plan_steps.csv", "soc_trace.csv", "prices.csv", "meta.json"):
        assert (tmp_path / f).is_file()
    assert "source cost-optimised greedy: 710 km" in (tmp_path / "report.md").read_text()


def test_replay_follows_the_dp_plan_and_replans_under_noise():
    data = load_coopt(DATA)
    s = CooptSettings(n_trucks=2)
    probs = build_problems(data, "small", "generalised", s, hourly_price=FLAT)
    router = DPRouter()
    router.reset(probs)
    p = probs[0]
    plan = router.plans()[p.name]
    quiet = replay_plan(p, plan, data, "small", s, "generalised", FLAT,
                        np.random.default_rng(0), 0.0, router)
    assert quiet.ok and quiet.replans == 0
    assert quiet.km == pytest.approx(plan.total("dist_km"))
    # the planned SOC is rounded down, so the real one is never lower at the site
    assert quiet.delivered_kwh >= plan.total("delivered_kwh") - 1e-9
    noisy = [replay_plan(p, plan, data, "small", s, "generalised", FLAT,
                         np.random.default_rng(seed), 0.15, router) for seed in range(6)]
    assert sum(r.replans for r in noisy) > 0


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
