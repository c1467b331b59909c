"""Parameter grids: the Cartesian product of ``parameters`` (sorted keys, first key slowest) x ``seeds``."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from crucible_dagster.experiment.ir import Experiment


@dataclass(frozen=True)
class Trial:
    trial_id: str
    params: dict[str, Any]
    seed: int | None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    status: str = "pending"
    config: str | None = None

    @property
    def config_id(self) -> str:
        """The configuration this trial replicates (its id without the seed)."""
        return self.config or trial_id(self.params, None)

    @property
    def stage_params(self) -> dict[str, Any]:
        """The ``${params.name}`` placeholders' values: the grid point, and ``seed`` the trial's
        seed (code reads it as ``ctx.seed``: the trial's experiment carries it)."""
        return {**self.params, **({"seed": self.seed} if self.seed is not None else {})}

    def to_dict(self) -> dict[str, Any]:
        return {
            "trial_id": self.trial_id,
            "params": self.params,
            "seed": self.seed,
            "config_id": self.config_id,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trial:
        return cls(
            data["trial_id"], dict(data["params"]), data.get("seed"), config=data.get("config_id")
        )


def _token(value: Any) -> str:
    """A value as part of an id; a mapping with a ``name`` (a prompt of a grid) by its name."""
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        value = value["name"]
    text = re.sub(r"[^A-Za-z0-9]+", "_", str(value)).strip("_")
    return text or "x"


def trial_id(params: dict[str, Any], seed: int | None) -> str:
    """Stable and readable, valid as a Dagster mapping key: ``learning_rate_0_0001__lora_rank_16__seed_1``."""
    parts = [f"{k}_{_token(v)}" for k, v in params.items()]
    if seed is not None:
        parts.append(f"seed_{_token(seed)}")
    return "__".join(parts) or "default"


def _value_key(value: Any) -> str:
    """Tells values apart exactly: ``1`` from ``"1"``, ``0.1`` from ``0.10`` only if they differ."""
    return json.dumps(value, sort_keys=True, default=repr) + type(value).__name__


def _disambiguate(params: dict[str, Any], readable: str, taken: dict[str, str]) -> str:
    """The readable id, with a short hash of the exact values when it would collide."""
    exact = "|".join(f"{k}={_value_key(v)}" for k, v in params.items())
    if taken.setdefault(readable, exact) == exact:
        return readable
    digest = hashlib.sha256(exact.encode()).hexdigest()[:8]
    unique = f"{readable}__h{digest}"
    taken[unique] = exact
    return unique


def expand_grid(experiment: Experiment) -> list[Trial]:
    """One trial per grid point and seed; no parameters and no seeds gives exactly one trial.

    Ids stay readable; two grid points that sanitise to the same id (``-1`` and ``1``,
    ``1`` and ``"1"``) get a short hash of their exact values, so no trial is ever dropped.
    """
    keys = sorted(experiment.parameters)
    seeds: list[int | None] = list(experiment.seeds) or [experiment.seed]
    trials = []
    config_ids: dict[str, str] = {}
    for values in itertools.product(*(experiment.parameters[k] for k in keys)):
        params = dict(zip(keys, values, strict=True))
        config = _disambiguate(params, trial_id(params, None), config_ids)
        for seed in seeds:
            seed_part = f"seed_{_token(seed)}" if experiment.seeds else ""
            trial = "__".join(p for p in (config if params else "", seed_part) if p) or "default"
            trials.append(Trial(trial, params, seed, config=config))
    return trials
