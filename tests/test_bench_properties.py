"""Invariances of the bench that must hold for any data (hypothesis)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from crucible_dagster import bench

samples = st.lists(
    st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False), min_size=3, max_size=25
)
p_lists = st.lists(st.one_of(st.floats(0, 1), st.just(float("nan"))), min_size=1, max_size=30)


def _varies(values: list[float]) -> bool:
    return np.ptp(values) > 1e-6 * (1 + np.max(np.abs(values)))


@pytest.mark.slow
@settings(max_examples=80, deadline=None)
@given(samples, samples)
def test_two_sample_p_values_in_unit_interval_and_swap_symmetry(
    x: list[float], y: list[float]
) -> None:
    assume(_varies(x) and _varies(y))
    for test in (bench.ttest, bench.mann_whitney):
        forward, backward = test(x, y), test(y, x)
        assert 0 <= forward.p_value <= 1
        assert math.isclose(forward.p_value, backward.p_value, rel_tol=1e-9, abs_tol=1e-12)
    t_fwd, t_back = bench.ttest(x, y), bench.ttest(y, x)
    assert math.isclose(t_fwd.estimate, -t_back.estimate, rel_tol=1e-9, abs_tol=1e-9)  # type: ignore[arg-type]
    assert math.isclose(t_fwd.statistic, -t_back.statistic, rel_tol=1e-9, abs_tol=1e-9)
    assert math.isclose(t_fwd.effect_size, -t_back.effect_size, rel_tol=1e-6, abs_tol=1e-9)  # type: ignore[arg-type]
    assert t_fwd.ci is not None and t_fwd.ci[0] <= t_fwd.estimate <= t_fwd.ci[1]
    m_fwd, m_back = bench.mann_whitney(x, y), bench.mann_whitney(y, x)
    assert math.isclose(m_fwd.extra["cliffs_delta"], -m_back.extra["cliffs_delta"], abs_tol=1e-12)


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(samples)
def test_paired_tests_flip_sign_not_p(x: list[float]) -> None:
    y = [v * 0.5 + i for i, v in enumerate(x)]
    assume(_varies([a - b for a, b in zip(x, y, strict=True)]))
    forward, backward = bench.paired_ttest(x, y), bench.paired_ttest(y, x)
    assert 0 <= forward.p_value <= 1
    assert math.isclose(forward.p_value, backward.p_value, rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(forward.estimate, -backward.estimate, rel_tol=1e-9, abs_tol=1e-9)  # type: ignore[arg-type]
    w_fwd, w_back = bench.wilcoxon(x, y), bench.wilcoxon(y, x)
    assert math.isclose(w_fwd.p_value, w_back.p_value, rel_tol=1e-9, abs_tol=1e-12)


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(
    p_lists,
    st.sampled_from(
        ["bonferroni", "holm", "hochberg", "benjamini_hochberg", "benjamini_yekutieli"]
    ),
)
def test_adjusted_p_values_monotone_and_not_below_raw(p_values: list[float], method: str) -> None:
    adjusted = bench.adjust_p_values(p_values, method)
    assert len(adjusted) == len(p_values)
    pairs = [(p, a) for p, a in zip(p_values, adjusted, strict=True) if not math.isnan(p)]
    for p, a in zip(p_values, adjusted, strict=True):
        assert math.isnan(p) == math.isnan(a)  # NaN passes through, excluded from m
    for p, a in pairs:
        assert p - 1e-15 <= a <= 1
    ordered = sorted(pairs)
    for (p1, a1), (p2, a2) in itertools.pairwise(ordered):
        assert a1 <= a2 + 1e-15 or p1 == p2


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(st.lists(samples, min_size=3, max_size=5))
def test_k_sample_p_values_in_unit_interval(groups: list[list[float]]) -> None:
    assume(all(_varies(g) for g in groups))
    for test in (bench.anova, bench.welch_anova, bench.kruskal_wallis):
        result = test(groups)
        assert math.isnan(result.p_value) or 0 <= result.p_value <= 1


@pytest.mark.slow
@settings(max_examples=30, deadline=None)
@given(samples, st.integers(0, 2**31 - 1))
def test_bootstrap_is_reproducible_with_a_seed(x: list[float], seed: int) -> None:
    assume(_varies(x))
    a = bench.bootstrap(x, n_resamples=200, seed=seed)
    b = bench.bootstrap(x, n_resamples=200, seed=seed)
    assert a.to_dict() == b.to_dict()
    assert a.extra["percentile_ci_low"] <= a.extra["percentile_ci_high"]
