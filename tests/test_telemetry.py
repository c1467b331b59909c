"""Telemetry (issue 27, in part): the event schema, the writer across threads and processes, a
killed writer's file, request events from a real run against the bundled server (with injected
503s, retries and cache hits), metrics against hand-computed values, windows, the comparison,
exports that round-trip, and the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from crucible_dagster.telemetry.events import read_events
from crucible_dagster.telemetry.export import ExportError, export_events
from crucible_dagster.telemetry.metrics import (
    TelemetryQueryError,
    compare_requests,
    events_frame,
    parse_duration,
    request_metrics,
    within,
)
from crucible_dagster.telemetry.writer import EventWriter
from tests.conftest import Cli

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc)


def event(n: int, **fields: Any) -> dict[str, Any]:
    """A request event (what a request must say, overridable) at minute ``n``."""
    return {
        "schema_version": 1,
        "event_id": f"e{n}",
        "event": "request",
        "timestamp": (T0 + timedelta(minutes=n)).isoformat(),
        "experiment_id": "x",
        "run_id": "r1",
        "variant": "v",
        "sample_id": f"s{n}",
        "success": True,
        **fields,
    }


def chat_experiment(
    experiment_id: str,
    url: str,
    *,
    count: int,
    user: str = "{{ question }}",
    options: dict[str, Any] | None = None,
    stages: tuple[dict[str, Any], ...] = (),
    **fields: Any,
) -> Any:
    """``count`` arithmetic questions asked of the bundled server's model ``m`` by a predict
    stage (and ``stages`` after it)."""
    from crucible_dagster import Experiment

    backend_options = {"model": "m", "cache": False, "backoff_s": 0.01, **(options or {})}
    return Experiment.model_validate(
        {
            "id": experiment_id,
            "seed": 3,
            "backend": {"id": "openai_compatible", "endpoint_url": url, "options": backend_options},
            "pipeline": [
                {"name": "seed", "module": "tests.helpers:SeedArithmetic",
                 "options": {"count": count}},
                {"name": "predict", "options": {"prompt": {"user": user}}},
                *stages,
            ],
            **fields,
        }
    )  # fmt: skip


def fixed_events() -> list[dict[str, Any]]:
    """Variant a: latencies 10, 20, 30, 40, 100 ms, one failure, cost 0.1 each; variant b: two
    events kept at a sampling rate of 0.5, cost 0.2 each."""
    a = [
        event(i, variant="a", sample_id=f"s{i}", latency_ms=ms, cost=0.1, success=i != 4,
              prompt_tokens=10, completion_tokens=5)
        for i, ms in enumerate([10, 20, 30, 40, 100])
    ]  # fmt: skip
    b = [
        event(10 + i, variant="b", sample_id=f"s{i}", latency_ms=ms, cost=0.2, success=True,
              sampling_rate=0.5)
        for i, ms in enumerate([50, 70])
    ]  # fmt: skip
    lifecycle = [{"schema_version": 1, "event_id": "e20", "event": "run_completed",
                  "timestamp": (T0 + timedelta(minutes=20)).isoformat(), "duration_ms": 12.5}]  # fmt: skip
    return a + b + lifecycle


def write(path: Path, rows: list[dict[str, Any]], tail: bytes = b"") -> Path:
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in rows) + tail)
    return path


def test_metrics_match_hand_computed_values(tmp_path: Path) -> None:
    frame, problems = events_frame([write(tmp_path / "telemetry.jsonl", fixed_events())])
    assert problems == []
    table = request_metrics(frame).set_index("variant")
    a, b = table.loc["a"], table.loc["b"]
    assert a["requests"] == 5 and a["success_rate"] == 0.8 and a["failure_rate"] == 0.2
    assert a["latency_mean_ms"] == 40 and a["latency_median_ms"] == 30
    # sample standard deviation: squares 900 + 400 + 100 + 0 + 3600 = 5000, / 4, square root
    assert a["latency_std_ms"] == pytest.approx(35.35533906)
    # type 7 quantiles: h = (n - 1) p; p90: 40 + 0.6 * 60, p95: 40 + 0.8 * 60, p99: 40 + 0.96 * 60
    assert (a["latency_p50_ms"], a["latency_p90_ms"]) == (30, pytest.approx(76))
    assert (a["latency_p95_ms"], a["latency_p99_ms"]) == (pytest.approx(88), pytest.approx(97.6))
    assert a["cost_total"] == pytest.approx(0.5) and a["cost_per_1k_requests"] == pytest.approx(100)
    assert a["prompt_tokens"] == 50 and a["tokens_per_request"] == 15
    # kept at half: each event stands for two requests in counts and costs
    assert b["requests"] == 4 and b["events"] == 2
    assert b["cost_total"] == pytest.approx(0.8) and b["cost_per_request"] == pytest.approx(0.2)
    assert b["latency_mean_ms"] == 60  # quantiles of the kept events
    overall = request_metrics(frame, by=[]).iloc[0]
    assert overall["requests"] == 9


def test_windows(tmp_path: Path) -> None:
    frame, _ = events_frame([write(tmp_path / "t.jsonl", fixed_events())])
    # the newest event is at minute 20: the last 10 minutes hold b's two (minutes 10, 11) and it
    last = within(frame, last=parse_duration("10m"))
    assert sorted(last["event_id"]) == ["e10", "e11", "e20"]
    assert list(within(frame, last_n=2)["event_id"]) == ["e10", "e11", "e20"]
    since = within(frame, since=T0 + timedelta(minutes=3), until=T0 + timedelta(minutes=10))
    assert list(since["event_id"]) == ["e3", "e4", "e10"]
    with pytest.raises(TelemetryQueryError, match="--since: expected a time with its UTC offset"):
        within(frame, since=datetime(2026, 12, 3))
    for bad in ("0h", "1 week", "-1m", "h"):
        with pytest.raises(TelemetryQueryError, match="--last: expected a positive duration"):
            parse_duration(bad)
    with pytest.raises(TelemetryQueryError, match="--by: expected event fields"):
        request_metrics(frame, by=["nonsense"])


def test_compare_pairs_on_shared_samples(tmp_path: Path) -> None:
    from scipy import stats

    frame, _ = events_frame([write(tmp_path / "t.jsonl", fixed_events())])
    a, b = frame[frame["variant"] == "a"], frame[frame["variant"] == "b"]
    paired = compare_requests(a, b)  # b answered s0 and s1, as a did: paired on those two
    assert paired["test"] == "wilcoxon_signed_rank" and paired["n_paired"] == 2
    apart = compare_requests(a, b.assign(sample_id=["t0", "t1"]))
    assert apart["test"] == "mann_whitney_u"
    expected_u = stats.mannwhitneyu([10, 20, 30, 40, 100], [50, 70])
    assert apart["p_value"] == pytest.approx(expected_u.pvalue)
    shared = compare_requests(a, a.assign(latency_ms=a["latency_ms"] + [1, 2, 3, 4, 5]))
    assert shared["test"] == "wilcoxon_signed_rank" and shared["n_paired"] == 5
    expected = stats.wilcoxon([10, 20, 30, 40, 100], [11, 22, 33, 44, 105])
    assert shared["p_value"] == pytest.approx(expected.pvalue)


def test_exports_round_trip_and_never_overwrite(tmp_path: Path) -> None:
    frame, _ = events_frame([write(tmp_path / "t.jsonl", fixed_events())])
    read = {
        "csv": lambda p: pd.read_csv(p),
        "jsonl": lambda p: pd.read_json(p, lines=True, dtype=False),
        "parquet": lambda p: pd.read_parquet(p),
    }
    for fmt, reader in read.items():
        path = export_events(frame, fmt, tmp_path / f"out.{fmt}")
        back = reader(path)
        assert list(back.columns) == list(frame.columns)
        assert list(back["event_id"]) == list(frame["event_id"])
        assert pd.to_datetime(back["timestamp"], utc=True).tolist() == frame["timestamp"].tolist()
        assert back["latency_ms"].tolist()[:5] == [10, 20, 30, 40, 100]
        with pytest.raises(ExportError, match="already exists"):
            export_events(frame, fmt, path)
    target = tmp_path / "elsewhere.csv"
    (tmp_path / "link.csv").symlink_to(target)
    with pytest.raises(ExportError, match="already exists"):
        export_events(frame, "csv", tmp_path / "link.csv")
    assert not target.exists()
    with pytest.raises(ExportError, match="expected one of csv, jsonl, parquet"):
        export_events(frame, "xml", tmp_path / "x.xml")


def test_hostile_lines_are_located_and_the_rest_kept(tmp_path: Path) -> None:
    good = fixed_events()[:2]
    rows = [
        *good,
        {**event(30), "prompt": "the user's text"},  # a field the schema does not have
        {**event(31), "latency_ms": -5},
        {**event(32), "timestamp": "2026-12-03T09:00:00"},  # no UTC offset
        {**event(33), "event": "Request; rm -rf"},
    ]
    path = write(tmp_path / "telemetry.jsonl", rows, tail=b'{"schema_version": 1, "eve')
    with path.open("ab") as handle:
        handle.write(b"\n\xff\xfe not utf-8\n" + b"x" * 70_000 + b"\n[1, 2]\n")
    events, problems = read_events(path)
    assert [e.event_id for e in events] == ["e0", "e1"]
    located = "\n".join(problems)
    for line, what in (
        (3, "prompt: Extra inputs are not permitted"),
        (4, "latency_ms: Input should be greater than or equal to 0"),
        (5, "timestamp: expected a time with its UTC offset"),
        (6, "event: String should match pattern"),
        (7, "expected one JSON object per line"),
        (8, "expected UTF-8 text"),
        (9, "expected a line under 65536 bytes"),
    ):
        assert f"{path}:{line}: {what}" in located, located
    assert len(problems) == 8  # the torn line, bad bytes and the array too
    link = tmp_path / "link.jsonl"
    link.symlink_to(path)
    assert read_events(link) == ([], [f"{link}: expected a regular file, found a symlink"])


WRITER = """
import sys
from pathlib import Path
from crucible_dagster.telemetry.writer import EventWriter
write = EventWriter(Path(sys.argv[1]))
for i in range(int(sys.argv[2])):
    write({"schema_version": 1, "event_id": f"{sys.argv[3]}-{i}", "event": "request",
           "timestamp": "2026-12-03T09:00:00+00:00", "message": "x" * 3000,
           "variant": "v", "sample_id": str(i), "success": True})
