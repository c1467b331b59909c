"""One statistical comparison of a sweep's configurations: per sample when they share samples.

``compare_trials`` is the one way trials are compared, so ``crucible run`` and
``dagster job execute`` give the same numbers. The statistics live in ``bench``. When the
trials carry per-sample scores of the same samples (``sweeps.paired_blocks``), the
configurations are compared sample by sample, blocked by sample and seed; otherwise over
per-seed means (and folds). ``result["design"]`` says which, and why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from crucible_dagster.bench.blocking import (
    Blocks,
    block_replicates,
    critical_difference,
    variance_components,
)
from crucible_dagster.bench.rows import ComparisonRow, comparison_rows, omnibus_rows
from crucible_dagster.bench.settings import Design
from crucible_dagster.common.jsonsafe import to_jsonable
from crucible_dagster.experiment.ir import Experiment, SweepConfig
from crucible_dagster.runtime.metrics import numbers_at
from crucible_dagster.sweeps.grid import expand_grid
from crucible_dagster.sweeps.paired_blocks import PairedDesign, paired_design
from crucible_dagster.sweeps.per_sample import score_column
from crucible_dagster.sweeps.running import TrialOutcome


def compare_trials(experiment: Experiment, outcomes: Sequence[TrialOutcome]) -> dict[str, Any]:
    """Per-configuration summaries, the omnibus and pairwise tests, the best configuration, variance shares."""
    sweep = experiment.sweep
    result: dict[str, Any] = {
        "trials": len(outcomes),
        "failed_trials": [
            o.trial.trial_id for o in outcomes if o.status not in ("completed", "budget_exhausted")
        ],
        # every stage ran but the sweep's budget stopped their calls: partial, not compared
        "budget_exhausted_trials": [
            o.trial.trial_id for o in outcomes if o.status == "budget_exhausted"
        ],
        "metric": sweep.metric if sweep else None,
    }
    if sweep is None:
        result["reason"] = "no sweep.metric in the experiment: trials ran, nothing to compare"
        return to_jsonable(result)
    replicates, params, result["problems"] = _collect(outcomes, sweep.metric)
    order = dict.fromkeys(t.config_id for t in expand_grid(experiment))
    # the grid's order; configurations no grid names (a study's trials) in the order they ran
    names = [c for c in order if c in replicates] + [c for c in replicates if c not in order]
    summary = _summaries(replicates, params, names, sweep.alpha)
    result["configurations"] = summary
    if len(names) < 2:
        result["reason"] = "fewer than two configurations completed: nothing to compare"
        return to_jsonable(result)
    blocks = block_replicates(replicates, names)
    comparison, means, n_blocks = _compare_design(experiment, outcomes, names, blocks, result)
    result["comparison"] = comparison
    result["best"] = _best(comparison, means, params, sweep)
    if len(blocks.complete_seeds) >= 2:
        matrix = np.array(
            [[float(np.mean(replicates[c][s])) for s in blocks.complete_seeds] for c in names]
        )
        result["variance"] = variance_components(matrix)
    cd = _critical_difference(comparison, names, n_blocks, sweep)
    if cd is not None:
        result["critical_difference"] = cd
    return to_jsonable(result)


def _collect(
    outcomes: Sequence[TrialOutcome], metric: str
) -> tuple[dict[str, dict[int | None, list[float]]], dict[str, dict[str, Any]], list[str]]:
    replicates: dict[str, dict[int | None, list[float]]] = {}
    params: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for outcome in outcomes:
        if outcome.status != "completed":
            continue
        try:
            values = numbers_at(outcome.metrics, metric)
        except (KeyError, ValueError) as exc:
            problems.append(f"{outcome.trial.trial_id}: {exc}")
            continue
        replicates.setdefault(outcome.trial.config_id, {})[outcome.trial.seed] = values
        params[outcome.trial.config_id] = outcome.trial.params
    return replicates, params, problems


def _summaries(
    replicates: Mapping[str, Mapping[int | None, list[float]]],
    params: Mapping[str, dict[str, Any]],
    names: Sequence[str],
    alpha: float,
) -> dict[str, dict[str, Any]]:
    from crucible_dagster.bench.compare import describe_sample

    summary = {}
    for name in names:
        every = [v for seed_values in replicates[name].values() for v in seed_values]
        per_seed = [float(np.mean(v)) for v in replicates[name].values()]
        summary[name] = {
            **describe_sample(np.asarray(every), 1 - alpha),
            "params": params[name],
            "seeds": len(per_seed),
            "per_seed_means": per_seed,
        }
    return summary


def _compare_design(
    experiment: Experiment,
    outcomes: Sequence[TrialOutcome],
    names: Sequence[str],
    blocks: Blocks,
    result: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, float], int]:
    """Per sample when the trials share scored samples, else over per-seed means: the
    comparison, each configuration's mean, the number of blocks; ``result`` gets the design
    record and the blocks' description."""
    sweep = experiment.sweep
    assert sweep is not None
    column = score_column(sweep)
    paired = paired_design(outcomes, names, column) if column is not None else None
    if paired is not None and paired.usable:
        result["design"], result["blocks"] = paired.to_dict(), paired.description
        design: Design = "paired" if len(names) == 2 else "blocked"
        comparison = _compare(paired.groups, design, sweep, _seed(experiment))
        return comparison, paired.means(), len(paired.blocks)
    result["design"], result["blocks"] = _per_seed_design(paired), blocks.description
    comparison = _compare(blocks.groups, blocks.design, sweep, _seed(experiment))
    summary = result["configurations"]
    return comparison, {c: summary[c]["mean"] for c in names}, len(blocks.groups[names[0]])


