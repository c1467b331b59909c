"""The report asset and its quality checks in Dagster, after `dagster job execute`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import dagster as dg
import pytest
from dagster import DagsterInstance

from tests.conftest import ROOT, subprocess_env
from tests.dagster_helpers import ephemeral_instance, instance_at
from tests.integration.test_dagster_cli import asset_materialize, dagster_bin

EXPERIMENT = """
id: {id}
pipeline:
  - name: seed
    module: crucible_dagster.contrib.examples:SeedMetrics
    options:
      metrics:
        accuracy: 0.8
        scores:
          treatment: [0.82, 0.85, 0.84, 0.86, 0.83, 0.85]
          baseline: [0.70, 0.72, 0.71, 0.69, 0.73, 0.70]
  - name: bench
    options: {{data_source: metrics, data_key: scores, tests: [ttest]}}
  - name: report
outputs:
  - name: summary
    formats: [markdown, csv]
quality_targets:
  - {{name: beats_baseline, kind: superiority, treatment: treatment, baseline: baseline, margin: 0.05, severity: warn}}
  - {{name: accuracy_floor, metric: accuracy, op: ">=", value: 0.9, severity: {severity}, fail_run: {fail_run}}}
"""


@pytest.fixture
def project(tmp_path: Path, artifacts_dir: Path) -> tuple[Path, dict[str, str]]:
    experiments = tmp_path / "experiments"
    experiments.mkdir()
    (experiments / "soft.yaml").write_text(
        EXPERIMENT.format(id="soft_targets", severity="warn", fail_run="false")
    )
    (experiments / "hard.yaml").write_text(
        EXPERIMENT.format(id="hard_targets", severity="error", fail_run="true")
    )
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    return home, subprocess_env(
        DAGSTER_HOME=str(home),
        CRUCIBLE_ARTIFACTS_DIR=str(artifacts_dir),
        CRUCIBLE_EXPERIMENTS_DIR=str(experiments),
    )


def execute(job: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [dagster_bin(), "job", "execute", "-f", "definitions.py", "-j", job],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def checks_of(instance: DagsterInstance, run_id: str) -> dict[str, dg.AssetCheckEvaluation]:
    records = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    evaluations = [r.dagster_event.event_specific_data for r in records if r.dagster_event]
    return {e.check_name: e for e in evaluations if isinstance(e, dg.AssetCheckEvaluation)}


def test_report_asset_and_checks(project: tuple[Path, dict[str, str]]) -> None:
    home, env = project
    soft = execute("soft_targets", env)
    assert soft.returncode == 0, soft.stderr[-3000:]
    hard = execute("hard_targets", env)
    assert hard.returncode != 0
    with instance_at(home) as instance:
        runs = {r.job_name: r for r in instance.get_runs()}
        assert runs["soft_targets"].status == dg.DagsterRunStatus.SUCCESS
        assert runs["hard_targets"].status == dg.DagsterRunStatus.FAILURE

        event = instance.get_latest_materialization_event(
            dg.AssetKey(["crucible", "soft_targets", "summary"])
        )
        assert event is not None and event.run_id == runs["soft_targets"].run_id
        metadata = event.asset_materialization.metadata
        preview = metadata["preview"].value
        assert preview.startswith("# Experiment soft_targets")
        # a readable summary: verdicts and the table, no JSON or trace dumps, plots inline as
        # images that need no file (never a link to a path on the machine that ran it)
        assert "## Quality targets" in preview and "## Comparisons" in preview
        assert "```json" not in preview and "mermaid" not in preview
        assert "![forest plot](data:image/svg+xml;base64," in preview
        assert "](/" not in preview and ".svg)" not in preview
        table = metadata["comparisons"]
        assert isinstance(table, dg.TableMetadataValue)
        (row,) = table.records
        assert row.data["comparison"] == "treatment − baseline" and row.data["p"] < 0.001
        columns = [c.name for c in table.schema.columns]
        assert {"test", "ci_low", "n"} <= set(columns)
        # one comparison, nothing corrected: p_adjusted would repeat p, so it is left out
        assert "p_adjusted" not in columns
        # rounded to the digits that mean something (issue 26 item 8)
        for name in ("difference", "ci_low", "ci_high"):
            value = row.data[name]
            assert value == float(f"{value:.4g}"), (name, value)
        targets = metadata["quality_targets"]
        assert isinstance(targets, dg.TableMetadataValue)
        assert [(r.data["target"], r.data["verdict"]) for r in targets.records] == [
            ("beats_baseline", "pass"),
            ("accuracy_floor", "fail"),
        ]
        assert not any(key.startswith("quality/") for key in metadata)  # no JSON blobs
        # headline figures plot across runs (a target's metric); the rest is one JSON entry
        assert metadata["accuracy"].value == 0.8
        stored = metadata["metrics"]
        assert isinstance(stored, dg.JsonMetadataValue) and "bench.alpha" not in metadata
        assert isinstance(stored.data, dict) and stored.data["accuracy"] == 0.8
        assert Path(str(metadata["path/csv"].value)).exists()

        soft_checks = checks_of(instance, runs["soft_targets"].run_id)
        assert soft_checks["beats_baseline"].passed
        assert soft_checks["beats_baseline"].metadata["ci_low"].value > 0.05
        assert soft_checks["beats_baseline"].metadata["p_value"].value < 0.001
        assert not soft_checks["accuracy_floor"].passed
        assert soft_checks["accuracy_floor"].severity == dg.AssetCheckSeverity.WARN

        hard_checks = checks_of(instance, runs["hard_targets"].run_id)
        assert not hard_checks["accuracy_floor"].passed
        assert hard_checks["accuracy_floor"].severity == dg.AssetCheckSeverity.ERROR
        assert (
            instance.get_latest_materialization_event(
                dg.AssetKey(["crucible", "hard_targets", "summary"])
            )
            is not None
        )
        failure = [
            r
            for r in instance.all_logs(
                runs["hard_targets"].run_id, of_type=dg.DagsterEventType.STEP_FAILURE
            )
        ]
        assert "accuracy_floor" in failure[0].dagster_event.step_failure_data.error.message


def test_checks_are_declared_on_the_report_asset() -> None:
    from crucible_dagster.dagster_plugin import definitions_from_folder

    defs = definitions_from_folder(ROOT / "experiments")
    keys = set(defs.get_repository_def().asset_graph.asset_check_keys)
    assert (
        dg.AssetCheckKey(
            dg.AssetKey(["crucible", "classifier_comparison", "comparison"]), "logistic_accuracy"
        )
        in keys
    )


def test_materialize_a_report_asset_from_the_shell(project: tuple[Path, dict[str, str]]) -> None:
    """What the catalog's Materialize button does: run the experiment, record its reports."""
    home, env = project
    asset_materialize(env, "--select", "crucible/soft_targets/summary")
    key = dg.AssetKey(["crucible", "soft_targets", "summary"])
    with instance_at(home) as instance:
        event = instance.get_latest_materialization_event(key)
        assert event is not None and event.asset_materialization is not None
        materialization = event.asset_materialization
        assert isinstance(materialization.metadata["comparisons"], dg.TableMetadataValue)
        from crucible_dagster import load_experiment
        from crucible_dagster.runtime.run_record import experiment_hash

        experiment = load_experiment(Path(env["CRUCIBLE_EXPERIMENTS_DIR"]) / "soft.yaml")
        assert materialization.tags is not None
        assert materialization.tags["dagster/code_version"] == experiment_hash(experiment)[:16]
        checks = checks_of(instance, event.run_id)
        assert checks["beats_baseline"].passed and not checks["accuracy_floor"].passed
        run = instance.get_run_by_id(event.run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        # the run is found by experiment, as the job's runs are (issue 26 item 2)
        assert run.tags["crucible/experiment"] == "soft_targets"
        assert run.tags["crucible/ir_hash"] == experiment_hash(experiment)[:16]


def test_a_sweep_comparison_is_materializable(artifacts_dir: Path) -> None:
    from crucible_dagster.dagster_plugin import definitions_from_experiments
    from crucible_dagster.dagster_plugin.resource import CrucibleResource
    from tests.integration.jobs import sweep_experiment

    defs = definitions_from_experiments([sweep_experiment()])
    (assets,) = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    with ephemeral_instance() as instance:
        result = dg.materialize(
            [assets], instance=instance, resources={"crucible": CrucibleResource()}
        )
        assert result.success
        (materialization,) = result.asset_materializations_for_node(assets.node_def.name)
        assert materialization.asset_key == dg.AssetKey(["crucible", "light_sweep", "sweep"])
    assert len(list((artifacts_dir / "light_sweep" / result.run_id / "trials").iterdir())) == 12


def test_headline_metrics_follow_the_report_stage_whatever_it_is_named() -> None:
    from crucible_dagster import Experiment
    from crucible_dagster.dagster_plugin.report_events import headline_names

    experiment = Experiment.model_validate(
        {
            "id": "named",
            "pipeline": [
                {"name": "summary", "module": "report", "options": {"headline_metrics": ["a.b"]}}
            ],
        }
    )
    assert headline_names(experiment) == ["a.b"]


def test_the_comparison_table_drops_repeated_and_empty_columns() -> None:
    """Several comparisons with a correction keep p_adjusted; a column empty in every row, or
    equal to an earlier one in every row, is left out; figures are rounded."""
    from crucible_dagster.dagster_plugin.report_events import _informative_columns

    def record(p: float, adjusted: float) -> dict[str, object]:
        return {
            "comparison": "a − b", "test": "ttest", "statistic": 2.123, "df": "9", "p": p,
            "p_adjusted": adjusted, "difference": 0.1, "ci_low": 0.01, "ci_high": 0.2,
            "effect_size": "", "effect": None, "effect_ci_low": None, "effect_ci_high": None,
            "n": "10, 10",
        }  # fmt: skip

    corrected = [n for n, _ in _informative_columns([record(0.01, 0.03), record(0.2, 0.4)])]
    assert "p_adjusted" in corrected and "effect" not in corrected
    assert "effect_size" not in corrected  # empty in every row
    same = [n for n, _ in _informative_columns([record(0.01, 0.01), record(0.2, 0.2)])]
    assert "p_adjusted" not in same and "p" in same
