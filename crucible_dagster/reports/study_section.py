"""The Study section of an Optuna sweep's report: the sampler and pruner, the best trial's
parameters, runs spent against every trial on every seed, and the trials table (state, value,
seeds run, the racing pruner's adjusted p, parameters).

It reads the plain summary the sweep records (``comparison["study"]``), so reports need no
Optuna; parameter values and notes are user text and are escaped in both formats."""

from __future__ import annotations

import json
from collections.abc import Mapping
from html import escape
from typing import Any

from crucible_dagster.reports.html import html_table
from crucible_dagster.reports.markdown import md_table, md_text
from crucible_dagster.reports.model import format_number

HEADERS = ["trial", "state", "value", "seeds run", "p adj (racing)", "parameters", "note"]


def _params(value: Any) -> str:
    if not isinstance(value, Mapping):
        return ""
    return ", ".join(
        f"{k}={format_number(v, 4) if isinstance(v, float) else json.dumps(v, default=str)}"
        for k, v in value.items()
    )


def study_rows(study: Mapping[str, Any]) -> list[list[str]]:
    """One row per slot of the study (plain text, unescaped)."""
    rows = []
    for t in study.get("trials") or []:
        if not isinstance(t, Mapping):
            continue
        p = t.get("p_adjusted")
        rows.append(
            [
                str(t.get("trial")),
                str(t.get("state")),
                format_number(t.get("value"), 4) if t.get("value") is not None else "",
                str(t.get("seeds_run")),
                format_number(p, 3) if isinstance(p, int | float) else "",
                _params(t.get("params")),
                str(t.get("note") or ""),
            ]
        )
    return rows


def _lines(study: Mapping[str, Any]) -> list[str]:
    best = study.get("best")
    spent, full = study.get("evaluations"), study.get("full_evaluations")
    lines = [
        f"Optuna study {study.get('study_name')} ({study.get('storage')}): sampler "
        f"{study.get('sampler')}, pruner {study.get('pruner')}, {study.get('n_trials')} trials: "
        f"{study.get('complete')} complete, {study.get('pruned')} pruned, "
        f"{study.get('failed')} failed.",
    ]
    if isinstance(spent, int) and isinstance(full, int) and full > 0:
        lines.append(
            f"Runs: {spent} of {full} for every trial on every seed ({spent / full:.1%}); "
            f"{full - spent} saved by pruning."
        )
    if isinstance(best, Mapping):
        lines.append(
            f"Best trial: {best.get('trial')} ({study.get('direction')} value "
            f"{format_number(best.get('value'), 4)}) with {_params(best.get('params'))}."
        )
    return lines


def study_markdown(study: Any) -> list[str]:
    """The section's markdown lines; none when the sweep was not a study."""
    if not isinstance(study, Mapping):
        return []
    lines = ["## Study", ""]
    for line in _lines(study):
        lines += [md_text(line), ""]
    rows = study_rows(study)
    return [*lines, *md_table(HEADERS, rows), ""] if rows else lines


def study_html(study: Any) -> str:
    """The section as HTML; empty when the sweep was not a study."""
    if not isinstance(study, Mapping):
        return ""
    parts = ["<h2>Study</h2>", *(f"<p>{escape(line)}</p>" for line in _lines(study))]
    rows = study_rows(study)
    if rows:
        parts.append(html_table(HEADERS, rows))
    return "".join(parts)
