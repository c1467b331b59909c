"""Blocked designs: configurations measured on shared seeds (and folds), as in Demšar (2006).

Sweeps replicate every configuration over the same seeds; these functions decide how the
replicates form blocks, split the variance between configurations and seeds, and give
Nemenyi's critical difference for the critical-difference diagram.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from crucible_dagster.bench.settings import Design

#: configuration -> seed -> the values one trial produced (one per fold, or one)
Replicates = Mapping[str, Mapping[int | None, Sequence[float]]]


@dataclass(frozen=True)
class Blocks:
    """How replicates were grouped for the comparison, and why."""

    groups: dict[str, list[float]]
    design: Design
    description: str
    complete_seeds: list[int | None]


def block_replicates(replicates: Replicates, names: Sequence[str]) -> Blocks:
    """Blocks are the seeds every configuration shares (trial means over folds); with one shared
    seed and equal fold counts, the folds; otherwise the values are independent samples."""
    seeds = sorted({s for c in names for s in replicates[c]}, key=lambda s: (s is None, s))
    complete = [s for s in seeds if all(s in replicates[c] for c in names)]
    fold_counts = {len(replicates[c][s]) for c in names for s in complete}
    if len(complete) >= 2:
        groups = {c: [float(np.mean(replicates[c][s])) for s in complete] for c in names}
        description = f"{len(complete)} seeds (trial means over folds)"
    elif len(complete) == 1 and len(fold_counts) == 1 and min(fold_counts) >= 2:
        groups = {c: [float(v) for v in replicates[c][complete[0]]] for c in names}
        description = f"{len(groups[names[0]])} folds of one seed"
    else:
        groups = {c: [float(v) for s in replicates[c] for v in replicates[c][s]] for c in names}
        return Blocks(groups, "independent", "none (configurations do not share seeds)", complete)
    design: Design = "paired" if len(names) == 2 else "blocked"
    return Blocks(groups, design, description, complete)


def variance_components(matrix: np.ndarray) -> dict[str, float]:
    """Two-way decomposition (configurations x seeds, no interaction) of the trial means."""
    k, s = matrix.shape
    grand = float(matrix.mean())
    ss_config = float(s * np.sum((matrix.mean(axis=1) - grand) ** 2))
    ss_seed = float(k * np.sum((matrix.mean(axis=0) - grand) ** 2))
    ss_total = float(np.sum((matrix - grand) ** 2))
    ss_residual = max(ss_total - ss_config - ss_seed, 0.0)

    def share(x: float) -> float:
        return x / ss_total if ss_total > 0 else math.nan

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


def _missing(value: object) -> bool:
    try:
        return value is None or bool(value != value)
    except (TypeError, ValueError):
        return True


def block_problem(blocks: Mapping[str, Sequence[object]], design: Design) -> str | None:
    """Why the block ids cannot pair the groups, or None: a paired or blocked design needs
    each block once in every group (a repeated id would pair values by row order)."""
    need = f"a {design} design needs one value per block in each group"
    for group, ids in blocks.items():
        if any(_missing(b) for b in ids):
            return f"group {group!r}: a row has no block id; {need}"
        seen: dict[object, int] = {}
        for b in ids:
            seen[b] = seen.get(b, 0) + 1
        repeated = next(((b, n) for b, n in seen.items() if n > 1), None)
        if repeated is not None:
            return f"group {group!r}: block {repeated[0]!r} appears {repeated[1]} times; {need}"
    names = list(blocks)
    for other in names[1:]:
        first, second = set(blocks[names[0]]), set(blocks[other])
        if first != second:
            only, has, lacks = (
                (sorted(first - second, key=repr), names[0], other)
                if first - second
                else (sorted(second - first, key=repr), other, names[0])
            )
            return f"block {only[0]!r} is in group {has!r} but not in group {lacks!r}; {need}"
    return None
