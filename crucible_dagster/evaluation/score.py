"""Score every row of the per-sample table against its reference, and hand the scores to the bench.

``exact_match`` (1 or 0; ``case_sensitive`` for text), ``contains`` (the reference appears in
the prediction), ``absolute_error`` and ``squared_error`` (numbers). A sample that failed (no
prediction) scores 0 for a match metric and is left out of an error metric, and is counted.
A variant whose every sample failed has no score: its mean is None with the reason, it is
left out of the bench's scores, and the stage fails unless ``allow_failed_variants`` is set
(a mean of 0.0 would look like a real, very bad model).
The scores go to ``assigns["scores"]`` as a blocked design (group = variant, block = sample),
so the bench compares variants on the same samples: McNemar for 0/1 scores, a paired bootstrap
of the difference with ``tests: [bootstrap]``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field

from crucible_dagster.budget import NOT_SENT, budget_exhausted
from crucible_dagster.evaluation.per_sample import save_table, table_of
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.stage import Stage, StageError, StageOptions

Metric = Literal["exact_match", "contains", "absolute_error", "squared_error"]


class ScoreOptions(StageOptions):
    metric: Metric = Field(default="exact_match", description="How a prediction is scored.")
    case_sensitive: bool = Field(default=False, description="For exact_match and contains on text.")
    allow_failed_variants: bool = Field(
        default=False,
        description="Go on when every sample of a variant failed (its score is undefined); "
        "otherwise the stage fails, naming the variant and its first error.",
    )


def score_one(
    prediction: Any, reference: Any, metric: Metric, case_sensitive: bool
) -> float | None:
    if prediction is None or reference is None:
        return 0.0 if metric in ("exact_match", "contains") else None
    if metric in ("absolute_error", "squared_error"):
        error = float(prediction) - float(reference)
        return abs(error) if metric == "absolute_error" else error * error
    if isinstance(prediction, str) or isinstance(reference, str):
        p, r = str(prediction).strip(), str(reference).strip()
        if not case_sensitive:
            p, r = p.lower(), r.lower()
        return float(p == r) if metric == "exact_match" else float(r in p)
    return float(prediction == reference)


def failed_variants(frame: Any) -> dict[str, str]:
    """Variants whose every sample failed, each with the reason its score is undefined."""
    undefined = {}
    for variant, group in frame.groupby("variant", sort=False):
        errors = group["error"]
        if len(group) and errors.notna().all():
            first = str(errors.iloc[0])[:300]
            undefined[str(variant)] = (
                f"every one of its {len(group)} samples failed (the first: {first})"
            )
    return undefined


class ScoreStage(Stage):
    name = "score"
    description = (
        "Scores each sample's prediction against its reference; per-variant means for the bench"
    )
    Options = ScoreOptions

    def run(self, ctx: Context, options: ScoreOptions) -> Context:
        import pandas as pd

        frame = table_of(ctx, "score").copy()
        frame["score"] = [
            score_one(p, r, options.metric, options.case_sensitive)
            for p, r in zip(frame["prediction"], frame["reference"], strict=True)
        ]
        # a sample the budget left unasked is not a wrong answer: no score (left out)
        unasked = frame["error"].notna() & frame["error"].astype(str).str.startswith(NOT_SENT)
        frame.loc[unasked, "score"] = None
        undefined = failed_variants(frame)
        if undefined and not (options.allow_failed_variants or budget_exhausted(ctx)):
            variant, reason = next(iter(undefined.items()))
            raise StageError(
                "variant_failed",
                variant,
                f"variant {variant!r}: {reason}, so its score is undefined; set the score "
                "stage's options.allow_failed_variants: true to go on without it",
            )
        scored = frame[~frame["variant"].isin(list(undefined))].dropna(subset=["score"])
        summary: dict[str, dict[str, Any]] = {
            str(variant): {
                "mean": float(group["score"].mean()),
                "n": int(group["score"].size),
                "failed": int(frame[(frame["variant"] == variant)]["error"].notna().sum()),
            }
            for variant, group in scored.groupby("variant", sort=False)
        }
        scores = pd.DataFrame(
            {"group": scored["variant"], "block": scored["sample_id"], "value": scored["score"]}
        ).reset_index(drop=True)
        summary = {k: v for k, v in summary.items() if not math.isnan(v["mean"])}
        for variant, reason in undefined.items():
            failed = int((frame["variant"] == variant).sum())
            summary[variant] = {"mean": None, "n": 0, "failed": failed, "undefined": reason}
        return (
            save_table(ctx, frame)
            .assign("scores", scores)
            .put_metric("score", {"metric": options.metric, "variants": summary})
        )
