"""Plugins: a policy and a grid from a package of the user's own, by "module:Class" name in a
scenario and by entry points, in run, sweep (local worker processes) and bench; and the errors
for a module, class or contract that is not there."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

import mescosim
from experiments.config import load
from grids.feeders import load_plugins as load_grid_plugins
from grids.feeders import unregister_grid
from policies.registry import load_plugins as load_policy_plugins
from policies.registry import unregister_policy
from sim.errors import ScenarioError

DIST = "mescosim-test-plugin"
# the short horizon keeps every run to a few steps; 00:00-04:00 is all night
SHORT = ["--set", "scenario.horizon_min=240"]

RULES = '''
"""A night-charging rule: every parked vehicle charges at full power from 00:00 to 06:00."""

from sim.types import Command, Decision


class NightCharger:
    name = "night"
    systems = ("dn-sites",)

    def __init__(self, start_h: int = 0, end_h: int = 6) -> None:
        self.start_h, self.end_h = start_h, end_h

    def reset(self, problem, rng) -> None:
        pass

    def decide(self, state) -> Decision:
        night = self.start_h <= (state.time_min // 60) % 24 < self.end_h
        return Decision(tuple(
            Command(v.name, p_mw=v.p_ch_max_mw if (night and v.parked) else 0.0)
            for v in state.vehicles))

    def params(self) -> dict:
        return {"start_h": self.start_h, "end_h": self.end_h}


class NotAPolicy:
    def reset(self, problem, rng) -> None:
        pass
'''

GRIDS = '''
import pandapower.networks as pn


def small_ring():
    return pn.simple_mv_open_ring_net()
'''

PYPROJECT = f'''
[build-system]
requires = []
build-backend = "wheel_backend"
backend-path = ["."]

[project]
name = "{DIST}"
version = "0.0.1"
'''

ENTRY_POINTS = """
[mescosim.policies]
night = my_pkg.rules:NightCharger
broken = my_pkg.rules:NoSuchClass

[mescosim.grids]
small_ring = my_pkg.grids:small_ring
"""

# A PEP 517 backend of a few lines, so that installing the plugin needs no build tools (and no
# network): a wheel is a zip of the package and its dist-info.
BACKEND = f'''
import base64, hashlib, pathlib, zipfile

NAME, VERSION = "{DIST.replace("-", "_")}", "0.0.1"
ENTRY_POINTS = {ENTRY_POINTS!r}


def _files():
    here = pathlib.Path(__file__).parent
    info = f"{{NAME}}-{{VERSION}}.dist-info"
    files = {{str(p.relative_to(here)): p.read_bytes()
              for p in sorted((here / "my_pkg").glob("*.py"))}}
    files[f"{{info}}/METADATA"] = (
        f"Metadata-Version: 2.1\\nName: {DIST}\\nVersion: {{VERSION}}\\n").encode()
    files[f"{{info}}/WHEEL"] = (
        b"Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n")
    files[f"{{info}}/entry_points.txt"] = ENTRY_POINTS.encode()
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{{name}},sha256={{digest}},{{len(data)}}")
    record.append(f"{{info}}/RECORD,,")
    files[f"{{info}}/RECORD"] = ("\\n".join(record) + "\\n").encode()
    return files


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name = f"{{NAME}}-{{VERSION}}-py3-none-any.whl"
    with zipfile.ZipFile(pathlib.Path(wheel_directory) / name, "w") as zf:
        for path, data in _files().items():
            zf.writestr(path, data)
    return name
'''


def _pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    """The plugin package, installed into the running environment for this module's tests."""
    src = tmp_path_factory.mktemp("plugin")
    (src / "my_pkg").mkdir()
    (src / "my_pkg" / "__init__.py").write_text("")
    (src / "my_pkg" / "rules.py").write_text(textwrap.dedent(RULES))
    (src / "my_pkg" / "grids.py").write_text(textwrap.dedent(GRIDS))
    (src / "pyproject.toml").write_text(textwrap.dedent(PYPROJECT))
    (src / "wheel_backend.py").write_text(BACKEND)
    # installed into a directory of its own, put on this process's path and on the path of the
    # command-line processes below: the shared environment (and tests running beside these
    # ones) never see the plugin
    site = tmp_path_factory.mktemp("plugin-site")
    res = _pip("install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site),
               str(src))
    assert res.returncode == 0, res.stderr
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    load_policy_plugins(refresh=True)
    load_grid_plugins(refresh=True)
    try:
        yield src
    finally:
        sys.path.remove(str(site))
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in os.environ["PYTHONPATH"].split(os.pathsep) if p != str(site))
        if not os.environ["PYTHONPATH"]:
            del os.environ["PYTHONPATH"]
        for name in ("night", "broken", "my_pkg.rules:NightCharger"):
            unregister_policy(name)
        unregister_grid("small_ring")
        for mod in [m for m in sys.modules if m == "my_pkg" or m.startswith("my_pkg.")]:
            del sys.modules[mod]
        importlib.invalidate_caches()
        load_policy_plugins(refresh=True)
        load_grid_plugins(refresh=True)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    # a fresh process: the CLI finds the plugin through the installed package alone
    return subprocess.run([sys.executable, "-c", "import sys; from experiments.cli import main; "
                           "sys.exit(main(sys.argv[1:]))", *args], capture_output=True,
                          text=True, timeout=600, cwd=cwd)


