"""The seed-001 co-simulation: trains on the rail graph, stations, hourly DC + AC power flows.

The tiny 3-bus case of :mod:`tests.tsn_cases` has no pandapower net, so :func:`tiny_net` builds
a matching one (same buses, unit / wind / storage names, three lines of equal reactance).
"""

from __future__ import annotations

import json
import re

import mesa
import numpy as np
import pandapower as pp
import pandas as pd
import pytest

from agents.rail import rail_graph
from agents.train import TrainAgent, TrainFleet
from experiments.tsn_sim import build_engine, simulate
from grids.tsn_site import StorageStation
from policies.tsn_milp import plan_flows_mw
from policies.tsn_policies import OcdPolicy, UcMilpPolicy
from sim.types import Command, Decision, Setpoints
from tests.tsn_cases import tiny_case


def tiny_net(case):
    net = pp.create_empty_network(sn_mva=100.0)
    for b in case.bus_ids:
        pp.create_bus(net, vn_kv=230.0, index=b, name=str(b + 1))
    for f, t in ((0, 1), (0, 2), (1, 2)):
        pp.create_line_from_parameters(net, f, t, length_km=1.0, r_ohm_per_km=0.5,
                                       x_ohm_per_km=5.0, c_nf_per_km=0.0, max_i_ka=2.0)
    pp.create_ext_grid(net, 0, vm_pu=1.0, name="g0")
    pp.create_gen(net, 1, p_mw=0.0, vm_pu=1.0, name="g1")
    pp.create_sgen(net, 2, p_mw=0.0, q_mvar=0.0, name="wind")
    for b, p in ((1, 150.0), (2, 60.0)):
        pp.create_load(net, b, p_mw=p, q_mvar=0.2 * p)
    net.load["p_base_mw"] = net.load.p_mw.astype(float)
    net.load["q_base_mvar"] = net.load.q_mvar.astype(float)
    for s in case.stations:
        pp.create_storage(net, s.bus, p_mw=0.0, max_e_mwh=s.e_max_mwh, q_mvar=0.0)
    return net


class Scripted:
    """A test policy: ``script(state) -> (moves, exchanges, pch, pdis, unit_p)``; the slack
    unit g0 balances, g1 and wind stay off unless the script says otherwise."""

    name = "scripted"

    def __init__(self, script, fail_reset=False):
        self.script = script
        self.fail_reset = fail_reset
        self.case = None

    def params(self):
        return {}

    def reset(self, problem, rng):
        if self.fail_reset:
            raise RuntimeError("planner exploded")
        self.case = problem.transmission

    def decide(self, state):
        c = self.case
        moves, exchanges, pch, pdis, unit_p = self.script(state)
        pch = np.zeros(len(c.stations)) if pch is None else np.asarray(pch, float)
        pdis = np.zeros(len(c.stations)) if pdis is None else np.asarray(pdis, float)
        if unit_p is None:
            unit_p = [float(c.total_load_mw[state.hour] + pch.sum() - pdis.sum()), 0.0]
        return Decision(tuple(moves) + tuple(exchanges),
                        setpoints=Setpoints(unit_p_mw=unit_p, unit_on=[p > 0 for p in unit_p],
                                            wind_mw=[0.0], station_pch_mw=pch,
                                            station_pdis_mw=pdis))


def _run(case, policy):
    return simulate(case, tiny_net(case), policy, np.random.default_rng(0))


# ---------------------------------------------------------------------------- unit level
def test_exchange_checks_and_conservation():
    case = tiny_case(T=4)
    fleet = TrainFleet(case.trains, rail_graph(case), case.gamma_h)
    k1 = fleet.trains[0]  # at S1: C 22.5, E 22.5
    s1, s2 = (StorageStation(s, case.eta, case.gamma_h) for s in case.stations[:2])
    log = []

    def rec(*a):
        log.append(a)

    total = k1.c_mw + s1.c_mw
    assert k1.exchange(10.0, 5.0, s1, 0, rec) is None
    assert (k1.c_mw, k1.e_mwh, s1.c_mw, s1.e_mwh) == (32.5, 27.5, 5.0, 10.0)
    assert k1.c_mw + s1.c_mw == total
    # refused, state unchanged: wrong station, more capacity than the station has, E > gamma C,
    # negative energy
    for dc, de, st in ((1.0, 0.0, s2), (6.0, 0.0, s1), (-20.0, 0.0, s1), (0.0, -30.0, s1)):
        before = (k1.c_mw, k1.e_mwh, s1.c_mw, s1.e_mwh)
        assert k1.exchange(dc, de, st, 0, rec) is not None
        assert (k1.c_mw, k1.e_mwh, s1.c_mw, s1.e_mwh) == before
    assert [e[2] for e in log] == ["exchange"] + ["exchange_refused"] * 4


