"""Every case of tests/data/bench_reference/cases.json through the public bench API, every expected key.

The cases (published values from R, NIST and textbooks, with their sources) are copied into
the repository, so a fresh clone checks all of them; none is ever skipped for a missing file.

Each (case, key) is its own test. A key the API cannot produce would be listed in
NOT_PRODUCED with its reason and reported as a skip; today that list is empty.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from crucible_dagster import bench
from tests.conftest import ROOT

CASES_PATH = ROOT / "tests" / "data" / "bench_reference" / "cases.json"
#: cases added here beyond the shared file (its copy must stay identical to shared/)
EXTRA_PATH = ROOT / "tests" / "data" / "bench_reference" / "cases_extra.json"
SHARED_CASES: list[dict[str, Any]] = json.loads(CASES_PATH.read_text())
CASES: list[dict[str, Any]] = SHARED_CASES + json.loads(EXTRA_PATH.read_text())
NOT_PRODUCED: dict[tuple[str, str], str] = {}
PREFIXES = {"bh": "benjamini_hochberg"}


_PRODUCED: dict[str, dict[str, Any] | bench.BenchDataError] = {}


def produce(case: dict[str, Any]) -> dict[str, Any]:
    """One case's values, computed once per case however many keys are checked."""
    if case["id"] not in _PRODUCED:
        try:
            _PRODUCED[case["id"]] = compute(case)
        except bench.BenchDataError as exc:
            _PRODUCED[case["id"]] = exc
    produced = _PRODUCED[case["id"]]
    if isinstance(produced, bench.BenchDataError):
        raise produced
    return produced


def compute(case: dict[str, Any]) -> dict[str, Any]:
    """Run one case through the public API and return every value it names."""
    test, inputs, options = case["test"], case["inputs"], case.get("options") or {}
    if test == "bootstrap_ci":
        return bench.bootstrap(
            inputs["x"],
            options["statistic"],
            confidence_level=options["confidence_level"],
            n_resamples=options["n_resamples"],
            methods=options["methods"],
            seed=20261122,
        ).to_dict()
    if test == "cliffs_delta":
        delta, (low, high) = bench.cliffs_delta(
            inputs["x"], inputs["y"], confidence_level=options.get("confidence_level", 0.95)
        )
        return {"cliffs_delta": delta, "ci_low": low, "ci_high": high}
    if test == "corrected_resampled_ttest":
        return bench.corrected_resampled_ttest(
            inputs["differences"],
            n_train=options["n_train"],
            n_test=options["n_test"],
            alternative=options["alternative"],
        ).to_dict()
    if test == "effect_size_two_sample":
        return bench.two_sample_effect_sizes(
            inputs["x"], inputs["y"], glass_reference=options.get("glass_reference_group", "y")
        )
    if test == "epsilon_squared":
        result = bench.kruskal_wallis(inputs["groups"])
        return {"epsilon_squared": result.effect_size, "kruskal_statistic": result.statistic}
    if test == "f_oneway":
        return bench.anova(inputs["groups"]).to_dict()
    if test == "welch_anova":
        return bench.welch_anova(inputs["groups"]).to_dict()
    if test == "friedman":
        return bench.friedman(
            inputs["blocks_by_treatments"], inputs.get("treatment_names")
        ).to_dict()
    if test == "kruskal":
        return bench.kruskal_wallis(inputs["groups"]).to_dict()
    if test == "levene":
        return bench.levene(inputs["groups"], center=options.get("center", "median")).to_dict()
    if test == "mannwhitneyu":
        return bench.mann_whitney(
            inputs["x"],
            inputs["y"],
            alternative=options.get("alternative", "two-sided"),
            method=options.get("method", "auto"),
            continuity_correction=options.get("continuity_correction", True),
        ).to_dict()
    if test == "mcnemar_both":
        return bench.mcnemar(inputs["table"]).to_dict()
    if test == "rank_biserial":
        paired = options["paired"]
        test_of = bench.wilcoxon if paired else bench.mann_whitney
        values = test_of(inputs["x"], inputs["y"]).to_dict()
        name = "matched_pairs_rank_biserial" if paired else "rank_biserial"
        return {
            "r": values[name],
            "ci_low": values[f"{name}_ci_low"],
            "ci_high": values[f"{name}_ci_high"],
        }
    if test == "cles_normal":
        return bench.cles_normal(bench.cohens_d(inputs["x"], inputs["y"]).estimate).to_dict()
    if test == "power_ttest_strict":
        power = bench.power_ttest(
            options["effect_size"], options["n"], options["alpha"], strict=options["strict"]
        )
        return {"power": power}
    if test == "mcnemar":
        return bench.mcnemar(
            inputs["b"], inputs["c"], correction=options["correction"], exact=options["exact"]
        ).to_dict()
    if test == "multiple_comparison":
        out: dict[str, Any] = {}
        for method in options["methods"]:
            adjusted = bench.adjust_p_values(inputs["p_values"], method)
            short = next((k for k, v in PREFIXES.items() if v == method), method)
            for name in {method, short}:
                out[f"{name}_adjusted"] = adjusted
                out[f"{name}_n_rejected"] = sum(p < options["alpha"] for p in adjusted)
        return out
    if test == "paired_ttest_5x2cv":
        return bench.cv_5x2(inputs["scores_a"], inputs["scores_b"]).to_dict()
    if test == "power_ttest":
        d = options["delta"] / options["sd"]
        return {
            "power_n20": bench.power_ttest(d, 20, options["alpha"]),
            "n_power90_two_sided": bench.n_for_power(d, 0.9, options["alpha"]).exact,
            "n_power90_one_sided": bench.n_for_power(
                d, 0.9, options["alpha"], alternative="greater"
            ).exact,
        }
    if test == "power_ttest_n":
        return {
            f"n_per_group_d{str(es).replace('.', '')}": bench.n_for_power(
                es, options["power"], options["alpha"], options["alternative"]
            ).exact
            for es in options["effect_sizes"]
        }
    if test == "shapiro":
        return bench.shapiro(inputs["x"]).to_dict()
    if test == "ttest_ind":
        return bench.ttest(
            inputs["x"],
            inputs["y"],
            equal_var=options.get("equal_var", False),
            alternative=options.get("alternative", "two-sided"),
            confidence_level=options.get("confidence_level", 0.95),
        ).to_dict()
    if test == "ttest_rel":
        return bench.paired_ttest(
            inputs["x"], inputs["y"], alternative=options.get("alternative", "two-sided")
        ).to_dict()
    if test == "wilcoxon":
        x, y = (inputs["d"], None) if "d" in inputs else (inputs["x"], inputs["y"])
        return bench.wilcoxon(
            x,
            y,
            zero_method=options.get("zero_method", "wilcox"),
            alternative=options.get("alternative", "two-sided"),
            method=options.get("method", "auto"),
            continuity_correction=options.get("continuity_correction", True),
        ).to_dict()
    raise AssertionError(f"no mapping for test {test!r}")


