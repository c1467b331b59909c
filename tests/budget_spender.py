"""One process of the budget race (tests/hostile/test_budget_values.py): ask ``attempts``
requests of the ledger in ``folder`` and print how many were granted, as JSON.

Run as ``python -m tests.budget_spender FOLDER ATTEMPTS MAX_REQUESTS``: a plain subprocess the
test can bound and kill, importing only the ledger (a multiprocessing pool waits forever for a
task whose worker died, and its workers imported the whole test module)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from crucible_dagster.budget import BudgetExhausted, Ledger
from crucible_dagster.experiment.ir import Budget


def spend(folder: Path, attempts: int, max_requests: int) -> int:
    book = Ledger(
        Budget(max_requests=max_requests), folder / "budget.json", key="r", experiment_id="exp"
    )
    granted = 0
    for _ in range(attempts):
        try:
            book.settle(book.reserve(1, 0.0), 1, 0.0)
            granted += 1
        except BudgetExhausted:
            pass
    return granted


if __name__ == "__main__":
    folder, attempts, max_requests = sys.argv[1:4]
    print(json.dumps({"granted": spend(Path(folder), int(attempts), int(max_requests))}))
