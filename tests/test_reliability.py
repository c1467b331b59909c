"""Ensemble voting and execution modes, fairness metrics, scoring and the paired McNemar row,
each against values worked out by hand; and the two demos end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from crucible_dagster.bench.compare import compare_groups
from crucible_dagster.bench.power import detectable_effect, power_ttest
from crucible_dagster.bench.settings import ComparisonSettings
from crucible_dagster.ensembles.voting import (
    EnsembleConfigError,
    Vote,
    check_config,
    decide,
    vote,
)
from crucible_dagster.evaluation.score import score_one
from crucible_dagster.experiment.ir import Ensemble
from crucible_dagster.fairness.metrics import fairness_report, gaps, group_rates


def votes(*answers: tuple[str, object, float | None, float]) -> list[Vote]:
    return [Vote(m, a, c, lat) for m, a, c, lat in answers]


THREE = votes(("a", "cat", 0.6, 10.0), ("b", "dog", 0.9, 30.0), ("c", "cat", 0.7, 20.0))


def test_majority_weighted_best_confidence_unanimous() -> None:
    assert vote(THREE, "majority") == ("cat", pytest.approx(2 / 3), False)
    # weights: dog 3 against cat 1 + 1
    assert vote(THREE, "weighted", {"a": 1, "b": 3, "c": 1}) == ("dog", pytest.approx(3 / 5), False)
    assert vote(THREE, "best_confidence") == ("dog", 0.9, False)
    assert vote(THREE, "unanimous") == (None, pytest.approx(2 / 3), True)
    assert vote(THREE[:1] + THREE[2:], "unanimous") == ("cat", 1.0, False)
    # a tie goes to the higher summed confidence (dog 0.9 > cat 0.6)
    assert vote(THREE[:2], "majority")[0] == "dog"
    failed = [Vote("a", None, None, 5.0, failed=True), *THREE[1:]]
    assert vote(failed, "majority")[0] in ("dog", "cat") and vote(failed[:1], "majority")[2] is True


def test_execution_modes_latency_cost_and_who_is_asked() -> None:
    parallel = decide(THREE, Ensemble(strategy="majority", execution_mode="parallel"))
    assert (parallel.answer, parallel.latency_ms, parallel.asked) == ("cat", 30.0, ["a", "b", "c"])
    sequential = decide(THREE, Ensemble(strategy="majority", execution_mode="sequential"))
    assert sequential.latency_ms == 60.0
    # a member slower than timeout_ms does not vote: a and c (cat) against nobody
    timed = decide(THREE, Ensemble(strategy="majority", execution_mode="parallel", timeout_ms=25))
    assert timed.counted == ["a", "c"] and timed.latency_ms == 25.0
    # cascade with min_agreement 2/3: a says cat, b dog, c cat -> two agree after c
    cascade = decide(
        THREE, Ensemble(strategy="majority", execution_mode="cascade", min_agreement=0.6)
    )
    assert cascade.asked == ["a", "b", "c"] and cascade.answer == "cat"
    agreeing = votes(("a", "cat", 0.6, 10.0), ("b", "cat", 0.9, 30.0), ("c", "dog", 0.7, 20.0))
    early = decide(
        agreeing, Ensemble(strategy="majority", execution_mode="cascade", min_agreement=0.6)
    )
    assert early.asked == ["a", "b"] and early.latency_ms == 40.0  # c never asked
    # hedged: b is sent 5 ms after a; c would go at 10 ms, when a's answer is in: a wins
    hedged = decide(THREE, Ensemble(strategy="majority", execution_mode="hedged", timeout_ms=5))
    assert (hedged.answer, hedged.latency_ms, hedged.asked) == ("cat", 10.0, ["a", "b"])
    # with a 15 ms delay, a answers before b is sent
    patient = decide(THREE, Ensemble(strategy="majority", execution_mode="hedged", timeout_ms=15))
    assert patient.asked == ["a"] and patient.latency_ms == 10.0


def test_ensemble_settings_that_cannot_vote_are_refused() -> None:
    with pytest.raises(EnsembleConfigError, match=r"strategy: expected majority.*found 'none'"):
        check_config(Ensemble(), ["a", "b"])
    with pytest.raises(EnsembleConfigError, match=r"weights: .*missing \['b'\]"):
        check_config(Ensemble(strategy="weighted", weights={"a": 1}), ["a", "b"])
    with pytest.raises(EnsembleConfigError, match="min_agreement: cascade needs it"):
        check_config(Ensemble(strategy="majority", execution_mode="cascade"), ["a", "b"])


def test_fairness_rates_and_gaps_by_hand() -> None:
    # group A: 4 samples, predictions 1,1,0,0 refs 1,0,1,0 -> selection 0.5, TPR 0.5, FPR 0.5, PPV 0.5
    # group B: 4 samples, predictions 1,0,0,0 refs 1,1,0,0 -> selection 0.25, TPR 0.5, FPR 0, PPV 1
    pred = [1, 1, 0, 0, 1, 0, 0, 0]
    ref = [1, 0, 1, 0, 1, 1, 0, 0]
    group = ["A"] * 4 + ["B"] * 4
    a = group_rates(np.array(pred[:4]) == 1, np.array(ref[:4]) == 1)
    assert a == {
        "selection_rate": 0.5,
        "true_positive_rate": 0.5,
        "false_positive_rate": 0.5,
        "precision": 0.5,
    }
    report = {
        r.metric: r for r in fairness_report(pred, ref, group, threshold=0.2, n_resamples=200)
    }
    assert report["demographic_parity"].gap == pytest.approx(0.25)
    assert report["equal_opportunity"].gap == pytest.approx(0.0)
    assert report["equalized_odds"].gap == pytest.approx(0.5)  # the FPR gap
    assert report["predictive_parity"].gap == pytest.approx(0.5)
    assert report["demographic_parity"].violated and not report["equal_opportunity"].violated
    low, high = report["demographic_parity"].ci
    assert 0 <= low <= high <= 1
    assert math.isnan(gaps({"A": a}, "demographic_parity"))  # one group: no gap


def test_scoring_rules() -> None:
    assert score_one("Paris ", "paris", "exact_match", False) == 1.0
    assert score_one("Paris", "paris", "exact_match", True) == 0.0
    assert score_one("It is Paris.", "paris", "contains", False) == 1.0
    assert (
        score_one(3, 5, "absolute_error", False) == 2.0
        and score_one(3, 5, "squared_error", False) == 4.0
    )
    assert score_one(None, 1, "exact_match", False) == 0.0  # a failed sample is wrong
    assert score_one(None, 1, "absolute_error", False) is None  # and has no error to average


def test_paired_correctness_row_by_hand() -> None:
    # 50 samples: 35 right under both, 10 right only under a (b = 10), 3 only under b (c = 3)
    x = np.array([1] * 35 + [1] * 10 + [0] * 3 + [0] * 2, dtype=float)
    y = np.array([1] * 35 + [0] * 10 + [1] * 3 + [0] * 2, dtype=float)
    row, boot = compare_groups({"a": x, "b": y}, ComparisonSettings(design="paired", seed=1)).rows
    assert boot.test == "bootstrap" and boot.estimate == pytest.approx(7 / 50)  # paired, beside it
    assert boot.ci_low < 7 / 50 < boot.ci_high
    assert row.test == "mcnemar" and row.method == "exact binomial"  # 13 discordant < 25
    assert row.p_value == pytest.approx(stats.binomtest(10, 13, 0.5).pvalue)
    assert row.estimate == pytest.approx(7 / 50)
    half = stats.norm.ppf(0.975) * math.sqrt(13 - 49 / 50) / 50
    assert (row.ci_low, row.ci_high) == (pytest.approx(0.14 - half), pytest.approx(0.14 + half))
    assert row.n_a == row.n_b == 50


def test_power_is_finite_where_scipys_nct_cdf_is_not() -> None:
    # scipy 1.17's nct.cdf(-1.98, 99, 10) is NaN; the power and the detectable effect are not
    assert power_ttest(1.0, 100, design="paired") == pytest.approx(1.0)
    effect = detectable_effect(569, 0.8, 0.05, design="paired")
    assert power_ttest(effect, 569, design="paired") == pytest.approx(0.8, abs=1e-6)
