"""Score every row of the per-sample table against its reference, and hand the scores to the bench.

``scorers: [{name: em, id: exact_match, options: {...}}, {id: bleu}]`` runs each scorer of the
registry (``crucible_dagster/scorers``) over the table: one column ``score_<name>`` per scorer
(and ``score_<name>_error`` with each sample's scoring problem), ``score`` kept as the first
(primary) scorer's so readers of one score work unchanged. The old ``metric:`` (exact_match,
contains, absolute_error, squared_error, with ``case_sensitive``) is read as that one scorer.

A sample that failed (no prediction) scores 0 for a 0/1 scorer and is left out of a continuous
one, and is counted. A variant whose every sample failed has no score: its mean is None with
the reason, it is left out of the bench's scores, and the stage fails unless
``allow_failed_variants`` is set (a mean of 0.0 would look like a real, very bad model).
The primary scores go to ``assigns["scores"]`` as a blocked design (group = variant, block =
sample); with several scorers, every scorer's go to ``assigns["scores_by_scorer"]`` (a
``scorer`` column more), and the bench compares each with its own test (McNemar for 0/1,
Wilcoxon or a paired t for continuous scores, a paired bootstrap beside).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from crucible_dagster.budget import NOT_SENT, budget_exhausted, ledger_for, with_budget_metric
from crucible_dagster.evaluation.per_sample import save_table, table_of
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.stage import Stage, StageError, StageOptions
from crucible_dagster.scorers.base import Sample, Scorer
from crucible_dagster.scorers.registry import ScorerRef, build_scorer

if TYPE_CHECKING:
    import pandas as pd

Metric = Literal["exact_match", "contains", "absolute_error", "squared_error"]
BY_SCORER_KEY = "scores_by_scorer"


class ScoreOptions(StageOptions):
    scorers: list[ScorerRef] | None = Field(
        default=None,
        description="The scorers to run ({name, id, options}); the first is the primary score. "
        "Default: the one scorer 'metric' names.",
    )
    metric: Metric = Field(
        default="exact_match", description="One scorer by id (the form before scorers)."
    )
    case_sensitive: bool = Field(default=False, description="For metric exact_match and contains.")
    examples: str = Field(
        default="examples",
        description="assigns key of the examples (a list of dicts or a DataFrame) whose fields "
        "a judge's rubric reads as 'example'.",
    )
    allow_failed_variants: bool = Field(
        default=False,
        description="Go on when every sample of a variant failed (its score is undefined); "
        "otherwise the stage fails, naming the variant and its first error.",
    )

    @model_validator(mode="after")
    def _one_form(self) -> ScoreOptions:
        if self.scorers is None:
            return self
        both = {"metric", "case_sensitive"} & self.model_fields_set
        if both:
            raise ValueError(
                f"{sorted(both)[0]} is the one-scorer form: with scorers, name the scorer there "
                "(e.g. {id: exact_match, options: {case_sensitive: true}})"
            )
        if not self.scorers:
            raise ValueError("scorers: expected at least one scorer")
        columns: dict[str, str] = {}
        for ref in self.scorers:
            for column in (f"score_{ref.column_name}", f"score_{ref.column_name}_error"):
                if column in columns:
                    raise ValueError(
                        f"scorers: two scorers would both write the column {column!r} "
                        f"({columns[column]!r} and {ref.column_name!r}): give each a distinct name"
                    )
                columns[column] = ref.column_name
        return self

    def refs(self) -> list[ScorerRef]:
        """The scorers to run: ``scorers``, or the one ``metric`` names."""
        if self.scorers is not None:
            return self.scorers
        options = (
            {"case_sensitive": self.case_sensitive}
            if self.metric in ("exact_match", "contains")
            else {}
        )
        return [ScorerRef(id=self.metric, options=options)]


def score_one(
    prediction: Any, reference: Any, metric: Metric, case_sensitive: bool
) -> float | None:
    """One prediction by the old ``metric`` (0 for a failed sample under a match metric, None
    under an error metric), through the scorer that metric names."""
    ref = ScoreOptions(metric=metric, case_sensitive=case_sensitive).refs()[0]
    scorer = build_scorer(ref)
    if prediction is None or reference is None:
        return 0.0 if scorer.binary else None
    (scored,) = scorer.score_all([Sample("", "", prediction, reference)])
    return scored.value


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


def examples_by_id(ctx: Context, key: str) -> dict[str, dict[str, Any]]:
    """Each sample's own fields, by the sample id predict gave it (for a judge's rubric)."""
    import pandas as pd

    data = ctx.assigns.get(key)
    if isinstance(data, pd.DataFrame):
        return {
            str(i): {str(k): v for k, v in row.items()}
            for i, row in zip(data.index, data.to_dict("records"), strict=True)
        }
    if isinstance(data, list):
        return {
            str(e.get("id", index)): dict(e) for index, e in enumerate(data) if isinstance(e, dict)
        }
    return {}


def _finite(value: float | None, error: str | None) -> tuple[float | None, str | None]:
    if value is None or math.isfinite(value):
        return value, error
    return None, f"the scorer returned {value!r}, not a finite number"


def score_column(
    scorer: Scorer,
    frame: pd.DataFrame,
    examples: dict[str, dict[str, Any]],
    unasked: list[bool] | None = None,
) -> tuple[list[float | None], list[str | None]]:
    """One scorer's value and error for every row; a row with no prediction (or no reference,
    for a scorer that needs one) scores 0 for a 0/1 scorer and None otherwise; a row the
    budget left ``unasked`` has no score."""
    values: list[float | None] = [None] * len(frame)
    errors: list[str | None] = [None] * len(frame)
    todo: list[int] = []
    samples: list[Sample] = []
    columns = zip(
        frame["variant"], frame["sample_id"], frame["prediction"], frame["reference"], strict=True
    )
    for index, (variant, sample_id, prediction, reference) in enumerate(columns):
        if unasked is not None and unasked[index]:
            continue
        missing = prediction is None or (scorer.needs_reference and _is_missing(reference))
        if missing:
            values[index] = 0.0 if scorer.binary else None
            continue
        todo.append(index)
        example = examples.get(str(sample_id), {})
        samples.append(Sample(str(variant), str(sample_id), prediction, reference, example))
    for index, scored in zip(todo, scorer.score_all(samples), strict=True):
        values[index], errors[index] = _finite(scored.value, scored.error)
    return values, errors


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def variant_summary(
    frame: pd.DataFrame, column: str, undefined: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """Per variant: the mean, how many samples it counts, failed and not scorable."""
    summary: dict[str, dict[str, Any]] = {}
    for variant, group in frame.groupby("variant", sort=False):
        name = str(variant)
        failed = int(group["error"].notna().sum())
        errors = int(group[f"{column}_error"].notna().sum())
        if name in undefined:
            summary[name] = {"mean": None, "n": 0, "failed": failed, "undefined": undefined[name]}
            continue
        values = group[column].dropna()
        if values.empty:
            first = group[f"{column}_error"].dropna()
            reason = (
                f"no sample could be scored (the first: {str(first.iloc[0])[:300]})"
                if len(first)
                else "no sample could be scored"
            )
            summary[name] = {"mean": None, "n": 0, "failed": failed, "errors": errors,
                             "undefined": reason}  # fmt: skip
            continue
        summary[name] = {"mean": float(values.mean()), "n": int(values.size), "failed": failed,
                         "errors": errors}  # fmt: skip
    return summary


def tidy_scores(frame: pd.DataFrame, column: str, summary: dict[str, Any]) -> pd.DataFrame:
    """The bench's blocked design of one score: group = variant, block = sample."""
    import pandas as pd

    defined = [v for v, s in summary.items() if s["mean"] is not None]
    kept = frame[frame["variant"].isin(defined)].dropna(subset=[column])
    return pd.DataFrame(
        {"group": kept["variant"], "block": kept["sample_id"], "value": kept[column]}
    ).reset_index(drop=True)


