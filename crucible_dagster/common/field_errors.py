"""Checks that name their own field ("id: expected a scorer ...") run inside pydantic
validation, where pydantic puts the field's path in front of the message itself."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import AfterValidator, ValidationInfo

Errors = type[Exception] | tuple[type[Exception], ...]


@contextmanager
def as_field_error(errors: Errors, *prefixes: str) -> Iterator[None]:
    """Re-raise ``errors`` as the ValueError a pydantic validator raises, without the field's
    name that each of ``prefixes`` (removed in turn) spells, so it is not said twice."""
    try:
        yield
    except errors as exc:
        message = str(exc)
        for prefix in prefixes:
            message = message.removeprefix(prefix)
        raise ValueError(message) from None


def checked_by(check: Callable[[Any, str], object], errors: Errors, *prefixes: str) -> Any:
    """A field's validator (``Annotated[T, checked_by(...)]``): ``check(value, field name)``
    accepts the value (None passes), its ``errors`` are the field's, ``prefixes`` removed
    (``{field}`` in one stands for the field's name)."""

    def validate(value: Any, info: ValidationInfo) -> Any:
        if value is not None:
            field = str(info.field_name)
            with as_field_error(errors, *(p.format(field=field) for p in prefixes)):
                check(value, field)
        return value

    return AfterValidator(validate)
