"""Dual-dimension dynamic weights of seed 000 (MODELS.md A.6), as parameters of the MILP.

The weights are computed *before* the MESS optimisation, from exogenous data and a no-MESS
baseline solve, so the SFI objective stays linear:

1. net load ``NL = L - PV`` and ``NL+ = max(0, NL)``;
2. network importance ``NI_n = sum_t NL+_n / sum_k sum_t NL+_k``;
3. the baseline A0 (no MESS, equal weights) gives the stationary upward flexibility ``F_up^A``;
4. the deficit ``FD_n,t = max(0, kappa NL+ - F_up^A) / (kappa NL+)`` (0 where ``NL+ = 0``, and
   where the shortfall is within ``DEFICIT_TOL_MW``);
5. eq. (1): ``w = (NI + eps)^alpha (FD + eps)^beta / sum_k (...)``. An hour without any deficit
   falls back to importance-proportional weights, which eq. (1) already gives through ``eps``.

``kappa`` decides whether the vehicles move at all: with a low requirement no DN has a deficit and
the weights follow importance only (E.A1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: A shortfall at most this large (MW) is no deficit. It is HiGHS's primal feasibility tolerance
#: (1e-7, the default of ``primal_feasibility_tolerance``): the baseline's ``F_up^A`` comes out of
#: a solve that cannot tell apart values closer than that, so a requirement covered to within it
#: (e.g. a rounding residue of 1e-17 MW, which turned one hour of a DN into a deficit hour with
#: one solver version and not with another) is covered.
DEFICIT_TOL_MW = 1e-7


@dataclass(frozen=True)
class Weights:
    """Weights ``w`` (S, N, T) with the ingredients they came from (for reports and figures)."""

    w: np.ndarray
    ni: np.ndarray  # (N,)
    fd: np.ndarray  # (S, N, T)
    kind: str  # "dynamic" | "equal"
    kappa: float
    alpha: float
    beta: float
    eps: float

    @property
    def expected(self) -> np.ndarray:
        """Scenario-independent weights (N, T) (all scenarios share them by construction)."""
        return self.w[0]


def importance(load_mw: np.ndarray, pv_mw: np.ndarray, prob: np.ndarray | None = None
               ) -> np.ndarray:
    """``NI_n`` from the (expected) positive net load, daily energy basis. Arrays (S, N, T)."""
    nl_pos = np.maximum(load_mw - pv_mw, 0.0)
    if prob is None:
        prob = np.full(nl_pos.shape[0], 1.0 / nl_pos.shape[0])
    energy = np.einsum("s,snt->n", prob, nl_pos)
    total = energy.sum()
    return energy / total if total > 0 else np.full(len(energy), 1.0 / len(energy))


def deficit(load_mw: np.ndarray, pv_mw: np.ndarray, f_up_baseline_mw: np.ndarray,
            kappa: float) -> np.ndarray:
    """``FD`` (S, N, T) in [0, 1]: shortfall of baseline upward flexibility vs ``kappa NL+``."""
    req = kappa * np.maximum(load_mw - pv_mw, 0.0)
    short = np.maximum(0.0, req - f_up_baseline_mw)
    short = np.where(short > DEFICIT_TOL_MW, short, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        fd = np.where(req > 0, short / np.where(req > 0, req, 1.0), 0.0)
    return np.clip(fd, 0.0, 1.0)


def eq1(ni: np.ndarray, fd: np.ndarray, alpha: float = 1.0, beta: float = 1.0,
        eps: float = 1e-3) -> np.ndarray:
    """Eq. (1) for ``fd`` of shape (..., N, T); weights sum to 1 over sites for every hour."""
    num = (ni[:, None] + eps) ** alpha * (fd + eps) ** beta
    return num / num.sum(axis=-2, keepdims=True)


def dynamic_weights(load_mw: np.ndarray, pv_mw: np.ndarray, prob: np.ndarray,
                    f_up_baseline_mw: np.ndarray, kappa: float = 0.5, alpha: float = 1.0,
                    beta: float = 1.0, eps: float = 1e-3) -> Weights:
    """Scenario-expected deficits (the A.6 stochastic default); deterministic when S = 1."""
    ni = importance(load_mw, pv_mw, prob)
    fd_s = deficit(load_mw, pv_mw, f_up_baseline_mw, kappa)
    fd = np.einsum("s,snt->nt", prob, fd_s)
    w = eq1(ni, fd, alpha, beta, eps)
    S = load_mw.shape[0]
    return Weights(np.broadcast_to(w, (S, *w.shape)).copy(), ni, fd_s, "dynamic", kappa, alpha,
                   beta, eps)


def equal_weights(shape: tuple[int, int, int], kappa: float = 0.5) -> Weights:
    """The equal-weight benchmark ``w = 1/N``."""
    S, N, T = shape
    return Weights(np.full((S, N, T), 1.0 / N), np.full(N, 1.0 / N), np.zeros((S, N, T)),
                   "equal", kappa, 0.0, 0.0, 0.0)
