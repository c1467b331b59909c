"""Report assets and quality-target asset checks: the events a report stage's op records.

A report is materialized with its markdown preview, the comparison table, every numeric
metric (the UI plots them across runs) and the file paths. Each quality target is an
asset check on the report, evaluated in the same run; the check definitions also let a
user re-check the latest report from the UI.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg

from crucible_dagster import Context, Experiment
from crucible_dagster.bench.rows import comparison_rows
from crucible_dagster.common.jsonsafe import to_jsonable
from crucible_dagster.dagster_plugin.resource import CrucibleResource
from crucible_dagster.dagster_plugin.translator import CrucibleTranslator
from crucible_dagster.experiment.ir import QualityTarget, RegressionBaseline
from crucible_dagster.quality.gate import GATE_METRIC, GATE_NAME
from crucible_dagster.quality.recheck import recheck_run
from crucible_dagster.quality.targets import METRIC_KEY, targets_of
from crucible_dagster.reports.precision import significant
from crucible_dagster.run_history.records import RecordError
from crucible_dagster.runtime.metrics import numeric_metrics
from crucible_dagster.runtime.run_dirs import RunDirectoryError, run_directory

MAX_METRIC_ENTRIES = 200


def float_metadata(numbers: Mapping[str, float], prefix: str = "") -> dict[str, Any]:
    items = list(numbers.items())[:MAX_METRIC_ENTRIES]
    return {f"{prefix}{key}": dg.MetadataValue.float(value) for key, value in items}


#: the built-in report stage, by its registered name or its class path
REPORT_STAGE = ("report", "crucible_dagster.reports.stage:ReportStage")


def headline_names(experiment: Experiment) -> list[str]:
    """The figures a report asset plots across materializations: each threshold target's metric,
    the sweep metric, and the report stage's ``headline_metrics``; every other metric goes into
    the one JSON entry ``metrics``."""
    names = [t.metric for t in targets_of(experiment) if t.metric]
    if experiment.sweep is not None:
        names.append(experiment.sweep.metric)
    for stage in experiment.pipeline:
        is_report = stage.implementation in REPORT_STAGE  # whatever the stage is named
        listed = stage.options.get("headline_metrics") if is_report else None
        if isinstance(listed, list):
            names.extend(str(n) for n in listed)
    return list(dict.fromkeys(names))


#: the run tag (and the report asset's headline) carrying the regression gate's verdict, so a
#: regressed run stands out in the runs list even when the gate does not fail the run
GATE_TAG = "crucible/gate"
GATE_VERDICTS = {
    "pass": "clean",
    "fail": "regressed",
    "not_comparable": "not_comparable",
    "no_baseline": "no_baseline",
}
#: the verdicts from least to most alarming
GATE_SEVERITY = ("clean", "no_baseline", "not_comparable", "regressed")


def gate_tag_value(metrics: Mapping[str, Any]) -> str | None:
    """The gate's outcome as the tag spells it; None when the run has no gate result."""
    gate = metrics.get(GATE_METRIC)
    outcome = gate.get("outcome") if isinstance(gate, Mapping) else None
    return GATE_VERDICTS.get(outcome) if isinstance(outcome, str) else None


