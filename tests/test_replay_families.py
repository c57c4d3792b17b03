"""``mescosim replay`` on the Co-OPT and transmission families, and the bad run directories.

Two paths to the same simulation: a Co-OPT run's ``dp`` trucks decide step by step (re-planning
only when off the plan), the replay follows the plan recorded in ``plans.parquet`` open loop;
without disturbance both are the same day, so planned and simulated agree to 1e-6. With seeded
drive delays the replay leaves the plan and says so. The transmission replay rebuilds the
centralised plan from ``plans.parquet`` / ``plan_paths.parquet`` and runs it with a DC and an
AC power flow every hour.
"""

from __future__ import annotations

import hashlib
import json
import shutil

import pandas as pd
import pytest

from experiments.cli import main

TSN_SMOKE = """
[scenario]
kind = "tsn-study"
name = "tsn-replay"
description = "case 1, 4 hours, no OCD, no sweeps"
[case]
name = "ieee30"
[case.overrides]
T = 4
line_rating_overrides_mw = { "line 12-13" = 20.0 }
[solver]
time_limit_s = 60
mip_gap = 1e-6
[ocd]
runs = []
[sweeps]
line = "line 12-13"
line_ratings_mw = []
transport_costs_per_h = []
"""


def _digest(d):
    """Every file of the run directory (not its replay sub-directories) and its content."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())
            if p.is_file()}


@pytest.fixture(scope="module")
def coopt_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("coopt") / "run"
    assert main(["run", "coopt-small", "--out", str(out), "--no-figures",
                 "--set", "study.models=['generalised']", "--set", "study.milp=false"]) == 0
    return out


@pytest.fixture(scope="module")
def tsn_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("tsn")
    (d / "smoke.toml").write_text(TSN_SMOKE)
    assert main(["run", str(d / "smoke.toml"), "--out", str(d / "run"), "--no-figures"]) == 0
    return d / "run"


def _system(pvs, policy, metric):
    r = pvs[(pvs.policy == policy) & (pvs.entity == "system") & (pvs.metric == metric)]
    assert len(r) == 1
    return r.iloc[0]


def test_coopt_run_records_the_plans_it_follows(coopt_run):
    plans = pd.read_parquet(coopt_run / "plans.parquet")
    assert set(plans.policy) == {"dp", "dp_site", "greedy", "shortest"}
    assert set(plans.model) == {"generalised"}
    meta = json.loads((coopt_run / "meta.json").read_text())
    assert "plans.parquet" in meta["tables"] and (coopt_run / "config.toml").is_file()
    dp = plans[plans.policy == "dp"]
    for _, g in dp.groupby("truck"):
        g = g.sort_values("step")
        assert g.step.tolist() == list(range(len(g)))
        assert g.time_min.is_monotonic_increasing and g.action.iloc[-1] == "end"
        assert abs(g.cum_cost_usd.iloc[-1] - g.cost_usd.sum()) <= 1e-9
        assert (g.node == g.node_to).all() and (g.soc_frac == g.soc_to_frac).all()
    # the energy is the SOC times one capacity per truck
    cap = dp.e_kwh / dp.soc_frac
    assert (cap.groupby(dp.truck).agg(lambda c: c.max() - c.min()) < 1e-9).all()


def test_coopt_replay_without_disturbance_is_the_plan(coopt_run, capsys):
    before = _digest(coopt_run)
    capsys.readouterr()
    assert main(["replay", str(coopt_run), "--policy", "dp"]) == 0
    printed = capsys.readouterr().out
    out = coopt_run / "replay-s0"
    assert "generalised dp: objective planned" in printed
    pvs = pd.read_parquet(out / "planned_vs_simulated.parquet")
    viol = pd.read_parquet(out / "violations.parquet")
    assert set(pvs.policy) == {"dp"} and len(pvs) > 50
    assert list(pvs.columns) == ["family", "model", "policy", "entity", "step", "time_min",
                                 "metric", "planned", "simulated", "diff"]
    steps = pvs[pvs.entity != "system"]
    for metric in ("soc_frac", "e_kwh", "grid_kwh", "cost_usd", "cum_cost_usd"):
        d = steps[steps.metric == metric]
        assert len(d) and d["diff"].abs().max() <= 1e-6, metric
    assert steps[steps.metric == "off_plan"].simulated.sum() == 0
    obj = _system(pvs, "dp", "objective_usd")
    assert abs(obj.simulated - obj.planned) <= 1e-6
    # the run's summary priced the same day: the replay's objective is the run's
    summ = pd.read_parquet(coopt_run / "summary.parquet").set_index("policy")
    assert obj.simulated == pytest.approx(summ.loc["dp", "sim_total_usd"], abs=1e-6)
    # the grid the planner did not see: every violation names its kind and limit
    assert set(viol.kind) <= {"voltage", "loading", "nonconverged", "missed_customer",
                              "soc_below_min", "failure"}
    assert not {"missed_customer", "soc_below_min", "failure"} & set(viol.kind)
    lo = viol[viol.kind == "loading"]
    assert (lo.value > lo["limit"]).all()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["family"] == "coopt"
    assert meta["summaries"][0]["off_plan_steps"] == 0
    # the run's own files are untouched, and a second replay into the same place is refused
    assert _digest(coopt_run) == before
    assert main(["replay", str(coopt_run), "--policy", "dp"]) == 2
    assert "already holds files" in capsys.readouterr().err


def test_coopt_replay_with_delays_records_the_deviation(coopt_run, tmp_path):
    out = tmp_path / "late"
    assert main(["replay", str(coopt_run), "--policy", "dp", "--seed", "5", "--delay-prob", "1",
                 "--delay-max-min", "40", "--out", str(out)]) == 0
    pvs = pd.read_parquet(out / "planned_vs_simulated.parquet")
    steps = pvs[pvs.entity != "system"]
    assert steps[steps.metric == "off_plan"].simulated.sum() > 0
    obj = _system(pvs, "dp", "objective_usd")
    assert obj.simulated != pytest.approx(obj.planned, abs=1e-3)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["info"]["disturbance"]["delay_prob"] == 1.0 and meta["seed"] == 5


def test_tsn_replay_writes_planned_against_simulated(tsn_run, tmp_path, capsys):
    assert (tsn_run / "plans.parquet").is_file() and (tsn_run / "plan_paths.parquet").is_file()
    capsys.readouterr()
    assert main(["replay", str(tsn_run), "--out", str(tmp_path / "same")]) == 0
    assert "ieee30" in capsys.readouterr().out
    pvs = pd.read_parquet(tmp_path / "same" / "planned_vs_simulated.parquet")
    assert set(pvs.family) == {"tsn"} and {"c_mw", "e_mwh", "station_index"} <= set(pvs.metric)
    assert pvs[pvs.metric == "e_mwh"]["diff"].abs().max() <= 1e-6
    obj = _system(pvs, "central", "objective_usd")
    assert abs(obj.simulated - obj.planned) <= 1e-6 * max(1.0, abs(obj.planned))
    assert (tmp_path / "same" / "violations.parquet").is_file()
    # trips held up for 1-120 min: the trains are not where the plan has them
    assert main(["replay", str(tsn_run), "--delay-prob", "1", "--delay-max-min", "120",
                 "--out", str(tmp_path / "late")]) == 0
    late = pd.read_parquet(tmp_path / "late" / "planned_vs_simulated.parquet")
    loc = late[late.metric == "station_index"]
    assert (loc["diff"].abs() > 0.5).any()


def test_bad_run_directories_are_exit_2(tmp_path, coopt_run, capsys):
    capsys.readouterr()
    assert main(["replay", str(tmp_path / "nowhere")]) == 2
    assert "not a directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["replay", str(tmp_path / "empty")]) == 2
    assert "not a run directory (no meta.json)" in capsys.readouterr().err
    other = tmp_path / "sfi"
    other.mkdir()
    (other / "meta.json").write_text(json.dumps({"scenario": "sfi", "status": "complete"}))
    assert main(["replay", str(other)]) == 2
    assert "cannot be replayed" in capsys.readouterr().err
    # a Co-OPT run directory without its plan
    noplan = tmp_path / "noplan"
    noplan.mkdir()
    for name in ("meta.json", "config.toml", "prices.parquet"):
        shutil.copy(coopt_run / name, noplan / name)
    assert main(["replay", str(noplan)]) == 2
    assert "no plans.parquet" in capsys.readouterr().err
    # never into the run directory itself
    assert main(["replay", str(coopt_run), "--out", str(coopt_run)]) == 2
    assert "is the run directory" in capsys.readouterr().err
    # every problem at once
    assert main(["replay", str(coopt_run), "--out", str(tmp_path / "x"), "--policy", "nope",
                 "--delay-prob", "2"]) == 2
    err = capsys.readouterr().err
    assert "--policy: 'nope'" in err and "delay_prob must be in [0, 1]" in err
    assert "Traceback" not in err and not (tmp_path / "x").exists()


def test_dn_replay_writes_the_tidy_tables_too(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["run", "tiny", "--out", str(run), "--no-figures", "--set",
                 'policy.name="milp"', "--set", "policy.params={}"]) == 0
    assert main(["replay", str(run), "--out", str(tmp_path / "r")]) == 0
    pvs = pd.read_parquet(tmp_path / "r" / "planned_vs_simulated.parquet")
    assert set(pvs.family) == {"dn"} and {"e_end_mwh", "p_mw", "sfi_total"} <= set(pvs.metric)
    assert pvs[pvs.metric == "e_end_mwh"]["diff"].abs().max() <= 1e-9
    assert (tmp_path / "r" / "violations.parquet").is_file()
    meta = json.loads((tmp_path / "r" / "meta.json").read_text())
    assert meta["replay"]["family"] == "dn" and meta["replay"]["summaries"][0]["policy"] == "milp"
    # the DN family takes its disturbances from the scenario
    assert main(["replay", str(run), "--delay-prob", "0.5", "--out", str(tmp_path / "x")]) == 2
    assert "--delay-prob" in capsys.readouterr().err
