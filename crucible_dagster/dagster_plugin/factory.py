"""Compile an experiment into Dagster definitions: a job, its report assets and its schedule."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from crucible_dagster import Experiment, Registry
from crucible_dagster.dagster_plugin.celery.settings import CelerySettings, missing_extra
from crucible_dagster.dagster_plugin.dataset_asset import dataset_asset
from crucible_dagster.dagster_plugin.io_manager import IO_MANAGER_KEY, CrucibleContextIOManager
from crucible_dagster.dagster_plugin.report_job import LinearJob, linear_job
from crucible_dagster.dagster_plugin.resource import RESOURCE_KEY, CrucibleResource
from crucible_dagster.dagster_plugin.retraining_sensor import retraining_sensor
from crucible_dagster.dagster_plugin.translator import CrucibleTranslator
from crucible_dagster.lifecycle.register_stage import PROMOTE
from crucible_dagster.runtime.registry import registry_for

DEFAULT_IO_MANAGER = CrucibleContextIOManager()
DEFAULT_RESOURCE = CrucibleResource()
_SHARED: dict[str, CrucibleResource] = {}


def shared_resource(artifacts_dir: str | None) -> CrucibleResource:
    """One resource object per artifacts root: Dagster merges the definitions of a code
    location's components only when their ``crucible`` resources are the same object, so
    components writing to one root (the project's default) must share it."""
    if artifacts_dir is None:
        return DEFAULT_RESOURCE
    return _SHARED.setdefault(artifacts_dir, CrucibleResource(artifacts_dir=artifacts_dir))


#: what nearly every step imports, imported once in the forkserver: each step process forked from
#: it starts with them (importing them took a step 1.2 s; a sweep of 22 steps spent half its time
#: there)
HEAVY = ("numpy", "pandas", "pyarrow", "pyarrow.parquet", "scipy.stats")

#: what every step process imports to open the run's instance (the SQLite storage stack, the
#: compute-log manager, upath) and to re-run the ``dagster`` script as its ``__main__``: with them
#: in the forkserver too, opening the instance in a step took 0.05 s instead of 0.43 s (513
#: modules fewer to import per step; measured on the default SQLite instance)
STEP_START = (
    "dagster._cli",
    "dagster._core.instance.factory",
    "dagster._core.storage.root",
    "dagster._core.storage.migration.utils",
    "dagster._core.storage.sqlite_storage",
    "dagster._core.storage.local_compute_log_manager",
    "upath",
)

#: the forkserver's preload list: each step process forked from it starts with these imported
PRELOAD = ("dagster", "crucible_dagster.dagster_plugin", *HEAVY, *STEP_START)


def executor_for(experiment: Experiment) -> dg.ExecutorDefinition:
    """In-process by default (stages are sequential); multiprocess with a preloaded forkserver,
    or dagster_celery's executor with the broker the workers use, on request."""
    if experiment.dagster.executor == "celery":
        return celery_executor_def()
    if experiment.dagster.executor == "multiprocess":
        return dg.multiprocess_executor.configured(
            {"start_method": {"forkserver": {"preload_modules": list(PRELOAD)}}}
        )
    return dg.in_process_executor


def celery_executor_def() -> dg.ExecutorDefinition:
    """dagster_celery's executor, configured from the environment (``celery.settings``)."""
    try:
        from crucible_dagster.dagster_plugin.celery.app import celery_executor
    except ImportError:
        raise missing_extra() from None
    return celery_executor.configured(CelerySettings.from_env().executor_config(), name="celery")


def _sweep_steps(experiment: Experiment) -> Any:
    """The steps of the sweep's strategy: a grid's trials, a race's rounds, a study's trials."""
    from crucible_dagster.dagster_plugin.race_job import race_steps
    from crucible_dagster.dagster_plugin.study_job import study_steps
    from crucible_dagster.dagster_plugin.sweep import grid_steps

    strategy = experiment.sweep.strategy if experiment.sweep is not None else "grid"
    return {"racing": race_steps, "optuna": study_steps}.get(strategy, grid_steps)


def build_job(
    experiment: Experiment,
    *,
    translator: CrucibleTranslator | None = None,
    registry: Registry | None = None,
    io_manager: dg.IOManagerDefinition | dg.ConfigurableIOManager | None = None,
    resource: CrucibleResource | None = None,
) -> dg.JobDefinition:
    """One op per enabled stage, linear dependencies in pipeline order; an experiment with
    file reports gets its report asset's job (``report_graph``), resolved on that asset."""
    translator = translator or CrucibleTranslator()
    resource_defs = _resource_defs(experiment, io_manager, resource)
    return _built_job(experiment, translator, registry, resource_defs).job


def _resource_defs(
    experiment: Experiment,
    io_manager: dg.IOManagerDefinition | dg.ConfigurableIOManager | None = None,
    resource: CrucibleResource | None = None,
) -> dict[str, Any]:
    return {
        IO_MANAGER_KEY: io_manager or DEFAULT_IO_MANAGER,
        # the experiment's seed (and a sweep's grid) as run config the Launchpad pre-fills
        RESOURCE_KEY: (resource or DEFAULT_RESOURCE).for_experiment(experiment),
    }


def _built_job(
    experiment: Experiment,
    translator: CrucibleTranslator,
    registry: Registry | None,
    resource_defs: dict[str, Any],
) -> LinearJob:
    """The experiment's job (a sweep's, a linear one's) and, for a linear experiment with
    file reports, the report asset whose job it is."""
    registry = registry_for(experiment, registry)
    if experiment.is_sweep:
        from crucible_dagster.dagster_plugin.sweep_asset import sweep_job

        for stage_def in experiment.pipeline:  # fail at definition time, like a linear job would
            registry.resolve(stage_def.implementation)
        return sweep_job(
            experiment,
            _sweep_steps(experiment)(experiment, translator, registry),
            translator=translator,
            resource_defs=resource_defs,
            executor_def=executor_for(experiment),
            # in partitions, the partitioned assets are the sweep's report
            as_asset=experiment.dagster.sweep.mode != "partitions",
        )
    return linear_job(experiment, translator, registry, resource_defs, executor_for(experiment))


def build_schedule(
    experiment: Experiment,
    job: dg.JobDefinition,
    translator: CrucibleTranslator | None = None,
) -> dg.ScheduleDefinition | None:
    if experiment.schedule is None or experiment.dagster.automation == "on_cron":
        return None  # on_cron: the report assets' automation condition runs it instead
    translator = translator or CrucibleTranslator()
    schedule = experiment.schedule
    spec = translator.get_schedule_spec(experiment)
    return dg.ScheduleDefinition(
        name=spec.name,
        description=spec.description,
        cron_schedule=schedule.cron,
        job=job,
        execution_timezone=schedule.timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING
        if schedule.default_status == "running"
        else dg.DefaultScheduleStatus.STOPPED,
    )


@dataclass
class CompiledExperiment:
    experiment: Experiment
    #: a linear experiment with file reports: its report asset's job (the asset in ``assets``)
    job: dg.JobDefinition
    registry: Registry | None = None
    #: assets of its own: its reports' (a linear experiment's), the dataset it reads (shared),
    #: a partitioned sweep's two
    assets: list[dg.AssetsDefinition | dg.AssetSpec] = field(default_factory=list)
    schedule: dg.ScheduleDefinition | None = None
    #: ``reliability.retraining_trigger``'s sensor
    sensor: dg.SensorDefinition | None = None
    #: checks of assets the job records by events (a registered model's promotion gate, drift)
    checks: list[dg.AssetChecksDefinition] = field(default_factory=list)
    #: assets declared only when no other experiment declares them (a model watched for drift)
    fallback_assets: list[dg.AssetSpec] = field(default_factory=list)


def _add_model(
    compiled: CompiledExperiment, translator: CrucibleTranslator, resource: CrucibleResource
) -> None:
    """The registered model's asset (declared by an experiment that registers or promotes it;
    one that only watches it for drift declares it in case no other does) and its checks."""
    from crucible_dagster.dagster_plugin.model_asset import model_checks, model_key, watches

    experiment = compiled.experiment
    key = model_key(experiment, translator)
    if key is None:
        return
    spec = translator.get_model_asset_spec(experiment)
    if spec is not None:
        compiled.assets.append(spec)
    else:
        compiled.fallback_assets.append(translator.model_asset_spec(key.path[-1], [], "watched"))
    promotes = any(s.implementation in PROMOTE for s in experiment.enabled_stages)
    metrics = ["promotion"] * promotes + ["drift"] * watches(experiment)
    compiled.checks.extend(model_checks(experiment, key, resource, metrics))


def compile_experiment(
    experiment: Experiment,
    *,
    translator: CrucibleTranslator | None = None,
    registry: Registry | None = None,
    resource: CrucibleResource | None = None,
) -> CompiledExperiment:
    """``resource``: where the job's run directories go (default ``DEFAULT_RESOURCE``)."""
    translator = translator or CrucibleTranslator()
    resolved = registry_for(experiment, registry)
    built = _built_job(experiment, translator, resolved, _resource_defs(experiment, None, resource))
    compiled = CompiledExperiment(
        experiment,
        built.job,
        registry=resolved,
        schedule=build_schedule(experiment, built.job, translator),
        sensor=retraining_sensor(experiment, built.job.name, translator),
    )
    if built.asset is not None:  # its reports (a linear experiment's, with their checks; a sweep's)
        compiled.assets.append(built.asset)
    if experiment.sweep is not None and experiment.dagster.sweep.mode == "partitions":
        from crucible_dagster.dagster_plugin.partitioned_sweep import partitioned_sweep_assets

        compiled.assets.extend(partitioned_sweep_assets(experiment, translator, resolved))
    feedback = translator.get_feedback_asset_spec(experiment)
    if feedback is not None:
        from crucible_dagster.dagster_plugin.feedback_asset import feedback_asset

        compiled.assets.extend(filter(None, [feedback_asset(experiment, feedback, resolved)]))
    _add_model(compiled, translator, resource or DEFAULT_RESOURCE)
    dataset = translator.get_dataset_asset_spec(experiment)
    if dataset is not None and experiment.dataset is not None:
        compiled.assets.append(dataset_asset(dataset, experiment.dataset))
    return compiled