PARAMS = [(case, key) for case in CASES for key in case["expected"]]


def test_reference_file_is_complete() -> None:
    assert len(SHARED_CASES) >= 51 and len(PARAMS) >= 210
    assert len({case["id"] for case in CASES}) == len(CASES), "case ids are unique"
    assert all(case.get("source") for case in CASES), "every case names its published source"
    shared = ROOT.parent / "shared" / "bench_reference" / "cases.json"
    if shared.exists():  # the copy must not drift from the team's shared reference
        assert json.loads(shared.read_text()) == SHARED_CASES


def _close(got: Any, expected: Any, tolerance: dict[str, float] | None) -> bool:
    if isinstance(expected, list):
        return (
            isinstance(got, list | tuple)
            and len(got) == len(expected)
            and all(_close(g, e, tolerance) for g, e in zip(got, expected, strict=True))
        )
    if got is None or isinstance(got, str):
        return False
    got = float(got)
    if tolerance is None:
        return got == expected
    if "abs" in tolerance:
        return abs(got - expected) <= tolerance["abs"]
    return abs(got - expected) <= tolerance["rel"] * abs(expected)


@pytest.mark.parametrize(
    ("case", "key"),
    # the bootstrap cases resample 10^4 times or more (about 2 s): make test runs them, not
    # test-fast
    [
        pytest.param(c, k, marks=[pytest.mark.slow] if c["id"].startswith("bootstrap") else [])
        for c, k in PARAMS
    ],
    ids=[f"{c['id']}.{k}" for c, k in PARAMS],
)
def test_reference_value(case: dict[str, Any], key: str) -> None:
    if (case["id"], key) in NOT_PRODUCED:
        pytest.skip(NOT_PRODUCED[(case["id"], key)])
    expected = case["expected"][key]
    undefined = key in (case.get("undefined") or [])
    try:
        produced = produce(case)
    except bench.BenchDataError as exc:
        assert undefined, f"unexpected error: {exc}"
        return
    assert key in produced, f"{key} not produced; have {sorted(produced)}"
    got = produced[key]
    if undefined or expected is None:
        assert got is None or (isinstance(got, float) and math.isnan(got)), (
            f"{key}: expected NaN (undefined), got {got!r}"
        )
        assert produced.get("reason"), "an undefined result must say why"
        return
    tolerance = (case.get("tolerance") or {}).get(key)
    assert _close(got, expected, tolerance), (
        f"{case['id']}.{key}: got {got!r}, expected {expected!r} within {tolerance}"
    )
