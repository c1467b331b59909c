"""Read experiment files (YAML or JSON) into the IR, with every problem located by line.

Also dumps experiments back to YAML/JSON such that ``load(dump(x)) == x``.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from crucible_dagster.common.jsonsafe import DuplicateJsonKey, duplicate_json_keys
from crucible_dagster.experiment.anchoring import anchored
from crucible_dagster.experiment.explain import explain_error
from crucible_dagster.experiment.ir import Experiment, legacy_spellings_used
from crucible_dagster.experiment.ir.dagster_settings import as_written
from crucible_dagster.experiment.problems import (
    ExperimentError,
    Problem,
    format_loc,
    parse_loc,
    short_repr,
)
from crucible_dagster.experiment.yaml_limits import (
    MAX_DEPTH,
    check_duplicate_keys,
    check_node_tree,
)

EXPERIMENT_SUFFIXES = (".yaml", ".yml", ".json")
MAX_FILE_BYTES_ENV = "CRUCIBLE_MAX_FILE_BYTES"
DEFAULT_MAX_FILE_BYTES = 1 << 20


_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):
    """Safe loader (libyaml when available) that reads ``1e-4`` as a float (YAML 1.2 rule).

    Only the core schema: Python tags were never allowed (safe loader), and the set,
    ordered-map and pairs tags are refused too, so every document is plain mappings,
    lists and scalars.
    """


_Loader.yaml_constructors = {  # PyYAML's class registry
    tag: constructor
    for tag, constructor in _BaseLoader.yaml_constructors.items()  # type: ignore[attr-defined]
    if tag not in {f"tag:yaml.org,2002:{name}" for name in ("set", "omap", "pairs")}
}


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


def _compose_and_construct(
    text: str, file: str, lines: dict[tuple[str | int, ...], int] | None = None
) -> tuple[yaml.Node | None, Any]:
    """Parse once: the node tree gives line numbers, the same tree gives the data.

    The tree is checked before any data is built from it: with anchors, its size after alias
    expansion (so an alias bomb is refused without being expanded); always, its depth and
    duplicate keys, in the same pass that maps fields to lines.
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        if "&" in text:
            check_node_tree(node, file)
        _line_map(node, (), {} if lines is None else lines, file)
        try:
            return node, loader.construct_document(node)
        except Exception as exc:  # a constructor's own error: located below, else re-raised
            raise _constructor_problem(loader, node, file) or exc from None
    finally:
        loader.dispose()


_TAG_WORDS = {"int": "an integer", "float": "a number", "timestamp": "a date", "bool": "a boolean"}


def _constructor_problem(loader: Any, root: yaml.Node, file: str) -> ExperimentError | None:
    """The scalar that a constructor refused (a 5,000-digit integer, 30 February, ``!!int abc``),
    at its own line and field: the document is otherwise well-formed, so every scalar is
    constructed again alone until one fails."""
    stack: list[tuple[yaml.Node, tuple[str | int, ...]]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, yaml.MappingNode):
            for key, value in reversed(node.value):  # a key is constructed too
                stack.extend([(value, (*path, str(key.value))), (key, (*path, str(key.value)))])
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((v, (*path, i)) for i, v in reversed(list(enumerate(node.value))))
        elif isinstance(node, yaml.ScalarNode):
            constructor = loader.yaml_constructors.get(node.tag)
            try:
                if constructor is not None:
                    constructor(loader, node)
            except Exception as exc:  # any constructor failure is this scalar's problem
                line = node.start_mark.line + 1
                problem = Problem(_scalar_message(node, exc), format_loc(path), file, line)
                return ExperimentError([problem])
    return None


def _scalar_message(node: yaml.ScalarNode, exc: Exception) -> str:
    what = _TAG_WORDS.get(node.tag.rsplit(":", 1)[-1], f"a value of tag {node.tag}")
    digits = sum(ch.isdigit() for ch in node.value)
    if what == "an integer" and digits > sys.get_int_max_str_digits():
        return (
            f"expected an integer of at most {sys.get_int_max_str_digits()} digits, "
            f"got one of {digits} digits"
        )
    reason = f" ({exc})" if isinstance(exc, ValueError) and what == "a date" else ""
    return f"expected {what}, got {short_repr(node.value)}{reason}"


