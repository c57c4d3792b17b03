"""Figures of the Co-OPT study (experiments/coopt_study.py). Every number comes from the run."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402

from agents.degradation import make_degradation  # noqa: E402
from experiments.figures import _save  # noqa: E402

POL_COLOR = {"dp": "tab:blue", "dp_site": "tab:cyan", "greedy": "tab:orange",
             "shortest": "tab:green", "milp": "tab:pink"}
MODEL_COLOR = {"nmc": "tab:red", "lfp": "tab:purple", "generalised": "tab:gray"}


def _layout(net) -> dict[int, np.ndarray]:
    g = nx.Graph()
    for a in net.arcs:
        w = min(a.dist_km, g.edges[a.from_node, a.to_node]["weight"]) if g.has_edge(
            a.from_node, a.to_node) else a.dist_km
        g.add_edge(a.from_node, a.to_node, weight=w)
    return nx.kamada_kawai_layout(g, weight="weight")


def route_map(path: Path, net, keep, model: str) -> Path:
    pos = _layout(net)
    fig, axes = plt.subplots(1, 3, figsize=(19, 6.5))
    pols = ("dp", "milp", "greedy") if any(k[1] == "milp" for k in keep) else (
        "dp", "dp_site", "greedy")
    for ax, pol in zip(axes, pols):
        for a in net.arcs:
            x = [pos[a.from_node][0], pos[a.to_node][0]]
            y = [pos[a.from_node][1], pos[a.to_node][1]]
            ax.plot(x, y, color="0.85", lw=1, zorder=1)
            if a.from_node < a.to_node:
                ax.text(np.mean(x), np.mean(y), f"{a.dist_km:g}", fontsize=6, color="0.5")
        plans = keep[(model, pol)][0]
        cmap = plt.get_cmap("tab10")
        for i, (name, plan) in enumerate(plans.items()):
            off = 0.012 * (i - len(plans) / 2)
            for st in plan.steps:
                if st.kind != "move":
                    continue
                p0, p1 = pos[st.node_from] + off, pos[st.node_to] + off
                ax.annotate("", xy=p1, xytext=p0, arrowprops=dict(
                    arrowstyle="->", color=cmap(i % 10), lw=1.6,
                    linestyle="-" if st.phase_from == 0 else "--"), zorder=2)
            ax.plot([], [], color=cmap(i % 10), label=f"{name} -> site {plan.served_customer}")
        for n, (x, y) in pos.items():
            role = net.role(n)
            c = {"depot": "black", "charging": "gold", "construction": "tab:cyan"}[role]
            ax.scatter([x], [y], s=260, c=c, edgecolors="k", zorder=3)
            ax.text(x, y, str(n), ha="center", va="center", fontsize=8, zorder=4,
                    color="white" if role == "depot" else "black")
        ax.set_title(f"{pol} routes ({model})\nsolid = fresh MESS out, dashed = old MESS back",
                     fontsize=10)
        # below the axes, so that it never hides a node
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2,
                  frameon=False)
        ax.set_axis_off()
    fig.suptitle(f"{net.name} network: depot black, charging sites gold, construction sites "
                 "cyan (edge labels km)")
    return _save(fig, path / "route_map.png", dpi=110)


def soc_day(path: Path, keep, model: str, soc_min: float, soc_end: float) -> Path:
    fig, axes = plt.subplots(1, 3, figsize=(19, 4.8), sharey=True)
    for ax, pol in zip(axes, ("dp", "dp_site", "greedy")):
        reps = keep[(model, pol)][1]
        cmap = plt.get_cmap("tab10")
        for i, r in enumerate(reps):
            for si, seg in enumerate(r.soc_segments):
                t = np.array([m for m, _ in seg]) / 60.0
                s = np.array([x for _, x in seg])
                ax.plot(t, s, "-o" if si == 0 else "--o", ms=3, color=cmap(i % 10),
                        label=r.truck if si == 0 else None)
        ax.axhline(soc_min, color="r", lw=0.8, ls=":", label="SOC min")
        ax.axhline(soc_end, color="k", lw=0.8, ls=":", label="SOC end (old MESS)")
        ax.set_xlabel("clock (h)")
        ax.set_title(f"{pol}: SOC of the carried MESS ({model})\nsolid fresh, dashed old",
                     fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("SOC (fraction)")
    # one legend for the three panels, below them (inside, it covered the trajectories)
    seen: dict[str, object] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    fig.legend(list(seen.values()), list(seen), loc="upper center", bbox_to_anchor=(0.5, 0.0),
               ncol=len(seen), fontsize=8, frameon=False)
    return _save(fig, path / "soc_day.png", dpi=110)


def cost_breakdown(path: Path, summary) -> Path:
    parts = ["distance_usd", "wage_usd", "energy_usd", "degradation_usd", "unmet_penalty_usd"]
    names = ["distance", "wages", "charging energy", "battery degradation",
             "unmet-demand penalty"]
    colors = ["tab:brown", "tab:olive", "tab:blue", "tab:red", "0.6"]
    models = list(dict.fromkeys(summary.model))
    pols = list(dict.fromkeys(summary.policy))
    fig, ax = plt.subplots(figsize=(12.5, 4.8))
    x, labels = [], []
    for mi, m in enumerate(models):
        for pi, pol in enumerate(pols):
            xi = mi * (len(pols) + 1) + pi
            row = summary[(summary.model == m) & (summary.policy == pol)].iloc[0]
            bottom = 0.0
            for part, name, c in zip(parts, names, colors):
                ax.bar(xi, row[part], bottom=bottom, color=c,
                       label=name if (mi == 0 and pi == 0) else None)
                bottom += row[part]
            ax.text(xi, bottom, f"{row['total_usd']:.0f}", ha="center", va="bottom", fontsize=7)
            x.append(xi)
            labels.append(f"{pol}\n{m}")
    ax.set_xticks(x, labels, fontsize=8, rotation=30 if len(x) > 8 else 0)
    ax.set_xlabel("policy / degradation model")
    ax.set_ylabel("fleet cost (USD per day)")
    ax.set_title("Cost breakdown under the DP cost model (label: total incl. unmet penalty)")
    handles, labs = ax.get_legend_handles_labels()  # stacking order: top entry = top block
    ax.legend(handles[::-1], labs[::-1], fontsize=8, loc="upper left",
              bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path / "cost_breakdown.png", dpi=110)


def soh_models(path: Path, summary, keep, s, years: float) -> Path:
    models = list(dict.fromkeys(summary.model))
    pols = list(dict.fromkeys(summary.policy))
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    ax = axes[0]
    w = 0.8 / len(models)
    for mi, m in enumerate(models):
        vals = [summary[(summary.model == m) & (summary.policy == p)].iloc[0][
            "sim_capacity_loss_ppm"] for p in pols]
        ax.bar(np.arange(len(pols)) + mi * w, vals, w, color=MODEL_COLOR.get(m), label=m)
    ax.set_xticks(np.arange(len(pols)) + w * (len(models) - 1) / 2, pols)
    ax.set_ylabel("levelised capacity loss of the day, fleet (ppm)")
    ax.set_title("Day's ageing of the carried MESS (SimPy run, stepwise models)")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    ax = axes[1]
    days = max(1, int(round(365 * years)))
    for m in models:
        reps = keep[(m, "dp")][1]
        if not reps:
            continue
        seg = reps[0].soc_segments[0] + reps[0].soc_segments[-1]  # truck 1: out and back
        socs = [x for _, x in seg]
        mins = np.diff([t for t, _ in seg]).clip(min=0)
        model = make_degradation(m, temp_c=s.temp_c, c_pack_usd_per_kwh=s.c_pack_usd_per_kwh)
        soh = [1.0]
        for _ in range(days):
            for a, b, dt in zip(socs[:-1], socs[1:], mins):
                model.update(a, b, 0.0, int(dt), 0.35)
            rest = 24 * 60 - int(mins.sum())  # the rest of the day parked at the last SOC
            model.update(socs[-1], socs[0], 0.0, max(rest, 0), 0.35)
            soh.append(model.soh_frac())
        ax.plot(np.arange(days + 1), soh, color=MODEL_COLOR.get(m), label=m)
    ax.set_xlabel("days repeating one MESS's daily cycle of truck 1's DP plan")
    ax.set_ylabel("SOH (fraction)")
    names = ", ".join(m if m == "generalised" else m.upper() for m in models)
    ax.set_title(f"SOH per degradation model ({names}; stepwise models)")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path / "soh_models.png", dpi=110)


def prices_fig(path: Path, pres) -> Path:
    fig, ax = plt.subplots(figsize=(8, 3.8))
    styles = ["-", "--", ":", "-."]
    for i, b in enumerate(pres.buses):
        y = np.append(pres.price_usd_per_kwh[:, i], pres.price_usd_per_kwh[-1, i])
        ax.step(np.arange(25), y, where="post", ls=styles[i % 4], lw=2.5 - 0.5 * i,
                label=f"bus {b}")
    ax.axvspan(7, 19, color="0.9", label="routing day")
    ax.set_xlabel("hour")
    ax.set_ylabel("nodal price (USD/kWh)")
    ax.set_xlim(0, 24)
    spread = float(np.ptp(pres.price_usd_per_kwh, axis=1).max())
    ax.set_title(f"{pres.config.method.upper()}-OPF nodal prices at the charging buses\n"
                 f"(largest spread between buses in any hour: {spread:.3f} USD/kWh)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(alpha=0.3)
    return _save(fig, path / "prices.png", dpi=110)


def all_figures(path: Path, net, summary, keep, pres, st, s) -> list[Path]:
    model = "generalised" if "generalised" in set(summary.model) else summary.model.iloc[0]
    return [route_map(path, net, keep, model), soc_day(path, keep, model, s.soc_min_frac,
                                                        s.soc_end_frac),
            cost_breakdown(path, summary), soh_models(path, summary, keep, s, st.soh_years),
            prices_fig(path, pres)]
