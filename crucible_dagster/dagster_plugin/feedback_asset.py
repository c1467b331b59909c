"""An experiment's production feedback as the daily-partitioned asset ``crucible/<id>/feedback``
(``reliability.feedback.daily_from`` sets its first day).

Materializing a day runs the experiment's feedback stage alone, with ``day`` set, through the
one run driver: a run directory of its own (``<artifacts>/<id>/<dagster run id>-<day>``, so a
backfill's days never share one), a manifest that ends in a terminal status, and the stage's
files there (``feedback.parquet``, the errors, the export). The materialization carries the
counts, the day's quality figures and a data version from the kept events' content, so a day
whose feedback did not change keeps its version.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import dagster as dg

from crucible_dagster.dagster_plugin.ops import dagster_log_sink, log_run_directory, stage_failure
from crucible_dagster.dagster_plugin.resource import RESOURCE_KEY, CrucibleResource
from crucible_dagster.experiment.ir import Experiment, ReliabilityConfig, StageDef
from crucible_dagster.experiment.names import suggest_name
from crucible_dagster.runtime.registry import Registry

#: the columns a day's data version is computed from (not the per-run hashed user ids)
VERSIONED = (
    "id",
    "feedback_type",
    "feedback_value",
    "model_version",
    "input",
    "output",
    "timestamp",
)


def feedback_step(experiment: Experiment, registry: Registry) -> StageDef | None:
    """The pipeline's feedback stage (by its class: it may be named otherwise)."""
    from crucible_dagster.feedback.stage import FeedbackStage

    for step in experiment.pipeline:
        if step.enabled and issubclass(registry.resolve(step.implementation), FeedbackStage):
            return step
    return None


def feedback_asset(
    experiment: Experiment, spec: dg.AssetSpec, registry: Registry
) -> dg.AssetsDefinition | None:
    step = feedback_step(experiment, registry)
    if step is None:
        return None

    # named as the dataset's asset is: an op of the experiment's job is '<id>__<stage>'
    name = f"materialize__{suggest_name('__'.join(spec.key.path))}"

    @dg.multi_asset(specs=[spec], name=name, required_resource_keys={RESOURCE_KEY})
    def daily_feedback(context):  # dagster inspects the (absent) annotation
        from crucible_dagster.runtime.run_dirs import run_directory
        from crucible_dagster.runtime.runner import run

        day = date.fromisoformat(str(context.partition_key))
        resource: CrucibleResource = context.resources.crucible
        run_id = f"{context.run.run_id}-{day.isoformat()}"
        path = run_directory(resource.artifacts_root(), experiment.id, run_id)
        result = run(
            _day_experiment(experiment, step, day),
            run_id=run_id,
            run_dir=log_run_directory(context, path),
            registry=registry,
            sinks=[dagster_log_sink(context)],
            orchestrator="dagster",
        )
        if result.failure is not None:
            raise stage_failure(result.failure, day=day.isoformat())
        metrics = result.context.metrics
        return dg.MaterializeResult(
            asset_key=spec.key,
            data_version=dg.DataVersion(_content_version(result.context.get_artifact("feedback"))),
            metadata=_metadata(metrics["feedback"], metrics["feedback_quality"], path),
        )

    return daily_feedback


def _day_experiment(experiment: Experiment, step: StageDef, day: date) -> Experiment:
    """The experiment reduced to its feedback stage for one day: no reports, targets, gate,
    monitoring or sweep (they judge the experiment's own runs, not a day's ingestion)."""
    options = {**step.options, "day": day.isoformat()}
    assert experiment.reliability is not None  # its feedback settings made this asset
    reliability = ReliabilityConfig(feedback=experiment.reliability.feedback)
    return experiment.model_copy(
        update={
            "pipeline": [step.model_copy(update={"options": options})],
            "outputs": [],
            "reliability": reliability,
            "quality_targets": [],
            "baseline": None,
            "sweep": None,
            "parameters": {},
            "seeds": [],
        }
    )


def _content_version(table: Any) -> str:
    """The kept events' content hash (the dataset fingerprint), in id order, of the columns
    that do not change from run to run (not the per-run hashes of user ids)."""
    import pyarrow.parquet as pq

    from crucible_dagster.datasets.fingerprint import fingerprint_table

    return fingerprint_table(pq.read_table(table, columns=list(VERSIONED)).sort_by("id"))[:32]


def _metadata(summary: dict[str, Any], quality: list[dict[str, Any]], path: Any) -> dict[str, Any]:
    counts = {f"crucible/{k}": dg.MetadataValue.int(v) for k, v in summary.items()
              if isinstance(v, int) and not isinstance(v, bool)}  # fmt: skip
    return {
        "dagster/row_count": dg.MetadataValue.int(summary["kept"]),
        **counts,
        "crucible/run_dir": dg.MetadataValue.path(str(path)),
        "crucible/quality": dg.MetadataValue.json(quality),
    }
