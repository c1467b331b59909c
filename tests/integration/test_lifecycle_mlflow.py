"""Register, promote and roll back on a real MLflow store: the local SQLite store under the
artifacts root (read back through MLflow's client), a local ``mlflow server`` on 127.0.0.1, and
the same flow as a Dagster job whose model asset's check fails when promotion is refused."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from crucible_dagster.experiment.loading import loads_experiment
from crucible_dagster.runtime.runner import run
from tests.conftest import ROOT, subprocess_env

pytestmark = pytest.mark.integration
DEMO = ROOT / "experiments" / "train_and_promote.yaml"


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store with its tables made (MLflow's migrations take seconds), copied
    into each test's artifacts root."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def store(empty_store: Path, artifacts_dir: Path) -> Any:
    from mlflow import MlflowClient

    (artifacts_dir / "mlflow").mkdir(parents=True)
    shutil.copy(empty_store, artifacts_dir / "mlflow" / "mlflow.db")
    uri = f"sqlite:///{artifacts_dir / 'mlflow' / 'mlflow.db'}"
    return MlflowClient(uri, uri)


def _demo(architecture: str | None = None, **changes: Any) -> dict[str, Any]:
    document = yaml.safe_load(DEMO.read_text())
    if architecture:
        document["pipeline"][0]["options"] = {"architecture": architecture}
    document.update(changes)
    return document


def _run(document: dict[str, Any]) -> Any:
    result = run(loads_experiment(yaml.safe_dump(document)))
    assert result.failure is None, result.failure
    return result


def test_registration_writes_the_lineage_tags_mlflow_reads_back(store: Any) -> None:
    result = _run(_demo())
    registered = result.context.metrics["registry"]
    version = store.get_model_version("cancer-classifier", registered["version"])
    tags = version.tags
    assert tags["crucible.experiment_id"] == "train_and_promote"
    assert tags["crucible.run_id"] == result.context.run_id
    assert len(tags["crucible.ir_hash"]) == 64
    assert (
        tags["crucible.data_fingerprint"]
        == result.context.assigns["trained_model"]["data_fingerprint"]
    )
    assert tags["crucible.parent_version"] == ""
    assert float(tags["crucible.metric.test_accuracy"]) > 0.9
    mlflow_run = store.get_run(version.run_id)
    assert mlflow_run.info.run_name == result.context.run_id
    assert mlflow_run.data.params["estimator"] == "LogisticRegression"
    assert mlflow_run.data.params["model.max_iter"] == "5000"
    logged = {a.path for a in store.list_artifacts(version.run_id, "run")}
    assert {"run/manifest.json", "run/training_run.json", "run/promotion.json"} <= logged
    # the model is MLflow's scikit-learn flavour in skops format, loadable by alias
    import mlflow.sklearn

    model = mlflow.sklearn.load_model("models:/cancer-classifier@champion")
    assert type(model).__name__ == "LogisticRegression"


def test_promotion_follows_the_gate_and_rollback_walks_the_alias_back(store: Any) -> None:
    from crucible_dagster.lifecycle import promotion

    first = _run(_demo())
    assert first.context.metrics["promotion"]["decision"] == "promoted"
    same = _run(_demo())  # the same model again: equal, so not worse
    decided = same.context.metrics["promotion"]
    assert (decided["decision"], decided["champion_version"], decided["version"]) == (
        "promoted",
        "1",
        "2",
    )
    poor = _run(_demo("DummyClassifier"))
    refused = poor.context.metrics["promotion"]
    assert refused["decision"] == "refused" and refused["outcome"] == "fail"
    assert refused["champion_version"] == "2" and refused["ci_high"] < -0.05
    assert store.get_model_version_by_alias("cancer-classifier", "champion").version in (2, "2")
    tags = store.get_model_version("cancer-classifier", "3").tags
    assert tags["crucible.gate.decision"] == "refused"
    assert (
        float(tags["crucible.gate.p_value"]) > 0.05 and tags["crucible.gate.test"] == "paired_ttest"
    )
    # the report of the refused run carries the evidence
    report = (Path(poor.run_dir) / "lifecycle.md").read_text()
    assert "promotion.ci\\_high" in report and "promotion.p\\_value" in report
    shown = json.loads((Path(poor.run_dir) / "lifecycle.json").read_text())
    assert "promotion" in json.dumps(shown) and '"refused"' in json.dumps(shown)
    assert promotion.rollback(store, "cancer-classifier", "champion") == ("2", "1")
    assert str(store.get_model_version_by_alias("cancer-classifier", "champion").version) == "1"
    with pytest.raises(Exception, match="no earlier version"):
        promotion.rollback(store, "cancer-classifier", "champion")


def test_a_canary_moves_its_own_alias_and_staging_its_environments(store: Any) -> None:
    _run(_demo(deployment={"strategy": "canary"}))
    _run(_demo(deployment={"environment": "staging"}))
    aliases = store.get_registered_model("cancer-classifier").aliases
    assert set(aliases) == {"champion-canary", "champion-staging"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_registry_that_does_not_answer_fails_at_once_naming_it(artifacts_dir: Path) -> None:
    port = _free_port()
    document = _demo(tracking={"mlflow": {"uri": f"http://user@127.0.0.1:{port}", "timeout_s": 2}})
    started = time.monotonic()
    result = run(loads_experiment(yaml.safe_dump(document)))
    assert result.failure is not None and result.failure.reason == "registry_unreachable"
    assert f"127.0.0.1:{port}" in result.failure.message
    assert result.failure.stage == "register" and time.monotonic() - started < 60


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "server-artifacts")],
        env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                assert server.poll() is None, "mlflow server exited"
                time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.live
def test_the_same_flow_against_a_local_mlflow_server(mlflow_server: str) -> None:
    from mlflow import MlflowClient

    tracking = {"mlflow": {"uri": mlflow_server}}
    _run(_demo(tracking=tracking))
    refused = _run(_demo("DummyClassifier", tracking=tracking))
    assert refused.context.metrics["promotion"]["decision"] == "refused"
    client = MlflowClient(mlflow_server, mlflow_server)
    assert str(client.get_model_version_by_alias("cancer-classifier", "champion").version) == "1"
    assert (
        client.get_model_version("cancer-classifier", "2").tags["crucible.gate.decision"]
        == "refused"
    )


def test_as_a_dagster_job_the_model_asset_check_fails_when_promotion_is_refused(store: Any) -> None:
    import dagster as dg

    from crucible_dagster.dagster_plugin import definitions_from_experiments

    experiment = loads_experiment(DEMO.read_text())
    defs = definitions_from_experiments([experiment])
    job = defs.resolve_job_def("train_and_promote")
    instance = dg.DagsterInstance.ephemeral()
    key = dg.AssetKey(["crucible", "models", "cancer-classifier"])
    evaluations = []
    for architecture in ("LogisticRegression", "DummyClassifier"):
        config = {"ops": {"train": {"config": {"architecture": architecture}}}}
        result = job.execute_in_process(run_config=config, instance=instance)
        assert result.success
        evaluations += [e.event_specific_data for e in result.all_events
                        if e.event_type_value == "ASSET_CHECK_EVALUATION"
                        and e.event_specific_data.asset_key == key]  # fmt: skip
        materialized = instance.get_latest_materialization_event(key).asset_materialization
        assert materialized.metadata["decision"].value == (
            "promoted" if architecture == "LogisticRegression" else "refused"
        )
    assert [e.passed for e in evaluations] == [True, False]
    # executed alone, the check re-reads what the experiment's latest run recorded
    check = next(
        c for c in defs.asset_checks or [] if any(k.asset_key == key for k in c.check_keys)
    )
    alone = cast(dg.AssetCheckResult, check(dg.build_asset_check_context(instance=instance)))
    assert alone.passed is False and alone.metadata["decision"].value == "refused"
    assert alone.metadata["crucible/rechecked"].value is True
    assert evaluations[1].metadata["champion_version"].value == "1"
    lineage = defs.resolve_asset_graph().get(key)
    assert dg.AssetKey(["crucible", "train_and_promote", "lifecycle"]) in lineage.parent_keys


def test_dagster_job_execute_runs_the_demo(store: Any, artifacts_dir: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = subprocess_env(DAGSTER_HOME=str(home), CRUCIBLE_ARTIFACTS_DIR=str(artifacts_dir))
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "job", "execute", "-f", str(ROOT / "definitions.py"),
         "-j", "train_and_promote"],
        env=env, capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert str(store.get_model_version_by_alias("cancer-classifier", "champion").version) == "1"


def _drift_watch(artifacts_dir: Path, shift: float, **model: Any) -> dict[str, Any]:
    """An experiment watching the champion for drift: recent inputs are the breast-cancer
    features (a resample, ``mean radius`` times ``shift``), the reference is what the
    champion's lineage says it was trained on."""
    import numpy as np
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.drop(columns=["target"])
    recent = frame.sample(n=300, replace=True, random_state=1).reset_index(drop=True)
    recent["mean radius"] = recent["mean radius"] * shift
    recent.insert(0, "id", [f"r{i}" for i in np.arange(len(recent))])
    path = artifacts_dir.parent / f"recent-{shift}.parquet"
    recent.to_parquet(path, index=False)
    reference_model = {"id": "cancer-classifier", **model}
    return {
        "id": "watch_cancer", "seed": 1,
        "dataset": {"name": "recent", "provider": "local", "options": {"path": str(path)}},
        "reliability": {"drift": {"reference_model": reference_model}},
        "pipeline": [{"name": "drift"}],
    }  # fmt: skip


