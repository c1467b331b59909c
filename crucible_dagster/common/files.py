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


def atomic_write_with(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(temporary_path)``, then move the finished file to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
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
    """``root / relative``, refusing anything that escapes ``root`` (``..``, absolute paths, links)."""
    root = root.resolve()
    candidate = Path(relative)
    target = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if target != root and root not in target.parents:
        raise PermissionError(
            f"path {relative!r} escapes {str(root)!r}; write inside it or use a relative path"
        )
    return target
