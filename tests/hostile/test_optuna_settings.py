"""Hostile family of ``sweep.strategy: optuna``: bad search spaces and study settings (refused
by ``crucible validate`` and ``crucible run`` with the same one line, file, line and field,
nothing written), the storage setting (an environment variable: unset, another scheme, a
database that does not answer; the URL and its password never printed), an ancestor's
``optuna.db`` read back (not a database, a symlink), and scores the racing pruner refuses."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from crucible_dagster import Experiment
from crucible_dagster.runtime.driver import Run
from crucible_dagster.sweeps.standalone import run_sweep
from crucible_dagster.sweeps.study import STUDY_FILE, StudyError
from crucible_dagster.sweeps.study_run import study_trials
from tests.hostile.conftest import Cli, snapshot

# Each case runs an Optuna study on SQLite (about 0.5 s): make test runs them, test-fast not.
pytestmark = pytest.mark.slow

HEAD = """id: studied
pipeline:
  - name: quadratic
    module: tests.helpers:Quadratic
    options: {x: "${params.x}"}
seeds: [1, 2]
sweep:
  metric: score
  strategy: optuna
  optuna:
"""  # lines 1-10; each case's first line is line 11

#: (case, text after HEAD, the line refused, the field, a phrase of the one line)
REFUSED = [
    ("empty_space", "    search_space: []\n", 11, "sweep.optuna.search_space", "at least 1"),
    (
        "low_not_below_high",
        "    search_space:\n      - {name: x, kind: float, low: 2, high: 2}\n",
        12,
        "sweep.optuna.search_space[0]",
        "expected low < high, got low 2 and high 2",
    ),
    (
        "log_with_low_0",
        "    search_space:\n      - {name: x, kind: float, low: 0, high: 1, log: true}\n",
        12,
        "sweep.optuna.search_space[0]",
        "log scale needs low > 0",
    ),
    (
        "unknown_kind",
        "    search_space:\n      - {name: x, kind: gaussian, low: 0, high: 1}\n",
        12,
        "sweep.optuna.search_space[0].kind",
        "expected one of: float, int, categorical, got 'gaussian'",
    ),
    (
        "duplicate_name",
        "    search_space:\n      - {name: x, kind: float, low: 0, high: 1}\n"
        "      - {name: x, kind: int, low: 0, high: 3}\n",
        13,
        "sweep.optuna.search_space[1].name",
        "parameter 'x' is already search_space[0]",
    ),
    (
        "categorical_without_choices",
        "    search_space:\n      - {name: x, kind: categorical, choices: []}\n",
        12,
        "sweep.optuna.search_space[0]",
        "non-empty list of choices",
    ),
    (
        "repeated_choice",
        "    search_space:\n      - {name: x, kind: categorical, choices: [1, 2, 1]}\n",
        12,
        "sweep.optuna.search_space[0]",
        "expected distinct choices, got 1 twice",
    ),
    (
        "int_with_a_fraction",
        "    search_space:\n      - {name: x, kind: int, low: 0.5, high: 3}\n",
        12,
        "sweep.optuna.search_space[0]",
        "low must be whole",
    ),
    (
        "range_without_bounds",
        "    search_space:\n      - {name: x, kind: float, high: 3}\n",
        12,
        "sweep.optuna.search_space[0]",
        "needs low and high",
    ),
    (
        "seed_as_a_name",
        "    search_space:\n      - {name: seed, kind: int, low: 0, high: 3}\n",
        12,
        "sweep.optuna.search_space[0].name",
        "'seed' is the trial's seed",
    ),
    (
        "grid_of_a_continuous_float",
        "    sampler: grid\n    search_space:\n      - {name: x, kind: float, low: 0, high: 1}\n",
        10,
        "sweep.optuna",
        "give a float parameter a step",
    ),
    (
        "more_trials_than_the_grid",
        "    sampler: grid\n    n_trials: 5\n    search_space:\n"
        "      - {name: x, kind: int, low: 0, high: 2}\n",
        10,
        "sweep.optuna",
        "n_trials (5) is more than the grid's 3 points",
    ),
    (
        "bool_for_n_trials",
        "    n_trials: true\n    search_space:\n      - {name: x, kind: float, low: 0, high: 1}\n",
        11,
        "sweep.optuna.n_trials",
        "expected an integer, got true",
    ),
    (
        "unknown_sampler",
        "    sampler: bayes\n    search_space:\n      - {name: x, kind: float, low: 0, high: 1}\n",
        11,
        "sweep.optuna.sampler",
        "expected one of: tpe, random, cmaes, grid",
    ),
    (
        "a_url_for_storage_env",
        "    storage_env: postgresql://u:secret@h/db\n    search_space:\n"
        "      - {name: x, kind: float, low: 0, high: 1}\n",
        11,
        "sweep.optuna.storage_env",
        "the name of an environment variable",
    ),
    (
        "unknown_key",
        "    n_trail: 3\n    search_space:\n      - {name: x, kind: float, low: 0, high: 1}\n",
        11,
        "sweep.optuna.n_trail",
        "did you mean 'n_trials'",
    ),
]


@pytest.mark.parametrize(
    ("case", "tail", "line", "field", "phrase"), REFUSED, ids=[c[0] for c in REFUSED]
)
def test_a_bad_study_setting_is_refused_by_validate_and_run_alike(
    cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    tail: str,
    line: int,
    field: str,
    phrase: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    path = Path(f"{case}.yaml")
    path.write_text(HEAD + tail)
    before = snapshot(tmp_path)
    validated = cli("validate", path)
    assert validated.code == 1
    # one line for the setting (an option's ${params.x} without its parameter is another)
    lines = [out for out in validated.out.splitlines() if out.startswith(f"{path}:{line}: ")]
    assert len(lines) == 1, validated.out
    assert lines[0].startswith(f"{path}:{line}: {field}: "), lines[0]
    assert phrase in lines[0], lines[0]
    assert "secret" not in validated.text
    ran = cli("run", path)
    assert ran.code == 1 and lines[0] in ran.err.splitlines()
    assert snapshot(tmp_path) == before  # no run directory, no optuna.db


BASE: dict[str, Any] = {
    "id": "studied",
    "seed": 1,
    "seeds": [1, 2],
    "pipeline": [
        {"name": "q", "module": "tests.helpers:Quadratic", "options": {"x": "${params.x}"}}
    ],
    "sweep": {
        "metric": "score",
        "strategy": "optuna",
        "optuna": {
            "n_trials": 2,
            "search_space": [{"name": "x", "kind": "float", "low": -1, "high": 1}],
        },
    },
}


def _experiment(**optuna: Any) -> Experiment:
    data = json.loads(json.dumps(BASE))
    data["sweep"]["optuna"].update(optuna)
    return Experiment.model_validate(data)


@pytest.mark.parametrize(
    ("data", "field", "phrase"),
    [
        ({"parameters": {"x": [1, 2]}}, "parameters", "the search space replaces the grid"),
        ({"seeds": [1], "pruner": "racing"}, "sweep.optuna.pruner", "at least 2 seeds"),
        ({"dagster": {"sweep": {"mode": "partitions"}}}, "dagster.sweep.mode", "one run"),
        ({"racing": {"block": "samples"}, "pruner": "racing"}, "sweep", "over seeds"),
        ({"racing": {"alpha": 0.1}}, "sweep", "optuna.pruner: racing"),
        ({"no_optuna": True}, "sweep", "needs sweep.optuna"),
    ],
)
def test_settings_that_do_not_fit_a_study_are_refused(
    data: dict[str, Any], field: str, phrase: str
) -> None:
    from pydantic import ValidationError

    raw = json.loads(json.dumps(BASE))
    optuna = raw["sweep"]["optuna"]
    if data.pop("no_optuna", False):
        del raw["sweep"]["optuna"]
    if "pruner" in data:
        optuna["pruner"] = data.pop("pruner")
    if "racing" in data:
        raw["sweep"]["racing"] = data.pop("racing")
    raw.update(data)
    with pytest.raises(ValidationError) as info:
        Experiment.model_validate(raw)
    assert phrase in str(info.value)


def test_storage_env_unset_or_of_another_scheme_stops_the_sweep_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("optuna")
    experiment = _experiment(storage_env="CRUCIBLE_TEST_STORAGE")
    monkeypatch.delenv("CRUCIBLE_TEST_STORAGE", raising=False)
    with pytest.raises(StudyError) as info:
        run_sweep(experiment, run_id="unset", artifacts=str(tmp_path))
    assert "CRUCIBLE_TEST_STORAGE is not set" in str(info.value)
    manifest = json.loads((tmp_path / "studied" / "unset" / "manifest.json").read_text())
    assert manifest["status"] == "failed"  # the record ends, in a terminal status
    monkeypatch.setenv("CRUCIBLE_TEST_STORAGE", "redis://user:secret@127.0.0.1:6379/0")
    with pytest.raises(StudyError) as info:
        run_sweep(experiment, run_id="scheme", artifacts=str(tmp_path))
    assert "expected a URL with one of the schemes" in str(info.value)
    assert "secret" not in str(info.value) and "\n" not in str(info.value)


def test_a_database_that_does_not_answer_is_named_without_its_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("optuna")
    # a port nothing listens on: the driver's own message would hold the URL
    url = "postgresql+psycopg2://user:hunter2@127.0.0.1:9/none?connect_timeout=2"
    monkeypatch.setenv("CRUCIBLE_TEST_STORAGE", url)
    with pytest.raises(StudyError) as info:
        run_sweep(
            _experiment(storage_env="CRUCIBLE_TEST_STORAGE"), run_id="r", artifacts=str(tmp_path)
        )
    text = str(info.value)
    assert "CRUCIBLE_TEST_STORAGE" in text and "cannot be opened" in text
    assert "hunter2" not in text
    for path in (tmp_path / "studied" / "r").rglob("*"):
        if path.is_file():
            assert "hunter2" not in path.read_text(errors="replace"), path


def test_an_ancestors_optuna_db_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    experiment = _experiment()
    earlier = tmp_path / "studied" / "earlier"
    earlier.mkdir(parents=True)
    (earlier / STUDY_FILE).write_bytes(b"not a database at all" * 100)
    again = Run.at(str(tmp_path), experiment, run_id="again", steps=[], trials=[])
    with pytest.raises(StudyError) as info:
        study_trials(experiment, again, earlier=[earlier])
    assert "optuna.db" in str(info.value) and "\n" not in str(info.value)
    assert (earlier / STUDY_FILE).read_bytes() == b"not a database at all" * 100  # untouched
    manifest = json.loads((tmp_path / "studied" / "again" / "manifest.json").read_text())
    assert manifest["status"] == "failed"


def test_an_ancestors_optuna_db_that_is_a_symlink_is_not_followed(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    experiment = _experiment()
    outside = tmp_path / "outside.db"
    outside.write_bytes(b"")
    earlier = tmp_path / "studied" / "earlier"
    earlier.mkdir(parents=True)
    os.symlink(outside, earlier / STUDY_FILE)
    again = Run.at(str(tmp_path), experiment, run_id="again", steps=[], trials=[])
    studied = study_trials(experiment, again, earlier=[earlier])
    assert [s.state for s in studied.slots] == ["complete", "complete"]
    assert outside.read_bytes() == b""  # a new study of its own, nothing written through it
    assert not (tmp_path / "studied" / "again" / STUDY_FILE).is_symlink()


def test_a_score_outside_the_racing_range_stops_the_study_naming_the_setting(
    tmp_path: Path,
) -> None:
    pytest.importorskip("optuna")
    data = json.loads(json.dumps(BASE))
    data["seeds"] = [1, 2, 3, 4]
    data["sweep"]["optuna"].update(pruner="racing")
    data["sweep"]["racing"] = {"first_look": 2, "round_size": 1, "score_range": [0.5, 0.9]}
    with pytest.raises(StudyError) as info:
        run_sweep(Experiment.model_validate(data), run_id="r", artifacts=str(tmp_path))
    assert "sweep.racing.score_range" in str(info.value) and "trial_001" in str(info.value)


def test_a_metric_the_trials_do_not_have_stops_the_study_naming_it(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    data = json.loads(json.dumps(BASE))
    data["sweep"]["metric"] = "no.such.metric"
    with pytest.raises(StudyError) as info:
        run_sweep(Experiment.model_validate(data), run_id="r", artifacts=str(tmp_path))
    assert "sweep.metric 'no.such.metric'" in str(info.value)
    assert "trial_000__seed_1" in str(info.value)


def test_a_run_directory_removed_and_made_again_gets_a_study_of_its_own(tmp_path: Path) -> None:
    """A kept storage is keyed by its file's inode: a run directory removed and run again
    under the same id (same path) never writes through the earlier file's engine."""
    import shutil
    import sqlite3

    pytest.importorskip("optuna")
    experiment = _experiment()
    run_sweep(experiment, run_id="same", artifacts=str(tmp_path))
    run_dir = tmp_path / "studied" / "same"
    shutil.rmtree(run_dir)
    again = run_sweep(experiment, run_id="same", artifacts=str(tmp_path))
    assert [r["state"] for r in again.comparison["study"]["trials"]] == ["complete"] * 2
    with sqlite3.connect(run_dir / STUDY_FILE) as db:
        assert db.execute("select count(*) from trials").fetchone()[0] == 2
