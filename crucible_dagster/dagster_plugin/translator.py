"""Every naming decision of the Dagster side, in one object with one override method per kind
of spec (as dagster-sling's ``DagsterSlingTranslator`` and dagster-dbt's ``DagsterDbtTranslator``
have ``get_asset_spec``): job, op, report/sweep/dataset asset, asset check, schedule and the
asset that shows an invalid file.

The per-attribute methods of earlier versions (``job_name``, ``report_asset_key``, ...) still
work, as deprecated aliases in ``translator_legacy``: calling one reads the spec, and a subclass
that overrides one is still honoured (with a DeprecationWarning naming the spec method).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from crucible_dagster.dagster_plugin.translator_legacy import DeprecatedTranslatorMethods
from crucible_dagster.experiment.ir import Experiment, OutputSpec, QualityTarget, RegressionBaseline
from crucible_dagster.experiment.names import suggest_name
from crucible_dagster.quality.gate import GATE_NAME
from crucible_dagster.runtime.run_record import experiment_hash
from crucible_dagster.runtime.stage import Stage, described, reliability_setting

TAG_PREFIX = "crucible"


@dataclass(frozen=True)
class JobSpec:
    """A job's name (also its graph's), description and tags."""

    name: str
    description: str
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OpSpec:
    """An op: its definition name (unique in a code location), its node name in the job (step
    keys, Launchpad config), description and tags."""

    name: str
    node_name: str
    description: str
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ScheduleSpec:
    name: str
    description: str


class CrucibleTranslator(DeprecatedTranslatorMethods):
    """Subclass and override a ``get_*_spec`` method to rename or re-tag one kind of definition;
    call ``super()`` and ``dataclasses.replace`` / ``AssetSpec.replace_attributes`` to change
    one attribute. Pass the instance to ``definitions_from_folder(translator=...)``."""

    def tag(self, name: str) -> str:
        """The one tag style for jobs, runs, ops and assets: ``crucible/<name>``."""
        return f"{TAG_PREFIX}/{name}"

    def get_job_spec(self, experiment: Experiment) -> JobSpec:
        tags = {self.tag("experiment"): experiment.id, self.tag("ir_hash"): self._hash(experiment)}
        if experiment.owner:
            tags[self.tag("owner")] = experiment.owner
        return JobSpec(
            name=self._pick("job_name", lambda: experiment.id, experiment),
            description=self._pick(
                "job_description",
                lambda: experiment.description or f"Crucible experiment {experiment.id}",
                experiment,
            ),
            tags=self._pick("job_tags", lambda: tags, experiment),
        )

    def get_op_spec(
        self, experiment: Experiment, step: str, stage_cls: type[Stage] | None = None
    ) -> OpSpec:
        """A stage's op (``stage_cls`` given) or a sweep step's (plan, trial, compare)."""
        tags = {self.tag("experiment"): experiment.id, self.tag("stage"): step}
        description = step
        if stage_cls is None:
            tags = self._pick("step_tags", lambda: tags, experiment, step)
        else:
            stage = experiment.stage(step)
            tags = {**tags, self.tag("module"): stage_cls.qualified_name(), **stage_cls.tags}
            tags = self._pick("op_tags", lambda: tags, experiment, stage, stage_cls)
            description = self._pick(
                "op_description",
                lambda: str(described(stage_cls).get("description") or step),
                experiment,
                stage,
                stage_cls,
            )
        return OpSpec(
            # op definitions are unique across a code location: they carry the experiment id
            name=self._pick(
                "op_definition_name", lambda: f"{experiment.id}__{step}", experiment, step
            ),
            node_name=self._pick("node_name", lambda: step, experiment, step),
            description=description,
            tags=tags,
        )

    def get_asset_spec(self, experiment: Experiment, output: OutputSpec) -> dg.AssetSpec:
        """A report's asset: ``crucible/<experiment>/<output>``."""
        key = self._pick(
            "report_asset_key",
            lambda: dg.AssetKey([TAG_PREFIX, experiment.id, output.name]),
            experiment,
            output,
        )
        return dg.AssetSpec(
            key=key,
            description=_with_experiment_description(
                f"Report {output.name!r} of experiment {experiment.id} "
                f"({', '.join(output.formats)}).",
                experiment,
                self.get_job_spec(experiment).name,
            ),
            metadata={"formats": ", ".join(output.formats)},
            **self._asset_attributes(experiment),
        )

    def get_sweep_asset_spec(self, experiment: Experiment) -> dg.AssetSpec:
        """A sweep's report asset: ``crucible/<experiment>/sweep``."""
        key = self._pick(
            "sweep_asset_key",
            lambda: dg.AssetKey([TAG_PREFIX, experiment.id, "sweep"]),
            experiment,
        )
        return dg.AssetSpec(
            key=key,
            description=_with_experiment_description(
                f"Sweep report of experiment {experiment.id}: configurations compared over seeds.",
                experiment,
                self.get_job_spec(experiment).name,
            ),
            **self._asset_attributes(experiment),
        )

    def get_dataset_asset_spec(self, experiment: Experiment) -> dg.AssetSpec | None:
        """The dataset an experiment runs on, upstream of its reports; two experiments on one
        dataset share the key."""
        key = self._dataset_key(experiment)
        dataset = experiment.dataset
        if key is None or dataset is None:
            return None
        optional = {
            k: v for k, v in (("version", dataset.version), ("format", dataset.format)) if v
        }
        return dg.AssetSpec(
            key=key,
            description=f"Dataset {dataset.name!r} ({dataset.provider}, split {dataset.split}); "
            "each run that loads it records its data fingerprint as the data version.",
            group_name="crucible_datasets",
            kinds={"dataset"},
            metadata={
                "provider": dataset.provider,
                "split": dataset.split,
                **optional,
                **({"schema": dg.MetadataValue.json(dataset.schema_)} if dataset.schema_ else {}),
            },
        )

    def get_feedback_asset_spec(self, experiment: Experiment) -> dg.AssetSpec | None:
        """Production feedback by day, ``crucible/<experiment>/feedback``, from
        ``reliability.feedback.daily_from`` (None without it, or with feedback disabled)."""
        feedback = reliability_setting(experiment, "feedback")
        if feedback is None or feedback.daily_from is None or not feedback.enabled:
            return None  # (disabled, a day's run would ingest nothing)
        attributes = self._asset_attributes(experiment)
        return dg.AssetSpec(
            key=dg.AssetKey([TAG_PREFIX, experiment.id, "feedback"]),
            description=f"Production feedback of experiment {experiment.id}, a partition a day "
            "(UTC): the events kept, redacted, with each day's quality figures.",
            partitions_def=dg.DailyPartitionsDefinition(
                start_date=feedback.daily_from.isoformat(), end_offset=1
            ),
            group_name=attributes["group_name"],
            kinds={"crucible", "parquet"},
            tags=attributes["tags"],
            owners=attributes["owners"],
        )

    def get_model_asset_spec(self, experiment: Experiment) -> dg.AssetSpec | None:
        """The model the pipeline registers or promotes, ``crucible/<experiment>/model/<name>``,
        downstream of the dataset and the first file report (None without register or
        promote)."""
        from crucible_dagster.lifecycle.register_stage import registered_model

        name = registered_model(experiment)
        if name is None:
            return None
        report = self._check_asset_key(experiment)
        deps = [k for k in (self._dataset_key(experiment), report) if k is not None]
        return self.model_asset_spec(name, deps, f"as experiment {experiment.id} trains, "
                                     "registers and promotes it")  # fmt: skip

    def model_asset_spec(self, name: str, deps: list[dg.AssetKey], how: str) -> dg.AssetSpec:
        """``crucible/models/<name>``: one asset per registered model, whichever experiments
        register it, promote it or watch it drift (each adds its own checks)."""
        return dg.AssetSpec(
            key=dg.AssetKey([TAG_PREFIX, "models", name]),
            description=f"Registered model {name!r} (MLflow) {how}: a materialization per new "
            "version, the promotion gate and drift as its checks.",
            deps=deps,
            group_name="crucible_models",
            kinds={"mlflow", "scikit-learn"},
        )

    def get_asset_check_spec(
        self, experiment: Experiment, check: QualityTarget | RegressionBaseline
    ) -> dg.AssetCheckSpec | None:
        """A quality target or the regression gate, as a check on the first report that is not
        printed to stdout (None without one)."""
        asset = self._check_asset_key(experiment)
        if asset is None:
            return None
        if isinstance(check, QualityTarget):
            return dg.AssetCheckSpec(
                name=check.name,
                asset=asset,
                description=f"Quality target {check.name} ({check.kind}, severity "
                f"{check.severity})",
            )
        return dg.AssetCheckSpec(
            name=GATE_NAME,
            asset=asset,
            description=f"Regression gate: {check.kind} against the "
            f"{check.policy.replace('_', ' ')} baseline run on {check.metric} (margin "
            f"{check.margin:g}, alpha {check.alpha:g}); accept a baseline with the "
            "crucible_accept_baseline job or `crucible accept`",
            blocking=True,
        )

    def get_schedule_spec(self, experiment: Experiment) -> ScheduleSpec:
        schedule = experiment.schedule
        when = f"{schedule.cron!r} ({schedule.timezone})" if schedule else "no schedule"
        return ScheduleSpec(
            name=self._pick("schedule_name", lambda: f"{experiment.id}_schedule", experiment),
            description=self._pick(
                "schedule_description",
                lambda: f"Runs experiment {experiment.id} on {when}.",
                experiment,
            ),
        )

    def get_invalid_file_asset_spec(self, relative_path: Path) -> dg.AssetSpec:
        """The asset that shows a broken file: its key comes from the path inside the
        experiments folder (suffix kept: ``bad.yaml`` and ``bad.yml`` are two files; no absolute
        path, so the key is the same on every machine). The loader adds the problems."""
        parts = [suggest_name(part) for part in relative_path.parts]
        key = self._pick(
            "invalid_file_asset_key",
            lambda: dg.AssetKey([TAG_PREFIX, "invalid_experiments", "__".join(parts)]),
            relative_path,
        )
        tags = self._pick("invalid_file_asset_tags", lambda: {self.tag("status"): "invalid"})
        return dg.AssetSpec(key=key, tags=tags)

    # --- the parts every asset of an experiment shares ------------------------------------

    def _asset_attributes(self, experiment: Experiment) -> dict[str, Any]:
        """Group, tags, owners, code version, dataset dependency and automation condition."""
        dataset = self._dataset_key(experiment)
        return {
            "group_name": self._pick("group_name", lambda: experiment.id, experiment),
            "kinds": {"crucible"},
            "tags": self._pick("asset_tags", lambda: self._asset_tags(experiment), experiment),
            "deps": self._pick("dataset_deps", lambda: [dataset] if dataset else [], experiment),
            "code_version": self._pick("code_version", lambda: self._hash(experiment), experiment),
            "owners": self._pick("owners", lambda: self._owners(experiment), experiment),
            "automation_condition": self._pick(
                "automation_condition", lambda: self._automation(experiment), experiment
            ),
        }

    def _hash(self, experiment: Experiment) -> str:
        """The IR's hash: the UI flags a report whose experiment changed since it was made."""
        # kept by this translator (one folder load), so a reloaded code location keeps none
        hashes: dict[int, tuple[Experiment, str]] = self.__dict__.setdefault("_hashes", {})
        cached = hashes.get(id(experiment))
        if cached is None or cached[0] is not experiment:  # the same object again: hashed once
            cached = hashes[id(experiment)] = (experiment, experiment_hash(experiment)[:16])
        return cached[1]

    def _owners(self, experiment: Experiment) -> list[str]:
        """The IR's ``owner`` as a Dagster owner: an email as it is, any other name as a team."""
        owner = (experiment.owner or "").strip()
        if not owner:
            return []
        return [owner if "@" in owner else f"team:{suggest_name(owner)}"]

    def _asset_tags(self, experiment: Experiment) -> dict[str, str]:
        """The experiment tag, and the IR's ``tags`` as key-only asset tags (Dagster allows
        63 characters of ``[A-Za-z0-9_.-]``; other characters become ``_``)."""
        tags = {self.tag("experiment"): experiment.id}
        for tag in experiment.tags or []:
            key = re.sub(r"[^A-Za-z0-9_.-]", "_", str(tag))[:63]
            if key:
                tags[key] = ""
        return tags

    def _automation(self, experiment: Experiment) -> dg.AutomationCondition | None:
        """``dagster.automation``: eager (new data upstream) or on the schedule's cron."""
        automation, schedule = experiment.dagster.automation, experiment.schedule
        if automation == "eager":
            return dg.AutomationCondition.eager()
        if automation == "on_cron" and schedule is not None:
            return dg.AutomationCondition.on_cron(schedule.cron, schedule.timezone)
        return None

    def _dataset_key(self, experiment: Experiment) -> dg.AssetKey | None:
        def default() -> dg.AssetKey | None:
            if experiment.dataset is None:
                return None
            return dg.AssetKey([TAG_PREFIX, "datasets", suggest_name(experiment.dataset.name)])

        return self._pick("dataset_asset_key", default, experiment)

    def _check_asset_key(self, experiment: Experiment) -> dg.AssetKey | None:
        def default() -> dg.AssetKey | None:
            output = next((o for o in experiment.outputs if o.sink != "stdout"), None)
            return self.get_asset_spec(experiment, output).key if output else None

        return self._pick("quality_check_asset_key", default, experiment)


def _with_experiment_description(what: str, experiment: Experiment, job: str) -> str:
    """The asset's own line, the experiment's description (the catalog shows what the
    experiment is for, not only which file made the report), and its schedule: a schedule runs
    the experiment's job (a linear experiment's is its report asset's job, so Dagster lists
    the schedule under the asset's automations too; a sweep's is not)."""
    parts = [what, experiment.description or ""]
    schedule = experiment.schedule
    if schedule is not None and experiment.dagster.automation != "on_cron":
        parts.append(
            f"Scheduled: {schedule.cron!r} ({schedule.timezone}, {schedule.default_status} by "
            f"default) runs the job {job}, whose runs materialize this asset; set "
            "`dagster.automation: on_cron` to make it the asset's own automation."
        )
    return "\n\n".join(p for p in parts if p)
