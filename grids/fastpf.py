"""Fast repeated AC power flows on one pandapower net: the admittance matrix is built once.

``pandapower.runpp`` rebuilds its internal case (``ppc``/``ppci``), the admittance matrix and all
result tables on every call: about 20-60 ms on the project's feeders, while the Newton-Raphson
solve itself takes tens of microseconds. This module keeps pandapower's own ``ppci`` of the last
plain ``runpp`` (``Ybus``, ``Yf``, ``Yt``, bus types, bus numbering) and, as long as the topology
and the options are unchanged, only rebuilds the complex bus injections ``Sbus`` from the load,
sgen and storage powers and runs Newton-Raphson on them:

* ``backend="lightsim2grid"``: lightsim2grid's C++ Newton-Raphson (``NRSing_KLU``);
* ``backend="ybus"``: a NumPy Newton-Raphson of our own (dense, batched: :func:`newton_batch`);
* ``backend="runpp"``: plain ``pandapower.runpp`` every time (the reference).

:class:`YbusModel` is the frozen snapshot and computes the results the adapter reports (bus
voltages, line loading, branch losses, slack power) the way pandapower does.
:class:`FastPowerFlow` owns the snapshot, decides when it is stale (any change of the in-service
flags of buses, lines, transformers, external grids, loads, sgens, storages or gens, of switch
states, of external-grid set points or of the solver options) and falls back to ``runpp``, which
rebuilds it. Tests (``tests/test_fastpf.py``) check every backend against plain ``runpp`` to
1e-8 p.u. on the three feeders and on case118, also after a line or switch is opened between two
solves.

Only constant-power loads are supported (pandapower's ZIP ``const_z``/``const_i`` percentages
zero) and ``enforce_q_lims`` is off (the ``runpp`` default); otherwise the fast path declines and
records why (:attr:`FastPowerFlow.reason`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pandapower as pp
import scipy.sparse as sp
from pandapower.auxiliary import LoadflowNotConverged
from pandapower.pypower.idx_bus import PD, QD
from pandapower.pypower.idx_gen import GEN_BUS, GEN_STATUS, PG, QG

__all__ = ["BACKENDS", "lightsim2grid_status", "YbusModel", "FastPowerFlow", "newton_batch",
           "BatchResult"]

#: Every value of ``PowerFlowOptions.backend``.
BACKENDS = ("runpp", "ybus", "lightsim2grid")

_SQRT3 = float(np.sqrt(3.0))
#: Up to this many buses the result products use dense matrices (faster than scipy.sparse).
_DENSE_MAX_BUS = 400


def lightsim2grid_status() -> tuple[bool, str]:
    """(available, reason): whether lightsim2grid's C++ Newton-Raphson can be imported."""
    try:
        from lightsim2grid.algorithm import NRSing_KLU  # noqa: F401
    except ImportError as exc:  # optional at run time, a dependency in pyproject
        try:
            from lightsim2grid.algorithm import NRSing_SparseLU  # noqa: F401
        except ImportError:
            return False, f"lightsim2grid not importable ({exc})"
    return True, ""


def _ls_solver():
    try:
        from lightsim2grid.algorithm import NRSing_KLU
        return NRSing_KLU()
    except ImportError:
        from lightsim2grid.algorithm import NRSing_SparseLU
        return NRSing_SparseLU()


def _col(df, name: str) -> np.ndarray:
    return df[name].to_numpy(float) if len(df) else np.zeros(0)


def element_values(net: pp.pandapowerNet) -> np.ndarray:
    """The injection vector the fast path reads: load p, q; sgen p, q; storage p, q (MW, Mvar).

    Rows of out-of-service elements are included (their columns in the incidence are zero).
    """
    return np.concatenate([_col(net.load, "p_mw"), _col(net.load, "q_mvar"),
                           _col(net.sgen, "p_mw"), _col(net.sgen, "q_mvar"),
                           _col(net.storage, "p_mw"), _col(net.storage, "q_mvar")])


def _scaled(df) -> np.ndarray:
    if not len(df):
        return np.zeros(0)
    s = df["scaling"].to_numpy(float) if "scaling" in df else np.ones(len(df))
    return s * df["in_service"].to_numpy(bool)


