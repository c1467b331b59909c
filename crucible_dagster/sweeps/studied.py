"""``sweep.strategy: optuna``: each of the study's ``n_trials`` slots asks Optuna for a
configuration and runs it on the sweep's seeds through the one trial loop (``run_trials``),
reporting its score on each seed; the pruner may stop it between seeds. The study's value of a
trial is its mean ``sweep.metric`` over the seeds.

A slot is resumable: the study records which trial filled it (user attribute
``crucible_slot``). A slot whose trial finished is read back (its runs from their folders); one
whose trial was left running (its process died, or one of its runs failed: such a trial is left
open) goes on with the same trial and parameters, and its seeds already run are read back, not
rerun; a slot whose trial Optuna records FAIL (a metric missing, a score out of range) asks for
a new one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from typing_extensions import Unpack

from crucible_dagster.experiment.ir import Experiment, SearchParam
from crucible_dagster.racing.sequential import ScoreOutOfRange
from crucible_dagster.runtime.driver import Run, StageFailure
from crucible_dagster.runtime.metrics import metric_mean
from crucible_dagster.sweeps.grid import Trial
from crucible_dagster.sweeps.running import TrialHooks, TrialOutcome, run_trials
from crucible_dagster.sweeps.study import StudyError, open_study, optuna_module

SLOT_ATTR = "crucible_slot"
#: the racing pruner's evidence at the trial's last look, kept for a read-back slot
EVIDENCE_ATTR = "crucible_evidence"


@dataclass
class SlotResult:
    """One slot of the study: its Optuna trial, what it ran and how it ended."""

    slot: int
    number: int
    config: str
    params: dict[str, Any]
    state: str  # complete | pruned | failed
    value: float | None = None
    scores: list[float] = field(default_factory=list)
    outcomes: list[TrialOutcome] = field(default_factory=list)
    failures: list[tuple[Trial, StageFailure]] = field(default_factory=list)
    evidence: dict[str, Any] | None = None
    note: str = ""

    def row(self) -> dict[str, Any]:
        """The slot as a row of the study's trials table."""
        return {
            "slot": self.slot,
            "number": self.number,
            "trial": self.config,
            "state": self.state,
            "value": self.value,
            "seeds_run": len(self.scores),
            "params": self.params,
            "p_adjusted": (self.evidence or {}).get("p_adjusted"),
            "note": self.note,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON for a Dagster step's output (failures travel as the outcomes' records)."""
        return {
            **self.row(),
            "scores": self.scores,
            "evidence": self.evidence,
            "outcomes": [o.to_dict() for o in self.outcomes],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SlotResult:
        return cls(
            data["slot"],
            data["number"],
            data["trial"],
            dict(data["params"]),
            data["state"],
            data.get("value"),
            list(data.get("scores") or []),
            [TrialOutcome.from_dict(o) for o in data.get("outcomes") or []],
            [],
            data.get("evidence"),
            data.get("note") or "",
        )


def study_blocks(experiment: Experiment) -> list[int | None]:
    """The seeds a trial runs on (its blocks): the sweep's seeds, or the experiment's seed."""
    return list(experiment.seeds) or [experiment.seed]


def round_sizes(experiment: Experiment, blocks: int) -> list[int]:
    """Seeds run between two looks of the pruner: racing's first_look then round_size, one at
    a time for Optuna's pruners, all at once without a pruner."""
    assert experiment.sweep is not None
    pruner = experiment.sweep.study.pruner
    if pruner == "none":
        return [blocks]
    if pruner != "racing":
        return [1] * blocks
    race = experiment.sweep.race
    sizes = [min(race.first_look, blocks)]
    while sum(sizes) < blocks:
        sizes.append(min(race.round_size, blocks - sum(sizes)))
    return sizes


def slot_seed(experiment: Experiment, slot: int) -> int:
    """The sampler's seed for a slot: reproducible, and distinct for parallel slots (but one for
    the grid sampler, which shuffles its grid with it: every slot must walk the same order)."""
    assert experiment.sweep is not None
    if experiment.sweep.study.sampler == "grid":
        return experiment.seed or 0
    return ((experiment.seed or 0) * 1_000_003 + slot) % 2**32


def suggest(trial: Any, space: Sequence[SearchParam]) -> dict[str, Any]:
    """The trial's parameters (a trial that already has them gets them back)."""
    params: dict[str, Any] = {}
    for p in space:
        if p.kind == "categorical":
            params[p.name] = trial.suggest_categorical(p.name, p.choices)
        elif p.kind == "int":
            assert p.low is not None and p.high is not None
            step = int(p.step) if p.step is not None else 1
            params[p.name] = trial.suggest_int(
                p.name, int(p.low), int(p.high), step=step, log=p.log
            )
        else:
            params[p.name] = trial.suggest_float(p.name, p.low, p.high, step=p.step, log=p.log)
    return params


def _slot_trial(study: Any, slot: int, pool: Callable[[Any], list[int]] | None) -> tuple[Any, Any]:
    """The slot's trial: (a live ``Trial`` to go on with, or None, and its frozen record)."""
    optuna = optuna_module()
    states = optuna.trial.TrialState
    mine = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(SLOT_ATTR) == slot]
    latest = max(mine, key=lambda t: t.number) if mine else None
    if latest is not None and latest.state in (states.COMPLETE, states.PRUNED):
        return None, latest
    if latest is not None and latest.state == states.RUNNING:
        return optuna.trial.Trial(study, latest._trial_id), latest
    trial = study.ask()
    trial.set_user_attr(SLOT_ATTR, slot)
    if pool is not None:
        from crucible_dagster.sweeps.race_pruner import POOL_ATTR

        trial.set_user_attr(POOL_ATTR, pool(study))
    return trial, None


