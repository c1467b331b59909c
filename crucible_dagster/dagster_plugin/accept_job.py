"""Accepting a baseline from the UI: a one-op job that takes the run id as config.

The Launchpad asks for the experiment id, optionally the run id (left empty: the experiment's
latest completed run, so nothing has to be copied from a run's page) and an optional note; the
op does what ``crucible accept`` does, in the same artifacts root.
"""

from __future__ import annotations

import dagster as dg

from crucible_dagster.dagster_plugin.resource import RESOURCE_KEY, CrucibleResource
from crucible_dagster.experiment.names import check_name
from crucible_dagster.run_history import list_runs
from crucible_dagster.run_history.baselines import AcceptError, accept
from crucible_dagster.runtime.run_record import RunDirectoryError, run_directory

ACCEPT_JOB = "crucible_accept_baseline"


@dg.op(
    name="accept_baseline",
    config_schema={
        "experiment_id": dg.Field(str, description="The experiment whose baseline this becomes"),
        "run_id": dg.Field(
            dg.Noneable(str),
            default_value=None,
            description="A completed run of that experiment; empty: its latest completed run",
        ),
        "note": dg.Field(dg.Noneable(str), default_value=None, description="Why (optional)"),
    },
    required_resource_keys={RESOURCE_KEY},
    description="Mark a completed run as its experiment's accepted regression baseline",
)
def accept_baseline(context) -> None:  # dagster inspects the (absent) annotation
    resource: CrucibleResource = context.resources.crucible
    config = context.op_config
    try:
        experiment_id = check_name(config["experiment_id"], "experiment id")  # never a path
        root = resource.artifacts_root()
        run_id = config["run_id"] or latest_completed(experiment_id, root)
        path = run_directory(root, experiment_id, run_id)
        entry = accept(
            path,
            config["note"],
            by="dagster",
            root=root,
            note_field="ops.accept_baseline.config.note",  # never the CLI's --note
        )
    except (AcceptError, RunDirectoryError, ValueError) as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    context.log.info(
        f"run {entry['run_id']} is now the accepted baseline of {entry['experiment_id']}"
    )
    context.add_output_metadata(
        {"run_id": entry["run_id"], "experiment_id": entry["experiment_id"]}
    )


def latest_completed(experiment_id: str, root: str) -> str:
    """The experiment's newest completed run in its run directories (the one a user has just
    looked at, in the usual case); AcceptError when it has none."""
    completed = list_runs(experiment_id, root, status="completed", sources=[])
    if not completed:
        raise AcceptError(
            f"run_id: expected a completed run of {experiment_id!r} to accept, found none under "
            f"{root}; run the experiment first, or name the run"
        )
    return completed[-1].run_id


def accept_job(resource: CrucibleResource) -> dg.JobDefinition:
    @dg.job(
        name=ACCEPT_JOB,
        description="Accept a run as an experiment's regression baseline (as `crucible accept`)",
        resource_defs={RESOURCE_KEY: resource},
        executor_def=dg.in_process_executor,
        tags={"crucible/kind": "accept_baseline"},
    )
    def accept_baseline_job() -> None:
        accept_baseline()

    return accept_baseline_job
