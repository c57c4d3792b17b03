"""Battery degradation models for the stepwise vehicle update and the DP router (MODELS.md part C).

Four ageing models, one interface (:class:`agents.battery.DegradationModel` plus a DP cost):

* ``nmc`` - Schmalstieg J., Kaebitz S., Ecker M., Sauer D.U., "A holistic aging model for
  Li(NiMnCo)O2 based 18650 lithium-ion batteries", *J. Power Sources* 257:325-334, 2014
  (calendar ``alpha_cap t^0.75`` + cycle ``beta_cap Q^0.5``; MODELS.md C.2).
* ``lfp`` - cycle: Wang J., Liu P., Hicks-Garner J., et al., "Cycle-life model for
  graphite-LiFePO4 cells", *J. Power Sources* 196:3942-3948, 2011 (MODELS.md C.3); calendar:
  Naumann M., Schimpe M., Keil P., Hesse H.C., Jossen A., "Analysis and modeling of calendar aging
  of a commercial LiFePO4/graphite cell", *J. Energy Storage* 17:153-169, 2018. Optional same-cell
  cycle model (``cycle_model="naumann2020"``): Naumann M., Spingler F.B., Jossen A., *J. Power
  Sources* 451:227666, 2020.
* ``generalised`` - Xu B., Oudalov A., Ulbig A., Andersson G., Kirschen D.S., "Modeling of
  lithium-ion battery degradation for cell life assessment", *IEEE Trans. Smart Grid*
  9(2):1131-1140, 2018 (stress factors, SEI nonlinearity; MODELS.md C.4.1). The per-transition
  cycle cost follows Xu B., Zhao J., Zheng T., Litvinov E., Kirschen D.S., *IEEE Trans. Power
  Syst.* 33(2):2248-2259, 2018 (marginal cycle-depth cost).
* ``dod_curve`` - the cycle-life curve ``N(d) = b0 d^-b1 exp(b2 (1-d))`` of the Co-OPT_MESS
  repository's "Model 3" (MODELS.md C.4.2, [S-repo]; source of the parameters not stated).
* ``none`` - no ageing (:class:`ZeroDegradation`, a :class:`agents.battery.NoDegradation` with a
  zero DP cost). It takes the parameters every model shares (:data:`SHARED_PARAMS`), so one set
  of shared settings builds any model of the list.

:func:`make_degradation` builds a model by name; :func:`degradation_problems` lists, without
raising, every problem of a name and its parameters (unknown name or parameter, wrong kind of
value, value out of range), each with the parameter it is about, for scenario checks.

Rainflow counting (ASTM E1049-85, three-point method; MODELS.md C.4.3) is in
:func:`rainflow_cycles` for ex-post evaluation of a SOC trace.

**One state, two uses.** Every model keeps *levelised damage fractions* ``D_cal`` and ``D_cyc``
(MODELS.md C.1 (L)): the fraction of the life to end of life (EOL) used so far under the stress
that applied when it was used. For a power law ``Q = k x^p`` with EOL loss ``q_eol``,
``x_EOL = (q_eol/k)^(1/p)`` and the capacity loss is ``Q = q_eol D^p``. This is *exactly* the
virtual-state method of C.1 (NREL BLAST-Lite, SimSES): with ``D0 = (Q0/q_eol)^(1/p)``,
``k (x_virt + dx)^p = q_eol (D0 + dx/x_EOL)^p`` because ``x_virt = D0 x_EOL``. So the stepwise SOH
update is the published nonlinear model, and the DP cost of a transition is ``C_rep dD`` with the
same ``dD`` (C.5). The test suite checks the identity.

**Cycle depth, online.** Depth-dependent cycle models (NMC's ``DeltaDOD``, Xu, DoD curve,
Naumann 2020) need the depth of the cycle a SOC change belongs to, which rainflow only knows once
the cycle closes. :class:`OnlineRainflow` runs the ASTM stack on the SOC as it arrives and charges
each *discharge* increment ``Phi(ref, s_b) - Phi(ref, s_a)``, where ``ref`` is the stack point the
current half-cycle starts from (the "exact half-cycle" reference of MODELS.md D.5.3, with the
reference jumping back to an older top when an inner cycle closes). Charging costs nothing (C.5:
full-cycle damage is attributed to discharge). Each increment is >= 0, so damage never decreases,
and the sum telescopes to::

    D_cyc(stepwise) = sum_full_cycles Phi(top, bottom) + sum_falling_half_cycles Phi(top, bottom)

while the ex-post rainflow value is ``sum_i n_i Phi(top_i, bottom_i)`` with ``n_i`` = 1 or 0.5.
The two differ only in the residual half cycles: stepwise counts a falling half cycle fully and a
rising one not at all. ``tests/test_degradation.py`` asserts this identity on random traces.

Units: SOC as fractions, temperature in degC at the interface (K inside the formulas), time in
minutes on the clock and hours in the DP cost, money in USD.
"""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from agents.battery import NoDegradation

R_GAS_J_PER_MOL_K = 8.314  # Wang et al. 2011 use R = 8.314 J/(mol K)
R_GAS_NAUMANN = 8.3144598  # Naumann et al. 2018 (MODELS.md C.3)
T_REF_K = 298.15
ZERO_C_K = 273.15

# ---------------------------------------------------------------- common defaults (C.1) [P]
SOH_EOL_FRAC = 0.8  # end of life at 80 % capacity, dQ_EOL = 0.2 (C.1 [P])
C_PACK_USD_PER_KWH = 150.0  # replacement cost per kWh of pack (C.1 [P])
E_NOM_KWH = 350.0  # the Co-OPT MESS size (D.1 [S-repo]); C_rep = 52,500 USD
TEMP_C_DEFAULT = 25.0  # 298.15 K (C.1 [P]; the repository uses 35 degC)
SOC_REF_TOP_FRAC = 0.90  # reference top for DP depths = charging target (D.5.3 [P])
C_RATE_DEFAULT_PER_H = 0.5  # C-rate used when the power is unknown (traction jumps, ex-post) [P]
SOC_GAP_TOL = 1e-12  # SOC jump between steps treated as a traction segment when larger

