"""The dry run: what a run would ask its models and what it would cost, estimated, sending nothing.

For each enabled predict stage and each of its variants: the requests it would send (one a
sample; an answer already in the response cache, or asked by an earlier trial of the same
sweep run, is sent by no one), their estimated prompt tokens (from the request bodies the
backend would send: system message and input, counted by the backend's ``tokenizer``), the
completion tokens (``expected_completion_tokens``, else ``max_tokens``, an upper bound), and
the cost from the backend's ``price_per_million_input/output``.

The samples come from the experiment's ``dataset`` (loaded as the run loads it) and the stages
before the first predict stage (they prepare data; they call no model), run in memory on a
scratch folder that is removed afterwards: the run directory, the cache and the budget ledger
are not touched. Retries and hedges are not predicted (the plan is
what a run without failures sends); an ensemble stage's live member calls are not planned.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from crucible_dagster.backends.base import FallbackBackend, Plannable, Request
from crucible_dagster.backends.registry import BackendError, build_backend
from crucible_dagster.evaluation.predict import STAGE_REFS, PredictStage, predict_requests
from crucible_dagster.experiment.ir import BackendRef, Experiment, StageDef
from crucible_dagster.experiment.params import UnknownParameter, substitute_params
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.driver import Run
from crucible_dagster.runtime.registry import Registry, registry_for
from crucible_dagster.runtime.stage import InvalidOptions, StageError
from crucible_dagster.runtime.stage_call import invoke_stage, new_context


class CostPlanError(ValueError):
    """The plan cannot be made (a stage before predict failed, a backend cannot be built)."""


@dataclass
class VariantCost:
    """One variant of one predict stage (of one sweep trial): what it would send."""

    trial: str | None
    stage: str
    variant: str
    backend: str
    requests: int
    cached: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: float | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _variant_cost(
    name: str, ref: BackendRef, requests: list[Request], planned: set[str], where: tuple[Any, str]
) -> VariantCost:
    trial, stage = where
    try:
        backend = build_backend(ref, where=f"{stage}.variants.{name}")
    except (BackendError, ValueError, TypeError) as exc:
        raise CostPlanError(str(exc)) from None
    # the fallback is asked only for the primary's failures: the plan is the primary's
    target = backend.primary if isinstance(backend, FallbackBackend) else backend
    if not isinstance(target, Plannable):
        note = "sends no requests over the network: no tokens, no cost"
        return VariantCost(trial, stage, name, ref.id, len(requests), note=note)
    plan = target.plan(requests, planned)
    return VariantCost(
        trial,
        stage,
        name,
        ref.id,
        plan.requests,
        plan.cached,
        plan.prompt_tokens,
        plan.completion_tokens,
        plan.cost if plan.priced else None,
        f"tokens by {plan.tokenizer}; completion from {plan.completion_from}"
        + ("" if plan.priced else "; no prices set (price_per_million_input/output)"),
    )


def _stage_costs(
    ctx: Context, stage_def: StageDef, planned: set[str], trial: str | None
) -> list[VariantCost]:
    try:
        raw = substitute_params(stage_def.options, ctx.params)
        options, _ = PredictStage.parse_options(raw, "error")
    except (UnknownParameter, InvalidOptions, StageError) as exc:
        raise CostPlanError(f"stage {stage_def.name!r}: {exc}") from None
    variants: Mapping[str, BackendRef] | None = options.variants
    if variants is None:
        experiment = ctx.experiment
        if experiment is None or experiment.backend is None:
            raise CostPlanError(f"stage {stage_def.name!r}: no variants and no backend")
        variants = {"model": experiment.backend}
    try:
        requests = predict_requests(ctx, options)
    except StageError as exc:
        raise CostPlanError(f"stage {stage_def.name!r}: {exc}") from None
    where = (trial, stage_def.name)
    return [_variant_cost(n, ref, requests, planned, where) for n, ref in variants.items()]


def plan_run(
    experiment: Experiment,
    *,
    params: Mapping[str, Any] | None = None,
    planned: set[str] | None = None,
    trial: str | None = None,
    registry: Registry | None = None,
) -> list[VariantCost]:
    """Every predict stage's variants for one run (one sweep trial: its ``params``);
    ``planned`` carries the cache keys earlier trials of the same plan would have asked."""
    registry = registry_for(experiment, registry)
    planned = set() if planned is None else planned
    rows: list[VariantCost] = []
    seen_predict = False
    with tempfile.TemporaryDirectory(prefix="crucible-dry-run-") as scratch:
        ctx = new_context(experiment, run_id="dry-run", params=params, trace=False)
        # the dataset as the run loads it (no run directory: no sample ids are written)
        ctx, failure = Run.detached(experiment, "dry-run").load_dataset(ctx)
        if failure is not None:
            raise CostPlanError(f"dataset: {failure.message}")
        ctx = replace(ctx, run_dir=scratch)
        for stage_def in experiment.enabled_stages:
            if stage_def.implementation in STAGE_REFS:
                seen_predict = True
                rows += _stage_costs(ctx, stage_def, planned, trial)
            elif not seen_predict:
                outcome = invoke_stage(ctx, stage_def, registry=registry)
                if outcome.failure is not None:
                    raise CostPlanError(
                        f"stage {stage_def.name!r} (run for the samples predict would ask) "
                        f"failed: {outcome.failure.message}"
                    )
                ctx = outcome.context
    return rows
