"""Datasets: what ``experiment.dataset`` loads, and how the first stage finds it.

``load_dataset(ref, seed)`` resolves the provider (built-ins, the ``crucible_dagster.datasets``
entry points, dotted paths), loads an Arrow table, checks the schema, samples with the seed and
hashes what it kept; the run driver puts it in ``ctx.assigns`` before the first stage:
``examples`` (a DataFrame, index = the sample ids), and with a target column ``features`` and
``target``. ``columns_of(ref)`` tells the columns when that is known without loading.
"""

from crucible_dagster.datasets.base import DatasetError, LoadedTable, Provider, ProviderOptions
from crucible_dagster.datasets.loading import (
    LoadedDataset,
    columns_of,
    dataset_problems,
    load_as_named,
    load_dataset,
)

__all__ = [
    "DatasetError",
    "LoadedDataset",
    "LoadedTable",
    "Provider",
    "ProviderOptions",
    "columns_of",
    "dataset_problems",
    "load_as_named",
    "load_dataset",
]
