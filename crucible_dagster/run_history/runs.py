"""An experiment's runs: from its run directories, and from every registered run source (the
Dagster adapter registers its instance), merged on the run id."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crucible_dagster.run_history.baselines import accepted_run
from crucible_dagster.runtime.quality import METRIC_KEY
from crucible_dagster.runtime.run_record import MANIFEST, artifacts_root, read_manifest, stale_note

if TYPE_CHECKING:
    import pandas as pd

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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def headline_metrics(manifest: Mapping[str, Any]) -> dict[str, float]:
    """The figures a run is judged by: each quality target's and the regression gate's estimate."""
    metrics = manifest.get("metrics") or {}
    out: dict[str, float] = {}
    for verdict in metrics.get(METRIC_KEY) or []:
        estimate = verdict.get("estimate") if isinstance(verdict, Mapping) else None
        if isinstance(estimate, int | float) and not isinstance(estimate, bool):
            out[str(verdict.get("name"))] = float(estimate)
    return out


def _from_manifest(manifest: Mapping[str, Any], run_dir: Path, accepted: str | None) -> RunRow:
    status = str(manifest.get("status"))
    if stale_note(manifest):
        status = "running (stale: its process is gone)"
    return RunRow(
        run_id=str(manifest["run_id"]),
        experiment_id=str(manifest["experiment_id"]),
        status=status,
        started_at=manifest.get("started_at"),
        ended_at=manifest.get("ended_at"),
        orchestrator=manifest.get("orchestrator"),
        accepted=manifest["run_id"] == accepted,
        parent_run_id=manifest.get("parent_run_id"),
        run_dir=str(run_dir),
        headline=headline_metrics(manifest),
    )


def run_manifests(experiment_dir: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Each run directory of an experiment with its manifest; anything else there is skipped."""
    if not experiment_dir.is_dir():
        return
    for run_dir in experiment_dir.iterdir():
        if not (run_dir / MANIFEST).is_file():
            continue
        try:
            yield run_dir, read_manifest(run_dir)
        except ValueError:
            continue


def _sources() -> list[RunSource]:
    found = []
    for entry in entry_points(group=RUN_SOURCES):
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
    """Every run of the experiment, oldest first; ``sources`` default to the registered ones."""
    experiment_dir = artifacts_root(root) / experiment_id
    accepted = accepted_run(experiment_dir)
    rows: dict[str, RunRow] = {}
    for run_dir, manifest in run_manifests(experiment_dir):
        row = _from_manifest(manifest, run_dir, accepted)
        rows[row.run_id] = row
    for source in _sources() if sources is None else sources:
        try:
            external = source(experiment_id)
        except Exception:  # an unreachable instance: the run directories still answer
            continue
        for item in external:
            _merge(rows, item, experiment_id, accepted)
    chosen = [
        r
        for r in rows.values()
        if (status is None or r.status == status or r.dagster_status == status)
        and (since is None or (r.started_at is not None and _after(r.started_at, since)))
    ]
    return sorted(chosen, key=lambda r: (r.started_at or "", r.run_id))


def _merge(
    rows: dict[str, RunRow], item: Mapping[str, Any], experiment_id: str, accepted: str | None
) -> None:
    run_id = str(item["run_id"])
    if run_id in rows:
        row = rows[run_id]
        row.recorded_in = "both"
        row.dagster_status = item.get("status")
        return
    rows[run_id] = RunRow(
        run_id=run_id,
        experiment_id=experiment_id,
        status=str(item.get("status")),
        started_at=item.get("started_at"),
        ended_at=item.get("ended_at"),
        orchestrator="dagster",
        accepted=run_id == accepted,
        recorded_in="dagster only",
        dagster_status=item.get("status"),
        parent_run_id=item.get("parent_run_id"),
    )


def _after(started_at: str, since: datetime) -> bool:
    try:
        started = datetime.fromisoformat(started_at)
    except ValueError:
        return False
    if since.tzinfo is None:
        started = started.replace(tzinfo=None)
    return started >= since


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
