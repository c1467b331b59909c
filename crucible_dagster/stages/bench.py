"""The ``bench`` stage: compare the experiment's groups of results and record a decision record.

Data, by ``data_source``:
- ``assigns``: a tidy DataFrame at ``assigns[data_key]`` (default ``scores``) with columns
  ``group``, ``value`` and optionally ``block`` or ``sample_id`` (pairs observations);
- ``metrics``: ``metrics[data_key]`` as ``{group: [numbers]}``, or without ``data_key`` every
  metric with numbers (a number, a list, or a mapping of numbers), as the original did;
- ``outputs``: outputs grouped by their ``group`` (or ``prompt``) field, one number each
  from ``score``, ``accuracy`` or ``loss``.

Results: ``metrics["bench"]`` (JSON-safe; see ``Comparison.to_dict``) and the tidy table of
comparisons in ``assigns["bench_comparisons"]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field

from crucible_dagster.common.jsonsafe import to_jsonable
from crucible_dagster.experiment.ir import Correction, TestNames
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.stage import Stage, StageOptions

NUMERIC_FIELDS = ("score", "accuracy", "loss")


class BenchOptions(StageOptions):
    tests: TestNames | None = Field(
        default=None, description="Tests to run; empty means automatic selection."
    )
    data_source: Literal["assigns", "metrics", "outputs"] = Field(
        default="assigns", description="Where the groups of numbers come from."
    )
    data_key: str | None = Field(
        default=None,
        description="assigns/metrics key holding the data (assigns default: 'scores').",
    )
    design: Literal["independent", "paired", "blocked"] | None = Field(
        default=None,
        description="Default: paired/blocked when the data have blocks, else independent.",
    )
    groups: list[str] | None = Field(
        default=None, description="Group order (differences are group_a - group_b in this order)."
    )
    control: str | None = Field(
        default=None, description="Compare every group with this baseline instead of all pairs."
    )
    alpha: float | None = Field(
        default=None, gt=0, lt=1, description="Defaults to reliability.stats.alpha, else 0.05."
    )
    confidence_level: float | None = Field(
        default=None, gt=0, lt=1, description="Defaults to 1 - alpha."
    )
    correction: Correction | None = Field(
        default=None, description="Multiple-comparison correction (default holm)."
    )
    n_resamples: int | None = Field(
        default=None,
        ge=100,
        le=1_000_000,
        description="Bootstrap resamples; default reliability.stats.bootstrap_iterations, else 10000.",
    )
    n_train: int | None = Field(
        default=None,
        gt=0,
        description="Training-split size for corrected_resampled_ttest (default from assigns['cv_design']).",
    )
    n_test: int | None = Field(
        default=None, gt=0, description="Test-split size for corrected_resampled_ttest."
    )


def _numbers(value: Any) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [float(value)] if math.isfinite(value) else []
    if isinstance(value, list | tuple):
        return [float(v) for v in value if isinstance(v, int | float) and not isinstance(v, bool)]
    if isinstance(value, Mapping):
        return [n for v in value.values() for n in _numbers(v)]
    return []


@dataclass
class Extracted:
    """The groups of raw values (not yet checked), each group's block ids in the same order
    when the table has a block column, and how many rows had no group."""

    groups: dict[str, list[Any]] = field(default_factory=dict)
    blocks: dict[str, list[Any]] | None = None
    no_group: int = 0

    @property
    def blocked(self) -> bool:
        return self.blocks is not None


def _from_table(frame: Any) -> Extracted:
    """A tidy table's groups; rows without a group are dropped and counted, never silently."""
    missing = {"group", "value"} - set(frame.columns)
    if missing:
        return Extracted({"(table)": [f"missing column(s) {sorted(missing)}"]})
    no_group = frame["group"].isna()
    frame = frame[~no_group]
    block = next((c for c in ("block", "sample_id") if c in frame.columns), None)
    if block:
        try:
            frame = frame.sort_values(block, kind="stable")
        except TypeError:  # ids of mixed kinds: any order both groups share pairs them
            frame = frame.sort_values(block, kind="stable", key=lambda ids: ids.astype(str))
    parts = list(frame.groupby("group", sort=False, observed=False))
    groups = {str(name): list(part["value"]) for name, part in parts}
    blocks = {str(name): list(part[block]) for name, part in parts} if block else None
    return Extracted(groups, blocks, int(no_group.sum()))


