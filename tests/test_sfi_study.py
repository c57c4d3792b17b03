"""The seed 000 study (experiments/sfi_study.py): the quick form end to end, once per module."""

from __future__ import annotations

import json

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from experiments import sfi_study
from experiments.cli import main
from experiments.config import load, resolve
from experiments.sfi_study import (
    StudySettings,
    md_table,
    moves,
    plan_timetable,
    planned_arrivals,
    route_of,
    route_text,
    run_study,
    settings_from_config,
)
from policies.sfi import Options, redispatch

FIGURES = ["fig01_weights", "fig02_routes", "fig03_power", "fig04_soc",
           "fig05_fixed_vs_mobile_total", "fig06_fixed_vs_mobile_per_dn", "fig07_boxplot",
           "fig08_hourly_weighted_sfi", "fig09_stochastic_band", "fig10_kappa",
           "fig11_validation_sfi", "fig12_validation_soc"]
TABLES = ["weights", "table3", "table3_per_dn", "plan_dynamic", "fixed_vs_mobile",
          "cross_weights", "hourly_weighted", "stochastic_stats", "stochastic_scenarios",
          "stochastic_hourly", "kappa_sweep", "validation", "validation_vehicles",
          "validation_events", "reference_a11", "directions"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The quick study, run once for the tests marked ``study`` (``pytest -m study``)."""
    cfg = load(resolve("sfi-quick"))
    out = tmp_path_factory.mktemp("sfi-quick")
    return run_study(cfg, cfg.scenario.seed, settings_from_config(cfg.study), out)


@pytest.mark.slow
@pytest.mark.study
def test_every_figure_and_table_is_written_and_readable(study):
    out = study.out_dir
    for name in FIGURES:
        img = mpimg.imread(out / "figures" / f"{name}.png")
        assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 400
    for name in TABLES:
        df = pd.read_parquet(out / f"{name}.parquet")
        assert len(df) > 0, name
    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["settings"]["kappa"] == 0.5
    for rec in meta["solves"]:
        assert {"build_s", "solve_s", "status", "gap"} <= set(rec)
        assert rec["status"] in ("optimal", "feasible_gap", "time_limit")


@pytest.mark.study
def test_report_has_table3_directions_and_settings(study):
    text = (study.out_dir / "report.md").read_text()
    assert text.splitlines()[2].startswith("**kappa = 0.5, alpha = 1, beta = 1, eps = 0.001**")
    assert "## 3. Before / after MESS (Table 3)" in text
    assert "before 5.62, after 6.31, gain 0.69" in text
    assert "## 9. Directions against the paper" in text
    assert "## 10. MODELS.md A.11 reference table" in text
    dirs = study.tables["directions"]
    assert {"claim", "paper", "ours", "direction", "explanation"} <= set(dirs.columns)
    assert dirs.explanation.str.len().min() > 10
    # every figure the report links exists
    for name in FIGURES:
        assert f"figures/{name}.png" in text


@pytest.mark.study
def test_directions_of_the_deterministic_study(study):
    t3 = study.tables["table3"].set_index("weights")
    assert t3.loc["dynamic", "after"] > t3.loc["dynamic", "before"]
    assert t3.loc["equal", "after"] > t3.loc["equal", "before"]
    fm = study.tables["fixed_vs_mobile"].set_index(["weights", "case", "entity"])["value"]
    assert fm[("dynamic", "mobile", "total (weighted)")] > fm[("dynamic", "fixed",
                                                                 "total (weighted)")]
    # the plan moves under dynamic weights (A.11: deficit at DN2 in the evening)
    assert moves(study.plans["mobile_dynamic"]) >= 1
    assert "dn2" in route_text(study.plans["mobile_dynamic"], study.ctx)
    # 2x2 diagonal = own optimum
    cross = study.tables["cross_weights"].set_index(["schedule", "evaluated_under"])
    assert cross.loc[("dynamic-weight plan", "dynamic"), "value_route_fixed"] >= \
        cross.loc[("equal-weight plan", "dynamic"), "value_route_fixed"] - 1e-6


@pytest.mark.study
def test_stochastic_not_worse_than_deterministic_and_markers_are_recomputed(study):
    st = study.tables["stochastic_stats"].set_index("method")
    assert st.loc["stochastic", "expectation"] >= st.loc["deterministic", "expectation"] - 1e-9
    scen = study.tables["stochastic_scenarios"]
    assert np.isclose(scen.prob.sum(), 1.0)
    assert len(scen) == study.settings.n_reduced
    # the deterministic marker: its route re-dispatched on the mean profile (forecasts)
    s = study.settings
    opt = Options(solver=s.solver, time_limit_s=s.time_limit_s, mip_gap=s.stochastic_mip_gap)
    load_, pv = study.ctx.forecast
    plan, out = redispatch(study.ctx, route_of(study.plans["mobile_dynamic"]), load_, pv,
                           np.ones(1), study.weights["stochastic"].w[:1], opt)
    assert out.has_solution
    assert plan.value[0] == pytest.approx(st.loc["deterministic", "marker_mean_profile"],
                                          abs=1e-6)
    assert study.summary["stochastic"]["reduction_distance"] > 0


@pytest.mark.study
def test_validation_table_and_replayed_routes(study):
    val = study.tables["validation"]
    T = study.ctx.forecast[0].shape[2]
    assert len(val) == len(study.ctx.sites) * T
    assert not val.duplicated(["site", "hour"]).any()
    assert {"sfi_plan", "sfi_sim", "delivered_plan_mwh", "delivered_sim_mwh", "residual_mw",
            "v_viol_buses", "overloaded_lines"} <= set(val.columns)
    for v in study.ctx.vehicles:
        assert {f"soc_plan_pct_{v.name}", f"soc_sim_pct_{v.name}"} <= set(val.columns)
    # the timetable reproduces the plan's routes: arrivals at the planned minutes and nodes
    plan = study.plans["mobile_dynamic"]
    ev = study.tables["validation_events"]
    arr = ev[ev.event == "arrive"]
    sim = sorted(zip(arr.vehicle, arr.time_min.astype(int), arr.node))
    assert sim == planned_arrivals(plan, study.ctx)
    assert len(sim) == moves(plan)
    vv = study.tables["validation_vehicles"]
    assert (vv.site_plan == vv.site_sim).all()
    assert np.allclose(vv.e_plan_mwh, vv.e_sim_mwh, atol=1e-6)


def test_timetable_entries():
    """A hand-made plan: one vehicle at site 0, leaves for site 1 at step 2, arrives at 3."""
    from policies.sfi import SfiContext

    cfg = load(resolve("sfi-quick"))
    from experiments.build import build_world

    ctx = SfiContext.from_problem(build_world(cfg, None, np.random.default_rng(0)).problem)

    class P:  # the SfiPlan fields plan_timetable uses
        pass

    M, N, T = len(ctx.vehicles), len(ctx.sites), 4
    p = P()
    p.y = np.zeros((M, N, N, T))
    p.x = np.zeros((M, N, T + 1))
    for m in range(M):
        p.y[m, 0, 0, :2] = 1
        p.y[m, 0, 1, 2] = 1
        p.y[m, 1, 1, 3] = 1
    p.ch_mw = np.zeros((1, M, N, T))
    p.dis_mw = np.zeros((1, M, N, T))
    p.ch_mw[0, 0, 0, 0] = 0.1
    p.dis_mw[0, 0, 1, 3] = 0.05
    p.site_of = lambda: np.array([[0, 0, -1, 1]] * M)
    tt = plan_timetable(p, ctx)
    v0 = [e for e in tt if e["vehicle"] == ctx.vehicles[0].name]
    step = ctx.step_min
    assert v0 == [{"time_min": 0, "vehicle": ctx.vehicles[0].name, "p_mw": 0.1},
                  {"time_min": step, "vehicle": ctx.vehicles[0].name, "p_mw": 0.0},
                  {"time_min": 2 * step, "vehicle": ctx.vehicles[0].name,
                   "dest": ctx.sites[1].node},
                  {"time_min": 3 * step, "vehicle": ctx.vehicles[0].name, "p_mw": -0.05}]


def test_cli_hook_runs_the_study_for_study_scenarios(monkeypatch, tmp_path, capsys):
    calls = []
    monkeypatch.setattr(sfi_study, "cli_run",
                        lambda cfg, seed, settings, out, figures=True: calls.append(
                            (cfg.scenario.name, seed, settings.n_reduced, out, figures)) or 0)
    assert main(["run", "sfi-quick", "--out", str(tmp_path / "x"), "--seed", "3",
                 "--no-figures"]) == 0
    assert calls == [("sfi-quick", 3, 3, str(tmp_path / "x"), False)]


def test_settings_and_helpers():
    full = settings_from_config(load(resolve("sfi")).study)
    assert full.n_scenarios == 1000 and full.n_reduced == 50 and full.kappa == 0.5
    assert full.kappa_sweep == (0.2, 0.3, 0.4, 0.5, 0.6, 0.8)
    assert StudySettings(kappa_sweep=[0.2, 0.5]).kappa_sweep == (0.2, 0.5)
    with pytest.raises(ValueError):
        StudySettings(stochastic_method="magic")
    with pytest.raises(ValueError):
        StudySettings(n_scenarios=5, n_reduced=10)
    md = md_table(pd.DataFrame({"a": [1.23456, np.nan], "b": ["x", True]}), ".2f")
    assert md.splitlines() == ["| a | b |", "|---|---|", "| 1.23 | x |", "| – | yes |"]
