"""One shape for every user-facing input problem: file, line, field path, message.

Loading, validation and the CLI all speak in ``Problem``s so that the same
text appears in ``crucible validate``, in logs and in the Dagster UI.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """A single thing wrong with an input, located as precisely as we can."""

    message: str
    field: str = ""
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = self.file or "<experiment>"
        if self.line is not None:
            where = f"{where}:{self.line}"
        field = self.field or "(root)"
        return f"{where}: {field}: {self.message}"


class ExperimentError(ValueError):
    """Raised when an experiment cannot be loaded; carries every problem found, not only the first."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def format_loc(loc: Iterable[str | int]) -> str:
    """Render a pydantic-style location tuple as ``pipeline[2].options.alpha``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def short_repr(value: object, limit: int = 80) -> str:
    """``repr`` that never floods a terminal with a huge value."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_loc(field: str) -> tuple[str | int, ...]:
    """Inverse of ``format_loc``: ``pipeline[2].name`` -> ``("pipeline", 2, "name")``."""
    import re

    parts: list[str | int] = []
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", field):
        parts.append(int(index) if index else name)
    return tuple(parts)
