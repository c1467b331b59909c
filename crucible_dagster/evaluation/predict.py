"""Ask one or more backends for every sample: the per-sample table the rest of the pipeline reads.

Samples are the rows of ``assigns[inputs]``: a DataFrame of feature rows (sample ids from its
index), or examples: a DataFrame with the ``input_field`` column (index = sample ids, as the
dataset loader puts them in ``assigns["examples"]``) or a list of dicts (``id`` names the
sample when present). ``inputs`` left unset reads ``examples`` when a prompt is set, else
``features`` when there (the scikit-learn demo), else ``examples``. Without a prompt an
example's ``input_field`` is sent; with one (``prompt``, see ``evaluation/prompts.py``) each
sample's chat messages are rendered before any request is sent and recorded in the table's
``messages`` column; a backend that takes text gets the rendered user message.

``variants`` names the backends to compare (default: the experiment's ``backend``, as the
variant ``model``). A backend that learns (``sklearn``) predicts out of fold with
``cv_folds``, so every sample's prediction comes from a model that never saw it. The
experiment's ``reliability.hedging`` applies to backends that send requests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from crucible_dagster.backends.base import (
    Backend,
    Budgeted,
    CrossValidating,
    Guarded,
    Hedgeable,
    Request,
    Response,
)
from crucible_dagster.backends.registry import (
    BackendError,
    backend_class,
    build_backend,
    check_backend,
)
from crucible_dagster.budget import ledger_for, with_budget_metric
from crucible_dagster.common.templates import TemplateError
from crucible_dagster.evaluation.few_shot import FewShotError
from crucible_dagster.evaluation.per_sample import (
    Samples,
    SampleSource,
    as_table,
    checked_backends,
    latency_summary,
    rows_for,
    samples_of,
    save_table,
)
from crucible_dagster.evaluation.prompt_checks import prompt_problems
from crucible_dagster.evaluation.prompts import (
    PromptSpec,
    messages_json,
    render_all,
    user_text,
)
from crucible_dagster.evaluation.request_events import record_requests
from crucible_dagster.experiment.ir import BackendRef, Experiment
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.stage import Stage, StageError, reliability_setting

if TYPE_CHECKING:
    import pandas as pd

#: how a pipeline names this stage (built-in names and the class path)
STAGE_REFS = ("predict", "generate", "crucible_dagster.evaluation.predict:PredictStage")


class PredictOptions(SampleSource):
    variants: dict[str, BackendRef] | None = Field(
        default=None,
        description="Variant name -> backend ({id, options, endpoint_url, fallback}); default: "
        "the experiment's backend as 'model'.",
    )
    cv_folds: int | None = Field(
        default=None, ge=2, le=50, description="Out-of-fold predictions for backends that fit."
    )
    prompt: PromptSpec | None = Field(
        default=None,
        description="The chat messages each example is asked with: a user template (a string), "
        "or {name, user, system, few_shot: {split|file, n, seed, assistant}}; Jinja2, sandboxed, "
        "over the example's fields.",
    )

    _backends_resolve = field_validator("variants")(checked_backends)


def _any_hedgeable(experiment: Experiment, capability: type = Hedgeable) -> bool:
    """A backend of a predict stage (or the experiment's own) can hedge its requests (or has
    another ``capability``: ``Guarded``, which a fallback has too, each with its breaker). Only
    the ids are read: malformed options are the option check's to report, not ours."""
    refs: list[Any] = [experiment.backend] if experiment.backend is not None else []
    for stage in experiment.enabled_stages:
        variants = (
            (stage.options or {}).get("variants") if stage.implementation in STAGE_REFS else None
        )
        if isinstance(variants, dict):
            refs += list(variants.values())
    ids = []
    for ref in refs:
        chain = 1 if capability is Hedgeable else 8  # only a variant's own backend hedges
        for _ in range(chain):  # a breaker: its fallback's, and their fallbacks', a few deep
            if ref is None:
                break
            backend_id = ref.get("id") if isinstance(ref, dict) else getattr(ref, "id", None)
            if isinstance(backend_id, str):
                ids.append(backend_id)
            ref = ref.get("fallback") if isinstance(ref, dict) else getattr(ref, "fallback", None)
    for backend_id in ids:
        try:
            found = backend_class(backend_id)  # a class, or a plain function for a callable
            if isinstance(found, type) and issubclass(found, capability):
                return True
        except BackendError:
            continue
    return False


