"""Scenario validation and the command line: every problem at once, exit code 2, no traceback."""

from __future__ import annotations

import copy
import subprocess
import sys
import tomllib

import pytest

from experiments.cli import main
from experiments.config import SCENARIO_DIR, resolve, validate
from sim.errors import ScenarioError


@pytest.fixture(scope="module")
def raw():
    return tomllib.loads((SCENARIO_DIR / "three-dn.toml").read_text())


def problems(raw_cfg):
    with pytest.raises(ScenarioError) as exc:
        validate(raw_cfg)
    return list(exc.value.problems)


def test_builtin_scenarios_validate():
    for name in ("three-dn", "tiny"):
        from experiments.config import load

        load(resolve(name))


def test_malformed_scenario_lists_every_problem(raw):
    bad = copy.deepcopy(raw)
    bad["fleet"][1]["capacity_mw"] = 0.5  # unknown key (typo)
    bad["fleet"][0]["p_max_mw"] = "fast"  # wrong type
    bad["grids"]["dn2"]["mess_bus"] = 77  # bus that does not exist
    bad["road"]["nodes"].append("island")  # disconnected road graph
    bad["fleet"][0]["start"] = "island"
    got = problems(bad)
    assert got == [
        "fleet[0].p_max_mw: expected a number, got string 'fast'",
        "fleet[1].capacity_mw: unknown key (did you mean 'capacity_mwh'?)",
        "grids.dn2.mess_bus: bus 77 not in net (15 buses)",
        "road: 'island' cannot be reached from 'dn1'",
        "road: 'island' cannot be reached from 'dn2'",
        "road: 'island' cannot be reached from 'dn3'",
        "road: 'dn1' cannot be reached from 'island'",
        "road: 'dn2' cannot be reached from 'island'",
        "road: 'dn3' cannot be reached from 'island'",
    ]


@pytest.mark.parametrize("mutate, expected", [
    (lambda r: r["fleet"][0].update(capacity_mwh=-1.0),
     "fleet[0].capacity_mwh: must be > 0, got -1.0"),
    (lambda r: r["fleet"][0].update(e_init_mwh=0.05),
     "fleet[0].e_init_mwh: 0.05 is outside the usable window [0.1, 0.475]"),
    (lambda r: r["fleet"][0].update(e_max_mwh=0.6),
     "fleet[0].e_max_mwh: 0.6 exceeds capacity_mwh 0.5"),
    (lambda r: r["scenario"].update(step_min=7),
     "scenario.horizon_min: 1440 is not a whole number of steps of step_min=7"),
    (lambda r: r["policy"].update(name="astar"),
     "policy.name: unknown policy 'astar'; valid: greedy, idle, milp, schedule, stationary "
     "(on other systems: dp, ocd, shortest, uc-milp)"),
    (lambda r: r["policy"]["params"].update(horizon=4),
     "policy.params.horizon: policy 'greedy' takes no parameter 'horizon' "
     "(accepted: window_min, min_gain, low_quantile, high_quantile)"),
    (lambda r: r["grids"]["dn1"].update(load_shape="weekend"),
     "grids.dn1.load_shape: unknown shape 'weekend'; known: commercial, industrial, "
     "residential, solar"),
    (lambda r: r["grids"]["dn1"].update(load_shape=[0.5, float("nan"), 0.7]),
     "grids.dn1.load_shape[1]: must be finite, got nan"),
    (lambda r: r["road"]["edges"][0].update(to="dn9"),
     "road.edges[0].to: unknown node 'dn9'"),
    (lambda r: r["power_flow"].update(algorithm="magic"),
     "power_flow.algorithm: must be one of 'nr', 'iwamoto_nr', 'bfsw', 'gs', 'fdbx' or 'fdxb',"
     " got 'magic'"),
    (lambda r: r.update(weather={"sunny": True}), "weather: unknown key"),
    (lambda r: r["grids"]["dn3"].update(node="dn2"),
     "grids.dn3.node: road node 'dn2' already connects grid 'dn2' (one grid per node)"),
    (lambda r: r["grids"]["dn1"]["generators"][0].update(bus=99),
     "grids.dn1.generators[0].bus: bus 99 not in net (33 buses)"),
])
def test_single_mistakes_have_exact_messages(raw, mutate, expected):
    bad = copy.deepcopy(raw)
    mutate(bad)
    assert expected in problems(bad)


