"""The ``train`` stage: fit ``training_config``'s estimator on its dataset, epoch by epoch, with
checkpoints and early stopping, then score every held-out sample.

The dataset is split once by the seed (``training_config.seed``, else the run's): a test share
(``test_split``) scored at the end, the promotion gate's evaluation, and from the rest a
validation share (``validation_split``) that early stopping watches. A run that re-executes a
failed one (a Dagster re-execution, ``crucible run --resume RUN``, or ``resume_from``) continues
from the parent's last checkpoint with its history; it writes only into its own directory.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from crucible_dagster.lifecycle import checkpoints, evaluation
from crucible_dagster.lifecycle.estimators import (
    EstimatorProblem,
    Plan,
    plan,
    static_problems,
    trusted_types,
)
from crucible_dagster.lifecycle.training import Split, State, better, fit_epochs, watched
from crucible_dagster.lifecycle.training_run import RECORD, TrainingRun, read_training_run
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.stage import Stage, StageError, StageOptions

if TYPE_CHECKING:
    from crucible_dagster.experiment.ir import Experiment, TrainingConfig

EXAMPLE = "{id, model_ref: {id, architecture: SGDClassifier}, dataset_ref: {name, provider}}"
MODEL_FILE = "model"  #: checkpoints/model.skops: the model the run keeps


class TrainOptions(StageOptions):
    @field_validator("resume_from")
    @classmethod
    def _run_id(cls, value: str | None) -> str | None:
        from crucible_dagster.runtime.run_dirs import RUN_ID_PATTERN

        if value is not None and (not RUN_ID_PATTERN.fullmatch(value) or ".." in value):
            raise ValueError(f"expected a run id of this experiment (no path), got {value[:80]!r}")
        return value

    architecture: str | None = Field(
        default=None,
        description="Another estimator for this run (a class name or package.module:Class), "
        "with its default parameters: a candidate tried without editing the file.",
    )
    resume_from: str | None = Field(
        default=None,
        description="A run id of this experiment to continue from (its last checkpoint); a "
        "re-execution of a failed run continues from its parent by itself.",
    )


class TrainStage(Stage):
    name = "train"
    description = (
        "Fit training_config's scikit-learn estimator with checkpoints; score the test split"
    )
    Options = TrainOptions
    uses = ("training_config",)

    @classmethod
    def check_experiment(cls, experiment: Experiment) -> list[tuple[str, str]]:
        config = experiment.training_config
        if config is None:
            return [("training_config", f"the train stage needs training_config: {EXAMPLE}")]
        from crucible_dagster.datasets import dataset_problems

        problems = dataset_problems(config.dataset_ref, at="training_config.dataset_ref")
        try:
            static_problems(config)
            # the estimator's class and parameters need scikit-learn: checked here by the
            # command line and a run, not by the Dagster loader (it loads every experiment and
            # stays light; the stage checks them again before any data loads)
            if "sklearn" in sys.modules or "dagster" not in sys.modules:
                plan(config, 0)
        except EstimatorProblem as exc:
            problems.append((exc.where, str(exc).removeprefix(f"{exc.where}: ")))
        except ImportError as exc:
            problems.append(("training_config", f"training needs scikit-learn and skops: {exc}"))
        return problems

    def run(self, ctx: Context, options: TrainOptions) -> Context:
        from crucible_dagster.runtime.run_dirs import report_base

        config = ctx.experiment.training_config if ctx.experiment else None
        if config is None:
            raise StageError("missing_training_config", None,
                             f"the train stage needs training_config: {EXAMPLE}")  # fmt: skip
        seed = config.seed if config.seed is not None else ctx.seed
        config = _with_architecture(config, options.architecture)
        how = plan(config, seed)
        data = _splits(config, seed, how.classification)
        run_dir = report_base(ctx)
        parent = options.resume_from or _parent_run(run_dir)
        record = TrainingRun(
            id=config.id, config=config.model_dump(mode="json", by_alias=True),
            experiment_id=ctx.experiment_id, run_id=ctx.run_id,
            started_at=datetime.now(timezone.utc), estimator=how.cls.__name__, applied=how.applied,
            seed=seed,
        )  # fmt: skip
        start = _resumed(run_dir.parent / parent, config, how, record) if parent else None
        start = start or State(how.cls(**how.params))
        try:  # the record ends failed whatever fails, in the epochs or after
            model = fit_epochs(
                how, config, data["fit"], data["watch"], seed, run_dir, record, start
            )
            path, digest = checkpoints.save(run_dir, MODEL_FILE, model)
            test = data["test"]
            frame = evaluation.evaluate(
                model, test.features, test.target, data["test_ids"], how.classification
            )
            evaluation.write(run_dir, frame)
        except Exception as exc:
            record.status, record.error_message = "failed", f"{type(exc).__name__}: {exc}"[:2000]
            record.write(run_dir)
            raise
        record.completed_at = datetime.now(timezone.utc)
        record.write(run_dir)
        scores = evaluation.summary(frame, how.classification)
        summary = {
            "status": record.status, "epochs": record.current_epoch, "best_epoch": record.best_epoch,
            "best_metrics": record.best_metrics, "watched": watched(config)[0], **scores,
            "estimator": how.cls.__name__, "applied": how.applied, "test_samples": len(frame),
            "history": [h.model_dump() for h in record.metrics_history],
            "resumed_from": record.resumed_from,
        }  # fmt: skip
        trained = {
            "path": path, "sha256": digest, "run_dir": str(run_dir), "estimator": how.cls.__name__,
            "trusted": checkpoints.types_to_trust(run_dir / path, trusted_types(how.cls)),
            "classification": how.classification,
            "evaluation": evaluation.EVALUATION, "data_fingerprint": data["fingerprint"],
            "named_fingerprint": data["named_fingerprint"],
            "dataset_ref": config.dataset_ref.model_dump_json(by_alias=True, exclude_none=True),
            "metrics": {**{k: v for k, v in (record.best_metrics or {}).items() if v is not None}, **scores},
        }  # fmt: skip
        ctx = ctx.emit("training_completed", f"trained {how.cls.__name__}",
                       f"{record.status} after {record.current_epoch} epochs", metadata=scores)  # fmt: skip
        return ctx.put_metric("training", summary).assign({"trained_model": trained})


def _with_architecture(config: TrainingConfig, architecture: str | None) -> TrainingConfig:
    """The option ``architecture``: another estimator, with its default parameters."""
    if not architecture or architecture == config.model_ref.architecture:
        return config
    model_ref = config.model_ref.model_copy(update={"architecture": architecture, "options": None})
    return config.model_copy(update={"model_ref": model_ref})


def _splits(config: TrainingConfig, seed: int, classification: bool) -> dict[str, Any]:
    """The test, fit and watched (validation, else fit) splits of the dataset, by the seed."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    from crucible_dagster.datasets import DatasetError, load_dataset

    try:
        loaded = load_dataset(config.dataset_ref, seed)
    except DatasetError as exc:
        raise StageError(
            "dataset_error", exc.where, f"training_config.dataset_ref: {exc}"
        ) from None
    if loaded.features is None:
        raise StageError("no_target", None, "training_config.dataset_ref: expected a target "
                         "column (dataset options.target, or a bundled dataset), found none")  # fmt: skip
    try:
        features = loaded.features.to_numpy(dtype=float)
    except (TypeError, ValueError) as exc:
        raise StageError("non_numeric_features", None, "training_config.dataset_ref: expected "
                         f"numeric feature columns, found: {exc}") from None  # fmt: skip
    target, ids = np.asarray(loaded.target), np.asarray(loaded.ids)

    def split(share: float, *arrays: Any) -> list[Any]:
        labels = arrays[1]
        counts = np.unique(labels, return_counts=True)[1] if classification else None
        stratify = labels if counts is not None and counts.min() >= 2 else None
        return train_test_split(*arrays, test_size=share, random_state=seed, stratify=stratify)

    x_rest, x_test, y_rest, y_test, _, id_test = split(config.test_split, features, target, ids)
    fit = Split(x_rest, y_rest)
    watch = fit
    if config.validation_split:
        x_fit, x_val, y_fit, y_val = split(config.validation_split, x_rest, y_rest)
        fit, watch = Split(x_fit, y_fit), Split(x_val, y_val)
    return {"fit": fit, "watch": watch, "test": Split(x_test, y_test),
            "test_ids": [str(i) for i in id_test], "fingerprint": loaded.fingerprint,
            "named_fingerprint": loaded.named_fingerprint}  # fmt: skip


