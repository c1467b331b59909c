"""Context <-> files: JSON for the small parts, Parquet for tables, ``.npy`` for arrays. Never pickle.

Tables and arrays go to a content-addressed blob folder, so a DataFrame that does not
change between stages is written once per run. Payloads carry ``SCHEMA_VERSION`` so
an old run stays readable after a refactor.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import sys
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: loading the Dagster adapter must not load pandas
    import numpy as np
    import pandas as pd
    import pyarrow as pa

from crucible_dagster.common.files import (
    atomic_write_text,
    atomic_write_with,
    write_content_addressed,
)
from crucible_dagster.common.isotime import parse_datetime
from crucible_dagster.common.locations import StoragePath
from crucible_dagster.common.tables import is_dataframe, is_series
from crucible_dagster.experiment.ir import Experiment
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.trace import TraceChain

SCHEMA_VERSION = 1
TAG = "__crucible__"


class UnstorableValue(TypeError):
    """A value in the Context that is neither JSON-able nor a table or array."""


@dataclass(frozen=True)
class _Hashed:
    ref: weakref.ref[Any]
    digest: str


def _table_digest(table: pa.Table) -> str:
    """sha256 of an Arrow table: its schema (with the pandas metadata: index, dtypes) and every
    column's buffers as they are in memory, never Python objects."""
    hasher = hashlib.sha256(table.schema.serialize().to_pybytes())
    for column in table.columns:
        for chunk in column.chunks:
            hasher.update(f"{chunk.type}:{len(chunk)}:{chunk.offset}".encode())
            for buffer in chunk.buffers():
                hasher.update(b"-" if buffer is None else memoryview(buffer))
    return hasher.hexdigest()


def _write_table(frame: pd.DataFrame, tmp: Path) -> str:
    """Convert once, then hash the Arrow buffers in a helper thread while the same table is
    written as Parquet (both release the GIL); returns the blob's name."""
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame)  # what DataFrame.to_parquet does first
    with ThreadPoolExecutor(max_workers=1) as pool:
        digest = pool.submit(_table_digest, table)
        pq.write_table(table, tmp)
        return digest.result() + ".parquet"


class BlobStore:
    """A folder of ``<sha256>.parquet`` / ``<sha256>.npy`` files: local, or on an object store."""

    def __init__(self, root: StoragePath):
        self.root = root
        self._known: dict[int, _Hashed] = {}

    def _known_digest(self, obj: Any) -> str | None:
        """What this object was stored as before: Context is immutable, so the same object
        handed from stage to stage is hashed (and written) once."""
        cached = self._known.get(id(obj))
        return cached.digest if cached is not None and cached.ref() is obj else None

    def _digest_of(self, obj: Any, compute: Any) -> str:
        digest = self._known_digest(obj)
        if digest is None:
            digest = compute()
            self._remember(obj, digest)
        return digest

    def _remember(self, obj: Any, digest: str) -> None:
        with contextlib.suppress(TypeError):
            self._known[id(obj)] = _Hashed(weakref.ref(obj), digest)

    def put_table(self, frame: pd.DataFrame, where: str) -> str:
        if not all(isinstance(c, str) for c in frame.columns):
            raise UnstorableValue(
                f"{where}: DataFrame column names must be strings to store as Parquet, got {list(frame.columns)[:5]!r}"
            )
        known = self._known_digest(frame)
        if known is not None and (self.root / known).exists():
            return known
        from pyarrow import ArrowException

        try:
            path = write_content_addressed(self.root, lambda tmp: _write_table(frame, tmp))
        except (ValueError, TypeError, ArrowException) as exc:
            raise UnstorableValue(
                f"{where}: DataFrame cannot be written as Parquet: {exc}"
            ) from None
        self._remember(frame, path.name)
        return path.name

    def put_array(self, array: np.ndarray, where: str) -> str:
        if array.dtype == object:
            raise UnstorableValue(
                f"{where}: numpy arrays of dtype object cannot be stored; convert to a DataFrame or a list"
            )

        def compute() -> str:
            import numpy as np

            hasher = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
            hasher.update(np.ascontiguousarray(array).tobytes())
            return hasher.hexdigest()

        name = self._digest_of(array, compute) + ".npy"
        path = self.root / name
        if not path.exists():
            atomic_write_with(path, lambda tmp: _save_npy(tmp, array))
        return name

    def get(self, name: str) -> Any:
        path = self.root / name
        source: Any = path if isinstance(path, Path) else io.BytesIO(path.read_bytes())
        if name.endswith(".parquet"):
            import pandas as pd

            return pd.read_parquet(source, engine="pyarrow")
        import numpy as np

        return np.load(source, allow_pickle=False)


def _save_npy(path: Path, array: np.ndarray) -> None:
    import numpy as np

    with path.open("wb") as handle:
        np.save(handle, array, allow_pickle=False)


