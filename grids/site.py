"""A distribution-network site: feeder + profiles + local operator + power flow.

:class:`SiteSpec` is the static description (what a scenario file holds), :func:`check_site_spec`
lists every problem in it, :func:`build_site` turns it into a :class:`DistributionSite` that the
engine steps through the ``sim.protocols.GridSite`` protocol.
"""

from __future__ import annotations

import copy
import math
import os
import threading
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from grids.adapter import PandapowerAdapter, PowerFlowOptions, PowerFlowResult, _bus_problem
from grids.fastpf import FastPowerFlow, YbusModel, element_values, topology_key
from grids.feeders import feeder_problem, feeder_template, make_feeder
from grids.operator import LocalOperator, OperatorResult
from grids.profiles import Profile
from sim.errors import ScenarioError
from sim.flexibility import c_norm_mw
from sim.types import SiteInfo, SiteResources, SiteState, SiteStepResult, frozen_array

__all__ = ["PVUnit", "SiteSpec", "check_site_spec", "DistributionSite", "build_site"]

_RESERVED = ("dr", "es_ch", "es_dis", "pv")
#: A solution with a voltage below this (p.u.) is Newton-Raphson's spurious low-voltage one; the
#: direct path then hands the step to the adapter's retry chain (which uses the same threshold).
_LOW_VOLTAGE_PU = 0.5


class _Direct:
    """What the direct power-flow path of a site needs: a fast-path snapshot of a converged
    solve, the solver that runs on it and the step's injections as one affine map of the
    driven powers: ``sbus = c + M @ u`` with ``u = (load, PV, generators..., DR, storage,
    MESS)`` in MW, ``M`` the snapshot's incidence times the positions (and the load and PV
    shares) of the driven elements, ``c`` the rest of the net's elements as they were at the
    snapshot (they do not change while it is current)."""

    def __init__(self, a: PandapowerAdapter, fast: FastPowerFlow | None, model: YbusModel,
                 pv_shares: np.ndarray) -> None:
        net = a.net
        o = a.options
        self.fast = fast
        self.model = model
        self.opts = (o.algorithm, float(o.tolerance_mva), int(o.max_iteration))
        x = element_values(net)
        nl, ns = len(net.load), len(net.sgen)
        sg, st = net.sgen.index, net.storage.index
        load_p = net.load.index.get_indexer(a.load_index)
        n_u = 2 + a.gen_index.size + 3
        d = np.zeros((x.size, n_u))
        d[load_p, 0] = a.load_p_share
        d[nl + load_p, 0] = a.load_q_per_mw
        pv = 2 * nl + sg.get_indexer(a.pv_index)
        d[pv, 1] = pv_shares
        gen = 2 * nl + sg.get_indexer(a.gen_index)
        d[gen, 2 + np.arange(gen.size)] = 1.0
        off = 2 * nl + 2 * ns
        for col, pos in ((n_u - 3, None if a.dr_index is None else
                          2 * nl + sg.get_loc(a.dr_index)),
                         (n_u - 2, None if a.es_index is None else off + st.get_loc(a.es_index)),
                         (n_u - 1, None if a.mess_index is None else
                          off + st.get_loc(a.mess_index))):
            if pos is not None:
                d[pos, col] = 1.0
        driven = d.any(axis=1)
        x_fixed = np.where(driven, 0.0, x)
        inc = model.inc_dense if model.inc_dense is not None else model.inc
        self.c = model.sbus0 + inc @ (x_fixed - model.x0)
        self.m = np.asarray(inc @ d)
        self.in_service = np.flatnonzero(net.bus.in_service.to_numpy(bool))
        self.n_ext_grid = len(net.ext_grid)
        self.options = o

    @classmethod
    def of_adapter(cls, a: PandapowerAdapter, pv_shares: np.ndarray) -> _Direct:
        """Right after a converged solve of ``a``: its own snapshot and solver."""
        return cls(a, a.fast, a.fast.model, pv_shares)

    def for_run(self) -> _Direct:
        """A copy for one run: the maps shared, its own warm-start point and solver."""
        new = copy.copy(self)
        new.model = self.model.for_run()
        new.fast = FastPowerFlow(None, self.options.backend)
        new.fast.model = new.model
        return new


