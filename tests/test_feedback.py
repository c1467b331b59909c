"""Feedback ingestion (issue 29): good and bad records counted and located, PII redacted,
sampling by id, retention; quality intervals against published and hand-computed values;
preference pairs; the stage end to end through the plain runner."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from crucible_dagster.experiment.ir import Feedback
from crucible_dagster.feedback.export import preference_pairs
from crucible_dagster.feedback.ingest import ingest, sampled
from crucible_dagster.feedback.quality import mean_interval, quality_by_period, wilson
from crucible_dagster.feedback.sources import read_records

NOW = datetime(2026, 12, 3, 12, tzinfo=timezone.utc)


def event(i: int | str, kind: str = "thumbs", value: Any = True, **more: Any) -> dict[str, Any]:
    return {"id": str(i), "feedback_type": kind, "feedback_value": value,
            "timestamp": "2026-12-02T10:00:00Z", **more}  # fmt: skip


def write_lines(path: Path, lines: list[Any]) -> Path:
    path.write_text(
        "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    )
    return path


def ingested(path: Path, **settings: Any) -> Any:
    config = Feedback(source=str(path), **settings)
    return ingest(read_records(config), config, seed=0, now=NOW)


def test_good_and_bad_records_each_land_in_one_count_and_every_bad_one_is_located(
    tmp_path: Path,
) -> None:
    path = write_lines(
        tmp_path / "events.jsonl",
        [
            event(1),
            event(2, "rating", 4),
            {"feedback_type": "thumbs", "feedback_value": True},  # line 3: no id
            event(4, "rating", "five"),  # line 4: a rating that is not a number
            event(5, latency_ms="slow"),  # line 5: a wrong type
            "{not json",  # line 6
            event(1),  # line 7: the id of line 1 again
            event(8, "label", "cat"),  # line 8: a type not ingested
            "",  # blank lines are not records
            event(9, "correction", "the right answer", output="a wrong one"),
        ],
    )
    found = ingested(path)
    assert found.counts == {"read": 9, "kept": 3, "invalid": 4, "duplicate_id": 1,
                            "other_type": 1, "expired": 0, "sampled_out": 0, "other_day": 0}  # fmt: skip
    assert sum(found.counts[k] for k in found.counts if k != "read") == found.counts["read"]
    located = {(e["where"].rsplit(":", 1)[1], e["field"]): e["problem"] for e in found.errors}
    assert located[("3", "id")] == "required, found nothing"
    assert located[("4", "feedback_value")].startswith(
        "expected a finite number for a rating event, found str 'five'"
    )
    assert 'found str "slow"' in located[("5", "latency_ms")]
    assert located[("6", "")].startswith("expected a JSON object, found invalid JSON")
    assert "found '1' again (first at" in located[("7", "id")]
    assert all(e["where"].startswith(str(path)) for e in found.errors)


def test_pii_is_redacted_and_user_ids_hashed_before_anything_is_kept(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "events.jsonl",
        [
            event(
                1,
                input="mail ana@example.org please",
                user_id="ana@example.org",
                metadata={"phone": "+44 20 7946 0958", "bob@example.com": 1},
            ),
            event(2, "correction", "call 555-867-5309 instead", output="x", session_id="s1"),
        ],
    )
    found = ingested(path)
    kept = json.dumps(found.events)
    for secret in ("ana@example.org", "7946 0958", "bob@example.com", "867-5309"):
        assert secret not in kept
    assert "[REDACTED:email]" in found.events[0]["input"]
    assert found.events[0]["user_id"].startswith("anon-")
    assert found.redactions == 4  # the ids are hashed, not counted as findings
    plain = ingested(path, anonymize_pii=False)
    assert plain.events[0]["user_id"] == "ana@example.org" and plain.redactions == 0


def test_sampling_keeps_the_same_events_by_id_at_about_the_rate(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "events.jsonl", [event(i) for i in range(4000)])
    found = ingested(path, sampling_rate=0.25)
    assert found.counts["kept"] + found.counts["sampled_out"] == 4000
    # binomial(4000, 0.25): sd 27.4; 5 sd either side
    assert abs(found.counts["kept"] - 1000) < 140
    again = ingested(path, sampling_rate=0.25)
    assert [e["id"] for e in again.events] == [e["id"] for e in found.events]
    assert all(sampled(str(i), 0, 1.0) for i in range(100))
    assert not any(sampled(str(i), 0, 0.0) for i in range(100))


def test_events_older_than_retention_days_are_counted_expired(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "events.jsonl",
        [event(1, timestamp="2026-11-01T00:00:00Z"), event(2), event(3, timestamp=None)],
    )
    found = ingested(path, retention_days=7)
    assert found.counts["expired"] == 1 and found.counts["kept"] == 2


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    # Newcombe (1998), Statistics in Medicine 17:857-872, Table II, method 3 (Wilson score)
    [
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_reproduces_newcombes_table(
    successes: int, trials: int, low: float, high: float
) -> None:
    found = wilson(successes, trials, 0.95)
    assert found["low"] == pytest.approx(low, abs=5e-5)
    assert found["high"] == pytest.approx(high, abs=5e-5)


def test_wilson_interval_against_the_formula_by_hand() -> None:
    k, n, z = 7, 10, 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    found = wilson(k, n, 0.95)
    assert (found["low"], found["high"]) == pytest.approx((centre - half, centre + half))
    assert wilson(0, 0, 0.95) == {"n": 0, "successes": 0, "share": None, "low": None,
                                  "high": None, "reason": "no events"}  # fmt: skip


def test_bootstrap_interval_of_a_mean_and_its_undefined_cases() -> None:
    # 400 ratings alternating 1..5: mean 3, sd sqrt(2); the percentile bootstrap's 95% interval
    # is within a few hundredths of the normal one, 3 +- 1.96 * sqrt(2) / 20 = [2.861, 3.139]
    ratings = [1 + i % 5 for i in range(400)]
    found = mean_interval(ratings, 0.95, seed=1)
    assert found["mean"] == 3.0
    assert found["low"] == pytest.approx(3 - 1.96 * math.sqrt(2) / 20, abs=0.02)
    assert found["high"] == pytest.approx(3 + 1.96 * math.sqrt(2) / 20, abs=0.02)
    assert mean_interval([], 0.95, 0)["reason"] == "no ratings"
    assert mean_interval([4], 0.95, 0) == {"n": 1, "mean": 4.0, "low": None, "high": None,
                                           "reason": "one rating"}  # fmt: skip
    assert mean_interval([4, 4, 4], 0.95, 0)["low"] == 4.0


def test_quality_per_version_and_day_compares_each_day_with_the_one_before() -> None:
    def kept(i: int, day: str, kind: str, value: Any, version: str = "v1") -> dict[str, Any]:
        return {"id": str(i), "day": day, "feedback_type": kind, "feedback_value": value,
                "model_version": version}  # fmt: skip

    events = [kept(i, "2026-12-01", "thumbs", i < 45) for i in range(50)]
    events += [kept(100 + i, "2026-12-02", "thumbs", i < 20) for i in range(50)]
    events += [kept(200, "2026-12-02", "rating", 3, "v2")]
    rows = quality_by_period(events)
    assert [(r["model_version"], r["day"]) for r in rows] == [
        ("v1", "2026-12-01"), ("v1", "2026-12-02"), ("v2", "2026-12-02")]  # fmt: skip
    drop = rows[1]["against_previous"]["thumbs_up"]
    assert drop["difference"] == pytest.approx(0.4 - 0.9)
    # Fisher's exact test of [[20, 45], [30, 5]], two-sided (R: fisher.test gives 1.1e-07)
    from scipy.stats import fisher_exact

    assert drop["p_value"] == pytest.approx(fisher_exact([[20, 45], [30, 5]]).pvalue)
    assert drop["p_value"] < 1e-6
    assert "against_previous" not in rows[2]  # v2 has no earlier day
    assert rows[2]["rating"]["reason"] == "one rating"


def test_preference_pairs_from_corrections_and_from_ratings_of_one_input() -> None:
    events: list[dict[str, Any]] = [
        {"id": "1", "feedback_type": "correction", "feedback_value": "Paris", "input": "capital?",
         "output": "Lyon"},
        {"id": "2", "feedback_type": "rating", "feedback_value": 5, "input": "q", "output": "good"},
        {"id": "3", "feedback_type": "rating", "feedback_value": 1, "input": "q", "output": "bad"},
        {"id": "4", "feedback_type": "thumbs", "feedback_value": True, "input": "r", "output": "a"},
        {"id": "5", "feedback_type": "thumbs", "feedback_value": True, "input": "r", "output": "b"},
    ]  # fmt: skip
    pairs = preference_pairs(events)
    assert pairs == [
        {"prompt": "capital?", "chosen": "Paris", "rejected": "Lyon", "source": "correction",
         "event_ids": ["1"]},
        {"prompt": "q", "chosen": "good", "rejected": "bad", "source": "rating",
         "event_ids": ["2", "3"]},
    ]  # fmt: skip  # r's two answers are tied: no pair


def test_parquet_source_reads_rows_and_locates_a_bad_one(tmp_path: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame(
        [event(1), event(2, "rating", None)]  # row 2: a rating without its value
    )
    frame["feedback_value"] = frame["feedback_value"].astype(object)
    path = tmp_path / "events.parquet"
    frame.to_parquet(path)
    found = ingested(path)
    assert found.counts["kept"] == 1 and found.counts["invalid"] == 1
    assert found.errors[0]["where"] == f"{path} row 2"


def test_a_day_keeps_that_days_events_and_counts_the_rest(tmp_path: Path) -> None:
    from datetime import date

    path = write_lines(
        tmp_path / "events.jsonl",
        [
            event(1, timestamp="2026-12-01T23:59:59Z"),
            event(2, timestamp="2026-12-02T00:00:00+00:00"),
            event(3, timestamp="2026-12-02T01:30:00+02:00"),
            event(4, timestamp=None),
        ],
    )
    config = Feedback(source=str(path))
    found = ingest(read_records(config), config, seed=0, now=NOW, day=date(2026, 12, 1))
    # 01:30 at +02:00 is 23:30 UTC the day before
    assert [e["id"] for e in found.events] == ["1", "3"]
    assert found.counts["other_day"] == 2 and found.counts["kept"] == 2


def test_ratings_too_large_to_average_are_undefined_with_the_reason() -> None:
    """Found by an outsider: ratings of 1e308 gave a mean of 5e307 with a null bound, and
    numpy's overflow warnings on the terminal."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = mean_interval([1e308, 1e308, -5], 0.95, seed=0)
    assert (
        found["mean"] is None
        and found["reason"] == "ratings too large to average in floating point"
    )
    rows = quality_by_period(
        [{"id": str(i), "day": day, "feedback_type": "rating", "feedback_value": v,
          "model_version": "v"} for i, (day, v) in enumerate(
            [("2026-12-01", 3), ("2026-12-01", 4), ("2026-12-02", 1e308), ("2026-12-02", 1e308)])]
    )  # fmt: skip
    compared = rows[1]["against_previous"]["rating"]
    assert compared == {"difference": None, "p_value": None,
                        "reason": "ratings too large to average in floating point"}  # fmt: skip
