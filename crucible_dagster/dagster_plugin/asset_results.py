"""Runtime events (what a job's op logs) as an asset step's results (what a multi-asset yields)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dagster as dg


def as_asset_results(events: Iterator[Any]) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """The report stage's runtime events as a multi-asset's results."""
    for event in events:
        if isinstance(event, dg.AssetMaterialization):
            yield dg.MaterializeResult(asset_key=event.asset_key, metadata=event.metadata)
        elif isinstance(event, dg.AssetCheckEvaluation):
            yield dg.AssetCheckResult(
                asset_key=event.asset_key,
                check_name=event.check_name,
                passed=event.passed,
                metadata=event.metadata,
                severity=event.severity,
            )
