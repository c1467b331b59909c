"""An experiment's run history, its accepted baselines and the regression gate.

Dagster's run storage (SQLite or Postgres) plus the run directories replace the original's
experiment, run and artifact tables: a run directory holds the manifest (the run's row), its
reports and per-unit scores (its artifacts); Dagster's instance holds the run, its tags and its
asset materializations. ``history`` reads both.
"""

from crucible_dagster.run_history.baselines import accept, accepted_run
from crucible_dagster.run_history.runs import RunRow, history, list_runs

__all__ = ["RunRow", "accept", "accepted_run", "history", "list_runs"]