class _Prepared:
    """One site layout (feeder, driven elements, power-flow options) prepared once per process:
    the adapter on the feeder with the driven elements created (never handed out; each site
    copies it only when it needs a net of its own) and, for the direct path, the snapshot of
    one converged solve of it at the feeder's base load."""

    def __init__(self, template, adapter: PandapowerAdapter, pv_shares: np.ndarray) -> None:
        self.template = template  # the feeder's definition this was built from
        self.adapter = adapter
        self.pv_shares = pv_shares
        self._direct: _Direct | None | bool = None

    def copy_adapter(self) -> PandapowerAdapter:
        """A net of a site's own: a copy of the prepared adapter."""
        with _PREPARED_LOCK:  # never while direct() solves it in another thread
            return self.adapter.copy()

    def direct(self) -> _Direct | None:
        """A fresh direct-path state for one run, or None if the base-load solve did not give
        a snapshot (the run then starts through the adapter)."""
        with _PREPARED_LOCK:
            return self._direct_locked()

    def _direct_locked(self) -> _Direct | None:
        if self._direct is None:
            self._direct = False
            # solved in place: copies of the net then carry result tables, which a warm start
            # through the adapter (``warm_start_from``) writes into
            a = self.adapter
            o = a.options
            if a.fast.backend != "runpp" and o.algorithm == "nr":
                pf = a.solve()
                if pf.status == "ok" and a.fast.model is not None:
                    self._direct = _Direct.of_adapter(a, self.pv_shares)
                    self._direct.fast = None  # each run gets its own solver
        return self._direct.for_run() if self._direct else None


#: Prepared site layouts of this process (a sweep's worker reuses them across scenarios).
_PREPARED: dict[tuple, _Prepared] = {}
_PREPARED_MAX = 32
_PREPARED_LOCK = threading.RLock()


def _prepared(spec: SiteSpec) -> _Prepared:
    r = spec.resources
    gen_buses = {g.name: g.bus for g in r.generators}
    dr_bus = None if r.dr is None else r.dr.bus
    es_bus = None if r.storage is None else r.storage.bus
    pv_buses = [u.bus for u in spec.pv_units]
    pv_shares = tuple(float(u.share) for u in spec.pv_units)
    key = (spec.feeder, tuple(pv_buses), pv_shares, tuple(gen_buses.items()), dr_bus, es_bus,
           spec.mess_bus, spec.pf)
    with _PREPARED_LOCK:
        return _prepared_locked(spec, key, pv_buses, pv_shares, gen_buses, dr_bus, es_bus)


def _prepared_locked(spec: SiteSpec, key: tuple, pv_buses, pv_shares, gen_buses, dr_bus,
                     es_bus) -> _Prepared:
    template = feeder_template(spec.feeder)
    entry = _PREPARED.get(key)
    if entry is None or entry.template is not template:
        adapter = PandapowerAdapter(make_feeder(spec.feeder), spec.pf, pv_buses=pv_buses,
                                    gen_buses=gen_buses, dr_bus=dr_bus, es_bus=es_bus,
                                    mess_bus=spec.mess_bus)
        entry = _Prepared(template, adapter, np.array(pv_shares, dtype=float))
        _PREPARED.pop(key, None)
        while len(_PREPARED) >= _PREPARED_MAX:
            _PREPARED.pop(next(iter(_PREPARED)))
        _PREPARED[key] = entry
    return entry


@dataclass(frozen=True)
class PVUnit:
    """One PV plant of a site: its pandapower bus and its share of the site's PV capacity."""

    bus: int
    share: float


@dataclass(frozen=True)
class SiteSpec:
    """Static description of one distribution network.

    Parameters
    ----------
    name : str
        Site name (e.g. ``"dn1"``).
    node : str
        Road/rail node where vehicles reach the site.
    feeder : str
        A feeder of :mod:`grids.feeders` (a registered name, a pandapower.networks
        factory or a pandapower JSON file).
    peak_load_mw : float
        Peak of the load profile (MW); the profile is p.u. of it.
    load_profile : Profile
        Load shape (p.u. of the peak).
    pv_cap_mw : float
        Installed PV capacity (MW); the PV profile is p.u. of it.
    pv_profile : Profile
        PV shape (p.u. of the capacity).
    pv_units : tuple of PVUnit
        Where the PV is connected; the shares sum to 1.
    mess_bus : int
        pandapower bus of the MESS connection point.
    resources : sim.types.SiteResources
        Generators, DR and stationary storage (buses are pandapower bus indices).
    pf : PowerFlowOptions
        Power-flow settings.
    """

    name: str
    node: str
    feeder: str
    peak_load_mw: float
    load_profile: Profile
    pv_cap_mw: float
    pv_profile: Profile
    pv_units: tuple[PVUnit, ...]
    mess_bus: int
    resources: SiteResources
    pf: PowerFlowOptions = field(default_factory=PowerFlowOptions)


