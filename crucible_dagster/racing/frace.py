"""``frace``: F-race (Birattari, Stuetzle, Paquete & Varrentrapp 2002; irace, Lopez-Ibanez et al.
2016): after each round, Friedman's test over all blocks so far; when it rejects, each survivor
is compared with the best by Conover's post-hoc test on the rank sums (Conover 1999, *Practical
Nonparametric Statistics*, 3rd ed., pp. 369-371) and dropped when its p is below alpha.

This is what irace does, and like irace it does **not** control the error over looks: the same
configurations are tested again after every round, unadjusted, so the chance of dropping the true
best grows with the number of rounds (the simulation under ``make bench`` measures it). Use
``sequential`` when that chance must stay below alpha.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy import stats

from crucible_dagster.racing.evidence import ConfigEvidence, Look, keep_min_survivors

TEST_NAME = "frace (Friedman, then Conover against the best; unadjusted over looks, as irace)"


def block_ranks(table: np.ndarray, direction: Literal["maximize", "minimize"]) -> np.ndarray:
    """Ranks within each block (row), 1 = best, ties averaged."""
    signed = -table if direction == "maximize" else table
    return np.asarray(stats.rankdata(signed, axis=1), dtype=float)


def friedman_statistic(ranks: np.ndarray) -> tuple[float, float]:
    """Friedman's chi-squared with the ties correction (irace's ``aux2.friedman``) and its p.
    NaN for both when every block ties every configuration (the statistic is 0/0)."""
    n, k = ranks.shape
    rank_sums = ranks.sum(axis=0)
    # sum over tie groups of (u^3 - u) = sum over values of (size of its group^2 - 1)
    same = (ranks[:, :, None] == ranks[:, None, :]).sum(axis=2).astype(float)
    ties = float(np.sum(same**2 - 1.0))
    denominator = n * k * (k + 1) - ties / (k - 1)
    if denominator <= 0:
        return float("nan"), float("nan")
    statistic = 12.0 * float(np.sum((rank_sums - n * (k + 1) / 2.0) ** 2)) / denominator
    return statistic, float(stats.chi2.sf(statistic, k - 1))


def conover_p_values(ranks: np.ndarray) -> np.ndarray:
    """All-pairs two-sided p of Conover's test on Friedman rank sums (no adjustment):
    ``t = |R_i - R_j| / sqrt(2 (n A - sum R^2) / ((n - 1)(k - 1)))`` on ``(n - 1)(k - 1)`` df,
    ``A`` the sum of squared ranks. When ``n A = sum R^2`` (every block ranks alike) any two
    different rank sums are certain (p 0) and equal ones are not (p 1)."""
    n, k = ranks.shape
    rank_sums = ranks.sum(axis=0)
    a = float(np.sum(ranks**2))
    df = (n - 1) * (k - 1)
    spread = 2.0 * (n * a - float(np.sum(rank_sums**2))) / df
    diff = np.abs(rank_sums[:, None] - rank_sums[None, :])
    if spread <= 0:
        return np.where(diff > 0, 0.0, 1.0)
    t = diff / np.sqrt(spread)
    return np.asarray(2.0 * stats.t.sf(t, df), dtype=float)


def frace_look(
    survivors: Sequence[str],
    table: np.ndarray,
    alpha: float,
    direction: Literal["maximize", "minimize"],
    min_survivors: int,
) -> Look:
    """Decide after a round from ``table`` (blocks x survivors, every block so far)."""
    n, k = table.shape
    means = table.mean(axis=0) if n else np.full(k, np.nan)
    if n < 2 or k < 2:
        why = "one block" if n < 2 else "one survivor"
        return _undecided(survivors, means, n, f"undefined: {why}; Friedman's test needs two")
    ranks = block_ranks(table, direction)
    statistic, p_omnibus = friedman_statistic(ranks)
    if not np.isfinite(p_omnibus):
        note = "undefined: every block ties every survivor (a constant metric?)"
        return _undecided(survivors, means, n, note, ranks.sum(axis=0))
    rank_sums = ranks.sum(axis=0)
    best = int(np.lexsort((np.arange(k), rank_sums))[0])
    p_vs_best = conover_p_values(ranks)[best]
    rejected = p_omnibus < alpha
    over = {
        survivors[j]: float(-p_vs_best[j])
        for j in range(k)
        if rejected and j != best and p_vs_best[j] < alpha
    }
    drop = keep_min_survivors(list(survivors), over, min_survivors)
    evidence = tuple(
        ConfigEvidence(
            config=c,
            mean=float(means[j]),
            blocks=n,
            statistic=float(rank_sums[j]),
            p_value=None if j == best else float(p_vs_best[j]),
            p_adjusted=None if j == best else float(p_vs_best[j]),
            dropped=c in drop,
            reason=_reason(j == best, rejected, c in drop, c in over),
        )
        for j, c in enumerate(survivors)
    )
    note = "" if rejected else f"Friedman p = {p_omnibus:.4g} >= alpha: nobody dropped"
    return Look(TEST_NAME, n, evidence, omnibus_p=p_omnibus, omnibus_statistic=statistic, note=note)


def _reason(best: bool, rejected: bool, dropped: bool, over: bool) -> str:
    if best:
        return "best rank sum"
    if dropped:
        return "Conover against the best: p < alpha"
    if over:
        return "shown worse, kept to leave min_survivors"
    return "not shown worse" if rejected else "Friedman's test did not reject"


def _undecided(
    survivors: Sequence[str],
    means: np.ndarray,
    n: int,
    note: str,
    rank_sums: np.ndarray | None = None,
) -> Look:
    evidence = tuple(
        ConfigEvidence(
            config=c,
            mean=float(means[j]),
            blocks=n,
            statistic=float("nan") if rank_sums is None else float(rank_sums[j]),
            p_value=None,
            p_adjusted=None,
            dropped=False,
            reason="no decision",
        )
        for j, c in enumerate(survivors)
    )
    return Look(TEST_NAME, n, evidence, note=note)
