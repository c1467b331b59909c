"""The scaffold's .gitignore edit (issue 30 item 4): created or appended to, never a second copy,
never another byte changed, never through a symlink or into something that is not a file."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from crucible_dagster.common.gitignore import (
    MAX_GITIGNORE_BYTES,
    GitignoreNotEdited,
    add_to_gitignore,
)

PATTERN = "/artifacts/"


def _tree(root: Path) -> dict[str, bytes | str]:
    """Every entry under ``root``: a file's bytes, a link's target, a folder's kind."""
    found: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            found[key] = f"-> {os.readlink(path)}"
        elif path.is_file():
            found[key] = path.read_bytes()
        else:
            found[key] = "folder" if path.is_dir() else "other"
    return found


def test_a_missing_gitignore_is_created(tmp_path: Path) -> None:
    assert add_to_gitignore(tmp_path / ".gitignore", PATTERN)
    assert (tmp_path / ".gitignore").read_bytes() == b"/artifacts/\n"


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (b"", b"/artifacts/\n"),
        (b".venv/\n", b".venv/\n/artifacts/\n"),
        (b".venv/", b".venv/\n/artifacts/\n"),  # no final newline: one is supplied first
        (b"caf\xe9\r\n", b"caf\xe9\r\n/artifacts/\n"),  # not UTF-8, CRLF: kept byte for byte
    ],
)
def test_the_line_is_appended_and_every_other_byte_kept(
    tmp_path: Path, before: bytes, after: bytes
) -> None:
    gitignore = tmp_path / ".gitignore"
    gitignore.write_bytes(before)
    assert add_to_gitignore(gitignore, PATTERN)
    assert gitignore.read_bytes() == after
    assert not add_to_gitignore(gitignore, PATTERN)  # a second time: nothing added
    assert gitignore.read_bytes() == after


@pytest.mark.parametrize("spelling", ["artifacts", "artifacts/", "/artifacts", "  /artifacts/  "])
def test_a_line_that_ignores_the_folder_already_is_never_duplicated(
    tmp_path: Path, spelling: str
) -> None:
    gitignore = tmp_path / ".gitignore"
    gitignore.write_text(f"# build\n{spelling}\n")
    assert not add_to_gitignore(gitignore, PATTERN)
    assert gitignore.read_text() == f"# build\n{spelling}\n"


def _symlink(tmp_path: Path) -> Path:
    target = tmp_path / "outside" / "shared_ignore"
    target.parent.mkdir()
    target.write_text("keep\n")
    (tmp_path / "proj" / ".gitignore").symlink_to(target)
    return target


def _dangling(tmp_path: Path) -> Path:
    (tmp_path / "proj" / ".gitignore").symlink_to(tmp_path / "outside_missing")
    return tmp_path / "outside_missing"


def _folder(tmp_path: Path) -> Path:
    (tmp_path / "proj" / ".gitignore").mkdir()
    return tmp_path / "proj" / ".gitignore"


def _fifo(tmp_path: Path) -> Path:
    os.mkfifo(tmp_path / "proj" / ".gitignore")
    return tmp_path / "proj" / ".gitignore"


def _huge(tmp_path: Path) -> Path:
    (tmp_path / "proj" / ".gitignore").write_bytes(b"#" * (MAX_GITIGNORE_BYTES + 1))
    return tmp_path / "proj" / ".gitignore"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_symlink, "it is a symlink"),
        (_dangling, "it is a symlink"),
        (_folder, "it is not a regular file"),
        (_fifo, "it is not a regular file"),
        (_huge, f"it is larger than {MAX_GITIGNORE_BYTES} bytes"),
    ],
)
def test_a_gitignore_that_is_not_a_plain_file_is_left_alone(
    tmp_path: Path, make: Callable[[Path], Path], reason: str
) -> None:
    (tmp_path / "proj").mkdir()
    make(tmp_path)
    before = _tree(tmp_path)
    gitignore = tmp_path / "proj" / ".gitignore"
    with pytest.raises(GitignoreNotEdited) as raised:
        add_to_gitignore(gitignore, PATTERN)
    assert str(raised.value) == (
        f"{gitignore}: not edited: {reason}; add the line /artifacts/ to it yourself"
    )
    assert _tree(tmp_path) == before  # nothing created or changed, here or at a link's target


@pytest.mark.parametrize("pattern", ["", "/", "a\nb", "a\rb"])
def test_a_pattern_that_is_not_one_line_is_refused(tmp_path: Path, pattern: str) -> None:
    with pytest.raises(ValueError, match=r"expected one \.gitignore pattern"):
        add_to_gitignore(tmp_path / ".gitignore", pattern)
    assert not (tmp_path / ".gitignore").exists()
