"""Figures of the seed-001 study (:mod:`experiments.tsn_study`), from its tidy tables."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from experiments.figures import _STYLE, TRANSIT_EDGE, TRANSIT_FACE, _save  # noqa: E402

VARIANT_STYLE = {"mes": ("#1f77b4", "MES (trains)"), "ses_distributed": ("#ff7f0e",
                 "distributed SES"), "ses_central": ("#2ca02c", "centralised SES"),
                 "none": ("#7f7f7f", "no storage")}


def train_routes(routes: pd.DataFrame, path: Path) -> Path:
    """Gantt of each train's station per hour (grey: in transit), then each train's stored energy
    (MWh) and its battery power capacity (MW) at the end of every hour, on separate axes."""
    routes = routes.assign(station=routes.station.fillna("").astype(str))
    with plt.rc_context(_STYLE):
        trains = list(dict.fromkeys(routes.train))
        stations = sorted(s for s in routes.station.unique() if s)
        colors = {s: plt.cm.tab10(i) for i, s in enumerate(stations)}
        fig, (ax, ax_e, ax_c) = plt.subplots(
            3, 1, figsize=(8, 1.2 + 0.9 * len(trains) + 4.2), sharex=True,
            height_ratios=[len(trains), 2.0, 2.0])
        for y, tr in enumerate(trains):
            g = routes[routes.train == tr]
            for r in g.itertuples(index=False):
                face = colors[r.station] if r.station else TRANSIT_FACE
                ax.barh(y, 1, left=r.hour - 1, color=face, edgecolor=TRANSIT_EDGE if not
                        r.station else "white", height=0.6)
            col = plt.cm.Dark2(y)
            ls = ["-", "--", "-.", ":"][y % 4]
            # value at the end of hour h drawn over (h-1, h]
            ax_e.step(np.r_[0, g.hour], np.r_[g.e_mwh.iloc[0], g.e_mwh], where="pre", color=col,
                      ls=ls, label=tr)
            ax_c.step(np.r_[0, g.hour], np.r_[g.c_mw.iloc[0], g.c_mw], where="pre", color=col,
                      ls=ls, label=tr)
        ax.set_yticks(range(len(trains)), trains)
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        handles = [plt.Rectangle((0, 0), 1, 1, color=colors[s]) for s in stations]
        handles.append(plt.Rectangle((0, 0), 1, 1, facecolor=TRANSIT_FACE, edgecolor=TRANSIT_EDGE))
        ax.legend(handles, [*stations, "in transit"], ncol=len(stations) + 1, loc="lower left",
                  bbox_to_anchor=(0, 1.02), frameon=False)
        ax.set_title("Train routes (station per hour)", loc="left", pad=22)
        ax_e.set_ylabel("stored energy\n(MWh, end of hour)")
        ax_c.set_ylabel("power capacity\n(MW, end of hour)")
        ax_c.set_xlabel("hour")
        ax_e.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                    title="train", title_fontsize=8)
        ax_c.set_xlim(0, int(routes.hour.max()))
        return _save(fig, path)


def dispatch(disp: pd.DataFrame, path: Path) -> Path:
    """Hourly supply of the MES plan: thermal, wind used/available, storage."""
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(8, 3.6))
        h = disp.hour.to_numpy()
        ax.bar(h, disp.thermal_mw, color="#8c564b", label="thermal")
        ax.bar(h, disp.wind_mw, bottom=disp.thermal_mw, color="#17becf", label="wind used")
        ax.bar(h, disp.storage_dis_mw, bottom=disp.thermal_mw + disp.wind_mw, color="#d62728",
               label="storage discharge")
        ax.bar(h, -disp.storage_ch_mw, color="#2ca02c", label="storage charge")
        ax.plot(h, disp.load_mw, "k-", lw=1.5, label="load")
        ax.plot(h, disp.wind_avail_mw, color="#0e7c86", ls="--", lw=1.5, label="wind available")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel("hour")
        ax.set_ylabel("power (MW)")
        ax.set_xlim(0.4, h.max() + 0.6 if len(h) else 1.0)
        ax.set_title("Dispatch of the centralised MES plan", loc="left")
        # outside the axes: inside it would cover the bars
        ax.legend(ncol=1, frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
        return _save(fig, path)


def line_sweep(ls: pd.DataFrame, line: str, path: Path) -> Path:
    """Total cost and wind utilisation against the rating of one line (the paper's Fig. 7)."""
    with plt.rc_context(_STYLE):
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
        marks = {"none": ("s", 9, "-"), "mes": ("o", 6, "-"), "ses_distributed": ("^", 7, "--"),
                 "ses_central": ("v", 5, ":")}
        ringed = False
        for var, g in ls.groupby("variant", sort=False):
            color, label = VARIANT_STYLE[var]
            mk, ms, lsty = marks[var]
            g = g.sort_values("rating_mw")
            ok = g.status.isin(["optimal", "feasible_gap", "time_limit"])
            kw = dict(color=color, marker=mk, ms=ms, ls=lsty, label=label)
            a1.plot(g.rating_mw[ok], g.total_cost_usd[ok], **kw)
            a2.plot(g.rating_mw[ok], g.wind_util_pct[ok], **kw)
            # an incumbent that is not proven optimal (time limit, gap) is ringed
            open_ = ok & (g.status != "optimal")
            for a, col in ((a1, "total_cost_usd"), (a2, "wind_util_pct")):
                a.plot(g.rating_mw[open_], g[col][open_], ls="none", marker="o", ms=13,
                       mfc="none", mec="black", mew=1.0,
                       label="not proven optimal" if a is a1 and open_.any() and not ringed
                       else None)
            ringed |= bool(open_.any())
        a1.set_xlabel(f"{line} rating (MW)")
        a1.set_ylabel("total cost (USD)")
        a2.set_xlabel(f"{line} rating (MW)")
        a2.set_ylabel("wind utilisation (%)")
        a1.set_title("Cost against line capacity", loc="left")
        a2.set_title("Wind utilisation", loc="left")
        hs, labs = a1.get_legend_handles_labels()
        order = sorted(range(len(labs)), key=lambda i: labs[i] == "not proven optimal")
        a1.legend([hs[i] for i in order], [labs[i] for i in order], frameon=False)
        return _save(fig, path)


def ocd_convergence(hist: pd.DataFrame, central: float, path: Path,
                    central_status: str = "optimal") -> Path:
    """UB and LB of each OCD run per iteration against the centralised MILP's cost (Fig. 10);
    the legend names the MILP's status when it is not optimal. The y range always shows it."""
    with plt.rc_context(_STYLE):
        runs = list(dict.fromkeys(hist.run))
        fig, ax = plt.subplots(figsize=(8, 3.8))
        for i, run in enumerate(runs):
            g = hist[hist.run == run]
            c = plt.cm.tab10(i)
            ax.plot(g.iteration, g.ub_usd, "-", color=c, marker="o", ms=3, label=f"{run} UB")
            ax.plot(g.iteration, g.lb_usd, "--", color=c, marker="v", ms=3, label=f"{run} LB")
        ax.axhline(central, color="k", lw=1, label="centralised MILP" if central_status ==
                   "optimal" else f"centralised MILP ({central_status}, not proven optimal)")
        finite = np.r_[hist.ub_usd[np.isfinite(hist.ub_usd)], hist.lb_usd, central]
        finite = finite[np.isfinite(finite)]
        lo, hi = np.percentile(finite, 2), np.percentile(finite, 98)
        if np.isfinite(central):  # the reference line is never clipped away
            lo, hi = min(lo, central), max(hi, central)
        pad = 0.05 * (hi - lo + 1e-9)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlabel("iteration")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel("total cost (USD)")
        ax.set_title("OCD upper and lower bounds (LB from the power MILP's dual bound)",
                     loc="left")
        ax.legend(ncol=1, frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
        return _save(fig, path)


def transport_sweep(ts: pd.DataFrame, path: Path) -> Path:
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(5, 3.2))
        g = ts.sort_values("transport_cost_per_h")
        ax.plot(g.transport_cost_per_h, g.train_hours, "o-", label="MES plan")
        if "status" in g.columns:  # an incumbent not proven optimal is ringed
            open_ = g.status != "optimal"
            if open_.any():
                ax.plot(g.transport_cost_per_h[open_], g.train_hours[open_], ls="none",
                        marker="o", ms=13, mfc="none", mec="black", mew=1.0,
                        label="not proven optimal")
                ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.set_xlabel("transport cost c_h (USD/h)")
        ax.set_ylabel("train-hours travelled (h)")
        ax.set_title("Train travel against transport cost", loc="left")
        return _save(fig, path)


def all_figures(tables: dict[str, pd.DataFrame], cfg, out: Path) -> dict[str, Path]:
    out = Path(out)
    figs = {"routes": train_routes(tables["routes"], out / "routes.png"),
            "dispatch": dispatch(tables["dispatch"], out / "dispatch.png")}
    if len(tables.get("line_sweep", [])):
        figs["line_sweep"] = line_sweep(tables["line_sweep"], cfg.sweeps.line,
                                        out / "fig7_line_sweep.png")
    if len(tables.get("ocd_history", [])):
        central = float(tables["ocd"].central_usd.iloc[0])
        status = (str(tables["ocd"].central_status.iloc[0])
                  if "central_status" in tables["ocd"].columns else "optimal")
        figs["ocd"] = ocd_convergence(tables["ocd_history"], central,
                                      out / "fig10_ocd_convergence.png", status)
    if len(tables.get("transport_sweep", [])) > 1:
        figs["transport"] = transport_sweep(tables["transport_sweep"],
                                            out / "transport_sweep.png")
    return figs
