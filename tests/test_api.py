"""``import mescosim``: the Python API agrees with the command line's own functions."""

from __future__ import annotations

import shutil
from importlib import metadata

import pandapower.networks as pn
import pandas as pd
import pytest

import mescosim
from experiments.config import load as config_load
from experiments.run import run_one
from grids.feeders import unregister_grid
from policies.baselines import IdlePolicy
from policies.registry import unregister_policy
from sim.errors import ScenarioError
from sim.types import Command, Decision
from tests.chromium import render

SHORT = {"scenario.horizon_min": 180}


def test_version_is_the_installed_distributions():
    assert mescosim.__version__ == metadata.version("mescosim")
    assert mescosim.__version__.count(".") >= 2


def test_load_takes_names_paths_dicts_and_overrides_of_both_forms():
    by_name = mescosim.load("three-dn", {"fleet[0].p_max_mw": 0.1, "scenario.horizon_min": 360})
    by_path = mescosim.load(mescosim.scenarios()["three-dn"],
                            ["fleet[0].p_max_mw=0.1", "scenario.horizon_min=360"])
    assert by_name == by_path
    assert by_name.fleet[0].p_max_mw == 0.1 and by_name.scenario.horizon_min == 360
    # a Config or its dict goes round unchanged; overrides apply to it
    assert mescosim.load(by_name) == by_name
    assert mescosim.load(by_name.to_toml_dict()) == by_name
    assert mescosim.load(by_name, {"fleet[1].name": "m9"}).fleet[1].name == "m9"


def test_load_errors_list_every_problem():
    with pytest.raises(ScenarioError) as exc:
        mescosim.load("three-dn", {"fleet[7].p_max_mw": 1.0, "scenario.step_min": 0})
    assert exc.value.problems == ("overrides['fleet[7].p_max_mw']: fleet[7]: index 7 is out of "
                                  "range (fleet has 2 entries, indices 0-1)",)
    with pytest.raises(ScenarioError) as exc:
        mescosim.load("no-such-scenario")
    assert "not a built-in experiment" in exc.value.problems[0]
    with pytest.raises(ScenarioError) as exc:
        mescosim.load("tsn-ieee30")
    assert "a tsn-study with its own settings" in exc.value.problems[0]


def test_run_returns_what_run_one_computes():
    cfg = mescosim.load("three-dn", SHORT)
    res = mescosim.run(cfg, seed=4)
    ref = run_one(config_load("three-dn", ["scenario.horizon_min=180"]), 4)
    assert res.seed == 4 and res.out is None
    assert set(res.tables) == set(ref.tables)
    for name, df in ref.tables.items():
        pd.testing.assert_frame_equal(res.tables[name], df)
    pd.testing.assert_frame_equal(res.metrics, ref.metrics)
    summary = res.summary()
    assert list(summary.index) == ["greedy", "stationary", "idle"]
    assert "sfi_total" in summary.columns
    assert res.failures.empty
    assert "three-dn" in repr(res) and "greedy" in repr(res)


def test_run_writes_a_run_directory_and_refuses_a_full_one(tmp_path):
    out = tmp_path / "run"
    res = mescosim.run("three-dn", seed=1, out=out, figures=False,
                       overrides={**SHORT, "compare.policies": []})
    assert res.out == out and (out / "meta.json").is_file()
    back = pd.read_parquet(out / "vehicles.parquet")
    pd.testing.assert_frame_equal(back, res.tables["vehicles"])
    with pytest.raises(ScenarioError) as exc:
        mescosim.run("three-dn", out=out, overrides=SHORT)
    assert exc.value.problems[0].startswith(f"out: {out} already holds files")


def test_run_refuses_a_study_and_a_bad_seed():
    with pytest.raises(ScenarioError, match="has a \\[study\\] section"):
        mescosim.run("sfi-quick")
    with pytest.raises(ScenarioError, match="seed: expected an integer >= 0, got -1"):
        mescosim.run("three-dn", seed=-1)


