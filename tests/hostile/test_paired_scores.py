"""The per-sample scores a trial carries are a record read back (JSON between Dagster ops and
Celery steps, or a trial's predictions.parquet): partly overlapping samples, NaN scores, a
failed trial, ids that differ in type, a sample twice, malformed and damaged records, and the
``sweep.per_sample`` setting. Each case says which design the comparison used and why, with
the counts of what it left out, and never pairs by a guess."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from crucible_dagster import Experiment
from crucible_dagster.experiment.loading import ExperimentError, load_experiment
from crucible_dagster.sweeps.comparison import compare_trials
from crucible_dagster.sweeps.grid import Trial
from crucible_dagster.sweeps.per_sample import read_trial_scores, trial_scores
from crucible_dagster.sweeps.running import TrialOutcome

PROMPTS = ["a", "b"]


def experiment(**sweep: Any) -> Experiment:
    return Experiment.model_validate(
        {
            "id": "paired",
            "parameters": {"prompt": PROMPTS},
            "seeds": [1, 2],
            "sweep": {"metric": "score.variants.model.mean", **sweep},
            "pipeline": [{"name": "noop", "module": "tests.helpers:StageOne"}],
        }
    )


def scores(ids: list[Any], values: list[Any], variant: str = "model") -> dict[str, Any]:
    return {
        "column": "score",
        "variant": [variant] * len(ids),
        "sample_id": ids,
        "value": values,
    }


def outcome(
    prompt: str, seed: int, per_sample: Any, status: str = "completed", run_dir: str | None = None
) -> TrialOutcome:
    values = per_sample.get("value") if isinstance(per_sample, dict) else None
    numbers = [v for v in values or [] if isinstance(v, int | float) and math.isfinite(v)]
    mean = sum(numbers) / len(numbers) if numbers else 0.5
    trial = Trial(f"prompt_{prompt}__seed_{seed}", {"prompt": prompt}, seed)
    metrics = {"score": {"variants": {"model": {"mean": mean + 0.001 * seed}}}}
    return TrialOutcome(trial, status, metrics, run_dir, None, None, per_sample)


def six_of_thirty(ids: list[Any] | None = None) -> dict[str, list[float]]:
    return {"a": [1.0] * 14 + [0.0] * 16, "b": [1.0] * 20 + [0.0] * 10}


def both_seeds(a: dict[str, Any], b: dict[str, Any]) -> list[TrialOutcome]:
    """Each prompt's scores under both seeds, the JSON round trip included."""
    made = [outcome(p, s, data) for s in (1, 2) for p, data in (("a", a), ("b", b))]
    return [TrialOutcome.from_dict(json.loads(json.dumps(o.to_dict()))) for o in made]


def ids(n: int, start: int = 0) -> list[str]:
    return [f"q{i}" for i in range(start, start + n)]


def test_the_json_round_trip_keeps_the_pairing() -> None:
    values = six_of_thirty()
    result = compare_trials(
        experiment(), both_seeds(scores(ids(30), values["a"]), scores(ids(30), values["b"]))
    )
    assert result["design"]["kind"] == "per_sample" and result["design"]["blocks"] == 60
    (row,) = [r for r in result["comparison"]["comparisons"] if r["test"] == "mcnemar"]
    assert (row["b"], row["c"]) == (0, 12)


def test_partly_overlapping_samples_are_compared_on_the_shared_ones() -> None:
    a = scores(ids(30), [1.0] * 30)
    b = scores(ids(30, start=10), [0.0] * 30)  # q10..q39: 20 shared with a
    result = compare_trials(experiment(), both_seeds(a, b))
    design = result["design"]
    assert design["kind"] == "per_sample" and design["blocks"] == 40  # 20 samples x 2 seeds
    assert any("40 of 80 (seed, variant, sample) blocks" in n for n in design["left_out"])
    assert design["means"] == {"prompt_a": 1.0, "prompt_b": 0.0}


