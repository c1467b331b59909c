"""A sweep as one Dagster run: plan the trials, fan out with DynamicOut, collect into a comparison.

Trials run sequentially in-process by default, in parallel under the multiprocess executor
when the experiment asks for it. "Re-execute from failure" reruns only the failed trials:
the others' outcomes are read back from the parent run's storage.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import dagster as dg

from crucible_dagster import Context, Experiment, Registry
from crucible_dagster.dagster_plugin.data_versions import dataset_inputs
from crucible_dagster.dagster_plugin.io_manager import IO_MANAGER_KEY
from crucible_dagster.dagster_plugin.ops import (
    STATUS_TAG,
    dagster_log_sink,
    dagster_run,
    parent_run_id,
    stage_failure,
)
from crucible_dagster.dagster_plugin.resource import RESOURCE_KEY
from crucible_dagster.dagster_plugin.translator import CrucibleTranslator
from crucible_dagster.experiment.ir import step_size
from crucible_dagster.runtime.driver import Run, StageFailure
from crucible_dagster.runtime.run_record import read_manifest, run_directory
from crucible_dagster.sweeps.finish import finish_sweep
from crucible_dagster.sweeps.grid import Trial, expand_grid
from crucible_dagster.sweeps.running import TrialOutcome, run_trials

#: the trial and compare ops' one output, stored by the crucible IO manager
RESULT_OUT = {"result": dg.Out(io_manager_key=IO_MANAGER_KEY)}
#: the compare step's one output, the sweep asset's materialization: no value (the comparison
#: is in the sweep's manifest and reports, in its run directory), as a linear report's, so the
#: asset asks for no IO manager of its own
REPORT_OUT = "report"


def _batches(experiment: Experiment) -> list[list[Trial]]:
    """Trials grouped for steps: ``sweep.trials_per_step`` each (one event-log round per step),
    or when unset about four steps of at most 20 (``step_size``)."""
    trials = expand_grid(experiment)
    size = step_size(experiment.sweep, len(trials))
    return [trials[i : i + size] for i in range(0, len(trials), size)]


def _batch_key(batch: list[Trial], start: int) -> str:
    """A trial's own id for a group of one; else the 1-based range of trials it holds."""
    if len(batch) == 1:
        return batch[0].trial_id
    return f"trials_{start + 1}_to_{start + len(batch)}"


def _ancestor_runs(root: Path, experiment: Experiment, parent: str | None) -> list[Path]:
    """The run directories a re-execution descends from, nearest first (read once a step)."""
    runs: list[Path] = []
    while parent and all(run.name != parent for run in runs):
        runs.append(run_directory(root, experiment.id, parent))
        try:
            parent = read_manifest(runs[-1]).get("parent_run_id")
        except ValueError:
            break
    return runs


def _sweep_op(
    experiment: Experiment, translator: CrucibleTranslator, step: str, description: str, **op: Any
) -> Callable[[Callable[..., Any]], dg.OpDefinition]:
    """The sweep job's op decorator: its name, tags and resources, the same for its three ops."""
    spec = translator.get_op_spec(experiment, step)
    return dg.op(
        name=spec.name,
        description=description,
        tags=spec.tags,
        required_resource_keys={RESOURCE_KEY},
        **op,
    )


def _plan_op(experiment: Experiment, translator: CrucibleTranslator) -> dg.OpDefinition:
    trial_out = dg.DynamicOut(io_manager_key=IO_MANAGER_KEY)
    description = "One output per group of trials (grid point x seed)"

    @_sweep_op(experiment, translator, "plan_trials", description, out={"trial": trial_out})
    def plan_trials(context):  # dagster inspects the (absent) annotations
        run_experiment = context.resources.crucible.applied_to(experiment)  # this run's grid
        tag_sweep_run(context, experiment, translator)
        batches = _batches(run_experiment)
        trials = [t.to_dict() for batch in batches for t in batch]
        dagster_run(run_experiment, context, steps=[], trials=trials)
        start = 0
        for batch in batches:
            key = _batch_key(batch, start)
            yield dg.DynamicOutput(
                [t.to_dict() for t in batch], mapping_key=key, output_name="trial"
            )
            start += len(batch)

    return plan_trials


def tag_sweep_run(context: Any, experiment: Experiment, translator: CrucibleTranslator) -> None:
    """A sweep's first step: a Materialize run of its report carries the job's tags."""
    from crucible_dagster.dagster_plugin.report_graph import tag_asset_run

    tag_asset_run(context, experiment, translator, translator.get_job_spec(experiment).name)