def test_station_hour_efficiency_and_clipping():
    case = tiny_case(T=4)
    st = StorageStation(case.stations[0], case.eta, case.gamma_h)  # C 15, E 15, E_max 60
    r = st.run_hour(10.0, 0.0, 1.0)
    assert r.problem is None and st.e_mwh == pytest.approx(15 + 0.85 * 10)
    r = st.run_hour(0.0, 4.0, 1.0)
    assert st.e_mwh == pytest.approx(23.5 - 4 / 0.85)
    r = st.run_hour(20.0, 0.0, 1.0)  # above C = 15 MW and above gamma * C = 30 MWh
    assert r.problem is not None and r.pch_mw <= 15.0
    assert st.e_mwh == pytest.approx(30.0)


# ---------------------------------------------------------------------------- engine level
def test_capacity_conserved_under_random_moves_and_exchanges():
    case = tiny_case(T=12, travel_h=2)  # 2 h trips: trains are in transit at some decisions
    names = [s.name for s in case.stations]
    rng = np.random.default_rng(7)

    def script(state):
        moves, exchanges = [], []
        for tr in state.trains:
            if tr.station is None:
                # must be refused
                exchanges.append(Command(tr.name, station=names[0], dc_mw=1.0, de_mwh=0.0))
                continue
            if rng.random() < 0.3:
                dest = rng.choice([n for n in names if n != tr.station])
                moves.append(Command(tr.name, path=(tr.station, str(dest))))
            else:
                exchanges.append(Command(tr.name, station=tr.station,
                                         dc_mw=float(rng.uniform(-15, 15)),
                                         de_mwh=float(rng.uniform(-20, 20))))
        return moves, exchanges, rng.uniform(0, 10, 3), None, None

    res = _run(case, Scripted(script))
    tr, st = res.tables["trains"], res.tables["stations"]
    total = tr.groupby("time_min").c_mw.sum() + st.groupby("time_min").c_mw.sum()
    expected = sum(s.c0_mw for s in case.stations) + sum(t.c0_mw for t in case.trains)
    assert len(total) == case.T + 1
    assert np.allclose(total.to_numpy(), expected, atol=1e-9)
    ev = res.tables["events"]
    assert (ev.event == "exchange").sum() > 0 and (ev.event == "depart").sum() > 0
    # the exchanges requested in transit were refused and recorded
    fails = res.tables["failures"]
    assert (fails.message.str.contains("in transit")).any()
    # bounds: never negative, E <= gamma C for trains
    assert (tr.c_mw >= -1e-9).all() and (tr.e_mwh >= -1e-9).all()
    assert (tr.e_mwh <= case.gamma_h * tr.c_mw + 1e-6).all()
    assert (st.e_mwh >= -1e-9).all() and (st.c_mw >= -1e-9).all()


