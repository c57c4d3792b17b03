"""The fast paths of the engine step against the paths they replace.

* the local operator's cached MILP (matrix built once per step length, bounds rewritten per
  step) against a fresh build every step: every array equal, the same objective per step to
  1e-9 and the same dispatch;
* :func:`grids.operator.solve_arrays` on its reused HiGHS instance against a fresh instance
  per solve: the same solution, bit for bit (each solve starts cold, so the tie rule, charge
  mode first, then HiGHS's own vertex choice, is the same on both);
* the whole ``three-dn`` run on the fast step (the operator in closed form, power flow straight
  from the injection vector) against the reference step (a fresh LP and HiGHS instance per
  step, the adapter's tables). The closed form against the LP step by step is in
  ``tests/test_operator_closed_form.py``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import grids.operator as operator_mod
from grids.operator import LocalOperator
from tests.test_grids import SPECS


def _resources():
    """The three A.11 DNs, one of them with a storage ramp (the ES ramp row) and one without
    storage or DR (the model without the binary)."""
    out = {k: s.resources for k, s in SPECS.items()}
    r = out["dn2"]
    out["dn2_ramp"] = dataclasses.replace(
        r, storage=dataclasses.replace(r.storage, ramp_mw_per_h=0.3))
    out["dn3_bare"] = dataclasses.replace(out["dn3"], dr=None, storage=None)
    return out


def _inputs(name: str, step_min: int, days: int, seed: int):
    spec = SPECS[name.split("_")[0]]
    horizon = 1440 * days
    load = spec.load_profile.per_step(step_min, horizon) * spec.peak_load_mw
    pv = spec.pv_profile.per_step(step_min, horizon) * spec.pv_cap_mw
    mess = np.random.default_rng(seed).uniform(-0.6, 0.6, load.size)
    mess[np.random.default_rng(seed + 1).random(load.size) < 0.3] = 0.0
    return load, pv, mess


@pytest.mark.parametrize("step_min", [15, 60])
def test_cached_operator_model_equals_a_fresh_build_every_step(monkeypatch, step_min):
    models: list[tuple] = []
    orig = operator_mod.solve_arrays

    def capture(*args):
        arrays = tuple(np.array(a.toarray() if hasattr(a, "toarray") else a, copy=True)
                       for a in args[:7])
        models.append([arrays, None])
        out = orig(*args)  # may raise: the operator then falls back to merit order
        models[-1][1] = float(args[0] @ out[0])
        return out

    monkeypatch.setattr(operator_mod, "solve_arrays", capture)
    statuses = set()
    for k, (name, res) in enumerate(_resources().items()):
        fast, ref = LocalOperator(res, method="lp"), LocalOperator(res, reuse_model=False)
        assert fast.reuse_model and not ref.reuse_model and ref.method == "lp"
        load, pv, mess = _inputs(name, step_min, 2, seed=10 + k)
        for i in range(load.size):
            t = i * step_min
            models.clear()
            a = fast.dispatch(t, step_min, load[i], pv[i], mess[i])
            b = ref.dispatch(t, step_min, load[i], pv[i], mess[i])
            assert len(models) == 2, "both paths solve through solve_arrays"
            (mf, obj_f), (mr, obj_r) = models
            for x, y, what in zip(mf, mr, ("c", "A", "row_lo", "row_hi", "lb", "ub", "integ")):
                assert x.shape == y.shape and np.array_equal(x, y), (name, i, what)
            assert a.status == b.status and a.message == b.message
            statuses.add(a.status)
            # the same model solved the same way: the objective and the dispatch agree
            if obj_f is None or obj_r is None:
                assert obj_f is obj_r is None
            else:
                assert obj_f == pytest.approx(obj_r, abs=1e-9)
            assert dict(a.dispatch_mw) == pytest.approx(dict(b.dispatch_mw), abs=1e-9)
            assert a.residual_mw == pytest.approx(b.residual_mw, abs=1e-9)
            assert a.es_e_mwh == pytest.approx(b.es_e_mwh, abs=1e-9, nan_ok=True)
    assert "optimal" in statuses


def test_reused_highs_instance_gives_the_fresh_instance_solution(monkeypatch):
    """Every model of two days on each DN, solved on the reused instance and on a fresh one:
    the same objective to 1e-9 and the same point (the reuse must not warm-start)."""
    models = []
    orig = operator_mod.solve_arrays

    def capture(*args):
        models.append(args)
        return orig(*args)

    monkeypatch.setattr(operator_mod, "solve_arrays", capture)
    for k, (name, res) in enumerate(_resources().items()):
        op = LocalOperator(res, method="lp")
        load, pv, mess = _inputs(name, 15, 2, seed=20 + k)
        for i in range(load.size):
            op.dispatch(15 * i, 15, load[i], pv[i], mess[i])
    assert len(models) == 5 * 192
    # interleave the solves so that the reused instance always held a different model before
    order = np.random.default_rng(3).permutation(len(models))
    solved = 0
    for j in order:
        c, a, lo, hi, lb, ub, integ, limit = models[j]
        try:
            x_fresh, s2, _ = orig(c, a, lo, hi, lb, ub, integ, limit, fresh=True)
        except RuntimeError as exc:  # an infeasible step: the reused instance says so too
            with pytest.raises(RuntimeError, match=str(exc).split(" with ")[0]):
                orig(c, a, lo, hi, lb, ub, integ, limit)
            continue
        x_reused, s1, _ = orig(c, a, lo, hi, lb, ub, integ, limit)
        assert s1 == s2 == "optimal"
        solved += 1
        assert c @ x_reused == pytest.approx(c @ x_fresh, abs=1e-9)
        assert np.array_equal(x_reused, x_fresh)
    assert solved > 0.9 * len(models)


@pytest.mark.slow
def test_three_dn_metrics_equal_on_the_fast_and_the_reference_step(monkeypatch):
    """three-dn at 15-min steps under idle, stationary and greedy: the fast step (the
    operator in closed form, power flow straight from the injection vector) and the reference
    step (the operator's LP on a fresh model and HiGHS instance, the adapter's pandas tables)
    give the same metrics to 1e-6 relative and the same per-step site rows."""
    from experiments.config import load, resolve
    from experiments.run import run_one
    from grids.site import DistributionSite

    cfg = load(resolve("three-dn"), overrides=["scenario.step_min=15"])
    assert sorted(n for n, _ in cfg.policy_runs()) == ["greedy", "idle", "stationary"]
    direct = []
    orig = DistributionSite._solve_direct

    def counted(self, *args):
        out = orig(self, *args)
        direct.append(out is not None)
        return out

    monkeypatch.setattr(DistributionSite, "_solve_direct", counted)
    assert LocalOperator.METHOD == "closed_form"
    lp_calls = []
    with monkeypatch.context() as m:
        lp = operator_mod.solve_arrays
        m.setattr(operator_mod, "solve_arrays", lambda *a, **k: lp_calls.append(1) or lp(*a, **k))
        fast = run_one(cfg, record_arrays=False)
    assert lp_calls == []  # the closed form solved every step of the fast run
    assert sum(direct) > 0.9 * 3 * 3 * 96  # the direct path really carried the steps
    monkeypatch.setattr(DistributionSite, "direct_pf", False)
    monkeypatch.setattr(LocalOperator, "REUSE_MODEL", False)
    monkeypatch.setattr(operator_mod, "_highs", lambda limit: pytest.fail("reused HiGHS"))
    n_direct = len(direct)
    with monkeypatch.context() as m:
        fresh = operator_mod.solve_arrays
        m.setattr(operator_mod, "solve_arrays",
                  lambda *a: fresh(*a, fresh=True))
        ref = run_one(cfg, record_arrays=False)
    assert len(direct) == n_direct  # the reference run never took the direct path
    a, b = fast.metrics, ref.metrics
    assert list(a.columns) == list(b.columns) and a.shape == b.shape and len(a) > 20
    num = a.select_dtypes("number").columns
    assert len(num) >= 1
    np.testing.assert_allclose(a[num].to_numpy(float), b[num].to_numpy(float), rtol=1e-6,
                               atol=1e-9)
    assert a.drop(columns=num).equals(b.drop(columns=num))
    sa, sb = fast.tables["sites"], ref.tables["sites"]
    assert sa.shape == sb.shape
    num = sa.select_dtypes("number").columns
    np.testing.assert_allclose(sa[num].to_numpy(float), sb[num].to_numpy(float), rtol=1e-6,
                               atol=1e-9)
    assert sa.drop(columns=num).equals(sb.drop(columns=num))
