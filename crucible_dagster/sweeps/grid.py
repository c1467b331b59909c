"""Parameter grids: the Cartesian product of ``parameters`` (sorted keys, first key slowest) x ``seeds``."""

from __future__ import annotations

import itertools
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

    @property
    def config_id(self) -> str:
        """The configuration this trial replicates (its id without the seed)."""
        return trial_id(self.params, None)

    @property
    def stage_params(self) -> dict[str, Any]:
        """What stages see in ``ctx.params``: the grid point plus the trial's seed."""
        return {**self.params, **({"seed": self.seed} if self.seed is not None else {})}

    def to_dict(self) -> dict[str, Any]:
        return {"trial_id": self.trial_id, "params": self.params, "seed": self.seed}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trial:
        return cls(data["trial_id"], dict(data["params"]), data.get("seed"))


def _token(value: Any) -> str:
    text = re.sub(r"[^A-Za-z0-9]+", "_", str(value)).strip("_")
    return text or "x"


def trial_id(params: dict[str, Any], seed: int | None) -> str:
    """Stable and readable, valid as a Dagster mapping key: ``learning_rate_0_0001__lora_rank_16__seed_1``."""
    parts = [f"{k}_{_token(v)}" for k, v in params.items()]
    if seed is not None:
        parts.append(f"seed_{_token(seed)}")
    return "__".join(parts) or "default"


def expand_grid(experiment: Experiment) -> list[Trial]:
    """One trial per grid point and seed; no parameters and no seeds gives exactly one trial."""
    keys = sorted(experiment.parameters)
    seeds: list[int | None] = list(experiment.seeds) or [experiment.seed]
    trials = []
    for values in itertools.product(*(experiment.parameters[k] for k in keys)):
        params = dict(zip(keys, values, strict=True))
        for seed in seeds:
            trials.append(Trial(trial_id(params, seed if experiment.seeds else None), params, seed))
    return trials
