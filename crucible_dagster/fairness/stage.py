"""Group fairness of each variant's predictions (``reliability.fairness``).

Reads the per-sample table and the group of each sample: ``group_by`` names a column of
``assigns[groups_from]`` (the features table, by default) aligned with the sample ids. Each
metric's gap between groups, with a bootstrap interval, is compared with ``threshold``
(default 0.1); ``fail_on_violation`` fails the stage when a gap exceeds it. A metric the data
cannot measure (one group, a single class, every row missing a value) is listed under
``undefined`` with its reason, and its gap is null, never a number that looks real.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from crucible_dagster.evaluation.per_sample import table_of
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.stage import Stage, StageError, StageOptions
from crucible_dagster.telemetry import record

if TYPE_CHECKING:
    import pandas as pd

    from crucible_dagster.experiment.ir.reliability import Fairness
    from crucible_dagster.fairness.metrics import FairnessResult

DEFAULT_THRESHOLD = 0.1


class FairnessOptions(StageOptions):
    groups_from: str = Field(
        default="features", description="assigns key of a table with the group column."
    )
    positive: Any = Field(default=1, description="The favourable label.")
    variants: list[str] | None = Field(
        default=None, description="Default: every variant in the table."
    )
    n_resamples: int = Field(default=2000, ge=100, le=100_000)


def _single_note(groups: list[str]) -> str:
    """A violation against a group of one says so on its own line (its flag holds the why)."""
    return f" (against a group of one sample: {', '.join(map(repr, groups))})" if groups else ""


class FairnessStage(Stage):
    name = "fairness"
    description = (
        "Demographic parity, equalized odds, equal opportunity and predictive parity per group"
    )
    Options = FairnessOptions
    uses = ("reliability.fairness",)

    @classmethod
    def check_experiment(cls, experiment: Any) -> list[tuple[str, str]]:
        config = experiment.reliability.fairness if experiment.reliability else None
        if config is None or not config.enabled or not config.group_by:
            return [("reliability.fairness", "the fairness stage needs enabled: true and group_by")]
        return []

    def run(self, ctx: Context, options: FairnessOptions) -> Context:
        config, group_by = _fairness_config(ctx)
        group_of = _group_of(ctx, options, group_by)
        frame = table_of(ctx, "fairness")
        threshold = config.threshold if config.threshold is not None else DEFAULT_THRESHOLD
        results: dict[str, Any] = {}
        violations: list[str] = []
        undefined: list[str] = []
        for variant in options.variants or list(dict.fromkeys(frame["variant"])):
            rows = frame[(frame["variant"] == variant) & frame["error"].isna()]
            report = _variant_report(ctx, options, config, threshold, rows, group_of)
            results[str(variant)] = {r.metric: r.to_dict() for r in report}
            violations += [
                f"{variant}: {r.metric} gap {r.gap:.3f} > {threshold}{_single_note(r.groups_of_one)}"
                for r in report
                if r.violated
            ]
            undefined += [
                f"{variant}: {r.metric} undefined: {r.reason}" for r in report if r.reason
            ]
        for variant, metrics in results.items():  # which metric, how many groups: no values
            for metric, found in metrics.items():
                if found.get("violated"):
                    groups = found.get("by_group")
                    count = len(groups) if isinstance(groups, dict | list) else None
                    record("fairness_finding", variant=variant, finding=metric, count=count)
        summary = {
            "group_by": group_by,
            "threshold": threshold,
            "variants": results,
            "violations": violations,
            "undefined": undefined,  # what the data cannot say, never counted as a pass
        }
        if violations and config.fail_on_violation:
            raise StageError(
                "fairness_violation", violations, "fairness violation: " + "; ".join(violations)
            )
        return ctx.put_metric("fairness", summary)


def _fairness_config(ctx: Context) -> tuple[Fairness, str]:
    """The experiment's ``reliability.fairness`` and its ``group_by``, refused unless enabled."""
    experiment = ctx.experiment
    config = experiment.reliability.fairness if experiment and experiment.reliability else None
    if config is None or not config.enabled or not config.group_by:
        raise StageError(
            "missing_fairness_config",
            None,
            "the fairness stage needs reliability.fairness with enabled: true and group_by",
        )
    return config, config.group_by


def _group_of(ctx: Context, options: FairnessOptions, group_by: str) -> dict[str, Any]:
    """Sample id -> group, from the ``group_by`` column of ``assigns[groups_from]``."""
    import pandas as pd

    source = ctx.assigns.get(options.groups_from)
    if not isinstance(source, pd.DataFrame) or group_by not in source.columns:
        raise StageError(
            "missing_group",
            group_by,
            f"reliability.fairness.group_by: expected a column of assigns['{options.groups_from}'], "
            f"found {group_by!r} is not one",
        )
    return {str(i): g for i, g in zip(source.index, source[group_by], strict=True)}


def _variant_report(
    ctx: Context,
    options: FairnessOptions,
    config: Fairness,
    threshold: float,
    rows: pd.DataFrame,
    group_of: dict[str, Any],
) -> list[FairnessResult]:
    """One variant's fairness metrics over its rows that did not fail."""
    from crucible_dagster.fairness.metrics import METRICS, fairness_report

    return fairness_report(
        rows["prediction"].tolist(),
        rows["reference"].tolist(),
        [group_of.get(str(s)) for s in rows["sample_id"]],
        positive=options.positive,
        metrics=config.metrics or METRICS,
        threshold=threshold,
        n_resamples=options.n_resamples,
        seed=ctx.seed,
    )
