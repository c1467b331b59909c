"""The adapter's builders take every name from the translator's spec methods, so overriding one
``get_*_spec`` renames each place that uses it: ops and nodes, the sweep's steps, and the
events a run records (a check evaluation must name the check the definitions declared)."""

from __future__ import annotations

import dataclasses

import dagster as dg

from crucible_dagster import Context, Experiment, Stage, loads_experiment
from crucible_dagster.dagster_plugin.factory import build_job
from crucible_dagster.dagster_plugin.ops import dataset_observations
from crucible_dagster.dagster_plugin.report_events import quality_check_specs, report_events
from crucible_dagster.dagster_plugin.translator import CrucibleTranslator, OpSpec
from crucible_dagster.experiment.ir import QualityTarget, RegressionBaseline
from tests.integration.events import sweep_graph
from tests.integration.specs import stage_graph

CHECKED = (
    "id: named\npipeline:\n  - name: validate\n"
    "outputs: [{name: summary}]\nquality_targets: [{name: enough, metric: m, value: 0.5}]\n"
)
SWEEP = (
    "id: swept\npipeline:\n  - name: validate\nparameters: {a: [1, 2]}\nsweep: {metric: m}\n"
    "dagster: {sweep: {pool: gpu_trials}}\n"
)


class Lab(CrucibleTranslator):
    """Every kind of spec the builders read, renamed."""

    def get_op_spec(
        self, experiment: Experiment, step: str, stage_cls: type[Stage] | None = None
    ) -> OpSpec:
        spec = super().get_op_spec(experiment, step, stage_cls)
        return dataclasses.replace(
            spec, name=f"lab__{spec.name}", node_name=f"lab_{step}", tags={"lab": step}
        )

    def get_asset_spec(self, experiment: Experiment, output: object) -> dg.AssetSpec:
        spec = super().get_asset_spec(experiment, output)  # type: ignore[arg-type]
        return spec.replace_attributes(key=dg.AssetKey(["lab", experiment.id]))

    def get_asset_check_spec(
        self, experiment: Experiment, check: QualityTarget | RegressionBaseline
    ) -> dg.AssetCheckSpec | None:
        spec = super().get_asset_check_spec(experiment, check)
        assert spec is not None
        return dg.AssetCheckSpec(name=f"lab_{spec.name}", asset=dg.AssetKey(["lab", "checks"]))

    def get_dataset_asset_spec(self, experiment: Experiment) -> dg.AssetSpec | None:
        return dg.AssetSpec(key=dg.AssetKey(["lab", "data"]))


def test_a_check_evaluation_names_the_check_the_spec_declared() -> None:
    """A check renamed and moved by ``get_asset_check_spec`` is evaluated under that name, on
    that asset (the evaluation used to carry the target's name on the default report asset,
    a check the definitions never declared); the report follows ``get_asset_spec``."""
    experiment = loads_experiment(CHECKED)
    before = Context(experiment.id, "r1", experiment=experiment)
    verdict = {"name": "enough", "passed": True, "severity": "error", "message": "ok"}
    after = before.add_output({"kind": "report", "name": "summary", "rendered": []})
    after = after.put_metric("quality_targets", [verdict])
    events = list(report_events(before, after, experiment, Lab()))
    materialized = [e.asset_key for e in events if isinstance(e, dg.AssetMaterialization)]
    assert materialized == [dg.AssetKey(["lab", "named"])]
    evaluated = [e for e in events if isinstance(e, dg.AssetCheckEvaluation)]
    declared = quality_check_specs(experiment, Lab())
    assert [(e.asset_key, e.check_name) for e in evaluated] == [
        (spec.asset_key, spec.name) for spec in declared
    ]
    assert declared[0].key == dg.AssetCheckKey(dg.AssetKey(["lab", "checks"]), "lab_enough")


def test_the_dataset_observation_follows_the_dataset_spec() -> None:
    experiment = Experiment.model_validate(
        {
            "id": "observed",
            "dataset": {"name": "iris", "provider": "sklearn"},
            "pipeline": [{"name": "validate"}],
        }
    )
    before = Context(experiment.id, "r1", experiment=experiment)
    after = dataclasses.replace(before, assigns={"data_fingerprints": {"iris": "f" * 40}})
    observed = list(dataset_observations(before, after, experiment, Lab()))
    assert [o.asset_key for o in observed] == [dg.AssetKey(["lab", "data"])]


def test_ops_and_sweep_steps_follow_the_op_spec_and_the_dagster_block() -> None:
    job = build_job(loads_experiment(CHECKED), translator=Lab())
    graph = stage_graph(job)  # the report asset's: the stage, then the op of its checks
    assert {n.name: n.definition.name for n in graph.nodes} == {
        "lab_validate": "lab__named__validate",
        "lab_checks": "lab__named__checks",
    }
    assert graph.node_named("lab_validate").definition.tags == {"lab": "validate"}

    sweep = build_job(loads_experiment(SWEEP), translator=Lab())
    nodes = {n.name: n.definition for n in sweep_graph(sweep).nodes}
    trial = nodes["lab_run_trial"]
    assert isinstance(trial, dg.OpDefinition)
    assert sorted(nodes) == ["lab_compare_trials", "lab_plan_trials", "lab_run_trial"]
    assert (trial.name, trial.tags["lab"]) == ("lab__swept__run_trial", "run_trial")
    assert trial.pool == "gpu_trials"  # dagster.sweep.pool, the new spelling


def test_the_report_stage_is_recognised_by_its_registered_name_and_its_class_path() -> None:
    """A stage given by the report stage's full module path gets the report's headline figures,
    so the path the adapter compares against must be where the class lives."""
    from crucible_dagster.dagster_plugin.report_events import REPORT_STAGE
    from crucible_dagster.reports.stage import ReportStage
    from crucible_dagster.runtime.registry import Registry

    name, path = REPORT_STAGE
    assert Registry().resolve(name) is ReportStage
    assert Registry().resolve(path) is ReportStage