def _corpus(scorer: Scorer, frame: pd.DataFrame, summary: dict[str, Any]) -> None:
    """A corpus score per variant (BLEU, chrF) beside the mean of the sentence scores."""
    for variant, group in frame.groupby("variant", sort=False):
        entry = summary.get(str(variant))
        if entry is None or entry["mean"] is None:
            continue
        answered = group[group["prediction"].notna()]
        found = scorer.corpus(list(answered["prediction"]), list(answered["reference"]))
        if found is not None:
            entry["corpus"] = found


class ScoreStage(Stage):
    name = "score"
    description = (
        "Scores each sample's prediction against its reference with one or more scorers; "
        "per-variant means for the bench"
    )
    Options = ScoreOptions

    def run(self, ctx: Context, options: ScoreOptions) -> Context:
        import pandas as pd

        frame = table_of(ctx, "score").copy()
        # a sample the budget left unasked is not a wrong answer: no score under any scorer
        unasked = frame["error"].notna() & frame["error"].astype(str).str.startswith(NOT_SENT)
        undefined = failed_variants(frame)
        if undefined and not (options.allow_failed_variants or budget_exhausted(ctx)):
            variant, reason = next(iter(undefined.items()))
            raise StageError(
                "variant_failed",
                variant,
                f"variant {variant!r}: {reason}, so its score is undefined; set the score "
                "stage's options.allow_failed_variants: true to go on without it",
            )
        refs = options.refs()
        scorers = [build_scorer(ref, f"scorers[{i}]") for i, ref in enumerate(refs)]
        ledger = ledger_for(ctx)  # a judge's requests count against the run's budget too
        for scorer in scorers:
            scorer.with_budget(ledger)
        wants_examples = any(getattr(s, "reads_examples", False) for s in scorers)
        examples = examples_by_id(ctx, options.examples) if wants_examples else {}
        report: dict[str, Any] = {}
        tidy: list[pd.DataFrame] = []
        for ref, scorer in zip(refs, scorers, strict=True):
            column = f"score_{ref.column_name}"
            scored = score_column(scorer, frame, examples, list(unasked))
            frame[column], frame[f"{column}_error"] = scored
            summary = variant_summary(frame, column, undefined)
            _corpus(scorer, frame[frame["reference"].map(lambda r: not _is_missing(r))], summary)
            report[ref.column_name] = {
                "id": ref.id,
                "binary": bool(scorer.binary),
                "higher_is_better": scorer.higher_is_better,
                "variants": summary,
            } | ({"usage": scorer.usage()} if scorer.usage() else {})
            tidy.append(tidy_scores(frame, column, summary).assign(scorer=ref.column_name))
        primary = refs[0].column_name
        frame["score"] = frame[f"score_{primary}"]
        ctx = save_table(ctx, frame).assign("scores", tidy[0].drop(columns=["scorer"]))
        if len(tidy) > 1:
            ctx = ctx.assign(BY_SCORER_KEY, pd.concat(tidy, ignore_index=True))
        metric = {"metric": refs[0].id, "primary": primary, "variants": report[primary]["variants"]}
        ctx = ctx.put_metric("score", metric | {"scorers": report})
        return with_budget_metric(ctx, ledger) if any(s.sends_requests for s in scorers) else ctx
