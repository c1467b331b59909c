"""The multiprocess executor's forkserver preload: a light 20-trial sweep (one trial a step)
run with what the factory preloads now against the list it preloaded before (Dagster, the
plugin and the numeric libraries, without the instance's storage stack).

A process's forkserver starts once, with the preload list of its first multiprocess run, so
each side runs in a process of its own: ``python -m benchmarks.forkserver_bench new|old``
executes the sweep through ``dagster.execute_job`` on a fresh SQLite instance, with Dagster's
default logging, and is timed until every process it started has exited (its CPU time
included). Both sides pay their process's start and their forkserver's preload; they differ in
the preload list and nothing else.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import dagster as dg
from dagster._core.instance.ref import InstanceRef

from benchmarks.celery_bench import LIGHT_TRIALS, light_experiment
from benchmarks.harness import Row, paired, run_command
from crucible_dagster.dagster_plugin import build_job
from crucible_dagster.dagster_plugin.factory import PRELOAD, STEP_START

ROOT = Path(__file__).resolve().parent.parent

#: the preload list before the instance's storage stack was added
EARLIER_PRELOAD = [module for module in PRELOAD if module not in STEP_START]


def sweep_now() -> dg.JobDefinition:
    """The sweep with the executor users get (``dagster: {executor: multiprocess}``)."""
    return build_job(light_experiment("multiprocess"))


def sweep_earlier() -> dg.JobDefinition:
    """The same job, its forkserver preloading the earlier list."""
    executor = dg.multiprocess_executor.configured(
        {"start_method": {"forkserver": {"preload_modules": EARLIER_PRELOAD}}}
    )
    return sweep_now().with_executor_def(executor)


def _execute(side: str) -> None:
    builder = {"new": sweep_now, "old": sweep_earlier}[side]
    with (
        tempfile.TemporaryDirectory() as home,
        dg.DagsterInstance.from_ref(InstanceRef.from_dir(home)) as instance,
        dg.execute_job(dg.reconstructable(builder), instance=instance) as result,
    ):
        assert result.success, f"the {side} side's sweep failed"


def preload_rows() -> list[Row]:
    print(
        f"settings: a {LIGHT_TRIALS}-trial sweep, trials_per_step=1, multiprocess executor "
        "(forkserver), dagster.execute_job on a fresh SQLite instance, default logging, each "
        "side in a process of its own"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }

    def side(name: str) -> None:
        run_command([sys.executable, "-m", "benchmarks.forkserver_bench", name], cwd=ROOT, env=env)

    now, earlier, busy = paired(lambda: side("new"), lambda: side("old"), repeats=5)
    return [
        Row(
            f"a {LIGHT_TRIALS}-step multiprocess sweep, whole process",
            now,
            earlier,
            "the earlier preload list",
            "<1x",
            busy,
            note="each step process opens the run's instance; the preload imports its storage "
            "stack once, in the forkserver",
        )
    ]


if __name__ == "__main__":
    _execute(sys.argv[1])
