"""The ``crucible`` command: validate, run, stages, schema, diff. Runs without Dagster."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import re
import signal
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from crucible_dagster.common.jsonsafe import to_jsonable
from crucible_dagster.experiment.ir import SEED_MAX
from crucible_dagster.experiment.loading import (
    EXPERIMENT_SUFFIXES,
    experiment_files,
    experiment_json_schema,
    parse_yaml_value,
)
from crucible_dagster.experiment.option_schema import schema_to_json
from crucible_dagster.experiment.problems import ExperimentError
from crucible_dagster.run_history.commands import RunNotFound, add_commands
from crucible_dagster.runtime.preflight import check_file, check_files
from crucible_dagster.runtime.registry import Registry, StageResolutionError
from crucible_dagster.runtime.run_record import RunDirectoryError, check_run_id
from crucible_dagster.runtime.stage import VALIDATE_MODES

# Exit codes: 0 ok, 1 the input is wrong (a user error or an invalid experiment), 2 argparse's
# own usage errors, 70 a bug in crucible_dagster (sysexits' EX_SOFTWARE), 130 Ctrl-C, 143 SIGTERM.
EXIT_USER = 1
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

# C0 and C1 controls, DEL, and the bidirectional overrides that reorder what a terminal shows.
_CONTROLS = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_IN_TEXT = re.compile(f"[{_CONTROLS}]")
_IN_LINE = re.compile(f"[{_CONTROLS}\\t\\n]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}")


def terminal_safe(text: str, *, one_line: bool = True) -> str:
    """``text`` with every control character shown as an escape, so input cannot drive the terminal.

    ``one_line`` escapes newlines and tabs too: an error is one line whatever its values hold.
    """
    return (_IN_LINE if one_line else _IN_TEXT).sub(_escape, text)


def _error(line: str) -> None:
    """The one place an error line is printed: escaped, on one line, on stderr."""
    print(terminal_safe(line), file=sys.stderr, flush=True)


class _SafeStream:
    """A text stream that escapes control characters (keeping newlines and tabs) before writing.

    Installed over stdout and stderr for the whole command, so a value read from a file, a
    manifest or an argument reaches the terminal as text, whoever prints it (argparse included).
    """

    def __init__(self, stream: Any):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(terminal_safe(text, one_line=False))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def _safe_terminal() -> Iterator[None]:
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _SafeStream(sys.stdout), _SafeStream(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def _expand(paths: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        # a folder is searched; a folder named like an experiment file is a mistake, reported
        folder = path.is_dir() and path.suffix not in EXPERIMENT_SUFFIXES
        files.extend(experiment_files(path) if folder else [path])
    return files


def cmd_validate(args: argparse.Namespace) -> int:
    files = _expand(args.paths)
    if not files:
        _error("no experiment files found")
        return 1
    bad = 0
    for checked in check_files(files):
        for problem in checked.problems:
            print(terminal_safe(str(problem)))
        bad += not checked.ok
    if not args.quiet:
        print(f"{len(files) - bad} valid, {bad} invalid", file=sys.stderr)
    return 1 if bad else 0


def _load_or_report(path: str) -> Any:
    """The fully checked experiment, or None after printing every problem on stderr."""
    checked = check_file(path)
    for problem in checked.problems:
        _error(str(problem))
    return checked.experiment


class UsageError(Exception):
    """A flag's value is wrong: one line naming the flag, exit code 1."""


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
            _error(f"      {event['stage']} FAILED: {event['message']}")


def cmd_run(args: argparse.Namespace) -> int:
    if not args.json:
        return _run(args, sys.stdout)
    # Whatever a stage or an imported module prints goes to stderr: stdout holds one JSON document.
    real_stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        return _run(args, real_stdout)


def _run(args: argparse.Namespace, stdout: Any) -> int:
    from crucible_dagster.runtime.runner import run

    experiment = _load_or_report(args.path)
    if experiment is None:
        return 1
    if args.seed is not None:
        experiment = experiment.model_copy(update={"seed": args.seed})
    overrides = _parse_set(args.set or [])
    if overrides:
        names = {s.name for s in experiment.pipeline}
        unknown = sorted(set(overrides) - names)
        if unknown:
            _error(f"--set names unknown stage(s) {unknown}; stages: {sorted(names)}")
            return 1
        pipeline = [
            s.model_copy(update={"options": {**s.options, **overrides.get(s.name, {})}})
            for s in experiment.pipeline
        ]
        experiment = experiment.model_copy(update={"pipeline": pipeline})
    if experiment.is_sweep:
        return _run_sweep(experiment, args, stdout)
    result = run(
        experiment,
        run_id=args.run_id,
        validate_options=args.validate_options,
        sinks=[] if args.json else [_Progress(len(experiment.pipeline))],
    )
    if args.json:
        print(json.dumps(to_jsonable(dict(result.context.metrics)), indent=2), file=stdout)
    else:
        print(f"run {result.context.run_id}: {result.status}", file=sys.stderr)
        if result.run_dir:
            print(f"run directory: {result.run_dir}", file=sys.stderr)
    if result.failure is not None:
        failure = result.failure
        _error(
            f"failed at stage {failure.stage!r} ({failure.error_type}, "
            f"reason {failure.reason}): {failure.message}"
        )
        return 1
    return 0


