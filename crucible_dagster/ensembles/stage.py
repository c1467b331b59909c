"""Combine members' answers into an ensemble's, as ``reliability.ensemble`` says.

By default the stage votes over the per-sample table (run ``predict`` with one variant per
member first) and adds the ensemble as one more variant (``options.name``), its latency and
cost from the mode in which the members would be asked, so ``score`` and ``bench`` compare it
with each member on the same samples; the members are ``reliability.ensemble.models`` (default:
every variant). With ``options.members`` (name -> backend) it calls the members itself, live:
a cascade stops calling once enough agree, a hedged ensemble calls the next member only when
the last is late, and the table gets the ensemble's answers (the members' are not all asked).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import Field, field_validator

from crucible_dagster.backends.base import Backend, Budgeted, Request
from crucible_dagster.backends.registry import build_backend
from crucible_dagster.budget import ledger_for, with_budget_metric
from crucible_dagster.ensembles.voting import (
    Ask,
    Decision,
    EnsembleConfigError,
    Vote,
    check_config,
    decide,
    decide_live,
)
from crucible_dagster.evaluation.per_sample import (
    TABLE_KEY,
    SampleSource,
    as_table,
    checked_backends,
    latency_summary,
    records,
    samples_of,
    save_table,
    table_of,
)
from crucible_dagster.experiment.ir import BackendRef, Ensemble
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.stage import Stage, StageError
from crucible_dagster.telemetry import record


class EnsembleOptions(SampleSource):
    name: str = Field(default="ensemble", description="The ensemble's variant name in the table.")
    members: dict[str, BackendRef] | None = Field(
        default=None,
        description="Live mode: member name -> backend, called now as execution_mode says (cascade "
        "stops calling once min_agreement agree). Default: vote over the table's variants.",
    )
    concurrency: int = Field(default=4, ge=1, le=256, description="Live mode: samples at once.")

    _backends_resolve = field_validator("members")(checked_backends)


class EnsembleStage(Stage):
    name = "ensemble"
    description = "Votes over the members' per-sample answers (reliability.ensemble)"
    Options = EnsembleOptions
    uses = ("reliability.ensemble", "budget")

    @classmethod
    def check_experiment(cls, experiment: Any) -> list[tuple[str, str]]:
        config = experiment.reliability.ensemble if experiment.reliability else None
        if config is None:
            return [("reliability.ensemble", "the ensemble stage needs it: strategy, models, ...")]
        try:
            check_config(config, config.models)
        except EnsembleConfigError as exc:
            path, _, message = str(exc).partition(": ")
            return [(path, message)]
        return []

    def run(self, ctx: Context, options: EnsembleOptions) -> Context:
        experiment = ctx.experiment
        config = experiment.reliability.ensemble if experiment and experiment.reliability else None
        if config is None:
            raise StageError(
                "missing_ensemble_config", None, "the ensemble stage needs reliability.ensemble"
            )
        if options.members:
            return self._live(ctx, options, config)
        frame = table_of(ctx, "ensemble")
        variants = list(dict.fromkeys(frame["variant"]))
        members = list(config.models or variants)
        unknown = [m for m in members if m not in variants]
        if unknown:
            raise StageError(
                "unknown_members",
                unknown,
                f"reliability.ensemble.models: {unknown} are not variants of the table (found {variants})",
            )
        try:
            check_config(config, members)
        except EnsembleConfigError as exc:
            raise StageError("invalid_ensemble", None, str(exc)) from None
        by_sample: dict[str, dict[str, dict[str, Any]]] = {}
        for row in records(frame[frame["variant"].isin(members)]):
            by_sample.setdefault(str(row["sample_id"]), {})[row["variant"]] = row
        rows, decisions = [], []
        for answers in by_sample.values():
            decision = decide([_vote(m, answers[m]) for m in members if m in answers], config)
            first = answers[members[0]]
            rows.append(
                _row(
                    options.name,
                    config,
                    decision,
                    first["sample_id"],
                    first.get("seed"),
                    first.get("reference"),
                )
            )
            decisions.append(decision)
        record_votes(members, decisions, rows)
        summary = _summary(config, members, decisions, rows)
        return save_table(ctx, as_table(records(frame) + rows)).put_metric("ensemble", summary)

    def _live(self, ctx: Context, options: EnsembleOptions, config: Ensemble) -> Context:
        """Call the members now, sample by sample, as the execution mode says."""
        members = options.members or {}
        try:
            check_config(config, list(members))
        except EnsembleConfigError as exc:
            raise StageError("invalid_ensemble", None, str(exc)) from None
        backends = {
            n: build_backend(ref, where=f"ensemble.members.{n}") for n, ref in members.items()
        }
        ledger = ledger_for(ctx)  # the members' calls count against the run's budget
        for backend in backends.values():
            if ledger is not None and isinstance(backend, Budgeted):
                backend.with_budget(ledger)
        found = samples_of(ctx, options)
        requests, references = found.requests, found.references
        # member calls get threads of their own: a call past its time runs on unwaited for
        with ThreadPoolExecutor(256) as calls, ThreadPoolExecutor(options.concurrency) as samples:

            def one(request: Request) -> tuple[Request, Decision]:
                asks = [(n, _caller(n, b, request)) for n, b in backends.items()]
                return request, decide_live(asks, config, calls)

            decisions = list(samples.map(one, requests))
        seed = ctx.seed
        rows = [
            _row(options.name, config, d, r.sample_id, seed, references.get(r.sample_id), live=True)
            for r, d in decisions
        ]
        existing = ctx.assigns.get(TABLE_KEY)
        previous = records(existing) if existing is not None else []
        record_votes(list(members), [d for _, d in decisions], rows)
        summary = _summary(config, list(members), [d for _, d in decisions], rows)
        summary["calls"] = {n: sum(n in d.asked for _, d in decisions) for n in members}
        ctx = save_table(ctx, as_table(previous + rows)).put_metric("ensemble", summary)
        return with_budget_metric(ctx, ledger)


def _row(
    name: str,
    config: Ensemble,
    d: Decision,
    sample_id: Any,
    seed: Any,
    reference: Any,
    live: bool = False,
) -> dict[str, Any]:
    """The ensemble's row of the per-sample table for one sample."""
    return {
        "variant": name,
        "sample_id": sample_id,
        "seed": seed,
        "reference": reference,
        "prediction": d.answer,
        "confidence": d.confidence,
        "latency_ms": d.latency_ms,
        "cost": d.cost,
        "cached": False,
        "error": "abstained" if d.abstained else None,
        "backend": f"ensemble({config.strategy}, {config.execution_mode}{', live' if live else ''})",
        "extra_requests": len(d.asked) - 1,
    }


