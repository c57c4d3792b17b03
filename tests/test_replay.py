"""``mescosim replay``: a run's recorded plan followed open loop through the engine.

On the run's own realisation, the replay of the plan the MILP followed must give the run's own
trajectory (two paths to the same simulation: the policy deciding step by step, and its plan as
a fixed timetable). On another realisation the tables are written and the differences are
reported, not hidden.
"""

from __future__ import annotations

import pandas as pd
import pytest

from experiments.cli import main
from experiments.replay import followed_plan, timetable


def _run(tmp_path, target, *sets):
    out = tmp_path / "run"
    args = ["run", target, "--out", str(out), "--no-figures",
            "--set", 'policy.name="milp"', *[x for s in sets for x in ("--set", s)]]
    assert main(args) == 0
    return out


def test_followed_plan_takes_the_latest_plan_of_each_step():
    plan = pd.DataFrame({
        "policy": "milp", "vehicle": "m",
        "plan_step": [0, 0, 0, 2, 2], "time_min": [0, 60, 120, 120, 180],
        "site": ["a", "", "b", "a", "a"], "p_mw": [0.1, 0.0, 0.2, -0.1, 0.0],
        "e_end_mwh": [0.3, 0.3, 0.4, 0.2, 0.2]})
    f = followed_plan(plan, "milp")
    assert f.time_min.tolist() == [0, 60, 120, 180]
    assert f.site.tolist() == ["a", "", "a", "a"] and f.p_mw.tolist() == [0.1, 0.0, -0.1, 0.0]
    assert timetable(f, {"a": "na", "b": "nb"}) == [
        {"time_min": 0, "vehicle": "m", "p_mw": 0.1},
        {"time_min": 60, "vehicle": "m", "dest": "na"},
        {"time_min": 120, "vehicle": "m", "p_mw": -0.1},
        {"time_min": 180, "vehicle": "m", "p_mw": 0.0}]


def test_replay_on_the_runs_own_realisation_is_the_run(tmp_path, capsys):
    run = _run(tmp_path, "tiny", "policy.params={}")
    capsys.readouterr()
    assert main(["replay", str(run)]) == 0
    printed = capsys.readouterr().out
    assert "vehicle not where planned: 0 steps" in printed
    pvs = pd.read_parquet(run / "replay-s1" / "plan_vs_sim.parquet")
    assert (pvs.site_plan == pvs.site_sim).all()
    assert pvs.e_diff_mwh.abs().max() <= 1e-9
    # a second replay into the same directory is refused, the first one is left as it was
    assert main(["replay", str(run)]) == 2
    assert "already holds files" in capsys.readouterr().err


@pytest.mark.slow
def test_replay_of_a_three_dn_milp_run_writes_planned_against_simulated(tmp_path, capsys):
    run = _run(tmp_path, "three-dn", "policy.params={horizon_steps = 6, replan_every = 6}")
    capsys.readouterr()
    assert main(["replay", str(run), "--out", str(tmp_path / "same")]) == 0
    same = pd.read_parquet(tmp_path / "same" / "plan_vs_sim.parquet")
    assert len(same) == 2 * 24 and same.e_diff_mwh.abs().max() <= 1e-6
    assert main(["replay", str(run), "--seed", "11", "--out", str(tmp_path / "other")]) == 0
    printed = capsys.readouterr().out
    other = pd.read_parquet(tmp_path / "other" / "plan_vs_sim.parquet")
    assert len(other) == len(same) and "unseen by the plan:" in printed
    assert (tmp_path / "other" / "meta.json").is_file()
