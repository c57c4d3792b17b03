"""Policy benchmark: every policy on the same scenario set, summarised from a sweep directory.

``mescosim bench`` is a sweep whose policies are the ones named on the command line: every policy
of scenario ``k`` runs on the same realisation (common random numbers), so differences between
policies are paired by scenario. :func:`bench_tables` reads a sweep directory and returns tidy
tables:

* ``stats``: per policy and system metric, ``n``, ``mean``, ``worst``, ``p10``, ``p50``, ``p90``
  and ``cvar10``. ``worst`` and ``cvar10`` (the mean of the worst 10 % of scenarios) look in the
  metric's bad direction (:data:`DIRECTION`: low SFI, high losses, high cost). Quantiles are
  :func:`experiments.scenarios_mc.weighted_quantile` with equal probabilities.
* ``paired``: per metric and pair of policies, the mean of ``b - a`` over the scenarios, its
  standard deviation, a 95 % Student-t confidence interval and the share of scenarios in which
  ``b`` is better.
* ``solver``: per policy, the count of every typed solve outcome (``optimal``, ``time_limit``,
  ``infeasible``...) over all its scenarios (a re-planning policy reports every re-solve, not
  only its first plan), ``worst_solve`` (the worst outcome any of them had, in the order of
  :data:`SOLVE_ORDER`; empty for a policy that solves nothing), and the scenario statuses of
  the manifest.
* ``wall``: per policy, the engine's wall time per scenario (mean, total) from the manifest.
* ``regret`` (only when the sweep has hindsight rows, policy ``oracle``: see
  :mod:`experiments.families`): per policy and metric, the mean over scenarios of how much worse
  the policy did than the hindsight plan on the same realisation (``sign x (oracle - policy)``,
  positive = worse), with its 95 % t interval, and ``oracle_not_optimal``: in how many of
  those scenarios the oracle's solve was not proven optimal (a time-limited oracle is a
  feasible plan, not the optimum: the regret against it is then understated). The oracle is
  also a row of ``stats`` and ``paired``.

Only scenarios with status ``ok`` enter ``stats`` and ``paired``; the others are counted in
``solver`` (``scenarios_<status>``).
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from experiments.families import ORACLE
from experiments.run import atomic_parquet
from experiments.scenarios_mc import cvar, weighted_quantile
from experiments.sweep import read_manifest, read_results

#: system metrics of the benchmark and their good direction (+1 higher is better, -1 lower)
DIRECTION = {
    "sfi_total": +1,
    "energy_delivered_mwh": +1,
    "losses_mwh": -1,
    "residual_abs_mwh": -1,
    "voltage_violation_bus_steps": -1,
    "loading_violation_line_steps": -1,
    "nonconverged_steps": -1,
    "trips": -1,
    # truck missions (experiments.families.TruckTarget)
    "cost_usd": -1,
    "operating_usd": -1,
    "served_customers": +1,
    "delivered_kwh": +1,
    "unmet_kwh": -1,
    "delay_min": -1,
    "queue_min": -1,
    "recorded_failures": -1,
    "soh_loss": -1,
    # train transmission (experiments.families.TrainTarget)
    "operating_cost": -1,
    "total_cost": -1,
    "wind_curtailed_mwh": -1,
    "imbalance_mwh": -1,
}


#: typed solve outcomes (:class:`policies.solve.SolveOutcome`), best first; an outcome not listed
#: ranks after them
SOLVE_ORDER = ("optimal", "feasible_gap", "time_limit", "infeasible", "unbounded", "error")


def worst_solve(counts: dict[str, float]) -> str:
    """The worst outcome with a non-zero count (``solves_<status>`` keys or bare statuses)."""
    seen = [k.removeprefix("solves_") for k, v in counts.items() if v > 0]
    if not seen:
        return ""
    return max(seen, key=lambda s: (SOLVE_ORDER.index(s) if s in SOLVE_ORDER
                                    else len(SOLVE_ORDER), s))


def _ok_scenarios(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    man = read_manifest(out)
    ok = man[man.status == "ok"].scenario.astype(int).tolist()
    res = read_results(out, columns=["scenario", "policy", "entity", "metric", "time_min",
                                     "value"],
                       filters=[("entity", "in", ["system", "solver"])])
    res = res[res.time_min.isna()]
    return man, res[res.scenario.isin(ok)]


def _stats(values: np.ndarray, sign: int) -> dict[str, float]:
    n = values.size
    p = np.full(n, 1.0 / n)
    return {"n": n, "mean": float(values.mean()),
            "worst": float(values.min() if sign > 0 else values.max()),
            "p10": weighted_quantile(values, p, 0.10), "p50": weighted_quantile(values, p, 0.50),
            "p90": weighted_quantile(values, p, 0.90),
            "cvar10": sign * cvar(sign * values, p, 0.10) + 0.0}  # + 0.0: no -0


def bench_tables(out: str | Path, policies: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """The benchmark's tidy tables (see the module docstring) from sweep directory ``out``."""
    out = Path(out)
    man, res = _ok_scenarios(out)
    system = res[res.entity == "system"]
    pols = list(policies or pd.unique(system.policy))
    has_oracle = ORACLE in set(system.policy)
    # scenarios whose oracle solve was not proven optimal (time limit, gap, failure)
    osol = res[(res.entity == "solver") & (res.policy == ORACLE) & (res.value > 0)]
    not_proven = set(osol[osol.metric != "solves_optimal"].scenario)
    if has_oracle and ORACLE not in pols:
        pols.append(ORACLE)
    rows, paired, regret = [], [], []
    for metric, sign in DIRECTION.items():
        wide = (system[system.metric == metric]
                .pivot_table(index="scenario", columns="policy", values="value")
                .reindex(columns=pols).dropna())
        if wide.empty:
            continue
        for pol in pols:
            rows.append({"policy": pol, "metric": metric, **_stats(wide[pol].to_numpy(), sign)})
        for a, b in combinations(pols, 2):
            d = (wide[b] - wide[a]).to_numpy()
            n = d.size
            sd = float(d.std(ddof=1)) if n > 1 else float("nan")
            half = float(sps.t.ppf(0.975, n - 1) * sd / np.sqrt(n)) if n > 1 else float("nan")
            paired.append({"metric": metric, "a": a, "b": b, "n": n,
                           "mean_diff": float(d.mean()), "sd_diff": sd,
                           "ci95_lo": float(d.mean()) - half, "ci95_hi": float(d.mean()) + half,
                           "share_b_better": float(np.mean(sign * d > 0))})
        if has_oracle:
            limited = int(wide.index.isin(not_proven).sum())
            for pol in pols:
                if pol == ORACLE:
                    continue
                r = sign * (wide[ORACLE] - wide[pol]).to_numpy()
                n = r.size
                sd = float(r.std(ddof=1)) if n > 1 else float("nan")
                half = float(sps.t.ppf(0.975, n - 1) * sd / np.sqrt(n)) if n > 1 \
                    else float("nan")
                regret.append({"metric": metric, "policy": pol, "n": n,
                               "mean_regret": float(r.mean()), "ci95_lo": float(r.mean()) - half,
                               "ci95_hi": float(r.mean()) + half,
                               "share_worse": float(np.mean(r > 1e-9)),
                               "oracle_not_optimal": limited})
    solver = res[res.entity == "solver"].groupby(["policy", "metric"]).value.sum()
    solver = solver.unstack(fill_value=0).reindex(pols).fillna(0).astype(int)
    solver["worst_solve"] = [worst_solve(row.to_dict()) for _, row in solver.iterrows()]
    for status, count in man.status.value_counts().items():
        solver[f"scenarios_{status}"] = int(count)
    wall_rows = []
    for pol in pols:
        secs = np.array([float(d.get(pol, np.nan)) for d in man.policy_s
                         if isinstance(d, dict) and pol in d])
        wall_rows.append({"policy": pol, "scenarios": int(secs.size),
                          "engine_s_mean": float(secs.mean()) if secs.size else float("nan"),
                          "engine_s_total": float(secs.sum())})
    tables = {"stats": pd.DataFrame(rows), "paired": pd.DataFrame(paired),
              "solver": solver.reset_index(), "wall": pd.DataFrame(wall_rows)}
    if has_oracle:
        tables["regret"] = pd.DataFrame(regret)
    return tables


