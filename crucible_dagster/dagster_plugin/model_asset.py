"""A registered model as a Dagster asset: a materialization per new version (its number, the
alias, the gate's decision and evidence, the MLflow URIs), with the promotion gate as its
blocking check, downstream of the experiment's dataset and upstream of nothing it does not feed.

The experiment's job records both from the register and promote steps; the check can also be
executed alone from the UI, which re-reads the decision the latest materialization's run wrote
(``promotion.json``) instead of training again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg

from crucible_dagster import Context, Experiment
from crucible_dagster.dagster_plugin.resource import CrucibleResource
from crucible_dagster.dagster_plugin.translator import CrucibleTranslator
from crucible_dagster.lifecycle.register_stage import PROMOTE
from crucible_dagster.runtime.run_dirs import RunDirectoryError, run_directory

MODEL_CHECK = "promotion_gate"
#: the most bytes of a promotion record the check reads back
MAX_RECORD_BYTES = 1024 * 1024


def model_check(
    experiment: Experiment, spec: dg.AssetSpec, resource: CrucibleResource
) -> dg.AssetChecksDefinition:
    """The gate's verdict as a blocking check; executed alone, the latest version's recorded
    decision."""

    @dg.asset_check(
        asset=spec.key,
        name=MODEL_CHECK,
        blocking=True,
        description="The promotion gate: the new version is not worse than the champion on the "
        "samples both were evaluated on (else the alias does not move).",
    )
    def promotion_gate(context) -> dg.AssetCheckResult:
        # (no annotation: dagster inspects it, and this module's annotations are strings)
        event = context.instance.get_latest_materialization_event(spec.key)
        recorded = event.asset_materialization if event is not None else None
        run_id = recorded.metadata.get("crucible/run_id") if recorded is not None else None
        if not isinstance(run_id, dg.TextMetadataValue):
            return _failed(spec, "no version materialized yet: run the experiment's job first")
        try:
            path = run_directory(resource.artifacts_root(), experiment.id, str(run_id.value))
            record = _read(path / "promotion.json")
        except (RunDirectoryError, OSError, ValueError) as exc:
            return _failed(spec, f"the decision of run {run_id.value!r} cannot be read: {exc}")
        return dg.AssetCheckResult(
            asset_key=spec.key, check_name=MODEL_CHECK, passed=record.get("decision") == "promoted",
            metadata={**_decision_metadata(record), "crucible/rechecked": True},
            severity=dg.AssetCheckSeverity.ERROR,
        )  # fmt: skip

    return promotion_gate


def _read(path: Any) -> dict[str, Any]:
    with open(path, "rb") as source:
        data = source.read(MAX_RECORD_BYTES + 1)
    if len(data) > MAX_RECORD_BYTES:
        raise ValueError(f"{path}: larger than {MAX_RECORD_BYTES} bytes")
    found = json.loads(data)
    if not isinstance(found, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return found


def _failed(spec: dg.AssetSpec, why: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(asset_key=spec.key, check_name=MODEL_CHECK, passed=False,
                               metadata={"reason": why}, severity=dg.AssetCheckSeverity.ERROR)  # fmt: skip


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
    """What a register or promote step adds: the version's materialization (at promote, with
    the decision; at register when nothing promotes) and the gate's evaluation."""
    spec = translator.get_model_asset_spec(experiment)
    if spec is None:
        return
    promoted = after.metrics.get("promotion")
    registered = after.metrics.get("registry")
    decided = isinstance(promoted, Mapping) and promoted is not before.metrics.get("promotion")
    new_version = isinstance(registered, Mapping) and registered is not before.metrics.get(
        "registry"
    )
    promotes = any(s.implementation in PROMOTE for s in experiment.enabled_stages)
    if not (decided or (new_version and not promotes)):
        return
    metadata: dict[str, Any] = {"crucible/run_id": after.run_id}
    if isinstance(registered, Mapping):
        metadata.update({k: str(v) for k, v in registered.items() if v is not None})
    if decided and isinstance(promoted, Mapping):
        metadata.update(_decision_metadata(promoted))
    yield dg.AssetMaterialization(asset_key=spec.key, metadata=metadata)
    if decided and isinstance(promoted, Mapping):
        yield dg.AssetCheckEvaluation(
            asset_key=spec.key, check_name=MODEL_CHECK, passed=promoted.get("decision") == "promoted",
            metadata=_decision_metadata(promoted), severity=dg.AssetCheckSeverity.ERROR,
        )  # fmt: skip