@pytest.mark.slow
def test_bench_with_a_plugin_policy_on_two_worker_processes(plugin, tmp_path):
    out = tmp_path / "bench"
    res = _cli("bench", "three-dn", "--policies", "greedy,my_pkg.rules:NightCharger",
               "--scenarios", "2", "--workers", "2", "--out", str(out), "--no-figures",
               "--no-progress", *SHORT, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    man = pd.read_json(out / "manifest.jsonl", lines=True)
    assert sorted(man.status) == ["ok", "ok"]
    assert man.worker.nunique() >= 1 and (man.worker != "").all()
    stats = pd.read_parquet(out / "bench_stats.parquet")
    assert set(stats.policy) == {"greedy", "my_pkg.rules:NightCharger"}
    night = stats[(stats.policy == "my_pkg.rules:NightCharger")
                  & (stats.metric == "energy_delivered_mwh")]
    # the rule charged all night: energy went from the grids into the vehicles in both scenarios
    assert len(night) == 1 and night.iloc[0]["n"] == 2 and night.iloc[0]["worst"] < 0
    assert "my_pkg.rules:NightCharger" in res.stdout


def test_entry_point_policy_and_grid_run_through_the_api(plugin):
    res = mescosim.run("three-dn", seed=1, overrides={
        "scenario.horizon_min": 180, "policy": {"name": "night", "params": {"end_h": 2}},
        "compare.policies": ["idle"], "grids.dn3.feeder": "small_ring"})
    v = res.tables["vehicles"]
    night = v[v.policy == "night"]
    assert set(res.tables["vehicles"].policy) == {"night", "idle"}
    # charged in hours 0 and 1 (end_h = 2), not in hour 2
    assert (night[night.time_min < 120].p_mw > 0).any()
    assert (night[night.time_min >= 120].p_mw == 0).all()
    assert res.meta["policies"][0]["params"] == {"start_h": 0, "end_h": 2}
    assert "small_ring" in mescosim.grids()
    pol = mescosim.policies()
    assert pol[pol.policy == "night"].system.tolist() == ["dn-sites"]


def test_a_broken_entry_point_is_reported_when_named(plugin):
    with pytest.raises(ScenarioError) as exc:
        load("three-dn", ["policy.name=\"broken\""])
    (msg,) = [p for p in exc.value.problems if p.startswith("policy.name")]
    assert "entry point my_pkg.rules:NoSuchClass" in msg and "cannot be loaded" in msg


@pytest.fixture
def local_module(tmp_path, monkeypatch):
    (tmp_path / "local_rules.py").write_text(textwrap.dedent(RULES))
    (tmp_path / "local_broken.py").write_text("raise RuntimeError('broken on import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    unregister_policy("local_rules:NightCharger")
    for name in ("local_rules", "local_broken"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize("name, expected", [
    ("no_such_module_xyz:Rule", "policy.name: policy 'no_such_module_xyz:Rule': cannot import "
                                "module 'no_such_module_xyz' (No module named "
                                "'no_such_module_xyz')"),
    ("local_rules:Missing", "policy.name: policy 'local_rules:Missing': module 'local_rules' "
                            "has no class 'Missing'"),
    ("local_rules:NotAPolicy", "policy.name: policy 'local_rules:NotAPolicy' does not implement "
                               "the Policy protocol (sim.protocols.Policy): no method decide, "
                               "params"),
    ("local_broken:X", "policy.name: policy 'local_broken:X': importing module 'local_broken' "
                       "failed: RuntimeError: broken on import"),
    ("local_rules:", "policy.name: unknown policy 'local_rules:': a plugin policy is named "
                     "'module:Class', e.g. 'my_pkg.rules:NightCharger'"),
])
def test_module_class_names_that_do_not_resolve_are_scenario_errors(local_module, name,
                                                                    expected):
    with pytest.raises(ScenarioError) as exc:
        load("three-dn", [f"policy.name={name!r}".replace("'", '"')])
    assert [p for p in exc.value.problems if p.startswith("policy.name")] == [expected]


def test_a_name_without_a_colon_is_never_imported(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "never_imported_rules.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n" + textwrap.dedent(RULES))
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ScenarioError) as exc:
        load("three-dn", ['policy.name="never_imported_rules"'])
    assert not marker.exists() and "never_imported_rules" not in sys.modules
    (msg,) = exc.value.problems
    assert msg.startswith("policy.name: unknown policy 'never_imported_rules'; valid: ")
    assert "greedy" in msg


def test_module_class_policy_runs_in_process_and_checks_its_parameters(local_module):
    cfg = load("three-dn", ['policy.name="local_rules:NightCharger"', "policy.params={}",
                            "compare.policies=[]", "scenario.horizon_min=120"])
    res = mescosim.run(cfg)
    assert set(res.tables["vehicles"].policy) == {"local_rules:NightCharger"}
    with pytest.raises(ScenarioError) as exc:
        load("three-dn", ['policy.name="local_rules:NightCharger"',
                          "policy.params={start_hour=1}"])
    assert exc.value.problems == ("policy.params.start_hour: policy 'local_rules:NightCharger' "
                                  "takes no parameter 'start_hour' (accepted: start_h, end_h)",)
