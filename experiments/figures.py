"""Paper-style figures of one run (MODELS.md A.9, figures 2-4) and a policy comparison.

Every figure function takes the run's tidy tables (see :mod:`experiments.metrics`), the run-level
``info`` dict, the output ``path`` and an optional ``policy`` (needed only when the tables hold
more than one), writes a PNG (dpi 120) and returns the path. The x axis is the simulation clock in
hours. Figures are always closed after saving.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display; must precede the pyplot import

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MultipleLocator  # noqa: E402

from experiments.metrics import limits, policies, run_metrics, table  # noqa: E402

DPI = 120
CHARGE_COLOR = "#2ca02c"  # green: charging (grid side +)
DISCHARGE_COLOR = "#d62728"  # red: discharging
TRANSIT_FACE = "#d9d9d9"
TRANSIT_EDGE = "#7f7f7f"
LIMIT_COLOR = "#c0392b"
# Site colours: tab10 without green, red (charge/discharge) and grey (transit).
_SITE_PALETTE = [plt.get_cmap("tab10").colors[i] for i in (0, 1, 4, 5, 9, 6, 8)]
_VEHICLE_PALETTE = list(plt.get_cmap("Dark2").colors)
P_EPS_MW = 1e-9
# A vehicle-step counts as charging/discharging in the route Gantt only when |p_mw| reaches this
# share of the vehicle's rating (p_max_mw); below it (trickle, standby draw) the vehicle is shown
# idle at its site. Without a rating the absolute floor P_EPS_MW applies.
ACTIVE_POWER_FRAC = 0.01

_STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linestyle": ":",
    "axes.spines.top": False,
    "axes.spines.right": False,
}


# ------------------------------------------------------------------------------------ helpers
def _resolve_policy(tables: Mapping[str, pd.DataFrame], policy: str | None) -> str | None:
    pols = policies(tables)
    if policy is not None:
        if pols and str(policy) not in pols:
            raise ValueError(f"policy {policy!r} not in the tables ({pols})")
        return str(policy)
    if len(pols) > 1:
        raise ValueError(f"the tables hold several policies {pols}; pass policy=")
    return pols[0] if pols else None


def _tab(tables, name: str, policy: str | None) -> pd.DataFrame:
    df = table(tables, name, policy)
    if "time_min" in df.columns and not df.empty:
        df = df.sort_values("time_min", kind="mergesort")
    return df


def _horizon_min(info: Mapping, *frames: pd.DataFrame) -> int:
    if info.get("horizon_min"):
        return int(info["horizon_min"])
    ends = [int(f["time_min"].max()) + int(info["step_min"]) for f in frames
            if not f.empty and "time_min" in f.columns]
    return max(ends) if ends else int(info["step_min"])


def _tick_hours(horizon_h: float) -> float:
    if horizon_h <= 6:
        return 1.0
    if horizon_h <= 16:
        return 2.0
    if horizon_h <= 36:
        return 3.0
    if horizon_h <= 72:
        return 6.0
    return 12.0 if horizon_h <= 168 else 24.0


def _time_axis(ax, horizon_min: int, label: bool = True) -> None:
    h = horizon_min / 60.0
    ax.set_xlim(0.0, h)
    ax.xaxis.set_major_locator(MultipleLocator(_tick_hours(h)))
    if label:
        ax.set_xlabel("Time (h)")


def site_colors(info: Mapping, extra: Sequence[str] = ()) -> dict[str, tuple]:
    """A fixed colour per site: the order of ``info["sites"]``, then ``extra`` names."""
    names = list(info.get("sites", {}))
    names += [s for s in extra if s and s not in names]
    return {s: _SITE_PALETTE[i % len(_SITE_PALETTE)] for i, s in enumerate(names)}


def _vehicle_names(info: Mapping, veh: pd.DataFrame) -> list[str]:
    names = list(info.get("vehicles", {}))
    if not veh.empty:
        names += [v for v in pd.unique(veh["vehicle"].astype(str)) if v not in names]
    return names


def _title(text: str, policy: str | None) -> str:
    return f"{text} (policy: {policy})" if policy else text


def _fits(text: str, width_h: float, horizon_h: float, axis_in: float = 6.7,
          fontsize: float = 7.0) -> bool:
    """Whether ``text`` fits inside a bar ``width_h`` hours wide on an axis ``axis_in`` inches."""
    need_in = len(text) * 0.0068 * fontsize + 0.05
    return width_h >= need_in * horizon_h / axis_in


def _one_legend(fig, axes) -> None:
    """One legend (right of the first axes) with the distinct labels of all ``axes``."""
    seen: dict[str, object] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    if seen:
        axes[0].legend(list(seen.values()), list(seen), loc="upper left",
                       bbox_to_anchor=(1.01, 1.0), frameon=False, borderaxespad=0.0)


def _steps(t_start_h: np.ndarray, step_h: float, values: np.ndarray):
    """Explicit step curve: each value held over its own step (a NaN breaks only its step)."""
    x = np.column_stack([t_start_h, t_start_h + step_h]).ravel()
    return x, np.repeat(np.asarray(values, dtype=float), 2)


def _save(fig, path, dpi: int = DPI) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.tight_layout()
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def _runs(keys: Sequence, starts: Sequence[int], step_min: int) -> list[tuple]:
    """Merge consecutive steps with equal key into ``(key, start_min, end_min)`` runs."""
    out: list[list] = []
    for k, t in zip(keys, starts):
        t = int(t)
        if out and out[-1][0] == k and out[-1][2] == t:
            out[-1][2] = t + step_min
        else:
            out.append([k, t, t + step_min])
    return [tuple(r) for r in out]


def vehicle_intervals(tables: Mapping[str, pd.DataFrame], info: Mapping,
                      policy: str | None = None) -> pd.DataFrame:
    """Parked and transit intervals of every vehicle: ``vehicle, kind, start_min, end_min, node,
    site``.

    With 'depart'/'arrive' events the intervals use their exact minutes (a vehicle that arrives in
    the middle of a step is parked from the arrival on). Without them, the per-step ``status`` of
    the vehicles table is used. ``site`` is '' for a node without a grid connection and for transit.
    """
    policy = _resolve_policy(tables, policy)
    veh = _tab(tables, "vehicles", policy)
    ev = _tab(tables, "events", policy)
    step = int(info["step_min"])
    horizon = _horizon_min(info, veh)
    node_site = {str(v.get("node")): str(k) for k, v in info.get("sites", {}).items()}
    if not veh.empty and "site" in veh.columns:
        for n, s in veh.loc[veh["site"].fillna("").astype(str) != "", ["node", "site"]].values:
            node_site.setdefault(str(n), str(s))
    rows: list[tuple] = []
    for name in _vehicle_names(info, veh):
        v = veh[veh["vehicle"].astype(str) == name] if not veh.empty else veh
        e = (ev[(ev["vehicle"].astype(str) == name) & ev["event"].isin(["depart", "arrive"])]
             if not ev.empty else ev)
        if v.empty:
            continue
        if len(e) and (e["event"] == "depart").any():
            node, cur, moving = str(v["node"].iloc[0]), 0, False
            for t, kind, n in e[["time_min", "event", "node"]].itertuples(index=False):
                t = min(int(t), horizon)
                if kind == "depart" and not moving:
                    if t > cur:
                        rows.append((name, "parked", cur, t, node, node_site.get(node, "")))
                    cur, moving, node = t, True, str(n)
                elif kind == "arrive" and moving:
                    if t > cur:
                        rows.append((name, "transit", cur, t, node, ""))
                    cur, moving, node = t, False, str(n)
            if horizon > cur:
                rows.append((name, "transit" if moving else "parked", cur, horizon, node,
                             "" if moving else node_site.get(node, "")))
        else:
            keys = [("transit", str(n)) if s == "transit" else ("parked", str(n))
                    for s, n in v[["status", "node"]].itertuples(index=False)]
            for (kind, n), a, b in _runs(keys, v["time_min"].tolist(), step):
                rows.append((name, kind, a, min(b, horizon), n,
                             node_site.get(n, "") if kind == "parked" else ""))
    return pd.DataFrame(rows, columns=["vehicle", "kind", "start_min", "end_min", "node", "site"])


# ------------------------------------------------------------------------------------ figures
def _breakdowns(events: pd.DataFrame, horizon_min: int) -> dict[str, list[tuple[int, int]]]:
    """``(start_min, end_min)`` of every breakdown per vehicle, from the event log."""
    out: dict[str, list[tuple[int, int]]] = {}
    if events.empty or "event" not in events.columns:
        return out
    open_: dict[str, int] = {}
    for r in events[events["event"].isin(["breakdown_start", "breakdown_end"])].itertuples():
        name = str(r.vehicle)
        if r.event == "breakdown_start":
            open_[name] = int(r.time_min)
        elif name in open_:
            out.setdefault(name, []).append((open_.pop(name), int(r.time_min)))
    for name, a in open_.items():
        out.setdefault(name, []).append((a, horizon_min))
    return out


def power_modes(tables: Mapping[str, pd.DataFrame], info: Mapping,
                policy: str | None = None, frac: float = ACTIVE_POWER_FRAC) -> pd.DataFrame:
    """Classify every vehicle-step of the vehicles table: ``vehicle, time_min, p_mw, mode`` with
    ``mode`` 'charging' (``p_mw >= frac * p_max_mw``), 'discharging' (``p_mw <= -frac *
    p_max_mw``) or 'idle' (anything smaller, e.g. trickle charging). ``p_max_mw`` is the vehicle's
    rating from ``info["vehicles"]``; without one the floor :data:`P_EPS_MW` is used."""
    if not 0.0 <= frac < 1.0:
        raise ValueError(f"frac must be in [0, 1), got {frac}")
    policy = _resolve_policy(tables, policy)
    veh = _tab(tables, "vehicles", policy)
    cols = ["vehicle", "time_min", "p_mw", "mode"]
    if veh.empty:
        return pd.DataFrame(columns=cols)
    out = veh[["vehicle", "time_min"]].copy()
    out["vehicle"] = out["vehicle"].astype(str)
    out["p_mw"] = pd.to_numeric(veh["p_mw"], errors="coerce").fillna(0.0)
    specs = info.get("vehicles", {})
    rating = out["vehicle"].map(
        lambda n: float(specs.get(n, {}).get("p_max_mw", np.nan))).to_numpy(dtype=float)
    thr = np.where(np.isfinite(rating) & (rating > 0), frac * rating, 0.0)
    thr = np.maximum(thr, P_EPS_MW)
    p = out["p_mw"].to_numpy(dtype=float)
    out["mode"] = np.where(p >= thr, "charging", np.where(p <= -thr, "discharging", "idle"))
    return out[cols].reset_index(drop=True)


def route_gantt(tables: Mapping[str, pd.DataFrame], info: Mapping, path,
                policy: str | None = None, show_power: bool = True) -> Path:
    """Route states per vehicle (A.9 Fig. 2): parked bars coloured by site, transit hatched grey,
    and (``show_power``) thin charge/discharge bars on top of each row for the steps that
    :func:`power_modes` classes as charging/discharging (at least :data:`ACTIVE_POWER_FRAC` of
    the vehicle's rating); smaller powers show as idle at the site (no bar)."""
    policy = _resolve_policy(tables, policy)
    veh = _tab(tables, "vehicles", policy)
    step = int(info["step_min"])
    horizon = _horizon_min(info, veh)
    iv = vehicle_intervals(tables, info, policy)
    names = _vehicle_names(info, veh)
    colors = site_colors(info, list(iv["site"]) if not iv.empty else [])
    hh = horizon / 60.0
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(9.0, 1.4 + 0.75 * max(1, len(names))))
        bar_h = 0.55
        used_sites: list[str] = []
        has_idle_node = has_ch = has_dis = has_unplugged = has_breakdown = False
        down = _breakdowns(_tab(tables, "events", policy), horizon)
        modes = power_modes(tables, info, policy)
        # Steps at which a parked vehicle was left unplugged (``Command(connected=False)``).
        unplugged: set[tuple[str, int]] = set()
        if "connected" in veh.columns:
            off = veh[(veh["status"] == "parked") & ~veh["connected"].astype(bool)]
            unplugged = set(zip(off["vehicle"].astype(str), off["time_min"].astype(int)))
        for i, name in enumerate(names):
            for r in iv[iv["vehicle"] == name].itertuples(index=False):
                x0, w = r.start_min / 60.0, (r.end_min - r.start_min) / 60.0
                if r.kind == "transit":
                    ax.barh(i, w, left=x0, height=bar_h, color=TRANSIT_FACE,
                            edgecolor=TRANSIT_EDGE, hatch="///", linewidth=0.6)
                    if _fits("transit", w, hh):
                        ax.text(x0 + w / 2, i, "transit", ha="center", va="center", fontsize=7,
                                color="#333333",
                                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none",
                                          alpha=0.8))
                elif r.site and all((name, t) in unplugged for t in range(
                        r.start_min - r.start_min % step, r.end_min, step)):
                    has_unplugged = True
                    ax.barh(i, w, left=x0, height=bar_h, color="white",
                            edgecolor=colors[r.site], hatch="..", linewidth=1.2)
                    label = f"{r.site} (unplugged)"
                    if _fits(label, w, hh):
                        ax.text(x0 + w / 2, i, label, ha="center", va="center", fontsize=7,
                                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none"))
                elif r.site:
                    ax.barh(i, w, left=x0, height=bar_h, color=colors[r.site], alpha=0.85,
                            edgecolor="white", linewidth=0.6)
                    if r.site not in used_sites:
                        used_sites.append(r.site)
                    if _fits(r.site, w, hh):
                        ax.text(x0 + w / 2, i, r.site, ha="center", va="center", fontsize=7,
                                color="white", fontweight="bold")
                else:  # parked at a node without a grid connection
                    has_idle_node = True
                    ax.barh(i, w, left=x0, height=bar_h, color="white", edgecolor="#555555",
                            linewidth=0.8)
                    if _fits(str(r.node), w, hh):
                        ax.text(x0 + w / 2, i, r.node, ha="center", va="center", fontsize=7)
            for a, b in down.get(name, []):  # out of service (agents/disruption.py)
                has_breakdown = True
                ax.barh(i, (b - a) / 60.0, left=a / 60.0, height=bar_h, color="none",
                        edgecolor="black", hatch="xx", linewidth=1.0)
            if show_power and not veh.empty:
                v = modes[modes["vehicle"] == name]
                for m, a, b in _runs(v["mode"].tolist(), v["time_min"].tolist(), step):
                    if m == "idle":
                        continue
                    has_ch |= m == "charging"
                    has_dis |= m == "discharging"
                    ax.barh(i - bar_h / 2 - 0.07, (min(b, horizon) - a) / 60.0, left=a / 60.0,
                            height=0.1,
                            color=CHARGE_COLOR if m == "charging" else DISCHARGE_COLOR)
        ax.set_yticks(range(len(names)), names)
        ax.set_ylim(len(names) - 0.5, -0.75)
        ax.grid(axis="y", visible=False)
        ax.set_ylabel("Vehicle")
        _time_axis(ax, horizon)
        ax.set_title(_title("Vehicle route states", policy))
        handles = [Patch(facecolor=colors[s], alpha=0.85, label=f"parked at {s}")
                   for s in used_sites]
        if has_idle_node:
            handles.append(Patch(facecolor="white", edgecolor="#555555",
                                 label="parked, no grid"))
        if has_unplugged:
            handles.append(Patch(facecolor="white", edgecolor="#555555", hatch="..",
                                 label="parked, unplugged"))
        if not iv.empty and (iv["kind"] == "transit").any():
            handles.append(Patch(facecolor=TRANSIT_FACE, edgecolor=TRANSIT_EDGE, hatch="///",
                                 label="transit"))
        if has_breakdown:
            handles.append(Patch(facecolor="none", edgecolor="black", hatch="xx",
                                 label="broken down"))
        thr = f"|P| ≥ {100 * ACTIVE_POWER_FRAC:g} % of $P_{{\\max}}$"
        if has_ch:
            handles.append(Patch(facecolor=CHARGE_COLOR, label=f"charging ({thr})"))
        if has_dis:
            handles.append(Patch(facecolor=DISCHARGE_COLOR, label=f"discharging ({thr})"))
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  frameon=False, borderaxespad=0.0)
        return _save(fig, path)


