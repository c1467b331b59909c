"""A linear experiment's reports as a graph-backed multi-asset, and its job as that asset's job.

``Materialize`` on a report and the experiment's job run the same graph: one op per stage (the
ops the job always had, under a graph ``<job>__stages``, so a step is
``<experiment>__stages.<stage>``), the last stage's op carrying one output per report, and a
``checks`` op evaluating the quality targets and the regression gate. Re-execution from
failure, the executor and its retries work as for any Dagster job; a Materialize run is tagged
as the job's runs are (``crucible/experiment``, ...; several experiments in
``crucible/experiments``).

Why a graph: a multi-asset is one op, so Materialize showed one opaque step where the job had
one per stage. A graph nests its ops' config under the graph's node (``ops: {<graph>: {ops:
{<stage>: ...}}}``), so the job takes today's flat config (``ops: {<stage>: {config: ...}}``,
``resources``, ``loggers``, ``execution``: the schema the job would have as a plain job) through
a ``ConfigMapping`` that nests it: the Launchpad, ``dagster job execute -c`` and every config
file keep their shape. Only Materialize (Dagster's implicit asset job) takes the nested shape,
with every stage's defaults pre-filled.

The reports are the last stage's outputs (whichever stage made them): an op's output that
leads to no asset is never selected, so a stage after the report stage would not run if the
report stage carried them. The checks have an op of their own, downstream of the report that
carries them through a ``Nothing`` input: a check executed alone runs that op alone (Dagster
selects an output's upstream ops only up to an asset's output), which judges the latest
materialization's recorded run (``recheck_latest``) instead of running the experiment again.
Run together with the report, it takes the verdicts the report stage recorded in the
materialization. A stage that fails after the reports exist records them, and their checks,
before failing (the ``fail_run`` quality targets), as the job always did.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from crucible_dagster import Context, Experiment
from crucible_dagster.dagster_plugin.asset_results import as_asset_results
from crucible_dagster.dagster_plugin.data_versions import dataset_inputs
from crucible_dagster.dagster_plugin.report_events import (
    check_evaluations,
    not_checked,
    recheck_latest,
    report_events,
    report_materializations,
)
from crucible_dagster.dagster_plugin.resource import RESOURCE_KEY, CrucibleResource
from crucible_dagster.dagster_plugin.translator import CrucibleTranslator

#: the checks op's step name (``<experiment>__stages.checks``); a stage of that name pushes it aside
CHECKS_STEP = "checks"


@dataclass(frozen=True)
class StageRole:
    """A stage op's part in the report asset (``ops.AssetStep``): the last stage's op carries
    ``outputs`` (report key -> output name); the first tags a Materialize run as it starts."""

    experiment: Experiment
    translator: CrucibleTranslator
    job_name: str
    outputs: Mapping[dg.AssetKey, str]

    def started(self, context: dg.OpExecutionContext) -> None:
        tag_asset_run(context, self.experiment, self.translator, self.job_name)

    def shared(self, context: dg.OpExecutionContext) -> bool:
        return context.job_name != self.job_name

    def reports(
        self, context: dg.OpExecutionContext, before: Context, after: Context, failed: bool
    ) -> Iterator[Any]:
        """The last stage's op: every report of the run's context as its output. A failed
        stage: the reports made so far, and their checks (the checks op will not run)."""
        if not failed and not self.outputs:
            return
        empty = Context(experiment_id=after.experiment_id, run_id=after.run_id)
        experiment, translator = self.experiment, self.translator
        events: Iterator[Any] = (
            report_events(empty, after, experiment, translator)
            if failed
            else report_materializations(empty, after, experiment, translator)
        )
        if not self.outputs:
            yield from events  # an earlier stage's op: recorded as runtime events
            return
        # the dataset version this run loaded, as the reports' input (``data_versions``)
        tags = dataset_inputs(context, experiment, translator, after, list(self.outputs), False)
        for event in events:
            name = (
                self.outputs.get(event.asset_key)
                if isinstance(event, dg.AssetMaterialization)
                else None
            )
            if name is None:
                yield event
            elif name in context.selected_output_names:
                yield dg.Output(
                    None, output_name=name, metadata=event.metadata, tags=tags.get(event.asset_key)
                )


def tag_asset_run(
    context: dg.OpExecutionContext,
    experiment: Experiment,
    translator: CrucibleTranslator,
    job_name: str,
) -> None:
    """A run that is not the experiment's job (Materialize, a check executed alone) carries
    the job's tags (``crucible/experiment``, ``crucible/ir_hash``, ...), so filtering runs by
    experiment finds it; a run over several experiments lists them in
    ``crucible/experiments``."""
    if context.job_name == job_name:
        return  # the job carries its tags
    ids = experiments_in_run(context, translator) or {experiment.id}
    if ids == {experiment.id}:
        tags = dict(translator.get_job_spec(experiment).tags)
    else:
        tags = {translator.tag("experiments"): ",".join(sorted(ids))[:4000]}
    context.instance.add_run_tags(context.run_id, tags)


def experiments_in_run(context: dg.OpExecutionContext, translator: CrucibleTranslator) -> set[str]:
    """The experiments whose reports or checks this run selected (their assets' tag)."""
    run = context.run
    keys = set(run.asset_selection or ())
    keys.update(check.asset_key for check in run.asset_check_selection or ())
    graph = context.job_def.asset_layer.asset_graph
    if not keys:  # the whole job
        keys = set(graph.get_all_asset_keys())
    tag = translator.tag("experiment")
    found = (graph.get(key).tags.get(tag) for key in keys if graph.has(key))
    return {experiment for experiment in found if experiment}


def checks_op(
    experiment: Experiment,
    translator: CrucibleTranslator,
    check_specs: Sequence[dg.AssetCheckSpec],
    job_name: str,
    op_name: str,
    report: dg.AssetKey,
) -> dg.OpDefinition:
    """The op that evaluates the experiment's checks: with ``report`` made in the same run,
    the verdicts the report stage recorded; alone, the latest report's run judged again."""

    def compute(context, inputs):  # dagster inspects the (absent) annotations
        tag_asset_run(context, experiment, translator, job_name)
        resource: CrucibleResource = context.resources.crucible
        for key in sorted(context.selected_asset_check_keys, key=lambda k: k.name):
            yield _check_result(context, experiment, translator, resource, key, report)

    spec = translator.get_op_spec(experiment, CHECKS_STEP)
    return dg.OpDefinition(
        compute_fn=compute,
        name=op_name,
        ins={"report": dg.In(dg.Nothing)},
        outs={
            check.get_python_identifier(): dg.Out(dg.Nothing, is_required=False)
            for check in check_specs
        },
        description="Evaluates the experiment's quality targets and regression gate on the "
        "report; executed alone, on the run that made the latest report",
        tags=spec.tags,
        required_resource_keys={RESOURCE_KEY},
    )


def _check_result(
    context: dg.OpExecutionContext,
    experiment: Experiment,
    translator: CrucibleTranslator,
    resource: CrucibleResource,
    key: dg.AssetCheckKey,
    report: dg.AssetKey,
) -> dg.AssetCheckResult:
    event = context.instance.get_latest_materialization_event(report)
    materialization = event.asset_materialization if event is not None else None
    if event is None or materialization is None or event.run_id != context.run_id:
        return recheck_latest(context.instance, experiment, key, resource, translator)
    recorded = materialization.metadata.get("metrics")
    metrics = recorded.data if isinstance(recorded, dg.JsonMetadataValue) else None
    evaluations = check_evaluations(
        metrics if isinstance(metrics, Mapping) else {}, experiment, translator
    )
    for result in as_asset_results(iter(evaluations)):
        if isinstance(result, dg.AssetCheckResult) and result.check_name == key.name:
            return result
    return not_checked(key, f"the report stage recorded no verdict for the check {key.name}")


def checks_node_name(experiment: Experiment, translator: CrucibleTranslator) -> tuple[str, str]:
    """The checks op's node and definition names, pushed aside by a stage of that name."""
    stages = [translator.get_op_spec(experiment, s.name) for s in experiment.enabled_stages]
    taken = {s.node_name for s in stages} | {s.name for s in stages}
    step = CHECKS_STEP
    spec = translator.get_op_spec(experiment, step)
    while spec.node_name in taken or spec.name in taken:
        step = f"{step}_"
        spec = translator.get_op_spec(experiment, step)
    return spec.node_name, spec.name
