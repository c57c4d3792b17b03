"""SimBench grids by code and SimBench's load and PV profiles (the optional ``simbench`` package).

SimBench (https://simbench.de) publishes benchmark networks of every voltage level with a year of
15-minute profiles for every load and generator. With the extra installed
(``pip install "mescosim[simbench]"``):

* a scenario's ``feeder = "simbench:1-LV-rural1--0-sw"`` builds that SimBench network (any code
  of ``simbench.collect_all_simbench_codes()``), in a scenario file, with ``--set`` or through
  the Python API, in every process of a sweep;
* :func:`simbench_profiles` gives the network's own load and PV time series as
  :class:`~grids.profiles.Profile` objects (15-min values, p.u. of the year's peak load and of
  the installed PV capacity), for any span of days of the SimBench year (2016);
* :func:`grid_table` gives a whole ``[grids.NAME]`` table built from them (feeder, peak load, PV
  capacity and units at the network's PV generators, the profiles, a MESS bus), to put into a
  scenario: ``mescosim.load("three-dn", overrides={"grids.dn1": grid_table(code, "dn1")})``.

The load profile is the sum of every load's absolute active power, the PV profile the sum of
the PV generators' (``sgen`` of type ``PV``), both from ``simbench.get_absolute_values``.
A network is read once per process (SimBench's CSV files take seconds) and handed out as copies.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import pandapower as pp

from grids.profiles import Profile
from sim.errors import ScenarioError

__all__ = ["PREFIX", "RESOLUTION_MIN", "STEPS_PER_DAY", "grid_table", "simbench_builder",
           "simbench_codes", "simbench_net", "simbench_problem", "simbench_profiles"]

#: a scenario's feeder names a SimBench network as PREFIX + code
PREFIX = "simbench:"
#: SimBench's profiles have one value per quarter hour
RESOLUTION_MIN = 15
STEPS_PER_DAY = 24 * 60 // RESOLUTION_MIN

_NETS: dict[str, pp.pandapowerNet] = {}
_SERIES: dict[str, tuple[np.ndarray, np.ndarray, float, float]] = {}


def _simbench():
    try:
        import simbench
    except ImportError:
        raise ScenarioError(["SimBench grids and profiles need the optional simbench package: "
                             "pip install \"mescosim[simbench]\""]) from None
    return simbench


def simbench_codes() -> list[str]:
    """Every SimBench code the installed package knows."""
    return list(_simbench().collect_all_simbench_codes())


def simbench_problem(code: Any) -> str | None:
    """Why ``code`` is not a SimBench network to build here (no package, unknown code), or
    None."""
    if not isinstance(code, str) or not code:
        return f"expected a SimBench code such as '1-LV-rural1--0-sw', got {code!r}"
    try:
        codes = simbench_codes()
    except ScenarioError as exc:
        return exc.problems[0]
    if code not in codes:
        lv = [c for c in codes if "-LV-" in c and c.endswith("--0-sw")]
        return (f"unknown SimBench code {code!r}; {len(codes)} codes exist "
                f"(simbench.collect_all_simbench_codes()), e.g. {', '.join(lv[:4])}")
    return None


def _net(code: str) -> pp.pandapowerNet:
    net = _NETS.get(code)
    if net is None:
        why = simbench_problem(code)
        if why:
            raise ScenarioError([why])
        net = _NETS[code] = _simbench().get_simbench_net(code)
    return net


def simbench_net(code: str) -> pp.pandapowerNet:
    """A fresh copy of the SimBench network ``code`` (with its ``profiles`` tables)."""
    return copy.deepcopy(_net(code))


def simbench_builder(code: str) -> Callable[[], pp.pandapowerNet]:
    """A builder (no arguments) of the network ``code`` as :mod:`grids.feeders` takes it; an
    unknown code or a missing package is a :class:`~sim.errors.ScenarioError` when called."""
    return lambda: simbench_net(code)


def _series(code: str) -> tuple[np.ndarray, np.ndarray, float, float]:
    """The year's summed load and PV power (MW per quarter hour), the peak load (MW) and the
    installed PV capacity (MW)."""
    if code not in _SERIES:
        net = _net(code)
        absolute = _simbench().get_absolute_values(net, profiles_instead_of_study_cases=True)
        load = absolute[("load", "p_mw")].sum(axis=1).to_numpy(dtype=float)
        is_pv = net.sgen["type"].astype(str).str.upper().str.startswith("PV")
        pv_ids = net.sgen.index[is_pv]
        sgen = absolute[("sgen", "p_mw")]
        pv = (sgen[[i for i in pv_ids if i in sgen.columns]].sum(axis=1).to_numpy(dtype=float)
              if len(pv_ids) else np.zeros_like(load))
        _SERIES[code] = (load, pv, float(load.max()), float(net.sgen.p_mw[is_pv].sum()))
    return _SERIES[code]


def _span_problems(start_day: Any, days: Any, n_days: int) -> list[str]:
    out = []
    for name, value, low in (("start_day", start_day, 0), ("days", days, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            out.append(f"{name}: expected a whole number >= {low}, got {value!r}")
    if not out and start_day + days > n_days:
        out.append(f"start_day + days: {start_day} + {days} is past the {n_days} days of the "
                   f"SimBench year")
    return out


def simbench_profiles(code: str, start_day: int = 0, days: int = 1) -> dict[str, Any]:
    """The load and PV profiles of the SimBench network ``code`` for ``days`` days from day
    ``start_day`` (0 is 1 January 2016).

    Returns a dict: ``load`` and ``pv`` (:class:`~grids.profiles.Profile`, 15-min values;
    ``load`` is p.u. of ``peak_load_mw``, the year's peak of the summed load, ``pv`` p.u. of
    ``pv_cap_mw``, the PV generators' installed power), ``peak_load_mw`` and ``pv_cap_mw``.
    Profiles of whole days repeat daily past their end.
    """
    load, pv, peak_mw, cap_mw = _series(code)
    problems = _span_problems(start_day, days, len(load) // STEPS_PER_DAY)
    if problems:
        raise ScenarioError([f"simbench profile of {code}: {p}" for p in problems])
    span = slice(start_day * STEPS_PER_DAY, (start_day + days) * STEPS_PER_DAY)
    pv_pu = pv[span] / cap_mw if cap_mw > 0 else np.zeros(span.stop - span.start)
    return {"load": Profile(tuple(load[span] / peak_mw), RESOLUTION_MIN),
            "pv": Profile(tuple(pv_pu), RESOLUTION_MIN),
            "peak_load_mw": peak_mw, "pv_cap_mw": cap_mw}


def grid_table(code: str, node: str, start_day: int = 0, days: int = 1,
               mess_bus: int | None = None) -> dict[str, Any]:
    """A scenario's ``[grids.NAME]`` table on the SimBench network ``code`` with its own
    profiles (see :func:`simbench_profiles`): PV units at the network's PV generators, shares
    by their installed power; the MESS at ``mess_bus`` (default the low-voltage side of the
    network's first transformer, else its first bus). No generators, DR or storage: add your
    own."""
    net = _net(code)
    prof = simbench_profiles(code, start_day, days)
    if mess_bus is None:
        mess_bus = int(net.trafo.lv_bus.iloc[0]) if len(net.trafo) else int(net.bus.index[0])
    pv_units = net.sgen[net.sgen["type"].astype(str).str.upper().str.startswith("PV")]
    by_bus = pv_units.groupby("bus").p_mw.sum()
    table: dict[str, Any] = {
        "node": node, "feeder": PREFIX + code, "peak_load_mw": prof["peak_load_mw"],
        "load_shape": list(prof["load"].values), "load_resolution_min": RESOLUTION_MIN,
        "pv_cap_mw": prof["pv_cap_mw"] if len(by_bus) else 0.0,
        "pv_shape": list(prof["pv"].values), "pv_resolution_min": RESOLUTION_MIN,
        "pv": [{"bus": int(b), "share": float(p / by_bus.sum())} for b, p in by_bus.items()],
        "mess_bus": int(mess_bus)}
    if len(by_bus):
        # shares that sum to 1 exactly after rounding
        table["pv"][-1]["share"] = 1.0 - sum(u["share"] for u in table["pv"][:-1])
    return table
