"""``provider: local``: a file, a folder or a glob of Parquet, CSV, JSONL or Arrow files, from a
path or any fsspec URL (``memory://``, ``s3://`` ...), read with ``pyarrow.dataset``.

A relative path in an experiment file was joined to the file's folder when the file was read
(``experiment/anchoring.py``); absolute paths and ``..`` are the user's to choose, as on a
command line, and the run records what was read. Only regular files
are read: a FIFO or a device would block the run, so it is refused by name, as is an unreadable,
empty or oversized file.
"""

from __future__ import annotations

import glob as globbing
import os
import stat
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import Field

from crucible_dagster.common.locations import is_url, storage_path
from crucible_dagster.datasets.base import (
    DatasetError,
    LoadedTable,
    Provider,
    ProviderOptions,
    stat_or_refuse,
)
from crucible_dagster.experiment.ir import DatasetRef

#: file extension -> pyarrow.dataset format
EXTENSIONS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".jsonl": "json",
    ".ndjson": "json",
    ".json": "json",
    ".arrow": "ipc",
    ".feather": "ipc",
    ".ipc": "ipc",
}
#: ``dataset.format`` spellings -> pyarrow.dataset format
FORMATS = {
    "parquet": "parquet",
    "csv": "csv",
    "jsonl": "json",
    "json": "json",
    "arrow": "ipc",
    "feather": "ipc",
    "ipc": "ipc",
}
GLOB_CHARS = frozenset("*?[")
#: pyarrow reads CSV and JSON in blocks of 1 MiB, and a row (or a CSV header) longer than a
#: block fails with these ("straddling object ...", "Empty CSV file"): a long document in one
#: row is ordinary in a text dataset, so such files are read again in blocks as large as the file
LONG_ROW_ERRORS = ("straddl", "Empty CSV file")


class LocalOptions(ProviderOptions):
    path: str = Field(
        min_length=1, description="A file, a folder or a glob; a path or an fsspec URL."
    )
    max_bytes: int = Field(
        default=50 * 2**30, ge=1, description="Refuse more bytes on disk than this (all files)."
    )
    max_depth: int = Field(
        default=64,
        ge=1,
        le=10_000,
        description="JSON nested deeper than this is refused before pyarrow parses it (a "
        "5000-deep line took pyarrow 67 s).",
    )


@contextmanager
def filesystem_errors(where: str) -> Iterator[None]:
    """A filesystem's own failure as the located DatasetError: a URL whose driver is not
    installed (http:// needs aiohttp), a refused connection, a missing archive (zip://...). A
    driver raises what it likes, so anything but our own error is caught here, in the few lines
    that list, stat and open files."""
    try:
        yield
    except DatasetError:
        raise
    except (ImportError, ValueError) as exc:  # an unknown scheme, a driver not installed
        raise DatasetError(f"cannot open: {exc}", reason="bad_url", where=where) from None
    except Exception as exc:  # a third-party driver's errors have no common base
        found = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise DatasetError(
            f"cannot read: {type(exc).__name__}: {found}", reason="unreadable", where=where
        ) from None


