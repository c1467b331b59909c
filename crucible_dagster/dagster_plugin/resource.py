"""Per-deployment settings of crucible runs under Dagster, as a Dagster resource.

Set them in code (``CrucibleResource(validate_options="warn")``), with ``dg.EnvVar``, or in
the Launchpad's ``resources: {crucible: {config: ...}}`` for one run.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Any, cast

import dagster as dg
from pydantic import Field, ValidationError

from crucible_dagster.experiment.explain import explain_error
from crucible_dagster.experiment.ir import Experiment
from crucible_dagster.runtime.run_record import artifacts_root
from crucible_dagster.runtime.stage import ValidateMode

RESOURCE_KEY = "crucible"


class OptionChecks(str, Enum):  # enum.StrEnum is Python 3.11+
    """How strictly stage options are checked (the Launchpad shows these as a choice)."""

    def __str__(self) -> str:
        return str(self.value)  # as StrEnum's: 'warn', not 'OptionChecks.warn'

    error = "error"
    warn = "warn"
    off = "off"


#: said in the description of every field whose rule the Launchpad cannot enforce
CHECKED_AT_START = "checked when the run starts, before any stage runs"


class CrucibleResource(dg.ConfigurableResource):
    """Where run directories go and how strictly stage options are checked."""

    artifacts_dir: str | None = Field(
        default=None,
        description="Artifacts root (dg.EnvVar works); unset means $CRUCIBLE_ARTIFACTS_DIR, "
        "else ./artifacts.",
    )
    validate_options: OptionChecks = Field(
        default=OptionChecks.error,
        description="Like `crucible run --validate-options`: error fails the run on a bad stage "
        f"option ({CHECKED_AT_START}); warn logs it; off passes options unchecked.",
    )
    seed: int | None = Field(
        default=None,
        description="This run's experiment seed: an integer from 0 to 4294967295 "
        f"({CHECKED_AT_START}). Pre-filled with the experiment's; every stage draws its "
        "randomness (folds, samples, model initialisation) from it.",
    )
    parameters: dict[str, list[Any]] | None = Field(
        default=None,
        description="A sweep's parameter grid for this run (name -> values); pre-filled with "
        f"the experiment's ({CHECKED_AT_START}).",
    )
    seeds: list[int] | None = Field(
        default=None,
        description="A sweep's seed replicates for this run, each from 0 to 4294967295 "
        f"({CHECKED_AT_START}); pre-filled with the experiment's.",
    )
    trials_per_step: int | None = Field(
        default=None,
        description="A one-run sweep's trials per Dagster step for this run, from 1 to 1000 "
        f"({CHECKED_AT_START}, before any trial); empty: a quarter of the trials a step, at "
        "most 20. Smaller makes more steps, run side by side under the multiprocess executor. "
        "Pre-filled with the experiment's sweep.trials_per_step.",
    )
    racing: dict[str, Any] | None = Field(
        default=None,
        description="A raced sweep's sweep.racing for this run (alpha, method, first_look, "
        "round_size, budget ...): pre-filled with the experiment's; keys given replace the "
        f"file's, the others keep it ({CHECKED_AT_START}).",
    )
    optuna: dict[str, Any] | None = Field(
        default=None,
        description="An Optuna sweep's sweep.optuna for this run (n_trials, sampler, pruner, "
        "search_space, storage_env): pre-filled with the experiment's; keys given replace the "
        f"file's, the others keep it ({CHECKED_AT_START}).",
    )

    @property
    def option_checks(self) -> ValidateMode:
        """``validate_options`` as the core spells it."""
        return cast(ValidateMode, OptionChecks(self.validate_options).value)

    def artifacts_root(self) -> str:
        """The run directories' root, decided here at the adapter's edge: every op and asset
        hands the core an explicit path, so nothing below reads the environment for it."""
        return str(artifacts_root(self.artifacts_dir))

    def for_experiment(self, experiment: Experiment) -> CrucibleResource:
        """This resource with the experiment's seed (and grid) as the Launchpad's defaults.

        Built once per distinct setting (building a resource infers its config schema, a
        millisecond each, which a folder of a thousand experiments would feel)."""
        sweep = experiment.is_sweep
        # Dagster's config cannot hold a null list member (``max_depth: [null, 5]``): such a grid
        # is not pre-filled, and the run uses the experiment's own (Launchpad edits replace it).
        parameters = (
            dict(experiment.parameters)
            if sweep and not _holds_null(experiment.parameters)
            else None
        )
        seeds = list(experiment.seeds) if sweep else None
        trials_per_step = (
            experiment.sweep.trials_per_step
            if experiment.sweep is not None and _groups_trials(experiment)
            else None
        )
        racing = _racing_settings(experiment)
        optuna = _study_settings(experiment)
        settings = (
            self.artifacts_dir,
            self.validate_options,
            experiment.seed,
            parameters,
            seeds,
            trials_per_step,
            racing,
            optuna,
        )
        key = json.dumps(settings, sort_keys=True, default=repr)
        if key not in _PER_EXPERIMENT:
            _PER_EXPERIMENT[key] = CrucibleResource(
                artifacts_dir=self.artifacts_dir,
                validate_options=self.validate_options,
                seed=experiment.seed,
                parameters=parameters,
                seeds=seeds,
                trials_per_step=trials_per_step,
                racing=racing,
                optuna=optuna,
            )
        return _PER_EXPERIMENT[key]

    def applied_to(self, experiment: Experiment) -> Experiment:
        """The experiment as this run's config sets it: seed, grid and seeds, checked like the
        IR checks them (a bad value fails the run with the IR's message)."""
        changes: dict[str, Any] = {}
        if self.seed is not None and self.seed != experiment.seed:
            changes["seed"] = self.seed
        if self.parameters is not None and self.parameters != experiment.parameters:
            changes["parameters"] = self.parameters
        if self.seeds is not None and self.seeds != experiment.seeds:
            changes["seeds"] = self.seeds
        changes.update(self._step_size(experiment))
        racing = _racing_settings(experiment)
        if self.racing is not None and racing is not None and {**racing, **self.racing} != racing:
            changes["racing"] = {**racing, **self.racing}  # keys not given keep the file's
        study = _study_settings(experiment)
        if self.optuna is not None and study is not None and {**study, **self.optuna} != study:
            changes["optuna"] = {**study, **self.optuna}
        if not changes:
            return experiment
        data = experiment.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        for block in _SWEEP_KEYS:  # keys of the sweep, given at the top of the config
            if block in changes:
                data["sweep"] = {**data.get("sweep", {}), block: changes.pop(block)}
        try:
            return Experiment.model_validate({**data, **changes})
        except ValidationError as exc:
            # the IR's own line for the value, as `crucible validate` words it for the file
            field, message = explain_error(exc.errors()[0], Experiment)
            if field.startswith(tuple(f"sweep.{key}" for key in _SWEEP_KEYS)):  # run config keys
                field = field.removeprefix("sweep.")
            raise dg.Failure(
                description=f"resources.crucible.config.{field}: {message}", allow_retries=False
            ) from None

    def _step_size(self, experiment: Experiment) -> dict[str, Any]:
        """This run's ``trials_per_step`` as a change to the experiment (none when it is the
        file's); refused, with the field named, where no step groups trials."""
        wanted = self.trials_per_step
        if wanted is None:
            return {}
        if not _groups_trials(experiment):
            if not experiment.is_sweep:
                why = f"experiment {experiment.id} is not a sweep"
            elif experiment.sweep is None:
                why = f"experiment {experiment.id} has no sweep block: set it in the file"
            else:
                why = "a sweep as partitions runs one trial per partition"
            raise dg.Failure(
                description=f"resources.crucible.config.trials_per_step: {why}; leave it empty",
                allow_retries=False,
            )
        assert experiment.sweep is not None
        return {} if wanted == experiment.sweep.trials_per_step else {"trials_per_step": wanted}


#: the run config keys that set a key of the experiment's ``sweep``
_SWEEP_KEYS = ("trials_per_step", "racing", "optuna")
_PER_EXPERIMENT: dict[str, CrucibleResource] = {}


def _groups_trials(experiment: Experiment) -> bool:
    """Whether steps group the experiment's trials: a one-run sweep (grid, race or study: each
    fans out when it runs), not a sweep as partitions (a trial per partition) or no sweep."""
    sweep = experiment.sweep
    return sweep is not None and experiment.is_sweep and experiment.dagster.sweep.mode == "run"


def _racing_settings(experiment: Experiment) -> dict[str, Any] | None:
    """A raced sweep's settings as the Launchpad shows them (no nulls: Dagster's config has
    none), or None when the experiment is not a race."""
    sweep = experiment.sweep
    if sweep is None or sweep.strategy != "racing":
        return None
    return sweep.race.model_dump(mode="json", exclude_none=True)


def _study_settings(experiment: Experiment) -> dict[str, Any] | None:
    """An Optuna sweep's settings as the Launchpad shows them, or None when the experiment is
    not a study, or its settings hold a null (a categorical choice): Dagster's config has none,
    so the file's apply."""
    sweep = experiment.sweep
    if sweep is None or sweep.strategy != "optuna":
        return None
    settings = sweep.study.model_dump(mode="json", exclude_none=True)
    return None if _holds_null(settings) else settings


def _holds_null(value: Any) -> bool:
    """Whether a config value has a null anywhere inside it."""
    if value is None:
        return True
    if isinstance(value, dict):
        return any(_holds_null(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_holds_null(v) for v in value)
    return False
