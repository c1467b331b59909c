"""`dagster job execute -f definitions.py -j <experiment>` in a subprocess with a temporary DAGSTER_HOME."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg

from tests.conftest import ROOT, subprocess_env
from tests.dagster_helpers import instance_at


def dagster_bin() -> str:
    candidate = Path(sys.executable).parent / "dagster"
    return str(candidate) if candidate.exists() else "dagster"


def asset_materialize(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``dagster asset materialize -f definitions.py ARGS`` from the checkout; must succeed."""
    done = subprocess.run(
        [dagster_bin(), "asset", "materialize", "-f", "definitions.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def job_execute(
    job: str, tmp_path: Path, artifacts_dir: Path, timeout: float = 300, *args: str
) -> Path:
    """``dagster job execute -f definitions.py -j JOB ARGS`` on a fresh SQLite DAGSTER_HOME
    (returned); must succeed."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    proc = subprocess.run(
        [dagster_bin(), "job", "execute", "-f", "definitions.py", "-j", job, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=subprocess_env(DAGSTER_HOME=str(home), CRUCIBLE_ARTIFACTS_DIR=str(artifacts_dir)),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return home


def test_dagster_job_execute_core_pipeline_demo(tmp_path: Path, artifacts_dir: Path) -> None:
    """With a run config file of a plain job's shape (``ops: {<stage>: {config}}``, resources,
    loggers): the job is its report asset's, whose config mapping takes that shape."""
    config = tmp_path / "run.yaml"
    config.write_text(
        "ops: {data_checks: {config: {required_fields: [input], fail_fast: true}}}\n"
        "resources: {crucible: {config: {seed: 11}}}\n"
        "loggers: {console: {config: {log_level: INFO}}}\n"
    )
    home = job_execute("core_pipeline_demo", tmp_path, artifacts_dir, 300, "-c", str(config))
    with instance_at(home) as instance:
        (run,) = instance.get_runs()
        assert run.job_name == "core_pipeline_demo" and run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags["crucible/experiment"] == "core_pipeline_demo"
        event = instance.get_latest_materialization_event(
            dg.AssetKey(["crucible", "core_pipeline_demo", "summary"])
        )
        assert event is not None and event.run_id == run.run_id
    manifest = json.loads(
        (artifacts_dir / "core_pipeline_demo" / run.run_id / "manifest.json").read_text()
    )
    assert manifest["status"] == "completed"
    assert manifest["metrics"]["guardrails"] == {"total": 3, "violations": 0}
    assert manifest["seed"] == 11
    assert manifest["stages"]["data_checks"]["options"]["required_fields"] == ["input"]
