"""The content hash of what a run loaded (after sampling): the data version Dagster shows and the
manifest's ``data_fingerprints``.

Each column is hashed from its Arrow buffers as three streams (validity, value lengths, value
bytes), fed chunk after chunk, so the same values give the same hash however the table is
chunked or sliced, without copying it (a 1M-row table hashes in tens of milliseconds). xxh3-128
is a content checksum, not a security feature: it tells data apart, it does not sign it.
"""

from __future__ import annotations

import json
from typing import Any

import xxhash


class _Column:
    def __init__(self) -> None:
        self.validity, self.lengths, self.data = (
            xxhash.xxh3_128(),
            xxhash.xxh3_128(),
            xxhash.xxh3_128(),
        )

    def digest(self) -> str:
        return self.validity.hexdigest() + self.lengths.hexdigest() + self.data.hexdigest()


def _feed_chunk(state: _Column, chunk: Any, with_validity: bool) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = chunk.type
    if with_validity:
        state.validity.update(pc.is_valid(chunk).to_numpy(zero_copy_only=False).tobytes())
    if pa.types.is_dictionary(kind):
        chunk, kind = chunk.dictionary_decode(), kind.value_type
    if chunk.null_count:
        filler = "" if pa.types.is_string(kind) or pa.types.is_large_string(kind) else None
        if filler is not None or pa.types.is_primitive(kind):
            chunk = pc.fill_null(chunk, filler if filler is not None else pa.scalar(0, kind))
    if pa.types.is_primitive(kind) and not pa.types.is_boolean(kind):
        state.data.update(memoryview(chunk.to_numpy(zero_copy_only=False)).cast("B"))
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        width = np.int64 if pa.types.is_large_string(kind) else np.int32
        offsets = np.frombuffer(chunk.buffers()[1], dtype=width)[
            chunk.offset : chunk.offset + len(chunk) + 1
        ]
        state.lengths.update(np.diff(offsets).astype(np.int64).tobytes())
        data = chunk.buffers()[2]
        if data is not None and len(offsets):
            state.data.update(memoryview(data)[int(offsets[0]) : int(offsets[-1])])
    else:  # booleans, nested and other types: their values as JSON (small columns in practice)
        text = json.dumps(chunk.to_pylist(), sort_keys=True, default=str, ensure_ascii=False)
        state.data.update(text.encode())
        state.lengths.update(len(chunk).to_bytes(8, "little"))


def fingerprint_table(table: Any, ids: Any = None) -> str:
    """The content hash of ``table`` (its column names, types and values) and ``ids``."""
    import pyarrow as pa

    whole = xxhash.xxh3_128()
    columns = list(zip(table.column_names, table.columns, strict=True))
    if ids is not None:
        columns.append(
            ("\x00ids", ids if isinstance(ids, pa.ChunkedArray) else pa.chunked_array([ids]))
        )
    for name, column in columns:
        state = _Column()
        with_validity = column.null_count > 0
        for chunk in column.chunks:
            _feed_chunk(state, chunk, with_validity)
        header = json.dumps([name, str(column.type), len(column)])
        whole.update(header.encode())
        whole.update(state.digest().encode())
    return whole.hexdigest()
