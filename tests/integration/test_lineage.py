"""Reports' lineage and versions (issue 12, in part): the dataset is an upstream asset shared
by the experiments that use it, observed with its fingerprint as data version; each report
asset carries the IR hash as code version, and the IR's owner and tags."""

from __future__ import annotations

import dagster as dg

from crucible_dagster import Experiment, load_experiment
from crucible_dagster.dagster_plugin import build_job, definitions_from_folder
from crucible_dagster.dagster_plugin.translator import CrucibleTranslator
from crucible_dagster.runtime.run_record import experiment_hash
from tests.conftest import ROOT
from tests.dagster_helpers import ephemeral_instance
from tests.integration.specs import asset_specs

DATASET = dg.AssetKey(["crucible", "datasets", "breast_cancer"])


def _specs() -> dict[dg.AssetKey, dg.AssetSpec]:
    return asset_specs(definitions_from_folder(ROOT / "experiments"))


def test_the_dataset_is_upstream_of_every_report_on_it_and_shared() -> None:
    specs = _specs()
    assert DATASET in specs and specs[DATASET].group_name == "crucible_datasets"
    downstream = {key for key, spec in specs.items() if DATASET in {d.asset_key for d in spec.deps}}
    assert downstream == {
        dg.AssetKey(["crucible", "classifier_comparison", "comparison"]),
        dg.AssetKey(["crucible", "classifier_sweep", "sweep"]),  # the sweep's comparison too
        dg.AssetKey(["crucible", "ensemble_demo", "comparison"]),
    }


def test_reports_carry_the_ir_hash_owner_and_tags() -> None:
    spec = _specs()[dg.AssetKey(["crucible", "classifier_comparison", "comparison"])]
    experiment = load_experiment(ROOT / "experiments" / "classifier_comparison.yaml")
    assert spec.code_version == experiment_hash(experiment)[:16]
    assert spec.owners == ["team:crucible"]
    assert {"demo", "classification"} <= set(spec.tags)


def test_a_run_observes_the_dataset_with_its_fingerprint_as_data_version() -> None:
    experiment = Experiment.model_validate(
        {
            "id": "observed",
            "seed": 1,
            "dataset": {"name": "iris", "provider": "sklearn"},
            "pipeline": [
                {
                    "name": "load",
                    "module": "crucible_dagster.contrib.classifiers:LoadSklearnDataset",
                }
            ],
        }
    )
    spec = CrucibleTranslator().get_dataset_asset_spec(experiment)
    assert spec is not None
    key = spec.key
    with ephemeral_instance() as instance:
        result = build_job(experiment).execute_in_process(instance=instance)
        observation = instance.get_latest_data_version_record(key)
        assert observation is not None and observation.run_id == result.run_id
        fingerprints = result.output_for_node("load").assigns["data_fingerprints"]
        assert observation.asset_observation is not None
        tags = observation.asset_observation.tags or {}
        assert tags["dagster/data_version"] == fingerprints["iris"][:32]


def test_automation_conditions_come_from_the_ir() -> None:
    from crucible_dagster.dagster_plugin import definitions_from_experiments

    base = {
        "id": "auto",
        "dataset": {"name": "iris"},
        "pipeline": [{"name": "validate"}, {"name": "report"}],
        "outputs": [{"name": "summary", "formats": ["json"]}],
        "schedule": {"cron": "0 4 * * *"},
    }
    eager = definitions_from_experiments(
        [Experiment.model_validate({**base, "automation": "eager"})]
    )
    spec = asset_specs(eager)[dg.AssetKey(["crucible", "auto", "summary"])]
    assert spec.automation_condition is not None
    assert (
        "eager" in spec.automation_condition.get_label().lower() or spec.automation_condition.name
    )
    assert eager.schedules  # eager reacts to data; the schedule still runs the job
    cron = definitions_from_experiments(
        [Experiment.model_validate({**base, "automation": "on_cron"})]
    )
    spec = asset_specs(cron)[dg.AssetKey(["crucible", "auto", "summary"])]
    assert spec.automation_condition == dg.AutomationCondition.on_cron("0 4 * * *", "UTC")
    assert not cron.schedules  # the condition replaces the job schedule