def extract_groups(ctx: Context, options: BenchOptions) -> Extracted:
    """Groups of raw values (not yet checked) and, for a table with blocks, their block ids."""
    if options.data_source == "assigns":
        import pandas as pd

        frame = ctx.assigns.get(options.data_key or "scores")
        if not isinstance(frame, pd.DataFrame):
            return Extracted()
        return _from_table(frame)
    if options.data_source == "metrics":
        if options.data_key:
            source = ctx.metrics.get(options.data_key)
            if not isinstance(source, Mapping):
                return Extracted()
            return Extracted(
                {
                    str(k): (list(v) if isinstance(v, list | tuple) else [v])
                    for k, v in source.items()
                }
            )
        found = {k: _numbers(v) for k, v in ctx.metrics.items() if k != "bench"}
        return Extracted({k: v for k, v in found.items() if v})
    extracted = Extracted()
    for item in ctx.outputs:
        if not isinstance(item, Mapping) or item.get("kind") == "report":
            continue
        value = next(
            (
                item[f]
                for f in NUMERIC_FIELDS
                if isinstance(item.get(f), int | float) and not isinstance(item.get(f), bool)
            ),
            None,
        )
        name = item.get("group", item.get("prompt"))
        if value is not None and name is None:
            extracted.no_group += 1
        elif value is not None:
            extracted.groups.setdefault(str(name), []).append(value)
    return extracted


def _dropped(no_group: int) -> dict[str, Any]:
    """The count and flag of rows left out for a missing group, as fairness reports them."""
    if not no_group:
        return {}
    return {
        "dropped": {"group": no_group, "rows": no_group},
        "flags": [f"{no_group} rows dropped for a missing group"],
    }


def _group_problem(groups: Mapping[str, Any], options: BenchOptions) -> str | None:
    """Why there is nothing to compare, or None."""
    if options.groups:
        unknown = [g for g in options.groups if g not in groups]
        if unknown:
            return f"group(s) {unknown} not found; available: {sorted(groups)}"
        groups = {g: groups[g] for g in options.groups}
    if len(groups) >= 2:
        return None
    reason = (
        "no data found"
        if not groups
        else f"only one group ({next(iter(groups))}): nothing to compare"
    )
    return f"{reason} (data_source={options.data_source}, data_key={options.data_key})"


def comparison_settings(ctx: Context, options: BenchOptions, n_groups: int, blocked: bool) -> Any:
    """The stage's options, falling back to the experiment's ``reliability.stats``, then defaults."""
    from crucible_dagster.bench.settings import ComparisonSettings, Design

    experiment = ctx.experiment
    stats = experiment.reliability.stats if experiment and experiment.reliability else None
    alpha = options.alpha or (stats.alpha if stats else 0.05)
    blocked_design: Design = "paired" if n_groups == 2 else "blocked"
    tests = options.tests
    if tests is None and stats and "tests" in stats.model_fields_set:
        tests = stats.tests
    raw_design = ctx.assigns.get("cv_design")
    cv_design: Mapping[str, Any] = raw_design if isinstance(raw_design, Mapping) else {}
    return ComparisonSettings(
        design=options.design or (blocked_design if blocked else "independent"),
        tests=tests or None,
        alpha=alpha,
        confidence_level=options.confidence_level
        or (stats.confidence_level if stats and stats.confidence_level else 1 - alpha),
        correction=options.correction
        or (
            stats.multiple_testing_correction
            if stats and stats.multiple_testing_correction
            else "holm"
        ),
        control=options.control,
        n_resamples=options.n_resamples
        or (stats.bootstrap_iterations if stats and stats.bootstrap_iterations else 10_000),
        seed=ctx.seed,
        n_train=options.n_train or cv_design.get("n_train"),
        n_test=options.n_test or cv_design.get("n_test"),
    )


