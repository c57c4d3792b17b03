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


# The metrics are computed on numpy arrays rather than per-entity pandas selections (a sweep
# computes them for every scenario). Each sum adds the same values in the same order as pandas
# does, so the numbers are those of the pandas expressions written in the comments:
# ``Series.sum`` is numpy's sum with NaN as 0 (:func:`_nansum`), ``groupby(...).sum()`` the
# compensated sum of :func:`group_sums`.
def _nansum(x: np.ndarray, min_count: int = 0) -> float:
    """``pd.Series(x).sum(min_count=min_count)``: NaN skipped; NaN if fewer than ``min_count``
    values are not NaN."""
    nan = np.isnan(x)
    if nan.any():
        if min_count and x.size - int(nan.sum()) < min_count:
            return np.nan
        x = np.where(nan, 0.0, x)
    elif min_count and x.size < min_count:
        return np.nan
    return x.sum()


def _nanmin(x: np.ndarray) -> float:
    """``s.min() if s.notna().any() else NaN``."""
    nan = np.isnan(x)
    if nan.all():
        return np.nan
    return np.where(nan, np.inf, x).min() if nan.any() else x.min()


def _nanmax(x: np.ndarray) -> float:
    nan = np.isnan(x)
    if nan.all():
        return np.nan
    return np.where(nan, -np.inf, x).max() if nan.any() else x.max()


def group_sums(keys: list, values, min_count: int = 0) -> dict:
    """``{key: sum of its values}``, the values of each key added in order with pandas'
    ``groupby(...).sum(min_count=...)`` (compensated) algorithm, so the results equal pandas'
    bit for bit. NaN values are skipped; a key with fewer than ``min_count`` other values
    gets NaN. ``keys[i]`` is the (hashable) key of ``values[i]``; a key holding a missing
    value (NaN, None) is dropped, as ``groupby`` drops it."""
    acc: dict = {}
    for key, val in zip(keys, values):
        val = float(val)
        if val != val:
            acc.setdefault(key, [0.0, 0.0, 0])
            continue
        a = acc.get(key)
        if a is None:
            a = acc[key] = [0.0, 0.0, 0]
        y = val - a[1]
        t = a[0] + y
        c = t - a[0] - y
        a[1] = 0.0 if c != c else c  # an infinite value: no compensation
        a[0] = t
        a[2] += 1
    out = {}
    for key, (s, _, n) in acc.items():
        if any(type(k) not in (str, int) and pd.isna(k)
               for k in (key if isinstance(key, tuple) else (key,))):
            continue
        out[key] = s if n >= min_count else np.nan
    return out


