"""Spec tests on the built definitions: names, tags, config schemas and defaults."""

from __future__ import annotations

import dataclasses
from typing import Any

import dagster as dg

from crucible_dagster import Experiment
from crucible_dagster.dagster_plugin import CrucibleTranslator, build_job, definitions_from_folder
from crucible_dagster.dagster_plugin.translator import JobSpec
from tests.conftest import ROOT
from tests.integration.specs import asset_specs, stage_graph


def _defaults(job: dg.JobDefinition, op_name: str) -> dict[str, object]:
    definition = stage_graph(job).node_named(op_name).definition
    fields = definition.config_schema.as_field().config_type.fields
    return {k: f.default_value for k, f in fields.items() if f.default_provided}


def test_job_and_op_names_follow_the_pipeline() -> None:
    defs = definitions_from_folder(ROOT / "experiments")
    job = defs.resolve_job_def("core_pipeline_demo")
    graph = stage_graph(job)  # the report asset's graph: one op per stage, then its checks
    assert graph.name == "core_pipeline_demo__stages"
    assert [n.name for n in graph.nodes_in_topological_order] == [
        "validate",
        "seed_examples",
        "data_checks",
        "guardrails",
        "report",
    ]
    assert job.tags["crucible/experiment"] == "core_pipeline_demo"
    assert len(job.tags["crucible/ir_hash"]) == 16
    op = graph.node_named("data_checks").definition
    assert op.tags["crucible/stage"] == "data_checks"
    assert op.tags["crucible/module"] == "crucible_dagster.stages.data_checks:DataChecksStage"
    assert (
        op.description == "Lightweight validation of examples stored in context.assigns['examples']"
    )
    assert job.executor_def is dg.in_process_executor


def test_config_schema_prefilled_with_written_options() -> None:
    job = definitions_from_folder(ROOT / "experiments").resolve_job_def("core_pipeline_demo")
    # what the file wrote is pre-filled; a stage's own defaults are described, not pre-filled
    assert _defaults(job, "data_checks") == {"required_fields": ["input", "output"]}
    assert _defaults(job, "guardrails") == {"adapter": "pii", "fail_on_violation": False}
    fields = (
        stage_graph(job).node_named("data_checks").definition.config_schema.as_field()
    ).config_type.fields
    assert (
        fields["required_fields"].config_type.inner_type.kind.name == "ARRAY"
    )  # Noneable(Array(String))
    assert not fields["checker"].is_required
    assert not fields["fail_fast"].default_provided
    assert "(default: false)" in (fields["fail_fast"].description or "")


def test_types_without_a_dagster_equivalent_fall_back_to_any() -> None:
    exp = Experiment.model_validate(
        {
            "id": "t",
            "pipeline": [
                {"name": "cv", "module": "crucible_dagster.contrib.classifiers:CrossValidate"}
            ],
        }
    )
    job = build_job(exp)
    fields = job.graph.node_named("cv").definition.config_schema.as_field().config_type.fields
    assert fields["scoring"].config_type.inner_type.kind.name == "ENUM"
    assert fields["models"].config_type.inner_type.kind.name == "MAP"
    assert not fields["folds"].default_provided and not fields["folds"].is_required
    assert (fields["folds"].description or "").endswith("(default: 10)")


def test_config_comes_from_the_options_model_with_bounds_in_descriptions() -> None:
    exp = Experiment.model_validate(
        {
            "id": "t",
            "pipeline": [
                {"name": "cv", "module": "crucible_dagster.contrib.classifiers:CrossValidate"},
                {"name": "bench"},
            ],
        }
    )
    job = build_job(exp)
    cv = _fields(job, "cv")
    assert cv["folds"].config_type.inner_type.given_name == "Int"
    assert cv["folds"].description == (
        "Folds per repetition (stratified). (>= 2; <= 50; checked when the run starts, before "
        "any stage runs) (default: 10)"
    )
    # a nested options model is typed field by field (issue 26 item 4: `models` was Any)
    models = cv["models"].config_type.inner_type
    assert models.kind.name == "MAP"
    spec = models.inner_type.fields
    assert spec["estimator"].config_type.kind.name == "ENUM" and spec["estimator"].is_required
    assert spec["params"].config_type.kind.name == "MAP" and not spec["params"].is_required
    assert "one of 'accuracy', 'balanced_accuracy', 'f1', 'roc_auc'" in cv["scoring"].description
    bench_fields = _fields(job, "bench")
    assert bench_fields["alpha"].config_type.inner_type.given_name == "Float"
    assert "> 0; < 1" in bench_fields["alpha"].description
    tests = bench_fields["tests"].config_type.inner_type
    assert tests.kind.name == "ARRAY" and tests.inner_type.given_name == "String"
    assert "'ttest'" in bench_fields["tests"].description


