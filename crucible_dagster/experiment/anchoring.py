"""Relative paths in an experiment file mean the file's folder, not the working directory.

``crucible run exp/qa.yaml`` from the repository root, ``crucible validate`` from anywhere and
Dagster's code server (whatever its working directory) must read the same data file, so a
relative local path in ``dataset:`` is joined to the folder of the file that wrote it when the
file is read, and the IR (the manifest, Dagster's run config, every later process) carries the
joined path. What is anchored:

- ``dataset.options.path`` of the ``local`` provider;
- ``dataset.options.path`` of ``huggingface`` / ``hf`` when it starts with ``./`` or ``../`` or
  names something beside the file (else it is a hub name such as ``openai/gsm8k``);
- ``dataset.sample.ids_from`` (a run directory or its ``dataset_ids.json``);
- ``reliability.drift``'s datasets, as ``dataset``, and ``reliability.feedback.source`` when
  it is a path.

Absolute paths and URLs (``s3://``, ``memory://``, ``file://``) are left as written; ``~`` is the
user's home. The join is not normalised: ``..`` is the user's to write (as on a command line; an
absolute path could name the same place) and goes where the operating system takes it, through
symlinks too. A text without a file (``loads_experiment``) keeps its paths as written: relative
to the working directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from crucible_dagster.common.locations import is_url

#: providers whose ``options.path`` is always a local path (or a URL)
LOCAL_PATH_PROVIDERS = frozenset({"local"})
#: providers whose ``options.path`` is a hub name unless it looks like (or is) a local folder
HUB_PROVIDERS = frozenset({"huggingface", "hf"})


def _joined(value: Any, folder: Path, *, only_if_local: bool = False) -> Any:
    """``value`` joined to ``folder`` when it is a relative local path; else as it was."""
    if not isinstance(value, str) or not value or "\x00" in value or is_url(value):
        return value
    expanded = os.path.expanduser(value)
    if os.path.isabs(expanded):
        return expanded
    joined = os.path.join(folder, expanded)
    if only_if_local and not (
        value.startswith(("./", "../", ".\\", "..\\")) or os.path.lexists(joined)
    ):
        return value  # a hub name
    return joined


def anchored(data: Any, folder: Path | None) -> Any:
    """An experiment file's parsed mapping with its relative dataset paths joined to
    ``folder`` (absolute: the folder of the file); ``data`` itself is not changed. The datasets
    are ``dataset`` and the ones ``reliability.drift`` compares."""
    if folder is None or not isinstance(data, dict):
        return data
    data = {**data}
    if isinstance(data.get("dataset"), dict):
        data["dataset"] = _anchored_dataset(data["dataset"], folder)
    reliability = data.get("reliability")
    drift = reliability.get("drift") if isinstance(reliability, dict) else None
    if isinstance(reliability, dict) and isinstance(drift, dict):
        drift = {
            **drift,
            **{
                side: _anchored_dataset(drift[side], folder)
                for side in ("reference", "current")
                if isinstance(drift.get(side), dict)
            },
        }
        reliability = data["reliability"] = {**reliability, "drift": drift}
    feedback = reliability.get("feedback") if isinstance(reliability, dict) else None
    if isinstance(reliability, dict) and isinstance(feedback, dict) and "source" in feedback:
        source = _joined(feedback.get("source"), folder)
        data["reliability"] = {**reliability, "feedback": {**feedback, "source": source}}
    return data


def _anchored_dataset(dataset: dict[str, Any], folder: Path) -> dict[str, Any]:
    dataset = dict(dataset)
    provider = dataset.get("provider")
    options = dataset.get("options")
    if isinstance(options, dict) and "path" in options:
        if provider in LOCAL_PATH_PROVIDERS:
            options = {**options, "path": _joined(options["path"], folder)}
        elif provider in HUB_PROVIDERS:
            options = {**options, "path": _joined(options["path"], folder, only_if_local=True)}
        dataset["options"] = options
    sample = dataset.get("sample")
    if isinstance(sample, dict) and "ids_from" in sample:
        dataset["sample"] = {**sample, "ids_from": _joined(sample["ids_from"], folder)}
    return dataset