def record_votes(members: list[str], decisions: list[Decision], rows: list[dict[str, Any]]) -> None:
    """One ``vote`` telemetry event per sample: how many members were asked (a cascade that
    stopped early asked fewer than all) and counted, their agreement, what the answer cost."""
    for decision, row in zip(decisions, rows, strict=True):
        record(
            "vote",
            variant=str(row["variant"]),
            sample_id=str(row["sample_id"])[:512],
            members_asked=len(decision.asked),
            members_counted=len(decision.counted),
            agreement=decision.confidence,
            stopped_early=len(decision.asked) < len(members),
            latency_ms=max(0.0, float(decision.latency_ms)),
            cost=decision.cost,
            success=not decision.abstained,
        )


def _summary(
    config: Ensemble, members: list[str], decisions: list[Decision], rows: list[dict[str, Any]]
) -> dict[str, Any]:
    agreement = [d.confidence for d in decisions if d.confidence is not None]
    return {
        "strategy": config.strategy,
        "execution_mode": config.execution_mode,
        "members": members,
        "samples": len(decisions),
        "abstained": sum(d.abstained for d in decisions),
        "members_asked_mean": sum(len(d.asked) for d in decisions) / max(len(decisions), 1),
        "agreement_mean": sum(agreement) / len(agreement) if agreement else None,
        "latency": latency_summary([r["latency_ms"] for r in rows]),
    }


def _caller(name: str, backend: Backend, request: Request) -> Ask:
    def ask() -> Vote:
        (answer,) = backend.predict([request])
        return Vote(
            name, answer.output, answer.confidence, answer.latency_ms, answer.cost or 0.0,
            failed=answer.error is not None,
        )  # fmt: skip

    return ask


def _vote(member: str, row: dict[str, Any]) -> Vote:
    confidence = row.get("confidence")
    cost = row.get("cost")
    return Vote(
        member,
        row.get("prediction"),
        None if confidence is None or confidence != confidence else float(confidence),
        float(row.get("latency_ms") or 0.0),
        0.0 if cost is None or cost != cost else float(cost),
        failed=isinstance(row.get("error"), str),
    )