class DataFiles:
    """The files a location names: their filesystem (None: local) and paths."""

    def __init__(
        self, location: str, split: str, fmt: str | None, option: str = "dataset.options.path"
    ):
        self.location, self.option = location, option
        self.fs: Any = None
        self.largest = 0  # bytes of the largest file (known once checked)
        self.total = 0  # bytes of all of them (known once checked)
        with filesystem_errors(location):
            where = storage_path(location)  # the Context IO manager's helper: a Path or a UPath
            if isinstance(where, Path):
                root = str(where)
            else:
                self.fs, root = where.fs, where.path
            self.paths = self._list(root, split, fmt)

    def _isdir(self, path: str) -> bool:
        return bool(self.fs.isdir(path)) if self.fs is not None else os.path.isdir(path)

    def _list(self, root: str, split: str, fmt: str | None) -> list[str]:
        if GLOB_CHARS & set(root):
            found = self.fs.glob(root) if self.fs else globbing.glob(root, recursive=True)
            paths = sorted(p for p in found if not self._isdir(p))
        elif self._isdir(root):
            paths = self._folder(root, split, fmt)
        elif (self.fs is not None and not self.fs.exists(root)) or (
            self.fs is None and not os.path.lexists(root)
        ):
            raise DatasetError(
                f"no such file or folder ({self.option})",
                reason="not_found",
                where=self.location,
            )
        else:
            paths = [root]
        if not paths:
            raise DatasetError("names no data files", reason="not_found", where=self.location)
        return paths

    def _folder(self, root: str, split: str, fmt: str | None) -> list[str]:
        """The folder's data files; its ``<split>/`` subfolder, or its ``<split>*`` files,
        when it has them (the layout of a dataset with several splits)."""
        sub = f"{root.rstrip('/')}/{split}"
        if self._isdir(sub):
            root = sub
        if self.fs is not None:
            found = [p for p in self.fs.find(root) if not self._isdir(p)]
        else:
            found = [
                os.path.join(d, f)
                for d, _, names in os.walk(root, followlinks=False)
                for f in names
            ]
        wanted = {e for e, f in EXTENSIONS.items() if fmt is None or f == fmt}
        data = sorted(p for p in found if PurePosixPath(p).suffix.lower() in wanted)
        named = [p for p in data if PurePosixPath(p).name.startswith(split)]
        return named or data

    def check(self, max_bytes: int) -> None:
        """Every file regular, readable and not empty; all of them within ``max_bytes``."""
        total = 0
        for path in self.paths:
            with filesystem_errors(path):
                size = self._size(path)
            self.largest = max(self.largest, size)
            if size == 0:
                raise DatasetError("the file is empty", reason="empty", where=path)
            total += size
        self.total = total
        if total > max_bytes:
            raise DatasetError(
                f"{total} bytes, over dataset.options.max_bytes ({max_bytes}); raise it to read "
                "this much",
                reason="too_large",
                where=self.location,
            )

    def _size(self, path: str) -> int:
        if self.fs is not None:
            info = self.fs.info(path)
            if info.get("type") != "file":
                raise DatasetError(f"not a regular file ({info.get('type')})", where=path)
            return int(info.get("size") or 0)
        found = stat_or_refuse(path)
        if not stat.S_ISREG(found.st_mode):
            kind = "a FIFO" if stat.S_ISFIFO(found.st_mode) else "not a regular file"
            raise DatasetError(f"{kind}; only regular files are read", where=path)
        if not os.access(path, os.R_OK):
            raise DatasetError("cannot read: permission denied", reason="unreadable", where=path)
        return found.st_size


def data_format(ref: DatasetRef, paths: list[str]) -> str:
    """The pyarrow.dataset format: ``dataset.format``, else the files' one extension."""
    if ref.format is not None:
        found = FORMATS.get(ref.format.lower())
        if found is None:
            raise DatasetError(
                f"expected one of {', '.join(FORMATS)}, found {ref.format!r}",
                reason="unknown_format",
                where="dataset.format",
            )
        return found
    kinds = {EXTENSIONS.get(PurePosixPath(p).suffix.lower()) for p in paths}
    if len(kinds) != 1 or None in kinds:
        raise DatasetError(
            f"cannot tell the format from the file names ({paths[0]!r} ...); set dataset.format "
            f"to one of {', '.join(FORMATS)}",
            reason="unknown_format",
            where="dataset.format",
        )
    return str(kinds.pop())


def check_depth(files: DataFiles, max_depth: int) -> None:
    """JSON nested deeper than ``max_depth`` is refused before pyarrow parses it. Brackets are
    counted over the raw bytes (inside strings too: a conservative count)."""
    import numpy as np

    for path in files.paths:
        with (
            filesystem_errors(path),
            files.fs.open(path, "rb") if files.fs else open(path, "rb") as handle,
        ):
            raw = np.frombuffer(handle.read(), dtype=np.uint8)
        if bytes(raw[:4096]).lstrip().startswith(b"["):
            raise DatasetError(
                "expected JSON Lines (one object a line), found a JSON array; write one object "
                "a line (a .json file is read as JSON Lines too)",
                reason="not_json_lines",
                where=path,
            )
        step = np.isin(raw, (91, 123)).astype(np.int32) - np.isin(raw, (93, 125)).astype(np.int32)
        depth = int(np.cumsum(step).max()) if len(step) else 0
        if depth > max_depth:
            raise DatasetError(
                f"JSON nested {depth} deep, over dataset.options.max_depth ({max_depth})",
                reason="too_deep",
                where=path,
            )


def text_columns_problem(table: Any, fmt: str, where: str) -> None:
    """A text file's column pyarrow read as bytes holds text that is not UTF-8: refused at its
    first such row."""
    import pyarrow as pa

    from crucible_dagster.datasets.schema import _first_failing_row

    if fmt not in ("csv", "json"):
        return
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
            row = _first_failing_row(column.combine_chunks(), pa.string())
            raise DatasetError(
                f"row {row + 1}, column {name!r}: not UTF-8 text; convert the file to UTF-8",
                reason="not_utf8",
                where=where,
            )