def request_headline(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Each predict variant's requests as the figures the UI plots across runs: count, p95
    latency, total cost and failure rate (``telemetry/<variant>/...``)."""
    found: dict[str, float] = {}
    predictions = metrics.get("predictions")
    for variant, summary in predictions.items() if isinstance(predictions, Mapping) else ():
        if not isinstance(summary, Mapping) or not isinstance(summary.get("samples"), int):
            continue
        count = summary["samples"]
        prefix = f"telemetry/{variant}/"
        found[prefix + "requests"] = float(count + (summary.get("extra_requests") or 0))
        found[prefix + "cost"] = float(summary.get("cost") or 0.0)
        if count:
            found[prefix + "failure_rate"] = float(summary.get("errors") or 0) / count
        latency = summary.get("latency")
        if isinstance(latency, Mapping) and isinstance(latency.get("p95_ms"), int | float):
            found[prefix + "p95_ms"] = float(latency["p95_ms"])
    return found


def headline_metadata(metrics: Mapping[str, Any], experiment: Experiment) -> dict[str, Any]:
    numbers = numeric_metrics(metrics)
    chosen = {name: numbers[name] for name in headline_names(experiment) if name in numbers}
    chosen.update(request_headline(metrics))
    gate = metrics.get(GATE_METRIC)
    if isinstance(gate, Mapping) and isinstance(gate.get("estimate"), int | float):
        chosen[f"{GATE_NAME}.estimate"] = float(gate["estimate"])
    verdict = gate_tag_value(metrics)
    return {
        **({GATE_TAG: dg.MetadataValue.text(verdict)} if verdict else {}),
        **float_metadata(chosen),
        "metrics": dg.MetadataValue.json(to_jsonable(dict(metrics))),
    }


COMPARISON_COLUMNS = (
    ("comparison", "string"),
    ("test", "string"),
    ("statistic", "float"),
    ("df", "string"),
    ("p", "float"),
    ("p_adjusted", "float"),
    ("difference", "float"),
    ("ci_low", "float"),
    ("ci_high", "float"),
    ("effect_size", "string"),
    ("effect", "float"),
    ("effect_ci_low", "float"),
    ("effect_ci_high", "float"),
    ("n", "string"),
)
#: a column left out when it equals another in every row: nothing was corrected
REPEATS = {"p_adjusted": "p"}
#: significant digits shown: a p-value's third digit and an estimate's fourth (``significant``'s
#: default) are the last that mean anything at the sample sizes experiments have; the full
#: values stay in the run's files
P_DIGITS = 3


def _preview(ctx: Context) -> str:
    """The readable summary with the run directory's plots inline (``previews``)."""
    from crucible_dagster.dagster_plugin.previews import report_preview

    return report_preview(ctx)


def _comparison_record(row: Any) -> dict[str, Any]:
    df = row.df
    return {
        "comparison": row.label,
        "test": row.test,
        "statistic": significant(row.statistic),
        "df": ", ".join(f"{v:g}" for v in df)
        if isinstance(df, list)
        else (f"{df:g}" if isinstance(df, int | float) else ""),
        "p": significant(row.p_value, P_DIGITS),
        "p_adjusted": significant(row.p_adjusted, P_DIGITS),
        "difference": significant(row.estimate),
        "ci_low": significant(row.ci_low),
        "ci_high": significant(row.ci_high),
        "effect_size": row.effect_size_name or "",
        "effect": significant(row.effect_size),
        "effect_ci_low": significant(row.effect_size_ci_low),
        "effect_ci_high": significant(row.effect_size_ci_high),
        "n": f"{row.n_a}, {row.n_b}",
    }


def _informative_columns(
    records: list[dict[str, Any]], columns: tuple[tuple[str, str], ...] = COMPARISON_COLUMNS
) -> list[tuple[str, str]]:
    """The columns worth a reader's eye: none empty in every row, and none that only repeats
    another (``REPEATS``)."""
    kept: list[tuple[str, str]] = []
    for name, kind in columns:
        values = [r[name] for r in records]
        if all(v in (None, "") for v in values):
            continue
        repeated = REPEATS.get(name)
        if repeated is not None and values == [r.get(repeated) for r in records]:
            continue
        kept.append((name, kind))
    return kept


def comparison_table(metrics: Mapping[str, Any]) -> dg.TableMetadataValue | None:
    """The bench's comparisons as a table the UI renders: one row per pair, figures rounded to
    the digits that mean something, columns that are empty or repeat another left out."""
    rows = [r for r in comparison_rows(metrics.get("bench")) if not r.reference_only]
    if not rows:
        return None
    return _table([_comparison_record(row) for row in rows], COMPARISON_COLUMNS)


def _table(
    records: list[dict[str, Any]], columns: tuple[tuple[str, str], ...]
) -> dg.TableMetadataValue:
    kept = _informative_columns(records, columns)
    schema = dg.TableSchema(columns=[dg.TableColumn(n, t) for n, t in kept])
    return dg.MetadataValue.table(
        records=[dg.TableRecord({n: r[n] for n, _ in kept}) for r in records], schema=schema
    )


QUALITY_COLUMNS = (
    ("target", "string"),
    ("kind", "string"),
    ("verdict", "string"),
    ("severity", "string"),
    ("estimate", "float"),
    ("ci_low", "float"),
    ("ci_high", "float"),
    ("p_value", "float"),
    ("detail", "string"),
)


def quality_table(verdicts: list[Mapping[str, Any]]) -> dg.TableMetadataValue:
    """Each quality target's verdict as a row (the checks hold the same, one per check)."""
    records = [
        {
            "target": str(v.get("name", "")),
            "kind": str(v.get("kind", "")),
            "verdict": "pass" if v.get("passed") else "fail",
            "severity": str(v.get("severity", "")),
            "estimate": significant(v.get("estimate")),
            "ci_low": significant(v.get("ci_low")),
            "ci_high": significant(v.get("ci_high")),
            "p_value": significant(v.get("p_value"), P_DIGITS),
            "detail": str(v.get("message", ""))[:500],
        }
        for v in verdicts
    ]
    return _table(records, QUALITY_COLUMNS)


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
    check: dg.AssetCheckSpec, verdict: Mapping[str, Any], extra: Mapping[str, Any] | None = None
) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=check.asset_key,
        check_name=check.name,
        passed=bool(verdict.get("passed")),
        metadata={**_verdict_metadata(verdict), **(extra or {})},
        severity=_severity(verdict.get("severity")),
    )