class _Frame:
    """One table's columns as numpy arrays, read once: numeric (as :func:`_col`), labels (as
    ``astype(str)``) and the rows of each policy (as :func:`table`)."""

    def __init__(self, tables: Mapping[str, pd.DataFrame], name: str, n_policies: int):
        df = tables.get(name)
        self.missing = df is None
        self.df = pd.DataFrame() if df is None else df
        self.n = len(self.df)
        self._name, self._tables, self._n_pol = name, tables, n_policies
        self._num: dict = {}
        self._lab: dict[tuple, tuple[np.ndarray, list[str]]] = {}

    def __contains__(self, col: str) -> bool:
        return col in self.df.columns

    def num(self, col: str) -> np.ndarray:
        """``_col(df, col)`` as an array."""
        a = self._num.get(col)
        if a is None:
            a = self._num[col] = (_col(self.df, col).to_numpy(dtype=float)
                                  if col in self.df.columns else np.zeros(self.n))
        return a

    def raw(self, col: str) -> np.ndarray:
        return self.df[col].to_numpy()

    def eq(self, col: str, value) -> np.ndarray:
        """``(df[col] == value)`` as a boolean array."""
        key = ("==", col, value)
        a = self._num.get(key)
        if a is None:
            a = self._num[key] = (self.df[col] == value).to_numpy(dtype=bool)
        return a

    def as_bool(self, col: str) -> np.ndarray:
        """``df[col].astype(bool)`` as an array."""
        key = ("bool", col)
        a = self._num.get(key)
        if a is None:
            a = self._num[key] = self.df[col].astype(bool).to_numpy()
        return a

    def labels(self, col: str, fill: str | None = None) -> tuple[np.ndarray, list[str]]:
        """``(codes, names)`` with ``names[codes[i]] == str(df[col][i])`` (NA as ``fill``
        when given: ``df[col].fillna(fill).astype(str)``)."""
        got = self._lab.get((col, fill))
        if got is None:
            s = self.df[col]
            if fill is not None:
                s = s.fillna(fill)
            codes, uniq = pd.factorize(s, use_na_sentinel=False)
            if s.dtype != object or not all(type(u) is str for u in uniq):
                codes, uniq = pd.factorize(s.astype(str), use_na_sentinel=False)
            got = self._lab[(col, fill)] = (codes, list(uniq))
        return got

    def where(self, col: str, name: str, rows: np.ndarray | None = None,
              fill: str | None = None) -> np.ndarray:
        """Row positions (of ``rows``, or of the whole table) whose ``col`` reads ``name``."""
        codes, names = self.labels(col, fill)
        sub = codes if rows is None else codes[rows]
        hit = np.zeros(len(names) + 1, dtype=bool)
        for k, nm in enumerate(names):
            hit[k] = nm == name
        pos = np.flatnonzero(hit[sub])
        return pos if rows is None else rows[pos]

    def policy_rows(self, policy: str) -> np.ndarray:
        """The rows of :func:`table` ``(tables, name, policy)``."""
        if self.missing:
            return np.zeros(0, dtype=np.intp)
        if "policy" in self.df.columns:
            return self.where("policy", str(policy))
        if self.n:
            table(self._tables, self._name, policy, self._n_pol)  # raises if ambiguous
        return np.arange(self.n)

    def names(self, col: str, rows: np.ndarray) -> list[str]:
        """``pd.unique(df[col].astype(str))`` over ``rows``: in order of first appearance."""
        codes, names = self.labels(col)
        sub = codes[rows]
        _, first = np.unique(sub, return_index=True)
        return [names[c] for c in sub[np.sort(first)]]


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
    policy = (sites["policy"].to_numpy() if "policy" in sites.columns
              else np.full(len(sites), (policies(tables) or [""])[0], dtype=object))
    time = sites["time_min"].to_numpy()
    site = sites["site"].to_numpy()
    c_norm = {str(k): float(v["c_norm_mw"]) for k, v in info["sites"].items()}
    n_sites = len(info["sites"]) or sites["site"].nunique()
    dt_h = dt_hours(info)
    sf = _Frame(tables, "sites", 1)
    up, dn = sf.num("flex_up_mw"), sf.num("flex_dn_mw")
    flex_own = np.where(np.isnan(up), 0.0, up) + np.where(np.isnan(dn), 0.0, dn)

    # flex_mess: groupby(policy, time_min, site).sum() of the vehicles at a site, merged in
    flex_mess = np.zeros(len(sites))
    veh = tables.get("vehicles")
    if veh is not None and not veh.empty:
        vf = _Frame(tables, "vehicles", 1)
        at = vf.where("site", "", fill="")
        at = np.setdiff1d(np.arange(vf.n), at, assume_unique=True)
        up, dn = vf.num("flex_up_mw")[at], vf.num("flex_dn_mw")[at]
        val = (np.where(np.isnan(up), 0.0, up) + np.where(np.isnan(dn), 0.0, dn)).tolist()
        v_pol = (vf.raw("policy")[at] if "policy" in vf
                 else np.full(len(at), policy[0], dtype=object)).tolist()
        keys = list(zip(v_pol, vf.raw("time_min")[at].tolist(), vf.raw("site")[at].tolist()))
        sums = group_sums(keys, val)
        if sums:
            flex_mess = np.array([sums.get(k, 0.0) for k in zip(
                policy.tolist(), time.tolist(), site.tolist())], dtype=float)

    cn = np.array([c_norm.get(str(s), np.nan) for s in site.tolist()], dtype=float)
    cn = np.where(cn > 0, cn, np.nan)
    sfi_own = flex_own / cn
    sfi_mess = flex_mess / cn
    sfi = sfi_own + sfi_mess
    weight = 1.0 / n_sites
    weighted = weight * sfi
    if "converged" in sites.columns:
        excluded = ~sites["converged"].fillna(False).astype(bool).to_numpy()
    else:
        excluded = np.zeros(len(sites), dtype=bool)
    for a in (sfi_own, sfi_mess, sfi, weighted):
        a[excluded] = np.nan
    out = pd.DataFrame({"policy": policy, "time_min": time, "site": site, "sfi_own": sfi_own,
                        "sfi_mess": sfi_mess, "sfi": sfi,
                        "weight": np.full(len(sites), weight), "dt_h": np.full(len(sites), dt_h),
                        "weighted_sfi": weighted, "excluded": excluded})
    return out.sort_values(["policy", "time_min", "site"]).reset_index(drop=True)