def _seed(experiment: Experiment) -> int:
    """The resampling seed: the experiment's, or 0 as a run's ``ctx.seed`` is, so a sweep's
    bootstrap intervals repeat run to run and agree between ``crucible run`` and Dagster."""
    return experiment.seed if experiment.seed is not None else 0


def _per_seed_design(paired: PairedDesign | None) -> dict[str, Any]:
    """The record of a comparison over per-seed means, and why it was not per sample."""
    if paired is None:
        why = (
            "per-seed means: the sweep names no per-sample column (sweep.per_sample, or a "
            "metric of the score stage)"
        )
        return {"kind": "per_seed_means", "column": None, "why": why, "left_out": []}
    record = paired.to_dict()
    record["why"] = f"per-seed means, not per sample: {paired.reason}"
    return record


def _compare(
    groups: Mapping[str, list[float]], design: Design, sweep: SweepConfig, seed: int | None
) -> dict[str, Any]:
    from crucible_dagster.bench.compare import compare_groups
    from crucible_dagster.bench.settings import ComparisonSettings

    settings = ComparisonSettings(
        design=design,
        alpha=sweep.alpha,
        confidence_level=1 - sweep.alpha,
        correction=sweep.correction,
        control=sweep.control,
        seed=seed,
    )
    return compare_groups(groups, settings).to_dict()


def _best(
    comparison: Mapping[str, Any],
    means: Mapping[str, float],
    params: Mapping[str, dict[str, Any]],
    sweep: SweepConfig,
) -> dict[str, Any]:
    """The best configuration by ``means`` (per-seed, or per sample over the shared blocks)."""
    sign = 1.0 if sweep.direction == "maximize" else -1.0
    best, runner_up = sorted(means, key=lambda c: sign * means[c], reverse=True)[:2]
    row = next(
        (
            r
            for r in comparison_rows(comparison)
            if r.compares(best, runner_up) and not r.reference_only
        ),
        None,
    )
    significant = bool(row and row.significant)
    text = f"{means[best]:.4g} vs {means[runner_up]:.4g} for {runner_up}"
    return {
        "configuration": best,
        "params": params[best],
        "mean": means[best],
        "runner_up": runner_up,
        "runner_up_mean": means[runner_up],
        "significantly_better": significant,
        "p_adjusted": row.p_adjusted if row else None,
        "test": row.test if row else None,
        "statement": (
            f"{best} is the best configuration ({sweep.direction} {sweep.metric}: {text}); "
            + _verdict_text(significant, row)
        ),
    }


def _verdict_text(significant: bool, row: ComparisonRow | None) -> str:
    if row is None:
        return "no test compared it with the runner-up"
    p = row.p_adjusted
    if not math.isfinite(p):
        return f"the test could not tell them apart ({row.reason or 'undefined result'})"
    if significant:
        return f"the difference is significant ({row.test}, adjusted p = {p:.3g})"
    return (
        f"the difference from the runner-up is not significant ({row.test}, adjusted p = {p:.3g})"
    )


def _critical_difference(
    comparison: Mapping[str, Any], names: Sequence[str], n_blocks: int, sweep: SweepConfig
) -> dict[str, Any] | None:
    friedman_row = next((o for o in omnibus_rows(comparison) if o.test == "friedman"), None)
    if friedman_row is None or not friedman_row.mean_ranks:
        return None
    k = len(names)
    # rank 1 = best: Friedman ranks values ascending, so flip when larger is better
    best_first = [
        (k + 1 - r) if sweep.direction == "maximize" else r for r in friedman_row.mean_ranks
    ]
    return {
        "mean_ranks": dict(zip(names, best_first, strict=True)),
        "cd": critical_difference(k, n_blocks, sweep.alpha),
        "alpha": sweep.alpha,
    }
