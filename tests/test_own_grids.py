"""A scenario's own grid: any pandapower.networks factory by name, or a pandapower JSON file that
is checked before pandapower reads it (a file naming a module outside pandapower's own is refused
before anything is imported from it)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandapower as pp
import pandas as pd
import pytest

import mescosim
from experiments.cli import main
from experiments.config import load
from grids.feeders import json_problems, make_feeder
from sim.errors import ScenarioError

KERBER = "kerber_landnetz_freileitung_1"
# a 0.4 kV village feeder (15 buses, 0.16 MVA transformer): a load to match, the MESS at bus 8
DN3 = ('grids.dn3={node="dn3", feeder="%s", peak_load_mw=0.1, load_shape="commercial", '
       'mess_bus=8}')
IDLE = ['policy={name="idle"}', "compare.policies=[]", "scenario.horizon_min=240"]


def test_a_pandapower_networks_factory_runs_from_the_command_line(tmp_path, monkeypatch):
    # the command line's own main() in this process (a fresh interpreter only adds imports)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    code = main(["run", "three-dn", "--no-figures", "--out", str(out), "--set", DN3 % KERBER,
                 *sum([["--set", s] for s in IDLE], [])])
    assert code == 0
    buses = pd.read_parquet(out / "buses.parquet")
    sites = pd.read_parquet(out / "sites.parquet")
    dn3 = buses[buses.site == "dn3"]
    assert dn3.element.nunique() == 15  # the Kerber net's buses, not the open ring's
    assert sites[sites.site == "dn3"].converged.all()
    # a 0.4 kV feeder under 0.1 MW: voltages near 1 p.u., none above the slack's
    assert dn3.value.between(0.9, 1.0 + 1e-9).all() and dn3.value.min() < 0.999


def _kerber_json(path: Path) -> Path:
    pp.to_json(make_feeder(KERBER), str(path))
    return path


def test_a_pandapower_json_file_gives_the_same_run_as_the_factory(tmp_path):
    _kerber_json(tmp_path / "village.json")
    scenario = tmp_path / "scenario.toml"
    scenario.write_text((Path(mescosim.scenarios()["three-dn"])).read_text())
    by_file = mescosim.run(scenario, seed=2, overrides=[DN3 % "village.json", *IDLE])
    by_name = mescosim.run("three-dn", seed=2, overrides=[DN3 % KERBER, *IDLE])
    assert by_file.config.grids["dn3"].feeder == str(tmp_path / "village.json")
    a, b = (r.tables["buses"].query("site == 'dn3'") for r in (by_file, by_name))
    assert len(a) == len(b) > 0
    assert a.element.nunique() == 15
    np.testing.assert_allclose(a.value.to_numpy(), b.value.to_numpy(), rtol=0, atol=1e-9)


def _with_object(doc: dict, obj: dict) -> dict:
    """``doc`` with ``obj`` nested where pandapower would decode it: inside a table's JSON
    string."""
    doc = json.loads(json.dumps(doc))
    bus = doc["_object"]["bus"]
    frame = json.loads(bus["_object"])
    frame["data"][0][0] = obj
    bus["_object"] = json.dumps(frame)
    return doc


@pytest.mark.parametrize("module, cls", [("os", "system"), ("subprocess", "Popen"),
                                         ("builtins", "eval"), ("pandas.io.pickle",
                                                                "read_pickle")])
def test_a_json_file_naming_another_module_is_refused(tmp_path, monkeypatch, module, cls):
    doc = json.loads(_kerber_json(tmp_path / "ok.json").read_text())
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_with_object(doc, {"_module": module, "_class": cls,
                                                 "_object": "echo owned"})))

    def never(*args, **kwargs):
        raise AssertionError("pandapower was asked to read the file")

    monkeypatch.setattr(pp, "from_json_string", never)
    with pytest.raises(ScenarioError) as exc:
        load("three-dn", [DN3 % str(bad)])
    msgs = [p for p in exc.value.problems if p.startswith("grids.dn3.feeder")]
    assert msgs == [f"grids.dn3.feeder: {bad}: refused: names {module}:{cls} (only pandapower's "
                    f"own classes, pandas and numpy data and Python's plain containers may be "
                    f"decoded)"]


def test_a_refused_module_is_never_imported(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "grid_probe_mod.py").write_text(f"open({str(marker)!r}, 'w').close()\n"
                                                f"class Thing:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    doc = json.loads(_kerber_json(tmp_path / "ok.json").read_text())
    text = json.dumps(_with_object(doc, {"_module": "grid_probe_mod", "_class": "Thing",
                                         "_object": "{}"}))
    problems = json_problems(text, "probe.json")
    assert problems == ["probe.json: refused: names grid_probe_mod:Thing (only pandapower's own "
                        "classes, pandas and numpy data and Python's plain containers may be "
                        "decoded)"]
    assert not marker.exists() and "grid_probe_mod" not in sys.modules
    # the file pandapower itself wrote passes
    assert json_problems(json.dumps(doc), "ok.json") == []


def test_json_that_is_not_a_pandapower_net(tmp_path):
    assert json_problems('{"a": [1, 2]}', "x.json") == [
        'x.json: not a pandapower net (expected a JSON object with "_class": "pandapowerNet", '
        'as pandapower.to_json writes)']
    assert json_problems("{not json", "y.json")[0].startswith("y.json: not valid JSON (")
    (tmp_path / "empty.json").write_text("{}")
    with pytest.raises(ScenarioError) as exc:
        load("three-dn", [DN3 % str(tmp_path / "empty.json"), 'grids.dn1.feeder="nowhere.json"'])
    probs = exc.value.problems
    assert "grids.dn1.feeder: no such pandapower JSON file 'nowhere.json'" not in probs  # relative
    assert any(p.startswith("grids.dn1.feeder: no such pandapower JSON file '")
               and p.endswith("nowhere.json'") for p in probs)
    assert any(p.startswith("grids.dn3.feeder: ") and "not a pandapower net" in p for p in probs)


def test_factory_names_and_their_buses_are_checked():
    with pytest.raises(ScenarioError) as exc:
        load("three-dn", [DN3 % KERBER, "grids.dn3.mess_bus=40",
                          'grids.dn2.feeder="create_kerber_net"'])
    probs = exc.value.problems
    assert "grids.dn3.mess_bus: bus 40 not in net (15 buses)" in probs
    # a factory that needs arguments is not a feeder
    assert any(p.startswith("grids.dn2.feeder: unknown feeder 'create_kerber_net'; valid: ")
               for p in probs)
    # pandapower's own create_ name works as well as the short one
    assert len(make_feeder(f"create_{KERBER}").bus) == len(make_feeder(KERBER).bus) == 15


def test_a_relative_json_path_on_a_builtin_scenario_is_read_from_the_working_directory(
        tmp_path, monkeypatch):
    _kerber_json(tmp_path / "village.json")
    monkeypatch.chdir(tmp_path)
    cfg = load("three-dn", [DN3 % "village.json"])
    assert cfg.grids["dn3"].feeder == str(tmp_path / "village.json")
