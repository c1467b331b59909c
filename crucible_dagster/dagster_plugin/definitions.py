"""Load every experiment file of a folder into one ``Definitions``; a broken file never stops the others."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import dagster as dg

from crucible_dagster.dagster_plugin.factory import CompiledExperiment, compile_experiment
from crucible_dagster.dagster_plugin.translator import CrucibleTranslator
from crucible_dagster.experiment.ir import Experiment
from crucible_dagster.experiment.loading import display_path, experiment_files
from crucible_dagster.experiment.problems import Problem
from crucible_dagster.runtime.preflight import check_file
from crucible_dagster.runtime.registry import Registry

EXPERIMENTS_ENV = "CRUCIBLE_EXPERIMENTS_DIR"
INVALID_GROUP = "crucible_invalid_experiments"
logger = logging.getLogger("crucible_dagster")


def invalid_file_asset(
    key: dg.AssetKey, tags: dict[str, str], path: Path, problems: list[Problem]
) -> dg.AssetSpec:
    """An asset that shows a broken experiment file and its problems in the UI's catalog."""
    text = "\n".join(str(p) for p in problems)
    return dg.AssetSpec(
        key=key,
        description=f"INVALID experiment file {display_path(path)}; it was not loaded:\n\n```\n{text}\n```",
        group_name=INVALID_GROUP,
        kinds={"crucible"},
        tags=tags,
        metadata={
            "file": display_path(path),
            "problems": dg.MetadataValue.md("```\n" + text + "\n```"),
            "problem_count": len(problems),
        },
    )


def definitions_from_experiments(
    experiments: Iterable[Experiment],
    *,
    translator: CrucibleTranslator | None = None,
    registry: Registry | None = None,
) -> dg.Definitions:
    compiled = [
        compile_experiment(e, translator=translator, registry=registry) for e in experiments
    ]
    return _definitions(compiled, [])


def _definitions(compiled: list[CompiledExperiment], invalid: list[dg.AssetSpec]) -> dg.Definitions:
    return dg.Definitions(
        jobs=[c.job for c in compiled],
        assets=[a for c in compiled for a in c.assets] + invalid,
        schedules=[c.schedule for c in compiled if c.schedule is not None],
        asset_checks=[check for c in compiled for check in c.checks],
    )


def definitions_from_folder(
    folder: str | Path | None = None,
    *,
    translator: CrucibleTranslator | None = None,
    registry: Registry | None = None,
) -> dg.Definitions:
    """Every experiment file under ``folder`` (default: ``$CRUCIBLE_EXPERIMENTS_DIR`` or ``./experiments``)."""
    root = Path(folder or os.environ.get(EXPERIMENTS_ENV) or "experiments")
    translator = translator or CrucibleTranslator()
    compiled: list[CompiledExperiment] = []
    invalid: list[dg.AssetSpec] = []
    seen: dict[str, Path] = {}
    for path in experiment_files(root):
        checked = check_file(path, registry)
        problems = list(checked.problems)
        experiment = checked.experiment
        if experiment is not None and experiment.id in seen:
            problems.append(
                Problem(
                    f"experiment id {experiment.id!r} is already used by {display_path(seen[experiment.id])}",
                    "id",
                    display_path(path),
                    1,
                )
            )
            experiment = None
        if experiment is not None:
            try:
                compiled.append(
                    compile_experiment(experiment, translator=translator, registry=registry)
                )
                seen[experiment.id] = path
                continue
            except (
                Exception
            ) as exc:  # a Dagster definition error must not take the other experiments down
                problems.append(
                    Problem(
                        f"cannot compile into a Dagster job: {type(exc).__name__}: {exc}",
                        "",
                        display_path(path),
                        None,
                    )
                )
        for problem in problems:
            logger.error("invalid experiment: %s", problem)
        relative = path.relative_to(root) if path.is_relative_to(root) else Path(path.name)
        key = translator.invalid_file_asset_key(relative)
        invalid.append(
            invalid_file_asset(key, translator.invalid_file_asset_tags(), path, problems)
        )
    return _definitions(compiled, invalid)
