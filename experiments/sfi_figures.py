"""Figures of the seed 000 study (:mod:`experiments.sfi_study`), numbered as in the paper.

Every function takes tidy DataFrames of the study (the Parquet tables), writes one PNG and returns
its path. Figs. 2-4 reuse the run figures of :mod:`experiments.figures` on a vehicles table built
from the MILP plan, so plan and simulation figures look alike.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from experiments.figures import (
    _STYLE,
    DPI,
    _save,
    power_bars,
    route_gantt,
    site_colors,
    soc_trajectories,  # noqa: E402
)
from experiments.scenarios_mc import weighted_quantile  # noqa: E402

CASE_COLORS = {"nomess": "#9e9e9e", "fixed": "#ff7f0e", "mobile": "#1f77b4"}
CASE_LABELS = {"nomess": "no MESS", "fixed": "fixed at DN1", "mobile": "mobile"}
METHOD_COLORS = {"deterministic": "#1f77b4", "stochastic": "#2ca02c", "no MESS": "#9e9e9e"}
MARKER_COLOR = "#d62728"


def _info(ctx) -> dict:
    return {
        "step_min": ctx.step_min, "horizon_min": ctx.step_min * len(ctx.sites[0].load_forecast_mw),
        "sites": {s.name: {"c_norm_mw": s.c_norm_mw, "node": s.node} for s in ctx.sites},
        "vehicles": {v.name: {"capacity_mwh": v.battery.capacity_mwh,
                              "e_min_mwh": v.battery.e_min_mwh, "e_max_mwh": v.battery.e_max_mwh,
                              "p_max_mw": v.battery.p_max_mw, "e_init_mwh": v.e_init_mwh,
                              "kind": v.kind} for v in ctx.vehicles},
    }


def plan_vehicles_table(plan_df: pd.DataFrame, ctx, policy: str) -> pd.DataFrame:
    """The plan (``plan_dynamic`` table) as a simulation-style ``vehicles`` table."""
    node_of = {s.name: s.node for s in ctx.sites}
    rows = []
    for v, g in plan_df.groupby("vehicle", sort=False):
        last = ""
        cap = next(x.battery.capacity_mwh for x in ctx.vehicles if x.name == v)
        for r in g.sort_values("time_min").itertuples(index=False):
            node = node_of.get(r.site, "") if r.site else last
            last = node or last
            rows.append({"policy": policy, "time_min": int(r.time_min), "vehicle": v,
                         "node": node, "site": r.site, "dest": "",
                         "status": "transit" if r.transit else "parked",
                         "connected": bool(r.site), "p_requested_mw": r.p_mw, "p_mw": r.p_mw,
                         "e_start_mwh": r.e_start_mwh, "e_end_mwh": r.e_end_mwh,
                         "soc_end_frac": r.e_end_mwh / cap})
    return pd.DataFrame(rows)


def _hours_axis(ax, T: int, label: bool = True) -> None:
    ax.set_xlim(0, T)
    ax.set_xticks(range(0, T + 1, 3))
    if label:
        ax.set_xlabel("Hour of day (h)")


def _step(ax, values, **kw):
    v = np.asarray(values, dtype=float)
    x = np.arange(len(v) + 1)
    return ax.stairs(v, x, baseline=None, **kw)


# ----------------------------------------------------------------------------- Fig. 1
def fig_weights(weights: pd.DataFrame, info: dict, path) -> Path:
    names = list(info["sites"])
    colors = site_colors(info)
    T = int(weights.hour.max())
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(2, 1, figsize=(9.0, 5.6), sharex=True)
        for ax, (col, fdcol, title) in zip(axes, (
                ("w_dynamic", "fd_dynamic", "mean profile (forecasts)"),
                ("w_stochastic", "fd_stochastic", "scenario-expected deficits (reduced set)"))):
            for n in names:
                d = weights[weights.site == n].sort_values("hour")
                for t in np.flatnonzero(d[fdcol].to_numpy() > 0):
                    ax.axvspan(t, t + 1, color=colors[n], alpha=0.15, linewidth=0)
                _step(ax, d[col], color=colors[n], linewidth=1.8, label=f"$w$ {n}")
            ax.axhline(1 / len(names), color="black", linestyle=":", linewidth=1.0,
                       label=f"equal weight 1/{len(names)}")
            ax.set_ylim(0, 1.05)
            ax.set_ylabel("weight $w_{n,t}$")
            ax.set_title(f"Dynamic weights, {title}", loc="left")
            _hours_axis(ax, T, label=ax is axes[-1])
        handles, labels = axes[0].get_legend_handles_labels()
        # a legend entry only for the DNs that have a deficit hour in either panel
        deficit = {n for n in names for c in ("fd_dynamic", "fd_stochastic")
                   if (weights.loc[weights.site == n, c] > 0).any()}
        handles += [Patch(facecolor=colors[n], alpha=0.3, label=f"deficit hour of {n}")
                    for n in names if n in deficit]
        axes[0].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                       frameon=False)
        fig.suptitle("Fig. 1: hourly dual-dimension dynamic weights", fontsize=11)
        return _save(fig, path)


# ----------------------------------------------------------------------------- Figs. 5-6
def fig_fixed_total(fm: pd.DataFrame, path) -> Path:
    tot = fm[fm.entity == "total (weighted)"]
    kinds = ["equal", "dynamic"]
    cases = ["nomess", "fixed", "mobile"]
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(6.4, 3.8))
        width = 0.26
        for j, c in enumerate(cases):
            vals = [float(tot[(tot.weights == k) & (tot.case == c)].value.iloc[0]) for k in kinds]
            bars = ax.bar(np.arange(2) + (j - 1) * width, vals, width, color=CASE_COLORS[c],
                          label=CASE_LABELS[c])
            ax.bar_label(bars, labels=[f"{v:.2f}" for v in vals], fontsize=7, padding=1)
        lo = float(tot.value.min())
        ax.set_ylim(0.9 * lo, 1.06 * float(tot.value.max()))
        ax.set_xticks(range(2), [f"{k} weights" for k in kinds])
        ax.set_ylabel("accumulated weighted SFI (0-24 h)")
        ax.grid(axis="x", visible=False)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        ax.set_title("Fig. 5: total weighted SFI, fixed at DN1 vs mobile (y axis cut)")
        return _save(fig, path)


def fig_fixed_per_dn(fm: pd.DataFrame, names: list[str], path) -> Path:
    cases = ["nomess", "fixed", "mobile"]
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.6), sharey=True)
        for ax, k in zip(axes, ("equal", "dynamic")):
            d = fm[fm.weights == k]
            width = 0.26
            for j, c in enumerate(cases):
                vals = [float(d[(d.case == c) & (d.entity == n)].value.iloc[0]) for n in names]
                bars = ax.bar(np.arange(len(names)) + (j - 1) * width, vals, width,
                              color=CASE_COLORS[c], label=CASE_LABELS[c])
                ax.bar_label(bars, labels=[f"{v:.2f}" for v in vals], fontsize=5.5, padding=1,
                             rotation=90)
            ax.set_xticks(range(len(names)), names)
            ax.set_title(f"plans optimised with {k} weights")
            ax.grid(axis="x", visible=False)
        axes[0].set_ylabel("accumulated SFI of the DN (0-24 h)")
        axes[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        fig.suptitle("Fig. 6: DN-level accumulated SFI, fixed at DN1 vs mobile", fontsize=11)
        return _save(fig, path)


# ----------------------------------------------------------------------------- Fig. 7
def weighted_box_stats(values, prob, label: str) -> dict:
    """``matplotlib.axes.Axes.bxp`` statistics from probability-weighted quantiles."""
    v = np.asarray(values, float)
    p = np.asarray(prob, float)
    q = {k: weighted_quantile(v, p, k) for k in (0.10, 0.25, 0.50, 0.75, 0.90)}
    return {"label": label, "med": q[0.50], "q1": q[0.25], "q3": q[0.75], "whislo": q[0.10],
            "whishi": q[0.90], "mean": float(v @ p), "fliers": v[(v < q[0.10]) | (v > q[0.90])]}


def fig_boxplot(scen: pd.DataFrame, stats: pd.DataFrame, path) -> Path:
    methods = [("deterministic", "j_deterministic", "deterministic route\nre-dispatched"),
               ("stochastic", "j_stochastic", "stochastic\nco-optimisation")]
    st = stats.set_index("method")
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(6.8, 4.4))
        bstats = [weighted_box_stats(scen[col], scen.prob, lab) for _, col, lab in methods]
        ax.bxp(bstats, positions=[1, 2], widths=0.45, showmeans=True, patch_artist=True,
               boxprops={"facecolor": "#dbe9f6"}, medianprops={"color": "black"},
               meanprops={"marker": "x", "markeredgecolor": "black", "markersize": 7},
               flierprops={"marker": ".", "markersize": 4, "markerfacecolor": "#555555"})
        rng = np.random.default_rng(0)
        for i, (m, col, _) in enumerate(methods, start=1):
            x = i + 0.32 + rng.uniform(-0.05, 0.05, len(scen))
            ax.scatter(x, scen[col], s=600 * scen.prob, color=METHOD_COLORS[m], alpha=0.45,
                       linewidths=0, label="scenarios (area ~ probability)" if i == 1 else None)
            ax.plot(i, st.loc[m, "marker_mean_profile"], marker="D", color=MARKER_COLOR,
                    markersize=8, linestyle="none",
                    label="route re-dispatched on the mean profile" if i == 1 else None)
        ax.plot([], [], marker="x", color="black", linestyle="none", label="expectation")
        ax.set_xticks([1, 2], [lab for *_, lab in methods])
        ax.set_xlim(0.5, 2.7)
        ax.set_ylabel("$J_s$: accumulated weighted SFI (0-24 h)")
        ax.grid(axis="x", visible=False)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        ax.set_title("Fig. 7: $J_s$ over the reduced scenarios (probability-weighted box:\n"
                     "P25-P75, median; whiskers P10-P90; dots outside)", fontsize=9)
        return _save(fig, path)


# ----------------------------------------------------------------------------- Fig. 8
def fig_hourly_weighted(hw: pd.DataFrame, path) -> Path:
    T = int(hw.hour.max())
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(10.0, 3.8), sharey=True)
        for ax, ev in zip(axes, ("dynamic", "equal")):
            for sched, color in (("dynamic", "#1f77b4"), ("equal", "#ff7f0e")):
                d = hw[(hw.schedule == sched) & (hw.evaluated_under == ev)].sort_values("hour")
                _step(ax, d.weighted_sfi, color=color, linewidth=1.8,
                      label=f"{sched}-weight plan (total {d.weighted_sfi.sum():.2f})")
            d = hw[(hw.schedule == "dynamic") & (hw.evaluated_under == ev)].sort_values("hour")
            _step(ax, d.weighted_sfi_nomess, color="#777777", linestyle="--", linewidth=1.1,
                  label=f"no MESS (total {d.weighted_sfi_nomess.sum():.2f})")
            ax.set_title(f"scored with {ev} weights")
            _hours_axis(ax, T)
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False,
                      fontsize=7, ncol=1)
        axes[0].set_ylabel(r"hourly $\sum_n w_{n,t}\,SFI_{n,t}$")
        fig.suptitle("Fig. 8: post-MESS hourly weighted SFI, dynamic- vs equal-weight plans "
                     "(route fixed, dispatch re-optimised for the scoring weights)", fontsize=10)
        return _save(fig, path)


# ----------------------------------------------------------------------------- Fig. 9
def fig_band(sh: pd.DataFrame, path) -> Path:
    T = int(sh.hour.max())
    x = np.arange(T + 1)
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(10.0, 3.8), sharey=True)
        for ax, m in zip(axes, ("deterministic", "stochastic")):
            for k in ("no MESS", m):
                d = sh[sh.method == k].sort_values("hour")
                if d.empty:
                    continue
                ax.stairs(d.p90, x, baseline=d.p10, fill=True, color=METHOD_COLORS[k],
                          alpha=0.25, label=f"{k}: P10-P90")
                ax.stairs(d.expectation, x, baseline=None, color=METHOD_COLORS[k],
                          linewidth=1.6, label=f"{k}: expectation "
                          f"(sum {d.expectation.sum():.2f})")
            ax.set_title("deterministic route re-dispatched" if m == "deterministic"
                         else "stochastic co-optimisation")
            _hours_axis(ax, T)
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False, ncol=2,
                      fontsize=7)
        axes[0].set_ylabel(r"hourly $\sum_n w_{n,t}\,SFI_{n,t}(s)$")
        fig.suptitle("Fig. 9: hourly weighted SFI under the reduced scenarios "
                     "(probability-weighted expectation and 10-90 % band)", fontsize=10)
        return _save(fig, path)


# ----------------------------------------------------------------------------- kappa
def fig_kappa(ks: pd.DataFrame, path) -> Path:
    ks = ks.sort_values("kappa")
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(2, 1, figsize=(6.8, 5.2), sharex=True,
                                 gridspec_kw={"height_ratios": [2, 1]})
        ax = axes[0]
        ax.plot(ks.kappa, ks.mobile, marker="o", color=CASE_COLORS["mobile"], label="mobile")
        ax.plot(ks.kappa, ks.fixed_dn1, marker="s", color=CASE_COLORS["fixed"],
                label="fixed at DN1")
        ax.set_ylabel("total weighted SFI\n(dynamic weights of that kappa)")
        ax.legend(frameon=False)
        ax.set_title("Sensitivity to kappa (requirement R = kappa x net load)")
        ax = axes[1]
        w = 0.35 * float(np.min(np.diff(ks.kappa))) if len(ks) > 1 else 0.05
        b = ax.bar(ks.kappa - w / 2, ks.moves, width=w, color="#555555", label="trips (both MESS)")
        ax.bar_label(b, fontsize=7)
        b = ax.bar(ks.kappa + w / 2, ks.deficit_hours, width=w, color="#c7c7c7",
                   label="deficit DN-hours")
        ax.bar_label(b, fontsize=7)
        ax.set_ylabel("count")
        ax.set_xlabel("kappa")
        ax.set_xticks(ks.kappa)
        ax.set_ylim(0, 1.25 * max(1.0, float(max(ks.moves.max(), ks.deficit_hours.max()))))
        ax.legend(frameon=False, loc="upper left")
        ax.grid(axis="x", visible=False)
        return _save(fig, path)


# ----------------------------------------------------------------------------- validation
def fig_validation_sfi(val: pd.DataFrame, info: dict, path) -> Path:
    names = list(info["sites"])
    colors = site_colors(info)
    T = int(val.hour.max())
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(len(names), 1, figsize=(9.0, 1.0 + 1.9 * len(names)),
                                 sharex=True)
        for ax, n in zip(np.atleast_1d(axes), names):
            d = val[val.site == n].sort_values("hour")
            for t in np.flatnonzero(d.vehicles_plan.to_numpy() > 0):
                ax.axvspan(t, t + 1, color="#fff2cc", linewidth=0)
            _step(ax, d.sfi_plan, color=colors[n], linewidth=1.8,
                  label=f"plan (MILP), sum {d.sfi_plan.sum():.2f}")
            _step(ax, d.sfi_sim, color="black", linewidth=1.1, linestyle="--",
                  label=f"simulation (AC), sum {d.sfi_sim.sum():.2f}")
            ax.set_ylabel(f"{n}\nSFI")
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
            _hours_axis(ax, T, label=ax is np.atleast_1d(axes)[-1])
        handles = [Patch(facecolor="#fff2cc", label="a MESS parked there (plan)")]
        fig.legend(handles=handles, loc="lower right", frameon=False)
        np.atleast_1d(axes)[0].set_title("Plan validation: planned vs simulated SFI per DN "
                                         "(dynamic-weight plan replayed, actual = forecast)")
        return _save(fig, path)


def fig_validation_soc(vv: pd.DataFrame, path) -> Path:
    T = int(vv.hour.max())
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(9.0, 3.4))
        pal = list(plt.get_cmap("Dark2").colors)
        for i, (v, d) in enumerate(vv.groupby("vehicle", sort=False)):
            d = d.sort_values("hour")
            ax.plot(d.hour, d.soc_plan_pct, color=pal[i], linewidth=2.0, alpha=0.6,
                    label=f"{v} plan")
            ax.plot(d.hour, d.soc_sim_pct, color=pal[i], linewidth=1.0, linestyle="--",
                    marker="o", markersize=2.5, label=f"{v} simulation")
        ax.set_ylabel("SOC at the end of the hour (%)")
        _hours_axis(ax, T)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        ax.set_title("Plan validation: planned vs simulated SOC")
        return _save(fig, path)


# ----------------------------------------------------------------------------- all
def write_figures(result, fig_dir, part: str = "all") -> list[Path]:
    """The study's figures under ``fig_dir``; ``part`` is ``deterministic`` (everything but
    Figs. 7 and 9), ``stochastic`` (Figs. 7 and 9) or ``all``. Returns the paths."""
    if part not in ("all", "deterministic", "stochastic"):
        raise ValueError(f"part must be all, deterministic or stochastic, got {part!r}")
    fig_dir = Path(fig_dir)
    fig_dir.mkdir(parents=True, exist_ok=True)
    t = result.tables
    ctx = result.ctx
    info = _info(ctx)
    names = list(info["sites"])
    out: list[Path] = []
    if part in ("all", "deterministic"):
        out.append(fig_weights(t["weights"], info, fig_dir / "fig01_weights.png"))
        label = "deterministic plan, dynamic weights"
        tabs = {"vehicles": plan_vehicles_table(t["plan_dynamic"], ctx, label)}
        out.append(route_gantt(tabs, info, fig_dir / "fig02_routes.png", label))
        out.append(power_bars(tabs, info, fig_dir / "fig03_power.png", label))
        out.append(soc_trajectories(tabs, info, fig_dir / "fig04_soc.png", label))
        out.append(fig_fixed_total(t["fixed_vs_mobile"],
                                   fig_dir / "fig05_fixed_vs_mobile_total.png"))
        out.append(fig_fixed_per_dn(t["fixed_vs_mobile"], names,
                                    fig_dir / "fig06_fixed_vs_mobile_per_dn.png"))
        out.append(fig_hourly_weighted(t["hourly_weighted"],
                                       fig_dir / "fig08_hourly_weighted_sfi.png"))
        out.append(fig_kappa(t["kappa_sweep"], fig_dir / "fig10_kappa.png"))
        if "validation" in t:
            out.append(fig_validation_sfi(t["validation"], info,
                                          fig_dir / "fig11_validation_sfi.png"))
            out.append(fig_validation_soc(t["validation_vehicles"],
                                          fig_dir / "fig12_validation_soc.png"))
    if part in ("all", "stochastic"):
        out.append(fig_boxplot(t["stochastic_scenarios"], t["stochastic_stats"],
                               fig_dir / "fig07_boxplot.png"))
        out.append(fig_band(t["stochastic_hourly"], fig_dir / "fig09_stochastic_band.png"))
    return out


__all__ = ["DPI", "write_figures", "weighted_box_stats", "plan_vehicles_table"]