# ---------------------------------------------------------------- NMC (C.2) [S-published]
NMC_Q_CELL_AH = 2.05  # Sanyo UR18650E nominal capacity (Schmalstieg 2014; C.2 test vector)
NMC_OCV_SOC = np.linspace(0.0, 1.0, 11)
# Cell OCV table (V) from C.2, derived from BLAST-Lite (Ecker et al. 2014, Schmalstieg Fig. 1).
NMC_OCV_V = np.array([3.331, 3.491, 3.581, 3.627, 3.655, 3.697, 3.775, 3.869, 3.965, 4.073, 4.162])
NMC_CAL_EXP = 0.75  # t^0.75, t in days
NMC_CYC_EXP = 0.5  # Q^0.5, Q in Ah (charge + discharge)

# ---------------------------------------------------------------- LFP (C.3) [S-published]
LFP_Q_CELL_AH = 2.3  # A123 ANR26650M1 as used in SimSES (Wang 2011)
WANG_C = np.array([0.5, 2.0, 6.0, 10.0])  # C-rate, 1/h
WANG_B = np.array([31630.0, 21681.0, 12934.0, 15512.0])  # pre-exponential factor, %/Ah^0.55
WANG_EA_J_PER_MOL = 31700.0  # activation energy, J/mol
WANG_EA_C_J_PER_MOL = 370.3  # C-rate correction of the activation energy, J/mol per (1/h)
WANG_Z = 0.55  # Ah exponent
NAUMANN_KT_REF = 1.2571e-5  # 1/sqrt(s) at 298.15 K
NAUMANN_EA_J_PER_MOL = 17126.0
NAUMANN_CAL_EXP = 0.5  # sqrt(t), t in s

# ---------------------------------------------------------------- Xu 2018 (C.4.1) [S-published]
XU_K_D1 = 1.40e5
XU_K_D2 = -5.01e-1
XU_K_D3 = -1.23e5
XU_K_SIGMA = 1.04
XU_SIGMA_REF = 0.5
XU_K_T = 6.93e-2  # 1/K
XU_T_REF_K = 298.15
XU_K_TIME_PER_S = 4.14e-10
XU_ALPHA_SEI = 5.75e-2
XU_BETA_SEI = 121.0

# ---------------------------------------------------------------- DoD curve (C.4.2) [S-repo]
DOD_BETA0 = 4901.0
DOD_BETA1 = 1.98
DOD_BETA2 = 0.016


def _k(temp_c: float) -> float:
    return float(temp_c) + ZERO_C_K


def _clip01(x):
    return np.clip(x, 0.0, 1.0)


# ================================================================ published equations
def nmc_ocv_v(soc_frac):
    """Cell open-circuit voltage (V) at ``soc_frac`` (linear interpolation of the C.2 table)."""
    return np.interp(soc_frac, NMC_OCV_SOC, NMC_OCV_V)


def nmc_alpha_cap(v, temp_k):
    """Schmalstieg 2014 calendar factor ``(7.543 V - 23.75) 1e6 exp(-6976/T)`` in day^-0.75.

    Clipped at 0 (the fit is negative below 3.149 V, outside the OCV table's range).
    """
    return np.maximum((7.543 * np.asarray(v) - 23.75) * 1e6 * np.exp(-6976.0 / temp_k), 0.0)


def nmc_beta_cap(v_mean, dod_frac):
    """Schmalstieg 2014 cycle factor (Ah^-0.5): ``7.348e-3 (V-3.667)^2 + 7.6e-4 + 4.081e-3 DOD``."""
    return 7.348e-3 * (np.asarray(v_mean) - 3.667) ** 2 + 7.600e-4 + 4.081e-3 * dod_frac


def wang_b(c_rate_per_h):
    """Wang 2011 pre-exponential factor B(c), linear in c, with c clamped to [0.5, 10]."""
    return np.interp(np.clip(c_rate_per_h, WANG_C[0], WANG_C[-1]), WANG_C, WANG_B)


def wang_loss_pct(c_rate_per_h, ah_cell, temp_k):
    """Wang 2011 cycle capacity loss in % after ``ah_cell`` discharge Ah at C-rate ``c``."""
    c = np.clip(c_rate_per_h, WANG_C[0], WANG_C[-1])
    k = wang_b(c) * np.exp((-WANG_EA_J_PER_MOL + WANG_EA_C_J_PER_MOL * c)
                           / (R_GAS_J_PER_MOL_K * temp_k))
    return k * np.asarray(ah_cell, dtype=float) ** WANG_Z


def naumann_cal_k(soc_frac, temp_k):
    """Naumann 2018 calendar factor ``k_T(T) k_SOC(s)`` in 1/sqrt(s) (loss as a fraction)."""
    k_t = NAUMANN_KT_REF * np.exp(-NAUMANN_EA_J_PER_MOL / R_GAS_NAUMANN
                                  * (1.0 / temp_k - 1.0 / T_REF_K))
    k_soc = 2.8575 * (np.asarray(soc_frac) - 0.5) ** 3 + 0.60225
    return k_t * k_soc


def naumann2020_cyc_loss_pct(c_rate_per_h, dod_frac, efc):
    """Naumann 2020 cycle loss (%): ``(0.0630 c + 0.0971)(4.0253 (DOD-0.6)^3 + 1.0923) sqrt(EFC)``.
    """
    return ((0.0630 * np.asarray(c_rate_per_h) + 0.0971)
            * (4.0253 * (np.asarray(dod_frac) - 0.6) ** 3 + 1.0923) * np.sqrt(efc))


def xu_s_delta(depth_frac):
    """Xu 2018 cycle-depth stress ``1/(k1 d^k2 + k3)`` (damage of one full cycle); 0 at d = 0."""
    d = np.asarray(depth_frac, dtype=float)
    safe = np.where(d > 0.0, d, 1.0)
    return np.where(d > 0.0, 1.0 / (XU_K_D1 * safe ** XU_K_D2 + XU_K_D3), 0.0)


def xu_s_sigma(soc_frac):
    """Xu 2018 SOC stress ``exp(k_sigma (s - s_ref))``."""
    return np.exp(XU_K_SIGMA * (np.asarray(soc_frac) - XU_SIGMA_REF))