"""


@pytest.mark.slow  # Python subprocesses
def test_processes_and_threads_append_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.jsonl"
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), "300", f"p{n}"])
        for n in range(3)
    ]
    writer = EventWriter(path)

    def threads(n: int) -> None:
        for i in range(300):
            writer(json.loads(json.dumps({**event(0), "event_id": f"t{n}-{i}"})))

    pool = [threading.Thread(target=threads, args=(n,)) for n in range(3)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    events, problems = read_events(path)
    assert problems == [] and len(events) == 1800
    assert len({e.event_id for e in events}) == 1800


@pytest.mark.slow  # Python subprocesses
def test_a_killed_writer_leaves_every_finished_line(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "10000000", "k"])
    deadline = time.monotonic() + 30
    while not path.exists() or path.stat().st_size < 200_000:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    events, problems = read_events(path)
    assert len(events) > 50 and len(problems) <= 1  # at most the line being written
    assert all(p.startswith(f"{path}:{len(events) + 1}:") for p in problems)


def test_a_run_records_one_request_event_per_answer(tmp_path: Path, artifacts_dir: Path) -> None:
    """Against the bundled server: injected 503s retried, a cache hit, each answer an event of
    the predict stage, every line of the run's telemetry.jsonl valid against the schema."""
    from crucible_dagster.contrib.llm_server import llm_server
    from crucible_dagster.runtime.runner import run

    with llm_server() as (url, server):
        server.fail_next(2, status=503)
        again = {"name": "again", "module": "crucible_dagster.evaluation.predict:PredictStage",
                 "options": {"prompt": {"user": "{{ question }}"}}}  # fmt: skip
        experiment = chat_experiment(
            "telemetered",
            url,
            count=4,
            options={"cache": True, "cache_dir": str(tmp_path / "cache")},
            stages=(again,),
        )
        result = run(experiment)
    assert result.status == "completed", result.failure
    events, problems = read_events(Path(str(result.run_dir)) / "telemetry.jsonl")
    assert problems == []
    requests = [e for e in events if e.event == "request"]
    assert [e.stage for e in requests] == ["predict"] * 4 + ["again"] * 4
    first, second = requests[:4], requests[4:]
    assert sum(e.extra_requests or 0 for e in first) == 2  # the two 503s, retried
    retries = [e for e in events if e.event == "retry"]
    assert [(e.stage, e.error_kind, e.attempt) for e in retries] == [
        ("predict", "http_503", 1),
        ("predict", "http_503", 1),
    ] or [(e.error_kind, e.attempt) for e in retries] == [("http_503", 1), ("http_503", 2)]
    assert all(e.wait_ms is not None and e.sample_id for e in retries)
    assert all(e.success and not e.cached for e in first)
    assert all(e.cached for e in second)  # the same prompts: answered from the cache
    assert {(e.variant, e.model, e.provider) for e in requests} == {
        ("model", "m", "openai_compatible")
    }
    assert all(e.prompt_tokens and e.completion_tokens for e in first)
    lifecycle = [e.event for e in events if e.event != "request"]
    assert lifecycle[0] == "run_started" and lifecycle[-1] == "run_completed"
    assert all(e.host and e.pid for e in events)


