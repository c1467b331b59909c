"""``reliability.retraining_trigger`` as a Dagster sensor, ``<experiment>_retraining``: each look
reads the experiment's latest ended run under the artifacts root and launches the job to retrain
(the experiment's own, or ``launch``'s) when the run shows a reason, with the reason and the run
in the launched run's tags. The decision and the cooldown are the core's
(``monitoring.retraining``); the sensor's cursor keeps the last launch, and each launch's run key
names the run it followed, so one run never leads to two launches."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import dagster as dg

from crucible_dagster.dagster_plugin.resource import RESOURCE_KEY, CrucibleResource
from crucible_dagster.dagster_plugin.translator import CrucibleTranslator
from crucible_dagster.experiment.ir import Experiment
from crucible_dagster.monitoring.retraining import State, decide
from crucible_dagster.runtime.stage import reliability_setting

#: a tag value is shown in the runs list: the reasons are cut to this
MAX_REASON = 1000


def retraining_sensor(
    experiment: Experiment, job_name: str, translator: CrucibleTranslator
) -> dg.SensorDefinition | None:
    trigger = reliability_setting(experiment, "retraining_trigger")
    if trigger is None:
        return None
    target = trigger.launch or job_name

    def evaluate(context: dg.SensorEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        resource: CrucibleResource = getattr(context.resources, RESOURCE_KEY)
        now = datetime.now(timezone.utc)
        folder = Path(resource.artifacts_root()) / experiment.id
        decision = decide(folder, trigger, State.from_json(context.cursor, now), now)
        if not decision.launch:
            return dg.SkipReason(decision.message)
        context.update_cursor(State(now, decision.run_id).to_json())
        return dg.RunRequest(
            run_key=f"retrain-after-{decision.run_id}",
            tags={
                translator.tag("retrain_reason"): decision.message[:MAX_REASON],
                translator.tag("retrain_after_run"): str(decision.run_id),
                translator.tag("retrain_trigger"): experiment.id,
            },
        )

    return dg.SensorDefinition(
        name=f"{experiment.id}_retraining",
        evaluation_fn=evaluate,
        job_name=target,
        minimum_interval_seconds=trigger.interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING
        if trigger.default_status == "running"
        else dg.DefaultSensorStatus.STOPPED,
        required_resource_keys={RESOURCE_KEY},
        description=f"Launches {target} when the latest run of {experiment.id} shows "
        f"{', '.join(trigger.when)}; at most once every {trigger.cooldown_hours:g} h.",
    )
