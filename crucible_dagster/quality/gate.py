"""The regression gate: this run against a baseline run, paired on the units both scored.

The paired test is chosen as the bench chooses it (the corrected resampled t for
cross-validation folds, else the paired t or Wilcoxon by Shapiro-Wilk of the differences),
with its decision record. Non-inferiority tests H0: difference ≤ −margin, superiority H0:
difference ≤ margin (one-sided, at ``alpha``); equivalence is TOST, the larger of the two
one-sided p-values at ±margin. The interval is the 1 − 2α CI of the difference
(this run − baseline, in the direction where higher is better).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from crucible_dagster.experiment.ir import RegressionBaseline
from crucible_dagster.quality.targets import Verdict
from crucible_dagster.run_history.records import (
    RecordError,
    RunRead,
    current_baseline,
    read_run,
    scan_runs,
)
from crucible_dagster.run_history.scores import metric_units
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.run_record import (
    MANIFEST,
    RUN_ID_PATTERN,
    RunDirectoryError,
    check_run_id,
)

GATE_NAME = "no_regression"
GATE_METRIC = "regression_gate"


@dataclass
class GateResult:
    outcome: str  #: pass, fail, no_baseline, not_comparable
    message: str
    baseline_run_id: str | None = None
    test: str | None = None
    estimate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    n_units: int = 0
    decisions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.outcome in ("pass", "no_baseline")


def choose_baseline(gate: RegressionBaseline, experiment_dir: Path, run_id: str) -> str | None:
    """The baseline's run id, or None when there is none yet; ``RecordError`` when the record
    that names it cannot be used (a torn or foreign last line of ``baselines.jsonl``)."""
    if gate.policy == "run":
        return gate.run
    if gate.policy == "last_accepted":
        found = current_baseline(experiment_dir)
        return found.run_id if found else None
    completed = [
        (read.manifest.ended_at or datetime.min.replace(tzinfo=timezone.utc), read.manifest.run_id)
        for read in scan_runs(experiment_dir)[0]
        if read.manifest.run_id != run_id and read.manifest.status == "completed"
    ]
    return max(completed)[1] if completed else None


def read_baseline(ctx: Context, experiment_dir: Path, baseline_id: str) -> RunRead:
    """The baseline run, checked: a run id (never a path), a folder of this experiment under
    the root (no symlink out), a manifest that matches it, and a completed run."""
    try:
        check_run_id(baseline_id)
    except RunDirectoryError as exc:
        raise RecordError(experiment_dir, "baseline run id", "a run id", str(exc)) from None
    folder = experiment_dir / baseline_id
    if folder.is_symlink() or folder.resolve().parent != experiment_dir.resolve():
        raise RecordError(folder, "folder", "a run folder of this experiment", "a symlink")
    read = read_run(folder)
    ours = ctx.experiment.id if ctx.experiment else experiment_dir.name
    if read.manifest.experiment_id != ours:
        found = f"{read.manifest.experiment_id!r} (another experiment's run)"
        raise RecordError(folder / MANIFEST, "experiment_id", repr(ours), found)
    if read.manifest.status != "completed":
        found = repr(read.manifest.status)
        raise RecordError(folder / MANIFEST, "status", "'completed' for a baseline", found)
    return read


def _not_comparable(
    ctx: Context, baseline: Mapping[str, Any], here: dict, there: dict
) -> str | None:
    """Why the two runs' units are not the same units, or None."""
    if baseline.get("seed") != (ctx.experiment.seed if ctx.experiment else None):
        return (
            f"the baseline ran with seed {baseline.get('seed')!r} and this run with "
            f"{ctx.experiment.seed if ctx.experiment else None!r}: different folds or samples"
        )
    ours = ctx.assigns.get("data_fingerprints") or {}
    theirs = baseline.get("data_fingerprints") or {}
    changed = sorted(k for k in set(ours) & set(theirs) if ours[k] != theirs[k])
    if changed:
        return f"the data changed since the baseline (fingerprint of {', '.join(changed)} differs)"
    if not here:
        return "this run has no scores for the gate's metric"
    if not there:
        return "the baseline run has no scores for the gate's metric"
    if set(here) != set(there):
        only_here, only_there = len(set(here) - set(there)), len(set(there) - set(here))
        return (
            f"the runs scored different units ({only_here} only in this run, {only_there} only "
            "in the baseline)"
        )
    if len(here) < 2:
        return "fewer than 2 shared units: nothing to test"
    return None


