"""The train stage: early stopping on a constructed case, checkpoints, resume after a kill with
the same final figures, and its hostile family (unknown estimator, settings it cannot take, a
model name with path characters, a tampered or foreign checkpoint)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import pytest
import yaml

from crucible_dagster.experiment.loading import loads_experiment
from crucible_dagster.runtime.runner import run
from tests.conftest import subprocess_env

CRUCIBLE = [sys.executable, "-m", "crucible_dagster.cli"]


def _data(folder: Path, rows: int = 400) -> Path:
    """Feature 0 is the label; the rest is noise the scripted classifier ignores."""
    rng = np.random.default_rng(3)
    label = rng.integers(0, 2, rows)
    frame = pd.DataFrame({"id": [f"s{i}" for i in range(rows)], "f0": label.astype(float),
                          "f1": rng.normal(size=rows) + label, "label": label})  # fmt: skip
    path = folder / "data.parquet"
    frame.to_parquet(path, index=False)
    return path


def _experiment(folder: Path, **training: Any) -> dict[str, Any]:
    config = {
        "id": "train_it",
        "model_ref": {"id": "scripted", "architecture": "tests.lifecycle_helpers:ScriptedClassifier",
                      "options": {"script": [0.5, 0.7, 0.9, 0.8, 0.85, 0.95, 0.99]}},
        "dataset_ref": {"name": "toy", "provider": "local",
                        "options": {"path": str(_data(folder)), "target": "label"}},
        "epochs": 7, "validation_split": 0.25, "metrics": ["accuracy"],
        "early_stopping": {"metric": "accuracy", "patience": 2},
        **training,
    }  # fmt: skip
    return {"id": "lifecycle_train", "seed": 5, "training_config": config,
            "pipeline": [{"name": "train"}]}  # fmt: skip


def _run(document: dict[str, Any], **kwargs: Any) -> Any:
    return run(loads_experiment(yaml.safe_dump(document)), **kwargs)


def _record(run_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / "training_run.json").read_text())


def _epoch(run_dir: Path) -> int:
    """The record's current epoch; -1 before the record exists (it is replaced atomically)."""
    try:
        return int(_record(run_dir)["current_epoch"])
    except FileNotFoundError:
        return -1


def test_early_stopping_stops_after_patience_and_keeps_the_best_epoch(tmp_path: Path) -> None:
    result = _run(_experiment(tmp_path, checkpoint_every=2))
    assert result.failure is None, result.failure
    record = _record(result.run_dir)
    # accuracy 0.5, 0.7, 0.9 (best), 0.8, 0.85: two epochs without a gain, stopped at 5
    assert (record["status"], record["current_epoch"], record["best_epoch"]) == (
        "stopped_early",
        5,
        3,
    )
    assert [h["epoch"] for h in record["metrics_history"]] == [1, 2, 3, 4, 5]
    assert record["best_metrics"]["accuracy"] == pytest.approx(0.9, abs=0.01)
    # the model kept is epoch 3's: 90% of the test rows right, not epoch 5's 85%
    assert result.context.metrics["training"]["test_accuracy"] == pytest.approx(0.9, abs=0.01)
    points = record["checkpoint_uris"]
    assert [p["epoch"] for p in points] == [2, 4]
    assert points[1]["best_path"] == "checkpoints/best-000003.skops"
    evaluation = pd.read_parquet(Path(result.run_dir) / "evaluation.parquet")
    assert list(evaluation.columns) == ["id", "target", "prediction", "score"]
    assert len(evaluation) == 100 and evaluation["id"].str.startswith("s").all()


def test_without_early_stopping_every_epoch_runs_and_the_last_model_is_kept(tmp_path: Path) -> None:
    document = _experiment(tmp_path)
    del document["training_config"]["early_stopping"]
    result = _run(document)
    record = _record(result.run_dir)
    assert (record["status"], record["current_epoch"]) == ("completed", 7)
    assert result.context.metrics["training"]["test_accuracy"] == pytest.approx(0.99, abs=0.01)


