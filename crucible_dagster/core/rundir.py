"""The run directory ``<artifacts root>/<experiment_id>/<run_id>/``: manifest, telemetry, trace, reports.

Every run writes one, standalone or under Dagster, so a run can be reproduced and
compared (``crucible diff``). Every file is written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from datetime import UTC, datetime
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from crucible_dagster.core.files import atomic_write_text
from crucible_dagster.core.ir import Experiment
from crucible_dagster.core.jsonsafe import to_jsonable

ARTIFACTS_ENV = "CRUCIBLE_ARTIFACTS_DIR"
MANIFEST = "manifest.json"
TELEMETRY = "telemetry.jsonl"
TRACKED_PACKAGES = (
    "crucible_dagster",
    "dagster",
    "pydantic",
    "numpy",
    "scipy",
    "pandas",
    "pyarrow",
    "scikit-learn",
)


def artifacts_root(explicit: str | Path | None = None) -> Path:
    return Path(explicit or os.environ.get(ARTIFACTS_ENV) or "artifacts").resolve()


def experiment_hash(experiment: Experiment) -> str:
    data = experiment.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


@cache
def package_versions() -> dict[str, str]:
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    return versions


@cache
def git_state(cwd: str) -> dict[str, Any] | None:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}


class RunDirectory:
    def __init__(self, root: str | Path | None, experiment_id: str, run_id: str):
        self.path = artifacts_root(root) / experiment_id / run_id
        self.manifest: dict[str, Any] = {}

    @classmethod
    def at_path(cls, path: str | Path) -> RunDirectory:
        """A fresh run directory at an explicit location."""
        run_dir = cls.__new__(cls)
        run_dir.path = Path(path).resolve()
        run_dir.manifest = {}
        return run_dir

    @classmethod
    def at(cls, path: str | Path) -> RunDirectory:
        """Reopen an existing run directory (each Dagster op updates the same manifest)."""
        run_dir = cls.__new__(cls)
        run_dir.path = Path(path)
        manifest = run_dir.path / MANIFEST
        run_dir.manifest = (
            json.loads(manifest.read_text(encoding="utf-8")) if manifest.exists() else {}
        )
        return run_dir

    @property
    def started(self) -> bool:
        return bool(self.manifest)

    @property
    def telemetry_path(self) -> Path:
        return self.path / TELEMETRY

    def start(
        self,
        experiment: Experiment,
        *,
        run_id: str,
        params: dict[str, Any],
        seed: int | None,
        orchestrator: str,
        **extra: Any,
    ) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.manifest = {
            "schema_version": 1,
            "experiment_id": experiment.id,
            "run_id": run_id,
            "orchestrator": orchestrator,
            "status": "running",
            "started_at": datetime.now(UTC).isoformat(),
            "ended_at": None,
            "experiment": experiment.model_dump(mode="json", by_alias=True, exclude_defaults=True),
            "experiment_hash": experiment_hash(experiment),
            "parameters": params,
            "seed": seed,
            "seeds": experiment.seeds,
            "stages": {},
            "package_versions": package_versions(),
            "git": git_state(os.getcwd()),
            "data_fingerprints": {},
            "metrics": {},
            **extra,
        }
        self.write_manifest()

    def record_stage(
        self, name: str, status: str, options: Any = None, duration_ms: float | None = None
    ) -> None:
        entry = self.manifest.setdefault("stages", {}).setdefault(name, {})
        entry["status"] = status
        if options is not None:
            entry["options"] = to_jsonable(options)
        if duration_ms is not None:
            entry["duration_ms"] = round(duration_ms, 3)

    def finish(
        self, status: str, metrics: Any, fingerprints: Any = None, failure: Any = None
    ) -> None:
        self.manifest.update(
            status=status,
            ended_at=datetime.now(UTC).isoformat(),
            metrics=to_jsonable(metrics),
            data_fingerprints=to_jsonable(fingerprints or {}),
        )
        if failure is not None:
            self.manifest["failure"] = to_jsonable(failure)
        self.write_manifest()

    def write_manifest(self) -> None:
        atomic_write_text(
            self.path / MANIFEST, json.dumps(to_jsonable(self.manifest), indent=2, sort_keys=True)
        )

    def write_text(self, name: str, text: str) -> Path:
        return atomic_write_text(self.path / name, text)


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Read a manifest given a run directory or the manifest file itself."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST
    return json.loads(path.read_text(encoding="utf-8"))
