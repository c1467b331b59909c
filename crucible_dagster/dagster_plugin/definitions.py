"""Load every experiment file of a folder into one ``Definitions``; a broken file never stops the others."""

from __future__ import annotations

import gc
import hashlib
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import replace
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
from crucible_dagster.dagster_plugin.load_report import log_once, report, strict_from_env
from crucible_dagster.dagster_plugin.resource import RESOURCE_KEY, CrucibleResource
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


def invalid_files_sensor(
    invalid: list[dg.AssetSpec], name: str = INVALID_SENSOR
) -> dg.SensorDefinition:
    """A running sensor that fails each tick naming the invalid files and their problems, until
    they are fixed and the code location reloaded (then it is gone)."""
    listing = "\n".join(_problems_text(spec) for spec in invalid)  # each names its file
    count = f"{len(invalid)} experiment file{'s' if len(invalid) != 1 else ''}"

    def evaluate(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        raise InvalidExperimentFiles(f"{count} could not be loaded:\n\n{listing}")

    return dg.SensorDefinition(
        name=name,
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
    resource: CrucibleResource | None = None,
) -> dg.Definitions:
    compiled = [
        compile_experiment(
            with_default_executor(e, default_executor),
            translator=translator,
            registry=registry,
            resource=resource,
        )
        for e in experiments
    ]
    return _definitions(compiled, [], translator, resource)


def _definitions(
    compiled: list[CompiledExperiment],
    invalid: list[dg.AssetSpec],
    translator: CrucibleTranslator | None = None,
    resource: CrucibleResource | None = None,
    sensor_name: str = INVALID_SENSOR,
) -> dg.Definitions:
    resource = resource or DEFAULT_RESOURCE
    extra = (
        [accept_job(resource)] if any(c.experiment.regression_baseline for c in compiled) else []
    )  # the UI's way to accept a baseline, where an experiment has a regression gate
    return dg.Definitions(
        jobs=[c.job for c in compiled] + extra,
        assets=[
            # a model watched for drift is declared by the experiment that registers it first
            *_unique_assets(
                [a for c in compiled for a in c.assets]
                + [a for c in compiled for a in c.fallback_assets]
            ),
            *invalid,
        ],
        asset_checks=[check for c in compiled for check in c.checks],
        schedules=[c.schedule for c in compiled if c.schedule is not None],
        sensors=[c.sensor for c in compiled if c.sensor is not None]
        + ([invalid_files_sensor(invalid, sensor_name)] if invalid else []),
        # the report assets' resource (and their jobs'; each asset binds its IO manager); a
        # plain job carries its own, with its experiment's seed
        resources={RESOURCE_KEY: resource},
        # Materialize: a report's stage steps one after another in the run's process, as a
        # plain job's (Dagster's default would start a process per step)
        executor=dg.in_process_executor,
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
            log_once(
                logging.WARNING,
                f"dataset {', '.join('/'.join(k.path) for k in _keys(asset))} is declared "
                f"differently by two experiments; the asset loads the first: {_declared(kept)} "
                f"(the other: {_declared(asset)})",
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
    strict: bool | None = None,
) -> dg.Definitions:
    """Every experiment file under ``folder`` (default: ``$CRUCIBLE_EXPERIMENTS_DIR`` or
    ``./experiments``); ``default_executor`` for those whose file names none. ``strict``
    (default: ``$CRUCIBLE_STRICT``): any problem fails the load, listing them all."""
    root = Path(folder or os.environ.get(EXPERIMENTS_ENV) or "experiments")
    return definitions_from_checked(
        root,
        lambda: checked_folder(root, registry),
        translator=translator,
        registry=registry,
        default_executor=default_executor,
        strict=strict_from_env() if strict is None else strict,
    )


def definitions_from_checked(
    root: Path,
    check: Callable[[], list[CheckedFile]],
    *,
    translator: CrucibleTranslator | None = None,
    registry: Registry | None = None,
    default_executor: Executor | None = None,
    strict: bool = False,
    resource: CrucibleResource | None = None,
    sensor_name: str = INVALID_SENSOR,
    key_root: Path | None = None,
    elsewhere: Callable[[], list[Problem]] | None = None,
) -> dg.Definitions:
    """The valid experiments ``check`` returns as jobs, each invalid one as an asset showing its
    problems: one broken experiment (a file, or an entry of a component) never stops the others.
    Invalid assets are keyed by their path relative to ``key_root`` (default ``root``; a
    component gives the defs root, so two components' broken ``wip.yaml`` get two keys).
    ``strict``: any problem raises ``ExperimentsNotLoaded`` listing every one instead, with
    ``elsewhere``'s (the code location's other components: Dagster stops at the first that
    fails). ``resource``: the ``crucible`` resource of the jobs and report assets (where run
    directories go). ``sensor_name``: the failing sensor's, one per component of a code
    location (Dagster refuses two of one name)."""
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
        loading = _Loading(
            key_root or root, translator, registry, default_executor, resource, sensor_name
        )
        defs = loading.load(check())
        problems = loading.problems
        if strict and problems and elsewhere is not None:  # the other components' too
            problems = [*problems, *elsewhere()]
        report(problems, strict)  # strict: raises, listing every problem
        return defs
    finally:
        gc.freeze()
        if collecting:
            gc.enable()


class _Loading:
    """One load: the checked experiments compiled, the invalid ones as assets, and every
    problem kept for the strict error or the log."""

    def __init__(
        self,
        root: Path,
        translator: CrucibleTranslator,
        registry: Registry | None,
        default_executor: Executor | None,
        resource: CrucibleResource | None,
        sensor_name: str,
    ):
        self.root, self.translator, self.registry = root, translator, registry
        self.default_executor, self.resource = default_executor, resource
        self.sensor_name = sensor_name
        self.invalid: list[dg.AssetSpec] = []
        self.problems: list[Problem] = []
        self.keys: set[dg.AssetKey] = set()

    def load(self, checked_files: list[CheckedFile]) -> dg.Definitions:
        compiled: Compiled = []
        for checked in checked_files:
            problems = list(checked.problems)
            for warning in checked.warnings:
                log_once(logging.WARNING, f"experiment {warning}")
            if checked.experiment is not None:
                try:
                    experiment = with_default_executor(checked.experiment, self.default_executor)
                    item = compile_experiment(
                        experiment,
                        translator=self.translator,
                        registry=self.registry,
                        resource=self.resource,
                    )
                    compiled.append((checked.path, item))
                    continue
                except Exception as exc:  # a definition error must not take the others down
                    problems.append(_compile_problem(checked.path, exc))
            self.add_invalid(checked.path, problems)
        defs, _ = self.load_error(compiled)
        if defs is not None:
            return defs  # the usual case: one build, which Dagster accepts
        kept, refused = self.loadable(compiled)
        for path, refusal in refused:
            self.add_invalid(path, [_compile_problem(path, refusal)])
        return self.definitions([c for _, c in kept])

    def add_invalid(self, path: Path, problems: list[Problem]) -> None:
        self.problems.extend(problems)
        key, tags = _invalid_key(self.translator, self.root, path, self.keys)
        self.invalid.append(invalid_file_asset(key, tags, path, problems))

    def definitions(self, compiled: list[CompiledExperiment]) -> dg.Definitions:
        return _definitions(
            compiled, self.invalid, self.translator, self.resource, self.sensor_name
        )

    def load_error(self, items: Compiled) -> tuple[dg.Definitions | None, Exception | None]:
        """The definitions of ``items`` as Dagster loads them (the report multi-asset, unique
        keys and names), or what Dagster refused."""
        try:
            defs = self.definitions([c for _, c in items])
            defs.get_repository_def()  # cached: the code location reuses it
        except Exception as exc:  # Dagster's refusal, shown on the file's asset
            return None, exc
        return defs, None

    def loadable(self, items: Compiled) -> tuple[Compiled, list[tuple[Path, Exception]]]:
        """When Dagster refuses the folder's definitions: each experiment alone, then the
        survivors together, halving where two clash. An experiment Dagster refuses, alone or
        beside another, is refused by itself and the others load."""
        refused: list[tuple[Path, Exception]] = []
        alone: Compiled = []
        for item in items:
            _, error = self.load_error([item])
            if error is None:
                alone.append(item)
            else:
                refused.append((item[0], error))
        return self.fit([], alone, refused), refused

    def fit(
        self, base: Compiled, candidates: Compiled, refused: list[tuple[Path, Exception]]
    ) -> Compiled:
        """``base`` and every candidate that loads beside it (in order); the others refused."""
        if not candidates:
            return base
        _, error = self.load_error(base + candidates)
        if error is None:
            return base + candidates
        if len(candidates) == 1:
            refused.append((candidates[0][0], error))
            return base
        half = len(candidates) // 2
        kept = self.fit(base, candidates[:half], refused)
        return self.fit(kept, candidates[half:], refused)


def _compile_problem(path: Path, exc: Exception) -> Problem:
    message = f"cannot compile into Dagster definitions: {type(exc).__name__}: {exc}"
    return Problem(message, "", display_path(path), None)


Compiled = list[tuple[Path, CompiledExperiment]]


def checked_folder(
    root: Path, registry: Registry | None, named_by: Problem | None = None
) -> list[CheckedFile]:
    """The folder's files, checked; a missing or empty folder is itself a visible problem,
    located where the folder is named (``named_by``: a component's ``path:``; default the
    folder itself, with the environment variable that names it)."""
    where = named_by or Problem("", file=display_path(root))
    hint = "" if named_by else f" (set {EXPERIMENTS_ENV} or create it)"
    if not root.is_dir():
        reason = "does not exist" if not root.exists() else "is not a folder"
        message = f"the experiments folder {display_path(root)} {reason}{hint}"
        return [CheckedFile(root, None, [replace(where, message=message)])]
    files = experiment_files(root)
    if not files:
        kinds = ", ".join(EXPERIMENT_SUFFIXES)
        message = f"the experiments folder {display_path(root)} holds no {kinds} files"
        return [CheckedFile(root, None, [replace(where, message=message)])]
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
