"""An experiment's runs: from its run directories, and from every registered run source (the
Dagster adapter registers its instance), merged on the run id."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crucible_dagster.common.isotime import parse_datetime
from crucible_dagster.common.plugins import entry_points_of
from crucible_dagster.experiment.names import check_name
from crucible_dagster.run_history.baselines import accepted_run
from crucible_dagster.run_history.records import RunRead, Unreadable, scan_runs
from crucible_dagster.runtime.metrics import QUALITY_TARGETS_KEY
from crucible_dagster.runtime.run_record import artifacts_root, stale_note

if TYPE_CHECKING:
    import pandas as pd

#: the statuses a run is listed with (``runs list --status`` takes these)
STATUSES = (
    "completed",
    "failed",
    "interrupted",
    "budget_exhausted",
    "running",
    "queued",
    "unreadable",
)
#: a run only Dagster knows, in our words (Dagster's own stays in ``dagster_status``)
FROM_DAGSTER = {
    "success": "completed",
    "failure": "failed",
    "canceled": "interrupted",
    "canceling": "running",
    "started": "running",
    "starting": "running",
    "managed": "running",
    "queued": "queued",
    "not_started": "queued",
}

#: entry-point group of run sources: ``f(experiment_id) -> list of run dicts``
RUN_SOURCES = "crucible_dagster.run_sources"
RunSource = Callable[[str], list[dict[str, Any]]]


@dataclass
class RunRow:
    run_id: str
    experiment_id: str
    status: str
    started_at: str | None = None
    ended_at: str | None = None
    orchestrator: str | None = None
    accepted: bool = False
    #: where the run is recorded: "both", "run directory only" or "dagster only"
    recorded_in: str = "run directory only"
    dagster_status: str | None = None
    parent_run_id: str | None = None
    run_dir: str | None = None
    headline: dict[str, float] = field(default_factory=dict)
    #: why the run's record cannot be used (status "unreadable")
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def headline_metrics(manifest: Mapping[str, Any]) -> dict[str, float]:
    """The figures a run is judged by: each quality target's and the regression gate's estimate."""
    metrics = manifest.get("metrics")
    verdicts = metrics.get(QUALITY_TARGETS_KEY) if isinstance(metrics, Mapping) else None
    out: dict[str, float] = {}
    for verdict in verdicts if isinstance(verdicts, list) else []:
        estimate = verdict.get("estimate") if isinstance(verdict, Mapping) else None
        if isinstance(estimate, int | float) and not isinstance(estimate, bool):
            try:
                out[str(verdict.get("name"))[:128]] = float(estimate)
            except OverflowError:  # an int too large for a float: not a figure to print
                continue
    return out


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _from_manifest(read: RunRead, accepted: str | None) -> RunRow:
    manifest = read.manifest
    status: str = manifest.status
    if stale_note(read.raw):
        status = "running (stale: its process is gone)"
    return RunRow(
        run_id=manifest.run_id,
        experiment_id=manifest.experiment_id,
        status=status,
        started_at=_when(manifest.started_at),
        ended_at=_when(manifest.ended_at),
        orchestrator=manifest.orchestrator,
        accepted=manifest.run_id == accepted,
        parent_run_id=manifest.parent_run_id,
        run_dir=str(read.run_dir),
        headline=headline_metrics(read.raw),
    )


def _unreadable(item: Unreadable, experiment_id: str) -> RunRow:
    return RunRow(
        run_id=item.path.name,
        experiment_id=experiment_id,
        status="unreadable",
        run_dir=str(item.path),
        reason=item.reason,
    )


def run_manifests(experiment_dir: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Each run directory of an experiment whose manifest parses and matches its folder, with
    the manifest as read; unreadable ones are left out (``list_runs`` lists them)."""
    runs, _ = scan_runs(experiment_dir)
    for read in runs:
        yield read.run_dir, read.raw


