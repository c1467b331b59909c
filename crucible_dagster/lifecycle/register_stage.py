"""The ``register`` stage: log this run on MLflow and register the model ``train`` kept as a new
version of the registered model ``training_config.model_ref`` names.

The MLflow run (named by the crucible run id) gets the training settings and the estimator's
parameters as params, every epoch's metrics (step = epoch), the test figures, the training
record, the evaluation and the files already in the run directory (the manifest, reports
written before this stage); the model is logged in MLflow's scikit-learn flavour as a skops
file (never a pickle) and registered with its lineage as tags.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from crucible_dagster.experiment.ir.lifecycle import registry_name
from crucible_dagster.lifecycle import checkpoints, mlflow_store
from crucible_dagster.lifecycle.mlflow_store import TAG
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.stage import NoOptionsStage, StageError

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from crucible_dagster.experiment.ir import Experiment

PROMOTE = ("promote", "crucible_dagster.lifecycle.promote_stage:PromoteStage")
REGISTER = ("register", "crucible_dagster.lifecycle.register_stage:RegisterStage")
#: files of the run directory logged with the MLflow run (checkpoints stay in the run directory)
LOGGED_SUFFIXES = (".json", ".jsonl", ".parquet", ".md", ".html", ".csv")


def registered_model(experiment: Experiment) -> str | None:
    """The registered model the pipeline registers or promotes, None when it does neither."""
    steps = {s.implementation for s in experiment.enabled_stages}
    return model_name(experiment) if steps & {*PROMOTE, *REGISTER} else None


def model_name(experiment: Experiment) -> str | None:
    """The registered model's name: the trained model's, else ``model_version``'s."""
    if experiment.training_config is not None:
        return experiment.training_config.model_ref.registered_name
    return experiment.model_version.model_id if experiment.model_version else None


def model_name_problems(experiment: Experiment) -> list[tuple[str, str]]:
    """A registered model's name is one plain path segment (MLflow would take '/')."""
    config = experiment.training_config
    found = experiment.model_version.model_id if experiment.model_version else None
    where = "model_version.model_id"
    if config is not None:
        found = config.model_ref.registered_name
        where = "training_config.model_ref." + ("name" if config.model_ref.name else "id")
    if found is None:
        return []
    try:
        registry_name(found, "registered model name")
    except ValueError as exc:
        return [(where, str(exc))]
    return []


class RegisterStage(NoOptionsStage):
    name = "register"
    description = "Log the run on MLflow and register the trained model as a new version"
    uses = ("tracking",)

    @classmethod
    def check_experiment(cls, experiment: Experiment) -> list[tuple[str, str]]:
        if experiment.training_config is None:
            return [("training_config", "the register stage registers what the train stage "
                     "fits: add training_config and a train stage before it")]  # fmt: skip
        return model_name_problems(experiment)

    def run(self, ctx: Context, options: Any) -> Context:
        from crucible_dagster.runtime.run_dirs import report_base, run_root

        trained = ctx.assigns.get("trained_model")
        experiment = ctx.experiment
        if (
            not isinstance(trained, dict)
            or experiment is None
            or experiment.training_config is None
        ):
            raise StageError("nothing_to_register", None, "the register stage registers what "
                             "the train stage fits: put a train stage before it")  # fmt: skip
        problems = model_name_problems(experiment)
        if problems:
            raise StageError("invalid_model_name", problems, f"{problems[0][0]}: {problems[0][1]}")
        run_dir = report_base(ctx)
        name = experiment.training_config.model_ref.registered_name
        model = checkpoints.load(
            run_dir, trained["path"], trained["sha256"], set(trained["trusted"])
        )
        root = run_root(ctx)
        with mlflow_store.client(experiment, root) as (mlflow, uri):
            from crucible_dagster.lifecycle.promotion import alias_holder

            mlflow_run = _log_run(mlflow, uri, ctx, run_dir, trained, model, root)
            alias = experiment.deployment.moved_alias if experiment.deployment else "champion"
            parent = alias_holder(mlflow, name, alias)
            tags = {
                **mlflow_store.lineage_tags(experiment, ctx.run_id),
                f"{TAG}data_fingerprint": str(trained.get("data_fingerprint")),
                f"{TAG}named_fingerprint": str(trained.get("named_fingerprint")),
                f"{TAG}dataset_ref": str(trained.get("dataset_ref")),
                f"{TAG}parent_version": parent or "",
                f"{TAG}mlflow_run_id": mlflow_run["run_id"],
                f"{TAG}evaluation": f"evaluation/{trained['evaluation']}",
                **{f"{TAG}metric.{k}": repr(float(v)) for k, v in trained["metrics"].items()},
            }
            version = _register(mlflow, name, mlflow_run, tags)
        registered = {"name": name, "version": version, "parent_version": parent, "uri": uri.split("@")[-1],
                      "mlflow_run_id": mlflow_run["run_id"], "model_uri": f"models:/{name}/{version}"}  # fmt: skip
        ctx = ctx.emit("decision_made", f"registered {name} version {version}",
                       f"the model run {ctx.run_id} trained", metadata=registered)  # fmt: skip
        return ctx.put_metric("registry", registered).assign({"registered_model": registered})


