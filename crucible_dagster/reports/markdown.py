"""The markdown report (also the Dagster asset preview): summary, verdicts, comparisons, trace."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from typing import Any

from crucible_dagster.bench.rows import ComparisonRow, comparison_rows, omnibus_rows
from crucible_dagster.common.terminal import terminal_safe
from crucible_dagster.reports.model import Plot, format_number, report_data, verdict_label
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.metrics import numeric_metrics

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]()#+!|~>-])")


def md_text(value: Any) -> str:
    """User text as literal markdown: raw HTML, links (``javascript:`` ones too), emphasis,
    headings and table pipes all show as the characters they are."""
    text = html.escape(str(value), quote=False)
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", text).replace("\r", " ").replace("\n", " ")
    return terminal_safe(text)  # a terminal or an editor shows the file too (ESC, bidi ...)


def md_cell(value: Any) -> str:
    """A value as one markdown table cell: escaped, on one line, no pipe can break the table."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, bool | int):
        return str(value)
    return md_text(json.dumps(value) if isinstance(value, list | dict) else value)


def md_fence(text: str, language: str = "") -> list[str]:
    """``text`` in a code fence longer than any backtick run inside it, so it cannot close early."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{language}", text, fence]


def md_number(value: Any, digits: int = 4) -> str:
    return (
        format_number(value, digits)
        if value is None or isinstance(value, float)
        else md_cell(value)
    )


def md_table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(md_number(v) for v in row) + " |" for row in rows]
    return lines


def quality_markdown(verdicts: Any) -> list[str]:
    if not verdicts:
        return []
    lines = [
        "## Quality targets",
        "",
        "| target | verdict | severity | detail |",
        "|---|---|---|---|",
    ]
    for v in verdicts:
        name, severity, message = (md_cell(v.get(k)) for k in ("name", "severity", "message"))
        lines.append(f"| {name} | {verdict_label(v)[0]} | {severity} | {message} |")
    lines.append("")
    return lines


def bench_markdown(bench: Any) -> list[str]:
    """The comparison table and the decision record of the bench stage's results."""
    if not isinstance(bench, Mapping):
        return []
    if bench.get("no_data"):
        return [
            "## Comparisons",
            "",
            f"No comparison: {md_text(bench.get('reason', 'no data'))}",
            "",
        ]
    lines = [
        "## Comparisons",
        "",
        f"Design: {md_text(bench.get('design'))}; differences are "
        f"{md_text(bench.get('difference'))}; "
        f"alpha {bench.get('alpha')}, {md_text(bench.get('correction'))} correction, "
        f"{md_number(bench.get('confidence_level'))} confidence intervals.",
        "",
    ]
    lines += _summary_lines(bench.get("summary") or {})
    for omnibus in omnibus_rows(bench):
        effect = (
            f", {omnibus.effect_size_name} {md_number(omnibus.effect_size)}"
            if omnibus.effect_size_name
            else ""
        )
        reason = f" ({md_text(omnibus.reason)})" if omnibus.reason else ""
        lines.append(
            f"Omnibus {omnibus.test}: statistic {md_number(omnibus.statistic)}, "
            f"df {md_cell(omnibus.df)}, p {md_number(omnibus.p_value)}{effect}{reason}"
        )
        lines.append("")
    lines += _comparison_lines(comparison_rows(bench))
    decisions = bench.get("decisions") or []
    if decisions:
        lines += ["### Decision record", ""]
        lines += [f"- **{md_cell(d['decision'])}**: {md_cell(d['reason'])}" for d in decisions]
        lines.append("")
    by_scorer = bench.get("by_scorer")
    for name, other in (by_scorer if isinstance(by_scorer, Mapping) else {}).items():
        lines += _scorer_lines(str(name), other)
    return lines


def _scorer_lines(name: str, bench: Any) -> list[str]:
    """A further score column's comparison (the score stage ran several scorers)."""
    lines = [f"### Score {md_text(name)}", ""]
    if not isinstance(bench, Mapping) or bench.get("no_data"):
        reason = bench.get("reason", "no data") if isinstance(bench, Mapping) else "no data"
        return [*lines, f"No comparison: {md_text(reason)}", ""]
    lines += _comparison_lines(comparison_rows(bench))
    lines += [
        f"- {md_cell(d['decision'])}: {md_cell(d['reason'])}" for d in bench.get("decisions") or []
    ]
    return [*lines, ""]


def _summary_lines(summary: Mapping[str, Mapping[str, Any]]) -> list[str]:
    if not summary:
        return []
    lines = ["| group | n | mean | sd | CI of the mean |", "|---|---|---|---|---|"]
    for name, s in summary.items():
        ci = f"[{md_number(s.get('ci_low'))}, {md_number(s.get('ci_high'))}]"
        lines.append(
            f"| {md_cell(name)} | {s.get('n')} | {md_number(s.get('mean'))} "
            f"| {md_number(s.get('sd'))} | {ci} |"
        )
    return [*lines, ""]