def _line_map(
    node: yaml.Node,
    path: tuple[str | int, ...],
    lines: dict[tuple[str | int, ...], int],
    file: str,
) -> None:
    if len(path) >= MAX_DEPTH:
        raise ExperimentError(
            [
                Problem(
                    f"expected nesting at most {MAX_DEPTH} deep, got deeper",
                    file=file,
                    line=node.start_mark.line + 1,
                )
            ]
        )
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        check_duplicate_keys(node, file)
        for key_node, value_node in node.value:
            child = (*path, key_node.value)
            _line_map(value_node, child, lines, file)
            lines[child] = key_node.start_mark.line + 1  # a field is where its key is
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _line_map(item, (*path, index), lines, file)


class LocatedDocument:
    """Parsed data plus a map from field paths to 1-based line numbers."""

    def __init__(
        self,
        data: Any,
        lines: dict[tuple[str | int, ...], int],
        file: str,
        folder: Path | None = None,
    ):
        self.data, self.lines, self.file = data, lines, file
        self.folder = folder  # the file's folder (absolute): its relative dataset paths mean it

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
    """Parse YAML or JSON text; any failure becomes a Problem located at the fault when known."""
    try:
        return _parse(text, file)
    except ExperimentError:
        raise
    except (RecursionError, MemoryError) as exc:
        message = f"document is too deeply nested or too large to read ({type(exc).__name__})"
        raise ExperimentError([Problem(message, file=file, line=1)]) from None
    except Exception as exc:  # a parser or constructor bug must not escape as a traceback
        message = f"cannot read document: {type(exc).__name__}: {exc}"
        raise ExperimentError([Problem(message, file=file, line=1)]) from None


def _parse(text: str, file: str) -> LocatedDocument:
    lines: dict[tuple[str | int, ...], int] = {}
    if file.endswith(".json"):
        try:
            data = json.loads(text, object_pairs_hook=duplicate_json_keys)
        except json.JSONDecodeError as exc:
            raise ExperimentError(
                [Problem(f"invalid JSON: {exc.msg}", file=file, line=exc.lineno)]
            ) from None
        except ValueError:  # a number too long to convert: the YAML reading of it says where
            _compose_and_construct(text, file)
            raise
        except DuplicateJsonKey as exc:
            # JSON is YAML: its node tree names both lines (check_node_tree raises with them)
            _compose_and_construct(text, file)
            message = (
                f"duplicate key {exc.args[0]!r}; a later value would silently replace the first"
            )
            raise ExperimentError([Problem(message, file=file, line=1)]) from None
        try:
            _compose_and_construct(text, file, lines)
        except yaml.YAMLError:
            lines.clear()
        return LocatedDocument(data, lines or {(): 1}, file)
    try:
        _, data = _compose_and_construct(text, file, lines)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        reason = exc.problem or str(exc)
        raise ExperimentError([Problem(f"invalid YAML: {reason}", file=file, line=line)]) from None
    except yaml.YAMLError as exc:
        raise ExperimentError([Problem(f"invalid YAML: {exc}", file=file, line=1)]) from None
    return LocatedDocument(data, lines, file)


def parse_yaml_value(text: str) -> Any:
    """One YAML value (a command-line override) with the loader's rules; ValueError if it is not."""
    try:
        node, data = _compose_and_construct(text, "<value>")
    except ExperimentError as exc:
        raise ValueError(exc.problems[0].message) from None
    except yaml.YAMLError as exc:
        raise ValueError(str(exc).replace("\n", " ")) from None
    return data if node is not None else None


#: tags pydantic puts in an error's location for a discriminated union: not part of the file
_UNION_TAGS = {"baseline": ("gate", "model"), "source": ("path", "table")}


