"""``sweep.strategy: optuna``: a study on a known function (``tests.helpers:Quadratic``, optimum
at x = 0.3, y = -0.2) finds the optimum region through the one trial loop; the racing pruner
prunes trials shown worse than the best so far (never the best); a study resumed from an
interrupted run continues with its finished trials read back, not rerun."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from crucible_dagster import Experiment
from crucible_dagster.runtime.driver import Run
from crucible_dagster.sweeps.standalone import run_sweep
from crucible_dagster.sweeps.study_run import study_trials

pytest.importorskip("optuna")

QUADRATIC: dict[str, Any] = {
    "id": "studied",
    "seed": 7,
    "pipeline": [
        {
            "name": "quadratic",
            "module": "tests.helpers:Quadratic",
            "options": {"x": "${params.x}", "y": "${params.y}", "noise": 0.002},
        }
    ],
    "sweep": {
        "metric": "score",
        "strategy": "optuna",
        "optuna": {
            "n_trials": 30,
            "sampler": "tpe",
            "search_space": [
                {"name": "x", "kind": "float", "low": -5, "high": 5},
                {"name": "y", "kind": "float", "low": -5, "high": 5},
            ],
        },
    },
}

#: far points score 0 (clipped), near ones about 1: the racing pruner has a clear case
RACED: dict[str, Any] = {
    **QUADRATIC,
    "seeds": list(range(1, 17)),
    "seed": 2,
    "pipeline": [
        {
            "name": "quadratic",
            "module": "tests.helpers:Quadratic",
            "options": {
                "x": "${params.x}",
                "y": -0.2,
                "noise": 0.01,
                "interrupt_flag": "x_${params.x}_seed_${params.seed}.flag",
            },
        }
    ],
    "sweep": {
        "metric": "score",
        "strategy": "optuna",
        "racing": {"first_look": 4, "round_size": 4, "alpha": 0.2},
        "optuna": {
            "n_trials": 6,
            "sampler": "grid",
            "pruner": "racing",
            "search_space": [
                {"name": "x", "kind": "categorical", "choices": [0.3, 9.0, -9.0, 1.0, 8.5, -8.5]}
            ],
        },
    },
}


def _trials(result_dir: Path) -> list[dict[str, Any]]:
    manifest = json.loads((result_dir / "manifest.json").read_text())
    return manifest["metrics"]["sweep"]["study"]["trials"]


@pytest.mark.slow
def test_a_study_finds_the_quadratics_optimum(tmp_path: Path) -> None:
    experiment = Experiment.model_validate(QUADRATIC)
    result = run_sweep(experiment, run_id="s", artifacts=str(tmp_path))
    study = result.comparison["study"]
    best = study["best"]
    # 30 TPE trials over a 10 x 10 square land within 0.75 of the optimum (0.3, -0.2)
    assert abs(best["params"]["x"] - 0.3) < 0.75 and abs(best["params"]["y"] + 0.2) < 0.75
    assert best["value"] > 0.98
    assert study["complete"] == 30 and len(study["trials"]) == 30
    # the comparison is the grid's, over the study's trials, and agrees on the best
    assert result.comparison["best"]["configuration"] == best["trial"]
    assert result.comparison["best"]["params"] == best["params"]
    base = tmp_path / "studied" / "s"
    assert (base / "optuna.db").is_file()
    manifest = json.loads((base / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    assert manifest["stages"][f"trial:{best['trial']}"]["status"] == "completed"
    report = (base / "sweep.md").read_text()
    assert "## Study" in report and "Best trial" in report
    assert best["trial"].replace("_", "\\_") in report
    assert "<h2>Study</h2>" in (base / "sweep.html").read_text()
    # each trial ran the pipeline in its own run directory with the sampled parameters
    trial_dir = base / "trials" / best["trial"]
    params = json.loads((trial_dir / "manifest.json").read_text())["parameters"]
    assert params["x"] == best["params"]["x"]


@pytest.mark.slow
def test_the_racing_pruner_prunes_trials_shown_worse_than_the_best_so_far(
    tmp_path: Path,
) -> None:
    result = run_sweep(Experiment.model_validate(RACED), run_id="r", artifacts=str(tmp_path))
    study = result.comparison["study"]
    rows = study["trials"]
    pruned = [r for r in rows if r["state"] == "pruned"]
    assert pruned, rows
    near = [r for r in rows if abs(r["params"]["x"] - 0.3) < 1]
    assert near and all(r["state"] == "complete" for r in near)  # the best is never pruned
    for row in pruned:  # far points, shown worse at a look with adjusted p <= alpha
        assert abs(row["params"]["x"]) > 8 and row["p_adjusted"] <= 0.2
        assert row["seeds_run"] in (4, 8, 12)
    first_near = min(r["slot"] for r in near)
    assert all(r["state"] == "pruned" for r in rows if r["slot"] > first_near and r not in near)
    assert study["evaluations"] < study["full_evaluations"] == 6 * 16
    assert study["best"]["params"] == {"x": 0.3}
    # the comparison is made on the complete trials only (every seed)
    assert set(result.comparison["configurations"]) == {
        r["trial"] for r in rows if r["state"] == "complete"
    }


@pytest.mark.slow
def test_an_interrupted_study_resumes_and_reaches_the_same_trials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRUCIBLE_TEST_WORKDIR", str(tmp_path))
    experiment = Experiment.model_validate(RACED)
    whole = run_sweep(experiment, run_id="whole", artifacts=str(tmp_path / "a"))
    expected = whole.comparison["study"]["trials"]

    # the last slot (x = 0.3 with this seed) is killed at its sixth seed: its trial stays
    # RUNNING in the study, seeds 1-5 of it completed
    assert expected[-1]["params"] == {"x": 0.3}
    (tmp_path / "x_0.3_seed_6.flag").touch()
    with pytest.raises(KeyboardInterrupt):
        run_sweep(experiment, run_id="first", artifacts=str(tmp_path / "b"))
    first_dir = tmp_path / "b" / "studied" / "first"
    assert json.loads((first_dir / "manifest.json").read_text())["status"] == "interrupted"
    with sqlite3.connect(first_dir / "optuna.db") as db:
        states = [s for (s,) in db.execute("select state from trials order by number")]
    assert states[-1] == "RUNNING" and len(states) == 6

    (tmp_path / "x_0.3_seed_6.flag").unlink()
    again = Run.at(str(tmp_path / "b"), experiment, run_id="again", steps=[], trials=[])
    studied = study_trials(experiment, again, earlier=[first_dir])
    assert studied.name == "crucible.studied.first"  # the same study, continued
    got = [s.row() for s in studied.slots]
    keys = ("slot", "number", "trial", "state", "value", "seeds_run", "params", "p_adjusted")
    assert [{k: r[k] for k in keys} for r in got] == [{k: r[k] for k in keys} for r in expected]
    # only the killed trial's remaining seeds ran again; the rest was read back
    ran_again = sorted(p.name for p in (tmp_path / "b" / "studied" / "again" / "trials").iterdir())
    assert ran_again == [f"trial_005__seed_{s}" for s in sorted(range(6, 17), key=str)]
    assert (first_dir / "optuna.db").stat().st_size > 0  # the ancestor's study file is kept