def recheck_latest(
    instance: dg.DagsterInstance,
    experiment: Experiment,
    key: dg.AssetCheckKey,
    resource: CrucibleResource,
    translator: CrucibleTranslator,
) -> dg.AssetCheckResult:
    """A check executed alone: today's target (or gate) on the run that made the report's
    latest materialization, from what its run directory recorded; the experiment does not run
    again. A report never materialized, or a record that cannot be read, fails the check saying
    so."""
    name = next((n for n, s in _check_specs(experiment, translator).items() if s.key == key), None)
    event = instance.get_latest_materialization_event(key.asset_key)
    recorded = event.asset_materialization if event is not None else None
    run_id = recorded.metadata.get("crucible/run_id") if recorded is not None else None
    shown_key = key.asset_key.to_user_string()
    if name is None or recorded is None or not isinstance(run_id, dg.TextMetadataValue):
        return not_checked(
            key,
            f"{shown_key} has no materialization with a crucible run to "
            "check yet: materialize the report (or run its job) first",
        )
    try:
        run_dir = run_directory(resource.artifacts_root(), experiment.id, str(run_id.value))
        verdict = recheck_run(experiment, run_dir)[name]
    except (RecordError, RunDirectoryError) as exc:
        return not_checked(
            key,
            f"the run {run_id.value!r} of {shown_key}'s latest "
            f"materialization cannot be checked: {exc}",
        )
    metadata = {
        **_verdict_metadata(verdict.to_dict()),
        "crucible/run_id": str(run_id.value),
        "crucible/rechecked": True,
    }
    return dg.AssetCheckResult(
        asset_key=key.asset_key,
        check_name=key.name,
        passed=verdict.passed,
        metadata=metadata,
        severity=_severity(verdict.severity),
    )


def not_checked(key: dg.AssetCheckKey, reason: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=key.asset_key,
        check_name=key.name,
        passed=False,
        metadata={"verdict": "fail", "detail": dg.MetadataValue.text(reason)},
        severity=dg.AssetCheckSeverity.WARN,
        description=reason,
    )


