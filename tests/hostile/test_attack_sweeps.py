"""An outsider's attack on a sweep's size (issue 25): a grid is listed trial by trial (the
plan, ``crucible run --dry-run``, a race's configurations, Dagster's partitions), and before the
fix a file of three parameters of 1000 values each (10^9 trials) validated, and the dry run,
the run and the Dagster loader then hung listing them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from crucible_dagster import Experiment
from crucible_dagster.experiment.ir.experiment import MAX_TRIALS
from tests.hostile.conftest import Cli
from tests.hostile.test_settings_parity import HEAD, _refused_everywhere

THOUSAND = list(range(1000))


def test_a_grid_of_a_billion_trials_is_refused_with_its_count() -> None:
    with pytest.raises(ValidationError) as caught:
        Experiment.model_validate(
            {
                "id": "huge",
                "parameters": {"a": THOUSAND, "b": THOUSAND, "c": THOUSAND},
                "sweep": {"metric": "m"},
                "pipeline": [{"name": "validate"}],
            }
        )
    assert f"expected at most {MAX_TRIALS} trials (grid points x seeds), found 1000000000" in str(
        caught.value
    )


def test_seeds_count_in_the_trials() -> None:
    grid = {"id": "g", "sweep": {"metric": "m"}, "pipeline": [{"name": "validate"}]}
    Experiment.model_validate({**grid, "parameters": {"a": THOUSAND}, "seeds": list(range(100))})
    with pytest.raises(ValidationError, match="found 101000"):
        Experiment.model_validate(
            {**grid, "parameters": {"a": THOUSAND}, "seeds": list(range(101))}
        )


@pytest.mark.integration  # the Dagster loader is one of the three that refuse it
def test_a_grid_too_large_is_refused_everywhere_alike(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    text = HEAD + f"parameters: {{a: {THOUSAND}, b: {THOUSAND}}}\nsweep: {{metric: m}}\n"
    _refused_everywhere(
        cli, tmp_path, "huge", text, 4, "parameters", "expected at most 100000 trials"
    )