def test_drift_compares_recent_inputs_with_the_data_the_champion_was_trained_on(
    store: Any, artifacts_dir: Path
) -> None:
    import dagster as dg

    from crucible_dagster.dagster_plugin import definitions_from_experiments

    _run(_demo())
    watches = {shift: loads_experiment(yaml.safe_dump(_drift_watch(artifacts_dir, shift)))
               for shift in (1.0, 1.5)}  # fmt: skip
    key = dg.AssetKey(["crucible", "models", "cancer-classifier"])
    outcomes = []
    for experiment in watches.values():
        defs = definitions_from_experiments([loads_experiment(DEMO.read_text()), experiment])
        result = defs.resolve_job_def("watch_cancer").execute_in_process(
            instance=dg.DagsterInstance.ephemeral()
        )
        assert result.success
        found = [e.event_specific_data for e in result.all_events
                 if e.event_type_value == "ASSET_CHECK_EVALUATION"]  # fmt: skip
        assert [(e.asset_key, e.check_name) for e in found] == [(key, "drift__watch_cancer")]
        outcomes.append(found[0])
    calm, shifted = outcomes
    assert calm.passed and not shifted.passed
    rows = {r.data["feature"]: r.data for r in shifted.metadata["features"].value.records}
    assert rows["mean radius"]["drifted"] is True and rows["mean radius"]["p_adjusted"] < 0.05
    assert shifted.metadata["features_drifted"].value >= 1
    assert shifted.metadata["reference_version"].value == "1"
    # both declare the one model asset, whose checks are each experiment's own
    assert {c.name for c in defs.resolve_asset_graph().get(key).check_keys} == {
        "promotion_gate__train_and_promote",
        "drift__watch_cancer",
    }


