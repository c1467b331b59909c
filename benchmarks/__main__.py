"""`make bench`: every figure is measured beside its baseline in this one run."""

from __future__ import annotations

import logging
import os
import sys
import warnings

from benchmarks.harness import print_rows


def main() -> int:
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    os.environ.setdefault(
        "CRUCIBLE_ARTIFACTS_DIR", os.path.join(os.getcwd(), "artifacts", "_bench")
    )
    selected = set(sys.argv[1:])
    from benchmarks import dagster_bench, stats_bench, sweep_bench

    suites = [
        ("dagster: per-stage overhead", dagster_bench.stage_overhead),
        ("dagster: Context handoff", dagster_bench.context_handoff),
        ("dagster: loading experiment files", dagster_bench.load_thousand_files),
        ("bench: bootstrap", stats_bench.bootstrap_rows),
        ("bench: t-test", stats_bench.ttest_rows),
        ("bench: memory", stats_bench.memory_rows),
        ("sweep: 100 trials", sweep_bench.sweep_rows),
    ]
    for title, fn in suites:
        if selected and not any(s in title for s in selected):
            continue
        print_rows(title, fn())
    return 0


if __name__ == "__main__":
    sys.exit(main())
