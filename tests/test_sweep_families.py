"""Sweeps and benchmarks of the truck-mission and train-transmission studies
(experiments/families.py): seeded realisations, common random numbers, bench tables, resume."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from experiments.bench import bench_tables
from experiments.cli import main
from experiments.config import resolve
from experiments.families import load_target
from experiments.sweep import load_sweep_config, read_manifest, read_results, run_sweep
from sim.errors import ScenarioError

TRAIN_SETS = ["case.overrides.T=4", "solver.time_limit_s=20", "sweep.delay_prob=0.5",
              "sweep.delay_max_min=120"]


@pytest.fixture(scope="module")
def trucks():
    t = load_target(resolve("coopt-small"), ["sweep.delay_prob=0.5"], ["greedy", "shortest"])
    t.prepare()
    return t


@pytest.fixture(scope="module")
def trains():
    return load_target(resolve("tsn-ieee30"), TRAIN_SETS, ["uc-milp", "idle"])


def _whole(df: pd.DataFrame) -> pd.DataFrame:
    return df[df.time_min.isna() & (df.entity == "system")].set_index(["policy", "metric"]).value


def test_truck_target_is_seeded(trucks):
    a, wall = trucks.run(0, 11)
    b, _ = trucks.run(0, 11)
    c, _ = trucks.run(0, 12)
    pd.testing.assert_frame_equal(a, b)
    assert set(wall) == {"greedy", "shortest"}
    wa, wc = _whole(a), _whole(c)
    assert not np.allclose(wa.to_numpy(), wc.reindex(wa.index).to_numpy())
    for m in ("cost_usd", "served_customers", "delay_min", "voltage_violation_bus_steps",
              "loading_violation_line_steps", "nonconverged_steps", "soh_loss"):
        assert ("greedy", m) in wa.index
    assert wa[("greedy", "delay_min")] > 0  # delay_prob 0.5: some drive is held up
    # the fleet's capacity loss is the sum over its trucks
    per = a[(a.metric == "soh_loss") & a.entity.str.startswith("truck") & (a.policy == "greedy")]
    assert per.value.sum() == pytest.approx(wa[("greedy", "soh_loss")], rel=1e-12)


def test_truck_policies_meet_the_same_drive_disturbances(trucks):
    real = trucks.realisation(5)
    again = trucks.realisation(5)
    assert real["traffic"] == again["traffic"] and real["drives"] == again["drives"]
    assert real["traffic"] != trucks.realisation(6)["traffic"]
    seen = {}
    for pol in ("greedy", "shortest"):
        _, eng, _, _ = trucks.simulate(pol, trucks.realisation(5))
        delays: dict[str, list[int]] = {}
        for ev in eng.system.events:
            if ev[2] == "arrive":
                delays.setdefault(ev[1], []).append(int(re.search(r"delay (\d+)", ev[4])[1]))
        assert delays
        for truck, got in delays.items():  # the k-th drive gets the k-th draw of its truck
            assert got == [d for d, _ in real["drives"][truck][:len(got)]]
        seen[pol] = delays
    common = set(seen["greedy"]) & set(seen["shortest"])
    assert common
    for truck in common:
        n = min(len(seen["greedy"][truck]), len(seen["shortest"][truck]))
        assert seen["greedy"][truck][:n] == seen["shortest"][truck][:n]


def test_train_target_is_seeded_and_policies_share_the_realisation(trains):
    a, _ = trains.run(0, 3)
    b, _ = trains.run(0, 3)
    c, _ = trains.run(0, 4)
    pd.testing.assert_frame_equal(a, b)
    wa = _whole(a)
    assert not np.allclose(wa.to_numpy(), _whole(c).reindex(wa.index).to_numpy())
    for m in ("operating_cost", "wind_curtailed_mwh", "imbalance_mwh",
              "voltage_violation_bus_steps", "nonconverged_steps", "soh_loss"):
        assert ("uc-milp", m) in wa.index
    real = trains.realisation(3)
    assert real["delays_min"]  # delay_prob 0.5 over 4 trips per train
    case, _ = trains.prepare()
    avail = {}
    for pol in ("uc-milp", "idle"):
        _, _, site, _ = trains.simulate(pol, real)
        got = [h["wind_avail_mw"] for h in site.hours]
        want = [float(sum(w[h] for w in real["wind_avail_mw"])) for h in range(case.T)]
        assert got == pytest.approx(want, abs=1e-9)
        assert all(h["wind_used_mw"] <= h["wind_avail_mw"] + 1e-9 for h in site.hours)
        avail[pol] = got
    assert avail["uc-milp"] == avail["idle"]
    # the realised load differs from the forecast the policies plan on
    assert not np.allclose(real["load_mw"], np.asarray(case.load_mw))


def test_truck_bench_tables_pair_the_new_metrics_and_a_rerun_resumes(tmp_path, trucks):
    out = tmp_path / "bench"
    s1 = run_sweep(trucks, out, 2, 7, workers=0, progress=False)
    assert (s1.ran, s1.skipped) == (2, 0)
    s2 = run_sweep(trucks, out, 3, 7, workers=0, progress=False)
    assert (s2.ran, s2.skipped) == (1, 2)
    man = read_manifest(out)
    assert list(man.scenario) == [0, 1, 2] and set(man.status) == {"ok"}
    tabs = bench_tables(out, ["greedy", "shortest"])
    paired = tabs["paired"].set_index("metric")
    for m in ("cost_usd", "served_customers", "delay_min", "soh_loss"):
        row = paired.loc[m]
        assert (row.a, row.b, row.n) == ("greedy", "shortest", 3)
        assert row.ci95_lo <= row.mean_diff <= row.ci95_hi
    res = read_results(out)
    wide = res[(res.metric == "cost_usd") & res.time_min.isna()].pivot_table(
        index="scenario", columns="policy", values="value")
    assert paired.loc["cost_usd"].mean_diff == pytest.approx(
        (wide.shortest - wide.greedy).mean(), abs=1e-9)
    back = load_sweep_config(out)
    assert back.config_hash() == trucks.config_hash() and back.policies == trucks.policies
    from experiments.sweep_figures import write_all

    paths = write_all(out)
    assert {p.name for p in paths} >= {"sweep_boxplots.png", "sweep_paired.png"}


def test_unsupported_policy_names_the_flag_and_the_valid_names(capsys, tmp_path):
    with pytest.raises(ScenarioError, match="--policies.*valid: dp, greedy, milp, shortest"):
        load_target(resolve("coopt-small"), [], ["dp", "ocd"])
    with pytest.raises(ScenarioError, match="--policies.*valid: dp, greedy, idle, ocd, uc-milp"):
        load_target(resolve("tsn-ieee30"), [], ["uc-milp", "shortest"])
    assert main(["bench", "tsn-ieee30", "--policies", "uc-milp,stationary", "--scenarios", "1",
                 "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert ("--policies" in err and "'stationary'" in err
            and "dp, greedy, idle, ocd, uc-milp" in err)
    with pytest.raises(ScenarioError, match="sweep.wind_sigma"):
        load_target(resolve("tsn-ieee30"), ["sweep.wind_sigma=-1"])


def test_train_oracle_plans_on_the_realisation_and_bench_reports_regret(tmp_path, trains):
    calm = load_target(resolve("tsn-ieee30"), [*TRAIN_SETS, "sweep.delay_prob=0.0"],
                       ["uc-milp"])
    real = calm.realisation(9)
    assert not real["delays_min"]
    _, _, site_f, _ = calm.simulate("uc-milp", real)
    _, _, site_o, _ = calm.simulate("uc-milp", real, hindsight=True)
    # without train delays the hindsight plan balances the realised loads and wind every hour
    # (the DC power flow's slack takes nothing); the forecast plan leaves an imbalance
    assert max(abs(h["imbalance_mw"]) for h in site_o.hours) < 1e-6
    assert max(abs(h["imbalance_mw"]) for h in site_f.hours) > 1e-3
    t = load_target(resolve("tsn-ieee30"), [*TRAIN_SETS, "sweep.oracle=true"], ["idle"])
    out = tmp_path / "oracle"
    run_sweep(t, out, 2, 1, workers=0, progress=False)
    tabs = bench_tables(out, ["idle"])
    reg = tabs["regret"].set_index(["metric", "policy"])
    res = read_results(out)
    wide = res[(res.metric == "operating_cost") & res.time_min.isna()].pivot_table(
        index="scenario", columns="policy", values="value")
    assert reg.loc[("operating_cost", "idle")].mean_regret == pytest.approx(
        (wide.idle - wide.oracle).mean(), abs=1e-9)
    assert reg.loc[("operating_cost", "idle")].n == 2
    assert "oracle" in set(tabs["stats"].policy)
