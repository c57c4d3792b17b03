"""Battery ageing of the seed-001 trains: a degradation slot per train (default none), fed by
exchanges and elapsed time, recorded per hour as ``soh_frac`` in the ``trains`` table."""

from __future__ import annotations

import tomllib

import mesa
import numpy as np
import pandas as pd
import pytest
import tomli_w

from agents.degradation import make_degradation
from agents.rail import rail_graph
from agents.train import TrainAgent, TrainFleet, train_degradation
from experiments.cli import main
from experiments.config import SCENARIO_DIR, DegradationConfig
from experiments.tsn_config import load_tsn
from experiments.tsn_sim import simulate
from grids.tsn_site import StorageStation
from sim.errors import ScenarioError
from sim.types import Command
from tests.test_tsn_sim import Scripted, tiny_net
from tests.tsn_cases import tiny_case

T = 8
# K1 (E_max 90 MWh, gamma 2) takes energy at S1 in hour 1, rides to S3 in hour 3 (1 h), hands
# energy over there in hour 5; K2 stays parked at S2 and never exchanges.
PLAN = {1: ([], [Command("K1", station="S1", dc_mw=7.5, de_mwh=15.0)]),
        3: ([Command("K1", path=("S1", "S3"))], []),
        5: ([], [Command("K1", station="S3", dc_mw=-15.0, de_mwh=-30.0)])}


def _script(state):
    moves, exchanges = PLAN.get(state.hour, ([], []))
    return moves, exchanges, None, None, None


def _run(degradation=None):
    case = tiny_case(T=T)
    return case, simulate(case, tiny_net(case), Scripted(_script), np.random.default_rng(0),
                          degradation=degradation)


@pytest.fixture(scope="module")
def runs():
    return {name: _run(DegradationConfig(model=name) if name else None)
            for name in (None, "none", "lfp")}


def test_lfp_trains_record_a_falling_soh_every_hour(runs):
    case, res = runs["lfp"]
    tr = res.tables["trains"]
    assert len(tr) == 2 * (T + 1) and tr.soh_frac.notna().all()
    for name in ("K1", "K2"):
        soh = tr[tr.train == name].sort_values("time_min").soh_frac.to_numpy()
        assert soh[0] == 1.0 and np.all(np.diff(soh) < 0), (name, soh)
    assert res.summary["train_soh_end_frac"]["K1"] == tr[tr.train == "K1"].soh_frac.iloc[-1]
    # K1 was cycled (energy in, then handed over), K2 only aged on the calendar
    end = res.summary["train_soh_end_frac"]
    assert end["K1"] < end["K2"] < 1.0
    assert (res.tables["failures"].status != "exchange_refused").all()


def test_none_is_exactly_one_and_changes_nothing_else(runs):
    _, base = runs[None]
    _, none = runs["none"]
    _, lfp = runs["lfp"]
    assert (base.tables["trains"].soh_frac == 1.0).all()
    assert (none.tables["trains"].soh_frac == 1.0).all()
    cols = ["time_min", "train", "station", "status", "dest", "c_mw", "e_mwh"]
    for other in (none, lfp):  # ageing is recorded, it never changes the dispatch
        pd.testing.assert_frame_equal(base.tables["trains"][cols], other.tables["trains"][cols])
        pd.testing.assert_frame_equal(base.tables["stations"], other.tables["stations"])
        assert other.summary["total_cost"] == base.summary["total_cost"]


