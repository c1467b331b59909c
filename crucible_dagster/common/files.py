"""Atomic file writes: a killed run never leaves a file that looks complete but is not.

Write to a temporary file in the same folder, then rename over the target. This guards
against killed processes (the failure we test); it does not fsync, so it does not
promise durability across a power cut.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


#: files get the permissions any other file of the process would get (mkstemp's are 0600)
FILE_MODE = 0o666 & ~_umask()


def atomic_write_with(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(temporary_path)``, then move the finished file to ``path``.

    The rename replaces ``path`` itself: a symlink planted there is replaced, never followed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    return atomic_write_with(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def safe_join(root: Path, relative: str) -> Path:
    """``root / relative``, refusing anything that escapes ``root`` (``..``, absolute paths) and
    any symlink on the way: a link planted inside a run directory is never followed out of it."""
    root = root.resolve()
    candidate = Path(relative)
    joined = candidate if candidate.is_absolute() else root / candidate
    target = joined.resolve()
    if target != root and root not in target.parents:
        raise PermissionError(
            f"path {relative!r} escapes {str(root)!r}; write inside it or use a relative path"
        )
    current = Path(os.path.normpath(joined))
    while current != root and root in current.parents:
        if current.is_symlink():
            raise PermissionError(f"path {relative!r} goes through a symlink ({current}); refused")
        current = current.parent
    return target
