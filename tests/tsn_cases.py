"""Small seed-001 cases for tests: a 3-bus triangle with two units, wind, 3 stations, 2 trains.

The shape follows the prototype of MODELS.md B.11 (3-bus PTDF network, 3 stations, 2 trains,
2 UC units, 100 MW wind); the numbers are invented for tests.
"""

from __future__ import annotations

import numpy as np

from sim.tsn import FixedStorage, Station, ThermalUnit, Train, TransmissionCase, WindFarm

# Triangle 0-1, 0-2, 1-2 with equal reactances, slack bus 0: MW on each line (from -> to) per MW
# injected at the bus and withdrawn at bus 0.
PTDF3 = np.array([[0.0, -2 / 3, -1 / 3],
                  [0.0, -1 / 3, -2 / 3],
                  [0.0, 1 / 3, -1 / 3]])


def tiny_case(T: int = 8, variant: str = "mes", rating_02_mw: float = 45.0,
              transport_cost_per_h: float = 20.0, travel_h: int = 1) -> TransmissionCase:
    hours = np.arange(T)
    shape = 0.75 + 0.25 * np.sin(2 * np.pi * (hours - 6) / max(T, 2))  # load, peak mid-horizon
    load = np.zeros((T, 3))
    load[:, 1] = 150 * shape
    load[:, 2] = 60 * shape
    wind = 180 * (0.5 + 0.5 * np.cos(2 * np.pi * hours / max(T, 2)))  # high at the ends
    units = (
        ThermalUnit("g0", 0, 40, 220, 110, 110, 3, 3, 400, 0, 0, 12.0, 0.02, 150, 1),
        ThermalUnit("g1", 1, 20, 120, 60, 60, 2, 2, 300, 0, 0, 35.0, 0.05, 20, 1),
    )
    stations: tuple = ()
    trains: tuple = ()
    fixed: tuple = ()
    if variant == "mes":
        stations = tuple(Station(f"S{i + 1}", i, 30, 60, 15, 15) for i in range(3))
        trains = (Train("K1", 45, 90, 22.5, 22.5, "S1", "S1"),
                  Train("K2", 45, 90, 22.5, 22.5, "S2", "S2"))
    elif variant == "ses_distributed":
        fixed = tuple(FixedStorage(f"SES{i + 1}", i, 30, 120, 30) for i in range(3))
    elif variant == "ses_central":
        fixed = (FixedStorage("SES", 1, 90, 360, 90),)
    travel = np.full((3, 3), travel_h) - np.eye(3, dtype=int) * travel_h
    return TransmissionCase(
        name=f"tiny-{variant}", T=T, bus_ids=(0, 1, 2), load_mw=load, units=units,
        wind=(WindFarm("wind", 2, wind),), line_names=("line 0-1", "line 0-2", "line 1-2"),
        ptdf=PTDF3, rating_mw=np.array([np.inf, rating_02_mw, np.inf]), stations=stations,
        trains=trains, fixed_storage=fixed, travel_h=travel,
        transport_cost_per_h=transport_cost_per_h)
