"""A registered model as a Dagster asset, ``crucible/models/<name>``: a materialization per
new version (its number, the alias, the gate's decision and evidence, the MLflow URIs), with a
blocking check per experiment that judges it: ``promotion_gate__<experiment>`` (the promote
stage's decision) and ``drift__<experiment>`` (a drift stage whose reference is the model's
training data, with the features' table).

The experiment's job records them from its register, promote and drift steps; a check executed
alone from the UI re-reads what the experiment's latest run recorded instead of running again.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from crucible_dagster import Context, Experiment
from crucible_dagster.dagster_plugin.resource import CrucibleResource
from crucible_dagster.dagster_plugin.translator import CrucibleTranslator
from crucible_dagster.lifecycle.register_stage import PROMOTE


def check_names(experiment: Experiment) -> dict[str, str]:
    """The checks an experiment adds to a model asset, by the metric each judges: several
    experiments may promote one model or watch it drift, each with checks of its own."""
    return {"promotion": f"promotion_gate__{experiment.id}", "drift": f"drift__{experiment.id}"}


def model_checks(
    experiment: Experiment, key: dg.AssetKey, resource: CrucibleResource, metrics: list[str]
) -> list[dg.AssetChecksDefinition]:
    """A blocking check per judged metric (``promotion``, ``drift``); executed alone, each
    re-reads the figure the experiment's latest run recorded instead of running it again."""
    return [_check(experiment, key, resource, metric) for metric in metrics]


def _check(
    experiment: Experiment, key: dg.AssetKey, resource: CrucibleResource, metric: str
) -> dg.AssetChecksDefinition:
    name = check_names(experiment)[metric]
    what = {
        "promotion": "the new version is not worse than the champion on the samples both were "
        "evaluated on (else the alias does not move)",
        "drift": "no feature of the recent inputs drifted from the data the version was trained "
        "on (corrected for the number of features)",
    }[metric]

    @dg.asset_check(asset=key, name=name, blocking=True, description=f"{experiment.id}: {what}.")
    def recheck(context) -> dg.AssetCheckResult:
        # (no annotation: dagster inspects it, and this module's annotations are strings)
        found = _latest(resource, experiment, metric)
        if isinstance(found, str):
            return dg.AssetCheckResult(asset_key=key, check_name=name, passed=False,
                                       metadata={"reason": found}, severity=dg.AssetCheckSeverity.ERROR)  # fmt: skip
        run_id, figure = found
        passed, metadata = _judged(metric, figure)
        return dg.AssetCheckResult(
            asset_key=key, check_name=name, passed=passed, severity=dg.AssetCheckSeverity.ERROR,
            metadata={**metadata, "crucible/run_id": run_id, "crucible/rechecked": True},
        )  # fmt: skip

    return recheck


def _latest(
    resource: CrucibleResource, experiment: Experiment, metric: str
) -> tuple[str, Any] | str:
    """(run id, the metric) of the experiment's latest run that recorded it, or why none."""
    from crucible_dagster.run_history.records import scan_runs

    folder = Path(resource.artifacts_root()) / experiment.id
    runs, _ = scan_runs(folder) if folder.is_dir() else ([], [])
    recorded = [r for r in runs if isinstance((r.raw.get("metrics") or {}).get(metric), Mapping)]
    if not recorded:
        return f"no run of {experiment.id} recorded {metric} yet: run its job first"
    latest = max(recorded, key=lambda r: (r.manifest.started_at is not None, r.manifest.started_at))
    return latest.run_dir.name, latest.raw["metrics"][metric]


def _judged(metric: str, figure: Mapping[str, Any]) -> tuple[bool, dict[str, Any]]:
    if metric == "promotion":
        return figure.get("decision") == "promoted", _decision_metadata(figure)
    return not figure.get("drifted"), _drift_metadata(figure)


def _drift_metadata(drift: Mapping[str, Any]) -> dict[str, Any]:
    """The features' table: statistic, p-value (raw and corrected), PSI, drifted."""
    columns = ["feature", "kind", "test", "statistic", "p_value", "p_adjusted", "psi", "drifted"]
    rows = []
    for feature, verdict in list((drift.get("features") or {}).items())[:500]:
        if not isinstance(verdict, Mapping):
            continue
        cells = {"feature": str(feature)[:200], **{c: verdict.get(c) for c in columns[1:]}}
        rows.append(dg.TableRecord({c: v if isinstance(v, (int, float, bool, str)) else None
                                    for c, v in cells.items()}))  # fmt: skip
    schema = dg.TableSchema(columns=[dg.TableColumn(c) for c in columns])
    model = drift.get("reference_model") or {}
    return {
        "features": dg.MetadataValue.table(rows, schema=schema),
        "features_drifted": int(drift.get("features_drifted") or 0),
        "features_tested": int(drift.get("features_tested") or 0),
        "reference_version": str(model.get("version")),
        "reference_fingerprint": str(model.get("fingerprint")),
    }


def _decision_metadata(record: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("decision", "model", "version", "alias", "champion_version", "outcome", "message",
            "test", "estimate", "ci_low", "ci_high", "p_value", "n_units", "kind", "margin", "alpha")  # fmt: skip
    found: dict[str, Any] = {}
    for key in keys:
        value = record.get(key)
        if isinstance(value, bool) or value is None:
            continue
        found[key] = value if isinstance(value, (int, float)) else str(value)[:2000]
    return found


def model_events(
    before: Context, after: Context, experiment: Experiment, translator: CrucibleTranslator
) -> Iterator[Any]:
    """What a register, promote or drift step adds: the version's materialization (at promote,
    with the decision; at register when nothing promotes) and each check's evaluation."""
    key = model_key(experiment, translator)
    if key is None:
        return
    names = check_names(experiment)
    new = {m: v for m in ("promotion", "registry", "drift")
           if isinstance(v := after.metrics.get(m), Mapping) and v is not before.metrics.get(m)}  # fmt: skip
    promotes = any(s.implementation in PROMOTE for s in experiment.enabled_stages)
    if "promotion" in new or ("registry" in new and not promotes):
        metadata: dict[str, Any] = {
            "crucible/run_id": after.run_id,
            "crucible/experiment": experiment.id,
        }
        registered = after.metrics.get("registry")
        if isinstance(registered, Mapping):
            metadata.update({k: str(v) for k, v in registered.items() if v is not None})
        if "promotion" in new:
            metadata.update(_decision_metadata(new["promotion"]))
        yield dg.AssetMaterialization(asset_key=key, metadata=metadata)
    for metric in ("promotion", "drift"):
        if metric in new and (metric != "drift" or watches(experiment)):
            passed, metadata = _judged(metric, new[metric])
            yield dg.AssetCheckEvaluation(asset_key=key, check_name=names[metric], passed=passed,
                                          metadata=metadata, severity=dg.AssetCheckSeverity.ERROR)  # fmt: skip


def watches(experiment: Experiment) -> bool:
    drift = experiment.reliability.drift if experiment.reliability else None
    return drift is not None and drift.reference_model is not None


def model_key(experiment: Experiment, translator: CrucibleTranslator) -> dg.AssetKey | None:
    """The model asset the experiment registers, promotes or watches for drift."""
    spec = translator.get_model_asset_spec(experiment)
    if spec is not None:
        return spec.key
    if watches(experiment):
        drift = experiment.reliability.drift  # type: ignore[union-attr]
        return translator.model_asset_spec(drift.reference_model.registered_name, [], "").key  # type: ignore[union-attr]
    return None
