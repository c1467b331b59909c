"""The JSON report: the report model as strict JSON (no NaN, no numpy, no tuples)."""

from __future__ import annotations

import json
from collections.abc import Mapping

from crucible_dagster.reports.model import Plot, report_data
from crucible_dagster.runtime.context import Context


def render_json(ctx: Context, plots: Mapping[str, Plot] | None = None) -> str:
    return json.dumps(report_data(ctx), indent=2, sort_keys=False, allow_nan=False)