def topology_key(net: pp.pandapowerNet, options: tuple) -> tuple:
    """Everything the snapshot depends on besides the injections (cheap to compute)."""
    parts = [options]
    for tab in ("bus", "line", "trafo", "trafo3w", "ext_grid", "load", "sgen", "storage", "gen",
                "shunt", "impedance", "ward", "xward"):
        df = net[tab] if tab in net else None
        if df is not None and len(df):
            parts.append(df["in_service"].to_numpy(bool).tobytes())
    if len(net.switch):
        parts.append(net.switch["closed"].to_numpy(bool).tobytes())
    eg = net.ext_grid
    parts.append(eg["vm_pu"].to_numpy(float).tobytes())
    parts.append(eg["va_degree"].to_numpy(float).tobytes())
    for tab in ("load", "sgen", "storage"):
        parts.append(_scaled(net[tab]).tobytes())
    if len(net.gen):
        parts.append(net.gen[["p_mw", "vm_pu"]].to_numpy(float).tobytes())
    return tuple(parts)


def unsupported(net: pp.pandapowerNet) -> str | None:
    """Why the fast path cannot reproduce ``runpp`` on ``net`` (None if it can)."""
    load = net.load[net.load.in_service.astype(bool)]
    for c in ("const_z_percent", "const_i_percent", "const_z_p_percent", "const_i_p_percent",
              "const_z_q_percent", "const_i_q_percent"):
        if c in load and np.any(load[c].to_numpy(float) != 0):
            return f"voltage-dependent loads (load.{c} != 0)"
    for tab in ("trafo3w", "impedance", "ward", "xward", "dcline", "svc", "ssc", "tcsc", "vsc",
                "motor", "asymmetric_load", "asymmetric_sgen"):
        if tab in net and len(net[tab]) and net[tab]["in_service"].astype(bool).any():
            return f"net has {tab} elements"
    if int(net.ext_grid.in_service.astype(bool).sum()) != 1:
        return "the net needs exactly one in-service external grid"
    return None


@dataclass(frozen=True)
class BatchResult:
    """Results of a batch of power flows; one row per step.

    Attributes
    ----------
    converged : numpy.ndarray of bool
        Per step.
    iterations : numpy.ndarray of int
        Newton-Raphson iterations per step.
    vm_pu : numpy.ndarray
        (steps, buses) voltage magnitudes (p.u.), columns ordered like ``net.bus.index``; NaN
        for out-of-service buses.
    line_loading_pct : numpy.ndarray
        (steps, lines) loading in % of the rating, columns ordered like ``net.line.index``.
    losses_mw, slack_p_mw : numpy.ndarray
        Per step: active losses of lines and transformers; power from the external grids.
    """

    converged: np.ndarray
    iterations: np.ndarray
    vm_pu: np.ndarray
    line_loading_pct: np.ndarray
    losses_mw: np.ndarray
    slack_p_mw: np.ndarray


