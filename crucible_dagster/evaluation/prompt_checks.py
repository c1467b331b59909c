"""What ``crucible validate`` (and the Dagster loader) says about the prompts of predict stages.

A stage's own option check parses its prompt (syntax, refused attributes) at the option's line;
a sweep's check fills ``${params.*}`` with each parameter's first value only, so every prompt of
a grid (``prompt: ${params.prompt}``) is parsed here, at its own line under ``parameters``. Then
the names each template reads are checked against the fields the examples will have: the
dataset's columns as far as they are known without loading (``datasets.columns_of``: a
benchmark's canonical columns, a declared ``schema``) and a few-shot file's own fields. Where the fields cannot be
known before a run, the run renders every sample's messages before it sends any, and names the
sample whose fields a template misses.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from crucible_dagster.evaluation.few_shot import FewShotError, read_shot_file
from crucible_dagster.evaluation.prompts import PromptSpec
from crucible_dagster.experiment.explain import explain_error
from crucible_dagster.experiment.params import PLACEHOLDER

if TYPE_CHECKING:
    from crucible_dagster.experiment.ir import DatasetRef, Experiment


def declared_columns(dataset: DatasetRef | None) -> set[str] | None:
    """The examples' fields as far as they are known before loading; None when unknown."""
    if dataset is None:
        return None
    from crucible_dagster.datasets import columns_of

    found = columns_of(dataset)
    return None if found is None else {str(c) for c in found}


def _candidates(experiment: Experiment, index: int, raw: Any) -> Iterator[tuple[str, Any]]:
    """(field path, prompt as written) of one stage's ``prompt``: itself, or each value of the
    parameter a whole ``${params.name}`` placeholder names."""
    whole = PLACEHOLDER.fullmatch(raw) if isinstance(raw, str) else None
    if whole is None:
        if not (isinstance(raw, str) and PLACEHOLDER.search(raw)):
            yield f"pipeline[{index}].options.prompt", raw
        return
    name = whole.group(1)
    for position, value in enumerate(experiment.parameters.get(name, [])):
        yield f"parameters.{name}[{position}]", value


def _parsed(path: str, raw: Any, grid: bool) -> tuple[PromptSpec | None, list[tuple[str, str]]]:
    try:
        return PromptSpec.model_validate(raw), []
    except ValidationError as exc:
        if not grid:
            return None, []  # the stage's own option check reports it at the option's line
        problems = []
        for error in exc.errors():
            field, message = explain_error(error, PromptSpec)
            problems.append((f"{path}.{field}" if field else path, message))
        return None, problems


def _shot_fields(
    prompt: PromptSpec, path: str, experiment: Experiment, columns: set[str] | None
) -> tuple[set[str] | None, list[tuple[str, str]]]:
    few_shot = prompt.few_shot
    if few_shot is None:
        return None, []
    if few_shot.split is not None:
        dataset = experiment.dataset
        if dataset is None:
            message = "draws from a split of the experiment's dataset, and it has none"
            return None, [(f"{path}.few_shot.split", message)]
        # a split the file does not set is the provider's to choose (a benchmark's is its test
        # split): only one written can be compared
        if "split" in dataset.model_fields_set and few_shot.split == dataset.split:
            message = (
                f"the shots would come from the split being evaluated ({dataset.split!r}), so "
                "a sample could be its own solved example: name another split"
            )
            return None, [(f"{path}.few_shot.split", message)]
        return columns, []
    try:
        shots = read_shot_file(str(few_shot.file))
    except FewShotError as exc:
        return None, [(f"{path}.few_shot.file", str(exc).removeprefix("few_shot.file: "))]
    if few_shot.n > len(shots):
        return None, [
            (f"{path}.few_shot.n", f"{few_shot.n} shots asked, the file has {len(shots)}")
        ]
    return set().union(*(set(s) for s in shots)), []


def _system_twice(
    prompt: PromptSpec, path: str, experiment: Experiment, raw_options: Any
) -> list[tuple[str, str]]:
    """A prompt's system message and a backend's ``options.system``: the request would have two."""
    if prompt.system is None:
        return []
    backends = []
    variants = raw_options.get("variants") if isinstance(raw_options, Mapping) else None
    if isinstance(variants, Mapping):
        backends = [(f"variants.{n}", v) for n, v in variants.items() if isinstance(v, Mapping)]
    elif experiment.backend is not None:
        backends = [("backend", experiment.backend.model_dump())]
    problems = []
    for where, ref in backends:
        options = ref.get("options")
        if isinstance(options, Mapping) and options.get("system") is not None:
            problems.append(
                (
                    f"{path}.system",
                    f"set, and {where}.options.system too: keep one (the prompt's is a template)",
                )
            )
    return problems


def prompt_problems(experiment: Experiment, stage_refs: tuple[str, ...]) -> list[tuple[str, str]]:
    """(field path, problem) for every prompt of the experiment's enabled predict stages."""
    columns = declared_columns(experiment.dataset)
    problems: list[tuple[str, str]] = []
    names: dict[str, str] = {}
    for index, stage in enumerate(experiment.pipeline):
        if not stage.enabled or stage.implementation not in stage_refs:
            continue
        raw = (stage.options or {}).get("prompt")
        if raw is None:
            continue
        for path, value in _candidates(experiment, index, raw):
            grid = path.startswith("parameters.")
            prompt, found = _parsed(path, value, grid)
            problems += found
            if prompt is None:
                continue
            if grid and prompt.name is None:
                message = "a prompt of a sweep needs a name: its trials are named by it"
                problems.append((f"{path}.name" if isinstance(value, Mapping) else path, message))
            elif grid and prompt.name is not None:
                first = names.setdefault(f"{path.partition('[')[0]}/{prompt.name}", path)
                if first != path:
                    message = f"{prompt.name!r} names {first} too: each prompt of a sweep its own"
                    problems.append((f"{path}.name", message))
            shot_fields, found = _shot_fields(prompt, path, experiment, columns)
            problems += found
            problems += [
                (f"{path}.{text.partition(': ')[0]}", text.partition(": ")[2])
                for text in prompt.field_problems(columns, shot_fields)
            ]
            problems += _system_twice(prompt, path, experiment, stage.options)
    return problems
