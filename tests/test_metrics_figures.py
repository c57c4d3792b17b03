"""Metrics (SFI, energies, violations) and figures on small hand-built tables.

Case: sites A (c_norm 2 MW, node nA) and B (c_norm 4 MW, node nB), one vehicle V1 (2 MWh) over
4 hours: discharges at A, departs at 60 min and arrives at B at 110 min, charges, then discharges.
The same case is built with 60-min and with 15-min steps (every hourly row repeated 4 times).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from experiments import figures
from experiments.metrics import run_metrics, sfi_table, summary_table, table

# ---------------------------------------------------------------- hourly data of the case
C_NORM = {"A": 2.0, "B": 4.0}
# own (flex_up, flex_dn) per hour
OWN = {"A": [(0.5, 0.5), (0.4, 0.6), (1.0, 0.0), (0.2, 0.2)],
       "B": [(1.0, 1.0), (2.0, 1.0), (0.5, 0.5), (0.0, 0.0)]}
# vehicle per hour: (status, node, site, p_mw, flex_up, flex_dn, throughput, e_start, e_end)
V1 = [("parked", "nA", "A", -0.5, 0.2, 0.8, 0.5, 1.0, 0.47),
      ("transit", "nA", "", 0.0, 0.0, 0.0, 0.0, 0.47, 0.469),
      ("parked", "nB", "B", 0.4, 0.9, 0.1, 0.4, 0.469, 0.85),
      ("parked", "nB", "B", -0.3, 0.2, 0.6, 0.3, 0.85, 0.53)]
# bus voltages per site and hour (3 buses); NaN = not converged / missing
BUSES = {"A": [[1.0, 0.94, 1.02], [1.0, np.nan, 1.06], [0.95, 1.05, 1.0], [1.0, 1.0, 1.0]],
         "B": [[0.949, 1.0, 1.0], [np.nan, np.nan, np.nan], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]}
LINES = {"A": [[50.0, 101.0], [20.0, np.nan], [100.0, 30.0], [10.0, 10.0]],
         "B": [[10.0, 10.0], [np.nan, np.nan], [10.0, 10.0], [120.0, 130.0]]}
CONVERGED = {"A": [True, True, True, True], "B": [True, False, True, True]}
LOSSES = {"A": [0.01, 0.02, 0.01, 0.01], "B": [0.03, np.nan, 0.02, 0.02]}


def make_info(step_min: int) -> dict:
    return {
        "step_min": step_min, "horizon_min": 240,
        "sites": {"A": {"c_norm_mw": 2.0, "node": "nA"}, "B": {"c_norm_mw": 4.0, "node": "nB"}},
        "vehicles": {"V1": {"capacity_mwh": 2.0, "e_min_mwh": 0.2, "e_max_mwh": 1.8,
                            "p_max_mw": 0.5, "e_init_mwh": 1.0, "kind": "truck"}},
        "limits": {"vm_min_pu": 0.95, "vm_max_pu": 1.05, "loading_max_pct": 100.0},
    }


def make_tables(step_min: int = 60, policy: str = "greedy") -> dict[str, pd.DataFrame]:
    sub = 60 // step_min
    veh, sites, buses, lines = [], [], [], []
    for h in range(4):
        for k in range(sub):
            t = h * 60 + k * step_min
            st, node, site, p, fu, fd, thr, e0, e1 = V1[h]
            # linear energy within the hour (only the hour ends matter for the tests)
            ea = e0 + (e1 - e0) * k / sub
            eb = e0 + (e1 - e0) * (k + 1) / sub
            veh.append(dict(policy=policy, time_min=t, vehicle="V1", node=node, site=site,
                            status=st, dest="nB" if st == "transit" else "",
                            p_requested_mw=p, p_mw=p, e_start_mwh=ea, e_end_mwh=eb,
                            soc_end_frac=eb / 2.0, loss_conversion_mwh=0.01 / sub,
                            loss_self_mwh=0.001 / sub, throughput_mwh=thr / sub,
                            bms_hold=False, flex_up_mw=fu, flex_dn_mw=fd, soh_frac=1.0))
            for s in ("A", "B"):
                mess = p if site == s else 0.0
                vm = np.array(BUSES[s][h])
                sites.append(dict(policy=policy, time_min=t, site=s,
                                  converged=CONVERGED[s][h],
                                  status="ok" if CONVERGED[s][h] else "diverged",
                                  load_mw=1.0, pv_mw=0.2, mess_p_mw=mess, residual_mw=0.1,
                                  slack_p_mw=0.5, losses_mw=LOSSES[s][h],
                                  vm_min_pu=np.nanmin(vm) if np.isfinite(vm).any() else np.nan,
                                  vm_max_pu=np.nanmax(vm) if np.isfinite(vm).any() else np.nan,
                                  max_line_loading_pct=np.nanmax(LINES[s][h])
                                  if np.isfinite(LINES[s][h]).any() else np.nan,
                                  flex_up_mw=OWN[s][h][0], flex_dn_mw=OWN[s][h][1],
                                  dispatch_g1_mw=0.3))
                for i, v in enumerate(BUSES[s][h]):
                    buses.append(dict(policy=policy, time_min=t, site=s, element=i, value=v))
                for i, v in enumerate(LINES[s][h]):
                    lines.append(dict(policy=policy, time_min=t, site=s, element=i, value=v))
    events = pd.DataFrame([
        (0, "V1", "discharge_start", "nA", ""), (60, "V1", "discharge_stop", "nA", ""),
        (60, "V1", "depart", "nA", "to nB"), (90, "V1", "pass", "x", ""),
        (110, "V1", "arrive", "nB", ""), (120, "V1", "charge_start", "nB", ""),
        (180, "V1", "charge_stop", "nB", ""), (180, "V1", "discharge_start", "nB", ""),
        (240, "V1", "discharge_stop", "nB", ""),
    ], columns=["time_min", "vehicle", "event", "node", "detail"])
    events.insert(0, "policy", policy)
    failures = pd.DataFrame([(policy, 60, "power_flow", "B", "diverged", "no convergence")],
                            columns=["policy", "time_min", "kind", "entity", "status",
                                     "message"])
    return {"vehicles": pd.DataFrame(veh), "sites": pd.DataFrame(sites), "events": events,
            "buses": pd.DataFrame(buses), "lines": pd.DataFrame(lines), "failures": failures}


def metric(m: pd.DataFrame, entity: str, name: str, policy: str = "greedy") -> float:
    sel = m[(m["policy"] == policy) & (m["entity"] == entity) & (m["metric"] == name)]
    assert len(sel) == 1, (entity, name)
    return float(sel["value"].iloc[0])


# ---------------------------------------------------------------- SFI
# B's power flow did not converge at hour 1: that site-step is excluded (NaN)
EXPECTED_SFI = {"A": [1.0, 0.5, 0.5, 0.2], "B": [0.5, np.nan, 0.5, 0.2]}


def test_sfi_per_step_from_flex_and_c_norm():
    s = sfi_table(make_tables(60), make_info(60))
    assert list(s.columns[:3]) == ["policy", "time_min", "site"]
    for site, exp in EXPECTED_SFI.items():
        got = s[s["site"] == site].sort_values("time_min")
        assert got["sfi"].tolist() == pytest.approx(exp, nan_ok=True)
        assert got["excluded"].tolist() == [bool(np.isnan(x)) for x in exp]
        assert got["time_min"].tolist() == [0, 60, 120, 180]
    assert (s["weight"] == 0.5).all()
    assert (s["dt_h"] == 1.0).all()
    assert s["weighted_sfi"].to_numpy() == pytest.approx(0.5 * s["sfi"].to_numpy(), nan_ok=True)
    # own and MESS parts: A at t=0 -> own 1/2, MESS 1/2
    a0 = s[(s["site"] == "A") & (s["time_min"] == 0)].iloc[0]
    assert (a0["sfi_own"], a0["sfi_mess"]) == pytest.approx((0.5, 0.5))


def test_accumulated_sfi_same_for_60_and_15_min_steps():
    m60 = run_metrics(make_tables(60), make_info(60))
    m15 = run_metrics(make_tables(15), make_info(15))
    s15 = sfi_table(make_tables(15), make_info(15))
    assert len(s15) == 4 * 4 * 2 and (s15["dt_h"] == 0.25).all()
    # B without its non-converged hour (0.75 SFI-h left out and counted as excluded)
    for ent, exp in (("A", 2.2), ("B", 1.2)):
        assert metric(m60, ent, "sfi_accumulated") == pytest.approx(exp)
        assert metric(m15, ent, "sfi_accumulated") == pytest.approx(exp)
    assert metric(m60, "system", "sfi_total") == pytest.approx(0.5 * (2.2 + 1.2))
    assert metric(m15, "system", "sfi_total") == pytest.approx(0.5 * (2.2 + 1.2))
    assert metric(m60, "B", "sfi_excluded_site_steps") == 1
    assert metric(m60, "A", "sfi_excluded_site_steps") == 0
    assert metric(m15, "system", "sfi_excluded_site_steps") == 4  # one hour of 15-min steps
    # energies do not depend on the step length either
    for name in ("energy_delivered_mwh", "losses_mwh", "residual_abs_mwh"):
        assert metric(m15, "system", name) == pytest.approx(metric(m60, "system", name))


# ---------------------------------------------------------------- energy and grid
def test_energy_delivered_sign_convention():
    m = run_metrics(make_tables(60), make_info(60))
    # A: discharge 0.5 MW for 1 h -> +0.5 MWh delivered; B: charge 0.4, discharge 0.3 -> -0.1
    assert metric(m, "A", "energy_delivered_mwh") == pytest.approx(0.5)
    assert metric(m, "B", "energy_delivered_mwh") == pytest.approx(-0.1)
    assert metric(m, "B", "energy_charged_mwh") == pytest.approx(0.4)
    assert metric(m, "B", "energy_discharged_mwh") == pytest.approx(0.3)
    assert metric(m, "A", "energy_charged_mwh") == pytest.approx(0.0)
    assert metric(m, "system", "energy_delivered_mwh") == pytest.approx(0.4)
    # NaN losses of the non-converged step are skipped
    assert metric(m, "B", "losses_mwh") == pytest.approx(0.07)
    assert metric(m, "system", "losses_mwh") == pytest.approx(0.12)
    assert metric(m, "system", "residual_abs_mwh") == pytest.approx(0.8)


def test_voltage_and_loading_violations_ignore_nan():
    m = run_metrics(make_tables(60), make_info(60))
    # A: 0.94 and 1.06 (0.95 and 1.05 on the limit are fine; NaN ignored); B: 0.949
    assert metric(m, "A", "voltage_violation_bus_steps") == 2
    assert metric(m, "B", "voltage_violation_bus_steps") == 1
    assert metric(m, "system", "voltage_violation_bus_steps") == 3
    assert metric(m, "A", "loading_violation_line_steps") == 1  # 101 % (100 % is the limit)
    assert metric(m, "B", "loading_violation_line_steps") == 2
    assert metric(m, "system", "loading_violation_line_steps") == 3
    assert metric(m, "A", "vm_min_pu") == pytest.approx(0.94)
    assert metric(m, "A", "vm_max_pu") == pytest.approx(1.06)
    assert metric(m, "system", "vm_min_pu") == pytest.approx(0.94)
    # 15-min steps: every hourly value appears 4 times
    m15 = run_metrics(make_tables(15), make_info(15))
    assert metric(m15, "system", "voltage_violation_bus_steps") == 12


def test_missing_array_tables_give_nan_counts():
    t = make_tables(60)
    del t["buses"], t["lines"]
    m = run_metrics(t, make_info(60))
    assert math.isnan(metric(m, "A", "voltage_violation_bus_steps"))
    assert math.isnan(metric(m, "system", "loading_violation_line_steps"))
    assert metric(m, "A", "voltage_violation_steps") == 2  # from the sites' min/max columns


def test_nonconverged_steps_and_failures():
    m = run_metrics(make_tables(60), make_info(60))
    assert metric(m, "A", "nonconverged_steps") == 0
    assert metric(m, "B", "nonconverged_steps") == 1
    assert metric(m, "system", "nonconverged_steps") == 1
    assert metric(m, "system", "failures") == 1


# ---------------------------------------------------------------- vehicles
def test_vehicle_metrics():
    for step in (60, 15):
        m = run_metrics(make_tables(step), make_info(step))
        assert metric(m, "V1", "throughput_mwh") == pytest.approx(1.2)
        assert metric(m, "V1", "equivalent_full_cycles") == pytest.approx(1.2 / (2 * 2.0))
        assert metric(m, "V1", "e_end_mwh") == pytest.approx(0.53)
        assert metric(m, "V1", "soc_end_pct") == pytest.approx(26.5)
        assert metric(m, "V1", "transit_steps") == 60 // step
        assert metric(m, "V1", "trips") == 1
        assert metric(m, "system", "trips") == 1
        assert metric(m, "V1", "conversion_losses_mwh") == pytest.approx(0.04)
        assert metric(m, "V1", "self_discharge_mwh") == pytest.approx(0.004)
        assert metric(m, "V1", "energy_discharged_mwh") == pytest.approx(0.8)


# ---------------------------------------------------------------- several policies
def two_policies(step_min: int = 60) -> dict[str, pd.DataFrame]:
    a, b = make_tables(step_min, "greedy"), make_tables(step_min, "fixed dn1")
    b["failures"] = b["failures"].iloc[:0]
    return {k: pd.concat([a[k], b[k]], ignore_index=True) for k in a}


def test_metrics_by_policy_and_summary():
    m = run_metrics(two_policies(), make_info(60))
    assert set(m["policy"]) == {"greedy", "fixed dn1"}
    assert metric(m, "system", "failures", "greedy") == 1
    assert metric(m, "system", "failures", "fixed dn1") == 0
    assert metric(m, "system", "sfi_total", "fixed dn1") == pytest.approx(1.7)  # B h1 excluded
    s = summary_table(m)
    assert s.index.tolist() == ["greedy", "fixed dn1"] and s.index.name == "policy"
    assert list(s.columns) == ["sfi_total", "energy_delivered_mwh", "losses_mwh",
                               "voltage_violation_bus_steps", "loading_violation_line_steps",
                               "nonconverged_steps", "trips", "failures"]
    row = s.loc["greedy"]
    assert row["sfi_total"] == pytest.approx(1.7)
    assert row["trips"] == 1 and row["failures"] == 1 and row["nonconverged_steps"] == 1


def test_table_without_policy_column_is_ambiguous_with_two_policies():
    t = two_policies()
    t["failures"] = t["failures"].drop(columns="policy")
    with pytest.raises(ValueError, match="policy"):
        table(t, "failures", "greedy")


# ---------------------------------------------------------------- figures
def test_vehicle_intervals_use_event_minutes():
    iv = figures.vehicle_intervals(make_tables(60), make_info(60))
    got = [tuple(r) for r in iv[["kind", "start_min", "end_min", "site"]].itertuples(index=False)]
    assert got == [("parked", 0, 60, "A"), ("transit", 60, 110, ""), ("parked", 110, 240, "B")]


def test_write_all_writes_readable_pngs(tmp_path):
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt

    tables, info = two_policies(15), make_info(15)
    before = len(plt.get_fignums())
    paths = figures.write_all(tables, info, run_metrics(tables, info), tmp_path)
    names = sorted(p.name for p in paths)
    expected = sorted([f"{p}_{k}.png" for p in ("greedy", "fixed_dn1")
                       for k in ("route_gantt", "power", "soc", "voltage")]
                      + ["policy_comparison.png"])
    assert names == expected
    for p in paths:
        assert p.parent == tmp_path / "figures"
        assert p.stat().st_size > 1000
        img = mpimg.imread(p)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert len(plt.get_fignums()) == before  # every figure closed


def test_write_all_single_policy_has_no_comparison(tmp_path):
    paths = figures.write_all(make_tables(60), make_info(60), None, tmp_path)
    assert len(paths) == 4
    assert not (tmp_path / "figures" / "policy_comparison.png").exists()


def test_figure_needs_policy_when_several(tmp_path):
    with pytest.raises(ValueError, match="policy"):
        figures.soc_trajectories(two_policies(), make_info(60), tmp_path / "x.png")


def test_group_sums_equal_pandas_groupby_sum_bit_for_bit():
    from experiments.metrics import group_sums

    rng = np.random.default_rng(3)
    # values whose naive and compensated sums differ, NaN, signed zeros, missing keys
    pool = np.array([1e16, -1e16, 1.0, 0.1, 0.3, 1e-9, np.nan, 3.3333333, -0.0])
    keys = [("p", int(k), s) for k, s in zip(rng.integers(0, 40, 600),
                                               rng.choice(["a", "b"], 600))]
    keys[5] = ("p", 3, None)  # dropped, as groupby drops it
    vals = rng.choice(pool, 600) * rng.random(600)
    for min_count in (0, 1, 3):
        got = group_sums(keys, vals, min_count)
        df = pd.DataFrame({"k": keys, "v": vals})
        df = df[[k[2] is not None for k in keys]]
        ref = df.groupby("k")["v"].sum(min_count=min_count)
        assert set(got) == set(ref.index)
        for k, v in ref.items():
            assert np.array_equal(np.float64(got[k]), np.float64(v), equal_nan=True)
            if not math.isnan(v):
                assert math.copysign(1.0, got[k]) == math.copysign(1.0, v)
    # it differs from a plain float sum on these values (the test would not see the algorithm)
    assert any(group_sums([0] * 3, v)[0] != sum(v) for v in ([1e16, 1.0, 1.0], [0.1, 0.2, 0.3]))
