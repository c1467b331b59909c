"""Report plots as SVG text, drawn with matplotlib's object API (no pyplot global state, no display).

matplotlib renders offline and deterministically to SVG; the HTML report embeds the SVG as a
data-URI image, so nothing in a plot can run as script.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

from crucible_dagster.bench.rows import ComparisonRow


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    figure.set_layout_engine("constrained")
    return figure


def _svg(figure: Any) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


#: beyond this magnitude matplotlib's axis arithmetic overflows (``arange: cannot compute
#: length``): such values are left out of a plot and named as not drawn, never a crash
DRAWABLE = 1e300


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _too_large(*values: Any) -> bool:
    """A number no axis can hold (infinite, or finite beyond ``DRAWABLE``)."""
    return any(
        isinstance(v, int | float) and not isinstance(v, bool) and abs(v) > DRAWABLE for v in values
    )


def forest_plot(rows: Sequence[ComparisonRow]) -> str | None:
    """Each difference with its CI; the dashed line is 'no difference'."""
    usable = [
        r
        for r in rows
        if not r.reference_only
        and r.has_ci
        and math.isfinite(r.estimate)
        and not _too_large(r.estimate, r.ci_low, r.ci_high)
    ]
    if not usable:
        return None
    figure = _figure(7.5, 0.6 * len(usable) + 1.4)
    axes = figure.add_subplot()
    for index, row in enumerate(reversed(usable)):
        colour = "#b91c1c" if row.significant else "#1d4ed8"
        axes.errorbar(
            row.estimate,
            index,
            xerr=[[row.estimate - row.ci_low], [row.ci_high - row.estimate]],
            fmt="o",
            color=colour,
            capsize=4,
        )
    axes.axvline(0, color="#6b7280", linestyle="--", linewidth=1)
    axes.set_yticks(
        range(len(usable)),
        [f"{r.label}\n({r.test})" for r in reversed(usable)],
    )
    axes.set_xlabel("difference (group_a − group_b) with confidence interval")
    axes.set_title("Differences with CIs (red: significant after correction)")
    return _svg(figure)


def distribution_plot(groups: Mapping[str, Sequence[float]]) -> str | None:
    """Per-group box plots with every observation drawn as a jittered point."""
    names = [n for n, values in groups.items() if any(_finite(v) for v in values)]
    # a group whose values no axis can hold keeps its row, labelled, with nothing drawn
    drawn = [i for i, n in enumerate(names, start=1) if not _too_large(*filter(_finite, groups[n]))]
    if not drawn:
        return None
    import numpy as np

    data = [np.asarray(list(filter(_finite, groups[names[i - 1]])), dtype=float) for i in drawn]
    figure = _figure(7.5, 0.55 * len(names) + 1.6)
    axes = figure.add_subplot()
    axes.boxplot(data, orientation="horizontal", positions=drawn, widths=0.5, showfliers=False)
    axes.set_yticks(
        range(1, len(names) + 1),
        [n if i in drawn else f"{n}\n(too large to draw)" for i, n in enumerate(names, start=1)],
    )
    axes.set_xlabel("value")
    rng = np.random.default_rng(0)
    for index, values in zip(drawn, data, strict=True):
        axes.scatter(
            values,
            index + rng.uniform(-0.15, 0.15, values.size),
            s=14,
            alpha=0.7,
            color="#1d4ed8",
            zorder=3,
        )
    axes.set_title("Distribution per group")
    return _svg(figure)


def critical_difference_diagram(mean_ranks: Mapping[str, float], cd: float) -> str | None:
    """Demšar's diagram: configurations on the mean-rank axis (1 = best) with the critical difference."""
    if len(mean_ranks) < 2 or not _finite(cd):
        return None
    ordered = sorted(mean_ranks.items(), key=lambda item: item[1])
    k = len(ordered)
    figure = _figure(7.5, 0.35 * k + 1.8)
    axes = figure.add_subplot()
    axes.set_xlim(0.5, k + 0.5)
    axes.set_ylim(-k - 1, 1.5)
    axes.invert_xaxis()
    axes.axhline(0, color="#111827", linewidth=1)
    for position, (name, rank) in enumerate(ordered, start=1):
        axes.plot([rank, rank], [0, -position], color="#1d4ed8", linewidth=1)
        axes.plot(rank, 0, "o", color="#1d4ed8")
        axes.text(rank, -position - 0.1, f"{name} ({rank:.2f})", ha="center", va="top", fontsize=8)
    best = ordered[0][1]
    axes.plot([best, best + cd], [1, 1], color="#b91c1c", linewidth=3)
    axes.text(
        best + cd / 2, 1.15, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=9, color="#b91c1c"
    )
    axes.set_yticks([])
    axes.set_xlabel(
        "mean rank (1 = best); configurations closer than CD do not differ significantly (Nemenyi)"
    )
    for spine in ("left", "right", "top"):
        axes.spines[spine].set_visible(False)
    return _svg(figure)


def history_plot(points: Sequence[Any], metric: str) -> str | None:
    """The gate's metric per run (mean over units, 95% CI), oldest left; the accepted baseline
    is a filled star, this run a red point."""
    if len(points) < 1:
        return None
    figure = _figure(7.5, 3.2)
    axes = figure.add_subplot()
    points = [p for p in points if not _too_large(p.mean, p.ci_low, p.ci_high)]
    if not points:
        return None
    for index, point in enumerate(points):
        colour = "#b91c1c" if point.current else "#1d4ed8"
        axes.errorbar(
            index,
            point.mean,
            yerr=[[point.mean - point.ci_low], [point.ci_high - point.mean]],
            fmt="*" if point.accepted else "o",
            markersize=12 if point.accepted else 6,
            color=colour,
            capsize=4,
        )
    axes.set_xticks(range(len(points)), [p.run_id[:8] for p in points], rotation=45, ha="right")
    axes.set_ylabel(metric)
    axes.set_title("History: mean per run with 95% CI (star: accepted baseline; red: this run)")
    return _svg(figure)
