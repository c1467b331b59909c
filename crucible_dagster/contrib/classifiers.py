"""The main demo's domain stages: load a dataset that ships with scikit-learn, cross-validate classifiers.

Needs the ``examples`` extra (scikit-learn). Nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from crucible_dagster.backends.scikit_learn import make_estimator as build_estimator
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.stage import Stage, StageError, StageOptions

if TYPE_CHECKING:  # numpy and pandas load when a stage runs, not with the definitions
    import numpy as np
    import pandas as pd

DatasetName = Literal["breast_cancer", "iris", "wine", "digits"]
DATASET_NAMES = ("breast_cancer", "iris", "wine", "digits")
EstimatorName = Literal[
    "logistic_regression", "random_forest", "gradient_boosting", "svc", "knn", "decision_tree"
]


class LoadDatasetOptions(StageOptions):
    name: DatasetName | None = Field(
        default=None,
        description="scikit-learn bundled dataset; defaults to the experiment's dataset.name.",
    )


class LoadSklearnDataset(Stage):
    """Puts a dataset bundled with scikit-learn in assigns['features'] and assigns['target'];
    the run already loaded it when it is the experiment's dataset (``provider: sklearn``), so
    then only its summary is added. The fingerprint is the datasets package's content hash."""

    name = "load_dataset"
    Options = LoadDatasetOptions

    def run(self, ctx: Context, options: LoadDatasetOptions) -> Context:
        import numpy as np

        from crucible_dagster.datasets import load_dataset
        from crucible_dagster.experiment.ir import DatasetRef

        name = options.name or (
            ctx.experiment.dataset.name if ctx.experiment and ctx.experiment.dataset else None
        )
        if name not in DATASET_NAMES:
            raise StageError(
                "unknown_dataset",
                name,
                f"unknown dataset {name!r}; expected one of: {', '.join(DATASET_NAMES)}",
            )
        fingerprints = dict(ctx.assigns.get("data_fingerprints") or {})
        if name not in fingerprints or ctx.assigns.get("features") is None:
            found = load_dataset(DatasetRef(name=name, provider="sklearn"), ctx.seed)
            ctx = ctx.assign(found.assigns(fingerprints))
        features: pd.DataFrame = ctx.assigns["features"]
        target = np.asarray(ctx.assigns["target"])
        known = ctx.metrics.get("dataset")
        loaded = dict(known) if isinstance(known, dict) and known.get("name") == name else {}
        return ctx.put_metric(
            "dataset",
            {
                **loaded,
                "name": name,
                "rows": int(features.shape[0]),
                "columns": int(features.shape[1]),
                "classes": len(np.unique(target)),
            },
        )


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    estimator: EstimatorName
    params: dict[str, Any] = Field(default_factory=dict)


def make_estimator(spec: ModelSpec, seed: int) -> Any:
    return build_estimator(spec.estimator, dict(spec.params), seed)


def _default_models() -> dict[str, ModelSpec]:
    return {
        "logistic_regression": ModelSpec(estimator="logistic_regression"),
        "random_forest": ModelSpec(estimator="random_forest", params={"n_estimators": 100}),
    }


class CrossValidateOptions(StageOptions):
    models: dict[str, ModelSpec] = Field(
        default_factory=_default_models, description="Name -> estimator and its parameters."
    )
    folds: int = Field(default=10, ge=2, le=50, description="Folds per repetition (stratified).")
    repeats: int = Field(
        default=1, ge=1, le=20, description="Repetitions of k-fold with different shuffles."
    )
    scoring: Literal["accuracy", "balanced_accuracy", "f1", "roc_auc"] = "accuracy"
    label_noise: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Share of training labels replaced by a random class in each fold (seeded), "
        "to degrade a run on purpose; test labels are never touched.",
    )


class CrossValidate(Stage):
    """Repeated stratified k-fold CV of each model on the same splits, seeded by the experiment seed."""

    name = "cross_validate"
    Options = CrossValidateOptions

    def run(self, ctx: Context, options: CrossValidateOptions) -> Context:
        from sklearn.metrics import get_scorer
        from sklearn.model_selection import RepeatedStratifiedKFold

        x, y = _training_data(ctx)
        seed = ctx.seed
        splitter = RepeatedStratifiedKFold(
            n_splits=options.folds, n_repeats=options.repeats, random_state=seed
        )
        scorer = get_scorer(options.scoring)
        scores = _fold_scores(x, y, splitter.split(x, y), scorer, options, seed)
        summary, fold_scores = _summarize(scores)
        return (
            ctx.assign({"scores": scores, "cv_design": _cv_design(options, len(y))})
            .put_metric("cv", summary)
            .put_metric("fold_scores", fold_scores)
        )


def _training_data(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    """Features and target as arrays, refused with a stage error (not a KeyError) when
    load_dataset did not run first."""
    import numpy as np
    import pandas as pd

    features = ctx.assigns.get("features")
    target = ctx.assigns.get("target")
    if not isinstance(features, pd.DataFrame) or target is None:
        raise StageError(
            "missing_data",
            None,
            "cross_validate needs assigns['features'] and assigns['target']; run load_dataset first",
        )
    return features.to_numpy(), np.asarray(target)


def _fold_scores(
    x: np.ndarray,
    y: np.ndarray,
    splits: Iterable[tuple[np.ndarray, np.ndarray]],
    scorer: Any,
    options: CrossValidateOptions,
    seed: int,
) -> pd.DataFrame:
    """One row per (model, fold): every model sees the same splits so their scores pair up.

    Label noise is drawn from its own seeded generator and only ever replaces training labels,
    so a degraded run stays reproducible and is still scored against the true test labels.
    """
    import numpy as np
    import pandas as pd

    rows = []
    noise = np.random.default_rng([seed, 7919])
    classes = np.unique(y)
    for fold, (train, test) in enumerate(splits):
        y_train = y[train].copy()
        if options.label_noise:
            flip = noise.random(y_train.size) < options.label_noise
            y_train[flip] = noise.choice(classes, int(flip.sum()))
        for model_name, spec in options.models.items():
            estimator = make_estimator(spec, seed).fit(x[train], y_train)
            rows.append(
                {
                    "group": model_name,
                    "block": fold,
                    "value": float(scorer(estimator, x[test], y[test])),
                }
            )
    return pd.DataFrame(rows)


def _summarize(
    scores: pd.DataFrame,
) -> tuple[dict[str, dict[str, float | int]], dict[str, list[float]]]:
    """Per-model summary and the raw fold scores, in the models' order: the summary is for a
    reader, the fold scores are what the paired tests downstream need."""
    by_model = scores.groupby("group", sort=False)["value"]
    summary: dict[str, dict[str, float | int]] = {
        str(name): {
            "mean": float(g.mean()),
            "std": float(g.std(ddof=1)),
            "min": float(g.min()),
            "max": float(g.max()),
            "n": int(g.size),
        }
        for name, g in by_model
    }
    fold_scores = {str(name): g.tolist() for name, g in by_model}
    return summary, fold_scores


def _cv_design(options: CrossValidateOptions, n_rows: int) -> dict[str, Any]:
    """The split sizes a corrected resampled t needs (n_train, n_test), beside the CV settings."""
    n_test = n_rows // options.folds
    return {
        "folds": options.folds,
        "repeats": options.repeats,
        "n_train": n_rows - n_test,
        "n_test": n_test,
        "scoring": options.scoring,
    }
