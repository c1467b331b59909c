"""Per-deployment settings of crucible runs under Dagster, as a Dagster resource.

Set them in code (``CrucibleResource(validate_options="warn")``), with ``dg.EnvVar``, or in
the Launchpad's ``resources: {crucible: {config: ...}}`` for one run.
"""

from __future__ import annotations

from typing import Literal

import dagster as dg

RESOURCE_KEY = "crucible"


class CrucibleResource(dg.ConfigurableResource):
    """Where run directories go and how strictly stage options are checked."""

    artifacts_dir: str | None = None
    """Artifacts root; unset means ``$CRUCIBLE_ARTIFACTS_DIR``, else ``./artifacts``."""

    validate_options: Literal["off", "warn", "error"] = "error"
    """Like ``crucible run --validate-options``: ``error`` fails a stage on bad options."""
