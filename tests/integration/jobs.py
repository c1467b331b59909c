"""Module-level job builders, so Dagster can reconstruct them in other processes.

Tests pass parameters through environment variables because a reconstructable job
is rebuilt from its code pointer in each step process.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from crucible_dagster import Experiment
from crucible_dagster.dagster_plugin import build_job


def counting_experiment(executor: str = "in_process") -> Experiment:
    # Relative paths: the stage resolves them against $CRUCIBLE_TEST_WORKDIR when it runs,
    # because Dagster caches a reconstructed job definition within a process.
    workdir = "."
    return Experiment.model_validate(
        {
            "id": "counting",
            "executor": executor,
            "pipeline": [
                {
                    "name": "first",
                    "module": "tests.helpers:CountingTable",
                    "options": {"counter_file": f"{workdir}/first.count", "rows": 2000},
                },
                {
                    "name": "second",
                    "module": "tests.helpers:CountingTable",
                    "options": {"counter_file": f"{workdir}/second.count"},
                },
                {
                    "name": "third",
                    "module": "tests.helpers:CountingTable",
                    "options": {
                        "counter_file": f"{workdir}/third.count",
                        "fail_if_exists": f"{workdir}/fail.flag",
                    },
                },
                {
                    "name": "fourth",
                    "module": "tests.helpers:CountingTable",
                    "options": {"counter_file": f"{workdir}/fourth.count"},
                },
            ],
        }
    )


def counting_job() -> dg.JobDefinition:
    return build_job(counting_experiment())


def counting_report_job() -> dg.JobDefinition:
    """The counting experiment reported to a file: its job is the report asset's (one op per
    stage in the asset's graph, ``report_graph``)."""
    data = counting_experiment().model_dump(mode="json", by_alias=True, exclude_defaults=True)
    data["pipeline"].append({"name": "report"})
    data["outputs"] = [{"name": "summary", "formats": ["json"]}]
    return build_job(Experiment.model_validate({**data, "id": "counting_report"}))


def counting_job_multiprocess() -> dg.JobDefinition:
    return build_job(counting_experiment("multiprocess"))


def sweep_experiment() -> Experiment:
    return Experiment.model_validate(
        {
            "id": "light_sweep",
            "parameters": {"level": [0.80, 0.82, 0.90]},
            "seeds": [1, 2, 3, 4],
            # 12 trials in two steps, so a re-execution can be seen to skip the other step
            "sweep": {"metric": "fold_scores.model", "trials_per_step": 10},
            "pipeline": [
                {
                    "name": "score",
                    "module": "tests.helpers:NoisyScore",
                    "options": {
                        "level": "${params.level}",
                        "fail_flag": "fail_${params.level}_${params.seed}.flag",
                    },
                }
            ],
        }
    )


def sweep_job() -> dg.JobDefinition:
    return build_job(sweep_experiment())


def sweep_job_multiprocess() -> dg.JobDefinition:
    base = sweep_experiment()
    assert base.sweep is not None
    experiment = base.model_copy(
        update={
            "executor": "multiprocess",
            "parameters": {"level": [0.8, 0.9]},
            "seeds": [1, 2],
            "sweep": base.sweep.model_copy(update={"trials_per_step": 1}),  # one process a trial
        }
    )
    return build_job(experiment)


def pooled_sweep_job() -> dg.JobDefinition:
    """Four trials, a step each, on subprocesses: a pool limit of 1 must run them one by one."""
    experiment = Experiment.model_validate(
        {
            "id": "pooled_sweep",
            "executor": "multiprocess",
            "parameters": {"level": [0.8, 0.9]},
            "seeds": [1, 2],
            "sweep": {"metric": "fold_scores.model", "trials_per_step": 1, "pool": "test_pool"},
            "pipeline": [
                {
                    "name": "score",
                    "module": "tests.helpers:NoisyScore",
                    "options": {"level": "${params.level}"},
                },
                {"name": "pause", "module": "tests.helpers:Sleep", "options": {"seconds": 0.4}},
            ],
        }
    )
    return build_job(experiment)


def raced_job() -> dg.JobDefinition:
    """The raced sweep of ``tests.test_racing_sweep`` (seed 6 fails while its flag exists)."""
    from tests.test_racing_sweep import RACED

    sweep = {**RACED["sweep"], "trials_per_step": 1}
    return build_job(Experiment.model_validate({**RACED, "sweep": sweep}))


def study_experiment() -> Experiment:
    """tests.test_optuna_sweep's raced study, a step per two trials; a flag file fails a run."""
    from tests.test_optuna_sweep import RACED

    data = {**RACED, "id": "studied_reexec"}
    data["pipeline"] = [
        {
            "name": "quadratic",
            "module": "tests.helpers:Quadratic",
            "options": {
                "x": "${params.x}",
                "y": -0.2,
                "noise": 0.01,
                "fail_flag": "fail_${params.x}_${params.seed}.flag",
            },
        }
    ]
    data["sweep"] = {**RACED["sweep"], "trials_per_step": 2}
    return Experiment.model_validate(data)


def study_job() -> dg.JobDefinition:
    return build_job(study_experiment())


def priced_race_job() -> dg.JobDefinition:
    """A raced LLM sweep over samples, priced, against the server at ``$RACE_LLM_URL`` on
    ``$RACE_LLM_DATA``; the round holding sample ``$RACE_LLM_FAIL_ON`` fails while
    ``fail.flag`` exists (after its models were asked)."""
    import os

    from tests.test_racing_data import raced_llm

    racing = {"block": "samples", "first_look": 4, "round_size": 4}
    experiment = raced_llm(
        os.environ["RACE_LLM_URL"],
        Path(os.environ["RACE_LLM_DATA"]),
        racing,
        budget={"max_cost": 100.0},
    )
    fail = {"sample": os.environ["RACE_LLM_FAIL_ON"], "flag": "fail.flag"}
    stage = {"name": "fail_on_sample", "module": "tests.helpers:FailOnSample", "options": fail}
    data = experiment.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    data["pipeline"].append(stage)
    return build_job(Experiment.model_validate(data))


def study_job_multiprocess() -> dg.JobDefinition:
    """The study above with a step per trial, in processes of their own on one SQLite study."""
    base = study_experiment()
    assert base.sweep is not None
    experiment = base.model_copy(
        update={
            "executor": "multiprocess",
            "sweep": base.sweep.model_copy(update={"trials_per_step": 1}),
        }
    )
    return build_job(experiment)


def training_job() -> dg.JobDefinition:
    """A train stage (FlakySGD on $CRUCIBLE_TEST_WORKDIR/data.parquet, four epochs, a
    checkpoint every two) then a report: re-executed from failure, train resumes."""
    import os

    data = Path(os.environ["CRUCIBLE_TEST_WORKDIR"]) / "data.parquet"
    return build_job(
        Experiment.model_validate(
            {
                "id": "resumed_training",
                "seed": 3,
                "training_config": {
                    "id": "t",
                    "model_ref": {"id": "flaky", "architecture": "tests.lifecycle_helpers:FlakySGD",
                                  "options": {"loss": "log_loss"}},
                    "dataset_ref": {"name": "toy", "provider": "local",
                                    "options": {"path": str(data), "target": "label"}},
                    "epochs": 4, "checkpoint_every": 2, "validation_split": 0.25,
                },
                "pipeline": [{"name": "train"}, {"name": "validate"}],
            }
        )
    )  # fmt: skip
