"""``crucible run --dry-run`` and ``crucible plan --cost``: the run's requests, tokens and cost,
per variant (per sweep trial) and in total, estimated without calling any model."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TextIO

from crucible_dagster.cli.terminal import error_line, terminal_safe
from crucible_dagster.experiment.ir import Budget, Experiment

_NUMBERS = ("requests", "cached", "prompt_tokens", "completion_tokens", "cost")
_HEADINGS = ("requests", "cached", "prompt tokens", "completion tokens", "cost")


@dataclass
class CostReport:
    experiment_id: str
    rows: list[Any]  # VariantCost
    budget: Budget | None

    def totals(self) -> dict[str, Any]:
        def total(field: str) -> Any:
            values = [getattr(r, field) for r in self.rows]
            known = [v for v in values if v is not None]
            return sum(known) if known else None

        return {
            "requests": total("requests"),
            "cached": total("cached"),
            "prompt_tokens": total("prompt_tokens"),
            "completion_tokens": total("completion_tokens"),
            "cost": total("cost"),
        }

    def budget_lines(self) -> list[str]:
        """Whether the plan fits the budget: the run would otherwise end budget_exhausted."""
        if self.budget is None:
            return []
        totals = self.totals()
        tokens = (totals["prompt_tokens"] or 0) + (totals["completion_tokens"] or 0)
        needs = {
            "max_requests": totals["requests"] or 0,
            "max_tokens": tokens,
            "max_cost": totals["cost"] or 0.0,
        }
        over = [
            f"{name} {limit:g} < {needs[name]:.6g} estimated"
            for name, limit in self.budget.model_dump(exclude_none=True).items()
            if needs[name] > limit
        ]
        if not over:
            return ["budget: the plan fits (" + _limits(self.budget) + ")"]
        return [f"budget: does not fit ({'; '.join(over)}): the run would end budget_exhausted"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment_id": self.experiment_id,
            "variants": [r.to_dict() for r in self.rows],
            "total": self.totals(),
            "budget": self.budget.model_dump(exclude_none=True) if self.budget else None,
            "budget_check": self.budget_lines(),
        }


def _limits(budget: Budget) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in budget.model_dump(exclude_none=True).items())


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def table_lines(report: CostReport) -> list[str]:
    header = ["trial", "stage", "variant", "backend", *_HEADINGS]
    rows = [
        [r.trial or "-", r.stage, r.variant, r.backend, *(getattr(r, k) for k in _NUMBERS)]
        for r in report.rows
    ]
    totals = report.totals()
    rows.append(["total", "", "", "", *(totals[k] for k in _NUMBERS)])
    cells = [[terminal_safe(_shown(c)) for c in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    notes = sorted({r.note for r in report.rows if r.note})
    return [
        f"cost plan of {terminal_safe(report.experiment_id)} (estimated; nothing was sent)",
        *lines,
        *(f"note: {terminal_safe(n)}" for n in notes),
        *report.budget_lines(),
    ]


def cost_report(experiment: Experiment) -> CostReport:
    """Every trial (one for a plain run) of ``experiment``, planned in the order a run asks."""
    from crucible_dagster.evaluation.cost_plan import plan_run
    from crucible_dagster.sweeps.grid import expand_grid

    planned: set[str] = set()
    rows: list[Any] = []
    if not experiment.is_sweep:
        rows = plan_run(experiment, planned=planned)
    for trial in expand_grid(experiment) if experiment.is_sweep else []:
        seeded = (
            experiment.model_copy(update={"seed": trial.seed})
            if trial.seed is not None
            else experiment
        )
        rows += plan_run(seeded, params=trial.stage_params, planned=planned, trial=trial.trial_id)
    return CostReport(experiment.id, rows, experiment.budget)


def print_cost(experiment: Experiment, path: str, as_json: bool, stdout: TextIO) -> int:
    """Print the plan (a table, or JSON on stdout); 1 with one line when it cannot be made."""
    from crucible_dagster.evaluation.cost_plan import CostPlanError

    try:
        report = cost_report(experiment)
    except CostPlanError as exc:
        error_line(f"{path}: cannot be planned: {exc}")
        return 1
    if as_json:
        print(json.dumps(report.to_dict(), indent=2), file=stdout)
    else:
        print("\n".join(table_lines(report)), file=stdout)
    return 0
