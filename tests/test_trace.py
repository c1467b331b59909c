from __future__ import annotations

import json

import pytest

from crucible_dagster.runtime.trace import TraceChain, TraceError, TraceEvent


def chain() -> TraceChain:
    c = TraceChain(name="demo")
    c = c.add(TraceEvent("stage_started", "Starting stage: a", "go"))
    c = c.add(
        TraceEvent(
            "decision_made",
            'Pick "safe" <path>',
            "safer",
            alternatives=("fast", "safe"),
            confidence=0.72,
        )
    )
    return c.add(TraceEvent("stage_completed", "Completed stage: a", "ok"))


def test_event_validation() -> None:
    with pytest.raises(TraceError, match="Invalid event type"):
        TraceEvent("stage_start", "d", "r")
    with pytest.raises(TraceError, match=r"Confidence must be between 0\.0 and 1\.0"):
        TraceEvent("decision_made", "d", "r", confidence=1.5)
    with pytest.raises(TraceError, match="non-empty"):
        TraceEvent("decision_made", "", "r")


def test_json_roundtrip_and_statistics() -> None:
    c = chain()
    data = json.loads(c.export("json"))
    assert data["statistics"]["total_events"] == 3
    assert data["statistics"]["event_type_counts"] == {
        "stage_started": 1,
        "decision_made": 1,
        "stage_completed": 1,
    }
    assert TraceChain.from_dict(data) == c


def test_markdown_and_mermaid() -> None:
    c = chain()
    md = c.export("markdown")
    assert (
        "# Trace: demo" in md
        and "## 2. Decision Made: Pick" in md
        and "alternatives: fast, safe" in md
    )
    mermaid = c.export("mermaid")
    lines = mermaid.splitlines()
    assert lines[0] == "flowchart TD"
    assert "E0 --> E1" in mermaid and "E1 --> E2" in mermaid
    assert "<path>" not in mermaid and '"safe"' not in mermaid  # labels are escaped
    assert TraceChain(name="x").statistics() == {"total_events": 0}