def _finite(x) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def check_site_spec(spec: SiteSpec, path: str) -> list[str]:
    """Every problem of ``spec``, each as ``"{path}.field: message"``; never raises.

    Parameters
    ----------
    spec : SiteSpec
        The site to check.
    path : str
        Where the site sits in the scenario (e.g. ``"grids.dn1"``), prefixed to every message.

    Returns
    -------
    list of str
        Empty when the spec is valid. Bus indices are pandapower bus indices; a connection bus
        must exist, be in service and not be the HV side of a substation transformer.
    """
    out: list[str] = []
    net = None
    why = feeder_problem(spec.feeder)
    if why:
        out.append(f"{path}.feeder: {why}")
    else:
        net = feeder_template(spec.feeder)  # read only

    def bus(field_path: str, b) -> None:
        if net is not None:
            msg = _bus_problem(net, b)
            if msg:
                out.append(f"{path}.{field_path}: {msg}")

    def nonneg(field_path: str, v, strict: bool = False) -> None:
        if not _finite(v) or (v <= 0 if strict else v < 0):
            out.append(f"{path}.{field_path}: must be {'> 0' if strict else '>= 0'}, got {v}")

    if not spec.name:
        out.append(f"{path}.name: must not be empty")
    if not spec.node:
        out.append(f"{path}.node: must not be empty")
    nonneg("peak_load_mw", spec.peak_load_mw, strict=True)
    nonneg("pv_cap_mw", spec.pv_cap_mw)
    for fname, prof in (("load_profile", spec.load_profile), ("pv_profile", spec.pv_profile)):
        vals = np.asarray(prof.values, dtype=float)
        if vals.size == 0:
            out.append(f"{path}.{fname}.values: profile is empty")
        elif not np.all(np.isfinite(vals)):
            out.append(f"{path}.{fname}.values: profile holds NaN or inf")
        elif vals.min() < 0:
            out.append(f"{path}.{fname}.values: negative value {vals.min()}")
        elif fname == "pv_profile" and vals.max() > 1.0 + 1e-9:
            out.append(f"{path}.pv_profile.values: PV is p.u. of capacity, max {vals.max()} > 1")
        if not isinstance(prof.resolution_min, (int, np.integer)) or prof.resolution_min <= 0:
            out.append(f"{path}.{fname}.resolution_min: must be a positive whole number of "
                       f"minutes, got {prof.resolution_min!r}")

    shares = []
    for i, u in enumerate(spec.pv_units):
        bus(f"pv[{i}].bus", u.bus)
        if not _finite(u.share) or u.share < 0:
            out.append(f"{path}.pv[{i}].share: must be >= 0, got {u.share}")
        else:
            shares.append(float(u.share))
    if _finite(spec.pv_cap_mw) and spec.pv_cap_mw > 0:
        if not spec.pv_units:
            out.append(f"{path}.pv: pv_cap_mw is {spec.pv_cap_mw} MW but no PV unit is given")
        elif len(shares) == len(spec.pv_units) and abs(sum(shares) - 1.0) > 1e-6:
            out.append(f"{path}.pv: shares sum to {sum(shares):g}, expected 1")
    bus("mess_bus", spec.mess_bus)

    r = spec.resources
    names = [g.name for g in r.generators]
    for i, g in enumerate(r.generators):
        p = f"generators[{i}]"
        if not g.name:
            out.append(f"{path}.{p}.name: must not be empty")
        elif names.count(g.name) > 1:
            out.append(f"{path}.{p}.name: duplicate generator name {g.name!r}")
        elif g.name in _RESERVED:
            out.append(f"{path}.{p}.name: {g.name!r} is reserved ({', '.join(_RESERVED)})")
        bus(f"{p}.bus", g.bus)
        nonneg(f"{p}.p_min_mw", g.p_min_mw)
        nonneg(f"{p}.p_max_mw", g.p_max_mw)
        if _finite(g.p_min_mw) and _finite(g.p_max_mw) and g.p_min_mw > g.p_max_mw:
            out.append(f"{path}.{p}: p_min_mw {g.p_min_mw} > p_max_mw {g.p_max_mw}")
        nonneg(f"{p}.ramp_up_mw_per_h", g.ramp_up_mw_per_h)
        nonneg(f"{p}.ramp_down_mw_per_h", g.ramp_down_mw_per_h)
    if r.dr is not None:
        bus("dr.bus", r.dr.bus)
        nonneg("dr.p_max_mw", r.dr.p_max_mw)
        nonneg("dr.ramp_mw_per_h", r.dr.ramp_mw_per_h)
        nonneg("dr.e_max_mwh", r.dr.e_max_mwh)
    st = r.storage
    if st is not None:
        bus("storage.bus", st.bus)
        nonneg("storage.p_ch_max_mw", st.p_ch_max_mw)
        nonneg("storage.p_dis_max_mw", st.p_dis_max_mw)
        nonneg("storage.e_min_mwh", st.e_min_mwh)
        if not (_finite(st.eta) and 0 < st.eta <= 1):
            out.append(f"{path}.storage.eta: must be in (0, 1], got {st.eta}")
        if st.ramp_mw_per_h is not None:
            nonneg("storage.ramp_mw_per_h", st.ramp_mw_per_h)
        es = (st.e_min_mwh, st.e_init_mwh, st.e_max_mwh)
        if all(_finite(v) for v in es):
            if not st.e_min_mwh <= st.e_init_mwh <= st.e_max_mwh:
                out.append(f"{path}.storage: need e_min_mwh <= e_init_mwh <= e_max_mwh, got "
                           f"{st.e_min_mwh} / {st.e_init_mwh} / {st.e_max_mwh}")
        else:
            out.append(f"{path}.storage: energy window {es} holds a non-number")
    out.extend(spec.pf.problems(f"{path}.pf"))
    return out