def encode(value: Any, store: BlobStore, where: str) -> Any:
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {TAG: "float", "value": repr(value)}
    # numpy and pandas values exist only once those libraries are loaded
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, np.generic):
        return encode(value.item(), store, where)
    if is_dataframe(value):
        return {TAG: "table", "blob": store.put_table(value, where)}
    if is_series(value):
        name = value.name if isinstance(value.name, str) else "value"
        return {
            TAG: "series",
            "name": value.name if isinstance(value.name, str | int | None) else None,
            "blob": store.put_table(value.to_frame(name), where),
        }
    if np is not None and isinstance(value, np.ndarray):
        return {TAG: "ndarray", "blob": store.put_array(value, where)}
    if isinstance(value, Mapping):
        if all(isinstance(k, str) for k in value) and TAG not in value:
            return {k: encode(v, store, f"{where}[{k!r}]") for k, v in value.items()}
        return {
            TAG: "dict",
            "items": [
                [encode(k, store, where), encode(v, store, f"{where}[{k!r}]")]
                for k, v in value.items()
            ],
        }
    if isinstance(value, list):
        return [encode(v, store, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return {
            TAG: "tuple",
            "items": [encode(v, store, f"{where}[{i}]") for i, v in enumerate(value)],
        }
    if isinstance(value, datetime):
        return {TAG: "datetime", "value": value.isoformat()}
    if isinstance(value, date):
        return {TAG: "date", "value": value.isoformat()}
    raise UnstorableValue(
        f"{where}: cannot store a value of type {type(value).__module__}.{type(value).__qualname__} "
        "between stages (only JSON values, DataFrames, Series and numpy arrays cross ops); "
        "save it to a file in the run directory and put the path in ctx.artifacts"
    )


def decode(value: Any, store: BlobStore) -> Any:
    if isinstance(value, list):
        return [decode(v, store) for v in value]
    if not isinstance(value, dict):
        return value
    tag = value.get(TAG)
    if tag is None:
        return {k: decode(v, store) for k, v in value.items()}
    if tag == "float":
        return float(value["value"])
    if tag == "table":
        return store.get(value["blob"])
    if tag == "series":
        frame = store.get(value["blob"])
        series = frame.iloc[:, 0]
        series.name = value.get("name")
        return series
    if tag == "ndarray":
        return store.get(value["blob"])
    if tag == "dict":
        return {decode(k, store): decode(v, store) for k, v in value["items"]}
    if tag == "tuple":
        return tuple(decode(v, store) for v in value["items"])
    if tag == "datetime":
        return parse_datetime(value["value"])
    if tag == "date":
        return date.fromisoformat(value["value"])
    raise ValueError(f"unknown encoded value tag {tag!r}")


def context_to_payload(ctx: Context, store: BlobStore) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "experiment_id": ctx.experiment_id,
        "run_id": ctx.run_id,
        "experiment": ctx.experiment.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        if ctx.experiment
        else None,
        "outputs": encode(list(ctx.outputs), store, "outputs"),
        "metrics": encode(dict(ctx.metrics), store, "metrics"),
        "artifacts": encode(dict(ctx.artifacts), store, "artifacts"),
        "assigns": encode(dict(ctx.assigns), store, "assigns"),
        "params": encode(dict(ctx.params), store, "params"),
        "trace": ctx.trace.to_dict() if ctx.trace else None,
        "run_dir": ctx.run_dir,
    }


def context_from_payload(payload: Mapping[str, Any], store: BlobStore) -> Context:
    version = payload.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ValueError(
            f"stored context has schema version {version!r}; this crucible_dagster reads {SCHEMA_VERSION}"
        )
    experiment = (
        Experiment.model_validate(payload["experiment"]) if payload.get("experiment") else None
    )
    return Context(
        experiment_id=payload["experiment_id"],
        run_id=payload["run_id"],
        experiment=experiment,
        outputs=tuple(decode(payload["outputs"], store)),
        metrics=decode(payload["metrics"], store),
        artifacts=decode(payload["artifacts"], store),
        assigns=decode(payload["assigns"], store),
        params=decode(payload.get("params") or {}, store),
        trace=TraceChain.from_dict(payload["trace"]) if payload.get("trace") else None,
        run_dir=payload.get("run_dir"),
    )


def save_context(ctx: Context, path: StoragePath, store: BlobStore) -> StoragePath:
    return atomic_write_text(
        path, json.dumps(context_to_payload(ctx, store), separators=(",", ":"))
    )


def load_context(path: StoragePath, store: BlobStore) -> Context:
    return context_from_payload(json.loads(path.read_text(encoding="utf-8")), store)


def save_stored(value: Any, path: StoragePath, store: BlobStore) -> StoragePath:
    """A Context, or any other value (trial specs and outcomes between sweep ops), as JSON + blobs."""
    if isinstance(value, Context):
        return save_context(value, path, store)
    payload = {
        "schema_version": SCHEMA_VERSION,
        "kind": "value",
        "value": encode(value, store, "value"),
    }
    return atomic_write_text(path, json.dumps(payload, separators=(",", ":")))


def load_stored(path: StoragePath, store: BlobStore) -> Any:
    payload = json.loads(path.read_text(encoding="utf-8"))
    if payload.get("kind") == "value":
        return decode(payload["value"], store)
    return context_from_payload(payload, store)