def xu_s_temp(temp_k):
    """Xu 2018 temperature stress ``exp(k_T (T - T_ref) T_ref / T)``."""
    return np.exp(XU_K_T * (temp_k - XU_T_REF_K) * XU_T_REF_K / temp_k)


def xu_capacity_loss(f_d):
    """Xu 2018 SEI-film nonlinearity ``L = 1 - a e^{-b f} - (1-a) e^{-f}`` (capacity fraction)."""
    f = np.asarray(f_d, dtype=float)
    return 1.0 - XU_ALPHA_SEI * np.exp(-XU_BETA_SEI * f) - (1.0 - XU_ALPHA_SEI) * np.exp(-f)


def xu_fd_at_loss(loss_frac: float) -> float:
    """The linearised damage ``f_d`` at which :func:`xu_capacity_loss` equals ``loss_frac``."""
    return float(brentq(lambda f: float(xu_capacity_loss(f)) - loss_frac, 0.0, 50.0, xtol=1e-14))


def dod_curve_cycles(depth_frac, beta0=DOD_BETA0, beta1=DOD_BETA1, beta2=DOD_BETA2):
    """Cycles to end of life at depth ``d``: ``N(d) = b0 d^-b1 exp(b2 (1 - d))`` (C.4.2)."""
    d = np.asarray(depth_frac, dtype=float)
    return beta0 * d ** (-beta1) * np.exp(beta2 * (1.0 - d))


# ================================================================ rainflow (C.4.3)
@dataclass(frozen=True)
class Cycle:
    """One rainflow cycle (``count`` 1.0) or half cycle (0.5) of a SOC trace.

    ``falling`` tells the direction of a half cycle (for a full cycle it is the direction of the
    range that opened it). Indices point into the original trace; ``duration_min`` needs the
    trace's step length.
    """

    depth_frac: float
    mean_frac: float
    count: float
    top_frac: float
    bottom_frac: float
    falling: bool
    i_start: int
    i_end: int
    duration_min: float


def reversals(trace: Sequence[float]) -> tuple[list[float], list[int]]:
    """Turning points of a series (plateaus collapsed; first and last points kept)."""
    vals: list[float] = []
    idx: list[int] = []
    for i, x in enumerate(trace):
        x = float(x)
        if not vals:
            vals.append(x)
            idx.append(i)
        elif x == vals[-1]:
            continue
        elif len(vals) >= 2 and (x > vals[-1]) == (vals[-1] > vals[-2]):
            vals[-1], idx[-1] = x, i  # same direction: extend the current range
        else:
            vals.append(x)
            idx.append(i)
    return vals, idx


def rainflow_cycles(trace: Sequence[float], dt_min: float = 1.0) -> list[Cycle]:
    """ASTM E1049-85 rainflow count of a SOC trace (MODELS.md C.4.3 procedure, written out).

    ``dt_min`` is the time between trace samples (for ``duration_min``). Returns the cycles in the
    order they are counted; residual ranges at the end are half cycles.
    """
    vals, idx = reversals(trace)
    out: list[Cycle] = []

    def emit(a: int, b: int, count: float) -> None:
        va, vb = vals[a], vals[b]
        out.append(Cycle(depth_frac=abs(vb - va), mean_frac=0.5 * (va + vb), count=count,
                         top_frac=max(va, vb), bottom_frac=min(va, vb), falling=vb < va,
                         i_start=idx[a], i_end=idx[b], duration_min=(idx[b] - idx[a]) * dt_min
                         * (2.0 if count == 1.0 else 1.0)))

    stack: list[int] = []
    for k in range(len(vals)):
        stack.append(k)
        while len(stack) >= 3:
            x = abs(vals[stack[-1]] - vals[stack[-2]])
            y = abs(vals[stack[-2]] - vals[stack[-3]])
            if x < y:
                break
            if len(stack) == 3:  # Y contains the starting point
                emit(stack[0], stack[1], 0.5)
                stack.pop(0)
            else:
                emit(stack[-3], stack[-2], 1.0)
                del stack[-3:-1]
    for a, b in zip(stack, stack[1:]):
        emit(a, b, 0.5)
    return out


PhiFn = Callable[[float, float], float]


class OnlineRainflow:
    """The ASTM stack fed one SOC value at a time; charges discharge damage as it happens.

    ``move(s, phi)`` takes the SOC from its current value to ``s``. ``phi(ref, s)`` is the damage
    of a discharge half-cycle from ``ref`` down to ``s`` (0 when ``s >= ref``). Each discharge piece
    adds ``phi(ref, s_end) - phi(ref, s_start)`` (clamped at 0) with ``ref`` the stack point the
    piece's half cycle starts from. Crossing the level at which ASTM closes a cycle splits the move,
    so the stack (and the closed cycles, in :attr:`closed`) equal :func:`rainflow_cycles` on the
    same trace. See the module docstring for the identity with ex-post rainflow.
    """

    def __init__(self) -> None:
        self.stack: list[float] = []
        self.cur: float | None = None
        self.closed: list[tuple[float, float, float]] = []  # (from, to, count)

    def start(self, soc: float) -> None:
        self.stack = [float(soc)]
        self.cur = float(soc)
        self.closed = []

    def residual(self) -> list[tuple[float, float]]:
        """The open ranges (half cycles if the trace ended now), as (from, to)."""
        pts = list(self.stack)
        if self.cur is not None and self.cur != pts[-1]:
            pts.append(self.cur)
        return list(zip(pts, pts[1:]))

    def move(self, s: float, phi: PhiFn) -> float:
        """Advance to ``s``; return the discharge damage charged on the way (>= 0)."""
        if self.cur is None:
            self.start(s)
            return 0.0
        s = float(s)
        cur = self.cur
        if s == cur:
            return 0.0
        d = 1.0 if s > cur else -1.0
        last = self.stack[-1]
        if cur != last and (cur - last) * d < 0:
            self.stack.append(cur)  # direction reversal: cur is a turning point
        dmg = 0.0
        while True:
            ref = self.stack[-1]
            if len(self.stack) >= 2:
                # X = |s - ref| reaches Y = |ref - prev|: ASTM counts a cycle. The crossing level
                # is the previous turning point itself (same arithmetic as rainflow_cycles).
                level = self.stack[-2]
                if abs(s - ref) >= abs(ref - level):
                    if d < 0:
                        dmg += max(0.0, phi(ref, level) - phi(ref, cur))
                    cur = level
                    if len(self.stack) == 2:
                        self.closed.append((self.stack[0], ref, 0.5))
                        self.stack.pop(0)
                    else:
                        self.closed.append((self.stack[-2], ref, 1.0))
                        del self.stack[-2:]
                    continue
            if d < 0:
                dmg += max(0.0, phi(ref, s) - phi(ref, cur))
            cur = s
            break
        self.cur = cur
        return dmg


