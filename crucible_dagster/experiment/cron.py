"""The cron check of ``schedule.cron``: Dagster's own, so ``crucible validate`` and the Dagster
loader accept the same strings.

The core never imports dagster at module level: Dagster's validator is imported here only when
a schedule is checked and dagster is installed. Without dagster (the standalone runner never
schedules anything) a field-count check stands in.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from functools import cache

#: where Dagster keeps the check ScheduleDefinition runs on ``cron_schedule``
DAGSTER_CRON_MODULE = "dagster._utils.schedules"


@cache
def _dagster_validator() -> Callable[[str], bool] | None:
    """Dagster's ``is_valid_cron_string``, or None when dagster is not installed."""
    if importlib.util.find_spec("dagster") is None:
        return None
    module = importlib.import_module(DAGSTER_CRON_MODULE)
    validator: Callable[[str], bool] = module.is_valid_cron_string
    return validator


def cron_problem(value: str) -> str | None:
    """Why Dagster would refuse ``value`` as a schedule's cron, or None when it accepts it."""
    expected = "expected a cron expression with 5 fields (minute hour day month weekday)"
    validator = _dagster_validator()
    if validator is None:
        fields = value.split()
        if len(fields) == 5 or (value.startswith("@") and len(fields) == 1):
            return None
        return f"{expected}, got {value!r}"
    if validator(value):
        return None
    return f"{expected} that Dagster accepts, got {value!r}"
