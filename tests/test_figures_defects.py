"""Figure behaviour checked through matplotlib objects (not pixels): the route Gantt classes a
step as charging/discharging only above a power threshold and so agrees with the power table,
the voltage figure has one legend, the policy comparison leaves out all-zero panels, and the
sweep's hourly band keeps its legend outside the axes with distinguishable bands."""

from __future__ import annotations

import copy
import tomllib

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import pytest
from matplotlib.patches import Rectangle

from experiments import figures
from experiments.config import SCENARIO_DIR, validate
from experiments.run import run_one

TINY = tomllib.loads((SCENARIO_DIR / "tiny.toml").read_text())
P_MAX_MW = 0.25  # the tiny truck's rating (tiny.toml)


@pytest.fixture
def captured(monkeypatch):
    """Replace figures._save: keep the figure (and still write and close it)."""
    figs = []
    real = figures._save

    def keep(fig, path, dpi=figures.DPI):
        figs.append(fig)
        fig.canvas.draw()  # so tests can read the laid-out objects
        return real(fig, path, dpi)

    monkeypatch.setattr(figures, "_save", keep)
    return figs


@pytest.fixture(scope="module")
def trickle_run():
    """tiny with its schedule: trickle charging (0.4 % of the rating) at a for two hours, a real
    charge, trickle again, then a real discharge at b."""
    raw = copy.deepcopy(TINY)
    raw.pop("compare", None)
    raw["policy"]["params"]["plan"] = [
        {"time_min": 0, "vehicle": "truck", "dest": "a"},
        {"time_min": 60, "vehicle": "truck", "p_mw": 0.001},
        {"time_min": 120, "vehicle": "truck", "p_mw": 0.2},
        {"time_min": 180, "vehicle": "truck", "p_mw": 0.0015},
        {"time_min": 240, "vehicle": "truck", "dest": "b"},
        {"time_min": 360, "vehicle": "truck", "p_mw": -0.2},
        {"time_min": 420, "vehicle": "truck", "p_mw": -0.0005},
    ]
    res = run_one(validate(raw), record_arrays=False)
    return res.tables, res.info


def _bars(ax, color: str) -> list[tuple[float, float]]:
    """(start_h, end_h) of the thin power bars of ``color`` in the Gantt axes."""
    rgba = mcolors.to_rgba(color)
    return sorted((p.get_x(), p.get_x() + p.get_width()) for p in ax.patches
                  if isinstance(p, Rectangle) and np.allclose(p.get_facecolor(), rgba)
                  and p.get_height() == pytest.approx(0.1))


def _hours(runs: list[tuple[float, float]], step_h: float) -> set[float]:
    return {round(a + k * step_h, 6) for a, b in runs
            for k in range(int(round((b - a) / step_h)))}


def test_power_modes_follow_the_threshold_of_the_run_power_table(trickle_run):
    tables, info = trickle_run
    veh = tables["vehicles"]
    p = veh.set_index("time_min")["p_mw"]
    # the run really holds trickle steps: nonzero, but below 1 % of the rating
    trickle = p[(p.abs() > 1e-9) & (p.abs() < figures.ACTIVE_POWER_FRAC * P_MAX_MW)]
    assert len(trickle) >= 3, p
    modes = figures.power_modes(tables, info).set_index("time_min")
    assert list(modes.index) == list(p.index)
    thr = figures.ACTIVE_POWER_FRAC * info["vehicles"]["truck"]["p_max_mw"]
    assert thr == pytest.approx(0.0025)
    for t, pw in p.items():
        want = "charging" if pw >= thr else "discharging" if pw <= -thr else "idle"
        assert modes.loc[t, "mode"] == want, (t, pw)
    assert (modes["mode"] == "charging").sum() == 1
    assert (modes["mode"] == "discharging").sum() == 1
    assert set(modes.loc[trickle.index, "mode"]) == {"idle"}


def test_gantt_marks_charging_only_where_the_power_plot_shows_it(trickle_run, captured,
                                                                tmp_path):
    tables, info = trickle_run
    figures.route_gantt(tables, info, tmp_path / "gantt.png")
    ax = captured[-1].axes[0]
    step_h = info["step_min"] / 60.0
    p = tables["vehicles"].set_index("time_min")["p_mw"]
    thr = figures.ACTIVE_POWER_FRAC * P_MAX_MW
    ch = _hours(_bars(ax, figures.CHARGE_COLOR), step_h)
    dis = _hours(_bars(ax, figures.DISCHARGE_COLOR), step_h)
    assert ch == {round(t / 60.0, 6) for t, v in p.items() if v >= thr} == {2.0}
    assert dis == {round(t / 60.0, 6) for t, v in p.items() if v <= -thr} == {6.0}
    labels = ax.get_legend().get_texts()
    assert any(t.get_text().startswith("charging (|P| ≥ 1 %") for t in labels)


