"""Sweeps: every grid point x seed as a trial, then one statistical comparison of the configurations.

``run_trial`` is the one way a trial runs (the standalone sweep and the Dagster trial op
both call it), and ``compare_trials`` the one way trials are compared, so
``crucible run`` and ``dagster job execute`` give the same numbers.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crucible_dagster.core.grid import Trial, expand_grid
from crucible_dagster.core.ir import Experiment
from crucible_dagster.core.jsonsafe import to_jsonable
from crucible_dagster.core.quality import metric_at
from crucible_dagster.core.registry import Registry
from crucible_dagster.core.rundir import RunDirectory, artifacts_root
from crucible_dagster.core.runner import RunResult, run
from crucible_dagster.core.telemetry import Sink


@dataclass
class TrialOutcome:
    trial: Trial
    status: str
    metrics: dict[str, Any]
    run_dir: str | None = None
    failure: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(
            {
                "trial": self.trial.to_dict(),
                "status": self.status,
                "metrics": self.metrics,
                "run_dir": self.run_dir,
                "failure": self.failure,
            }
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialOutcome:
        return cls(
            Trial.from_dict(dict(data["trial"])),
            data["status"],
            dict(data["metrics"]),
            data.get("run_dir"),
            data.get("failure"),
        )


def run_trial(
    experiment: Experiment,
    trial: Trial,
    *,
    run_dir: str | Path,
    run_id: str,
    registry: Registry | None = None,
    sinks: Iterable[Sink] = (),
    orchestrator: str = "standalone",
) -> tuple[TrialOutcome, RunResult]:
    """Run every stage for one trial, with ``ctx.params`` = the grid point and the trial seed."""
    seeded = (
        experiment.model_copy(update={"seed": trial.seed}) if trial.seed is not None else experiment
    )
    result = run(
        seeded,
        run_id=run_id,
        params=trial.stage_params,
        registry=registry,
        run_dir=run_dir,
        sinks=sinks,
        orchestrator=orchestrator,
    )
    outcome = TrialOutcome(
        trial,
        result.status,
        to_jsonable(dict(result.context.metrics)),
        result.run_dir,
        result.failure.to_dict() if result.failure else None,
    )
    return outcome, result


# --- comparison ---------------------------------------------------------------------------------


def _trial_values(metrics: Mapping[str, Any], path: str) -> list[float]:
    value = metric_at(metrics, path)
    values = value if isinstance(value, list) else [value]
    numbers = [
        float(v)
        for v in values
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    ]
    if not numbers:
        raise ValueError(f"metric {path!r} is not a number or a list of numbers")
    return numbers


def variance_components(matrix: np.ndarray) -> dict[str, float]:
    """Two-way decomposition (configurations x seeds, no interaction) of the trial means."""
    k, s = matrix.shape
    grand = float(matrix.mean())
    ss_config = float(s * np.sum((matrix.mean(axis=1) - grand) ** 2))
    ss_seed = float(k * np.sum((matrix.mean(axis=0) - grand) ** 2))
    ss_total = float(np.sum((matrix - grand) ** 2))
    ss_residual = max(ss_total - ss_config - ss_seed, 0.0)
    share = (lambda x: x / ss_total) if ss_total > 0 else (lambda x: math.nan)
    return {
        "ss_configurations": ss_config,
        "ss_seeds": ss_seed,
        "ss_residual": ss_residual,
        "ss_total": ss_total,
        "share_configurations": share(ss_config),
        "share_seeds": share(ss_seed),
        "share_residual": share(ss_residual),
    }


def critical_difference(k: int, n: int, alpha: float) -> float:
    """Nemenyi's critical difference of mean ranks (Demšar 2006): q_α √(k(k+1)/(6n))."""
    from scipy import stats

    if k < 2 or n < 1:
        return math.nan
    q = float(stats.studentized_range.ppf(1 - alpha, k, np.inf)) / math.sqrt(2)
    return q * math.sqrt(k * (k + 1) / (6 * n))


