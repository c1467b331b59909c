"""Render a Context as report text (markdown, json, csv; html in ``html.py``). No files, no Dagster.

``plots`` maps a plot name to the file name the report stage wrote it under, so the
markdown can link the images; the HTML embeds them instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from crucible_dagster.common.jsonsafe import to_jsonable
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.metrics import numeric_metrics

EXTENSIONS = {"markdown": "md", "json": "json", "html": "html", "csv": "csv"}


@dataclass(frozen=True)
class Plot:
    file: str  #: file name beside the reports
    svg: str


def report_data(ctx: Context) -> dict[str, Any]:
    experiment = ctx.experiment
    return to_jsonable(
        {
            "experiment_id": ctx.experiment_id,
            "run_id": ctx.run_id,
            "description": experiment.description if experiment else None,
            "seed": experiment.seed if experiment else None,
            "parameters": dict(ctx.params),
            "completed_stages": ctx.completed_stages(),
            "metrics": dict(ctx.metrics),
            "outputs": [
                o for o in ctx.outputs if not (isinstance(o, Mapping) and o.get("kind") == "report")
            ],
            "artifacts": dict(ctx.artifacts),
            "quality_targets": ctx.metrics.get("quality_targets"),
            "trace": ctx.trace.statistics() if ctx.trace else None,
        }
    )


def render_json(ctx: Context, plots: Mapping[str, Plot] | None = None) -> str:
    return json.dumps(report_data(ctx), indent=2, sort_keys=False, allow_nan=False)


def comparison_table(ctx: Context) -> Any:
    """The tidy comparison table (one row per comparison), or the numeric metrics when there is none."""
    import pandas as pd

    table = ctx.assigns.get("bench_comparisons")
    if isinstance(table, pd.DataFrame) and not table.empty:
        return table
    numbers = numeric_metrics(ctx.metrics)
    return pd.DataFrame({"metric": list(numbers), "value": list(numbers.values())})


def render_csv(ctx: Context, plots: Mapping[str, Plot] | None = None) -> str:
    return str(comparison_table(ctx).to_csv(index=False))


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
        verdict = (
            "pass"
            if v.get("passed")
            else ("FAIL" if v.get("severity") == "error" else "miss (warn)")
        )
        lines.append(
            f"| {_cell(v.get('name'))} | {verdict} | {_cell(v.get('severity'))} | {_cell(v.get('message'))} |"
        )
    lines.append("")
    return lines


def _cell(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.4g}"
    else:
        text = json.dumps(value) if isinstance(value, list | dict) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return _cell(value)


def bench_markdown(bench: Any) -> list[str]:
    """The comparison table and the decision record of the bench stage's results."""
    if not isinstance(bench, Mapping):
        return []
    if bench.get("no_data"):
        return ["## Comparisons", "", f"No comparison: {bench.get('reason', 'no data')}", ""]
    lines = [
        "## Comparisons",
        "",
        f"Design: {bench.get('design')}; differences are {bench.get('difference')}; "
        f"alpha {bench.get('alpha')}, {bench.get('correction')} correction, {_fmt(bench.get('confidence_level'))} confidence intervals.",
        "",
    ]
    summary = bench.get("summary") or {}
    if summary:
        lines += ["| group | n | mean | sd | CI of the mean |", "|---|---|---|---|---|"]
        for name, s in summary.items():
            lines.append(
                f"| {_cell(name)} | {s.get('n')} | {_fmt(s.get('mean'))} | {_fmt(s.get('sd'))} | [{_fmt(s.get('ci_low'))}, {_fmt(s.get('ci_high'))}] |"
            )
        lines.append("")
    for omnibus in bench.get("omnibus") or []:
        lines.append(
            f"Omnibus {omnibus['test']}: statistic {_fmt(omnibus.get('statistic'))}, df {_cell(omnibus.get('df'))}, p {_fmt(omnibus.get('p_value'))}"
            f"{', ' + str(omnibus['effect_size_name']) + ' ' + _fmt(omnibus.get('effect_size')) if omnibus.get('effect_size_name') else ''}"
            f"{' (' + omnibus['reason'] + ')' if omnibus.get('reason') else ''}"
        )
        lines.append("")
    rows = bench.get("comparisons") or []
    if rows:
        lines += [
            "| a - b | test | statistic | df | p | p adj. | difference [CI] | effect size [CI] | n | note |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            effect = (
                f"{r.get('effect_size_name') or ''} {_fmt(r.get('effect_size'))} [{_fmt(r.get('effect_size_ci_low'))}, {_fmt(r.get('effect_size_ci_high'))}]"
                if r.get("effect_size_name")
                else "n/a"
            )
            note = r.get("reason") or r.get("power_note") or ""
            lines.append(
                f"| {_cell(r['group_a'])} - {_cell(r['group_b'])} | {_cell(r['test'])} | {_fmt(r.get('statistic'))} | {_cell(r.get('df'))} | {_fmt(r.get('p_value'))} | {_fmt(r.get('p_adjusted'))} "
                f"| {_fmt(r.get('estimate'))} [{_fmt(r.get('ci_low'))}, {_fmt(r.get('ci_high'))}] | {effect} | {r.get('n_a')}/{r.get('n_b')} | {_cell(note)} |"
            )
        lines.append("")
    decisions = bench.get("decisions") or []
    if decisions:
        lines += ["### Decision record", ""]
        lines += [f"- **{_cell(d['decision'])}**: {_cell(d['reason'])}" for d in decisions]
        lines.append("")
    return lines


def render_markdown(ctx: Context, plots: Mapping[str, Plot] | None = None) -> str:
    data = report_data(ctx)
    lines = [f"# Experiment {data['experiment_id']}", ""]
    if data["description"]:
        lines += [str(data["description"]), ""]
    lines += [
        f"- run: `{data['run_id']}`",
        f"- seed: {data['seed']}",
        f"- stages completed: {', '.join(data['completed_stages']) or '(none)'}",
    ]
    if data["parameters"]:
        lines.append(
            "- parameters: " + ", ".join(f"{k}={v}" for k, v in data["parameters"].items())
        )
    lines.append("")
    numbers = numeric_metrics(ctx.metrics)
    if numbers:
        lines += ["## Metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in numbers.items()]
        lines.append("")
    lines += quality_markdown(data["metrics"].get("quality_targets"))
    lines += bench_markdown(data["metrics"].get("bench"))
    for name, plot in (plots or {}).items():
        lines += [f"![{name}]({plot.file})", ""]
    lines += ["## All metrics", "", "```json", json.dumps(data["metrics"], indent=2), "```", ""]
    if data["outputs"]:
        lines += [
            "## Outputs",
            "",
            "```json",
            json.dumps(data["outputs"], indent=2)[:20000],
            "```",
            "",
        ]
    if ctx.trace is not None:
        stats = ctx.trace.statistics()
        lines += [
            "## Trace",
            "",
            f"{stats['total_events']} events.",
            "",
            "```mermaid",
            ctx.trace.export("mermaid"),
            "```",
            "",
        ]
    return "\n".join(lines)


def render(ctx: Context, fmt: str, plots: Mapping[str, Plot] | None = None) -> str:
    from crucible_dagster.report.html import render_html

    renderers: dict[str, Callable[..., str]] = {
        "markdown": render_markdown,
        "json": render_json,
        "csv": render_csv,
        "html": render_html,
    }
    if fmt not in renderers:
        raise ValueError(
            f"unsupported report format {fmt!r}; expected one of: {', '.join(renderers)}"
        )
    return renderers[fmt](ctx, plots)
