"""The race: rounds of blocks, a look after each, survivors carried on, ``race.json`` written
after every finished round so an interrupted race resumes from there with the same decisions.

The race does not know what a block or an evaluation is: ``evaluate(configs, blocks)`` returns
each configuration's score on each block (a trial per configuration x seed, or per-sample scores
of one evaluation). That keeps one trial loop for sweeps (``sweeps.running``) and lets the
simulation under ``benchmarks/`` race on synthetic scores through the very same code."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from crucible_dagster.racing.evidence import Look
from crucible_dagster.racing.frace import frace_look
from crucible_dagster.racing.sequential import ScoreOutOfRange, SequentialTest
from crucible_dagster.racing.settings import RacingSettings
from crucible_dagster.racing.state import (
    SCHEMA_VERSION,
    RaceRecord,
    RoundRecord,
    read_race,
    write_race,
)
from crucible_dagster.run_history.records import RecordError

Evaluate = Callable[[Sequence[str], Sequence[str]], Mapping[str, Sequence[float]]]
#: what the evaluations have cost so far (the sweep's budget ledger), for ``budget.cost``
Spent = Callable[[], float]
#: called after each finished round (e.g. to log it or emit Dagster metadata)
OnRound = Callable[[RoundRecord], None]


class RaceError(ValueError):
    """A race that cannot go on: bad scores from the evaluation, or a record of another race."""


@dataclass(frozen=True)
class RaceResult:
    """The finished race, as recorded in ``race.json``."""

    record: RaceRecord

    @property
    def survivors(self) -> list[str]:
        return list(self.record.survivors)

    @property
    def evaluations(self) -> int:
        return self.record.evaluations

    @property
    def grid_evaluations(self) -> int:
        """What evaluating every configuration on every block raced over would have cost."""
        done = sum(len(r.blocks) for r in self.record.rounds)
        return len(self.record.configs) * done

    def dropped_at(self) -> dict[str, int]:
        """Configuration -> the round it was dropped in."""
        return {c: r.index for r in self.record.rounds for c in r.dropped}


def block_order(blocks: Sequence[str], kind: str, seed: int) -> list[str]:
    """The order blocks are raced in: samples in a seeded random order (so the first blocks are
    a random sample, as the sequential test's guarantee needs), seeds and folds as listed."""
    if kind != "samples":
        return list(blocks)
    rng = np.random.default_rng(seed)
    return [blocks[i] for i in rng.permutation(len(blocks))]


class Race:
    """One race over ``configs`` on ``blocks``, recorded at ``state_path`` (or not at all)."""

    def __init__(
        self,
        settings: RacingSettings,
        configs: Sequence[str],
        blocks: Sequence[str],
        direction: Literal["maximize", "minimize"] = "maximize",
        state_path: Path | None = None,
        spent: Spent | None = None,
    ) -> None:
        if settings.max_cost is not None and spent is None:
            raise RaceError("racing.budget.cost needs the spend of the evaluations (a ledger)")
        if len(set(configs)) != len(configs) or not configs:
            raise RaceError("a race needs at least one configuration, each id once")
        if len(set(blocks)) != len(blocks):
            raise RaceError("block ids must be distinct")
        self.settings = settings
        self.direction = direction
        self.state_path = state_path
        self.spent = spent
        order = block_order(blocks, settings.block, settings.order_seed)
        if settings.max_blocks is not None:
            order = order[: settings.max_blocks]
        self.record = self._resumed_or_new(list(configs), order)
        self.test = self._test()

    def _fresh(self, configs: list[str], order: list[str]) -> RaceRecord:
        return RaceRecord(
            schema_version=SCHEMA_VERSION,
            method=self.settings.method,
            direction=self.direction,
            settings=self.settings.model_dump(mode="json"),
            configs=configs,
            block_order=order,
            scores={c: [] for c in configs},
            survivors=configs,
            rounds=[],
            evaluations=0,
            finished=len(configs) <= self.settings.min_survivors or not order,
            finish_reason=_initial_reason(len(configs), self.settings.min_survivors, order),
        )

    def _resumed_or_new(self, configs: list[str], order: list[str]) -> RaceRecord:
        fresh = self._fresh(configs, order)
        if self.state_path is None or not self.state_path.exists():
            return fresh
        record = read_race(self.state_path)
        for field in ("method", "direction", "settings", "configs", "block_order"):
            if getattr(record, field) != getattr(fresh, field):
                raise RaceError(
                    str(
                        RecordError(
                            self.state_path,
                            field,
                            f"this race's {field} (the record is another race's)",
                            "a different value",
                        )
                    )
                )
        return record

    def _test(self) -> SequentialTest | None:
        if self.settings.method != "sequential":
            return None
        low, high = self.settings.score_range
        test = SequentialTest(
            list(self.record.configs), self.settings.alpha, low, high, self.direction
        )
        if self.record.test_state:
            test.restore(self.record.test_state)
        return test

    def max_rounds(self) -> int:
        """The most rounds this race can take."""
        return self.settings.max_rounds(len(self.record.block_order))

    @property
    def blocks_done(self) -> int:
        return sum(len(r.blocks) for r in self.record.rounds)

    def next_blocks(self) -> list[str]:
        """The next round's blocks (none when the race is over): first_look, then round_size,
        cut to the blocks left and to what the budget still pays for every survivor (the cost
        of an evaluation estimated from the rounds so far)."""
        if self.record.finished:
            return []
        done = self.blocks_done
        size = self.settings.first_look if done == 0 else self.settings.round_size
        size = min(size, len(self.record.block_order) - done)
        survivors = len(self.record.survivors)
        most = self.settings.max_evaluations
        if most is not None:
            size = min(size, max(0, most - self.record.evaluations) // survivors)
        cost = self.settings.max_cost
        if cost is not None:
            left = cost - self.record.cost
            each = self.record.cost / self.record.evaluations if self.record.evaluations else 0.0
            if left <= 0:
                size = 0
            elif each > 0:
                size = min(size, int(left / each + 1e-9) // survivors)
        return self.record.block_order[done : done + max(0, size)]

    def next_round(self) -> list[str]:
        """The next round's blocks; none, and the race finished with its reason, when no
        round is left (a race played step by step: plan, evaluate elsewhere, ``play_round``)."""
        blocks = self.next_blocks()
        if not blocks and not self.record.finished:
            self._finish(self._why_no_blocks())
        return blocks

    def mark_round_start(self, spent: float, run: str = "") -> None:
        """What the ledger (of ``run``) says was spent when the next round was planned: the
        round's cost, when its evaluations ran in other processes, is what was spent since."""
        self.record.round_start_cost = max(0.0, float(spent))
        self.record.round_planned_in = run
        self._save()

    def stop(self, reason: str) -> None:
        """End the race before its blocks run out (the experiment's budget is spent): the
        reason is recorded in ``race.json``."""
        if not self.record.finished:
            self._finish(reason)

    def run(
        self, evaluate: Evaluate, on_round: OnRound | None = None, rounds: int | None = None
    ) -> RaceResult:
        """Race until one survivor (or ``min_survivors``), the blocks or the budget run out; or
        play at most ``rounds`` more rounds (a Dagster step plays one)."""
        played = 0
        while not self.record.finished and (rounds is None or played < rounds):
            played += 1
            blocks = self.next_blocks()
            if not blocks:
                self._finish(self._why_no_blocks())
                break
            before = self.spent() if self.spent is not None else 0.0
            scores = evaluate(list(self.record.survivors), blocks)
            cost = self.spent() - before if self.spent is not None else 0.0
            record = self.play_round(blocks, scores, cost=max(0.0, cost))
            if on_round is not None:
                on_round(record)
        return RaceResult(self.record)

    def play_round(
        self, blocks: list[str], scores: Mapping[str, Sequence[float]], cost: float = 0.0
    ) -> RoundRecord:
        """Take one round's scores (and what they cost), look, drop, and record the round
        (written before return)."""
        survivors = list(self.record.survivors)
        table = self._checked_scores(survivors, blocks, scores)
        look = self._look(survivors, blocks, table)
        for j, c in enumerate(survivors):
            self.record.scores[c].extend(float(v) for v in table[:, j])
        dropped = look.dropped
        record = RoundRecord(
            index=len(self.record.rounds) + 1,
            blocks=list(blocks),
            survivors=survivors,
            evaluations=len(blocks) * len(survivors),
            dropped=dropped,
            look=look.to_json(),
            cost=float(cost),
        )
        self.record.rounds.append(record)
        self.record.evaluations += record.evaluations
        self.record.cost += record.cost
        self.record.survivors = [c for c in survivors if c not in dropped]
        if self.test is not None:
            self.record.test_state = self.test.to_json()
        if len(self.record.survivors) <= self.settings.min_survivors:
            self._finish(f"{len(self.record.survivors)} survivor(s) left (min_survivors reached)")
        elif not self.next_blocks():
            self._finish(self._why_no_blocks())
        self._save()
        return record

    def _look(self, survivors: list[str], blocks: list[str], table: np.ndarray) -> Look:
        if self.test is not None:
            try:
                self.test.update_table(survivors, table)
            except ScoreOutOfRange as exc:
                raise RaceError(str(exc)) from None
            return self.test.look(survivors, self.settings.min_survivors)
        done = self.blocks_done
        prior = np.array([self.record.scores[c][:done] for c in survivors], dtype=float)
        history = np.vstack([prior.T.reshape(done, len(survivors)), table])
        return frace_look(
            survivors, history, self.settings.alpha, self.direction, self.settings.min_survivors
        )

    def _checked_scores(
        self, survivors: list[str], blocks: list[str], scores: Mapping[str, Sequence[float]]
    ) -> np.ndarray:
        table = np.empty((len(blocks), len(survivors)))
        for j, c in enumerate(survivors):
            values = list(scores.get(c, ()))
            if len(values) != len(blocks):
                shown = ", ".join(blocks[:3]) + ("..." if len(blocks) > 3 else "")
                raise RaceError(
                    f"configuration {c!r}: the evaluation returned {len(values)} score(s) for "
                    f"{len(blocks)} block(s) ({shown})"
                )
            bad = next((i for i, v in enumerate(values) if not _is_number(v)), None)
            column = None if bad is not None else np.asarray(values, dtype=float)
            if column is not None and not np.isfinite(column).all():
                bad = int(np.flatnonzero(~np.isfinite(column))[0])
            if bad is not None:
                raise RaceError(
                    f"configuration {c!r}, block {blocks[bad]!r}: score {values[bad]!r} is not "
                    "a finite number"
                )
            table[:, j] = column
        return table

    def _why_no_blocks(self) -> str:
        if self.blocks_done >= len(self.record.block_order):
            return f"all {len(self.record.block_order)} blocks raced"
        most, cost = self.settings.max_evaluations, self.settings.max_cost
        if most is not None and (
            cost is None or most - self.record.evaluations < len(self.record.survivors)
        ):
            return f"budget of {most} evaluations spent ({self.record.evaluations} used)"
        return f"budget of cost {cost} spent ({self.record.cost:.6g} used)"

    def _finish(self, reason: str) -> None:
        self.record.finished = True
        self.record.finish_reason = reason
        self._save()

    def _save(self) -> None:
        if self.state_path is not None:
            write_race(self.state_path, self.record)


def _is_number(value: object) -> bool:
    """A real number: ``True`` is not a score of 1, and text is not a score at all."""
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _initial_reason(n_configs: int, min_survivors: int, order: list[str]) -> str:
    if n_configs <= min_survivors:
        return f"{n_configs} configuration(s), min_survivors {min_survivors}: nothing to race"
    return "" if order else "no blocks to race on"