# ================================================================ the models
#: The parameters every model takes (MODELS.md C.1), ``none`` included: a caller that builds
#: several models from one set of settings (the Co-OPT study, a scenario file) may pass them to
#: any model. Model-specific parameters (``cycle_model``, ``q_cell_ah``, ``beta0`` ...) are not
#: shared.
SHARED_PARAMS = ("temp_c", "soh_eol_frac", "c_pack_usd_per_kwh", "e_nom_kwh", "include_calendar",
                 "c_rate_default_per_h")


def _shared_problems(temp_c, soh_eol_frac, c_pack_usd_per_kwh, e_nom_kwh,
                     c_rate_default_per_h) -> list[str]:
    """One message per bad shared parameter, each starting with the parameter's name."""
    out = []
    if not 0.0 < soh_eol_frac < 1.0:
        out.append(f"soh_eol_frac must be in (0, 1), got {soh_eol_frac}")
    if not 0.0 <= c_pack_usd_per_kwh < math.inf:
        out.append(f"c_pack_usd_per_kwh must be >= 0 and finite, got {c_pack_usd_per_kwh}")
    if not 0.0 < e_nom_kwh < math.inf:
        out.append(f"e_nom_kwh must be > 0 and finite, got {e_nom_kwh}")
    if not -40.0 <= temp_c <= 80.0:
        out.append(f"temp_c must be within [-40, 80] degC, got {temp_c}")
    if not 0.0 < c_rate_default_per_h < math.inf:
        out.append(f"c_rate_default_per_h must be > 0 and finite, got {c_rate_default_per_h}")
    return out


def _raise_shared_problems(*args) -> None:
    problems = _shared_problems(*args)
    if problems:
        raise ValueError("; ".join(problems))


def _set_shared(model, temp_c: float, soh_eol_frac: float, e_nom_kwh: float,
                include_calendar: bool, c_rate_default_per_h: float,
                c_pack_usd_per_kwh: float) -> None:
    """Check the :data:`SHARED_PARAMS` every model takes (ValueError naming each bad one) and
    set the attributes they give every model."""
    _raise_shared_problems(temp_c, soh_eol_frac, c_pack_usd_per_kwh, e_nom_kwh,
                           c_rate_default_per_h)
    model.temp_c = float(temp_c)
    model.q_eol_frac = 1.0 - float(soh_eol_frac)
    model._e_nom_kwh = float(e_nom_kwh)
    model.include_calendar = bool(include_calendar)
    model.c_rate_default_per_h = float(c_rate_default_per_h)