def _unpriced(experiment: Experiment) -> list[tuple[str, str]]:
    """``budget.max_cost`` needs every backend that sends requests priced: an unpriced one's
    requests would cost nothing, and the budget would never stop them."""
    if experiment.budget is None or experiment.budget.max_cost is None:
        return []
    refs = [("backend", experiment.backend)] if experiment.backend is not None else []
    for stage in experiment.enabled_stages:
        variants = (
            (stage.options or {}).get("variants") if stage.implementation in STAGE_REFS else None
        )
        if isinstance(variants, dict):
            refs += [(f"{stage.name}.variants.{k}", v) for k, v in variants.items()]
    for where, ref in refs:
        data = ref.model_dump() if isinstance(ref, BackendRef) else ref
        options = (data.get("options") or {}) if isinstance(data, dict) else {}
        sends = isinstance(data, dict) and data.get("id") == "openai_compatible"
        prices = ("price_per_million_input", "price_per_million_output")
        if (
            sends
            and isinstance(options, dict)
            and not any(options.get(p) is not None for p in prices)
        ):
            return [
                (
                    "budget.max_cost",
                    f"set, but the backend at {where} has no prices: set its options."
                    "price_per_million_input and price_per_million_output, or use max_tokens",
                )
            ]
    return []


def predict_requests(ctx: Context, options: PredictOptions) -> list[Request]:
    """The requests a predict stage sends, one a sample: what ``run`` asks and the dry run
    (``evaluation.cost_plan``) counts, so whatever predict sends (a prompt template's
    messages too), the plan prices."""
    return prepared(ctx, options)[1]


def prepared(ctx: Context, options: PredictOptions) -> tuple[Samples, list[Request]]:
    """The samples and their requests; with a prompt, every sample's messages rendered before
    any is sent: a template that fails on one sample (a field it lacks) is a StageError naming
    that sample, nothing sent."""
    samples = samples_of(ctx, options, prompted=options.prompt is not None)
    if options.prompt is None:
        return samples, samples.requests
    try:
        rendered = render_all(options.prompt, samples.examples or [], ctx.seed, ctx.experiment)
    except (TemplateError, FewShotError) as exc:
        raise StageError("invalid_prompt", None, str(exc)) from None
    requests = [
        Request(r.sample_id, user_text(rendered[r.sample_id]), rendered[r.sample_id])
        for r in samples.requests
    ]
    return samples, requests


def _one_system_message(options: PredictOptions, variants: dict[str, BackendRef]) -> None:
    """A prompt's system message and a variant's ``options.system``: a request would have two."""
    if options.prompt is None or options.prompt.system is None:
        return
    for name, ref in variants.items():
        if (ref.options or {}).get("system") is not None:
            raise StageError(
                "invalid_prompt",
                name,
                f"prompt.system is set, and variant {name!r}'s options.system too: keep one",
            )


