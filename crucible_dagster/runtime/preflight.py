"""Full validation of an experiment file: structure, stage resolution and stage options.

The same problems are shown by ``crucible validate``, by ``definitions.py`` in the
Dagster UI and in the logs, so the wording lives here once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crucible_dagster.experiment.ir import Experiment, StageDef
from crucible_dagster.experiment.loading import (
    LocatedDocument,
    display_path,
    experiment_from_document,
    legacy_spelling_warnings,
    read_document,
)
from crucible_dagster.experiment.params import UnknownParameter, has_placeholder, substitute_params
from crucible_dagster.experiment.problems import ExperimentError, Problem, format_loc
from crucible_dagster.experiment.unused import USED_BY_STAGES, is_set, unsupported_settings
from crucible_dagster.runtime.registry import (
    Registry,
    StageResolutionError,
    load_stage_class,
    registry_for,
)
from crucible_dagster.runtime.stage import reliability_setting


@dataclass
class CheckedFile:
    path: Path
    experiment: Experiment | None
    problems: list[Problem] = field(default_factory=list)
    #: what is read but should be written another way (old spellings): shown, never invalid
    warnings: list[Problem] = field(default_factory=list)
    #: the line of its ``id:``, so a later file reusing the id can say where the first one is
    id_line: int | None = None

    @property
    def id_place(self) -> str:
        """``file:line`` of the experiment's id (the file alone when the line is unknown)."""
        where = display_path(self.path)
        return f"{where}:{self.id_line}" if self.id_line is not None else where

    @property
    def ok(self) -> bool:
        return self.experiment is not None and not self.problems


def _first_values(parameters: Any) -> dict[str, Any]:
    if not isinstance(parameters, Mapping):
        return {}
    return {k: (v[0] if isinstance(v, list) and v else v) for k, v in parameters.items()}


