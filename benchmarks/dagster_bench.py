"""Issue 3 figures: per-stage overhead, Context handoff of a 1M-row DataFrame, loading 1000 files."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
from dagster._core.storage.fs_io_manager import PickledObjectFilesystemIOManager

from benchmarks.harness import Row, median_seconds
from crucible_dagster import Context, Experiment
from crucible_dagster.dagster_plugin import CrucibleContextIOManager, build_job

ROOT = Path(__file__).resolve().parent.parent
STAGES = 10


def _bare_chain(n: int) -> dg.JobDefinition:
    @dg.op
    def start() -> dict:
        return {"counter": 0}

    ops = [start]
    for index in range(1, n):

        @dg.op(name=f"step_{index}")
        def step(value: dict) -> dict:
            return {"counter": value["counter"] + 1}

        ops.append(step)

    @dg.job(executor_def=dg.in_process_executor)
    def bare() -> None:
        value = ops[0]()
        for op_def in ops[1:]:
            value = op_def(value)

    return bare


def stage_overhead() -> list[Row]:
    experiment = Experiment.model_validate(
        {
            "id": "overhead",
            "pipeline": [
                {"name": f"s{i}", "module": "benchmarks.stages:Increment"} for i in range(STAGES)
            ],
        }
    )
    crucible_job = build_job(experiment)
    bare_job = _bare_chain(STAGES)
    with tempfile.TemporaryDirectory() as home, dg.DagsterInstance.local_temp(home) as instance:
        ours = median_seconds(lambda: crucible_job.execute_in_process(instance=instance), repeats=5)
        bare = median_seconds(lambda: bare_job.execute_in_process(instance=instance), repeats=5)
    return [
        Row(
            "per-stage time, compiled experiment (SQLite)",
            ours / STAGES,
            bare / STAGES,
            "bare op chain, same instance",
            "<=1.5x",
        )
    ]


def _context_with_frame(rows: int) -> Context:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"id": np.arange(rows), "score": rng.random(rows), "group": rng.integers(0, 10, rows)}
    )
    return Context("bench", "run").assign("table", frame)


class _Handoff:
    """Output and input contexts built ahead (building them spins up an ephemeral instance)."""

    def __init__(self, count: int):
        self.pairs = []
        for _ in range(count):
            out = dg.build_output_context(
                step_key="produce", name="result", run_id=uuid.uuid4().hex
            )
            self.pairs.append((out, dg.build_input_context(upstream_output=out)))
        self.index = 0

    def __call__(self, manager: dg.IOManager, ctx: Context, same_run: bool = False) -> Context:
        out, inp = self.pairs[0 if same_run else self.index]
        self.index += 0 if same_run else 1
        manager.handle_output(out, ctx)
        return manager.load_input(inp)


def context_handoff() -> list[Row]:
    ctx = _context_with_frame(1_000_000)
    frame = ctx.assigns["table"]
    repeats = 5
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        cold_handoff, warm_handoff, pickle_handoff = (
            _Handoff(repeats + 1),
            _Handoff(1),
            _Handoff(repeats + 1),
        )

        def ours_cold() -> None:
            # A fresh manager and run each time: hashing, writing and reading, nothing cached.
            cold_handoff(CrucibleContextIOManager(base_dir=str(base / "ours")), ctx)

        warm_manager = CrucibleContextIOManager(base_dir=str(base / "warm"))
        warm_handoff(warm_manager, ctx, same_run=True)

        def ours_warm() -> None:
            # The same DataFrame handed on again in the same run: content-addressed, not rewritten.
            warm_handoff(warm_manager, ctx, same_run=True)

        def raw_parquet() -> None:
            path = base / f"{uuid.uuid4().hex}.parquet"
            frame.to_parquet(path, engine="pyarrow")
            pd.read_parquet(path, engine="pyarrow")

        # What dagster's FilesystemIOManager (the default for launched runs) creates.
        pickling = PickledObjectFilesystemIOManager(base_dir=str(base / "pickle"))

        def pickled() -> None:
            pickle_handoff(pickling, ctx)

        cold = median_seconds(ours_cold, repeats=repeats)
        warm = median_seconds(ours_warm, repeats=repeats)
        raw = median_seconds(raw_parquet, repeats=repeats)
        pick = median_seconds(pickled, repeats=repeats)
    return [
        Row(
            "Context handoff, 1M-row DataFrame, first write",
            cold,
            raw,
            "raw Parquet write+read",
            "<=1.5x",
        ),
        Row(
            "Context handoff, 1M-row DataFrame, first write",
            cold,
            pick,
            "pickling FilesystemIOManager",
            "-",
        ),
        Row(
            "Context handoff, same DataFrame again in the run",
            warm,
            raw,
            "raw Parquet write+read",
            "-",
        ),
    ]


def load_thousand_files() -> list[Row]:
    template = (ROOT / "experiments" / "core_pipeline_demo.yaml").read_text()
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(1000):
            Path(tmp, f"exp_{index:04d}.yaml").write_text(
                template.replace("id: core_pipeline_demo", f"id: exp_{index:04d}")
            )
        code = (
            "import time; t=time.perf_counter(); "
            "from crucible_dagster.dagster_plugin import definitions_from_folder; "
            f"defs=definitions_from_folder({tmp!r}); "
            "assert len(list(defs.jobs)) == 1000; print(time.perf_counter()-t)"
        )
        timings = [
            float(
                subprocess.run(
                    [sys.executable, "-c", code],
                    capture_output=True,
                    text=True,
                    check=True,
                    cwd=ROOT,
                ).stdout
            )
            for _ in range(3)
        ]
        imports = [
            float(
                subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        "import time; t=time.perf_counter(); import crucible_dagster.dagster_plugin; "
                        "print(time.perf_counter()-t)",
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
            for _ in range(3)
        ]
    return [
        Row(
            "load 1000 experiment files into Definitions (with imports)",
            sorted(timings)[1],
            3.0,
            "the 3 s goal",
            "<=1.0x",
        ),
        Row(
            "  of which importing dagster + crucible_dagster",
            sorted(imports)[1],
            3.0,
            "the 3 s goal",
            "-",
        ),
    ]
