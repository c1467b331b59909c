"""Drift detection on samples with known truth (issue 29): how often the drift stage's tests
raise a false alarm when nothing changed, and how often they find a shift that is there.

Each seed draws a reference and a current sample of five features (three numeric, one
categorical, one text) of ``N`` rows each, through the same functions the stage calls
(``drift.statistics.feature_drift``, Holm's correction from the bench). With no shift, Holm keeps
the chance of any false alarm at most alpha; the per-feature rate, uncorrected, is near alpha
too. Rates carry Wilson 95% intervals (``feedback.quality.wilson``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from benchmarks.harness import rate_with_interval
from crucible_dagster.bench.multiple import adjust_p_values
from crucible_dagster.drift.statistics import feature_drift, kind_of
from crucible_dagster.feedback.quality import wilson

ALPHA = 0.05
N = 300
SEEDS = 400
WORDS = np.array(["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta"])

Shift = Callable[[pd.DataFrame, np.random.Generator], pd.DataFrame]


def sample(rng: np.random.Generator, n: int = N) -> pd.DataFrame:
    texts = [" ".join(rng.choice(WORDS, size=rng.integers(3, 12))) for _ in range(n)]
    return pd.DataFrame(
        {
            "age": rng.normal(40, 10, size=n).round(1),
            "income": rng.lognormal(10, 0.5, size=n),
            "score": rng.uniform(0, 1, size=n),
            "plan": rng.choice(["basic", "pro", "team"], size=n, p=[0.6, 0.3, 0.1]),
            "query": texts,
        }
    )


def _mean_shift(sds: float) -> Shift:
    def shift(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        return frame.assign(age=frame["age"] + sds * 10)

    return shift


def _plan_shift(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    plans = rng.choice(["basic", "pro", "team"], size=len(frame), p=[0.5, 0.35, 0.15])
    return frame.assign(plan=plans)


SCENARIOS: list[tuple[str, Shift | None]] = [
    ("no shift (false alarms)", None),
    ("age +0.1 sd", _mean_shift(0.1)),
    ("age +0.25 sd", _mean_shift(0.25)),
    ("age +0.5 sd", _mean_shift(0.5)),
    ("plan 60/30/10 -> 50/35/15", _plan_shift),
]


def _verdicts(reference: pd.DataFrame, current: pd.DataFrame) -> tuple[bool, int, int]:
    """Any feature drifted (Holm), features below alpha uncorrected, features tested."""
    found = [
        feature_drift(str(c), reference[c], current[c], kind_of(reference[c], current[c]))
        for c in reference
    ]
    p_values = [f.p_value for f in found if f.p_value is not None]
    adjusted = adjust_p_values(p_values, "holm")
    return min(adjusted) < ALPHA, sum(p < ALPHA for p in p_values), len(p_values)


def study(seeds: int = SEEDS) -> str:
    lines = [
        f"{seeds} seeds x 5 features (3 numeric, 1 categorical, 1 text), {N} rows a side; "
        f"alpha {ALPHA}, Holm over the features; rates with Wilson 95% intervals",
        f"{'scenario':<28} {'any drift (Holm)':>24}  {'per feature, uncorrected':>26}  {'s':>5}",
    ]
    false_alarm = 1.0
    for index, (name, shift) in enumerate(SCENARIOS):
        rng = np.random.default_rng(2000 + index)
        start = time.perf_counter()
        alarms = below = tested = 0
        for _ in range(seeds):
            reference, current = sample(rng), sample(rng)
            if shift is not None:
                current = shift(current, rng)
            any_drift, low, count = _verdicts(reference, current)
            alarms, below, tested = alarms + any_drift, below + low, tested + count
        seconds = time.perf_counter() - start
        rates = f"{rate_with_interval(alarms, seeds):>24}  {rate_with_interval(below, tested):>26}"
        lines.append(f"{name:<28} {rates}  {seconds:>5.1f}")
        if shift is None:
            false_alarm = wilson(alarms, seeds, 0.95)["low"]
    met = false_alarm <= ALPHA
    lines.append(
        f"goal: with no shift, Holm's family-wise false alarm rate is not above {ALPHA:.0%} (the "
        f"lower end of its interval, {false_alarm:.1%}, is at most that): "
        f"{'met' if met else 'NOT met'}"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    print(study())
