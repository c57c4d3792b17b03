"""What the vehicles meet on the road that the policies did not plan for: traffic and breakdowns.

Policies plan on the forecast graph (its ``travel_min`` on every edge); the vehicles drive the
realisation drawn here, so the engine's arrival times come from it.

**Traffic.** An edge's ``travel_min`` is its free-flow time, a lower bound: traffic only delays.
Every directed edge and every step in which a vehicle *enters* that edge gets a delay factor
``max(1, exp(sigma * z))`` with ``z ~ N(0, 1)``: a lognormal factor with median 1, truncated at free
flow. About half of the (edge, step) pairs therefore run at free flow and the others are slower
(``sigma = 0.1``: mean factor 1.04, P90 1.14). The realised edge time is
``ceil(travel_min * factor)`` whole minutes, never less than ``travel_min``. The factor belongs to
the road at that time, not to one vehicle: two vehicles entering the same edge in the same step
are delayed alike, and every policy of a run meets the same traffic (common random numbers). A
trip's edge times are fixed when it departs (entry times computed along the path), so its
arrival time is known from the departure on, as a navigation ETA would be.

**Breakdowns.** At every step start, a vehicle without a breakdown under way breaks down with
probability ``1 - (1 - p_day) ** (step_min / 1440)`` (``p_day`` per vehicle and day) and is out of
service for ``duration_min``. The schedule is drawn for the whole horizon before the run, from
the seed only, so it is the same for every policy. A parked vehicle stays where it is, unplugged
(no power, no departure); one in transit stops where it is on its edge and arrives that much
later.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Traffic:
    """Delay factors (>= 1) per directed edge and per step of entry."""

    step_min: int
    factors: Mapping[tuple[str, str], np.ndarray]

    def edge_minutes(self, u: str, v: str, free_flow_min: int, entry_min: int) -> int:
        """Realised whole minutes to traverse ``u -> v`` when entering it at ``entry_min``."""
        f = self.factors[(u, v)]
        k = min(max(int(entry_min) // self.step_min, 0), len(f) - 1)
        # the small tolerance keeps a factor of exactly 1 from rounding a whole number up
        return max(int(free_flow_min), math.ceil(free_flow_min * float(f[k]) - 1e-9))

    def leg_minutes(self, edges: Sequence[tuple[str, str, int]], depart_min: int) -> list[int]:
        """Realised minutes of each ``(u, v, free_flow_min)`` leg of a trip leaving at
        ``depart_min``; each leg is entered when the previous one ends."""
        out, t = [], int(depart_min)
        for u, v, free in edges:
            m = self.edge_minutes(u, v, free, t)
            out.append(m)
            t += m
        return out


def draw_traffic(edges: Iterable[tuple[str, str]], n_steps: int, step_min: int, sigma: float,
                 rng: np.random.Generator) -> Traffic:
    """Delay factors for ``edges`` (drawn in sorted edge order: the order given is irrelevant)."""
    if sigma < 0 or not math.isfinite(sigma):
        raise ValueError(f"travel sigma must be finite and >= 0, got {sigma!r}")
    keys = sorted(set(edges))
    z = rng.standard_normal((len(keys), max(int(n_steps), 1)))
    f = np.maximum(1.0, np.exp(sigma * z))
    return Traffic(int(step_min), {k: f[i] for i, k in enumerate(keys)})


@dataclass(frozen=True)
class Outages:
    """One vehicle's breakdowns: sorted, non-overlapping ``(start_min, end_min)`` intervals."""

    intervals: tuple[tuple[int, int], ...] = ()

    def active(self, now_min: int) -> tuple[int, int] | None:
        """The breakdown under way at ``now_min`` (start inclusive, end exclusive), if any."""
        i = bisect.bisect_right(self.intervals, (int(now_min), math.inf)) - 1
        if i >= 0 and self.intervals[i][0] <= now_min < self.intervals[i][1]:
            return self.intervals[i]
        return None

    def starting(self, t0_min: int, t1_min: int) -> tuple[int, int] | None:
        """The first breakdown that starts in ``[t0_min, t1_min)``, if any."""
        i = bisect.bisect_left(self.intervals, (int(t0_min), -math.inf))
        if i < len(self.intervals) and self.intervals[i][0] < t1_min:
            return self.intervals[i]
        return None


def draw_outages(vehicles: Sequence[str], n_steps: int, step_min: int, prob_per_day: float,
                 duration_min: int, rng: np.random.Generator) -> dict[str, Outages]:
    """Breakdown schedules per vehicle (one uniform draw per vehicle and step, in that order)."""
    if not 0 <= prob_per_day <= 1:
        raise ValueError(f"breakdown probability per day must be in [0, 1], "
                         f"got {prob_per_day!r}")
    if duration_min < 1:
        raise ValueError(f"breakdown duration must be >= 1 min, got {duration_min!r}")
    p_step = 1.0 - (1.0 - prob_per_day) ** (step_min / 1440.0)
    u = rng.random((len(vehicles), int(n_steps)))
    out = {}
    for i, name in enumerate(vehicles):
        ivs, free_from = [], 0
        for k in range(int(n_steps)):
            t = k * step_min
            if t >= free_from and u[i, k] < p_step:
                ivs.append((t, t + int(duration_min)))
                free_from = t + int(duration_min)
        out[name] = Outages(tuple(ivs))
    return out