def _severity(severity: Any) -> dg.AssetCheckSeverity:
    return dg.AssetCheckSeverity.ERROR if severity == "error" else dg.AssetCheckSeverity.WARN


def report_events(
    before: Context, after: Context, experiment: Experiment, translator: CrucibleTranslator
) -> Iterator[Any]:
    """Materializations for the reports this stage produced, then one check evaluation per target."""
    produced = False
    for materialization in report_materializations(before, after, experiment, translator):
        produced = True
        yield materialization
    if produced:
        yield from check_evaluations(after.metrics, experiment, translator)


def report_materializations(
    before: Context, after: Context, experiment: Experiment, translator: CrucibleTranslator
) -> Iterator[dg.AssetMaterialization]:
    """One materialization per report this stage produced (``after``'s reports past
    ``before``'s), with its preview, tables, headline figures and file paths."""
    new_outputs = after.outputs[len(before.outputs) :]
    specs = {o.name: o for o in experiment.outputs}
    verdicts = _verdicts(after.metrics)
    for item in new_outputs:
        if not (
            isinstance(item, Mapping) and item.get("kind") == "report" and item.get("name") in specs
        ):
            continue
        metadata: dict[str, Any] = {"crucible/run_id": after.run_id}
        for rendered in item.get("rendered", []):
            path = rendered.get("path")
            if not path:
                continue
            metadata[f"path/{rendered['format']}"] = dg.MetadataValue.path(path)
        metadata["preview"] = dg.MetadataValue.md(_preview(after))
        table = comparison_table(after.metrics)
        if table is not None:
            metadata["comparisons"] = table
        if verdicts:
            metadata["quality_targets"] = quality_table(verdicts)
        metadata.update(headline_metadata(after.metrics, experiment))
        yield dg.AssetMaterialization(
            asset_key=translator.get_asset_spec(experiment, specs[item["name"]]).key,
            metadata=metadata,
        )


def _verdicts(metrics: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [v for v in (metrics.get(METRIC_KEY) or []) if isinstance(v, Mapping)]


def check_evaluations(
    metrics: Mapping[str, Any], experiment: Experiment, translator: CrucibleTranslator
) -> Iterator[dg.AssetCheckEvaluation]:
    """One evaluation per verdict a declared check has (the report stage's, in ``metrics``)."""
    checks = _check_specs(experiment, translator)
    if not checks:
        return
    gate = metrics.get(GATE_METRIC) or {}
    for verdict in _verdicts(metrics):
        check = checks.get(str(verdict.get("name")))
        if check is None:  # a verdict no check is declared for
            continue
        extra = (
            {"baseline_run_id": str(gate.get("baseline_run_id")), "outcome": gate.get("outcome")}
            if verdict.get("name") == GATE_NAME
            else {}
        )
        yield _evaluation(check, verdict, extra)


def quality_check_specs(
    experiment: Experiment, translator: CrucibleTranslator
) -> list[dg.AssetCheckSpec]:
    """Each quality target, and the regression gate, declared once as a check on the first
    file report; the report stage evaluates them in the same run, in the job or the asset."""
    return list(_check_specs(experiment, translator).values())


def _check_specs(
    experiment: Experiment, translator: CrucibleTranslator
) -> dict[str, dg.AssetCheckSpec]:
    """The declared checks by the name their verdicts carry (a target's name, the gate's), so
    an evaluation follows a spec the translator renamed or moved to another asset."""
    checks: list[QualityTarget | RegressionBaseline] = list(targets_of(experiment))
    if experiment.regression_baseline is not None:
        checks.append(experiment.regression_baseline)
    specs: dict[str, dg.AssetCheckSpec] = {}
    for check in checks:
        spec = translator.get_asset_check_spec(experiment, check)
        if spec is not None:
            specs[check.name if isinstance(check, QualityTarget) else GATE_NAME] = spec
    return specs
