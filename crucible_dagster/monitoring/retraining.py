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

from crucible_dagster.experiment.ir import RetrainingTrigger
from crucible_dagster.run_history.records import RunRead, scan_runs

ENDED = ("completed", "failed")
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

    launched_at: datetime | None = None
    after_run: str | None = None

    def to_json(self) -> str:
        moment = self.launched_at.isoformat() if self.launched_at else None
        return json.dumps({"launched_at": moment, "after_run": self.after_run})

    @classmethod
    def from_json(cls, text: str | None) -> State:
        """A cursor that is not ours (or torn) is a fresh state: at worst one launch more."""
        try:
            data = json.loads(text or "{}")
            moment = data.get("launched_at")
            when = datetime.fromisoformat(moment) if isinstance(moment, str) else None
            run = data.get("after_run")
            return cls(when, run if isinstance(run, str) else None)
        except (ValueError, TypeError, AttributeError):
            return cls()


def reasons(metrics: Mapping[str, Any], trigger: RetrainingTrigger) -> list[str]:
    found: list[str] = []
    drift = metrics.get("drift")
    if "drift" in trigger.when and isinstance(drift, Mapping) and drift.get("drifted"):
        found.append("drift in " + ", ".join(str(f) for f in drift["drifted"])[:200])
    verdicts = metrics.get("quality_targets")
    if "monitoring" in trigger.when and isinstance(verdicts, list):
        missed = [str(v.get("name")) for v in verdicts if isinstance(v, Mapping)
                  and str(v.get("name", "")).startswith("monitoring_") and v.get("passed") is False]  # fmt: skip
        found += [f"monitoring: {name} missed" for name in missed]
    quality = metrics.get("feedback_quality")
    if "quality_drop" in trigger.when and isinstance(quality, list):
        found += _quality_drops(quality, trigger.alpha)
    return found


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
            if difference * worse > 0 and p_value < alpha:
                drops.append(f"quality drop: {signal} of {row.get('model_version')} on "
                             f"{row.get('day')} {difference:+.3g} (p {p_value:.3g})")  # fmt: skip
    return drops


def latest_ended_run(experiment_dir: Path) -> RunRead | None:
    """The run that ended last (a record that cannot be read is not a run to judge)."""
    runs, _ = scan_runs(experiment_dir)
    ended = [r for r in runs if r.manifest.status in ENDED and r.manifest.ended_at is not None]
    return max(ended, key=lambda r: r.manifest.ended_at or datetime.min, default=None)


def decide(
    experiment_dir: Path, trigger: RetrainingTrigger, state: State, now: datetime | None = None
) -> Decision:
    now = now or datetime.now(timezone.utc)
    latest = latest_ended_run(experiment_dir)
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
