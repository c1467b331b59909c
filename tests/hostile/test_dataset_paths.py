"""Hostile family of a dataset path written in an experiment file (joined to the file's folder):
``..``, an absolute path, a symlink out of the folder, a dangling link, a NUL byte, a wrong type,
an empty path. Each is refused or read as documented, in one line naming the field and the path,
and nothing is written outside the run directory."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crucible_dagster import load_experiment, run
from crucible_dagster.cli import main


def write_experiment(folder: Path, path: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / "exp.json"
    file.write_text(
        json.dumps(
            {
                "id": "hostile_paths",
                "dataset": {"name": "qa", "provider": "local", "options": {"path": path}},
                "pipeline": [{"name": "seen", "module": "tests.dataset_helpers:SeenExamples"}],
            }
        )
    )
    return file


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if "runs" not in p.parts)


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("CRUCIBLE_ARTIFACTS_DIR", str(tmp_path / "runs"))
    return cwd


def test_dot_dot_and_absolute_paths_read_what_they_name(tmp_path: Path, elsewhere: Path) -> None:
    pq.write_table(pa.table({"x": [1, 2]}), tmp_path / "data.parquet")
    for written in ("../data.parquet", str(tmp_path / "data.parquet")):
        file = write_experiment(tmp_path / "exp", written)
        before = tree(tmp_path)
        result = run(load_experiment(file))
        assert result.ok, result.failure
        assert result.context.metrics["seen"]["rows"] == 2
        assert tree(tmp_path) == before


def test_a_symlink_out_of_the_folder_is_followed_and_recorded_by_its_link(
    tmp_path: Path, elsewhere: Path
) -> None:
    """A data file may live in a store the experiments folder links to: not a boundary (the
    file could name the store's absolute path), so the link is read; the run records the path
    written (joined), not the link's target."""
    (tmp_path / "store").mkdir()
    pq.write_table(pa.table({"x": [1]}), tmp_path / "store" / "t.parquet")
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "link.parquet").symlink_to(tmp_path / "store" / "t.parquet")
    result = run(load_experiment(write_experiment(tmp_path / "exp", "link.parquet")))
    assert result.ok, result.failure
    assert result.context.metrics["dataset"]["source"] == str(tmp_path / "exp" / "link.parquet")


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        ("gone/none.parquet", "{exp}/gone/none.parquet"),
        ("../gone.parquet", "{exp}/../gone.parquet"),
        ("a\x00b.parquet", "a\\x00b.parquet"),
    ],
)
def test_validate_names_the_field_and_the_joined_path_in_one_line(
    tmp_path: Path, elsewhere: Path, capsys: pytest.CaptureFixture[str], written: str, shown: str
) -> None:
    file = write_experiment(tmp_path / "exp", written)
    before = tree(tmp_path)
    assert main(["validate", str(file)]) == 1
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "dataset.options.path" in line]
    assert len(lines) == 1, out
    assert "no such file or folder" in lines[0]
    assert shown.format(exp=tmp_path / "exp") in lines[0]
    assert "Traceback" not in out
    assert tree(tmp_path) == before


def test_a_dangling_link_fails_the_run_at_the_dataset_step_named_by_its_path(
    tmp_path: Path, elsewhere: Path
) -> None:
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "d.parquet").symlink_to(tmp_path / "missing.parquet")
    result = run(load_experiment(write_experiment(tmp_path / "exp", "d.parquet")))
    assert result.failure is not None and result.failure.stage == "dataset"
    assert result.failure.message.startswith(f"{tmp_path / 'exp' / 'd.parquet'}: cannot read")
    manifest = json.loads((Path(result.run_dir or "") / "manifest.json").read_text())
    assert manifest["status"] == "failed"


@pytest.mark.parametrize("written", [7, ["a.parquet"], "", None])
def test_a_path_of_the_wrong_type_or_empty_is_refused_at_its_field(
    tmp_path: Path, elsewhere: Path, capsys: pytest.CaptureFixture[str], written: object
) -> None:
    file = write_experiment(tmp_path / "exp", written)
    assert main(["validate", str(file)]) == 1
    out = capsys.readouterr().out
    assert "dataset.options.path" in out and "Traceback" not in out
    from crucible_dagster.datasets import dataset_problems

    experiment = load_experiment(file)  # options are the provider's to check, as at run start
    assert experiment.dataset is not None
    [(field, _)] = dataset_problems(experiment.dataset)
    assert field == "dataset.options.path"
