"""The lifecycle under Dagster: the model asset and its checks (the promotion gate, drift
against the data the champion was trained on), the lineage they read, and `dagster job
execute` of the demo."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from crucible_dagster.experiment.loading import loads_experiment
from crucible_dagster.runtime.runner import run
from tests.conftest import ROOT, subprocess_env
from tests.integration.lifecycle_store import DEMO, demo, empty_store, run_demo, store

pytestmark = pytest.mark.integration
__all__ = ["empty_store", "store"]  # the fixtures this module's tests take


def test_as_a_dagster_job_the_model_asset_check_fails_when_promotion_is_refused(store: Any) -> None:
    import dagster as dg

    from crucible_dagster.dagster_plugin import definitions_from_experiments

    experiment = loads_experiment(DEMO.read_text())
    defs = definitions_from_experiments([experiment])
    job = defs.resolve_job_def("train_and_promote")
    instance = dg.DagsterInstance.ephemeral()
    key = dg.AssetKey(["crucible", "models", "cancer-classifier"])
    evaluations = []
    for architecture in ("LogisticRegression", "DummyClassifier"):
        config = {"ops": {"train": {"config": {"architecture": architecture}}}}
        result = job.execute_in_process(run_config=config, instance=instance)
        assert result.success
        evaluations += [e.event_specific_data for e in result.all_events
                        if e.event_type_value == "ASSET_CHECK_EVALUATION"
                        and e.event_specific_data.asset_key == key]  # fmt: skip
        materialized = instance.get_latest_materialization_event(key).asset_materialization
        assert materialized.metadata["decision"].value == (
            "promoted" if architecture == "LogisticRegression" else "refused"
        )
    assert [e.passed for e in evaluations] == [True, False]
    # executed alone, the check re-reads what the experiment's latest run recorded
    check = next(
        c for c in defs.asset_checks or [] if any(k.asset_key == key for k in c.check_keys)
    )
    alone = cast(dg.AssetCheckResult, check(dg.build_asset_check_context(instance=instance)))
    assert alone.passed is False and alone.metadata["decision"].value == "refused"
    assert alone.metadata["crucible/rechecked"].value is True
    assert evaluations[1].metadata["champion_version"].value == "1"
    lineage = defs.resolve_asset_graph().get(key)
    assert dg.AssetKey(["crucible", "train_and_promote", "lifecycle"]) in lineage.parent_keys


def test_dagster_job_execute_runs_the_demo(store: Any, artifacts_dir: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = subprocess_env(DAGSTER_HOME=str(home), CRUCIBLE_ARTIFACTS_DIR=str(artifacts_dir))
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "job", "execute", "-f", str(ROOT / "definitions.py"),
         "-j", "train_and_promote"],
        env=env, capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert str(store.get_model_version_by_alias("cancer-classifier", "champion").version) == "1"


def _drift_watch(artifacts_dir: Path, shift: float, **model: Any) -> dict[str, Any]:
    """An experiment watching the champion for drift: recent inputs are the breast-cancer
    features (a resample, ``mean radius`` times ``shift``), the reference is what the
    champion's lineage says it was trained on."""
    import numpy as np
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.drop(columns=["target"])
    recent = frame.sample(n=300, replace=True, random_state=1).reset_index(drop=True)
    recent["mean radius"] = recent["mean radius"] * shift
    recent.insert(0, "id", [f"r{i}" for i in np.arange(len(recent))])
    path = artifacts_dir.parent / f"recent-{shift}.parquet"
    recent.to_parquet(path, index=False)
    reference_model = {"id": "cancer-classifier", **model}
    return {
        "id": "watch_cancer", "seed": 1,
        "dataset": {"name": "recent", "provider": "local", "options": {"path": str(path)}},
        "reliability": {"drift": {"reference_model": reference_model}},
        "pipeline": [{"name": "drift"}],
    }  # fmt: skip


def test_drift_compares_recent_inputs_with_the_data_the_champion_was_trained_on(
    store: Any, artifacts_dir: Path
) -> None:
    import dagster as dg

    from crucible_dagster.dagster_plugin import definitions_from_experiments

    run_demo(demo())
    watches = {shift: loads_experiment(yaml.safe_dump(_drift_watch(artifacts_dir, shift)))
               for shift in (1.0, 1.5)}  # fmt: skip
    key = dg.AssetKey(["crucible", "models", "cancer-classifier"])
    outcomes = []
    for experiment in watches.values():
        defs = definitions_from_experiments([loads_experiment(DEMO.read_text()), experiment])
        result = defs.resolve_job_def("watch_cancer").execute_in_process(
            instance=dg.DagsterInstance.ephemeral()
        )
        assert result.success
        found = [e.event_specific_data for e in result.all_events
                 if e.event_type_value == "ASSET_CHECK_EVALUATION"]  # fmt: skip
        assert [(e.asset_key, e.check_name) for e in found] == [(key, "drift__watch_cancer")]
        outcomes.append(found[0])
    calm, shifted = outcomes
    assert calm.passed and not shifted.passed
    rows = {r.data["feature"]: r.data for r in shifted.metadata["features"].value.records}
    assert rows["mean radius"]["drifted"] is True and rows["mean radius"]["p_adjusted"] < 0.05
    assert shifted.metadata["features_drifted"].value >= 1
    assert shifted.metadata["reference_version"].value == "1"
    # both declare the one model asset, whose checks are each experiment's own
    assert {c.name for c in defs.resolve_asset_graph().get(key).check_keys} == {
        "promotion_gate__train_and_promote",
        "drift__watch_cancer",
    }


@pytest.mark.parametrize(
    ("tag", "value", "said"),
    [
        ("crucible.dataset_ref", None, "expected the dataset it was trained on"),
        ("crucible.dataset_ref", '{"name": "breast_cancer", "provider": "sklearn", "oops": 1}', "oops"),
        ("crucible.named_fingerprint", "0" * 32, "the data changed since"),
    ],
)  # fmt: skip
def test_a_lineage_tag_that_is_missing_wrong_or_stale_is_a_located_error(
    store: Any, artifacts_dir: Path, tag: str, value: str | None, said: str
) -> None:
    run_demo(demo())
    if value is None:
        store.delete_model_version_tag("cancer-classifier", "1", tag)
    else:
        store.set_model_version_tag("cancer-classifier", "1", tag, value)
    result = run(loads_experiment(yaml.safe_dump(_drift_watch(artifacts_dir, 1.0, version="1"))))
    assert result.failure is not None and said in result.failure.message
    assert result.failure.message.startswith("reliability.drift.reference_model")