def test_trains_arrive_after_exactly_the_travel_time():
    case = tiny_case(T=10, travel_h=2)

    def script(state):
        moves = []
        if state.hour == 0:
            moves.append(Command("K1", path=("S1", "S2")))
        if state.hour == 3:
            moves.append(Command("K1", path=("S2", "S3", "S1")))
        ex = [Command("K1", station="S2", dc_mw=1.0, de_mwh=0.0)] if state.hour == 1 else []
        return moves, ex, None, None, None

    res = _run(case, Scripted(script))
    ev = res.tables["events"]
    moves = ev[(ev.vehicle == "K1") & ev.event.isin(["depart", "pass", "arrive"])]
    k1 = moves[["time_min", "event", "node"]].values.tolist()
    assert k1 == [[0, "depart", "S1"], [120, "arrive", "S2"], [180, "depart", "S2"],
                  [300, "pass", "S3"], [420, "arrive", "S1"]]
    th = res.tables["train_hours"]
    where = th[th.train == "K1"].sort_values("hour").station.tolist()
    assert where == ["", "", "S2", "", "", "", "", "S1", "S1", "S1"]
    fails = res.tables["failures"]
    assert ((fails.status == "exchange_refused") & (fails.time_min == 60)).sum() == 1
    assert ((ev.event == "exchange_refused") & (ev.time_min == 60)).sum() == 1
    # K2 never moved
    assert (th[th.train == "K2"].station == "S2").all()


def test_nonconverging_ac_is_recorded_not_raised():
    case = tiny_case(T=3)

    def script(state):
        unit_p = None
        if state.hour == 1:  # 100 GW at bus 1 through 0.01 p.u. lines: no AC solution exists
            unit_p = [0.0, 1e5]
        return [], [], None, None, unit_p

    res = _run(case, Scripted(script))
    g = res.tables["grid"].set_index("hour")
    assert g.loc[1, "status"] == "ac_not_converged"
    assert bool(g.loc[1, "converged_dc"]) and not bool(g.loc[1, "converged_ac"])
    assert g.loc[0, "status"] == "ok" and g.loc[2, "status"] == "ok"
    f = res.tables["failures"]
    assert ((f.kind == "power_flow") & (f.status == "ac_not_converged") & (f.time_min == 60)).any()
    assert res.summary["hours_ac_converged"] == 2


def test_failed_planning_is_recorded_and_hours_skipped():
    case = tiny_case(T=3)
    res = _run(case, Scripted(None, fail_reset=True))
    assert (res.tables["grid"].status == "no_decision").all()
    f = res.tables["failures"]
    assert (f.status == "reset_failed").sum() == 1 and not res.summary["planned"]


def test_engine_never_steps_mesa(monkeypatch):
    calls = []
    monkeypatch.setattr(mesa.Model, "step", lambda self: calls.append(self))
    monkeypatch.setattr(TrainFleet, "step", lambda self: calls.append(self))
    case = tiny_case(T=4)

    def script(state):
        moves = [Command("K1", path=("S1", "S3"))] if state.hour == 0 else []
        return moves, [], None, None, None

    engine, fleet, _ = build_engine(case, tiny_net(case), Scripted(script))
    engine.run()
    assert calls == [] and fleet.steps == 0
    assert isinstance(fleet.trains[0], TrainAgent) and fleet.trains[0].station == "S3"
    assert engine.env.now == case.T * 60 + 1


# ---------------------------------------------------------------------------- plan replay
@pytest.mark.parametrize("policy", [UcMilpPolicy(time_limit_s=60.0),
                                    UcMilpPolicy(time_limit_s=60.0, exchange_mode="delta"),
                                    OcdPolicy(max_iter=5)],
                         ids=["uc-milp", "uc-milp-delta", "ocd"])