def evaluate_gate(ctx: Context, gate: RegressionBaseline) -> GateResult:
    if not ctx.run_dir:
        return GateResult("no_baseline", "this run keeps no run directory: no history to compare")
    budget = ctx.metrics.get("budget")
    if isinstance(budget, Mapping) and budget.get("exhausted") is True:
        return GateResult(
            "not_comparable",
            f"not compared: the run's budget ran out ({budget.get('reason')}) before every "
            "sample was asked; a partial run is not judged against a baseline",
        )
    run_dir = Path(ctx.run_dir)
    try:
        baseline_id = choose_baseline(gate, run_dir.parent, ctx.run_id)
    except RecordError as exc:
        return GateResult("not_comparable", f"not compared: the baseline record: {exc}")
    if baseline_id is None:
        what = "accepted" if gate.policy == "last_accepted" else "completed"
        return GateResult("no_baseline", f"no baseline yet: no earlier {what} run to compare with")
    if baseline_id == ctx.run_id:
        return GateResult(
            "no_baseline", "this run is the baseline the gate names: nothing to compare"
        )
    shown_id = baseline_id if RUN_ID_PATTERN.fullmatch(baseline_id) else None
    try:
        here = metric_units(gate.metric, run_dir, ctx.metrics)
    except RecordError as exc:
        return GateResult("not_comparable", f"not compared: this run: {exc}", shown_id)
    try:
        baseline = read_baseline(ctx, run_dir.parent, baseline_id)
        there = metric_units(gate.metric, baseline.run_dir, baseline.raw.get("metrics"))
    except RecordError as exc:
        return GateResult("not_comparable", f"not compared: baseline: {exc}", shown_id)
    reason = _not_comparable(ctx, baseline.raw, here, there)
    if reason is not None:
        return GateResult("not_comparable", f"not compared: {reason}", baseline_id)
    design = ctx.assigns.get("cv_design") if gate.metric.startswith("scores:") else None
    return compare_units(gate, baseline_id, here, there, design)


def compare_units(
    gate: RegressionBaseline,
    baseline_id: str,
    here: dict[str, float],
    there: dict[str, float],
    design: Mapping[str, Any] | None = None,
) -> GateResult:
    """The gate's test of ``here`` against ``there``, paired by unit (both must score the same
    units); ``design``: cross-validation's n_train and n_test, for the corrected t."""
    import numpy as np

    from crucible_dagster.bench.data import essentially_constant
    from crucible_dagster.bench.pairwise import run_pairwise
    from crucible_dagster.bench.selection import choose_pairwise_test
    from crucible_dagster.bench.settings import ComparisonSettings

    units = sorted(here)
    sign = 1.0 if gate.higher_is_better else -1.0
    x = sign * np.array([here[u] for u in units])
    y = sign * np.array([there[u] for u in units])
    settings = ComparisonSettings(
        design="paired",
        alpha=gate.alpha,
        confidence_level=1 - 2 * gate.alpha,
        n_train=(design or {}).get("n_train"),
        n_test=(design or {}).get("n_test"),
    )
    decisions: list[Any] = []
    test = choose_pairwise_test("this run", "baseline", x, y, settings, decisions)
    chosen = [decision.to_dict() for decision in decisions]
    if test == "mcnemar":  # 0/1 per unit: McNemar is two-sided and takes no margin
        test = "paired_ttest"
        chosen.append({"chose": test, "because": "McNemar's test has no one-sided form with a "
                       "margin: the gate tests the mean paired difference of the 0/1 outcomes "
                       "(the paired t, a Wald test of the difference of paired proportions)"})  # fmt: skip
    d = x - y
    base = GateResult("pass", "", baseline_id, test, n_units=len(units), decisions=chosen)
    if essentially_constant(float(np.std(d)), *(float(v) for v in (x.mean(), y.mean()))):
        return _decide_exactly(gate, replace(base, estimate=float(d.mean())))
    centre = run_pairwise(test, x, y, settings)
    p = _one_sided_p(gate, test, x, y, settings)
    ci = centre.ci or (math.nan, math.nan)
    result = replace(base, estimate=float(d.mean()), ci_low=ci[0], ci_high=ci[1], p_value=p)
    passed = math.isfinite(p) and p < gate.alpha
    return replace(
        result, outcome="pass" if passed else "fail", message=_message(gate, result, passed)
    )


