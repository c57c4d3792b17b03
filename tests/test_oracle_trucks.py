"""The truck oracle of ``bench coopt-small --oracle``: the fleet MILP with the realised traffic.

* without traffic noise and disturbances the realisation is the forecast, so the oracle's plan
  is the ``milp`` plan and every system metric is the same;
* with traffic noise the oracle plans on the scenario's traffic (its problems' travel differs
  from the forecast's), its solve's status, gap and bound are rows, and ``bench`` reports the
  regret against it with the count of scenarios whose oracle was not proven optimal.
"""

from __future__ import annotations

import numpy as np
import pytest

from experiments.bench import bench_tables
from experiments.cli import main
from experiments.config import resolve
from experiments.families import ORACLE, load_target

# one truck in the fleet MILP, a time limit no machine reaches
BASE = ["study.milp_trucks=1", "study.milp_time_limit_s=100000", "sweep.oracle=true"]
CALM = ["sweep.traffic_sigma=0", "sweep.delay_prob=0", "sweep.energy_noise=0"]


def _system(df, pol):
    s = df[(df.policy == pol) & (df.entity == "system") & df.time_min.isna()]
    return s.set_index("metric").value


@pytest.mark.slow
def test_without_noise_the_oracle_is_the_milp_plan():
    target = load_target(resolve("coopt-small"), BASE + CALM, ["milp"])
    df, wall = target.run(0, 5)
    assert set(wall) == {"milp", ORACLE}
    a, b = _system(df, "milp"), _system(df, ORACLE)
    assert len(a) > 5
    a = a.sort_index()
    assert np.allclose(a.to_numpy(), b.reindex(a.index).to_numpy(), rtol=0, atol=1e-9), (a, b)
    solver = df[(df.policy == ORACLE) & (df.entity == "solver")]
    assert list(solver.metric) == ["solves_optimal"] and solver.value.iloc[0] == 1
    info = df[(df.policy == ORACLE) & (df.entity == "oracle")].set_index("metric").value
    assert info["milp_gap"] <= 1e-4 + 1e-12
    assert info["milp_bound_usd"] <= info["milp_objective_usd"] + 1e-6


@pytest.mark.slow
def test_the_oracle_sees_the_realised_traffic_and_bench_reports_regret(tmp_path, capsys):
    target = load_target(resolve("coopt-small"), BASE + ["sweep.traffic_sigma=0.5"], ["milp"])
    real = target.realisation(3)
    plans, probs, info = target.hindsight_plan(real)
    _, _, _, forecast_probs, _, _ = target.prepare()
    assert info["milp_status"] == "optimal" and set(plans) <= {p.name for p in probs}
    # the oracle's problems were built with the realised traffic, not the forecast's
    p_real = probs[0]
    p_fc = next(p for p in forecast_probs if p.name == p_real.name)
    assert real["traffic"] != target.prepare()[0].traffic
    assert not (np.array_equal(p_real.move_steps, p_fc.move_steps)
                and np.allclose(p_real.move_e_kwh, p_fc.move_e_kwh))
    out = tmp_path / "b"
    assert main(["bench", "coopt-small", "--policies", "milp", "--oracle", "--scenarios", "2",
                 "--workers", "0", "--no-figures", "--no-progress", "--out", str(out),
                 *sum((["--set", x] for x in BASE[:2] + ["sweep.traffic_sigma=0.5"]), [])]) == 0
    printed = capsys.readouterr().out
    assert "regret against the hindsight oracle" in printed
    reg = bench_tables(out)["regret"].set_index(["metric", "policy"])
    row = reg.loc[("cost_usd", "milp")]
    assert row.n == 2 and row.oracle_not_optimal == 0
