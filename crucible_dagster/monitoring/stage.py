"""The ``monitor`` stage: the requests of the recent runs against ``reliability.monitoring``.

It pools the telemetry of this run (its requests so far: place it after the stages that send
them) and of the ``window - 1`` latest earlier runs of the experiment beside it, and records the
metric ``monitoring``: the 95th percentile of latency, the error rate and the cost of 1000
requests, with the evidence (the runs, the request count, each telemetry line that could not be
read). Each limit is the quality target ``monitoring_<limit>``: a verdict in the report, an asset
check of the report under Dagster. A figure without data (no request, none priced) is null with
its reason, and its target fails saying so.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crucible_dagster.common.pii import redact
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.stage import (
    Stage,
    StageOptions,
    reliability_setting,
    required_setting,
    setting_problems,
)

if TYPE_CHECKING:
    from crucible_dagster.experiment.ir import Experiment

EXAMPLE = "{latency_p95_ms, error_rate or cost_per_1k}"
TELEMETRY = "telemetry.jsonl"
REPORT_STAGE = ("report", "crucible_dagster.reports.stage:ReportStage")
#: a few of the unreadable telemetry lines are listed; all are counted
LISTED_PROBLEMS = 20


class MonitorOptions(StageOptions):
    """The limits and the window are the experiment's ``reliability.monitoring``."""


class MonitorStage(Stage):
    name = "monitor"
    description = "Latency p95, error rate and cost per 1000 requests of the recent runs"
    Options = MonitorOptions
    uses = ("reliability.monitoring",)

    @classmethod
    def check_experiment(cls, experiment: Experiment) -> list[tuple[str, str]]:
        if reliability_setting(experiment, "monitoring") is None:
            return setting_problems(experiment, "monitoring", "monitor", EXAMPLE)
        steps = [s.implementation for s in experiment.enabled_stages]
        at = [i for i, s in enumerate(steps) if s in (cls.name, cls.qualified_name())]
        if at and not any(s in REPORT_STAGE for s in steps[at[0] + 1 :]):
            return [("reliability.monitoring", "its limits are judged as quality targets by the "
                     "report stage: add {name: report} after the monitor stage")]  # fmt: skip
        return []

    def run(self, ctx: Context, options: MonitorOptions) -> Context:
        from crucible_dagster.runtime.run_dirs import report_base

        monitoring = required_setting(ctx, "monitoring", "monitor", EXAMPLE)
        here = report_base(ctx)
        runs = [here, *earlier_runs(here, monitoring.window - 1)]
        return ctx.put_metric("monitoring", judged(runs, monitoring.limits(), monitoring.window))


def earlier_runs(run_dir: Path, count: int) -> list[Path]:
    """The ``count`` latest runs of the experiment before this one (by start time), whose
    records end in a terminal status; a record that cannot be read is skipped (it says why in
    ``crucible runs``)."""
    from crucible_dagster.monitoring.retraining import CLOCK_SKEW
    from crucible_dagster.run_history.records import scan_runs

    if count <= 0:
        return []
    runs, _ = scan_runs(run_dir.parent)
    latest = datetime.now(timezone.utc) + CLOCK_SKEW  # a record from the future is wrong
    ended = [r for r in runs if r.run_dir.name != run_dir.name and r.manifest.status != "running"
             and (r.manifest.started_at is None or r.manifest.started_at <= latest)]  # fmt: skip
    ended.sort(
        key=lambda r: (r.manifest.started_at is not None, r.manifest.started_at), reverse=True
    )
    return [r.run_dir for r in ended[:count]]


def judged(runs: list[Path], limits: dict[str, float], window: int) -> dict[str, Any]:
    from crucible_dagster.telemetry.metrics import events_frame, request_metrics

    frame, problems = events_frame([r / TELEMETRY for r in runs if (r / TELEMETRY).exists()])
    # a line naming another run or experiment is not this run's request (a copied folder, a
    # record appended by hand): skipped, and counted with the other problems
    owner = frame["file"].map(lambda f: Path(f).parent.name)
    experiment = runs[0].parent.name if runs else ""
    foreign = (frame["run_id"] != owner) | (frame["experiment_id"] != experiment)
    strays = frame.loc[foreign, ["file", "run_id", "experiment_id"]].itertuples(index=False)
    problems += [f"{f}: an event of run {str(r)[:80]!r} of {str(e)[:80]!r}, not this folder's"
                 for f, r, e in strays]  # fmt: skip
    frame = frame[~foreign]
    problems = [redact(p) for p in problems]  # a torn line is quoted: personal data is not
    found = request_metrics(frame, by=())
    row: dict[str, Any] = (
        {str(k): v for k, v in found.iloc[0].items()} if len(found) else {"requests": 0.0}
    )
    figures = {
        "latency_p95_ms": row.get("latency_p95_ms"),
        "error_rate": row.get("failure_rate"),
        "cost_per_1k": row.get("cost_per_1k_requests"),
    }
    reasons = {
        name: "no requests in the window" if not row["requests"] else
        "no request recorded a latency" if name == "latency_p95_ms" else "no request was priced"
        for name, value in figures.items() if value is None
    }  # fmt: skip
    return {
        **figures,
        "limits": limits,
        "window": window,
        "runs": [r.name for r in runs],
        "requests": row["requests"],
        "reasons": reasons,
        "telemetry_problems": len(problems),
        "telemetry_problems_listed": problems[:LISTED_PROBLEMS],
    }
