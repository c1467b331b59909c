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


class _Follower:
    """Reads the telemetry of the run that appears under ``root`` after it was built."""

    def __init__(self, root: Path):
        self.root = root
        self.before = set(root.glob("*/telemetry.jsonl"))
        self.path: Path | None = None
        self.offset = 0

    def _new_run(self) -> Path | None:
        fresh = [p for p in self.root.glob("*/telemetry.jsonl") if p not in self.before]
        return max(fresh, key=lambda p: p.stat().st_mtime) if fresh else None

    def print_new(self) -> None:
        """Prints the lines for events written since the last call (whole lines only)."""
        self.path = self.path or self._new_run()
        if self.path is None:
            return
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
