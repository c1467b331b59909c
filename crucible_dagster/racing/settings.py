"""The race's settings: the IR model ``sweep.racing`` (``experiment.ir.racing_settings``), named
here too so the racing package reads as one place."""

from crucible_dagster.experiment.ir.racing_settings import BlockKind, RaceMethod, RacingSettings

__all__ = ["BlockKind", "RaceMethod", "RacingSettings"]