def run_slot(
    experiment: Experiment,
    slot: int,
    sweep: Run,
    *,
    name: str,
    **hooks: Unpack[TrialHooks],
) -> SlotResult:
    """Fill (or read back, or go on with) one slot of the study."""
    assert experiment.sweep is not None and sweep.path is not None
    settings = experiment.sweep.study
    study = open_study(experiment, sweep.path, name, sampler_seed=slot_seed(experiment, slot))
    pool: Callable[[Any], list[int]] | None = None
    if settings.pruner == "racing":
        from crucible_dagster.sweeps.race_pruner import pool_at_start

        pool = pool_at_start
    live, frozen = _slot_trial(study, slot, pool)
    source = live if live is not None else frozen
    result = SlotResult(slot, source.number, f"trial_{source.number:03d}", {}, "running")
    result.params = (
        suggest(live, settings.search_space) if live is not None else dict(frozen.params)
    )
    blocks = study_blocks(experiment)
    sizes = round_sizes(experiment, len(blocks))
    if live is None:  # finished: read its runs back, tell nothing
        sizes = [len(frozen.intermediate_values) or len(blocks)]

    def run_round(chunk: Sequence[int | None]) -> list[TrialOutcome] | None:
        trials = [_trial(result, seed, bool(experiment.seeds)) for seed in chunk]
        outcomes, failures = run_trials(experiment, trials, sweep, **hooks)
        result.outcomes += outcomes
        result.failures += failures
        return None if failures else outcomes

    return _play(experiment, study, (live, frozen), result, [blocks, sizes], run_round)


def _play(
    experiment: Experiment,
    study: Any,
    trial: tuple[Any, Any],
    result: SlotResult,
    plan: list[Any],
    run_round: Callable[[Sequence[int | None]], list[TrialOutcome] | None],
) -> SlotResult:
    """The slot's rounds of seeds: report each seed's score, look between rounds, tell the end."""
    assert experiment.sweep is not None
    live, frozen = trial
    blocks, sizes = plan
    reported = set(frozen.intermediate_values) if frozen is not None else set()
    for index, size in enumerate(sizes):
        start = len(result.scores)
        outcomes = run_round(blocks[start : start + size])
        if outcomes is None:
            note = "a run of this trial failed: left open, a re-execution goes on with it"
            return _end(study, live, result, "failed", note=note)
        for step, outcome in enumerate(outcomes, start=start):
            result.scores.append(_score(study, live, outcome, experiment.sweep.metric))
            if live is not None and step not in reported:
                live.report(_reported(experiment, result.scores), step)
        if live is None or index == len(sizes) - 1:
            continue
        if _should_prune(study, live, result):
            return _end(study, live, result, "pruned")
    if live is None:
        return _read_back(result, frozen)
    value = sum(result.scores) / len(result.scores)
    return _end(study, live, result, "complete", value=value)


def _trial(result: SlotResult, seed: int | None, seeded: bool) -> Trial:
    trial_id = f"{result.config}__seed_{seed}" if seeded else result.config
    return Trial(trial_id, dict(result.params), seed, config=result.config)


def _reported(experiment: Experiment, scores: list[float]) -> float:
    """What the pruner reads at each seed: the seed's score (paired pruners), or the mean so
    far (``median``: Optuna compares a trial's best reported value with the others')."""
    assert experiment.sweep is not None
    if experiment.sweep.study.pruner == "median":
        return sum(scores) / len(scores)
    return scores[-1]


def _score(study: Any, live: Any, outcome: TrialOutcome, metric: str) -> float:
    """The run's ``sweep.metric`` (the mean of a list, per fold), or the study's error."""
    try:
        if outcome.status != "completed":
            raise ValueError(f"the run ended {outcome.status}")
        return metric_mean(outcome.metrics, metric)
    except (KeyError, ValueError) as exc:
        if live is not None:
            study.tell(live, state=optuna_module().trial.TrialState.FAIL)
        raise StudyError(
            f"trial {outcome.trial.trial_id}: sweep.metric {metric!r}: {exc}"
        ) from None


def _should_prune(study: Any, live: Any, result: SlotResult) -> bool:
    try:
        prune = bool(live.should_prune())
    except ScoreOutOfRange as exc:
        study.tell(live, state=optuna_module().trial.TrialState.FAIL)
        raise StudyError(f"trial {result.config}: {exc}") from None
    found = getattr(study.pruner, "evidence", {}).get(result.number)
    result.evidence = found.to_json() if found is not None else None
    if result.evidence is not None:
        live.set_user_attr(EVIDENCE_ATTR, result.evidence)
    return prune


def _end(
    study: Any,
    live: Any,
    result: SlotResult,
    state: str,
    *,
    value: float | None = None,
    note: str = "",
) -> SlotResult:
    """Tell the study how the trial ended. A trial whose run failed is left open (RUNNING): a
    re-execution goes on with it, same parameters, its completed seeds read back, as a grid
    sweep's re-execution reruns its failed trials only."""
    states = optuna_module().trial.TrialState
    if live is not None and state == "complete":
        study.tell(live, value)
    elif live is not None and state == "pruned":
        study.tell(live, state=states.PRUNED)
    result.state, result.value, result.note = state, value, note
    return result


def _read_back(result: SlotResult, frozen: Any) -> SlotResult:
    states = optuna_module().trial.TrialState
    result.state = "complete" if frozen.state == states.COMPLETE else "pruned"
    result.value = frozen.value if frozen.state == states.COMPLETE else None
    result.evidence = frozen.user_attrs.get(EVIDENCE_ATTR)
    result.note = "read back: finished in an earlier run or step"
    return result
