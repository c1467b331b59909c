"""Every naming decision of the Dagster side, in one overridable object (like dagster-dbt's translator)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from crucible_dagster.experiment.ir import Experiment, OutputSpec, StageDef
from crucible_dagster.experiment.names import suggest_name
from crucible_dagster.runtime.run_record import experiment_hash
from crucible_dagster.runtime.stage import Stage, described

TAG_PREFIX = "crucible"


class CrucibleTranslator:
    """Subclass and override a method to rename jobs, ops, assets, tags or groups.

    ``get_asset_spec`` is the single override point for report assets.
    """

    def tag(self, name: str) -> str:
        """The one tag style for jobs, runs, ops and assets: ``crucible/<name>``."""
        return f"{TAG_PREFIX}/{name}"

    def step_tags(self, experiment: Experiment, step: str) -> dict[str, str]:
        """Tags of a sweep step's op (plan, trial, compare)."""
        return {self.tag("experiment"): experiment.id, self.tag("stage"): step}

    def job_name(self, experiment: Experiment) -> str:
        return experiment.id

    def job_description(self, experiment: Experiment) -> str:
        return experiment.description or f"Crucible experiment {experiment.id}"

    def job_tags(self, experiment: Experiment) -> dict[str, str]:
        tags = {
            self.tag("experiment"): experiment.id,
            self.tag("ir_hash"): experiment_hash(experiment)[:16],
        }
        if experiment.owner:
            tags[self.tag("owner")] = experiment.owner
        return tags

    def node_name(self, experiment: Experiment, step: str) -> str:
        """The node in the job (step keys, Launchpad config): the stage or sweep step name."""
        return step

    def op_definition_name(self, experiment: Experiment, step: str) -> str:
        """Op definitions must be unique across a code location, so they carry the experiment id."""
        return f"{experiment.id}__{step}"

    def op_description(
        self, experiment: Experiment, stage: StageDef, stage_cls: type[Stage]
    ) -> str:
        return str(described(stage_cls).get("description") or stage.name)

    def op_tags(
        self, experiment: Experiment, stage: StageDef, stage_cls: type[Stage]
    ) -> dict[str, str]:
        return {
            self.tag("experiment"): experiment.id,
            self.tag("stage"): stage.name,
            self.tag("module"): stage_cls.qualified_name(),
            **stage_cls.tags,
        }

    def group_name(self, experiment: Experiment) -> str:
        return experiment.id

    def report_asset_key(self, experiment: Experiment, output: OutputSpec) -> dg.AssetKey:
        return dg.AssetKey([TAG_PREFIX, experiment.id, output.name])

    def get_asset_spec(self, experiment: Experiment, output: OutputSpec) -> dg.AssetSpec:
        return dg.AssetSpec(
            key=self.report_asset_key(experiment, output),
            description=f"Report {output.name!r} of experiment {experiment.id} ({', '.join(output.formats)}).",
            group_name=self.group_name(experiment),
            kinds={"crucible"},
            tags={self.tag("experiment"): experiment.id},
            metadata={"formats": ", ".join(output.formats)},
        )

    def sweep_asset_key(self, experiment: Experiment) -> dg.AssetKey:
        return dg.AssetKey([TAG_PREFIX, experiment.id, "sweep"])

    def get_sweep_asset_spec(self, experiment: Experiment) -> dg.AssetSpec:
        return dg.AssetSpec(
            key=self.sweep_asset_key(experiment),
            description=f"Sweep report of experiment {experiment.id}: configurations compared over seeds.",
            group_name=self.group_name(experiment),
            kinds={"crucible"},
            tags={self.tag("experiment"): experiment.id},
        )

    def quality_check_asset_key(self, experiment: Experiment) -> dg.AssetKey | None:
        """Quality targets are asset checks on the first report that is not printed to stdout."""
        output = next((o for o in experiment.outputs if o.sink != "stdout"), None)
        return self.report_asset_key(experiment, output) if output else None

    def schedule_name(self, experiment: Experiment) -> str:
        return f"{experiment.id}_schedule"

    def schedule_description(self, experiment: Experiment) -> str:
        assert experiment.schedule is not None
        return f"Runs experiment {experiment.id} on {experiment.schedule.cron!r} ({experiment.schedule.timezone})."

    def invalid_file_asset_tags(self) -> dict[str, str]:
        return {self.tag("status"): "invalid"}

    def invalid_file_asset_key(self, relative_path: Path) -> dg.AssetKey:
        """Key of the asset that shows a broken file, from its path inside the experiments folder.

        The suffix is kept (``bad.yaml`` and ``bad.yml`` are two files), and no absolute path
        leaks into the key, so the key is the same on every machine.
        """
        parts = [suggest_name(part) for part in relative_path.parts]
        return dg.AssetKey([TAG_PREFIX, "invalid_experiments", "__".join(parts)])
