"""Which rows a run takes: ``limit``, then ``sample`` (n or fraction, random or stratified, or
the ids a run recorded), then ``folds``; every draw seeded by the experiment seed, so the same
seed takes the same rows. Positions only: the table is taken once, at the end."""

from __future__ import annotations

from typing import Any

from crucible_dagster.datasets.base import DatasetError
from crucible_dagster.experiment.ir import FoldSpec, SampleSpec

FOLD_COLUMN = "fold"


def _labels(table: Any, column: str, where: str) -> Any:
    """The column's values as group codes (nulls are a group of their own)."""
    import pandas as pd

    if column not in table.column_names:
        raise DatasetError(
            f"no column {column!r}; the table has {', '.join(map(repr, table.column_names[:20]))}",
            reason="unknown_column",
            where=where,
        )
    codes, _ = pd.factorize(table[column].to_pandas(), use_na_sentinel=False)
    return codes


def _groups(codes: Any) -> list[Any]:
    """Each group's row positions (ascending), groups in code order: one stable sort, where
    a scan per group was quadratic (200,000 distinct values took 24 s to stratify)."""
    import numpy as np

    if not len(codes):
        return []
    order = np.argsort(codes, kind="stable")
    return np.split(order, np.flatnonzero(np.diff(codes[order])) + 1)


def _allocate(sizes: Any, total: int) -> Any:
    """``total`` split over groups in proportion to ``sizes`` (largest remainder)."""
    import numpy as np

    exact = sizes * total / sizes.sum()
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return counts


def sample_positions(table: Any, spec: SampleSpec, seed: int) -> Any:
    """Sorted row positions the sample takes (n or fraction; random or stratified)."""
    import numpy as np

    rows = table.num_rows
    wanted = spec.n if spec.n is not None else round((spec.fraction or 0.0) * rows)
    if spec.n is not None and spec.n > rows:
        raise DatasetError(
            f"n is {spec.n}, more than the {rows} rows loaded", where="dataset.sample.n"
        )
    wanted = max(wanted, 1) if rows else 0
    rng = np.random.default_rng(seed)
    if spec.strategy == "random":
        return np.sort(rng.choice(rows, size=wanted, replace=False))
    codes = _labels(table, str(spec.by), "dataset.sample.by")
    groups = _groups(codes) if rows else []
    counts = _allocate(np.array([len(g) for g in groups]), wanted) if groups else []
    taken = [rng.choice(g, size=c, replace=False) for g, c in zip(groups, counts, strict=True)]
    return np.sort(np.concatenate(taken)) if taken else np.array([], dtype=int)


def fold_numbers(table: Any, spec: FoldSpec, seed: int) -> Any:
    """Each row's fold (0..k-1): a seeded shuffle dealt round-robin, within each ``by`` group
    when set (so every fold holds each group in proportion)."""
    import numpy as np

    if FOLD_COLUMN in table.column_names:
        raise DatasetError(
            f"the table already has a {FOLD_COLUMN!r} column; rename it to use folds",
            where="dataset.folds",
        )
    rows = table.num_rows
    if rows < spec.k:
        raise DatasetError(f"k is {spec.k}, more than the {rows} rows", where="dataset.folds.k")
    rng = np.random.default_rng(seed)
    folds = np.empty(rows, dtype=np.int64)
    if spec.by is None:
        folds[rng.permutation(rows)] = np.arange(rows) % spec.k
        return folds
    codes = _labels(table, spec.by, "dataset.folds.by")
    dealt = 0
    for positions in _groups(codes):
        members = rng.permutation(positions)
        folds[members] = (dealt + np.arange(len(members))) % spec.k
        dealt += len(members)
    return folds


def positions_of(ids: list[str], wanted: list[str], source: str) -> Any:
    """The positions of ``wanted`` ids in ``ids`` (in ``wanted``'s order); every one must be there."""
    import numpy as np

    where = {value: index for index, value in enumerate(ids)}
    missing = [value for value in wanted if value not in where]
    if missing:
        shown = ", ".join(repr(v[:40]) for v in missing[:5])
        raise DatasetError(
            f"{len(missing)} of the {len(wanted)} recorded ids are not in this dataset "
            f"(first: {shown}); it changed since that run",
            reason="ids_not_found",
            where=source,
        )
    return np.array([where[value] for value in wanted], dtype=np.int64)