class YbusModel:
    """pandapower's internal case after a converged ``runpp``, frozen for repeated solves.

    Parameters
    ----------
    net : pandapower.pandapowerNet
        A net on which ``runpp`` has just converged (its ``_ppc["internal"]`` is read).
    key : tuple
        :func:`topology_key` at the time of that ``runpp``.
    """

    def __init__(self, net: pp.pandapowerNet, key: tuple) -> None:
        it = net._ppc["internal"]
        self.key = key
        self.base_mva = float(it["baseMVA"])
        self.ybus = sp.csc_matrix(it["Ybus"])
        self.ybus.sum_duplicates()
        self.yf = sp.csr_matrix(it["Yf"])
        self.yt = sp.csr_matrix(it["Yt"])
        self.ref = np.asarray(it["ref"], dtype=np.int32)
        self.pv = np.asarray(it["pv"], dtype=np.int32)
        self.pq = np.asarray(it["pq"], dtype=np.int32)
        self.v_solution = np.asarray(it["V"], dtype=complex).copy()
        bus, gen = it["bus"], it["gen"]
        n = bus.shape[0]
        self.n_bus = n
        branch = it["branch"]
        self.f_bus = np.real(branch[:, 0]).astype(np.int64)
        self.t_bus = np.real(branch[:, 1]).astype(np.int64)

        # Sbus without the external grids' generation (their power is the unknown).
        lookups = net._pd2ppc_lookups
        ref_gens = np.asarray(it.get("ref_gens", []), dtype=np.int64)
        eg_rows = np.zeros(gen.shape[0], dtype=bool)
        if "ext_grid" in lookups and lookups["ext_grid"] is not None:
            eg_lookup = np.asarray(lookups["ext_grid"], dtype=np.int64)
            eg_lookup = eg_lookup[(eg_lookup >= 0) & (eg_lookup < gen.shape[0])]
            eg_rows[eg_lookup] = True
        else:
            eg_rows[ref_gens] = True
        on = np.real(gen[:, GEN_STATUS]) > 0
        sg = np.zeros(n, dtype=complex)
        keep = on & ~eg_rows
        np.add.at(sg, np.real(gen[keep, GEN_BUS]).astype(np.int64),
                  (np.real(gen[keep, PG]) + 1j * np.real(gen[keep, QG])))
        # PV-bus reactive power is an unknown too; only P of non-slack gens enters Sbus.
        sg = np.real(sg) + 0j
        sd = np.real(bus[:, PD]) + 1j * np.real(bus[:, QD])
        self.sbus0 = (sg - sd) / self.base_mva
        self.x0 = element_values(net)

        # element -> ppci bus incidence (MW -> p.u. of Sbus, sign: load/storage consume)
        bus_lookup = np.asarray(lookups["bus"], dtype=np.int64)
        rows, cols, vals = [], [], []
        off = 0
        for tab, sign in (("load", -1.0), ("sgen", 1.0), ("storage", -1.0)):
            df = net[tab]
            m = len(df)
            if m:
                scale = _scaled(df)
                b = bus_lookup[df["bus"].to_numpy(np.int64)]
                ok = (scale != 0) & (b >= 0) & (b < n)
                idx = np.flatnonzero(ok)
                for part, unit in ((0, 1.0), (1, 1j)):
                    rows.append(b[idx])
                    cols.append(off + part * m + idx)
                    vals.append(sign * unit * scale[idx] / self.base_mva)
            off += 2 * m
        self.n_x = off
        self.inc = sp.csr_matrix((np.concatenate(vals) if vals else np.zeros(0, complex),
                                  (np.concatenate(rows) if rows else np.zeros(0, int),
                                   np.concatenate(cols) if cols else np.zeros(0, int))),
                                 shape=(n, off), dtype=complex)

        # pandapower bus -> ppci bus (-1: out of service / not in ppci)
        self.bus_pos = np.full(len(net.bus), -1, dtype=np.int64)
        pb = net.bus.index.to_numpy(np.int64)
        lk = bus_lookup[pb]
        valid = (lk >= 0) & (lk < n) & net.bus.in_service.to_numpy(bool)
        self.bus_pos[valid] = lk[valid]
        self.has_isolated = bool(np.any(net.bus.in_service.to_numpy(bool) & ~valid))

        # branch rows of lines and transformers in ppci (-1: out of service)
        is_ = np.asarray(it["branch_is"], dtype=bool)
        ppci_row = np.cumsum(is_) - 1
        br = lookups.get("branch", {})

        def rows_of(element: str, count: int) -> np.ndarray:
            if element not in br or count == 0:
                return np.full(count, -1, dtype=np.int64)
            f, t = br[element]
            r = np.arange(f, t)
            return np.where(is_[r], ppci_row[r], -1)

        self.line_rows = rows_of("line", len(net.line))
        self.trafo_rows = rows_of("trafo", len(net.trafo))
        line = net.line
        if len(line):
            vn = net.bus.vn_kv.reindex(line.from_bus).to_numpy(float)
            vn_to = net.bus.vn_kv.reindex(line.to_bus).to_numpy(float)
            self.line_i_base_f = self.base_mva / (_SQRT3 * vn)
            self.line_i_base_t = self.base_mva / (_SQRT3 * vn_to)
            self.line_rating_ka = (line.max_i_ka.to_numpy(float) * line.df.to_numpy(float)
                                   * line.parallel.to_numpy(float))
        else:
            self.line_i_base_f = self.line_i_base_t = self.line_rating_ka = np.zeros(0)
        self.loss_rows = np.concatenate([self.line_rows[self.line_rows >= 0],
                                         self.trafo_rows[self.trafo_rows >= 0]])
        self.ybus_ref = sp.csr_matrix(self.ybus[self.ref, :])
        if n <= _DENSE_MAX_BUS:
            # scipy.sparse costs tens of microseconds per product on feeder-sized matrices
            self.yf, self.yt = self.yf.toarray(), self.yt.toarray()
            self.ybus_ref = self.ybus_ref.toarray()
        self.slack_weights = np.zeros(n)
        self.slack_weights[self.ref] = 1.0 / max(len(self.ref), 1)
        self._dense: np.ndarray | None = None
        # one step's injections: a dense product is ~10x cheaper than scipy's on a feeder
        self.inc_dense = self.inc.toarray() if n <= _DENSE_MAX_BUS else None
        # what results_one reads, resolved once
        self.bus_on = np.flatnonzero(self.bus_pos >= 0)
        self.bus_on_pos = self.bus_pos[self.bus_on]
        on = self.line_rows >= 0
        self.line_on = np.flatnonzero(on)
        self.line_on_rows = self.line_rows[on]
        self.line_on_i_base_f = self.line_i_base_f[on]
        self.line_on_i_base_t = self.line_i_base_t[on]
        self.line_on_rating_ka = self.line_rating_ka[on]
        self.trafo_on_rows = self.trafo_rows[self.trafo_rows >= 0]
        self.all_buses_on = bool(self.bus_on.size == self.bus_pos.size
                                 and np.array_equal(self.bus_on, np.arange(self.bus_pos.size)))
        # one product gives both ends' branch currents and the reference buses' currents
        nbr = self.f_bus.size
        if n <= _DENSE_MAX_BUS:
            self._y_all = np.vstack([self.yf, self.yt, self.ybus_ref])
        else:
            self._y_all = sp.vstack([self.yf, self.yt, sp.csr_matrix(self.ybus_ref)]).tocsr()
        self._ref_rows = slice(2 * nbr, 2 * nbr + self.ref.size)
        loss = np.concatenate([self.line_on_rows, self.trafo_on_rows])
        self._loss_i = np.concatenate([loss, nbr + loss])  # rows of i_all
        self._loss_v = np.concatenate([self.f_bus[loss], self.t_bus[loss]])  # their buses
        self._load_f = self.line_on_rows
        self._load_t = nbr + self.line_on_rows
        with np.errstate(divide="ignore", invalid="ignore"):
            self._k_f = self.line_on_i_base_f / self.line_on_rating_ka * 100.0
            self._k_t = self.line_on_i_base_t / self.line_on_rating_ka * 100.0

    def for_run(self) -> YbusModel:
        """A copy that shares the frozen matrices and index arrays (never written after
        construction) but owns its warm-start point ``v_solution``: one snapshot of a pristine
        net serves many independent runs."""
        new = copy.copy(self)
        new.v_solution = self.v_solution.copy()
        return new

    # ------------------------------------------------------------------ injections
    def sbus(self, x: np.ndarray) -> np.ndarray:
        """Complex bus injections (p.u.) for element values ``x`` (:func:`element_values`).

        ``x`` may be one vector or a (steps, n_x) matrix; the result has the matching shape.
        """
        dx = np.asarray(x, dtype=float) - self.x0
        if dx.ndim == 1:
            if self.inc_dense is not None:
                return self.sbus0 + self.inc_dense @ dx
            return self.sbus0 + self.inc @ dx
        return self.sbus0[None, :] + (self.inc @ dx.T).T

    @property
    def ybus_dense(self) -> np.ndarray:
        if self._dense is None:
            self._dense = self.ybus.toarray()
        return self._dense

    # ------------------------------------------------------------------ results
    def results(self, v: np.ndarray, sbus: np.ndarray) -> dict[str, np.ndarray]:
        """Results from ppci voltages ``v`` and the injections ``sbus`` they were solved for.

        ``v`` and ``sbus`` are (steps, buses) arrays. pandapower's formulas: a line's current is
        the larger of its two ends, ``|I| * baseMVA / (sqrt(3) vn_kv)`` in kA, over
        ``max_i_ka * df * parallel``; out-of-service branches report 0 (as ``runpp``).

        Returns
        -------
        dict
            ``vm_pu`` (steps, pandapower buses; NaN out of service), ``va_rad`` (same),
            ``line_loading_pct``, ``line_pl_mw`` (steps, lines), ``trafo_pl_mw`` (steps,
            trafos), ``losses_mw`` and ``slack_p_mw`` (steps,).
        """
        steps = v.shape[0]
        vm = np.full((steps, self.bus_pos.size), np.nan)
        va = np.full((steps, self.bus_pos.size), np.nan)
        ok = self.bus_pos >= 0
        vm[:, ok] = np.abs(v[:, self.bus_pos[ok]])
        va[:, ok] = np.angle(v[:, self.bus_pos[ok]])
        i_f = (self.yf @ v.T).T
        i_t = (self.yt @ v.T).T
        s_loss = np.real(v[:, self.f_bus] * np.conj(i_f) + v[:, self.t_bus] * np.conj(i_t))
        s_loss *= self.base_mva

        def per_element(rows: np.ndarray) -> np.ndarray:
            out = np.zeros((steps, rows.size))
            on = rows >= 0
            out[:, on] = s_loss[:, rows[on]]
            return out

        line_pl = per_element(self.line_rows)
        trafo_pl = per_element(self.trafo_rows)
        loading = np.zeros((steps, self.line_rows.size))
        lr = self.line_rows
        on = lr >= 0
        if np.any(on):
            ia = np.abs(i_f[:, lr[on]]) * self.line_i_base_f[on]
            ib = np.abs(i_t[:, lr[on]]) * self.line_i_base_t[on]
            loading[:, on] = np.maximum(ia, ib) / self.line_rating_ka[on] * 100.0
        s_calc = v[:, self.ref] * np.conj((self.ybus_ref @ v.T).T)
        slack = np.real(s_calc - sbus[:, self.ref]).sum(axis=1) * self.base_mva
        return {"vm_pu": vm, "va_rad": va, "line_loading_pct": loading, "line_pl_mw": line_pl,
                "trafo_pl_mw": trafo_pl,
                "losses_mw": line_pl.sum(axis=1) + trafo_pl.sum(axis=1), "slack_p_mw": slack}


    def results_one(self, v: np.ndarray, sbus: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, float, float]:
        """What a site's step reports, for one solution: :meth:`results`' formulas on the
        vectors ``v`` and ``sbus`` of one step (no (steps, buses) arrays, no angles, no
        per-element losses).

        Returns
        -------
        vm_pu : numpy.ndarray
            Per pandapower bus (NaN out of service).
        line_loading_pct : numpy.ndarray
            Per line (0 out of service).
        losses_mw : float
            Active losses of the in-service lines, then transformers.
        slack_p_mw : float
            Active power from the reference bus(es).
        """
        if self.all_buses_on:
            vm = np.abs(v[self.bus_on_pos])
        else:
            vm = np.full(self.bus_pos.size, np.nan)
            vm[self.bus_on] = np.abs(v[self.bus_on_pos])
        i_all = self._y_all @ v
        # sum over the in-service branches of V_from conj(I_from) + V_to conj(I_to)
        losses = float(np.vdot(i_all[self._loss_i], v[self._loss_v]).real) * self.base_mva
        loading = np.zeros(self.line_rows.size)
        if self.line_on.size:
            i_abs = np.abs(i_all[:self._load_t[-1] + 1])
            loading[self.line_on] = np.maximum(i_abs[self._load_f] * self._k_f,
                                               i_abs[self._load_t] * self._k_t)
        ref = self.ref
        s_ref = np.vdot(i_all[self._ref_rows], v[ref]) - sbus[ref].sum()
        slack = float(s_ref.real) * self.base_mva
        return vm, loading, losses, slack


