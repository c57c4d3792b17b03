"""A thin adapter around one pandapower net: push injections, run the power flow, read results.

Every element the simulation drives (PV units, dispatchable generators, demand response, the
stationary storage and the MESS connection) is created **once** at construction; each step only
changes ``p_mw`` / ``q_mvar``. Non-convergence is data: :meth:`PandapowerAdapter.solve` never
raises for a failed power flow, it returns a :class:`PowerFlowResult` whose ``status`` says what
happened (Grid2Op ``Backend.runpf() -> (converged, exc)``).

Sign convention (pandapower): load and storage ``p_mw > 0`` is consumption (charging); sgen
``p_mw > 0`` is generation.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandapower as pp
from pandapower.auxiliary import LoadflowNotConverged, ppException

from grids.fastpf import (
    BACKENDS,
    BatchResult,
    FastPowerFlow,
    YbusModel,
    element_values,
    topology_key,
)
from sim.errors import ScenarioError
from sim.types import frozen_array

__all__ = ["PF_STATUSES", "PowerFlowOptions", "PowerFlowResult", "PandapowerAdapter"]

#: Every value :attr:`PowerFlowResult.status` can take.
PF_STATUSES = ("ok", "not_converged", "isolated_buses", "invalid_input")

#: A warm-started solution with a voltage below this (p.u.) is taken for the spurious
#: low-voltage Newton-Raphson solution and re-solved from a DC-initialised start.
_LOW_VOLTAGE_PU = 0.5


class _DropNumbaNotice(logging.Filter):
    """Drop pandapower's 'numba cannot be imported' notice (we pass ``numba=False`` on purpose)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "numba cannot be imported" not in record.getMessage()


_numba_filter = _DropNumbaNotice()
for _name in ("pandapower.auxiliary", "pandapower.run", "pandapower.powerflow"):
    _lg = logging.getLogger(_name)
    if not any(isinstance(f, _DropNumbaNotice) for f in _lg.filters):
        _lg.addFilter(_numba_filter)


@dataclass(frozen=True)
class PowerFlowOptions:
    """Power-flow settings and the limits used to flag violations.

    Parameters
    ----------
    algorithm : str
        pandapower ``runpp`` algorithm (``"nr"`` Newton-Raphson by default).
    tolerance_mva : float
        Mismatch tolerance in MVA.
    max_iteration : int
        Iteration limit of the solver.
    vm_min_pu, vm_max_pu : float
        Voltage band in p.u. used to count violations.
    loading_max_pct : float
        Line loading limit in percent of the thermal rating.
    backend : str
        How repeated solves are run (:mod:`grids.fastpf`): ``"runpp"`` plain
        ``pandapower.runpp`` every step; ``"ybus"`` / ``"lightsim2grid"`` reuse the admittance
        matrix of the last plain ``runpp`` while topology and options are unchanged and run a
        NumPy / lightsim2grid (C++) Newton-Raphson on it. Both agree with ``runpp`` to 1e-8 p.u.
        (``tests/test_fastpf.py``); ``"lightsim2grid"`` falls back to ``"ybus"`` with a recorded
        reason when the package is missing. Only ``algorithm="nr"`` uses the fast path.
    """

    algorithm: str = "nr"
    tolerance_mva: float = 1e-8
    max_iteration: int = 20
    vm_min_pu: float = 0.95
    vm_max_pu: float = 1.05
    loading_max_pct: float = 100.0
    backend: str = "lightsim2grid"

    def problems(self, path: str = "pf") -> list[str]:
        """Invalid settings as ``"path.field: message"`` strings (empty if all is well)."""
        out = []
        if self.algorithm not in ("nr", "iwamoto_nr", "bfsw", "gs", "fdbx", "fdxb"):
            out.append(f"{path}.algorithm: unknown power-flow algorithm {self.algorithm!r}")
        if not (np.isfinite(self.tolerance_mva) and self.tolerance_mva > 0):
            out.append(f"{path}.tolerance_mva: must be > 0, got {self.tolerance_mva}")
        if int(self.max_iteration) != self.max_iteration or self.max_iteration < 1:
            out.append(f"{path}.max_iteration: must be a positive int, got {self.max_iteration}")
        if not 0 < self.vm_min_pu < self.vm_max_pu:
            out.append(f"{path}.vm_min_pu: need 0 < vm_min_pu < vm_max_pu, got "
                       f"{self.vm_min_pu} and {self.vm_max_pu}")
        if self.backend not in BACKENDS:
            out.append(f"{path}.backend: unknown power-flow backend {self.backend!r}; valid: "
                       f"{', '.join(BACKENDS)}")
        if not self.loading_max_pct > 0:
            out.append(f"{path}.loading_max_pct: must be > 0, got {self.loading_max_pct}")
        return out


