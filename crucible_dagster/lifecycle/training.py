"""The epoch loop: fit, measure on the validation split, keep the best epoch, checkpoint, stop
early; resumable from a checkpoint with the same history.

An epoch is one pass of ``partial_fit`` over the training rows in batches (shuffled by a
generator seeded with the seed and the epoch, so a resumed run draws the same batches), one more
``fit`` of a ``warm_start`` estimator at ``max_iter=1``, or the single ``fit``.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crucible_dagster.lifecycle import checkpoints
from crucible_dagster.lifecycle.training_run import Checkpoint, EpochMetrics, TrainingRun

if TYPE_CHECKING:
    import numpy as np

    from crucible_dagster.experiment.ir import TrainingConfig
    from crucible_dagster.lifecycle.estimators import Plan


@dataclass
class Split:
    features: np.ndarray
    target: np.ndarray


@dataclass
class State:
    """Where the loop starts: a fresh estimator at epoch 0, or a checkpoint's."""

    estimator: Any
    best: Any = None
    epoch: int = 0


def epoch_metrics(
    estimator: Any, split: Split, names: list[str], classes: Any, classification: bool
) -> dict[str, float | None]:
    """Each named metric on ``split``; None where the estimator's kind has no such figure
    (accuracy of a regressor, log loss of a classifier without ``predict_proba``)."""
    from sklearn import metrics as m

    predicted = estimator.predict(split.features)
    y = split.target
    found: dict[str, float | None] = {}
    for name in names:
        value: float | None = None
        if name == "loss":
            if not classification:
                value = m.mean_squared_error(y, predicted)
            elif hasattr(estimator, "predict_proba"):
                value = m.log_loss(y, estimator.predict_proba(split.features), labels=classes)
        elif classification and name in ("accuracy", "f1"):
            value = (m.accuracy_score(y, predicted) if name == "accuracy"
                     else m.f1_score(y, predicted, average="macro"))  # fmt: skip
        elif not classification and name in ("mse", "mae", "r2"):
            value = {"mse": m.mean_squared_error, "mae": m.mean_absolute_error,
                     "r2": m.r2_score}[name](y, predicted)  # fmt: skip
        found[name] = None if value is None else float(value)
    return found


def watched(config: TrainingConfig) -> tuple[str, bool]:
    """The metric that picks the best epoch, and whether lower is better."""
    stopping = config.early_stopping
    if stopping is not None:
        return stopping.metric, stopping.lower_is_better
    name = "loss" if "loss" in config.metrics else config.metrics[0]
    return name, name in ("loss", "mse", "mae")


def better(value: float | None, best: float | None, lower: bool, min_delta: float) -> bool:
    if value is None:
        return False
    if best is None:
        return True
    return value < best - min_delta if lower else value > best + min_delta


def fit_epochs(
    plan: Plan,
    config: TrainingConfig,
    fit: Split,
    watch: Split,
    seed: int,
    run_dir: Path,
    record: TrainingRun,
    start: State,
) -> Any:
    """Train from ``start`` to the last epoch (or the early stop), writing ``record`` after each
    epoch; returns the model kept: the best epoch's with early stopping, else the last."""
    import numpy as np
    from sklearn.exceptions import ConvergenceWarning

    classes = np.unique(fit.target) if plan.classification else None
    metric, lower = watched(config)
    stopping = config.early_stopping
    min_delta = stopping.min_delta if stopping else 0.0
    estimator, best = start.estimator, start.best
    split = "validation" if config.validation_split else "train"
    saved_best = record.best_epoch
    record.status = "running"
    for epoch in range(start.epoch + 1, config.epochs + 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # one epoch of max_iter=1
            _one_epoch(plan, estimator, fit, classes, seed, epoch)
        figures = epoch_metrics(
            estimator, watch, list(config.metrics), classes, plan.classification
        )
        record.metrics_history.append(EpochMetrics(epoch=epoch, split=split, metrics=figures))
        record.current_epoch = epoch
        best_value = (record.best_metrics or {}).get(metric)
        if best is None or better(figures.get(metric), best_value, lower, min_delta):
            best, record.best_epoch, record.best_metrics = copy.deepcopy(estimator), epoch, figures
        if config.checkpoint_every and epoch % config.checkpoint_every == 0:
            point = _checkpoint(run_dir, epoch, estimator, best, record, saved_best)
            saved_best = record.best_epoch
            record.checkpoint_uris.append(point)
        stop = stopping is not None and epoch - (record.best_epoch or epoch) >= stopping.patience
        if stop:
            record.status = "stopped_early"
        record.write(run_dir)
        if stop:
            break
    if record.status == "running":
        record.status = "completed"
    return best if stopping is not None else estimator


def _one_epoch(plan: Plan, estimator: Any, fit: Split, classes: Any, seed: int, epoch: int) -> None:
    import numpy as np

    if plan.epoch != "partial_fit":
        estimator.fit(fit.features, fit.target)
        return
    rows = len(fit.target)
    order = np.random.default_rng([seed, epoch]).permutation(rows)
    size = plan.batch_size or rows
    for at in range(0, rows, size):
        batch = order[at : at + size]
        if plan.classification:
            estimator.partial_fit(fit.features[batch], fit.target[batch], classes=classes)
        else:
            estimator.partial_fit(fit.features[batch], fit.target[batch])


def _checkpoint(
    run_dir: Path,
    epoch: int,
    estimator: Any,
    best: Any,
    record: TrainingRun,
    saved_best: int | None,
) -> Checkpoint:
    """The epoch's model, and the best one when it changed since the last checkpoint (else the
    last checkpoint's best file is named again)."""
    path, digest = checkpoints.save(run_dir, f"epoch-{epoch:06d}", estimator)
    if record.best_epoch == epoch:
        return Checkpoint(epoch=epoch, path=path, sha256=digest, best_path=path, best_sha256=digest)
    if record.best_epoch != saved_best or not record.checkpoint_uris:
        best_path, best_digest = checkpoints.save(run_dir, f"best-{record.best_epoch:06d}", best)
    else:
        last = record.checkpoint_uris[-1]
        best_path, best_digest = last.best_path or last.path, last.best_sha256 or last.sha256
    return Checkpoint(epoch=epoch, path=path, sha256=digest, best_path=best_path,
                      best_sha256=best_digest)  # fmt: skip