def _trial_op(
    experiment: Experiment, translator: CrucibleTranslator, registry: Registry
) -> dg.OpDefinition:
    description = "Every stage of the pipeline for each trial of the group"
    pool = experiment.dagster.sweep.pool if experiment.sweep else None

    @_sweep_op(experiment, translator, "run_trial", description, out=RESULT_OUT, pool=pool)
    def run_one(context, trials):
        run_experiment = context.resources.crucible.applied_to(experiment)
        outcomes = run_trial_group(context, experiment, run_experiment, trials, registry)
        exhausted = [o.trial.trial_id for o in outcomes if o.status == "budget_exhausted"]
        if exhausted:  # the sweep's budget ran out: tagged as a stage op tags a run
            context.log.warning(f"crucible: budget exhausted in trial(s) {', '.join(exhausted)}")
            context.instance.add_run_tags(context.run_id, {STATUS_TAG: "budget_exhausted"})
        yield group_output(outcomes)

    return run_one


def run_trial_group(
    context: Any,
    experiment: Experiment,
    run_experiment: Experiment,
    trials: list[dict[str, Any]],
    registry: Registry,
    trial_experiment: Experiment | None = None,
) -> list[TrialOutcome]:
    """A step's group of trials (a grid's, a race round's) on the one trial loop, recorded in
    the sweep's run (``trial_experiment``: what the trials run, default the run's)."""
    sweep = dagster_run(run_experiment, context, steps=[])
    assert sweep.path is not None
    ancestors = _ancestor_runs(sweep.path.parent.parent, experiment, parent_run_id(context))
    outcomes, failures = run_trials(
        trial_experiment or run_experiment,
        [Trial.from_dict(t) for t in trials],
        sweep,
        registry=registry,
        sinks=[dagster_log_sink(context)],
        orchestrator="dagster",
        earlier=ancestors,
    )
    if failures:
        fail_sweep(sweep, failures)
    return outcomes


def fail_sweep(sweep: Run, failures: list[tuple[Trial, StageFailure]]) -> NoReturn:
    """The step fails at its trials' first failure, so the sweep's record ends here too (a
    re-execution has its own)."""
    spec, failure = failures[0]
    sweep.fail({"trial": spec.trial_id, **failure.to_dict()})
    raise stage_failure(failure, trial=", ".join(s.trial_id for s, _ in failures))


def group_output(outcomes: list[TrialOutcome]) -> dg.Output[list[dict[str, Any]]]:
    """A trial step's output (a grid's group, a race round's): its outcomes, and as metadata
    its trials and the workers that ran them."""
    workers = sorted({f"{o.worker['host']}:{o.worker['pid']}" for o in outcomes if o.worker})
    metadata = {
        "crucible/trials": ", ".join(o.trial.trial_id for o in outcomes),
        "crucible/workers": ", ".join(workers),
    }
    return dg.Output([o.to_dict() for o in outcomes], metadata=metadata)


#: a compare step's own part: from the step's context, this run's experiment, the sweep's record
#: and what the trial steps collected, the outcomes to compare and ``finish_sweep``'s keywords
Compared = Callable[[Any, Experiment, Run, list[Any]], tuple[list[TrialOutcome], dict[str, Any]]]


def compare_op(
    experiment: Experiment, translator: CrucibleTranslator, description: str, compared: Compared
) -> dg.OpDefinition:
    """The compare step of every sweep job (grid, race, study): this run's experiment and the
    sweep's record; ``compared`` picks the outcomes (and the race's or study's summary); the
    trials compared and the reports written (``finish_sweep``), the sweep asset materialized."""

    outs = {REPORT_OUT: dg.Out(dg.Nothing)}

    @_sweep_op(experiment, translator, "compare_trials", description, out=outs)
    def compare(context, outcomes):
        run_experiment = context.resources.crucible.applied_to(experiment)
        sweep = dagster_run(run_experiment, context, steps=[])
        picked, finish = compared(context, run_experiment, sweep, outcomes)
        comparison, paths = finish_sweep(run_experiment, picked, sweep, **finish)
        # the sweep asset's materialization: the comparison, with the dataset version the
        # trials loaded as its input (``data_versions``); a sweep in partitions has a plain job,
        # whose report is its partitioned assets'
        key = translator.get_sweep_asset_spec(experiment).key
        tags = (
            dataset_inputs(context, experiment, translator, loaded_by(picked), [key])
            if context.has_assets_def
            else {}
        )
        yield dg.Output(
            None,
            output_name=REPORT_OUT,
            metadata=sweep_metadata(experiment, comparison, paths),
            tags=tags.get(key),
        )

    return compare


def _every_trial(
    context: Any, run_experiment: Experiment, sweep: Run, groups: list[Any]
) -> tuple[list[TrialOutcome], dict[str, Any]]:
    """A grid compares every trial its steps ran."""
    return [TrialOutcome.from_dict(o) for group in groups for o in group], {}


#: wires a sweep job's ops, given each step's node name; returns the compare step's output
Compose = Callable[[Callable[[str], str]], Any]


