"""A Dagster Component so a ``defs.yaml`` can declare crucible experiments.

type: crucible_dagster.dagster_plugin.CrucibleExperimentsComponent
attributes:
  path: experiments          # a folder of experiment files, relative to this defs.yaml
  experiments: []            # and/or experiments written inline
  translator: mypkg.naming:MyTranslator   # optional: a CrucibleTranslator subclass
  registry: {score: mypkg.stages:Score}   # optional: extra stage names
  executor: celery           # optional: for every experiment that names no executor itself
  artifacts_dir: artifacts   # optional: run directories, relative to the project root (default)
  strict: false              # optional: true fails the load on any problem (so does CRUCIBLE_STRICT=1)
post_processing:             # Dagster's own, as for every component: change any asset's specs
  assets:
    - target: "*"
      attributes: {group_name: experiments}

``dg scaffold defs crucible_dagster.dagster_plugin.CrucibleExperimentsComponent <folder>``
writes the defs.yaml and a first experiment file that loads and runs, and adds the artifacts
folder to the project's .gitignore.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import dagster as dg
from pydantic import BaseModel, Field, PrivateAttr, StrictBool, field_validator, model_validator

from crucible_dagster.common.gitignore import GitignoreNotEdited, add_to_gitignore
from crucible_dagster.dagster_plugin.component_checks import (
    DEFAULT_ARTIFACTS,
    artifacts_clash,
    check_artifacts_dir,
    defs_lines,
    earlier_ids,
    invalid_sensor_name,
    problems_elsewhere,
    resolve_artifacts_dir,
)
from crucible_dagster.dagster_plugin.definitions import checked_folder, definitions_from_checked
from crucible_dagster.dagster_plugin.factory import shared_resource
from crucible_dagster.dagster_plugin.load_report import strict_from_env
from crucible_dagster.dagster_plugin.translator import CrucibleTranslator
from crucible_dagster.experiment.ir import Executor
from crucible_dagster.experiment.loading import (
    LocatedDocument,
    display_path,
    legacy_spelling_warnings,
    read_document,
)
from crucible_dagster.experiment.names import check_job_name
from crucible_dagster.experiment.problems import ExperimentError, Problem
from crucible_dagster.experiment.yaml_limits import check_data_depth
from crucible_dagster.runtime.preflight import CheckedFile, check_document, mark_duplicate_ids
from crucible_dagster.runtime.registry import Registry, StageResolutionError, import_object

FIRST_EXPERIMENT = """\
# A first experiment: check the examples, then report. Add stages from `crucible stages`.
id: {id}
description: A first crucible experiment
pipeline:
  - name: validate
  - name: report
outputs:
  - name: summary
    formats: [markdown, json]