def write_bench(out: str | Path, tables: dict[str, pd.DataFrame]) -> list[Path]:
    """Write each table as ``bench_<name>.parquet`` in ``out`` (atomically, like every table
    of a run directory); returns the paths."""
    paths = []
    for name, df in tables.items():
        path = Path(out) / f"bench_{name}.parquet"
        atomic_parquet(df, path)
        paths.append(path)
    return paths


def format_bench(tables: dict[str, pd.DataFrame]) -> str:
    """The tables as text for the terminal."""
    parts = []
    with pd.option_context("display.width", 140, "display.max_columns", 20,
                           "display.float_format", "{:.4g}".format):
        st = tables["stats"]
        if len(st):
            parts.append("per policy (worst and cvar10 in the bad direction: low SFI, high "
                         "losses...)\n" + st.set_index(["metric", "policy"]).to_string())
        pa = tables["paired"]
        if len(pa):
            parts.append("paired differences b - a over the same scenarios (95 % t interval)\n"
                         + pa.set_index(["metric", "a", "b"]).to_string())
        parts.append("solver outcomes and scenario statuses\n"
                     + tables["solver"].set_index("policy").to_string())
        parts.append("engine wall time per policy\n"
                     + tables["wall"].set_index("policy").to_string())
        reg = tables.get("regret")
        if reg is not None and len(reg):
            parts.append("regret against the hindsight oracle (positive = worse than the "
                         "oracle on the same realisation; 95 % t interval)\n"
                         + reg.set_index(["metric", "policy"]).to_string())
    return "\n\n".join(parts)
