"""Family 5: real signals and interrupts end every run record in a terminal status."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crucible_dagster import Experiment, run
from crucible_dagster.runtime.run_record import stale_note
from tests.conftest import ROOT, finish_together, subprocess_env
from tests.hostile.conftest import Cli

SLOW = (
    "id: slow\npipeline:\n  - name: validate\n  - name: nap\n    module: tests.helpers:Sleep\n"
    "    options: {seconds: 60}\n  - name: report\n"
)


def _wait_for_stage(telemetry: Path, stage: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if telemetry.exists() and f'"stage": "{stage}"' in telemetry.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"stage {stage} never started")


def _crucible(args: list[str], artifacts_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "crucible_dagster.cli", *args],
        cwd=ROOT,
        env=subprocess_env(CRUCIBLE_ARTIFACTS_DIR=str(artifacts_dir)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_ends_the_run_as_interrupted(
    tmp_path: Path, artifacts_dir: Path, sig: signal.Signals, code: int
) -> None:
    path = tmp_path / "slow.yaml"
    path.write_text(SLOW)
    proc = _crucible(["run", str(path), "--run-id", "sig"], artifacts_dir)
    run_dir = artifacts_dir / "slow" / "sig"
    _wait_for_stage(run_dir / "telemetry.jsonl", "nap")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err, err
    assert err.strip().splitlines()[-1] in (
        "crucible: terminated (SIGTERM)",
        "crucible: interrupted",
    )
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["ended_at"]
    assert manifest["stages"]["validate"]["status"] == "completed"
    assert manifest["stages"]["report"]["status"] == "pending"
    events = [json.loads(line) for line in (run_dir / "telemetry.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "run_interrupted"
    assert stale_note(manifest) is None


@pytest.mark.parametrize("stage", ["RaisesSystemExit", "RaisesKeyboardInterrupt"])
def test_an_interrupt_raised_inside_a_stage_is_recorded(artifacts_dir: Path, stage: str) -> None:
    experiment = Experiment.model_validate(
        {
            "id": "intr",
            "pipeline": [{"name": "s", "module": f"tests.hostile.hostile_modules:{stage}"}],
        }
    )
    with pytest.raises((SystemExit, KeyboardInterrupt)):
        run(experiment, run_id="r")
    manifest = json.loads((artifacts_dir / "intr" / "r" / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert manifest["failure"]["error_type"] in ("SystemExit", "KeyboardInterrupt")


def test_the_cli_exits_non_zero_when_a_stage_calls_sys_exit(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    path.write_text(
        "id: e\npipeline:\n  - name: s\n    module: tests.hostile.hostile_modules:RaisesSystemExit\n"
    )
    said = cli("run", path)
    assert said.code == 1 and "sys.exit(0)" in said.err


@pytest.mark.slow
def test_sigkill_leaves_a_stale_run_that_crucible_names(
    tmp_path: Path, artifacts_dir: Path
) -> None:
    path = tmp_path / "slow.yaml"
    path.write_text(SLOW)
    proc = _crucible(["run", str(path), "--run-id", "kill"], artifacts_dir)
    run_dir = artifacts_dir / "slow" / "kill"
    _wait_for_stage(run_dir / "telemetry.jsonl", "nap")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "running"  # SIGKILL cannot be caught
    assert "is gone" in (stale_note(manifest) or "")


@pytest.mark.slow
def test_twenty_concurrent_runs_get_twenty_run_directories(
    tmp_path: Path, artifacts_dir: Path
) -> None:
    path = tmp_path / "e.yaml"
    path.write_text(
        "id: many\npipeline: [{name: validate}]\noutputs: [{name: r, formats: [json]}]\n"
    )
    procs = [_crucible(["run", str(path)], artifacts_dir) for _ in range(20)]
    for code, _, err in finish_together(procs, timeout=300):
        assert code == 0, err
    manifests = [
        json.loads(p.read_text()) for p in (artifacts_dir / "many").glob("*/manifest.json")
    ]
    assert len(manifests) == 20 and {m["status"] for m in manifests} == {"completed"}


@pytest.mark.slow
def test_processes_racing_for_one_run_id_exactly_one_wins(
    tmp_path: Path, artifacts_dir: Path
) -> None:
    path = tmp_path / "e.yaml"
    path.write_text("id: race\npipeline: [{name: validate}]\n")
    procs = [_crucible(["run", str(path), "--run-id", "same"], artifacts_dir) for _ in range(6)]
    # wait() would leave their pipes unread: a child that filled one would never exit
    results = [(code, err) for code, _, err in finish_together(procs, timeout=300)]
    assert sorted(code for code, _ in results) == [0, 1, 1, 1, 1, 1]
    for code, err in results:
        if code:
            assert "already exists" in err and "Traceback" not in err
    manifest = json.loads((artifacts_dir / "race" / "same" / "manifest.json").read_text())
    assert manifest["status"] == "completed"