def _without_union_tags(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    kept: list[str | int] = []
    for before, part in zip((None, *loc), loc, strict=False):  # source.table.table: one tag
        if not (isinstance(before, str) and part in _UNION_TAGS.get(before, ())):
            kept.append(part)
    return tuple(kept)


def validation_problems(
    error: ValidationError,
    model: type[BaseModel],
    doc: LocatedDocument,
    prefix: tuple[str | int, ...] = (),
) -> list[Problem]:
    problems = []
    for err in error.errors():
        err = {**err, "loc": _without_union_tags(err["loc"])}
        field, message = explain_error(err, model)
        ctx_field = (err.get("ctx") or {}).get("field")
        loc = (*prefix, *(parse_loc(ctx_field) if ctx_field else err["loc"]))
        written = loc if prefix else as_written(loc, doc.data)  # an old spelling's own line
        if prefix or written != loc:
            loc, field = written, format_loc(written)
        problems.append(doc.problem(loc, field, message))
    return problems


def legacy_spelling_warnings(doc: LocatedDocument) -> list[Problem]:
    """Old spellings of the ``dagster:`` settings: still read, each named with its line and the
    new spelling (``crucible validate`` prints them and still exits 0)."""
    return [
        doc.problem(
            old,
            ".".join(old),
            f"warning: old spelling of '{'.'.join(new)}' (still read): move it there",
        )
        for old, new in legacy_spellings_used(doc.data)
    ]


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
        return Experiment.model_validate(anchored(doc.data, doc.folder))
    except ValidationError as exc:
        raise ExperimentError(validation_problems(exc, Experiment, doc)) from None


def display_path(path: Path) -> str:
    """The path as the user would type it: relative to the working directory when inside it."""
    absolute = path if path.is_absolute() else Path.cwd() / path
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def max_file_bytes() -> int:
    """The largest experiment file read: 1 MiB, or ``$CRUCIBLE_MAX_FILE_BYTES``."""
    raw = os.environ.get(MAX_FILE_BYTES_ENV, "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_MAX_FILE_BYTES


def outside_folder(path: Path, folder: Path | None = None) -> str | None:
    """Why ``path`` is not read: a symlink leading outside ``folder`` (the experiments folder
    scanned, else the file's own folder). Its target is never read, so never echoed."""
    if not path.is_symlink():
        return None
    try:
        root = (folder if folder is not None else path.parent).resolve()
        target = path.resolve()
    except (OSError, RuntimeError):  # a loop: reading it reports it
        return None
    if root in target.parents:
        return None
    return (
        f"expected an experiment file inside {display_path(root)}, got a symlink leading "
        "outside it; it was not read"
    )


def read_document(path: str | Path, folder: Path | None = None) -> LocatedDocument:
    """The file's text parsed, with each value's line; a symlink leading out of ``folder``
    (default: the file's own folder), a device or an oversized file is refused unread."""
    path = Path(path)
    file = display_path(path)
    escape = outside_folder(path, folder)
    if escape is not None:
        raise ExperimentError([Problem(escape, file=file)])
    try:
        text = _read_text(path, max_file_bytes())
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ExperimentError([Problem(f"cannot read file: {reason}", file=file)]) from None
    except _Unreadable as exc:
        raise ExperimentError([Problem(str(exc), file=file)]) from None
    doc = parse_document(text, file)
    doc.folder = path.parent.absolute()
    return doc


class _Unreadable(Exception):
    pass


def _read_text(path: Path, limit: int) -> str:
    """A regular file's text, at most ``limit`` bytes: never a device, FIFO or directory."""
    kind = path.stat().st_mode
    if not stat.S_ISREG(kind):
        what = "a directory" if stat.S_ISDIR(kind) else "a device, FIFO or socket"
        raise _Unreadable(f"expected a regular file, got {what}")
    with path.open("rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise _Unreadable(
            f"expected a file of at most {limit} bytes, got a larger one "
            f"(set {MAX_FILE_BYTES_ENV} to raise the limit)"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Unreadable(
            f"expected UTF-8 text, got an invalid byte at offset {exc.start}"
        ) from None


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


#: a Dagster component's declaration, which may sit in the experiments folder it points at
COMPONENT_FILES = ("defs.yaml", "defs.yml")


def experiment_files(folder: str | Path) -> list[Path]:
    """Experiment files in ``folder``, sorted, no hidden or defs file; a FIFO kept, to be refused."""
    root = Path(folder)
    if not root.is_dir():
        return []
    return sorted(
        p
        for p in root.rglob("*")
        if p.exists()
        and not p.is_dir()
        and p.suffix in EXPERIMENT_SUFFIXES
        and p.name not in COMPONENT_FILES
        and not any(s.startswith(".") for s in p.relative_to(root).parts)
    )


def experiment_json_schema() -> dict[str, Any]:
    """JSON Schema of the experiment file, for editors (``crucible schema``)."""
    schema = Experiment.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Crucible experiment"
    return schema
