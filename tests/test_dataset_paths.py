"""A relative dataset path means the experiment file's folder (issue 24, section 1 leftovers):
the standalone runner, the CLI and the file loader read the same data whatever the working
directory; absolute paths and URLs stay as written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crucible_dagster import load_experiment, loads_experiment, run
from crucible_dagster.datasets import load_dataset
from crucible_dagster.experiment.anchoring import anchored

TABLE = pa.table({"id": ["a", "b", "c"], "x": [1, 2, 3]})


def experiment_file(folder: Path, path: str, **dataset: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / "exp.yaml"
    spec = {"name": "qa", "provider": "local", "options": {"path": path}, **dataset}
    document = {
        "id": "paths",
        "dataset": spec,
        "pipeline": [{"name": "seen", "module": "tests.dataset_helpers:SeenExamples"}],
    }
    file.write_text(json.dumps(document))
    return file


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory: a folder with nothing of the experiment's in it."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def test_a_relative_path_is_the_files_folder_not_the_working_directory(
    tmp_path: Path, elsewhere: Path
) -> None:
    (tmp_path / "exp" / "data").mkdir(parents=True)
    pq.write_table(TABLE, tmp_path / "exp" / "data" / "qa.parquet")
    pq.write_table(pa.table({"id": ["wrong"], "x": [0]}), elsewhere / "qa.parquet")
    file = experiment_file(tmp_path / "exp", "data/qa.parquet")
    experiment = load_experiment(file)
    assert experiment.dataset is not None and experiment.dataset.options is not None
    assert experiment.dataset.options["path"] == str(tmp_path / "exp" / "data" / "qa.parquet")
    result = run(experiment, artifacts_root=str(tmp_path / "runs"))
    assert result.ok, result.failure
    assert result.context.metrics["seen"]["ids"] == ["a", "b", "c"]
    assert result.context.metrics["dataset"]["source"] == str(
        tmp_path / "exp" / "data" / "qa.parquet"
    )


def test_dot_dot_is_the_users_to_write(tmp_path: Path, elsewhere: Path) -> None:
    """``..`` is allowed (as on a command line: an absolute path could name the same place)."""
    (tmp_path / "shared").mkdir()
    pq.write_table(TABLE, tmp_path / "shared" / "qa.parquet")
    file = experiment_file(tmp_path / "exp", "../shared/qa.parquet")
    experiment = load_experiment(file)
    assert experiment.dataset is not None
    loaded = load_dataset(experiment.dataset, 0)
    assert loaded.ids == ["a", "b", "c"]


def test_absolute_paths_urls_and_texts_without_a_file_stay_as_written(tmp_path: Path) -> None:
    folder = tmp_path / "exp"
    for written in (str(tmp_path / "qa.parquet"), "memory://bucket/qa.parquet", "file:///d/x.csv"):
        data = {"dataset": {"name": "qa", "provider": "local", "options": {"path": written}}}
        assert anchored(data, folder)["dataset"]["options"]["path"] == written
    home = {"dataset": {"name": "qa", "provider": "local", "options": {"path": "~/qa.csv"}}}
    assert anchored(home, folder)["dataset"]["options"]["path"] == str(Path.home() / "qa.csv")
    text = (
        "id: t\ndataset: {name: qa, provider: local, options: {path: data/qa.csv}}\n"
        "pipeline: [{name: validate}]\n"
    )
    experiment = loads_experiment(text)
    assert experiment.dataset is not None and experiment.dataset.options == {"path": "data/qa.csv"}


def test_the_parsed_data_is_not_changed_in_place(tmp_path: Path) -> None:
    data: dict[str, Any] = {
        "dataset": {"name": "qa", "provider": "local", "options": {"path": "qa.csv"}}
    }
    anchored(data, tmp_path)
    assert data["dataset"]["options"]["path"] == "qa.csv"


def test_a_hub_name_stays_a_hub_name_and_a_local_folder_is_anchored(tmp_path: Path) -> None:
    def path_of(written: str, provider: str = "huggingface") -> str:
        data = {"dataset": {"name": "d", "provider": provider, "options": {"path": written}}}
        return str(anchored(data, tmp_path)["dataset"]["options"]["path"])

    assert path_of("openai/gsm8k") == "openai/gsm8k"
    assert path_of("./saved") == f"{tmp_path}/./saved"
    assert path_of("../saved", "hf") == f"{tmp_path}/../saved"
    (tmp_path / "saved_here").mkdir()
    assert path_of("saved_here") == str(tmp_path / "saved_here")
    assert path_of("qa.csv", "tests.dataset_helpers:CountingProvider") == "qa.csv"


def test_ids_from_is_anchored_too(tmp_path: Path) -> None:
    data = {"dataset": {"name": "qa", "sample": {"ids_from": "runs/r1"}}}
    assert anchored(data, tmp_path)["dataset"]["sample"]["ids_from"] == str(tmp_path / "runs/r1")


def test_a_symlinked_data_file_is_read_through_its_link(tmp_path: Path, elsewhere: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    pq.write_table(TABLE, store / "real.parquet")
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "qa.parquet").symlink_to(store / "real.parquet")
    experiment = load_experiment(experiment_file(tmp_path / "exp", "qa.parquet"))
    assert experiment.dataset is not None
    assert load_dataset(experiment.dataset, 0).ids == ["a", "b", "c"]


def test_a_missing_file_is_named_by_its_joined_path_and_field(
    tmp_path: Path, elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from crucible_dagster.cli import main

    file = experiment_file(tmp_path / "exp", "data/gone.parquet")
    missing = tmp_path / "exp" / "data" / "gone.parquet"
    assert main(["validate", str(file)]) == 1
    out = capsys.readouterr().out
    assert f"dataset.options.path: no such file or folder: '{missing}'" in out
    assert "Traceback" not in out
    (tmp_path / "exp" / "data").mkdir()
    (tmp_path / "exp" / "data" / "gone.parquet").symlink_to(tmp_path / "nowhere.parquet")
    result = run(load_experiment(file), artifacts_root=str(tmp_path / "runs"))
    assert result.failure is not None and result.failure.stage == "dataset"
    assert result.failure.message.startswith(f"{missing}: cannot read")
    assert sorted(p.name for p in elsewhere.iterdir()) == []


def test_crucible_run_from_another_folder_reads_the_files_data(
    tmp_path: Path, elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crucible_dagster.cli import main

    monkeypatch.setenv("CRUCIBLE_ARTIFACTS_DIR", str(tmp_path / "runs"))
    (tmp_path / "exp" / "data").mkdir(parents=True)
    pq.write_table(TABLE, tmp_path / "exp" / "data" / "qa.parquet")
    file = experiment_file(tmp_path / "exp", "data/qa.parquet")
    assert main(["run", str(file)]) == 0
    manifests = list((tmp_path / "runs").rglob("manifest.json"))
    assert len(manifests) == 1
    manifest = json.loads(manifests[0].read_text())
    assert manifest["status"] == "completed"
    assert manifest["metrics"]["dataset"]["source"] == str(tmp_path / "exp" / "data" / "qa.parquet")
