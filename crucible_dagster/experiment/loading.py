"""Read experiment files (YAML or JSON) into the IR, with every problem located by line.

Also dumps experiments back to YAML/JSON such that ``load(dump(x)) == x``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from crucible_dagster.experiment.explain import explain_error
from crucible_dagster.experiment.ir import Experiment
from crucible_dagster.experiment.problems import ExperimentError, Problem, format_loc, parse_loc

EXPERIMENT_SUFFIXES = (".yaml", ".yml", ".json")


_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):
    """Safe loader (libyaml when available) that reads ``1e-4`` as a float (YAML 1.2 rule)."""


_YAML12_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _YAML12_FLOAT, list("-+0123456789."))


class _Dumper(yaml.SafeDumper):
    """Quotes every string that the loader above would read back as a float (e.g. ``'0E0'``)."""


_Dumper.add_implicit_resolver("tag:yaml.org,2002:float", _YAML12_FLOAT, list("-+0123456789."))


def _compose_and_construct(text: str) -> tuple[yaml.Node | None, Any]:
    """Parse once: the node tree gives line numbers, the same tree gives the data."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return node, data


def _line_map(
    node: yaml.Node, path: tuple[str | int, ...], lines: dict[tuple[str | int, ...], int]
) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[(*path, key)] = key_node.start_mark.line + 1
            _line_map(value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _line_map(item, (*path, index), lines)


class LocatedDocument:
    """Parsed data plus a map from field paths to 1-based line numbers."""

    def __init__(self, data: Any, lines: dict[tuple[str | int, ...], int], file: str):
        self.data = data
        self.lines = lines
        self.file = file

    def line_of(self, loc: tuple[str | int, ...] | list[str | int]) -> int | None:
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), 1)

    def problem(
        self, loc: tuple[str | int, ...] | list[str | int], field: str, message: str
    ) -> Problem:
        return Problem(message=message, field=field, file=self.file, line=self.line_of(loc))


def parse_document(text: str, file: str) -> LocatedDocument:
    """Parse YAML or JSON text; syntax errors become a Problem with the line of the fault."""
    lines: dict[tuple[str | int, ...], int] = {}
    if file.endswith(".json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ExperimentError(
                [Problem(f"invalid JSON: {exc.msg}", file=file, line=exc.lineno)]
            ) from None
        try:
            node, _ = _compose_and_construct(text)
            if node is not None:
                _line_map(node, (), lines)
        except yaml.YAMLError:
            lines = {(): 1}
        return LocatedDocument(data, lines, file)
    try:
        node, data = _compose_and_construct(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        reason = exc.problem or str(exc)
        raise ExperimentError([Problem(f"invalid YAML: {reason}", file=file, line=line)]) from None
    except yaml.YAMLError as exc:
        raise ExperimentError([Problem(f"invalid YAML: {exc}", file=file, line=1)]) from None
    if node is not None:
        _line_map(node, (), lines)
    return LocatedDocument(data, lines, file)


def validation_problems(
    error: ValidationError,
    model: type[BaseModel],
    doc: LocatedDocument,
    prefix: tuple[str | int, ...] = (),
) -> list[Problem]:
    problems = []
    for err in error.errors():
        field, message = explain_error(err, model)
        ctx_field = (err.get("ctx") or {}).get("field")
        loc = (*prefix, *(parse_loc(ctx_field) if ctx_field else err["loc"]))
        if prefix:
            field = format_loc(loc)
        problems.append(doc.problem(loc, field, message))
    return problems


def experiment_from_document(doc: LocatedDocument) -> Experiment:
    if doc.data is None:
        raise ExperimentError(
            [doc.problem((), "", "expected a mapping with 'id' and 'pipeline', got an empty file")]
        )
    if not isinstance(doc.data, dict):
        raise ExperimentError(
            [
                doc.problem(
                    (),
                    "",
                    f"expected a mapping with 'id' and 'pipeline', got {type(doc.data).__name__}",
                )
            ]
        )
    try:
        return Experiment.model_validate(doc.data)
    except ValidationError as exc:
        raise ExperimentError(validation_problems(exc, Experiment, doc)) from None


def display_path(path: Path) -> str:
    """The path as the user would type it: relative to the working directory when inside it."""
    absolute = path if path.is_absolute() else Path.cwd() / path
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def read_document(path: str | Path) -> LocatedDocument:
    path = Path(path)
    file = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ExperimentError([Problem(f"cannot read file: {exc}", file=file)]) from None
    return parse_document(text, file)


def load_experiment(path: str | Path) -> Experiment:
    """Load one experiment file; raises ExperimentError listing every structural problem."""
    return experiment_from_document(read_document(path))


def loads_experiment(text: str, fmt: str = "yaml") -> Experiment:
    return experiment_from_document(parse_document(text, f"<string>.{fmt}"))


def experiment_to_data(experiment: Experiment) -> dict[str, Any]:
    return experiment.model_dump(mode="json", by_alias=True, exclude_defaults=True)


def dump_experiment(experiment: Experiment, fmt: str = "yaml") -> str:
    data = experiment_to_data(experiment)
    if fmt == "json":
        return json.dumps(data, indent=2, allow_nan=False)
    # PyYAML writes NEL/LS/PS raw under allow_unicode and then reads them back as line breaks.
    awkward = any(ch in json.dumps(data, ensure_ascii=False) for ch in "\x85\u2028\u2029")
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=not awkward)


def experiment_files(folder: str | Path) -> list[Path]:
    """Experiment files under ``folder``, sorted, hidden files skipped."""
    root = Path(folder)
    if not root.is_dir():
        return []
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix in EXPERIMENT_SUFFIXES
        and not any(s.startswith(".") for s in p.relative_to(root).parts)
    )


def experiment_json_schema() -> dict[str, Any]:
    """JSON Schema of the experiment file, for editors (``crucible schema``)."""
    schema = Experiment.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Crucible experiment"
    return schema
