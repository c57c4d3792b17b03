"""Bad scenarios through the command line: each mistake gives its exact message and exit code 2.

Every case starts from the built-in ``tiny`` scenario (two MV rings, one truck), changes one
thing, writes the file and runs ``mescosim check`` on it in-process. The whole error output is
compared, so a message that changes wording, gains a traceback or reports a second, spurious
problem fails the test.
"""

from __future__ import annotations

import copy
import math
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import tomli_w

from experiments.cli import main
from experiments.config import SCENARIO_DIR

TINY = tomllib.loads((SCENARIO_DIR / "tiny.toml").read_text())
SOLAR = [0.0] * 6 + [0.05, 0.15, 0.32, 0.50, 0.65, 0.75, 0.78, 0.74, 0.64, 0.48, 0.30, 0.12,
                     0.02] + [0.0] * 5
LOAD = [0.45, 0.42, 0.40, 0.40, 0.42, 0.50, 0.65, 0.75, 0.70, 0.62, 0.58, 0.57, 0.56, 0.55,
        0.57, 0.62, 0.72, 0.88, 0.98, 1.00, 0.95, 0.82, 0.65, 0.52]


def write_csv(folder: Path, name: str = "prof.csv", column: str = "b",
              values: list | None = None) -> None:
    vals = LOAD if values is None else values
    (folder / name).write_text(f"hour,{column}\n" + "".join(f"{i},{v}\n"
                                                            for i, v in enumerate(vals)))


def csv_profile(folder: Path, values: list | None = None, **spec) -> dict:
    write_csv(folder, values=values)
    return {"csv": "prof.csv", "column": "b", **spec}


def _set(path: str, value):
    """A mutation that sets one dotted key (list indices as numbers)."""
    def mutate(raw, folder):
        node = raw
        parts = path.split(".")
        for p in parts[:-1]:
            node = node[int(p)] if p.isdigit() else node[p]
        last = parts[-1]
        node[int(last) if last.isdigit() else last] = value(folder) if callable(value) else value
    return mutate


def _drop_edges_to_b(raw, folder):
    raw["road"]["edges"] = [e for e in raw["road"]["edges"] if "b" not in (e["from"], e["to"])]