def test_train_soh_equals_the_model_fed_by_hand(runs):
    """Method 2: the same LFP model fed what the train did, by hand: calendar ageing at
    E/E_max for every hour, each exchange a zero-duration SOC step at C-rate 1/gamma."""
    case, res = runs["lfp"]
    tr = res.tables["trains"]
    k1 = case.trains[0]
    m = make_degradation("lfp", e_nom_kwh=1000.0 * k1.e_max_mwh,
                         c_rate_default_per_h=1.0 / case.gamma_h)
    e = k1.e0_mwh
    de_at = {1: 15.0, 5: -30.0}
    rec = tr[tr.train == "K1"].set_index("time_min").soh_frac
    assert rec[0] == m.soh_frac()
    for h in range(T):
        if h in de_at:
            s0, e = e / k1.e_max_mwh, e + de_at[h]
            m.update(s0, e / k1.e_max_mwh, abs(de_at[h]), 0, k1.e_max_mwh)
        m.update(e / k1.e_max_mwh, e / k1.e_max_mwh, 0.0, 60, k1.e_max_mwh)
        assert rec[60 * (h + 1)] == pytest.approx(m.soh_frac(), rel=1e-13), h


def test_soh_does_not_depend_on_how_often_it_is_read():
    case = tiny_case(T=4)
    graph = rail_graph(case)
    station = StorageStation(case.stations[0], case.eta, case.gamma_h)
    agents = []
    for _ in range(2):
        fleet = TrainFleet(case.trains[:1], graph, case.gamma_h,
                           degradation=lambda s: train_degradation("generalised", s,
                                                                   case.gamma_h))
        agents.append(fleet.trains[0])
    often, once = agents
    log = lambda *a: None  # noqa: E731
    for tr in (often, once):
        for minute, de in ((60, 10.0), (180, -20.0), (300, 5.0)):
            if tr is often:
                for t in range(tr.aged_min, minute + 1, 15):
                    tr.soh_frac_at(t)
            assert tr.exchange(de / case.gamma_h, de, station, minute, log) is None
    assert often.soh_frac_at(600) == pytest.approx(once.soh_frac_at(600), rel=1e-12)
    assert once.soh_frac_at(600) < 1.0
    with pytest.raises(ValueError, match="before the last feed"):
        once.soh_frac_at(300)
    once.reset()
    assert once.soh_frac_at(0) == 1.0 and once.aged_min == 0


def test_default_train_has_the_none_model():
    case = tiny_case(T=2)
    agent = TrainAgent(mesa.Model(), case.trains[0], rail_graph(case), case.gamma_h)
    assert agent.degradation.name == "none" and agent.soh_frac_at(120) == 1.0
    m = train_degradation("nmc", case.trains[0], case.gamma_h, temp_c=30.0)
    assert m.params()["c_rate_default_per_h"] == 0.5 and m.params()["e_nom_kwh"] == 90_000.0
    assert m.params()["temp_c"] == 30.0


def test_tsn_study_file_sets_the_trains_model(tmp_path, capsys):
    raw = tomllib.loads((SCENARIO_DIR / "tsn-ieee30.toml").read_text())
    assert load_tsn(SCENARIO_DIR / "tsn-ieee30.toml").trains.degradation.model == "none"
    raw["trains"] = {"degradation": {"model": "lfp", "temp_c": 30.0}}
    path = tmp_path / "tsn.toml"
    path.write_text(tomli_w.dumps(raw))
    deg = load_tsn(path).trains.degradation
    assert deg.model == "lfp" and deg.params == {"temp_c": 30.0}
    raw["trains"] = {"degradation": {"model": "lpf", "temp": 30.0}}
    raw["check"] = {"vm_min_pu": 1.1, "vm_max_pu": 1.0}
    path.write_text(tomli_w.dumps(raw))
    with pytest.raises(ScenarioError) as exc:
        load_tsn(path)
    assert list(exc.value.problems) == [
        "check: vm_min_pu must be below vm_max_pu",
        "trains.degradation.model: unknown model 'lpf'; valid: dod_curve, generalised, lfp, "
        "nmc, none"]
    raw["trains"] = {"degradation": {"model": "lfp", "temp_c": -60.0}, "colour": "red"}
    del raw["check"]
    path.write_text(tomli_w.dumps(raw))
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "  - trains.colour: unknown key\n" in err
    assert "  - trains.degradation.temp_c: must be within [-40, 80] degC, got -60.0\n" in err
