"""``report.html`` of a sweep or benchmark directory (the page is :func:`render_sweep`).

Kept apart from :mod:`experiments.html_report` because it reads the directory through
:mod:`experiments.sweep` and :mod:`experiments.bench`, which import :mod:`experiments.run`, which
writes a run's page with :mod:`experiments.html_report`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from experiments.bench import bench_tables
from experiments.html_report import render_sweep
from experiments.run import atomic_write_bytes, git_hash, versions
from experiments.sweep import SweepError, read_manifest

BENCH_TABLES = ("stats", "paired", "solver", "wall")


def sweep_tables(out: Path) -> tuple[dict[str, pd.DataFrame], bool]:
    """The benchmark tables of ``out`` and whether it is a benchmark: the ``bench_*.parquet``
    that ``mescosim bench`` wrote, else (a sweep) computed from its results."""
    files = {k: out / f"bench_{k}.parquet" for k in BENCH_TABLES}
    if all(p.is_file() for p in files.values()):
        return {k: pd.read_parquet(p) for k, p in files.items()}, True
    man = read_manifest(out)
    if not len(man) or not (man.status == "ok").any():
        return {}, False
    ident = json.loads((out / "sweep.json").read_text(encoding="utf-8"))
    return bench_tables(out, list(ident.get("policies", [])) or None), False


def write_sweep_report(out: str | Path) -> Path:
    """Write ``out/report.html`` for the sweep or benchmark directory ``out`` (its tables, its
    figures under ``figures/``, its scenario and the manifest's failures); returns its path."""
    out = Path(out)
    if not (out / "sweep.json").is_file():
        raise SweepError(f"{out}: not a sweep directory (no sweep.json)")
    ident = json.loads((out / "sweep.json").read_text(encoding="utf-8"))
    config = out / "config.toml"
    text = config.read_text(encoding="utf-8") if config.is_file() else ""
    tables, bench = sweep_tables(out)
    figures = sorted((out / "figures").glob("*.png"))
    page = render_sweep(ident, text, read_manifest(out), tables, figures, bench, versions(),
                        git_hash())
    path = out / "report.html"
    atomic_write_bytes(path, page.encode("utf-8"))
    return path
