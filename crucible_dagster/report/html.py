"""A self-contained HTML report: every value escaped, no script, works offline.

Defence in depth: every value from the data goes through ``html.escape``; the page carries a
Content-Security-Policy that forbids scripts altogether; plots are SVG embedded as data-URI
images, which browsers never execute.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from crucible_dagster.report.render import Plot, report_data
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.metrics import numeric_metrics

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1100px;color:#111827;line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{margin-top:2rem;border-bottom:1px solid #e5e7eb;padding-bottom:.3rem}
table{border-collapse:collapse;width:100%;font-size:.88rem;margin:.6rem 0}
th,td{border:1px solid #e5e7eb;padding:.3rem .5rem;text-align:left;vertical-align:top}th{background:#f9fafb}
td.num{text-align:right;font-variant-numeric:tabular-nums}.pass{color:#166534;font-weight:600}.fail{color:#b91c1c;font-weight:600}
.warn{color:#b45309;font-weight:600}.muted{color:#6b7280}pre{background:#f9fafb;border:1px solid #e5e7eb;padding:.7rem;overflow:auto;font-size:.8rem}
img.plot{max-width:100%;border:1px solid #e5e7eb;margin:.5rem 0}.scroll{overflow-x:auto}
"""


def _text(value: Any) -> str:
    if value is None:
        return '<span class="muted">n/a</span>'
    if isinstance(value, float):
        return escape(f"{value:.4g}")
    if isinstance(value, list | dict):
        return escape(json.dumps(value))
    return escape(str(value))


def _interval(value: Any, low: Any, high: Any) -> str:
    """``0.0193 [-0.007, 0.0456]`` as plain text (escaped when it becomes a cell)."""

    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, int | float) and not isinstance(v, bool) else "n/a"

    return f"{fmt(value)} [{fmt(low)}, {fmt(high)}]"


def _cell(value: Any) -> str:
    css = ' class="num"' if isinstance(value, int | float) and not isinstance(value, bool) else ""
    return f"<td{css}>{_text(value)}</td>"


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _quality(verdicts: Any) -> str:
    if not verdicts:
        return ""
    rows = []
    for v in verdicts:
        css = "pass" if v.get("passed") else ("fail" if v.get("severity") == "error" else "warn")
        label = (
            "pass"
            if v.get("passed")
            else ("FAIL" if v.get("severity") == "error" else "miss (warn)")
        )
        rows.append(
            f'<tr><td>{_text(v.get("name"))}</td><td class="{css}">{label}</td><td>{_text(v.get("severity"))}</td>'
            f"{_cell(v.get('estimate'))}<td>[{_text(v.get('ci_low'))}, {_text(v.get('ci_high'))}]</td>{_cell(v.get('p_value'))}<td>{_text(v.get('message'))}</td></tr>"
        )
    head = "".join(
        f"<th>{h}</th>" for h in ("target", "verdict", "severity", "estimate", "CI", "p", "detail")
    )
    return f"<h2>Quality targets</h2><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _bench(bench: Any) -> str:
    if not isinstance(bench, Mapping):
        return ""
    if bench.get("no_data"):
        return f"<h2>Comparisons</h2><p>No comparison: {_text(bench.get('reason'))}</p>"
    parts = [
        "<h2>Comparisons</h2>",
        f"<p>Design: {_text(bench.get('design'))}; differences are {_text(bench.get('difference'))}; alpha {_text(bench.get('alpha'))}, "
        f"{_text(bench.get('correction'))} correction, {_text(bench.get('confidence_level'))} confidence intervals.</p>",
    ]
    summary = bench.get("summary") or {}
    if summary:
        parts.append(
            _table(
                ["group", "n", "mean", "sd", "CI low", "CI high"],
                (
                    [
                        name,
                        s.get("n"),
                        s.get("mean"),
                        s.get("sd"),
                        s.get("ci_low"),
                        s.get("ci_high"),
                    ]
                    for name, s in summary.items()
                ),
            )
        )
    omnibus = bench.get("omnibus") or []
    if omnibus:
        parts.append(
            _table(
                ["omnibus test", "statistic", "df", "p", "effect size", "value", "note"],
                (
                    [
                        o.get("test"),
                        o.get("statistic"),
                        o.get("df"),
                        o.get("p_value"),
                        o.get("effect_size_name"),
                        o.get("effect_size"),
                        o.get("reason"),
                    ]
                    for o in omnibus
                ),
            )
        )
    rows = bench.get("comparisons") or []
    if rows:
        parts.append(
            _table(
                [
                    "a − b",
                    "test",
                    "statistic",
                    "df",
                    "p",
                    "p adjusted",
                    "difference [CI]",
                    "effect size [CI]",
                    "n",
                ],
                (
                    [
                        f"{r.get('group_a')} − {r.get('group_b')}",
                        r.get("test"),
                        r.get("statistic"),
                        r.get("df"),
                        r.get("p_value"),
                        r.get("p_adjusted"),
                        _interval(r.get("estimate"), r.get("ci_low"), r.get("ci_high")),
                        f"{r.get('effect_size_name')} "
                        + _interval(
                            r.get("effect_size"),
                            r.get("effect_size_ci_low"),
                            r.get("effect_size_ci_high"),
                        )
                        if r.get("effect_size_name")
                        else None,
                        f"{r.get('n_a')} / {r.get('n_b')}",
                    ]
                    for r in rows
                ),
            )
        )
        notes = list(
            dict.fromkeys(
                str(r.get("reason") or r.get("power_note"))
                for r in rows
                if r.get("reason") or r.get("power_note")
            )
        )
        if notes:
            parts.append(
                '<ul class="muted">' + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>"
            )
    decisions = bench.get("decisions") or []
    if decisions:
        items = "".join(
            f"<li><strong>{_text(d.get('decision'))}</strong>: {_text(d.get('reason'))}</li>"
            for d in decisions
        )
        parts.append(f"<h3>Decision record</h3><ul>{items}</ul>")
    return "".join(parts)


def _plots(plots: Mapping[str, Plot] | None) -> str:
    if not plots:
        return ""
    images = []
    for name, plot in plots.items():
        data = base64.b64encode(plot.svg.encode("utf-8")).decode("ascii")
        images.append(
            f'<figure><img class="plot" alt="{escape(name)}" src="data:image/svg+xml;base64,{data}"><figcaption>{escape(name)}</figcaption></figure>'
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
    return "<h2>Trace</h2>" + _table(["time", "event", "decision", "reasoning", "confidence"], rows)


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
    ]
    metrics = numeric_metrics(ctx.metrics)
    body = [
        f"<h1>Experiment {escape(str(data['experiment_id']))}</h1>",
        f"<p>{escape(str(data['description']))}</p>" if data["description"] else "",
        _table(["", ""], identity),
        _quality(data["metrics"].get("quality_targets")),
        _bench(data["metrics"].get("bench")),
        _plots(plots),
        "<h2>Metrics</h2>" + _table(["metric", "value"], metrics.items()) if metrics else "",
        "<h2>All metrics</h2><pre>" + escape(json.dumps(data["metrics"], indent=2)) + "</pre>",
        "<h2>Outputs</h2><pre>" + escape(json.dumps(data["outputs"], indent=2)[:50000]) + "</pre>"
        if data["outputs"]
        else "",
        _trace(ctx),
        _artifacts(ctx),
    ]
    title = escape(f"Experiment {data['experiment_id']} · run {data['run_id']}")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title><style>{STYLE}</style></head>'
        f"<body>{''.join(body)}</body></html>\n"
    )
