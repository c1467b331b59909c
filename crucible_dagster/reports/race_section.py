"""The Race section of a raced sweep's report: configurations x rounds (ran, or dropped with the
adjusted p that dropped it), each configuration's outcome, and the evaluations spent against the
full grid.

It reads the plain race summary the sweep records (``comparison["race"]``), so reports need no
racing code; every configuration id is user text and is escaped in both formats."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from crucible_dagster.reports.html import html_table
from crucible_dagster.reports.markdown import md_table, md_text
from crucible_dagster.reports.model import format_number


def _rounds(race: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    rounds = race.get("rounds")
    return [r for r in rounds if isinstance(r, Mapping)] if isinstance(rounds, list) else []


def _p_adjusted(round_: Mapping[str, Any], config: str) -> Any:
    for item in round_.get("evidence") or []:
        if isinstance(item, Mapping) and item.get("config") == config:
            return item.get("p_adjusted")
    return None


def race_rows(race: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows (plain text, unescaped): one row per configuration that raced."""
    rounds = _rounds(race)
    configs: list[str] = []
    for r in rounds:
        configs += [str(c) for c in r.get("survivors") or [] if str(c) not in configs]
    survivors = {str(c) for c in race.get("survivors") or []}
    rows = []
    for config in configs:
        cells, outcome = [], "survivor" if config in survivors else "not decided"
        for r in rounds:
            ran = config in {str(c) for c in r.get("survivors") or []}
            if config in {str(c) for c in r.get("dropped") or []}:
                p = _p_adjusted(r, config)
                cells.append(f"dropped (p adj {format_number(p, 3)})")
                outcome = f"dropped in round {r.get('index')}"
            else:
                cells.append("ran" if ran else "")
        rows.append([config, *cells, outcome])
    headers = ["configuration", *[f"round {r.get('index')}" for r in rounds], "outcome"]
    return headers, rows


def _spent(race: Mapping[str, Any]) -> str:
    spent, grid = race.get("evaluations"), race.get("grid_evaluations")
    if not isinstance(spent, int) or not isinstance(grid, int) or grid <= 0:
        return f"evaluations: {spent}"
    over = f" over {race['block']}" if race.get("block") else ""
    cost = race.get("cost")
    priced = f"; cost {format_number(cost, 4)}" if isinstance(cost, int | float) and cost else ""
    return (
        f"{race.get('method')} race{over} at alpha {race.get('alpha')}: {spent} evaluations of "
        f"{grid} for the full grid ({spent / grid:.1%}); {grid - spent} saved{priced}"
    )


def race_markdown(race: Any) -> list[str]:
    """The section's markdown lines; none when the sweep did not race."""
    if not isinstance(race, Mapping):
        return []
    lines = ["## Race", ""]
    if "method" not in race:
        return [*lines, md_text(race.get("reason", "the race did not finish")), ""]
    lines += [md_text(_spent(race)), ""]
    if race.get("finish_reason"):
        lines += [f"Finished: {md_text(race['finish_reason'])}", ""]
    headers, rows = race_rows(race)
    return [*lines, *md_table(headers, rows), ""] if rows else lines


def race_html(race: Any) -> str:
    """The section as HTML; empty when the sweep did not race."""
    if not isinstance(race, Mapping):
        return ""
    if "method" not in race:
        return f"<h2>Race</h2><p>{escape(str(race.get('reason', 'the race did not finish')))}</p>"
    parts = ["<h2>Race</h2>", f"<p>{escape(_spent(race))}</p>"]
    if race.get("finish_reason"):
        parts.append(f"<p>Finished: {escape(str(race['finish_reason']))}</p>")
    headers, rows = race_rows(race)
    if rows:
        parts.append(html_table(headers, rows))
    return "".join(parts)