def test_the_cli_prints_exports_and_compares(cli: Cli, tmp_path: Path, artifacts_dir: Path) -> None:
    run_dir = artifacts_dir / "x" / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / "manifest.json").write_text("{}")
    write(run_dir / "telemetry.jsonl", fixed_events())
    out = cli("telemetry", "x", "--json")
    rows = {r["variant"]: r for r in json.loads(out.out)}
    assert rows["a"]["latency_p90_ms"] == pytest.approx(76) and rows["b"]["requests"] == 4
    text = cli("telemetry", str(run_dir), "--by", "variant,model", "--last", "10m")
    assert "variant=b" in text.out and "variant=a" not in text.out
    exported = cli("telemetry", "x", "--export", "parquet", "--out", str(tmp_path / "e.parquet"))
    assert exported.code == 0 and len(pd.read_parquet(tmp_path / "e.parquet")) == 8
    again = cli("telemetry", "x", "--export", "parquet", "--out", str(tmp_path / "e.parquet"))
    assert again.code == 1 and "already exists" in again.err
    bad = cli("telemetry", "x", "--last", "forever")
    assert bad.code == 2 and "--last: expected a positive duration" in bad.err
    missing = cli("telemetry", "../etc")
    assert missing.code == 1 and "Traceback" not in missing.err


