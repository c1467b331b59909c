"""The demo's progress printer: each stage of the new run as it ends, then the summary."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from crucible_dagster.contrib.demo_summary import follow
from tests.conftest import ROOT


def _plant_old_run(artifacts_dir: Path) -> None:
    """A run left from before the demo, whose stages must not be shown as this run's."""
    old = artifacts_dir / "core_pipeline_demo" / "old-run"
    old.mkdir(parents=True)
    event = {"event": "stage_completed", "stage": "stage_of_an_old_run", "duration_ms": 5.0}
    (old / "telemetry.jsonl").write_text(json.dumps(event) + "\n")


@pytest.mark.slow  # a `crucible run` subprocess, about 2 s
def test_the_demo_prints_each_stage_of_the_new_run_then_the_summary(
    artifacts_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _plant_old_run(artifacts_dir)
    command = [sys.executable, "-m", "crucible_dagster.cli", "run"]
    code = follow(
        "core_pipeline_demo", [*command, str(ROOT / "experiments/core_pipeline_demo.yaml")]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("Run ") and lines[0].endswith(": 5 stages"), out
    stages = [line.split()[0] for line in lines[1:6]]
    assert stages == ["validate", "seed_examples", "data_checks", "guardrails", "report"], out
    assert all(" done in " in line for line in lines[1:6]), out
    assert lines[6].startswith("Run completed after "), out
    run_id = lines[0].split()[1].rstrip(":")
    assert f"Experiment core_pipeline_demo: run {run_id} completed" in out
    assert "stage_of_an_old_run" not in out and "Traceback" not in out


def test_the_jobs_exit_code_is_the_demos(
    artifacts_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = follow("core_pipeline_demo", [sys.executable, "-c", "import sys; sys.exit(3)"])
    said = capsys.readouterr()
    assert code == 3
    assert said.out == "" and said.err.startswith("no run of core_pipeline_demo found under ")


WRITE_A_FAILED_RUN = r"""
import json, pathlib, sys
run = pathlib.Path(sys.argv[1]) / "core_pipeline_demo" / "r1"
run.mkdir(parents=True)
events = [
    {"event": "run_started", "run_id": "r1", "stages": 1},
    {"event": "stage_failed", "stage": "bench", "duration_ms": "n/a", "error_type": "ValueError",
     "message": "bad \x1b[31mred\x1b[0m\nsecond line \u202e"},
    ["not", "an", "event"],
]
with (run / "telemetry.jsonl").open("w") as handle:
    handle.writelines(json.dumps(event) + "\n" for event in events)
    handle.write('{"event": "stage_compl')  # a torn last line
sys.exit(1)
"""


def test_a_failed_stage_is_one_escaped_line_and_torn_or_odd_lines_are_skipped(
    artifacts_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command = [sys.executable, "-c", WRITE_A_FAILED_RUN, str(artifacts_dir)]
    code = follow("core_pipeline_demo", command)
    said = capsys.readouterr()
    assert code == 1
    assert said.out.splitlines() == [
        "Run r1: 1 stages",
        "  bench                  FAILED after ?: ValueError: "
        "bad \\x1b[31mred\\x1b[0m\\nsecond line \\u202e",
    ], said.out
    assert "\x1b" not in said.out and "\u202e" not in said.out
    assert said.err.startswith("no run of core_pipeline_demo found under ")


def test_a_sweeps_summary_shows_means_cost_tests_and_the_best() -> None:
    from crucible_dagster.contrib.demo_summary import sweep_lines

    sweep = {
        "design": {"means": {"a": 0.5, "b": 0.75}},
        "cost": {
            "configurations": {"a": {"requests": 4, "prompt_tokens": 40, "completion_tokens": 8,
                                     "cost": 0.25}},
            "total": {"requests": 8, "cost": 0.5},
            "budget": {"max_cost": 1.0},
        },
        "comparison": {
            "omnibus": [{"test": "cochran_q", "p_value": 0.01}],
            "comparisons": [
                {"group_a": "a", "group_b": "b", "test": "mcnemar", "estimate": -0.25,
                 "p_value": 0.02, "p_adjusted": 0.04},
                {"group_a": "a", "group_b": "b", "test": "bootstrap", "estimate": -0.25},
            ],
        },
        "best": {"statement": "b is the best configuration"},
    }  # fmt: skip
    lines = sweep_lines(sweep)
    assert lines[0].split() == ["a", "mean", "0.500", "requests", "4", "tokens", "40+8", "cost",
                                "0.25"]  # fmt: skip
    assert lines[1].split()[:5] == ["b", "mean", "0.750", "requests", "n/a"]
    assert lines[2] == "  total: 8 requests, cost 0.5 (budget: max_cost 1.0)"
    assert lines[3:] == [
        "  cochran_q: p = 0.01",
        "  a - b: mcnemar, difference -0.2500, p = 0.02 (adjusted 0.04)",
        "Best: b is the best configuration",
    ]


@pytest.mark.parametrize("odd", [None, 5, "x", [1], {"design": 3, "cost": [], "best": "b"}])
def test_a_sweep_record_of_the_wrong_shape_prints_nothing_it_cannot_read(odd: object) -> None:
    from crucible_dagster.contrib.demo_summary import sweep_lines

    assert sweep_lines(odd) == []
