"""`make bench`: every figure is measured beside its baseline in this one run."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable

from benchmarks.harness import Row, adopt_orphans, print_rows, rows_in_fresh_process


def main() -> int:
    root = os.environ.setdefault(
        "CRUCIBLE_ARTIFACTS_DIR", os.path.join(os.getcwd(), "artifacts", "_bench")
    )
    warnings.filterwarnings("ignore")
    # What a user gets: Dagster's console logging stays on for both sides; only where it prints
    # is moved (file descriptor 2 to a file), so the figures stay readable.
    os.makedirs(root, exist_ok=True)
    log_path = os.path.join(root, "bench-console.log")
    os.dup2(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 2)
    adopted = adopt_orphans()
    print(
        "settings: Dagster's default logging (both sides' console output goes to "
        f"{log_path}), SQLite instance, in-process executor; every setting alike on both sides"
    )
    print(
        "commands are timed until every process they started has exited"
        + ("" if adopted else " (orphans not adopted here: a leftover's CPU time is not counted)")
    )
    selected = set(sys.argv[1:])
    from benchmarks import (
        celery_bench,
        dagster_bench,
        dataset_bench,
        drift_bench,
        forkserver_bench,
        optuna_bench,
        racing_bench,
        rate_limit_bench,
        stats_bench,
        sweep_bench,
    )

    suites: list[tuple[str, Callable[[], list[Row] | str]]] = [
        ("dagster: per-stage overhead", dagster_bench.stage_overhead),
        ("dagster: Context handoff", dagster_bench.context_handoff),
        ("dagster: loading experiment files", dagster_bench.load_thousand_files),
        ("dagster: dagster job list", dagster_bench.job_list_rows),
        ("bench: bootstrap", stats_bench.bootstrap_rows),
        ("bench: t-test", stats_bench.ttest_rows),
        ("bench: memory", stats_bench.memory_rows),
        ("sweep: 100 trials", sweep_bench.sweep_rows),
        ("datasets: 1M-row Parquet load", dataset_bench.dataset_rows),
        # rates and shares of a simulation study, not timings: printed as its own table
        ("racing: simulation study with known truth", racing_bench.study),
        ("optuna: pruners on studies with known truth", optuna_bench.study),
        ("drift: false alarms and power with known truth", drift_bench.study),
        ("optuna: a study's cost per run against a grid", optuna_bench.study_cost_rows),
        # in a process of its own: its server and client share one interpreter, and whatever
        # earlier suites left in this one (the broker client's threads, a large heap) stretched
        # the tail (p99.9 238-384 ms inside a full run, 42-58 ms alone)
        (
            "hedging: tail latency against a heavy-tailed server (both sides in a process of its own)",
            lambda: rows_in_fresh_process("benchmarks.hedging_bench:hedging_rows"),
        ),
        (
            "predict: per-sample overhead against a bare thread pool (both in a process of its own)",
            lambda: rows_in_fresh_process("benchmarks.predict_bench:predict_rows"),
        ),
        (
            "telemetry: request events on a 10,000-request run (in a process of its own)",
            lambda: rows_in_fresh_process("benchmarks.telemetry_bench:cost_rows"),
        ),
        (
            "telemetry: the writer's throughput",
            lambda: rows_in_fresh_process("benchmarks.telemetry_bench:writer_rows"),
        ),
        ("rate limits: the interval the server sees", rate_limit_bench.rate_rows),
        ("celery: executors side by side", celery_bench.celery_rows),
        ("multiprocess: the forkserver's preload", forkserver_bench.preload_rows),
        ("demo: dagster job execute vs crucible run", dagster_bench.demo_rows),
    ]
    for title, fn in suites:
        if selected and not any(s in title for s in selected):
            continue
        rows = fn()
        if isinstance(rows, str):
            print(f"\n== {title}\n{rows}")
        else:
            print_rows(title, rows)
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