def _verdict_text(significant: bool, row: Mapping[str, Any] | None) -> str:
    p = row.get("p_adjusted") if row else None
    if row is None:
        return "no test compared it with the runner-up"
    if not (isinstance(p, float) and math.isfinite(p)):
        return f"the test could not tell them apart ({row.get('reason') or 'undefined result'})"
    if significant:
        return f"the difference is significant ({row['test']}, adjusted p = {p:.3g})"
    return f"the difference from the runner-up is not significant ({row['test']}, adjusted p = {p:.3g})"


def compare_trials(experiment: Experiment, outcomes: Sequence[TrialOutcome]) -> dict[str, Any]:
    """Per-configuration summaries, the omnibus and pairwise tests, the best configuration, variance shares."""
    from crucible_dagster.bench.compare import (
        ComparisonSettings,
        Design,
        compare_groups,
        describe_sample,
    )

    sweep = experiment.sweep
    failed = [o.trial.trial_id for o in outcomes if o.status != "completed"]
    result: dict[str, Any] = {
        "trials": len(outcomes),
        "failed_trials": failed,
        "metric": sweep.metric if sweep else None,
    }
    if sweep is None:
        result["reason"] = "no sweep.metric in the experiment: trials ran, nothing to compare"
        return to_jsonable(result)
    configs: dict[str, dict[int | None, list[float]]] = {}
    params: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for outcome in outcomes:
        if outcome.status != "completed":
            continue
        try:
            values = _trial_values(outcome.metrics, sweep.metric)
        except (KeyError, ValueError) as exc:
            problems.append(f"{outcome.trial.trial_id}: {exc}")
            continue
        configs.setdefault(outcome.trial.config_id, {})[outcome.trial.seed] = values
        params[outcome.trial.config_id] = outcome.trial.params
    order = list(dict.fromkeys(t.config_id for t in expand_grid(experiment)))
    names = [c for c in order if c in configs]
    result["problems"] = problems
    sign = 1.0 if sweep.direction == "maximize" else -1.0
    summary = {}
    for name in names:
        every = [v for seed_values in configs[name].values() for v in seed_values]
        per_seed = [float(np.mean(v)) for v in configs[name].values()]
        summary[name] = {
            **describe_sample(np.asarray(every), 1 - sweep.alpha),
            "params": params[name],
            "seeds": len(per_seed),
            "per_seed_means": per_seed,
        }
    result["configurations"] = summary
    if len(names) < 2:
        result["reason"] = "fewer than two configurations completed: nothing to compare"
        return to_jsonable(result)
    seeds = sorted({s for c in names for s in configs[c]}, key=lambda s: (s is None, s))
    complete = [s for s in seeds if all(s in configs[c] for c in names)]
    fold_counts = {len(configs[c][s]) for c in names for s in complete}
    if len(complete) >= 2:
        groups = {c: [float(np.mean(configs[c][s])) for s in complete] for c in names}
        blocks = f"{len(complete)} seeds (trial means over folds)"
    elif len(complete) == 1 and len(fold_counts) == 1 and fold_counts.pop() >= 2:
        groups = {c: configs[c][complete[0]] for c in names}
        blocks = f"{len(groups[names[0]])} folds of one seed"
    else:
        groups = {c: [v for s in configs[c] for v in configs[c][s]] for c in names}
        blocks = "none (configurations do not share seeds)"
    design: Design = "blocked" if not blocks.startswith("none") else "independent"
    if design == "blocked" and len(names) == 2:
        design = "paired"
    settings = ComparisonSettings(
        design=design,
        alpha=sweep.alpha,
        confidence_level=1 - sweep.alpha,
        correction=sweep.correction,
        control=sweep.control,
        seed=experiment.seed,
    )
    comparison = compare_groups(groups, settings).to_dict()
    result["comparison"] = comparison
    result["blocks"] = blocks
    ranked = sorted(names, key=lambda c: sign * summary[c]["mean"], reverse=True)
    best, runner_up = ranked[0], ranked[1]
    row = next(
        (
            r
            for r in comparison["comparisons"]
            if {r["group_a"], r["group_b"]} == {best, runner_up} and not r.get("reference_only")
        ),
        None,
    )
    significant = bool(row and row.get("significant"))
    result["best"] = {
        "configuration": best,
        "params": params[best],
        "mean": summary[best]["mean"],
        "runner_up": runner_up,
        "runner_up_mean": summary[runner_up]["mean"],
        "significantly_better": significant,
        "p_adjusted": row.get("p_adjusted") if row else None,
        "test": row.get("test") if row else None,
        "statement": (
            f"{best} is the best configuration ({sweep.direction} {sweep.metric}: {summary[best]['mean']:.4g} vs {summary[runner_up]['mean']:.4g} for {runner_up}); "
            + _verdict_text(significant, row)
        ),
    }
    if len(complete) >= 2:
        matrix = np.array([[float(np.mean(configs[c][s])) for s in complete] for c in names])
        result["variance"] = variance_components(matrix)
    omnibus = comparison.get("omnibus") or []
    friedman_row = next((o for o in omnibus if o.get("test") == "friedman"), None)
    if friedman_row and friedman_row.get("mean_ranks"):
        k = len(names)
        mean_ranks = friedman_row["mean_ranks"]
        # rank 1 = best: Friedman ranks values ascending, so flip when larger is better
        best_first = [(k + 1 - r) if sweep.direction == "maximize" else r for r in mean_ranks]
        result["critical_difference"] = {
            "mean_ranks": dict(zip(names, best_first, strict=True)),
            "cd": critical_difference(k, len(groups[names[0]]), sweep.alpha),
            "alpha": sweep.alpha,
        }
    return to_jsonable(result)


