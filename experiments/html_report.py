"""``report.html``: one self-contained page per run directory, sweep or benchmark.

Everything is inside the file: the figures as base64 PNG ``data:`` URIs, the tables as HTML, the
style sheet inline, no script. It opens from the file system with no server and no network.

* a run (:func:`render`, :func:`write_report`): the run's facts, the summary per policy, SFI per
  site, recorded failures, solver outcomes per policy, the figures, the scenario as resolved
  (``config.toml``) and the versions;
* a sweep or benchmark (:func:`render_sweep`, written by
  :func:`experiments.sweep_report.write_sweep_report`): the sweep's identity and scenario
  statuses, the per-policy statistics and paired differences of the benchmark tables, solver
  outcomes and wall times, the failed scenarios, the sweep figures, the scenario and the versions.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import pandas as pd

#: rows of the failures table shown in the page (all of them are in failures.parquet)
MAX_FAILURE_ROWS = 200

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 72rem; padding: 0 1rem; color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
.facts { color: #555; }
.status-complete { color: #1a7f37; } .status-stopped, .status-partial { color: #b42318; }
table { border-collapse: collapse; margin: .5rem 0; font-size: .9rem; }
th, td { border: 1px solid #ddd; padding: .25rem .5rem; text-align: right; }
th { background: #f6f6f6; } td:first-child, th:first-child { text-align: left; }
figure { margin: 1rem 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: .85rem; }
pre { background: #f6f6f6; padding: .75rem; overflow-x: auto; font-size: .8rem; }
nav a { margin-right: .8rem; }
.scroll { overflow-x: auto; }
"""


def table_html(df: pd.DataFrame | None, index: bool = True, floatfmt: str = "{:.4g}") -> str:
    if df is None or len(df) == 0:
        return "<p>none</p>"
    table = df.to_html(index=index, border=0, na_rep="", escape=True,
                       float_format=lambda v: floatfmt.format(v))
    return f"<div class='scroll'>{table}</div>"


