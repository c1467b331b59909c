"""What a test asserts instead of the clock, which a loaded machine stretches: the waits a
client chose before its retries, and how much of a dripped answer the server had sent when
the client gave up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, SupportsIndex

import pytest

from crucible_dagster.contrib.llm_server import Raw


def recorded_waits(backend: Any, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits (seconds) ``backend`` chooses before each retry, recorded as it sleeps them."""
    waits: list[float] = []
    choose = backend._wait_s

    def wait_s(failure: Any, attempt: int) -> float:
        waits.append(choose(failure, attempt))
        return waits[-1]

    monkeypatch.setattr(backend, "_wait_s", wait_s)
    return waits


class Tally(bytes):
    """Bytes that count the one-byte slices taken of them: the server drips an answer a slice
    at a time, so ``taken`` is how many bytes it has sent (or is sending)."""

    taken = 0

    def __getitem__(self, key: SupportsIndex | slice) -> Any:
        if isinstance(key, slice):
            self.taken += 1
        return super().__getitem__(key)


@dataclass
class TalliedRaw(Raw):
    """A scripted answer whose head and body count the bytes dripped of them."""

    def __post_init__(self) -> None:
        self.body = Tally(self.body)
        self.head_tally = Tally(super().head())

    def head(self) -> bytes:
        return self.head_tally

    @property
    def sent(self) -> int:
        """Bytes dripped so far (head and body; a head sent whole counts as none)."""
        return self.head_tally.taken + (self.body.taken if isinstance(self.body, Tally) else 0)
