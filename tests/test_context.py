"""Context helpers are pure: each returns a new Context and leaves the old one intact."""

from __future__ import annotations

import pytest

from crucible_dagster import Context
from crucible_dagster.runtime.trace import TraceError


def test_metric_helpers() -> None:
    ctx = Context("e", "r")
    one = ctx.put_metric("a", 1)
    assert ctx.metrics == {} and one.get_metric("a") == 1
    assert one.get_metric("missing", 5) == 5
    assert one.update_metric("a", lambda v: v + 1).metrics["a"] == 2
    absent = one.update_metric("b", lambda v: pytest.fail("must not be called"))
    assert absent.has_metric("b") and absent.metrics["b"] is None
    assert one.merge_metrics({"a": 9, "c": 3}).metrics == {"a": 9, "c": 3}


def test_outputs_artifacts_assigns() -> None:
    ctx = Context("e", "r").add_output(1).add_outputs([2, 3])
    assert ctx.outputs == (1, 2, 3)
    art = ctx.put_artifact("k", "v")
    assert art.get_artifact("k") == "v" and art.has_artifact("k") and not ctx.has_artifact("k")
    assert ctx.assign("a", 1).assign({"b": 2}).assign([("a", 3), ("a", 4)]).assigns == {
        "a": 4,
        "b": 2,
    }


def test_stage_completion() -> None:
    ctx = (
        Context("e", "r").mark_stage_complete("a").mark_stage_complete("b").mark_stage_complete("a")
    )
    assert ctx.completed_stages() == ["a", "b"]
    assert ctx.stage_completed("a") and not ctx.stage_completed("c")
    assert Context("e", "r").completed_stages() == []


def test_scenario_23_trace_helpers(tmp_path) -> None:
    ctx = Context("e", "r").with_trace()
    ctx = ctx.emit(
        "stage_failed",
        "Failed stage: data_load",
        "Stage data_load failed with error: file_not_found",
        confidence=0.0,
    )
    last = ctx.last_event()
    assert last is not None and last.type == "stage_failed"
    assert (
        "data_load" in last.decision
        and "file_not_found" in last.reasoning
        and last.confidence == 0.0
    )
    traced = Context("e", "r").with_trace()
    for c in (0.7, 0.8, 0.9):
        traced = traced.emit_decision("d", "r", confidence=c)
    assert traced.confidence_stats() == {"count": 3, "mean": 0.8, "min": 0.7, "max": 0.9}
    plain = Context("e", "r")
    assert (
        plain.export_trace() is None and plain.event_count() == 0 and plain.confidence_stats() == {}
    )
    with pytest.raises(TraceError, match="no trace"):
        plain.save_trace(tmp_path / "t.json")
    assert traced.save_trace(tmp_path / "t.json").exists()
    with pytest.raises(TraceError, match="Unsupported export format: pdf"):
        traced.trace.export("pdf")
