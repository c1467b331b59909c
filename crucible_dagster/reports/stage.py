"""Render each of the experiment's output specs and send it to its sink (stdout, file, asset)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from crucible_dagster.common.files import atomic_write_text, safe_join
from crucible_dagster.experiment.ir import OutputSpec
from crucible_dagster.quality.gate import GATE_METRIC, evaluate_gate, gate_metrics, gate_verdict
from crucible_dagster.quality.targets import METRIC_KEY, evaluate_targets
from crucible_dagster.reports.render import Plot, render
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.run_dirs import report_base
from crucible_dagster.runtime.run_record import RunDirectoryError, create_exclusively
from crucible_dagster.runtime.stage import Stage, StageError, StageOptions


class ReportOptions(StageOptions):
    headline_metrics: list[str] = Field(
        default_factory=list,
        description="Metric paths the report asset plots across runs under Dagster, beside the "
        "quality targets' metrics and the sweep metric (the rest is one JSON entry).",
    )


def report_path(ctx: Context, spec: OutputSpec, fmt: str) -> Path:
    """Where a file report goes: inside the run directory, nowhere else."""
    return _inside(report_base(ctx), spec, fmt)


def _inside(root: Path, spec: OutputSpec, fmt: str) -> Path:
    requested = (spec.options or {}).get("path")
    try:
        return safe_join(root, spec.file_name(fmt))
    except PermissionError as exc:
        raise StageError(
            "unsafe_path", requested, f"report {spec.name!r}: refused path {requested!r}: {exc}"
        ) from None


def copy_folder(ctx: Context) -> Path | None:
    """``<output_dir>/<run_id>/``, a new folder for this run's copies, or None without output_dir.

    It is created exclusively: a run never writes into, or over, what another run left there.
    """
    if not (ctx.experiment and ctx.experiment.output_dir):
        return None
    folder = Path(ctx.experiment.output_dir).absolute() / ctx.run_id
    try:
        create_exclusively(folder)
    except RunDirectoryError as exc:
        raise StageError("output_dir_taken", str(folder), str(exc)) from None
    return folder


def _plots(ctx: Context) -> dict[str, Any]:
    """Plots for the reports: a forest plot of the comparisons and the per-group distributions."""
    from crucible_dagster.bench.rows import comparison_rows
    from crucible_dagster.reports import plots

    made = {}
    gate = ctx.experiment.regression_baseline if ctx.experiment else None
    if gate is not None and ctx.run_dir:
        from crucible_dagster.quality.trend import metric_history

        trend = plots.history_plot(metric_history(gate, Path(ctx.run_dir), ctx.run_id), gate.metric)
        if trend:
            made["history"] = trend
    bench = ctx.metrics.get("bench")
    if not isinstance(bench, dict) or bench.get("no_data"):
        return made
    forest = plots.forest_plot(comparison_rows(bench))
    if forest:
        made["forest plot"] = forest
    groups = ctx.assigns.get("bench_groups")
    if isinstance(groups, dict):
        distributions = plots.distribution_plot(groups)
        if distributions:
            made["distributions"] = distributions
    return made


class ReportStage(Stage):
    name = "report"
    description = "Generates and persists reports from experiment outputs in configured formats"
    Options = ReportOptions

    def run(self, ctx: Context, options: ReportOptions) -> Context:
        verdicts = [v.to_dict() for v in evaluate_targets(ctx)]
        gate = ctx.experiment.regression_baseline if ctx.experiment else None
        if gate is not None:
            result = evaluate_gate(ctx, gate)
            ctx = ctx.put_metric(GATE_METRIC, gate_metrics(gate, result))
            verdicts.append(gate_verdict(gate, result).to_dict())
        if verdicts:
            ctx = ctx.put_metric(METRIC_KEY, verdicts)
        specs = ctx.experiment.outputs if ctx.experiment else []
        if not specs:
            return ctx
        svgs = (
            _plots(ctx)
            if any(f in ("html", "markdown") for spec in specs for f in spec.formats)
            else {}
        )
        plots: dict[str, Plot] = {}
        base_dir = report_base(ctx)
        for name, svg in svgs.items():
            file_name = name.replace(" ", "_") + ".svg"
            if any(spec.sink != "stdout" for spec in specs):
                atomic_write_text(safe_join(base_dir, file_name), svg)
            plots[name] = Plot(file_name, svg)
        produced: list[dict[str, Any]] = []
        artifacts: dict[str, Any] = {}
        copies = copy_folder(ctx) if any(s.sink != "stdout" for s in specs) else None
        for spec in specs:
            rendered = []
            for fmt in spec.formats:
                body = render(ctx, fmt, plots)
                entry: dict[str, Any] = {"format": fmt}
                if spec.sink == "stdout":
                    print(f"== {spec.name} ({fmt}) ==\n{body}", flush=True)
                else:
                    path = atomic_write_text(report_path(ctx, spec, fmt), body)
                    entry["path"] = str(path)
                    if copies is not None:
                        entry["copy"] = str(atomic_write_text(_inside(copies, spec, fmt), body))
                    artifacts[f"report.{spec.name}.{fmt}"] = str(path)
                rendered.append(entry)
            produced.append(
                {"kind": "report", "name": spec.name, "sink": spec.sink, "rendered": rendered}
            )
        out = ctx.add_outputs(produced)
        for key, value in artifacts.items():
            out = out.put_artifact(key, value)
        return out
