"""Printed by ``make demo``: the run's progress while the job runs, then its summary.

``python -m crucible_dagster.contrib.demo_summary EXPERIMENT -- COMMAND...`` runs COMMAND (the
Makefile's ``dagster job execute``, its console at INFO) and prints each stage of the new run as
it ends, read from the run's ``telemetry.jsonl``: Dagster's DEBUG lines stay in the instance's
event log instead of on the terminal. Without a command it prints the latest run's summary only.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from crucible_dagster.bench.rows import comparison_rows, omnibus_rows
from crucible_dagster.common.terminal import terminal_safe
from crucible_dagster.runtime.run_record import artifacts_root, read_manifest

#: how often the run's telemetry is read while the job runs
POLL_S = 0.2


def say(line: str) -> None:
    """Prints one line of the demo, control characters (newlines too) shown as escapes."""
    print(terminal_safe(line), flush=True)


def _num(value: object) -> str:
    return f"{value:+.4f}" if isinstance(value, float) else "n/a"


def _share(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "n/a"


def _p(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else "n/a"


def _seconds(event: dict[str, Any]) -> str:
    duration = event.get("duration_ms")
    return f"{duration / 1000:.1f} s" if isinstance(duration, int | float) else "?"


def progress_line(event: dict[str, Any]) -> str | None:
    """One terminal line for a run or stage end (starts and other events print nothing)."""
    kind, stage = event.get("event"), event.get("stage")
    if kind == "run_started":
        return f"Run {event.get('run_id')}: {event.get('stages')} stages"
    if kind == "stage_completed":
        return f"  {stage!s:<22} done in {_seconds(event)}"
    if kind == "stage_failed":
        reason = f"{event.get('error_type')}: {event.get('message')}"
        return f"  {stage!s:<22} FAILED after {_seconds(event)}: {reason}"
    if isinstance(kind, str) and kind.startswith("run_"):
        return f"Run {kind.removeprefix('run_')} after {_seconds(event)}"
    return None


def _trial_end(telemetry: Path) -> str | None:
    """A sweep trial's line once its telemetry ends (``run_completed``, ``run_failed``...)."""
    try:
        last = telemetry.read_bytes().rstrip(b"\n").rpartition(b"\n")[2]
        event = json.loads(last)
    except (OSError, ValueError):
        return None
    kind = event.get("event") if isinstance(event, dict) else None
    if not isinstance(kind, str) or not kind.startswith("run_") or kind == "run_started":
        return None
    return f"  trial {telemetry.parent.name:<32} {kind.removeprefix('run_')} in {_seconds(event)}"


class _Follower:
    """Reads the telemetry of the run that appears under ``root`` after it was built (and of
    its trials, for a sweep)."""

    def __init__(self, root: Path):
        self.root = root
        self.before = set(root.glob("*/telemetry.jsonl"))
        self.path: Path | None = None
        self.offset = 0
        self.trials_done: set[Path] = set()

    def _print_trials(self, run_dir: Path) -> None:
        for telemetry in sorted(run_dir.glob("trials/*/telemetry.jsonl")):
            line = None if telemetry in self.trials_done else _trial_end(telemetry)
            if line:
                self.trials_done.add(telemetry)
                say(line)

    def _new_run(self) -> Path | None:
        fresh = [p for p in self.root.glob("*/telemetry.jsonl") if p not in self.before]
        return max(fresh, key=lambda p: p.stat().st_mtime) if fresh else None

    def print_new(self) -> None:
        """Prints the lines for events written since the last call (whole lines only)."""
        self.path = self.path or self._new_run()
        if self.path is None:
            return
        self._print_trials(self.path.parent)
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        for raw in complete.splitlines():
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            line = progress_line(event) if isinstance(event, dict) else None
            if line:
                say(line)


