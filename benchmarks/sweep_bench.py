"""Issue 6 figure: a 100-trial sweep of light stages, per trial, against a plain Python loop."""

from __future__ import annotations

import tempfile
import time

import dagster as dg

from benchmarks.harness import Row
from benchmarks.stages import LightScore
from crucible_dagster import Context, Experiment
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
    trials = expand_grid(experiment)
    n = len(trials)

    start = time.perf_counter()
    stage = LightScore()
    for trial in trials:  # the same stage, called directly: no runner, no files, no events
        ctx = Context(experiment.id, trial.trial_id, params=trial.stage_params)
        stage.run(ctx, {"level": trial.params["level"]})
    plain = (time.perf_counter() - start) / n

    with tempfile.TemporaryDirectory() as artifacts:
        start = time.perf_counter()
        run_sweep(experiment, run_id="bench", artifacts=artifacts)
        standalone = (time.perf_counter() - start) / n

    job = build_job(experiment)
    with tempfile.TemporaryDirectory() as home, dg.DagsterInstance.local_temp(home) as instance:
        start = time.perf_counter()
        result = job.execute_in_process(instance=instance)
        dagster = (time.perf_counter() - start) / n
        assert result.success
    return [
        Row(
            "100-trial sweep under Dagster (SQLite), per trial",
            dagster,
            plain,
            "plain Python loop over the stages",
            "<=100 ms",
        ),
        Row(
            "100-trial sweep standalone (crucible run), per trial",
            standalone,
            plain,
            "plain Python loop over the stages",
            "-",
        ),
    ]