def by_column(dataset: Any) -> Any:
    """A Parquet dataset read a column per core at a time: the decoding scratch (compressed
    pages, the columns being assembled) is held for as many columns as there are cores, not all
    of them at once (peak memory 1.36x the table on 2 cores against 1.52x for ``read_table``,
    and about twice as fast as one column at a time; benchmarks/dataset_bench.py)."""
    import pyarrow as pa

    names = dataset.schema.names
    if len(names) < 2 or len(set(names)) != len(names):
        return dataset.to_table()
    workers = min(len(names), os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:  # Arrow decodes without the GIL: a column a core
        columns = list(pool.map(lambda n: dataset.to_table(columns=[n]).column(0), names))
    return pa.table(columns, schema=dataset.schema)


def _scanned(files: DataFiles, fmt: str, block_size: int | None) -> tuple[Any, Any]:
    """(the pyarrow dataset, its table); CSV and JSON in blocks of ``block_size`` bytes when set."""
    import pyarrow.dataset as ds

    file_format: Any = fmt
    if block_size is not None and fmt == "csv":
        import pyarrow.csv as csv

        file_format = ds.CsvFileFormat(read_options=csv.ReadOptions(block_size=block_size))
    elif block_size is not None and fmt == "json":
        import pyarrow.json as pj

        file_format = ds.JsonFileFormat(read_options=pj.ReadOptions(block_size=block_size))
    dataset = ds.dataset(files.paths, format=file_format, filesystem=files.fs)
    return dataset, by_column(dataset) if fmt == "parquet" else dataset.to_table()


def read_files(files: DataFiles, fmt: str) -> tuple[Any, Callable[[int], str] | None]:
    """The files as one Arrow table, and (several files) which file a row came from."""
    import pyarrow as pa

    where = files.paths[0] if len(files.paths) == 1 else files.location
    try:
        try:
            dataset, table = _scanned(files, fmt, None)
        except pa.ArrowInvalid as exc:
            if not any(sign in str(exc) for sign in LONG_ROW_ERRORS):
                raise
            dataset, table = _scanned(files, fmt, min(2**31 - 1, files.largest + 1))
    except Exception as exc:  # pyarrow's errors, and a filesystem driver's (no common base)
        raise DatasetError(
            f"cannot read as {fmt}: {exc}", reason="unreadable", where=where
        ) from None
    text_columns_problem(table, fmt, where)
    if len(files.paths) == 1:
        return table, None

    def origin_of(row: int) -> str:
        start = 0
        for fragment in dataset.get_fragments():
            count = fragment.count_rows()
            if row < start + count:
                return f"{fragment.path} row {row - start}"
            start += count
        return files.location

    return table, origin_of


def path_problems(path: str) -> list[str]:
    """What is wrong with a local path a run will read, found at validate without reading it:
    nothing named there, or a glob that cannot match (a URL other than ``file://`` is not
    reached at validate time). Each problem is a message without its field."""
    if is_url(path) and not path.startswith("file://"):
        return []
    local = str(storage_path(path))
    if GLOB_CHARS & set(local):
        return _glob_problems(path, local)
    if not os.path.lexists(local):
        return [f"no such file or folder: {path!r}"]
    return []


def _glob_problems(path: str, local: str) -> list[str]:
    """A glob looked at without walking a tree: the folder it starts from must exist, and one
    whose only wildcards are in its last part must match in that folder (one listing). Deeper
    patterns are expanded by the run only: at validate, '/**/x.csv' walked the whole
    filesystem for minutes, holding up every other experiment of the folder and the loader."""
    parts = PurePosixPath(local).parts
    fixed = next((i for i, part in enumerate(parts) if GLOB_CHARS & set(part)), len(parts))
    root = str(PurePosixPath(*parts[:fixed])) if fixed else "."
    if not os.path.isdir(root):
        return [f"the glob {path!r} starts in {root!r}, which is not a folder"]
    if fixed < len(parts) - 1 or "**" in parts[-1]:
        return []
    found = next(globbing.iglob(local), None)
    return [] if found is not None else [f"the glob {path!r} matches no file"]


class LocalProvider(Provider):
    """Files on disk or on any fsspec filesystem."""

    name = "local"
    Options = LocalOptions

    def load(self, ref: DatasetRef, options: LocalOptions) -> LoadedTable:
        fmt = FORMATS.get((ref.format or "").lower())
        files = DataFiles(options.path, ref.split, fmt)
        files.check(options.max_bytes)
        fmt = data_format(ref, files.paths)
        if fmt == "json":
            check_depth(files, options.max_depth)
        table, origin_of = read_files(files, fmt)
        source = files.paths[0] if len(files.paths) == 1 else options.path
        notes = {"files": len(files.paths)}
        return LoadedTable(table, source, origin_of, options.target, notes)

    def check(self, ref: DatasetRef, options: LocalOptions) -> list[str]:
        """A local path that does not exist (a URL is not reached at validate time)."""
        if ref.format is not None and ref.format.lower() not in FORMATS:
            return [f"format: expected one of {', '.join(FORMATS)}, found {ref.format!r}"]
        return [f"options.path: {problem}" for problem in path_problems(options.path)]
