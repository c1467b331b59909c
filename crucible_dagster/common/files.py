"""Atomic file writes: a killed run never leaves a file that looks complete but is not.

Write to a temporary file in the same folder, then rename over the target. This guards
against killed processes (the failure we test); it does not fsync, so it does not
promise durability across a power cut. On an object store (a ``UPath``) one upload is
atomic by itself: the object is written whole or not at all.

A full disk is the one case where the rename cannot be had: a temporary copy needs room the
disk no longer has. ``write_in_place`` is the last resort for a file that must still be
written then (a run's final manifest): it reuses the blocks the file already holds.
"""

from __future__ import annotations

import errno
import os
import secrets
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypeVar, cast

if TYPE_CHECKING:
    from upath import UPath

#: a local path, or a UPath on an object store: each writer returns the kind it was given
P = TypeVar("P", bound="Path | UPath")


def _temporary(path: Path) -> tuple[Path, int]:
    """A new file beside ``path``, created exclusively (``O_EXCL``) with the mode any other file
    of the process gets (the umask applies)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        return tmp, os.open(tmp, flags, 0o666)
    except FileNotFoundError:  # the folder is new: make it (the common case pays no stat)
        path.parent.mkdir(parents=True, exist_ok=True)
        return tmp, os.open(tmp, flags, 0o666)


def _replace(tmp: Path, path: Path, write: Callable[[], object]) -> Path:
    """Run ``write``, then rename ``tmp`` over ``path``: the rename replaces ``path`` itself, so
    a symlink planted there is replaced, never followed."""
    try:
        write()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _upload(path: P, data: bytes) -> P:
    path.parent.mkdir(parents=True, exist_ok=True)  # a no-op on stores without folders
    path.write_bytes(data)
    return path


def _written_locally(write: Callable[[Path], object]) -> tuple[bytes, object]:
    """Run ``write`` on a local scratch file and return its bytes: for an object store."""
    with tempfile.TemporaryDirectory(prefix="crucible-") as scratch:
        tmp = Path(scratch) / "file"
        result = write(tmp)
        return tmp.read_bytes(), result


def atomic_write_with(path: P, write: Callable[[Path], object]) -> P:
    """Call ``write(temporary_path)``, then move the finished file to ``path``."""
    if not isinstance(path, Path):
        return _upload(path, _written_locally(write)[0])
    tmp, fd = _temporary(path)
    os.close(fd)
    return cast(P, _replace(tmp, path, lambda: write(tmp)))


def write_content_addressed(folder: P, write: Callable[[Path], str]) -> P:
    """``write(temporary_path)`` returns the file's name (its content's digest): the finished
    file is moved there, unless a file of that name (the same content) is there already."""
    if not isinstance(folder, Path):
        data, name = _written_locally(write)
        remote = folder / str(name)
        return cast(P, remote if remote.exists() else _upload(remote, data))
    tmp, fd = _temporary(folder / "blob")
    os.close(fd)
    try:
        target = folder / write(tmp)
        if target.exists():
            tmp.unlink()
        else:
            os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return cast(P, target)


def atomic_write_bytes(path: P, data: bytes) -> P:
    if not isinstance(path, Path):
        return _upload(path, data)
    tmp, fd = _temporary(path)

    def write() -> None:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)

    return cast(P, _replace(tmp, path, write))


def atomic_write_text(path: P, text: str) -> P:
    return atomic_write_bytes(path, text.encode("utf-8"))


#: errors that mean "no room": a full disk or a used-up quota
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_FULL


def write_in_place(path: Path, data: bytes) -> Path:
    """Overwrite ``path`` without a temporary copy, then cut it to ``data``'s length: this needs
    no new blocks, so it works on a full disk; refused (ENOSPC) when ``data`` is longer than
    the file. Not atomic (a kill midway leaves a mix), so only for when the atomic write failed
    for want of room."""
    fd = os.open(path, os.O_WRONLY)
    try:
        if len(data) > os.fstat(fd).st_size:  # it would need new blocks and could end torn
            raise OSError(errno.ENOSPC, "no room to rewrite the file in place", str(path))
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)
    return path


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


class UnreadableFile(Exception):
    """Why ``read_regular`` read nothing: ``problem`` is ``missing``, ``open``, ``not_regular``,
    ``too_large`` or ``read``; ``detail`` the OS's reason or the size found (bytes)."""

    def __init__(self, problem: str, detail: str = "", st_mode: int = 0):
        super().__init__(f"{problem}: {detail}" if detail else problem)
        self.problem, self.detail, self.st_mode = problem, detail, st_mode


def read_regular(path: Path, cap: int) -> bytes:
    """A regular file's bytes, at most ``cap``: never through a symlink, never blocked on a
    FIFO, checked on the descriptor before a byte is read (a file that grew past ``cap``
    since is ``too_large`` too). ``UnreadableFile`` says why it read nothing."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        missing = isinstance(exc, FileNotFoundError)
        raise UnreadableFile("missing" if missing else "open", exc.strerror or str(exc)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFile("not_regular", st_mode=info.st_mode)
        if info.st_size > cap:
            raise UnreadableFile("too_large", str(info.st_size))
        chunks: list[bytes] = []
        size = 0
        while size <= cap and (chunk := os.read(fd, cap + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
        data = b"".join(chunks)
    except OSError as exc:
        raise UnreadableFile("read", exc.strerror or str(exc)) from None
    finally:
        os.close(fd)
    if len(data) > cap:
        raise UnreadableFile("too_large")
    return data


def bounded_lines(handle: IO[bytes], cap: int) -> Iterator[tuple[bytes, bool]]:
    """Each line of at most ``cap`` bytes, and whether it was longer (then it is yielded empty,
    its bytes skipped a chunk at a time): a line of a gigabyte is never held in memory."""
    while True:
        line = handle.readline(cap + 1)
        if not line:
            return
        if len(line) <= cap or line.endswith(b"\n"):
            yield line, False
            continue
        while not line.endswith(b"\n"):  # skip the rest of the long line, a chunk at a time
            line = handle.readline(1 << 20)
            if not line:
                break
        yield b"", True