def grid_steps(
    experiment: Experiment, translator: CrucibleTranslator, registry: Registry
) -> Compose:
    """A grid sweep's steps: plan the trials, run each group (mapped), compare them."""
    plan = (_plan_op(experiment, translator), "plan_trials")
    run = (_trial_op(experiment, translator, registry), "run_trial")
    description = "Statistical comparison of the configurations"
    return mapped_steps(plan, run, compare_op(experiment, translator, description, _every_trial))


def mapped_steps(
    plan: tuple[dg.OpDefinition, str], run: tuple[dg.OpDefinition, str], compare: dg.OpDefinition
) -> Compose:
    """Plan (each ``(op, step)``), run each planned group (mapped), compare what they collect:
    the shape of a grid's and of a study's job."""

    def compose(node: Callable[[str], str]) -> Any:
        planned = plan[0].alias(node(plan[1]))()
        results = planned.map(run[0].alias(node(run[1])))
        return compare.alias(node("compare_trials"))(results.collect())

    return compose


#: the per-configuration table's rows at most (a grid of thousands of points stays a table the
#: UI can show; the sweep's reports hold every row)
MAX_TABLE_ROWS = 500


def configurations_table(
    experiment: Experiment, comparison: dict[str, Any]
) -> dg.TableMetadataValue | None:
    """One row per configuration: its parameters, n, the mean of the sweep metric and its
    confidence interval, rounded to what the interval resolves (``round_by_interval``); None
    when nothing was compared."""
    from crucible_dagster.reports.precision import round_by_interval

    summaries = comparison.get("configurations") or {}
    if not isinstance(summaries, dict) or not summaries:
        return None
    sweep = experiment.sweep
    metric = sweep.metric if sweep is not None else "the metric"
    level = f"{1 - sweep.alpha:.0%}" if sweep is not None else "the"
    records = []
    for name, summary in list(summaries.items())[:MAX_TABLE_ROWS]:
        mean, low, high = round_by_interval(
            summary.get("mean"), summary.get("ci_low"), summary.get("ci_high")
        )
        n = summary.get("n")
        records.append(
            dg.TableRecord(
                {
                    "configuration": str(name),
                    "parameters": json.dumps(summary.get("params") or {}, sort_keys=True),
                    "n": n if isinstance(n, int) and not isinstance(n, bool) else None,
                    "mean": mean,
                    "ci_low": low,
                    "ci_high": high,
                }
            )
        )
    columns = [
        dg.TableColumn("configuration", "string"),
        dg.TableColumn("parameters", "string", description="the grid point"),
        dg.TableColumn("n", "int", description="values of the metric (seeds x folds)"),
        dg.TableColumn("mean", "float", description=f"mean {metric}"),
        dg.TableColumn("ci_low", "float", description=f"{level} confidence interval, low"),
        dg.TableColumn("ci_high", "float", description=f"{level} confidence interval, high"),
    ]
    return dg.MetadataValue.table(records=records, schema=dg.TableSchema(columns=columns))


def sweep_metadata(
    experiment: Experiment, comparison: dict[str, Any], paths: dict[str, str]
) -> dict[str, Any]:
    """The sweep report's materialization metadata: its files, a preview, the best
    configuration, the per-configuration table and each configuration's mean."""
    from crucible_dagster.dagster_plugin.previews import sweep_preview

    metadata: dict[str, Any] = {
        f"path/{fmt}": dg.MetadataValue.path(path) for fmt, path in paths.items()
    }
    metadata["preview"] = dg.MetadataValue.md(sweep_preview(Path(paths["markdown"])))
    best = comparison.get("best") or {}
    if best:
        metadata["best_configuration"] = str(best.get("configuration"))
        metadata["best_significantly_better"] = bool(best.get("significantly_better"))
    study = comparison.get("study") or {}
    if isinstance(study.get("best"), dict):  # an Optuna sweep: its best trial's parameters
        metadata["study/best_params"] = dg.MetadataValue.json(study["best"].get("params") or {})
        metadata["study/pruned"] = int(study.get("pruned") or 0)
    table = configurations_table(experiment, comparison)
    if table is not None:
        metadata["configurations"] = table
    for name, summary in (comparison.get("configurations") or {}).items():
        if isinstance(summary.get("mean"), float):
            metadata[f"mean/{name}"] = dg.MetadataValue.float(summary["mean"])
    return metadata


def loaded_by(outcomes: list[TrialOutcome]) -> Context:
    """What the trials loaded of the dataset (their ``dataset`` metric), as a context
    ``data_versions`` reads: every trial loads the same named dataset, the first tells."""
    for outcome in outcomes:
        metric = outcome.metrics.get("dataset")
        if isinstance(metric, dict) and isinstance(metric.get("fingerprint"), str):
            name = metric.get("name")
            return Context(
                experiment_id="",
                run_id="",
                metrics={"dataset": metric},
                assigns={"data_fingerprints": {name: metric["fingerprint"]}},
            )
    return Context(experiment_id="", run_id="")