def _parent_run(run_dir: Path) -> str | None:
    """The run this one re-executes (the manifest's ``parent_run_id``), if it trained."""
    from crucible_dagster.lifecycle.training_run import RECORD
    from crucible_dagster.runtime.run_dirs import read_manifest

    try:
        parent = read_manifest(run_dir).get("parent_run_id")
    except ValueError:
        return None
    if not isinstance(parent, str):
        return None
    if not (run_dir.parent / parent).is_dir():
        raise StageError("unknown_parent_run", parent, f"resume: no run {parent[:80]!r} of this "
                         f"experiment in {run_dir.parent}")  # fmt: skip
    # a parent that failed before it trained has nothing to continue: training starts over
    return parent if (run_dir.parent / parent / RECORD).exists() else None


def _same_training(parent_dir: Path, found: TrainingRun, record: TrainingRun) -> None:
    """A resume continues the same training: the same settings (but ``epochs``), estimator
    and seed; another split or model would mix two trainings in one history."""
    mine, theirs = dict(record.config), dict(found.config)
    mine.pop("epochs", None)
    theirs.pop("epochs", None)
    differing = next(
        (k for k in sorted(set(mine) | set(theirs)) if mine.get(k) != theirs.get(k)), None
    )
    if differing is None and found.estimator != record.estimator:
        differing = "model_ref.architecture"
    if differing is None and found.seed != record.seed:
        differing = "seed"
    if differing is not None:
        where = f"{parent_dir / RECORD}"
        raise StageError("different_training", where, f"resume: {where}: training_config."
                         f"{differing}: the parent trained otherwise; a resume continues the same "
                         "training (only epochs may change): start a new run instead")  # fmt: skip