CASES = {
    # unknown keys and wrong types
    "unknown section": (_set("weather", {"sunny": True}), ["weather: unknown key"]),
    "unknown key with hint": (_set("fleet.0.p_max_kw", 250.0),
                              ["fleet[0].p_max_kw: unknown key (did you mean 'p_max_mw'?)"]),
    "string for a number": (_set("fleet.0.p_max_mw", "fast"),
                            ["fleet[0].p_max_mw: expected a number, got string 'fast'"]),
    "float for an integer": (_set("scenario.step_min", 60.5),
                             ["scenario.step_min: expected an integer, got number 60.5"]),
    "table for a list": (_set("road.nodes", {"depot": 1}),
                         ["road.nodes: expected an array, got table {'depot': 1}"]),
    # units out of range and SOC windows
    "negative capacity": (_set("fleet.0.capacity_mwh", -1.0),
                          ["fleet[0].capacity_mwh: must be > 0, got -1.0"]),
    "efficiency above 1": (_set("fleet.0.eta_ch", 1.2),
                           ["fleet[0].eta_ch: must be <= 1, got 1.2"]),
    "e_max above capacity": (_set("fleet.0.e_max_mwh", 0.6),
                             ["fleet[0].e_max_mwh: 0.6 exceeds capacity_mwh 0.5"]),
    "empty SOC window": (_set("fleet.0.e_min_mwh", 0.475),
                         ["fleet[0].e_min_mwh: 0.475 must be < e_max_mwh 0.475"]),
    "start outside SOC window": (_set("fleet.0.e_init_mwh", 0.05),
                                 ["fleet[0].e_init_mwh: 0.05 is outside the usable window "
                                  "[0.1, 0.475]"]),
    "storage start outside window": (_set("grids.b.storage.e_init_mwh", 0.5),
                                     ["grids.b.storage: need e_min_mwh <= e_init_mwh <= "
                                      "e_max_mwh, got 0.05 / 0.5 / 0.4"]),
    "autocorrelation of 1": (_set("uncertainty", {"rho": 1.0}),
                             ["uncertainty.rho: must be < 1, got 1.0"]),
    "voltage band upside down": (_set("power_flow", {"vm_min_pu": 1.05, "vm_max_pu": 0.95}),
                                 ["power_flow.vm_min_pu: 1.05 must be < vm_max_pu 0.95"]),
    "unknown failure policy": (_set("power_flow", {"on_failure": "ignore"}),
                               ["power_flow.on_failure: must be one of 'continue', 'mark' or "
                                "'stop', got 'ignore'"]),
    # buses, nodes, feeders and stations that do not exist
    "MESS bus not in net": (_set("grids.a.mess_bus", 77),
                            ["grids.a.mess_bus: bus 77 not in net (7 buses)"]),
    "generator bus not in net": (_set("grids.b.generators.0.bus", 99),
                                 ["grids.b.generators[0].bus: bus 99 not in net (7 buses)"]),
    "unknown feeder": (_set("grids.a.feeder", "ieee9000"),
                       ["grids.a.feeder: unknown feeder 'ieee9000'; valid: case33bw, cigre_mv, "
                        "mv_open_ring"]),
    "grid on a missing road node": (_set("grids.a.node", "harbour"),
                                    ["grids.a.node: 'harbour' is not a road node (depot, a, b)"]),
    "vehicle starts off the road": (_set("fleet.0.start", "harbour"),
                                    ["fleet[0].start: 'harbour' is not a road node"]),
    "edge to a missing node": (_set("road.edges.1.to", "c"),
                               ["road.edges[1].to: unknown node 'c'"]),
    "PV shares do not sum to 1": (_set("grids.a.pv", [{"bus": 3, "share": 0.5}]),
                                  ["grids.a.pv: shares sum to 0.5, expected 1"]),
    # unreachable pairs, named
    "station cut off": (_drop_edges_to_b,
                        ["road: 'b' cannot be reached from 'a'",
                         "road: 'a' cannot be reached from 'b'",
                         "road: 'depot' cannot be reached from 'b'",
                         "road: 'b' cannot be reached from 'depot'"]),
    "zero travel time": (_set("road.edges.0.travel_min", 0),
                         ["road.edges[0].travel_min: must be >= 1, got 0"]),
    # profiles
    "NaN in an inline profile": (_set("grids.a.load_shape", [0.5, math.nan] + [0.5] * 22),
                                 ["grids.a.load_shape[1]: must be finite, got nan"]),
    "negative inline profile": (_set("grids.a.load_shape", [0.5, -0.2] + [0.5] * 22),
                                ["grids.a.load_shape[1]: must be >= 0, got -0.2"]),
    "profile of the wrong length": (_set("grids.a.load_shape", [0.5] * 5),
                                    ["grids.a.load_shape: profile covers 5 x 60 = 300 min, "
                                     "which is neither a whole number of days (so it cannot "
                                     "repeat daily) nor at least the horizon of 480 min"]),
    "PV above its capacity": (_set("grids.a.pv_shape", [min(1.0, 2 * v) + 0.5 for v in SOLAR]),
                              ["grids.a.pv_profile.values: PV is p.u. of capacity, "
                               "max 1.5 > 1"]),
    "NaN in a CSV profile": (_set("grids.b.load_shape",
                                  lambda d: csv_profile(d, LOAD[:3] + ["nan"] + LOAD[4:])),
                             ["grids.b.load_shape: prof.csv, column 'b', row 4: NaN"]),
    "text and inf in a CSV profile": (
        _set("grids.b.load_shape",
             lambda d: csv_profile(d, LOAD[:5] + ["high", "inf"] + LOAD[7:])),
        ["grids.b.load_shape: prof.csv, column 'b', row 6: not a number 'high'",
         "grids.b.load_shape: prof.csv, column 'b', row 7: inf"]),
    "negative value in a CSV profile": (
        _set("grids.b.load_shape", lambda d: csv_profile(d, LOAD[:9] + [-0.3] + LOAD[10:])),
        ["grids.b.load_shape: prof.csv, column 'b', row 10: negative value -0.3 "
         "(profiles are p.u. and must be >= 0)"]),
    "CSV profile of the wrong length": (
        _set("grids.b.load_shape", lambda d: csv_profile(d, LOAD[:7])),
        ["grids.b.load_shape: profile covers 7 x 60 = 420 min, which is neither a whole number "
         "of days (so it cannot repeat daily) nor at least the horizon of 480 min"]),
    "CSV column missing": (_set("grids.b.load_shape",
                                lambda d: {**csv_profile(d), "column": "dn2"}),
                           ["grids.b.load_shape.column: no column 'dn2' in prof.csv "
                            "(columns: hour, b)"]),
    "CSV file missing": (_set("grids.b.load_shape", {"csv": "nowhere.csv", "column": "b"}),
                         ["grids.b.load_shape.csv: cannot read nowhere.csv "
                          "(No such file or directory)"]),
    "profile that is not CSV": (_set("grids.b.load_shape", {"csv": "prof.pkl", "column": "b"}),
                                ["grids.b.load_shape.csv: profile files must be .csv, "
                                 "got 'prof.pkl'"]),
    "steps that do not divide the horizon": (
        _set("scenario.step_min", 45),
        ["scenario.horizon_min: 480 is not a whole number of steps of step_min=45"]),
    # policies
    "unknown policy": (_set("policy", {"name": "astar"}),
                       ["policy.name: unknown policy 'astar'; valid: greedy, idle, milp, "
                        "schedule, stationary (on other systems: dp, ocd, shortest, uc-milp)"]),
    "policy of another system": (_set("policy", {"name": "dp"}),
                                 ["policy.name: policy 'dp' needs a scenario with missions "
                                  "(truck swap missions on a road graph (coopt-small, "
                                  "coopt-large)); this scenario offers dn-sites (distribution "
                                  "sites with MESS on a road graph (three-dn, sfi-quick, tiny)); "
                                  "policies for it: greedy, idle, milp, schedule, stationary"]),
    "parameter the policy does not take": (
        _set("compare", {"policies": ["greedy"], "params": {"greedy": {"horizon": 4}}}),
        ["compare.policies[0].params.horizon: policy 'greedy' takes no parameter 'horizon' "
         "(accepted: window_min, min_gain, low_quantile, high_quantile)"]),
    "parameter of the wrong type": (
        _set("policy", {"name": "milp", "params": {"horizon_steps": "all"}}),
        ["policy.params.horizon_steps: expected int, got str 'all'"]),
    "fallback that is not a safe policy": (
        _set("policy", {"name": "milp", "params": {"fallback": "schedule"}}),
        ["policy.params.fallback: the safe policy a failed window falls back to must be one of "
         "greedy, idle, stationary, got 'schedule'"]),
    "timetable entries that do not fit the scenario": (
        _set("policy.params.plan", [{"time_min": 0, "vehicle": "truck", "dest": "c"},
                                    {"time_min": 480, "vehicle": "truck", "p_mw": 0.1},
                                    {"time_min": 60, "vehicle": "van", "p_mw": 0.1}]),
        ["policy.params.plan[0].dest: unknown node 'c'",
         "policy.params.plan[1].time_min: must be an integer in [0, 480), got 480",
         "policy.params.plan[2].vehicle: unknown vehicle 'van'"]),
    "negative MILP time limit": (
        _set("policy", {"name": "milp", "params": {"time_limit_s": -5.0}}),
        ["policy.params.time_limit_s: must be > 0, got -5.0"]),
    # output paths
    "scenario name that is a path": (
        _set("scenario.name", "../../etc/x"),
        ["scenario.name: '../../etc/x' is used in file names; use letters, digits, '.', '_' "
         "and '-' only, starting with a letter or digit"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_scenario_exact_message_and_exit_code(case, tmp_path, capsys):
    mutate, expected = CASES[case]
    raw = copy.deepcopy(TINY)
    mutate(raw, tmp_path)
    path = tmp_path / "bad.toml"
    path.write_text(tomli_w.dumps(raw))
    assert main(["check", str(path)]) == 2
    cap = capsys.readouterr()
    n = len(expected)
    head = f"error: scenario in {path} has {n} problem{'s' if n != 1 else ''}:"
    assert cap.err == "\n".join([head, *(f"  - {m}" for m in expected)]) + "\n"
    assert cap.out == ""


def test_at_least_25_distinct_mistakes():
    messages = {m for _, expected in CASES.values() for m in expected}
    assert len(CASES) >= 25 and len(messages) >= len(CASES)


def test_tsn_study_travel_not_whole_steps(tmp_path, capsys):
    """The seed-001 train model runs on hourly steps: a travel time of 1.5 h is refused."""
    src = (SCENARIO_DIR / "tsn-ieee30.toml").read_text()
    raw = tomllib.loads(src)
    raw["case"].setdefault("overrides", {})["travel_h"] = 1.5
    path = tmp_path / "tsn.toml"
    path.write_text(tomli_w.dumps(raw))
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: scenario in {path} has 1 problem:\n")
    assert err.endswith("  - case.overrides.travel_h: must be a whole number >= 1, got 1.5\n")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "experiments.cli", *args], capture_output=True,
                          text=True, timeout=300)


def test_no_traceback_without_debug_and_one_with_it(tmp_path):
    raw = copy.deepcopy(TINY)
    raw["fleet"][0]["capacity_mwh"] = -1.0
    path = tmp_path / "bad.toml"
    path.write_text(tomli_w.dumps(raw))
    plain = _cli("check", str(path))
    assert plain.returncode == 2
    assert plain.stderr == (f"error: scenario in {path} has 1 problem:\n"
                            f"  - fleet[0].capacity_mwh: must be > 0, got -1.0\n")
    debug = _cli("--debug", "check", str(path))
    assert debug.returncode != 0
    assert "Traceback (most recent call last)" in debug.stderr
    assert "ScenarioError" in debug.stderr
