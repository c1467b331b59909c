"""The Context IO manager on an fsspec URL (memory://, the same code path as s3:// or gs://),
``file://`` as a local path, and run directories refused on an object store."""

from __future__ import annotations

import uuid
from pathlib import Path

import dagster as dg
import fsspec
import numpy as np
import pandas as pd
import pytest

from crucible_dagster import Experiment
from crucible_dagster.common.locations import local_path, storage_path
from crucible_dagster.dagster_plugin import CrucibleContextIOManager, build_job
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.run_record import artifacts_root


@pytest.fixture
def memory_base() -> str:
    return f"memory://crucible-{uuid.uuid4().hex[:8]}/io"


def test_a_context_crosses_through_an_object_store_and_back(memory_base: str) -> None:
    frame = pd.DataFrame({"x": np.arange(1000), "y": np.linspace(0, 1, 1000)})
    ctx = (
        Context("stored", "r1")
        .put_metric("accuracy", 0.9)
        .assign("table", frame)
        .assign("weights", np.eye(3))
    )
    output = dg.build_output_context(step_key="train", name="result", run_id="r1")
    CrucibleContextIOManager(base_dir=memory_base).handle_output(output, ctx)
    fs = fsspec.filesystem("memory")
    root = memory_base.removeprefix("memory://")
    stored = {p.removeprefix(f"/{root}/").removeprefix(f"{root}/") for p in fs.find(root)}
    assert "r1/train/result.json" in stored
    assert sum(p.startswith("r1/blobs/") for p in stored) == 2  # one Parquet, one .npy
    fresh = CrucibleContextIOManager(base_dir=memory_base)  # another process, as it were
    loaded = fresh.load_input(dg.build_input_context(upstream_output=output))
    assert loaded.metrics["accuracy"] == 0.9
    pd.testing.assert_frame_equal(loaded.assigns["table"], frame)
    np.testing.assert_array_equal(loaded.assigns["weights"], np.eye(3))


def test_a_job_writes_every_step_output_to_the_url(memory_base: str) -> None:
    experiment = Experiment.model_validate(
        {"id": "remote_io", "pipeline": [{"name": "validate"}, {"name": "report"}]}
    )
    io_manager = CrucibleContextIOManager(base_dir=memory_base)
    result = build_job(experiment, io_manager=io_manager).execute_in_process()
    assert result.success
    fs = fsspec.filesystem("memory")
    root = memory_base.removeprefix("memory://")
    outputs = sorted(p.rsplit("/", 2)[-2] for p in fs.find(root) if p.endswith("result.json"))
    assert outputs == ["report", "validate"]


def test_file_urls_are_local_paths_and_other_urls_are_upaths(tmp_path: Path) -> None:
    assert storage_path(f"file://{tmp_path}/io") == tmp_path / "io"
    assert storage_path(str(tmp_path)) == tmp_path
    remote = storage_path("memory://bucket/io")
    assert not isinstance(remote, Path) and remote.protocol == "memory"


def test_run_directories_on_an_object_store_are_refused_with_what_to_use() -> None:
    with pytest.raises(ValueError) as caught:
        artifacts_root("s3://bucket/artifacts")
    message = str(caught.value)
    assert "CRUCIBLE_ARTIFACTS_DIR" in message and "'s3://bucket/artifacts'" in message
    assert "shared mount" in message
    assert local_path("file:///srv/shared/artifacts", "root") == Path("/srv/shared/artifacts")