class Night:
    """Charge every parked vehicle at full power in the first ``hours`` hours."""

    def __init__(self, hours: int = 1) -> None:
        self.hours = hours

    def reset(self, problem, rng) -> None:
        pass

    def decide(self, state):
        on = state.time_min < 60 * self.hours
        return Decision(tuple(Command(v.name, p_mw=v.p_ch_max_mw if on and v.parked else 0.0)
                              for v in state.vehicles))

    def params(self):
        return {"hours": self.hours}


@pytest.fixture
def night():
    mescosim.register_policy("api-night", Night)
    yield "api-night"
    unregister_policy("api-night")


def test_register_policy_runs_and_is_listed(night):
    res = mescosim.run("three-dn", overrides={**SHORT, "policy": {"name": night,
                                                                  "params": {"hours": 2}},
                                              "compare.policies": ["idle"]})
    v = res.tables["vehicles"]
    charged = v[(v.policy == night)].groupby("time_min").p_mw.sum()
    assert (charged.loc[:60] > 0).all() and (charged.loc[120:] == 0).all()
    assert (v[v.policy == "idle"].p_mw == 0).all()
    pol = mescosim.policies()
    assert pol[pol.policy == night].to_dict("records") == [
        {"policy": night, "system": "dn-sites", "class": f"{__name__}.Night"}]


def test_register_policy_refuses_what_is_not_a_policy_or_taken(night):
    with pytest.raises(ScenarioError) as exc:
        mescosim.register_policy("greedy", Night)
    assert exc.value.problems == ("policy 'greedy': is a built-in policy; pass replace=True to "
                                  "replace it",)
    with pytest.raises(ScenarioError) as exc:
        mescosim.register_policy(night, Night)
    assert "is registered already" in exc.value.problems[0]
    with pytest.raises(ScenarioError) as exc:
        mescosim.register_policy("x", object, systems=("dn-sites", "mars"))
    assert exc.value.problems == ("policy 'x' does not implement the Policy protocol "
                                  "(sim.protocols.Policy): no method reset, decide, params",)
    with pytest.raises(ScenarioError) as exc:
        mescosim.register_policy("y", IdlePolicy, systems=("mars",))
    assert exc.value.problems == ("policy 'y': unknown system 'mars'; systems: dn-sites, "
                                  "transmission, missions",)


def test_a_policy_registered_here_is_refused_for_worker_processes(night, tmp_path):
    with pytest.raises(ScenarioError) as exc:
        mescosim.bench("three-dn", ["idle", night], scenarios=1, out=tmp_path / "b", workers=2,
                       overrides=SHORT)
    assert exc.value.problems[0].startswith(f"{night!r}: registered with mescosim.register_* in "
                                            f"this process only")
    assert not (tmp_path / "b").exists()


@pytest.fixture
def ring():
    calls = []

    def build():
        calls.append(1)
        return pn.simple_mv_open_ring_net()

    mescosim.register_grid("api-ring", build)
    yield calls
    unregister_grid("api-ring")


def test_register_grid_builds_a_site_once_per_process(ring):
    res = mescosim.run("three-dn", overrides={**SHORT, "grids.dn3.feeder": "api-ring",
                                              "compare.policies": []})
    ref = mescosim.run("three-dn", overrides={**SHORT, "compare.policies": []})
    assert len(ring) == 1 and "api-ring" in mescosim.grids()  # built once, then copied
    pd.testing.assert_frame_equal(res.tables["buses"], ref.tables["buses"])  # the same net
    with pytest.raises(ScenarioError, match="is a built-in feeder"):
        mescosim.register_grid("case33bw", lambda: None)
    with pytest.raises(ScenarioError, match="must be a callable"):
        mescosim.register_grid("other", 42)


