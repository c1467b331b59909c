"""The blocks of a raced sweep over its data (``racing.block: samples | folds``), and what the
race spends (``racing.budget``, the experiment's ``budget:``).

With ``samples`` every sample of the dataset is a block; with ``folds`` every fold of
``dataset.folds`` is one (its samples together). A round evaluates each survivor on the round's
samples only: its trial (``<config>__round_<i>``) loads the dataset restricted to them
(``dataset.sample.ids_from`` a file the sweep writes in its own run directory), so a model is
asked about those samples for those configurations and no others. A block's score is the mean
of the trial's per-sample column (``sweep.per_sample``) over the block's samples (and
variants)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crucible_dagster.budget import LEDGER_FILE, Ledger, LedgerError
from crucible_dagster.budget.ledger import recorded_cost
from crucible_dagster.common.files import atomic_write_text
from crucible_dagster.datasets.ids_record import IdsRecord
from crucible_dagster.experiment.ir import Experiment, SampleSpec
from crucible_dagster.runtime.context import DEFAULT_SEED
from crucible_dagster.sweeps.grid import Trial
from crucible_dagster.sweeps.per_sample import checked_scores, read_trial_scores, score_column

if TYPE_CHECKING:
    from crucible_dagster.sweeps.running import TrialOutcome

#: the folder of the sweep's run directory holding each round's sample ids
ROUND_IDS_DIR = "race_rounds"
#: how a race stopped by the experiment's budget says so (``finish_sweep`` reads it)
EXPERIMENT_BUDGET_SPENT = "the experiment's budget is spent"


class BlockScoreError(ValueError):
    """A round's trial whose per-sample scores cannot score its blocks."""


@dataclass(frozen=True)
class DataBlocks:
    """Block id -> the sample ids it holds (in the dataset's order), for a race on the data."""

    kind: str
    dataset: str
    provider: str
    samples: dict[str, list[str]]

    @property
    def blocks(self) -> list[str]:
        return list(self.samples)


def race_seed(experiment: Experiment, trials: Sequence[Trial]) -> int:
    """The seed the race's trials load (and sample, and fold) the dataset with."""
    seed = trials[0].seed if trials else None
    seed = seed if seed is not None else experiment.seed
    return DEFAULT_SEED if seed is None else int(seed)


def data_blocks(experiment: Experiment, seed: int) -> DataBlocks:
    """Load the dataset once, as the trials will, and cut it into blocks."""
    from crucible_dagster.datasets import load_dataset
    from crucible_dagster.datasets.sampling import FOLD_COLUMN

    assert experiment.dataset is not None and experiment.sweep is not None
    kind = experiment.sweep.race.block
    loaded = load_dataset(experiment.dataset, seed)
    ids = loaded.ids
    if kind == "samples":
        samples = {i: [i] for i in ids}
    else:
        folds = [int(f) for f in loaded.examples[FOLD_COLUMN]]
        samples = {}
        for fold in sorted(set(folds)):
            samples[f"fold_{fold}"] = [i for i, f in zip(ids, folds, strict=True) if f == fold]
    return DataBlocks(kind, experiment.dataset.name, loaded.provider, samples)


def round_trial(base: Trial, index: int) -> Trial:
    """The trial that evaluates ``base``'s configuration on round ``index``'s samples."""
    return Trial(f"{base.trial_id}__round_{index}", base.params, base.seed, config=base.config_id)


def round_ids_path(sweep_dir: Path, index: int) -> Path:
    """Where round ``index``'s sample ids are written, inside the sweep's run directory."""
    return sweep_dir / ROUND_IDS_DIR / f"round_{index}.json"


def write_round_ids(data: DataBlocks, blocks: Sequence[str], index: int, sweep_dir: Path) -> Path:
    """The round's sample ids, as the ids record a run writes, for its trials' dataset."""
    ids = [i for b in blocks for i in data.samples[b]]
    record = IdsRecord(
        schema_version=1, dataset=data.dataset, provider=data.provider, fingerprint="", ids=ids
    )
    path = round_ids_path(sweep_dir, index)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, record.model_dump_json())


