"""What an experiment points at: its backend, its dataset, its stages and its reports."""

from __future__ import annotations

import posixpath
import re
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator, with_config
from typing_extensions import TypedDict

from crucible_dagster.experiment.ir.base import Float, Int, IRModel, Name, distinct
from crucible_dagster.experiment.names import MAX_NAME_LENGTH, check_name, suggest_name

# --- references ---------------------------------------------------------------------------


class BackendRef(IRModel):
    id: Name
    profile: str = "default"
    options: dict[str, Any] | None = None
    model_version: str | None = None
    endpoint_url: str | None = None
    deployment_id: str | None = None
    fallback: BackendRef | None = None


class SampleSpec(IRModel):
    """Which examples a run takes, seeded by the experiment seed: ``n`` or ``fraction`` of them
    (at random, or ``stratified`` by a column), or exactly the ids a run recorded."""

    n: Int | None = Field(default=None, ge=1)
    fraction: Float | None = Field(default=None, gt=0.0, le=1.0)
    strategy: Literal["random", "stratified"] = "random"
    by: str | None = Field(default=None, min_length=1)
    ids_from: str | None = Field(
        default=None,
        min_length=1,
        description="A run directory (or its dataset_ids.json) whose sample ids to take again.",
    )

    @model_validator(mode="after")
    def _one_way(self) -> SampleSpec:
        ways = [k for k in ("n", "fraction", "ids_from") if getattr(self, k) is not None]
        if len(ways) != 1:
            raise ValueError(
                f"expected exactly one of n, fraction or ids_from, got {ways or 'none'}"
            )
        if self.strategy == "stratified" and self.by is None:
            raise ValueError("strategy 'stratified' needs 'by': the column to stratify on")
        if self.by is not None and self.strategy != "stratified":
            raise ValueError("'by' is only read with strategy: stratified")
        return self


class FoldSpec(IRModel):
    """k-fold assignment: a ``fold`` column (0..k-1), seeded, stratified when ``by`` is set."""

    k: Int = Field(ge=2, le=100)
    by: str | None = Field(default=None, min_length=1)


class DatasetRef(IRModel):
    name: Name
    provider: str = "crucible_datasets"
    split: str = Field(default="train", min_length=1)
    options: dict[str, Any] | None = None
    version: str | None = Field(default=None, min_length=1)  # "" would pin nothing
    format: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    limit: Int | None = Field(default=None, ge=1, description="The first N rows, before sampling.")
    sample: SampleSpec | None = None
    folds: FoldSpec | None = None

    @field_validator("folds", mode="before")
    @classmethod
    def _folds_count(cls, value: Any) -> Any:
        """``folds: 5`` is ``folds: {k: 5}``."""
        return {"k": value} if isinstance(value, int) and not isinstance(value, bool) else value


ReportFormat = Literal["markdown", "json", "html", "csv"]
REPORT_EXTENSIONS = {"markdown": "md", "json": "json", "html": "html", "csv": "csv"}
#: the run's own records: no report may be written over them
RUN_RECORD_FILES = frozenset({"manifest.json", "telemetry.jsonl", "trace.json", "budget.json"})
Sink = Literal["file", "stdout", "asset"]


@with_config(ConfigDict(extra="forbid"))
class OutputOptions(TypedDict, total=False):
    """``outputs[].options``: the report stage reads ``path`` only; a mapping (not a model) so
    readers keep ``options.get("path")``, checked all the same: an unknown key is refused."""

    path: str


#: an output name: part of a Dagster asset's output name (which spells '-' and '.' as '_') and
#: of a file name inside the run directory, so no '/', space or leading dot
OUTPUT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def dagster_spelling(output_name: str) -> str:
    """How Dagster spells an output name inside its own names: '-' and '.' become '_'."""
    return output_name.replace("-", "_").replace(".", "_")


class OutputSpec(IRModel):
    """One report: its formats each go to a separate file (never overwriting each other)."""

    name: Name
    formats: Annotated[list[ReportFormat], distinct("formats")] = Field(
        default_factory=lambda: list[ReportFormat](["markdown"])
    )
    sink: Sink = "file"
    options: OutputOptions | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        # Refused here, at the file's line, rather than by Dagster when the folder loads.
        if not OUTPUT_NAME.fullmatch(value) or len(value) > MAX_NAME_LENGTH:
            raise ValueError(
                f"expected an output name of at most {MAX_NAME_LENGTH} letters, digits, '_', '-' "
                f"and '.', starting with a letter or digit (a valid Dagster name and a file name "
                f"inside the run directory), got {value!r}; try {suggest_name(value)!r}"
            )
        return value

    def path_escapes(self) -> bool:
        """Whether ``options.path`` leaves the run directory (absolute, or up with '..'): the
        report stage would refuse it at the end of the run, so the IR refuses it first."""
        requested = str((self.options or {}).get("path") or "x")
        normal = posixpath.normpath(requested.replace("\\", "/"))
        return normal.startswith("/") or normal in (".", "..") or normal.startswith("../")

    def file_name(self, fmt: str) -> str:
        """The file this report writes for ``fmt``: ``<name>.<ext>``, or ``options.path``."""
        extension = REPORT_EXTENSIONS[fmt]
        requested = (self.options or {}).get("path")
        if not requested:
            return f"{self.name}.{extension}"
        stem = PurePosixPath(str(requested))
        if len(self.formats) > 1 or not stem.suffix:
            return str(stem.with_suffix(f".{extension}"))
        return str(stem)


class StageDef(IRModel):
    """One pipeline step: ``name`` is the op name; ``module`` picks another implementation."""

    name: str
    module: str | None = Field(
        default=None,
        description="Registered stage name or dotted path 'package.module:Class'; defaults to name.",
    )
    options: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value, "stage name")

    @field_validator("options", mode="before")
    @classmethod
    def _none_options(cls, value: Any) -> Any:
        return {} if value is None else value

    @property
    def implementation(self) -> str:
        return self.module or self.name
