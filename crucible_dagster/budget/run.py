"""Which ledger a run's backends consult, and what the run records of it.

A run's ledger is ``budget.json`` in its run directory; a sweep puts its own path in each
trial's ``assigns["budget_ledger"]`` so every trial of the sweep run counts against one budget
(the budget is the sweep run's, not each trial's). The ``budget`` metric (limits, spent,
``exhausted``) is what the run driver reads to end the run ``budget_exhausted``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from crucible_dagster.budget.ledger import LEDGER_FILE, Ledger

if TYPE_CHECKING:
    from crucible_dagster.runtime.context import Context

#: the assigns key naming a ledger shared beyond one run (a sweep's, for its trials)
LEDGER_ASSIGN = "budget_ledger"
#: the metric a stage that used the budget leaves (the run driver reads its ``exhausted``)
METRIC = "budget"


def ledger_for(ctx: Context) -> Ledger | None:
    """The run's ledger, or None when its experiment sets no budget."""
    experiment = ctx.experiment
    if experiment is None or experiment.budget is None:
        return None
    shared = ctx.assigns.get(LEDGER_ASSIGN)
    if isinstance(shared, str) and shared:
        path: Path | None = Path(shared)
    else:
        path = Path(ctx.run_dir) / LEDGER_FILE if ctx.run_dir else None
    return Ledger(experiment.budget, path, key=ctx.run_id, experiment_id=experiment.id)


def ledger_assigns(sweep_dir: Path | str | None) -> dict[str, str]:
    """The assigns that make a trial count against its sweep run's ledger."""
    return {} if sweep_dir is None else {LEDGER_ASSIGN: str(Path(sweep_dir) / LEDGER_FILE)}


def budget_exhausted(ctx: Context) -> bool:
    """Whether a stage of this run found the budget spent (its ``budget`` metric says so)."""
    budget = ctx.metrics.get(METRIC)
    return isinstance(budget, dict) and budget.get("exhausted") is True


def with_budget_metric(ctx: Context, ledger: Ledger | None) -> Context:
    """``ctx`` with the ledger's state as the ``budget`` metric (unchanged without a budget)."""
    return ctx if ledger is None else ctx.put_metric(METRIC, ledger.snapshot())