def _fields(job: dg.JobDefinition, node: str) -> dict[str, Any]:
    definition = job.graph.node_named(node).definition
    return definition.config_schema.as_field().config_type.fields


def test_disabled_stage_has_no_op_and_multiprocess_executor() -> None:
    exp = Experiment.model_validate(
        {
            "id": "t",
            "executor": "multiprocess",
            "pipeline": [{"name": "validate"}, {"name": "report", "enabled": False}],
        }
    )
    job = build_job(exp)
    assert [n.name for n in job.graph.nodes] == ["validate"]
    assert job.executor_def.name == "multiprocess"


def test_forkserver_preloads_modules_that_exist() -> None:
    """The forkserver skips a preload it cannot import without a word: a Dagster release that
    moves one of these modules would silently bring back its import in every step process."""
    import importlib

    from crucible_dagster.dagster_plugin.factory import PRELOAD

    for module in PRELOAD:
        importlib.import_module(module)


def test_translator_is_the_one_override_point() -> None:
    class Prefixed(CrucibleTranslator):
        def get_job_spec(self, experiment: Experiment) -> JobSpec:
            return dataclasses.replace(
                super().get_job_spec(experiment), name=f"exp_{experiment.id}"
            )

        def get_asset_spec(self, experiment, output):
            spec = super().get_asset_spec(experiment, output)
            return spec.replace_attributes(key=dg.AssetKey(["reports", experiment.id]))

    defs = definitions_from_folder(ROOT / "experiments", translator=Prefixed())
    assert defs.resolve_job_def("exp_trace_demo").name == "exp_trace_demo"
    assert dg.AssetKey(["reports", "trace_demo"]) in asset_specs(defs)


def test_schedule_from_the_experiment() -> None:
    defs = definitions_from_folder(ROOT / "experiments")
    schedule = defs.resolve_schedule_def("classifier_comparison_schedule")
    assert schedule.cron_schedule == "0 3 * * 1"
    assert schedule.execution_timezone == "UTC"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert schedule.job_name == "classifier_comparison"


def test_report_asset_spec() -> None:
    defs = definitions_from_folder(ROOT / "experiments")
    spec = asset_specs(defs)[dg.AssetKey(["crucible", "core_pipeline_demo", "summary"])]
    assert spec.group_name == "core_pipeline_demo"
    assert "summary" in (spec.description or "")


def test_a_report_asset_names_its_experiments_schedule() -> None:
    """Issue 26 item 2: the schedule runs the job, which is the report asset's job, so Dagster
    lists the schedule under the asset's automations (it targets a job holding the asset); the
    asset's description names it too (and the experiment's own description)."""
    from dagster._core.remote_representation.external_data import asset_node_snaps_from_repo

    from crucible_dagster.dagster_plugin import definitions_from_experiments
    from crucible_dagster.dagster_plugin.translator import CrucibleTranslator

    exp = Experiment.model_validate(
        {
            "id": "nightly",
            "description": "Nightly accuracy.",
            "schedule": {"cron": "0 3 * * *"},
            "pipeline": [{"name": "report"}],
            "outputs": [{"name": "summary", "formats": ["markdown"]}],
        }
    )
    description = CrucibleTranslator().get_asset_spec(exp, exp.outputs[0]).description or ""
    assert "Nightly accuracy." in description
    assert "Scheduled: '0 3 * * *' (UTC, stopped by default) runs the job nightly" in description
    repository = definitions_from_experiments([exp]).get_repository_def()
    schedule = repository.get_schedule_def("nightly_schedule")
    # what the UI's automations of an asset read: the schedules of the jobs that hold it
    (snap,) = [s for s in asset_node_snaps_from_repo(repository) if s.asset_key == exp_key(exp)]
    assert schedule.job_name in snap.job_names and schedule.job_name == "nightly"


def exp_key(experiment: Experiment) -> dg.AssetKey:
    return dg.AssetKey(["crucible", experiment.id, experiment.outputs[0].name])
