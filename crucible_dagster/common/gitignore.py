"""Add one pattern to a project's ``.gitignore``: created when missing, appended to otherwise,
never a second copy, never another line changed. Run directories must not end up in commits,
and a scaffolding tool must not damage a file the user keeps."""

from __future__ import annotations

import os
from pathlib import Path

from crucible_dagster.common.files import UnreadableFile, read_regular

#: larger than any .gitignore people write; a bigger "file" is not one we should edit
MAX_GITIGNORE_BYTES = 1 << 20


class GitignoreNotEdited(Exception):
    """Why the pattern was not added: the message names the file, the reason and what to add."""


def _same_pattern(line: bytes, pattern: str) -> bool:
    """``artifacts``, ``artifacts/``, ``/artifacts`` and ``/artifacts/`` all ignore the folder."""
    core = pattern.strip("/").encode()
    return line.strip().strip(b"/") == core


def add_to_gitignore(gitignore: Path, pattern: str) -> bool:
    """``pattern`` on a line of its own in ``gitignore``; True when the file was changed.

    The file is edited only when it is a regular file (never through a symlink, never a
    FIFO or a folder), of at most ``MAX_GITIGNORE_BYTES``; its bytes are kept as they are (any
    encoding), a missing final newline is supplied first. A missing file is created (and
    only then: ``O_EXCL``). Anything else raises ``GitignoreNotEdited``, with nothing changed.
    """
    line = pattern.encode()
    if b"\n" in line or b"\r" in line or not pattern.strip("/ "):
        raise ValueError(f"expected one .gitignore pattern, got {pattern!r}")
    try:
        text = read_regular(gitignore, MAX_GITIGNORE_BYTES)
    except UnreadableFile as exc:
        if exc.problem != "missing":
            raise GitignoreNotEdited(_refusal(gitignore, exc, pattern)) from None
        if os.path.lexists(gitignore):  # a dangling symlink: read says missing, do not create
            raise GitignoreNotEdited(
                f"{gitignore}: not edited: it is a symlink; add the line {pattern} to it yourself"
            ) from None
        text = None
    if text is not None and any(_same_pattern(old, pattern) for old in text.splitlines()):
        return False
    addition = line + b"\n"
    if text:
        addition = (b"" if text.endswith(b"\n") else b"\n") + addition
    flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW
    flags |= os.O_CREAT | os.O_EXCL if text is None else 0
    try:
        fd = os.open(gitignore, flags, 0o644)
    except OSError as exc:  # it changed since it was read (a link put there): leave it alone
        raise GitignoreNotEdited(
            f"{gitignore}: not edited: {exc.strerror or exc}; add the line {pattern} to it yourself"
        ) from None
    try:
        os.write(fd, addition)
    finally:
        os.close(fd)
    return True


def _refusal(gitignore: Path, exc: UnreadableFile, pattern: str) -> str:
    reasons = {
        "not_regular": "it is not a regular file",
        "too_large": f"it is larger than {MAX_GITIGNORE_BYTES} bytes",
    }
    reason = reasons.get(exc.problem)
    if reason is None and gitignore.is_symlink():
        reason = "it is a symlink"
    return (
        f"{gitignore}: not edited: {reason or f'cannot read it ({exc.detail or exc.problem})'}; "
        f"add the line {pattern} to it yourself"
    )
