"""One op per stage. The op body is a thin strategy over the run driver (``Run.join`` and
``Run.step``), so stage semantics and the run record are the same under Dagster and in the
plain runner."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import dagster as dg

from crucible_dagster import Context, Experiment, Registry, Stage, StageDef
from crucible_dagster.dagster_plugin.config import options_config_schema
from crucible_dagster.dagster_plugin.io_manager import (
    IO_MANAGER_KEY,
    CrucibleContextIOManager,
    redacted,
)
from crucible_dagster.dagster_plugin.model_asset import model_events
from crucible_dagster.dagster_plugin.report_events import (
    GATE_SEVERITY,
    GATE_TAG,
    float_metadata,
    gate_tag_value,
    report_events,
    request_headline,
)
from crucible_dagster.dagster_plugin.resource import RESOURCE_KEY, CrucibleResource
from crucible_dagster.dagster_plugin.translator import CrucibleTranslator
from crucible_dagster.experiment.unused import unused_settings
from crucible_dagster.runtime.driver import (
    Run,
    StageFailure,
    changed_metrics,
    ended_status,
    first_context,
    option_problems,
)
from crucible_dagster.runtime.telemetry import Sink

if TYPE_CHECKING:
    from dagster._core.definitions.output import OutputDefinition

T = TypeVar("T")
DATA_VERSION_TAG = "dagster/data_version"  # how an observation records a data version
#: a run tag: the run's record ended (or will end) other than completed; the job itself
#: succeeds, as every stage ran and its answers are kept (``budget_exhausted``)
STATUS_TAG = "crucible/status"
# Built once and shared by every op: Dagster resolves an In's type each time it builds one,
# which is a fifth of the cost of loading a folder of many experiments.
CONTEXT_IN = {
    "upstream": dg.In(description="The Context from the previous stage").to_definition("upstream")
}


class _OutBuiltOnce(dg.Out):
    """An Out whose OutputDefinition is built once: Dagster builds one from an op's Out for
    every op, resolving its type each time (half the cost of an op, 5000 ops for 1000 files)."""

    __slots__ = ()

    def to_definition(
        self,
        annotation_type: type,
        name: str | None,
        description: str | None,
        code_version: str | None,
    ) -> OutputDefinition:
        return _output_definition(self, annotation_type, name, description, code_version)


@cache
def _output_definition(
    out: dg.Out,
    annotation_type: type,
    name: str | None,
    description: str | None,
    code_version: str | None,
) -> OutputDefinition:
    return dg.Out.to_definition(out, annotation_type, name, description, code_version)


CONTEXT_OUT = {
    "result": _OutBuiltOnce(
        io_manager_key=IO_MANAGER_KEY, description="The crucible Context after this stage"
    )
}
#: the last stage's of a report asset's graph: no asset reads it, so Dagster selects it never
LAST_CONTEXT_OUT = {
    "result": _OutBuiltOnce(
        io_manager_key=IO_MANAGER_KEY,
        description="The crucible Context after this stage",
        is_required=False,
    )
}


def dagster_log_sink(context: dg.OpExecutionContext) -> Sink:
    """A failed stage as an error line in the Dagster event log.

    Starts and completions write no log line: every event costs a write to the instance's
    event log, and Dagster already records the step's start, its output (with the stage's
    duration and metrics as metadata) and its success.
    """

    def sink(event: dict[str, Any]) -> None:
        if event["event"] == "stage_failed":
            context.log.error(
                f"crucible: stage {event['stage']} failed after {event['duration_ms']:.1f} ms: "
                f"{event['error_type']}: {event['message']}"
            )

    return sink


def parent_run_id(context: dg.OpExecutionContext) -> str | None:
    """The run this one re-executes, if any (a field of the run; the UI also sets a tag)."""
    return context.run.parent_run_id or context.run.tags.get("dagster/parent_run_id")


def dagster_run(
    experiment: Experiment,
    context: dg.OpExecutionContext,
    *,
    completed: Iterable[str] = (),
    steps: Iterable[str] | None = None,
    **extra: Any,
) -> Run:
    """This Dagster run's record, started by whichever step runs first; the stages done
    before this step (``completed``) are recorded as done (``Run.join``)."""
    resource: CrucibleResource = context.resources.crucible
    run = Run.join(
        resource.artifacts_root(),
        experiment,
        run_id=context.run_id,
        sinks=[dagster_log_sink(context)],
        completed=completed,
        orchestrator="dagster",
        steps=steps,
        parent_run_id=parent_run_id(context),
        **extra,
    )
    if run.created:  # once per run: the step that opened the run directory says where it is
        log_run_directory(context, run.path)
    return run


def log_run_directory(context: dg.OpExecutionContext, path: T) -> T:
    """One INFO line in the run's log: where its manifest, telemetry and reports are; returns
    ``path``, so a step can log the directory where it names it."""
    if path is not None:
        context.log.info(f"crucible: run directory {path}")
    return path


def _output_metadata(
    before: Context, after: Context, stage: str, duration_ms: float
) -> dict[str, Any]:
    """The stage's duration and the numeric metrics it added or changed (not the whole run's)."""
    metadata: dict[str, Any] = {
        "crucible/stage": stage,
        "crucible/duration_ms": dg.MetadataValue.float(round(duration_ms, 3)),
    }
    metadata.update(float_metadata(changed_metrics(before, after), "metric/"))
    if after.metrics.get("predictions") != before.metrics.get("predictions"):
        metadata.update(float_metadata(request_headline(after.metrics)))
    budget = after.metrics.get("budget")
    if isinstance(budget, Mapping) and budget != before.metrics.get("budget"):
        metadata["crucible/budget"] = dg.MetadataValue.json(dict(budget))
    return metadata


def note_budget(context: dg.OpExecutionContext, before: Context, after: Context) -> None:
    """The budget ran out in this step: a warning in the event log and the run's tag
    ``crucible/status=budget_exhausted`` (the runs list can filter on it). The job goes on and
    succeeds: the later stages score and report the answers had, and the run's record ends
    ``budget_exhausted``."""
    if ended_status(after) != "budget_exhausted" or ended_status(before) == "budget_exhausted":
        return
    reason = (after.metrics.get("budget") or {}).get("reason")
    context.log.warning(f"crucible: budget exhausted ({reason}): no further requests are sent")
    context.instance.add_run_tags(context.run_id, {STATUS_TAG: "budget_exhausted"})


def note_gate(
    context: dg.OpExecutionContext, before: Context, after: Context, keep_worse: bool = False
) -> None:
    """The regression gate decided in this step: its verdict as the run's tag
    ``crucible/gate`` (clean, regressed, not_comparable or no_baseline), which the runs list
    shows and filters on, whether or not the gate fails the run."""
    verdict = gate_tag_value(after.metrics)
    if verdict is None or verdict == gate_tag_value(before.metrics):
        return
    if keep_worse:  # one run materializing several gated experiments: the worst one stands
        run = context.instance.get_run_by_id(context.run.run_id)
        earlier = run.tags.get(GATE_TAG) if run is not None else None
        if earlier in GATE_SEVERITY and GATE_SEVERITY.index(earlier) > GATE_SEVERITY.index(verdict):
            return
    context.instance.add_run_tags(context.run.run_id, {GATE_TAG: verdict})


def dataset_observations(
    before: Context, after: Context, experiment: Experiment, translator: CrucibleTranslator
) -> Iterator[dg.AssetObservation]:
    """The experiment's dataset as this stage loaded it: the fingerprint of the dataset as named
    (before the experiment's sample) is the data version of the shared dataset asset, as its
    materialization records it, so the UI can tell which reports came from other data; what
    this run took (``sample_fingerprint``, the manifest's) is metadata beside it."""
    spec = translator.get_dataset_asset_spec(experiment)
    if spec is None or experiment.dataset is None:
        return
    found = (after.assigns.get("data_fingerprints") or {}).get(experiment.dataset.name)
    known = (before.assigns.get("data_fingerprints") or {}).get(experiment.dataset.name)
    if isinstance(found, str) and found != known:
        metric = after.metrics.get("dataset")
        named = metric.get("named_fingerprint") if isinstance(metric, Mapping) else None
        version = named if isinstance(named, str) and named else found
        yield dg.AssetObservation(
            asset_key=spec.key,
            metadata={
                "fingerprint": version,
                "sample_fingerprint": found,
                "crucible/experiment": experiment.id,
            },
            tags={DATA_VERSION_TAG: version[:32]},
        )


def stage_failure(failure: StageFailure, **context: str) -> dg.Failure:
    """A failed stage as a Dagster failure: stage, error and traceback in the event log and metadata."""
    where = "".join(f"{key} {value}: " for key, value in context.items())
    return dg.Failure(
        description=f"{where}stage {failure.stage!r} failed: {failure.error_type}: {failure.message}",
        metadata={
            **{f"crucible/{key}": value for key, value in context.items()},
            "crucible/stage": failure.stage,
            "crucible/error_type": failure.error_type,
            "crucible/reason": failure.reason,
            "crucible/message": dg.MetadataValue.text(failure.message),
            "crucible/traceback": dg.MetadataValue.text(failure.traceback or ""),
        },
        allow_retries=False,
    )


def run_option_problems(
    experiment: Experiment,
    registry: Registry,
    translator: CrucibleTranslator,
    context: dg.OpExecutionContext,
) -> list[str]:
    """Every stage's options in this run's resolved config, as the stages will check them."""
    ops_config = context.get_step_execution_context().resolved_run_config.ops
    # the stages' nodes sit beside this one: at the top, or in the report asset's graph
    parent = context.op_handle.parent
    prefix = f"{parent}." if parent is not None else ""

    def options_of(stage_def: StageDef) -> Mapping[str, Any]:
        node = translator.get_op_spec(experiment, stage_def.name).node_name
        op_config = ops_config.get(prefix + node)
        node_config = op_config.config if op_config is not None else None
        return node_config if isinstance(node_config, Mapping) else stage_def.options

    return option_problems(experiment, registry, options_of)


def invalid_options_failure(problems: list[str]) -> dg.Failure:
    return dg.Failure(
        description="invalid stage options in the run config, checked before the first stage: "
        + "; ".join(problems),
        metadata={
            "crucible/error_type": "InvalidOptions",
            "crucible/problems": dg.MetadataValue.json(problems),
        },
        allow_retries=False,
    )


def _start_run(
    experiment: Experiment,
    registry: Registry,
    translator: CrucibleTranslator,
    context: dg.OpExecutionContext,
    run: Run,
    ctx: Context,
) -> Context:
    """The first step: warn about settings without effect, check every stage's options from
    the run config (in ``error`` mode) so a bad value fails before any stage runs, then load the
    dataset (once: the Context carries it to the other steps); a dataset that cannot load fails
    the run before the first stage."""
    for warning in unused_settings(experiment):
        context.log.warning(f"experiment {experiment.id}: {warning}")
    resource: CrucibleResource = context.resources.crucible
    if resource.option_checks == "error":
        problems = run_option_problems(experiment, registry, translator, context)
        if problems:
            run.fail({"error_type": "InvalidOptions", "problems": problems}, ctx)
            raise invalid_options_failure(problems)
    ctx, failure = run.load_dataset(ctx)
    if failure is not None:
        raise stage_failure(failure)
    return ctx


def redacts_pii(experiment: Experiment) -> bool:
    """``reliability.guardrails`` redacts PII: the run's stores must not keep it."""
    from crucible_dagster.guardrails.settings import resolve

    config = experiment.reliability.guardrails if experiment.reliability else None
    return config is not None and resolve(config)["pii_redaction"]


def forget_unredacted(context: dg.OpExecutionContext) -> None:
    """The guardrails stopped the run on what they found: the earlier steps' stored outputs
    hold it unredacted, so they go (the IO manager deletes them once redaction succeeds)."""
    io_manager = getattr(context.resources, IO_MANAGER_KEY, None)
    if isinstance(io_manager, CrucibleContextIOManager):
        io_manager.forget_unredacted(io_manager.run_root(context.instance, context.run_id))


class AssetStep(Protocol):
    """How a stage's op takes part in its experiment's report asset, when the job is that
    asset's job (``report_graph.StageRole``); a plain job's ops have none."""

    def started(self, context: dg.OpExecutionContext) -> None:
        """The run's first step: tag a Materialize run as the job's runs are tagged."""

    def shared(self, context: dg.OpExecutionContext) -> bool:
        """Whether this run may hold other experiments (not the experiment's own job)."""
        return False

    def reports(
        self, context: dg.OpExecutionContext, before: Context, after: Context, failed: bool
    ) -> Iterator[Any]:
        """The reports (and, when ``failed``, the checks) this step records."""
        return iter(())


def build_stage_op(
    experiment: Experiment,
    stage_def: StageDef,
    stage_cls: type[Stage],
    *,
    translator: CrucibleTranslator,
    registry: Registry,
    takes_upstream: bool,
    asset_step: AssetStep | None = None,
    outs: Mapping[str, dg.Out] | None = None,
) -> dg.OpDefinition:
    """``asset_step``: the op is a step of the report asset's graph (``report_graph``), and
    ``outs`` its outputs (the last stage's carry the reports)."""
    body = _StageBody(experiment, stage_def, translator, registry, asset_step)
    spec = translator.get_op_spec(experiment, stage_def.name, stage_cls)
    # A plain OpDefinition: the @op decorator's signature inspection costs ~1 ms per op,
    # which dominates loading a folder of many experiments.
    return dg.OpDefinition(
        compute_fn=lambda context, inputs: body.execute(context, inputs.get("upstream")),
        name=spec.name,
        # OpDefinition takes built InputDefinitions too (its annotation says In only)
        ins=CONTEXT_IN if takes_upstream else {},  # type: ignore[arg-type]
        outs=dict(outs) if outs is not None else CONTEXT_OUT,
        description=spec.description,
        tags=spec.tags,
        config_schema=options_config_schema(stage_cls, stage_def.options),
        required_resource_keys={RESOURCE_KEY, IO_MANAGER_KEY},
    )


@dataclass(frozen=True)
class _StageBody:
    """What a stage's op does: the stage through the run driver, then its events."""

    experiment: Experiment
    stage_def: StageDef
    translator: CrucibleTranslator
    registry: Registry
    asset_step: AssetStep | None

    def execute(self, context: dg.OpExecutionContext, upstream: Context | None) -> Iterator[Any]:
        experiment, asset_step = self.experiment, self.asset_step
        resource: CrucibleResource = context.resources.crucible
        run_experiment = resource.applied_to(experiment)  # this run's seed
        ctx = upstream if upstream is not None else first_context(run_experiment, context.run_id)
        run = dagster_run(run_experiment, context, completed=ctx.completed_stages())
        ctx = run.adopt(ctx, context.run_id)
        before = ctx  # without this run's dataset: its fingerprint is observed after the step
        if upstream is None:
            if asset_step is not None:
                asset_step.started(context)
            ctx = _start_run(experiment, self.registry, self.translator, context, run, ctx)
        outcome = run.step(
            ctx,
            self.stage_def,
            registry=self.registry,
            validate_options=resource.option_checks,
            options=dict(context.op_config or {}),
            # the next stage may run in another process
            hand_on=experiment.dagster.executor != "in_process",
        )
        if outcome.failure is not None:
            yield from self.failed(context, ctx, outcome.failure)
            raise stage_failure(outcome.failure)
        result = outcome.context
        note_budget(context, ctx, result)
        note_gate(context, ctx, result, asset_step is not None and asset_step.shared(context))
        yield from dataset_observations(before, result, experiment, self.translator)
        yield from model_events(ctx, result, experiment, self.translator)
        if asset_step is None:
            yield from report_events(ctx, result, experiment, self.translator)
        else:
            yield from asset_step.reports(context, ctx, result, False)
        if "result" in context.selected_output_names:
            metadata = _output_metadata(ctx, result, self.stage_def.name, outcome.duration_ms)
            yield dg.Output(result, metadata=metadata)
        elif redacted(result):  # not stored: the outputs before the guardrails go all the same
            forget_unredacted(context)

    def failed(
        self, context: dg.OpExecutionContext, ctx: Context, failure: StageFailure
    ) -> Iterator[Any]:
        """What a failed stage still records before its op fails."""
        asset_step = self.asset_step
        if failure.reason == "quality_target_failed":
            # The reports exist: record them and every check before failing the run.
            keep_worse = asset_step is not None and asset_step.shared(context)
            note_gate(context, ctx, failure.context, keep_worse)
            if asset_step is None:
                yield from report_events(ctx, failure.context, self.experiment, self.translator)
        if asset_step is not None:  # the reports made so far, and their checks
            yield from asset_step.reports(context, ctx, failure.context, True)
        if failure.reason == "guardrail_detection" and redacts_pii(self.experiment):
            forget_unredacted(context)
