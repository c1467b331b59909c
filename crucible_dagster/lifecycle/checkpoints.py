"""Checkpoints as skops files: skops rebuilds an estimator from its state without unpickling,
and loads only the types it trusts (scikit-learn's, numpy's, scipy's) plus the one class the
experiment names. A checkpoint is written by this package into the run directory (created
exclusively, never over a file) with its sha256 in the training record; before a resume loads
one, its bytes must have that digest and every type in it must be trusted.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from crucible_dagster.runtime.stage import StageError

FOLDER = "checkpoints"
#: a checkpoint larger than this is not one of ours (an estimator's state, not a dataset)
MAX_CHECKPOINT_BYTES = 2 * 1024**3
#: the libraries whose types a checkpoint may hold (skops lists a tree's ``Tree`` as untrusted)
TRUSTED_MODULES = ("sklearn.", "numpy.", "scipy.")


def save(run_dir: Path, name: str, estimator: Any) -> tuple[str, str]:
    """``checkpoints/<name>.skops`` in ``run_dir``; (its path relative to the run, sha256)."""
    import skops.io as sio

    data = sio.dumps(estimator)
    folder = run_dir / FOLDER
    folder.mkdir(exist_ok=True)
    relative = f"{FOLDER}/{name}.skops"
    fd = os.open(run_dir / relative, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return relative, hashlib.sha256(data).hexdigest()


def load(
    run_dir: Path, relative: str, sha256: str, trusted: set[str], expected: type | None = None
) -> Any:
    """The estimator in the checkpoint at ``run_dir/relative``, refused (StageError, naming the
    file) when its path leaves the run directory, its bytes are not the ones recorded, it holds
    a type skops does not trust that is not a class of scikit-learn, numpy or scipy (a function
    such as a file writer is never trusted) nor ``trusted``, or what it holds is not an
    ``expected`` (a Pipeline in place of the estimator the file names)."""
    import skops.io as sio

    from crucible_dagster.common.files import UnreadableFile, read_regular

    path = (run_dir / relative).resolve()
    where = str(run_dir / relative)
    if run_dir.resolve() not in path.parents or Path(relative).is_absolute():
        raise StageError("foreign_checkpoint", where,
                         f"{where}: a checkpoint outside its run directory is not loaded")  # fmt: skip
    try:
        data = read_regular(path, MAX_CHECKPOINT_BYTES)
    except UnreadableFile as exc:
        raise StageError("unreadable_checkpoint", where, f"{where}: cannot read: {exc}") from None
    found = hashlib.sha256(data).hexdigest()
    if found != sha256:
        raise StageError("tampered_checkpoint", where, f"{where}: sha256: expected {sha256} "
                         f"(recorded when it was written), found {found}: not loaded")  # fmt: skip
    try:
        untrusted = set(sio.get_untrusted_types(data=data))
    except Exception as exc:  # skops raises what the zip and JSON readers raise
        raise StageError("invalid_checkpoint", where, f"{where}: not a skops file: {exc}") from None
    unknown = sorted(t for t in untrusted - trusted if not library_class(t))
    if unknown:
        raise StageError("untrusted_checkpoint", where, f"{where}: holds types outside "
                         f"scikit-learn, numpy and scipy: {', '.join(unknown)[:300]}: not loaded")  # fmt: skip
    try:
        found_object = sio.loads(data, trusted=sorted(untrusted))
    except Exception as exc:
        raise StageError("invalid_checkpoint", where, f"{where}: cannot be loaded: {exc}") from None
    if expected is not None and not isinstance(found_object, expected):
        raise StageError("foreign_checkpoint", where, f"{where}: expected a {expected.__name__}, "
                         f"found a {type(found_object).__name__}: not used")  # fmt: skip
    return found_object


def library_class(name: str) -> bool:
    """``name`` (``module.Qualified``) is a class defined in scikit-learn, numpy or scipy: a
    type a checkpoint may hold (a tree's ``Tree``), unlike their functions."""
    import importlib
    import inspect

    if not name.startswith(TRUSTED_MODULES):
        return False
    module, _, attribute = name.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError, ValueError):
        return False
    return inspect.isclass(found) and str(found.__module__).startswith(TRUSTED_MODULES)


def types_to_trust(path: Path, trusted: set[str]) -> list[str]:
    """The types skops does not trust by default that this package's own checkpoint at
    ``path`` holds and that loading it must trust (a tree's ``Tree``): what MLflow's
    ``skops_trusted_types`` takes when the model is logged."""
    import skops.io as sio

    found = sio.get_untrusted_types(file=path)
    return sorted(t for t in found if t in trusted or library_class(t))
