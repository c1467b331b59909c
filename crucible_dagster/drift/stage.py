"""The ``drift`` stage: recent inputs (``reliability.drift.current``, default the experiment's
dataset) compared with a reference (``reliability.drift.reference``), feature by feature.

Each feature gets its test (``drift.statistics``); the p-values are corrected for the number
of features tested (``correction``, Holm by default), and a feature drifted when its corrected
p-value is below ``alpha`` (or its PSI reaches ``psi_threshold``, when set). The verdict is the
metric ``drift`` (``features_drifted`` to gate with a quality target, which under Dagster is an
asset check of the report; ``features``: each feature's test, statistic, p-values and PSI);
``fail_on_drift`` fails the stage instead. Both datasets load as named (no limit, sample or
folds): their fingerprints are in the metric.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.stage import (
    Stage,
    StageError,
    StageOptions,
    reliability_setting,
    required_setting,
    setting_problems,
)
from crucible_dagster.telemetry import record

if TYPE_CHECKING:
    from crucible_dagster.datasets.loading import LoadedDataset
    from crucible_dagster.drift.statistics import FeatureDrift
    from crucible_dagster.experiment.ir import Drift, Experiment


EXAMPLE = "{reference: <dataset>}"
#: the feedback stage as a pipeline may name it (drift does not import it: one floor each)
FEEDBACK_STAGE = {"feedback", "crucible_dagster.feedback.stage:FeedbackStage"}


class DriftOptions(StageOptions):
    """The settings are the experiment's ``reliability.drift``."""


class DriftStage(Stage):
    name = "drift"
    description = "Recent inputs against a reference: KS, chi-squared, PSI per feature, corrected"
    Options = DriftOptions
    uses = ("reliability.drift", "tracking")

    @classmethod
    def check_experiment(cls, experiment: Experiment) -> list[tuple[str, str]]:
        from crucible_dagster.datasets.loading import dataset_problems

        settings = reliability_setting(experiment, "drift")
        if settings is None:
            return setting_problems(experiment, "drift", "drift", EXAMPLE)
        problems = []
        if settings.reference_model is not None:
            from crucible_dagster.experiment.ir.lifecycle import registry_name

            try:
                registry_name(settings.reference_model.registered_name, "registered model name")
            except ValueError as exc:
                return [("reliability.drift.reference_model.id", str(exc))]
        for field, ref in (("reference", settings.reference), ("current", settings.current)):
            if ref is not None:
                where = f"reliability.drift.{field}"
                problems += dataset_problems(ref, at=where)
                problems += [
                    (
                        f"{where}.{name}",
                        "not used: drift compares the datasets as named (every row); remove it",
                    )
                    for name in ("limit", "sample", "folds")
                    if getattr(ref, name) is not None
                ]
        if settings.current_from == "feedback":
            problems += _feedback_problems(experiment, settings)
        elif settings.current is None and experiment.dataset is None:
            problems.append(
                (
                    "reliability.drift.current",
                    "expected a dataset to compare with the reference: set current, or the "
                    "experiment's dataset",
                )
            )
        return problems

    def run(self, ctx: Context, options: DriftOptions) -> Context:
        from crucible_dagster.bench.multiple import adjust_p_values
        from crucible_dagster.drift.statistics import DriftDataError, feature_drift, kind_of

        settings, experiment = _settings(ctx)
        reference, lineage = _reference(ctx, settings)
        if settings.current_from == "feedback":
            from crucible_dagster.drift.feedback_inputs import feedback_inputs

            current = feedback_inputs(ctx.get_artifact("feedback"), settings.features)
        else:
            current_ref = settings.current or experiment.dataset
            assert current_ref is not None  # check_experiment
            current = _load(current_ref, "current")
        features = _features(settings, reference, current)
        unknown = sorted(set(settings.kinds) - set(features))
        if unknown:
            raise StageError("unknown_kind", unknown, f"reliability.drift.kinds: {unknown[0]!r} "
                             "is not a compared feature (the target and ids never are)")  # fmt: skip
        found: list[FeatureDrift] = []
        for feature in features:
            absent = _absent(feature, reference, current)
            if absent is not None:
                found.append(absent)
                continue
            old, new = reference.examples[feature], current.examples[feature]
            kind = settings.kinds.get(feature) or kind_of(old, new)
            try:
                found.append(feature_drift(feature, old, new, kind, settings.bins))
            except DriftDataError as exc:
                raise StageError("drift_kind", feature,
                                 f"reliability.drift.kinds.{feature}: {kind}, but {exc}") from None  # fmt: skip
        tested = [f for f in found if f.p_value is not None]
        p_values = [f.p_value for f in tested if f.p_value is not None]
        corrected = adjust_p_values(p_values, settings.correction)
        adjusted = dict(zip((f.feature for f in tested), corrected, strict=True))
        verdicts = {f.feature: _verdict(f, adjusted.get(f.feature), settings) for f in found}
        drifted = [name for name, f in verdicts.items() if f["drifted"]]
        for name in drifted:
            record("drift_finding", finding=name[:512], count=verdicts[name]["current_n"])
        untestable = {f.feature: f.reason for f in found if f.p_value is None}
        summary: dict[str, Any] = {
            "reference": _described(reference),
            "reference_model": lineage,
            "current": _described(current),
            "alpha": settings.alpha,
            "correction": settings.correction,
            "psi_threshold": settings.psi_threshold,
            "features_tested": len(tested),
            "features_drifted": len(drifted),
            # a feature no test could judge (gone from one side, too few values): gate on it too
            "features_untestable": len(untestable),
            "drifted": drifted,
            "untestable": untestable,
            "features": verdicts,
        }
        if drifted and settings.fail_on_drift:  # the failure's details keep the whole table
            raise StageError("drift", summary, f"drift in {len(drifted)} feature(s): "
                             + ", ".join(drifted))  # fmt: skip
        return ctx.put_metric("drift", summary)