def _prompted(url: str, tmp_path: Path, **telemetry: Any) -> Any:
    return chat_experiment(
        "privacy",
        url,
        count=40,
        user="Mail jane.doe@example.com about {{ question }}",
        telemetry=telemetry or None,
    )


def _requests_of(result: Any) -> tuple[list[Any], str]:
    path = Path(str(result.run_dir)) / "telemetry.jsonl"
    events, problems = read_events(path)
    assert problems == []
    return [e for e in events if e.event == "request"], path.read_text()


def test_no_text_unless_asked_and_then_redacted(tmp_path: Path, artifacts_dir: Path) -> None:
    from crucible_dagster.contrib.llm_server import llm_server
    from crucible_dagster.runtime.runner import run

    with llm_server() as (url, _):
        plain = run(_prompted(url, tmp_path), run_id="plain")
        captured = run(_prompted(url, tmp_path, capture_text=True), run_id="captured")
    requests, text = _requests_of(plain)
    assert len(requests) == 40 and all(e.input_text is None for e in requests)
    assert "jane.doe" not in text and "Mail " not in text  # not a word of the prompt
    requests, text = _requests_of(captured)
    assert all("Mail [REDACTED:email] about" in str(e.input_text) for e in requests)
    assert all(e.output_text for e in requests)
    assert "jane.doe@example.com" not in text


def test_a_seeded_share_of_requests_is_kept_and_counted_back(
    tmp_path: Path, artifacts_dir: Path
) -> None:
    from crucible_dagster.contrib.llm_server import llm_server
    from crucible_dagster.runtime.runner import run

    with llm_server() as (url, server):
        first = run(_prompted(url, tmp_path, sampling_rate=0.25), run_id="a")
        second = run(_prompted(url, tmp_path, sampling_rate=0.25), run_id="b")
    kept_a, _ = _requests_of(first)
    kept_b, _ = _requests_of(second)
    assert 0 < len(kept_a) < 40 and {e.sampling_rate for e in kept_a} == {0.25}
    assert [e.sample_id for e in kept_a] == [e.sample_id for e in kept_b]  # the same share
    frame, _ = events_frame([Path(str(first.run_dir)) / "telemetry.jsonl"])
    (row,) = request_metrics(frame).to_dict(orient="records")
    assert row["requests"] == 4 * len(kept_a) and row["events"] == len(kept_a)
    assert sum(server.requests.values()) == 80  # sampling drops events, never requests


@pytest.mark.parametrize(
    "line, expected",
    [
        ({"success": "yes"}, "success: Input should be a valid boolean"),
        ({"latency_ms": "12.5"}, "latency_ms: Input should be a valid number"),
        ({"prompt_tokens": True}, "prompt_tokens: Input should be a valid integer"),
        ({"prompt_tokens": 10**30}, "prompt_tokens: Input should be less than or equal to"),
        ({"sampling_rate": 1e-300}, "sampling_rate: Input should be greater than or equal to"),
        ({"variant": None}, "a request event needs variant"),
    ],
)
def test_a_line_we_did_not_write_is_reported_not_converted(
    tmp_path: Path, line: dict[str, Any], expected: str
) -> None:
    """Attack findings (issue 27): strict types, bounds, the fields a request must have."""
    base = event(0, variant="a", sample_id="s", success=True)
    path = write(tmp_path / "t.jsonl", [base, {**base, **line}])
    events, problems = read_events(path)
    assert len(events) == 1 and len(problems) == 1
    assert problems[0].startswith(f"{path}:2: ") and expected in problems[0], problems