def _run_sweep(experiment: Any, args: argparse.Namespace, stdout: Any) -> int:
    from crucible_dagster.sweeps.report import variance_summary
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
        _error(f"{len(failed)} trial(s) failed: {', '.join(failed)}")
        return 1
    return 0


def _format_type(spec: Any) -> str:
    return json.dumps(spec) if not isinstance(spec, str) else spec


def cmd_stages(args: argparse.Namespace) -> int:
    registry = Registry.default()
    if args.name:
        try:
            cls = registry.resolve(args.name)
        except StageResolutionError as exc:
            _error(f"Unknown stage: {args.name}: {exc}")
            return 1
        schema = schema_to_json(cls.describe())
        if args.json:
            print(
                json.dumps(
                    [{"name": args.name, "module": cls.qualified_name(), "schema": schema}],
                    indent=2,
                )
            )
            return 0
        print(f"Stage: {args.name}\nModule: {cls.qualified_name()}")
        for key in ("version", "__schema_version__"):
            if schema.get(key):
                print(f"{'Version' if key == 'version' else 'Schema Version'}: {schema[key]}")
        print(f"Description: {schema['description']}")
        defaults = schema.get("defaults", {})
        for title, keys in (
            ("Required options", schema["required"]),
            ("Optional options", schema["optional"]),
        ):
            print(f"\n{title}:")
            if not keys:
                print("  (none)")
            for key in keys:
                spec = schema["types"].get(key)
                line = f"  {key:<18} {_format_type(spec) if spec is not None else '(unspecified)'}"
                if key in defaults:
                    line += f" (default: {json.dumps(defaults[key])})"
                print(line)
        if schema.get("__extensions__"):
            print("\nExtensions:")
            print(json.dumps(schema["__extensions__"], indent=2))
        return 0
    rows = [{**row, "schema": schema_to_json(row["schema"])} for row in registry.describe_all()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(
            "No stages registered. Install a package that provides the 'crucible_dagster.stages' entry point."
        )
        return 0
    print("Available Stages:")
    for row in rows:
        schema = row["schema"]
        print(f"\n{row['name']} ({row['module']})")
        print(f"  Description: {schema['description']}")
        print(f"  Required: {', '.join(schema['required']) or '(none)'}")
        print(f"  Optional: {', '.join(schema['optional']) or '(none)'}")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from crucible_dagster.run_history.records import RecordError, read_run
    from crucible_dagster.runtime.run_diff import diff_manifests, format_change
    from crucible_dagster.runtime.run_record import MANIFEST, stale_note

    manifests = []
    for path in (Path(args.run_a), Path(args.run_b)):
        # the record is read as untrusted input: typed, capped, and matching its folder
        run_dir = path.parent if path.name == MANIFEST and not path.is_dir() else path
        try:
            manifests.append(read_run(run_dir).raw)
        except (OSError, ValueError) as exc:
            message = str(exc) if isinstance(exc, RecordError) else f"{path}: {exc}"
            _error(f"expected a run directory or its manifest.json: {message}")
            return 1
        note = stale_note(manifests[-1])
        if note:
            _error(f"{path}: {note}")
    changes = diff_manifests(*manifests)
    for change in changes:
        print(format_change(*change))
    if not changes:
        print("no differences", file=sys.stderr)
    return 1 if changes else 0


def cmd_plan(args: argparse.Namespace) -> int:
    from crucible_dagster.sweeps.planning import latest_pilot, plan_seeds

    experiment = _load_or_report(args.path)
    if experiment is None:
        return 1
    pilot = (
        Path(args.pilot)
        if args.pilot
        else (latest_pilot(experiment.id) if args.effect_size is None else None)
    )
    try:
        plan = plan_seeds(
            difference=args.difference,
            effect_size=args.effect_size,
            pilot=pilot,
            power=args.power,
            alpha=args.alpha,
        )
    except (ValueError, OSError) as exc:
        _error(f"{args.path}: cannot be planned: {exc}")
        return 1
    print("\n".join(plan.lines(args.power, args.alpha)))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(experiment_json_schema(), indent=2))
    return 0


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to {SEED_MAX}, got {value}")
    return value


