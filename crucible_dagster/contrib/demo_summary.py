"""Printed by ``make demo`` after the job: where the report is and how to open the UI."""

from __future__ import annotations

import sys

from crucible_dagster.bench.rows import comparison_rows, omnibus_rows
from crucible_dagster.runtime.run_record import artifacts_root, read_manifest


def _num(value: object) -> str:
    return f"{value:+.4f}" if isinstance(value, float) else "n/a"


def _p(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else "n/a"


def main(experiment_id: str) -> int:
    runs = sorted(
        (artifacts_root() / experiment_id).glob("*/manifest.json"), key=lambda p: p.stat().st_mtime
    )
    if not runs:
        print(f"no run of {experiment_id} found under {artifacts_root()}", file=sys.stderr)
        return 1
    manifest = read_manifest(runs[-1])
    run_dir = runs[-1].parent
    print(f"\nExperiment {experiment_id}: run {manifest['run_id']} {manifest['status']}")
    for name, summary in (manifest.get("metrics", {}).get("cv") or {}).items():
        print(
            f"  {name:<22} accuracy {summary['mean']:.4f} ± {summary['std']:.4f} "
            f"over {summary['n']} folds"
        )
    bench = manifest.get("metrics", {}).get("bench") or {}
    for omnibus in omnibus_rows(bench):
        print(f"  {omnibus.test}: p = {_p(omnibus.p_value)}")
    for row in comparison_rows(bench):
        print(
            f"  {row.group_a} - {row.group_b}: {row.test}, difference {_num(row.estimate)}, "
            f"p = {_p(row.p_value)} (adjusted {_p(row.p_adjusted)})"
        )
    for report in sorted(run_dir.glob("*.md")) + sorted(run_dir.glob("*.html")):
        print(f"Report: {report}")
    print(f"Run directory: {run_dir}")
    print(
        "Open the Dagster UI with `make ui`, then http://127.0.0.1:3000 (jobs, runs, report assets)."
    )
    return 0 if manifest["status"] == "completed" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "classifier_comparison"))
