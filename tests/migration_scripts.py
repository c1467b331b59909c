"""The test process parses Dagster's storage migration scripts once, not once per new database.

Every new SQLite database of a Dagster instance (its run, event log and schedule storages, and
an event log shard per run) is stamped with alembic, which builds the revision map by loading
every migration script of that storage from disk again: about 0.13 s of CPU a fresh instance,
over 20 s of a ``make test`` worker. ``ScriptDirectory`` is a read-only view of a folder of
scripts, so the test process keeps one per folder. What is stamped, checked and migrated is
unchanged; subprocesses (CLIs, servers, launched runs) are not touched.
"""

from __future__ import annotations

from typing import Any


def parse_once() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    if getattr(ScriptDirectory.from_config, "parsed_once", False):
        return
    parse = ScriptDirectory.from_config.__func__  # type: ignore[attr-defined]
    parsed: dict[tuple[str | None, str | None], ScriptDirectory] = {}

    def from_config(cls: type[ScriptDirectory], config: Config) -> Any:
        folder = (config.get_main_option("script_location"), config.config_file_name)
        if folder not in parsed:
            parsed[folder] = parse(cls, config)
        return parsed[folder]

    from_config.parsed_once = True  # type: ignore[attr-defined]
    ScriptDirectory.from_config = classmethod(from_config)  # type: ignore[assignment,method-assign]