def test_a_builder_that_does_not_give_a_net_is_a_scenario_error():
    mescosim.register_grid("api-bad", lambda: {"bus": []})
    try:
        with pytest.raises(ScenarioError) as exc:
            mescosim.load("three-dn", {"grids.dn3.feeder": "api-bad"})
        assert "grids.dn3.feeder: 'api-bad' did not give a pandapower net (got dict)" in (
            exc.value.problems)
    finally:
        unregister_grid("api-bad")


@pytest.mark.slow
def test_sweep_and_bench_wrap_the_cli_functions(tmp_path):
    from experiments.bench import bench_tables

    sw = mescosim.sweep("three-dn", scenarios=2, out=tmp_path / "s", workers=0,
                        overrides={**SHORT, "compare.policies": []})
    assert sw.summary.ok == 2 and list(sw.manifest.status) == ["ok", "ok"]
    assert set(sw.results.policy) == {"greedy"}
    b = mescosim.bench("three-dn", ["idle", "greedy"], scenarios=2, out=tmp_path / "b",
                       workers=0, overrides=SHORT)
    assert set(b.tables) == {"stats", "paired", "solver", "wall"}
    pd.testing.assert_frame_equal(b.tables["paired"],
                                  bench_tables(tmp_path / "b", ["idle", "greedy"])["paired"])
    assert (tmp_path / "b" / "bench_stats.parquet").is_file()
    # common random numbers: the sweep's greedy rows are the bench's greedy rows, scenario by
    # scenario (same seed, same realisation)
    s_rows = sw.results.query("entity == 'system' and metric == 'sfi_total'")
    b_rows = b.results.query("entity == 'system' and metric == 'sfi_total' "
                             "and policy == 'greedy'")
    assert s_rows.value.tolist() == pytest.approx(b_rows.value.tolist(), abs=1e-12)


@pytest.fixture(scope="module")
def report_run(tmp_path_factory):
    """One run with figures and its report.html, shared by the report tests (they only read it)."""
    return mescosim.run("three-dn", seed=1, out=tmp_path_factory.mktemp("report") / "run",
                        figures=True, overrides={**SHORT, "compare.policies": ["idle"]})


def test_report_html_is_self_contained(report_run):
    import base64
    import re

    res = report_run
    page = (res.out / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    # nothing is fetched: no URL, no script, no stylesheet link
    assert not re.search(r"(?:src|href)=['\"](?!data:|#)", page)
    assert "http://" not in page and "https://" not in page and "<script" not in page
    images = re.findall(r"src=\"data:image/png;base64,([^\"]+)\"", page)
    assert len(images) == len(res.figures) > 0
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    # the tables, the scenario as resolved and the versions are in it
    for text in ("Summary per policy", "<th>greedy</th>", "<th>idle</th>",
                 "Recorded failures (0)", "name = &quot;three-dn&quot;",
                 f"<td>{res.meta['versions']['pandapower']}</td>"):
        assert text in page, text


def test_report_html_lists_failures(tmp_path):
    res = mescosim.run("three-dn", seed=1, out=tmp_path / "run", figures=False,
                       overrides={**SHORT, "compare.policies": [],
                                  "power_flow.max_iteration": 1,
                                  "power_flow.tolerance_mva": 1e-14})
    n = len(res.failures)
    page = (res.out / "report.html").read_text(encoding="utf-8")
    assert n > 0 and f"Recorded failures ({n})" in page
    assert "none written (--no-figures)" in page


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium package")
def test_report_html_renders_in_headless_chromium_without_console_errors(report_run, tmp_path):
    res = report_run
    r = render(res.out / "report.html", tmp_path)
    assert r.dom.returncode == 0, r.dom.stderr[-2000:]
    assert "Summary per policy" in r.dom.stdout and r.dom.stdout.count("<img") == len(res.figures)
    assert r.console == []
    assert r.snap.returncode == 0 and r.shot.stat().st_size > 20_000
