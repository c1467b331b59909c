"""Reading a finished run's events in tests."""

from __future__ import annotations

from typing import Any

import dagster as dg


def step_keys(result: Any, event_type: dg.DagsterEventType) -> set[str]:
    """Step keys of every event of ``event_type`` in an execution result."""
    return {e.step_key for e in result.all_events if e.event_type == event_type and e.step_key}


def sweep_steps(keys: Any, job: str) -> set[str]:
    """A sweep job's step keys as the sweep names its steps: each key is checked to be a step of
    the job's graph (``<job>__sweep.<step>``, the sweep asset's graph) and the prefix dropped."""
    prefix = f"{job}__sweep."
    keys = {k for k in keys if k}
    assert all(k.startswith(prefix) for k in keys), (prefix, sorted(keys))
    return {k[len(prefix) :] for k in keys}


def sweep_graph(job: dg.JobDefinition) -> dg.GraphDefinition:
    """The sweep's own graph (plan, trials, compare) inside its job."""
    node = job.graph.node_named(f"{job.name}__sweep").definition
    assert isinstance(node, dg.GraphDefinition)
    return node


def sweep_step(key: str | None, job: str) -> str:
    """One step key as ``sweep_steps`` gives it ("" for an event of no step)."""
    return next(iter(sweep_steps([key], job)), "")


def sweep_comparison(artifacts_dir: Any, experiment_id: str, run_id: str) -> dict[str, Any]:
    """A sweep run's comparison, as its record keeps it (the manifest's ``metrics.sweep``)."""
    import json
    from pathlib import Path

    manifest = Path(artifacts_dir) / experiment_id / run_id / "manifest.json"
    comparison: dict[str, Any] = json.loads(manifest.read_text())["metrics"]["sweep"]
    return comparison