class DistributionSite:
    """One DN stepped by the engine (implements ``sim.protocols.GridSite``).

    Each :meth:`step` runs the local operator around the MESS power, pushes every injection into
    the pandapower net and solves the AC power flow. Use :func:`build_site` to create one.

    Attributes
    ----------
    name, node : str
        Site name and its road/rail node.
    info : sim.types.SiteInfo
        Forecasts per step (MW) and ``c_norm_mw`` for the policies.
    bus_index, line_index : numpy.ndarray
        pandapower indices labelling ``bus_vm_pu`` and ``line_loading_pct`` of the results.
    adapter : PandapowerAdapter
        The wrapped net.
    operator : LocalOperator
        The local dispatch (holds the ramp, DR and storage state).
    last_operator_result : OperatorResult or None
        Dispatch of the latest step (includes ``es_e_mwh`` and per-resource flexibility).
    """

    #: Solve the power flow straight from the injection vector on the fast path's snapshot (no
    #: pandas) while it is current; ``False`` (per site or on the class): every step through the
    #: adapter's tables, the reference path (also selected, for benchmarks, by the environment
    #: variable ``MESCOSIM_STEP_PATH=reference``).
    direct_pf: bool = os.environ.get("MESCOSIM_STEP_PATH", "") != "reference"

    def __init__(self, spec: SiteSpec, step_min: int, horizon_min: int,
                 load_forecast_mw: np.ndarray, pv_forecast_mw: np.ndarray,
                 load_actual_mw: np.ndarray, pv_actual_mw: np.ndarray) -> None:
        self.spec = spec
        self.name = spec.name
        self.node = spec.node
        self.step_min = int(step_min)
        self.horizon_min = int(horizon_min)
        self.info = SiteInfo(name=spec.name, node=spec.node, resources=spec.resources,
                             c_norm_mw=c_norm_mw(spec.resources),
                             load_forecast_mw=frozen_array(load_forecast_mw),
                             pv_forecast_mw=frozen_array(pv_forecast_mw))
        self.load_actual_mw = frozen_array(load_actual_mw)
        self.pv_actual_mw = frozen_array(pv_actual_mw)
        self.pv_shares = np.array([u.share for u in spec.pv_units], dtype=float)
        self._prepared = _prepared(spec)
        self.operator = LocalOperator(spec.resources, c_norm=self.info.c_norm_mw)
        self.bus_index = self._prepared.adapter.bus_index.copy()
        self.line_index = self._prepared.adapter.line_index.copy()
        self.last_operator_result: OperatorResult | None = None
        self.last_power_flow: PowerFlowResult | None = None
        # The site's own net is made (a copy of the prepared one) only when a step goes
        # through the adapter or someone reads ``adapter``; a run on the direct path has none.
        self._adapter: PandapowerAdapter | None = None
        # Whether the net was handed out (``adapter``): from then on anyone may change its
        # topology, so the direct path compares the topology with its snapshot's every step.
        self._exposed = False
        self._direct: _Direct | None = None
        self._pending: tuple | None = None
        self.n_direct = 0

    def _own_adapter(self) -> PandapowerAdapter:
        if self._adapter is None:
            self._adapter = self._prepared.copy_adapter()
        return self._adapter

    @property
    def adapter(self) -> PandapowerAdapter:
        """The wrapped net, holding the injections of the latest step (after a step on the
        direct path they are written into its tables on first access; its result tables are
        those of the latest solve through the adapter; before any, those of a solve at the
        feeder's base load, or none). The net is the site's own, made on first access; changes
        to its topology or in-service flags are seen at the next step."""
        a = self._own_adapter()
        self._exposed = True
        if self._pending is not None:
            load_mw, pv_mw, gens, dr_mw, es_p_mw, mess_p_mw = self._pending
            a.apply(load_mw, pv_mw * self.pv_shares, gens, dr_mw=dr_mw, es_p_mw=es_p_mw,
                    mess_p_mw=mess_p_mw)
            self._pending = None
        return a

    @property
    def power_flow_model(self) -> YbusModel | None:
        """The fast path's snapshot the next step's power flow starts from (the direct path's
        or the adapter's; None if there is none, e.g. before the first step)."""
        if self._direct is not None:
            return self._direct.model
        return None if self._adapter is None else self._adapter.fast.model

    @property
    def n_steps(self) -> int:
        """Number of steps of the horizon."""
        return self.horizon_min // self.step_min

    @property
    def es_e_mwh(self) -> float:
        """Current stationary-storage energy (MWh; NaN without storage)."""
        return self.operator.es_e_mwh

    def _k(self, time_min: int) -> int:
        k = int(time_min) // self.step_min
        if not 0 <= k < self.n_steps:
            raise IndexError(f"site {self.name}: time {time_min} min is outside the horizon "
                             f"[0, {self.horizon_min}) min")
        return k

    def observe(self, time_min: int) -> SiteState:
        """Actual load and PV (MW) of the step that contains ``time_min``."""
        k = self._k(time_min)
        op = self.operator
        return SiteState(
            self.name, float(self.load_actual_mw[k]), float(self.pv_actual_mw[k]),
            es_e_mwh=None if self.info.resources.storage is None else float(op.es_e_mwh),
            gen_p_mw=None if op.prev_g_mw is None else tuple(float(g) for g in op.prev_g_mw),
            dr_mw=float(op.prev_dr_mw), dr_used_mwh=op.dr_used_on(time_min))

    def step(self, time_min: int, dt_min: int, mess_p_mw: float) -> SiteStepResult:
        """Dispatch the local resources around the MESS and solve the power flow.

        Parameters
        ----------
        time_min : int
            Start of the step (min); selects the actual load/PV.
        dt_min : int
            Step length (min).
        mess_p_mw : float
            MESS power at this site (MW, > 0 charging).

        Returns
        -------
        sim.types.SiteStepResult
            ``status`` is the power-flow status (``ok``, ``not_converged``, ``isolated_buses``,
            ``invalid_input``); the operator's status is in ``message`` when it is not
            ``optimal``.
        """
        k = self._k(time_min)
        load_mw, pv_mw = float(self.load_actual_mw[k]), float(self.pv_actual_mw[k])
        op = self.operator.dispatch(time_min, dt_min, load_mw, pv_mw, mess_p_mw)
        self.last_operator_result = op
        d = op.dispatch_mw
        gens = [d[n] for n in self.operator.gen_names]
        es_p_mw = d["es_ch"] - d["es_dis"]
        pf = None
        if self.direct_pf and self._direct is None and self._adapter is None:
            self._direct = self._prepared.direct()  # a fresh run: the prepared snapshot
        if self.direct_pf and self._direct is not None:
            pf = self._solve_direct(load_mw, pv_mw, gens, d["dr"], es_p_mw, mess_p_mw)
        if pf is None:
            self._pending = None
            a = self._own_adapter()
            a.apply(load_mw, pv_mw * self.pv_shares, gens, dr_mw=d["dr"], es_p_mw=es_p_mw,
                    mess_p_mw=mess_p_mw)
            dp = self._direct
            if dp is not None and dp.fast is not a.fast:
                # the direct path ran on the prepared snapshot: the adapter's retry chain
                # starts from the same point, as it would after its own converged solve
                a.warm_start_from(dp.model)
            pf = a.solve()
            self._arm(pf)
        else:
            self._pending = (load_mw, pv_mw, gens, d["dr"], es_p_mw, mess_p_mw)
        self.last_power_flow = pf
        dispatch = dict(d)
        dispatch["pv"] = pv_mw
        msgs = []
        if op.status != "optimal":
            msgs.append(f"operator {op.status}: {op.message}".rstrip(": "))
        if pf.message:
            msgs.append(f"power flow: {pf.message}")
        return SiteStepResult(
            site=self.name, time_min=int(time_min), converged=pf.converged, status=pf.status,
            vm_min_pu=pf.vm_min_pu, vm_max_pu=pf.vm_max_pu,
            max_line_loading_pct=pf.max_line_loading_pct, losses_mw=pf.losses_mw,
            slack_p_mw=pf.slack_p_mw, residual_mw=op.residual_mw, mess_p_mw=float(mess_p_mw),
            load_mw=load_mw, pv_mw=pv_mw, flex_up_mw=op.flex_up_mw,
            flex_dn_mw=op.flex_dn_mw, dispatch_mw=MappingProxyType(dispatch),
            bus_vm_pu=pf.vm_pu, line_loading_pct=pf.line_loading_pct, message="; ".join(msgs))

    # ------------------------------------------------------------------ direct power flow
    def _arm(self, pf: PowerFlowResult) -> None:
        """After a solve through the adapter: enable the direct path if that solve converged on
        the fast path's snapshot (the adapter would warm-start the next step from it)."""
        a = self._adapter
        fast = a.fast
        o = a.options
        if (self.direct_pf and pf.status == "ok" and fast.backend != "runpp"
                and o.algorithm == "nr" and fast.model is not None):
            self._direct = _Direct.of_adapter(a, self.pv_shares)
        else:
            self._direct = None

    def _solve_direct(self, load_mw: float, pv_mw: float, gens: list[float], dr_mw: float,
                      es_p_mw: float, mess_p_mw: float) -> PowerFlowResult | None:
        """The adapter's first attempt (a warm start on the snapshot) without its pandas tables:
        the injections go straight into the bus injections. ``None`` whenever the adapter
        would do anything else (the snapshot or the topology changed, a non-finite input, no
        convergence, the spurious low-voltage solution): the step then runs through the adapter,
        whose retry chain starts from the same point."""
        dp = self._direct
        fast = dp.fast
        m = dp.model
        a = self._adapter
        if fast.model is not m or (a is not None and a.options is not dp.options):
            self._direct = None
            return None
        u = [float(load_mw), float(pv_mw), *gens, float(dr_mw), float(es_p_mw),
             float(mess_p_mw)]
        if not all(map(math.isfinite, u)):
            return None
        # Only the site's own code writes a net it never handed out, and never its topology:
        # the (pandas) topology check is needed only once ``adapter`` was read.
        if self._exposed and topology_key(a.net, dp.opts) != m.key:
            self._direct = None
            return None
        ok, v, sbus = fast.solve_sbus(dp.c + dp.m @ u, dp.opts[1], dp.opts[2])
        if not ok:
            return None
        vm, loading, losses, slack = m.results_one(v, sbus)
        vm_ok = vm[dp.in_service]
        o = dp.options
        n_vm = 0
        if vm_ok.size:
            vm_min, vm_max = float(vm_ok.min()), float(vm_ok.max())
            # NaN (an in-service bus without a voltage) fails this test too
            if not vm_min >= _LOW_VOLTAGE_PU:
                return None
            if vm_min < o.vm_min_pu or vm_max > o.vm_max_pu:
                n_vm = int(((vm_ok < o.vm_min_pu) | (vm_ok > o.vm_max_pu)).sum())
        else:
            vm_min = vm_max = float("nan")
        m.v_solution = v
        self.n_direct += 1
        top = float(loading.max()) if loading.size else float("nan")
        if math.isfinite(top):  # no NaN, no infinite loading (a zero rating)
            n_over = int((loading > o.loading_max_pct).sum()) if top > o.loading_max_pct else 0
        else:
            line_ok = loading[np.isfinite(loading)]
            top = float(line_ok.max()) if line_ok.size else float("nan")
            n_over = int((line_ok > o.loading_max_pct).sum())
        vm.setflags(write=False)
        loading.setflags(write=False)
        return PowerFlowResult(
            converged=True, status="ok", message="", vm_pu=vm, line_loading_pct=loading,
            losses_mw=losses, slack_p_mw=slack * dp.n_ext_grid, vm_min_pu=vm_min,
            vm_max_pu=vm_max, max_line_loading_pct=top, n_vm_violations=n_vm,
            n_overloaded_lines=n_over)

    def reset(self) -> None:
        """Back to the initial state (operator state, warm start and injections)."""
        self._direct = None
        self._pending = None
        self.operator.reset()
        if self._adapter is not None:
            self._adapter.reset()
        self.last_operator_result = None
        self.last_power_flow = None


