"""The Context threaded through the stages.

**Immutable by design**: every helper returns a new Context and never touches the
old one (the original's helpers are pure too). Under Dagster each op's output is a
distinct value, and a failed stage's pre-stage context is still intact for the report.
Stages must not mutate ``metrics``/``assigns``/... in place; use the helpers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crucible_dagster.runtime.trace import TraceChain, TraceError, TraceEvent

if TYPE_CHECKING:
    from crucible_dagster.experiment.ir import Experiment

COMPLETED_STAGES = "completed_stages"
#: the seed of a run whose experiment sets none: every run is seeded, so every run repeats
DEFAULT_SEED = 0


@dataclass(frozen=True, slots=True)
class Context:
    experiment_id: str
    run_id: str
    experiment: Experiment | None = None
    outputs: tuple[Any, ...] = ()
    metrics: Mapping[str, Any] = field(default_factory=dict)
    artifacts: Mapping[str, Any] = field(default_factory=dict)
    trace: TraceChain | None = None
    assigns: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    run_dir: str | None = None

    # --- the seed ------------------------------------------------------------------------
    @property
    def seed(self) -> int:
        """The run's seed, the one a stage reads: the experiment's (a sweep trial's experiment
        carries the trial's seed; ``--seed`` and the Launchpad's ``seed`` set it), else
        ``DEFAULT_SEED``. The manifest's ``seed`` keeps what the experiment said (None)."""
        seed = self.experiment.seed if self.experiment is not None else None
        return DEFAULT_SEED if seed is None else seed

    # --- metrics ---------------------------------------------------------------------
    def put_metric(self, key: str, value: Any) -> Context:
        return replace(self, metrics={**self.metrics, key: value})

    def get_metric(self, key: str, default: Any = None) -> Any:
        return self.metrics.get(key, default)

    def update_metric(self, key: str, fun: Callable[[Any], Any]) -> Context:
        """Apply ``fun`` to an existing metric; an absent key becomes None without calling ``fun``."""
        if key not in self.metrics:
            return self.put_metric(key, None)
        return self.put_metric(key, fun(self.metrics[key]))

    def merge_metrics(self, values: Mapping[str, Any]) -> Context:
        return replace(self, metrics={**self.metrics, **values})

    def has_metric(self, key: str) -> bool:
        return key in self.metrics

    # --- outputs ---------------------------------------------------------------------
    def add_output(self, item: Any) -> Context:
        return replace(self, outputs=(*self.outputs, item))

    def add_outputs(self, items: Iterable[Any]) -> Context:
        return replace(self, outputs=(*self.outputs, *items))

    # --- artifacts -------------------------------------------------------------------
    def put_artifact(self, key: str, value: Any) -> Context:
        return replace(self, artifacts={**self.artifacts, key: value})

    def get_artifact(self, key: str, default: Any = None) -> Any:
        return self.artifacts.get(key, default)

    def has_artifact(self, key: str) -> bool:
        return key in self.artifacts

    # --- assigns ---------------------------------------------------------------------
    def assign(
        self, key_or_values: str | Mapping[str, Any] | Sequence[tuple[str, Any]], value: Any = None
    ) -> Context:
        """``assign("k", v)`` sets one key; ``assign({...})`` or ``assign([(k, v), ...])`` merges (later wins)."""
        if isinstance(key_or_values, str):
            return replace(self, assigns={**self.assigns, key_or_values: value})
        return replace(self, assigns={**self.assigns, **dict(key_or_values)})

    def get_assign(self, key: str, default: Any = None) -> Any:
        return self.assigns.get(key, default)

    # --- stage bookkeeping -------------------------------------------------------------
    def mark_stage_complete(self, name: str) -> Context:
        done = self.completed_stages()
        if name in done:
            return self
        return self.assign(COMPLETED_STAGES, [*done, name])

    def stage_completed(self, name: str) -> bool:
        return name in self.completed_stages()

    def completed_stages(self) -> list[str]:
        return list(self.assigns.get(COMPLETED_STAGES) or [])

    # --- trace ---------------------------------------------------------------------------
    @property
    def tracing_enabled(self) -> bool:
        return self.trace is not None

    def with_trace(self, name: str | None = None, **metadata: Any) -> Context:
        chain = TraceChain(
            name=name or self.experiment_id,
            metadata={"experiment_id": self.experiment_id, "run_id": self.run_id, **metadata},
        )
        return replace(self, trace=chain)

    def emit(
        self,
        event_type: str,
        decision: str,
        reasoning: str,
        *,
        alternatives: Sequence[str] = (),
        confidence: float = 1.0,
        metadata: Mapping[str, Any] | None = None,
        stage_id: str | None = None,
    ) -> Context:
        """Append a trace event; a no-op when tracing is off (the original's behaviour)."""
        if self.trace is None:
            return self
        event = TraceEvent(
            type=event_type,
            decision=decision,
            reasoning=reasoning,
            alternatives=tuple(alternatives),
            confidence=confidence,
            metadata=dict(metadata or {}),
            stage_id=stage_id,
            experiment_id=self.experiment_id,
        )
        return replace(self, trace=self.trace.add(event))

    def emit_decision(
        self,
        decision: str,
        reasoning: str,
        alternatives: Sequence[str] = (),
        confidence: float = 1.0,
        **metadata: Any,
    ) -> Context:
        return self.emit(
            "decision_made",
            decision,
            reasoning,
            alternatives=alternatives,
            confidence=confidence,
            metadata=metadata,
        )

    def event_count(self) -> int:
        return len(self.trace.events) if self.trace else 0

    def last_event(self) -> TraceEvent | None:
        return self.trace.events[-1] if self.trace and self.trace.events else None

    def confidence_stats(self) -> dict[str, Any]:
        if self.trace is None:
            return {}
        values = [e.confidence for e in self.trace.events]
        if not values:
            return {"count": 0}
        return {
            "count": len(values),
            "mean": round(sum(values) / len(values), 4),
            "min": min(values),
            "max": max(values),
        }

    def export_trace(self, fmt: str = "json") -> str | None:
        return self.trace.export(fmt) if self.trace else None

    def save_trace(self, path: str | Path) -> Path:
        if self.trace is None:
            raise TraceError("no trace: this run was not traced (run with trace=True)")
        from crucible_dagster.common.files import atomic_write_text

        return atomic_write_text(Path(path), self.trace.export("json"))
