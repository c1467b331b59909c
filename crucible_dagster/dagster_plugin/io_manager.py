"""The Context crosses ops as JSON + Parquet/.npy blobs: no pickle, content-addressed, versioned.

Outputs live at ``<base>/<run_id>/<step_key>/<output>.json`` with the run's blobs in
``<base>/<run_id>/blobs/``; "re-execute from failure" loads the parent run's outputs
from there instead of recomputing them.

PII: with ``reliability.guardrails`` redacting PII, the steps before the guardrails hold the
raw values. Once the guardrails' redacted output is stored (or the guardrails stop the run on
a detection), this run's earlier outputs are deleted, with every blob no remaining output
uses; a ``<output>.redacted`` note stays in each one's place, so re-executing from a deleted
step says why it cannot.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from crucible_dagster import Context
from crucible_dagster.common.locations import StoragePath, storage_path
from crucible_dagster.runtime.driver import end_open_run
from crucible_dagster.runtime.serialization import (
    TAG,
    BlobStore,
    UnstorableValue,
    load_stored,
    save_stored,
)

IO_MANAGER_KEY = "crucible_io_manager"
#: outputs kept in memory for the next step in this process (a sweep's fan-in reads a few)
RECENT_OUTPUTS = 16
#: beside a deleted output: why it is gone
REDACTED_NOTE = ".redacted"


def redacted(ctx: Context) -> bool:
    """This Context went through the guardrails' PII redaction (its summary counts it)."""
    summary = ctx.metrics.get("guardrails")
    return isinstance(summary, dict) and "redacted" in summary


def _payload_redacted(payload: Any) -> bool:
    """A stored Context that went through redaction; values that are no Context count too."""
    if not isinstance(payload, dict) or payload.get("kind") == "value":
        return True
    summary = (payload.get("metrics") or {}).get("guardrails")
    return isinstance(summary, dict) and "redacted" in summary


def _blobs_in(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        if TAG in value and isinstance(value.get("blob"), str):
            yield value["blob"]
        for item in value.values():
            yield from _blobs_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _blobs_in(item)


def forget_unredacted(run_root: StoragePath) -> list[str]:
    """Delete the outputs under ``run_root`` stored before PII redaction, then every blob no
    remaining output refers to. Returns the deleted outputs' paths."""
    if not run_root.exists():
        return []
    kept: set[str] = set()
    deleted = []
    outputs: list[StoragePath] = list(run_root.rglob("*.json"))  # blobs: .parquet and .npy
    for path in outputs:
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            payload = None  # unreadable: nothing vouches that it holds no PII, so it goes
        if payload is not None and _payload_redacted(payload):
            kept.update(_blobs_in(payload))
            continue
        note = path.with_suffix(REDACTED_NOTE)
        note.write_text("deleted: it held values the guardrails redacted as PII\n")
        path.unlink()
        deleted.append(str(path))
    blobs = run_root / "blobs"
    if blobs.exists():
        for blob in blobs.iterdir():
            if blob.name not in kept:
                blob.unlink()
    return deleted


def _fail_run_record(obj: Any, step: str, message: str) -> None:
    """The run fails here, after the op recorded its stage: the manifest must say so too."""
    if not (isinstance(obj, Context) and obj.run_dir):
        return
    failure = {"stage": step, "error_type": "UnstorableValue", "message": message}
    end_open_run(obj.run_dir, "failed", obj, failure=failure)


class CrucibleContextIOManager(dg.ConfigurableIOManager):
    """Stores Contexts under ``base_dir`` (default: the Dagster instance's storage directory).

    ``base_dir`` is a path or any fsspec URL (``s3://bucket/crucible``, ``gs://...``), as
    Dagster's UPathIOManager takes one: on Celery or Kubernetes every worker must reach it, so
    a shared mount or an object store, never a worker's own disk.

    Every output is written; an input that this manager wrote a moment ago in the same process
    (the in-process executor's next step) is handed on as the object itself rather than read
    back, as the standalone runner hands it on. Another process, or a re-execution, reads it.
    """

    base_dir: str | None = None
    _stores: dict[str, BlobStore] = PrivateAttr(default_factory=dict)
    _recent: dict[str, Any] = PrivateAttr(default_factory=dict)
    #: run roots this process already purged: the steps after the guardrails add nothing raw
    _purged: set[str] = PrivateAttr(default_factory=set)

    def _root(self, instance: dg.DagsterInstance | None) -> StoragePath:
        if self.base_dir:
            return storage_path(self.base_dir)
        if instance is None:
            raise dg.DagsterInvariantViolationError(
                "CrucibleContextIOManager needs base_dir outside a run"
            )
        return Path(instance.storage_directory()) / "crucible"

    def _location(self, root: StoragePath, identifier: list[str]) -> tuple[StoragePath, BlobStore]:
        run_id, *rest = identifier
        run_root = root / run_id
        key = str(run_root)
        if key not in self._stores:
            self._stores[key] = BlobStore(run_root / "blobs")
        return run_root.joinpath(*rest).with_suffix(".json"), self._stores[key]

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        try:
            instance: dg.DagsterInstance | None = context.step_context.instance
        except (
            dg.DagsterInvariantViolationError
        ):  # built outside a run, e.g. build_output_context()
            instance = None
        root = self._root(instance)
        identifier = list(context.get_identifier())
        path, store = self._location(root, identifier)
        try:
            save_stored(obj, path, store)
        except UnstorableValue as exc:
            message = f"stage {context.step_key!r} produced a context that cannot be stored: {exc}"
            _fail_run_record(obj, context.step_key, message)
            raise dg.Failure(description=message) from None
        self._recent[str(path)] = obj
        while len(self._recent) > RECENT_OUTPUTS:
            del self._recent[next(iter(self._recent))]
        if (
            isinstance(obj, Context)
            and redacted(obj)
            and str(root / identifier[0]) not in self._purged
        ):
            self.forget_unredacted(root / identifier[0])

    def forget_unredacted(self, run_root: StoragePath) -> None:
        """``forget_unredacted`` for a run root, and this process's copies of those outputs."""
        for path in forget_unredacted(run_root):
            self._recent.pop(path, None)
        self._purged.add(str(run_root))

    def run_root(self, instance: dg.DagsterInstance, run_id: str) -> StoragePath:
        return self._root(None if self.base_dir else instance) / run_id

    def load_input(self, context: dg.InputContext) -> Any:
        upstream = context.upstream_output
        if upstream is None:
            raise dg.DagsterInvariantViolationError(
                "crucible ops only load their upstream stage's context"
            )
        root = self._root(None if self.base_dir else context.instance)
        path, store = self._location(root, list(upstream.get_identifier()))
        if str(path) in self._recent:
            return self._recent[str(path)]
        if not path.exists() and path.with_suffix(REDACTED_NOTE).exists():
            raise dg.Failure(
                description=f"the output of step {upstream.step_key!r} ({path}) was deleted "
                "because it held values the guardrails redacted as PII; run the job from its "
                "first step instead",
                allow_retries=False,
            )
        return load_stored(path, store)
