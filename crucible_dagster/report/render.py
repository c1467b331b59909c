"""Render a Context as report text. Pure functions: no files, no Dagster."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from crucible_dagster.core.context import Context
from crucible_dagster.core.jsonsafe import to_jsonable

EXTENSIONS = {"markdown": "md", "json": "json", "html": "html", "csv": "csv"}


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    else:
        out[prefix] = value


def numeric_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Every finite number in ``metrics`` under its dotted path (lists are not expanded)."""
    flat: dict[str, Any] = {}
    _flatten("", to_jsonable(metrics), flat)
    return {
        k: float(v)
        for k, v in flat.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


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
            "trace": ctx.trace.statistics() if ctx.trace else None,
        }
    )


def render_json(ctx: Context) -> str:
    return json.dumps(report_data(ctx), indent=2, sort_keys=False, allow_nan=False)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.4g}"
    else:
        text = json.dumps(value) if isinstance(value, list | dict) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(ctx: Context) -> str:
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


RENDERERS: dict[str, Callable[[Context], str]] = {"markdown": render_markdown, "json": render_json}


def render(ctx: Context, fmt: str) -> str:
    try:
        return RENDERERS[fmt](ctx)
    except KeyError:
        raise ValueError(
            f"unsupported report format {fmt!r}; expected one of: {', '.join(RENDERERS)}"
        ) from None
