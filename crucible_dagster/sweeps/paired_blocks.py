"""The paired design of a sweep: the (seed, variant, sample) blocks every configuration scored.

A block is kept when every configuration has a finite score on it; a block some
configurations lack (a failed trial, partly overlapping samples) or with a NaN score is left
out and counted, so the report says how many samples the comparison stands on. Sample ids
are compared as JSON keeps them: ``1`` and ``"1"`` are different ids, and a sweep whose
trials disagree on an id's type is not paired at all (pairing by the text would be a guess).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crucible_dagster.sweeps.per_sample import BlockKey, checked_scores, read_trial_scores

if TYPE_CHECKING:
    from crucible_dagster.sweeps.running import TrialOutcome

#: configuration -> block -> its value (None: missing, NaN or infinite)
Collected = dict[str, dict[BlockKey, float | None]]


@dataclass
class PairedDesign:
    """The configurations' values on the blocks every one of them scored, or why there are none."""

    column: str
    groups: dict[str, list[float]] = field(default_factory=dict)
    blocks: list[str] = field(default_factory=list)
    description: str = ""
    left_out: list[str] = field(default_factory=list)
    reason: str | None = None

    @property
    def usable(self) -> bool:
        return self.reason is None and bool(self.blocks)

    def means(self) -> dict[str, float]:
        """Each configuration's mean score over the shared blocks (what ``best`` ranks)."""
        return {c: float(sum(v) / len(v)) for c, v in self.groups.items() if v}

    def to_dict(self) -> dict[str, Any]:
        usable = self.usable
        out: dict[str, Any] = {
            "kind": "per_sample" if usable else "per_seed_means",
            "column": self.column,
            "why": self.description if usable else self.reason,
        }
        if usable:
            out |= {"blocks": len(self.blocks), "means": self.means()}
        return out | {"left_out": self.left_out}


def paired_design(
    outcomes: Sequence[TrialOutcome], names: Sequence[str], column: str
) -> PairedDesign:
    """Blocks of (seed, variant, sample) that every configuration in ``names`` scored with a
    finite value; the rest are counted in ``left_out``. No shared block, sample ids whose type
    differs between trials, or a sample twice in one trial: ``reason`` says why not."""
    design = PairedDesign(column)
    collected = _collect_blocks(outcomes, names, column, design.left_out)
    if isinstance(collected, str):
        design.reason = collected
        return design
    _shared_blocks(collected, names, design)
    return design


def _trial_rows(outcome: TrialOutcome, column: str) -> tuple[list[BlockKey], list[Any]] | str:
    """A completed trial's carried scores, read back from its run directory when it carries
    none (a trial an earlier run completed, a partition's materialization)."""
    data = outcome.per_sample
    if data is None and outcome.run_dir:
        data = read_trial_scores(outcome.run_dir, column)
    if data is None:
        return "carries no per-sample scores"
    return checked_scores(data, column)


def _collect_blocks(
    outcomes: Sequence[TrialOutcome], names: Sequence[str], column: str, notes: list[str]
) -> Collected | str:
    """Every completed trial's blocks by configuration, or why the sweep cannot be paired."""
    collected: Collected = {name: {} for name in names}
    id_types: dict[str, tuple[str, str]] = {}  # id text -> (type, first trial with it)
    for outcome in outcomes:
        config, trial = outcome.trial.config_id, outcome.trial.trial_id
        if outcome.status != "completed" or config not in collected:
            continue
        rows = _trial_rows(outcome, column)
        if isinstance(rows, str):
            notes.append(f"trial {trial}: {rows}; its samples are left out")
            continue
        for (_, variant, sample), value in zip(*rows, strict=True):
            kind = type(sample).__name__
            seen = id_types.setdefault(str(sample), (kind, trial))
            if seen[0] != kind:
                return (
                    f"sample id {str(sample)[:60]!r} is {seen[0]} in trial {seen[1]} and {kind} "
                    f"in trial {trial}: pairing by the text would be a guess; give every "
                    "trial's table the same id type"
                )
            key = (outcome.trial.seed, variant, sample)
            if key in collected[config]:
                return (
                    f"trial {trial}: sample {str(sample)[:60]!r} of variant {variant!r} appears "
                    "more than once, so its pairing is ambiguous"
                )
            collected[config][key] = value
    return collected


def _order(key: BlockKey) -> tuple[Any, ...]:
    seed, variant, sample = key
    return (seed is None, seed if seed is not None else 0, variant, type(sample).__name__, sample)


def _shared_blocks(collected: Collected, names: Sequence[str], design: PairedDesign) -> None:
    """Fill ``design`` with the blocks every configuration scored finitely, noting the rest."""
    every = set().union(*(set(blocks) for blocks in collected.values()))
    partial = {k for k in every if any(k not in collected[c] for c in names)}
    missing = {k for k in every - partial if any(collected[c][k] is None for c in names)}
    shared = sorted(every - partial - missing, key=_order)
    if partial:
        design.left_out.append(
            f"{len(partial)} of {len(every)} (seed, variant, sample) blocks are not scored "
            "by every configuration (partly overlapping samples or a failed trial)"
        )
    if missing:
        design.left_out.append(
            f"{len(missing)} blocks have a missing, NaN or infinite {design.column!r} "
            "under some configuration"
        )
    if not shared:
        design.reason = f"no sample has a {design.column!r} score under every configuration" + (
            f" ({'; '.join(design.left_out)})" if design.left_out else ""
        )
        return
    design.blocks = [f"{s}/{v}/{i}" for s, v, i in shared]
    design.groups = {c: [float(collected[c][k]) for k in shared] for c in names}  # type: ignore[arg-type]
    seeds = {k[0] for k in shared}
    samples = {(k[1], k[2]) for k in shared}
    design.description = (
        f"per sample: {len(samples)} samples x {len(seeds)} seed(s) = {len(shared)} blocks "
        f"scored by every configuration on column {design.column!r}, so each configuration "
        "is compared with the others on the same samples and seeds"
    )
