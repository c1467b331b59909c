"""Load every experiment file of a folder into one ``Definitions``; a broken file never stops the others."""

from __future__ import annotations

import gc
import hashlib
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, cast, get_args

import dagster as dg

from crucible_dagster.dagster_plugin.accept_job import accept_job
from crucible_dagster.dagster_plugin.dataset_asset import DECLARED
from crucible_dagster.dagster_plugin.factory import (
    DEFAULT_RESOURCE,
    CompiledExperiment,
    compile_experiment,
)
from crucible_dagster.dagster_plugin.report_assets import reports_multi_asset
from crucible_dagster.dagster_plugin.resource import RESOURCE_KEY
from crucible_dagster.dagster_plugin.translator import CrucibleTranslator
from crucible_dagster.experiment.ir import Executor, Experiment
from crucible_dagster.experiment.loading import (
    EXPERIMENT_SUFFIXES,
    display_path,
    experiment_files,
)
from crucible_dagster.experiment.problems import Problem
from crucible_dagster.runtime.preflight import CheckedFile, check_files
from crucible_dagster.runtime.registry import Registry

EXPERIMENTS_ENV = "CRUCIBLE_EXPERIMENTS_DIR"
EXECUTOR_ENV = "CRUCIBLE_EXECUTOR"
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


#: the sensor whose every tick fails while experiment files are invalid: the UI's Automation
#: page shows it red, with each file's problems, where a neutral catalog entry is easy to miss
INVALID_SENSOR = "crucible_invalid_experiments"


class InvalidExperimentFiles(Exception):
    """Raised by ``INVALID_SENSOR``'s ticks: its message lists every invalid file's problems."""


