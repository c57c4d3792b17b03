"""``report.html`` of sweeps and benchmarks (``mescosim sweep`` / ``bench``): one self-contained
page with the benchmark tables, the failed scenarios and the figures embedded, that renders in
headless Chromium with no console errors. (The run's page is tested in tests/test_api.py.)"""

from __future__ import annotations

import base64
import re
import shutil

import pandas as pd
import pytest

from experiments.cli import main
from experiments.sweep import read_manifest
from experiments.sweep_report import write_sweep_report
from tests.chromium import render

SHORT = ["--set", "scenario.horizon_min=180", "--workers", "0", "--no-progress"]


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "b"
    assert main(["bench", "three-dn", "--policies", "idle,greedy", "--scenarios", "3",
                 "--out", str(out), *SHORT]) == 0
    return out


def _self_contained(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not re.search(r"(?:src|href)=['\"](?!data:|#)", page)
    assert "http://" not in page and "https://" not in page and "<script" not in page


def test_bench_writes_a_self_contained_report_with_its_tables_and_figures(bench_dir):
    page = (bench_dir / "report.html").read_text(encoding="utf-8")
    _self_contained(page)
    assert "<h1>benchmark: three-dn</h1>" in page and "status <b class='status-complete'>" in page
    figures = sorted((bench_dir / "figures").glob("*.png"))
    images = re.findall(r"src=\"data:image/png;base64,([^\"]+)\"", page)
    assert len(images) == len(figures) >= 3
    # the embedded images are the figure files, byte for byte
    assert sorted(base64.b64decode(i) for i in images) == sorted(p.read_bytes()
                                                                 for p in figures)
    # the numbers are the bench tables' (as written to bench_*.parquet), formatted as shown
    stats = pd.read_parquet(bench_dir / "bench_stats.parquet")
    for row in stats[stats.metric == "sfi_total"].itertuples():
        assert f"<td>{row.mean:.4g}</td>" in page and f"<td>{row.cvar10:.4g}</td>" in page
    paired = pd.read_parquet(bench_dir / "bench_paired.parquet")
    sfi = paired[paired.metric == "sfi_total"].iloc[0]
    assert (sfi.a, sfi.b) == ("idle", "greedy") and f"<td>{sfi.mean_diff:.4g}</td>" in page
    assert "Failed scenarios (0)" in page and "scenarios_ok" in page
    assert "name = &quot;three-dn&quot;" in page and "horizon_min = 180" in page


def test_sweep_report_lists_failed_scenarios_without_figures(tmp_path, capsys):
    out = tmp_path / "s"
    code = main(["sweep", "three-dn", "--scenarios", "2", "--out", str(out), "--no-figures",
                 "--set", "power_flow.max_iteration=1", "--set", "power_flow.tolerance_mva=1e-14",
                 *SHORT])
    man = read_manifest(out)
    failed = man[man.status != "ok"]
    assert code == 1 and len(failed) == 2
    assert f"report: {out / 'report.html'}" in capsys.readouterr().out
    page = (out / "report.html").read_text(encoding="utf-8")
    _self_contained(page)
    assert "<h1>sweep: three-dn</h1>" in page and "status <b class='status-partial'>" in page
    assert "Failed scenarios (2)" in page and "none written (--no-figures)" in page
    for row in failed.itertuples():
        assert f"<td>{row.status}</td>" in page
    assert "Per policy over 0 scenarios" in page


def test_a_directory_that_is_no_sweep_is_refused(tmp_path):
    from experiments.sweep import SweepError

    with pytest.raises(SweepError, match="no sweep.json"):
        write_sweep_report(tmp_path)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium package")
def test_sweep_report_renders_in_headless_chromium_without_console_errors(bench_dir, tmp_path):
    r = render(bench_dir / "report.html", tmp_path)
    assert r.dom.returncode == 0, r.dom.stderr[-2000:]
    n_fig = len(list((bench_dir / "figures").glob("*.png")))
    assert "Paired differences" in r.dom.stdout and r.dom.stdout.count("<img") == n_fig
    assert r.console == []
    assert r.snap.returncode == 0 and r.shot.stat().st_size > 20_000