@dataclass(frozen=True)
class PowerFlowResult:
    """Outcome of one power flow. Arrays are read-only and NaN-filled when it did not converge.

    Attributes
    ----------
    converged : bool
        True only if the solver converged **and** every in-service bus has a voltage. With
        status ``"isolated_buses"`` the arrays still hold the results of the buses that were
        solved (NaN for the isolated ones) and the scalars are taken over those.
    status : str
        One of :data:`PF_STATUSES`.
    message : str
        Human-readable detail (e.g. that a warm start failed and a flat start was used).
    vm_pu : numpy.ndarray
        Voltage magnitude per bus (p.u.), ordered like ``net.bus.index``.
    line_loading_pct : numpy.ndarray
        Loading per line (% of rating), ordered like ``net.line.index``.
    losses_mw : float
        Active losses of lines and transformers (MW).
    slack_p_mw : float
        Active power drawn from the external grid(s) (MW, > 0 = import into the feeder).
    vm_min_pu, vm_max_pu : float
        Extreme voltages over in-service buses with a result (p.u.).
    max_line_loading_pct : float
        Highest line loading (%).
    n_vm_violations : int
        In-service buses outside ``[vm_min_pu, vm_max_pu]`` of the options.
    n_overloaded_lines : int
        Lines above ``loading_max_pct``.
    """

    converged: bool
    status: str
    message: str = ""
    vm_pu: np.ndarray = field(default_factory=lambda: frozen_array([]))
    line_loading_pct: np.ndarray = field(default_factory=lambda: frozen_array([]))
    losses_mw: float = float("nan")
    slack_p_mw: float = float("nan")
    vm_min_pu: float = float("nan")
    vm_max_pu: float = float("nan")
    max_line_loading_pct: float = float("nan")
    n_vm_violations: int = 0
    n_overloaded_lines: int = 0


def _bus_problem(net: pp.pandapowerNet, bus, what: str = "bus") -> str | None:
    """Why ``bus`` cannot host a controllable element of the site, or None if it can."""
    n = len(net.bus)
    try:
        b = int(bus)
    except (TypeError, ValueError):
        return f"{what} {bus!r} is not an integer bus index"
    if b != bus or b not in net.bus.index:
        return f"{what} {bus} not in net ({n} buses)"
    if not bool(net.bus.at[b, "in_service"]):
        return f"{what} {b} is out of service"
    if len(net.trafo):
        hv = net.trafo.index[net.trafo.hv_bus.values == b]
        if len(hv):
            return (f"{what} {b} is the HV side of substation transformer "
                    f"{', '.join(str(i) for i in hv)}")
    return None