def test_power_modes_without_a_rating_uses_the_absolute_floor():
    tables = {"vehicles": pd.DataFrame({"time_min": [0, 60, 120], "vehicle": "v",
                                        "p_mw": [1e-4, -1e-4, 0.0]})}
    modes = figures.power_modes(tables, {"step_min": 60, "vehicles": {}})
    assert list(modes["mode"]) == ["charging", "discharging", "idle"]
    with pytest.raises(ValueError, match="frac"):
        figures.power_modes(tables, {"step_min": 60}, frac=1.5)


def test_voltage_figure_has_one_legend(trickle_run, captured, tmp_path):
    tables, info = trickle_run
    figures.voltage_range(tables, info, tmp_path / "v.png")
    fig = captured[-1]
    assert len(fig.axes) == len(info["sites"]) == 2
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert len(legends) + len(fig.legends) == 1
    texts = [t.get_text() for t in legends[0].get_texts()]
    assert len(texts) == len(set(texts))
    assert "limits" in texts and "bus voltage range (min–max)" in texts


def _metrics(values: dict[str, list[float]], pols=("a", "b")) -> pd.DataFrame:
    rows = [dict(policy=p, entity=s, metric="sfi_accumulated", value=v)
            for p in pols for s, v in zip(("dn1", "dn2"), (3.0, 4.0))]
    rows += [dict(policy=p, entity="system", metric=m, value=vals[i])
             for m, vals in values.items() for i, p in enumerate(pols)]
    return pd.DataFrame(rows)


def test_policy_comparison_drops_all_zero_panels(captured, tmp_path):
    m = _metrics({"sfi_total": [7.0, 6.5], "energy_delivered_mwh": [-0.1, 0.0],
                  "losses_mwh": [2.3, 2.3], "voltage_violation_bus_steps": [0.0, 0.0],
                  "loading_violation_line_steps": [0.0, 0.0]})
    drawn, zero = figures.comparison_panels(m)
    assert drawn == ["sfi_accumulated", "sfi_total", "energy_delivered_mwh", "losses_mwh"]
    assert zero == ["voltage_violation_bus_steps", "loading_violation_line_steps"]
    figures.policy_comparison(m, tmp_path / "cmp.png")
    fig = captured[-1]
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 4
    titles = [ax.get_title() for ax in visible]
    assert "Voltage violations" not in titles and "Line overloads" not in titles
    note = [t.get_text() for t in fig.texts if "not drawn" in t.get_text()]
    assert len(note) == 1 and "voltage violations" in note[0] and "line overloads" in note[0]
    # a metric zero for one policy only is kept, and nothing zero means no footnote
    m2 = _metrics({"sfi_total": [7.0, 6.5], "energy_delivered_mwh": [-0.1, 0.0],
                   "losses_mwh": [2.3, 2.3], "voltage_violation_bus_steps": [0.0, 3.0],
                   "loading_violation_line_steps": [1.0, 0.0]})
    assert figures.comparison_panels(m2) == (
        ["sfi_accumulated", *[k for k, _, _ in figures.COMPARISON_METRICS]], [])
    figures.policy_comparison(m2, tmp_path / "cmp2.png")
    fig = captured[-1]
    assert sum(ax.get_visible() for ax in fig.axes) == 6
    assert not [t for t in fig.texts if "not drawn" in t.get_text()]