def _one_sided_p(gate: RegressionBaseline, test: str, x: Any, y: Any, settings: Any) -> float:
    from crucible_dagster.bench.pairwise import run_pairwise

    def shifted(by: float, alternative: str) -> float:
        return run_pairwise(test, x - by, y, replace(settings, alternative=alternative)).p_value

    if gate.kind == "non_inferiority":
        return shifted(-gate.margin, "greater")
    if gate.kind == "superiority":
        return shifted(gate.margin, "greater")
    return max(shifted(-gate.margin, "greater"), shifted(gate.margin, "less"))


def _decide_exactly(gate: RegressionBaseline, result: GateResult) -> GateResult:
    """Every unit differs by the same amount (often: identical scores): no test is needed."""
    d = result.estimate or 0.0
    if gate.kind == "non_inferiority":
        passed = d > -gate.margin or (gate.margin == 0 and d == 0)
    elif gate.kind == "superiority":
        passed = d > gate.margin
    else:
        passed = -gate.margin < d < gate.margin
    message = (
        f"this run - baseline {result.baseline_run_id} = {d:.4g} on every one of "
        f"{result.n_units} units (no variation to test): "
        f"{'no regression' if passed else 'regression'} ({gate.kind}, margin {gate.margin:g})"
    )
    return replace(
        result,
        outcome="pass" if passed else "fail",
        message=message,
        ci_low=d,
        ci_high=d,
        test=None,
    )


def _message(gate: RegressionBaseline, result: GateResult, passed: bool) -> str:
    m = f"{gate.margin:g}"
    verdict = {
        ("non_inferiority", True): f"no regression: not worse than the baseline by more than {m}",
        ("non_inferiority", False): (
            f"regression: cannot rule out that it is worse than the baseline by more than {m}"
        ),
        ("superiority", True): f"better than the baseline by more than {m}",
        ("superiority", False): f"not shown better than the baseline by more than {m}",
        ("equivalence", True): f"within ±{m} of the baseline (TOST)",
        ("equivalence", False): f"not shown within ±{m} of the baseline (TOST)",
    }[(gate.kind, passed)]
    return (
        f"this run - baseline {result.baseline_run_id} = {result.estimate:.4g}, "
        f"{100 * (1 - 2 * gate.alpha):g}% CI [{result.ci_low:.4g}, {result.ci_high:.4g}], "
        f"p = {result.p_value:.3g} ({result.test}, {result.n_units} paired units): {verdict}"
    )


def gate_verdict(gate: RegressionBaseline, result: GateResult) -> Verdict:
    """The gate as a quality-target verdict (an asset check under Dagster): a visible
    'no baseline yet' passes; a regression, or a baseline it could not compare with (foreign,
    missing, unreadable, other units), fails the run when the gate says ``fail_run``."""
    failing = gate.fail_run and result.outcome in ("fail", "not_comparable")
    return Verdict(
        GATE_NAME,
        f"regression_{gate.kind}",
        result.passed,
        "error" if failing else "warn",
        failing,
        f"{result.outcome}: {result.message}",
        estimate=result.estimate,
        ci_low=result.ci_low,
        ci_high=result.ci_high,
        p_value=result.p_value,
        test=result.test,
    )


def gate_metrics(gate: RegressionBaseline, result: GateResult) -> dict[str, Any]:
    return {
        "outcome": result.outcome,
        "message": result.message,
        "baseline_run_id": result.baseline_run_id,
        "policy": gate.policy,
        "metric": gate.metric,
        "kind": gate.kind,
        "margin": gate.margin,
        "alpha": gate.alpha,
        "test": result.test,
        "estimate": result.estimate,
        "ci_low": result.ci_low,
        "ci_high": result.ci_high,
        "p_value": result.p_value,
        "n_units": result.n_units,
        "decisions": result.decisions,
    }