def _slow(folder: Path, epochs: int = 10) -> Path:
    document = _experiment(folder, epochs=epochs, checkpoint_every=2, batch_size=64)
    training = document["training_config"]
    training["model_ref"] = {"id": "slow-sgd", "architecture": "tests.lifecycle_helpers:SlowSGD",
                             "options": {"loss": "log_loss", "alpha": 0.01}}  # fmt: skip
    training["metrics"] = ["loss", "accuracy"]
    del training["early_stopping"]
    path = folder / "slow.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_checkpoint_with_identical_final_figures(
    tmp_path: Path, artifacts_dir: Path
) -> None:
    path = _slow(tmp_path)
    env = subprocess_env()
    whole = subprocess.run([*CRUCIBLE, "run", str(path), "--run-id", "whole"], env=env,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert whole.returncode == 0, whole.stderr
    killed = subprocess.Popen([*CRUCIBLE, "run", str(path), "--run-id", "killed"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    # the record, not the checkpoint file: the file is written first, so a kill between the
    # two (seen on a loaded machine) leaves a record of epoch 3 beside epoch 4's file
    while _epoch(artifacts_dir / "lifecycle_train" / "killed") < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(timeout=30)
    cut = _record(artifacts_dir / "lifecycle_train" / "killed")
    assert 4 <= cut["current_epoch"] < 10 and cut["status"] == "running"
    resumed = subprocess.run([*CRUCIBLE, "run", str(path), "--run-id", "resumed", "--resume",
                              "killed"], env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    again, first = (_record(artifacts_dir / "lifecycle_train" / r) for r in ("resumed", "whole"))
    assert again["resumed_from"]["run_id"] == "killed"
    assert again["resumed_from"]["epoch"] == max(p["epoch"] for p in cut["checkpoint_uris"])
    assert again["metrics_history"] == first["metrics_history"]
    assert again["best_metrics"] == first["best_metrics"]
    scores = [pd.read_parquet(artifacts_dir / "lifecycle_train" / r / "evaluation.parquet")
              for r in ("resumed", "whole")]  # fmt: skip
    pd.testing.assert_frame_equal(scores[0], scores[1])


def test_resuming_from_scratch_would_differ(tmp_path: Path) -> None:
    """The figures a resume must reproduce depend on the model's state: a run that started over
    at the checkpoint's epoch would not reach them (so the test above can fail)."""
    path = _slow(tmp_path, epochs=4)
    document = yaml.safe_load(path.read_text())
    document["training_config"]["model_ref"]["architecture"] = "SGDClassifier"
    whole = _run(document)
    two = json.loads(json.dumps(document))
    two["training_config"]["epochs"] = 2
    short = _run(two)
    assert (
        _record(short.run_dir)["metrics_history"] != _record(whole.run_dir)["metrics_history"][2:]
    )


def _replace_checkpoint(run_dir: Path, data: bytes) -> None:
    """The last checkpoint replaced by ``data``, with its digest recorded: what someone who can
    rewrite the parent's folder can do (the digest then proves nothing)."""
    import hashlib

    (run_dir / "checkpoints" / "epoch-000004.skops").write_bytes(data)
    record = _record(run_dir)
    record["checkpoint_uris"][-1]["sha256"] = hashlib.sha256(data).hexdigest()
    (run_dir / "training_run.json").write_text(json.dumps(record))


def _resume_from(tmp_path: Path, damage: Any) -> Any:
    document = _experiment(tmp_path, checkpoint_every=2)
    first = _run(document, run_id="parent")
    damage(Path(first.run_dir))
    document["pipeline"] = [{"name": "train", "options": {"resume_from": "parent"}}]
    return _run(document, run_id="child")


def test_a_tampered_checkpoint_is_refused_before_it_is_loaded(tmp_path: Path) -> None:
    def flip(run_dir: Path) -> None:
        point = run_dir / "checkpoints" / "epoch-000004.skops"
        data = bytearray(point.read_bytes())
        data[len(data) // 2] ^= 0xFF
        point.write_bytes(bytes(data))

    result = _resume_from(tmp_path, flip)
    assert result.failure is not None and result.failure.reason == "tampered_checkpoint"
    assert "epoch-000004.skops: sha256: expected" in result.failure.message


def test_a_checkpoint_with_an_untrusted_type_is_refused_even_with_its_digest(
    tmp_path: Path,
) -> None:

    import skops.io as sio

    from tests.lifecycle_helpers import SlowSGD

    def swap(run_dir: Path) -> None:
        _replace_checkpoint(run_dir, sio.dumps({"model": SlowSGD()}))  # a class not named

    result = _resume_from(tmp_path, swap)
    assert result.failure is not None and result.failure.reason == "untrusted_checkpoint"
    assert "tests.lifecycle_helpers.SlowSGD" in result.failure.message


@pytest.mark.parametrize(
    ("change", "reason", "said"),
    [
        (lambda r: r.update(experiment_id="someone_else"), "foreign_training_run", "experiment_id: expected"),
        (lambda r: r["checkpoint_uris"][-1].update(path="../../x.skops"), "foreign_checkpoint", "outside its run directory"),  # noqa: E501
        (lambda r: r.update(metrics_history="nope"), "invalid_training_run", "metrics_history"),
    ],
)  # fmt: skip
def test_a_parent_record_that_is_not_ours_is_a_located_error(
    tmp_path: Path, change: Any, reason: str, said: str
) -> None:
    def edit(run_dir: Path) -> None:
        record = _record(run_dir)
        change(record)
        (run_dir / "training_run.json").write_text(json.dumps(record))

    result = _resume_from(tmp_path, edit)
    assert result.failure is not None and result.failure.reason == reason
    assert "training_run.json" in result.failure.message or reason == "foreign_checkpoint"
    assert said in result.failure.message


def test_resume_from_a_run_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    document = _experiment(tmp_path)
    document["pipeline"] = [{"name": "train", "options": {"resume_from": "nowhere"}}]
    result = _run(document)
    assert result.failure is not None and "nowhere" in result.failure.message


def _problems(tmp_path: Path, document: dict[str, Any]) -> list[str]:
    from crucible_dagster.runtime.preflight import check_file

    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump(document))
    return [f"{p.field}: {p.message}" for p in check_file(path).problems]


@pytest.mark.parametrize(
    ("edit", "where", "said"),
    [
        (lambda t: t["model_ref"].update(architecture="os:system"), "training_config.model_ref.architecture", "standard library"),  # noqa: E501
        (lambda t: t["model_ref"].update(name="../../etc/passwd"), "training_config.model_ref.name", "letters, digits"),
        (lambda t: t["model_ref"].update(id="a/b"), "training_config.model_ref.id", "letters, digits"),
        (lambda t: t.update(device="cuda"), "training_config.device", "CPU"),
        (lambda t: t.update(mixed_precision=True), "training_config.mixed_precision", "full precision"),
        (lambda t: t.update(gradient_clipping=1.0), "training_config.gradient_clipping", "not supported"),
        (lambda t: t.update(early_stopping={"metric": "accuracy", "patience": 0}), "training_config.early_stopping.patience", ""),  # noqa: E501
        (lambda t: t.update(validation_split=None), "training_config", "validation_split"),
    ],
)  # fmt: skip
def test_validate_names_the_training_setting_it_refuses(
    tmp_path: Path, edit: Any, where: str, said: str
) -> None:
    document = _experiment(tmp_path)
    document["pipeline"] = [{"name": "train"}, {"name": "register"}]
    edit(document["training_config"])
    found = _problems(tmp_path, document)
    assert any(p.startswith(where) and said in p for p in found), found


def test_a_good_training_file_validates(tmp_path: Path) -> None:
    assert _problems(tmp_path, _experiment(tmp_path)) == []


@pytest.mark.parametrize(
    ("edit", "where", "said"),
    [
        (lambda t: t["model_ref"].update(architecture="SGDClasifier"), "training_config.model_ref.architecture", "did you mean 'SGDClassifier'"),  # noqa: E501
        (lambda t: t["model_ref"].update(architecture="KMeans"), "training_config.model_ref.architecture", "classifier or regressor"),  # noqa: E501
        (lambda t: t["model_ref"].update(architecture="LogisticRegression", options={"C": 1}) or t.update(batch_size=8, epochs=1, early_stopping=None, validation_split=None), "training_config.batch_size", "does not learn in batches"),  # noqa: E501
        (lambda t: t["model_ref"].update(architecture="RandomForestClassifier", options={}), "training_config.epochs", "learns in one fit"),  # noqa: E501
        (lambda t: t["model_ref"].update(options={"scrpt": [1.0]}), "training_config.model_ref.options.scrpt", "did you mean 'script'"),  # noqa: E501
    ],
)  # fmt: skip
def test_the_estimator_and_its_settings_are_checked_before_any_data_loads(
    tmp_path: Path, edit: Any, where: str, said: str
) -> None:
    """What needs scikit-learn to know is checked when the stage starts (the Dagster loader
    checks every experiment without importing it): a located error, nothing trained."""
    document = _experiment(tmp_path)
    edit(document["training_config"])
    result = _run(document)
    assert result.failure is not None and result.failure.reason == "invalid_training_config"
    assert result.failure.message.startswith(where) and said in result.failure.message
    assert not (Path(result.run_dir) / "training_run.json").exists()
    # `crucible validate` finds the same (it may import scikit-learn; the Dagster loader may not)
    document["pipeline"] = [{"name": "train"}]
    assert any(p.startswith(where) and said in p for p in _problems(tmp_path, document))


def test_a_checkpoint_holding_a_library_function_is_refused_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    """A gadget: a Pipeline whose FunctionTransformer calls scikit-learn's file writer on
    predict; skops lists the function as untrusted, and a function is never trusted."""

    import skops.io as sio
    from sklearn.datasets import dump_svmlight_file
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    target = tmp_path / "written_by_the_gadget.txt"

    def swap(run_dir: Path) -> None:
        gadget = FunctionTransformer(func=dump_svmlight_file, kw_args={"f": str(target)})
        _replace_checkpoint(run_dir, sio.dumps(Pipeline([("g", gadget)])))

    result = _resume_from(tmp_path, swap)
    assert result.failure is not None and result.failure.reason == "untrusted_checkpoint"
    assert "dump_svmlight_file" in result.failure.message
    assert not target.exists()


def test_a_checkpoint_of_another_estimator_is_refused(tmp_path: Path) -> None:

    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    def swap(run_dir: Path) -> None:
        _replace_checkpoint(run_dir, sio.dumps(LogisticRegression()))

    result = _resume_from(tmp_path, swap)
    assert result.failure is not None and result.failure.reason == "foreign_checkpoint"
    assert "expected a ScriptedClassifier, found a LogisticRegression" in result.failure.message


def test_a_resume_with_other_settings_is_refused(tmp_path: Path) -> None:
    document = _experiment(tmp_path, checkpoint_every=2)
    _run(document, run_id="parent")
    document["seed"] = 6
    document["pipeline"] = [{"name": "train", "options": {"resume_from": "parent"}}]
    result = _run(document, run_id="child")
    assert result.failure is not None and result.failure.reason == "different_training"
    assert "training_config.seed" in result.failure.message


@pytest.mark.parametrize("parent", ["/tmp/elsewhere/run", "../other/run", ".."])
def test_resume_from_is_a_run_id_never_a_path(tmp_path: Path, parent: str) -> None:
    document = _experiment(tmp_path)
    document["pipeline"] = [{"name": "train", "options": {"resume_from": parent}}]
    result = _run(document)
    assert result.failure is not None and result.failure.reason == "invalid_options"
    assert "resume_from: " in result.failure.message and "no path" in result.failure.message


def test_a_failure_after_the_epochs_ends_the_training_record_failed(tmp_path: Path) -> None:
    document = _experiment(tmp_path)
    document["training_config"]["model_ref"]["architecture"] = "tests.lifecycle_helpers:BadPredict"
    result = _run(document)
    assert result.failure is not None and "predict failed" in result.failure.message
    record = _record(result.run_dir)
    assert record["status"] == "failed" and "predict failed" in record["error_message"]


def test_a_tracking_uri_with_a_password_is_refused_without_echoing_it(tmp_path: Path) -> None:
    for uri in ("http://alice:S3cretPW@127.0.0.1:5000", "http://h:5000/?token=S3cretPW"):
        document = _experiment(tmp_path, checkpoint_every=None)
        document["tracking"] = {"mlflow": {"uri": uri}}
        found = _problems(tmp_path, document)
        assert any(
            p.startswith("tracking.mlflow.uri") and "MLFLOW_TRACKING_PASSWORD" in p for p in found
        )
        assert "S3cretPW" not in "".join(found)


@pytest.mark.parametrize("alias", ["latest", "v2", "V10", "prod.v2", "a b"])
def test_an_alias_mlflow_reserves_or_refuses_is_refused_before_a_run(
    tmp_path: Path, alias: str
) -> None:
    document = _experiment(tmp_path)
    document["deployment"] = {"alias": alias}
    document["pipeline"] = [{"name": "train"}, {"name": "register"}, {"name": "promote"}]
    found = _problems(tmp_path, document)
    assert any(p.startswith("deployment.alias") for p in found), found


def test_only_a_registry_answer_of_not_found_means_no_champion() -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.protos import databricks_pb2 as codes

    from crucible_dagster.lifecycle.promotion import alias_holder
    from crucible_dagster.runtime.stage import StageError

    class Registry:  # answers as a registry does, with the error each case raises
        def __init__(self, error: MlflowException) -> None:
            self.error = error

        def get_model_version_by_alias(self, name: str, alias: str) -> Any:
            raise self.error

    missing = MlflowException(
        "Registered model alias champion not found.", error_code=codes.INVALID_PARAMETER_VALUE
    )
    assert alias_holder(cast(Any, Registry)(missing), "m", "champion") is None
    gone = MlflowException(
        "Registered Model with name=m not found", error_code=codes.RESOURCE_DOES_NOT_EXIST
    )
    assert alias_holder(cast(Any, Registry)(gone), "m", "champion") is None
    failing = MlflowException("<html>" + "x" * 5000, error_code=codes.INTERNAL_ERROR)
    with pytest.raises(StageError, match="did not answer the lookup") as said:
        alias_holder(cast(Any, Registry)(failing), "m", "champion")
    assert len(str(said.value)) < 500


def test_the_gate_decides_nothing_on_a_handful_of_samples() -> None:
    from crucible_dagster.experiment.ir import RegressionBaseline
    from crucible_dagster.lifecycle.promotion import MIN_SAMPLES, judge

    gate = RegressionBaseline(metric="evaluation", margin=0.05)
    few = {f"s{i}": 1.0 for i in range(MIN_SAMPLES - 1)}
    assert judge(gate, few, few, "m v1").outcome == "not_comparable"
    many = {f"s{i}": float(i % 2) for i in range(200)}
    worse = {k: 0.0 for k in many}
    assert judge(gate, many, many, "m v1").outcome == "pass"  # equal: not worse
    assert judge(gate, worse, many, "m v1").outcome == "fail"
    missing = dict(list(many.items())[:150])
    assert judge(gate, missing, many, "m v1").outcome == "not_comparable"


@pytest.mark.integration
def test_a_dagster_reexecution_from_failure_resumes_training_from_the_parent_checkpoint(
    tmp_path: Path, artifacts_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dagster as dg

    from tests.dagster_helpers import instance_for_test
    from tests.integration import jobs

    monkeypatch.setenv("CRUCIBLE_TEST_WORKDIR", str(tmp_path))
    _data(tmp_path)
    (tmp_path / "fail.flag").touch()
    job = dg.reconstructable(jobs.training_job)
    with instance_for_test() as instance:
        with dg.execute_job(job, instance=instance) as failed:
            assert not failed.success
        parent = _record(artifacts_dir / "resumed_training" / failed.run_id)
        assert parent["status"] == "failed" and parent["current_epoch"] == 4
        (tmp_path / "fail.flag").unlink()
        options = dg.ReexecutionOptions.from_failure(failed.run_id, instance)
        with dg.execute_job(job, instance=instance, reexecution_options=options) as retried:
            assert retried.success
            child = _record(artifacts_dir / "resumed_training" / retried.run_id)
    assert child["resumed_from"] == {"run_id": failed.run_id, "epoch": 4,
                                     "checkpoint": "checkpoints/epoch-000004.skops"}  # fmt: skip
    assert child["metrics_history"] == parent["metrics_history"]
    assert child["status"] == "completed"