def _per_step_array(values, n_steps: int, path: str, problems: list[str]) -> np.ndarray | None:
    arr = np.asarray(values, dtype=float)
    if arr.shape != (n_steps,):
        problems.append(f"{path}: expected {n_steps} values (one per step), got shape {arr.shape}")
        return None
    if not np.all(np.isfinite(arr)):
        problems.append(f"{path}: holds NaN or inf")
        return None
    if arr.min() < 0:
        problems.append(f"{path}: negative value {arr.min()}")
        return None
    return arr


def build_site(spec: SiteSpec, step_min: int, horizon_min: int,
               load_actual_mw: np.ndarray | None = None,
               pv_actual_mw: np.ndarray | None = None, path: str | None = None
               ) -> DistributionSite:
    """Check ``spec`` and build its :class:`DistributionSite`.

    Parameters
    ----------
    spec : SiteSpec
        The site description.
    step_min, horizon_min : int
        Engine step and horizon (min).
    load_actual_mw, pv_actual_mw : numpy.ndarray or None
        Realised load and PV per step (MW); default: the forecasts
        (``profile.per_step * peak_load_mw`` and ``* pv_cap_mw``).
    path : str or None
        Prefix of the problem messages (default ``"grids.<name>"``).

    Raises
    ------
    sim.errors.ScenarioError
        Listing every problem of the spec and of the actual arrays.
    """
    path = path or f"grids.{spec.name}"
    problems = check_site_spec(spec, path)
    problems += spec.load_profile.problems(step_min, horizon_min, f"{path}.load_profile")
    problems += spec.pv_profile.problems(step_min, horizon_min, f"{path}.pv_profile")
    if problems:
        raise ScenarioError(problems)
    n = horizon_min // step_min
    load_fc = spec.load_profile.per_step(step_min, horizon_min) * spec.peak_load_mw
    pv_fc = spec.pv_profile.per_step(step_min, horizon_min) * spec.pv_cap_mw
    load_act = load_fc if load_actual_mw is None else _per_step_array(
        load_actual_mw, n, f"{path}.load_actual_mw", problems)
    pv_act = pv_fc if pv_actual_mw is None else _per_step_array(
        pv_actual_mw, n, f"{path}.pv_actual_mw", problems)
    if problems:
        raise ScenarioError(problems)
    return DistributionSite(spec, step_min, horizon_min, load_fc, pv_fc, load_act, pv_act)
