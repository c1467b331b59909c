"""What a run records about where it came from: the experiment's hash, the versions of the
packages that shape its numbers, and the git commit it ran at (read once a process)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from crucible_dagster.experiment.ir import Experiment

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


def _git(cwd: str, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
    )
    return done.stdout.strip()


@cache
def git_state(cwd: str) -> dict[str, Any] | None:
    try:
        commit = _git(cwd, "rev-parse", "HEAD")
        dirty = _git(cwd, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}