class _Ageing:
    """Common state and bookkeeping; subclasses give the stress functions.

    Subclasses define ``_cal_rate_per_h(soc_mean)`` (levelised calendar damage per hour, array
    friendly) and ``_phi(ref, soc, c_rate)`` (levelised damage of discharging from ``ref`` to
    ``soc``), and the exponents ``p_cal``, ``p_cyc`` of their power laws.
    """

    name = "base"
    p_cal = 1.0
    p_cyc = 1.0

    def __init__(self, temp_c: float = TEMP_C_DEFAULT, soh_eol_frac: float = SOH_EOL_FRAC,
                 c_pack_usd_per_kwh: float = C_PACK_USD_PER_KWH, e_nom_kwh: float = E_NOM_KWH,
                 include_calendar: bool = True,
                 c_rate_default_per_h: float = C_RATE_DEFAULT_PER_H) -> None:
        _set_shared(self, temp_c, soh_eol_frac, e_nom_kwh, include_calendar,
                    c_rate_default_per_h, c_pack_usd_per_kwh)
        self.temp_k = _k(temp_c)
        self.c_rep_usd = float(c_pack_usd_per_kwh) * float(e_nom_kwh)
        self.reset()

    # -------------------------------------------------- DegradationModel protocol
    def reset(self) -> None:
        self.d_cal = 0.0
        self.d_cyc = 0.0
        self.elapsed_min = 0
        self.throughput_mwh = 0.0
        self._last_soc: float | None = None
        self._rf = OnlineRainflow()

    def update(self, soc_before_frac: float, soc_after_frac: float, throughput_mwh: float,
               dt_min: int, capacity_mwh: float) -> None:
        """One step of the vehicle: calendar ageing at the step's mean SOC, cycle ageing of the
        SOC change. A SOC jump since the last step (traction drawn between steps) is first
        processed as a zero-duration discharge at ``c_rate_default_per_h``.

        ``throughput_mwh`` is only accumulated for reporting: cycle stress comes from the SOC
        trace so that it matches rainflow on the same trace.
        """
        s_a, s_b = float(soc_before_frac), float(soc_after_frac)
        if self._last_soc is None:
            self._rf.start(s_a)
        elif abs(s_a - self._last_soc) > SOC_GAP_TOL:
            self._cycle_move(s_a, self.c_rate_default_per_h)
        dt_h = dt_min / 60.0
        if self.include_calendar and dt_h > 0:
            self.d_cal += float(self._cal_rate_per_h(0.5 * (s_a + s_b))) * dt_h
        c = abs(s_b - s_a) / dt_h if dt_h > 0 else self.c_rate_default_per_h
        self._cycle_move(s_b, c)
        self._last_soc = s_b
        self.elapsed_min += int(dt_min)
        self.throughput_mwh += float(throughput_mwh)

    def soh_frac(self) -> float:
        return 1.0 - self.loss_frac()

    # -------------------------------------------------- state of health
    def loss_frac(self) -> float:
        """Capacity loss: ``q_eol (D_cal^p_cal + D_cyc^p_cyc)`` (superposition, C.1)."""
        return self.q_eol_frac * (self.d_cal ** self.p_cal + self.d_cyc ** self.p_cyc)

    def calendar_loss_frac(self) -> float:
        return self.q_eol_frac * self.d_cal ** self.p_cal

    def cycle_loss_frac(self) -> float:
        return self.q_eol_frac * self.d_cyc ** self.p_cyc

    def _cycle_move(self, s: float, c_rate: float) -> None:
        self.d_cyc += self._rf.move(s, lambda ref, x: float(self._phi(ref, x, c_rate)))

    # -------------------------------------------------- DP cost (C.5)
    def transition_damage(self, soc_from_frac, soc_to_frac, dt_h, soc_ref_frac=SOC_REF_TOP_FRAC,
                          c_rate_per_h=None, temp_c: float | None = None):
        """Levelised damage ``(dD_cal, dD_cyc)`` of a SOC transition over ``dt_h`` hours (C.5).

        Cycle part: ``Phi(ref, s_to) - Phi(ref, s_from)`` for a discharge, 0 for a charge, with
        depths from ``soc_ref_frac`` clipped to [0, 1] (reference-top rule of D.5.3; pass the SOC
        at the last reversal for the exact half-cycle option). ``c_rate_per_h`` defaults to
        ``|s_to - s_from| / dt_h`` (or ``c_rate_default_per_h`` when ``dt_h`` is 0). Array inputs
        broadcast (NumPy), so the router can vectorise over SOC buckets.
        """
        m = self if temp_c is None or float(temp_c) == self.temp_c else self._at_temp(temp_c)
        sa = np.asarray(soc_from_frac, dtype=float)
        sb = np.asarray(soc_to_frac, dtype=float)
        dt_h = np.asarray(dt_h, dtype=float)
        if c_rate_per_h is None:
            with np.errstate(divide="ignore", invalid="ignore"):
                c = np.where(dt_h > 0, np.abs(sb - sa) / np.where(dt_h > 0, dt_h, 1.0),
                             m.c_rate_default_per_h)
        else:
            c = np.asarray(c_rate_per_h, dtype=float)
        d_cal = (m._cal_rate_per_h(0.5 * (sa + sb)) * dt_h if m.include_calendar
                 else np.zeros(np.broadcast(sa, sb, dt_h).shape))
        ref = np.asarray(soc_ref_frac, dtype=float)
        d_cyc = np.where(sb < sa, np.maximum(m._phi(ref, sb, c) - m._phi(ref, sa, c), 0.0), 0.0)
        if d_cal.ndim == 0 and d_cyc.ndim == 0:
            return float(d_cal), float(d_cyc)
        return d_cal, d_cyc

    def transition_cost_usd(self, soc_from_frac, soc_to_frac, dt_h,
                            soc_ref_frac=SOC_REF_TOP_FRAC, c_rate_per_h=None,
                            temp_c: float | None = None):
        """``C_rep (dD_cal + dD_cyc)`` in USD for one DP transition (C.5, levelised form (L))."""
        d_cal, d_cyc = self.transition_damage(soc_from_frac, soc_to_frac, dt_h, soc_ref_frac,
                                              c_rate_per_h, temp_c)
        return self.c_rep_usd * (d_cal + d_cyc)

    def _at_temp(self, temp_c: float) -> _Ageing:
        """A copy of this model at another temperature (cached: the DP asks many times)."""
        cache = self.__dict__.setdefault("_temp_cache", {})
        key = float(temp_c)
        if key not in cache:
            params = dict(self.params())
            params["temp_c"] = key
            cache[key] = type(self)(**params)
        return cache[key]

    # -------------------------------------------------- ex-post (rainflow) evaluation
    def expost_damage(self, soc_trace: Sequence[float], dt_min: float,
                      c_rate_per_h: float | None = None) -> tuple[float, float, list[Cycle]]:
        """Levelised ``(D_cal, D_cyc, cycles)`` of a SOC trace sampled every ``dt_min`` minutes.

        Calendar part: the same step rule as :meth:`update`. Cycle part: ``sum_i n_i Phi(top_i,
        bottom_i)`` over the rainflow cycles, at ``c_rate_per_h`` (default
        ``c_rate_default_per_h``).
        """
        tr = np.asarray(soc_trace, dtype=float)
        d_cal = 0.0
        if self.include_calendar and len(tr) > 1:
            d_cal = float(np.sum(self._cal_rate_per_h(0.5 * (tr[1:] + tr[:-1])))) * dt_min / 60.0
        c = self.c_rate_default_per_h if c_rate_per_h is None else c_rate_per_h
        cycles = rainflow_cycles(tr, dt_min)
        d_cyc = float(sum(cy.count * float(self._phi(cy.top_frac, cy.bottom_frac, c))
                          for cy in cycles))
        return d_cal, d_cyc, cycles

    def expost_soh_frac(self, soc_trace: Sequence[float], dt_min: float,
                        c_rate_per_h: float | None = None) -> float:
        d_cal, d_cyc, _ = self.expost_damage(soc_trace, dt_min, c_rate_per_h)
        return 1.0 - self._loss_from(d_cal, d_cyc)

    def _loss_from(self, d_cal: float, d_cyc: float) -> float:
        return self.q_eol_frac * (d_cal ** self.p_cal + d_cyc ** self.p_cyc)

    def params(self) -> dict:
        return {"temp_c": self.temp_c, "soh_eol_frac": 1.0 - self.q_eol_frac,
                "c_pack_usd_per_kwh": self.c_rep_usd / self._e_nom_kwh,
                "e_nom_kwh": self._e_nom_kwh,
                "include_calendar": self.include_calendar,
                "c_rate_default_per_h": self.c_rate_default_per_h}

    # subclass hooks
    def _cal_rate_per_h(self, soc_mean):  # pragma: no cover - abstract
        raise NotImplementedError

    def _phi(self, ref, soc, c_rate):  # pragma: no cover - abstract
        raise NotImplementedError


