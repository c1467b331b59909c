"""Synthetic credit data with a group attribute and a known disparity, for the fairness demo.

Seeded and documented, so the disparity the fairness stage must find is known in advance:
``n`` applicants, half in group 0 and half in group 1; ``income`` and ``debt`` are standard
normal; the repaid label is ``income - debt + noise > cut``, with the cut raised by
``disparity`` for group 1. So group 1's base rate is lower by construction: with the default
``disparity`` 0.6 and seed 7 the labels' repayment rates are 0.53 and 0.35 (a demographic parity
gap of 0.18), and a model trained on these features (group included) reproduces it.
"""

from __future__ import annotations

from pydantic import Field

from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.stage import Stage, StageOptions


class GroupedCreditOptions(StageOptions):
    n: int = Field(default=2000, ge=100, le=1_000_000, description="Applicants.")
    disparity: float = Field(
        default=0.6, ge=0, le=3, description="How much higher group 1's cut is."
    )


class LoadGroupedCredit(Stage):
    """assigns['features'] (income, debt, group) and assigns['target'] (1 = repaid)."""

    name = "load_grouped_credit"
    Options = GroupedCreditOptions

    def run(self, ctx: Context, options: GroupedCreditOptions) -> Context:
        import numpy as np
        import pandas as pd

        seed = ctx.seed
        rng = np.random.default_rng([seed, 31337])
        group = np.repeat([0, 1], [options.n - options.n // 2, options.n // 2])
        income, debt = rng.normal(size=options.n), rng.normal(size=options.n)
        noise = rng.normal(scale=0.5, size=options.n)
        target = (income - debt + noise > options.disparity * group).astype(int)
        features = pd.DataFrame({"income": income, "debt": debt, "group": group})
        rates = {f"group_{g}": float(target[group == g].mean()) for g in (0, 1)}
        return ctx.assign({"features": features, "target": target}).put_metric(
            "dataset", {"name": "grouped_credit", "rows": options.n, "repaid_rate": rates}
        )
