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


#: The longest test files, longest first (seconds per file on two workers, from pytest
#: --durations). pytest-xdist hands out whole files in collection order (--dist loadfile
#: --no-loadscope-reorder): these start early and the many short files even out the two
#: workers' ends, instead of a long file of few tests starting last on one worker.
LONGEST_FIRST = (
    "test_rolling_milp.py", "test_contract.py", "test_sweep_families.py", "test_sweep.py",
    "test_coopt_study.py", "test_sfi_milp.py", "test_tsn_rolling.py", "test_speed_paths.py",
    "test_prices.py", "test_simbench.py", "test_tsn_sim.py", "test_replay_families.py",
    "test_tsn_models.py", "test_api.py", "test_stepped_prices.py", "test_html_report.py",
    "test_oracle_dn.py", "test_tsn_levers.py", "test_cli_fixes.py", "test_dp_router.py",
    "test_tsn_study.py", "test_bad_inputs_table.py", "test_notebook.py",
    "test_road_uncertainty.py", "test_plugins.py", "test_sfi_highs.py",
    "test_figures_defects.py", "test_tsn_fallback.py", "test_docs.py",
)


def pytest_collection_modifyitems(items):
    """The longest files first, the others after them in name order (a stable sort: each
    file's tests keep their order)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(scope="module")
def coopt_small():
    """(data, settings, missions) of the small Co-OPT network under the generalised model."""
    data = load_coopt(coopt_data_dir())
    s = CooptSettings()
    return data, s, build_problems(data, "small", "generalised", s, hourly_price=PRICES)
