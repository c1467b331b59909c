"""Every naming decision of the Dagster side, in one overridable object (like dagster-dbt's translator)."""

from __future__ import annotations

import re
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
            self.tag("ir_hash"): self.code_version(experiment),
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
            tags=self.asset_tags(experiment),
            metadata={"formats": ", ".join(output.formats)},
            deps=self.dataset_deps(experiment),
            code_version=self.code_version(experiment),
            owners=self.owners(experiment),
            automation_condition=self.automation_condition(experiment),
        )

    def automation_condition(self, experiment: Experiment) -> dg.AutomationCondition | None:
        """The IR's ``automation``: eager (new data upstream) or on the schedule's cron."""
        if experiment.dagster.automation == "eager":
            return dg.AutomationCondition.eager()
        if experiment.dagster.automation == "on_cron" and experiment.schedule is not None:
            return dg.AutomationCondition.on_cron(
                experiment.schedule.cron, experiment.schedule.timezone
            )
        return None

    def code_version(self, experiment: Experiment) -> str:
        """The IR's hash: the UI flags a report whose experiment changed since it was made."""
        # kept by this translator (one folder load), so a reloaded code location keeps none
        hashes: dict[int, tuple[Experiment, str]] = self.__dict__.setdefault("_hashes", {})
        cached = hashes.get(id(experiment))
        if cached is None or cached[0] is not experiment:  # the same object again: hashed once
            cached = hashes[id(experiment)] = (experiment, experiment_hash(experiment)[:16])
        return cached[1]

    def owners(self, experiment: Experiment) -> list[str]:
        """The IR's ``owner`` as a Dagster owner: an email as it is, any other name as a team."""
        owner = (experiment.owner or "").strip()
        if not owner:
            return []
        return [owner if "@" in owner else f"team:{suggest_name(owner)}"]

    def asset_tags(self, experiment: Experiment) -> dict[str, str]:
        """The experiment tag, and the IR's ``tags`` as key-only asset tags (Dagster allows
        63 characters of ``[A-Za-z0-9_.-]``; other characters become ``_``)."""
        tags = {self.tag("experiment"): experiment.id}
        for tag in experiment.tags or []:
            key = re.sub(r"[^A-Za-z0-9_.-]", "_", str(tag))[:63]
            if key:
                tags[key] = ""
        return tags

    def dataset_asset_key(self, experiment: Experiment) -> dg.AssetKey | None:
        """The dataset an experiment runs on, upstream of its reports; two experiments on one
        dataset share the key."""
        if experiment.dataset is None:
            return None
        return dg.AssetKey([TAG_PREFIX, "datasets", suggest_name(experiment.dataset.name)])

    def dataset_deps(self, experiment: Experiment) -> list[dg.AssetKey]:
        key = self.dataset_asset_key(experiment)
        return [key] if key is not None else []

    def get_dataset_asset_spec(self, experiment: Experiment) -> dg.AssetSpec | None:
        key = self.dataset_asset_key(experiment)
        if key is None or experiment.dataset is None:
            return None
        dataset = experiment.dataset
        return dg.AssetSpec(
            key=key,
            description=f"Dataset {dataset.name!r} ({dataset.provider}, split {dataset.split}); "
            "each run that loads it records its data fingerprint as the data version.",
            group_name="crucible_datasets",
            kinds={"dataset"},
            metadata={
                "provider": dataset.provider,
                "split": dataset.split,
                **{
                    k: v for k, v in (("version", dataset.version), ("format", dataset.format)) if v
                },
                **({"schema": dg.MetadataValue.json(dataset.schema_)} if dataset.schema_ else {}),
            },
        )

    def sweep_asset_key(self, experiment: Experiment) -> dg.AssetKey:
        return dg.AssetKey([TAG_PREFIX, experiment.id, "sweep"])

    def get_sweep_asset_spec(self, experiment: Experiment) -> dg.AssetSpec:
        return dg.AssetSpec(
            key=self.sweep_asset_key(experiment),
            description=f"Sweep report of experiment {experiment.id}: configurations compared over seeds.",
            group_name=self.group_name(experiment),
            kinds={"crucible"},
            tags=self.asset_tags(experiment),
            deps=self.dataset_deps(experiment),
            code_version=self.code_version(experiment),
            owners=self.owners(experiment),
            automation_condition=self.automation_condition(experiment),
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