class PredictStage(Stage):
    name = "predict"
    description = (
        "Asks each backend variant for every sample; a per-sample table with latency and cost"
    )
    Options = PredictOptions
    uses = ("backend", "reliability.hedging", "reliability.circuit_breaker", "budget")

    @classmethod
    def check_experiment(cls, experiment: Experiment) -> list[tuple[str, str]]:
        problems = []
        backend, where = experiment.backend, "backend"
        if backend is not None and backend.id == "noop":
            # noop means "no model", but a fallback it names is still code to check before a run
            backend, where = backend.fallback, "backend.fallback"
        if backend is not None:
            try:
                check_backend(backend, where)
            except BackendError as exc:
                path, _, message = str(exc).partition(": ")
                problems.append((path, message))
        problems += _unpriced(experiment)
        problems += prompt_problems(experiment, STAGE_REFS)
        hedging = experiment.reliability.hedging if experiment.reliability else None
        if hedging is not None and hedging.strategy != "off" and not _any_hedgeable(experiment):
            problems.append(
                (
                    "reliability.hedging",
                    "set, but no backend of a predict stage sends requests it could hedge "
                    "(openai_compatible); remove it or use such a backend",
                )
            )
        breaker = reliability_setting(experiment, "circuit_breaker")
        if breaker is not None and not _any_hedgeable(experiment, Guarded):
            problems.append(
                (
                    "reliability.circuit_breaker",
                    "set, but no backend of a predict stage sends requests it could stop "
                    "(openai_compatible); remove it or use such a backend",
                )
            )
        return problems

    def run(self, ctx: Context, options: PredictOptions) -> Context:
        experiment = ctx.experiment
        variants = options.variants
        if variants is None:
            if experiment is None or experiment.backend is None:
                raise StageError(
                    "no_backend", None, "predict needs options.variants or the experiment's backend"
                )
            variants = {"model": experiment.backend}
        reliability = experiment.reliability if experiment else None
        hedging = reliability.hedging if reliability else None
        breaker = reliability.circuit_breaker if reliability else None
        seed = ctx.seed
        ledger = ledger_for(ctx)  # one budget for every variant (and every stage) of the run
        _one_system_message(options, variants)
        samples, requests = prepared(ctx, options)
        references, frame = samples.references, samples.frame
        recorded = (
            {r.sample_id: messages_json(r.messages) for r in requests if r.messages is not None}
            if options.prompt is not None
            else None
        )
        rows: list[dict[str, Any]] = []
        summary: dict[str, Any] = {}
        for name, ref in variants.items():
            try:
                backend = build_backend(ref, where=f"predict.variants.{name}")
            except (BackendError, ValueError, TypeError) as exc:
                raise StageError("invalid_backend", name, str(exc)) from None
            if hedging is not None and isinstance(backend, Hedgeable):
                backend.with_hedging(hedging)
            if breaker is not None and isinstance(backend, Guarded):
                backend.with_circuit_breaker(breaker)  # a breaker of its own for each variant
            if ledger is not None and isinstance(backend, Budgeted):
                backend.with_budget(ledger)
            responses = self._ask(backend, requests, frame, references, options, seed)
            settings = experiment.telemetry if experiment is not None else None
            record_requests(name, ref, requests, responses, settings, seed)
            rows += rows_for(name, responses, references, seed, recorded)
            summary[name] = {
                "samples": len(responses),
                "errors": sum(r.error is not None for r in responses),
                "cached": sum(r.cached for r in responses),
                "extra_requests": sum(r.extra_requests for r in responses),
                "cost": sum(r.cost or 0.0 for r in responses),
                # tokens of the answers the backend was asked for (a cached one costs none)
                "prompt_tokens": sum(r.prompt_tokens or 0 for r in responses if not r.cached),
                "completion_tokens": sum(
                    r.completion_tokens or 0 for r in responses if not r.cached
                ),
                "latency": latency_summary([r.latency_ms for r in responses]),
            }
        ctx = save_table(ctx, as_table(rows)).put_metric("predictions", summary)
        return with_budget_metric(ctx, ledger)

    @staticmethod
    def _ask(
        backend: Backend,
        requests: list[Request],
        frame: pd.DataFrame | None,
        references: dict[str, Any],
        options: PredictOptions,
        seed: int,
    ) -> list[Response]:
        if options.cv_folds:
            if not isinstance(backend, CrossValidating) or frame is None:
                raise StageError(
                    "no_cross_validation",
                    backend.name,
                    f"cv_folds needs a backend that fits (sklearn) and a DataFrame of samples; "
                    f"{backend.name!r} cannot",
                )
            import numpy as np

            target = np.asarray([references[r.sample_id] for r in requests])
            responses: list[Response] = backend.out_of_fold(frame, target, options.cv_folds, seed)
            return responses
        return list(backend.predict(requests))
