"""Decision traces: an append-only chain of events, exported as JSON, markdown or Mermaid.

One vocabulary everywhere (port decisions): ``stage_started``, ``stage_completed``,
``stage_failed``, ``stage_skipped`` plus the original trace library's decision types.
Chains are immutable: ``add`` returns a new chain, matching the Context.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from crucible_dagster.common.isotime import parse_datetime

STAGE_EVENT_TYPES = ("stage_started", "stage_completed", "stage_failed", "stage_skipped")
DECISION_EVENT_TYPES = (
    "hypothesis_formed",
    "alternative_rejected",
    "constraint_evaluated",
    "pattern_applied",
    "ambiguity_flagged",
    "confidence_updated",
    "decision_made",
    "training_started",
    "training_completed",
    "epoch_started",
    "epoch_completed",
    "batch_processed",
    "loss_computed",
    "metric_recorded",
    "gradient_computed",
    "checkpoint_saved",
    "checkpoint_loaded",
    "early_stopped",
    "deployment_started",
    "model_loaded",
    "inference_completed",
    "deployment_completed",
    "reward_received",
    "policy_updated",
    "experience_sampled",
)
EVENT_TYPES = frozenset(STAGE_EVENT_TYPES + DECISION_EVENT_TYPES)
EXPORT_FORMATS = ("json", "markdown", "mermaid")


class TraceError(ValueError):
    """Bad trace event or unsupported export."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True, slots=True)
class TraceEvent:
    type: str
    decision: str
    reasoning: str
    alternatives: tuple[str, ...] = ()
    confidence: float = 1.0
    metadata: dict[str, Any] = field(default_factory=dict)
    stage_id: str | None = None
    experiment_id: str | None = None
    parent_id: str | None = None
    depends_on: tuple[str, ...] = ()
    code_section: str | None = None
    spec_reference: str | None = None
    id: str = field(default_factory=lambda: secrets.token_hex(16))
    timestamp: datetime = field(default_factory=_now)

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise TraceError(
                f"Invalid event type: {self.type!r}; expected one of {sorted(EVENT_TYPES)}"
            )
        if not isinstance(self.confidence, int | float) or not 0.0 <= float(self.confidence) <= 1.0:
            raise TraceError(f"Confidence must be between 0.0 and 1.0, got: {self.confidence!r}")
        if not self.decision or not self.reasoning:
            raise TraceError("Decision and reasoning must be non-empty strings")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "timestamp": self.timestamp.isoformat(),
            "type": self.type,
            "decision": self.decision,
            "reasoning": self.reasoning,
            "alternatives": list(self.alternatives),
            "confidence": float(self.confidence),
            "metadata": self.metadata,
            "stage_id": self.stage_id,
            "experiment_id": self.experiment_id,
            "parent_id": self.parent_id,
            "depends_on": list(self.depends_on),
            "code_section": self.code_section,
            "spec_reference": self.spec_reference,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TraceEvent:
        fields = dict(data)
        fields["timestamp"] = parse_datetime(fields["timestamp"])
        fields["alternatives"] = tuple(fields.get("alternatives") or ())
        fields["depends_on"] = tuple(fields.get("depends_on") or ())
        return cls(**fields)


@dataclass(frozen=True, slots=True)
class TraceChain:
    name: str
    description: str | None = None
    events: tuple[TraceEvent, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: secrets.token_hex(16))
    created_at: datetime = field(default_factory=_now)

    def add(self, event: TraceEvent) -> TraceChain:
        return replace(self, events=(*self.events, event))

    def events_of_type(self, event_type: str) -> list[TraceEvent]:
        return [e for e in self.events if e.type == event_type]

    def statistics(self) -> dict[str, Any]:
        if not self.events:
            return {"total_events": 0}
        confidences = [e.confidence for e in self.events]
        first, last = self.events[0].timestamp, self.events[-1].timestamp
        return {
            "total_events": len(self.events),
            "event_type_counts": dict(Counter(e.type for e in self.events)),
            "avg_confidence": sum(confidences) / len(confidences),
            "duration_seconds": int((last - first).total_seconds()),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "created_at": self.created_at.isoformat(),
            "metadata": self.metadata,
            "events": [e.to_dict() for e in self.events],
            "statistics": self.statistics(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TraceChain:
        return cls(
            id=data["id"],
            name=data["name"],
            description=data.get("description"),
            created_at=parse_datetime(data["created_at"]),
            metadata=data.get("metadata") or {},
            events=tuple(TraceEvent.from_dict(e) for e in data.get("events", [])),
        )

    def export(self, fmt: str) -> str:
        if fmt == "json":
            return json.dumps(self.to_dict(), indent=2, default=str)
        if fmt == "markdown":
            return to_markdown(self)
        if fmt == "mermaid":
            return to_mermaid(self)
        raise TraceError(
            f"Unsupported export format: {fmt}; expected one of: {', '.join(EXPORT_FORMATS)}"
        )


def to_markdown(chain: TraceChain) -> str:
    stats = chain.statistics()
    lines = [f"# Trace: {chain.name}", ""]
    if chain.description:
        lines += [chain.description, ""]
    lines += [f"- id: `{chain.id}`", f"- total events: {stats['total_events']}"]
    if chain.events:
        lines.append(f"- average confidence: {stats['avg_confidence']:.2f}")
    lines.append("")
    for number, event in enumerate(chain.events, start=1):
        title = event.type.replace("_", " ").title()
        lines.append(f"## {number}. {title}: {event.decision}")
        lines.append("")
        lines.append(f"- reasoning: {event.reasoning}")
        if event.alternatives:
            lines.append(f"- alternatives: {', '.join(event.alternatives)}")
        lines.append(f"- confidence: {event.confidence:.2f}")
        lines.append(f"- timestamp: {event.timestamp.isoformat()}")
        lines.append("")
    return "\n".join(lines)


def _mermaid_label(text: str, limit: int = 60) -> str:
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return text.replace('"', "'").replace("<", "&lt;").replace(">", "&gt;")


def to_mermaid(chain: TraceChain) -> str:
    lines = ["flowchart TD"]
    for index, event in enumerate(chain.events):
        lines.append(
            f'    E{index}["{_mermaid_label(event.type + ": " + event.decision)}"]:::{event.type}'
        )
        if index:
            lines.append(f"    E{index - 1} --> E{index}")
    colours = {
        "stage_started": "#dbeafe",
        "stage_completed": "#dcfce7",
        "stage_failed": "#fee2e2",
        "stage_skipped": "#f3f4f6",
        "decision_made": "#fef9c3",
    }
    for event_type in sorted({e.type for e in chain.events}):
        lines.append(f"    classDef {event_type} fill:{colours.get(event_type, '#ede9fe')}")
    return "\n".join(lines)