def _log_run(
    store: MlflowClient, uri: str, ctx: Context, run_dir: Path, trained: dict[str, Any],
    model: Any, root: Path,
) -> dict[str, str]:  # fmt: skip
    """The MLflow run of this crucible run: params, metrics per epoch, files and the model."""
    import time

    import mlflow as fluent
    import mlflow.sklearn
    from mlflow.entities import Metric, Param

    experiment = ctx.experiment
    assert experiment is not None and experiment.training_config is not None
    config = experiment.training_config
    tracking = experiment.tracking.mlflow if experiment.tracking else None
    artifacts = (
        mlflow_store.default_artifacts(tracking, root)
        if tracking
        else str(root / "mlflow" / "artifacts")
    )
    experiment_id = mlflow_store.experiment_of(store, experiment, artifacts)
    tags = {
        **mlflow_store.lineage_tags(experiment, ctx.run_id),
        f"{TAG}estimator": trained["estimator"],
    }
    run = store.create_run(experiment_id, run_name=ctx.run_id, tags=tags)
    run_id = run.info.run_id
    params = mlflow_store.flat_params(
        config.model_dump(mode="json", exclude={"model_ref", "options"})
    )
    params.update(mlflow_store.flat_params(config.model_ref.options or {}, "model."))
    params["estimator"] = trained["estimator"]
    now = int(time.time() * 1000)
    history = (ctx.metrics.get("training") or {}).get("history") or []
    metrics = [Metric(f"{h['split']}_{k}", float(v), now, int(h["epoch"]))
               for h in history for k, v in h["metrics"].items() if v is not None]  # fmt: skip
    metrics += [Metric(k, float(v), now, 0) for k, v in trained["metrics"].items()]
    items = [Param(k, v) for k, v in params.items()]
    for at in range(0, len(items), 100):  # MLflow takes 100 params and 1000 metrics a batch
        store.log_batch(run_id, params=items[at : at + 100])
    for at in range(0, len(metrics), 1000):
        store.log_batch(run_id, metrics=metrics[at : at + 1000])
    for path in sorted(run_dir.iterdir()):
        if path.is_file() and not path.is_symlink() and path.suffix in LOGGED_SUFFIXES:
            folder = "evaluation" if path.name == trained["evaluation"] else "run"
            store.log_artifact(run_id, str(path), folder)
    fluent.set_tracking_uri(uri)
    fluent.set_registry_uri(uri)
    with fluent.start_run(run_id=run_id):
        logged = mlflow.sklearn.log_model(
            model, name="model", serialization_format="skops",
            skops_trusted_types=list(trained["trusted"]) or None,
            pip_requirements=["scikit-learn", "skops"],
        )  # fmt: skip
    return {"run_id": run_id, "model_uri": logged.model_uri, "model_id": logged.model_id}


def _register(mlflow: MlflowClient, name: str, logged: dict[str, str], tags: dict[str, str]) -> str:
    from mlflow.exceptions import MlflowException

    try:
        mlflow.create_registered_model(name, tags={f"{TAG}managed": "true"})
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version = mlflow.create_model_version(
        name, source=logged["model_uri"], run_id=logged["run_id"], tags=tags,
        model_id=logged["model_id"],  # a server checks the source against the logged model
    )  # fmt: skip
    return str(version.version)