def power_bars(tables: Mapping[str, pd.DataFrame], info: Mapping, path,
               policy: str | None = None) -> Path:
    """Signed grid-side power per vehicle and step (A.9 Fig. 3; charging positive), one subplot
    per vehicle, transit steps shaded, ±P_max dashed, the requested power when it differs."""
    policy = _resolve_policy(tables, policy)
    veh = _tab(tables, "vehicles", policy)
    step = int(info["step_min"])
    dt_h = step / 60.0
    horizon = _horizon_min(info, veh)
    names = _vehicle_names(info, veh)
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(max(1, len(names)), 1, sharex=True, squeeze=False,
                                 figsize=(9.0, 0.6 + 1.9 * max(1, len(names))))
        axes = axes[:, 0]
        for ax, name in zip(axes, names):
            v = veh[veh["vehicle"].astype(str) == name] if not veh.empty else veh
            t = v["time_min"].to_numpy(dtype=float) / 60.0 if len(v) else np.array([])
            p = (pd.to_numeric(v["p_mw"], errors="coerce").fillna(0.0).to_numpy()
                 if len(v) else np.array([]))
            pmax = float(info.get("vehicles", {}).get(name, {}).get("p_max_mw", np.nan))
            if len(v) and "status" in v.columns:
                transit = (v["status"] == "transit").tolist()
                for k, a, b in _runs(transit, v["time_min"].tolist(), step):
                    if k:
                        ax.axvspan(a / 60.0, min(b, horizon) / 60.0, facecolor=TRANSIT_FACE,
                                   edgecolor=TRANSIT_EDGE, hatch="///", alpha=0.5, linewidth=0,
                                   label="transit" if "transit" not in
                                   ax.get_legend_handles_labels()[1] else None)
            pos, neg = np.where(p > 0, p, 0.0), np.where(p < 0, p, 0.0)
            lw = 0.4 if horizon / step <= 48 else 0.0  # step separators only when few steps
            # legend entries only for what the run holds
            ax.bar(t, pos, width=dt_h, align="edge", color=CHARGE_COLOR, edgecolor="white",
                   linewidth=lw, label="charging" if np.any(pos > 0) else None)
            ax.bar(t, neg, width=dt_h, align="edge", color=DISCHARGE_COLOR, edgecolor="white",
                   linewidth=lw, label="discharging" if np.any(neg < 0) else None)
            if len(v) and "p_requested_mw" in v.columns:
                req = pd.to_numeric(v["p_requested_mw"], errors="coerce").fillna(0.0).to_numpy()
                if np.any(np.abs(req - p) > 1e-6):
                    ax.step(np.append(t, t[-1] + dt_h), np.append(req, req[-1]), where="post",
                            color="black", linewidth=0.9, linestyle="-.", label="requested")
            ax.axhline(0.0, color="black", linewidth=0.8)
            if np.isfinite(pmax) and pmax > 0:
                for s in (1, -1):
                    ax.axhline(s * pmax, color="#555555", linewidth=0.8, linestyle="--",
                               label=r"$\pm P_{\max}$" if s == 1 else None)
                top = max(1.25 * pmax, 1.1 * float(np.max(np.abs(p), initial=0.0)))
                ax.set_ylim(-top, top)
            ax.set_ylabel(f"{name}\nP (MW)")
            _time_axis(ax, horizon, label=False)
        _one_legend(fig, axes)
        _time_axis(axes[-1], horizon)
        axes[0].set_title(_title("Vehicle power, grid side (charging +, discharging −)",
                                 policy))
        return _save(fig, path)