def test_cli_bad_scenario_exits_2_without_traceback(tmp_path, raw):
    import tomli_w

    bad = copy.deepcopy(raw)
    bad["fleet"][0]["colour"] = "red"
    bad["grids"]["dn3"]["mess_bus"] = 40
    path = tmp_path / "bad.toml"
    path.write_text(tomli_w.dumps(bad))
    res = subprocess.run([sys.executable, "-m", "experiments.cli", "run", str(path)],
                         capture_output=True, text=True)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert "fleet[0].colour: unknown key" in res.stderr
    assert "grids.dn3.mess_bus: bus 40 not in net" in res.stderr
    assert "has 2 problems" in res.stderr


def test_cli_unknown_experiment_and_bad_toml(tmp_path, capsys):
    assert main(["run", "nonsense"]) == 2
    assert "not a built-in experiment" in capsys.readouterr().err
    path = tmp_path / "broken.toml"
    path.write_text("[scenario\nname=1")
    assert main(["check", str(path)]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_cli_list_shows_builtins(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "three-dn" in out and "(default)" in out and "tiny" in out


def test_every_builtin_experiment_checks_clean(capsys):
    """``mescosim check NAME`` passes for every built-in experiment, whatever its schema."""
    from experiments.config import builtin

    for name in builtin():
        assert main(["check", name]) == 0, name
    assert "tsn study on ieee30" in capsys.readouterr().out


def test_tsn_study_file_problems_are_listed_at_once(tmp_path, capsys):
    src = (SCENARIO_DIR / "tsn-ieee30.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(src.replace('mip_gap = 1e-4', 'mip_gap = -1').replace(
        '"line 12-13" = 20.0', '"line 12-99" = 20.0').replace('[check]', '[check]\ncolour = 1'))
    assert main(["check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "solver.mip_gap: Input should be greater than 0" in err
    assert "check.colour: unknown key" in err
    assert "unknown branch 'line 12-99'" in err


def test_cli_policies_lists_every_registered_pair(capsys):
    from policies.registry import POLICIES

    assert main(["policies"]) == 0
    out = capsys.readouterr().out
    rows = {tuple(line.split()[:2]) for line in out.splitlines()[4:] if line.strip()}
    assert rows == {(n, s) for n, impl in POLICIES.items() for s in impl}


def test_bad_sweep_and_bench_flags_are_all_named_before_anything_runs(tmp_path, capsys):
    out = tmp_path / "never"
    code = main(["sweep", "tiny", "--scenarios", "100000000", "--seed", "-1", "--workers", "-1",
                 "--scheduler", "garbage", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    for flag in ("--scenarios", "--seed", "--workers", "--scheduler"):
        assert f"  - {flag}: " in err, err
    assert main(["bench", "tiny", "--policies", "greedy,idle,greedy", "--scenarios", "2",
                 "--out", str(out)]) == 2
    assert "--policies: each policy once; repeated: greedy" in capsys.readouterr().err
    assert not out.exists()


def test_run_never_writes_over_a_directory_or_its_own_scenario(tmp_path, capsys):
    """--out is checked before anything runs: an existing run directory, a file, the folder that
    holds the scenario file are all refused with exit 2, and nothing in them changes."""
    proj = tmp_path / "proj"
    proj.mkdir()
    scenario = proj / "config.toml"
    scenario.write_text((SCENARIO_DIR / "tiny.toml").read_text(encoding="utf-8"),
                        encoding="utf-8")
    before = scenario.read_bytes()
    assert main(["run", str(scenario), "--out", str(proj)]) == 2
    err = capsys.readouterr().err
    assert "--out: " in err and "already holds files" in err and "holds the scenario" in err
    assert scenario.read_bytes() == before and [p.name for p in proj.iterdir()] == ["config.toml"]
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["run", "tiny", "--out", str(afile)]) == 2
    assert f"--out: {afile} is a file, not a directory" in capsys.readouterr().err
    out = tmp_path / "run"
    assert main(["run", "tiny", "--out", str(out), "--no-figures"]) == 0
    assert main(["run", "tiny", "--out", str(out), "--no-figures"]) == 2
    assert "already holds files" in capsys.readouterr().err