def newton_batch(ybus: np.ndarray, sbus: np.ndarray, v0: np.ndarray, ref: np.ndarray,
                 pv: np.ndarray, pq: np.ndarray, tol: float, max_iter: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Newton-Raphson (polar, MATPOWER form) on many independent cases at once.

    Parameters
    ----------
    ybus : numpy.ndarray
        Dense (n, n) complex admittance matrix (p.u.).
    sbus : numpy.ndarray
        (steps, n) complex injections (p.u.).
    v0 : numpy.ndarray
        (n,) or (steps, n) start voltages; ``|V|`` at PV and reference buses and the reference
        angle are kept.
    ref, pv, pq : numpy.ndarray
        Bus index sets.
    tol : float
        Convergence when the infinity norm of the mismatch is below ``tol`` (p.u., as
        pandapower's ``tolerance_mva`` with ``sn_mva`` as base).
    max_iter : int
        Iteration limit.

    Returns
    -------
    v : numpy.ndarray
        (steps, n) complex voltages.
    converged : numpy.ndarray of bool
    iterations : numpy.ndarray of int
    """
    s = np.atleast_2d(sbus)
    steps, n = s.shape
    v = np.array(np.broadcast_to(v0, (steps, n)), dtype=complex)
    pvpq = np.concatenate([pv, pq]).astype(np.int64)
    pq = np.asarray(pq, dtype=np.int64)
    npvpq, npq = pvpq.size, pq.size
    conv = np.zeros(steps, dtype=bool)
    iters = np.zeros(steps, dtype=np.int64)
    yb = np.asarray(ybus)
    active = np.arange(steps)

    def mismatch(vv, ss):
        mis = vv * np.conj(vv @ yb.T) - ss
        return np.concatenate([mis[:, pvpq].real, mis[:, pq].imag], axis=1)

    f = mismatch(v, s)
    for it in range(max_iter + 1):
        norm = np.abs(f).max(axis=1) if f.shape[1] else np.zeros(len(active))
        done = norm < tol
        conv[active[done]] = True
        iters[active[done]] = it
        keep = ~done
        active, f = active[keep], f[keep]
        if active.size == 0 or it == max_iter:
            break
        va = v[active]
        ibus = va @ yb.T
        vnorm = va / np.abs(va)
        # dS/dVm = diag(V) conj(Y diag(Vnorm)) + conj(diag(I)) diag(Vnorm)
        ds_dvm = va[:, :, None] * np.conj(yb[None, :, :] * vnorm[:, None, :])
        idx = np.arange(n)
        ds_dvm[:, idx, idx] += np.conj(ibus) * vnorm
        # dS/dVa = 1j diag(V) conj(diag(I) - Y diag(V))
        ds_dva = -1j * va[:, :, None] * np.conj(yb[None, :, :] * va[:, None, :])
        ds_dva[:, idx, idx] += 1j * va * np.conj(ibus)
        jac = np.empty((active.size, npvpq + npq, npvpq + npq))
        jac[:, :npvpq, :npvpq] = ds_dva[:, pvpq[:, None], pvpq[None, :]].real
        jac[:, :npvpq, npvpq:] = ds_dvm[:, pvpq[:, None], pq[None, :]].real
        jac[:, npvpq:, :npvpq] = ds_dva[:, pq[:, None], pvpq[None, :]].imag
        jac[:, npvpq:, npvpq:] = ds_dvm[:, pq[:, None], pq[None, :]].imag
        try:
            dx = -np.linalg.solve(jac, f[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            break
        vm = np.abs(va)
        ang = np.angle(va)
        ang[:, pvpq] += dx[:, :npvpq]
        vm[:, pq] += dx[:, npvpq:]
        v[active] = vm * np.exp(1j * ang)
        f = mismatch(v[active], s[active])
        iters[active] = it + 1
    return v, conv, iters


class FastPowerFlow:
    """Repeated power flows on ``net`` that reuse pandapower's admittance matrix.

    Parameters
    ----------
    net : pandapower.pandapowerNet or None
        The net (the adapter's); injections are read from its element tables. ``None`` for an
        instance that only runs :meth:`solve_x` on a snapshot assigned to :attr:`model`.
    backend : str
        One of :data:`BACKENDS`. ``"lightsim2grid"`` falls back to ``"ybus"`` when lightsim2grid
        cannot be imported; :attr:`backend` is then ``"ybus"`` and :attr:`reason` says why.

    Attributes
    ----------
    requested, backend : str
        The backend asked for and the one in use.
    reason : str
        Why the backend in use differs from the one requested, or why the fast path declined
        the net (empty otherwise).
    n_fast, n_plain : int
        Solves done by the fast path and by plain ``runpp`` (which also rebuilds the snapshot).
    """

    def __init__(self, net: pp.pandapowerNet | None, backend: str = "lightsim2grid") -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend: unknown power-flow backend {backend!r}; valid: "
                             f"{', '.join(BACKENDS)}")
        self.net = net
        self.requested = backend
        self.backend = backend
        self.reason = ""
        if backend == "lightsim2grid":
            ok, why = lightsim2grid_status()
            if not ok:
                self.backend, self.reason = "ybus", f"{why}; using the NumPy Newton-Raphson"
        self.model: YbusModel | None = None
        self.n_fast = 0
        self.n_plain = 0
        self._stale_cols = True
        self._solver = _ls_solver() if self.backend == "lightsim2grid" else None

    def invalidate(self) -> None:
        """Drop the snapshot: the next solve runs plain ``runpp`` and rebuilds it."""
        self.model = None

    # ------------------------------------------------------------------ one solve
    def run(self, init: str, algorithm: str, tolerance_mva: float, max_iteration: int) -> None:
        """One power flow with ``runpp``'s contract: results in ``net.res_*``, or it raises.

        ``init="results"`` uses the snapshot if it is current (warm start from the last
        solution); any other ``init`` runs plain ``runpp`` and rebuilds the snapshot. With the
        fast path only ``res_bus.vm_pu``/``va_degree``, ``res_line.loading_percent``/``pl_mw``,
        ``res_trafo.pl_mw`` and ``res_ext_grid.p_mw`` are written; the other result columns are
        set to NaN so nothing stale can be read.

        Raises
        ------
        pandapower.auxiliary.LoadflowNotConverged
            If Newton-Raphson does not converge (the snapshot is dropped).
        """
        net = self.net
        opts = (algorithm, float(tolerance_mva), int(max_iteration))
        use_fast = (self.backend != "runpp" and algorithm == "nr" and init == "results"
                    and self.model is not None)
        key = topology_key(net, opts) if use_fast or self.backend != "runpp" else None
        if use_fast and key != self.model.key:
            self.model = None
            use_fast = False
        if not use_fast:
            self.model = None
            pp.runpp(net, algorithm=algorithm, init=init, numba=False,
                     tolerance_mva=tolerance_mva, max_iteration=int(max_iteration))
            self.n_plain += 1
            self._stale_cols = True
            if self.backend != "runpp" and algorithm == "nr" and net.converged:
                why = unsupported(net)
                if why is None:
                    model = YbusModel(net, key)
                    if not model.has_isolated:
                        self.model = model
                elif not self.reason:
                    self.reason = f"fast path declined: {why}; using runpp"
            return
        m = self.model
        ok, v, sbus = self.solve_x(element_values(net), tolerance_mva, max_iteration)
        if not ok:
            self.model = None
            net["converged"] = False
            raise LoadflowNotConverged(f"{self.backend} Newton-Raphson did not converge")
        m.v_solution = v
        self._write(m.results(v[None, :], sbus[None, :]))
        net["converged"] = True

    def solve_x(self, x: np.ndarray, tolerance_mva: float, max_iteration: int
                ) -> tuple[bool, np.ndarray, np.ndarray]:
        """One Newton-Raphson on the current snapshot for element values ``x``
        (:func:`element_values` layout), warm-started from the snapshot's last solution; no
        pandas is read or written. Returns ``(converged, v, sbus)`` (ppci voltages and
        injections, p.u.). The snapshot is left as it is: the caller moves the warm-start point
        (``model.v_solution = v``) once it accepts the solution; :meth:`run` does that.

        Raises
        ------
        RuntimeError
            If there is no snapshot.
        """
        m = self.model
        if m is None:
            raise RuntimeError("solve_x needs a current snapshot: run one solve first")
        return self.solve_sbus(m.sbus(x), tolerance_mva, max_iteration)

    def solve_sbus(self, sbus: np.ndarray, tolerance_mva: float, max_iteration: int
                   ) -> tuple[bool, np.ndarray, np.ndarray]:
        """:meth:`solve_x` for complex bus injections ``sbus`` (p.u., ppci order) given
        directly."""
        m = self.model
        if m is None:
            raise RuntimeError("solve_sbus needs a current snapshot: run one solve first")
        v0 = m.v_solution
        if self.backend == "lightsim2grid":
            v = v0.copy()
            ok = self._solver.solve(m.ybus, v, sbus, m.ref, m.slack_weights, m.pv, m.pq,
                                    int(max_iteration), float(tolerance_mva))
            v = np.asarray(self._solver.get_V(), dtype=complex) if ok else v
        else:
            vb, conv, _ = newton_batch(m.ybus_dense, sbus[None, :], v0, m.ref, m.pv, m.pq,
                                       float(tolerance_mva), int(max_iteration))
            ok, v = bool(conv[0]), vb[0]
        ok = bool(ok) and bool(np.isfinite(v).all())
        self.n_fast += ok
        return ok, v, sbus

    _COLUMNS = (("res_bus", "vm_pu", "vm_pu", False), ("res_bus", "va_degree", "va_rad", True),
                ("res_line", "loading_percent", "line_loading_pct", False),
                ("res_line", "pl_mw", "line_pl_mw", False),
                ("res_trafo", "pl_mw", "trafo_pl_mw", False),
                ("res_ext_grid", "p_mw", "slack_p_mw", False))

    def _write(self, r: dict[str, np.ndarray]) -> None:
        net = self.net
        if self._stale_cols:
            # first fast solve after a runpp: blank every result column, then keep writable
            # views of the columns the fast path maintains (runpp replaces the tables)
            for tab in ("res_bus", "res_line", "res_trafo", "res_ext_grid"):
                df = net[tab]
                for c in df.columns:
                    _put(df, c, np.full(len(df), np.nan))
            self._views = [(tab, col, key, deg, _view(net[tab], col))
                           for tab, col, key, deg in self._COLUMNS if len(net[tab])]
            self._stale_cols = False
        for tab, col, key, deg, view in self._views:
            val = r[key][0] if key != "slack_p_mw" else r[key]
            if deg:
                val = np.degrees(val)
            if view is not None:
                view[:] = val
            else:
                _put(net[tab], col, val)

    # ------------------------------------------------------------------ many solves
    def solve_batch(self, x: np.ndarray, tolerance_mva: float, max_iteration: int,
                    chunk: int = 2048, method: str = "numpy") -> BatchResult:
        """Power flows for many injection vectors at once, on the current snapshot.

        Parameters
        ----------
        x : numpy.ndarray
            (steps, n_x) element values (:func:`element_values` layout).
        tolerance_mva, max_iteration : float, int
            As for ``runpp``.
        chunk : int
            Steps solved together by the NumPy Newton-Raphson (bounds memory).
        method : str
            ``"numpy"``: :func:`newton_batch` (all steps of a chunk in one vectorised call);
            ``"lightsim2grid"``: its C++ solver called step by step.

        Every step starts from the snapshot's solution (steps are independent, so the result
        does not depend on their order).

        Raises
        ------
        RuntimeError
            If there is no current snapshot (run one plain solve first).
        """
        m = self.model
        if m is None:
            raise RuntimeError("solve_batch needs a current snapshot: run one solve first")
        x = np.atleast_2d(np.asarray(x, dtype=float))
        steps = x.shape[0]
        sbus = m.sbus(x)
        v = np.empty((steps, m.n_bus), dtype=complex)
        conv = np.zeros(steps, dtype=bool)
        iters = np.zeros(steps, dtype=np.int64)
        if method == "lightsim2grid":
            solver = _ls_solver()
            for k in range(steps):
                vk = m.v_solution.copy()
                ok = solver.solve(m.ybus, vk, sbus[k], m.ref, m.slack_weights, m.pv, m.pq,
                                  int(max_iteration), float(tolerance_mva))
                conv[k] = ok
                iters[k] = solver.get_nb_iter()
                v[k] = solver.get_V() if ok else np.nan
        elif method == "numpy":
            yb = m.ybus_dense
            for a in range(0, steps, chunk):
                b = min(a + chunk, steps)
                v[a:b], conv[a:b], iters[a:b] = newton_batch(
                    yb, sbus[a:b], m.v_solution, m.ref, m.pv, m.pq, float(tolerance_mva),
                    int(max_iteration))
        else:
            raise ValueError(f"method: expected 'numpy' or 'lightsim2grid', got {method!r}")
        v[~conv] = np.nan
        r = m.results(v, sbus)
        return BatchResult(conv, iters, r["vm_pu"], r["line_loading_pct"], r["losses_mw"],
                           r["slack_p_mw"])


def _view(df, col: str) -> np.ndarray | None:
    """A writable float view of a result column, or None if pandas hands out a copy."""
    if col not in df.columns:
        return None
    arr = df[col].to_numpy()
    if arr.dtype == np.float64 and arr.flags.writeable and np.shares_memory(
            arr, df[col].to_numpy()):
        return arr
    return None


def _put(df, col: str, values: np.ndarray) -> None:
    """Write a result column in place when pandas hands out a view, else assign it."""
    if col not in df.columns or len(df) != len(values):
        return
    arr = df[col].to_numpy()
    if arr.dtype == np.float64 and arr.flags.writeable and np.shares_memory(
            arr, df[col].to_numpy()):
        arr[:] = values
    else:
        df[col] = values