"""


#: file names dg reads as a component's own (defs.yaml, defs.yml, component.py)
DG_FILE_STEMS = frozenset({"defs", "component"})


class ExperimentScaffoldParams(BaseModel):
    experiment_id: str = Field(default="my_experiment", description="The first experiment's id.")

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, value: Any) -> Any:
        """A misspelt key (``experimentid``) would silently give the default id."""
        import click

        if not isinstance(value, dict):
            raise click.ClickException(
                f"crucible: --json-params: expected an object such as "
                f'{{"experiment_id": "first"}}, got {value!r}'
            )
        unknown = sorted(set(value) - set(cls.model_fields))
        if unknown:
            raise click.ClickException(
                f"crucible: --json-params: unknown key {unknown[0]!r}; expected experiment_id"
            )
        return value

    @field_validator("experiment_id", mode="before")
    @classmethod
    def _a_dagster_name(cls, value: Any) -> str:
        """Checked as ``dg scaffold defs`` reads its parameters, before it makes the folder, so a
        bad id leaves nothing behind; a ``click.ClickException`` is what ``dg`` prints as one
        ``Error:`` line (a ``ValueError`` would be printed as pydantic's JSON dump)."""
        import click

        if not isinstance(value, str):
            raise click.ClickException(
                f"crucible: --json-params experiment_id: expected a string, got {value!r}"
            )
        try:
            check_job_name(value, "experiment id")
            if value in DG_FILE_STEMS:
                raise ValueError(
                    f"expected an experiment id other than {value!r}: the file {value}.yaml would "
                    f"be read by dg as a component's, not an experiment; try {value + '_1'!r}"
                )
            return value
        except ValueError as exc:
            raise click.ClickException(f"crucible: --json-params experiment_id: {exc}") from None


def _expect_bool(value: Any) -> bool:
    """true or false only: pydantic would take "no" or 0 for false; a CI switch must be exactly
    what it says (CRUCIBLE_STRICT=1 is the way to set it from the environment)."""
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _resolve_strict(context: dg.ResolutionContext, value: Any) -> bool:
    return _expect_bool(value)


def _resolve_artifacts_dir(context: dg.ResolutionContext, value: Any) -> str | None:
    """Checked as the YAML is resolved, so Dagster shows the defs.yaml line with the error."""
    return None if value is None else check_artifacts_dir(value)


class CrucibleExperimentsScaffolder(dg.Scaffolder[ExperimentScaffoldParams]):
    """``dg scaffold defs``: a defs.yaml pointing at ``experiments/`` and one experiment in it."""

    @classmethod
    def get_scaffold_params(cls) -> type[ExperimentScaffoldParams]:
        return ExperimentScaffoldParams

    def scaffold(self, request: dg.ScaffoldRequest[ExperimentScaffoldParams]) -> None:
        from dagster.components.component_scaffolding import scaffold_component

        experiment_id = request.params.experiment_id  # checked as the parameters were read
        target = request.target_path / "experiments" / f"{experiment_id}.yaml"
        if target.exists():  # never overwrite a file somebody wrote
            raise FileExistsError(f"{target} exists already; choose another experiment id")
        scaffold_component(request, {"path": "experiments"})
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(FIRST_EXPERIMENT.format(id=experiment_id), encoding="utf-8")
        if request.project_root is not None:
            ignore_artifacts(Path(request.project_root))


def ignore_artifacts(project_root: Path) -> None:
    """The default artifacts folder in the project's .gitignore (run directories are not
    source); a .gitignore that cannot be edited safely is left alone, with one line saying why
    and what to add."""
    try:
        add_to_gitignore(project_root / ".gitignore", f"/{DEFAULT_ARTIFACTS}/")
    except GitignoreNotEdited as exc:
        print(f"crucible: {exc}", file=sys.stderr)


@dg.scaffold_with(CrucibleExperimentsScaffolder)
class CrucibleExperimentsComponent(dg.Component, dg.Resolvable, dg.Model):
    """Crucible experiments from a folder and/or written inline."""

    path: str | None = Field(
        default=None, description="Folder of experiment files, relative to the defs.yaml."
    )
    experiments: list[dict[str, Any]] = Field(
        default_factory=list, description="Experiments written inline."
    )
    translator: str | None = Field(
        default=None,
        description="A CrucibleTranslator subclass, 'package.module:Class': names, keys, tags.",
    )
    registry: dict[str, str] = Field(
        default_factory=dict,
        description="Extra stage names for every experiment here: name -> 'package.module:Class'.",
    )
    executor: Executor | None = Field(
        default=None,
        description="The Dagster executor of every experiment here that names none itself: "
        "in_process, multiprocess or celery.",
    )
    artifacts_dir: Annotated[
        str | None, dg.Resolver(_resolve_artifacts_dir, model_field_type=str | None)
    ] = Field(
        default=None,
        description="Where run directories and reports go: relative to the project root (a "
        "folder inside it), or absolute. Unset: $CRUCIBLE_ARTIFACTS_DIR, else "
        f"<project root>/{DEFAULT_ARTIFACTS}; never the working directory.",
    )
    strict: Annotated[bool, dg.Resolver(_resolve_strict, model_field_type=StrictBool)] = Field(
        default=False,
        description="true: any experiment that does not load (or a missing or empty folder) "
        "fails the whole load, listing every problem with its file and line, so `dg check "
        "defs` exits non-zero. CRUCIBLE_STRICT=1 turns it on for every component.",
    )
    _checked: list[CheckedFile] | None = PrivateAttr(default=None)

    @field_validator("strict", mode="before")
    @classmethod
    def _strict_is_a_bool(cls, value: Any) -> bool:
        return _expect_bool(value)

    @field_validator("artifacts_dir")
    @classmethod
    def _artifacts_dir_is_a_path(cls, value: str | None) -> str | None:
        return None if value is None else check_artifacts_dir(value)

    def _translator(self, where: str) -> CrucibleTranslator | None:
        if self.translator is None:
            return None
        try:
            cls = import_object(self.translator, "translator class")
        except StageResolutionError as exc:
            raise ExperimentError([Problem(str(exc), "translator", where)]) from None
        if not (isinstance(cls, type) and issubclass(cls, CrucibleTranslator)):
            message = f"expected a CrucibleTranslator subclass, got {self.translator!r}"
            raise ExperimentError([Problem(message, "translator", where)])
        return cls()

    def checked_files(self, folder_of_defs: Path) -> list[CheckedFile]:
        """Every experiment here, checked once (another component of the code location reads
        them too, for its duplicate ids): the folder's files in path order, then the inline
        entries, a repeated id invalid after its first use."""
        if self._checked is None:
            defs_file = folder_of_defs / "defs.yaml"
            registry = Registry.default().with_stages(self.registry) if self.registry else None
            lines = defs_lines(defs_file)
            where = display_path(defs_file)
            checked: list[CheckedFile] = []
            if self.path is not None:
                named_by = Problem("", "attributes.path", where, lines.get(("attributes", "path")))
                checked += checked_folder(folder_of_defs / self.path, registry, named_by)
            elif not self.experiments:
                message = "the component declares no experiments: set path: (a folder of "
                message += "experiment files) or experiments: (written inline)"
                line = lines.get(("attributes",)) or lines.get(("type",))
                checked.append(CheckedFile(defs_file, None, [Problem(message, "", where, line)]))
            checked += check_inline_experiments(self.experiments, defs_file, registry)
            mark_duplicate_ids(checked)
            self._checked = checked
        return self._checked

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        folder_of_defs = Path(context.path)
        defs_file = folder_of_defs / "defs.yaml"
        translator = self._translator(str(defs_file))
        registry = Registry.default().with_stages(self.registry) if self.registry else None
        artifacts = resolve_artifacts_dir(
            self.artifacts_dir,
            Path(context.project_root),
            defs_file,
            defs_lines(defs_file),
            folder_of_defs / self.path if self.path is not None else None,
        )
        artifacts_clash(context, CrucibleExperimentsComponent, artifacts)  # one shared resource

        def check() -> list[CheckedFile]:
            checked = self.checked_files(folder_of_defs)
            # an id another component (earlier in path order) loads already: this one's copy
            # is refused naming that file, and Dagster never meets a duplicate asset key
            mark_duplicate_ids(checked, earlier_ids(context, CrucibleExperimentsComponent))
            return checked

        root = folder_of_defs / self.path if self.path is not None else folder_of_defs
        return definitions_from_checked(
            root,
            check,
            translator=translator,
            registry=registry,
            default_executor=self.executor,
            strict=self.strict or strict_from_env(),
            resource=shared_resource(artifacts),
            sensor_name=invalid_sensor_name(context),
            key_root=_defs_root(context, root),
            elsewhere=lambda: problems_elsewhere(context, CrucibleExperimentsComponent),
        )


def _defs_root(context: dg.ComponentLoadContext, root: Path) -> Path | None:
    """The project's defs root, when the experiments are inside it: broken files are keyed by
    their path from there, the component's folder included, so two components' keys differ."""
    defs_root = Path(context.defs_module_path)
    return defs_root if root.resolve().is_relative_to(defs_root.resolve()) else None


def check_inline_experiments(
    entries: list[dict[str, Any]], defs_file: Path, registry: Registry | None
) -> list[CheckedFile]:
    """Each inline experiment checked as a file is (``crucible validate``'s checks), and named
    ``defs.yaml#experiments[N]`` at its line in the defs.yaml: a broken entry never stops the
    others."""
    lines = _inline_lines(defs_file, entries)
    return [
        _check_inline(
            data,
            defs_file.with_name(f"{defs_file.name}#experiments[{index}]"),
            lines[index],
            registry,
        )
        for index, data in enumerate(entries)
    ]


def _check_inline(
    data: Any, name: Path, lines: dict[tuple[str | int, ...], int], registry: Registry | None
) -> CheckedFile:
    where = display_path(name)
    try:
        check_data_depth(data, where)
        doc = LocatedDocument(data, lines, where, folder=name.parent.absolute())
        experiment, problems = check_document(doc, registry)
    except ExperimentError as exc:
        return CheckedFile(name, None, _at_lines(exc.problems, lines))
    except Exception as exc:  # anything at all: one broken entry never stops the others
        message = f"cannot check this experiment: {type(exc).__name__}: {exc}"
        return CheckedFile(name, None, [Problem(message, file=where)])
    warnings = legacy_spelling_warnings(doc) if experiment is not None else []
    id_line = lines.get(("id",)) or lines.get(())
    return CheckedFile(
        name, experiment, _at_lines(problems, lines), _at_lines(warnings, lines), id_line
    )


def _at_lines(problems: list[Problem], lines: dict[tuple[str | int, ...], int]) -> list[Problem]:
    """Lines are the defs.yaml's: the entry's own line when a problem has none, and no line at
    all when the defs.yaml could not be mapped (never a made-up line 1)."""
    entry = lines.get(())
    return [replace(p, line=(p.line or entry) if lines else None) for p in problems]


def _inline_lines(
    defs_file: Path, entries: list[dict[str, Any]]
) -> list[dict[tuple[str | int, ...], int]]:
    """Each inline entry's field -> line map, read from the defs.yaml with the loader's own line
    map. An entry gets no lines (rather than wrong ones) when the file cannot be read so, or when
    what it holds there is not the entry Dagster gave (a template, another component's file)."""
    maps: list[dict[tuple[str | int, ...], int]] = [{} for _ in entries]
    try:
        doc = read_document(defs_file)
        written = doc.data["attributes"]["experiments"]
    except Exception:  # a multi-document defs.yaml, say: the problems keep their entry's name
        return maps
    if not isinstance(written, list):
        return maps
    same = {i for i, entry in enumerate(entries) if i < len(written) and written[i] == entry}
    prefix = ("attributes", "experiments")
    for path, line in doc.lines.items():
        if path[:2] == prefix and len(path) > 2 and path[2] in same:
            maps[int(path[2])][path[3:]] = line
    return maps