def soc_trajectories(tables: Mapping[str, pd.DataFrame], info: Mapping, path,
                     policy: str | None = None) -> Path:
    """SOC (% of nameplate) of every vehicle from t=0 to the horizon (A.9 Fig. 4), with the
    usable window ``e_min``/``e_max`` as dashed lines; transit steps are drawn dotted."""
    policy = _resolve_policy(tables, policy)
    veh = _tab(tables, "vehicles", policy)
    step = int(info["step_min"])
    horizon = _horizon_min(info, veh)
    names = _vehicle_names(info, veh)
    specs = info.get("vehicles", {})
    windows = {}
    for n in names:
        s = specs.get(n, {})
        cap = float(s.get("capacity_mwh", np.nan))
        if cap > 0 and "e_min_mwh" in s and "e_max_mwh" in s:
            windows[n] = (100 * float(s["e_min_mwh"]) / cap, 100 * float(s["e_max_mwh"]) / cap)
    shared = len(set(windows.values())) == 1
    soc_range = [0.0, 100.0]
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(9.0, 3.6))
        for i, name in enumerate(names):
            color = _VEHICLE_PALETTE[i % len(_VEHICLE_PALETTE)]
            v = veh[veh["vehicle"].astype(str) == name] if not veh.empty else veh
            cap = float(specs.get(name, {}).get("capacity_mwh", np.nan))
            if len(v):
                if not cap > 0:  # fall back on the recorded SOC
                    cap = float(v["e_end_mwh"].iloc[0] / v["soc_end_frac"].iloc[0])
                # two points per step, (start, e_start) and (end, e_end): energy drawn between
                # steps (traction at an arrival) shows as a vertical drop at the step boundary
                t0 = v["time_min"].to_numpy(dtype=float)
                t = np.column_stack([t0, t0 + step]).ravel()
                e = np.column_stack([v["e_start_mwh"].to_numpy(dtype=float),
                                     v["e_end_mwh"].to_numpy(dtype=float)]).ravel()
                soc = 100.0 * e / cap
                if np.isfinite(soc).any():
                    soc_range = [min(soc_range[0], np.nanmin(soc)),
                                 max(soc_range[1], np.nanmax(soc))]
                tr = ((v["status"] == "transit").tolist() if "status" in v.columns
                      else [False] * len(v))
                for k, a, b in _runs(tr, range(len(v)), 1):
                    lo = max(2 * a - 1, 0)  # from the end of the previous step
                    ax.plot(t[lo:2 * b] / 60.0, soc[lo:2 * b], color=color,
                            linewidth=1.2 if k else 1.6, linestyle=(0, (1, 1.5)) if k else "-")
                    if not k:  # markers at the step ends of parked steps
                        ax.plot(np.r_[t[2 * a], t[2 * a + 1:2 * b:2]] / 60.0,
                                np.r_[soc[2 * a], soc[2 * a + 1:2 * b:2]], color=color,
                                linestyle="none", marker="o", markersize=2.5)
                ax.plot([], [], color=color, linewidth=1.6, marker="o", markersize=2.5,
                        label=name)
            if name in windows and not shared:
                for j, y in enumerate(windows[name]):
                    ax.axhline(y, color=color, linestyle="--", linewidth=0.9,
                               label=f"{name} usable window" if j == 0 else None)
        if shared and windows:
            lo, hi = next(iter(windows.values()))
            ax.axhline(lo, color="#555555", linestyle="--", linewidth=0.9,
                       label=r"usable window ($E_{\min}$, $E_{\max}$)")
            ax.axhline(hi, color="#555555", linestyle="--", linewidth=0.9)
        if "status" in veh.columns and (veh["status"] == "transit").any():
            ax.plot([], [], color="#555555", linestyle=(0, (1, 1.5)), linewidth=1.2,
                    label="in transit")
        ax.set_ylim(soc_range[0] - 2.0, soc_range[1] + 5.0)
        ax.set_ylabel("SOC (% of capacity)")
        _time_axis(ax, horizon)
        ax.set_title(_title("Vehicle state of charge", policy))
        _one_legend(fig, [ax])
        return _save(fig, path)


