"""Read-only arrays for the frozen types every layer exchanges."""

from __future__ import annotations

import numpy as np


def frozen_array(values, dtype=float) -> np.ndarray:
    """An array (float unless ``dtype`` says otherwise) that cannot be written to."""
    arr = np.array(values, dtype=dtype)
    arr.setflags(write=False)
    return arr