def _run_id(text: str) -> str:
    try:
        return check_run_id(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _positive(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value:g}")
    return value


def _probability(text: str) -> float:
    value = _number(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a number between 0 and 1 (exclusive), got {value:g}"
        )
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, with its error on one line whatever the arguments hold (exit 2 as always)."""

    def error(self, message: str) -> NoReturn:
        super().error(terminal_safe(message))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="crucible", description="Run and check Crucible experiments without Dagster."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.add_argument(
        "--debug", action="store_true", help="print the traceback of an error (exit codes: README)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check experiment files; exit 1 if any is invalid")
    p.add_argument("paths", nargs="+", help="files or folders")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_validate)

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
    p.add_argument("--seed", type=_seed, help="override the experiment seed (0 to 4294967295)")
    p.add_argument("--json", action="store_true", help="print the final metrics as JSON on stdout")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("stages", help="list registered stages or show one schema")
    p.add_argument("--name", "-n")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stages)

    p = sub.add_parser(
        "diff", help="what differs between two runs (run directories or manifest.json files)"
    )
    p.add_argument("run_a")
    p.add_argument("run_b")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser(
        "plan", help="how many seeds a sweep needs to detect a difference at a given power"
    )
    p.add_argument("path")
    p.add_argument(
        "--difference",
        type=_number,
        help="the smallest difference in the sweep metric worth detecting (uses a pilot run)",
    )
    p.add_argument(
        "--effect-size",
        type=_positive,
        help="an assumed standardized effect instead of a pilot run",
    )
    p.add_argument(
        "--pilot", help="a pilot sweep run directory (default: the latest run of this experiment)"
    )
    p.add_argument("--power", type=_probability, default=0.8)
    p.add_argument("--alpha", type=_probability, default=0.05)
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("schema", help="print the JSON Schema of experiment files")
    p.set_defaults(func=cmd_schema)

    add_commands(sub)
    return parser


class Terminated(BaseException):
    """SIGTERM, raised where the process is, so the run record ends as ``interrupted``."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def _is_user_error(exc: Exception) -> bool:
    """Whether ``exc`` says the input is wrong (exit 1) rather than that crucible has a bug."""
    import yaml

    if isinstance(exc, UsageError | RunDirectoryError | RunNotFound | ValueError | OSError):
        return True  # ValueError covers JSON, UTF-8, pydantic and most Arrow errors
    if isinstance(exc, yaml.YAMLError):
        return True
    arrow = sys.modules.get("pyarrow")  # Arrow's errors only exist once something read Arrow data
    return arrow is not None and isinstance(exc, arrow.ArrowException)


def _describe(exc: BaseException) -> str:
    """One line for a user error: what was expected and found, with the file when known."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        parts = [f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors()]
        return f"{exc.title}: " + "; ".join(parts)
    if isinstance(exc, OSError) and exc.strerror:  # disk full, read-only or missing folder, ...
        return exc.strerror + (f": {exc.filename}" if exc.filename else "")
    return str(exc) or type(exc).__name__


def _internal_error(exc: Exception, debug: bool) -> int:
    """A bug: one line saying so; the traceback only under ``--debug``."""
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    hint = "" if debug else "; run again with --debug for the traceback"
    _error(
        f"crucible: internal error (a bug in crucible_dagster or a stage's code, "
        f"not a problem with the input): "
        f"{type(exc).__name__}: {exc}{hint}"
    )
    return EXIT_INTERNAL


def _dispatch(args: argparse.Namespace) -> int:
    """The command line's one error boundary: every exception ends here as one line and a code."""
    try:
        return int(args.func(args))
    except ExperimentError as exc:
        for problem in exc.problems:
            _error(str(problem))
        return EXIT_USER
    except KeyboardInterrupt:
        _error("crucible: interrupted")
        return EXIT_INTERRUPTED
    except Terminated:
        _error("crucible: terminated (SIGTERM)")
        return EXIT_TERMINATED
    except SystemExit as exc:  # raised inside a stage: the run record says 'interrupted'
        _error(f"crucible: a stage called sys.exit({exc.code!r}); the run was interrupted")
        return EXIT_USER
    except BrokenPipeError:  # e.g. `crucible stages | head`: the reader left, which is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        if not _is_user_error(exc):
            return _internal_error(exc, args.debug)
        if args.debug:
            traceback.print_exception(exc, file=sys.stderr)
        _error(f"crucible: {_describe(exc)}")
        return EXIT_USER


def main(argv: Sequence[str] | None = None) -> int:
    with _safe_terminal():
        args = build_parser().parse_args(argv)
        logging.basicConfig(
            level=logging.INFO if args.verbose else logging.WARNING,
            format="%(levelname)s %(name)s: %(message)s",
        )
        # Stage modules named in experiment files resolve from the working directory, as they do
        # for `dagster ... -f definitions.py`.
        with contextlib.suppress(OSError):  # a working directory removed under us
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _on_sigterm)
        return _dispatch(args)


if __name__ == "__main__":
    sys.exit(main())
