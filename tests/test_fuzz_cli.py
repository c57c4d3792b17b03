"""Hypothesis fuzz of the command line: every subcommand with random flags and values.

The property: the command line either refuses the input (exit 2, a message naming what is
wrong), or hands it to the work it asked for, never an unexpected exception (exit 1) and never a
traceback. The work itself (simulations, studies, sweeps, replays, figures) is replaced by a
stub that stops at once, so an example that passes every check costs nothing: reaching the stub
counts as accepted.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from experiments import (
    cli,
    coopt_study,
    replay,
    run,
    sfi_study,
    sweep,
    sweep_figures,
    tsn_sim,
    tsn_study,
)


class Reached(Exception):
    """The stub of the work: every check before it passed."""


def _stop(*args, **kwargs):
    raise Reached("the work would start here")


WORK = [(run, "run_one"), (sweep, "run_sweep"), (coopt_study, "run_study"),
        (tsn_study, "run_tsn_study"), (sfi_study, "run_study"), (replay, "replay_dn"),
        (replay, "replay_coopt"), (replay, "replay_tsn"), (sweep_figures, "write_all"),
        (tsn_sim, "simulate")]

TARGETS = [None, "tiny", "three-dn", "coopt-small", "tsn-ieee30", "sfi-quick", "no-such-thing",
           "../escape", "/", ""]
NUMBERS = ["-1", "0", "1", "2", "7", "1000000000", "nan", "inf", "-inf", "1e-9", "0.5", "abc", ""]
WORDS = ["", "abc", "greedy", "dp,greedy", "greedy,greedy", "idle,milp", "tcp://host:8786",
         "garbage", "../..", "/", "x:Y", "mescosim.nope:Cls"]
SETS = ["scenario.step_min=7", 'scenario.step_min="x"', "scenario.horizon_min=-60",
        "fleet[5].p_max_mw=1", "fleet[0].p_max_mw=inf", "nope", "a.b.c=1", "=1",
        'policy.name="dp"', "study.models=['none']", "case.overrides.T=0",
        "scenario.seed=-3", "sweep.delay_prob=2", "grids.dn1.feeder=\"nowhere.json\""]

FLAGS = {
    "run": {"--seed": NUMBERS, "--set": SETS, "--no-figures": None, "--overwrite": None},
    "check": {"--set": SETS},
    "sweep": {"--scenarios": NUMBERS, "--seed": NUMBERS, "--workers": NUMBERS,
              "--scheduler": WORDS, "--set": SETS, "--retry-failed": None,
              "--no-progress": None, "--no-figures": None},
    "bench": {"--policies": WORDS, "--scenarios": NUMBERS, "--seed": NUMBERS,
              "--workers": NUMBERS, "--set": SETS, "--oracle": None, "--no-figures": None},
    "replay": {"--seed": NUMBERS, "--policy": WORDS, "--model": WORDS,
               "--delay-prob": NUMBERS, "--delay-max-min": NUMBERS},
    "tsn-sim": {"--case": ["ieee30", "ieee118", "ieee5"], "--policy": WORDS,
                "--hours": NUMBERS, "--time-limit-s": NUMBERS, "--mip-gap": NUMBERS,
                "--replan-every-h": NUMBERS, "--ocd-max-iter": NUMBERS,
                "--delay": ["T1:0:30", "nobody:0:30", "T1:x:y", "", "T1:0:-5"]},
    "plot": {},
    "list": {},
    "policies": {},
}


@st.composite
def argv(draw, tmp):
    cmd = draw(st.sampled_from(sorted(FLAGS)))
    out: list[str] = [cmd]
    if cmd in ("run", "check", "sweep", "bench"):
        target = draw(st.sampled_from(TARGETS))
        if target is not None:
            out.append(target)
    elif cmd in ("replay", "plot"):
        out.append(draw(st.sampled_from([str(tmp), str(tmp / "missing"), "", "/"])))
    flags = FLAGS[cmd]
    if cmd == "bench" and draw(st.booleans()):
        out += ["--policies", draw(st.sampled_from(WORDS))]
    for flag in draw(st.lists(st.sampled_from(sorted(flags)), max_size=4)) if flags else []:
        values = flags[flag]
        out += [flag] if values is None else [flag, draw(st.sampled_from(values))]
    if cmd in ("run", "sweep", "bench", "replay", "tsn-sim") and draw(st.booleans()):
        out += ["--out", str(tmp / draw(st.sampled_from(["new", "file.txt", "."])))]
    return out


@pytest.fixture
def stubbed(monkeypatch, tmp_path):
    for module, name in WORK:
        monkeypatch.setattr(module, name, _stop)
    monkeypatch.chdir(tmp_path)  # default output places land in the test's directory
    (tmp_path / "file.txt").write_text("not a directory\n")
    return tmp_path


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_no_flag_or_value_gets_an_unexpected_error(stubbed, capsys, data):
    args = data.draw(argv(stubbed))
    try:
        code = cli.main(args)
    except SystemExit as exc:  # argparse: a usage error (2) or --help/--version (0)
        code = exc.code
    except Reached:  # raised through a study's own runner: accepted
        code = 0
    captured = capsys.readouterr()
    err = captured.err
    event(f"{args[0]} exit {code}{' (reached the work)' if 'Reached' in err else ''}")
    assert "Traceback" not in err and "Traceback" not in captured.out, (args, err)
    if code == 1:
        assert "Reached" in err, (args, err)  # exit 1 only for the stubbed work itself
    else:
        assert code in (0, 2, 3), (args, code, err)
