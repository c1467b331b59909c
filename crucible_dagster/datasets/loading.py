"""``load_dataset(ref, seed)``: the experiment's dataset as the first stage sees it.

provider -> Arrow table -> schema check -> ids -> limit, sample, folds (seeded) -> content hash
-> one pandas DataFrame, index = the sample ids (strings, unique). The table is taken once, at
the end, and converted to pandas with its buffers released as it goes, to keep the peak low.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crucible_dagster.datasets.base import DatasetError, LoadedTable
from crucible_dagster.datasets.fingerprint import fingerprint_table, id_text
from crucible_dagster.datasets.ids_record import IdsRecord, read_ids
from crucible_dagster.datasets.registry import provider_and_options, resolved
from crucible_dagster.datasets.sampling import (
    FOLD_COLUMN,
    fold_numbers,
    positions_of,
    sample_positions,
)
from crucible_dagster.datasets.schema import check_schema
from crucible_dagster.experiment.ir import DatasetRef

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


@dataclass
class LoadedDataset:
    """What a run loaded: the examples, their ids and the content hash after sampling."""

    name: str
    provider: str
    source: str
    examples: pd.DataFrame
    fingerprint: str
    id_array: Any  # a pyarrow string array: the ids as Python strings only when asked for
    rows_loaded: int
    target_column: str | list[str] | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    #: the content hash of the dataset as named, before limit, sample and folds: the data version
    #: of the dataset's asset, which every experiment naming it shares
    named_fingerprint: str = ""

    @property
    def ids(self) -> list[str]:
        return [str(i) for i in self.id_array.to_pylist()]

    @property
    def features(self) -> pd.DataFrame | None:
        if self.target_column is None:
            return None
        targets = (
            [self.target_column] if isinstance(self.target_column, str) else self.target_column
        )
        return self.examples.drop(columns=targets)

    @property
    def target(self) -> np.ndarray | None:
        if self.target_column is None:
            return None
        return self.examples[self.target_column].to_numpy()

    def assigns(self, fingerprints: dict[str, Any] | None = None) -> dict[str, Any]:
        """What the first stage finds in ``ctx.assigns`` (the contract in the README)."""
        found: dict[str, Any] = {
            "examples": self.examples,
            "data_fingerprints": {**(fingerprints or {}), self.name: self.fingerprint},
        }
        if self.target_column is not None:
            found.update(features=self.features, target=self.target)
        return found

    def metric(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "provider": self.provider,
            "source": self.source,
            "rows": len(self.examples),
            "rows_loaded": self.rows_loaded,
            "columns": len(self.examples.columns),
            "fingerprint": self.fingerprint,
            "named_fingerprint": self.named_fingerprint or self.fingerprint,
            **self.notes,
        }

    def ids_record(self) -> IdsRecord:
        return IdsRecord(
            schema_version=1,
            dataset=self.name,
            provider=self.provider,
            fingerprint=self.fingerprint,
            ids=self.ids,
        )


def _ids(table: Any, id_column: str, source: str) -> tuple[Any, Any]:
    """(the table without its id column, the ids): from ``id_column`` when the table has one
    (unique, no nulls) as strings, else the row numbers as integers (``id_text`` formats them)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if id_column not in table.column_names:  # row numbers, formatted once the rows are chosen
        width = np.int32 if table.num_rows < 2**31 else np.int64  # half the bytes, faster to format
        return table, pa.array(np.arange(table.num_rows, dtype=width))
    column = table[id_column].combine_chunks()
    try:
        ids = pc.cast(column, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise DatasetError(
            f"column {id_column!r}: expected ids as text (UTF-8) or numbers, found {column.type}"
            " values that are not (set dataset.options.id_column to another column)",
            reason="bad_ids",
            where=source,
        ) from None
    if ids.null_count:
        row = pc.index(pc.is_null(ids), True).as_py()
        raise DatasetError(f"row {row + 1}, column {id_column!r}: an id is null", where=source)
    if len(ids) > 1 and not _unique(ids):
        counts = pc.value_counts(ids)
        duplicate = counts.filter(pc.greater(counts.field("counts"), 1))[0]["values"].as_py()
        row = pc.index(ids, duplicate).as_py()
        raise DatasetError(
            f"row {row + 1}, column {id_column!r}: the id {duplicate[:80]!r} is not unique "
            "(ids name examples: set dataset.options.id_column to another column)",
            where=source,
        )
    return table.drop_columns([id_column]), ids


def _unique(ids: Any) -> bool:
    """Whether no id repeats: one comparison pass when the ids are in increasing order (as
    written ids often are: 2 ms for 1M), else a sort that puts each duplicate beside its twin
    (30 ms; pyarrow's hash-based count_distinct took 2 s on 1M strings)."""
    import pyarrow.compute as pc

    def increasing(values: Any) -> bool:
        return bool(pc.all(pc.less(values.slice(0, len(values) - 1), values.slice(1))).as_py())

    if increasing(ids):
        return True
    ordered = ids.take(pc.sort_indices(ids))
    return not pc.any(pc.equal(ordered.slice(1), ordered.slice(0, len(ids) - 1))).as_py()


def _select(table: Any, ids: Any, ref: DatasetRef, seed: int, source: str) -> tuple[Any, Any]:
    """limit, then sample, then folds."""
    import pyarrow as pa

    if ref.limit is not None:
        table, ids = table.slice(0, ref.limit), ids.slice(0, ref.limit)
    spec = ref.sample
    if spec is not None:
        if spec.ids_from is not None:
            wanted = read_ids(spec.ids_from, ref.name)
            known = id_text(ids).to_pylist()
            where = f"dataset {ref.name!r} ({source}; ids from {spec.ids_from})"
            positions = positions_of(known, wanted, where)
        else:
            positions = sample_positions(table, spec, seed)
        table, ids = table.take(positions), ids.take(pa.array(positions))
    if ref.folds is not None:
        folds = fold_numbers(table, ref.folds, seed)
        table = table.append_column(FOLD_COLUMN, pa.array(folds))
    return table, ids


def _named_fingerprint(
    ref: DatasetRef, table: Any, ids: Any, uses_version: bool, pool: ThreadPoolExecutor
) -> str | None:
    """The hash of the dataset as named (before limit, sample, folds), when it differs from what
    the run keeps or ``dataset.version`` pins it (on a provider without versions, the version
    pins the content: the load fails unless the fingerprint starts with it)."""
    pins = ref.version is not None and not uses_version
    if not pins and ref.limit is None and ref.sample is None and ref.folds is None:
        return None  # the same as the run's own fingerprint
    found = fingerprint_table(table, ids, pool)
    if pins and not found.startswith(str(ref.version)):
        raise DatasetError(
            f"the data's fingerprint is {found}, not {ref.version!r}: it changed since the "
            "version was pinned (set version to the new fingerprint, or remove it)",
            reason="version_mismatch",
            where="dataset.version",
        )
    return found


def _to_pandas(table: Any, ids: Any) -> pd.DataFrame:
    """The DataFrame, without copying what Arrow holds: strings stay Arrow-backed (pandas'
    ``str`` dtype), numbers without nulls are zero-copy, and each column's Arrow buffers are
    released as pandas takes them."""
    import pandas as pd

    frame = table.to_pandas(self_destruct=True, split_blocks=True)
    frame.index = pd.Index(ids.to_pandas(), name="id")
    return frame


def _check_target(table: Any, target: str | list[str] | None, source: str) -> None:
    names = [target] if isinstance(target, str) else list(target or [])
    missing = [name for name in names if name not in table.column_names]
    if missing:
        raise DatasetError(
            f"target column {missing[0]!r} is not in the table; it has "
            f"{', '.join(map(repr, table.column_names[:20]))}",
            reason="unknown_column",
            where=f"dataset.options.target ({source})",
        )


def load_dataset(ref: DatasetRef, seed: int) -> LoadedDataset:
    """The dataset ``ref`` declares, as the first stage sees it; DatasetError names what is
    wrong (the file, the field, the row and column)."""
    provider, options = provider_and_options(ref)
    real = resolved(ref)
    loaded: LoadedTable = provider.load(real, options)
    source, target, table = loaded.source, loaded.target, loaded.table
    if ref.schema_:
        table = check_schema(table, ref.schema_, source, loaded.origin_of)
    table, ids = _ids(table, options.id_column, source)
    rows_loaded = table.num_rows
    if rows_loaded == 0:  # every stage after would fail on it, far from the cause
        raise DatasetError(
            "expected examples, found none (a header only, or an empty table)",
            reason="no_rows",
            where=source,
        )
    with ThreadPoolExecutor(2) as pool:  # the ids are formatted while the columns are hashed
        named = _named_fingerprint(ref, table, ids, provider.uses_version, pool)
        table, ids = _select(table, ids, ref, seed, source)
        _check_target(table, target, source)
        text = pool.submit(id_text, ids)
        fingerprint = fingerprint_table(table, text, pool)
        ids = text.result()
    notes = dict(loaded.notes)
    if ref.sample is not None or ref.folds is not None:
        notes["seed"] = seed
    del loaded, text  # the provider's table goes as pandas takes its buffers
    examples = _to_pandas(table, ids)
    own = getattr(examples.index.array, "__arrow_array__", None)  # pandas' str dtype: Arrow's
    ids = own() if own is not None else ids  # the index's own buffers: the ids are held once
    return LoadedDataset(
        ref.name,
        real.provider,
        source,
        examples,
        fingerprint,
        ids,
        rows_loaded,
        target,
        notes,
        named or fingerprint,
    )


def load_as_named(ref: DatasetRef) -> LoadedDataset:
    """The dataset as named, before any experiment's limit, sample or folds: what its shared
    asset holds (its fingerprint is the asset's data version)."""
    return load_dataset(ref.model_copy(update={"limit": None, "sample": None, "folds": None}), 0)


def columns_of(ref: DatasetRef) -> list[str] | None:
    """The columns the first stage will find in ``examples``, when known without loading
    (a benchmark's canonical columns; a declared schema's); None when only a load can tell."""
    try:
        provider, options = provider_and_options(ref)
        found = provider.columns(resolved(ref), options)
    except DatasetError:
        return None
    if found is None and ref.schema_:
        found = [str(c) for c in ref.schema_]
    if found is None:
        return None
    columns = [c for c in found if c != options.id_column]
    return [*columns, FOLD_COLUMN] if ref.folds is not None else columns


def dataset_problems(ref: DatasetRef, at: str = "dataset") -> list[tuple[str, str]]:
    """(field path, message) for each problem ``crucible validate`` can find without loading:
    the provider, its options, the names it knows, a local path, the schema's spelling. ``at``:
    where ``ref`` sits in the file (``reliability.drift.reference``); a problem located in a
    file keeps that file's path."""
    from crucible_dagster.datasets.schema import parse_schema

    try:
        provider, options = provider_and_options(ref)
        problems = provider.check(resolved(ref), options)
        if ref.schema_:
            parse_schema(ref.schema_)
    except DatasetError as exc:
        where = exc.where or "dataset"
        message = str(exc).removeprefix(f"{where}: ")
        field_path = where == "dataset" or where.startswith("dataset.")
        return [(at + where.removeprefix("dataset") if field_path else where, message)]
    return [
        (f"{at}.{field}", message) for field, _, message in (p.partition(": ") for p in problems)
    ]