def voltage_range(tables: Mapping[str, pd.DataFrame], info: Mapping, path,
                  policy: str | None = None) -> Path:
    """Per site, the band between the lowest and highest bus voltage of each step, with the
    voltage limits dashed and non-converged steps shaded."""
    policy = _resolve_policy(tables, policy)
    sites = _tab(tables, "sites", policy)
    step = int(info["step_min"])
    horizon = _horizon_min(info, sites)
    lim = limits(info)
    names = list(info.get("sites", {}))
    if not sites.empty:
        names += [s for s in pd.unique(sites["site"].astype(str)) if s not in names]
    colors = site_colors(info, names)
    lo_all = [lim["vm_min_pu"]]
    hi_all = [lim["vm_max_pu"]]
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(max(1, len(names)), 1, sharex=True, sharey=True,
                                 squeeze=False, figsize=(9.0, 0.6 + 1.7 * max(1, len(names))))
        axes = axes[:, 0]
        for ax, name in zip(axes, names):
            s = sites[sites["site"].astype(str) == name] if not sites.empty else sites
            if len(s):
                t0 = s["time_min"].to_numpy(dtype=float) / 60.0
                x, lo = _steps(t0, step / 60.0, pd.to_numeric(s["vm_min_pu"], errors="coerce"))
                _, hi = _steps(t0, step / 60.0, pd.to_numeric(s["vm_max_pu"], errors="coerce"))
                ax.fill_between(x, lo, hi, color=colors[name], alpha=0.35, linewidth=0,
                                label="bus voltage range (min–max)")
                ax.plot(x, lo, color=colors[name], linewidth=1.0)
                ax.plot(x, hi, color=colors[name], linewidth=1.0)
                if np.isfinite(lo).any():
                    lo_all.append(np.nanmin(lo))
                    hi_all.append(np.nanmax(hi))
                if "converged" in s.columns:
                    bad = (~s["converged"].astype(bool)).tolist()
                    first = True
                    for k, a, b in _runs(bad, s["time_min"].tolist(), step):
                        if k:
                            ax.axvspan(a / 60.0, min(b, horizon) / 60.0, color=LIMIT_COLOR,
                                       alpha=0.15, linewidth=0,
                                       label="not converged" if first else None)
                            first = False
            ax.axhline(lim["vm_min_pu"], color=LIMIT_COLOR, linestyle="--", linewidth=0.9,
                       label="limits")
            ax.axhline(lim["vm_max_pu"], color=LIMIT_COLOR, linestyle="--", linewidth=0.9)
            ax.set_ylabel(f"{name}\nV (p.u.)")
            _time_axis(ax, horizon, label=False)
        # one legend for the figure: the panel's y label names its DN, so the range patch is
        # drawn neutral (each panel fills it in its DN's colour)
        seen: dict[str, object] = {}
        for ax in axes:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                seen.setdefault(lab, h)
        if "bus voltage range (min–max)" in seen:
            seen["bus voltage range (min–max)"] = Patch(
                facecolor="#9e9e9e", alpha=0.5, edgecolor="#616161",
                label="bus voltage range (min–max)")
        if seen:
            axes[0].legend(list(seen.values()), list(seen), loc="upper left",
                           bbox_to_anchor=(1.01, 1.0), frameon=False, borderaxespad=0.0)
        pad = 0.1 * (max(hi_all) - min(lo_all)) + 0.002
        axes[0].set_ylim(min(lo_all) - pad, max(hi_all) + pad)
        _time_axis(axes[-1], horizon)
        axes[0].set_title(_title("Bus voltage range per distribution network", policy))
        return _save(fig, path)