def _feedback_problems(experiment: Experiment, settings: Drift) -> list[tuple[str, str]]:
    """``current_from: feedback`` reads the events a feedback stage kept earlier in the run."""
    if settings.current is not None:
        return [("reliability.drift.current", "not used with current_from: feedback (the "
                 "feedback events are the current inputs); remove one")]  # fmt: skip
    feedback = reliability_setting(experiment, "feedback")
    if feedback is not None and not feedback.enabled:
        return [("reliability.drift.current_from", "feedback: reliability.feedback.enabled is "
                 "false, so no events are kept to compare")]  # fmt: skip
    steps = [s.implementation for s in experiment.enabled_stages]
    drift = (DriftStage.name, DriftStage.qualified_name())
    drift_at = next((i for i, s in enumerate(steps) if s in drift), len(steps))
    if not FEEDBACK_STAGE & set(steps[:drift_at]):  # by its name or its dotted path
        return [("reliability.drift.current_from", "feedback: expected a feedback stage before "
                 "the drift stage, whose kept events are the current inputs")]  # fmt: skip
    return []


def _settings(ctx: Context) -> tuple[Drift, Experiment]:
    settings = required_setting(ctx, "drift", "drift", EXAMPLE)
    assert ctx.experiment is not None  # it holds the settings
    return settings, ctx.experiment


def _reference(ctx: Context, settings: Drift) -> tuple[LoadedDataset, dict[str, Any] | None]:
    """The reference dataset, and the registered version it came from (``reference_model``)."""
    if settings.reference_model is not None:
        return _reference_of_model(ctx, settings.reference_model)
    assert settings.reference is not None  # the IR holds one of the two
    return _load(settings.reference, "reference"), None


