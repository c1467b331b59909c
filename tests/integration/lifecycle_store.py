"""The lifecycle tests' MLflow store and experiment: fixtures and helpers shared by
test_lifecycle_mlflow.py and test_lifecycle_dagster.py (two files, so pytest-xdist's
--dist loadfile runs them on two workers)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from crucible_dagster.experiment.loading import loads_experiment
from crucible_dagster.runtime.runner import run
from tests.conftest import ROOT

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


def demo(architecture: str | None = None, **changes: Any) -> dict[str, Any]:
    document = yaml.safe_load(DEMO.read_text())
    if architecture:
        document["pipeline"][0]["options"] = {"architecture": architecture}
    document.update(changes)
    return document


def run_demo(document: dict[str, Any]) -> Any:
    result = run(loads_experiment(yaml.safe_dump(document)))
    assert result.failure is None, result.failure
    return result
