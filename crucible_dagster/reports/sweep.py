"""The sweep report: per-configuration summaries, the comparison, the best configuration, variance shares.

Written in the four report formats into the sweep's run directory; the HTML carries the
critical-difference diagram, the forest plot and the per-configuration distributions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from crucible_dagster.bench.rows import comparison_rows
from crucible_dagster.common.files import atomic_write_text
from crucible_dagster.experiment.ir import Experiment
from crucible_dagster.reports import plots
from crucible_dagster.reports.cost_section import cost_html, cost_markdown
from crucible_dagster.reports.csv_report import safe_csv
from crucible_dagster.reports.html import bench_html, html_page, html_table, plots_html
from crucible_dagster.reports.markdown import bench_markdown, md_table, md_text
from crucible_dagster.reports.model import Plot
from crucible_dagster.reports.race_section import race_html, race_markdown
from crucible_dagster.reports.study_section import study_html, study_markdown

SUMMARY_HEADERS = ["configuration", "parameters", "seeds", "n", "mean", "sd", "CI low", "CI high"]
FORMATS = {"markdown": "sweep.md", "json": "sweep.json", "csv": "sweep.csv", "html": "sweep.html"}


def _summary_rows(comparison: Mapping[str, Any]) -> list[list[Any]]:
    return [
        [
            name,
            json.dumps(s.get("params")),
            s.get("seeds"),
            s.get("n"),
            s.get("mean"),
            s.get("sd"),
            s.get("ci_low"),
            s.get("ci_high"),
        ]
        for name, s in (comparison.get("configurations") or {}).items()
    ]


@dataclass(frozen=True)
class SweepReport:
    """What every rendering of one sweep's report is built from: the markdown and the HTML
    take the same four things, so they travel together instead of as two argument lists."""

    experiment: Experiment
    comparison: Mapping[str, Any]
    sweep_id: str
    plot_files: Mapping[str, Plot]


def sweep_markdown(report: SweepReport) -> str:
    experiment, comparison, sweep_id = report.experiment, report.comparison, report.sweep_id
    lines = [
        f"# Sweep {experiment.id}",
        "",
        f"- sweep run: `{sweep_id}`",
        f"- trials: {comparison.get('trials')} ({len(comparison.get('failed_trials') or [])} failed)",
        f"- metric: {md_text(comparison.get('metric'))}",
        "",
    ]
    best = comparison.get("best")
    if best:
        lines += ["## Best configuration", "", md_text(best["statement"]), ""]
    lines += race_markdown(comparison.get("race"))
    lines += study_markdown(comparison.get("study"))
    if comparison.get("reason"):
        lines += [f"No comparison: {md_text(comparison['reason'])}", ""]
    design = comparison.get("design")
    if isinstance(design, Mapping):
        lines += ["## Design", "", md_text(design_statement(design)), ""]
        notes = [f"- left out: {md_text(note)}" for note in _left_out(design)]
        lines += [*notes, ""] if notes else []
        means = _per_sample_rows(design)
        lines += [*md_table(PER_SAMPLE_HEADERS, means), ""] if means else []
    rows = _summary_rows(comparison)
    if rows:
        lines += ["## Configurations", "", *md_table(SUMMARY_HEADERS, rows), ""]
    lines += cost_markdown(comparison.get("cost"))
    variance = comparison.get("variance")
    if variance and _shares(variance) is None:
        lines += ["## Where the variance comes from", "", _NO_VARIANCE, ""]
    elif variance:
        lines += [
            "## Where the variance comes from",
            "",
            f"Of the variation in trial means, {variance['share_configurations']:.1%} comes from "
            f"the configurations, {variance['share_seeds']:.1%} from the seeds and "
            f"{variance['share_residual']:.1%} is left over (configuration x seed).",
            "",
        ]
    if comparison.get("comparison"):
        lines += [f"Blocks: {comparison.get('blocks')}.", ""]
        lines += bench_markdown(comparison["comparison"])
    for name, plot in report.plot_files.items():
        lines += [f"![{name}]({plot.file})", ""]
    failed = comparison.get("failed_trials") or []
    if failed:
        lines += ["## Failed trials", "", *[f"- {md_text(t)}" for t in failed], ""]
    return "\n".join(lines)


def sweep_csv(comparison: Mapping[str, Any]) -> str:
    import pandas as pd

    summary = pd.DataFrame(
        _summary_rows(comparison),
        columns=["configuration", "params", "seeds", "n", "mean", "sd", "ci_low", "ci_high"],
    )
    rows = pd.DataFrame([r.to_dict() for r in comparison_rows(comparison.get("comparison"))])
    return safe_csv(rows if not rows.empty else summary)


def sweep_html(report: SweepReport) -> str:
    experiment, comparison, sweep_id = report.experiment, report.comparison, report.sweep_id
    best = comparison.get("best")
    variance = comparison.get("variance")
    identity: list[list[Any]] = [
        ["sweep run", sweep_id],
        ["trials", comparison.get("trials")],
        ["failed trials", ", ".join(comparison.get("failed_trials") or []) or "0"],
        ["metric", comparison.get("metric")],
    ]
    body = [
        f"<h1>Sweep {escape(experiment.id)}</h1>",
        html_table(["", ""], identity),
        f"<h2>Best configuration</h2><p>{escape(str(best['statement']))}</p>" if best else "",
        race_html(comparison.get("race")),
        study_html(comparison.get("study")),
        f"<p>No comparison: {escape(str(comparison['reason']))}</p>"
        if comparison.get("reason")
        else "",
        _design_html(comparison.get("design")),
        "<h2>Configurations</h2>" + html_table(SUMMARY_HEADERS, _summary_rows(comparison))
        if comparison.get("configurations")
        else "",
        cost_html(comparison.get("cost")),
        _variance_html(variance),
        bench_html(comparison.get("comparison")),
        plots_html(report.plot_files),
    ]
    return html_page(f"Sweep {experiment.id}", body)


PER_SAMPLE_HEADERS = ["configuration", "mean over the shared samples"]


def design_statement(design: Mapping[str, Any]) -> str:
    """One sentence: compared per sample (on which column, over how many blocks) or over
    per-seed means, and why."""
    why = str(design.get("why") or "")
    if design.get("kind") == "per_sample":
        return f"Compared {why}."
    return f"Compared over {why}." if why.startswith("per-seed") else f"Compared: {why}."


def _left_out(design: Mapping[str, Any]) -> list[str]:
    notes = design.get("left_out")
    return [str(n) for n in notes] if isinstance(notes, list) else []


def _per_sample_rows(design: Mapping[str, Any]) -> list[list[Any]]:
    means = design.get("means")
    return [[c, m] for c, m in means.items()] if isinstance(means, Mapping) else []


def _design_html(design: Any) -> str:
    if not isinstance(design, Mapping):
        return ""
    notes = "".join(f"<li>left out: {escape(n)}</li>" for n in _left_out(design))
    means = _per_sample_rows(design)
    return (
        f"<h2>Design</h2><p>{escape(design_statement(design))}</p>"
        + (f"<ul>{notes}</ul>" if notes else "")
        + (html_table(PER_SAMPLE_HEADERS, means) if means else "")
    )


UNDEFINED_VARIANCE = "undefined (metric constant in every trial)"
_NO_VARIANCE = f"The shares are {UNDEFINED_VARIANCE}: there is no variation to attribute."
_SHARES = ("share_configurations", "share_seeds", "share_residual")


def _shares(variance: Mapping[str, Any]) -> tuple[float, float, float] | None:
    """The three variance shares, or None when they are undefined (no variation at all)."""
    values = [variance.get(key) for key in _SHARES]
    numbers = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(numbers) != len(_SHARES) or not all(math.isfinite(v) for v in numbers):
        return None
    return numbers[0], numbers[1], numbers[2]


def variance_summary(variance: Mapping[str, Any]) -> str:
    """The variance shares on one line; 'undefined' with the reason when every trial agreed."""
    shares = _shares(variance)
    if shares is None:
        return UNDEFINED_VARIANCE
    config, seeds, residual = shares
    return f"configurations {config:.1%}, seeds {seeds:.1%}, residual {residual:.1%}"


def _variance_html(variance: Mapping[str, Any] | None) -> str:
    if not variance:
        return ""
    if _shares(variance) is None:
        return f"<h2>Where the variance comes from</h2><p>{_NO_VARIANCE}</p>"
    return f"<h2>Where the variance comes from</h2><p>{escape(variance_summary(variance))}</p>"


def sweep_plots(comparison: Mapping[str, Any]) -> dict[str, str]:
    made: dict[str, str] = {}
    cd = comparison.get("critical_difference")
    if cd:
        svg = plots.critical_difference_diagram(cd["mean_ranks"], cd["cd"])
        if svg:
            made["critical difference"] = svg
    inner = comparison.get("comparison") or {}
    forest = plots.forest_plot(comparison_rows(inner))
    if forest:
        made["forest plot"] = forest
    per_seed = {
        name: s.get("per_seed_means") or []
        for name, s in (comparison.get("configurations") or {}).items()
    }
    distributions = plots.distribution_plot(per_seed)
    if distributions:
        made["per-seed means"] = distributions
    return made


def write_sweep_reports(
    experiment: Experiment, comparison: Mapping[str, Any], base: Path, sweep_id: str
) -> dict[str, str]:
    """Write the sweep report in every format; returns format -> path."""
    plot_files = {}
    for name, svg in sweep_plots(comparison).items():
        file_name = "sweep_" + name.replace(" ", "_").replace("-", "_") + ".svg"
        atomic_write_text(base / file_name, svg)
        plot_files[name] = Plot(file_name, svg)
    report = SweepReport(experiment, comparison, sweep_id, plot_files)
    bodies = {
        "markdown": sweep_markdown(report),
        "json": json.dumps(comparison, indent=2, allow_nan=False),
        "csv": sweep_csv(comparison),
        "html": sweep_html(report),
    }
    return {fmt: str(atomic_write_text(base / FORMATS[fmt], body)) for fmt, body in bodies.items()}