def _interval(value: float, low: float, high: float) -> str:
    return f"{md_number(value)} [{md_number(low)}, {md_number(high)}]"


def _comparison_lines(rows: list[ComparisonRow]) -> list[str]:
    if not rows:
        return []
    lines = [
        "| a - b | test | statistic | df | p | p adj. | difference [CI] | effect size [CI] | n | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        effect = (
            f"{md_text(r.effect_size_name)} "
            + _interval(r.effect_size, r.effect_size_ci_low, r.effect_size_ci_high)
            if r.effect_size_name
            else "n/a"
        )
        cells = [
            f"{md_cell(r.group_a)} - {md_cell(r.group_b)}",
            md_cell(r.test),
            md_number(r.statistic),
            md_cell(r.df),
            md_number(r.p_value),
            md_number(r.p_adjusted),
            _interval(r.estimate, r.ci_low, r.ci_high),
            effect,
            f"{r.n_a}/{r.n_b}",
            md_cell(r.reason or r.power_note or ""),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def _header(data: Mapping[str, Any]) -> list[str]:
    lines = [f"# Experiment {data['experiment_id']}", ""]
    if data["description"]:
        lines += [md_text(data["description"]), ""]
    lines += [
        f"- run: {md_text(data['run_id'])}",
        f"- seed: {data['seed']}",
        f"- stages completed: {', '.join(data['completed_stages']) or '(none)'}",
    ]
    if data["budget"]:
        lines.append(f"- budget: {md_text(data['budget'])}")
    if data["parameters"]:
        lines.append(
            "- parameters: "
            + ", ".join(f"{md_text(k)}={md_text(v)}" for k, v in data["parameters"].items())
        )
    lines.append("")
    return lines


def render_markdown(ctx: Context, plots: Mapping[str, Plot] | None = None) -> str:
    data = report_data(ctx)
    lines = _header(data)
    numbers = numeric_metrics(ctx.metrics)
    if numbers:
        lines += ["## Metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {md_cell(k)} | {md_cell(v)} |" for k, v in numbers.items()]
        lines.append("")
    lines += quality_markdown(data["metrics"].get("quality_targets"))
    lines += bench_markdown(data["metrics"].get("bench"))
    for name, plot in (plots or {}).items():
        lines += [f"![{name}]({plot.file})", ""]
    lines += ["## All metrics", "", *md_fence(json.dumps(data["metrics"], indent=2), "json"), ""]
    if data["outputs"]:
        outputs = json.dumps(data["outputs"], indent=2)[:20000]
        lines += ["## Outputs", "", *md_fence(outputs, "json"), ""]
    if ctx.trace is not None:
        events = ctx.trace.statistics()["total_events"]
        mermaid = ctx.trace.export("mermaid")
        lines += ["## Trace", "", f"{events} events.", "", *md_fence(mermaid, "mermaid"), ""]
    return "\n".join(lines)


def summary_markdown(ctx: Context) -> str:
    """A short readable summary for a preview pane (the Dagster asset page): the verdicts, the
    comparison table and its decision record. No JSON or trace dumps: the full report has them;
    the pane adds the plots (``plots_markdown``)."""
    data = report_data(ctx)
    lines = _header(data)
    lines += quality_markdown(data["metrics"].get("quality_targets"))
    gate = data["metrics"].get("regression_gate")
    if isinstance(gate, Mapping) and gate.get("message"):
        lines += [
            "## Regression gate",
            "",
            f"{md_text(gate.get('outcome'))}: {md_text(gate['message'])}",
            "",
        ]
    lines += bench_markdown(data["metrics"].get("bench"))
    return "\n".join(lines)


def plots_markdown(images: Mapping[str, str], left_out: Mapping[str, str] | None = None) -> str:
    """A "Plots" section: each image (name -> a ``data:`` URI, ``svg_data_uri``) shown inline,
    and each plot left out with why. Only images that need no file: a preview pane cannot
    read the run directory, and a path there would be a link to nowhere."""
    if not images and not left_out:
        return ""
    lines = ["## Plots", ""]
    for name, source in images.items():
        if not source.startswith("data:image/") or re.search(r"[\s()<>]", source):
            raise ValueError(f"plot {name!r}: an inline image needs a data URI")
        lines += [f"![{md_text(name)}]({source})", ""]
    lines += [f"- {md_text(name)}: {md_text(why)}" for name, why in (left_out or {}).items()]
    return "\n".join(lines).rstrip() + "\n"
