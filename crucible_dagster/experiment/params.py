"""``${params.name}`` placeholders in stage options, filled from a sweep trial's parameters."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

PLACEHOLDER = re.compile(r"\$\{params\.([A-Za-z0-9_]+)\}")


class UnknownParameter(KeyError):
    """An option names a parameter the experiment does not have."""

    def __init__(self, name: str):
        self.name = name
        super().__init__(name)

    def __str__(self) -> str:
        return (
            f"option refers to ${{params.{self.name}}} but the experiment has no parameter "
            f"{self.name!r}"
        )


def has_placeholder(value: Any) -> bool:
    if isinstance(value, str):
        return PLACEHOLDER.search(value) is not None
    if isinstance(value, Mapping):
        return any(has_placeholder(v) for v in value.values())
    if isinstance(value, list):
        return any(has_placeholder(v) for v in value)
    return False


def substitute_params(value: Any, params: Mapping[str, Any]) -> Any:
    """Replace ``${params.name}``; a whole-string placeholder keeps the parameter's type."""

    def lookup(name: str) -> Any:
        if name not in params:
            raise UnknownParameter(name)
        return params[name]

    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value)
        if whole:
            return lookup(whole.group(1))
        return PLACEHOLDER.sub(lambda match: str(lookup(match.group(1))), value)
    if isinstance(value, Mapping):
        return {k: substitute_params(v, params) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_params(v, params) for v in value]
    return value
