"""``crucible run``: one experiment (or sweep) standalone, with progress on stderr."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from typing import Any

from crucible_dagster.cli.errors import UsageError, flag_value
from crucible_dagster.cli.terminal import error_line
from crucible_dagster.cli.validate import load_or_report
from crucible_dagster.common.jsonsafe import to_jsonable
from crucible_dagster.experiment.ir import SEED_MAX
from crucible_dagster.experiment.loading import parse_yaml_value
from crucible_dagster.runtime.run_record import check_run_id
from crucible_dagster.runtime.stage import VALIDATE_MODES

#: the run ended ``budget_exhausted``: an answer (every stage ran, the answers had are kept),
#: not an error, but not a whole run either
EXIT_BUDGET = 3


def _parse_set(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    overrides: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        stage, dot, option = key.partition(".")
        if not sep or not dot or not stage or not option:
            raise UsageError(f"--set expects STAGE.OPTION=VALUE, got {item!r}")
        try:
            value = parse_yaml_value(raw) if raw else None
        except ValueError as exc:
            raise UsageError(f"--set {item!r}: the value is not plain YAML: {exc}") from None
        overrides.setdefault(stage, {})[option] = value
    return overrides


class _Progress:
    """Prints one line per stage to stderr so a person sees the run move."""

    def __init__(self, total: int):
        self.total = total
        self.index = 0

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "stage_started":
            self.index += 1
            print(f"[{self.index}/{self.total}] {event['stage']} ...", file=sys.stderr, flush=True)
        elif kind == "stage_completed":
            print(
                f"      {event['stage']} ok ({event['duration_ms']:.0f} ms)",
                file=sys.stderr,
                flush=True,
            )
        elif kind == "stage_skipped":
            self.index += 1
            print(
                f"[{self.index}/{self.total}] {event['stage']} skipped (disabled)",
                file=sys.stderr,
                flush=True,
            )
        elif kind == "stage_failed":
            error_line(f"      {event['stage']} FAILED: {event['message']}")


def cmd_run(args: argparse.Namespace) -> int:
    if not args.json:
        return _run(args, sys.stdout)
    # Whatever a stage or an imported module prints goes to stderr: stdout holds one JSON document.
    real_stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        return _run(args, real_stdout)


def _with_overrides(experiment: Any, args: argparse.Namespace) -> Any:
    """The experiment with ``--seed`` and ``--set``; None after reporting an unknown stage."""
    if args.seed is not None:
        experiment = experiment.model_copy(update={"seed": args.seed})
    overrides = _parse_set(args.set or [])
    if not overrides:
        return experiment
    names = {s.name for s in experiment.pipeline}
    unknown = sorted(set(overrides) - names)
    if unknown:
        error_line(f"--set names unknown stage(s) {unknown}; stages: {sorted(names)}")
        return None
    pipeline = [
        s.model_copy(update={"options": {**s.options, **overrides.get(s.name, {})}})
        for s in experiment.pipeline
    ]
    return experiment.model_copy(update={"pipeline": pipeline})


def _run(args: argparse.Namespace, stdout: Any) -> int:
    from crucible_dagster.runtime.runner import run

    experiment = load_or_report(args.path)
    if experiment is None:
        return 1
    experiment = _with_overrides(experiment, args)
    if experiment is None:
        return 1
    if args.dry_run:
        from crucible_dagster.cli.cost import print_cost

        return print_cost(experiment, args.path, args.json, stdout)
    if experiment.is_sweep:
        return _run_sweep(experiment, args, stdout)
    result = run(
        experiment,
        run_id=args.run_id,
        validate_options=args.validate_options,
        sinks=[] if args.json else [_Progress(len(experiment.pipeline))],
        parent_run_id=args.resume,
    )
    if args.json:
        print(json.dumps(to_jsonable(dict(result.context.metrics)), indent=2), file=stdout)
    else:
        print(f"run {result.context.run_id}: {result.status}", file=sys.stderr)
        if result.run_dir:
            print(f"run directory: {result.run_dir}", file=sys.stderr)
    if result.failure is not None:
        failure = result.failure
        error_line(
            f"failed at stage {failure.stage!r} ({failure.error_type}, "
            f"reason {failure.reason}): {failure.message}"
        )
        return 1
    if result.status == "budget_exhausted":
        budget = result.context.metrics.get("budget") or {}
        error_line(f"budget exhausted ({budget.get('reason')}): the answers had are kept")
        return EXIT_BUDGET
    return 0


def _run_sweep(experiment: Any, args: argparse.Namespace, stdout: Any) -> int:
    from crucible_dagster.reports.sweep import variance_summary
    from crucible_dagster.sweeps.running import TrialOutcome
    from crucible_dagster.sweeps.standalone import run_sweep

    def progress(done: int, total: int, outcome: TrialOutcome) -> None:
        if args.json:
            return
        width = 30
        filled = width * done // total
        status = (
            "ok"
            if outcome.status == "completed"
            else f"FAILED at {(outcome.failure or {}).get('stage')}"
        )
        print(
            f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {outcome.trial.trial_id} {status}",
            file=sys.stderr,
            flush=True,
        )

    result = run_sweep(experiment, run_id=args.run_id, progress=progress)
    comparison = result.comparison
    if args.json:
        print(json.dumps(comparison, indent=2), file=stdout)
    else:
        if comparison.get("best"):
            print(comparison["best"]["statement"], file=sys.stderr)
        variance = comparison.get("variance")
        if variance:
            print(f"variance of trial means: {variance_summary(variance)}", file=sys.stderr)
        print(f"sweep directory: {result.run_dir} (sweep.md, sweep.html)", file=sys.stderr)
    failed = comparison.get("failed_trials") or []
    if failed:
        error_line(f"{len(failed)} trial(s) failed: {', '.join(failed)}")
        return 1
    exhausted = comparison.get("budget_exhausted_trials") or []
    if exhausted:
        error_line(
            f"budget exhausted: {len(exhausted)} trial(s) not fully asked, not compared: "
            f"{', '.join(exhausted)}"
        )
        return EXIT_BUDGET
    return 0


def _seed(text: str) -> int:
    value = flag_value(text, int, "an integer")
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to {SEED_MAX}, got {value}")
    return value


def _run_id(text: str) -> str:
    return flag_value(text, check_run_id)


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="run one experiment standalone")
    p.add_argument("path")
    p.add_argument(
        "--set",
        action="append",
        metavar="STAGE.OPTION=VALUE",
        help="override a stage option (YAML value)",
    )
    p.add_argument("--validate-options", choices=VALIDATE_MODES, default="error")
    p.add_argument("--run-id", type=_run_id, help="the run directory's name (default: a UUID)")
    p.add_argument(
        "--resume",
        type=_run_id,
        metavar="RUN",
        help="a failed run of this experiment to continue: a new run whose train stage starts "
        "from RUN's last checkpoint with its history",
    )
    p.add_argument("--seed", type=_seed, help="override the experiment seed (0 to 4294967295)")
    p.add_argument("--json", action="store_true", help="print the final metrics as JSON on stdout")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the requests, tokens and cost each variant would take, estimated; call nothing",
    )
    p.set_defaults(func=cmd_run)