def invalid_files_sensor(invalid: list[dg.AssetSpec]) -> dg.SensorDefinition:
    """A running sensor that fails each tick naming the invalid files and their problems, until
    they are fixed and the code location reloaded (then it is gone)."""
    listing = "\n".join(_problems_text(spec) for spec in invalid)  # each names its file
    count = f"{len(invalid)} experiment file{'s' if len(invalid) != 1 else ''}"

    def evaluate(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        raise InvalidExperimentFiles(f"{count} could not be loaded:\n\n{listing}")

    return dg.SensorDefinition(
        name=INVALID_SENSOR,
        evaluation_fn=evaluate,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Fails while {count} of this code location cannot be loaded; the assets "
        f"of group {INVALID_GROUP} show each file's problems.",
    )


def _problems_text(spec: dg.AssetSpec) -> str:
    problems = spec.metadata.get("problems")
    text = problems.value if isinstance(problems, dg.MarkdownMetadataValue) else str(problems)
    return text.strip().strip("`").strip()


def default_executor_from_env() -> Executor | None:
    """``$CRUCIBLE_EXECUTOR``, checked: a typo fails the code location with what was expected."""
    value = os.environ.get(EXECUTOR_ENV) or None
    allowed = get_args(Executor)
    if value is not None and value not in allowed:
        raise ValueError(f"{EXECUTOR_ENV}: expected one of {', '.join(allowed)}, found {value!r}")
    return cast(Executor | None, value)


def with_default_executor(experiment: Experiment, default: Executor | None) -> Experiment:
    """The experiment on ``default`` unless its own file names an executor: a deployment moves
    every experiment to Celery without editing one YAML file."""
    if default is None or "executor" in experiment.dagster.model_fields_set:
        return experiment
    return experiment.model_copy(
        update={"dagster": experiment.dagster.model_copy(update={"executor": default})}
    )


def definitions_from_experiments(
    experiments: Iterable[Experiment],
    *,
    translator: CrucibleTranslator | None = None,
    registry: Registry | None = None,
    default_executor: Executor | None = None,
) -> dg.Definitions:
    compiled = [
        compile_experiment(
            with_default_executor(e, default_executor), translator=translator, registry=registry
        )
        for e in experiments
    ]
    return _definitions(compiled, [], translator)


def _definitions(
    compiled: list[CompiledExperiment],
    invalid: list[dg.AssetSpec],
    translator: CrucibleTranslator | None = None,
) -> dg.Definitions:
    reports = reports_multi_asset(
        [c for c in compiled if c.report_specs], translator or CrucibleTranslator()
    )
    extra = (
        [accept_job(DEFAULT_RESOURCE)]
        if any(c.experiment.regression_baseline for c in compiled)
        else []
    )  # the UI's way to accept a baseline, where an experiment has a regression gate
    return dg.Definitions(
        jobs=[c.job for c in compiled] + extra,
        assets=[
            *([reports] if reports is not None else []),
            *_unique_assets(a for c in compiled for a in c.assets),
            *invalid,
        ],
        schedules=[c.schedule for c in compiled if c.schedule is not None],
        sensors=[invalid_files_sensor(invalid)] if invalid else [],
        # the report assets' resource; each job carries its own (with its experiment's seed)
        resources={RESOURCE_KEY: DEFAULT_RESOURCE},
    )


def _unique_assets(
    assets: Iterable[dg.AssetsDefinition | dg.AssetSpec],
) -> list[dg.AssetsDefinition | dg.AssetSpec]:
    """Each dataset asset once: experiments on one dataset share it (the first experiment's
    declaration; one declared otherwise is logged, naming both)."""
    unique: dict[Any, dg.AssetsDefinition | dg.AssetSpec] = {}
    for asset in assets:
        key = frozenset(_keys(asset))
        kept = unique.setdefault(key, asset)
        if kept is not asset and _declared(kept) != _declared(asset):
            logger.warning(
                "dataset %s is declared differently by two experiments; the asset loads the "
                "first: %s (the other: %s)",
                ", ".join("/".join(k.path) for k in _keys(asset)),
                _declared(kept),
                _declared(asset),
            )
    return list(unique.values())


def _keys(asset: dg.AssetsDefinition | dg.AssetSpec) -> list[dg.AssetKey]:
    return [asset.key] if isinstance(asset, dg.AssetSpec) else list(asset.keys)


def _declared(asset: dg.AssetsDefinition | dg.AssetSpec) -> Any:
    specs = [asset] if isinstance(asset, dg.AssetSpec) else list(asset.specs)
    return [spec.metadata.get(DECLARED) for spec in specs]


def definitions_from_folder(
    folder: str | Path | None = None,
    *,
    translator: CrucibleTranslator | None = None,
    registry: Registry | None = None,
    default_executor: Executor | None = None,
) -> dg.Definitions:
    """Every experiment file under ``folder`` (default: ``$CRUCIBLE_EXPERIMENTS_DIR`` or
    ``./experiments``); ``default_executor`` for those whose file names none."""
    root = Path(folder or os.environ.get(EXPERIMENTS_ENV) or "experiments")
    return definitions_from_checked(
        root,
        lambda: checked_folder(root, registry),
        translator=translator,
        registry=registry,
        default_executor=default_executor,
    )


def definitions_from_checked(
    root: Path,
    check: Callable[[], list[CheckedFile]],
    *,
    translator: CrucibleTranslator | None = None,
    registry: Registry | None = None,
    default_executor: Executor | None = None,
) -> dg.Definitions:
    """The valid experiments ``check`` returns as jobs, each invalid one as an asset showing its
    problems: one broken experiment (a file, or an entry of a component) never stops the others.
    Invalid assets are keyed by their path relative to ``root``."""
    translator = translator or CrucibleTranslator()
    # Loading builds many long-lived objects and frees few: the cyclic collector would scan
    # them over and over (about a third of the load time for 1000 files). Afterwards they are
    # frozen out of its reach: a code location keeps its definitions for its whole life, and
    # every later full collection (snapshots, runs, interpreter exit) would rescan them.
    if gc.get_freeze_count():
        # A reload (a worker loading the code location again): what an earlier load froze may
        # be garbage now, and frozen it would never be collected.
        gc.unfreeze()
        gc.collect()
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _load_checked(root, check(), translator, registry, default_executor)
    finally:
        gc.freeze()
        if collecting:
            gc.enable()


def _load_checked(
    root: Path,
    checked_files: list[CheckedFile],
    translator: CrucibleTranslator,
    registry: Registry | None,
    default_executor: Executor | None,
) -> dg.Definitions:
    compiled: list[tuple[Path, CompiledExperiment]] = []
    invalid: list[dg.AssetSpec] = []
    keys: set[dg.AssetKey] = set()
    for checked in checked_files:
        problems = list(checked.problems)
        for warning in checked.warnings:
            logger.warning("experiment %s", warning)
        if checked.experiment is not None:
            try:
                experiment = with_default_executor(checked.experiment, default_executor)
                compiled.append(
                    (
                        checked.path,
                        compile_experiment(experiment, translator=translator, registry=registry),
                    )
                )
                continue
            except Exception as exc:  # a definition error must not take the other experiments down
                problems.append(_compile_problem(checked.path, exc))
        _add_invalid(invalid, translator, root, checked.path, problems, keys)
    defs, _ = _load_error(compiled, invalid, translator)
    if defs is not None:
        return defs  # the usual case: one build, which Dagster accepts
    kept, refused = _loadable(compiled, invalid, translator)
    for path, refusal in refused:
        _add_invalid(invalid, translator, root, path, [_compile_problem(path, refusal)], keys)
    return _definitions([c for _, c in kept], invalid, translator)


def _compile_problem(path: Path, exc: Exception) -> Problem:
    message = f"cannot compile into Dagster definitions: {type(exc).__name__}: {exc}"
    return Problem(message, "", display_path(path), None)


def _add_invalid(
    invalid: list[dg.AssetSpec],
    translator: CrucibleTranslator,
    root: Path,
    path: Path,
    problems: list[Problem],
    keys: set[dg.AssetKey],
) -> None:
    for problem in problems:
        logger.error("invalid experiment: %s", problem)
    key, tags = _invalid_key(translator, root, path, keys)
    invalid.append(invalid_file_asset(key, tags, path, problems))


Compiled = list[tuple[Path, CompiledExperiment]]


def _load_error(
    items: Compiled, invalid: list[dg.AssetSpec], translator: CrucibleTranslator
) -> tuple[dg.Definitions | None, Exception | None]:
    """The definitions of ``items`` as Dagster loads them (the report multi-asset, unique keys
    and names), or what Dagster refused."""
    try:
        defs = _definitions([c for _, c in items], invalid, translator)
        defs.get_repository_def()  # cached: the code location reuses it
    except Exception as exc:  # Dagster's refusal, shown on the file's asset
        return None, exc
    return defs, None


def _loadable(
    items: Compiled, invalid: list[dg.AssetSpec], translator: CrucibleTranslator
) -> tuple[Compiled, list[tuple[Path, Exception]]]:
    """When Dagster refuses the folder's definitions: each experiment alone, then the survivors
    together, halving where two clash. An experiment Dagster refuses, alone or beside another,
    is refused by itself and the others load."""
    refused: list[tuple[Path, Exception]] = []
    alone: Compiled = []
    for item in items:
        _, error = _load_error([item], invalid, translator)
        if error is None:
            alone.append(item)
        else:
            refused.append((item[0], error))
    return _fit([], alone, invalid, translator, refused), refused


def _fit(
    base: Compiled,
    candidates: Compiled,
    invalid: list[dg.AssetSpec],
    translator: CrucibleTranslator,
    refused: list[tuple[Path, Exception]],
) -> Compiled:
    """``base`` and every candidate that loads beside it (in order); the others refused."""
    if not candidates:
        return base
    _, error = _load_error(base + candidates, invalid, translator)
    if error is None:
        return base + candidates
    if len(candidates) == 1:
        refused.append((candidates[0][0], error))
        return base
    half = len(candidates) // 2
    kept = _fit(base, candidates[:half], invalid, translator, refused)
    return _fit(kept, candidates[half:], invalid, translator, refused)


def mark_duplicate_ids(checked: list[CheckedFile]) -> None:
    """An experiment id used by two sources (a file and a component's inline entry) makes both
    invalid, each naming the other: neither silently wins, and Dagster never sees two jobs of
    one name (which would fail the whole code location)."""
    owners: dict[str, list[CheckedFile]] = {}
    for item in checked:
        if item.experiment is not None:
            owners.setdefault(item.experiment.id, []).append(item)
    for experiment_id, items in owners.items():
        for item in items if len(items) > 1 else ():
            others = ", ".join(display_path(o.path) for o in items if o is not item)
            message = (
                f"experiment id {experiment_id!r} is also used by {others}; ids must be unique"
            )
            item.problems.append(Problem(message, "id", display_path(item.path), None))
            item.experiment = None


def checked_folder(root: Path, registry: Registry | None) -> list[CheckedFile]:
    """The folder's files, checked; a missing or empty folder is itself a visible problem."""
    if not root.is_dir():
        reason = "does not exist" if not root.exists() else "is not a folder"
        message = f"the experiments folder {reason} (set {EXPERIMENTS_ENV} or create it)"
        return [CheckedFile(root, None, [Problem(message, file=display_path(root))])]
    files = experiment_files(root)
    if not files:
        message = f"the experiments folder holds no {', '.join(EXPERIMENT_SUFFIXES)} files"
        return [CheckedFile(root, None, [Problem(message, file=display_path(root))])]
    return check_files(files, registry, dict.fromkeys(files, root))


def _invalid_key(
    translator: CrucibleTranslator, root: Path, path: Path, used: set[dg.AssetKey]
) -> tuple[dg.AssetKey, dict[str, str]]:
    """The translator's key and tags for a broken file, with a short hash if two files map to
    one key."""
    relative = path.relative_to(root) if path.is_relative_to(root) else Path(path.name)
    spec = translator.get_invalid_file_asset_spec(relative)
    key = spec.key
    if key in used:
        digest = hashlib.sha256(str(relative).encode()).hexdigest()[:8]
        key = dg.AssetKey([*key.path[:-1], f"{key.path[-1]}_{digest}"])
    used.add(key)
    return key, dict(spec.tags)
