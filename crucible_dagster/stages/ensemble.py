"""Combine members' per-sample answers into an ensemble's, as ``reliability.ensemble`` says.

Reads the per-sample table (run ``predict`` with one variant per member first), adds the
ensemble as one more variant (``options.name``), with its latency and cost from the mode in
which the members are asked, so ``score`` and ``bench`` compare it with each member on the
same samples. The members are ``reliability.ensemble.models`` (default: every variant).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from crucible_dagster.reliability.ensemble import EnsembleConfigError, Vote, check_config, decide
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.stage import Stage, StageError, StageOptions
from crucible_dagster.stages.per_sample import (
    as_table,
    latency_summary,
    records,
    save_table,
    table_of,
)


class EnsembleOptions(StageOptions):
    name: str = Field(default="ensemble", description="The ensemble's variant name in the table.")


class EnsembleStage(Stage):
    name = "ensemble"
    description = "Votes over the members' per-sample answers (reliability.ensemble)"
    Options = EnsembleOptions
    uses = ("reliability.ensemble",)

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
        rows, asked, agreement, abstained = [], 0, [], 0
        for answers in by_sample.values():
            votes = [_vote(m, answers[m]) for m in members if m in answers]
            decision = decide(votes, config)
            first = answers[members[0]]
            rows.append(
                {
                    **{k: first.get(k) for k in ("sample_id", "seed", "reference")},
                    "variant": options.name,
                    "prediction": decision.answer,
                    "confidence": decision.confidence,
                    "latency_ms": decision.latency_ms,
                    "cost": decision.cost,
                    "cached": False,
                    "error": "abstained" if decision.abstained else None,
                    "backend": f"ensemble({config.strategy}, {config.execution_mode})",
                    "extra_requests": len(decision.asked) - 1,
                }
            )
            asked += len(decision.asked)
            abstained += decision.abstained
            if decision.confidence is not None:
                agreement.append(decision.confidence)
        combined = as_table(records(frame) + rows)
        n = max(len(by_sample), 1)
        summary = {
            "strategy": config.strategy,
            "execution_mode": config.execution_mode,
            "members": members,
            "samples": len(by_sample),
            "abstained": abstained,
            "members_asked_mean": asked / n,
            "agreement_mean": sum(agreement) / len(agreement) if agreement else None,
            "latency": latency_summary([r["latency_ms"] for r in rows]),
        }
        return save_table(ctx, combined).put_metric("ensemble", summary)


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
