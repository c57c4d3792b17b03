"""Figures of a sweep directory: distributions per policy, hourly bands, paired differences.

Each function reads only the columns it needs from the sweep's Parquet files and writes one PNG
through :func:`experiments.figures._save`. Only scenarios with status ``ok`` are drawn.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from experiments.bench import DIRECTION, bench_tables  # noqa: E402
from experiments.figures import _STYLE, _VEHICLE_PALETTE, _save  # noqa: E402
from experiments.sweep import read_manifest, read_results  # noqa: E402

LABELS = {"sfi_total": ("System flexibility index", "SFI-h"),
          "energy_delivered_mwh": ("Energy delivered by the fleet", "MWh"),
          "losses_mwh": ("Network losses", "MWh"),
          "residual_abs_mwh": ("Unbalanced residual", "MWh"),
          "voltage_violation_bus_steps": ("Voltage violations", "bus-steps"),
          "loading_violation_line_steps": ("Line overloads", "line-steps"),
          "nonconverged_steps": ("Non-converged power flows", "steps"),
          "trips": ("Trips", "trips"),
          "cost_usd": ("Fleet cost (with unmet penalty)", "USD"),
          "operating_usd": ("Fleet operating cost", "USD"),
          "served_customers": ("Customers served", "sites"),
          "delivered_kwh": ("Energy delivered", "kWh"),
          "unmet_kwh": ("Energy not delivered", "kWh"),
          "delay_min": ("Drive delays", "min"),
          "queue_min": ("Charger queueing", "min"),
          "recorded_failures": ("Recorded failures", "failures"),
          "soh_loss": ("Battery capacity loss", "fraction"),
          "operating_cost": ("Operating cost", "USD"),
          "total_cost": ("Operating + transport cost", "USD"),
          "wind_curtailed_mwh": ("Wind curtailed", "MWh"),
          "imbalance_mwh": ("Imbalance taken by the slack", "MWh")}
HOURLY = {"sfi_weighted": ("Weighted system flexibility index", "SFI"),
          "losses_mw": ("Network losses", "MW"),
          "mess_p_mw": ("Fleet power (charging +)", "MW"),
          "charging_mw": ("Trucks' charging on the feeder", "MW"),
          "vm_min_pu": ("Lowest feeder voltage", "p.u."),
          "imbalance_mw": ("Imbalance taken by the slack", "MW"),
          "wind_curtailed_mw": ("Wind curtailed", "MW")}
#: the headline metrics of each family (the ECDF and paired figures): the first group with a
#: metric in the sweep is drawn
HEADLINE = (("sfi_total", "losses_mwh", "energy_delivered_mwh"),
            ("cost_usd", "delay_min", "served_customers"),
            ("operating_cost", "wind_curtailed_mwh", "imbalance_mwh"))


def _headline(present) -> list[str]:
    for group in HEADLINE:
        found = [m for m in group if m in set(present)]
        if found:
            return found
    return []


def _colors(pols):
    return {p: _VEHICLE_PALETTE[i % len(_VEHICLE_PALETTE)] for i, p in enumerate(pols)}


def _system(out: Path) -> pd.DataFrame:
    ok = read_manifest(out).query("status == 'ok'").scenario.astype(int).tolist()
    res = read_results(out, columns=["scenario", "policy", "entity", "metric", "time_min",
                                     "value"], filters=[("entity", "==", "system")])
    return res[res.scenario.isin(ok)]


def boxplots(out: Path, path: Path) -> Path | None:
    """One box per policy for each system metric that varies (None: nothing varies)."""
    res = _system(out)
    tot = res[res.time_min.isna()]
    pols = list(pd.unique(tot.policy))
    metrics = [m for m in DIRECTION if tot[tot.metric == m].value.nunique() > 1]
    if not metrics:
        return None
    n = len(metrics)
    ncols = min(3, max(1, n))
    nrows = int(np.ceil(n / ncols)) or 1
    col = _colors(pols)
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(nrows, ncols, figsize=(3.5 * ncols, 2.9 * nrows), squeeze=False)
        for ax, m in zip(axes.ravel(), metrics):
            data = [tot[(tot.metric == m) & (tot.policy == p)].value.to_numpy() for p in pols]
            bp = ax.boxplot(data, whis=(5, 95), patch_artist=True, widths=0.6,
                            medianprops={"color": "black"}, flierprops={"markersize": 2})
            for patch, p in zip(bp["boxes"], pols):
                patch.set_facecolor(col[p])
                patch.set_alpha(0.7)
            ax.set_xticks(range(1, len(pols) + 1), pols, rotation=20, ha="right")
            title, unit = LABELS[m]
            ax.set_title(title)
            ax.set_ylabel(unit)
            ax.grid(axis="x", visible=False)
        for ax in axes.ravel()[n:]:
            ax.set_visible(False)
        n_scen = tot.scenario.nunique()
        fig.suptitle(f"Per-scenario outcomes, {n_scen} scenarios (whiskers 5-95 %)", fontsize=11)
        return _save(fig, path)


def ecdfs(out: Path, path: Path) -> Path | None:
    """Empirical CDFs per policy of the family's headline metrics (DN: SFI, losses, energy;
    trucks: cost, delays, customers served; trains: cost, wind curtailed, imbalance)."""
    tot = _system(out)
    tot = tot[tot.time_min.isna()]
    pols = list(pd.unique(tot.policy))
    col = _colors(pols)
    metrics = _headline(tot.metric)
    if not metrics:
        return None
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.0),
                                 squeeze=False)
        for ax, m in zip(axes.ravel(), metrics):
            for p in pols:
                v = np.sort(tot[(tot.metric == m) & (tot.policy == p)].value.to_numpy())
                if v.size:
                    ax.step(np.r_[v[0], v], np.r_[0.0, np.arange(1, v.size + 1) / v.size],
                            where="post", color=col[p], label=p)
            title, unit = LABELS[m]
            ax.set_title(title)
            ax.set_xlabel(unit)
            ax.set_ylabel("share of scenarios")
            ax.set_ylim(0, 1.02)
        axes.ravel()[0].legend(frameon=False, loc="upper left")
        fig.suptitle("Empirical CDFs per policy", fontsize=11)
        return _save(fig, path)


def hourly_band(out: Path, path: Path) -> Path | None:
    """Hourly expectation per policy with the 10-90 % band over scenarios (None: the sweep
    has no per-step series). Each policy has its own colour, line style and band hatching; the
    legend sits below the axes."""
    res = _system(out)
    hr = res[res.time_min.notna() & res.metric.isin(list(HOURLY))]
    pols = list(pd.unique(hr.policy))
    col = {p: plt.get_cmap("tab10").colors[i % 10] for i, p in enumerate(pols)}
    styles = ["-", "--", "-.", ":"]
    hatches = ["////", "\\\\", "....", "xx", "++", "oo"]
    metrics = [m for m in HOURLY if m in set(hr.metric)]
    if not metrics:
        return None
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(len(metrics), 1, figsize=(7.0, 2.4 * len(metrics) + 0.6),
                                 sharex=True, squeeze=False)
        t_end = 0.0
        for ax, m in zip(axes.ravel(), metrics):
            for i, p in enumerate(pols):
                sub = hr[(hr.metric == m) & (hr.policy == p)]
                g = sub.groupby("time_min").value
                t_h = g.mean().index.to_numpy(dtype=float) / 60.0
                if t_h.size == 0:
                    continue
                # each value holds for its whole step: draw to the end of the last step
                t_h = np.append(t_h, t_h[-1] + (np.diff(t_h).min() if t_h.size > 1 else 1.0))

                def edge(v):
                    return np.append(v, v[-1])

                # later policies thinner, so that a mean equal to an earlier one stays visible
                ax.plot(t_h, edge(g.mean().to_numpy()), color=col[p], label=f"{p} mean",
                        linestyle=styles[i % len(styles)], linewidth=max(0.9, 2.2 - 0.5 * i),
                        drawstyle="steps-post", zorder=3)
                t_end = max(t_end, float(t_h[-1]))
                ax.fill_between(t_h, edge(g.quantile(0.10).to_numpy()),
                                edge(g.quantile(0.90).to_numpy()), facecolor=col[p],
                                alpha=0.18, step="post", linewidth=0, label=f"{p} 10-90 %")
                # hatch drawn separately so it stays visible through the light fill
                ax.fill_between(t_h, edge(g.quantile(0.10).to_numpy()),
                                edge(g.quantile(0.90).to_numpy()), facecolor="none",
                                edgecolor=col[p], hatch=hatches[i % len(hatches)],
                                step="post", linewidth=0, alpha=0.6)
            title, unit = HOURLY[m]
            ax.set_title(title)
            ax.set_ylabel(unit)
        axes.ravel()[-1].set_xlabel("time (h)")
        if t_end > 0:
            axes.ravel()[-1].set_xlim(0.0, t_end)
        # legend below the last axes: a mean line and a band patch per policy
        handles, labels = [], []
        for i, p in enumerate(pols):
            handles += [matplotlib.lines.Line2D([], [], color=col[p],
                                                linewidth=max(0.9, 2.2 - 0.5 * i),
                                                linestyle=styles[i % len(styles)]),
                        matplotlib.patches.Patch(facecolor=(*col[p], 0.18), edgecolor=col[p],
                                                 hatch=hatches[i % len(hatches)], linewidth=0)]
            labels += [f"{p} mean", f"{p} 10-90 %"]
        axes.ravel()[-1].legend(handles, labels, frameon=False, ncol=max(1, min(5, len(pols))),
                                fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.32))
        n_scen = hr.scenario.nunique()
        fig.suptitle(f"Expectation per step with the 10-90 % band, {n_scen} scenarios",
                     fontsize=11)
        return _save(fig, path)


def paired_differences(out: Path, path: Path) -> Path | None:
    """Per-scenario differences of every policy against the first, with 95 % intervals."""
    res = _system(out)
    tot = res[res.time_min.isna()]
    pols = list(pd.unique(tot.policy))
    paired = bench_tables(out, pols)["paired"]
    base = pols[0]
    metrics = _headline(paired.metric) if len(paired) else []
    if not metrics:
        return None
    others = pols[1:]
    col = _colors(pols)
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.1),
                                 squeeze=False)
        for ax, m in zip(axes.ravel(), metrics):
            wide = tot[tot.metric == m].pivot_table(index="scenario", columns="policy",
                                                    values="value")
            for i, p in enumerate(others):
                d = (wide[p] - wide[base]).dropna().to_numpy()
                jitter = np.random.default_rng(i).uniform(-0.15, 0.15, d.size)
                ax.scatter(i + jitter, d, s=6, color=col[p], alpha=0.5)
                row = paired[(paired.metric == m) & (paired.a == base) & (paired.b == p)]
                if len(row):
                    r = row.iloc[0]
                    ax.errorbar(i + 0.3, r.mean_diff, yerr=[[r.mean_diff - r.ci95_lo],
                                                            [r.ci95_hi - r.mean_diff]],
                                fmt="D", color="black", capsize=3, markersize=4)
            ax.axhline(0.0, color="black", linewidth=0.8)
            ax.set_xlim(-0.5, len(others) - 0.1)
            ax.set_xticks(range(len(others)), [f"{p} - {base}" for p in others], rotation=20,
                          ha="right")
            title, unit = LABELS[m]
            ax.set_title(title)
            ax.set_ylabel(f"difference ({unit})")
            ax.grid(axis="x", visible=False)
        fig.suptitle(f"Paired differences against {base} per scenario "
                     "(diamond: mean, 95 % t interval)", fontsize=11)
        return _save(fig, path)


def _mean_ci(v: np.ndarray) -> tuple[float, float]:
    """Mean and half-width of its 95 % Student-t interval (0 for a single value)."""
    from scipy import stats as sps

    if v.size < 2:
        return float(v.mean()), 0.0
    return float(v.mean()), float(sps.t.ppf(0.975, v.size - 1) * v.std(ddof=1)
                                  / np.sqrt(v.size))


def compute_time_vs_objective(out: Path, path: Path) -> Path | None:
    """Per policy, the mean engine wall seconds per scenario against the mean of the family's
    first headline objective (DN: SFI; trucks: fleet cost; trains: operating cost), both with
    their 95 % t intervals over the ``ok`` scenarios (None: no wall times or no objective). A
    plan made once per benchmark from the forecast (``sweep.json``'s ``plan_s``, the truck
    ``milp``) is not in the engine time: its seconds are written beside the point."""
    man = read_manifest(out)
    man = man[man.status == "ok"]
    tot = _system(out)
    tot = tot[tot.time_min.isna()]
    metrics = _headline(tot.metric)
    if not metrics or "policy_s" not in man.columns:
        return None
    m = metrics[0]
    obj = tot[tot.metric == m].pivot_table(index="scenario", columns="policy", values="value")
    secs: dict[str, list[float]] = {}
    for k, d in zip(man.scenario.astype(int), man.policy_s):
        if isinstance(d, dict) and k in obj.index:
            for p, s in d.items():
                secs.setdefault(p, []).append(float(s))
    pols = [p for p in pd.unique(tot.policy) if p in secs and p in obj.columns]
    if not pols:
        return None
    col = _colors(pols)
    title, unit = LABELS[m]
    better = "higher" if DIRECTION.get(m, 1) > 0 else "lower"
    try:  # plans made once per benchmark from the forecast (truck milp): said beside the point
        plan_s = json.loads((out / "sweep.json").read_text(encoding="utf-8")).get("plan_s", {})
    except (OSError, ValueError):
        plan_s = {}
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(5.6, 3.8))
        xs = []
        for p in pols:
            x, dx = _mean_ci(np.asarray(secs[p]))
            y, dy = _mean_ci(obj[p].dropna().to_numpy())
            xs.append(x)
            ax.errorbar(x, y, xerr=[[min(dx, 0.99 * x)], [dx]], yerr=dy, fmt="o",
                        color=col[p], capsize=3,
                        markersize=5, label=p)
            once = float(plan_s.get(p, 0.0) or 0.0)
            label = f"{p} (+{once:.0f} s plan, once)" if once >= 1.0 else p
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
        if min(xs) > 0 and max(xs) / min(xs) > 20:
            ax.set_xscale("log")
        ax.legend(frameon=False, fontsize=7, loc="best")  # the labels of close points overlap
        ax.set_xlabel("engine wall time per scenario (s)")
        ax.set_ylabel(f"{title} ({unit}), {better} is better")
        n_scen = obj.dropna(how="all").shape[0]
        ax.set_title(f"Compute time against objective, {n_scen} scenarios "
                     "(95 % t intervals)", fontsize=10)
        return _save(fig, path)


def write_all(out: str | Path) -> list[Path]:
    """Every sweep figure into ``out/figures`` that the sweep's metrics allow (a figure with
    nothing to draw is skipped); the paired plot needs two policies."""
    out = Path(out)
    fig_dir = out / "figures"
    paths = [boxplots(out, fig_dir / "sweep_boxplots.png"),
             ecdfs(out, fig_dir / "sweep_ecdf.png"),
             hourly_band(out, fig_dir / "sweep_hourly_band.png")]
    tot = read_results(out, columns=["policy"], filters=[("entity", "==", "system")])
    if tot.policy.nunique() > 1:
        paths.append(paired_differences(out, fig_dir / "sweep_paired.png"))
    paths.append(compute_time_vs_objective(out, fig_dir / "sweep_time_objective.png"))
    return [p for p in paths if p is not None]
