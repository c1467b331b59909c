"""Hostile cases for the run driver: whatever ends a run early, every record it began ends in a
terminal status, says why, and nothing is written outside the run's own place.

Real Dagster jobs (in process) and real files; the hostile part is a stage, user code, that
plants a directory where the sweep's report goes, or leaves a value no store can keep.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crucible_dagster import Context, Experiment, Stage
from crucible_dagster.reports.sweep import FORMATS
from tests.hostile.conftest import snapshot

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class PlantsReportDirectory(Stage):
    """A trial stage that makes a directory where the sweep's markdown report will be written."""

    name = "plants_report_directory"

    def run(self, ctx: Context, options: Any) -> Context:
        assert ctx.run_dir is not None
        sweep_dir = Path(ctx.run_dir).parent.parent  # <sweep>/trials/<trial id>
        (sweep_dir / FORMATS["markdown"]).mkdir(exist_ok=True)
        return ctx.put_metric("score", 0.5)


def _manifests(root: Path) -> dict[str, dict[str, Any]]:
    return {
        str(p.parent.relative_to(root)): json.loads(p.read_text())
        for p in sorted(root.rglob("manifest.json"))
    }


def test_a_sweep_whose_reports_cannot_be_written_ends_failed(
    artifacts_dir: Path, tmp_path: Path
) -> None:
    """The compare step fails writing the report: the sweep's record says ``failed`` with the
    file and the error (before the driver it stayed ``running`` for ever)."""
    from crucible_dagster.dagster_plugin import build_job
    from tests.dagster_helpers import ephemeral_instance

    experiment = Experiment.model_validate(
        {
            "id": "planted",
            "seeds": [1, 2],
            "sweep": {"metric": "score"},
            "pipeline": [{"name": "plant", "module": f"{__name__}:PlantsReportDirectory"}],
        }
    )
    with ephemeral_instance() as instance:
        result = build_job(experiment).execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    manifests = _manifests(artifacts_dir)
    sweep = manifests[f"planted/{result.run_id}"]
    assert sweep["status"] == "failed"
    assert sweep["failure"]["error_type"] == "IsADirectoryError"
    assert FORMATS["markdown"] in sweep["failure"]["message"]
    assert "Traceback" not in sweep["failure"]["message"]
    assert {m["status"] for m in manifests.values()} <= {"completed", "failed", "interrupted"}
    trials = [k for k in manifests if "/trials/" in k]
    assert len(trials) == 2 and all(manifests[k]["status"] == "completed" for k in trials)
    # nothing outside the sweep's own folder: the planted directory is inside it, empty
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifacts"]
    assert sorted(p.name for p in artifacts_dir.iterdir()) == ["planted"]
    assert snapshot(artifacts_dir / "planted" / result.run_id / FORMATS["markdown"]) == {}


def test_a_last_stage_whose_output_cannot_be_stored_fails_the_ended_run(
    artifacts_dir: Path, tmp_path: Path
) -> None:
    """The last stage ended the run ``completed``; the IO manager then cannot store its output,
    so the run is failed after all, naming the stage and the value."""
    from crucible_dagster.dagster_plugin import CrucibleContextIOManager, build_job
    from tests.dagster_helpers import ephemeral_instance

    experiment = Experiment.model_validate(
        {
            "id": "unstorable_last",
            "pipeline": [
                {"name": "bad", "module": "tests.hostile.hostile_modules:AssignsUnstorable"}
            ],
        }
    )
    io_manager = CrucibleContextIOManager(base_dir=str(tmp_path / "io"))
    with ephemeral_instance() as instance:
        result = build_job(experiment, io_manager=io_manager).execute_in_process(
            instance=instance, raise_on_error=False
        )
    assert not result.success
    manifest = _manifests(artifacts_dir)[f"unstorable_last/{result.run_id}"]
    assert manifest["status"] == "failed"
    assert manifest["failure"]["error_type"] == "UnstorableValue"
    assert manifest["failure"]["stage"] == "bad"
    assert "handle" in manifest["failure"]["message"]