def _sources() -> list[RunSource]:
    found = []
    for entry in entry_points_of(RUN_SOURCES):
        try:
            found.append(entry.load())
        except Exception:  # a broken plugin must not hide the run directories
            continue
    return found


def list_runs(
    experiment_id: str,
    root: str | Path | None = None,
    *,
    since: datetime | None = None,
    status: str | None = None,
    sources: Iterable[RunSource] | None = None,
) -> list[RunRow]:
    """Every run of the experiment, oldest first; ``sources`` default to the registered ones.

    ``experiment_id`` is a name, never a path ('', '..' and 'a/b' raise ValueError naming it),
    as on the command line; ``status`` one of ``STATUSES``."""
    check_name(experiment_id, "experiment id")  # its folder is <artifacts root>/<id>, no other
    if status is not None and status not in STATUSES:
        raise ValueError(f"status: expected one of {', '.join(STATUSES)}, got {status!r}")
    experiment_dir = artifacts_root(root) / experiment_id
    accepted = accepted_run(experiment_dir)
    rows: dict[str, RunRow] = {}
    runs, unreadable = scan_runs(experiment_dir)
    for read in runs:
        rows[read.manifest.run_id] = _from_manifest(read, accepted)
    for source in _sources() if sources is None else sources:
        try:
            external = source(experiment_id)
        except Exception:  # an unreachable instance: the run directories still answer
            continue
        for item in external if isinstance(external, list) else []:
            if isinstance(item, Mapping) and isinstance(item.get("run_id"), str):
                _merge(rows, item, experiment_id, accepted)
    chosen = [
        r
        for r in rows.values()
        if (status is None or r.status == status)
        and (since is None or (r.started_at is not None and _after(r.started_at, since)))
    ]
    found = sorted(chosen, key=lambda r: (_instant(r.started_at), r.run_id))
    if status in (None, "unreadable"):  # their start is unknown: listed whatever ``since``
        found += [_unreadable(item, experiment_id) for item in unreadable]
    return found


def _merge(
    rows: dict[str, RunRow], item: Mapping[str, Any], experiment_id: str, accepted: str | None
) -> None:
    run_id = str(item["run_id"])
    dagster_status = _text(item.get("status"))
    if run_id in rows:
        row = rows[run_id]
        row.recorded_in = "both"
        row.dagster_status = dagster_status
        return
    rows[run_id] = RunRow(
        run_id=run_id,
        experiment_id=experiment_id,
        status=FROM_DAGSTER.get(str(dagster_status), "unknown"),
        started_at=_text(item.get("started_at")),
        ended_at=_text(item.get("ended_at")),
        orchestrator="dagster",
        accepted=run_id == accepted,
        recorded_in="dagster only",
        dagster_status=dagster_status,
        parent_run_id=_text(item.get("parent_run_id")),
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _instant(when: str | None) -> datetime:
    """A start time as an aware instant, for ordering (unknown or unparsable: earliest)."""
    try:
        parsed = parse_datetime(when) if isinstance(when, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        return datetime.min.replace(tzinfo=timezone.utc)
    return parsed if parsed.utcoffset() is not None else parsed.replace(tzinfo=timezone.utc)


def _after(started_at: str, since: datetime) -> bool:
    """``since`` without a time zone is taken as UTC, the time zone runs record."""
    aware = since if since.utcoffset() is not None else since.replace(tzinfo=timezone.utc)
    return _instant(started_at) >= aware


def history(experiment_id: str, root: str | Path | None = None) -> pd.DataFrame:
    """``list_runs`` as a DataFrame, one row per run, headline metrics as ``headline.<name>``."""
    import pandas as pd

    records = []
    for row in list_runs(experiment_id, root):
        data = row.to_dict()
        headline = data.pop("headline")
        data.update({f"headline.{k}": v for k, v in headline.items()})
        records.append(data)
    columns = [f.name for f in RunRow.__dataclass_fields__.values() if f.name != "headline"]
    return pd.DataFrame.from_records(records, columns=None if records else columns)
