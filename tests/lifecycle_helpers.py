"""Estimators for the lifecycle tests: one whose validation accuracy follows a script (early
stopping's constructed case), and a slow SGD classifier (a run to kill mid-training)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import SGDClassifier


class ScriptedClassifier(ClassifierMixin, BaseEstimator):
    """After epoch k (one ``partial_fit`` call), predicts the label (feature 0) right for the
    first ``script[k-1]`` share of the rows and wrong for the rest."""

    def __init__(self, script: tuple[float, ...] = (0.5,)):
        self.script = script

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> ScriptedClassifier:
        self.epochs_ = getattr(self, "epochs_", 0) + 1
        self.classes_ = np.asarray(classes if classes is not None else np.unique(y))
        return self

    def fit(self, X: Any, y: Any) -> ScriptedClassifier:
        return self.partial_fit(X, y)

    def predict(self, X: Any) -> Any:
        truth = np.asarray(X)[:, 0].astype(int)
        right = round(self.script[min(self.epochs_, len(self.script)) - 1] * len(truth))
        return np.concatenate([truth[:right], 1 - truth[right:]])


class SlowSGD(SGDClassifier):
    """SGDClassifier whose every ``partial_fit`` (a batch) takes a tenth of a second longer."""

    def partial_fit(self, X: Any, y: Any, classes: Any = None, sample_weight: Any = None) -> Any:
        time.sleep(0.1)
        return super().partial_fit(X, y, classes=classes, sample_weight=sample_weight)


class BadPredict(ScriptedClassifier):
    """Trains as ScriptedClassifier does, then fails on the test split."""

    def predict(self, X: Any) -> Any:
        if len(X) < 150:  # the test split, not the validation split
            raise RuntimeError("predict failed")
        return super().predict(X)


class FlakySGD(SGDClassifier):
    """SGDClassifier whose predict fails on the 100 rows of the test split while the file
    ``fail.flag`` exists in $CRUCIBLE_TEST_WORKDIR: a run that fails after its checkpoints."""

    def predict(self, X: Any) -> Any:
        import os
        from pathlib import Path

        flag = Path(os.environ.get("CRUCIBLE_TEST_WORKDIR", ".")) / "fail.flag"
        if len(X) == 100 and flag.exists():
            raise RuntimeError("the test split failed once")
        return super().predict(X)
