"""The command line's one error boundary: every exception ends here as one line and an exit code.

Exit codes: 0 ok, 1 the input is wrong (a user error or an invalid experiment), 2 argparse's
own usage errors, 70 a bug in crucible_dagster (sysexits' EX_SOFTWARE), 130 Ctrl-C, 143 SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from typing import Any

from crucible_dagster.cli.errors import RunNotFound, Terminated, UsageError
from crucible_dagster.cli.parser import build_parser
from crucible_dagster.cli.terminal import error_line, safe_terminal
from crucible_dagster.experiment.problems import ExperimentError
from crucible_dagster.runtime.run_record import RunDirectoryError

EXIT_USER = 1
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def _is_user_error(exc: Exception) -> bool:
    """Whether ``exc`` says the input is wrong (exit 1) rather than that crucible has a bug."""
    import yaml

    if isinstance(exc, UsageError | RunDirectoryError | RunNotFound | ValueError | OSError):
        return True  # ValueError covers JSON, UTF-8, pydantic and most Arrow errors
    if isinstance(exc, yaml.YAMLError):
        return True
    from crucible_dagster.runtime.stage import StageError

    if isinstance(exc, StageError) or type(exc).__name__ == "MlflowException":
        return True  # a registry's refusal, or one a stage's code gives (`crucible model`)
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
    error_line(
        f"crucible: internal error (a bug in crucible_dagster or a stage's code, "
        f"not a problem with the input): "
        f"{type(exc).__name__}: {exc}{hint}"
    )
    return EXIT_INTERNAL


def _dispatch(args: argparse.Namespace) -> int:
    """Run the chosen command; whatever it raises is turned into one line and a code here."""
    try:
        return int(args.func(args))
    except ExperimentError as exc:
        for problem in exc.problems:
            error_line(str(problem))
        return EXIT_USER
    except KeyboardInterrupt:
        error_line("crucible: interrupted")
        return EXIT_INTERRUPTED
    except Terminated:
        error_line("crucible: terminated (SIGTERM)")
        return EXIT_TERMINATED
    except SystemExit as exc:  # raised inside a stage: the run record says 'interrupted'
        error_line(f"crucible: a stage called sys.exit({exc.code!r}); the run was interrupted")
        return EXIT_USER
    except BrokenPipeError:  # e.g. `crucible stages | head`: the reader left, which is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        if not _is_user_error(exc):
            return _internal_error(exc, args.debug)
        if args.debug:
            traceback.print_exception(exc, file=sys.stderr)
        error_line(f"crucible: {_describe(exc)}")
        return EXIT_USER


@functools.cache
def _parser() -> argparse.ArgumentParser:
    """Built once per process: argparse looks each help string up in gettext's catalogues,
    a few milliseconds per command, and parsing never changes the parser."""
    return build_parser()


def main(argv: Sequence[str] | None = None) -> int:
    """The ``crucible`` entry point (``crucible_dagster.cli:main``)."""
    with safe_terminal():
        args = _parser().parse_args(argv)
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
