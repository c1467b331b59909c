"""Register, promote and roll back on a real MLflow store: the local SQLite store under the
artifacts root (read back through MLflow's client) and a local ``mlflow server`` on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from crucible_dagster.experiment.loading import loads_experiment
from crucible_dagster.runtime.runner import run
from tests.conftest import subprocess_env
from tests.integration.lifecycle_store import demo, empty_store, run_demo, store

pytestmark = pytest.mark.integration
__all__ = ["empty_store", "store"]  # the fixtures this module's tests take


def test_registration_writes_the_lineage_tags_mlflow_reads_back(store: Any) -> None:
    result = run_demo(demo())
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

    first = run_demo(demo())
    assert first.context.metrics["promotion"]["decision"] == "promoted"
    same = run_demo(demo())  # the same model again: equal, so not worse
    decided = same.context.metrics["promotion"]
    assert (decided["decision"], decided["champion_version"], decided["version"]) == (
        "promoted",
        "1",
        "2",
    )
    poor = run_demo(demo("DummyClassifier"))
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
    run_demo(demo(deployment={"strategy": "canary"}))
    run_demo(demo(deployment={"environment": "staging"}))
    aliases = store.get_registered_model("cancer-classifier").aliases
    assert set(aliases) == {"champion-canary", "champion-staging"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_registry_that_does_not_answer_fails_at_once_naming_it(artifacts_dir: Path) -> None:
    port = _free_port()
    document = demo(tracking={"mlflow": {"uri": f"http://user@127.0.0.1:{port}", "timeout_s": 2}})
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
        # MLflow's job runner (huey consumers, periodic tasks) serves features the test does not
        # use, and its processes cost more CPU than the server itself
        env=subprocess_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
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
    run_demo(demo(tracking=tracking))
    refused = run_demo(demo("DummyClassifier", tracking=tracking))
    assert refused.context.metrics["promotion"]["decision"] == "refused"
    client = MlflowClient(mlflow_server, mlflow_server)
    assert str(client.get_model_version_by_alias("cancer-classifier", "champion").version) == "1"
    assert (
        client.get_model_version("cancer-classifier", "2").tags["crucible.gate.decision"]
        == "refused"
    )


def test_a_baseline_version_that_points_nowhere_fails_and_never_skips_the_gate(store: Any) -> None:
    run_demo(demo())
    document = demo(
        "DummyClassifier", baseline={"id": "cancer-classifier", "version": "nosuchalias"}
    )
    result = run(loads_experiment(yaml.safe_dump(document)))
    assert result.failure is not None and result.failure.reason == "unknown_baseline"
    assert result.failure.message.startswith("baseline.version: ")
    assert str(store.get_model_version_by_alias("cancer-classifier", "champion").version) == "1"
    assert "crucible.gate.decision" not in store.get_model_version("cancer-classifier", "2").tags
