"""The content hash of what a run loaded (after sampling): the data version Dagster shows and the
manifest's ``data_fingerprints``.

Each column is hashed from its Arrow buffers as three streams (validity, value lengths, value
bytes), fed chunk after chunk, so the same values give the same hash however the table is
chunked or sliced, without copying it (a 1M-row table hashes in tens of milliseconds). xxh3-128
is a content checksum, not a security feature: it tells data apart, it does not sign it.
"""

from __future__ import annotations

import json
from concurrent.futures import Executor, Future
from typing import Any

import xxhash

#: string lengths are hashed this many at a time (512 KiB of int64 per block)
BLOCK = 1 << 16


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
        values = chunk.to_numpy(zero_copy_only=False)
        if values.dtype.kind in "mM":  # dates, times, durations: a buffer cannot hold them as
            values = values.view(np.int64)  # such, their int64 counts are the same bytes
        # .data is memoryview(values); numpy's stubs type ndarray as a buffer only on 3.12+
        state.data.update(values.data.cast("B"))
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        width = np.int64 if pa.types.is_large_string(kind) else np.int32
        offsets = np.frombuffer(chunk.buffers()[1], dtype=width)[
            chunk.offset : chunk.offset + len(chunk) + 1
        ]
        # the value lengths as int64, a block at a time: no copy of the whole column's size
        for start in range(0, len(offsets) - 1, BLOCK):
            block = offsets[start : start + BLOCK + 1]
            state.lengths.update(np.subtract(block[1:], block[:-1], dtype=np.int64).data)
        data = chunk.buffers()[2]
        if data is not None and len(offsets):
            state.data.update(memoryview(data)[int(offsets[0]) : int(offsets[-1])])
    else:  # booleans, nested and other types: their values as JSON (small columns in practice)
        text = json.dumps(chunk.to_pylist(), sort_keys=True, default=str, ensure_ascii=False)
        state.data.update(text.encode())
        state.lengths.update(len(chunk).to_bytes(8, "little"))


def id_text(ids: Any) -> Any:
    """The ids as Arrow strings: row numbers (an integer array) are formatted here, once."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return ids if pa.types.is_string(ids.type) else pc.cast(ids, pa.string())


def _digest(column: Any) -> str:
    state = _Column()
    with_validity = column.null_count > 0
    for chunk in column.chunks:
        _feed_chunk(state, chunk, with_validity)
    return state.digest()


def _chunked(values: Any) -> Any:
    import pyarrow as pa

    return values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])


def _ids_column(ids: Any) -> Any:
    return _chunked(id_text(ids.result() if isinstance(ids, Future) else ids))


def _header(name: str, column: Any) -> bytes:
    return json.dumps([name, str(column.type), len(column)]).encode()


def fingerprint_table(table: Any, ids: Any = None, pool: Executor | None = None) -> str:
    """The content hash of ``table`` (its column names, types and values) and ``ids`` (an Arrow
    array, row numbers as integers, or a Future of either). Columns are hashed on ``pool``'s
    threads when given (xxhash and Arrow release the GIL: the hashing overlaps the ids' own
    formatting and the other columns')."""
    names, columns = table.column_names, table.columns
    if pool is None:
        digests = [_digest(c) for c in columns]
        id_digest = _digest(_ids_column(ids)) if ids is not None else None
    else:  # the ids last: their formatting (a Future) may still be running
        jobs = [pool.submit(_digest, c) for c in columns]
        id_job = pool.submit(lambda: _digest(_ids_column(ids))) if ids is not None else None
        digests = [job.result() for job in jobs]
        id_digest = id_job.result() if id_job is not None else None
    whole = xxhash.xxh3_128()
    for name, column, digest in zip(names, columns, digests, strict=True):
        whole.update(_header(name, column))
        whole.update(digest.encode())
    if ids is not None and id_digest is not None:
        whole.update(_header("\x00ids", _ids_column(ids)))
        whole.update(id_digest.encode())
    return whole.hexdigest()
