"""The run's progress hook: the engine reports every settled step of every policy, and the
command line's bar counts them all (it is drawn only on a terminal)."""

from __future__ import annotations

from experiments.cli import _run_bar
from experiments.config import load
from experiments.run import run_one


def test_progress_sees_every_step_of_every_policy():
    cfg = load("three-dn", ["scenario.horizon_min=240", 'compare.policies=["idle"]'])
    calls: list[tuple[str, int, int]] = []
    run_one(cfg, progress=lambda p, k, n: calls.append((p, k, n)))
    n = 240 // cfg.scenario.step_min
    assert calls == [(p, k, n) for p in ("greedy", "idle") for k in range(1, n + 1)]
    bar = _run_bar(cfg)
    assert bar.bar.total == 2 * n
    for p, k, m in calls:
        bar.update_to(p, k, m)
    assert sum(bar.done.values()) == bar.bar.total
    bar.close()
