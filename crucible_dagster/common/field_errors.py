"""Checks that name their own field ("id: expected a scorer ...") run inside pydantic
validators, where pydantic puts the field's path in front of the message itself."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def as_field_error(
    errors: type[Exception] | tuple[type[Exception], ...], *prefixes: str
) -> Iterator[None]:
    """Re-raise ``errors`` as the ValueError a pydantic validator raises, without the field's
    name that each of ``prefixes`` (removed in turn) spells, so it is not said twice."""
    try:
        yield
    except errors as exc:
        message = str(exc)
        for prefix in prefixes:
            message = message.removeprefix(prefix)
        raise ValueError(message) from None