class NMCDegradation(_Ageing):
    """NMC/graphite, Schmalstieg et al. 2014 (J. Power Sources 257:325-334), MODELS.md C.2.

    ``Q_loss = alpha_cap t^0.75 + beta_cap Q^0.5`` with ``t`` in days, ``Q`` the cell charge
    throughput in Ah (charge + discharge, ``2 delta Q_cell`` per full cycle of depth ``delta``,
    ``Q_cell`` = 2.05 Ah), ``alpha_cap(V, T)`` at the OCV of the step's mean SOC and
    ``beta_cap(V_mean, DeltaDOD)`` with ``V_mean = (V(top) + V(bottom))/2`` of the (half) cycle
    and ``DeltaDOD`` its depth.

    Levelised forms: ``t_EOL = (q_eol/alpha)^(1/0.75)`` days; ``Q_EOL = (q_eol/beta)^2`` Ah; the
    damage of a discharge from ``ref`` to ``s`` is ``Phi = 2 (ref-s) Q_cell / Q_EOL(V_mean(ref,s),
    ref-s)``. [P] deviation from the literal C.2 text: ``V_mean`` is taken over (ref, s) rather
    than over the DP segment's own end points, so that the increments telescope to the whole
    cycle's ``Phi`` exactly (C.5 "for a closed cycle the sum ... telescopes").

    Validity: cycling data at 35 degC, 1C (no temperature or C-rate sensitivity of ``beta``);
    calendar data up to 50 degC. ``include_calendar`` (alias ``nmc_include_calendar``) defaults to
    True; set False to follow the seed README's "cycle ageing only".
    """

    name = "nmc"
    p_cal = NMC_CAL_EXP
    p_cyc = NMC_CYC_EXP

    def __init__(self, q_cell_ah: float = NMC_Q_CELL_AH, nmc_include_calendar: bool | None = None,
                 **kw) -> None:
        if not 0.0 < q_cell_ah < math.inf:
            raise ValueError(f"q_cell_ah must be > 0 and finite, got {q_cell_ah}")
        self.q_cell_ah = float(q_cell_ah)
        if nmc_include_calendar is not None:
            kw["include_calendar"] = nmc_include_calendar
        super().__init__(**kw)

    def params(self) -> dict:
        return {**super().params(), "q_cell_ah": self.q_cell_ah}

    def _cal_rate_per_h(self, soc_mean):
        alpha = nmc_alpha_cap(nmc_ocv_v(soc_mean), self.temp_k)
        with np.errstate(divide="ignore"):
            t_eol_days = np.where(alpha > 0, (self.q_eol_frac / np.where(alpha > 0, alpha, 1.0))
                                  ** (1.0 / NMC_CAL_EXP), np.inf)
        return 1.0 / (24.0 * t_eol_days)

    def _phi(self, ref, soc, c_rate):
        depth = _clip01(np.asarray(ref) - np.asarray(soc))
        v_mean = 0.5 * (nmc_ocv_v(ref) + nmc_ocv_v(np.minimum(soc, ref)))
        beta = nmc_beta_cap(v_mean, depth)
        return 2.0 * depth * self.q_cell_ah * beta ** 2 / self.q_eol_frac ** 2


class LFPDegradation(_Ageing):
    """LFP/graphite: Wang et al. 2011 cycle model + Naumann et al. 2018 calendar model (C.3).

    Cycle (Wang, J. Power Sources 196:3942-3948, 2011; A123 ANR26650M1, 2.3 Ah):
    ``Q_loss[%] = B(c) exp((-31700 + 370.3 c)/(R T)) Ah^0.55``, ``c`` the C-rate (1/h) clamped to
    [0.5, 10], ``Ah`` the *discharge* throughput per cell. Charging is attributed zero (C.3 "pick
    one rule"). Level form ``Ah_EOL = (100 q_eol / k)^(1/0.55)``; a discharge of ``ds`` costs
    ``ds Q_cell / Ah_EOL(c)`` (depth independent).

    Calendar (Naumann, J. Energy Storage 17:153-169, 2018; Sony US26650FTC1, 3.0 Ah):
    ``Q_loss = k_T(T) k_SOC(s) sqrt(t)``, ``t`` in s; ``t_EOL = (q_eol/(k_T k_SOC))^2``.

    ``cycle_model="naumann2020"`` (Naumann, Spingler, Jossen, J. Power Sources 451:227666, 2020)
    uses ``Q[%] = (0.0630 c + 0.0971)(4.0253 (DOD-0.6)^3 + 1.0923) sqrt(EFC)`` instead, so that
    cycling and calendar describe the same cell (E.C4); a full cycle of depth ``d`` is ``d`` EFC and
    its damage ``d / EFC_EOL(c, d)``.

    E.C4 caveat: the default mixes two cells (A123 cycle, Sony calendar), as the seed does.
    """

    name = "lfp"
    p_cal = NAUMANN_CAL_EXP

    def __init__(self, cycle_model: str = "wang2011", q_cell_ah: float = LFP_Q_CELL_AH,
                 **kw) -> None:
        if cycle_model not in ("wang2011", "naumann2020"):
            raise ValueError(
                f"cycle_model must be 'wang2011' or 'naumann2020', got {cycle_model!r}")
        if not 0.0 < q_cell_ah < math.inf:
            raise ValueError(f"q_cell_ah must be > 0 and finite, got {q_cell_ah}")
        self.cycle_model = cycle_model
        self.q_cell_ah = float(q_cell_ah)
        self.p_cyc = WANG_Z if cycle_model == "wang2011" else 0.5
        super().__init__(**kw)

    def params(self) -> dict:
        return {**super().params(), "cycle_model": self.cycle_model, "q_cell_ah": self.q_cell_ah}

    def _cal_rate_per_h(self, soc_mean):
        k = naumann_cal_k(soc_mean, self.temp_k)
        t_eol_s = (self.q_eol_frac / k) ** 2
        return 3600.0 / t_eol_s

    def wang_ah_eol(self, c_rate_per_h):
        """Discharge Ah per cell to end of life at C-rate ``c`` (Wang level form)."""
        c = np.clip(c_rate_per_h, WANG_C[0], WANG_C[-1])
        k = wang_b(c) * np.exp((-WANG_EA_J_PER_MOL + WANG_EA_C_J_PER_MOL * c)
                               / (R_GAS_J_PER_MOL_K * self.temp_k))
        return (100.0 * self.q_eol_frac / k) ** (1.0 / WANG_Z)

    def _phi(self, ref, soc, c_rate):
        depth = _clip01(np.asarray(ref) - np.asarray(soc))
        if self.cycle_model == "wang2011":
            return depth * self.q_cell_ah / self.wang_ah_eol(c_rate)
        k = ((0.0630 * np.asarray(c_rate) + 0.0971) * (4.0253 * (depth - 0.6) ** 3 + 1.0923))
        efc_eol = (100.0 * self.q_eol_frac / k) ** 2
        return depth / efc_eol


