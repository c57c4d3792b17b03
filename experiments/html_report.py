"""``report.html``: one self-contained page per run directory.

Everything is inside the file: the figures as base64 PNG ``data:`` URIs, the tables as HTML, the
style sheet inline, no script. It opens from the file system with no server and no network.
Sections: the run's facts, the summary per policy, SFI per site, recorded failures, solver
outcomes per policy, the figures, the scenario as resolved (``config.toml``) and the versions.
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


def _table(df: pd.DataFrame | None, index: bool = True, floatfmt: str = "{:.4g}") -> str:
    if df is None or len(df) == 0:
        return "<p>none</p>"
    table = df.to_html(index=index, border=0, na_rep="", escape=True,
                       float_format=lambda v: floatfmt.format(v))
    return f"<div class='scroll'>{table}</div>"


def _figure(path: Path) -> str:
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
        parts.append(_table(summary_table(result.metrics)))
        lim = result.info.get("limits", {})
        if lim:
            parts.append(f"<p class='facts'>voltage limits [{lim['vm_min_pu']}, "
                         f"{lim['vm_max_pu']}] p.u.; line loading limit "
                         f"{lim['loading_max_pct']:g} %</p>")
        m = result.metrics
        per_site = m[(m.metric == "sfi_accumulated") & (m.entity != "system")]
        if len(per_site):
            parts.append("<h3>Accumulated SFI per site</h3>")
            parts.append(_table(per_site.pivot_table(index="policy", columns="entity",
                                                     values="value")))

    failures = result.tables.get("failures")
    n_fail = 0 if failures is None else len(failures)
    parts.append(f"<h2 id='failures'>Recorded failures ({n_fail})</h2>")
    if n_fail:
        counts = failures.groupby(["policy", "kind", "status"]).size().rename("count")
        parts.append(_table(counts.reset_index(), index=False))
        shown = failures.head(MAX_FAILURE_ROWS)
        if n_fail > MAX_FAILURE_ROWS:
            parts.append(f"<p class='facts'>first {MAX_FAILURE_ROWS} of {n_fail} rows "
                         f"(all in failures.parquet)</p>")
        parts.append(_table(shown, index=False))
    else:
        parts.append("<p>none: every power flow converged and every solve was optimal</p>")

    parts.append("<h2 id='solvers'>Policies, solver outcomes and timings</h2>")
    parts.append(_table(_solver_table(meta), index=False))

    parts.append(f"<h2 id='figures'>Figures ({len(figures)})</h2>")
    parts += [_figure(p) for p in figures] or ["<p>none written (--no-figures)</p>"]

    parts.append("<h2 id='config'>Scenario as resolved (config.toml)</h2>")
    parts.append(f"<pre>{esc(config_text)}</pre>")
    parts.append("<h2 id='versions'>Versions</h2>")
    versions = pd.DataFrame(sorted(meta.get("versions", {}).items()),
                            columns=["package", "version"])
    parts.append(_table(versions, index=False))

    title = esc(f"mescosim run: {cfg.scenario.name} (seed {result.seed})")
    body = "\n".join(p for p in parts if p)
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{title}</title><style>{STYLE}</style></head>\n<body>\n{body}\n"
            f"</body></html>\n")


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
