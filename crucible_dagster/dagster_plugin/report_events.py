"""Report assets and quality-target asset checks: the events a report stage's op records.

A report is materialized with its markdown preview, the comparison table, every numeric
metric (the UI plots them across runs) and the file paths. Each quality target is an
asset check on the report, evaluated in the same run; the check definitions also let a
user re-check the latest report from the UI.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from crucible_dagster.common.jsonsafe import to_jsonable
from crucible_dagster.dagster_plugin.translator import CrucibleTranslator
from crucible_dagster.experiment.ir import Experiment
from crucible_dagster.run_history.gate import GATE_METRIC, GATE_NAME
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.metrics import numeric_metrics
from crucible_dagster.runtime.quality import METRIC_KEY

MAX_METRIC_ENTRIES = 200
QUALITY_PREFIX = "quality/"


def metric_metadata(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """The run's numeric metrics as float metadata (the UI plots them across runs), at most MAX_METRIC_ENTRIES."""
    return float_metadata(numeric_metrics(metrics), prefix)


def float_metadata(numbers: Mapping[str, float], prefix: str = "") -> dict[str, Any]:
    items = list(numbers.items())[:MAX_METRIC_ENTRIES]
    return {f"{prefix}{key}": dg.MetadataValue.float(value) for key, value in items}


def _comparison_table(metrics: Mapping[str, Any]) -> str | None:
    bench = metrics.get("bench")
    if not isinstance(bench, Mapping) or not bench.get("comparisons"):
        return None
    from crucible_dagster.report.markdown import bench_markdown

    return "\n".join(bench_markdown(bench))


def _verdict_metadata(verdict: Mapping[str, Any]) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "verdict": "pass" if verdict.get("passed") else "fail",
        "detail": dg.MetadataValue.text(str(verdict.get("message", ""))),
    }
    for key in ("estimate", "ci_low", "ci_high", "p_value"):
        value = verdict.get(key)
        if isinstance(value, int | float):
            metadata[key] = dg.MetadataValue.float(float(value))
    if verdict.get("test"):
        metadata["test"] = str(verdict["test"])
    return metadata


def _evaluation(
    asset_key: dg.AssetKey, verdict: Mapping[str, Any], extra: Mapping[str, Any] | None = None
) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=asset_key,
        check_name=str(verdict["name"]),
        passed=bool(verdict.get("passed")),
        metadata={**_verdict_metadata(verdict), **(extra or {})},
        severity=dg.AssetCheckSeverity.ERROR
        if verdict.get("severity") == "error"
        else dg.AssetCheckSeverity.WARN,
    )


def report_events(
    before: Context, after: Context, experiment: Experiment, translator: CrucibleTranslator
) -> Iterator[Any]:
    """Materializations for the reports this stage produced, then one check evaluation per target."""
    new_outputs = after.outputs[len(before.outputs) :]
    specs = {o.name: o for o in experiment.outputs}
    verdicts = [v for v in (after.metrics.get(METRIC_KEY) or []) if isinstance(v, Mapping)]
    produced = False
    for item in new_outputs:
        if not (
            isinstance(item, Mapping) and item.get("kind") == "report" and item.get("name") in specs
        ):
            continue
        produced = True
        metadata: dict[str, Any] = {"crucible/run_id": after.run_id}
        for rendered in item.get("rendered", []):
            path = rendered.get("path")
            if not path:
                continue
            metadata[f"path/{rendered['format']}"] = dg.MetadataValue.path(path)
            if rendered["format"] == "markdown":
                metadata["preview"] = dg.MetadataValue.md(
                    Path(path).read_text(encoding="utf-8")[:20000]
                )
        table = _comparison_table(after.metrics)
        if table:
            metadata["comparisons"] = dg.MetadataValue.md(table)
        for verdict in verdicts:
            metadata[f"{QUALITY_PREFIX}{verdict['name']}"] = dg.MetadataValue.json(
                to_jsonable(dict(verdict))
            )
        metadata.update(metric_metadata(after.metrics))
        yield dg.AssetMaterialization(
            asset_key=translator.report_asset_key(experiment, specs[item["name"]]),
            metadata=metadata,
        )
    check_asset = translator.quality_check_asset_key(experiment)
    if produced and check_asset is not None:
        gate = after.metrics.get(GATE_METRIC) or {}
        for verdict in verdicts:
            extra = (
                {
                    "baseline_run_id": str(gate.get("baseline_run_id")),
                    "outcome": gate.get("outcome"),
                }
                if verdict.get("name") == GATE_NAME
                else {}
            )
            yield _evaluation(check_asset, verdict, extra)


def _recheck(
    asset_key: dg.AssetKey, name: str, description: str, *, blocking: bool = False
) -> dg.AssetChecksDefinition:
    """A check that re-reads the verdict recorded with the latest report, for runs from the UI."""

    @dg.asset_check(asset=asset_key, name=name, description=description, blocking=blocking)
    def _check(context):  # dagster inspects the annotation
        event = context.instance.get_latest_materialization_event(asset_key)
        materialization = event.asset_materialization if event else None
        stored = (
            materialization.metadata.get(f"{QUALITY_PREFIX}{name}") if materialization else None
        )
        if stored is None:
            return dg.AssetCheckResult(
                passed=False,
                metadata={
                    "detail": "no report with this target's verdict yet: run the experiment's job"
                },
            )
        verdict = (
            stored.value if isinstance(stored.value, Mapping) else json.loads(str(stored.value))
        )
        evaluation = _evaluation(asset_key, verdict)
        return dg.AssetCheckResult(
            passed=evaluation.passed, metadata=evaluation.metadata, severity=evaluation.severity
        )

    return _check


def quality_checks(
    experiment: Experiment, translator: CrucibleTranslator
) -> list[dg.AssetChecksDefinition]:
    asset_key = translator.quality_check_asset_key(experiment)
    if asset_key is None:
        return []
    checks = [
        _recheck(
            asset_key,
            target.name,
            f"Quality target {target.name} ({target.kind}, severity {target.severity})",
        )
        for target in experiment.quality_targets
    ]
    gate = experiment.regression_baseline
    if gate is not None:
        checks.append(
            _recheck(
                asset_key,
                GATE_NAME,
                f"Regression gate: {gate.kind} against the {gate.policy.replace('_', ' ')} "
                f"baseline run on {gate.metric} (margin {gate.margin:g}, alpha {gate.alpha:g}); "
                "accept a baseline with the crucible_accept_baseline job or `crucible accept`",
                blocking=True,
            )
        )
    return checks
