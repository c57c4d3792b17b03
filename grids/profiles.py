"""Load and PV profiles: the synthetic A.11 shapes, per-step averaging and A.10.1 noise.

A :class:`Profile` is a piecewise-constant time series (one value per ``resolution_min`` minutes)
that repeats with its own length when that length is a whole number of days. ``per_step`` turns
it into one value per engine step by averaging over each step, so a 15-min step holds the hourly
value and a 120-min step the mean of two hours.

:func:`realise` draws the Monte Carlo realisations of MODELS.md A.10.1 around per-step forecasts;
:func:`realise_per_step` draws them on a fixed time grid (one noise value per hour by default), so
that the same seed gives the same realised load and PV at every step length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from sim.errors import ScenarioError
from sim.units import MIN_PER_DAY

__all__ = ["SHAPES", "Profile", "realise", "realise_per_step"]

#: MODELS.md A.11 hourly shapes (hours 1..24). Loads are p.u. of the peak load, ``"solar"`` is p.u.
#: of the installed PV capacity. DN1 is industrial, DN2 residential, DN3 commercial.
SHAPES: dict[str, tuple[float, ...]] = {
    "industrial": (
        0.60, 0.58, 0.57, 0.57, 0.58, 0.62, 0.75, 0.90, 0.97, 1.00, 1.00, 0.98,
        0.95, 0.98, 1.00, 0.98, 0.92, 0.85, 0.78, 0.72, 0.68, 0.65, 0.63, 0.61,
    ),
    "residential": (
        0.45, 0.42, 0.40, 0.40, 0.42, 0.50, 0.65, 0.75, 0.70, 0.62, 0.58, 0.57,
        0.56, 0.55, 0.57, 0.62, 0.72, 0.88, 0.98, 1.00, 0.95, 0.82, 0.65, 0.52,
    ),
    "commercial": (
        0.40, 0.38, 0.37, 0.37, 0.38, 0.42, 0.50, 0.65, 0.82, 0.93, 0.98, 1.00,
        1.00, 0.99, 0.97, 0.93, 0.85, 0.72, 0.62, 0.55, 0.50, 0.46, 0.43, 0.41,
    ),
    "solar": (
        0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.05, 0.15, 0.32, 0.50, 0.65, 0.75,
        0.78, 0.74, 0.64, 0.48, 0.30, 0.12, 0.02, 0.0, 0.0, 0.0, 0.0, 0.0,
    ),
}


@dataclass(frozen=True)
class Profile:
    """A piecewise-constant time series starting at minute 0 of the simulation.

    Parameters
    ----------
    values : tuple of float
        One value per interval of ``resolution_min`` minutes (dimensionless p.u. or MW; the
        caller scales it).
    resolution_min : int
        Length of each interval in minutes (60 for the A.11 hourly shapes).
    """

    values: tuple[float, ...]
    resolution_min: int = 60

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(float(v) for v in self.values))

    @classmethod
    def from_shape(cls, shape: str) -> Profile:
        """The hourly A.11 profile called ``shape`` (a key of :data:`SHAPES`)."""
        if shape not in SHAPES:
            raise ScenarioError(f"profile.shape: unknown shape {shape!r}; valid: {sorted(SHAPES)}")
        return cls(SHAPES[shape], 60)

    @property
    def length_min(self) -> int:
        """Minutes covered by one pass through the values."""
        return len(self.values) * int(self.resolution_min)

    def problems(self, step_min: int, horizon_min: int, path: str = "profile") -> list[str]:
        """Everything that stops :meth:`per_step` from working, as ``"path: message"`` strings."""
        out: list[str] = []
        if len(self.values) == 0:
            out.append(f"{path}.values: profile is empty")
        elif not np.all(np.isfinite(self.values)):
            out.append(f"{path}.values: profile holds NaN or inf")
        res = self.resolution_min
        if not isinstance(res, (int, np.integer)) or isinstance(res, bool) or res <= 0:
            out.append(f"{path}.resolution_min: must be a positive whole number of minutes, "
                       f"got {res!r}")
        if not isinstance(step_min, (int, np.integer)) or step_min <= 0:
            out.append(f"{path}: step_min must be a positive whole number of minutes, "
                       f"got {step_min!r}")
        if not isinstance(horizon_min, (int, np.integer)) or horizon_min <= 0:
            out.append(f"{path}: horizon_min must be a positive whole number of minutes, "
                       f"got {horizon_min!r}")
        if out:
            return out
        if horizon_min % step_min:
            out.append(f"{path}: horizon {horizon_min} min is not a whole number of "
                       f"{step_min}-min steps")
        length = self.length_min
        if length % MIN_PER_DAY and length < horizon_min:
            out.append(f"{path}: profile covers {len(self.values)} x {res} = {length} min, "
                       f"which is neither a whole number of days (so it cannot repeat daily) "
                       f"nor at least the horizon of {horizon_min} min")
        return out

    def per_step(self, step_min: int, horizon_min: int) -> np.ndarray:
        """Mean value over each step of the horizon.

        Parameters
        ----------
        step_min : int
            Step length in minutes.
        horizon_min : int
            Simulated horizon in minutes; must be a whole number of steps.

        Returns
        -------
        numpy.ndarray
            Shape ``(horizon_min // step_min,)``; element ``k`` is the mean of the profile over
            ``[k * step_min, (k + 1) * step_min)`` minutes. A profile whose length is a whole
            number of days repeats with that period.

        Raises
        ------
        sim.errors.ScenarioError
            If the profile cannot cover the horizon or the step does not divide the horizon.
        """
        problems = self.problems(step_min, horizon_min)
        if problems:
            raise ScenarioError(problems)
        step_min, horizon_min = int(step_min), int(horizon_min)
        vals = np.asarray(self.values, dtype=float)
        # Integral of the step function at every interval boundary, then evaluate it at the step
        # boundaries (whole minutes): exact for any step/resolution combination.
        res = int(self.resolution_min)
        length = self.length_min
        cum = np.concatenate(([0.0], np.cumsum(vals) * res))  # integral at j*res minutes

        def integral(t_min: np.ndarray) -> np.ndarray:
            periods, rem = np.divmod(t_min, length)
            j, frac = np.divmod(rem, res)
            return periods * cum[-1] + cum[j] + vals[np.minimum(j, len(vals) - 1)] * frac

        edges = np.arange(0, horizon_min + 1, step_min, dtype=np.int64)
        return np.diff(integral(edges)) / step_min


def realise(load_mw: np.ndarray, pv_mw: np.ndarray, pv_cap_mw: np.ndarray,
            rng: np.random.Generator, sigma_load: float = 0.05, sigma_pv: float = 0.20,
            rho: float = 0.8, corr_load: float = 0.5, corr_pv: float = 0.8,
            n_scenarios: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo realisations of load and PV around their forecasts (MODELS.md A.10.1).

    ``L = Lbar (1 + sigma_load xi_L)`` and ``PV = clip(PVbar (1 + sigma_pv xi_PV), 0, cap)``, where
    each ``xi`` is a unit-variance AR(1) process in time (coefficient ``rho``) whose innovations are
    equicorrelated across sites. The start ``xi_0`` is drawn from the stationary law (unit
    variance, the same cross-site correlation as the innovations), then
    ``xi_t = rho xi_{t-1} + sqrt(1 - rho^2) e_t``; so ``xi`` is stationary with unit variance and
    cross-site correlation ``corr`` at every step. PV is zero wherever its forecast is zero.

    Parameters
    ----------
    load_mw, pv_mw : numpy.ndarray
        Forecasts in MW, shape ``(n_sites, n_steps)``.
    pv_cap_mw : numpy.ndarray
        Installed PV capacity per site in MW, shape ``(n_sites,)``.
    rng : numpy.random.Generator
        The run's random generator (the only source of randomness).
    sigma_load, sigma_pv : float
        Relative standard deviations of load and PV (dimensionless).
    rho : float
        AR(1) coefficient per step, ``-1 < rho < 1``.
    corr_load, corr_pv : float
        Cross-site correlation of the innovations, in ``[0, 1]``.
    n_scenarios : int or None
        None: one realisation shaped like the inputs. An int ``S``: arrays of shape
        ``(S, n_sites, n_steps)``.

    Returns
    -------
    (load_mw, pv_mw) : tuple of numpy.ndarray
        Realised load and PV in MW.
    """
    load_mw = np.asarray(load_mw, dtype=float)
    pv_mw = np.asarray(pv_mw, dtype=float)
    pv_cap_mw = np.asarray(pv_cap_mw, dtype=float)
    if load_mw.ndim != 2 or pv_mw.shape != load_mw.shape:
        raise ValueError(f"load_mw and pv_mw must both be (n_sites, n_steps), got "
                         f"{load_mw.shape} and {pv_mw.shape}")
    n_sites, n_steps = load_mw.shape
    if pv_cap_mw.shape != (n_sites,):
        raise ValueError(f"pv_cap_mw must have shape ({n_sites},), got {pv_cap_mw.shape}")
    if not -1.0 < rho < 1.0:
        raise ValueError(f"rho must be in (-1, 1), got {rho}")
    for name, c in (("corr_load", corr_load), ("corr_pv", corr_pv)):
        if not 0.0 <= c <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {c}")
    if n_scenarios is not None and (int(n_scenarios) != n_scenarios or n_scenarios < 1):
        raise ValueError(f"n_scenarios must be a positive int or None, got {n_scenarios}")
    s = 1 if n_scenarios is None else int(n_scenarios)

    xi_load = _ar1_equicorrelated(rng, s, n_sites, n_steps, rho, corr_load)
    xi_pv = _ar1_equicorrelated(rng, s, n_sites, n_steps, rho, corr_pv)

    load = load_mw[None] * (1.0 + sigma_load * xi_load)
    pv = np.clip(pv_mw[None] * (1.0 + sigma_pv * xi_pv), 0.0, pv_cap_mw[None, :, None])
    pv = np.where(pv_mw[None] == 0.0, 0.0, pv)
    if n_scenarios is None:
        return load[0], pv[0]
    return load, pv


def realise_per_step(load_profiles: list[Profile], pv_profiles: list[Profile],
                     peak_load_mw: np.ndarray, pv_cap_mw: np.ndarray, step_min: int,
                     horizon_min: int, rng: np.random.Generator, sigma_load: float = 0.05,
                     sigma_pv: float = 0.20, rho_per_h: float = 0.8, corr_load: float = 0.5,
                     corr_pv: float = 0.8, noise_min: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """One realisation (MODELS.md A.10.1) per site and engine step, independent of the step.

    The noise ``xi`` is one value per ``noise_min`` minutes (hour-to-hour AR(1) coefficient
    ``rho_per_h``), held within each interval; actual = forecast x (1 + sigma xi) is formed on the
    common grid of the profiles, the noise and the step, then averaged over each step like
    :meth:`Profile.per_step`. So a 5-min and a 60-min run of the same seed see the same
    realised load and PV (the 5-min values are the hourly ones held), and the energy of every
    hour is the same. With ``step_min == noise_min == 60`` and hourly profiles this is exactly
    :func:`realise` on the per-step forecasts (same draws).

    Returns
    -------
    (load_mw, pv_mw) : tuple of numpy.ndarray
        Shape ``(n_sites, horizon_min // step_min)``.
    """
    step_min, horizon_min, noise_min = int(step_min), int(horizon_min), int(noise_min)
    g = math.gcd(step_min, noise_min, *(int(p.resolution_min) for p in load_profiles),
                 *(int(p.resolution_min) for p in pv_profiles))
    load = np.array([p.per_step(g, horizon_min) for p in load_profiles]) * np.asarray(
        peak_load_mw, dtype=float)[:, None]
    cap = np.asarray(pv_cap_mw, dtype=float)
    pv = np.array([p.per_step(g, horizon_min) for p in pv_profiles]) * cap[:, None]
    n_sites, n_fine = load.shape
    n_noise = -(-horizon_min // noise_min)
    rho = float(rho_per_h) ** (noise_min / 60.0)
    xi_load = _ar1_equicorrelated(rng, 1, n_sites, n_noise, rho, corr_load)[0]
    xi_pv = _ar1_equicorrelated(rng, 1, n_sites, n_noise, rho, corr_pv)[0]
    at = (np.arange(n_fine) * g) // noise_min  # noise interval of every fine slot
    load_act = load * (1.0 + sigma_load * xi_load[:, at])
    pv_act = np.clip(pv * (1.0 + sigma_pv * xi_pv[:, at]), 0.0, cap[:, None])
    pv_act = np.where(pv == 0.0, 0.0, pv_act)
    k = step_min // g
    n_steps = horizon_min // step_min
    return (load_act.reshape(n_sites, n_steps, k).mean(axis=2),
            pv_act.reshape(n_sites, n_steps, k).mean(axis=2))


def _ar1_equicorrelated(rng: np.random.Generator, n_scen: int, n_sites: int, n_steps: int,
                        rho: float, corr: float) -> np.ndarray:
    """Unit-variance stationary AR(1) paths, shape ``(n_scen, n_sites, n_steps)``.

    Equicorrelated innovations come from one common factor per (scenario, step) and one
    idiosyncratic factor per site: ``e = sqrt(corr) z_common + sqrt(1 - corr) z_site``.
    """
    z = rng.standard_normal((n_scen, n_sites + 1, n_steps))
    e = np.sqrt(corr) * z[:, :1, :] + np.sqrt(1.0 - corr) * z[:, 1:, :]
    c = np.sqrt(1.0 - rho * rho)
    # xi_0 = e_0 (stationary start), xi_t = rho xi_{t-1} + c e_t: one IIR filter along time.
    x = c * e
    x[..., 0] = e[..., 0]
    return lfilter([1.0], [1.0, -rho], x, axis=-1)
