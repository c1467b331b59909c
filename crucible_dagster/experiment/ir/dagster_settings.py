"""``dagster:``: the settings only the Dagster adapter reads, in one block (as dbt keeps
``meta.dagster``), and the old top-level spellings they replace.

The old spellings (``executor``, ``automation``, ``sweep.mode``, ``sweep.pool``) are still read:
they are moved into the block before validation, and the loader reports each as a warning
naming its line and the new spelling. Setting one in both places is an error naming both.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field
from pydantic_core import PydanticCustomError

from crucible_dagster.experiment.ir.base import IRModel

#: Dagster executors: one process, subprocesses of one machine, or Celery workers on many
Executor = Literal["in_process", "multiprocess", "celery"]
Automation = Literal["eager", "on_cron"]
SweepMode = Literal["run", "partitions"]


class DagsterSweepSettings(IRModel):
    """``dagster.sweep``: how a sweep's trials become Dagster steps or partitions."""

    mode: SweepMode = Field(
        default="run",
        description="'run' runs the whole sweep as one run; 'partitions' makes each trial a "
        "partition (configuration x seed) of a trials asset, materialized and backfilled on its "
        "own, and the comparison an asset downstream of all of them.",
    )
    pool: str = Field(
        default="crucible_trials",
        pattern=r"^[A-Za-z0-9_./-]{1,128}$",
        description="The concurrency pool of the trial steps: a limit set on the instance "
        "(`dagster instance concurrency set crucible_trials 4`, or `concurrency.pools` in "
        "dagster.yaml) caps how many trial steps run at once across all runs.",
    )


class DagsterSettings(IRModel):
    """``dagster:``: read by the Dagster adapter only; the standalone runner ignores it."""

    executor: Executor = Field(
        default="in_process",
        description="'in_process' (one process), 'multiprocess' (a process per step), or "
        "'celery' (steps on Celery workers; needs crucible_dagster[celery], a broker and a "
        "shared instance).",
    )
    automation: Automation | None = Field(
        default=None,
        description="Let the report assets materialize themselves: 'eager' when the dataset "
        "asset has a new data version, 'on_cron' on the schedule's cron (instead of a job "
        "schedule). Needs the dagster-daemon, like a schedule.",
    )
    sweep: DagsterSweepSettings = Field(default_factory=DagsterSweepSettings)


#: old spelling -> new spelling, as paths in the file
LEGACY_SPELLINGS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("executor",): ("dagster", "executor"),
    ("automation",): ("dagster", "automation"),
    ("sweep", "mode"): ("dagster", "sweep", "mode"),
    ("sweep", "pool"): ("dagster", "sweep", "pool"),
}


def _has(data: Any, path: tuple[str, ...]) -> bool:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


def legacy_spellings_used(data: Any) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """The old spellings a file's data uses, each with its new spelling."""
    return [(old, new) for old, new in LEGACY_SPELLINGS.items() if _has(data, old)]


def as_written(loc: tuple[str | int, ...], data: Any) -> tuple[str | int, ...]:
    """A problem's location in the file's own spelling: ``dagster.automation`` is reported at
    ``automation`` when the file uses the old spelling."""
    for old, new in LEGACY_SPELLINGS.items():
        if loc[: len(new)] == new and _has(data, old) and not _has(data, new):
            return (*old, *loc[len(new) :])
    return loc


def _moved(data: dict[str, Any], old: tuple[str, ...], new: tuple[str, ...]) -> None:
    """Move ``old`` to ``new`` in place (copying every mapping on the way, never the caller's)."""
    parent = data
    for part in old[:-1]:
        parent[part] = dict(parent[part])
        parent = parent[part]
    value = parent.pop(old[-1])
    target = data
    for part in new[:-1]:
        current = target.get(part)
        if current is not None and not isinstance(current, dict):
            return  # ``dagster: 3``: left for validation to report, the old key dropped
        target[part] = dict(current or {})
        target = target[part]
    target[new[-1]] = value


def move_legacy_spellings(data: Any) -> Any:
    """Data with each old spelling moved into ``dagster:``; both spellings at once is an error."""
    used = legacy_spellings_used(data)
    if not used:
        return data
    moved = dict(data)
    for old, new in used:
        if _has(data, new):
            raise PydanticCustomError(
                "setting_spelled_twice",
                "'{old}' and '{new}' are the same setting: keep '{new}' only",
                {"old": ".".join(old), "new": ".".join(new), "field": ".".join(old)},
            )
        _moved(moved, old, new)
    return moved


def _deprecated(schema: dict[str, Any], names: tuple[str, ...], new: str) -> None:
    properties = schema.setdefault("properties", {})
    for name in names:
        properties[name] = {"deprecated": True, "description": f"Old spelling of {new}.{name}."}


def legacy_schema(schema: dict[str, Any]) -> None:
    """The old top-level spellings in the JSON schema, marked deprecated (editors strike them
    instead of refusing a file that still loads)."""
    _deprecated(schema, ("executor", "automation"), "dagster")


def legacy_sweep_schema(schema: dict[str, Any]) -> None:
    """``sweep.mode`` and ``sweep.pool`` in the JSON schema, marked deprecated."""
    _deprecated(schema, ("mode", "pool"), "dagster.sweep")
