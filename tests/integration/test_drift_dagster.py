"""Drift under Dagster: the drift stage is an op of the experiment's job, and a quality target
on ``drift.features_drifted`` is an asset check of its report that fails on a shifted sample."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from crucible_dagster import Experiment
from crucible_dagster.dagster_plugin import build_job
from tests.dagster_helpers import ephemeral_instance
from tests.test_drift import _experiment, _samples

pytestmark = pytest.mark.integration


def _gated(reference: Path, current: Path) -> Experiment:
    data = _experiment(reference, current).model_dump(
        mode="json", by_alias=True, exclude_defaults=True
    )
    data["pipeline"] = [{"name": "drift"}, {"name": "report"}]
    data["outputs"] = [{"name": "summary", "formats": ["markdown"]}]
    data["quality_targets"] = [
        {"name": "no_drift", "metric": "drift.features_drifted", "op": "<=", "value": 0}
    ]
    return Experiment.model_validate(data)


@pytest.mark.parametrize(("shift", "passed"), [(5.0, False), (0.0, True)])
def test_the_no_drift_check_fails_on_a_shift_and_passes_without(
    tmp_path: Path, artifacts_dir: Path, shift: float, passed: bool
) -> None:
    reference, current = _samples(tmp_path, shift=shift)
    with ephemeral_instance() as instance:
        result = build_job(_gated(reference, current)).execute_in_process(
            instance=instance, raise_on_error=False
        )
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == "no_drift" and evaluation.passed is passed
    assert evaluation.asset_key == dg.AssetKey(["crucible", "drifted", "summary"])
