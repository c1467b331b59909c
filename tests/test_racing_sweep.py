"""``sweep.strategy: racing`` on the one trial loop: dropped configurations' remaining seeds
never run, the race is in the sweep's record, and a re-execution reaches the same decisions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from crucible_dagster import Experiment
from crucible_dagster.runtime.driver import Run
from crucible_dagster.sweeps.grid import expand_grid
from crucible_dagster.sweeps.raced import race_trials
from crucible_dagster.sweeps.standalone import run_sweep, trial_step

RACED: dict[str, Any] = {
    "id": "raced",
    "seed": 1,
    "parameters": {"level": [0.05, 0.5, 0.95]},
    "seeds": list(range(1, 21)),
    "sweep": {
        "metric": "fold_scores.model",
        "strategy": "racing",
        "racing": {"first_look": 3, "round_size": 2},
    },
    "pipeline": [
        {
            "name": "score",
            "module": "tests.helpers:NoisyScore",
            "options": {"level": "${params.level}", "fail_flag": "seed_${params.seed}.flag"},
        }
    ],
}


def _experiment(**sweep: Any) -> Experiment:
    return Experiment.model_validate({**RACED, "sweep": {**RACED["sweep"], **sweep}})


@pytest.mark.slow
def test_raced_sweep_runs_only_survivors(tmp_path: Path) -> None:
    result = run_sweep(_experiment(), run_id="r", artifacts=str(tmp_path))
    race = result.comparison["race"]
    assert race["survivors"] == ["level_0_95"]
    assert race["evaluations"] == len(result.outcomes) < 60
    assert race["share_of_grid"] == pytest.approx(len(result.outcomes) / 60)
    dropped = {c: r["index"] for r in race["rounds"] for c in r["dropped"]}
    assert dropped["level_0_05"] <= dropped["level_0_5"]
    ran = {o.trial.trial_id for o in result.outcomes}
    assert "level_0_05__seed_20" not in ran and "level_0_95__seed_1" in ran
    base = tmp_path / "raced" / "r"
    record = json.loads((base / "race.json").read_text())
    assert record["finished"] and record["survivors"] == ["level_0_95"]
    manifest = json.loads((base / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    assert manifest["stages"][trial_step("level_0_05__seed_20")]["status"] == "skipped"
    assert manifest["metrics"]["sweep"]["race"]["method"] == "sequential"
    report = (base / "sweep.md").read_text()
    assert "## Race" in report and "dropped \\(p adj" in report and "saved" in report
    html = (base / "sweep.html").read_text()
    assert "<h2>Race</h2>" in html and "dropped in round" in html
    # each round as a telemetry event of the sweep (issue 27)
    from crucible_dagster.telemetry import read_events

    events, problems = read_events(base / "telemetry.jsonl")
    rounds = [(e.round, e.trials, e.count) for e in events if e.event == "race_round"]
    assert problems == [] and rounds == [
        (r["index"], len(r["survivors"]), len(r["dropped"])) for r in race["rounds"]
    ]


@pytest.mark.slow
def test_a_failed_round_then_a_re_execution_reaches_the_same_decisions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRUCIBLE_TEST_WORKDIR", str(tmp_path))
    whole = run_sweep(_experiment(), run_id="whole", artifacts=str(tmp_path))

    (tmp_path / "seed_6.flag").touch()  # the third round (seeds 6-7) fails
    first = run_sweep(_experiment(), run_id="first", artifacts=str(tmp_path))
    assert not first.ok
    first_dir = tmp_path / "raced" / "first"
    assert len(json.loads((first_dir / "race.json").read_text())["rounds"]) == 2

    (tmp_path / "seed_6.flag").unlink()
    experiment = _experiment()
    trials = expand_grid(experiment)
    again = Run.at(str(tmp_path), experiment, run_id="again", steps=[], trials=[])
    raced = race_trials(experiment, trials, again, earlier=[first_dir])
    assert raced.race is not None
    expected = json.loads((tmp_path / "raced" / "whole" / "race.json").read_text())
    got = json.loads((tmp_path / "raced" / "again" / "race.json").read_text())
    assert got["rounds"] == expected["rounds"] and got["survivors"] == expected["survivors"]
    # the two finished rounds come from the first run's race.json (seeds 1-5 not asked again);
    # the failed round's completed trials (seed 7) are read back from its folders, not rerun
    assert min(o.trial.seed or 0 for o in raced.outcomes) == 6
    reread = {o.trial.seed for o in raced.outcomes if o.run_dir and "/first/" in o.run_dir}
    assert reread == {7}
    assert whole.comparison["race"]["survivors"] == raced.race.survivors


@pytest.mark.parametrize(
    ("sweep", "data", "message"),
    [
        ({"strategy": "grid"}, {}, "sweep.strategy is 'grid'"),
        (
            {"racing": {"block": "samples"}},
            {},
            "block 'samples' needs a dataset",
        ),
        ({"racing": {"block": "folds"}}, {}, "needs a dataset"),
        ({"racing": {"budget": {"cost": 1.0}}}, {}, "set the experiment's budget"),
        ({"racing": {"budget": {}}}, {}, "set evaluations or cost"),
        ({"racing": {"alpha": 1.0}}, {}, "alpha"),
        ({"racing": {"budget": 0}}, {}, "budget"),
        ({}, {"seeds": [1]}, "at least 2 seeds"),
        ({}, {"parameters": {}}, "parameters"),
        ({"strategy": "optuna"}, {}, "strategy"),
        ({"early_stopping": True}, {}, "early_stopping"),
    ],
)
def test_racing_settings_are_checked_with_the_experiment(
    sweep: dict[str, Any], data: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as info:
        Experiment.model_validate({**RACED, **data, "sweep": {**RACED["sweep"], **sweep}})
    assert message in str(info.value)
