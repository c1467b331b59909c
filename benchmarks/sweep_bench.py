"""Issue 6 figure: a 100-trial sweep of light stages, per trial, against a plain Python loop."""

from __future__ import annotations

import tempfile

import dagster as dg

from benchmarks.harness import Row, Timing, paired
from crucible_dagster import Experiment
from crucible_dagster.dagster_plugin import build_job
from crucible_dagster.sweeps.grid import expand_grid
from crucible_dagster.sweeps.standalone import run_sweep

LEVELS = [0.5 + i / 100 for i in range(10)]
SEEDS = list(range(1, 11))


def _experiment() -> Experiment:
    return Experiment.model_validate(
        {
            "id": "bench_sweep",
            "parameters": {"level": LEVELS},
            "seeds": SEEDS,
            "sweep": {"metric": "score"},
            "pipeline": [
                {
                    "name": "score",
                    "module": "benchmarks.stages:LightScore",
                    "options": {"level": "${params.level}"},
                }
            ],
        }
    )


def sweep_rows() -> list[Row]:
    experiment = _experiment()
    n = len(expand_grid(experiment))
    job = build_job(experiment)
    with (
        tempfile.TemporaryDirectory() as artifacts,
        tempfile.TemporaryDirectory() as home,
        dg.DagsterInstance.local_temp(home) as instance,
    ):
        counter = iter(range(1_000_000))

        def standalone() -> None:
            run_sweep(experiment, run_id=f"bench{next(counter)}", artifacts=artifacts)

        def dagster() -> None:
            assert job.execute_in_process(instance=instance).success

        ours, alone, busy = paired(dagster, standalone, repeats=5)
    per_trial = Timing([w / n for w in ours.wall], [c / n for c in ours.cpu])
    per_trial_alone = Timing([w / n for w in alone.wall], [c / n for c in alone.cpu])
    return [
        Row(
            f"{n}-trial sweep under Dagster (SQLite), per trial",
            per_trial,
            per_trial_alone,
            "the same sweep standalone (crucible run)",
            "<=2.5x",
            busy,
        ),
        Row(
            f"{n}-trial sweep under Dagster (SQLite), per trial",
            per_trial,
            Timing.fixed(0.015),
            "the 15 ms goal",
            "<=1.0x",
            busy,
        ),
    ]
