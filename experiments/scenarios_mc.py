"""Monte Carlo scenarios and their reduction (MODELS.md A.10.1, A.10.2, A.10.4 item 3).

* :func:`monte_carlo` draws ``N`` equally likely load/PV scenarios around per-step forecasts with
  the A.10.1 generator (:func:`grids.profiles.realise`).
* :func:`fast_forward_selection` is the Heitsch & Römisch (2003) fast forward selection of A.10.2
  with the standardised Euclidean (Kantorovich) cost and probability redistribution to the nearest
  kept scenario; :func:`reduce` applies it to a :class:`ScenarioSet`.
* :func:`weighted_quantile`, :func:`cvar` and :func:`summary_stats` are the probability-weighted
  metrics of A.10.4 item 3. Values are "higher is better" (SFI), so the worst case is the minimum
  and CVaR is the mean of the **lower** tail.

Ties. The spec breaks ties by the smallest index. Values that are equal in exact arithmetic can
differ by a few ulps in floating point depending on the order of summation, so a candidate counts
as tied with the minimum when it lies within ``TIE_RTOL`` (relative) of it; among tied candidates
the smallest scenario index wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import pdist, squareform

from grids.profiles import realise

__all__ = [
    "TIE_RTOL",
    "ScenarioSet",
    "cost_matrix",
    "cvar",
    "fast_forward_selection",
    "monte_carlo",
    "reduce",
    "summary_stats",
    "weighted_quantile",
]

#: Relative tolerance under which two objective values / costs count as tied (see module doc).
TIE_RTOL = 1e-11
#: Tolerance on "probabilities sum to 1".
PROB_SUM_TOL = 1e-9
#: Tolerance on cumulative probabilities in :func:`weighted_quantile` (absorbs float noise in
#: cumulative sums such as 0.1 + 0.2 + ... that should reach a level exactly).
CUM_TOL = 1e-12


# --------------------------------------------------------------------------------- ScenarioSet
def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class ScenarioSet:
    """A discrete set of load/PV scenarios with probabilities.

    Attributes
    ----------
    load_mw, pv_mw : numpy.ndarray
        Realised load and PV in MW, shape ``(S, n_sites, n_steps)``.
    prob : numpy.ndarray
        Scenario probabilities, shape ``(S,)``, non-negative, summing to 1 (within 1e-9).
    origin : numpy.ndarray of int
        Shape ``(S,)``: index of each scenario in the original (unreduced) set; ``arange(S)`` for
        an unreduced set. Indices are distinct and in ``[0, n_original)``.
    distance : float
        Kantorovich reduction distance ``D_K`` of the reduction that produced this set (in
        standardised units, see :func:`fast_forward_selection`); 0.0 when not reduced.
    n_original : int
        Number of scenarios in the original set (None, the default, means ``S``).

    Arrays are copied and made read-only.
    """

    load_mw: np.ndarray
    pv_mw: np.ndarray
    prob: np.ndarray
    origin: np.ndarray
    distance: float = 0.0
    n_original: int | None = None

    def __post_init__(self) -> None:
        load = _frozen(np.asarray(self.load_mw, dtype=float))
        pv = _frozen(np.asarray(self.pv_mw, dtype=float))
        prob = _frozen(np.asarray(self.prob, dtype=float))
        origin_in = np.asarray(self.origin)
        problems: list[str] = []
        if load.ndim != 3:
            problems.append(f"load_mw must be (S, n_sites, n_steps), got shape {load.shape}")
        if pv.shape != load.shape:
            problems.append(f"pv_mw shape {pv.shape} differs from load_mw shape {load.shape}")
        s = load.shape[0] if load.ndim == 3 else -1
        if self.n_original is None:
            object.__setattr__(self, "n_original", max(s, 0))
        if load.ndim == 3 and s < 1:
            problems.append("a scenario set needs at least one scenario")
        if prob.shape != (s,):
            problems.append(f"prob must have shape ({s},), got {prob.shape}")
        elif not np.all(np.isfinite(prob)) or np.any(prob < 0):
            problems.append("prob must be finite and non-negative")
        elif abs(float(prob.sum()) - 1.0) > PROB_SUM_TOL:
            problems.append(f"prob must sum to 1 within {PROB_SUM_TOL}, sums to {prob.sum()!r}")
        if origin_in.shape != (s,):
            problems.append(f"origin must have shape ({s},), got {origin_in.shape}")
        elif origin_in.size and not np.issubdtype(origin_in.dtype, np.integer):
            problems.append(f"origin must hold integers, got dtype {origin_in.dtype}")
        if not (isinstance(self.n_original, (int, np.integer)) and
                not isinstance(self.n_original, bool)):
            problems.append(f"n_original must be an int, got {self.n_original!r}")
        elif s >= 0 and self.n_original < s:
            problems.append(f"n_original ({self.n_original}) is smaller than the number of "
                            f"scenarios ({s})")
        elif origin_in.shape == (s,) and origin_in.size and \
                np.issubdtype(origin_in.dtype, np.integer):
            if origin_in.min() < 0 or origin_in.max() >= self.n_original:
                problems.append(f"origin indices must lie in [0, {self.n_original})")
            elif np.unique(origin_in).size != origin_in.size:
                problems.append("origin indices must be distinct")
        dist = float(self.distance)
        if not np.isfinite(dist) or dist < 0:
            problems.append(f"distance must be finite and >= 0, got {self.distance!r}")
        if problems:
            raise ValueError("invalid ScenarioSet: " + "; ".join(problems))
        object.__setattr__(self, "load_mw", load)
        object.__setattr__(self, "pv_mw", pv)
        object.__setattr__(self, "prob", prob)
        object.__setattr__(self, "origin", _frozen(origin_in.astype(np.int64)))
        object.__setattr__(self, "distance", dist)
        object.__setattr__(self, "n_original", int(self.n_original))

    @property
    def n_scenarios(self) -> int:
        """Number of scenarios ``S``."""
        return int(self.load_mw.shape[0])

    @property
    def reduced(self) -> bool:
        """True when this set is smaller than the original set."""
        return self.n_scenarios < self.n_original

    def stacked(self) -> np.ndarray:
        """The scenario vectors ``xi`` of A.10.2, shape ``(S, 2 * n_sites * n_steps)``.

        Each row is the scenario's load (site-major, then time) followed by its PV.
        """
        s = self.n_scenarios
        return np.concatenate((self.load_mw.reshape(s, -1), self.pv_mw.reshape(s, -1)), axis=1)

    def mean_profile(self) -> tuple[np.ndarray, np.ndarray]:
        """Probability-weighted mean load and PV, each ``(n_sites, n_steps)``."""
        return (np.tensordot(self.prob, self.load_mw, axes=1),
                np.tensordot(self.prob, self.pv_mw, axes=1))


# --------------------------------------------------------------------------------- generation
def monte_carlo(load_forecast_mw: np.ndarray, pv_forecast_mw: np.ndarray,
                pv_cap_mw: np.ndarray, n_scenarios: int, seed: int,
                sigma_load: float = 0.05, sigma_pv: float = 0.20, rho: float = 0.8,
                corr_load: float = 0.5, corr_pv: float = 0.8) -> ScenarioSet:
    """``n_scenarios`` equally likely A.10.1 scenarios around the forecasts.

    Parameters
    ----------
    load_forecast_mw, pv_forecast_mw : numpy.ndarray
        Per-step forecasts in MW, shape ``(n_sites, n_steps)``.
    pv_cap_mw : numpy.ndarray
        Installed PV capacity per site in MW, shape ``(n_sites,)``.
    n_scenarios : int
        Number of scenarios ``N >= 1``.
    seed : int
        Seed of ``numpy.random.default_rng`` (the only source of randomness).
    sigma_load, sigma_pv, rho, corr_load, corr_pv : float
        Generator parameters of A.10.1 (defaults are the spec's), passed to
        :func:`grids.profiles.realise`.

    Returns
    -------
    ScenarioSet
        ``prob = 1/N`` each, ``origin = arange(N)``, ``distance = 0.0``, ``n_original = N``.
    """
    if isinstance(n_scenarios, bool) or not isinstance(n_scenarios, (int, np.integer)) \
            or n_scenarios < 1:
        raise ValueError(f"n_scenarios must be a positive int, got {n_scenarios!r}")
    n = int(n_scenarios)
    rng = np.random.default_rng(seed)
    load, pv = realise(np.asarray(load_forecast_mw, dtype=float),
                       np.asarray(pv_forecast_mw, dtype=float),
                       np.asarray(pv_cap_mw, dtype=float), rng,
                       sigma_load=sigma_load, sigma_pv=sigma_pv, rho=rho,
                       corr_load=corr_load, corr_pv=corr_pv, n_scenarios=n)
    return ScenarioSet(load_mw=load, pv_mw=pv, prob=np.full(n, 1.0 / n),
                       origin=np.arange(n), distance=0.0, n_original=n)


# ---------------------------------------------------------------------------------- reduction
def cost_matrix(xi: np.ndarray, standardise: bool = True) -> np.ndarray:
    """The A.10.2 cost matrix ``c_ij = ||W (xi_i - xi_j)||_2``, shape ``(N, N)``.

    With ``standardise=True``, ``W = diag(1 / sd_d)`` where ``sd_d`` is the (unweighted,
    population, ``ddof=0``) standard deviation of coordinate ``d`` across the ``N`` scenarios;
    coordinates with zero spread (all scenarios equal, e.g. PV at night) are dropped. If every
    coordinate has zero spread all costs are 0. With ``standardise=False``, ``W = I`` (raw units).

    The diagonal is exactly 0 and the matrix exactly symmetric.
    """
    xi = np.asarray(xi, dtype=float)
    n = xi.shape[0]
    if standardise:
        # Zero spread is tested with max == min (exact): np.std of a constant column can come
        # out as ~1e-17 from rounding in the mean, which would blow the column up, not drop it.
        span = np.ptp(xi, axis=0)
        keep = span > 0
        if not keep.any():
            return np.zeros((n, n))
        # Divide by the range first (x / sd(x) is invariant to it) so that tiny or huge spreads
        # cannot underflow or overflow in the variance. No shift: it would cancel digits.
        x = xi[:, keep] / span[keep]
        x = x / x.std(axis=0)
    else:
        x = xi
    if n < 2:
        return np.zeros((n, n))
    return squareform(pdist(x, metric="euclidean"))


def _first_min(values: np.ndarray) -> int:
    """Position of the smallest value; near-ties (within TIE_RTOL) go to the first position."""
    vmin = values.min()
    return int(np.flatnonzero(values <= vmin + TIE_RTOL * abs(vmin))[0])


def fast_forward_selection(xi: np.ndarray, p: np.ndarray, n_keep: int,
                           standardise: bool = True) -> tuple[np.ndarray, np.ndarray, float]:
    """Fast forward selection with probability redistribution (MODELS.md A.10.2).

    With costs ``c`` from :func:`cost_matrix`, ``d_k = +inf``, ``J = {0..N-1}``, ``S = ()``, repeat
    ``n_keep`` times::

        z_u = sum_{k in J \\ {u}} p_k min(d_k, c_ku)        for u in J
        u*  = argmin_{u in J} z_u                          (ties: smallest index)
        S <- S + (u*),  J <- J \\ {u*},  d_k <- min(d_k, c_{k u*})

    then ``q_j = p_j + sum of p_k over k in J whose nearest selected scenario is j`` (ties: the
    smallest scenario index) and ``D_K = sum_{k in J} p_k min_{j in S} c_kj``.

    Parameters
    ----------
    xi : numpy.ndarray
        Scenario vectors, shape ``(N, D)`` (a 1-D array is read as ``D = 1``).
    p : numpy.ndarray
        Probabilities, shape ``(N,)``, non-negative (they need not sum to 1; ``q`` sums to
        ``p.sum()``).
    n_keep : int
        Number of scenarios to keep, ``1 <= n_keep <= N``.
    standardise : bool
        True (the A.10.2 default): standardised Euclidean cost, so ``D_K`` is in units of
        coordinate standard deviations. False: plain Euclidean cost in the units of ``xi``.

        The spec's unit test (points ``{0, 1, 2, 10, 11}`` as a ``(5, 1)`` array, ``p = 0.2``,
        ``n_keep = 2`` -> ``S = (2, 3)``, ``q = (0.6, 0.4)``, ``D_K = 0.8``) states ``D_K`` in
        **raw** units: ``0.2 * (|0-2| + |1-2| + |11-10|) = 0.8``. Standardisation divides the only
        coordinate by its spread (population sd 4.707...), which leaves the selection and ``q``
        unchanged (a uniform rescaling of all costs) but gives ``D_K = 0.8 / 4.707 = 0.170``.
        So the toy case is checked as stated with ``standardise=False``, and with
        ``standardise=True`` it gives the same ``S``, ``q`` and ``D_K = 0.8 / sd``.

    Returns
    -------
    selected : numpy.ndarray of int
        The kept scenario indices in selection order, shape ``(n_keep,)``.
    q : numpy.ndarray
        Redistributed probabilities aligned with ``selected``, shape ``(n_keep,)``.
    distance : float
        The reduction distance ``D_K`` (0.0 when ``n_keep == N``).

    Notes
    -----
    The full cost matrix is computed once (``O(N^2 D)``, ``O(N^2)`` memory). With
    ``P_ku = p_k c_ku`` (also computed once), ``z_u = sum_k min(p_k d_k, P_ku)``; each term equals
    ``p_k min(d_k, c_ku)`` bit for bit (rounding is monotone, so
    ``fl(p min(a, b)) = min(fl(p a), fl(p b))``). ``z`` is not re-summed each step: only the rows
    ``k`` whose ``d_k`` fell (the first step: all of them; later, the scenarios nearer the new
    pick than to any earlier one, about ``N / |S|``) are subtracted and added back, so the whole
    selection costs about ``N^2 (1 + ln n_keep)`` instead of ``n_keep N^2``. The incremental sums
    can differ from fresh ones by rounding, so every candidate within a bound on that drift of the
    minimum is re-summed from scratch (in the same order as a full recompute) before the tie rule
    picks: the selection is the same as re-summing everything (tested against that on 600 and
    3 x 200 scenarios, and against the literal transcription). No BLAS matrix-vector product on
    purpose: multithreaded OpenBLAS gemv ran about 25x slower in one measurement when the 2 cores
    were shared with other work.

    The ``k = u`` term is not subtracted explicitly: it equals ``p_u min(d_u, c_uu)`` and
    ``c_uu = 0`` exactly, so it is 0. Rows ``k`` already selected are masked out (their ``d_k``
    is 0 anyway), and so are rows with ``p_k = 0`` (avoids ``0 * inf``).
    """
    xi = np.asarray(xi, dtype=float)
    if xi.ndim == 1:
        xi = xi[:, None]
    if xi.ndim != 2:
        raise ValueError(f"xi must be (N, D), got shape {xi.shape}")
    n = xi.shape[0]
    p = np.asarray(p, dtype=float)
    if p.shape != (n,):
        raise ValueError(f"p must have shape ({n},), got {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("p must be finite and non-negative")
    if not np.all(np.isfinite(xi)):
        raise ValueError("xi holds NaN or inf")
    if isinstance(n_keep, bool) or not isinstance(n_keep, (int, np.integer)):
        raise ValueError(f"n_keep must be an int, got {n_keep!r}")
    if not 1 <= n_keep <= n:
        raise ValueError(f"n_keep must be in [1, N={n}], got {n_keep}")
    n_keep = int(n_keep)

    c = cost_matrix(xi, standardise=standardise)
    d = np.full(n, np.inf)
    in_j = np.ones(n, dtype=bool)
    selected = np.empty(n_keep, dtype=np.int64)
    weighted = p[:, None] * c                     # P_ku = p_k c_ku
    active = p > 0
    pd = np.where(active, np.inf, 0.0)            # p_k d_k for k in J with p_k > 0, else 0
    z = weighted[active].sum(axis=0) if active.any() else np.zeros(n)   # min(inf, P_ku) = P_ku
    # z is kept up to date incrementally (only rows whose d_k changed are re-summed), so it can
    # drift from a fresh column sum by rounding; ``slack`` bounds that drift, and every candidate
    # within it of the minimum is re-summed exactly before the tie rule picks one.
    slack = 4.0 * (n_keep + 1) * n * np.finfo(float).eps * float(np.abs(z).max(initial=0.0))
    for i in range(n_keep):
        cand = np.flatnonzero(in_j)
        zc = z[cand]
        vmin = zc.min()
        near = cand[zc <= vmin + TIE_RTOL * abs(vmin) * (1 + 1e-6) + 3 * slack]
        if near.size > 1:
            exact = np.minimum(pd[:, None], weighted[:, near]).sum(axis=0)
            u = int(near[_first_min(exact)])
        else:
            u = int(near[0])
        selected[i] = u
        in_j[u] = False
        np.minimum(d, c[:, u], out=d)
        new_pd = np.where(in_j & active, p * np.where(active, d, 0.0), 0.0)
        rows = np.flatnonzero(new_pd != pd)
        if rows.size:
            wr = weighted[rows]
            z -= (np.minimum(pd[rows, None], wr) - np.minimum(new_pd[rows, None], wr)).sum(axis=0)
        pd = new_pd

    # Redistribution: each unselected k goes to its nearest selected scenario, ties to the smallest
    # scenario index (so search over S in ascending index order).
    order = np.sort(selected)
    pos = np.empty(n, dtype=np.int64)
    pos[selected] = np.arange(n_keep)             # scenario index -> position in `selected`
    q = p[selected].copy()
    unsel = np.flatnonzero(in_j)
    if unsel.size:
        sub = c[np.ix_(unsel, order)]
        dmin = sub.min(axis=1, keepdims=True)
        nearest = order[np.argmax(sub <= dmin + TIE_RTOL * dmin, axis=1)]
        q += np.bincount(pos[nearest], weights=p[unsel], minlength=n_keep)
    distance = float(np.dot(p[unsel], d[unsel])) if unsel.size else 0.0
    return selected, q, distance


def reduce(scenarios: ScenarioSet, n_keep: int) -> ScenarioSet:
    """Reduce ``scenarios`` to ``n_keep`` by standardised fast forward selection (A.10.2).

    Each scenario's load and PV are stacked into one vector (:meth:`ScenarioSet.stacked`).
    The result lists the kept scenarios in selection order with ``prob = q``, ``origin`` =
    the kept scenarios' indices in the **original** set (so reducing a reduced set still points
    at the original draws), ``distance = D_K`` of this reduction (standardised units) and the
    same ``n_original``. If ``n_keep >= S`` the set is returned unchanged.

    Raises
    ------
    ValueError
        If ``n_keep`` is not an int or is smaller than 1.
    """
    if isinstance(n_keep, bool) or not isinstance(n_keep, (int, np.integer)):
        raise ValueError(f"n_keep must be an int, got {n_keep!r}")
    if n_keep < 1:
        raise ValueError(f"n_keep must be >= 1 (the number of scenarios to keep), got {n_keep}")
    if n_keep >= scenarios.n_scenarios:
        return scenarios
    selected, q, dist = fast_forward_selection(scenarios.stacked(), scenarios.prob, int(n_keep),
                                               standardise=True)
    return ScenarioSet(load_mw=scenarios.load_mw[selected], pv_mw=scenarios.pv_mw[selected],
                       prob=q / q.sum(), origin=scenarios.origin[selected], distance=dist,
                       n_original=scenarios.n_original)


# ------------------------------------------------------------------------------------ metrics
def _check_dist(values: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validated 1-D values and probabilities sorted by value, zero-mass atoms dropped."""
    v = np.asarray(values, dtype=float).ravel()
    w = np.asarray(prob, dtype=float).ravel()
    if v.shape != w.shape or v.size == 0:
        raise ValueError(f"values and prob must be non-empty and of equal length, got "
                         f"{v.shape} and {w.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError("values hold NaN or inf")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("prob must be finite and non-negative")
    if abs(float(w.sum()) - 1.0) > PROB_SUM_TOL:
        raise ValueError(f"prob must sum to 1 within {PROB_SUM_TOL}, sums to {w.sum()!r}")
    keep = w > 0
    v, w = v[keep], w[keep]
    order = np.argsort(v, kind="stable")
    return v[order], w[order]


def weighted_quantile(values: np.ndarray, prob: np.ndarray, q: float) -> float:
    """The smallest value whose cumulative probability is ``>= q`` (A.10.4 item 3).

    Cumulative probabilities are compared with a tolerance of ``CUM_TOL`` (1e-12) so that, e.g.,
    ten atoms of 0.1 reach 0.3 at the third atom despite float rounding. Atoms with zero
    probability are ignored. ``q`` must be in ``[0, 1]``; ``q = 0`` gives the minimum.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    v, w = _check_dist(values, prob)
    cum = np.cumsum(w)
    idx = int(np.searchsorted(cum, q - CUM_TOL, side="left"))
    return float(v[min(idx, v.size - 1)])


def cvar(values: np.ndarray, prob: np.ndarray, alpha: float = 0.10) -> float:
    """Lower-tail CVaR: the probability-weighted mean of the worst (smallest) ``alpha`` mass.

    ``CVaR_alpha = (1/alpha) * integral_0^alpha F^{-1}(u) du``: atoms are taken from the smallest
    value upwards until the mass ``alpha`` is used; the atom straddling the boundary contributes
    only the part of its mass below ``alpha``. ``alpha`` must be in ``(0, 1]``; ``alpha = 1`` is the
    expectation.
    """
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    v, w = _check_dist(values, prob)
    before = np.concatenate(([0.0], np.cumsum(w)[:-1]))
    mass = np.clip(np.minimum(w, alpha - before), 0.0, None)
    return float(np.dot(mass, v) / mass.sum())


def summary_stats(values: np.ndarray, prob: np.ndarray) -> dict[str, float]:
    """Probability-weighted summary of scenario outcomes (higher is better, e.g. SFI).

    Returns
    -------
    dict
        ``expectation`` (sum of prob x value), ``worst`` (minimum over scenarios with positive
        probability), ``p10``, ``p50``, ``p90`` (:func:`weighted_quantile`) and ``cvar10``
        (:func:`cvar` with ``alpha = 0.10``, the lower tail).
    """
    v, w = _check_dist(values, prob)
    return {
        "expectation": float(np.dot(w, v)),
        "worst": float(v[0]),
        "p10": weighted_quantile(v, w, 0.10),
        "p50": weighted_quantile(v, w, 0.50),
        "p90": weighted_quantile(v, w, 0.90),
        "cvar10": cvar(v, w, 0.10),
    }