def _space_values(data: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's parameters beyond the grid's: ``seed`` (a sweep's first seed) and a study's
    (``sweep.optuna.search_space``) at a point of the space: a range's low end, a
    categorical's first choice; what the raw file holds, valid or not."""
    sweep = data.get("sweep")
    study = sweep.get("optuna") if isinstance(sweep, Mapping) else None
    space = study.get("search_space") if isinstance(study, Mapping) else None
    values: dict[str, Any] = {}
    seeds = data.get("seeds")
    if isinstance(seeds, list) and seeds:  # a sweep trial's ${params.seed} is its seed
        values["seed"] = seeds[0]
    elif isinstance(space, list) and data.get("seed") is not None:
        values["seed"] = data["seed"]
    for item in space if isinstance(space, list) else []:
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            continue
        choices = item.get("choices")
        first = choices[:1] if isinstance(choices, list) else []
        for value in (item.get("low"), item.get("high"), *first):
            if value is not None:  # a space without a value: the space's own error says so
                values[item["name"]] = value
                break
    return values


def _inner_field(value: Any, message: str) -> tuple[tuple[str, ...], str]:
    """A message about a field inside an option (``m.options.estimator: ...`` from a variant's
    backend) points at that field's own line: its keys, and the message without them."""
    prefix, sep, rest = message.partition(": ")
    parts = tuple(prefix.split(".")) if sep else ()
    for part in parts:
        if not isinstance(value, Mapping) or part not in value:
            return (), message
        value = value[part]
    return parts, (rest if parts else message)


def stage_problems(doc: LocatedDocument, registry: Registry) -> list[Problem]:
    """Resolve every stage of the raw pipeline and validate its options; works even when the IR is invalid."""

    data = doc.data if isinstance(doc.data, Mapping) else {}
    key = "pipeline" if "pipeline" in data else "stages"
    pipeline = data.get(key)
    if not isinstance(pipeline, list):
        return []
    extra = data.get("registry")
    if isinstance(extra, Mapping) and all(isinstance(v, str) for v in extra.values()):
        registry = registry.with_stages({str(k): v for k, v in extra.items()})
    params = {**_space_values(data), **_first_values(data.get("parameters"))}
    problems = []
    for index, entry in enumerate(pipeline):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            continue
        ref = entry.get("module") or entry["name"]
        ref_key = "module" if entry.get("module") else "name"
        if not isinstance(ref, str):
            continue
        try:
            stage_cls = registry.resolve(ref)
        except StageResolutionError as exc:
            loc = (key, index, ref_key)
            problems.append(doc.problem(loc, format_loc(loc), str(exc)))
            continue
        options = entry.get("options") or {}
        if not isinstance(options, Mapping):
            continue
        if has_placeholder(options):
            try:
                options = substitute_params(options, params)
            except UnknownParameter as exc:
                loc = (key, index, "options")
                problems.append(doc.problem(loc, format_loc(loc), str(exc)))
                continue
        for error in stage_cls.check_options(options):
            field_path, _, message = error.partition(": ")
            option_key = field_path.split(".")[0].split("[")[0]
            # the field's own line when the file has it (``prompt.user``), else its nearest parent
            option_loc: tuple[str | int, ...] = (
                (key, index, "options", *_loc_of(field_path))
                if option_key in options
                else (key, index, "options")
            )
            inner, message = _inner_field(options.get(option_key), message)
            if inner and field_path == option_key:
                field_path, option_loc = f"{field_path}.{'.'.join(inner)}", (*option_loc, *inner)
            problems.append(
                doc.problem(
                    option_loc, f"{format_loc((key, index, 'options'))}.{field_path}", message
                )
            )
    return problems


def _loc_of(field_path: str) -> tuple[str | int, ...]:
    """``scorers[1].options`` as the location ``("scorers", 1, "options")``: a problem inside a
    list of options is reported at its item's line, not the list's."""
    return tuple(
        int(number) if number else name
        for name, number in re.findall(r"([^.\[\]]+)|\[(\d+)\]", field_path)
    )


def registry_problems(doc: LocatedDocument) -> list[Problem]:
    """Every ``registry`` entry no stage names resolves to a Stage class too (one a stage names
    is reported at that stage, once): every dotted path in a file is checked for its kind."""
    data = doc.data if isinstance(doc.data, Mapping) else {}
    entries = data.get("registry")
    if not isinstance(entries, Mapping):
        return []  # the IR's own validation reports a registry of the wrong shape
    pipeline = data.get("pipeline", data.get("stages"))
    named = {
        entry.get("module") or entry.get("name")
        for entry in (pipeline if isinstance(pipeline, list) else [])
        if isinstance(entry, Mapping)
    }
    problems = []
    for name, path in entries.items():
        if not isinstance(path, str) or name in named:
            continue
        try:
            load_stage_class(path)
        except StageResolutionError as exc:
            loc = ("registry", str(name))
            problems.append(doc.problem(loc, f"registry.{name}", str(exc)))
    return problems


def setting_problems(
    experiment: Experiment, doc: LocatedDocument, registry: Registry
) -> list[Problem]:
    """Settings nothing acts on: unsupported ones, ones no enabled stage uses, and what the
    stages that use a setting find wrong with it (an unknown backend, say)."""

    def problem(path: str, message: str) -> Problem:
        return doc.problem(_loc_of(path), path, message)

    problems = [problem(path, message) for path, message in unsupported_settings(experiment)]
    if experiment.dataset is not None:
        from crucible_dagster.datasets import dataset_problems

        problems += [
            problem(path, message) for path, message in dataset_problems(experiment.dataset)
        ]
    stages = []
    resolver = registry_for(experiment, registry)
    for stage_def in experiment.enabled_stages:
        try:
            stages.append(resolver.resolve(stage_def.implementation))
        except StageResolutionError:
            continue  # stage_problems reports it
    used = {path for stage in stages for path in stage.uses}
    for path, users in USED_BY_STAGES.items():
        if not is_set(experiment, path) or path in used:
            continue
        backend = experiment.backend
        if path == "backend" and backend and backend.id == "noop" and backend.fallback is None:
            continue  # the original's way to say "no model"
        message = f"set, but no stage of this pipeline uses it: add a stage that does ({users}) or remove it"
        problems.append(problem(path, message))
    for stage in dict.fromkeys(stages):
        problems += [problem(path, message) for path, message in stage.check_experiment(experiment)]
    return problems


def check_document(
    doc: LocatedDocument, registry: Registry | None = None
) -> tuple[Experiment | None, list[Problem]]:
    registry = registry or Registry.default()
    experiment = None
    problems: list[Problem] = []
    try:
        experiment = experiment_from_document(doc)
    except ExperimentError as exc:
        problems.extend(exc.problems)
    problems.extend(stage_problems(doc, registry))
    problems.extend(registry_problems(doc))
    if experiment is not None:
        problems.extend(setting_problems(experiment, doc, registry))
    problems.sort(key=lambda p: (p.line or 0, p.field))
    return (experiment if not problems else None), problems


def check_file(
    path: str | Path, registry: Registry | None = None, folder: Path | None = None
) -> CheckedFile:
    """``folder``: the experiments folder the file was found in (a symlink may not leave it)."""
    path = Path(path)
    try:
        doc = read_document(path, folder)
        experiment, problems = check_document(doc, registry)
    except ExperimentError as exc:
        return CheckedFile(path, None, exc.problems)
    except Exception as exc:  # anything at all: one broken file never stops the others
        message = f"cannot check this file: {type(exc).__name__}: {exc}"
        return CheckedFile(path, None, [Problem(message, file=display_path(path), line=None)])
    warnings = legacy_spelling_warnings(doc) if experiment is not None else []
    return CheckedFile(path, experiment, problems, warnings, doc.lines.get(("id",)))


def check_files(
    paths: list[Path],
    registry: Registry | None = None,
    folders: Mapping[Path, Path] | None = None,
) -> list[CheckedFile]:
    """Every file checked, then checked against each other (``mark_duplicate_ids``): the
    first file using an id loads, a later one is invalid naming it. ``folders``: the
    experiments folder each file was found in."""
    checked = [check_file(path, registry, (folders or {}).get(path)) for path in paths]
    mark_duplicate_ids(checked)
    return checked


def mark_duplicate_ids(
    checked: list[CheckedFile], earlier: Mapping[str, str] | None = None
) -> None:
    """An experiment id used twice: the first in ``checked``'s order (files sorted by path,
    then a component's inline entries) keeps loading; each later one becomes invalid, at its
    own id's line, naming the first's file and line. ``earlier``: ids already taken elsewhere
    (by another component of the code location: id -> where), which win over every item here.
    One bad copy never drops the good one, and Dagster never sees two jobs of one name."""
    first: dict[str, str] = dict(earlier or {})
    for item in checked:
        if item.experiment is None:
            continue
        experiment_id = item.experiment.id
        if experiment_id not in first:
            first[experiment_id] = item.id_place
            continue
        message = (
            f"experiment id {experiment_id!r} is already used by {first[experiment_id]}, "
            "which is the one loaded; ids must be unique"
        )
        item.problems.append(Problem(message, "id", display_path(item.path), item.id_line))
        item.experiment = None
    _mark_unknown_launches(checked, set(first))


def _mark_unknown_launches(checked: list[CheckedFile], known: set[str]) -> None:
    """A retraining trigger's ``launch`` names an experiment of the same code location: one
    that is not there would make Dagster refuse the sensor, unlocated."""
    for item in checked:
        trigger = reliability_setting(item.experiment, "retraining_trigger")
        if trigger is None or trigger.launch is None or trigger.launch in known:
            continue
        field = "reliability.retraining_trigger.launch"
        message = (f"expected the id of an experiment loaded beside this one, found "
                   f"{trigger.launch!r}")  # fmt: skip
        item.problems.append(Problem(message, field, display_path(item.path), None))
        item.experiment = None


def stage_option_problems(
    stage_def: StageDef, options: Mapping[str, Any], registry: Registry
) -> list[str]:
    """One stage's option problems as ``field: message`` lines, as the stage reports them when it
    starts (outside a sweep there are no parameters, so a placeholder is a problem too)."""
    try:
        stage_cls = registry.resolve(stage_def.implementation)
        return stage_cls.check_options(substitute_params(dict(options), {}))
    except (StageResolutionError, UnknownParameter) as exc:
        return [str(exc)]


def first_refused_stage(
    experiment: Experiment, registry: Registry, params: Mapping[str, Any]
) -> StageDef | None:
    """The first enabled stage whose code or options a run refuses, found before any stage runs
    (as the Dagster run checks every stage's options at its first step): code named in a later
    stage is refused before an earlier stage has run."""
    for stage_def in experiment.enabled_stages:
        try:
            stage_cls = registry.resolve(stage_def.implementation)
            if stage_cls.check_options(substitute_params(dict(stage_def.options), params)):
                return stage_def
        except (StageResolutionError, UnknownParameter):
            return stage_def
    return None
