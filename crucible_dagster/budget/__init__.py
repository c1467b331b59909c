"""The run's budget: a ledger its backends consult before each request, and the run's status."""

from crucible_dagster.budget.ledger import (
    LEDGER_FILE,
    NOT_SENT,
    BudgetExhausted,
    Ledger,
    LedgerError,
    Reservation,
)
from crucible_dagster.budget.run import (
    LEDGER_ASSIGN,
    METRIC,
    budget_exhausted,
    ledger_assigns,
    ledger_for,
    with_budget_metric,
)

__all__ = [
    "LEDGER_ASSIGN",
    "LEDGER_FILE",
    "METRIC",
    "NOT_SENT",
    "BudgetExhausted",
    "Ledger",
    "LedgerError",
    "Reservation",
    "budget_exhausted",
    "ledger_assigns",
    "ledger_for",
    "with_budget_metric",
]