def test_replayed_plan_matches_simulation(policy):
    case = tiny_case(T=6, transport_cost_per_h=1.0)
    res = _run(case, policy)
    s = res.summary
    assert s["planned"], res.tables["failures"]
    assert len(res.tables["failures"]) == 0, res.tables["failures"].to_string()
    for var in ("c_mw", "e_mwh", "pch_mw", "pdis_mw", "station_index"):
        assert s[f"max_abs_dev_{var}"] <= 1e-6, (var, s)
    pvs = res.tables["plan_vs_sim"]
    assert pvs.sim.notna().all()
    hourly = res.tables["plan_vs_sim_hourly"]
    assert len(hourly) == case.T + 1 and (hourly.location_mismatches == 0).all()
    assert hourly[["max_abs_dev_c_mw", "max_abs_dev_e_mwh"]].max().max() <= 1e-6
    assert s["capacity_total_mw_min"] == pytest.approx(s["capacity_total_mw_max"], abs=1e-9)
    # every planned route arc is a departure at its start hour and an arrival tau hours later
    ev = res.tables["events"]
    n_arcs = sum(1 for p in policy.paths for a in p if a[0] != a[2])
    assert (ev.event == "depart").sum() == n_arcs == (ev.event == "arrive").sum()
    assert s["hours_dc_converged"] == s["hours_ac_converged"] == case.T
    # the DC flow of the replayed dispatch equals the plan's PTDF flow on the rated line
    plan = policy.plan
    inj = -np.array(case.load_mw)
    for g, u in enumerate(case.units):
        inj[:, case.bus_pos(u.bus)] += plan.p_mw[g] * (plan.u[g] > 0.5)
    inj[:, case.bus_pos(case.wind[0].bus)] += plan.wind_mw[0]
    for i, st in enumerate(case.stations):
        inj[:, case.bus_pos(st.bus)] += plan.pdis_mw[i] - plan.pch_mw[i]
    plan_pct = np.abs(inj @ case.ptdf[1]) / case.rating_mw[1] * 100
    br = res.tables["branches"]
    sim_pct = br[br.branch == "line 0-2"].sort_values("time_min").dc_loading_pct.to_numpy()
    assert np.allclose(sim_pct, plan_pct, atol=1e-6)
    # ... and on every line, in MW (pandapower's DC flow of the simulated injections)
    flows = plan_flows_mw(case, plan)
    for j, name in enumerate(case.line_names):
        sim_mw = br[br.branch == name].sort_values("time_min").dc_flow_mw.to_numpy()
        assert np.allclose(sim_mw, flows[:, j], atol=1e-6), name
    assert s["max_dc_loading_pct"] <= 100.0 + 1e-4


def test_dc_blind_classifies_ac_only_overloads_and_voltages():
    import pandas as pd

    from experiments.tsn_sim import dc_blind

    br = pd.DataFrame({"time_min": [0, 0, 0, 60], "branch": ["a", "b", "c", "a"],
                       "dc_loading_pct": [99.0, 101.0, 90.0, 100.0],
                       "ac_loading_pct": [104.0, 105.0, 99.0, 101.0],
                       "ac_p_loading_pct": [102.0, 104.0, 95.0, 99.0]})
    bus = pd.DataFrame({"time_min": [0, 60, 60], "bus": [1, 2, 3], "vm_pu": [0.93, 1.0, 1.07]})
    out = dc_blind(br, bus, 0.94, 1.06)
    ao = out[out.kind == "ac_only_overload"]
    assert ao[["time_min", "element", "cause"]].values.tolist() == [
        [0, "a", "active_power"], [60, "a", "reactive_power"]]
    v = out[out.kind == "voltage"]
    assert v[["time_min", "element", "cause"]].values.tolist() == [[0, "1", "low"],
                                                                  [60, "3", "high"]]


def test_plan_vs_sim_sees_a_deviation():
    """Drop every exchange of hour 1 from a replayed plan: the tables must show it."""

    class Lossy(UcMilpPolicy):
        def decide(self, state):
            d = super().decide(state)
            if state.hour == 1:
                self.dropped = [c for c in d.commands if c.station is not None]
                d = Decision(tuple(c for c in d.commands if c.station is None), d.note,
                             d.setpoints)
            return d

    case = tiny_case(T=6, transport_cost_per_h=1.0)
    pol = Lossy(time_limit_s=60.0, exchange_mode="delta")
    res = _run(case, pol)
    assert pol.dropped, "the plan has no exchange in hour 1; pick another hour"
    worst = max(max(abs(x.dc_mw), abs(x.de_mwh)) for x in pol.dropped)
    s = res.summary
    assert max(s["max_abs_dev_c_mw"], s["max_abs_dev_e_mwh"]) >= worst - 1e-6
    hourly = res.tables["plan_vs_sim_hourly"].set_index("time_min")
    assert hourly.loc[60, "max_abs_dev_c_mw"] <= 1e-6  # the state before hour 1 still agrees
    assert hourly.loc[120, ["max_abs_dev_c_mw", "max_abs_dev_e_mwh"]].max() > 1e-3


