"""mescosim's Python API: load a scenario, run it, sweep it, benchmark policies, extend it.

    import mescosim

    cfg = mescosim.load("three-dn", overrides={"scenario.horizon_min": 360})
    res = mescosim.run(cfg, seed=1)            # every policy of the scenario, one realisation
    res.summary()                              # one row per policy
    res.tables["vehicles"]                     # tidy DataFrames with a ``policy`` column

    mescosim.register_policy("night", NightCharger)          # a class with reset/decide/params
    mescosim.register_grid("my_feeder", build_my_net)        # a function returning a pandapower net
    bench = mescosim.bench("three-dn", ["greedy", "night"], scenarios=20, workers=0)
    bench.tables["paired"]

This package is the top layer: it imports the command line's own functions (``experiments``)
and adds nothing to what they compute.
"""

from __future__ import annotations

from importlib import metadata

from mescosim.api import (
    BenchResult,
    Result,
    SweepResult,
    bench,
    grids,
    load,
    policies,
    register_grid,
    register_policy,
    run,
    scenarios,
    sweep,
)
from sim.errors import ScenarioError

try:
    __version__ = metadata.version("mescosim")
except metadata.PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["BenchResult", "Result", "ScenarioError", "SweepResult", "__version__", "bench",
           "grids", "load", "policies", "register_grid", "register_policy", "run", "scenarios",
           "sweep"]
