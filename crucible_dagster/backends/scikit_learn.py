"""scikit-learn estimators as a backend: fitted in the run (``fit``, or out of fold with
``out_of_fold``), or fitted elsewhere and handed over by a factory function.

``backend: {id: sklearn, options: {estimator: random_forest, params: {n_estimators: 100}}}``;
``estimator`` is a short name below or ``package.module:Class``. A fitted estimator comes from
``factory: package.module:function`` (loading it is the factory's business: we never unpickle).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from crucible_dagster.backends.base import BackendOptions, Request, Response
from crucible_dagster.experiment.ir import BackendRef
from crucible_dagster.runtime.code_refs import check_ref, resolve

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: short estimator names (the main demo's): scaled where the model needs it, seeded where random
ESTIMATORS = (
    "logistic_regression",
    "random_forest",
    "gradient_boosting",
    "svc",
    "knn",
    "decision_tree",
)


def make_estimator(estimator: str, params: dict[str, Any], seed: int) -> Any:
    """A fresh, unfitted estimator: a short name from ``ESTIMATORS`` or ``package.module:Class``."""
    if ":" in estimator:
        cls = resolve(
            estimator, "estimator"
        )  # a class with fit and predict, checked before the call
        return cls(**params)
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeClassifier

    if estimator == "logistic_regression":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, **params))
    if estimator == "svc":
        return make_pipeline(StandardScaler(), SVC(random_state=seed, **params))
    if estimator == "knn":
        return make_pipeline(StandardScaler(), KNeighborsClassifier(**params))
    seeded = {"random_state": seed, **params}
    return {
        "random_forest": RandomForestClassifier,
        "gradient_boosting": GradientBoostingClassifier,
        "decision_tree": DecisionTreeClassifier,
    }[estimator](**seeded)


class SklearnOptions(BackendOptions):
    estimator: str = Field(
        default="logistic_regression",
        pattern=r"^(" + "|".join(ESTIMATORS) + r"|[A-Za-z_][\w.]*:[A-Za-z_]\w*)$",
        description=f"One of {', '.join(ESTIMATORS)}, or 'package.module:Class'.",
    )
    params: dict[str, Any] = Field(default_factory=dict, description="The estimator's parameters.")
    factory: str | None = Field(
        default=None,
        description="'package.module:function' returning a fitted estimator (instead of fitting).",
    )

    @field_validator("estimator")
    @classmethod
    def _estimator_is_a_class(cls, value: str) -> str:
        """A dotted estimator is resolved when the options are checked: by validate, the Dagster
        loader and at run start, before it is instantiated."""
        return check_ref(value, "estimator") if ":" in value else value

    @field_validator("factory")
    @classmethod
    def _factory_is_a_function(cls, value: str | None) -> str | None:
        """The factory is resolved when the options are checked, before it is ever called."""
        return None if value is None else check_ref(value, "factory")


class SklearnBackend:
    Options = SklearnOptions

    def __init__(self, ref: BackendRef, options: SklearnOptions):
        self.name = ref.id
        self.options = options
        factory = resolve(options.factory, "factory") if options.factory else None
        self.estimator: Any = factory() if factory is not None else None

    def fresh(self, seed: int) -> Any:
        return make_estimator(self.options.estimator, dict(self.options.params), seed)

    def fit(self, features: pd.DataFrame, target: np.ndarray, seed: int) -> SklearnBackend:
        self.estimator = self.fresh(seed).fit(features, target)
        return self

    def predict(self, requests: Sequence[Request]) -> list[Response]:
        import pandas as pd

        if self.estimator is None:
            raise RuntimeError(f"backend {self.name!r}: fit it first, or give options.factory")
        rows = pd.DataFrame([r.input for r in requests])
        began = time.perf_counter()
        labels, confidence = _predict_with_confidence(self.estimator, rows)
        each = (time.perf_counter() - began) * 1000 / max(len(requests), 1)
        return [
            Response(r.sample_id, _py(label), conf, each, backend=self.name)
            for r, label, conf in zip(requests, labels, confidence, strict=True)
        ]

    def out_of_fold(
        self, features: pd.DataFrame, target: np.ndarray, folds: int, seed: int
    ) -> list[Response]:
        """Each sample predicted by the model fitted on the folds it is not in (stratified,
        shuffled with ``seed``): every sample gets an honest prediction, as in the demo's CV."""
        import numpy as np
        from sklearn.model_selection import StratifiedKFold

        labels = np.empty(len(target), dtype=object)
        confidence = np.full(len(target), np.nan)
        latency = np.zeros(len(target))
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        for train, test in splitter.split(features, target):
            model = self.fresh(seed).fit(features.iloc[train], target[train])
            began = time.perf_counter()
            fold_labels, fold_conf = _predict_with_confidence(model, features.iloc[test])
            latency[test] = (time.perf_counter() - began) * 1000 / len(test)
            labels[test], confidence[test] = fold_labels, fold_conf
        return [
            Response(
                str(sid),
                _py(labels[i]),
                _maybe(confidence[i]),
                float(latency[i]),
                backend=self.name,
            )
            for i, sid in enumerate(features.index)
        ]


def _predict_with_confidence(model: Any, rows: Any) -> tuple[Any, list[float | None]]:
    if hasattr(model, "predict_proba"):
        proba = model.predict_proba(rows)
        classes = model.classes_
        best = proba.argmax(axis=1)
        return classes[best], [float(p) for p in proba.max(axis=1)]
    labels = model.predict(rows)
    return labels, [None] * len(labels)


def _maybe(value: float) -> float | None:
    return None if value != value else float(value)


def _py(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) else value