@pytest.mark.parametrize(
    ("tag", "value", "said"),
    [
        ("crucible.dataset_ref", None, "expected the dataset it was trained on"),
        ("crucible.dataset_ref", '{"name": "breast_cancer", "provider": "sklearn", "oops": 1}', "oops"),
        ("crucible.named_fingerprint", "0" * 32, "the data changed since"),
    ],
)  # fmt: skip
def test_a_lineage_tag_that_is_missing_wrong_or_stale_is_a_located_error(
    store: Any, artifacts_dir: Path, tag: str, value: str | None, said: str
) -> None:
    _run(_demo())
    if value is None:
        store.delete_model_version_tag("cancer-classifier", "1", tag)
    else:
        store.set_model_version_tag("cancer-classifier", "1", tag, value)
    result = run(loads_experiment(yaml.safe_dump(_drift_watch(artifacts_dir, 1.0, version="1"))))
    assert result.failure is not None and said in result.failure.message
    assert result.failure.message.startswith("reliability.drift.reference_model")


def test_a_baseline_version_that_points_nowhere_fails_and_never_skips_the_gate(store: Any) -> None:
    _run(_demo())
    document = _demo(
        "DummyClassifier", baseline={"id": "cancer-classifier", "version": "nosuchalias"}
    )
    result = run(loads_experiment(yaml.safe_dump(document)))
    assert result.failure is not None and result.failure.reason == "unknown_baseline"
    assert result.failure.message.startswith("baseline.version: ")
    assert str(store.get_model_version_by_alias("cancer-classifier", "champion").version) == "1"
    assert "crucible.gate.decision" not in store.get_model_version("cancer-classifier", "2").tags
