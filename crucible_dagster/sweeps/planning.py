"""Power planning for sweeps: how many seeds (or folds) detect a given difference at a given power."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from crucible_dagster.runtime.run_record import artifacts_root, read_manifest


@dataclass
class Plan:
    n: int
    n_exact: float
    effect_size: float
    design: str
    basis: str

    def lines(self, power: float, alpha: float) -> list[str]:
        return [
            self.basis,
            f"to detect a standardized effect of {self.effect_size:.3g} ({self.design}) "
            f"at {power:.0%} power and alpha {alpha:g}: "
            f"n = {self.n} seeds per configuration (exactly {self.n_exact:.2f})",
        ]


def latest_pilot(experiment_id: str, root: str | None = None) -> Path | None:
    """The newest finished sweep run directory of this experiment."""
    candidates = []
    for manifest in (artifacts_root(root) / experiment_id).glob("*/manifest.json"):
        try:
            data = read_manifest(manifest)
        except (OSError, ValueError):
            continue
        if data.get("status") in ("completed", "failed") and (data.get("metrics") or {}).get(
            "sweep", {}
        ).get("configurations"):
            candidates.append((manifest.stat().st_mtime, manifest.parent))
    return max(candidates)[1] if candidates else None


def sd_of_differences(configurations: Mapping[str, Mapping[str, Any]]) -> tuple[float, int]:
    """The largest SD, over configuration pairs, of per-seed differences (conservative), and the seed count."""
    series = {
        name: np.asarray(c.get("per_seed_means") or [], dtype=float)
        for name, c in configurations.items()
    }
    sds = []
    seeds = 0
    for (_, a), (_, b) in combinations(series.items(), 2):
        if a.size == b.size and a.size >= 2:
            sds.append(float(np.std(a - b, ddof=1)))
            seeds = a.size
    return (max(sds) if sds else math.nan), seeds


def _pilot_configurations(manifest: Mapping[str, Any], pilot: Path) -> dict[str, Any]:
    """The pilot's per-configuration summaries, or ValueError naming the field that is wrong."""
    found: Any = manifest
    for key in ("metrics", "sweep", "configurations"):
        if not isinstance(found, Mapping) or key not in found:
            raise ValueError(
                f"{pilot}: expected a sweep run's manifest with metrics.sweep.configurations, "
                f"no {key!r} found"
            )
        found = found[key]
    if not isinstance(found, Mapping) or not all(isinstance(c, Mapping) for c in found.values()):
        raise ValueError(
            f"{pilot}: expected metrics.sweep.configurations to map names to summaries, "
            f"got {type(found).__name__}"
        )
    return dict(found)


def plan_seeds(
    *,
    difference: float | None,
    effect_size: float | None,
    pilot: Path | None,
    power: float,
    alpha: float,
) -> Plan:
    if effect_size is None:
        if difference is None:
            raise ValueError("give --difference (with a pilot run) or --effect-size")
        if pilot is None:
            raise ValueError(
                "no pilot run found: run the sweep once, pass --pilot RUN_DIR, or give --effect-size"
            )
        manifest = read_manifest(pilot)
        sd, seeds = sd_of_differences(_pilot_configurations(manifest, pilot))
        if not math.isfinite(sd) or sd == 0:
            raise ValueError(f"the pilot run {pilot} has no seed-to-seed variation to plan with")
        effect_size = abs(difference) / sd
        basis = (
            f"pilot run {manifest['run_id']}: SD of per-seed differences between "
            f"configurations = {sd:.4g} (largest over pairs, {seeds} seeds)"
        )
    else:
        basis = f"assumed standardized effect size {effect_size:g} (no pilot needed)"
    n, exact = _seeds_needed(effect_size, power, alpha)
    return Plan(n, exact, effect_size, "paired over seeds", basis)


class CannotPlan(ValueError):
    """The seed count is infinite or cannot be computed: the reason, never a number that looks real."""


def _seeds_needed(effect_size: float, power: float, alpha: float) -> tuple[int, float]:
    """The rounded and exact seed counts, or CannotPlan with the reason."""
    from crucible_dagster.bench.power import n_for_power

    if not math.isfinite(effect_size) or effect_size == 0:
        raise CannotPlan(
            f"the standardized effect is {effect_size:g}; expected a finite number other than 0"
        )
    try:
        planned = n_for_power(effect_size, power, alpha, design="paired")
    except (ValueError, ArithmeticError) as exc:
        raise CannotPlan(
            f"the power of a paired t-test is not computable "
            f"for a standardized effect of {effect_size:g} ({exc})"
        ) from None
    if not (math.isfinite(planned.n) and math.isfinite(planned.exact)):
        raise CannotPlan(
            f"a standardized effect of {effect_size:g} is too small to reach "
            f"{power:.0%} power with any number of seeds up to 10^9"
        )
    return int(planned.n), float(planned.exact)