def test_sweep_hourly_band_legend_outside_and_bands_distinct(monkeypatch, tmp_path):
    from experiments import sweep_figures

    rng = np.random.default_rng(3)
    pols = ["greedy", "stationary", "idle"]
    rows = [dict(scenario=s, policy=p, entity="system", metric=m, time_min=float(t),
                 value=1.0 + 0.1 * rng.standard_normal())
            for s in range(4) for p in pols for m in sweep_figures.HOURLY
            for t in range(0, 240, 60)]
    monkeypatch.setattr(sweep_figures, "_system", lambda out: pd.DataFrame(rows))
    figs = []
    real = sweep_figures._save

    def keep(fig, path, dpi=figures.DPI):
        fig.canvas.draw()
        figs.append(fig)
        return real(fig, path, dpi)

    monkeypatch.setattr(sweep_figures, "_save", keep)
    sweep_figures.hourly_band(tmp_path, tmp_path / "band.png")
    fig = figs[0]
    axes = fig.axes
    assert len(axes) == len(sweep_figures.HOURLY)
    legends = [ax.get_legend() for ax in axes if ax.get_legend() is not None]
    assert len(legends) + len(fig.legends) == 1
    leg = legends[0]
    box = leg.get_window_extent()
    for ax in axes:  # the legend overlaps no axes: it sits below the last one
        a = ax.get_window_extent()
        assert box.y1 <= a.y0 or box.y0 >= a.y1 or box.x1 <= a.x0 or box.x0 >= a.x1
    assert box.y1 <= axes[-1].get_window_extent().y0
    # one mean line and one band patch per policy: distinct colours, line styles and hatches
    handles = leg.legend_handles
    lines, bands = handles[0::2], handles[1::2]
    assert len({ln.get_linestyle() for ln in lines}) == len(pols)
    assert len({tuple(ln.get_color()) if not isinstance(ln.get_color(), str)
                 else ln.get_color() for ln in lines}) == len(pols)
    assert len({b.get_hatch() for b in bands}) == len(pols)
    assert all(b.get_hatch() for b in bands)
    # the drawn bands carry the same hatches as the legend
    drawn = {c.get_hatch() for c in axes[0].collections if c.get_hatch()}
    assert drawn == {b.get_hatch() for b in bands}


# ------------------------------------------------------------------ train (TSN) study figures
def _keep_tsn(monkeypatch):
    from experiments import tsn_figures

    figs = []
    real = tsn_figures._save

    def keep(fig, path, dpi=figures.DPI):
        fig.canvas.draw()
        figs.append(fig)
        return real(fig, path, dpi)

    monkeypatch.setattr(tsn_figures, "_save", keep)
    return tsn_figures, figs


def test_train_routes_put_energy_and_capacity_on_their_own_labelled_axes(monkeypatch,
                                                                        tmp_path):
    tsn_figures, figs = _keep_tsn(monkeypatch)
    routes = pd.DataFrame({"train": ["K1"] * 3 + ["K2"] * 3, "hour": [1, 2, 3] * 2,
                           "station": ["S1", "", "S2", "S2", "S2", ""],
                           "c_mw": [20.0, 20.0, 20.0, 30.0, 30.0, 30.0],
                           "e_mwh": [10.0, 12.0, 15.0, 40.0, 35.0, 35.0]})
    tsn_figures.train_routes(routes, tmp_path / "r.png")
    _, ax_e, ax_c = figs[0].axes
    assert "MWh" in ax_e.get_ylabel() and "MW," in ax_c.get_ylabel()
    # energy values only on the energy axes, capacity values only on the capacity axes
    assert {float(y) for ln in ax_e.get_lines() for y in ln.get_ydata()} == {10, 12, 15, 40, 35}
    assert {float(y) for ln in ax_c.get_lines() for y in ln.get_ydata()} == {20.0, 30.0}


def test_ocd_figure_always_shows_the_centralised_reference_and_its_status(monkeypatch,
                                                                          tmp_path):
    tsn_figures, figs = _keep_tsn(monkeypatch)
    # many iterations near 9,000 USD and a reference far above the 98th percentile
    hist = pd.DataFrame({"run": "literal", "iteration": range(1, 61),
                         "ub_usd": 9000.0, "lb_usd": 8000.0})
    tsn_figures.ocd_convergence(hist, 10400.0, tmp_path / "o.png", "time_limit")
    ax = figs[0].axes[0]
    lo, hi = ax.get_ylim()
    assert lo < 8000.0 and hi > 10400.0
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "centralised MILP (time_limit, not proven optimal)" in labels
    tsn_figures.ocd_convergence(hist, 8500.0, tmp_path / "o2.png")
    assert "centralised MILP" in [t.get_text() for t in figs[1].axes[0].get_legend().get_texts()]


def test_tsn_sweeps_ring_incumbents_that_are_not_proven_optimal(monkeypatch, tmp_path):
    tsn_figures, figs = _keep_tsn(monkeypatch)
    ts = pd.DataFrame({"transport_cost_per_h": [0.0, 20.0, 200.0], "train_hours": [31, 5, 0],
                       "status": ["time_limit", "optimal", "optimal"]})
    tsn_figures.transport_sweep(ts, tmp_path / "t.png")
    ax = figs[0].axes[0]
    ringed = [ln for ln in ax.get_lines() if ln.get_label() == "not proven optimal"]
    assert len(ringed) == 1 and list(ringed[0].get_xdata()) == [0.0]
    assert "falls" not in ax.get_title()  # no conclusion written in before the data
    tsn_figures.transport_sweep(ts.assign(status="optimal"), tmp_path / "t2.png")
    assert figs[1].axes[0].get_legend() is None


