"""Sweeps standalone: trials, comparison, failures, progress, power planning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crucible_dagster import Experiment
from crucible_dagster.bench.blocking import variance_components
from crucible_dagster.cli import main
from crucible_dagster.sweeps.comparison import compare_trials
from crucible_dagster.sweeps.standalone import run_sweep

SWEEP = {
    "id": "sweep",
    "seed": 1,
    "parameters": {"level": [0.80, 0.82, 0.90]},
    "seeds": [1, 2, 3, 4, 5, 6],
    "sweep": {"metric": "fold_scores.model", "direction": "maximize"},
    "pipeline": [
        {
            "name": "score",
            "module": "tests.helpers:NoisyScore",
            "options": {"level": "${params.level}"},
        }
    ],
}


def sweep_experiment(**changes: Any) -> Experiment:
    return Experiment.model_validate({**SWEEP, **changes})


@pytest.mark.slow
def test_sweep_compares_configurations(tmp_path: Path) -> None:
    result = run_sweep(sweep_experiment(), run_id="s", artifacts=str(tmp_path))
    assert result.ok and len(result.outcomes) == 18
    comparison = result.comparison
    assert list(comparison["configurations"]) == ["level_0_8", "level_0_82", "level_0_9"]
    assert comparison["configurations"]["level_0_9"]["n"] == 30  # 6 seeds x 5 folds
    assert comparison["comparison"]["omnibus"][0]["test"] == "friedman"
    assert comparison["comparison"]["omnibus"][0]["p_value"] < 0.01
    assert (
        comparison["best"]["configuration"] == "level_0_9"
        and comparison["best"]["runner_up"] == "level_0_82"
    )
    assert comparison["best"]["significantly_better"]
    assert comparison["variance"]["share_configurations"] > 0.9
    assert comparison["critical_difference"]["mean_ranks"]["level_0_9"] == 1.0
    base = tmp_path / "sweep" / "s"
    for name in (
        "sweep.md",
        "sweep.json",
        "sweep.csv",
        "sweep.html",
        "sweep_critical_difference.svg",
        "manifest.json",
    ):
        assert (base / name).exists(), name
    assert (base / "trials" / "level_0_9__seed_3" / "manifest.json").exists()
    assert "<script" not in (base / "sweep.html").read_text().lower()


@pytest.mark.slow
def test_failed_trial_is_recorded_and_the_sweep_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRUCIBLE_TEST_WORKDIR", str(tmp_path))
    (tmp_path / "level_0.82.flag").touch()
    experiment = sweep_experiment(
        pipeline=[
            {
                "name": "score",
                "module": "tests.helpers:NoisyScore",
                "options": {"level": "${params.level}", "fail_flag": "level_${params.level}.flag"},
            }
        ]
    )
    result = run_sweep(experiment, run_id="s", artifacts=str(tmp_path))
    assert not result.ok
    assert sorted(result.comparison["failed_trials"]) == [
        f"level_0_82__seed_{s}" for s in range(1, 7)
    ]
    assert list(result.comparison["configurations"]) == ["level_0_8", "level_0_9"]
    # each trial's end is a telemetry event of the sweep, the failed ones too (issue 27)
    from crucible_dagster.telemetry import read_events

    events, problems = read_events(tmp_path / "sweep" / "s" / "telemetry.jsonl")
    ended = [e for e in events if e.event == "trial_ended"]
    assert problems == [] and len(ended) == 18
    failed = sorted(str(e.trial) for e in ended if not e.success)
    assert failed == [f"level_0_82__seed_{s}" for s in range(1, 7)]
    assert all(e.value is not None for e in ended if e.success)
    assert all(e.status == "failed" and e.value is None for e in ended if not e.success)


def test_variance_components_add_up() -> None:
    import numpy as np

    matrix = np.array([[1.0, 2.0, 3.0], [2.0, 3.0, 4.5]])
    parts = variance_components(matrix)
    assert parts["share_configurations"] + parts["share_seeds"] + parts[
        "share_residual"
    ] == pytest.approx(1.0)


def test_no_sweep_metric_means_no_comparison(tmp_path: Path) -> None:
    result = run_sweep(sweep_experiment(sweep=None), run_id="s", artifacts=str(tmp_path))
    assert "no sweep.metric" in result.comparison["reason"]
    assert compare_trials(sweep_experiment(), [])["reason"].startswith("fewer than two")


@pytest.mark.slow
def test_crucible_run_sweep_with_progress(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRUCIBLE_ARTIFACTS_DIR", str(tmp_path))
    path = tmp_path / "sweep.yaml"
    path.write_text(json.dumps(SWEEP))
    path = path.rename(tmp_path / "sweep.json")
    assert main(["run", str(path), "--run-id", "cli"]) == 0
    err = capsys.readouterr().err
    assert "[##############################] 18/18 level_0_9__seed_6 ok" in err
    assert "level_0_9 is the best configuration" in err
    assert main(["run", str(path), "--run-id", "cli2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["best"]["configuration"] == "level_0_9"


@pytest.mark.slow
def test_crucible_plan_from_a_pilot_sweep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRUCIBLE_ARTIFACTS_DIR", str(tmp_path))
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(SWEEP))
    assert main(["run", str(path), "--run-id", "pilot", "--json"]) == 0
    capsys.readouterr()
    assert main(["plan", str(path), "--difference", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "pilot run pilot" in out and "seeds per configuration" in out
    assert main(["plan", str(path), "--effect-size", "0.5"]) == 0
    assert "n = 34" in capsys.readouterr().out  # paired design: 34 seeds for d_z = 0.5 at 80% power
