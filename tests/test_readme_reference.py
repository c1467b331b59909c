"""The README's experiment file reference names every field the IR accepts, and the README names
every built-in stage, scorer, dataset provider and backend, so the two cannot drift apart again.

The names are read from the code (the IR's pydantic models, the registries' tables and the
package's entry points), never listed here: a field added to the IR without a README line fails
this test, and so does a line removed from the README.
"""

from __future__ import annotations

import re
import typing
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from crucible_dagster.backends.registry import BUILTIN_BACKENDS
from crucible_dagster.datasets.registry import BUILTIN_PROVIDERS
from crucible_dagster.experiment import ir
from crucible_dagster.experiment.ir.racing_settings import RaceBudget, RacingSettings
from crucible_dagster.scorers.registry import BUILTIN_SCORERS

README = Path(__file__).resolve().parent.parent / "README.md"
REFERENCE_HEADING = "## Experiment file reference"

#: the original's records the table names as a whole (refused: "No silent settings"), not field
#: by field
REFUSED_MODELS: tuple[type[BaseModel], ...] = (ir.ModelRef, ir.ModelVersion, ir.TrainingConfig)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation holds (``X | None``, ``list[X]``, ``Annotated[...]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def documented_models() -> dict[str, type[BaseModel]]:
    """Every IR model reachable from the experiment, by where it sits in a file (``dataset``,
    ``sweep.racing``, ``pipeline`` for the list's items), found by walking the fields: a block
    added to the IR is checked without a line here. A model used in several places (a dataset
    reference) is documented where it sits shallowest: the walk is breadth-first."""
    found: dict[str, type[BaseModel]] = {}
    todo: list[tuple[str, type[BaseModel]]] = [("", ir.Experiment)]
    while todo:
        prefix, model = todo.pop(0)
        if model in found.values() or model in REFUSED_MODELS:
            continue
        found[prefix] = model
        for name, field in model.model_fields.items():
            for inner in _models_in(field.annotation):
                todo.append((f"{prefix}.{field.alias or name}".lstrip("."), inner))
    return found


def section(text: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of the same level."""
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end != -1 else len(text)]


def backticked_names(text: str) -> set[str]:
    """Every identifier inside a backticked span (`a`, `{a, b}`, `a.b[].c`, `a: b`)."""
    names: set[str] = set()
    for span in re.findall(r"`([^`\n]+)`", text):
        names.update(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", span))
    return names


def field_names(model: type[BaseModel]) -> list[str]:
    """A model's fields as a file spells them (its alias when it has one)."""
    return [field.alias or name for name, field in model.model_fields.items()]


def table_rows(reference: str) -> list[tuple[set[str], set[str]]]:
    """Each row of the reference table: (the spans of its first cell, every name in the row)."""
    rows = []
    for line in reference.splitlines():
        if not line.startswith("| `"):
            continue
        first = line.split("|")[1]
        spans = {s.strip() for s in re.findall(r"`([^`\n]+)`", first)}
        rows.append((spans, backticked_names(line)))
    return rows


def _related(span: str, prefix: str) -> bool:
    """A row about ``prefix`` itself, a field under it, or the block that holds it."""
    span = span.replace("[]", "")
    return span == prefix or span.startswith(prefix + ".") or prefix.startswith(span + ".")


def missing_fields(reference: str) -> list[str]:
    """The IR fields the reference table does not name, as ``parent.field`` paths: a field of
    ``parent`` must be named in a row whose first cell is ``parent`` or ``parent.<something>``
    (a top-level field: in a row's first cell)."""
    rows = table_rows(reference)
    missing = []
    for prefix, model in documented_models().items():
        if prefix:
            named: set[str] = set()
            for spans, names in rows:
                if any(_related(s, prefix) for s in spans):
                    named |= names
        else:
            named = {n for spans, _ in rows for s in spans for n in re.findall(r"\w+", s)[:1]}
        missing += [f"{prefix}.{n}".lstrip(".") for n in field_names(model) if n not in named]
    return missing


def builtin_names() -> dict[str, list[str]]:
    stages = sorted(ep.name for ep in entry_points(group="crucible_dagster.stages"))
    return {
        "stage": stages,
        "scorer": sorted(BUILTIN_SCORERS),
        "dataset provider": sorted(BUILTIN_PROVIDERS),
        "backend": sorted(BUILTIN_BACKENDS),
    }


def missing_builtins(text: str) -> list[str]:
    named = {span.strip() for span in re.findall(r"`([^`\n]+)`", text)}
    return [
        f"{kind} {name!r}"
        for kind, names in builtin_names().items()
        for name in names
        if name not in named
    ]


def test_every_ir_field_is_in_the_experiment_file_reference() -> None:
    reference = section(README.read_text(encoding="utf-8"), REFERENCE_HEADING)
    missing = missing_fields(reference)
    assert missing == [], (
        f"README.md, {REFERENCE_HEADING!r}: no row names {', '.join(missing)}; add each to the "
        "row of its block (e.g. `sweep`) or a row of its own (`sweep.<field>`), with its type, "
        "default and meaning "
    )


def test_every_builtin_stage_scorer_provider_and_backend_is_named() -> None:
    missing = missing_builtins(README.read_text(encoding="utf-8"))
    assert missing == [], f"README.md never names (in backticks) the built-in {', '.join(missing)}"


def test_the_walk_finds_the_nested_blocks() -> None:
    """The models are found by walking the IR: an empty walk would check nothing."""
    models = documented_models()
    assert models["sweep.racing"] is RacingSettings
    assert models["sweep.racing.budget"] is RaceBudget
    assert models["dataset.sample"] is ir.SampleSpec
    assert models["pipeline"] is ir.StageDef
    assert models["reliability.hedging.options"] is ir.HedgingOptions
    assert models["baseline"] is ir.RegressionBaseline
    assert not set(models.values()) & set(REFUSED_MODELS)


def test_the_entry_points_are_installed() -> None:
    """The stage names come from the installed entry points: an empty list would pass anything."""
    names = builtin_names()
    assert {"predict", "score", "bench", "report"} <= set(names["stage"])
    assert all(names.values())


@pytest.mark.parametrize(
    "name", ["budget", "per_sample", "min_survivors", "ids_from", "trials_per_step", "schema"]
)
def test_a_field_removed_from_the_reference_is_found(name: str) -> None:
    reference = section(README.read_text(encoding="utf-8"), REFERENCE_HEADING)
    assert name in backticked_names(reference)
    # every mention of the name, alone or inside a longer span, is taken out
    stripped = re.sub(rf"\b{name}\b", "REMOVED", reference)
    assert any(path.endswith("." + name) or path == name for path in missing_fields(stripped))


def test_a_scorer_removed_from_the_readme_is_found() -> None:
    text = README.read_text(encoding="utf-8")
    assert "`token_f1`" in text
    assert "scorer 'token_f1'" in missing_builtins(text.replace("`token_f1`", "token-F1"))
