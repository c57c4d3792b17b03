"""The hindsight oracle of the DN scenarios (``bench --oracle`` on three-dn): the weighted-SFI
MILP planning with the realised load and PV, through the same engine on the same realisation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from experiments.bench import bench_tables
from experiments.config import apply_overrides, read_raw, resolve, validate
from experiments.families import ORACLE, dn_hindsight_config, dn_realisation
from experiments.run import run_one
from experiments.sweep import DnOracleTarget, config_hash, load_sweep_config, run_sweep
from experiments.sweep_figures import compute_time_vs_objective

SHORT = ["scenario.horizon_min=240"]
MIP_GAP = 5e-3  # the milp policy's default relative gap


def _cfg(sets: list[str], policies: list[str]):
    raw = apply_overrides(read_raw(resolve("three-dn")), sets)
    raw["policy"] = {"name": policies[0], "params": {}}
    raw["compare"] = {"policies": policies[1:], "params": {}}
    return validate(raw, source="three-dn")


def _whole(df: pd.DataFrame) -> pd.Series:
    return df[df.time_min.isna() & (df.entity == "system")].set_index(["policy", "metric"]).value


def test_hindsight_config_forecasts_the_realisation():
    cfg = _cfg(SHORT, ["idle"])
    seed = 123
    actual = dn_realisation(cfg, seed)
    hind = dn_hindsight_config(cfg, seed)
    assert [n for n, _ in hind.policy_runs()] == ["milp"]
    assert hind.uncertainty.load_sigma == 0 and hind.uncertainty.pv_sigma == 0
    # what the engine's sites meet in run_one(cfg) is what the oracle plans on
    seen = run_one(cfg, seed).tables["sites"]
    told = run_one(hind, seed).tables["sites"]
    for i, name in enumerate(cfg.grids):
        a = seen[seen.site == name].sort_values("time_min")
        b = told[told.site == name].sort_values("time_min")
        np.testing.assert_allclose(a.load_mw.to_numpy(), actual.load_mw[i], rtol=1e-12)
        np.testing.assert_allclose(b.load_mw.to_numpy(), actual.load_mw[i], rtol=1e-12)
        np.testing.assert_allclose(b.pv_mw.to_numpy(), actual.pv_mw[i], rtol=1e-12, atol=1e-12)
    # another seed, another realisation
    assert not np.allclose(dn_realisation(cfg, seed + 1).load_mw, actual.load_mw)


def test_oracle_beats_every_policy_on_its_scenario():
    target = DnOracleTarget(_cfg(SHORT, ["idle", "greedy", "milp"]))
    for k, seed in enumerate((5, 6)):
        frame, wall = target.run(k, seed)
        assert set(wall) == {"idle", "greedy", "milp", ORACLE}
        w = _whole(frame)
        best = w[(ORACLE, "sfi_total")]
        for pol in ("idle", "greedy", "milp"):
            assert best >= w[(pol, "sfi_total")] - MIP_GAP * abs(best), (seed, pol)
        assert best > w[("idle", "sfi_total")]  # the fleet adds flexibility
        solves = frame[(frame.entity == "solver") & (frame.policy == ORACLE)]
        assert set(solves.metric) == {"solves_optimal"}


def test_oracle_equals_milp_without_noise():
    sets = SHORT + ["uncertainty.load_sigma=0", "uncertainty.pv_sigma=0"]
    frame, _ = DnOracleTarget(_cfg(sets, ["milp", "greedy"])).run(0, 9)
    w = _whole(frame)
    for m in ("sfi_total", "energy_delivered_mwh", "losses_mwh"):
        assert w[(ORACLE, m)] == pytest.approx(w[("milp", m)], rel=1e-6, abs=1e-9), m


def test_bench_oracle_regret_and_resume(tmp_path):
    target = DnOracleTarget(_cfg(SHORT, ["idle", "milp"]))
    out = tmp_path / "b"
    run_sweep(target, out, n=2, seed=3, workers=0, progress=False)
    again = load_sweep_config(out)
    assert isinstance(again, DnOracleTarget) and again.config_hash() == target.config_hash()
    assert again.policies == ["idle", "milp"]
    # a plain sweep of the same scenario is another config: refused in the same directory
    assert target.config_hash() != config_hash(target.cfg)
    tables = bench_tables(out, ["idle", "milp"])
    reg = tables["regret"].set_index(["metric", "policy"])
    st = tables["stats"].set_index(["metric", "policy"])
    assert reg.loc[("sfi_total", "idle"), "mean_regret"] == pytest.approx(
        st.loc[("sfi_total", ORACLE), "mean"] - st.loc[("sfi_total", "idle"), "mean"])
    assert reg.loc[("sfi_total", "idle"), "mean_regret"] > 0
    assert ORACLE in set(tables["wall"].policy)
    png = compute_time_vs_objective(out, tmp_path / "t.png")
    assert png is not None and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

