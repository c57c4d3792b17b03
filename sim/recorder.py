"""Collects rows during a run and hands them out as tidy pandas tables.

Rows are plain dicts appended to per-table lists (cheap on the hot path); DataFrames are built once
at the end. Results never live inside a pandapower net.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd

from sim.errors import RunFailure

# Column order of the tables the engine writes; tables not listed keep insertion order.
SCHEMAS: dict[str, tuple[str, ...]] = {
    "events": ("time_min", "vehicle", "event", "node", "detail"),
    "failures": ("time_min", "kind", "entity", "status", "message"),
}


class Recorder:
    """Append-only store of result rows, one list per table."""

    def __init__(self) -> None:
        self._rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._arrays: dict[str, list[tuple[int, str, np.ndarray, np.ndarray]]] = defaultdict(list)

    def row(self, table: str, **values: Any) -> None:
        self._rows[table].append(values)

    def event(self, time_min: int, vehicle: str, event: str, node: str, detail: str = "") -> None:
        self.row("events", time_min=int(time_min), vehicle=vehicle, event=event, node=node,
                 detail=detail)

    def failure(self, failure: RunFailure) -> None:
        self.row("failures", **asdict(failure))

    def array(self, table: str, time_min: int, entity: str, index: np.ndarray,
              values: np.ndarray) -> None:
        """Record a per-element array (bus voltages, line loadings) of one entity at one time."""
        self._arrays[table].append((int(time_min), entity, np.asarray(index), np.asarray(values)))

    def rows(self, table: str) -> list[dict[str, Any]]:
        return list(self._rows.get(table, []))

    def frames(self) -> dict[str, pd.DataFrame]:
        out: dict[str, pd.DataFrame] = {}
        for table in set(self._rows) | set(SCHEMAS):
            rows = self._rows.get(table, [])
            cols = SCHEMAS.get(table)
            df = pd.DataFrame(rows, columns=list(cols) if cols and not rows else None)
            if cols and rows:
                df = df[list(cols) + [c for c in df.columns if c not in cols]]
            out[table] = df
        for table, items in self._arrays.items():
            if not items:
                continue
            sizes = [len(i) for _, _, i, _ in items]
            time = np.repeat(np.array([t for t, _, _, _ in items]), sizes)
            entity = np.repeat(np.array([e for _, e, _, _ in items], dtype=object), sizes)
            index = np.concatenate([i for _, _, i, _ in items])
            values = np.concatenate([v for _, _, _, v in items])
            out[table] = pd.DataFrame({"time_min": time, "site": entity, "element": index,
                                       "value": values})
        return out