def restricted_to(experiment: Experiment, ids_file: Path) -> Experiment:
    """The experiment on the samples ``ids_file`` names (``sample.ids_from``), read back and
    checked by the dataset loader like any ids record; folds are not drawn again on them."""
    assert experiment.dataset is not None
    dataset = experiment.dataset.model_copy(
        # absolute: a worker in another working directory reads the same file
        update={"sample": SampleSpec(ids_from=str(ids_file.absolute())), "folds": None}
    )
    return experiment.model_copy(update={"dataset": dataset})


def block_scores(
    outcome: TrialOutcome, experiment: Experiment, data: DataBlocks, blocks: Sequence[str]
) -> list[float]:
    """The trial's score on each block: the mean of its per-sample column over the block's
    samples (and their variants). A sample without a finite score is an error: the race
    compares configurations on the same samples or not at all."""
    column = score_column(experiment.sweep)
    assert column is not None, "a race on the data needs a per-sample column"
    found: Any = outcome.per_sample
    if found is None and outcome.run_dir:
        found = read_trial_scores(outcome.run_dir, column)
    rows = checked_scores(found, column)
    where = f"trial {outcome.trial.trial_id}"
    if isinstance(rows, str):
        raise BlockScoreError(f"{where}: per-sample scores unusable: {rows}")
    by_sample: dict[str, list[float]] = {}
    for (_, variant, sample), value in zip(*rows, strict=True):
        if value is None:
            raise BlockScoreError(
                f"{where}: sample {str(sample)[:80]!r} (variant {variant!r}) has no finite "
                f"{column!r} score; the race cannot compare it"
            )
        by_sample.setdefault(str(sample), []).append(value)
    scores = []
    for block in blocks:
        members = data.samples[block]
        missing = next((i for i in members if i not in by_sample), None)
        if missing is not None:
            raise BlockScoreError(
                f"{where}: no {column!r} score for sample {missing[:80]!r} of block {block[:80]!r}"
            )
        values = [sum(by_sample[i]) / len(by_sample[i]) for i in members]
        scores.append(sum(values) / len(values))
    return scores


class SweepSpend:
    """What the sweep's trials spent, as its budget ledger (``budget.json``) counts it."""

    def __init__(self, experiment: Experiment, sweep_dir: Path) -> None:
        assert experiment.budget is not None
        self.ledger_dir, self.experiment_id = sweep_dir, experiment.id
        self.ledger = Ledger(
            experiment.budget,
            sweep_dir / LEDGER_FILE,
            key=str(sweep_dir),
            experiment_id=experiment.id,
        )

    def cost(self) -> float:
        spent = self.ledger.snapshot()["spent"].get("cost")
        return float(spent) if isinstance(spent, int | float) else 0.0

    def since(self, mark: float, planned_in: str, earlier: Sequence[Path]) -> float:
        """What was spent since ``mark`` was read from run ``planned_in``'s ledger: this run's
        own spend since then, or, when an ancestor run planned the round (a re-execution from
        failure), what the ancestor spent since plus all this run has spent."""
        now = self.cost()
        if not planned_in or planned_in == self.ledger_dir.name:
            return max(0.0, now - mark)
        ancestor = next((d for d in earlier if d.name == planned_in), None)
        if ancestor is None:
            return now
        try:
            then = recorded_cost(ancestor / LEDGER_FILE, self.experiment_id)
        except LedgerError:
            return now  # an ancestor's ledger that cannot be read adds nothing it cannot show
        return max(0.0, then - mark) + now

    def exhausted(self) -> str | None:
        """Why the budget is spent, or None while it is not."""
        snapshot = self.ledger.snapshot()
        return str(snapshot.get("reason") or "spent") if snapshot["exhausted"] else None
