"""Statistical edges say what they cannot say (issue 22, section 9).

Fairness on no samples, one group, a group of one, missing labels or groups, a single class,
equal values; an interval that would exclude its own estimate; and a paired decision whose
named test must be the test its reason describes. Each result is checked for the property:
undefined values are ``None`` beside a reason (strict JSON, never NaN), dropped rows are
counted, and no interval leaves out its estimate.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from crucible_dagster import Experiment
from crucible_dagster.bench.compare import compare_groups
from crucible_dagster.bench.settings import ComparisonSettings, Design
from crucible_dagster.evaluation.per_sample import TABLE_KEY
from crucible_dagster.fairness.metrics import FairnessResult, fairness_report
from crucible_dagster.fairness.stage import FairnessOptions, FairnessStage
from crucible_dagster.runtime.context import Context


def report(pred: list[Any], ref: list[Any], group: list[Any], **kw: Any) -> dict[str, Any]:
    results = fairness_report(pred, ref, group, n_resamples=200, **kw)
    return {r.metric: r for r in results}


def strict(result: FairnessResult) -> dict[str, Any]:
    """The record as JSON holds it: NaN is refused, so nothing undefined can pass as a number."""
    out: dict[str, Any] = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    return out


def assert_undefined(result: FairnessResult, *words: str) -> None:
    record = strict(result)
    assert record["gap"] is None and record["ci_low"] is None and record["violated"] is None
    assert record["reason"] and all(w in record["reason"] for w in words), record["reason"]


@pytest.mark.parametrize("n", [0, 1])
def test_no_samples_or_one_sample_has_no_gap(n: int) -> None:
    for result in report([1] * n, [1] * n, ["a"] * n).values():
        assert_undefined(result, "no samples" if n == 0 else "one group ('a')")
        assert strict(result)["n"] == n


def test_one_group_is_undefined_with_its_name() -> None:
    for result in report([1, 0, 1, 0], [1, 1, 0, 0], ["only"] * 4).values():
        assert_undefined(result, "one group ('only')", "at least two")


GROUP_OF_ONE = (["a", "a", "b"], ["a", "a", "b", "b"])


@pytest.mark.parametrize("group", GROUP_OF_ONE, ids=["b_has_one", "b_has_two"])
def test_a_group_of_one_has_a_gap_but_no_interval(group: list[str]) -> None:
    # with one sample, b's rate is the same in every resample: no interval would be honest
    pred, ref = [1, 0, 1, 1][: len(group)], [1, 1, 0, 0][: len(group)]
    parity = strict(report(pred, ref, group)["demographic_parity"])
    assert parity["gap"] == pytest.approx(0.5)
    if len(group) == 3:
        assert parity["ci_low"] is None and "group 'b' has one sample" in parity["ci_reason"]
    else:
        assert parity["ci_low"] is not None and parity["ci_reason"] is None


def test_missing_predictions_references_and_groups_are_dropped_and_counted() -> None:
    nan = float("nan")
    pred = [1, 0, 1, 0, 1, 0, nan, 1, None, 1, 0]
    ref = [1, 1, 0, 0, 1, 0, 1, pd.NA, 1, 1, 0]
    group = ["a", "a", "a", "b", "b", "b", "a", "b", "a", nan, None]
    dirty = report(pred, ref, group)
    clean = report(pred[:6], ref[:6], group[:6])
    for metric, result in dirty.items():
        record = strict(result)
        assert record["dropped"] == {"prediction": 2, "reference": 1, "group": 2, "rows": 5}
        assert record["n"] == 6 and "5 rows dropped" in " ".join(record["flags"])
        assert sorted(record["by_group"]) == ["a", "b"]  # no "nan" or "None" group
        assert record["gap"] == strict(clean[metric])["gap"]


def test_inf_is_a_label_not_a_missing_value() -> None:
    inf = float("inf")
    result = strict(
        report([inf, 1, 1, 0], [1, 1, 0, inf], ["a", "a", "b", "b"])["demographic_parity"]
    )
    assert result["n"] == 4 and result["dropped"]["rows"] == 0
    assert result["gap"] == pytest.approx(0.0)  # a: 1 of 2 positive, b: 1 of 2


def test_a_single_reference_class_leaves_opportunity_undefined() -> None:
    metrics = report([1, 0, 1, 1], [0, 0, 0, 0], ["a", "a", "b", "b"])
    assert_undefined(metrics["equal_opportunity"], "no samples with reference = positive")
    assert_undefined(metrics["equalized_odds"], "true_positive_rate")
    assert strict(metrics["demographic_parity"])["gap"] == pytest.approx(0.5)


def test_all_predictions_equal() -> None:
    metrics = report([0] * 8, [1, 0] * 4, ["a"] * 4 + ["b"] * 4)
    parity = strict(metrics["demographic_parity"])
    assert (parity["gap"], parity["ci_low"], parity["ci_high"]) == (0.0, 0.0, 0.0)
    assert_undefined(metrics["predictive_parity"], "no samples predicted positive")


def test_a_group_without_the_rate_is_left_out_with_a_flag() -> None:
    pred = [1, 0, 1, 0, 1, 1, 0, 0, 1]
    ref = [1, 1, 1, 1, 1, 0, 0, 0, 0]
    group = ["a", "a", "b", "b", "b", "c", "c", "c", "c"]
    opportunity = strict(report(pred, ref, group)["equal_opportunity"])
    assert opportunity["gap"] == pytest.approx(2 / 3 - 1 / 2)  # over a and b only
    assert any("group 'c' left out" in f for f in opportunity["flags"]), opportunity["flags"]


def test_no_interval_excludes_its_estimate() -> None:
    # equal rates in two large groups: the estimate is 0, yet almost no resample's
    # largest-minus-smallest gap is 0, so the plain percentile interval started above it
    pred, ref = [1, 0] * 1000, [1, 1, 0, 0] * 500
    group = ["a"] * 1000 + ["b"] * 1000
    parity = strict(report(pred, ref, group, metrics=["demographic_parity"])["demographic_parity"])
    assert parity["gap"] == 0.0
    assert parity["ci_low"] <= parity["gap"] <= parity["ci_high"]
    assert any("did not hold the estimate" in f for f in parity["flags"])


@pytest.mark.parametrize("seed", range(4))
def test_intervals_hold_their_estimates_on_small_random_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 12
    pred, ref = rng.integers(0, 2, n).tolist(), rng.integers(0, 2, n).tolist()
    group = rng.choice(["a", "b", "c"], n).tolist()
    for result in report(pred, ref, group, seed=seed).values():
        record = strict(result)
        if record["ci_low"] is not None:
            assert record["ci_low"] <= record["gap"] <= record["ci_high"], record
        elif record["gap"] is not None:
            assert record["ci_reason"], record


def test_the_stage_lists_what_it_cannot_say_in_strict_json(tmp_path: Any) -> None:
    experiment = Experiment.model_validate(
        {
            "id": "fair",
            "pipeline": [{"name": "fairness"}],
            "reliability": {"fairness": {"enabled": True, "group_by": "g"}},
        }
    )
    table = pd.DataFrame(
        {
            "variant": ["m"] * 4,
            "sample_id": ["0", "1", "2", "3"],
            "prediction": [1, 0, 1, 0],
            "reference": [0, 0, 0, 0],
            "error": [None] * 4,
        }
    )
    features = pd.DataFrame({"g": ["a", "a", "b", float("nan")]}, index=["0", "1", "2", "3"])
    ctx = Context(
        experiment_id="fair",
        run_id="r",
        experiment=experiment,
        assigns={TABLE_KEY: table, "features": features},
        run_dir=str(tmp_path),
    )
    summary = FairnessStage().run(ctx, FairnessOptions(n_resamples=100)).metrics["fairness"]
    json.dumps(summary, allow_nan=False)
    assert "m: equal_opportunity undefined: fewer than two groups" in " | ".join(
        summary["undefined"]
    )
    parity = summary["variants"]["m"]["demographic_parity"]
    assert parity["dropped"]["group"] == 1 and parity["n"] == 3


PAIRED_CASES = [
    ("two_pairs", [1.0, 2.0], [0.5, 1.0]),
    ("constant_differences", [1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 2.0, 3.0]),
    ("normal_differences", [3.0, 1.0, 4.0, 1.0, 5.0, 9.0], [2.0, 7.0, 1.0, 8.0, 2.0, 8.0]),
    ("skewed_differences", [0.0] * 9 + [50.0] + [1.0] * 5, [0.0] * 15),
]
WORDS = {"paired_ttest": "paired t", "wilcoxon": "Wilcoxon"}


@pytest.mark.parametrize(
    ("x", "y"), [c[1:] for c in PAIRED_CASES], ids=[c[0] for c in PAIRED_CASES]
)
def test_a_paired_decision_names_the_test_its_reason_describes(
    x: list[float], y: list[float]
) -> None:
    comparison = compare_groups({"a": x, "b": y}, ComparisonSettings(design="paired"))
    [row] = comparison.rows
    [choice] = [d for d in comparison.decisions if d.decision.startswith("a vs b: ")]
    assert choice.decision == f"a vs b: {row.test}"
    assert WORDS[row.test] in choice.reason, choice.reason
    other = next(w for t, w in WORDS.items() if t != row.test)
    assert other not in choice.reason, choice.reason
    if row.test == "paired_ttest":
        assert "rank" not in choice.reason, choice.reason
    if math.isnan(row.p_value):
        assert row.reason, row


# --- attack b: B5 (overflow), B6 (noise-level paired differences), B7 (repeated blocks),
# --- B8 (rows without a group, the n of an undefined row), B9 (a gap against a group of one)

HUGE = [1e308, -1e308, 1e308, -1e308, 1e308]
OVERFLOW = "undefined (values too large to compute: overflow)"


def bench_of(
    frame: pd.DataFrame, tmp_path: Any = None, **options: Any
) -> tuple[dict[str, Any], Any]:
    """Run the real bench stage (and the report stage when ``tmp_path`` is given) on a table."""
    from crucible_dagster import run

    pipeline: list[dict[str, Any]] = [{"name": "bench", "options": options}]
    spec: dict[str, Any] = {"id": "edges", "seed": 3, "pipeline": pipeline}
    if tmp_path is not None:
        pipeline.append({"name": "report"})
        spec["outputs"] = [{"name": "summary", "formats": ["markdown", "html", "json"]}]
    result = run(
        Experiment.model_validate(spec),
        assigns={"scores": frame},
        write_run_dir=tmp_path is not None,
    )
    assert result.ok, result.failure
    bench: dict[str, Any] = json.loads(json.dumps(result.context.metrics["bench"], allow_nan=False))
    return bench, result


def test_shapiro_on_overflowing_values_is_undefined_never_normal() -> None:
    from crucible_dagster.bench.assumptions import shapiro

    result = shapiro(HUGE)
    assert not result.defined and result.reason and OVERFLOW in result.reason
    comparison = compare_groups({"a": HUGE, "b": [1.0, 2, 3, 4, 5]})
    verdicts = [d for d in comparison.decisions if d.decision.startswith("a: ")]
    assert [d.decision for d in verdicts] == ["a: normality undefined"], verdicts
    assert "consistent with normality" not in json.dumps([d.to_dict() for d in verdicts])


def test_welch_t_and_cohens_d_from_overflowed_sums_are_undefined_with_the_reason() -> None:
    from crucible_dagster.bench.effect_size import cohens_d

    settings = ComparisonSettings(tests=["ttest"])
    comparison = compare_groups({"a": HUGE, "b": [1.0, 2, 3, 4, 5]}, settings)
    [row] = comparison.rows
    assert math.isnan(row.statistic) and math.isnan(row.p_value), row  # was t = 0.0
    assert math.isnan(row.effect_size) and math.isnan(row.effect_size_ci_low), row  # was d = 0.0
    assert row.reason and row.reason.startswith(OVERFLOW), row.reason
    assert "hedges_g" not in row.extra
    d = cohens_d(HUGE, [1.0, 2, 3, 4, 5])
    assert math.isnan(d.estimate) and d.reason and OVERFLOW in d.reason
    summary = comparison.summary["a"]
    assert math.isnan(summary["sd"]) and OVERFLOW in summary["reason"]


@pytest.mark.parametrize("scale", [1e100, 1e154, 1e200])
@pytest.mark.parametrize("test", ["ttest", "anova", "welch_anova"])
def test_large_values_never_raise_and_match_scipy_where_computable(scale: float, test: str) -> None:
    from scipy import stats

    base = {"a": [1.0, 2.5, 2.0, 4.0, 3.5], "b": [2.0, 3.0, 4.5, 5.0, 6.5], "c": [0.5, 1, 2, 2, 3]}
    groups = {k: [v * scale for v in values] for k, values in base.items()}
    settings = ComparisonSettings(tests=[test], n_resamples=200, seed=1)
    out = compare_groups(groups, settings).to_dict()  # raised OverflowError before
    records = out["comparisons"] + out["omnibus"]
    assert records
    for record in records:
        numbers = [record.get(k) for k in ("statistic", "p_value")]
        assert record["reason"] or all(math.isfinite(v) for v in numbers), record
        if record["reason"]:
            assert math.isnan(record["statistic"]) and OVERFLOW in record["reason"], record
    if test == "ttest" and scale == 1e100:  # t is scale-free: scipy on the unscaled data
        expected = stats.ttest_ind(base["a"], base["b"], equal_var=False)
        ab = next(r for r in out["comparisons"] if (r["group_a"], r["group_b"]) == ("a", "b"))
        assert ab["statistic"] == pytest.approx(float(expected.statistic), rel=1e-9)
        assert ab["p_value"] == pytest.approx(float(expected.pvalue), rel=1e-9)


@pytest.mark.parametrize("design", ["independent", "paired"])
def test_a_bootstrap_whose_jackknife_overflows_is_undefined_not_a_crash(design: Design) -> None:
    m = 1e154  # the BCa acceleration cubes and squares jackknife values: Python's ** raised
    groups = {"a": [m, 0.9 * m, 0.8 * m, m, 0.7 * m, 0.95 * m], "b": [1.0, 2, 3, 4, 5, 6]}
    settings = ComparisonSettings(design=design, tests=["bootstrap"], n_resamples=200, seed=1)
    [row] = compare_groups(groups, settings).rows
    assert math.isnan(row.ci_low) and row.reason and row.reason.startswith(OVERFLOW), row


def test_the_report_stage_shows_overflowed_values_as_undefined(tmp_path: Any) -> None:
    frame = pd.DataFrame({"group": ["a"] * 5 + ["b"] * 5, "value": [*HUGE, 1.0, 2, 3, 4, 5]})
    bench, result = bench_of(frame, tmp_path)  # the plot's arange crashed the report stage
    [row] = bench["comparisons"]
    assert row["statistic"] is None and row["reason"].startswith(OVERFLOW)
    run_dir = result.context.run_dir
    markdown = next(Path(run_dir).rglob("summary.md")).read_text(encoding="utf-8")
    assert "values too large to compute" in markdown
    assert (Path(run_dir) / "distributions.svg").is_file()


def test_noise_level_paired_differences_are_ties_not_a_difference() -> None:
    from crucible_dagster.bench.nonparametric import wilcoxon
    from crucible_dagster.bench.parametric import paired_ttest

    a = [1.0, 2.0, 3.0, 4.0, 5.0]
    b = [v + 1e-15 for v in a]
    comparison = compare_groups({"a": a, "b": b}, ComparisonSettings(design="paired"))
    [row] = comparison.rows
    assert math.isnan(row.p_value) and "every difference is zero" in (row.reason or ""), row
    assert wilcoxon(a, b).extra["n_zero"] == 5
    t = paired_ttest(a, b)
    assert not t.defined and "essentially constant" in (t.reason or "")


def test_a_constant_shift_with_noise_is_constant_in_every_pair() -> None:
    from scipy import stats

    groups = {f"g{i}": [i + k * 0.37 + (k % 2) * 0.1 for k in range(6)] for i in range(4)}
    comparison = compare_groups(groups, ComparisonSettings(design="blocked"))
    checks = [
        d for d in comparison.decisions if d.decision.endswith("differences: normality undefined")
    ]
    assert len(checks) == 6, [d.to_dict() for d in comparison.decisions]
    assert {r.test for r in comparison.rows} == {"wilcoxon"}
    for row in comparison.rows:  # exactly constant differences, as scipy sees them
        shift = float(row.group_a[1:]) - float(row.group_b[1:])
        expected = stats.wilcoxon(np.full(6, shift), method="asymptotic", correction=True)
        assert row.p_value == pytest.approx(float(expected.pvalue), rel=1e-12), row
        assert row.estimate == shift


def test_a_block_repeated_inside_a_group_refuses_the_paired_design() -> None:
    frame = pd.DataFrame(
        {
            "group": ["a"] * 4 + ["b"] * 4,
            "value": [1.0, 2, 3, 4, 2, 3, 4, 6],
            "block": [0, 0, 1, 1, 0, 0, 1, 1],
        }
    )
    bench, _ = bench_of(frame)
    [row] = bench["comparisons"]
    assert row["p_value"] is None and row["statistic"] is None, row  # was Wilcoxon, n = 4
    assert row["reason"] == (
        "group 'a': block 0 appears 2 times; a paired design needs one value per block in each group"
    )
    assert (row["n_a"], row["n_b"]) == (4, 4)


def test_blocks_that_differ_between_groups_refuse_the_pairing() -> None:
    frame = pd.DataFrame(
        {"group": ["a"] * 3 + ["b"] * 3, "value": [1.0, 2, 3, 2, 3, 5], "block": [0, 1, 2, 0, 1, 3]}
    )
    [row] = bench_of(frame)[0]["comparisons"]
    assert row["p_value"] is None
    assert row["reason"].startswith("block 2 is in group 'a' but not in group 'b'"), row["reason"]


def test_rows_without_a_group_are_dropped_counted_and_flagged() -> None:
    frame = pd.DataFrame(
        {
            "group": ["a", "a", "a", None, float("nan"), "b", "b", "b"],
            "value": [1.0, 2, 3, 4, 5, 2, 3, 5],
        }
    )
    bench, _ = bench_of(frame)
    assert bench["dropped"] == {"group": 2, "rows": 2}
    assert bench["flags"] == ["2 rows dropped for a missing group"]
    assert {k: v["n"] for k, v in bench["summary"].items()} == {"a": 3, "b": 3}


@pytest.mark.parametrize(
    ("values", "sizes"),
    [([1.0, 2.0], (1, 1)), ([1.0, 2, float("nan"), 3, 4, 2, 3, 4, 5, 6], (5, 5))],
    ids=["n1", "nan"],
)
def test_an_undefined_comparison_reports_the_n_it_had(
    values: list[float], sizes: tuple[int, int]
) -> None:
    half = len(values) // 2
    frame = pd.DataFrame({"group": ["a"] * half + ["b"] * half, "value": values})
    bench, _ = bench_of(frame, tests=["ttest"])
    [row] = bench["comparisons"]
    assert row["reason"] and row["p_value"] is None
    assert (row["n_a"], row["n_b"]) == sizes  # was 0 and 0
    assert bench["summary"]["a"]["n"] == sizes[0]


@pytest.mark.parametrize(
    ("pred", "group", "single"),
    [
        ([1, 0, 1, 0, 1, 0, 1, 0, 1, 1], ["a"] * 9 + ["=cmd"], ["=cmd"]),
        ([1, 0], ["a", "b"], ["a", "b"]),
    ],
    ids=["groupofone", "two"],
)
def test_a_gap_against_a_group_of_one_is_flagged(
    pred: list[int], group: list[str], single: list[str]
) -> None:
    ref = [1, 1, 0, 0, 1, 0, 1, 0, 1, 1][: len(pred)]
    parity = strict(report(pred, ref, group)["demographic_parity"])
    assert parity["violated"] is True
    flagged = [f for f in parity["flags"] if "has one sample" in f]
    assert flagged == [
        f"group {g!r} has one sample: its rate can only be 0 or 1, so the gap against it "
        "is not evidence of a disparity (no interval)"
        for g in single
    ]


def test_the_fairness_stage_names_the_group_of_one_in_its_violation(tmp_path: Any) -> None:
    experiment = Experiment.model_validate(
        {
            "id": "fair",
            "pipeline": [{"name": "fairness"}],
            "reliability": {"fairness": {"enabled": True, "group_by": "g"}},
        }
    )
    table = pd.DataFrame(
        {
            "variant": ["m"] * 5,
            "sample_id": ["0", "1", "2", "3", "4"],
            "prediction": [1, 0, 1, 0, 1],
            "reference": [1, 0, 1, 0, 1],
            "error": [None] * 5,
        }
    )
    features = pd.DataFrame({"g": ["a", "a", "a", "a", "b"]}, index=["0", "1", "2", "3", "4"])
    ctx = Context(
        experiment_id="fair",
        run_id="r",
        experiment=experiment,
        assigns={TABLE_KEY: table, "features": features},
        run_dir=str(tmp_path),
    )
    summary = FairnessStage().run(ctx, FairnessOptions(n_resamples=100)).metrics["fairness"]
    parity = [v for v in summary["violations"] if "demographic_parity" in v]
    assert parity == ["m: demographic_parity gap 0.500 > 0.1 (against a group of one sample: 'b')"]


def test_noise_level_fold_differences_are_no_corrected_t() -> None:
    folds = [0.81, 0.82, 0.80, 0.83, 0.79]
    noisy = [v + 1e-16 * (1 + i % 2) for i, v in enumerate(folds)]
    settings = ComparisonSettings(design="paired", n_train=80, n_test=20)
    rows = compare_groups({"a": folds, "b": noisy}, settings).rows
    corrected = next(r for r in rows if r.test == "corrected_resampled_ttest")
    assert math.isnan(corrected.statistic) and "essentially constant" in (corrected.reason or "")