def _resumed(
    parent_dir: Path, config: TrainingConfig, how: Plan, record: TrainingRun
) -> State | None:
    """The state at the parent's last checkpoint, its history up to that epoch in ``record``;
    None when it kept no checkpoint (training starts over, and says so)."""
    from crucible_dagster.runtime.run_dirs import check_run_id

    check_run_id(parent_dir.name)  # a run id, not a path
    found = read_training_run(parent_dir, record.experiment_id)
    if not found.checkpoint_uris:
        record.resumed_from = {"run_id": parent_dir.name, "epoch": 0, "note": "no checkpoint"}
        return None
    last = found.checkpoint_uris[-1]
    trusted = trusted_types(how.cls)
    _same_training(parent_dir, found, record)
    estimator = checkpoints.load(parent_dir, last.path, last.sha256, trusted, how.cls)
    best = checkpoints.load(
        parent_dir, last.best_path or last.path, last.best_sha256 or last.sha256, trusted, how.cls
    )
    record.metrics_history = [h for h in found.metrics_history if h.epoch <= last.epoch]
    if len(record.metrics_history) != last.epoch:
        raise StageError("invalid_training_run", str(parent_dir), f"{parent_dir}: metrics_history: "
                         f"expected the {last.epoch} epochs before its checkpoint, found "
                         f"{len(record.metrics_history)}")  # fmt: skip
    metric, lower = watched(config)
    stopping = config.early_stopping
    for entry in record.metrics_history:  # the best epoch as of the checkpoint
        value, best_value = entry.metrics.get(metric), (record.best_metrics or {}).get(metric)
        if record.best_epoch is None or better(
            value, best_value, lower, stopping.min_delta if stopping else 0.0
        ):
            record.best_epoch, record.best_metrics = entry.epoch, entry.metrics
    record.current_epoch = last.epoch
    record.resumed_from = {"run_id": parent_dir.name, "epoch": last.epoch, "checkpoint": last.path}
    return State(estimator, best, last.epoch)
