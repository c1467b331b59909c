"""The baseline for loading: the same experiment files as plain Dagster jobs, written by hand.

What a Dagster user would write without crucible_dagster: read each YAML file with the C
loader, one ``@op`` per stage with the stage's options as config defaults, ops chained in
pipeline order. No validation, no stage classes, no typed config, no assets.

    CRUCIBLE_EXPERIMENTS_DIR=folder dagster job list -f benchmarks/plain_jobs.py
"""

import os
from pathlib import Path
from typing import Any

import dagster as dg
import yaml


def _stage_op(experiment_id: str, stage: dict[str, Any]) -> dg.OpDefinition:
    options = stage.get("options") or {}

    @dg.op(
        name=f"{experiment_id}__{stage['name']}",
        config_schema={
            k: dg.Field(dg.Any, is_required=False, default_value=v) for k, v in options.items()
        },
    )
    def run_stage(context, upstream=None):  # Dagster reads these (absent) hints
        return {"stage": stage["name"], "config": context.op_config}

    return run_stage


def _job(document: dict[str, Any]) -> dg.JobDefinition:
    ops = [_stage_op(document["id"], stage) for stage in document["pipeline"]]

    @dg.job(name=document["id"], executor_def=dg.in_process_executor)
    def chain() -> None:
        value = ops[0]()
        for op_def in ops[1:]:
            value = op_def(value)

    return chain


def _documents(folder: Path) -> list[dict[str, Any]]:
    return [
        yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
        for path in sorted(folder.glob("*.yaml"))
    ]


defs = dg.Definitions(
    jobs=[
        _job(d) for d in _documents(Path(os.environ.get("CRUCIBLE_EXPERIMENTS_DIR", "experiments")))
    ]
)