class PandapowerAdapter:
    """Wraps one pandapower net and the elements the simulation drives on it.

    Parameters
    ----------
    net : pandapower.pandapowerNet
        The feeder; it is modified in place (elements are added, load ``scaling`` is folded into
        ``p_mw``/``q_mvar``). Pass a fresh net per adapter. ``sgen``/``gen`` rows already in the
        net are left untouched (the three registered feeders have none).
    options : PowerFlowOptions
        Solver settings and violation limits.
    pv_buses : sequence of int
        One PV ``sgen`` is created at each bus (in order).
    gen_buses : mapping str -> int
        Dispatchable generators, one ``sgen`` each, in mapping order.
    dr_bus : int or None
        Bus of the demand-response ``sgen`` (the load reduction acts as generation).
    es_bus : int or None
        Bus of the stationary-storage ``storage`` row.
    mess_bus : int or None
        Bus of the MESS connection ``storage`` row.

    Raises
    ------
    sim.errors.ScenarioError
        If a bus is invalid or the net has no in-service load with positive active power.
    """

    def __init__(self, net: pp.pandapowerNet, options: PowerFlowOptions | None = None, *,
                 pv_buses: Sequence[int] = (), gen_buses: Mapping[str, int] | None = None,
                 dr_bus: int | None = None, es_bus: int | None = None,
                 mess_bus: int | None = None) -> None:
        self.net = net
        self.options = options if options is not None else PowerFlowOptions()
        gen_buses = dict(gen_buses or {})
        problems = self.options.problems()
        named = [(f"pv[{i}].bus", b) for i, b in enumerate(pv_buses)]
        named += [(f"generators[{n}].bus", b) for n, b in gen_buses.items()]
        named += [(k, b) for k, b in (("dr.bus", dr_bus), ("storage.bus", es_bus),
                                      ("mess_bus", mess_bus)) if b is not None]
        for what, b in named:
            msg = _bus_problem(net, b)
            if msg:
                problems.append(f"{what}: {msg}")

        loads = net.load[net.load.in_service.astype(bool)]
        self.load_index = loads.index.to_numpy()
        scaling = loads["scaling"].to_numpy(float) if "scaling" in loads else 1.0
        base_p = loads.p_mw.to_numpy(float) * scaling
        base_q = loads.q_mvar.to_numpy(float) * scaling
        total = float(base_p.sum())
        if not (np.isfinite(total) and total > 0):
            problems.append(f"load: the net has no in-service load with positive p_mw "
                            f"(total {total} MW); cannot scale a profile onto it")
        if problems:
            raise ScenarioError(problems)
        # Each load keeps its share of the total and its own power factor (Q/P ratio).
        self.load_p_share = base_p / total
        self.load_q_per_mw = base_q / total
        if "scaling" in net.load:
            net.load.loc[self.load_index, "scaling"] = 1.0

        self.gen_names = tuple(gen_buses)
        self.pv_index = np.array([pp.create_sgen(net, int(b), p_mw=0.0, q_mvar=0.0,
                                                 name=f"pv{i}", type="PV")
                                  for i, b in enumerate(pv_buses)], dtype=np.int64)
        self.gen_index = np.array([pp.create_sgen(net, int(b), p_mw=0.0, q_mvar=0.0, name=n,
                                                  type="gen")
                                   for n, b in gen_buses.items()], dtype=np.int64)
        self.dr_index = (None if dr_bus is None else
                         pp.create_sgen(net, int(dr_bus), p_mw=0.0, q_mvar=0.0, name="dr",
                                        type="DR"))
        self.es_index = (None if es_bus is None else
                         pp.create_storage(net, int(es_bus), p_mw=0.0, max_e_mwh=0.0,
                                           q_mvar=0.0, name="es"))
        self.mess_index = (None if mess_bus is None else
                           pp.create_storage(net, int(mess_bus), p_mw=0.0, max_e_mwh=0.0,
                                             q_mvar=0.0, name="mess"))
        self.bus_index = net.bus.index.to_numpy()
        self.line_index = net.line.index.to_numpy()
        self._warm = False
        self._warm_topology: tuple | None = None
        self._invalid: str | None = None
        self._fast: FastPowerFlow | None = None
        self._batch_fast: FastPowerFlow | None = None

    def copy(self) -> PandapowerAdapter:
        """An independent adapter on a deep copy of this one's net (elements, injections and
        result tables as they are now), with no warm start and no fast-path snapshot: cheaper
        than building the feeder and creating the driven elements again."""
        new = copy.copy(self)
        new.net = copy.deepcopy(self.net)
        for name in ("load_index", "load_p_share", "load_q_per_mw", "pv_index", "gen_index",
                     "bus_index", "line_index"):
            setattr(new, name, getattr(self, name).copy())
        new.__dict__.pop("_pos_cache", None)
        new._warm = False
        new._warm_topology = None
        new._fast = None
        new._batch_fast = None
        return new

    def warm_start_from(self, model: YbusModel) -> bool:
        """Make ``model`` (a fast-path snapshot of a net with this net's topology, e.g. of a
        copy of it) the warm start of the next :meth:`solve`, as if the last solve had
        converged on it. Returns False, changing nothing, if the backend or the algorithm does
        not use snapshots, the net was never solved or its topology or options differ from the
        snapshot's."""
        o = self.options
        fast = self.fast
        net = self.net
        if (fast.backend == "runpp" or o.algorithm != "nr" or len(net.res_bus) != len(net.bus)
                or fast_key(net, o) != model.key):
            return False  # (a net never solved has no result tables to write into)
        fast.model = model
        self._warm = True
        self._warm_topology = self._topology_key()
        return True

    # ------------------------------------------------------------------ injections
    def apply(self, load_mw: float, pv_mw_per_sgen: Sequence[float] = (),
              gen_mw: Sequence[float] | Mapping[str, float] = (), dr_mw: float = 0.0,
              es_p_mw: float = 0.0, mess_p_mw: float = 0.0) -> None:
        """Set the injections of the next :meth:`solve`.

        Parameters
        ----------
        load_mw : float
            Total active load of the feeder (MW); each load keeps its base share and its base
            power factor.
        pv_mw_per_sgen : sequence of float
            Output of each PV unit (MW), in ``pv_buses`` order.
        gen_mw : sequence of float or mapping name -> MW
            Output of each dispatchable generator (MW).
        dr_mw : float
            Demand-response load reduction (MW), injected as generation.
        es_p_mw, mess_p_mw : float
            Stationary storage and MESS power (MW, pandapower sign: > 0 charging).

        Notes
        -----
        Non-finite values are not written to the net; the next :meth:`solve` then returns
        status ``"invalid_input"`` without running the power flow. Wrong lengths are programming
        errors and raise ``ValueError``.
        """
        if isinstance(gen_mw, Mapping):
            missing = set(self.gen_names) - set(gen_mw)
            if missing:
                raise ValueError(f"gen_mw misses generators {sorted(missing)}")
            gen_mw = [gen_mw[n] for n in self.gen_names]
        pv = np.asarray(pv_mw_per_sgen, dtype=float).reshape(-1)
        gen = np.asarray(gen_mw, dtype=float).reshape(-1)
        if pv.size != self.pv_index.size:
            raise ValueError(f"expected {self.pv_index.size} PV values, got {pv.size}")
        if gen.size != self.gen_index.size:
            raise ValueError(f"expected {self.gen_index.size} generator values, got {gen.size}")
        scalars = {"load_mw": load_mw, "dr_mw": dr_mw, "es_p_mw": es_p_mw,
                   "mess_p_mw": mess_p_mw}
        bad = [k for k, v in scalars.items() if not np.isfinite(float(v))]
        if not np.all(np.isfinite(pv)):
            bad.append("pv_mw_per_sgen")
        if not np.all(np.isfinite(gen)):
            bad.append("gen_mw")
        if bad:
            self._invalid = f"non-finite input: {', '.join(bad)}"
            return
        self._invalid = None
        net = self.net
        load_mw = float(load_mw)
        # pandas .loc costs ~0.1-0.3 ms per call; writing through a column view is ~10x cheaper
        _set(net.load, "p_mw", self._pos("load", self.load_index), self.load_p_share * load_mw)
        _set(net.load, "q_mvar", self._pos("load", self.load_index),
             self.load_q_per_mw * load_mw)
        if pv.size:
            _set(net.sgen, "p_mw", self._pos("sgen", self.pv_index), pv)
        if gen.size:
            _set(net.sgen, "p_mw", self._pos("sgen", self.gen_index), gen)
        if self.dr_index is not None:
            _set(net.sgen, "p_mw", self._pos("sgen", [self.dr_index]), float(dr_mw))
        if self.es_index is not None:
            _set(net.storage, "p_mw", self._pos("storage", [self.es_index]), float(es_p_mw))
        if self.mess_index is not None:
            _set(net.storage, "p_mw", self._pos("storage", [self.mess_index]),
                 float(mess_p_mw))

    def _pos(self, table: str, index) -> np.ndarray:
        """Row positions of ``index`` in ``net[table]`` (cached while the table's index holds)."""
        df_index = self.net[table].index
        key = (table, id(df_index), tuple(np.asarray(index).tolist()))
        cache = self.__dict__.setdefault("_pos_cache", {})
        pos = cache.get(key)
        if pos is None:
            pos = cache[key] = df_index.get_indexer(index)
        return pos

    # ------------------------------------------------------------------ power flow
    @property
    def fast(self) -> FastPowerFlow:
        """The repeated-solve machinery of ``options.backend`` (rebuilt if the backend changed)."""
        if self._fast is None or self._fast.requested != self.options.backend:
            self._fast = FastPowerFlow(self.net, self.options.backend)
        return self._fast

    def _runpp(self, init: str) -> None:
        # runpp's contract (results in net.res_*, LoadflowNotConverged on failure) for every
        # backend; init="results" may take the fast path, any other init rebuilds its cache
        o = self.options
        self.fast.run(init, o.algorithm, o.tolerance_mva, int(o.max_iteration))

    def element_matrix(self, load_mw, pv_mw_per_sgen=None, gen_mw=None, dr_mw=None,
                       es_p_mw=None, mess_p_mw=None) -> np.ndarray:
        """(steps, n_x) element values (``grids.fastpf.element_values`` layout) for a day.

        Arguments are per-step arrays in the units and signs of :meth:`apply`:
        ``load_mw`` (steps,), ``pv_mw_per_sgen`` (steps, PV units), ``gen_mw`` (steps,
        generators), ``dr_mw``/``es_p_mw``/``mess_p_mw`` (steps,); None means zero. Elements
        the adapter does not drive keep their current values.
        """
        load = np.asarray(load_mw, dtype=float).reshape(-1)
        steps = load.size
        net = self.net
        x = np.tile(element_values(net), (steps, 1))
        nl, ns, nst = len(net.load), len(net.sgen), len(net.storage)
        pos_load = net.load.index.get_indexer(self.load_index)
        x[:, pos_load] = load[:, None] * self.load_p_share[None, :]
        x[:, nl + pos_load] = load[:, None] * self.load_q_per_mw[None, :]

        def per_step(values, width: int, what: str) -> np.ndarray:
            if values is None:
                return np.zeros((steps, width))
            arr = np.asarray(values, dtype=float).reshape(steps, -1)
            if arr.shape[1] != width:
                raise ValueError(f"{what}: expected {width} columns, got {arr.shape[1]}")
            return arr

        sg = net.sgen.index
        off = 2 * nl
        for idx, vals, what in ((self.pv_index, pv_mw_per_sgen, "pv_mw_per_sgen"),
                                (self.gen_index, gen_mw, "gen_mw")):
            if idx.size:
                x[:, off + sg.get_indexer(idx)] = per_step(vals, idx.size, what)
        if self.dr_index is not None:
            x[:, off + sg.get_loc(self.dr_index)] = per_step(dr_mw, 1, "dr_mw")[:, 0]
        off = 2 * nl + 2 * ns
        for idx, vals, what in ((self.es_index, es_p_mw, "es_p_mw"),
                                (self.mess_index, mess_p_mw, "mess_p_mw")):
            if idx is not None:
                x[:, off + net.storage.index.get_loc(idx)] = per_step(vals, 1, what)[:, 0]
        if not np.all(np.isfinite(x)):
            raise ValueError("element_matrix: non-finite injections")
        assert x.shape[1] == 2 * (nl + ns + nst)
        return x

    def solve_day(self, x: np.ndarray, method: str = "numpy") -> BatchResult:
        """All steps of a day (or any batch) in one call, once the injections are known.

        ``x`` comes from :meth:`element_matrix`. Steps are independent and each starts from the
        last converged solution; the admittance matrix is the one of the current topology (a
        plain solve is run first if there is no current one). ``method`` is ``"numpy"`` (one
        vectorised Newton-Raphson over all steps) or ``"lightsim2grid"`` (its C++ solver step
        by step). Columns are ordered like ``bus_index`` / ``line_index``.

        Raises
        ------
        RuntimeError
            If the net cannot be solved once to build the admittance matrix, or the fast path
            declined the net (``fast.reason`` says why).
        """
        o = self.options
        fast = self.fast
        if fast.backend == "runpp":
            if self._batch_fast is None:
                self._batch_fast = FastPowerFlow(self.net, "ybus")
            fast = self._batch_fast
        if fast.model is None or fast.model.key != fast_key(self.net, o):
            fast.run("dc", o.algorithm, o.tolerance_mva, int(o.max_iteration))
        if fast.model is None:
            why = fast.reason or "the plain power flow did not converge or left isolated buses"
            raise RuntimeError(f"solve_day: no admittance matrix ({why})")
        return fast.solve_batch(x, o.tolerance_mva, int(o.max_iteration), method=method)

    def _failed(self, status: str, message: str) -> PowerFlowResult:
        return PowerFlowResult(
            converged=False, status=status, message=message,
            vm_pu=frozen_array(np.full(len(self.bus_index), np.nan)),
            line_loading_pct=frozen_array(np.full(len(self.line_index), np.nan)))

    def solve(self) -> PowerFlowResult:
        """Run the AC power flow on the current injections; never raises for a failed solve.

        The retry chain: a warm start from the last converged solution (``init="results"``,
        only after a converged solve on the same topology), then a DC-initialised start
        (``init="dc"``), then, as the last resort, a flat start (``init="flat"``). The flat start
        comes last because it diverges on feeders whose substation transformer has a phase
        shift (``mv_open_ring``: 150 degrees). Every attempt's outcome is in ``message`` whenever
        more than one was needed, e.g. ``"init=results: not converged; init=dc: converged"``.
        A solution with a voltage below 0.5 p.u. from a warm or flat start is taken for Newton-
        Raphson's spurious low-voltage solution and counts as a failed attempt.

        Returns
        -------
        PowerFlowResult
            ``status`` is ``"invalid_input"`` (non-finite injections, power flow not run),
            ``"not_converged"``, ``"isolated_buses"`` (an in-service bus has no voltage) or
            ``"ok"``.
        """
        if self._invalid is not None:
            return self._failed("invalid_input", self._invalid)
        messages = []
        # A warm start is only used when the topology is the one of the last converged solve.
        topo = self._topology_key()
        warm = self._warm and topo == self._warm_topology
        attempts = ["results", "dc", "flat"] if warm else ["dc", "flat"]
        converged = False
        for init in attempts:
            try:
                self._runpp(init)
                converged = bool(self.net.converged)
                if not converged:
                    messages.append(f"init={init}: not converged")
            except LoadflowNotConverged as exc:
                converged = False
                messages.append(f"init={init}: not converged ({exc})")
            except UserWarning as exc:
                # pandapower raises UserWarning for a net without a reference bus
                self._warm = False
                status = "isolated_buses" if "reference bus" in str(exc) else "not_converged"
                return self._failed(status, f"{type(exc).__name__}: {exc}")
            except (ppException, np.linalg.LinAlgError, ZeroDivisionError) as exc:
                converged = False
                messages.append(f"init={init}: {type(exc).__name__}: {exc}")
            if converged and init != "dc":
                vm_now = self.net.res_bus.vm_pu.to_numpy(float)
                if np.nanmin(vm_now, initial=np.inf) < _LOW_VOLTAGE_PU:
                    # Newton-Raphson can land on the low-voltage solution from a poor start
                    converged = False
                    messages.append(f"init={init}: implausible solution (vm min "
                                    f"{np.nanmin(vm_now):.3f} p.u.)")
            if converged:
                if messages:
                    messages.append(f"init={init}: converged"
                                    + (" (flat start, the last resort)" if init == "flat" else ""))
                break
        if not converged:
            self._warm = False
            return self._failed("not_converged", "; ".join(messages) or "power flow not converged")

        net = self.net
        vm = net.res_bus.vm_pu.reindex(self.bus_index).to_numpy(float)
        in_service = net.bus.in_service.to_numpy(bool)
        loading = net.res_line.loading_percent.reindex(self.line_index).to_numpy(float)
        cut = self.bus_index[in_service & np.isnan(vm)]
        if cut.size:
            # The rest of the net solved; keep its results but the step did not converge as a
            # whole. A warm start from NaN voltages would fail, so the next solve starts cold.
            self._warm = False
            status = "isolated_buses"
            messages.append(f"in-service buses without voltage (isolated): {cut.tolist()}")
        else:
            self._warm = True
            self._warm_topology = topo
            status = "ok"
        has_vm = in_service & np.isfinite(vm)
        vm_ok = vm[has_vm]
        losses = float(np.nansum(net.res_line.pl_mw.to_numpy(float)))
        if len(net.trafo):
            losses += float(np.nansum(net.res_trafo.pl_mw.to_numpy(float)))
        o = self.options
        line_ok = loading[np.isfinite(loading)]
        return PowerFlowResult(
            converged=status == "ok", status=status, message="; ".join(messages),
            vm_pu=frozen_array(vm), line_loading_pct=frozen_array(loading),
            losses_mw=losses,
            slack_p_mw=float(np.nansum(net.res_ext_grid.p_mw.to_numpy(float))),
            vm_min_pu=float(vm_ok.min()) if vm_ok.size else float("nan"),
            vm_max_pu=float(vm_ok.max()) if vm_ok.size else float("nan"),
            max_line_loading_pct=float(line_ok.max()) if line_ok.size else float("nan"),
            n_vm_violations=int(((vm_ok < o.vm_min_pu) | (vm_ok > o.vm_max_pu)).sum()),
            n_overloaded_lines=int((line_ok > o.loading_max_pct).sum()),
        )

    def _topology_key(self) -> tuple:
        """What a warm start depends on besides injections: which elements are in service."""
        net = self.net
        parts = [net.bus.in_service, net.line.in_service, net.ext_grid.in_service]
        if len(net.trafo):
            parts.append(net.trafo.in_service)
        if len(net.switch):
            parts.append(net.switch.closed)
        return tuple(np.asarray(p, dtype=bool).tobytes() for p in parts)

    def reset(self) -> None:
        """Forget the warm-start point and zero every driven injection (loads keep their shares)."""
        self._warm = False
        self._invalid = None
        if self._fast is not None:
            self._fast.invalidate()
        self.apply(0.0, np.zeros(self.pv_index.size), np.zeros(self.gen_index.size))


def _set(df, col: str, pos: np.ndarray, values) -> None:
    """``df[col].iloc[pos] = values``, through a writable view of the column when pandas gives one.

    With copy-on-write pandas (3.x) ``to_numpy`` is read-only and the slower ``iloc`` is used.
    """
    arr = df[col].to_numpy()
    if arr.flags.writeable and arr.base is not None and arr.dtype == np.float64:
        arr[pos] = values
    else:
        df.iloc[pos, df.columns.get_loc(col)] = values


def fast_key(net: pp.pandapowerNet, o: PowerFlowOptions) -> tuple:
    """The cache key :class:`grids.fastpf.FastPowerFlow` uses for ``net`` under options ``o``."""
    return topology_key(net, (o.algorithm, float(o.tolerance_mva), int(o.max_iteration)))