class XuDegradation(_Ageing):
    """Generalised model of Xu et al. 2018 (IEEE Trans. Smart Grid 9(2):1131-1140), C.4.1.

    Linearised damage ``f_d = sum_i n_i S_delta(d_i) S_sigma(mean_i) S_T(T) + k_t t S_sigma(s)
    S_T(T)`` with ``t`` in s, and capacity loss ``L(f_d) = 1 - a e^{-b f_d} - (1-a) e^{-f_d}``
    (SEI film). Parameters fitted by Xu et al. to NREL LMO/graphite data (table in C.4.1).
    Levelised damage ``D = f_d / f_EOL`` with ``L(f_EOL) = q_eol`` (0.16392 for q_eol = 0.2);
    so ``soh = 1 - L(f_EOL (D_cal + D_cyc))``. The discharge-attributed ``Phi(ref, s) =
    S_delta(ref-s) S_sigma((ref+s)/2) S_T / f_EOL`` equals the cycle's rainflow damage when the
    cycle closes (its mean SOC is ``(top+bottom)/2``).
    """

    name = "generalised"

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.f_eol = xu_fd_at_loss(self.q_eol_frac)

    def _cal_rate_per_h(self, soc_mean):
        return 3600.0 * XU_K_TIME_PER_S * xu_s_sigma(soc_mean) * xu_s_temp(self.temp_k) / self.f_eol

    def _phi(self, ref, soc, c_rate):
        ref = np.asarray(ref, dtype=float)
        depth = _clip01(ref - np.asarray(soc))
        mean = ref - 0.5 * depth
        return xu_s_delta(depth) * xu_s_sigma(mean) * xu_s_temp(self.temp_k) / self.f_eol

    def _loss_from(self, d_cal: float, d_cyc: float) -> float:
        return float(xu_capacity_loss(self.f_eol * (d_cal + d_cyc)))

    def loss_frac(self) -> float:
        return self._loss_from(self.d_cal, self.d_cyc)

    def calendar_loss_frac(self) -> float:
        return self._loss_from(self.d_cal, 0.0)

    def cycle_loss_frac(self) -> float:
        return self._loss_from(0.0, self.d_cyc)

    def f_d(self) -> float:
        """Xu's linearised damage so far."""
        return self.f_eol * (self.d_cal + self.d_cyc)


class DoDCurveDegradation(_Ageing):
    """Cycle-life curve ``N(d) = b0 d^-b1 exp(b2 (1-d))`` (repository "Model 3", C.4.2, [S-repo]).

    Defaults ``b0 = 4901, b1 = 1.98, b2 = 0.016`` (``N(1) = 4901``, ``N(0.5) = 19,489``); their
    source is not stated in the repository (its README cites Lee & Kim 2022 and Petit 2016, not
    verified). Miner's rule: a cycle of depth ``d`` uses ``1/N(d)`` of the life, the capacity loss
    is ``q_eol D`` (linear), and there is no calendar ageing. Refit ``beta0..beta2`` to a
    datasheet's cycle life versus DoD for another chemistry. Unlike the repository (C.6) it never
    resets the SOC to 85 % and has no per-leg cap.
    """

    name = "dod_curve"

    def __init__(self, beta0: float = DOD_BETA0, beta1: float = DOD_BETA1,
                 beta2: float = DOD_BETA2, **kw) -> None:
        bad = [f"{k} must be finite, got {v}" for k, v in
               (("beta0", beta0), ("beta1", beta1), ("beta2", beta2)) if not math.isfinite(v)]
        if not bad and beta0 <= 0:
            bad.append(f"beta0 must be > 0, got {beta0}")
        if bad:
            raise ValueError("; ".join(bad))
        self.beta0, self.beta1, self.beta2 = float(beta0), float(beta1), float(beta2)
        kw.setdefault("include_calendar", False)
        super().__init__(**kw)

    def params(self) -> dict:
        return {**super().params(), "beta0": self.beta0, "beta1": self.beta1,
                "beta2": self.beta2}

    def _cal_rate_per_h(self, soc_mean):
        return np.zeros(np.shape(soc_mean))

    def _phi(self, ref, soc, c_rate):
        d = _clip01(np.asarray(ref) - np.asarray(soc))
        safe = np.where(d > 0, d, 1.0)
        return np.where(d > 0, safe ** self.beta1 * np.exp(-self.beta2 * (1.0 - safe))
                        / self.beta0, 0.0)


