"""The race engine: rounds, drops at the expected round, budget and min_survivors, and an
interrupted race that resumes from ``race.json`` with the same decisions."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest

from crucible_dagster.racing.race import Race, RaceError, block_order
from crucible_dagster.racing.sequential import LAMBDAS
from crucible_dagster.racing.settings import RacingSettings
from crucible_dagster.racing.state import read_race

MEANS = {"best": 0.9, "good": 0.8, "poor": 0.3, "bad": 0.1}


def _table(seed: int, n: int = 400) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {c: (rng.random(n) < m).astype(float) for c, m in MEANS.items()}


class Scores:
    """An evaluation of synthetic scores that counts what it was asked for."""

    def __init__(self, table: Mapping[str, np.ndarray], fail_on_call: int | None = None) -> None:
        self.table, self.fail_on_call = table, fail_on_call
        self.calls: list[tuple[list[str], list[str]]] = []

    def __call__(self, configs: Sequence[str], blocks: Sequence[str]) -> dict[str, list[float]]:
        self.calls.append((list(configs), list(blocks)))
        if self.fail_on_call == len(self.calls):
            raise KeyboardInterrupt("interrupted mid-race")
        return {c: [float(self.table[c][int(b)]) for b in blocks] for c in configs}


def _blocks(n: int = 400) -> list[str]:
    return [str(i) for i in range(n)]


def test_constructed_race_drops_the_worst_at_the_expected_round() -> None:
    """best always 1, bad always 0: the bettor against bad wins (1 + lam) per block, so bad goes
    at the first look after mean((1 + lam)^t) >= K / alpha."""
    table = {"best": np.ones(100), "mid": np.full(100, 0.6), "bad": np.zeros(100)}
    settings = RacingSettings(first_look=4, round_size=2, block="seeds")
    result = Race(settings, list(table), _blocks(100)).run(Scores(table))
    t = next(
        t
        for t in range(1, 100)
        if sum((1 + lam) ** t for lam in LAMBDAS) / len(LAMBDAS) >= 3 / 0.05
    )
    expected_round = 1 if t <= 4 else 1 + -(-(t - 4) // 2)
    assert result.dropped_at()["bad"] == expected_round
    assert result.survivors == ["best"]
    assert result.record.finish_reason.startswith("1 survivor")


def test_race_finds_the_best_and_spends_less_than_the_grid() -> None:
    settings = RacingSettings(block="samples", first_look=20, round_size=20)
    scores = Scores(_table(7))
    result = Race(settings, list(MEANS), _blocks()).run(scores)
    assert "best" in result.survivors and "bad" not in result.survivors
    assert result.evaluations < result.grid_evaluations
    # only survivors are asked: a dropped configuration never appears in a later call
    dropped_at = result.dropped_at()
    for index, (configs, _) in enumerate(scores.calls, start=1):
        assert not [c for c in configs if dropped_at.get(c, index) < index]


def test_interrupted_race_resumes_with_the_same_decisions(tmp_path: Path) -> None:
    settings = RacingSettings(block="samples", first_look=10, round_size=10)
    table = _table(11)
    whole = Race(settings, list(MEANS), _blocks(), state_path=tmp_path / "a.json").run(
        Scores(table)
    )

    path = tmp_path / "b.json"
    with pytest.raises(KeyboardInterrupt):
        Race(settings, list(MEANS), _blocks(), state_path=path).run(Scores(table, fail_on_call=3))
    assert len(read_race(path).rounds) == 2  # the two finished rounds were recorded
    again = Scores(table)
    resumed = Race(settings, list(MEANS), _blocks(), state_path=path).run(again)
    assert again.calls[0][1] == whole.record.rounds[2].blocks  # continues at round 3
    assert resumed.record.model_dump() == whole.record.model_dump()


def test_budget_caps_the_evaluations() -> None:
    settings = RacingSettings(block="seeds", first_look=5, round_size=5, budget=50)
    result = Race(settings, list(MEANS), _blocks()).run(Scores(_table(2)))
    assert result.evaluations <= 50
    assert "budget of 50" in result.record.finish_reason


def test_min_survivors_keeps_the_strongest_cases_first() -> None:
    settings = RacingSettings(block="seeds", first_look=60, min_survivors=3)
    result = Race(settings, list(MEANS), _blocks()).run(Scores(_table(5)))
    assert len(result.survivors) == 3 and "bad" not in result.survivors
    round_one = result.record.rounds[0].look["evidence"]
    poor = next(e for e in round_one if e["config"] == "poor")
    assert poor["reason"] == "shown worse, kept to leave min_survivors"


def test_frace_races_too() -> None:
    settings = RacingSettings(method="frace", block="samples", first_look=10, round_size=10)
    result = Race(settings, list(MEANS), _blocks()).run(Scores(_table(9)))
    assert "best" in result.survivors and "bad" not in result.survivors
    assert result.record.rounds[-1].look["test"].startswith("frace")


def test_samples_are_raced_in_a_seeded_random_order_seeds_as_listed() -> None:
    blocks = _blocks(50)
    assert block_order(blocks, "seeds", 0) == blocks
    shuffled = block_order(blocks, "samples", 0)
    assert sorted(shuffled) == sorted(blocks) and shuffled != blocks
    assert shuffled == block_order(blocks, "samples", 0) != block_order(blocks, "samples", 1)


def test_race_record_is_json_with_every_decision(tmp_path: Path) -> None:
    path = tmp_path / "race.json"
    Race(RacingSettings(first_look=30), list(MEANS), _blocks(), state_path=path).run(
        Scores(_table(4))
    )
    data = json.loads(path.read_text())
    assert data["finished"] is True
    first = data["rounds"][0]
    assert first["look"]["test"].startswith("sequential")
    assert {e["config"] for e in first["look"]["evidence"]} == set(first["survivors"])
    assert all(0 <= e["p_adjusted"] <= 1 for e in first["look"]["evidence"])


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        ({"best": [0.5], "good": [1.5]}, "outside the declared range [0.0, 1.0]"),
        ({"best": [0.5], "good": [float("nan")]}, "not a finite number"),
        ({"best": [0.5], "good": [True]}, "not a finite number"),
        ({"best": [0.5]}, "returned 0 score(s) for 1 block(s)"),
    ],
)
def test_bad_scores_from_the_evaluation_are_named(
    scores: dict[str, list[float]], message: str
) -> None:
    race = Race(RacingSettings(first_look=1), ["best", "good"], ["s1", "s2"])
    with pytest.raises(RaceError) as info:
        race.play_round(["s1"], scores)
    assert message in str(info.value)
    assert "good" in str(info.value) or "best" in str(info.value)
