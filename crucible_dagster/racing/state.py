"""The race's record, ``race.json`` in the run directory: written after every finished round
(atomically), read back to resume. It holds everything a decision was made from (every score,
every look with its test and p, the sequential test's betting state), so a resumed race reaches
the same decisions, and the report and Dagster metadata read it as the race's history.

Read back as untrusted input (``tests/hostile``): size cap, no symlink, strict types, and it
must name the same configurations, block order and settings as the race that resumes it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crucible_dagster.common.files import atomic_write_text
from crucible_dagster.run_history.records import (
    RecordError,
    parse_json,
    read_bytes,
    shown,
)

RACE_FILE = "race.json"
SCHEMA_VERSION: Literal[1] = 1
MAX_RACE_BYTES = 256 * 1024 * 1024
MAX_ITEMS = 10_000_000
Id = Annotated[str, Field(min_length=1, max_length=512)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RoundRecord(_Strict):
    """One finished round: which blocks, who ran them, what the test said, who was dropped."""

    index: int = Field(ge=1, le=MAX_ITEMS)
    blocks: list[Id] = Field(max_length=MAX_ITEMS)
    survivors: list[Id] = Field(max_length=MAX_ITEMS)
    evaluations: int = Field(ge=0, le=10**13)
    dropped: list[Id] = Field(max_length=MAX_ITEMS)
    look: dict[str, Any]
    #: what the round's evaluations cost (the sweep's budget ledger; 0 when nothing is priced)
    cost: float = Field(default=0.0, ge=0, allow_inf_nan=False)


class RaceRecord(_Strict):
    """``race.json``: the race so far."""

    schema_version: Literal[1]
    method: Literal["sequential", "frace"]
    direction: Literal["maximize", "minimize"]
    settings: dict[str, Any]
    configs: list[Id] = Field(min_length=1, max_length=100_000)
    block_order: list[Id] = Field(max_length=MAX_ITEMS)
    scores: dict[Id, list[Finite]]
    survivors: list[Id] = Field(min_length=1)
    rounds: list[RoundRecord] = Field(max_length=MAX_ITEMS)
    evaluations: int = Field(ge=0, le=10**13)
    cost: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    #: the ledger's spend when the round under way was planned (a race played step by step)
    round_start_cost: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    #: the run whose ledger ``round_start_cost`` was read from (a re-execution plays a round
    #: its parent planned)
    round_planned_in: Annotated[str, Field(max_length=512)] = ""
    finished: bool
    finish_reason: Annotated[str, Field(max_length=4096)] = ""
    test_state: dict[str, Any] = Field(default_factory=dict)


class TestState(_Strict):
    """The sequential test's betting state (``SequentialTest.to_json``), checked before the test
    resumes from it: a tampered one was a bare KeyError or ValueError inside the race."""

    blocks: int = Field(ge=0, le=MAX_ITEMS)
    log_wealth: dict[Id, list[Finite]]
    sums: dict[Id, Finite]
    sup_log_e: dict[Id, Finite]
    any_difference: bool


def write_race(path: Path, record: RaceRecord) -> Path:
    """Replace ``race.json`` whole: a reader sees the previous round's file or this one."""
    return atomic_write_text(path, record.model_dump_json(indent=1))


def read_race(path: Path) -> RaceRecord:
    """``race.json`` validated; a ``RecordError`` naming the file and field otherwise."""
    raw = parse_json(path, read_bytes(path, MAX_RACE_BYTES, "a race record"), "a race record")
    if not isinstance(raw, dict):
        raise RecordError(path, "record", "a JSON object", type(raw).__name__)
    try:
        record = RaceRecord.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "record"
        raise RecordError(path, where, first["msg"], shown(first.get("input"))) from None
    _check_consistent(path, record)
    return record


def _check_consistent(path: Path, record: RaceRecord) -> None:
    """Fields that agree with each other: survivors and scores name known configurations, every
    score list is no longer than the blocks done, rounds cover the blocks in order."""
    known = set(record.configs)
    if len(known) != len(record.configs):
        raise RecordError(path, "configs", "distinct configuration ids", "a repeated id")
    named = [("survivors", record.survivors), ("scores", list(record.scores))]
    for i, past in enumerate(record.rounds):
        named += [(f"rounds.{i}.survivors", past.survivors), (f"rounds.{i}.dropped", past.dropped)]
    for field, ids in named:
        unknown = [c for c in ids if c not in known]
        if unknown:
            raise RecordError(path, field, "ids among configs", shown(unknown[0]))
    done = sum(len(r.blocks) for r in record.rounds)
    if done > len(record.block_order):
        raise RecordError(path, "rounds", f"at most {len(record.block_order)} blocks", str(done))
    seen = [b for r in record.rounds for b in r.blocks]
    if seen != record.block_order[: len(seen)]:
        raise RecordError(path, "rounds", "blocks in block_order's order", "another order")
    for config, values in record.scores.items():
        if len(values) > done:
            raise RecordError(path, f"scores.{config}", f"at most {done} scores", str(len(values)))
    if record.test_state:
        _check_test_state(path, record, done)


def _check_test_state(path: Path, record: RaceRecord, done: int) -> None:
    """The betting state: its fields' types, one entry per configuration, one wealth per
    betting fraction, and as many blocks as the rounds ran."""
    from crucible_dagster.racing.sequential import LAMBDAS

    try:
        state = TestState.model_validate(record.test_state)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(["test_state", *(str(p) for p in first["loc"])])
        raise RecordError(path, where, first["msg"], shown(first.get("input"))) from None
    configs = set(record.configs)
    for field in ("log_wealth", "sums", "sup_log_e"):
        if set(getattr(state, field)) != configs:
            raise RecordError(path, f"test_state.{field}", "one entry per configuration", "others")
    for config, wealth in state.log_wealth.items():
        if len(wealth) != len(LAMBDAS):
            raise RecordError(
                path, f"test_state.log_wealth.{config}", f"{len(LAMBDAS)} values", str(len(wealth))
            )
    if state.blocks != done:
        raise RecordError(
            path, "test_state.blocks", f"{done} (the rounds' blocks)", str(state.blocks)
        )