def test_keep_plan_replays_one_plan_under_two_ac_models():
    case = tiny_case(T=4, transport_cost_per_h=1.0)
    net = tiny_net(case)
    pol = UcMilpPolicy(time_limit_s=60.0, keep_plan=True)
    a = simulate(case, net, pol, np.random.default_rng(0), off_units="condenser")
    plan = pol.plan
    b = simulate(case, net, pol, np.random.default_rng(0), off_units="out_of_service")
    assert pol.plan is plan and b.summary["max_abs_dev_e_mwh"] <= 1e-6
    assert a.summary["failures"] == 0 and b.summary["hours_dc_converged"] == case.T
    # a fresh policy object without keep_plan plans again
    pol2 = UcMilpPolicy(time_limit_s=60.0)
    simulate(case, net, pol2, np.random.default_rng(0))
    first = pol2.plan
    simulate(case, net, pol2, np.random.default_rng(0))
    assert pol2.plan is not first and pol2.params()["keep_plan"] is False


@pytest.mark.parametrize("order", [1, -1])
def test_exchanges_at_one_station_in_one_hour_happen_together(order):
    """K1 brings 20 MW to S2 (15 of 30 MW) while K2 takes 10 MW there: alone K1's exchange
    would overfill S2, together they fit; in either order. A group that overfills is refused
    as a whole."""
    case = tiny_case(T=3)

    def script(state):
        if state.hour == 0:
            return [Command("K1", path=("S1", "S2"))], [], None, None, None
        if state.hour == 1:
            xs = [Command("K1", station="S2", dc_mw=-20.0, de_mwh=-17.5),
                  Command("K2", station="S2", dc_mw=10.0, de_mwh=0.0)]
            return [], xs[::order], None, None, None
        xs = [Command("K1", station="S2", dc_mw=-2.0, de_mwh=0.0),
              Command("K2", station="S2", dc_mw=-10.0, de_mwh=0.0)]
        return [], xs, None, None, None  # S2 at 25 MW would get 12 more: refused

    res = _run(case, Scripted(script))
    st = res.tables["stations"].set_index(["time_min", "station"])
    tr = res.tables["trains"].set_index(["time_min", "train"])
    assert st.loc[(120, "S2"), "c_mw"] == pytest.approx(25.0)
    assert st.loc[(120, "S2"), "e_mwh"] == pytest.approx(32.5)
    assert tr.loc[(120, "K1"), "c_mw"] == pytest.approx(2.5)
    assert tr.loc[(120, "K2"), "c_mw"] == pytest.approx(32.5)
    f = res.tables["failures"]
    refused = f[f.status == "exchange_refused"]
    assert set(refused.time_min) == {120} and set(refused.entity) == {"K1", "K2"}
    assert st.loc[(180, "S2"), "c_mw"] == pytest.approx(25.0)  # unchanged by the refusal
    assert tr.loc[(180, "K1"), "c_mw"] == pytest.approx(2.5)


# ---------------------------------------------------------------------------- run directory
def test_write_is_a_run_directory(tmp_path):
    """``TsnSimResult.write``: every table Parquet (read back equal), meta.json with seed,
    versions, git hash, timings and status."""
    case = tiny_case(T=4, transport_cost_per_h=1.0)
    res = simulate(case, tiny_net(case), UcMilpPolicy(time_limit_s=60.0),
                   np.random.default_rng(3))
    res.seed = 3
    out = res.write(tmp_path / "run")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["meta.json", *(f"{t}.parquet" for t in res.tables)])
    for name, df in res.tables.items():
        path = out / f"{name}.parquet"
        assert path.read_bytes()[:4] == b"PAR1", name
        back = pd.read_parquet(path)
        assert list(back.columns) == list(df.columns) and len(back) == len(df), name
    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["seed"] == 3
    assert {"python", "pandas", "pyarrow", "pandapower", "highspy"} <= set(meta["versions"])
    assert meta["git"] is None or re.fullmatch("[0-9a-f]{40}", meta["git"])
    assert meta["timings"]["wall_s"] == meta["wall_s"] > 0
    assert meta["summary"]["planned"] is True and meta["plan_info"]