def figure_html(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    name = html.escape(path.name)
    return (f'<figure><img alt="{name}" src="data:image/png;base64,{data}">'
            f"<figcaption>{name}</figcaption></figure>")


def _solver_table(meta: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for p in meta.get("policies", []):
        t = p.get("timings_s", {})
        rows.append({"policy": p.get("name"),
                     "solves": ", ".join(f"{k} {v}" for k, v in
                                         sorted(p.get("solver_statuses", {}).items())) or "none",
                     "fallback_windows": p.get("fallback_windows", 0),
                     "engine_s": t.get("total"), "policy_s": t.get("policy"),
                     "grid_s": t.get("grid"),
                     "params": ", ".join(f"{k}={v!r}" for k, v in p.get("params", {}).items())})
    return pd.DataFrame(rows)


def render(result, config_text: str, figures: list[Path]) -> str:
    """The page of a :class:`experiments.run.RunResult` as an HTML string."""
    from experiments.metrics import summary_table

    meta = result.meta
    cfg = result.config
    esc = html.escape
    status = str(meta.get("status", "complete"))
    steps = cfg.scenario.horizon_min // cfg.scenario.step_min
    facts = (f"seed {result.seed}; {steps} steps of {cfg.scenario.step_min} min; "
             f"{len(cfg.fleet)} vehicles; {len(cfg.grids)} grids; "
             f"policies {', '.join(p['name'] for p in meta.get('policies', []))}; "
             f"{meta.get('wall_s', float('nan')):.1f} s; created {meta.get('created_utc', '')}"
             f"; git {meta.get('git') or 'unknown'}")
    parts = [f"<h1>{esc(cfg.scenario.name)}</h1>",
             f"<p class='facts'>{esc(cfg.scenario.description.strip())}</p>"
             if cfg.scenario.description.strip() else "",
             f"<p class='facts'>{esc(facts)}; status <b class='status-{esc(status)}'>"
             f"{esc(status)}</b></p>"]
    if meta.get("stopped"):
        st = meta["stopped"]
        parts.append(f"<p class='status-stopped'>stopped: power flow of {esc(str(st['site']))} "
                     f"at minute {st['time_min']} under {esc(str(st['policy']))}: "
                     f"{esc(str(st['status']))}</p>")
    for note in meta.get("marked", []):
        parts.append(f"<p class='status-stopped'>marked: {esc(str(note))}</p>")
    parts.append("<nav><a href='#summary'>summary</a><a href='#failures'>failures</a>"
                 "<a href='#solvers'>solvers</a><a href='#figures'>figures</a>"
                 "<a href='#config'>scenario</a><a href='#versions'>versions</a></nav>")

    parts.append("<h2 id='summary'>Summary per policy</h2>")
    if result.metrics is not None and len(result.metrics):
        parts.append(table_html(summary_table(result.metrics)))
        lim = result.info.get("limits", {})
        if lim:
            parts.append(f"<p class='facts'>voltage limits [{lim['vm_min_pu']}, "
                         f"{lim['vm_max_pu']}] p.u.; line loading limit "
                         f"{lim['loading_max_pct']:g} %</p>")
        m = result.metrics
        per_site = m[(m.metric == "sfi_accumulated") & (m.entity != "system")]
        if len(per_site):
            parts.append("<h3>Accumulated SFI per site</h3>")
            parts.append(table_html(per_site.pivot_table(index="policy", columns="entity",
                                                     values="value")))

    failures = result.tables.get("failures")
    n_fail = 0 if failures is None else len(failures)
    parts.append(f"<h2 id='failures'>Recorded failures ({n_fail})</h2>")
    if n_fail:
        counts = failures.groupby(["policy", "kind", "status"]).size().rename("count")
        parts.append(table_html(counts.reset_index(), index=False))
        shown = failures.head(MAX_FAILURE_ROWS)
        if n_fail > MAX_FAILURE_ROWS:
            parts.append(f"<p class='facts'>first {MAX_FAILURE_ROWS} of {n_fail} rows "
                         f"(all in failures.parquet)</p>")
        parts.append(table_html(shown, index=False))
    else:
        parts.append("<p>none: every power flow converged and every solve was optimal</p>")

    parts.append("<h2 id='solvers'>Policies, solver outcomes and timings</h2>")
    parts.append(table_html(_solver_table(meta), index=False))

    parts.append(f"<h2 id='figures'>Figures ({len(figures)})</h2>")
    parts += [figure_html(p) for p in figures] or ["<p>none written (--no-figures)</p>"]

    parts.append("<h2 id='config'>Scenario as resolved (config.toml)</h2>")
    parts.append(f"<pre>{esc(config_text)}</pre>")
    parts.append("<h2 id='versions'>Versions</h2>")
    parts.append(_versions_table(meta.get("versions", {})))

    return page(f"mescosim run: {cfg.scenario.name} (seed {result.seed})", parts)


def page(title: str, parts: list[str]) -> str:
    """The whole document: ``title`` (plain text) and the body's HTML ``parts``."""
    body = "\n".join(p for p in parts if p)
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
            f"{body}\n</body></html>\n")


def _versions_table(versions: dict[str, str]) -> str:
    return table_html(pd.DataFrame(sorted(versions.items()), columns=["package", "version"]),
                      index=False)


def render_sweep(ident: dict[str, Any], config_text: str, manifest: pd.DataFrame,
                 tables: dict[str, pd.DataFrame], figures: list[Path], bench: bool,
                 versions: dict[str, str], git: str | None) -> str:
    """The page of a sweep or benchmark directory as an HTML string.

    ``ident`` is the directory's ``sweep.json``; ``manifest`` one row per scenario (its last
    attempt); ``tables`` the benchmark tables (``stats``, ``paired``, ``solver``, ``wall``; empty
    when no scenario succeeded); ``versions`` and ``git`` those of the process writing the page.
    """
    esc = html.escape
    kind = "benchmark" if bench else "sweep"
    name = str(ident.get("scenario", "?"))
    n = len(manifest)
    counts = manifest.status.value_counts() if n else pd.Series(dtype=int)
    ok = int(counts.get("ok", 0))
    wall = pd.to_numeric(manifest.get("wall_s", pd.Series(dtype=float)), errors="coerce")
    facts = (f"{n} of {ident.get('n_scenarios', n)} scenarios finished "
             f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items())) or 'none'}); "
             f"base seed {ident.get('seed')}; policies {', '.join(ident.get('policies', []))}; "
             f"{float(wall.sum()):.1f} s of scenario wall time; config hash "
             f"{ident.get('config_hash', '?')}; created {ident.get('created_utc', '')}")
    if ident.get("family"):
        facts += f"; family {ident['family']}"
    status = "complete" if n and ok == n else "partial"
    parts = [f"<h1>{esc(kind)}: {esc(name)}</h1>",
             f"<p class='facts'>{esc(facts)}; status <b class='status-{status}'>{status}</b></p>",
             "<nav><a href='#stats'>statistics</a><a href='#paired'>paired</a>"
             "<a href='#solvers'>solvers</a><a href='#failed'>failed</a>"
             "<a href='#figures'>figures</a><a href='#config'>scenario</a>"
             "<a href='#versions'>versions</a></nav>"]

    stats = tables.get("stats")
    parts.append(f"<h2 id='stats'>Per policy over {ok} scenarios</h2>")
    parts.append("<p class='facts'>worst and cvar10 (mean of the worst 10 %) look in each "
                 "metric's bad direction: low SFI, high losses, high cost</p>")
    if stats is not None and len(stats):
        stats = stats[["metric", "policy", *[c for c in stats if c not in ("metric", "policy")]]]
    parts.append(table_html(stats, index=False))
    paired = tables.get("paired")
    parts.append("<h2 id='paired'>Paired differences b - a over the same scenarios</h2>")
    if paired is not None and len(paired):
        parts.append("<p class='facts'>mean of b - a, its 95 % Student-t interval and the share "
                     "of scenarios in which b is better</p>")
        parts.append(table_html(paired, index=False))
    else:
        parts.append("<p>none (one policy)</p>")
    parts.append("<h2 id='solvers'>Solver outcomes, scenario statuses and wall time</h2>")
    for key in ("solver", "wall"):
        df = tables.get(key)
        parts.append(table_html(None if df is None or df.empty else df, index=False))

    failed = manifest[manifest.status != "ok"] if n else manifest
    parts.append(f"<h2 id='failed'>Failed scenarios ({len(failed)})</h2>")
    if len(failed):
        shown = failed.head(MAX_FAILURE_ROWS)[["scenario", "seed", "status", "attempt", "error"]]
        shown = shown.assign(error=shown.error.map(
            lambda e: str(e).strip().splitlines()[0] if isinstance(e, str) and e.strip() else ""))
        if len(failed) > MAX_FAILURE_ROWS:
            parts.append(f"<p class='facts'>first {MAX_FAILURE_ROWS} of {len(failed)} "
                         f"(all in manifest.jsonl)</p>")
        parts.append(table_html(shown, index=False))
    else:
        parts.append("<p>none</p>")

    parts.append(f"<h2 id='figures'>Figures ({len(figures)})</h2>")
    parts += [figure_html(p) for p in figures] or ["<p>none written (--no-figures)</p>"]
    parts.append("<h2 id='config'>Scenario as resolved (config.toml)</h2>")
    parts.append(f"<pre>{esc(config_text)}</pre>")
    parts.append("<h2 id='versions'>Versions</h2>")
    parts.append(f"<p class='facts'>of the process that wrote this page; git "
                 f"{esc(git or 'unknown')}</p>")
    parts.append(_versions_table(versions))
    return page(f"mescosim {kind}: {name} (seed {ident.get('seed')})", parts)


def write_report(result, out: str | Path) -> Path:
    """Write ``out/report.html`` for a run directory ``out`` already holding ``config.toml``
    and the figures of ``result.figures``; returns its path."""
    out = Path(out)
    config = out / "config.toml"
    text = config.read_text(encoding="utf-8") if config.is_file() else ""
    figures = [p if p.is_absolute() else out / p for p in result.figures]
    path = out / "report.html"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render(result, text, [p for p in figures if p.is_file()]), encoding="utf-8")
    tmp.replace(path)
    return path
