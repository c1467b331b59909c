"""What a dataset provider is, and what it hands back.

A provider turns a ``dataset:`` reference into an Arrow table. It declares its own options as a
pydantic model (``Options``), so ``crucible validate`` checks ``dataset.options`` the way a
stage's options are checked; ``check`` adds what can be known without loading (a path that does
not exist, an unknown name) and ``columns`` what the table will hold when that is cheap to know.
Nothing here imports pyarrow or pandas: validating a folder of experiments stays light.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import ConfigDict, Field

from crucible_dagster.experiment.strict_numbers import RefuseBoolForNumbers

if TYPE_CHECKING:
    import pyarrow as pa

    from crucible_dagster.experiment.ir import DatasetRef


class DatasetError(ValueError):
    """A dataset that cannot be loaded as declared; the message names where and why."""

    def __init__(self, message: str, *, reason: str = "dataset_error", where: str | None = None):
        self.reason = reason
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


def stat_or_refuse(
    path: str | os.PathLike[str],
    *,
    reason: str = "unreadable",
    where: str | None = None,
    follow_links: bool = True,
) -> os.stat_result:
    """``os.stat`` of a file a dataset reads (``os.lstat`` without ``follow_links``), checked
    before it is opened (a FIFO would block); one that cannot be stat'ed is the located
    ``cannot read: <why>`` DatasetError (``where``: the path itself unless said)."""
    try:
        return os.stat(path) if follow_links else os.lstat(path)
    except OSError as exc:
        raise DatasetError(
            f"cannot read: {exc.strerror}",
            reason=reason,
            where=str(path) if where is None else where,
        ) from None


class ProviderOptions(RefuseBoolForNumbers):
    """Options every provider reads; a provider's own model adds its settings (a boolean for a
    number, ``max_bytes: true``, is refused as the stages' options refuse it, not read as 1)."""

    model_config = ConfigDict(extra="forbid")

    target: str | None = Field(
        default=None,
        min_length=1,
        description="A column to hand on as assigns['target'] (the rest as assigns['features']).",
    )
    id_column: str = Field(
        default="id",
        min_length=1,
        description="The column holding each example's id; the row number when absent.",
    )


@dataclass
class LoadedTable:
    """What a provider loaded: the table, where it came from, and (for a located error) the
    source of a given row when the table was read from several files."""

    table: pa.Table
    source: str
    origin_of: Callable[[int], str] | None = None
    target: str | list[str] | None = None
    notes: dict[str, Any] = field(default_factory=dict)


class Provider:
    """Base class of a dataset provider (subclass it; register under the entry-point group
    ``crucible_dagster.datasets`` or name it by dotted path in ``dataset.provider``)."""

    name: ClassVar[str] = ""
    Options: ClassVar[type[ProviderOptions]] = ProviderOptions

    #: whether ``dataset.version`` means something to the provider (a hub revision); when not,
    #: it pins the content: the load fails unless the fingerprint starts with it
    uses_version: ClassVar[bool] = False

    def load(self, ref: DatasetRef, options: Any) -> LoadedTable:
        """The table, with benchmark fields already mapped to ``input`` and ``reference``."""
        raise NotImplementedError

    def check(self, ref: DatasetRef, options: Any) -> list[str]:
        """Problems found without loading (each ``field: message``); none by default."""
        return []

    def columns(self, ref: DatasetRef, options: Any) -> list[str] | None:
        """The columns a load will give, when known without loading; None otherwise."""
        return None
