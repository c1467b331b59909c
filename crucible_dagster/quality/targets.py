"""Quality targets: pass/fail verdicts on a run's results, with the numbers behind each verdict.

``threshold``: a metric (dotted path into ``metrics``) compared with a value.
``superiority``: the CI of ``treatment − baseline`` (from the bench comparisons) lies above ``margin``.
``non_inferiority``: that CI's lower bound lies above ``−margin``.
``equivalence``: that CI lies inside ``(−margin, margin)``: two one-sided tests (TOST), each
at α = (1 − confidence level) / 2, so the bench's 95% CI gives TOST at α = 0.025.
Verdicts land in ``metrics["quality_targets"]``; under Dagster each is an asset check on the report.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from crucible_dagster.bench.rows import ComparisonRow, comparison_rows
from crucible_dagster.experiment.ir import Experiment, QualityTarget
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.metrics import QUALITY_TARGETS_KEY, finite_number, metric_at
from crucible_dagster.runtime.stage import reliability_setting

OPERATORS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
#: where the verdicts sit in a run's metrics (the runtime reads them there too)
METRIC_KEY = QUALITY_TARGETS_KEY


@dataclass(frozen=True)
class Verdict:
    name: str
    kind: str
    passed: bool
    severity: str
    fail_run: bool
    message: str
    estimate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    test: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _comparison(
    metrics: Mapping[str, Any], treatment: str, baseline: str
) -> tuple[ComparisonRow, float] | None:
    """The primary bench row for treatment vs baseline, and the sign that makes it treatment − baseline."""
    for row in comparison_rows(metrics.get("bench")):
        if row.reference_only or not row.has_ci or not row.compares(treatment, baseline):
            continue
        return row, 1.0 if row.group_a == treatment else -1.0
    return None


def _verdict(target: QualityTarget, passed: bool, message: str, **numbers: Any) -> Verdict:
    return Verdict(
        target.name, target.kind, passed, target.severity, target.fail_run, message, **numbers
    )


def _threshold_verdict(target: QualityTarget, metrics: Mapping[str, Any]) -> Verdict:
    """A metric against a value; a metric not produced, or not a finite number, fails."""
    assert target.metric is not None and target.value is not None
    try:
        value = finite_number(metric_at(metrics, target.metric))
    except KeyError:
        return _verdict(target, False, f"metric {target.metric!r} was not produced by this run")
    evidence = _monitoring_evidence(metrics, target.metric)
    if value is None:
        return _verdict(target, False, f"metric {target.metric!r} is not a finite number{evidence}")
    passed = OPERATORS[target.op](value, target.value)
    return _verdict(
        target,
        passed,
        f"{target.metric} = {value:.6g} {'meets' if passed else 'misses'} {target.op} "
        f"{target.value:g}{evidence}",
        estimate=value,
    )


def _monitoring_evidence(metrics: Mapping[str, Any], metric: str) -> str:
    """What a monitoring figure was computed over (or why it is missing), for its verdict."""
    found = metrics.get("monitoring")
    if not metric.startswith("monitoring.") or not isinstance(found, Mapping):
        return ""
    reason = (found.get("reasons") or {}).get(metric.removeprefix("monitoring."))
    runs = [str(r) for r in found.get("runs") or []]
    shown = ", ".join(runs[:5]) + (f" and {len(runs) - 5} more" if len(runs) > 5 else "")
    return f": {reason}" if reason else f" over {found.get('requests', 0):g} requests of {shown}"


def _interval_verdict(target: QualityTarget, numbers: dict[str, Any]) -> Verdict:
    """Equivalence, superiority or non-inferiority read off the CI of treatment − baseline."""
    estimate, low, high = numbers["estimate"], numbers["ci_low"], numbers["ci_high"]
    if target.kind == "equivalence":
        passed = -target.margin < low and high < target.margin
        message = (
            f"{target.treatment} - {target.baseline} = {estimate:.4g}, CI [{low:.4g}, {high:.4g}] "
            f"{'inside' if passed else 'not inside'} (-{target.margin:g}, {target.margin:g}): "
            f"{target.treatment} is {'' if passed else 'not shown '}equivalent to "
            f"{target.baseline} (TOST)"
        )
        return _verdict(target, passed, message, **numbers)
    bound = target.margin if target.kind == "superiority" else -target.margin
    passed = low > bound
    claim = "superior to" if target.kind == "superiority" else "non-inferior to"
    message = (
        f"{target.treatment} - {target.baseline} = {estimate:.4g}, CI [{low:.4g}, {high:.4g}]; lower bound "
        f"{'above' if passed else 'not above'} {bound:g}: "
        f"{target.treatment} is {'' if passed else 'not shown '}{claim} {target.baseline}"
    )
    return _verdict(target, passed, message, **numbers)


def evaluate_target(target: QualityTarget, metrics: Mapping[str, Any]) -> Verdict:
    if target.kind == "threshold":
        return _threshold_verdict(target, metrics)
    assert target.treatment is not None and target.baseline is not None
    found = _comparison(metrics, target.treatment, target.baseline)
    if found is None:
        return _verdict(
            target,
            False,
            f"no bench comparison of {target.treatment!r} with {target.baseline!r} with a "
            "confidence interval; add a bench stage that compares them",
        )
    row, sign = found
    estimate, low, high = (finite_number(v) for v in (row.estimate, row.ci_low, row.ci_high))
    if estimate is None or low is None or high is None:
        return _verdict(
            target,
            False,
            f"the comparison has no defined estimate and CI ({row.reason or 'undefined'})",
            test=row.test,
        )
    estimate, low, high = (estimate * sign, *sorted((low * sign, high * sign)))
    numbers = {
        "estimate": estimate,
        "ci_low": low,
        "ci_high": high,
        "p_value": finite_number(row.p_value),
        "test": row.test,
    }
    return _interval_verdict(target, numbers)


def targets_of(experiment: Experiment) -> list[QualityTarget]:
    """The experiment's quality targets, and one per limit of ``reliability.monitoring``
    (``monitoring_<limit>``: the metric ``monitoring.<limit>`` at most the limit)."""
    monitoring = reliability_setting(experiment, "monitoring")
    if monitoring is None:
        return list(experiment.quality_targets)
    return list(experiment.quality_targets) + [
        QualityTarget(
            name=f"monitoring_{field}",
            metric=f"monitoring.{field}",
            op="<=",
            value=limit,
            severity=monitoring.severity,
        )
        for field, limit in monitoring.limits().items()
    ]


def evaluate_targets(ctx: Context) -> list[Verdict]:
    targets = targets_of(ctx.experiment) if ctx.experiment else []
    return [evaluate_target(t, ctx.metrics) for t in targets]
