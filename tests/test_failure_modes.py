"""Failed solves, failed power flows and interrupted writes: recorded honestly, nothing lost."""

from __future__ import annotations

import copy
import json
import tomllib

import numpy as np
import pandas as pd
import pulp
import pytest
import tomli_w

from experiments.cli import main
from experiments.config import SCENARIO_DIR, validate
from experiments.run import inside, run_one, write_run
from grids.adapter import PandapowerAdapter
from grids.feeders import make_feeder
from policies.solve import diagnose_infeasible, solve
from sim.errors import ScenarioError

TINY = tomllib.loads((SCENARIO_DIR / "tiny.toml").read_text())
LOAD = [0.45, 0.42, 0.40, 0.40, 0.42, 0.50, 0.65, 0.75, 0.70, 0.62, 0.58, 0.57, 0.56, 0.55,
        0.57, 0.62, 0.72, 0.88, 0.98, 1.00, 0.95, 0.82, 0.65, 0.52]


# ----------------------------------------------------------------------------- solver outcomes
def _knapsack(n: int = 40, m: int = 30) -> tuple[pulp.LpProblem, list]:
    """A multi-dimensional knapsack HiGHS proves in about 0.4 s, far beyond its root node."""
    rng = np.random.default_rng(0)
    w, v = rng.integers(1, 1000, (m, n)), rng.integers(1, 1000, n)
    p = pulp.LpProblem("knapsack", pulp.LpMaximize)
    x = [p.add_variable(f"x_{i}", cat=pulp.LpBinary) for i in range(n)]
    p += pulp.lpSum(int(v[i]) * x[i] for i in range(n))
    for j in range(m):
        p += pulp.lpSum(int(w[j, i]) * x[i] for i in range(n)) <= int(w[j].sum() // 2)
    return p, x


def test_time_limit_is_reported_with_its_gap_not_as_optimal():
    """HiGHS stopped by a work limit with an incumbent: PuLP calls the result "Optimal"; the typed
    outcome says time_limit, with the gap. The limit is HiGHS's node limit (one node), not a time:
    how far HiGHS gets in a given time depends on the machine, one node does not."""
    p, x = _knapsack()
    out = solve(p, time_limit_s=600, mip_gap=1e-9, start={xi: 0 for xi in x},
                options={"mip_max_nodes": 1})
    assert pulp.LpStatus[p.status] == "Optimal"  # what PuLP alone would report
    assert out.status == "time_limit" and out.has_solution, out
    assert out.message == "Solution limit reached"
    assert out.bound > out.objective and out.gap == pytest.approx(
        (out.bound - out.objective) / abs(out.objective), rel=1e-6)
    assert out.gap > 1e-9 and out.gap_closed == ""
    # the incumbent is a real solution of the model
    assert out.objective == pytest.approx(pulp.value(p.objective))


def test_a_gap_closed_on_highs_absolute_rule_is_optimal_and_says_so():
    """HiGHS stops when the relative gap is within mip_rel_gap or the absolute one within
    mip_abs_gap. A solve it reports optimal on the absolute rule, with a relative gap above the
    requested one, is optimal as far as HiGHS proves anything, and the outcome names the rule."""
    p, x = _knapsack()
    exact = solve(p, time_limit_s=600, mip_gap=0.0)
    assert exact.status == "optimal" and exact.gap_closed == "relative"
    p, x = _knapsack()
    out = solve(p, time_limit_s=600, mip_gap=1e-12, options={"mip_abs_gap": 50.0})
    assert out.status == "optimal", out
    assert out.bound - out.objective <= 50.0 + 1e-9
    if out.gap > 1e-12:  # HiGHS stopped on the absolute rule (it may also have closed it fully)
        assert out.gap_closed == "absolute"
    else:
        assert out.gap_closed == "relative"
    assert out.bound >= exact.objective - 1e-6 >= out.objective - 1e-6


def _soc_model() -> pulp.LpProblem:
    """Energy 0.3 MWh, window [0.1, 0.5], 0.35 MWh used per step, at most 0.2 MWh recharged."""
    p = pulp.LpProblem("soc", pulp.LpMinimize)
    e = [p.add_variable(f"e_0_0_{t}", 0.1, 0.5) for t in range(4)]
    c = [p.add_variable(f"ch_0_0_0_{t}", 0, 0.2) for t in range(3)]
    u = [p.add_variable(f"u_0_0_{t}", cat=pulp.LpBinary) for t in range(3)]
    p += pulp.lpSum(c)
    p += e[0] == 0.3
    for t in range(3):
        p += e[t + 1] == e[t] + c[t] - 0.35
        p += c[t] <= 0.2 * u[t]
    return p


@pytest.mark.parametrize("solver", ["highs", "cbc"])
def test_infeasible_soc_window_is_diagnosed(solver):
    p = _soc_model()
    assert solve(p, solver=solver).status == "infeasible"
    d = diagnose_infeasible(p, lambda name: ({"e": "SOC window"}.get(name.split("_")[0], "?"),
                                             "mess1", int(name.split("_")[-1])))
    # e1 = 0.3 + 0.2 - 0.35 = 0.15 is the lowest reachable; e2 = 0.15 + 0.2 - 0.35 = 0 < 0.1
    assert (d.family, d.entity, d.step) == ("SOC window", "mess1", 2)
    assert d.message.startswith("SOC window of mess1 broken at step 2: below its lower bound "
                                "0.1 by 0.1")
    assert [v.name for v in d.violations] == ["e_0_0_2", "e_0_0_3"]


def _tiny(**policy) -> dict:
    raw = copy.deepcopy(TINY)
    raw["scenario"]["horizon_min"] = 180
    raw["policy"] = policy
    raw["compare"] = {"policies": []}
    return raw


def test_milp_window_infeasible_soc_falls_back_and_the_run_says_so():
    """A truck at the depot with energy at e_min that self-discharges 50 %/h: no window can keep
    it inside its SOC window. Each window is diagnosed, the policy falls back to ``idle``, and
    meta.json, the failures table and the decision notes all say so."""
    raw = _tiny(name="milp", params={"weights": "equal", "fallback": "idle"})
    raw["fleet"][0].update(e_init_mwh=0.1, retention_per_h=0.5)
    res = run_one(validate(raw), record_arrays=False)
    pol = res.meta["policies"][0]
    assert pol["solver_statuses"] == {"infeasible": 3} and pol["fallback_windows"] == 3
    first = pol["report"]["solves"][0]
    assert first["diagnosis"].startswith("vehicle SOC window (e) of truck broken at step 1: "
                                         "below its lower bound 0.1 by 0.05")
    assert first["diagnosis_detail"]["entity"] == "truck"
    f = res.tables["failures"]
    solver_rows = f[f.kind == "solver"]
    assert list(solver_rows.status) == ["infeasible"] * 3
    assert solver_rows.message.iloc[0].endswith("fell back to 'idle'")
    assert res.tables["decisions"].note.iloc[0].startswith("fallback idle: infeasible (vehicle "
                                                           "SOC window (e) of truck")


# ----------------------------------------------------------------------------- power flows
def test_flat_start_is_the_last_resort_and_recorded(monkeypatch):
    a = PandapowerAdapter(make_feeder("case33bw"))
    a.apply(2.0)
    assert a.solve().status == "ok"
    inits, real = [], a._runpp

    def only_flat(init):
        inits.append(init)
        if init != "flat":
            raise pp_not_converged()
        real(init)

    monkeypatch.setattr(a, "_runpp", only_flat)
    a.apply(2.1)
    r = a.solve()
    assert inits == ["results", "dc", "flat"] and r.status == "ok"
    assert r.message.endswith("init=dc: not converged (injected); "
                              "init=flat: converged (flat start, the last resort)")


def pp_not_converged():
    from pandapower.auxiliary import LoadflowNotConverged

    return LoadflowNotConverged("injected")


def _diverging(tmp_path, on_failure: str) -> tuple[dict, str]:
    """tiny with DN b's load read from a CSV whose hour 3 is 400 p.u.: that step diverges."""
    vals = list(LOAD)
    vals[3] = 400.0
    (tmp_path / "prof.csv").write_text("hour,b\n" + "".join(f"{i},{v}\n"
                                                            for i, v in enumerate(vals)))
    raw = _tiny(name="idle")
    raw["scenario"]["horizon_min"] = 300
    raw["grids"]["b"]["load_shape"] = {"csv": "prof.csv", "column": "b"}
    raw["power_flow"] = {"on_failure": on_failure}
    path = tmp_path / "diverge.toml"
    path.write_text(tomli_w.dumps(raw))
    return raw, str(path)


def test_diverging_power_flow_is_recorded_and_the_run_continues(tmp_path):
    raw, path = _diverging(tmp_path, "mark")
    res = run_one(validate(raw, source=path), record_arrays=False)
    sites = res.tables["sites"]
    b = sites[sites.site == "b"].set_index("time_min")
    assert b.converged.tolist() == [True, True, True, False, True]
    assert b.load_mw[180] == pytest.approx(400.0)
    f = res.tables["failures"]
    row = f[(f.kind == "power_flow") & (f.status == "not_converged")]
    assert row.time_min.tolist() == [180] and row.entity.tolist() == ["b"]
    # every attempt of the retry chain, in order
    msg = row.message.iloc[0]
    assert [msg.index(f"init={i}: not converged") for i in ("results", "dc", "flat")] == sorted(
        msg.index(f"init={i}: not converged") for i in ("results", "dc", "flat"))
    m = res.metrics
    assert m[(m.metric == "nonconverged_steps") & (m.entity == "system")].value.tolist() == [1.0]
    assert res.meta["status"] == "complete" and res.meta["nonconverged_steps"] == 1
    assert res.meta["marked"] == ["1 site-steps whose power flow did not converge"]


def test_stop_on_power_flow_failure_ends_the_run_and_says_so(tmp_path, capsys):
    _, path = _diverging(tmp_path, "stop")
    out = tmp_path / "run"
    assert main(["run", path, "--out", str(out), "--no-figures"]) == 3
    assert "run stopped: power flow of b at minute 180" in capsys.readouterr().err
    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "stopped"
    assert meta["stopped"]["time_min"] == 180 and meta["stopped"]["site"] == "b"
    sites = pd.read_parquet(out / "sites.parquet")
    assert sites.time_min.max() == 180  # the failing step is recorded, nothing after it


# ----------------------------------------------------------------------------- run directories
def test_interrupted_write_leaves_a_partial_run_directory(tmp_path, monkeypatch):
    import experiments.run as run_mod

    res = run_one(validate(_tiny(name="idle")), record_arrays=False)
    real, calls = run_mod.atomic_parquet, []

    def crash_on_third(df, path):
        calls.append(path.name)
        if len(calls) == 3:
            raise OSError("disk full (injected)")
        real(df, path)

    monkeypatch.setattr(run_mod, "atomic_parquet", crash_on_third)
    with pytest.raises(OSError, match="injected"):
        write_run(res, tmp_path / "run", figures=False)
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["status"] == "partial"
    written = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert written == sorted(["meta.json", "config.toml", *calls[:2]])  # no half-written file
    monkeypatch.setattr(run_mod, "atomic_parquet", real)
    write_run(res, tmp_path / "run", figures=False)
    assert json.loads((tmp_path / "run" / "meta.json").read_text())["status"] == "complete"


@pytest.mark.parametrize("name", ["../up", "/etc/passwd", "a/b", "..", ".hidden", ""])
def test_output_names_stay_inside_the_output_directory(tmp_path, name):
    with pytest.raises(ScenarioError, match="output name"):
        inside(tmp_path, name)
    assert inside(tmp_path, "three-dn-s7-20250101") == tmp_path / "three-dn-s7-20250101"


def test_milp_without_a_baseline_solution_falls_back_to_equal_weights_and_runs():
    from experiments.config import load
    from experiments.run import run_one

    cfg = load("three-dn", ['policy={ name = "milp", params = { time_limit_s = 1e-9 } }',
                            "compare.policies=[]", "scenario.horizon_min=180"])
    res = run_one(cfg)
    assert res.meta["status"] == "complete"
    f = res.tables["failures"]
    assert not (f.kind == "policy").any()  # the reset did not fail
    weights = f[f.message.str.startswith("no-MESS baseline for the dynamic weights")]
    assert len(weights) == 1 and "fell back to 'equal weights'" in weights.message.iloc[0]
    assert (f[f.kind == "solver"].status != "optimal").all()
