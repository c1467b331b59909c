"""`make demo` prints the run's progress and summary, while Dagster's event log keeps every event."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import ROOT, subprocess_env

STAGES = ["validate", "load_dataset", "cross_validate", "bench", "report"]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_demo_is_quiet_and_the_event_log_is_complete(tmp_path: Path) -> None:
    from tests.dagster_helpers import instance_at

    home, artifacts = tmp_path / "home", tmp_path / "artifacts"
    command = ["make", "-s", "-o", ".venv/.installed", "demo"]  # -o: the venv counts as installed
    done = subprocess.run(
        [*command, f"DAGSTER_HOME={home}", f"CRUCIBLE_ARTIFACTS_DIR={artifacts}"],
        cwd=ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    said = done.stdout + done.stderr
    assert done.returncode == 0, said[-3000:]
    assert " - DEBUG - " not in said and "Traceback" not in said and "Warning" not in said, said
    assert len(said.splitlines()) < 30, said
    printed = [line.split()[0] for line in said.splitlines() if " done in " in line]
    assert printed == STAGES, said
    assert "Experiment classifier_comparison: run " in said
    with instance_at(home) as instance:
        (run,) = instance.get_runs()
        events = [e.dagster_event for e in instance.all_logs(run.run_id) if e.dagster_event]
    kinds = Counter(e.event_type.name for e in events)
    # one step per stage in the report asset's graph, then the one evaluating its checks
    steps = [f"classifier_comparison__stages.{s}" for s in [*STAGES, "checks"]]
    assert [e.step_key for e in events if e.event_type.name == "STEP_START"] == steps
    assert kinds["STEP_START"] == kinds["STEP_SUCCESS"] == len(steps), kinds
    # each stage's Context is stored for the next, but the last's: no asset reads it
    assert kinds["RUN_SUCCESS"] == 1 and kinds["HANDLED_OUTPUT"] == len(STAGES) - 1, kinds