def test_no_shared_sample_falls_back_to_per_seed_means_with_the_reason() -> None:
    result = compare_trials(
        experiment(), both_seeds(scores(ids(5), [1.0] * 5), scores(ids(5, 50), [0.0] * 5))
    )
    assert result["design"]["kind"] == "per_seed_means"
    assert "no sample has a 'score' score under every configuration" in result["design"]["why"]
    assert result["blocks"] == "2 seeds (trial means over folds)"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), None])
def test_nan_and_missing_scores_leave_their_block_out(bad: Any) -> None:
    a = scores(ids(4), [1.0, bad, 1.0, 0.0])
    b = scores(ids(4), [0.0, 1.0, 1.0, 0.0])
    result = compare_trials(experiment(), both_seeds(a, b))
    design = result["design"]
    assert design["blocks"] == 6  # q1 left out under both seeds
    assert any("2 blocks have a missing, NaN or infinite 'score'" in n for n in design["left_out"])
    json.dumps(result, allow_nan=False)  # strict JSON: no NaN anywhere


def test_a_failed_trial_leaves_its_seed_out_and_is_listed() -> None:
    values = six_of_thirty()
    made = [
        outcome("a", 1, scores(ids(30), values["a"])),
        outcome("b", 1, scores(ids(30), values["b"])),
        outcome("a", 2, None, status="failed"),
        outcome("b", 2, scores(ids(30), values["b"])),
    ]
    result = compare_trials(experiment(), made)
    assert result["failed_trials"] == ["prompt_a__seed_2"]
    assert result["design"]["blocks"] == 30
    assert any("30 of 60" in n for n in result["design"]["left_out"])


def test_ids_that_differ_in_type_are_never_paired_by_their_text() -> None:
    a = scores([1, 2, 3], [1.0, 1.0, 0.0])
    b = scores(["1", "2", "3"], [0.0, 1.0, 0.0])
    result = compare_trials(experiment(), both_seeds(a, b))
    why = result["design"]["why"]
    assert result["design"]["kind"] == "per_seed_means"
    assert "sample id '1' is int in trial prompt_a__seed_1 and str in trial prompt_b__seed_1" in why


def test_integer_ids_pair_when_every_trial_uses_them() -> None:
    result = compare_trials(
        experiment(), both_seeds(scores([1, 2, 3], [1.0] * 3), scores([1, 2, 3], [0.0] * 3))
    )
    assert result["design"]["kind"] == "per_sample" and result["design"]["blocks"] == 6


def test_a_sample_twice_in_one_trial_is_ambiguous() -> None:
    a = scores(["q1", "q1", "q2"], [1.0, 0.0, 1.0])
    b = scores(["q1", "q2", "q3"], [1.0, 0.0, 1.0])
    result = compare_trials(experiment(), both_seeds(a, b))
    assert result["design"]["kind"] == "per_seed_means"
    assert "sample 'q1' of variant 'model' appears more than once" in result["design"]["why"]


@pytest.mark.slow
def test_variants_are_blocks_of_their_own() -> None:
    a = scores(ids(3), [1.0, 1.0, 0.0])
    a["variant"] = ["m1", "m1", "m2"]
    b = scores(ids(3), [1.0, 0.0, 0.0])
    b["variant"] = ["m1", "m1", "m2"]
    result = compare_trials(experiment(), both_seeds(a, b))
    assert result["design"]["blocks"] == 6


@pytest.mark.parametrize(
    ("record", "why"),
    [
        ("not a mapping", "expected a mapping of per-sample scores, found str"),
        (
            {"column": "score", "variant": ["m"], "sample_id": ["q1", "q2"], "value": [1.0]},
            "expected lists variant, sample_id and value of one length",
        ),
        (
            {"column": "other", "variant": [], "sample_id": [], "value": []},
            "scores of column 'other', expected 'score'",
        ),
        (scores(["q1"], ["1.0"]), "a score must be a number, found str"),
        (scores([1.5], [1.0]), "a sample id must be text or an integer, found float"),
        (scores([True], [1.0]), "a sample id must be text or an integer, found bool"),
        (scores([{"a": 1}], [1.0]), "a sample id must be text or an integer, found dict"),
        ({"column": "score", "problem": "x" * 5000}, "x" * 300),
    ],
)
def test_a_malformed_record_leaves_that_trial_out_with_the_reason(record: Any, why: str) -> None:
    good = scores(ids(3), [1.0, 0.0, 1.0])
    made = [outcome("a", s, good) for s in (1, 2)]
    made += [outcome("b", 1, record), outcome("b", 2, good)]
    result = compare_trials(experiment(), made)
    notes = result["design"]["left_out"]
    assert any(n.startswith("trial prompt_b__seed_1: ") and why in n for n in notes), notes
    assert all(len(n) < 500 for n in notes)
    assert result["design"]["blocks"] == 3  # seed 2 still pairs


