"""A self-contained HTML report: every value escaped, no script, works offline.

Defence in depth: every value from the data goes through ``html.escape``; the page carries a
Content-Security-Policy that forbids scripts altogether; plots are SVG embedded as data-URI
images, which browsers never execute.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from crucible_dagster.bench.rows import ComparisonRow, comparison_rows, omnibus_rows
from crucible_dagster.reports.model import Plot, format_number, report_data, verdict_label
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.metrics import numeric_metrics

CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; "
    "form-action 'none'"
)
STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1100px;
color:#111827;line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}
h2{margin-top:2rem;border-bottom:1px solid #e5e7eb;padding-bottom:.3rem}
table{border-collapse:collapse;width:100%;font-size:.88rem;margin:.6rem 0}
th,td{border:1px solid #e5e7eb;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f9fafb}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#166534;font-weight:600}.fail{color:#b91c1c;font-weight:600}
.warn{color:#b45309;font-weight:600}.muted{color:#6b7280}
pre{background:#f9fafb;border:1px solid #e5e7eb;padding:.7rem;overflow:auto;font-size:.8rem}
img.plot{max-width:100%;border:1px solid #e5e7eb;margin:.5rem 0}.scroll{overflow-x:auto}
"""


def html_text(value: Any) -> str:
    """Any value as escaped HTML text; a missing or undefined number shows as a muted n/a."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return '<span class="muted">n/a</span>'
    if isinstance(value, float):
        return escape(f"{value:.4g}")
    if isinstance(value, list | dict):
        return escape(json.dumps(value))
    return escape(str(value))


def _cell(value: Any) -> str:
    css = ' class="num"' if isinstance(value, int | float) and not isinstance(value, bool) else ""
    return f"<td{css}>{html_text(value)}</td>"


def html_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def html_page(title: str, body: Sequence[str]) -> str:
    """A complete page: escaped title, the no-script CSP, the shared style."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )


def _interval(value: float, low: float, high: float) -> str:
    """``0.0193 [-0.007, 0.0456]`` as plain text (escaped when it becomes a cell)."""
    return f"{format_number(value)} [{format_number(low)}, {format_number(high)}]"


