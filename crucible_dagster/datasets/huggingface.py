"""``provider: huggingface``: the ``datasets`` library (the ``hf`` extra).

``options.path`` is a hub name (``openai/gsm8k``, with ``options.config`` and ``dataset.version``
as the revision), a folder written by ``save_to_disk``, or a local folder of data files. The
library's own settings act as documented: ``HF_HUB_OFFLINE=1`` / ``HF_DATASETS_OFFLINE=1``
(set before the process starts) read only the local cache, ``HF_HOME`` / ``HF_DATASETS_CACHE``
say where it is. Remote code is never run (``trust_remote_code`` is not offered).
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import Field

from crucible_dagster.datasets.base import DatasetError, LoadedTable, Provider, ProviderOptions
from crucible_dagster.experiment.ir import DatasetRef

SAVED_MARKERS = ("dataset_dict.json", "state.json")


class HuggingFaceOptions(ProviderOptions):
    path: str | None = Field(
        default=None,
        min_length=1,
        description="A hub name, a save_to_disk folder or a folder of files; default: dataset.name.",
    )
    config: str | None = Field(default=None, min_length=1, description="The hub dataset's config.")
    cache_dir: str | None = Field(default=None, min_length=1, description="Instead of HF's cache.")


def _library() -> Any:
    try:
        import datasets
    except ImportError:
        raise DatasetError(
            "needs the Hugging Face datasets library: pip install 'crucible_dagster[hf]'",
            reason="missing_extra",
            where="dataset.provider",
        ) from None
    return datasets


def _split_of(found: Any, split: str, where: str) -> Any:
    """One split of a DatasetDict (the split named), or the Dataset itself."""
    if hasattr(found, "keys"):
        if split not in found:
            raise DatasetError(
                f"no split {split!r}; it has {', '.join(map(repr, found.keys()))}",
                reason="unknown_split",
                where=where,
            )
        return found[split]
    return found


def load_hf(
    location: str, split: str, *, config: str | None, revision: str | None, cache_dir: str | None
) -> tuple[Any, str]:
    """(an Arrow table, what was read) from the hub, a save_to_disk folder or a folder of files."""
    library = _library()
    where = f"dataset {location!r}"
    try:
        if os.path.isdir(location) and any(
            os.path.exists(os.path.join(location, m)) for m in SAVED_MARKERS
        ):
            found = _split_of(library.load_from_disk(location), split, where)
        else:
            found = library.load_dataset(
                location, config, split=split, revision=revision, cache_dir=cache_dir
            )
    except DatasetError:
        raise
    except (ValueError, OSError, FileNotFoundError, KeyError) as exc:
        offline = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("HF_DATASETS_OFFLINE")
        hint = " (offline: only the local cache is read)" if offline else ""
        message = f"cannot load split {split!r}{hint}: {type(exc).__name__}: {exc}"
        raise DatasetError(message, reason="unreadable", where=where) from None
    source = location if revision is None else f"{location}@{revision}"
    return found.with_format("arrow")[:], source


class HuggingFaceProvider(Provider):
    name = "huggingface"
    Options = HuggingFaceOptions
    uses_version = True  # the hub revision

    def load(self, ref: DatasetRef, options: HuggingFaceOptions) -> LoadedTable:
        table, source = load_hf(
            options.path or ref.name,
            ref.split,
            config=options.config,
            revision=ref.version,
            cache_dir=options.cache_dir,
        )
        table = table.replace_schema_metadata(None)  # HF's features note, not data
        return LoadedTable(table, source, None, options.target)