# --- standalone sweep ---------------------------------------------------------------------------


@dataclass
class SweepResult:
    sweep_id: str
    run_dir: str
    outcomes: list[TrialOutcome] = field(default_factory=list)
    comparison: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(o.status == "completed" for o in self.outcomes)


def trial_run_dir(base: Path, trial: Trial) -> Path:
    return base / "trials" / trial.trial_id


def run_sweep(
    experiment: Experiment,
    *,
    run_id: str | None = None,
    registry: Registry | None = None,
    artifacts: str | None = None,
    progress: Callable[[int, int, TrialOutcome], None] | None = None,
    sinks: Iterable[Sink] = (),
) -> SweepResult:
    """Every trial in turn (a failed trial is recorded and the sweep goes on), then the comparison and reports."""
    from crucible_dagster.report.sweep import write_sweep_reports

    sweep_id = run_id or str(uuid.uuid4())
    base = artifacts_root(artifacts) / experiment.id / sweep_id
    manifest = RunDirectory.at_path(base)
    trials = expand_grid(experiment)
    manifest.start(
        experiment,
        run_id=sweep_id,
        params={},
        seed=experiment.seed,
        orchestrator="standalone",
        trials=[t.to_dict() for t in trials],
    )
    outcomes = []
    for index, trial in enumerate(trials, start=1):
        outcome, _ = run_trial(
            experiment,
            trial,
            run_dir=trial_run_dir(base, trial),
            run_id=f"{sweep_id}.{trial.trial_id}",
            registry=registry,
            sinks=sinks,
        )
        outcomes.append(outcome)
        manifest.record_stage(f"trial:{trial.trial_id}", outcome.status)
        manifest.write_manifest()
        if progress is not None:
            progress(index, len(trials), outcome)
    comparison = compare_trials(experiment, outcomes)
    write_sweep_reports(experiment, comparison, base, sweep_id)
    status = "completed" if all(o.status == "completed" for o in outcomes) else "failed"
    manifest.finish(status, {"sweep": comparison})
    return SweepResult(sweep_id, str(base), outcomes, comparison)
