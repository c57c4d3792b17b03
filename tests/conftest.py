"""Fixtures shared by test modules."""

from __future__ import annotations

import numpy as np
import pytest

from agents.road_data import load_coopt
from experiments.coopt_build import CooptSettings, build_problems
from experiments.coopt_study import coopt_data_dir

#: Hourly charging prices of the Co-OPT truck tests (USD/kWh): the price changes at 12:00.
HOURLY = np.r_[np.full(12, 0.30), np.full(12, 0.50)]
PRICES = {1: HOURLY, 3: 1.1 * HOURLY}


@pytest.fixture(scope="module")
def coopt_small():
    """(data, settings, missions) of the small Co-OPT network under the generalised model."""
    data = load_coopt(coopt_data_dir())
    s = CooptSettings()
    return data, s, build_problems(data, "small", "generalised", s, hourly_price=PRICES)
