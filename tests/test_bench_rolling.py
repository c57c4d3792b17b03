"""The bench counts every solve of a re-planning policy, and names the worst outcome.

* the truck ``milp`` with ``sweep.milp_replan_min`` re-solves inside each scenario (from the
  forecast plan made once), and the scenario's solver rows count each of its solves;
* ``bench_tables``' solver table sums them over the scenarios, with the worst outcome;
* :func:`worst_solve` orders the typed outcomes.
"""

from __future__ import annotations

import pytest

from experiments.bench import bench_tables, worst_solve
from experiments.config import resolve
from experiments.families import load_target
from experiments.sweep import load_sweep_config, run_sweep
from sim.errors import ScenarioError

# one truck in the fleet MILP (its own 0.05 SOC grid), re-solved every 2 h; time limit no
# machine reaches
ROLLING = ["study.milp_trucks=1", "study.milp_time_limit_s=100000", "sweep.milp_replan_min=120",
           "sweep.delay_prob=0.5"]


@pytest.mark.slow
def test_rolling_truck_milp_reports_every_solve_in_the_bench(tmp_path):
    target = load_target(resolve("coopt-small"), ROLLING, ["milp"])
    assert target.milp_rolling
    runs, _, _, policy = target.simulate("milp", target.realisation(11))
    assert policy.rolling and policy.replans >= 1
    assert policy.solves[0]["note"] == "first plan, solved once before the run"
    assert [s["reason"] for s in policy.solves[1:]] == ["every 120 min"] * policy.replans
    df, _ = target.run(0, 11)
    rows = df[df.entity == "solver"].set_index("metric").value
    statuses = [s["status"] for s in policy.solves]  # the same realisation, the same solves
    assert rows.sum() == len(statuses) == 1 + policy.replans
    for st in set(statuses):
        assert rows[f"solves_{st}"] == statuses.count(st)
    # through the sweep and the bench tables: summed over the scenarios
    out = tmp_path / "b"
    run_sweep(target, out, 2, 7, workers=0, progress=False)
    assert load_sweep_config(out).milp_rolling  # the setting is part of the sweep's config
    solver = bench_tables(tmp_path / "b")["solver"].set_index("policy")
    counts = solver.loc["milp"].filter(like="solves_")
    assert counts.sum() >= 2 * 2  # first plan + at least one re-solve in each scenario
    assert solver.loc["milp", "worst_solve"] == worst_solve(counts.to_dict())


def test_open_loop_milp_is_the_default_and_bad_rolling_settings_are_named():
    from experiments.families import TRUCK_SWEEP, _sweep_section

    assert TRUCK_SWEEP["milp_replan_min"] == 0 and TRUCK_SWEEP["milp_late_tol_min"] == -1
    with pytest.raises(ScenarioError) as e:
        _sweep_section("coopt-study", {"milp_replan_min": -60, "milp_late_tol_min": -2})
    msg = str(e.value)
    assert "sweep.milp_replan_min: must be a number >= 0" in msg
    assert "sweep.milp_late_tol_min: whole minutes >= 0, or -1" in msg
    with pytest.raises(ScenarioError, match="sweep.milp_replan_min: whole minutes"):
        _sweep_section("coopt-study", {"milp_replan_min": 1.5})
    ok = _sweep_section("coopt-study", {"milp_late_tol_min": 0.0})
    assert ok["milp_late_tol_min"] == 0 and isinstance(ok["milp_late_tol_min"], int)


def test_worst_solve_orders_the_typed_outcomes():
    assert worst_solve({"solves_optimal": 5, "solves_time_limit": 1}) == "time_limit"
    assert worst_solve({"solves_optimal": 5, "solves_infeasible": 0}) == "optimal"
    assert worst_solve({"solves_feasible_gap": 2, "solves_error": 1}) == "error"
    assert worst_solve({"solves_optimal": 1, "solves_weird": 1}) == "weird"  # unknown: last
    assert worst_solve({}) == ""
