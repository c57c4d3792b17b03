"""Command-line fixes: --version, `list` with policies and grids, --set into list entries, and no
solver output on stdout."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pytest

from experiments.cli import main
from experiments.config import apply_overrides, read_raw, resolve
from sim.errors import ScenarioError


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"mescosim {metadata.version('mescosim')}\n"


def test_list_shows_scenarios_policies_with_systems_and_grids(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    scen, pols, grids = out.split("\n\n")
    assert scen.startswith("scenarios (mescosim run NAME):\n")
    assert "  three-dn " in scen and "(default)" in scen
    lines = {ln.split()[0]: ln.split(None, 1)[1] for ln in pols.splitlines()[1:-1]}
    assert lines["greedy"] == "dn-sites, missions, transmission"
    assert lines["idle"] == "dn-sites, transmission"
    assert lines["uc-milp"] == "transmission"
    assert grids.splitlines()[1].strip() == "case33bw, cigre_mv, mv_open_ring"
    assert "pandapower.networks" in grids


def _three_dn() -> dict:
    return read_raw(resolve("three-dn"))


def test_set_reaches_list_entries():
    raw = apply_overrides(_three_dn(), ["fleet[0].p_max_mw=0.1", "fleet.1.e_init_mwh=0.5",
                                        "grids.dn1.pv[1].share=0.25",
                                        'compare.policies[0]="idle"'])
    assert raw["fleet"][0]["p_max_mw"] == 0.1
    assert raw["fleet"][1]["e_init_mwh"] == 0.5
    assert raw["grids"]["dn1"]["pv"][1]["share"] == 0.25
    assert raw["compare"]["policies"][0] == "idle"
    # nothing else moved
    ref = _three_dn()
    assert raw["fleet"][0] == {**ref["fleet"][0], "p_max_mw": 0.1}
    assert raw["fleet"][1]["name"] == ref["fleet"][1]["name"]


def test_set_errors_name_the_flag_and_what_is_wrong_all_at_once():
    with pytest.raises(ScenarioError) as exc:
        apply_overrides(_three_dn(), ["fleet[2].p_max_mw=0.1", "fleet.p_max_mw=0.1",
                                     "scenario[0]=1", "nothing[0].x=1", "fleet[0]p=1", "=3"])
    assert exc.value.problems == (
        "--set fleet[2].p_max_mw=0.1: fleet[2]: index 2 is out of range (fleet has 2 entries, "
        "indices 0-1)",
        "--set fleet.p_max_mw=0.1: fleet.p_max_mw: fleet is an array; name an entry, e.g. "
        "fleet[0].p_max_mw",
        "--set scenario[0]=1: scenario[0]: scenario is not an array (it is table)",
        "--set nothing[0].x=1: nothing[0]: nothing is not an array (it is missing)",
        "--set fleet[0]p=1: expected KEY=VALUE, for example scenario.step_min=15 or "
        "fleet[0].p_max_mw=0.1",
        "--set =3: expected KEY=VALUE, for example scenario.step_min=15 or "
        "fleet[0].p_max_mw=0.1",
    )


def test_set_with_an_index_through_the_cli(capsys):
    assert main(["check", "three-dn", "--set", "fleet[0].p_max_mw=0.1"]) == 0
    assert main(["check", "three-dn", "--set", "fleet[5].p_max_mw=0.1"]) == 2
    err = capsys.readouterr().err
    assert "--set fleet[5].p_max_mw=0.1: fleet[5]: index 5 is out of range" in err
    assert "Traceback" not in err
    # the value reaches validation: a vehicle power of zero is refused there
    assert main(["check", "three-dn", "--set", "fleet[1].p_max_mw=0"]) == 2
    assert "fleet[1].p_max_mw: must be > 0, got 0" in capsys.readouterr().err


@pytest.mark.slow
def test_no_solver_output_on_stdout(capfd, tmp_path):
    # a fresh process: HiGHS prints its banner once per process, at its first Highs object
    cmd = [sys.executable, "-c", "import sys; from experiments.cli import main; "
           "sys.exit(main(sys.argv[1:]))"]
    res = subprocess.run([*cmd, "run", "three-dn", "--no-figures", "--out", str(tmp_path / "r")],
                         timeout=600, cwd=tmp_path)
    assert res.returncode == 0
    out, err = capfd.readouterr()
    assert out.startswith("mescosim run: three-dn (seed 7)")  # stdout itself still works
    assert "HiGHS" not in out and "Running HiGHS" not in out
    assert "HiGHS" not in err
    # the milp policy solves with HiGHS at every window: nothing of it on stdout either
    res = subprocess.run([*cmd, "run", "three-dn", "--no-figures", "--out", str(tmp_path / "m"),
                          "--set", 'policy={name="milp"}', "--set", "compare.policies=[]",
                          "--set", "scenario.horizon_min=240"], timeout=600, cwd=tmp_path)
    assert res.returncode == 0
    out, _ = capfd.readouterr()
    assert out.startswith("mescosim run: three-dn") and "HiGHS" not in out
    assert "milp" in out