def _keep_scores(ctx: Context, options: BenchOptions, groups: Mapping[str, list[Any]]) -> None:
    import pandas as pd

    from crucible_dagster.run_history.scores import write_scores

    frame = (
        ctx.assigns.get(options.data_key or "scores") if options.data_source == "assigns" else None
    )
    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(
            [{"group": g, "value": v} for g, values in groups.items() for v in values]
        )
    assert ctx.run_dir is not None
    write_scores(ctx.run_dir, frame)


def _readable_df(table: Any) -> Any:
    """Degrees of freedom as text ("2, 27" for an F): one column type for every row."""
    if "df" in table:
        table["df"] = table["df"].map(
            lambda v: ", ".join(f"{x:g}" for x in v) if isinstance(v, list) else v
        )
    return table


#: the score stage's every scorer's scores (a ``scorer`` column more than ``scores``)
BY_SCORER_KEY = "scores_by_scorer"


def _other_scorers(ctx: Context, options: BenchOptions) -> dict[str, Extracted]:
    """Each scorer's groups after the first (the primary, compared as ``scores``), when the
    bench reads the score stage's default table and that stage ran several scorers."""
    import pandas as pd

    frame = ctx.assigns.get(BY_SCORER_KEY)
    if options.data_source != "assigns" or options.data_key is not None:
        return {}
    if not isinstance(frame, pd.DataFrame) or "scorer" not in frame.columns or frame.empty:
        return {}
    names = list(dict.fromkeys(str(n) for n in frame["scorer"]))
    found = {}
    for name in names[1:]:
        extracted = _from_table(frame[frame["scorer"] == name].drop(columns=["scorer"]))
        if options.groups:
            extracted.groups = {g: v for g, v in extracted.groups.items() if g in options.groups}
        found[name] = extracted
    return found


class BenchStage(Stage):
    name = "bench"
    description = "Statistical comparison of the experiment's results with effect sizes, CIs and a decision record"
    Options = BenchOptions

    def run(self, ctx: Context, options: BenchOptions) -> Context:
        from crucible_dagster.bench.compare import compare_groups
        from crucible_dagster.bench.data import BenchDataError

        extracted = extract_groups(ctx, options)
        groups, dropped = extracted.groups, _dropped(extracted.no_group)
        problem = _group_problem(groups, options)
        if problem is not None:
            return ctx.put_metric("bench", {"no_data": True, "reason": problem} | dropped)
        if options.groups:
            groups = {g: groups[g] for g in options.groups}
        settings = comparison_settings(ctx, options, len(groups), extracted.blocked)
        try:
            comparison = compare_groups(groups, settings, extracted.blocks)
        except BenchDataError as exc:
            return ctx.put_metric("bench", {"no_data": True, "reason": str(exc)} | dropped)
        import pandas as pd

        table = pd.DataFrame([r.to_dict() for r in comparison.rows]).drop(
            columns=["reference_only"], errors="ignore"
        )
        if ctx.run_dir:  # the units behind the statistics, for a later run to pair with
            _keep_scores(ctx, options, groups)
        result = to_jsonable(comparison.to_dict() | dropped)
        decisions = list(comparison.decisions)
        others = _other_scorers(ctx, options)
        if others:  # each further score column with its own test, beside the primary's
            from crucible_dagster.stages.bench_scorers import compare_scorers

            primary = str(ctx.assigns[BY_SCORER_KEY]["scorer"].iloc[0])
            found = compare_scorers(others, lambda n, b: comparison_settings(ctx, options, n, b))
            result["by_scorer"] = to_jsonable(found.results)
            table = pd.concat([table.assign(scorer=primary), found.table], ignore_index=True)
            decisions += found.decisions
        ctx = ctx.put_metric("bench", result).assign(
            {"bench_comparisons": _readable_df(table), "bench_groups": to_jsonable(groups)}
        )
        for decision in decisions:
            ctx = ctx.emit(
                "decision_made",
                decision.decision,
                decision.reason,
                metadata={"check": decision.check, "p_value": decision.p_value},
            )
        return ctx
