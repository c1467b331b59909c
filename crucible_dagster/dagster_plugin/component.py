"""A Dagster Component so a ``defs.yaml`` can declare crucible experiments.

type: crucible_dagster.dagster_plugin.CrucibleExperimentsComponent
attributes:
  path: experiments        # a folder of experiment files, relative to this defs.yaml
  experiments: []          # and/or experiments written inline
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import Field

from crucible_dagster.dagster_plugin.definitions import (
    definitions_from_experiments,
    definitions_from_folder,
)
from crucible_dagster.experiment.ir import Experiment
from crucible_dagster.experiment.problems import ExperimentError


class CrucibleExperimentsComponent(dg.Component, dg.Resolvable, dg.Model):
    """Crucible experiments from a folder and/or written inline."""

    path: str | None = Field(
        default=None, description="Folder of experiment files, relative to the defs.yaml."
    )
    experiments: list[dict[str, Any]] = Field(
        default_factory=list, description="Experiments written inline."
    )

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        parts = []
        if self.path is not None:
            parts.append(definitions_from_folder(context.path / self.path))
        if self.experiments:
            from pydantic import ValidationError

            from crucible_dagster.experiment.loading import LocatedDocument, validation_problems

            inline = []
            for index, data in enumerate(self.experiments):
                try:
                    inline.append(Experiment.model_validate(data))
                except ValidationError as exc:
                    doc = LocatedDocument(
                        data, {}, f"{context.path}/defs.yaml#experiments[{index}]"
                    )
                    raise ExperimentError(validation_problems(exc, Experiment, doc)) from None
            parts.append(definitions_from_experiments(inline))
        return dg.Definitions.merge(*parts) if parts else dg.Definitions()
