"""The bench's comparison of each further score column (the score stage's ``scorers`` after the
first): the same automatic choice per column, so a 0/1 scorer gets McNemar's exact test with a
paired bootstrap beside, a continuous one Wilcoxon or a paired t, each with its decision record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from crucible_dagster.bench.settings import Decision


@dataclass
class ScorerComparisons:
    """Per scorer: the comparison (or why there is none), its rows and its decisions."""

    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    table: Any = None
    decisions: list[Decision] = field(default_factory=list)


def compare_scorers(
    extracted: Mapping[str, Any], settings_for: Callable[[int, bool], Any]
) -> ScorerComparisons:
    """Compare every scorer's groups; ``settings_for(n_groups, blocked)`` gives the settings."""
    import pandas as pd

    from crucible_dagster.bench.compare import compare_groups
    from crucible_dagster.bench.data import BenchDataError

    found = ScorerComparisons()
    tables = []
    for name, data in extracted.items():
        if len(data.groups) < 2:
            reason = "no data found" if not data.groups else "only one group: nothing to compare"
            found.results[name] = {"no_data": True, "reason": reason}
            continue
        try:
            settings = settings_for(len(data.groups), data.blocked)
            comparison = compare_groups(data.groups, settings, data.blocks)
        except BenchDataError as exc:
            found.results[name] = {"no_data": True, "reason": str(exc)}
            continue
        found.results[name] = comparison.to_dict()
        rows = [r.to_dict() | {"scorer": name} for r in comparison.rows]
        tables.append(pd.DataFrame(rows).drop(columns=["reference_only"], errors="ignore"))
        found.decisions += [
            Decision(f"[{name}] {d.decision}", d.reason, d.check, d.p_value)
            for d in comparison.decisions
        ]
    found.table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    return found