def _reference_of_model(ctx: Context, model: Any) -> tuple[LoadedDataset, dict[str, Any]]:
    """The data the registered version was trained on, as its lineage names it; refused when
    its content is no longer what the version was trained on."""
    from crucible_dagster.lifecycle.lineage import trained_on
    from crucible_dagster.runtime.run_dirs import run_root

    assert ctx.experiment is not None
    root = run_root(ctx)
    found = trained_on(ctx.experiment, model, root, "reliability.drift.reference_model")
    loaded = _load(found.dataset, "reference_model")
    now = loaded.named_fingerprint or loaded.fingerprint
    if found.fingerprint and now != found.fingerprint:
        raise StageError("reference_changed", found.model, f"reliability.drift.reference_model: "
                         f"{found.model!r} version {found.version} was trained on data with "
                         f"fingerprint {found.fingerprint}; {found.dataset.name!r} now has {now}: "
                         "the data changed since, so it is not the model's reference")  # fmt: skip
    lineage = {"model": found.model, "version": found.version, "dataset": found.dataset.name,
               "fingerprint": now, "training_run_id": found.run_id}  # fmt: skip
    return loaded, lineage


def _load(ref: Any, side: str) -> LoadedDataset:
    from crucible_dagster.datasets.base import DatasetError
    from crucible_dagster.datasets.loading import load_as_named

    try:
        return load_as_named(ref)
    except DatasetError as exc:
        raise StageError("drift_dataset", side, f"reliability.drift.{side}: {exc}") from None


def _features(settings: Drift, reference: LoadedDataset, current: LoadedDataset) -> list[str]:
    """The columns compared: the settings' (each in both samples), else every column but the
    target, those both share first (a column on one side only is compared as absent)."""
    ref_cols, cur_cols = list(reference.examples.columns), set(current.examples.columns)
    if settings.features is not None:
        for name in settings.features:
            for side, columns in (("reference", set(ref_cols)), ("current", cur_cols)):
                if name not in columns:
                    raise StageError(
                        "missing_feature", name,
                        f"reliability.drift.features: {name!r} is not a column of the {side} "
                        f"dataset (its columns: {', '.join(sorted(map(str, columns)))[:300]})",
                    )  # fmt: skip
        return list(settings.features)
    targets: set[str] = set()
    for target in (reference.target_column, current.target_column):
        targets.update([target] if isinstance(target, str) else list(target or []))
    shared = [c for c in ref_cols if c in cur_cols and c not in targets]
    if not shared:
        raise StageError("no_shared_features", None,
                         "reliability.drift: the reference and current datasets share no column "
                         "but the target; name the features to compare")  # fmt: skip
    # a column on one side only is listed too, untestable: gone from production is drift
    one_side = [c for c in [*ref_cols, *current.examples.columns]
                if c not in targets and c not in shared]  # fmt: skip
    return [str(c) for c in dict.fromkeys([*shared, *one_side])]


def _absent(feature: str, reference: LoadedDataset, current: LoadedDataset) -> FeatureDrift | None:
    """An untestable verdict for a feature one dataset does not have."""
    from crucible_dagster.drift.statistics import FeatureDrift

    if feature not in reference.examples.columns:
        side, n = "reference", {"reference_n": 0, "current_n": len(current.examples)}
    elif feature not in current.examples.columns:
        side, n = "current", {"reference_n": len(reference.examples), "current_n": 0}
    else:
        return None
    return FeatureDrift(feature, "categorical", "none", None, None, None, **n, missing=0,
                        reason=f"absent from the {side} dataset")  # fmt: skip


def _verdict(found: FeatureDrift, adjusted: float | None, settings: Drift) -> dict[str, Any]:
    by_test = adjusted is not None and adjusted < settings.alpha
    by_psi = (
        settings.psi_threshold is not None
        and found.psi is not None
        and found.psi >= settings.psi_threshold
    )
    return {**found.to_dict(), "p_adjusted": adjusted, "drifted": bool(by_test or by_psi)}


def _described(loaded: LoadedDataset) -> dict[str, Any]:
    return {"name": loaded.name, "rows": len(loaded.examples), "fingerprint": loaded.fingerprint}
