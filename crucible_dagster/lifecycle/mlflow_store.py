"""MLflow as the tracking server and the model registry (the optional extra ``mlflow``).

``tracking.mlflow.uri`` is any tracking URI; by default a SQLite store under the artifacts root
(``mlflow/mlflow.db``, artifacts beside it in ``mlflow/artifacts``), so a laptop needs no server.
A server's URI is asked once for ``/health`` with the setting's timeout before anything is sent,
and MLflow's own retries (minutes, by default) are turned off: a registry that does not answer
is one located error, at once.

Lineage lives in tags MLflow shows and searches: every run and version carries
``crucible.experiment_id``, ``crucible.run_id``, ``crucible.ir_hash``; a version adds
``crucible.data_fingerprint``, ``crucible.parent_version`` (the alias holder it was trained to
replace) and its evaluation's metrics.
"""

from __future__ import annotations

import contextlib
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crucible_dagster.runtime.stage import StageError

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from crucible_dagster.experiment.ir import Experiment, MlflowTracking

TAG = "crucible."
#: what MLflow does with a server that does not answer: retries with backoff for minutes
NO_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0"}


def store_uri(tracking: MlflowTracking, artifacts_root: Path) -> str:
    """The tracking (and registry) URI: the setting's, else SQLite under the artifacts root."""
    if tracking.uri:
        return tracking.uri
    folder = artifacts_root / "mlflow"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


def default_artifacts(tracking: MlflowTracking, artifacts_root: Path) -> str | None:
    """Where a new MLflow experiment keeps its artifacts: beside the default store; a server
    chooses its own."""
    return None if tracking.uri else str(artifacts_root / "mlflow" / "artifacts")


def probe(uri: str, timeout_s: float) -> None:
    """A server's ``/health`` within ``timeout_s``; StageError ``registry_unreachable`` naming
    the URI and why otherwise (a file or database URI is not probed)."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        parts = urllib.parse.urlsplit(uri)
        host, port = parts.hostname or "", parts.port
    except ValueError as exc:
        raise StageError("registry_unreachable", "tracking.mlflow.uri",
                         f"tracking.mlflow.uri: not a URL: {exc}") from None  # fmt: skip
    netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
    # /health needs no user: the user part (auth goes in MLflow's variables) is left out
    shown = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    try:
        with urllib.request.urlopen(f"{shown.rstrip('/')}/health", timeout=timeout_s) as answer:
            if answer.status != 200:
                raise OSError(f"HTTP {answer.status}")
    except (OSError, urllib.error.URLError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise StageError("registry_unreachable", shown, f"tracking.mlflow.uri: the MLflow "
                         f"server {shown} did not answer within {timeout_s:g} s: {reason}") from None  # fmt: skip


@contextlib.contextmanager
def client(experiment: Experiment, artifacts_root: Path) -> Iterator[tuple[MlflowClient, str]]:
    """(a client of the experiment's store, its URI), with MLflow's retries off and each
    request's timeout the setting's."""
    try:
        from mlflow import MlflowClient
    except ImportError:
        raise StageError("missing_dependency", "mlflow", "tracking needs MLflow: pip install "
                         "'crucible_dagster[mlflow]'") from None  # fmt: skip
    tracking = (experiment.tracking or _default_tracking()).mlflow
    uri = store_uri(tracking, artifacts_root)
    probe(uri, tracking.timeout_s)
    settings = {**NO_RETRIES, "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, round(tracking.timeout_s)))}
    before = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    try:
        yield MlflowClient(tracking_uri=uri, registry_uri=uri), uri
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _default_tracking() -> Any:
    from crucible_dagster.experiment.ir import Tracking

    return Tracking()


def experiment_of(mlflow: MlflowClient, experiment: Experiment, artifacts: str | None) -> str:
    """The MLflow experiment's id (created on first use)."""
    tracking = experiment.tracking.mlflow if experiment.tracking else None
    name = (tracking.experiment_name if tracking else None) or f"crucible/{experiment.id}"
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    return str(mlflow.create_experiment(name, artifact_location=artifacts))


def lineage_tags(experiment: Experiment, run_id: str) -> dict[str, str]:
    from crucible_dagster.runtime.provenance import experiment_hash

    return {
        f"{TAG}experiment_id": experiment.id,
        f"{TAG}run_id": run_id,
        f"{TAG}ir_hash": experiment_hash(experiment),
    }


def flat_params(values: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested mapping as MLflow params (``a.b: value``; MLflow caps a value at 6000 chars)."""
    found: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            found.update(flat_params(value, f"{name}."))
        elif value is not None:
            found[name] = str(value)[:6000]
    return found
