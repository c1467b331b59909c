"""``python -m crucible_dagster.cli``: the same command as ``crucible``."""

import sys

from crucible_dagster.cli.boundary import main

sys.exit(main())