class ZeroDegradation(NoDegradation):
    """No ageing: SOH stays exactly 1.0, every damage and every cost is exactly 0.

    It takes the :data:`SHARED_PARAMS` of every other model (checked the same way, then kept
    only for :meth:`params`), so that a caller that passes one set of shared settings to each
    model in a list (the Co-OPT study's ``temp_c``, ``c_pack_usd_per_kwh``, ``e_nom_kwh``) can
    list ``none`` too. It has the state and the read-outs of :class:`_Ageing` (``d_cal``,
    ``d_cyc``, ``q_eol_frac``, ``loss_frac`` ...), all zero, and a replacement cost
    ``c_rep_usd`` of 0: a pack that never ages is never replaced.
    """

    name = "none"
    c_rep_usd = 0.0
    p_cal = 1.0
    p_cyc = 1.0

    def __init__(self, temp_c: float = TEMP_C_DEFAULT, soh_eol_frac: float = SOH_EOL_FRAC,
                 c_pack_usd_per_kwh: float = C_PACK_USD_PER_KWH, e_nom_kwh: float = E_NOM_KWH,
                 include_calendar: bool = True,
                 c_rate_default_per_h: float = C_RATE_DEFAULT_PER_H) -> None:
        _set_shared(self, temp_c, soh_eol_frac, e_nom_kwh, include_calendar,
                    c_rate_default_per_h, c_pack_usd_per_kwh)
        self._c_pack_usd_per_kwh = float(c_pack_usd_per_kwh)
        self.reset()

    def reset(self) -> None:
        self.d_cal = 0.0
        self.d_cyc = 0.0
        self.elapsed_min = 0
        self.throughput_mwh = 0.0

    def update(self, soc_before_frac: float, soc_after_frac: float, throughput_mwh: float,
               dt_min: int, capacity_mwh: float) -> None:
        """Counts time and throughput (as the ageing models do); no damage."""
        self.elapsed_min += int(dt_min)
        self.throughput_mwh += float(throughput_mwh)

    def soh_frac(self) -> float:
        return 1.0

    def loss_frac(self) -> float:
        return 0.0

    def calendar_loss_frac(self) -> float:
        return 0.0

    def cycle_loss_frac(self) -> float:
        return 0.0

    def transition_damage(self, soc_from_frac, soc_to_frac, dt_h, soc_ref_frac=SOC_REF_TOP_FRAC,
                          c_rate_per_h=None, temp_c=None):
        z = np.zeros(np.broadcast(np.asarray(soc_from_frac), np.asarray(soc_to_frac),
                                  np.asarray(dt_h)).shape)
        return (0.0, 0.0) if z.ndim == 0 else (z, z.copy())

    def transition_cost_usd(self, soc_from_frac, soc_to_frac, dt_h,
                            soc_ref_frac=SOC_REF_TOP_FRAC, c_rate_per_h=None, temp_c=None):
        d_cal, d_cyc = self.transition_damage(soc_from_frac, soc_to_frac, dt_h)
        return d_cal + d_cyc

    def expost_damage(self, soc_trace: Sequence[float], dt_min: float,
                      c_rate_per_h: float | None = None) -> tuple[float, float, list[Cycle]]:
        return 0.0, 0.0, rainflow_cycles(np.asarray(soc_trace, dtype=float), dt_min)

    def expost_soh_frac(self, soc_trace: Sequence[float], dt_min: float,
                        c_rate_per_h: float | None = None) -> float:
        return 1.0

    def params(self) -> dict:
        return {"temp_c": self.temp_c, "soh_eol_frac": 1.0 - self.q_eol_frac,
                "c_pack_usd_per_kwh": self._c_pack_usd_per_kwh, "e_nom_kwh": self._e_nom_kwh,
                "include_calendar": self.include_calendar,
                "c_rate_default_per_h": self.c_rate_default_per_h}


DEGRADATION_MODELS: dict[str, type] = {
    "none": ZeroDegradation,
    "nmc": NMCDegradation,
    "lfp": LFPDegradation,
    "generalised": XuDegradation,
    "dod_curve": DoDCurveDegradation,
}


def model_parameters(name: str) -> dict[str, object]:
    """The keyword parameters of model ``name`` with their defaults (own, then inherited)."""
    cls = DEGRADATION_MODELS[name]
    out: dict[str, object] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.name == "self" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            out.setdefault(p.name, p.default)
    return out


def _kind_problem(value, default) -> str | None:
    """Whether ``value`` has the kind of the parameter's default (number, boolean, string)."""
    if isinstance(default, bool) or default is None:  # None: nmc_include_calendar's "unset"
        return None if isinstance(value, bool) else "a boolean"
    if isinstance(default, (int, float)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else "a number"
    if isinstance(default, str):
        return None if isinstance(value, str) else "a string"
    return None


def degradation_problems(name, params: dict | None = None) -> list[tuple[str, str]]:
    """Every problem of building model ``name`` with ``params``, as ``(key, message)``.

    ``key`` is ``"model"`` for a bad name, else the parameter the message is about (or ``""``
    when a model's check names several). Nothing is raised; an empty list means
    :func:`make_degradation` will succeed with the same arguments.
    """
    params = dict(params or {})
    valid = ", ".join(sorted(DEGRADATION_MODELS))
    if not isinstance(name, str):
        return [("model", f"expected a model name, got {type(name).__name__} {name!r}; "
                          f"valid: {valid}")]
    if name not in DEGRADATION_MODELS:
        return [("model", f"unknown model {name!r}; valid: {valid}")]
    known = model_parameters(name)
    out: list[tuple[str, str]] = []
    good = {}
    for key, value in params.items():
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            out.append((key, f"unknown parameter of model {name!r}{hint}; "
                             f"valid: {', '.join(sorted(known))}"))
            continue
        want = _kind_problem(value, known[key])
        if want:
            kind = {bool: "boolean", int: "integer", float: "number", str: "string",
                    list: "array", dict: "table"}.get(type(value), type(value).__name__)
            out.append((key, f"expected {want}, got {kind} {value!r}"))
        else:
            good[key] = value
    try:  # the values' own checks, on the parameters that passed the above
        DEGRADATION_MODELS[name](**good)
    except (ValueError, TypeError) as exc:
        for msg in str(exc).split("; "):
            key = next((k for k in known if msg.startswith(k + " ")), "")
            out.append((key, msg))
    return out


def make_degradation(name: str, **params):
    """Build a degradation model by name.

    Every model, ``none`` included, takes the :data:`SHARED_PARAMS`. An unknown name, an
    unknown parameter or a bad value is a ``ValueError`` that names it (and the valid names).
    """
    problems = degradation_problems(name, params)
    if problems and problems[0][0] == "model":
        raise ValueError(f"degradation {problems[0][1]}")
    if problems:
        raise ValueError(f"degradation model {name!r}: "
                         + "; ".join(f"{k}: {m}" if k and not m.startswith(k + " ") else m
                                     for k, m in problems))
    return DEGRADATION_MODELS[name](**params)


def calendar_years_to_eol(model: _Ageing, soc_frac: float) -> float:
    """Years at constant ``soc_frac`` (model temperature) until the calendar part alone hits EOL."""
    rate = float(model._cal_rate_per_h(soc_frac))
    return math.inf if rate <= 0 else 1.0 / rate / 24.0 / 365.0
