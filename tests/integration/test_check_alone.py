"""A quality check executed alone (the UI's "Execute" on one check, issue 26 item 1): judged on
the run that made the report's latest materialization, from its recorded results, without
running the experiment again; every way the record can be missing or hostile fails the check
with the reason, never a silent skip."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import pytest

from crucible_dagster import Experiment
from crucible_dagster.dagster_plugin import definitions_from_experiments
from crucible_dagster.dagster_plugin.resource import CrucibleResource
from tests.dagster_helpers import ephemeral_instance

pytestmark = pytest.mark.integration

EXPERIMENT: dict = {
    "id": "checked_alone",
    "pipeline": [
        {
            "name": "seed",
            "module": "crucible_dagster.contrib.examples:SeedMetrics",
            "options": {"metrics": {"accuracy": 0.8}},
        },
        {"name": "report"},
    ],
    "outputs": [{"name": "summary", "formats": ["markdown"]}],
    "quality_targets": [{"name": "accuracy_floor", "metric": "accuracy", "op": ">=", "value": 0.7}],
}
REPORT = dg.AssetKey(["crucible", "checked_alone", "summary"])
CHECK = dg.AssetCheckKey(REPORT, "accuracy_floor")


def report_asset(experiment: Experiment) -> dg.AssetsDefinition:
    defs = definitions_from_experiments([experiment])
    return next(
        a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition) and REPORT in a.keys
    )


def run(
    asset: dg.AssetsDefinition, instance: dg.DagsterInstance, selection: dg.AssetSelection
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [asset], instance=instance, resources={"crucible": CrucibleResource()}, selection=selection
    )


def the_check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    evaluations = result.get_asset_check_evaluations()
    assert [e.asset_check_key for e in evaluations] == [CHECK]
    return evaluations[0]


def with_floor(value: float) -> Experiment:
    data = json.loads(json.dumps(EXPERIMENT))
    data["quality_targets"][0]["value"] = value
    return Experiment.model_validate(data)


def test_a_check_alone_judges_the_latest_report_with_todays_target(artifacts_dir: Path) -> None:
    with ephemeral_instance() as instance:
        made = run(report_asset(with_floor(0.7)), instance, dg.AssetSelection.assets(REPORT))
        assert made.success and the_check(made).passed
        runs = sorted((artifacts_dir / "checked_alone").iterdir())
        assert len(runs) == 1

        # the floor raised in the file: the check alone fails on the same recorded run
        alone = run(report_asset(with_floor(0.9)), instance, dg.AssetSelection.checks(CHECK))
        assert alone.success
        assert alone.get_asset_materialization_events() == []
        evaluation = the_check(alone)
        assert not evaluation.passed
        assert evaluation.metadata["crucible/run_id"].value == made.run_id
        assert "0.8 misses >= 0.9" in str(evaluation.metadata["detail"].value)
        # the experiment did not run again: still one run directory
        assert sorted((artifacts_dir / "checked_alone").iterdir()) == runs

        # and lowered again it passes, without a run either
        again = run(report_asset(with_floor(0.5)), instance, dg.AssetSelection.checks(CHECK))
        assert the_check(again).passed
        assert sorted((artifacts_dir / "checked_alone").iterdir()) == runs


def test_a_check_alone_before_any_report_says_to_materialize_first() -> None:
    with ephemeral_instance() as instance:
        alone = run(report_asset(with_floor(0.7)), instance, dg.AssetSelection.checks(CHECK))
        evaluation = the_check(alone)
        assert not evaluation.passed
        assert "materialize the report" in str(evaluation.metadata["detail"].value)


def _recorded(
    instance: dg.DagsterInstance, artifacts_dir: Path
) -> tuple[dg.AssetsDefinition, Path]:
    asset = report_asset(with_floor(0.7))
    made = run(asset, instance, dg.AssetSelection.assets(REPORT))
    assert made.success
    return asset, artifacts_dir / "checked_alone" / made.run_id


def _files(root: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in root.rglob("*") if not p.is_symlink()}


@pytest.mark.parametrize(
    "damage, expected",
    [
        ("deleted", "manifest.json"),
        ("torn", "manifest.json"),
        ("foreign", "experiment_id"),
        ("symlinked", "symlink"),
        ("not_json_object", "manifest.json"),
    ],
)
def test_a_damaged_record_fails_the_check_naming_it(
    artifacts_dir: Path, tmp_path: Path, damage: str, expected: str
) -> None:
    with ephemeral_instance() as instance:
        asset, run_dir = _recorded(instance, artifacts_dir)
        manifest = run_dir / "manifest.json"
        if damage == "deleted":
            manifest.unlink()
        elif damage == "torn":
            manifest.write_bytes(manifest.read_bytes()[:40])
        elif damage == "foreign":  # another experiment's record copied in
            data = json.loads(manifest.read_text())
            manifest.write_text(json.dumps({**data, "experiment_id": "another"}))
        elif damage == "symlinked":
            moved = tmp_path / "elsewhere"
            run_dir.rename(moved)
            run_dir.symlink_to(moved, target_is_directory=True)
        elif damage == "not_json_object":
            manifest.write_text("[1, 2, 3]")
        before = _files(tmp_path)
        alone = run(asset, instance, dg.AssetSelection.checks(CHECK))
        assert alone.success  # the check fails, saying why; the run itself is not an error
        evaluation = the_check(alone)
        assert not evaluation.passed
        detail = str(evaluation.metadata["detail"].value)
        assert expected in detail and "cannot be checked" in detail, detail
        assert "Traceback" not in detail
        assert _files(tmp_path) == before  # nothing written, nothing changed


@pytest.mark.parametrize("run_id", ["../../etc", "..", "a/b", "x" * 200, ""])
def test_a_run_id_that_is_a_path_is_refused(artifacts_dir: Path, run_id: str) -> None:
    """The materialization's recorded run id names a folder: a path in it never leaves the
    artifacts root."""
    with ephemeral_instance() as instance:
        asset, _ = _recorded(instance, artifacts_dir)
        instance.report_runless_asset_event(
            dg.AssetMaterialization(REPORT, metadata={"crucible/run_id": run_id})
        )
        evaluation = the_check(run(asset, instance, dg.AssetSelection.checks(CHECK)))
        assert not evaluation.passed
        assert "run id" in str(evaluation.metadata["detail"].value)


def test_a_materialization_without_a_crucible_run_says_so(artifacts_dir: Path) -> None:
    """A materialization reported by hand (no crucible run behind it) is not judged."""
    with ephemeral_instance() as instance:
        asset = report_asset(with_floor(0.7))
        instance.report_runless_asset_event(dg.AssetMaterialization(REPORT))
        evaluation = the_check(run(asset, instance, dg.AssetSelection.checks(CHECK)))
        assert not evaluation.passed
        assert "no materialization with a crucible run" in str(evaluation.metadata["detail"].value)
        assert not os.path.exists(artifacts_dir / "checked_alone")
