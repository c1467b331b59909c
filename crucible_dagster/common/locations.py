"""Where stored data lives: a local path, or any fsspec URL through universal_pathlib.

A plain path or a ``file://`` URL is a ``pathlib.Path`` (atomic renames, exclusive creation);
another scheme (``s3://``, ``gs://``, ``az://``, ``memory://`` ...) is a ``UPath`` served by
its fsspec filesystem, installed separately (``s3fs``, ``gcsfs``, ``adlfs``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:
    from upath import UPath

StoragePath: TypeAlias = "Path | UPath"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(value: str | Path) -> bool:
    return isinstance(value, str) and bool(_SCHEME.match(value))


def storage_path(value: str | Path) -> StoragePath:
    """``value`` as the path type that stores there: ``Path`` when local, else ``UPath``."""
    if not is_url(value):
        return Path(value)
    text = str(value)
    parsed = urlparse(text)
    if parsed.scheme in ("file", "local"):
        return Path(unquote(parsed.path))
    from upath import UPath

    return UPath(text)


def local_path(value: str | Path, what: str) -> Path:
    """A place that must be a filesystem path (a run directory's root): a URL other than
    ``file://`` is refused, with what to use instead."""
    path = storage_path(value)
    if not isinstance(path, Path):
        raise ValueError(
            f"{what}: expected a filesystem path every process can reach (a local folder, or a "
            f"shared mount such as NFS or EFS), found the URL {str(value)!r}; object-store URLs "
            "are supported for the Context IO manager's base_dir, not yet for run directories"
        )
    return path
