"""SimBench networks by code and SimBench's own load and PV profiles (grids/simbench.py, the
optional ``simbench`` extra): a scenario on a SimBench network with its profiles runs, and the
site sees exactly SimBench's load and PV of those quarter hours."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest

import mescosim
from experiments.cli import main
from grids.feeders import feeder_problem, make_feeder
from grids.simbench import grid_table, simbench_profiles
from sim.errors import ScenarioError

CODE = "1-LV-rural1--0-sw"
needs_simbench = pytest.mark.skipif(importlib.util.find_spec("simbench") is None,
                                    reason="needs the optional simbench package "
                                           "(pip install 'mescosim[simbench]')")


@pytest.fixture(scope="module")
def reference_net():
    """SimBench's own network of CODE, loaded once (about 5 s) for the tests that only read it."""
    import simbench

    return simbench.get_simbench_net(CODE)


def test_without_the_package_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "simbench", None)  # import simbench raises ImportError
    why = feeder_problem("simbench:" + CODE)
    assert why is not None and "mescosim[simbench]" in why
    with pytest.raises(ScenarioError, match=r"mescosim\[simbench\]"):
        simbench_profiles(CODE)


@needs_simbench
def test_a_simbench_code_is_a_feeder_and_an_unknown_code_is_refused(reference_net):
    net = make_feeder("simbench:" + CODE)
    ref = reference_net
    assert len(net.bus) == len(ref.bus) == 15 and len(net.load) == len(ref.load)
    assert net.ext_grid.bus.tolist() == ref.ext_grid.bus.tolist()
    assert make_feeder("simbench:" + CODE) is not net  # a fresh copy each time
    why = feeder_problem("simbench:1-LV-nowhere--0-sw")
    assert "unknown SimBench code '1-LV-nowhere--0-sw'" in why
    with pytest.raises(ScenarioError) as exc:
        mescosim.load("three-dn", overrides={"grids.dn2.feeder": "simbench:nope"})
    assert any("grids.dn2.feeder" in p and "unknown SimBench code" in p
               for p in exc.value.problems)


@needs_simbench
def test_profiles_are_simbench_absolute_values_per_unit(reference_net):
    import simbench

    prof = simbench_profiles(CODE, start_day=180, days=2)
    absolute = simbench.get_absolute_values(reference_net, True)
    load = absolute[("load", "p_mw")].sum(axis=1).to_numpy()
    pv = absolute[("sgen", "p_mw")].sum(axis=1).to_numpy()  # every sgen of this net is PV
    span = slice(180 * 96, 182 * 96)
    assert prof["load"].resolution_min == prof["pv"].resolution_min == 15
    assert len(prof["load"].values) == len(prof["pv"].values) == 2 * 96
    np.testing.assert_allclose(np.array(prof["load"].values) * prof["peak_load_mw"], load[span])
    np.testing.assert_allclose(np.array(prof["pv"].values) * prof["pv_cap_mw"], pv[span])
    assert prof["peak_load_mw"] == pytest.approx(load.max())
    # a summer day: PV is zero at night and produces around noon
    day = np.array(prof["pv"].values[:96])
    assert day[:16].max() == 0 and day[44:56].min() > 0.2
    with pytest.raises(ScenarioError) as exc:
        simbench_profiles(CODE, start_day=365, days=2)
    assert "past the 366 days" in exc.value.problems[0]


@needs_simbench
def test_a_scenario_on_a_simbench_grid_with_simbench_profiles_runs():
    table = grid_table(CODE, "dn1", start_day=180, days=1)
    assert table["feeder"] == "simbench:" + CODE
    assert sum(u["share"] for u in table["pv"]) == pytest.approx(1.0, abs=1e-12)
    cfg = mescosim.load("three-dn", overrides={
        "grids.dn1": table, "scenario.horizon_min": 360, "scenario.step_min": 15,
        "uncertainty.load_sigma": 0.0, "uncertainty.pv_sigma": 0.0,
        "fleet[0].p_max_mw": 0.02, "fleet[1].p_max_mw": 0.02, "compare.policies": ["idle"]})
    res = mescosim.run(cfg, seed=1)
    assert res.meta["status"] == "complete" and len(res.failures) == 0
    sites = res.tables["sites"]
    dn1 = sites[(sites.site == "dn1") & (sites.policy == "idle")].sort_values("time_min")
    assert len(dn1) == 24 and dn1.converged.all()
    prof = simbench_profiles(CODE, start_day=180, days=1)
    # with no forecast noise the site's load and PV are SimBench's, quarter hour by quarter hour
    np.testing.assert_allclose(dn1.load_mw, np.array(prof["load"].values[:24])
                               * prof["peak_load_mw"], rtol=1e-9)
    np.testing.assert_allclose(dn1.pv_mw, np.array(prof["pv"].values[:24])
                               * prof["pv_cap_mw"], rtol=1e-9, atol=1e-12)
    assert dn1.vm_min_pu.between(0.8, 1.1).all()


@needs_simbench
def test_a_scenario_file_names_a_simbench_grid_on_the_command_line(tmp_path):
    # the command line's own main() in this process (python -m experiments.cli is exercised
    # by test_config_cli and test_bad_scenarios); SimBench's network is loaded once per process
    out = tmp_path / "run"
    code = main(
        ["run", "three-dn", "--out", str(out),
         "--no-figures", "--set", f'grids.dn1.feeder="simbench:{CODE}"',
         "--set", "grids.dn1.mess_bus=3", "--set", "grids.dn1.pv=[{bus = 6, share = 1.0}]",
         "--set", "grids.dn1.generators=[]", "--set", "grids.dn1.dr.bus=7",
         "--set", "grids.dn1.storage.bus=12", "--set", "grids.dn1.peak_load_mw=0.07",
         "--set", "grids.dn1.pv_cap_mw=0.1",
         "--set", "scenario.horizon_min=120"])
    assert code == 0
    assert json.loads((out / "meta.json").read_text(encoding="utf-8"))["status"] == "complete"
    assert (out / "report.html").is_file()
    assert f'feeder = "simbench:{CODE}"' in (out / "config.toml").read_text(encoding="utf-8")
