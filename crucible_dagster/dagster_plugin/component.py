"""A Dagster Component so a ``defs.yaml`` can declare crucible experiments.

type: crucible_dagster.dagster_plugin.CrucibleExperimentsComponent
attributes:
  path: experiments          # a folder of experiment files, relative to this defs.yaml
  experiments: []            # and/or experiments written inline
  translator: mypkg.naming:MyTranslator   # optional: a CrucibleTranslator subclass
  registry: {score: mypkg.stages:Score}   # optional: extra stage names
  executor: celery           # optional: for every experiment that names no executor itself
post_processing:             # Dagster's own, as for every component: change any asset's specs
  assets:
    - target: "*"
      attributes: {group_name: experiments}

``dg scaffold defs crucible_dagster.dagster_plugin.CrucibleExperimentsComponent <folder>``
writes the defs.yaml and a first experiment file that loads and runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import BaseModel, Field

from crucible_dagster.dagster_plugin.definitions import (
    definitions_from_experiments,
    definitions_from_folder,
)
from crucible_dagster.dagster_plugin.translator import CrucibleTranslator
from crucible_dagster.experiment.ir import Executor, Experiment
from crucible_dagster.experiment.names import check_name
from crucible_dagster.experiment.problems import ExperimentError, Problem
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


class ExperimentScaffoldParams(BaseModel):
    experiment_id: str = Field(default="my_experiment", description="The first experiment's id.")


class CrucibleExperimentsScaffolder(dg.Scaffolder[ExperimentScaffoldParams]):
    """``dg scaffold defs``: a defs.yaml pointing at ``experiments/`` and one experiment in it."""

    @classmethod
    def get_scaffold_params(cls) -> type[ExperimentScaffoldParams]:
        return ExperimentScaffoldParams

    def scaffold(self, request: dg.ScaffoldRequest[ExperimentScaffoldParams]) -> None:
        from dagster.components.component_scaffolding import scaffold_component

        experiment_id = check_name(request.params.experiment_id, "experiment id")
        target = request.target_path / "experiments" / f"{experiment_id}.yaml"
        if target.exists():  # never overwrite a file somebody wrote
            raise FileExistsError(f"{target} exists already; choose another experiment id")
        scaffold_component(request, {"path": "experiments"})
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(FIRST_EXPERIMENT.format(id=experiment_id), encoding="utf-8")


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

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        where = str(Path(context.path) / "defs.yaml")
        translator = self._translator(where)
        registry = Registry.default().with_stages(self.registry) if self.registry else None
        parts = []
        if self.path is not None:
            parts.append(
                definitions_from_folder(
                    context.path / self.path,
                    translator=translator,
                    registry=registry,
                    default_executor=self.executor,
                )
            )
        if self.experiments:
            from pydantic import ValidationError

            from crucible_dagster.experiment.loading import LocatedDocument, validation_problems

            inline = []
            for index, data in enumerate(self.experiments):
                try:
                    inline.append(Experiment.model_validate(data))
                except ValidationError as exc:
                    doc = LocatedDocument(data, {}, f"{where}#experiments[{index}]")
                    raise ExperimentError(validation_problems(exc, Experiment, doc)) from None
            parts.append(
                definitions_from_experiments(
                    inline, translator=translator, registry=registry, default_executor=self.executor
                )
            )
        return dg.Definitions.merge(*parts) if parts else dg.Definitions()
