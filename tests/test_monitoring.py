"""Monitoring limits (issue 29): the monitor stage's figures over a fixed telemetry file, the
window of recent runs, the limits as quality targets, and records it cannot read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crucible_dagster.monitoring.stage import earlier_runs, judged
from tests.conftest import Cli
from tests.test_telemetry import event, fixed_events, write


def test_figures_over_a_fixed_telemetry_file_match_hand_computed_values(tmp_path: Path) -> None:
    run = tmp_path / "x" / "r1"
    run.mkdir(parents=True)
    write(run / "telemetry.jsonl", fixed_events())
    found = judged([run], {"error_rate": 0.1}, window=1)
    # kept latencies 10 20 30 40 50 70 100: type 7 p95 at h = 6 * 0.95 = 5.7, 70 + 0.7 * 30
    assert found["latency_p95_ms"] == pytest.approx(91)
    # 5 requests of a (one failed) and 2 of b kept at half (4 requests): 1 failure in 9
    assert found["requests"] == 9 and found["error_rate"] == pytest.approx(1 / 9)
    # costs 5 * 0.1 + 2 * 0.2 / 0.5 = 1.3 for 9 requests
    assert found["cost_per_1k"] == pytest.approx(1000 * 1.3 / 9)
    assert found["reasons"] == {} and found["runs"] == ["r1"]


def test_no_requests_and_no_prices_say_why(tmp_path: Path) -> None:
    run = tmp_path / "x" / "r1"
    run.mkdir(parents=True)
    found = judged([run], {}, window=1)
    assert found["latency_p95_ms"] is None and found["requests"] == 0
    assert found["reasons"]["error_rate"] == "no requests in the window"
    write(run / "telemetry.jsonl", [event(1, latency_ms=5.0)])
    priced = judged([run], {}, window=1)
    assert priced["reasons"] == {"cost_per_1k": "no request was priced"}


def _monitored(url: str, stages: tuple[dict[str, Any], ...] = ({"name": "monitor"},
               {"name": "report"}), **monitoring: Any) -> Any:  # fmt: skip
    from tests.test_telemetry import chat_experiment

    return chat_experiment(
        "monitored",
        url,
        count=5,
        options={"max_retries": 0, "concurrency": 1},
        stages=stages,
        reliability={"monitoring": {"window": 2, **monitoring}},
    )


def test_the_window_pools_this_run_and_the_latest_before_it_and_gates_as_targets(
    artifacts_dir: Path,
) -> None:
    from crucible_dagster.contrib.llm_server import llm_server
    from crucible_dagster.runtime.runner import run

    with llm_server() as (url, server):
        first = run(_monitored(url, error_rate=0.25), run_id="r1")
        server.fail_next(5, status=500)  # every request of the second run fails
        second = run(_monitored(url, error_rate=0.25), run_id="r2")
        third = run(_monitored(url, error_rate=0.25), run_id="r3")
    assert first.status == second.status == third.status == "completed"
    one = first.context.metrics["monitoring"]
    assert one["runs"] == ["r1"] and one["error_rate"] == 0
    two = second.context.metrics["monitoring"]
    assert two["runs"] == ["r2", "r1"] and two["requests"] == 10 and two["error_rate"] == 0.5
    (verdict,) = second.context.metrics["quality_targets"]
    assert verdict["name"] == "monitoring_error_rate" and verdict["passed"] is False
    assert (
        verdict["message"]
        == "monitoring.error_rate = 0.5 misses <= 0.25 over 10 requests of r2, r1"
    )
    assert third.context.metrics["monitoring"]["runs"] == ["r3", "r2"]  # window 2


def test_unreadable_records_of_earlier_runs_are_counted_or_skipped(
    tmp_path: Path, artifacts_dir: Path
) -> None:
    from crucible_dagster.contrib.llm_server import llm_server
    from crucible_dagster.runtime.runner import run

    with llm_server() as (url, _):
        run(_monitored(url, error_rate=0.5), run_id="r1")
        earlier = artifacts_dir / "monitored" / "r1"
        with (earlier / "telemetry.jsonl").open("ab") as handle:
            handle.write(b'{"event": "request", "lat')  # a torn last line
        foreign = artifacts_dir / "monitored" / "r0"  # another experiment's record in its folder
        foreign.mkdir()
        manifest = json.loads((earlier / "manifest.json").read_text())
        (foreign / "manifest.json").write_text(json.dumps({**manifest, "run_id": "elsewhere"}))
        (foreign / "telemetry.jsonl").write_text("")
        second = run(_monitored(url, error_rate=0.5), run_id="r2")
    found = second.context.metrics["monitoring"]
    assert found["runs"] == ["r2", "r1"]  # r0's record names another run: not pooled
    assert found["telemetry_problems"] == 1
    (problem,) = found["telemetry_problems_listed"]
    assert problem.startswith(f"{earlier / 'telemetry.jsonl'}:")
    assert earlier_runs(artifacts_dir / "monitored" / "r2", 0) == []


def test_a_limit_is_needed_and_target_names_do_not_collide() -> None:
    from pydantic import ValidationError

    from crucible_dagster import Experiment

    with pytest.raises(ValidationError, match="expected at least one of latency_p95_ms"):
        Experiment.model_validate(
            {
                "id": "m",
                "pipeline": [{"name": "report"}],
                "reliability": {"monitoring": {"window": 3}},
            }
        )
    with pytest.raises(
        ValidationError, match="duplicate quality target name 'monitoring_error_rate'"
    ):
        Experiment.model_validate(
            {
                "id": "m",
                "pipeline": [{"name": "report"}],
                "reliability": {"monitoring": {"error_rate": 0.1}},
                "quality_targets": [
                    {"name": "monitoring_error_rate", "metric": "x", "op": "<=", "value": 1}
                ],
            }
        )


def test_validate_asks_for_a_report_stage_after_the_monitor(tmp_path: Path, cli: Cli) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("id: m\nreliability:\n  monitoring: {error_rate: 0.1}\n"
                    "pipeline: [{name: report}, {name: monitor}]\n")  # fmt: skip
    said = cli("validate", str(path))
    assert said.code == 1
    assert (f"{path}:3: reliability.monitoring: its limits are judged as quality targets by the "
            "report stage: add {name: report} after the monitor stage") in said.text  # fmt: skip


def test_lines_of_another_run_are_skipped_and_quoted_lines_redacted(tmp_path: Path) -> None:
    """Found by an outsider: lines naming another run or experiment were pooled (a copied
    folder counted twice), and a torn line's quote copied an email into the new run's files."""
    run = tmp_path / "x" / "r1"
    run.mkdir(parents=True)
    mine = [event(i, run_id="r1", success=True) for i in range(4)]
    theirs = [event(10 + i, run_id="zzz", success=False) for i in range(20)]
    other = [event(40, run_id="r1", experiment_id="other", success=False)]
    write(run / "telemetry.jsonl", mine + theirs + other, tail=b'{"a": "john.doe@example.com"}\n')
    found = judged([run], {"error_rate": 0.1}, window=1)
    assert found["requests"] == 4 and found["error_rate"] == 0
    assert found["telemetry_problems"] == 22
    assert "john.doe@example.com" not in json.dumps(found)


@pytest.mark.slow  # writes and reads back a line of 128 MiB or more
def test_a_huge_telemetry_line_of_an_earlier_run_is_skipped_without_being_held(
    tmp_path: Path,
) -> None:
    """Found by an outsider: a 300 MB line was read whole before its length was checked."""
    import tracemalloc

    run = tmp_path / "x" / "r1"
    run.mkdir(parents=True)
    with (run / "telemetry.jsonl").open("wb") as handle:
        handle.write(json.dumps(event(1, run_id="r1")).encode() + b'\n{"event": "request", "x": "')
        for _ in range(128):
            handle.write(b"a" * 2**20)
        handle.write(b'"}\n' + json.dumps(event(2, run_id="r1")).encode() + b"\n")
    tracemalloc.start()  # the peak of this read alone, whatever the process held before
    try:
        found = judged([run], {}, window=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20  # the 128 MiB line was never held
    assert found["requests"] == 2 and found["telemetry_problems"] == 1


def test_an_option_of_the_monitor_stage_is_refused_saying_it_takes_none(
    tmp_path: Path, cli: Cli
) -> None:
    """Found by an outsider: the message listed an empty 'expected one of: '."""
    path = tmp_path / "m.yaml"
    path.write_text("id: m\nreliability: {monitoring: {error_rate: 0.1}}\npipeline:\n"
                    "  - {name: monitor, options: {window: 3}}\n  - name: report\n")  # fmt: skip
    said = cli("validate", str(path))
    assert said.code == 1
    assert (f"{path}:4: pipeline[0].options.window: unknown field 'window'; expected no "
            "fields here") in said.text  # fmt: skip
