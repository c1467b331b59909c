"""When to retrain (``reliability.retraining_trigger``): the experiment's latest ended run read
back, the reasons it gives (drift found, feedback significantly worse than the day before, a
monitoring limit missed), and the cooldown that keeps a launch from following another.

Pure decisions over run records and a small state (the last launch and the run it followed), so
the Dagster sensor that acts on them (``dagster_plugin.retraining_sensor``) holds no logic of its
own and a test can drive it with a clock.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from crucible_dagster.common.isotime import parse_datetime
from crucible_dagster.common.terminal import terminal_safe
from crucible_dagster.experiment.ir import RetrainingTrigger
from crucible_dagster.run_history.records import RunRead, scan_runs

#: a run that ended, in any way: an interrupted or out-of-budget run's results count too
ENDED = ("completed", "failed", "interrupted", "budget_exhausted")
#: a run that says it ended later than this from now is not believed (its record is wrong)
CLOCK_SKEW = timedelta(hours=1)
#: a feedback signal whose fall (or, for corrections, rise) is a quality drop
WORSE_WHEN = {"thumbs_up": -1, "rating": -1, "correction_rate": +1}


@dataclass(frozen=True)
class Decision:
    launch: bool
    message: str  # the reasons when launching, why not otherwise
    run_id: str | None = None  # the run judged


@dataclass(frozen=True)
class State:
    """What the sensor remembers between looks (its cursor, as JSON)."""

    launched_at: datetime | None = None  # with a zone (``from_json`` gives UTC to one without)
    after_run: str | None = None

    def to_json(self) -> str:
        moment = self.launched_at.isoformat() if self.launched_at else None
        return json.dumps({"launched_at": moment, "after_run": self.after_run})

    @classmethod
    def from_json(cls, text: str | None, now: datetime | None = None) -> State:
        """A cursor that is not ours (torn, nested too deep, a launch time in the future) is a
        fresh state: at worst one launch more, never a sensor failing every tick. A time without
        an offset is UTC."""
        now = now or datetime.now(timezone.utc)
        try:
            data = json.loads(text or "{}")
            moment = data.get("launched_at")
            when = parse_datetime(moment) if isinstance(moment, str) else None
            run = data.get("after_run")
        except (ValueError, TypeError, AttributeError, RecursionError):
            return cls()
        if when is not None and when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        if when is not None and when > now:
            when = None
        return cls(when, run if isinstance(run, str) else None)


def reasons(metrics: Mapping[str, Any], trigger: RetrainingTrigger) -> list[str]:
    found: list[str] = []
    drift = metrics.get("drift")
    drifted = drift.get("drifted") if isinstance(drift, Mapping) else None
    names = [f for f in drifted if isinstance(f, str)] if isinstance(drifted, list) else []
    if "drift" in trigger.when and names:
        found.append(_shown("drift in " + ", ".join(names)))
    verdicts = metrics.get("quality_targets")
    if "monitoring" in trigger.when and isinstance(verdicts, list):
        found += [f"monitoring: {_shown(str(v['name']))} missed" for v in verdicts if _missed(v)]
    quality = metrics.get("feedback_quality")
    if "quality_drop" in trigger.when and isinstance(quality, list):
        found += _quality_drops(quality, trigger.alpha)
    return found


def _missed(verdict: Any) -> bool:
    """A monitoring limit missed by a figure the run had: one without data (no requests, none
    priced) fails its check but is no evidence to retrain on."""
    if not isinstance(verdict, Mapping) or verdict.get("passed") is not False:
        return False
    name, estimate = verdict.get("name"), verdict.get("estimate")
    return isinstance(name, str) and name.startswith("monitoring_") and _number(estimate)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _shown(text: str, limit: int = 200) -> str:
    """One line for a tag: control and format characters escaped, cut with an ellipsis."""
    text = terminal_safe(text)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _quality_drops(rows: list[Any], alpha: float) -> list[str]:
    drops = []
    for row in rows:
        against = row.get("against_previous") if isinstance(row, Mapping) else None
        if not isinstance(against, Mapping):
            continue
        for signal, worse in WORSE_WHEN.items():
            found = against.get(signal)
            if not isinstance(found, Mapping):
                continue
            difference, p_value = found.get("difference"), found.get("p_value")
            if not (isinstance(difference, int | float) and isinstance(p_value, int | float)):
                continue  # undefined (no data one day): no evidence of a drop
            if isinstance(difference, bool) or isinstance(p_value, bool) or not 0 <= p_value <= 1:
                continue  # not a difference and a p-value
            if difference * worse > 0 and p_value < alpha:
                drops.append(_shown(f"quality drop: {signal} of {row.get('model_version')} on "
                                    f"{row.get('day')} {difference:+.3g} (p {p_value:.3g})"))  # fmt: skip
    return drops


def latest_ended_run(experiment_dir: Path, now: datetime) -> RunRead | None:
    """The run that ended last (a record that cannot be read, or that ended in the future, is
    not a run to judge: it would be the latest forever)."""
    runs, _ = scan_runs(experiment_dir)  # a record's times always have a zone (or it is unread)
    ended = [
        r
        for r in runs
        if r.manifest.status in ENDED
        and r.manifest.ended_at is not None
        and r.manifest.ended_at <= now + CLOCK_SKEW
    ]
    return max(ended, key=lambda r: r.manifest.ended_at or now, default=None)


def decide(
    experiment_dir: Path, trigger: RetrainingTrigger, state: State, now: datetime | None = None
) -> Decision:
    now = now or datetime.now(timezone.utc)
    latest = latest_ended_run(experiment_dir, now)
    if latest is None:
        return Decision(False, f"no ended run under {experiment_dir} yet")
    run_id = latest.manifest.run_id
    if run_id == state.after_run:
        return Decision(False, f"run {run_id} already led to a launch", run_id)
    found = reasons(latest.manifest.metrics, trigger)
    if not found:
        return Decision(False, f"run {run_id} shows none of: {', '.join(trigger.when)}", run_id)
    if state.launched_at is not None:
        until = state.launched_at + timedelta(hours=trigger.cooldown_hours)
        if now < until:
            return Decision(False, f"cooling down until {until.isoformat()} (run {run_id}: "
                            f"{'; '.join(found)})", run_id)  # fmt: skip
    return Decision(True, "; ".join(found), run_id)