def quality_html(verdicts: Any) -> str:
    if not verdicts:
        return ""
    rows = []
    for v in verdicts:
        label, css = verdict_label(v)
        ci = f"[{html_text(v.get('ci_low'))}, {html_text(v.get('ci_high'))}]"
        rows.append(
            f'<tr><td>{html_text(v.get("name"))}</td><td class="{css}">{label}</td>'
            f"<td>{html_text(v.get('severity'))}</td>{_cell(v.get('estimate'))}<td>{ci}</td>"
            f"{_cell(v.get('p_value'))}<td>{html_text(v.get('message'))}</td></tr>"
        )
    headers = ("target", "verdict", "severity", "estimate", "CI", "p", "detail")
    head = "".join(f"<th>{h}</th>" for h in headers)
    return (
        f"<h2>Quality targets</h2><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def bench_html(bench: Any) -> str:
    """The comparisons of a bench result (or a sweep's): summary, omnibus, pairs, decisions."""
    if not isinstance(bench, Mapping):
        return ""
    if bench.get("no_data"):
        return f"<h2>Comparisons</h2><p>No comparison: {html_text(bench.get('reason'))}</p>"
    parts = [
        "<h2>Comparisons</h2>",
        f"<p>Design: {html_text(bench.get('design'))}; differences are "
        f"{html_text(bench.get('difference'))}; alpha {html_text(bench.get('alpha'))}, "
        f"{html_text(bench.get('correction'))} correction, "
        f"{html_text(bench.get('confidence_level'))} confidence intervals.</p>",
    ]
    summary = bench.get("summary") or {}
    if summary:
        columns = ("n", "mean", "sd", "ci_low", "ci_high")
        parts.append(
            html_table(
                ["group", "n", "mean", "sd", "CI low", "CI high"],
                ([name, *(s.get(c) for c in columns)] for name, s in summary.items()),
            )
        )
    omnibus = omnibus_rows(bench)
    if omnibus:
        parts.append(
            html_table(
                ["omnibus test", "statistic", "df", "p", "effect size", "value", "note"],
                (
                    [
                        o.test,
                        o.statistic,
                        o.df,
                        o.p_value,
                        o.effect_size_name,
                        o.effect_size,
                        o.reason,
                    ]
                    for o in omnibus
                ),
            )
        )
    parts.append(_comparisons_html(comparison_rows(bench)))
    decisions = bench.get("decisions") or []
    if decisions:
        items = "".join(
            f"<li><strong>{html_text(d.get('decision'))}</strong>: {html_text(d.get('reason'))}</li>"
            for d in decisions
        )
        parts.append(f"<h3>Decision record</h3><ul>{items}</ul>")
    parts.append(_by_scorer_html(bench.get("by_scorer")))
    return "".join(parts)


def _by_scorer_html(by_scorer: Any) -> str:
    """Each further score column's comparison (the score stage ran several scorers)."""
    parts = []
    for name, bench in (by_scorer if isinstance(by_scorer, Mapping) else {}).items():
        parts.append(f"<h3>Score {html_text(name)}</h3>")
        if not isinstance(bench, Mapping) or bench.get("no_data"):
            reason = bench.get("reason") if isinstance(bench, Mapping) else "no data"
            parts.append(f"<p>No comparison: {html_text(reason)}</p>")
            continue
        parts.append(_comparisons_html(comparison_rows(bench)))
        items = "".join(
            f"<li>{html_text(d.get('decision'))}: {html_text(d.get('reason'))}</li>"
            for d in bench.get("decisions") or []
        )
        parts.append(f"<ul>{items}</ul>" if items else "")
    return "".join(parts)


def _comparisons_html(rows: list[ComparisonRow]) -> str:
    if not rows:
        return ""
    headers = ["a − b", "test", "statistic", "df", "p", "p adjusted", "difference [CI]"]
    table = html_table(
        [*headers, "effect size [CI]", "n"],
        (
            [
                r.label,
                r.test,
                r.statistic,
                r.df,
                r.p_value,
                r.p_adjusted,
                _interval(r.estimate, r.ci_low, r.ci_high),
                f"{r.effect_size_name} "
                + _interval(r.effect_size, r.effect_size_ci_low, r.effect_size_ci_high)
                if r.effect_size_name
                else None,
                f"{r.n_a} / {r.n_b}",
            ]
            for r in rows
        ),
    )
    notes = list(dict.fromkeys(r.reason or r.power_note for r in rows if r.reason or r.power_note))
    if notes:
        table += '<ul class="muted">' + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>"
    return table


def plots_html(plots: Mapping[str, Plot] | None) -> str:
    if not plots:
        return ""
    images = []
    for name, plot in plots.items():
        data = base64.b64encode(plot.svg.encode("utf-8")).decode("ascii")
        images.append(
            f'<figure><img class="plot" alt="{escape(name)}" '
            f'src="data:image/svg+xml;base64,{data}"><figcaption>{escape(name)}</figcaption></figure>'
        )
    return "<h2>Plots</h2>" + "".join(images)


def _trace(ctx: Context) -> str:
    if ctx.trace is None or not ctx.trace.events:
        return ""
    rows = (
        [
            e.timestamp.isoformat(timespec="milliseconds"),
            e.type,
            e.decision,
            e.reasoning,
            e.confidence,
        ]
        for e in ctx.trace.events
    )
    return "<h2>Trace</h2>" + html_table(
        ["time", "event", "decision", "reasoning", "confidence"], rows
    )


def _artifacts(ctx: Context) -> str:
    if not ctx.run_dir:
        return ""
    root = Path(ctx.run_dir)
    files = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    )
    if not files:
        return ""
    items = "".join(f'<li><a href="{escape(f, quote=True)}">{escape(f)}</a></li>' for f in files)
    return f'<h2>Run artifacts</h2><p class="muted">{escape(str(root))}</p><ul>{items}</ul>'


def render_html(ctx: Context, plots: Mapping[str, Plot] | None = None) -> str:
    data = report_data(ctx)
    identity = [
        ["experiment", data["experiment_id"]],
        ["run", data["run_id"]],
        ["seed", data["seed"]],
        ["parameters", data["parameters"] or None],
        ["stages completed", ", ".join(data["completed_stages"]) or None],
        ["budget", data["budget"]],
    ]
    metrics = numeric_metrics(ctx.metrics)
    outputs = json.dumps(data["outputs"], indent=2)[:50000]
    body = [
        f"<h1>Experiment {escape(str(data['experiment_id']))}</h1>",
        f"<p>{escape(str(data['description']))}</p>" if data["description"] else "",
        html_table(["", ""], identity),
        quality_html(data["metrics"].get("quality_targets")),
        bench_html(data["metrics"].get("bench")),
        plots_html(plots),
        "<h2>Metrics</h2>" + html_table(["metric", "value"], metrics.items()) if metrics else "",
        "<h2>All metrics</h2><pre>" + escape(json.dumps(data["metrics"], indent=2)) + "</pre>",
        "<h2>Outputs</h2><pre>" + escape(outputs) + "</pre>" if data["outputs"] else "",
        _trace(ctx),
        _artifacts(ctx),
    ]
    return html_page(f"Experiment {data['experiment_id']} · run {data['run_id']}", body)
