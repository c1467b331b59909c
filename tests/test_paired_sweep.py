"""Sweeps that keep the pairing: configurations compared per sample when they share samples.

The known answers: two prompts that differ on exactly 6 of 30 questions, all six one way,
give McNemar's exact p = 2 * 0.5^6 = 0.03125; five prompts answering WaveMetrics' published
Cochran example give its Q = 10.3636, p = 0.0347281.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from scipy import stats

from crucible_dagster import Experiment
from crucible_dagster.sweeps.standalone import run_sweep
from tests.paired_helpers import RIGHT, miss

pytestmark = pytest.mark.slow  # each runs a real sweep (1-5 s)

SIX_OF_THIRTY_P = 2 * 0.5**6


def prompt_sweep(prompts: list[str], **changes: Any) -> Experiment:
    """Prompts as a sweep parameter: each trial asks the callable backend the same questions
    under its prompt and scores the answers (exact match, or absolute error)."""
    count = changes.pop("count", 30)
    metric = changes.pop("score_metric", "exact_match")
    sweep = {"metric": "score.variants.model.mean", **changes.pop("sweep", {})}
    data = {
        "id": "prompts",
        "parameters": {"prompt": prompts},
        "backend": {"id": "callable", "options": {"function": "tests.paired_helpers:answer"}},
        "sweep": sweep,
        "pipeline": [
            {
                "name": "questions",
                "module": "tests.paired_helpers:SeedSums",
                "options": {"prompt": "${params.prompt}", "count": count},
            },
            {"name": "predict", "options": {"inputs": "examples", "reference": "output"}},
            {"name": "score", "options": {"metric": metric}},
        ],
        **changes,
    }
    return Experiment.model_validate(data)


def mcnemar_row(comparison: dict[str, Any]) -> dict[str, Any]:
    (row,) = [r for r in comparison["comparison"]["comparisons"] if r["test"] == "mcnemar"]
    return row


def test_six_of_thirty_is_detected_at_the_exact_mcnemar_p(tmp_path: Path) -> None:
    result = run_sweep(prompt_sweep(["terse", "careful"]), run_id="s", artifacts=str(tmp_path))
    comparison = result.comparison
    assert comparison["design"]["kind"] == "per_sample"
    assert comparison["design"]["blocks"] == 30 and comparison["design"]["column"] == "score"
    row = mcnemar_row(comparison)
    assert row["p_value"] == SIX_OF_THIRTY_P and row["method"] == "exact binomial"
    assert (row["b"], row["c"]) == (0, 6)  # terse right where careful is wrong: never
    assert row["estimate"] == pytest.approx(-6 / 30)  # terse - careful, in share correct
    assert row["ci_low"] < -0.05 and row["ci_high"] < 0  # the paired interval excludes 0
    best = comparison["best"]
    assert best["configuration"] == "prompt_careful" and best["significantly_better"]
    assert best["mean"] == pytest.approx(20 / 30) and best["runner_up_mean"] == pytest.approx(
        14 / 30
    )
    report = (tmp_path / "prompts" / "s" / "sweep.md").read_text(encoding="utf-8")
    assert "Compared per sample: 30 samples x 1 seed" in report and "0.03125" in report
    stored = json.loads((tmp_path / "prompts" / "s" / "sweep.json").read_text(encoding="utf-8"))
    assert mcnemar_row(stored)["p_value"] == SIX_OF_THIRTY_P


def test_per_seed_means_cannot_tell_the_six_apart(tmp_path: Path) -> None:
    """The same sweep compared the old way: one mean per trial, nothing to test."""
    experiment = prompt_sweep(["terse", "careful"], sweep={"per_sample": False})
    comparison = run_sweep(experiment, run_id="s", artifacts=str(tmp_path)).comparison
    assert comparison["design"]["kind"] == "per_seed_means"
    assert "names no per-sample column" in comparison["design"]["why"]
    assert not comparison["best"]["significantly_better"]
    assert all(
        r["p_value"] is None or r["p_value"] > 0.05 for r in comparison["comparison"]["comparisons"]
    )


def test_seeds_are_blocks_too(tmp_path: Path) -> None:
    """Two seeds of a deterministic backend: 60 (seed, sample) blocks, 12 discordant pairs."""
    experiment = prompt_sweep(["terse", "careful"], seeds=[1, 2])
    comparison = run_sweep(experiment, run_id="s", artifacts=str(tmp_path)).comparison
    assert comparison["design"]["blocks"] == 60
    assert "30 samples x 2 seed(s)" in comparison["design"]["why"]
    row = mcnemar_row(comparison)
    assert (row["b"], row["c"]) == (0, 12)
    assert row["p_value"] == pytest.approx(2 * 0.5**12)


def test_cochran_q_through_a_sweep_matches_the_published_example(tmp_path: Path) -> None:
    prompts = [f"g{j}" for j in range(1, 6)]
    experiment = prompt_sweep(prompts, count=9)
    comparison = run_sweep(experiment, run_id="s", artifacts=str(tmp_path)).comparison
    (omnibus,) = comparison["comparison"]["omnibus"]
    assert omnibus["test"] == "cochran_q"
    assert omnibus["statistic"] == pytest.approx(10.3636, abs=5e-5)
    assert omnibus["p_value"] == pytest.approx(0.0347281, abs=5e-7)
    pairs = [r for r in comparison["comparison"]["comparisons"] if r["test"] == "mcnemar"]
    assert len(pairs) == 10 and all(r["p_adjusted"] >= r["p_value"] for r in pairs)
    assert comparison["comparison"]["correction"] == "holm"


def test_continuous_scores_take_friedman_and_paired_tests(tmp_path: Path) -> None:
    """Absolute errors per sample (0 where right, 1 to 4 where wrong): Friedman over the 30
    sample blocks, equal to scipy's tie-corrected statistic on the same table."""
    prompts = ["terse", "careful", "g1"]
    experiment = prompt_sweep(
        prompts, score_metric="absolute_error", sweep={"direction": "minimize"}
    )
    comparison = run_sweep(experiment, run_id="s", artifacts=str(tmp_path)).comparison
    assert comparison["design"]["kind"] == "per_sample"
    (omnibus,) = comparison["comparison"]["omnibus"]
    errors = {p: [0 if i in RIGHT[p] else miss(i) for i in range(30)] for p in prompts}
    expected = stats.friedmanchisquare(*errors.values())
    assert omnibus["test"] == "friedman"
    assert omnibus["statistic"] == pytest.approx(expected.statistic)
    assert omnibus["p_value"] == pytest.approx(expected.pvalue)
    tests = {r["test"] for r in comparison["comparison"]["comparisons"]}
    assert tests <= {"wilcoxon", "paired_ttest"} and tests
    assert comparison["best"]["configuration"] == "prompt_careful"
    assert "critical_difference" in comparison


def test_a_failed_trial_leaves_its_samples_out(tmp_path: Path) -> None:
    """A trial that fails (its prompt is unknown to the backend: every answer errors, so the
    score stage refuses the variant) is listed; the other two are compared on their samples."""
    experiment = prompt_sweep(["terse", "careful", "nonexistent"], seeds=[1])
    comparison = run_sweep(experiment, run_id="s", artifacts=str(tmp_path)).comparison
    assert comparison["failed_trials"] == ["prompt_nonexistent__seed_1"]
    assert comparison["design"]["kind"] == "per_sample"
    assert mcnemar_row(comparison)["p_value"] == SIX_OF_THIRTY_P
