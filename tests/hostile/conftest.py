"""Helpers for the hostile corpus: run the CLI in-process and read what it said."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Cli, Said

__all__ = ["Cli", "Said", "snapshot"]  # the cli fixture lives in tests/conftest.py


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes, to show nothing was changed or added."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }
