"""``provider: huggingface``: the ``datasets`` library (the ``hf`` extra).

``options.path`` is a hub name (``openai/gsm8k``, with ``options.config`` and ``dataset.version``
as the revision), a folder written by ``save_to_disk``, or a local folder of data files. The
library's own settings act as documented: ``HF_HUB_OFFLINE=1`` / ``HF_DATASETS_OFFLINE=1``
(set before the process starts) read only the local cache, ``HF_HOME`` / ``HF_DATASETS_CACHE``
say where it is. Remote code is never run (``trust_remote_code`` is not offered).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from pydantic import Field

from crucible_dagster.common.files import safe_join
from crucible_dagster.datasets.base import (
    DatasetError,
    LoadedTable,
    Provider,
    ProviderOptions,
    stat_or_refuse,
)
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


MAX_STATE_BYTES = 1024 * 1024


def _record(path: str, what: str) -> Any:
    """A save_to_disk record (``state.json``, ``dataset_dict.json``): a regular file, capped,
    JSON; the located DatasetError otherwise (never a FIFO opened, which would block)."""
    info = stat_or_refuse(path, follow_links=False)
    if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_STATE_BYTES:
        found = "not a regular file" if not stat.S_ISREG(info.st_mode) else f"{info.st_size} bytes"
        raise DatasetError(
            f"expected {what} (a regular file of at most {MAX_STATE_BYTES} bytes), found {found}",
            reason="unreadable",
            where=path,
        )
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read().decode("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise DatasetError(
            f"expected {what} (JSON), found: {exc}", reason="unreadable", where=path
        ) from None


def _checked_saved(folder: str, depth: int = 0) -> None:
    """Every file a save_to_disk folder's records name is a regular file inside the folder: a
    tampered ``state.json`` naming ``../../etc/passwd``, an absolute path, a symlink out or a
    FIFO is refused before the library opens it; so is a record of the wrong shape."""
    listing = os.path.join(folder, "dataset_dict.json")
    if depth == 0 and os.path.lexists(listing):
        splits = _record(listing, "the splits a save_to_disk folder holds")
        names = splits.get("splits") if isinstance(splits, dict) else None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise DatasetError(
                "splits: expected a list of split names", reason="unreadable", where=listing
            )
        for name in names:
            _checked_saved(_inside(folder, name, listing), depth + 1)
        return
    state_path = os.path.join(folder, "state.json")
    state = _record(state_path, "a save_to_disk state")
    files = state.get("_data_files") if isinstance(state, dict) else None
    if not isinstance(files, list) or not all(
        isinstance(f, dict) and isinstance(f.get("filename"), str) for f in files
    ):
        raise DatasetError(
            "_data_files: expected a list of {filename: ...}", reason="unreadable", where=state_path
        )
    info = os.path.join(folder, "dataset_info.json")
    if os.path.lexists(info):
        _record(info, "a save_to_disk dataset info")
    for entry in files:
        data = _inside(folder, entry["filename"], state_path)
        if not stat.S_ISREG(os.lstat(data).st_mode):
            raise DatasetError(
                f"_data_files: {entry['filename']!r} is not a regular file",
                reason="unreadable",
                where=state_path,
            )


def _inside(folder: str, name: str, where: str) -> str:
    try:
        found = safe_join(Path(folder), name)
    except PermissionError as exc:
        raise DatasetError(str(exc), reason="outside_folder", where=where) from None
    if not os.path.lexists(found):
        raise DatasetError(f"{name!r}: no such file or folder", reason="not_found", where=where)
    return str(found)


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
            _checked_saved(location)
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
