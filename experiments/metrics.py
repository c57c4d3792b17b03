"""Run metrics from the tidy result tables: SFI (MODELS.md A.5), energy, grid limits, vehicles.

Every function takes the dict of tidy tables a run produces (``vehicles``, ``sites``, ``events``,
``buses``, ``lines``, ``failures``; each with a ``policy`` column and ``time_min`` = the **start**
of a step that lasts ``info["step_min"]`` minutes) and the run-level ``info`` dict
(``step_min``, ``horizon_min``, ``sites`` {name: {"c_norm_mw", "node"}}, ``vehicles``
{name: {"capacity_mwh", "e_min_mwh", "e_max_mwh", "p_max_mw", "e_init_mwh", "kind"}},
``limits`` {"vm_min_pu", "vm_max_pu", "loading_max_pct"}).

Energies are power × ``dt_h`` with ``dt_h = step_min / 60``; accumulated SFI is likewise
``sum(sfi × dt_h)`` ("SFI-hours"), so that runs with 15-min and 60-min steps are comparable (with
60-min steps it equals the plain hourly sum of A.5).

Sign convention: vehicle and site MESS powers are grid side, **charging positive**, so the energy
the fleet *delivered* to a site is ``sum(-mess_p_mw × dt_h)``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

SFI_COLUMNS = ("policy", "time_min", "site", "sfi_own", "sfi_mess", "sfi", "weight", "dt_h",
               "weighted_sfi", "excluded")
METRIC_COLUMNS = ("policy", "entity", "metric", "value", "unit")
SUMMARY_METRICS = ("sfi_total", "energy_delivered_mwh", "losses_mwh",
                   "voltage_violation_bus_steps", "loading_violation_line_steps",
                   "nonconverged_steps", "trips", "failures")
DEFAULT_LIMITS = {"vm_min_pu": 0.95, "vm_max_pu": 1.05, "loading_max_pct": 100.0}
# Limit checks ignore differences below this (float noise from the power flow).
VIOLATION_TOL = 1e-9
# |p| below this (MW) counts as idle.
P_EPS_MW = 1e-9


# ------------------------------------------------------------------------------------ helpers
def dt_hours(info: Mapping) -> float:
    """Step length in hours."""
    return float(info["step_min"]) / 60.0


def limits(info: Mapping) -> dict[str, float]:
    """The operating limits of ``info`` with the defaults filled in."""
    out = dict(DEFAULT_LIMITS)
    out.update({k: float(v) for k, v in (info.get("limits") or {}).items()})
    return out


def policies(tables: Mapping[str, pd.DataFrame]) -> list[str]:
    """The policies present in the tables, in order of first appearance (vehicles, then sites)."""
    seen: dict[str, None] = {}
    for name in ("vehicles", "sites", "events", "buses", "lines", "failures"):
        df = tables.get(name)
        if df is not None and "policy" in df.columns:
            for p in pd.unique(df["policy"]):
                seen.setdefault(str(p), None)
    return list(seen)


def table(tables: Mapping[str, pd.DataFrame], name: str, policy: str | None = None,
          n_policies: int | None = None) -> pd.DataFrame:
    """Table ``name`` (empty frame if missing), restricted to ``policy`` when given.

    A table without a ``policy`` column is accepted when it is empty or when the run holds a single
    policy; otherwise its rows could not be attributed, and a ``ValueError`` is raised.
    """
    df = tables.get(name)
    if df is None:
        return pd.DataFrame()
    if policy is None:
        return df
    if "policy" in df.columns:
        return df[df["policy"].astype(str) == str(policy)]
    if df.empty:
        return df
    if n_policies is None:
        n_policies = len(policies(tables))
    if n_policies <= 1:
        return df
    raise ValueError(f"table {name!r} has no 'policy' column but the run holds "
                     f"{n_policies} policies")


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    """Column as float (0.0 when absent or empty)."""
    if name in df.columns:
        return pd.to_numeric(df[name], errors="coerce").astype(float)
    return pd.Series(0.0, index=df.index, dtype=float)


def _total(x: pd.Series) -> float:
    """Sum skipping NaN, but NaN when there are rows and every one is NaN (e.g. every
    site-step excluded): "nothing known" is not 0."""
    return float(x.sum(min_count=1)) if len(x) else 0.0


# ------------------------------------------------------------------------------------ SFI
def sfi_table(tables: Mapping[str, pd.DataFrame], info: Mapping) -> pd.DataFrame:
    """DN-level SFI per step (MODELS.md A.5) with equal weights.

    ``sfi = (flex_up + flex_dn of the site's own resources + sum over the vehicles at the site of
    (flex_up + flex_dn)) / c_norm_mw``; ``sfi_own`` and ``sfi_mess`` are the two parts.
    ``weight = 1 / number of sites`` (sites of ``info``), ``dt_h = step_min / 60`` and
    ``weighted_sfi = weight × sfi``; the accumulated values are ``sum(sfi × dt_h)`` and
    ``sum(weighted_sfi × dt_h)``.

    One row per policy, step and site of the ``sites`` table. Steps with no vehicle at a site
    have ``sfi_mess = 0``. A site with ``c_norm_mw <= 0`` gets NaN. A site-step whose power
    flow did not converge (``converged`` false in ``sites``) has ``excluded = True`` and NaN SFI
    values: its operating point is unknown, so it adds nothing to the accumulated SFI, and
    :func:`run_metrics` counts it as ``sfi_excluded_site_steps``.
    """
    sites = tables.get("sites")
    if sites is None or sites.empty:
        return pd.DataFrame(columns=list(SFI_COLUMNS))
    sites = sites.copy()
    if "policy" not in sites.columns:
        sites["policy"] = (policies(tables) or [""])[0]
    c_norm = {str(k): float(v["c_norm_mw"]) for k, v in info["sites"].items()}
    n_sites = len(info["sites"]) or sites["site"].nunique()
    dt_h = dt_hours(info)

    own = sites[["policy", "time_min", "site"]].copy()
    own["flex_own_mw"] = _col(sites, "flex_up_mw").fillna(0.0) + _col(
        sites, "flex_dn_mw").fillna(0.0)

    veh = tables.get("vehicles")
    if veh is not None and not veh.empty:
        veh = veh.copy()
        if "policy" not in veh.columns:
            veh["policy"] = sites["policy"].iloc[0]
        at_site = veh[veh["site"].fillna("").astype(str) != ""]
        mess = at_site.assign(
            flex_mess_mw=_col(at_site, "flex_up_mw").fillna(0.0)
            + _col(at_site, "flex_dn_mw").fillna(0.0)
        ).groupby(["policy", "time_min", "site"], as_index=False)["flex_mess_mw"].sum()
        own = own.merge(mess, on=["policy", "time_min", "site"], how="left")
    else:
        own["flex_mess_mw"] = 0.0
    own["flex_mess_mw"] = own["flex_mess_mw"].fillna(0.0)

    cn = own["site"].astype(str).map(c_norm).astype(float)
    cn = cn.where(cn > 0)
    out = own[["policy", "time_min", "site"]].copy()
    out["sfi_own"] = own["flex_own_mw"] / cn
    out["sfi_mess"] = own["flex_mess_mw"] / cn
    out["sfi"] = out["sfi_own"] + out["sfi_mess"]
    out["weight"] = 1.0 / n_sites
    out["dt_h"] = dt_h
    out["weighted_sfi"] = out["weight"] * out["sfi"]
    excluded = (~sites["converged"].fillna(False).astype(bool)).to_numpy() \
        if "converged" in sites.columns else np.zeros(len(out), dtype=bool)
    out["excluded"] = excluded
    out.loc[excluded, ["sfi_own", "sfi_mess", "sfi", "weighted_sfi"]] = np.nan
    return out.sort_values(["policy", "time_min", "site"]).reset_index(drop=True)


# ------------------------------------------------------------------------------------ metrics
def _count_violations(df: pd.DataFrame, lo: float | None, hi: float | None) -> pd.Series:
    """Per site, the number of (element, step) values outside ``[lo, hi]``; NaN values ignored."""
    if df.empty or "value" not in df.columns:
        return pd.Series(dtype=float)
    v = pd.to_numeric(df["value"], errors="coerce").astype(float)
    bad = pd.Series(False, index=df.index)
    if lo is not None:
        bad |= v < lo - VIOLATION_TOL
    if hi is not None:
        bad |= v > hi + VIOLATION_TOL
    return bad.groupby(df["site"].astype(str)).sum().astype(float)


def run_metrics(tables: Mapping[str, pd.DataFrame], info: Mapping) -> pd.DataFrame:
    """Tidy metrics ``policy, entity, metric, value, unit`` per site, vehicle and the system.

    Per site: ``energy_delivered_mwh`` (net energy the fleet injected, ``sum(-mess_p_mw × dt_h)``),
    ``energy_charged_mwh`` / ``energy_discharged_mwh`` (grid side, both >= 0, from the vehicle
    rows at the site), ``losses_mwh`` (power-flow losses), ``residual_abs_mwh``,
    ``voltage_violation_bus_steps`` / ``loading_violation_line_steps`` (element-steps outside the
    limits of ``info["limits"]``, NaN ignored; NaN when the ``buses`` / ``lines`` table is
    missing), ``voltage_violation_steps`` (steps whose site min/max voltage leaves the band),
    ``nonconverged_steps``, ``vm_min_pu``, ``vm_max_pu``, ``max_line_loading_pct``,
    ``sfi_accumulated`` (SFI-hours).

    Per vehicle: ``throughput_mwh``, ``equivalent_full_cycles`` (throughput / (2 × capacity)),
    ``energy_charged_mwh``, ``energy_discharged_mwh``, ``e_end_mwh``, ``soc_end_pct``,
    ``soh_end_frac``, ``transit_steps``, ``trips`` ('depart' events), ``conversion_losses_mwh``,
    ``self_discharge_mwh``, ``bms_hold_steps``.

    Per site and system: ``sfi_excluded_site_steps``, the site-steps left out of the SFI
    because their power flow did not converge (their ``losses_mwh`` share is NaN, not 0).

    System (``entity="system"``): ``sfi_total`` (sum of ``weighted_sfi × dt_h``), and the sums over
    sites or vehicles of ``energy_delivered_mwh``, ``energy_charged_mwh``,
    ``energy_discharged_mwh``, ``losses_mwh``, ``residual_abs_mwh``,
    ``voltage_violation_bus_steps``, ``loading_violation_line_steps``, ``nonconverged_steps``,
    ``trips``, ``throughput_mwh``, ``conversion_losses_mwh``, ``self_discharge_mwh``, plus
    ``vm_min_pu``, ``vm_max_pu`` and ``failures`` (rows of the failures table).
    """
    dt_h = dt_hours(info)
    lim = limits(info)
    pols = policies(tables) or [""]  # no policy column anywhere: one unnamed policy
    n_pol = len(pols)
    sfi_all = sfi_table(tables, info)
    rows: list[tuple] = []

    def add(policy, entity, metric, value, unit):
        rows.append((policy, entity, metric, float(value), unit))

    for pol in pols:
        sites = table(tables, "sites", pol, n_pol)
        veh = table(tables, "vehicles", pol, n_pol)
        events = table(tables, "events", pol, n_pol)
        buses = table(tables, "buses", pol, n_pol)
        lines = table(tables, "lines", pol, n_pol)
        fails = table(tables, "failures", pol, n_pol)
        sfi = sfi_all[sfi_all["policy"] == pol]
        has_buses = tables.get("buses") is not None
        has_lines = tables.get("lines") is not None
        v_viol = _count_violations(buses, lim["vm_min_pu"], lim["vm_max_pu"])
        l_viol = _count_violations(lines, None, lim["loading_max_pct"])

        site_names = list(info["sites"])
        if not sites.empty:
            site_names += [s for s in pd.unique(sites["site"].astype(str)) if s not in site_names]
        veh_at = veh[veh["site"].fillna("").astype(str) != ""] if not veh.empty else veh
        tot = dict.fromkeys(("energy_delivered_mwh", "energy_charged_mwh",
                             "energy_discharged_mwh", "losses_mwh", "residual_abs_mwh",
                             "voltage_violation_bus_steps", "loading_violation_line_steps",
                             "nonconverged_steps"), 0.0)
        for name in site_names:
            s = sites[sites["site"].astype(str) == name] if not sites.empty else sites
            mess = _col(s, "mess_p_mw")
            vs = veh_at[veh_at["site"].astype(str) == name] if not veh_at.empty else veh_at
            p = _col(vs, "p_mw")
            conv = s["converged"].astype(bool) if "converged" in s.columns else pd.Series(
                True, index=s.index)
            vals = {
                "energy_delivered_mwh": (-mess * dt_h).sum(),
                "energy_charged_mwh": (p.clip(lower=0.0) * dt_h).sum(),
                "energy_discharged_mwh": (-p.clip(upper=0.0) * dt_h).sum(),
                # a non-converged step has no losses (NaN): only converged steps add up, and
                # a site with none converged has NaN losses, never 0.0
                "losses_mwh": (_col(s, "losses_mw").where(conv.to_numpy()) * dt_h).sum(
                    min_count=1) if len(s) else 0.0,
                "residual_abs_mwh": (_col(s, "residual_mw").abs() * dt_h).sum(),
                "voltage_violation_bus_steps": (v_viol.get(name, 0.0) if has_buses
                                                else np.nan),
                "loading_violation_line_steps": (l_viol.get(name, 0.0) if has_lines
                                                 else np.nan),
                "nonconverged_steps": float((~conv).sum()),
            }
            units = {"energy_delivered_mwh": "MWh", "energy_charged_mwh": "MWh",
                     "energy_discharged_mwh": "MWh", "losses_mwh": "MWh",
                     "residual_abs_mwh": "MWh", "voltage_violation_bus_steps": "bus-steps",
                     "loading_violation_line_steps": "line-steps", "nonconverged_steps": "steps"}
            for k, v in vals.items():
                add(pol, name, k, v, units[k])
                tot[k] += v
            vmin, vmax = _col(s, "vm_min_pu"), _col(s, "vm_max_pu")
            n_vv = ((vmin < lim["vm_min_pu"] - VIOLATION_TOL)
                    | (vmax > lim["vm_max_pu"] + VIOLATION_TOL)).sum()
            add(pol, name, "voltage_violation_steps", n_vv, "steps")
            add(pol, name, "vm_min_pu", vmin.min() if vmin.notna().any() else np.nan, "p.u.")
            add(pol, name, "vm_max_pu", vmax.max() if vmax.notna().any() else np.nan, "p.u.")
            ll = _col(s, "max_line_loading_pct")
            add(pol, name, "max_line_loading_pct", ll.max() if ll.notna().any() else np.nan, "%")
            ss = sfi[sfi["site"].astype(str) == name]
            add(pol, name, "sfi_accumulated", _total(ss["sfi"] * ss["dt_h"]), "SFI-h")
            add(pol, name, "sfi_own_accumulated", _total(ss["sfi_own"] * ss["dt_h"]), "SFI-h")
            add(pol, name, "sfi_mess_accumulated", _total(ss["sfi_mess"] * ss["dt_h"]), "SFI-h")
            add(pol, name, "sfi_excluded_site_steps",
                float(ss["excluded"].sum()) if "excluded" in ss.columns else 0.0, "site-steps")

        # ---- vehicles
        departs = (events[events["event"] == "depart"] if not events.empty and "event"
                   in events.columns else pd.DataFrame(columns=["vehicle"]))
        veh_names = list(info.get("vehicles", {}))
        if not veh.empty:
            veh_names += [v for v in pd.unique(veh["vehicle"].astype(str)) if v not in veh_names]
        tot_trips = tot_thr = tot_conv = tot_self = 0.0
        for name in veh_names:
            v = (veh[veh["vehicle"].astype(str) == name].sort_values("time_min")
                 if not veh.empty else veh)
            spec = info.get("vehicles", {}).get(name, {})
            cap = float(spec.get("capacity_mwh", np.nan))
            thr = _col(v, "throughput_mwh").sum()
            p = _col(v, "p_mw")
            trips = float((departs["vehicle"].astype(str) == name).sum())
            conv = _col(v, "loss_conversion_mwh").sum()
            selfd = _col(v, "loss_self_mwh").sum()
            e_end = float(v["e_end_mwh"].iloc[-1]) if len(v) else float(
                spec.get("e_init_mwh", np.nan))
            add(pol, name, "throughput_mwh", thr, "MWh")
            add(pol, name, "equivalent_full_cycles", thr / (2.0 * cap) if cap > 0 else np.nan,
                "cycles")
            add(pol, name, "energy_charged_mwh", (p.clip(lower=0.0) * dt_h).sum(), "MWh")
            add(pol, name, "energy_discharged_mwh", (-p.clip(upper=0.0) * dt_h).sum(), "MWh")
            add(pol, name, "e_end_mwh", e_end, "MWh")
            add(pol, name, "soc_end_pct", 100.0 * e_end / cap if cap > 0 else np.nan, "%")
            add(pol, name, "soh_end_frac",
                float(v["soh_frac"].iloc[-1]) if len(v) and "soh_frac" in v.columns else np.nan,
                "-")
            add(pol, name, "transit_steps",
                float((v["status"] == "transit").sum()) if "status" in v.columns else 0.0,
                "steps")
            add(pol, name, "trips", trips, "trips")
            add(pol, name, "conversion_losses_mwh", conv, "MWh")
            add(pol, name, "self_discharge_mwh", selfd, "MWh")
            add(pol, name, "bms_hold_steps",
                float(v["bms_hold"].astype(bool).sum()) if "bms_hold" in v.columns else 0.0,
                "steps")
            tot_trips += trips
            tot_thr += thr
            tot_conv += conv
            tot_self += selfd

        # ---- system
        add(pol, "system", "sfi_total", _total(sfi["weighted_sfi"] * sfi["dt_h"]), "SFI-h")
        add(pol, "system", "sfi_excluded_site_steps",
            float(sfi["excluded"].sum()) if "excluded" in sfi.columns else 0.0, "site-steps")
        units = {"energy_delivered_mwh": "MWh", "energy_charged_mwh": "MWh",
                 "energy_discharged_mwh": "MWh", "losses_mwh": "MWh", "residual_abs_mwh": "MWh",
                 "voltage_violation_bus_steps": "bus-steps",
                 "loading_violation_line_steps": "line-steps", "nonconverged_steps": "steps"}
        for k, v in tot.items():
            add(pol, "system", k, v, units[k])
        vmin, vmax = _col(sites, "vm_min_pu"), _col(sites, "vm_max_pu")
        add(pol, "system", "vm_min_pu", vmin.min() if vmin.notna().any() else np.nan, "p.u.")
        add(pol, "system", "vm_max_pu", vmax.max() if vmax.notna().any() else np.nan, "p.u.")
        add(pol, "system", "trips", tot_trips, "trips")
        add(pol, "system", "throughput_mwh", tot_thr, "MWh")
        add(pol, "system", "conversion_losses_mwh", tot_conv, "MWh")
        add(pol, "system", "self_discharge_mwh", tot_self, "MWh")
        add(pol, "system", "failures", float(len(fails)), "rows")

    return pd.DataFrame(rows, columns=list(METRIC_COLUMNS))


def summary_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per policy (index ``policy``), the system metrics of :data:`SUMMARY_METRICS`.

    Count metrics (violations, steps, trips, failures) are nullable integers; missing ones are NaN.
    """
    system = metrics[metrics["entity"] == "system"]
    order = list(pd.unique(system["policy"]))
    wide = pd.DataFrame(index=pd.Index(order, name="policy"))
    for m in SUMMARY_METRICS:
        vals = system[system["metric"] == m].drop_duplicates("policy").set_index("policy")["value"]
        col = vals.reindex(wide.index).astype(float)
        if m in _COUNT_METRICS:
            col = col.round().astype("Int64")
        wide[m] = col
    return wide


_COUNT_METRICS = frozenset({"voltage_violation_bus_steps", "loading_violation_line_steps",
                            "nonconverged_steps", "trips", "failures"})
