"""The ``promote`` stage: the regression gate between the challenger (the version ``register``
just made, else the one ``model_version`` names) and the champion (the version the moved alias
holds, or the one a ``baseline: {id, version}`` names), on the samples both were evaluated on;
the alias moves only when the gate passes.

``deployment`` decides which alias: ``alias`` (default ``champion``) in production,
``<alias>-<environment>`` in staging or development, ``<alias>-canary`` for a canary (the
champion then moves by ``crucible model promote`` once the canary has served). The decision is
the metric ``promotion``, tags of the version, ``promotion.json`` in the run directory, and the
model asset's blocking check under Dagster.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from crucible_dagster.experiment.ir import ModelRef, RegressionBaseline
from crucible_dagster.experiment.ir.lifecycle import alias_name
from crucible_dagster.lifecycle import mlflow_store, promotion
from crucible_dagster.lifecycle.register_stage import model_name, model_name_problems
from crucible_dagster.quality.gate import GateResult
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.stage import Stage, StageError, StageOptions

if TYPE_CHECKING:
    from crucible_dagster.experiment.ir import Experiment

PROMOTION = "promotion.json"


class PromoteOptions(StageOptions):
    kind: Literal["non_inferiority", "superiority", "equivalence"] = Field(
        default="non_inferiority",
        description="What the challenger must show against the champion, per sample score.",
    )
    margin: float = Field(default=0.0, ge=0, description="In the score's units (accuracy: 0.02).")
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    fail_run: bool = Field(default=False, description="Fail the run when promotion is refused.")


class PromoteStage(Stage):
    name = "promote"
    description = "Move the registry alias to the new version only if the gate finds it not worse"
    Options = PromoteOptions
    uses = ("tracking", "deployment", "model_version")

    @classmethod
    def check_experiment(cls, experiment: Experiment) -> list[tuple[str, str]]:
        if experiment.training_config is None and experiment.model_version is None:
            return [("model_version", "the promote stage promotes what register made, or the "
                     "version model_version names: add training_config with train and register "
                     "stages, or model_version: {id, model_id, version}")]  # fmt: skip
        problems = model_name_problems(experiment)
        baseline = experiment.baseline
        name = model_name(experiment)
        wanted = baseline.version if isinstance(baseline, ModelRef) else None
        if wanted and not wanted.isdigit():
            try:
                alias_name(wanted)
            except ValueError as exc:
                problems.append(("baseline.version", str(exc)))
        if isinstance(baseline, ModelRef) and name and baseline.registered_name != name:
            where = "baseline.name" if baseline.name else "baseline.id"
            problems.append((where, f"expected a version of {name!r} (the model promoted), got "
                             f"{baseline.registered_name!r}"))  # fmt: skip
        return problems

    def run(self, ctx: Context, options: PromoteOptions) -> Context:
        from crucible_dagster.runtime.run_dirs import report_base, run_root

        experiment = ctx.experiment
        assert experiment is not None
        name, version = _challenger(ctx)
        deployment = experiment.deployment
        alias = deployment.moved_alias if deployment else "champion"
        gate = RegressionBaseline(metric="evaluation", kind=options.kind, margin=options.margin,
                                  alpha=options.alpha)  # fmt: skip
        run_dir = report_base(ctx)
        root = run_root(ctx)
        with mlflow_store.client(experiment, root) as (mlflow, _):
            champion = _champion(mlflow, experiment, name, alias)
            if champion is None or champion == version:
                why = (
                    "first version: no champion yet" if champion is None else "already the champion"
                )
                result = GateResult("no_baseline", why)
            else:
                label = f"{name} v{champion}"
                result = promotion.judge(gate, promotion.version_scores(mlflow, name, version),
                                         promotion.version_scores(mlflow, name, champion), label)  # fmt: skip
            decision = "promoted" if result.passed else "refused"
            history = None  # the alias moves first: a move the registry refuses records nothing
            if result.passed and champion != version:
                history = promotion.move_alias(mlflow, name, alias, version)
            record = promotion.record_decision(
                mlflow, name, version, decision, result, gate, alias, champion
            )
            if history is not None:
                record["alias_history"] = history
            record["environment"] = deployment.environment if deployment else "production"
            record["strategy"] = deployment.strategy if deployment else "rolling"
            _write(run_dir, record, mlflow, ctx)
        ctx = ctx.put_metric("promotion", record)
        ctx = ctx.emit("deployment_completed" if result.passed else "decision_made",
                       f"{decision}: {name} v{version} -> {alias}", result.message)  # fmt: skip
        if not result.passed and options.fail_run:
            raise StageError("promotion_refused", record, f"promotion refused: {result.message}")
        return ctx


def _challenger(ctx: Context) -> tuple[str, str]:
    registered = ctx.assigns.get("registered_model")
    if isinstance(registered, dict):
        return str(registered["name"]), str(registered["version"])
    wanted = ctx.experiment.model_version if ctx.experiment else None
    if wanted is None:
        raise StageError("nothing_to_promote", None, "the promote stage promotes what register "
                         "made (put it after register), or the version model_version names")  # fmt: skip
    if not wanted.version.isdigit():
        raise StageError("invalid_model_version", "model_version.version", "model_version."
                         f"version: expected an MLflow version number (1, 2, 3), got {wanted.version!r}")  # fmt: skip
    return wanted.model_id, wanted.version


def _champion(mlflow: Any, experiment: Experiment, name: str, alias: str) -> str | None:
    """The version the challenger must not be worse than: a ``baseline`` model's version (a
    number or an alias), else the moved alias's holder, else the production alias's."""
    baseline = experiment.baseline
    if isinstance(baseline, ModelRef):
        wanted = baseline.version or "champion"
        found = wanted if wanted.isdigit() else promotion.alias_holder(mlflow, name, wanted)
        if found is None:  # never "no champion": that would skip the gate
            raise StageError("unknown_baseline", "baseline.version", f"baseline.version: "
                             f"expected a version of {name!r} or an alias it has, got {wanted!r}, "
                             "which points at no version")  # fmt: skip
        return found
    held = promotion.alias_holder(mlflow, name, alias)
    production = experiment.deployment.alias if experiment.deployment else "champion"
    return held if held is not None else promotion.alias_holder(mlflow, name, production)


def _write(run_dir: Any, record: dict[str, Any], mlflow: Any, ctx: Context) -> None:
    """``promotion.json`` in the run directory, and with the challenger's MLflow run."""
    path = run_dir / PROMOTION
    with open(path, "x", encoding="utf-8") as out:
        json.dump(record, out, indent=2, default=str)
    registered = ctx.assigns.get("registered_model")
    if isinstance(registered, dict) and registered.get("mlflow_run_id"):
        mlflow.log_artifact(registered["mlflow_run_id"], str(path), "run")