def follow(experiment_id: str, command: list[str]) -> int:
    """Runs ``command``, printing the new run's progress; its exit code, else the summary's."""
    follower = _Follower(artifacts_root() / experiment_id)
    with subprocess.Popen(command) as proc:
        try:
            while proc.poll() is None:
                follower.print_new()
                time.sleep(POLL_S)
        except KeyboardInterrupt:  # Ctrl-C reached the job too: let it record its end
            proc.wait()
            return 130
    follower.print_new()
    summary = main(experiment_id)
    return proc.returncode or summary


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def sweep_lines(sweep: Any) -> list[str]:
    """A sweep's summary: each configuration's share right over the shared samples and its
    cost, the omnibus test, each pair's paired test (not the bootstrap beside it), the best."""
    if not isinstance(sweep, dict):
        return []
    means = _mapping(_mapping(sweep.get("design")).get("means"))
    cost = _mapping(sweep.get("cost"))
    spent = _mapping(cost.get("configurations"))
    lines = []
    for name in means or _mapping(sweep.get("configurations")):
        row = _mapping(spent.get(name))
        lines.append(
            f"  {name:<32} mean {_share(means.get(name))}  requests {row.get('requests', 'n/a')}"
            f"  tokens {row.get('prompt_tokens', 'n/a')}+{row.get('completion_tokens', 'n/a')}"
            f"  cost {_p(row.get('cost'))}"
        )
    total = _mapping(cost.get("total"))
    if total:
        budget = cost.get("budget") or {}
        limits = ", ".join(f"{k} {v}" for k, v in budget.items()) if budget else "none"
        lines.append(
            f"  total: {total.get('requests')} requests, cost {_p(total.get('cost'))} "
            f"(budget: {limits})"
        )
    inner = sweep.get("comparison")
    lines += [f"  {o.test}: p = {_p(o.p_value)}" for o in omnibus_rows(inner)]
    lines += [
        f"  {r.group_a} - {r.group_b}: {r.test}, difference {_num(r.estimate)}, "
        f"p = {_p(r.p_value)} (adjusted {_p(r.p_adjusted)})"
        for r in comparison_rows(inner)
        if r.test != "bootstrap"
    ]
    best = sweep.get("best")
    if isinstance(best, dict) and best.get("statement"):
        lines.append(f"Best: {best['statement']}")
    return lines


def main(experiment_id: str) -> int:
    runs = sorted(
        (artifacts_root() / experiment_id).glob("*/manifest.json"), key=lambda p: p.stat().st_mtime
    )
    if not runs:
        print(f"no run of {experiment_id} found under {artifacts_root()}", file=sys.stderr)
        return 1
    manifest = read_manifest(runs[-1])
    run_dir = runs[-1].parent
    print()
    say(f"Experiment {experiment_id}: run {manifest['run_id']} {manifest['status']}")
    for name, summary in (manifest.get("metrics", {}).get("cv") or {}).items():
        say(
            f"  {name:<22} accuracy {summary['mean']:.4f} ± {summary['std']:.4f} "
            f"over {summary['n']} folds"
        )
    bench = manifest.get("metrics", {}).get("bench") or {}
    for omnibus in omnibus_rows(bench):
        say(f"  {omnibus.test}: p = {_p(omnibus.p_value)}")
    for row in comparison_rows(bench):
        say(
            f"  {row.group_a} - {row.group_b}: {row.test}, difference {_num(row.estimate)}, "
            f"p = {_p(row.p_value)} (adjusted {_p(row.p_adjusted)})"
        )
    for line in sweep_lines(manifest.get("metrics", {}).get("sweep")):
        say(line)
    for report in sorted(run_dir.glob("*.md")) + sorted(run_dir.glob("*.html")):
        say(f"Report: {report}")
    say(f"Run directory: {run_dir}")
    print(
        "Open the Dagster UI with `make ui`, then http://127.0.0.1:3000 (jobs, runs, report assets)."
    )
    return 0 if manifest["status"] == "completed" else 1


def _cli(argv: list[str]) -> int:
    experiment_id = argv[0] if argv and argv[0] != "--" else "classifier_comparison"
    if "--" in argv:
        return follow(experiment_id, argv[argv.index("--") + 1 :])
    return main(experiment_id)


if __name__ == "__main__":
    sys.exit(_cli(sys.argv[1:]))