COMPARISON_METRICS = (
    ("sfi_total", "Total weighted SFI", "SFI-h"),
    ("energy_delivered_mwh", "Net energy delivered by MESS", "MWh (− = net charged)"),
    ("losses_mwh", "Network losses", "MWh"),
    ("voltage_violation_bus_steps", "Voltage violations", "bus-steps"),
    ("loading_violation_line_steps", "Line overloads", "line-steps"),
)


def comparison_panels(metrics: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Which panels :func:`policy_comparison` draws: ``(drawn, all_zero)``, metric names in
    the order of the figure ('sfi_accumulated', then :data:`COMPARISON_METRICS`). A metric whose
    bars are zero for every policy (or that no policy reports) is not drawn and is listed in
    ``all_zero`` instead, for the figure's footnote."""
    pols = list(pd.unique(metrics["policy"].astype(str)))
    drawn: list[str] = []
    zero: list[str] = []
    sfi = pd.to_numeric(metrics.loc[metrics["metric"] == "sfi_accumulated", "value"],
                        errors="coerce").to_numpy(dtype=float)
    (drawn if np.any(np.isfinite(sfi) & (sfi != 0.0)) else zero).append("sfi_accumulated")
    system = metrics[metrics["entity"] == "system"]
    for m, _, _ in COMPARISON_METRICS:
        sub = system[system["metric"] == m].drop_duplicates("policy").set_index("policy")
        vals = pd.to_numeric(sub["value"], errors="coerce").reindex(pols).to_numpy(dtype=float)
        (drawn if np.any(np.isfinite(vals) & (vals != 0.0)) else zero).append(m)
    return drawn, zero


def policy_comparison(metrics: pd.DataFrame, path, info: Mapping | None = None) -> Path:
    """Grouped bars comparing the policies: accumulated SFI per site (grouped by site) and one
    subplot per system metric of :data:`COMPARISON_METRICS`. Panels whose bars are all zero are
    left out and named in a footnote (see :func:`comparison_panels`)."""
    pols = list(pd.unique(metrics["policy"].astype(str)))
    pcol = {p: _VEHICLE_PALETTE[i % len(_VEHICLE_PALETTE)] for i, p in enumerate(pols)}
    sfi = metrics[metrics["metric"] == "sfi_accumulated"]
    site_order = list((info or {}).get("sites", {}))
    site_order += [s for s in pd.unique(sfi["entity"].astype(str)) if s not in site_order]
    drawn, zero = comparison_panels(metrics)
    spec = {m: (label, unit) for m, label, unit in COMPARISON_METRICS}
    spec["sfi_accumulated"] = ("Accumulated SFI per DN", "SFI-h")
    n = max(1, len(drawn))
    ncols = 2 if n == 4 else min(3, n)  # 4 panels as 2 x 2, not 3 + 1
    nrows = int(np.ceil(n / ncols))
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * max(ncols, 2), 2.9 * nrows),
                                 squeeze=False)
        axes = axes.ravel()
        system = metrics[metrics["entity"] == "system"]
        for ax, m in zip(axes, drawn):
            label, unit = spec[m]
            if m == "sfi_accumulated":  # per-site accumulated SFI, grouped by site
                width = 0.8 / max(1, len(pols))
                x = np.arange(len(site_order))
                for j, p in enumerate(pols):
                    sub = sfi[sfi["policy"].astype(str) == p].set_index("entity")["value"]
                    vals = sub.reindex(site_order).to_numpy(dtype=float)
                    ax.bar(x + (j - (len(pols) - 1) / 2) * width, vals, width=width,
                           color=pcol[p], label=p)
                ax.set_xticks(x, site_order)
                ax.set_ylabel(f"Accumulated SFI ({unit})")
                ax.set_title(label)
                ax.grid(axis="x", visible=False)
                # room above the bars for the policy legend (two policies per legend row)
                rows = int(np.ceil(len(pols) / 2))
                top = np.nanmax(np.append(sfi["value"].to_numpy(dtype=float), 0.0))
                ax.set_ylim(0.0, (top if top > 0 else 1.0) * (1.12 + 0.14 * rows))
                ax.legend(loc="upper left", ncol=min(2, len(pols)), frameon=False,
                          fontsize=7, columnspacing=1.0, handlelength=1.2)
                continue
            sub = system[system["metric"] == m].drop_duplicates("policy").set_index("policy")
            vals = sub["value"].reindex(pols).to_numpy(dtype=float)
            bars = ax.bar(range(len(pols)), np.nan_to_num(vals), color=[pcol[p] for p in pols])
            ax.bar_label(bars, labels=["n/a" if not np.isfinite(v) else f"{v:.3g}"
                                       for v in vals], fontsize=7, padding=1)
            ax.axhline(0.0, color="black", linewidth=0.8)
            ax.set_xticks(range(len(pols)), pols, rotation=25, ha="right")
            ax.set_ylabel(unit)
            ax.set_title(label)
            ax.grid(axis="x", visible=False)
            fin = vals[np.isfinite(vals)]
            lo, hi = min(0.0, fin.min(initial=0.0)), max(0.0, fin.max(initial=0.0))
            span = hi - lo
            ax.set_ylim(lo - (0.15 * span if lo < 0 else 0.0), hi + 0.15 * span)
        for ax in axes[len(drawn):]:
            ax.set_visible(False)
        if zero:
            names = ", ".join(spec[m][0].lower() for m in zero)
            fig.text(0.01, 0.0, f"Zero (or not reported) for every policy, not drawn: {names}.",
                     ha="left", va="top", fontsize=7.5, style="italic", wrap=True)
        fig.suptitle("Policy comparison: " + ", ".join(pols), fontsize=11)
        return _save(fig, path)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("_") or "policy"


def write_all(tables: Mapping[str, pd.DataFrame], info: Mapping,
              metrics: pd.DataFrame | None, out_dir) -> list[Path]:
    """Write every figure under ``out_dir/figures``: per policy ``<policy>_route_gantt.png``,
    ``<policy>_power.png``, ``<policy>_soc.png``, ``<policy>_voltage.png``, and
    ``policy_comparison.png`` when there is more than one policy. ``metrics`` None = computed."""
    fig_dir = Path(out_dir) / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    pols = policies(tables) or [None]
    paths: list[Path] = []
    for p in pols:
        stem = _safe(p) if p is not None else "run"
        paths.append(route_gantt(tables, info, fig_dir / f"{stem}_route_gantt.png", p))
        paths.append(power_bars(tables, info, fig_dir / f"{stem}_power.png", p))
        paths.append(soc_trajectories(tables, info, fig_dir / f"{stem}_soc.png", p))
        paths.append(voltage_range(tables, info, fig_dir / f"{stem}_voltage.png", p))
    if len(pols) > 1:
        if metrics is None:
            metrics = run_metrics(tables, info)
        paths.append(policy_comparison(metrics, fig_dir / "policy_comparison.png", info))
    return paths