def test_infinity_duplicates_and_deep_nesting_are_reported(tmp_path: Path) -> None:
    base = json.dumps(event(0, variant="a", sample_id="s", success=True))
    path = tmp_path / "t.jsonl"
    path.write_text(
        base + "\n"
        + base.replace('"event_id"', '"latency_ms": 1e400, "event_id"') + "\n"
        + base.replace('"event_id"', '"latency_ms": Infinity, "event_id"') + "\n"
        + base.replace('"event_id"', '"success": false, "event_id"') + "\n"
        + '{"a":' * 5000 + "1" + "}" * 5000 + "\n"
    )  # fmt: skip
    events, problems = read_events(path)
    assert len(events) == 1
    assert f"{path}:2: latency_ms: Input should be a finite number" in problems[0]
    assert f"{path}:3: latency_ms: Input should be a finite number" in problems[1]
    assert f"{path}:4: success: written twice in one event" in problems[2]
    assert f"{path}:5: expected an event, found JSON nested too deep" in problems[3]


def test_unpriced_requests_have_no_cost_rather_than_zero(tmp_path: Path) -> None:
    rows = [event(i, variant="a", sample_id=f"s{i}", success=True, latency_ms=5) for i in range(3)]
    frame, _ = events_frame([write(tmp_path / "t.jsonl", rows)])
    row = request_metrics(frame).iloc[0]
    assert row["cost_total"] is None or row["cost_total"] != row["cost_total"]


def test_csv_export_neutralises_formulas(tmp_path: Path) -> None:
    rows = [event(0, variant="=HYPERLINK(\"http://x\")", sample_id="@SUM(1)", success=True,
                  model="a\rb")]  # fmt: skip
    frame, _ = events_frame([write(tmp_path / "t.jsonl", rows)])
    path = export_events(frame, "csv", tmp_path / "out.csv")
    back = pd.read_csv(path)
    assert back["variant"][0] == '\'=HYPERLINK("http://x")'
    assert back["sample_id"][0] == "'@SUM(1)" and back["model"][0] == "a\rb"


def test_the_cli_refuses_flags_that_mean_nothing_and_names_unreadable_files(
    cli: Cli, tmp_path: Path, artifacts_dir: Path
) -> None:
    run_dir = artifacts_dir / "x" / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / "manifest.json").write_text("{}")
    write(run_dir / "telemetry.jsonl", fixed_events())
    for args, expected in (
        (("--out", str(tmp_path / "x.csv")), "--out: given without --export"),
        (("--vs", ""), "--vs: expected a run directory"),
        (("--metric", "cost"), "--metric: compares with --vs"),
        (("--last", "99999999999999999999d"), "expected a positive duration"),
        (("--since", "yesterday"), "expected an ISO 8601 time with its UTC offset"),
        (("--since", "2026-12-03T10:00+00:00", "--until", "2026-12-03T09:00+00:00"),
         "--since: expected a time before --until"),
    ):  # fmt: skip
        said = cli("telemetry", "x", *args)
        assert said.code != 0 and expected in said.err, (args, said)
    other = artifacts_dir / "y" / "r2"
    other.mkdir(parents=True)
    (other / "telemetry.jsonl").symlink_to(run_dir / "telemetry.jsonl")
    said = cli("telemetry", "y")
    assert said.code == 1 and "telemetry.jsonl: a symlink, not read" in said.err


def test_a_finished_record_holds_no_descriptor_of_its_file(artifacts_dir: Path) -> None:
    """The writer keeps its file open while the run writes; once the record is final the
    descriptor goes, even while the record object lives on (a code server holds many)."""
    from crucible_dagster import Experiment
    from crucible_dagster.runtime.run_record import RunRecord

    def held() -> list[Path]:
        return [Path(f"/proc/self/fd/{fd}").resolve() for fd in os.listdir("/proc/self/fd")]

    experiment = Experiment.model_validate({"id": "x", "pipeline": [{"name": "validate"}]})
    record = RunRecord.create(artifacts_dir / "x" / "r", experiment, run_id="r")
    path = (artifacts_dir / "x" / "r" / "telemetry.jsonl").resolve()
    assert path in held()
    record.finish("completed")
    assert path not in held()
    record.telemetry.emit("sweep_compared", trials=0)  # a later event opens it again
    events, problems = read_events(path)
    assert problems == [] and [e.event for e in events][-1] == "sweep_compared"