# ------------------------------------------------------------------------------------ metrics
def _nargsort(t: np.ndarray) -> np.ndarray:
    """The order of ``Series.sort_values()`` (quicksort, NaN last)."""
    t = np.asarray(t)
    mask = pd.isna(t)
    if not mask.any():
        return t.argsort(kind="quicksort")
    idx = np.arange(len(t))
    return np.concatenate([idx[~mask][t[~mask].argsort(kind="quicksort")], idx[mask]])


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

    sites_f, veh_f, ev_f, bus_f, line_f, fail_f = (
        _Frame(tables, n, n_pol) for n in ("sites", "vehicles", "events", "buses", "lines",
                                           "failures"))
    sfi_f = _Frame({"sfi": sfi_all}, "sfi", 1)
    sfi_w = sfi_f.num("weighted_sfi") * sfi_f.num("dt_h")
    sfi_parts = {k: sfi_f.num(k) * sfi_f.num("dt_h") for k in ("sfi", "sfi_own", "sfi_mess")}
    sfi_excl = sfi_f.raw("excluded") if "excluded" in sfi_f else None

    def violations(f: _Frame, rows_p: np.ndarray, lo: float | None,
                   hi: float | None) -> np.ndarray | None:
        """The rows of ``rows_p`` whose value is outside ``[lo, hi]`` (NaN ignored)."""
        if not len(rows_p) or "value" not in f:
            return None
        v = f.num("value")[rows_p]
        bad = np.zeros(len(rows_p), dtype=bool)
        if lo is not None:
            bad |= v < lo - VIOLATION_TOL
        if hi is not None:
            bad |= v > hi + VIOLATION_TOL
        return rows_p[bad]

    def count_at(f: _Frame, bad_rows: np.ndarray | None, name: str) -> float:
        if bad_rows is None or not len(bad_rows):
            return 0.0
        return float(len(f.where("site", name, bad_rows)))

    units = {"energy_delivered_mwh": "MWh", "energy_charged_mwh": "MWh",
             "energy_discharged_mwh": "MWh", "losses_mwh": "MWh", "residual_abs_mwh": "MWh",
             "voltage_violation_bus_steps": "bus-steps",
             "loading_violation_line_steps": "line-steps", "nonconverged_steps": "steps"}
    for pol in pols:
        s_rows = sites_f.policy_rows(pol)
        v_rows = veh_f.policy_rows(pol)
        e_rows = ev_f.policy_rows(pol)
        n_fail = len(fail_f.policy_rows(pol))
        sfi_rows = (np.flatnonzero((sfi_all["policy"] == pol).to_numpy()) if len(sfi_all)
                    else np.zeros(0, dtype=np.intp))
        v_viol = violations(bus_f, bus_f.policy_rows(pol), lim["vm_min_pu"], lim["vm_max_pu"])
        l_viol = violations(line_f, line_f.policy_rows(pol), None, lim["loading_max_pct"])

        site_names = list(info["sites"])
        if len(s_rows):
            site_names += [s for s in sites_f.names("site", s_rows) if s not in site_names]
        if len(v_rows):
            at = np.setdiff1d(v_rows, veh_f.where("site", "", v_rows, fill=""),
                              assume_unique=True)
        else:
            at = v_rows
        tot = dict.fromkeys(units, 0.0)
        for name in site_names:
            s = sites_f.where("site", name, s_rows) if len(s_rows) else s_rows
            mess = sites_f.num("mess_p_mw")[s]
            vs = veh_f.where("site", name, at) if len(at) else at
            p = veh_f.num("p_mw")[vs]
            conv = (sites_f.as_bool("converged")[s] if "converged" in sites_f
                    else np.ones(len(s), dtype=bool))
            losses = np.where(conv, sites_f.num("losses_mw")[s], np.nan)
            vals = {
                "energy_delivered_mwh": _nansum(-mess * dt_h),
                "energy_charged_mwh": _nansum(np.maximum(p, 0.0) * dt_h),
                "energy_discharged_mwh": _nansum(-np.minimum(p, 0.0) * dt_h),
                # a non-converged step has no losses (NaN): only converged steps add up, and
                # a site with none converged has NaN losses, never 0.0
                "losses_mwh": _nansum(losses * dt_h, min_count=1) if len(s) else 0.0,
                "residual_abs_mwh": _nansum(np.abs(sites_f.num("residual_mw")[s]) * dt_h),
                "voltage_violation_bus_steps": (count_at(bus_f, v_viol, name)
                                                if not bus_f.missing else np.nan),
                "loading_violation_line_steps": (count_at(line_f, l_viol, name)
                                                 if not line_f.missing else np.nan),
                "nonconverged_steps": float(np.count_nonzero(~conv)),
            }
            for k, v in vals.items():
                add(pol, name, k, v, units[k])
                tot[k] += v
            vmin, vmax = sites_f.num("vm_min_pu")[s], sites_f.num("vm_max_pu")[s]
            n_vv = np.count_nonzero((vmin < lim["vm_min_pu"] - VIOLATION_TOL)
                                    | (vmax > lim["vm_max_pu"] + VIOLATION_TOL))
            add(pol, name, "voltage_violation_steps", n_vv, "steps")
            add(pol, name, "vm_min_pu", _nanmin(vmin), "p.u.")
            add(pol, name, "vm_max_pu", _nanmax(vmax), "p.u.")
            add(pol, name, "max_line_loading_pct",
                _nanmax(sites_f.num("max_line_loading_pct")[s]), "%")
            ss = sfi_f.where("site", name, sfi_rows) if len(sfi_rows) else sfi_rows
            for k, label in (("sfi", "sfi_accumulated"), ("sfi_own", "sfi_own_accumulated"),
                             ("sfi_mess", "sfi_mess_accumulated")):
                add(pol, name, label, _nansum(sfi_parts[k][ss], min_count=1) if len(ss)
                    else 0.0, "SFI-h")
            add(pol, name, "sfi_excluded_site_steps",
                float(np.count_nonzero(sfi_excl[ss])) if sfi_excl is not None else 0.0,
                "site-steps")

        # ---- vehicles
        if len(e_rows) and "event" in ev_f:
            dep = e_rows[ev_f.eq("event", "depart")[e_rows]]
        else:
            dep = None
        veh_names = list(info.get("vehicles", {}))
        if len(v_rows):
            veh_names += [v for v in veh_f.names("vehicle", v_rows) if v not in veh_names]
        tot_trips = tot_thr = tot_conv = tot_self = 0.0
        for name in veh_names:
            v = veh_f.where("vehicle", name, v_rows) if len(v_rows) else v_rows
            if len(v):
                v = v[_nargsort(veh_f.raw("time_min")[v])]
            spec = info.get("vehicles", {}).get(name, {})
            cap = float(spec.get("capacity_mwh", np.nan))
            thr = _nansum(veh_f.num("throughput_mwh")[v])
            p = veh_f.num("p_mw")[v]
            trips = (float(len(ev_f.where("vehicle", name, dep))) if dep is not None and len(dep)
                     else 0.0)
            conv = _nansum(veh_f.num("loss_conversion_mwh")[v])
            selfd = _nansum(veh_f.num("loss_self_mwh")[v])
            e_end = float(veh_f.raw("e_end_mwh")[v[-1]]) if len(v) else float(
                spec.get("e_init_mwh", np.nan))
            add(pol, name, "throughput_mwh", thr, "MWh")
            add(pol, name, "equivalent_full_cycles", thr / (2.0 * cap) if cap > 0 else np.nan,
                "cycles")
            add(pol, name, "energy_charged_mwh", _nansum(np.maximum(p, 0.0) * dt_h), "MWh")
            add(pol, name, "energy_discharged_mwh", _nansum(-np.minimum(p, 0.0) * dt_h), "MWh")
            add(pol, name, "e_end_mwh", e_end, "MWh")
            add(pol, name, "soc_end_pct", 100.0 * e_end / cap if cap > 0 else np.nan, "%")
            add(pol, name, "soh_end_frac",
                float(veh_f.raw("soh_frac")[v[-1]]) if len(v) and "soh_frac" in veh_f
                else np.nan, "-")
            add(pol, name, "transit_steps",
                float(np.count_nonzero(veh_f.eq("status", "transit")[v]))
                if "status" in veh_f else 0.0, "steps")
            add(pol, name, "trips", trips, "trips")
            add(pol, name, "conversion_losses_mwh", conv, "MWh")
            add(pol, name, "self_discharge_mwh", selfd, "MWh")
            add(pol, name, "bms_hold_steps",
                float(np.count_nonzero(veh_f.as_bool("bms_hold")[v]))
                if "bms_hold" in veh_f else 0.0, "steps")
            tot_trips += trips
            tot_thr += thr
            tot_conv += conv
            tot_self += selfd

        # ---- system
        add(pol, "system", "sfi_total",
            _nansum(sfi_w[sfi_rows], min_count=1) if len(sfi_rows) else 0.0, "SFI-h")
        add(pol, "system", "sfi_excluded_site_steps",
            float(np.count_nonzero(sfi_excl[sfi_rows])) if sfi_excl is not None else 0.0,
            "site-steps")
        for k, v in tot.items():
            add(pol, "system", k, v, units[k])
        add(pol, "system", "vm_min_pu", _nanmin(sites_f.num("vm_min_pu")[s_rows]), "p.u.")
        add(pol, "system", "vm_max_pu", _nanmax(sites_f.num("vm_max_pu")[s_rows]), "p.u.")
        add(pol, "system", "trips", tot_trips, "trips")
        add(pol, "system", "throughput_mwh", tot_thr, "MWh")
        add(pol, "system", "conversion_losses_mwh", tot_conv, "MWh")
        add(pol, "system", "self_discharge_mwh", tot_self, "MWh")
        add(pol, "system", "failures", float(n_fail), "rows")

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