# ------------------------------------------------------------------ Co-OPT study figures
def test_coopt_soc_day_has_one_legend_outside_the_panels(monkeypatch, tmp_path):
    from types import SimpleNamespace

    from experiments import coopt_figures

    figs = []
    real = coopt_figures._save

    def keep(fig, path, dpi=figures.DPI):
        fig.canvas.draw()
        figs.append(fig)
        return real(fig, path, dpi)

    monkeypatch.setattr(coopt_figures, "_save", keep)
    rep = [SimpleNamespace(truck=f"truck{i}", soc_segments=[[(420, 0.9), (500, 0.7)],
                                                           [(560, 0.2), (640, 0.65)]])
           for i in (1, 2)]
    kept = {("generalised", p): (None, rep) for p in ("dp", "dp_site", "greedy")}
    coopt_figures.soc_day(tmp_path, kept, "generalised", 0.05, 0.6)
    fig = figs[0]
    assert all(ax.get_legend() is None for ax in fig.axes)
    assert len(fig.legends) == 1
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["truck1", "truck2", "SOC min", "SOC end (old MESS)"]
    box = fig.legends[0].get_window_extent()
    assert all(box.y1 <= ax.get_window_extent().y0 for ax in fig.axes)  # below every panel

    summary = pd.DataFrame({"model": "generalised", "policy": ["dp", "greedy"],
                            "distance_usd": [100.0, 90.0], "wage_usd": [300.0, 310.0],
                            "energy_usd": [400.0, 420.0], "degradation_usd": [20.0, 30.0],
                            "unmet_penalty_usd": [0.0, 500.0], "total_usd": [820.0, 1350.0]})
    coopt_figures.cost_breakdown(tmp_path, summary)
    ax = figs[1].axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert not [lab for lab in labels if lab.endswith("_usd")]  # words, not column names
    assert labels[0] == "unmet-demand penalty"  # top of the stack first
    assert "USD" in ax.get_ylabel()


def test_sfi_weights_legend_lists_only_dns_with_a_deficit_hour(monkeypatch, tmp_path):
    from experiments import sfi_figures

    figs = []
    real = sfi_figures._save

    def keep(fig, path, dpi=figures.DPI):
        figs.append(fig)
        return real(fig, path, dpi)

    monkeypatch.setattr(sfi_figures, "_save", keep)
    hours = np.arange(1, 5)
    w = pd.concat([pd.DataFrame({"site": n, "hour": hours, "w_dynamic": 1 / 3,
                                 "w_stochastic": 1 / 3, "fd_dynamic": fd,
                                 "fd_stochastic": fs})
                   for n, fd, fs in (("dn1", [0, 1, 0, 0], 0.0), ("dn2", 0.0, [0, 0, 2, 0]),
                                     ("dn3", 0.0, 0.0))])
    info = {"sites": {"dn1": {}, "dn2": {}, "dn3": {}}}
    sfi_figures.fig_weights(w, info, tmp_path / "w.png")
    labels = [t.get_text() for t in figs[0].axes[0].get_legend().get_texts()]
    assert "deficit hour of dn1" in labels and "deficit hour of dn2" in labels
    assert "deficit hour of dn3" not in labels


def test_legends_list_only_what_the_run_holds(captured, tmp_path):
    """A parked vehicle that only charges: no 'transit' in the Gantt legend, no 'discharging'
    in the power legend (both were listed for every run)."""
    info = {"step_min": 60, "horizon_min": 180, "sites": {"A": {"node": "nA"}},
            "vehicles": {"V": {"p_max_mw": 1.0}}}
    veh = pd.DataFrame({"time_min": [0, 60, 120], "vehicle": "V", "node": "nA", "site": "A",
                        "status": "parked", "p_mw": [0.5, 0.0, 0.004],
                        "p_requested_mw": [0.5, 0.0, 0.004]})
    tables = {"vehicles": veh}
    figures.route_gantt(tables, info, tmp_path / "g.png")
    labels = [t.get_text() for t in captured[-1].axes[0].get_legend().get_texts()]
    assert labels == ["parked at A", "charging (|P| ≥ 1 % of $P_{\\max}$)"]
    figures.power_bars(tables, info, tmp_path / "p.png")
    labels = [t.get_text() for t in captured[-1].axes[0].get_legend().get_texts()]
    assert "charging" in labels and "discharging" not in labels and "transit" not in labels
