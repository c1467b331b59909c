"""``sweep.strategy: optuna`` under Dagster: one run (plan_study, a step per group of trials,
compare_trials) whose steps list their trials as metadata; in process the study is the
standalone one, trial for trial; ``dagster job execute`` runs it from the command line; on
PostgreSQL storage (``sweep.optuna.storage_env``) the study is in the database, shared."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from crucible_dagster import Experiment
from crucible_dagster.dagster_plugin import build_job
from crucible_dagster.sweeps.standalone import run_sweep
from tests.conftest import ROOT, subprocess_env
from tests.dagster_helpers import ephemeral_instance, instance_for_test
from tests.integration.events import sweep_graph, sweep_step
from tests.integration.test_dagster_cli import dagster_bin
from tests.services import PG, postgres_db  # noqa: F401  (a fixture)
from tests.test_optuna_sweep import RACED

pytest.importorskip("optuna")

KEYS = ("slot", "number", "trial", "state", "value", "seeds_run", "params", "p_adjusted")


def _rows(study: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: r[k] for k in KEYS} for r in study["trials"]]


def _experiment(**sweep: Any) -> Experiment:
    data = json.loads(json.dumps(RACED))
    data["sweep"].update(sweep)
    return Experiment.model_validate(data)


def test_a_study_is_one_run_with_a_step_per_group_of_trials(artifacts_dir: Path) -> None:
    experiment = _experiment(trials_per_step=2)
    job = build_job(experiment)
    assert {"plan_study", "run_study_trials", "compare_trials"} <= set(sweep_graph(job).node_dict)
    with ephemeral_instance() as instance:
        result = job.execute_in_process(instance=instance)
        assert result.success
        outputs: dict[str, Any] = {
            sweep_step(e.step_key, "studied"): e.event_specific_data.metadata
            for e in result.all_events
            if e.event_type_value == "STEP_OUTPUT"
            and sweep_step(e.step_key, "studied").startswith("run_study_trials")
        }
    assert sorted(outputs) == [
        "run_study_trials[trials_1_to_2]",
        "run_study_trials[trials_3_to_4]",
        "run_study_trials[trials_5_to_6]",
    ]
    tables = "".join(str(m["crucible/trials"].value) for m in outputs.values())
    assert "pruned" in tables and "complete" in tables and '{"x": 0.3}' in tables
    run_dir = artifacts_dir / "studied" / result.run_id
    assert (run_dir / "optuna.db").is_file()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    # in process, steps run one after the other: the very study `crucible run` makes
    alone = run_sweep(experiment, run_id="alone", artifacts=str(artifacts_dir))
    assert _rows(manifest["metrics"]["sweep"]["study"]) == _rows(alone.comparison["study"])
    assert manifest["metrics"]["sweep"]["best"] == alone.comparison["best"]
    assert "## Study" in (run_dir / "sweep.md").read_text()
    (materialized,) = [
        e.event_specific_data.materialization.metadata
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
    ]
    assert materialized["study/best_params"].value == {"x": 0.3}
    assert materialized["study/pruned"].value == alone.comparison["study"]["pruned"]


def test_dagster_job_execute_runs_a_study(tmp_path: Path, artifacts_dir: Path) -> None:
    folder = tmp_path / "experiments"
    folder.mkdir()
    data = json.loads(json.dumps(RACED))
    data["id"] = "studied_cli"
    data["seeds"] = [1, 2, 3, 4]
    data["sweep"]["optuna"]["n_trials"] = 3
    data["sweep"]["trials_per_step"] = 1
    (folder / "studied_cli.yaml").write_text(yaml.safe_dump(data))
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    proc = subprocess.run(
        [dagster_bin(), "job", "execute", "-f", "definitions.py", "-j", "studied_cli"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=subprocess_env(
            DAGSTER_HOME=str(home),
            CRUCIBLE_ARTIFACTS_DIR=str(artifacts_dir),
            CRUCIBLE_EXPERIMENTS_DIR=str(folder),
        ),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (artifacts_dir / "studied_cli").iterdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    study = manifest["metrics"]["sweep"]["study"]
    assert [r["slot"] for r in study["trials"]] == [0, 1, 2]
    assert study["study_name"] == f"crucible.studied_cli.{run_dir.name}"
    assert (run_dir / "optuna.db").is_file()


@pytest.mark.postgres
def test_a_study_on_postgresql_storage_is_shared_by_name(
    postgres_db: str,  # noqa: F811
    artifacts_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import optuna

    password = os.environ.get("CRUCIBLE_PG_PASSWORD", "")
    auth = f"{PG['user']}:{password}" if password else PG["user"]
    url = f"postgresql+psycopg2://{auth}@{PG['host']}:{PG['port']}/{postgres_db}"
    monkeypatch.setenv("CRUCIBLE_TEST_OPTUNA_STORAGE", url)
    data = json.loads(json.dumps(RACED))
    data["sweep"]["optuna"]["storage_env"] = "CRUCIBLE_TEST_OPTUNA_STORAGE"
    experiment = Experiment.model_validate(data)
    with ephemeral_instance() as instance:
        result = build_job(experiment).execute_in_process(instance=instance)
        assert result.success
    run_dir = artifacts_dir / "studied" / result.run_id
    assert not (run_dir / "optuna.db").exists()  # the study is in the database
    manifest = json.loads((run_dir / "manifest.json").read_text())
    study = manifest["metrics"]["sweep"]["study"]
    assert study["storage"] == "$CRUCIBLE_TEST_OPTUNA_STORAGE"
    stored = optuna.load_study(study_name=study["study_name"], storage=url)
    assert len(stored.trials) == 6
    assert stored.best_trial.params == study["best"]["params"] == {"x": 0.3}
    assert url.split("@")[0] not in json.dumps(manifest) or not password


def test_re_execution_from_failure_continues_the_study(
    artifacts_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.integration import jobs

    monkeypatch.setenv("CRUCIBLE_TEST_WORKDIR", str(tmp_path))
    experiment = jobs.study_experiment()
    whole = run_sweep(experiment, run_id="whole", artifacts=str(tmp_path / "alone"))
    expected = _rows(whole.comparison["study"])
    assert expected[-1]["params"] == {"x": 0.3}  # the last slot, in the last step

    flag = tmp_path / "fail_0.3_6.flag"  # the x = 0.3 trial fails at its sixth seed
    flag.touch()
    with instance_for_test() as instance:
        with dg.execute_job(dg.reconstructable(jobs.study_job), instance=instance) as failed:
            assert not failed.success
            failed_steps = [
                sweep_step(e.step_key, "studied_reexec")
                for e in failed.all_events
                if e.event_type_value == "STEP_FAILURE"
            ]
            assert failed_steps == ["run_study_trials[trials_5_to_6]"]
        flag.unlink()
        options = dg.ReexecutionOptions.from_failure(failed.run_id, instance)
        with dg.execute_job(
            dg.reconstructable(jobs.study_job), instance=instance, reexecution_options=options
        ) as again:
            assert again.success
            ran = {
                sweep_step(e.step_key, "studied_reexec")
                for e in again.all_events
                if e.event_type_value == "STEP_START"
            }
    assert ran == {"run_study_trials[trials_5_to_6]", "compare_trials"}
    run_dir = artifacts_dir / "studied_reexec" / again.run_id
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    study = manifest["metrics"]["sweep"]["study"]
    assert study["study_name"] == f"crucible.studied_reexec.{failed.run_id}"  # continued
    assert _rows(study) == expected  # the same trials, the failed one gone on with
    # only the failed seed and those after its round ran again: its round's seeds 5, 7 and 8
    # completed in the failed run and are read back, as are the other slots' trials
    again_trials = sorted(p.name for p in (run_dir / "trials").iterdir())
    seeds = [6, *range(9, 17)]
    assert again_trials == sorted(f"trial_005__seed_{s}" for s in seeds)


def test_parallel_steps_in_processes_of_their_own_share_one_sqlite_study(
    artifacts_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import optuna

    from tests.integration import jobs

    monkeypatch.setenv("CRUCIBLE_TEST_WORKDIR", str(tmp_path))
    with (
        instance_for_test() as instance,
        dg.execute_job(dg.reconstructable(jobs.study_job_multiprocess), instance=instance) as done,
    ):
        assert done.success
        pids = {
            e.pid
            for e in done.all_events
            if e.event_type_value == "STEP_OUTPUT"
            and sweep_step(e.step_key, "studied_reexec").startswith("run_study_trials")
        }
    assert len(pids) == 6  # a process a trial
    run_dir = artifacts_dir / "studied_reexec" / done.run_id
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    study = manifest["metrics"]["sweep"]["study"]
    stored = optuna.load_study(
        study_name=study["study_name"], storage=f"sqlite:///{run_dir / 'optuna.db'}"
    )
    assert len(stored.trials) == 6 and {t.state.name for t in stored.trials} <= {
        "COMPLETE",
        "PRUNED",
    }
    assert sorted(r["slot"] for r in study["trials"]) == list(range(6))
    # the grid sampler walks one shuffled grid: six slots, six distinct points
    assert len({json.dumps(r["params"]) for r in study["trials"]}) == 6


def test_a_studys_settings_are_launchpad_run_config(artifacts_dir: Path) -> None:
    """sweep.optuna is pre-filled from the file; a run that asks for fewer trials runs that
    many (a step each group), and a bad value fails with the IR's message under optuna."""
    from tests.integration.test_launchpad_config import _prefilled

    job = build_job(_experiment(trials_per_step=1))
    prefilled = _prefilled(job)["optuna"]
    assert prefilled["n_trials"] == 6 and prefilled["sampler"] == "grid"
    config = {"resources": {"crucible": {"config": {"optuna": {"n_trials": 3}}}}}
    with ephemeral_instance() as instance:
        result = job.execute_in_process(instance=instance, run_config=config)
        assert result.success
        steps = {
            sweep_step(e.step_key, "studied")
            for e in result.all_events
            if e.event_type_value == "STEP_START"
        }
        bad = job.execute_in_process(
            instance=instance,
            run_config={"resources": {"crucible": {"config": {"optuna": {"n_trials": 0}}}}},
            raise_on_error=False,
        )
    assert {s for s in steps if s.startswith("run_study_trials")} == {
        f"run_study_trials[trial_{n}]" for n in (1, 2, 3)
    }
    manifest = json.loads((artifacts_dir / "studied" / result.run_id / "manifest.json").read_text())
    assert manifest["metrics"]["sweep"]["study"]["n_trials"] == 3
    assert not bad.success
    (failure, *_) = [e for e in bad.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    message = failure.step_failure_data.error.message
    assert "resources.crucible.config.optuna.n_trials: expected" in message, message
