"""Which scikit-learn estimator a ``model_ref`` names, and which of its parameters each
training setting maps to.

``architecture`` is a class name scikit-learn lists (``SGDClassifier``, ``MLPRegressor``) or a
dotted path ``package.module:Class`` (checked by ``runtime.code_refs`` before import side
effects matter). A training setting the file gives explicitly (``batch_size``,
``learning_rate``, ``optimizer``, ``loss_function``, ``epochs`` above 1) is applied where the
estimator has a parameter for it and refused, naming the estimator, where it has none: a setting
never silently does nothing.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crucible_dagster.runtime.stage import StageError

if TYPE_CHECKING:
    from crucible_dagster.experiment.ir import TrainingConfig

AT = "training_config.model_ref"
#: the original's loss names, as scikit-learn's ``loss`` parameter spells them
LOSSES = {"cross_entropy": "log_loss", "bce": "log_loss", "mse": "squared_error",
          "mae": "absolute_error"}  # fmt: skip
#: parameters that take the learning rate, in the order they are looked for
RATE_PARAMETERS = ("learning_rate_init", "eta0", "learning_rate")


class EstimatorProblem(StageError):
    """A located problem with the estimator or a setting it cannot take."""

    def __init__(self, where: str, message: str):
        self.where = where
        super().__init__("invalid_training_config", [f"{where}: {message}"], f"{where}: {message}")


def _catalogue() -> dict[str, type]:
    from sklearn.utils import all_estimators

    return {name: cls for name, cls in all_estimators(type_filter=["classifier", "regressor"])}


def static_problems(config: TrainingConfig) -> None:
    """What can be checked without importing scikit-learn (the Dagster loader checks every
    experiment and stays light): the framework, an estimator named at all, and a dotted path's
    code (the project's one resolver). Class names and parameters are checked at run start."""
    ref = config.model_ref
    if "framework" in ref.model_fields_set and ref.framework not in ("sklearn", "scikit-learn"):
        raise EstimatorProblem(f"{AT}.framework", "expected 'sklearn' (scikit-learn estimators "
                               f"are what train fits), got {ref.framework!r}")  # fmt: skip
    if not ref.architecture:
        raise EstimatorProblem(f"{AT}.architecture", "expected the estimator to train, e.g. "
                               "'SGDClassifier' or 'package.module:Class', got nothing")  # fmt: skip
    if ":" in ref.architecture:
        from crucible_dagster.runtime.code_refs import CodeRefError, resolve

        try:
            resolve(ref.architecture, "estimator")
        except CodeRefError as exc:
            raise EstimatorProblem(f"{AT}.architecture", str(exc)) from None


def estimator_class(config: TrainingConfig) -> type:
    """The class ``model_ref.architecture`` names, checked to be a classifier or regressor (of
    the ``task`` the file says, when it says one)."""
    from sklearn.base import is_classifier, is_regressor

    static_problems(config)
    ref = config.model_ref
    name = str(ref.architecture)
    if ":" in name:
        from crucible_dagster.runtime.code_refs import CodeRefError, resolve

        try:
            cls = resolve(name, "estimator")
        except CodeRefError as exc:
            raise EstimatorProblem(f"{AT}.architecture", str(exc)) from None
    else:
        known = _catalogue()
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise EstimatorProblem(f"{AT}.architecture", f"expected a scikit-learn classifier or "
                                   f"regressor class name, got {name[:80]!r}{hint}")  # fmt: skip
        cls = known[name]
    instance = _instance(cls, {})
    kind = "regression" if is_regressor(instance) else None
    kind = "classification" if is_classifier(instance) else kind
    if kind is None:
        raise EstimatorProblem(f"{AT}.architecture", f"expected a classifier or regressor, got "
                               f"{cls.__name__} (neither)")  # fmt: skip
    if ref.task is not None and ref.task != kind:
        raise EstimatorProblem(f"{AT}.task", f"{cls.__name__} is a {kind} estimator, the file "
                               f"says {ref.task!r}")  # fmt: skip
    return cls


def _instance(cls: type, params: dict[str, Any]) -> Any:
    try:
        return cls(**params)
    except TypeError as exc:
        raise EstimatorProblem(
            f"{AT}.options", f"{cls.__name__} refused its parameters: {exc}"
        ) from None


@dataclass
class Plan:
    """How the loop trains: the estimator's parameters, and whether an epoch is a pass of
    ``partial_fit`` over batches (``batches``), one more ``fit`` with ``warm_start``, or the one
    ``fit`` (a single epoch)."""

    cls: type
    params: dict[str, Any]
    epoch: str  #: what an epoch is: partial_fit, warm_start or fit
    batch_size: int | None = None  #: our batches for partial_fit; None: one batch
    classification: bool = True
    applied: dict[str, str] = field(default_factory=dict)  #: setting -> parameter it set


def plan(config: TrainingConfig, seed: int) -> Plan:
    """The estimator's parameters: ``model_ref.options``, then each setting the file gives
    mapped to the parameter that takes it; a setting with no parameter is refused."""
    from sklearn.base import is_classifier

    cls = estimator_class(config)
    given = dict(config.model_ref.options or {})
    accepted = _instance(cls, {}).get_params(deep=False)
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(accepted), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise EstimatorProblem(f"{AT}.options.{unknown[0]}", f"{cls.__name__} has no parameter "
                               f"{unknown[0]!r}{hint}")  # fmt: skip
    params, applied = dict(given), dict[str, str]()
    if "random_state" in accepted and "random_state" not in given:
        params["random_state"] = seed
    applied.update(_map_settings(config, cls, accepted, given, params))
    mode = "fit"
    if config.epochs > 1 or config.early_stopping is not None or config.checkpoint_every:
        if hasattr(cls, "partial_fit"):
            mode = "partial_fit"
        elif "warm_start" in accepted and "max_iter" in accepted and not growing(cls):
            mode = "warm_start"
            params.update(warm_start=True, max_iter=1)
        else:
            raise _refused(cls, "epochs", "learns in one fit (no partial_fit, no warm_start with "
                         "max_iter): set epochs to 1, without early_stopping or checkpoints")  # fmt: skip
    batch = None
    if "batch_size" in config.model_fields_set:
        if "batch_size" in accepted:
            params["batch_size"], applied["batch_size"] = config.batch_size, "batch_size"
        elif mode == "partial_fit":
            batch = config.batch_size
            applied["batch_size"] = "partial_fit batches"
        else:
            raise _refused(cls, "batch_size", "does not learn in batches")
    estimator = _instance(cls, params)
    return Plan(cls, params, mode, batch, is_classifier(estimator), applied)


def growing(cls: type) -> bool:
    """An ensemble grows by n_estimators or max_iter (its total), not by one more fit at
    max_iter=1: warm-started epochs would add nothing."""
    return cls.__module__.startswith("sklearn.ensemble")


def _refused(cls: type, setting: str, why: str) -> EstimatorProblem:
    return EstimatorProblem(f"training_config.{setting}", f"{cls.__name__} {why}")


def _map_settings(
    config: TrainingConfig, cls: type, accepted: dict[str, Any], given: dict[str, Any],
    params: dict[str, Any],
) -> dict[str, str]:  # fmt: skip
    """Each of learning_rate, optimizer and loss_function the file gives, set on the parameter
    that takes it (``params`` is updated); setting -> parameter."""
    applied: dict[str, str] = {}
    explicit = config.model_fields_set

    def take(setting: str, parameter: str, value: Any) -> None:
        params[parameter] = value
        applied[setting] = parameter

    def refuse(setting: str, why: str) -> EstimatorProblem:
        return EstimatorProblem(f"training_config.{setting}", f"{cls.__name__} {why}")

    if "learning_rate" in explicit:
        rate = next((p for p in RATE_PARAMETERS if p in accepted
                     and not isinstance(accepted[p], str)), None)  # fmt: skip
        if rate is None and isinstance(accepted.get("learning_rate"), str) and "eta0" in accepted:
            rate = "eta0"
        if rate is None:
            raise refuse("learning_rate", "has no learning-rate parameter")
        take("learning_rate", rate, config.learning_rate)
        if (
            rate == "eta0"
            and accepted.get("learning_rate") == "optimal"
            and "learning_rate" not in given
        ):
            params["learning_rate"] = "constant"  # 'optimal' ignores eta0
    if "optimizer" in explicit:
        if "solver" in accepted and config.optimizer in ("adam", "sgd"):
            take("optimizer", "solver", config.optimizer)
        elif not (config.optimizer == "sgd" and hasattr(cls, "partial_fit") and "eta0" in accepted):
            raise refuse("optimizer", f"cannot use the optimizer {config.optimizer!r}")
    if "loss_function" in explicit:
        if "loss" not in accepted:
            raise refuse("loss_function", "has no loss parameter")
        take("loss_function", "loss", LOSSES[config.loss_function])
    return applied


def trusted_types(cls: type) -> set[str]:
    """The one class outside scikit-learn, numpy and scipy a checkpoint may hold: the
    estimator the file names (its code runs in training anyway)."""
    return {f"{cls.__module__}.{cls.__qualname__}"}
