"""The Dagster adapter: experiments become jobs, stages become ops. Depends on the core, never the reverse.

The exports load on first use: ``python -m crucible_dagster.dagster_plugin.celery.workers`` and
the pid-file tools live under this package but need no Dagster, so importing the package must
not import Dagster (about 2 s of CPU) before one of these names is asked for.
"""

from typing import TYPE_CHECKING

from crucible_dagster.common.lazy import lazy_exports

if TYPE_CHECKING:
    from crucible_dagster.dagster_plugin.component import CrucibleExperimentsComponent
    from crucible_dagster.dagster_plugin.definitions import (
        definitions_from_experiments,
        definitions_from_folder,
    )
    from crucible_dagster.dagster_plugin.factory import (
        build_job,
        build_schedule,
        compile_experiment,
    )
    from crucible_dagster.dagster_plugin.io_manager import CrucibleContextIOManager
    from crucible_dagster.dagster_plugin.resource import CrucibleResource
    from crucible_dagster.dagster_plugin.translator import CrucibleTranslator

#: exported name -> the module of this package that defines it
_EXPORTS = {
    "CrucibleContextIOManager": "io_manager",
    "CrucibleExperimentsComponent": "component",
    "CrucibleResource": "resource",
    "CrucibleTranslator": "translator",
    "build_job": "factory",
    "build_schedule": "factory",
    "compile_experiment": "factory",
    "definitions_from_experiments": "definitions",
    "definitions_from_folder": "definitions",
}


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)

__all__ = [
    "CrucibleContextIOManager",
    "CrucibleExperimentsComponent",
    "CrucibleResource",
    "CrucibleTranslator",
    "build_job",
    "build_schedule",
    "compile_experiment",
    "definitions_from_experiments",
    "definitions_from_folder",
]
