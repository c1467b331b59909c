"""The per-sample sweep comparison under Dagster: the 6-of-30 prompts give the same exact
McNemar p in one Dagster run (trial outcomes passed between ops as JSON) as standalone."""

from __future__ import annotations

import json
from pathlib import Path

from dagster import DagsterInstance

from crucible_dagster.dagster_plugin import build_job
from crucible_dagster.sweeps.standalone import run_sweep
from tests.test_paired_sweep import mcnemar_row, prompt_sweep


def test_six_of_thirty_in_one_dagster_run_equals_standalone(
    tmp_path: Path, artifacts_dir: Path
) -> None:
    # one trial per step: each outcome crosses the IO manager on its own
    experiment = prompt_sweep(["terse", "careful"], seeds=[1, 2], sweep={"trials_per_step": 1})
    with DagsterInstance.ephemeral() as instance:
        result = build_job(experiment).execute_in_process(instance=instance)
    assert result.success
    stored = artifacts_dir / experiment.id / result.run_id / "sweep.json"
    in_dagster = json.loads(stored.read_text(encoding="utf-8"))
    standalone = run_sweep(experiment, run_id="s", artifacts=str(tmp_path / "alone")).comparison
    row = mcnemar_row(in_dagster)
    assert (row["b"], row["c"]) == (0, 12) and row["p_value"] == 2 * 0.5**12
    for key in ("design", "best", "blocks"):
        assert in_dagster[key] == standalone[key], key
    assert in_dagster["comparison"]["comparisons"] == standalone["comparison"]["comparisons"]