def test_a_trial_read_back_from_its_run_directory(tmp_path: Path) -> None:
    """No scores carried (a partition's materialization, an earlier run's trial): read from
    its predictions.parquet; a damaged or missing file is that trial's problem."""
    frame = pd.DataFrame({"variant": ["model"] * 3, "sample_id": ids(3), "score": [1, 0, 1]})
    good = tmp_path / "good"
    good.mkdir()
    frame.to_parquet(good / "predictions.parquet")
    assert read_trial_scores(good, "score")["value"] == [1.0, 0.0, 1.0]
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "predictions.parquet").write_bytes(b"PAR1 truncated")
    empty = tmp_path / "empty"
    empty.mkdir()
    made = [
        outcome("a", 1, None, run_dir=str(good)),
        outcome("b", 1, None, run_dir=str(good)),
        outcome("a", 2, None, run_dir=str(damaged)),
        outcome("b", 2, None, run_dir=str(empty)),
    ]
    result = compare_trials(experiment(), made)
    notes = " ".join(result["design"]["left_out"])
    assert "predictions.parquet: unreadable (" in notes
    assert "predictions.parquet: no per-sample table" in notes
    assert result["design"]["blocks"] == 3


def test_extraction_names_what_is_missing_or_wrong() -> None:
    frame = pd.DataFrame({"variant": ["m"], "sample_id": ["q1"], "prediction": ["x"]})
    assert (
        "no column 'score' (variant, sample_id, prediction)"
        in trial_scores(frame, "score")["problem"]
    )
    assert "no per-sample table" in trial_scores(None, "score")["problem"]
    text = pd.DataFrame({"variant": ["m"], "sample_id": ["q1"], "score": ["high"]})
    assert (
        "row 0: a score must be a number, found str 'high'"
        in trial_scores(text, "score")["problem"]
    )
    flags = pd.DataFrame({"variant": ["m", "m"], "sample_id": [1, 2], "score": [True, False]})
    assert trial_scores(flags, "score")["value"] == [1.0, 0.0]


@pytest.mark.parametrize(
    ("value", "found"), [("true", "True"), ("''", "''"), ("3", "3"), ("[score]", "['score']")]
)
def test_the_per_sample_setting_refuses_what_is_not_a_column(
    tmp_path: Path, value: str, found: str
) -> None:
    path = tmp_path / "e.yaml"
    path.write_text(
        "id: e\nparameters: {p: [1, 2]}\n"
        f"sweep: {{metric: score.variants.model.mean, per_sample: {value}}}\n"
        "pipeline:\n  - {name: noop, module: 'tests.helpers:StageOne'}\n",
        encoding="utf-8",
    )
    with pytest.raises(ExperimentError) as caught:
        load_experiment(path)
    (line,) = str(caught.value).splitlines()
    assert line == (
        f"{path}:3: sweep.per_sample: expected the name of a per-sample table column (such as "
        f"score or score_token_f1) or false, got {found}"
    )


def test_the_per_sample_setting_names_a_column_or_turns_pairing_off() -> None:
    from crucible_dagster.sweeps.per_sample import score_column

    assert score_column(experiment().sweep) == "score"
    assert score_column(experiment(per_sample="score_token_f1").sweep) == "score_token_f1"
    assert score_column(experiment(per_sample=False).sweep) is None
    assert score_column(experiment(metric="fold_scores.model").sweep) is None
