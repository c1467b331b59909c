"""The bench at its edges: essentially-constant data, effect-size names and forms, the exact
tied Wilcoxon, McNemar's two forms, 5x2cv's workings. Independent checks come from scipy (a
different computation of the same quantity) or from values computed by hand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from crucible_dagster import Experiment, bench
from crucible_dagster.sweeps.standalone import run_sweep

CONSTANTS = [0.1, 0.01, 1 / 3, 1e-8, 1e8, 7.0]


def _undefined(result: bench.TestResult) -> bool:
    return math.isnan(result.p_value) and math.isnan(result.statistic) and bool(result.reason)


@pytest.mark.parametrize("c", CONSTANTS)
def test_constant_data_is_nan_with_a_reason_in_every_test(c: float) -> None:
    same, other = [c] * 10, [2 * c] * 10
    assert np.var(same, ddof=1) >= 0  # [0.01] * 10 has a variance of about 3e-36, not 0
    assert _undefined(bench.ttest(same, other))
    assert _undefined(bench.ttest(same, other, equal_var=True))
    assert _undefined(bench.paired_ttest(same, other))
    assert _undefined(bench.corrected_resampled_ttest(same, n_train=90, n_test=10))
    assert _undefined(bench.welch_anova([same, other, [3 * c] * 10]))
    assert _undefined(bench.anova([same, other]))
    assert _undefined(bench.cv_5x2(np.full((5, 2), c), np.full((5, 2), 2 * c)))
    for effect in (
        bench.cohens_d(same, other),
        bench.hedges_g(same, other),
        bench.glass_delta(same, other),
        bench.paired_d_z(np.array(same) - np.array(other)),
    ):
        assert math.isnan(effect.estimate) and effect.reason, effect
    assert "essentially constant" in (bench.ttest(same, other).reason or "")


def test_the_corrected_t_of_the_issue_is_no_longer_1e16() -> None:
    result = bench.corrected_resampled_ttest([0.01] * 10, n_train=90, n_test=10)
    assert math.isnan(result.statistic) and math.isnan(result.p_value)
    assert "floating-point noise" in (result.reason or "")


@pytest.mark.parametrize("scale", [1e-8, 1.0, 1e8])
def test_real_variation_at_any_magnitude_is_still_tested(scale: float) -> None:
    x = scale * (1 + np.array([0.0, 1e-6, 2e-6, 3e-6, 4e-6]))
    y = scale * (1 + np.array([1e-6, 2e-6, 4e-6, 5e-6, 6e-6]))
    ours = bench.ttest(x, y)
    reference = stats.ttest_ind(x, y, equal_var=False)
    assert ours.reason is None
    assert ours.statistic == pytest.approx(reference.statistic, rel=1e-6)
    assert ours.p_value == pytest.approx(reference.pvalue, rel=1e-6)


@pytest.mark.slow  # runs a whole sweep (1.6 s)
def test_a_sweep_of_constant_metrics_reports_no_pairwise_p_near_zero(tmp_path: Path) -> None:
    experiment = Experiment.model_validate(
        {
            "id": "constant_sweep",
            "parameters": {"level": [0.1, 0.01, 1 / 3]},
            "seeds": [1, 2, 3],
            "sweep": {"metric": "fold_scores.model"},
            "pipeline": [
                {
                    "name": "score",
                    "module": "tests.helpers:ConstantScore",
                    "options": {"level": "${params.level}"},
                }
            ],
        }
    )
    comparison = run_sweep(experiment, run_id="c", artifacts=str(tmp_path)).comparison
    rows = comparison["comparison"]["comparisons"]
    assert rows
    for row in rows:
        parametric = row["test"] in ("paired_ttest", "ttest", "corrected_resampled_ttest")
        p_value = row["p_value"]  # NaN is null in the JSON-safe comparison
        if parametric:
            assert (p_value is None or math.isnan(p_value)) and row["reason"], row
        else:  # a rank test on constant differences is defined, never a t of 1e16
            assert p_value is None or p_value > 1e-6, row


def test_effect_sizes_are_one_result_type_that_still_unpacks() -> None:
    x, y = [1.0, 2.0, 4.0, 5.0, 7.0], [0.0, 1.0, 1.5, 2.0, 3.0]
    d = bench.cohens_d(x, y)
    assert isinstance(d, bench.EffectSize) and d.name == "cohens_d"
    assert d.method and d.ci_method == "noncentral t"
    estimate, (low, high) = d
    assert (estimate, low, high) == (d.estimate, d.ci[0], d.ci[1])
    pooled = math.sqrt((np.var(x, ddof=1) + np.var(y, ddof=1)) / 2)
    assert d.estimate == pytest.approx((np.mean(x) - np.mean(y)) / pooled, rel=1e-12)


def test_common_language_effect_sizes_in_both_published_forms() -> None:
    x, y = [1.0, 2.0, 3.0], [1.0, 1.0, 2.0, 3.0]
    # R effectsize's test suite: p_superiority(1:3, c(1, 1:3)) = 0.5719 (normal theory)
    d = bench.cohens_d(x, y)
    assert bench.cles_normal(d.estimate).estimate == pytest.approx(0.5719, abs=1e-3)
    # distribution-free, by hand: 5 of 12 pairs have x > y, 4 are ties -> (5 + 4/2) / 12
    superiority = bench.probability_of_superiority(x, y)
    assert superiority.estimate == pytest.approx(7 / 12, abs=1e-15)
    names = bench.two_sample_effect_sizes(x, y)
    assert names["cles_normal"] == names["cles"] != names["probability_of_superiority"]


def test_paired_probability_of_superiority_counts_all_pairs() -> None:
    x, y = [3.0, 1.0, 4.0], [2.0, 2.0, 5.0]
    paired = bench.probability_of_superiority(x, y, paired=True)
    # all 9 pairs: 3>2, 3>2, 4>2, 4>2 -> 4 wins, no ties
    assert paired.estimate == pytest.approx(4 / 9)
    assert paired.extra["within_pairs"] == pytest.approx(1 / 3)  # only 3 > 2 within its pair


def test_rank_biserial_fisher_z_intervals_match_r_effectsize() -> None:
    # R effectsize tests/testthat/test-rankES.R, help("wilcox.test") depression data
    x = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30]
    y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29]
    paired = bench.wilcoxon(x, y).to_dict()
    assert paired["matched_pairs_rank_biserial"] == pytest.approx(0.777, abs=0.01)
    assert paired["matched_pairs_rank_biserial_ci_low"] == pytest.approx(0.2953631, rel=0.01)
    assert paired["matched_pairs_rank_biserial_ci_high"] == pytest.approx(0.9441559, rel=0.01)
    assert paired["matched_pairs_rank_biserial_ci_method"].startswith("Fisher z")
    independent = bench.mann_whitney([48, 48, 77, 86, 85, 85, 16], [14, 34, 34, 77]).to_dict()
    assert independent["rank_biserial"] == pytest.approx(0.6071429, rel=1e-6)
    assert independent["rank_biserial_ci_method"].startswith("Fisher z")
    assert independent["cliffs_delta_ci_method"].startswith("Feng & Cliff")
    assert independent["rank_biserial_ci_low"] != independent["cliffs_delta_ci_low"]


def test_named_effect_size_keys_are_the_same_in_every_test() -> None:
    x, y = [1.0, 2.0, 4.0, 5.0, 7.0, 8.0], [0.0, 1.0, 1.5, 2.0, 3.0, 3.5]
    assert "cohens_d" in bench.ttest(x, y).to_dict()
    assert "d_z" in bench.paired_ttest(x, y).to_dict()
    assert "rank_biserial" in bench.mann_whitney(x, y).to_dict()
    assert "matched_pairs_rank_biserial" in bench.wilcoxon(x, y).to_dict()
    assert "epsilon_squared" in bench.kruskal_wallis([x, y]).to_dict()
    assert "eta_squared" in bench.anova([x, y]).to_dict()
    assert "kendalls_w" in bench.friedman(np.array([x, y]).T).to_dict()


def test_mcnemar_reports_both_forms_and_takes_the_table_positionally() -> None:
    by_counts = bench.mcnemar(150, 86)
    by_table = bench.mcnemar([[794, 150], [86, 570]])
    assert by_counts.to_dict() == by_table.to_dict()
    extra = by_counts.extra
    assert extra["statistic_uncorrected"] == pytest.approx(64**2 / 236)
    assert extra["statistic_corrected"] == pytest.approx(63**2 / 236)
    assert extra["p_value_uncorrected"] == pytest.approx(stats.chi2.sf(64**2 / 236, 1))
    assert by_counts.p_value == extra["p_value_corrected"]
    assert bench.mcnemar(150, 86, correction=False).p_value == extra["p_value_uncorrected"]


def test_wilcoxon_exact_with_ties_is_the_permutation_distribution_of_the_tied_ranks() -> None:
    d = [1.0, 2.0, 2.0, 3.0, -1.0, 4.0, 5.0, -2.0]
    result = bench.wilcoxon(d, method="exact")
    assert result.method == "permutation"  # never the untied null when there are ties
    reference = stats.wilcoxon(d, method=stats.PermutationMethod(n_resamples=10**6)).pvalue
    assert result.p_value == pytest.approx(reference, abs=1e-12)
    untied = stats.wilcoxon(d, method="exact").pvalue  # scipy's 'exact' ignores the ties
    assert result.p_value != pytest.approx(untied)
    assert {"p_value_continuity", "p_value_no_continuity"} <= set(result.extra)


@pytest.mark.slow
@pytest.mark.parametrize("zero_method", ["wilcox", "pratt", "zsplit"])
@pytest.mark.parametrize("alternative", ["two-sided", "less", "greater"])
def test_the_exact_tied_wilcoxon_matches_scipy_enumeration(
    zero_method: str, alternative: str
) -> None:
    rng = np.random.default_rng(7)
    for _ in range(8):
        d = rng.integers(-3, 4, int(rng.integers(4, 10))).astype(float)
        if not np.any(d):
            continue
        ours = bench.wilcoxon(
            d, method="permutation", zero_method=zero_method, alternative=alternative
        )
        theirs = stats.wilcoxon(
            d,
            zero_method=zero_method,
            alternative=alternative,
            method=stats.PermutationMethod(n_resamples=10**6),
        )
        assert ours.p_value == pytest.approx(theirs.pvalue, abs=1e-12), d


def test_cv_5x2_reports_what_it_computed_and_takes_an_alternative() -> None:
    rng = np.random.default_rng(3)
    a = 0.8 + rng.normal(0, 0.02, (5, 2))
    b = 0.78 + rng.normal(0, 0.02, (5, 2))
    result = bench.cv_5x2(a, b, alternative="greater")
    p = a - b
    s2 = ((p - p.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    assert np.allclose(result.extra["differences"], p) and np.allclose(
        result.extra["variances"], s2
    )
    t = p[0, 0] / math.sqrt(s2.mean())
    assert result.statistic == pytest.approx(t)
    assert result.p_value == pytest.approx(stats.t.sf(t, 5))
    assert bench.cv_5x2(a, b).p_value == pytest.approx(2 * stats.t.sf(abs(t), 5))


def test_corrected_resampled_ttest_takes_a_confidence_level() -> None:
    d = [0.01, 0.02, -0.005, 0.015, 0.03, 0.0, 0.012, 0.02, 0.018, 0.004]
    wide = bench.corrected_resampled_ttest(d, n_train=90, n_test=10, confidence_level=0.99)
    narrow = bench.corrected_resampled_ttest(d, n_train=90, n_test=10, confidence_level=0.90)
    se = math.sqrt((1 / 10 + 10 / 90) * np.var(d, ddof=1))
    assert wide.ci is not None and narrow.ci is not None
    assert wide.ci[1] - wide.ci[0] == pytest.approx(2 * stats.t.ppf(0.995, 9) * se)
    assert narrow.ci[1] - narrow.ci[0] == pytest.approx(2 * stats.t.ppf(0.95, 9) * se)
    assert wide.confidence_level == 0.99


def test_adjust_p_values_raises_bench_data_error() -> None:
    with pytest.raises(bench.BenchDataError):
        bench.adjust_p_values([0.5, 1.5])
    with pytest.raises(bench.BenchDataError):
        bench.adjust_p_values([0.1], "nonsense")


def test_multi_sample_jackknife_leaves_one_observation_of_one_sample_out() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.lognormal(size=30), rng.lognormal(0.3, size=25)

    def median_difference(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.median(a, axis=axis) - np.median(b, axis=axis)

    first, second = bench.multi_sample_jackknife([x, y], median_difference)
    assert np.allclose(first, [np.median(np.delete(x, i)) - np.median(y) for i in range(30)])
    assert np.allclose(second, [np.median(x) - np.median(np.delete(y, i)) for i in range(25)])
    # Efron & Tibshirani eq. 15.36, written out for two samples
    u = [(v.size - 1) * (v.mean() - v) for v in (first, second)]
    numerator = sum(np.sum(ui**3) / ui.size**3 for ui in u)
    denominator = sum(np.sum(ui**2) / ui.size**2 for ui in u)
    expected = numerator / (6 * denominator**1.5)
    assert bench.bca_acceleration([first, second]) == pytest.approx(expected, rel=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("statistic", ["mean_difference", "median_difference", "callable"])
def test_two_sample_bootstrap_matches_scipy(statistic: str) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.lognormal(size=30), rng.lognormal(0.3, size=25)

    def mean_ratio(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean(a, axis=axis) / np.mean(b, axis=axis)

    names = {
        "mean_difference": lambda a, b, axis=-1: np.mean(a, axis=axis) - np.mean(b, axis=axis),
        "median_difference": lambda a, b, axis=-1: (
            np.median(a, axis=axis) - np.median(b, axis=axis)
        ),
        "callable": mean_ratio,
    }
    ours = bench.bootstrap(
        (x, y),
        mean_ratio if statistic == "callable" else statistic,
        n_resamples=100_000,
        seed=1,
        methods=["percentile", "basic", "BCa"],
    )
    assert ours.n == (30, 25) and ours.extra["design"] == "independent"
    assert math.isfinite(ours.extra["jackknife_acceleration"])
    assert math.isfinite(ours.extra["bias_correction_z0"])
    for method in ("percentile", "basic", "BCa"):
        theirs = stats.bootstrap(
            (x, y), names[statistic], n_resamples=100_000, method=method, rng=2
        ).confidence_interval
        width = theirs.high - theirs.low
        # Monte Carlo error of the endpoints at 1e5 resamples is well under 3% of the width
        assert ours.extra[f"{method.lower()}_ci_low"] == pytest.approx(theirs.low, abs=0.03 * width)
        assert ours.extra[f"{method.lower()}_ci_high"] == pytest.approx(
            theirs.high, abs=0.03 * width
        )


def test_bootstrap_rows_carry_acceleration_and_bias_correction() -> None:
    from crucible_dagster.bench.pairwise import pair_row as _row
    from crucible_dagster.bench.pairwise import run_pairwise
    from crucible_dagster.bench.settings import ComparisonSettings

    rng = np.random.default_rng(4)
    x, y = rng.normal(0, 1, 20), rng.normal(0.5, 1, 20)
    settings = ComparisonSettings(design="independent", n_resamples=2000, seed=3)
    row = _row("a", "b", run_pairwise("bootstrap", x, y, settings), "independent", 0.05)
    assert {"jackknife_acceleration", "bias_correction_z0"} <= set(row.to_dict())


@pytest.mark.parametrize("paired", [False, True])
def test_tost_is_two_one_sided_t_tests(paired: bool) -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(0.0, 1.0, 40)
    y = x + rng.normal(0.05, 0.3, 40) if paired else rng.normal(0.05, 1.0, 40)
    low, high = -0.5, 0.5
    result = bench.tost(x, y, low=low, high=high, paired=paired)
    if paired:
        d = x - y
        lower = stats.ttest_1samp(d, low, alternative="greater").pvalue
        upper = stats.ttest_1samp(d, high, alternative="less").pvalue
    else:
        lower = stats.ttest_ind(x, y + low, equal_var=False, alternative="greater").pvalue
        upper = stats.ttest_ind(x, y + high, equal_var=False, alternative="less").pvalue
    assert result.extra["p_value_lower"] == pytest.approx(lower, rel=1e-9)
    assert result.extra["p_value_upper"] == pytest.approx(upper, rel=1e-9)
    assert result.p_value == pytest.approx(max(lower, upper), rel=1e-9)
    assert result.extra["equivalent"] == (result.p_value < 0.05)
    assert result.confidence_level == pytest.approx(0.90)
    assert result.ci is not None  # the 1 - 2 alpha CI lies inside the bounds iff equivalent
    assert (low < result.ci[0] and result.ci[1] < high) == result.extra["equivalent"]


def test_tost_refuses_bad_bounds_and_constant_data_is_undefined() -> None:
    with pytest.raises(bench.BenchDataError):
        bench.tost([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], low=0.5, high=-0.5)
    assert _undefined(bench.tost([0.1] * 8, [0.1] * 8, low=-0.1, high=0.1, paired=True))


def test_power_follows_r_power_t_test_when_not_strict() -> None:
    # R ?power.t.test: power.t.test(n = 20, delta = 1) -> power = 0.8689528 (strict = FALSE)
    assert bench.power_ttest(1.0, 20, strict=False) == pytest.approx(0.8689528, abs=5e-8)
    assert bench.power_ttest(1.0, 20) == pytest.approx(0.86895303, abs=5e-8)  # both tails
    planned = bench.n_for_power(1.0, 0.9)
    assert planned.exact == pytest.approx(22.0211, abs=2e-4) and planned.n == 23
    assert planned.power >= 0.9 and float(planned) == planned.exact
    assert bench.n_for_power(1.0, 0.9, strict=False).exact >= planned.exact
