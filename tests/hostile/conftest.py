"""Helpers for the hostile corpus: run the CLI in-process and read what it said."""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from crucible_dagster.cli import main


@dataclass
class Said:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


Cli = Callable[..., Said]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    def run(*args: str | Path) -> Said:
        previous = signal.getsignal(signal.SIGTERM)
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse usage errors
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            signal.signal(signal.SIGTERM, previous)
        said = capsys.readouterr()
        result = Said(code, said.out, said.err)
        assert "Traceback" not in result.text, result.text
        return result

    return run


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes, to show nothing was changed or added."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }
