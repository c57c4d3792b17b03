"""HiGHS's banner kept off stdout, for every layer that makes a ``highspy.Highs`` object.

highspy (1.16) prints its banner on the C-level stdout when the first ``Highs`` object of a
process is made, before any option can be set. :func:`quiet_highs` makes that first object with
file descriptor 1 on the null device (once per process); later objects are silent, and each solve
sets ``output_flag`` off. The local operators (``grids``) and the planners (``policies``) call it
before their first solve, so a run's stdout holds only what the command line prints.
"""

from __future__ import annotations

import os
import sys

__all__ = ["quiet_highs"]

_QUIET = False


def quiet_highs() -> None:
    """Make the process's first ``highspy.Highs`` with stdout on the null device (once)."""
    global _QUIET
    if _QUIET:
        return
    _QUIET = True
    import highspy

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            try:
                highspy.Highs()
            finally:
                os.dup2(saved, 1)
    finally:
        os.close(saved)
