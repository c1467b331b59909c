"""``provider: sklearn``: the datasets bundled with scikit-learn (nothing is downloaded).

Every bundled table is here; ``fetch_*`` sets download and are not. The names are a static list
so ``crucible validate`` checks them without importing scikit-learn (a test checks the list
against scikit-learn's own ``load_*`` functions). Needs the ``examples`` extra.
"""

from __future__ import annotations

from typing import Any

from crucible_dagster.datasets.base import DatasetError, LoadedTable, Provider, ProviderOptions
from crucible_dagster.experiment.ir import DatasetRef

#: name -> its targets (a multi-output set names several)
SKLEARN_DATASETS: dict[str, list[str]] = {
    "breast_cancer": ["target"],
    "diabetes": ["target"],
    "digits": ["target"],
    "iris": ["target"],
    "linnerud": ["Weight", "Waist", "Pulse"],
    "wine": ["target"],
}
#: scikit-learn's load_* functions that are not one bundled table
NOT_TABLES = frozenset(
    {"files", "sample_image", "sample_images", "svmlight_file", "svmlight_files"}
)


def name_problem(name: str) -> str | None:
    if name in SKLEARN_DATASETS:
        return None
    return f"expected a dataset bundled with scikit-learn ({', '.join(SKLEARN_DATASETS)}), found {name!r}"


class SklearnProvider(Provider):
    """A bundled table: its features and its target column(s)."""

    name = "sklearn"
    Options = ProviderOptions

    def check(self, ref: DatasetRef, options: ProviderOptions) -> list[str]:
        problems = [f"name: {p}" for p in [name_problem(ref.name)] if p]
        if ref.split != "train":
            problems.append(
                f"split: scikit-learn's bundled sets have one split, 'train'; found {ref.split!r}"
            )
        return problems

    def columns(self, ref: DatasetRef, options: ProviderOptions) -> list[str] | None:
        return None  # known only by loading (cheap, but it imports scikit-learn)

    def load(self, ref: DatasetRef, options: ProviderOptions) -> LoadedTable:
        import pyarrow as pa
        from sklearn import datasets

        problems = self.check(ref, options)
        if problems:
            field, _, message = problems[0].partition(": ")
            raise DatasetError(message, reason="unknown_dataset", where=f"dataset.{field}")
        bunch: Any = getattr(datasets, f"load_{ref.name}")(as_frame=True)
        frame = bunch.frame
        frame.columns = [str(c) for c in frame.columns]
        targets = SKLEARN_DATASETS[ref.name]
        target: str | list[str] = options.target or (targets[0] if len(targets) == 1 else targets)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        return LoadedTable(table, f"sklearn.datasets.load_{ref.name}", None, target)
