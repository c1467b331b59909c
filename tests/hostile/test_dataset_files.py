"""The hostile family of dataset files, URLs and the ids record read back (issue 24, section 1):
each case is one DatasetError naming the file (or field) and what was expected and found, the
run ends ``failed`` at the step ``dataset``, and nothing is written outside the run directory."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from crucible_dagster import Experiment, run
from crucible_dagster.datasets import DatasetError, load_dataset
from crucible_dagster.datasets.ids_record import IDS_FILE
from crucible_dagster.experiment.ir import DatasetRef


def local(path: str | Path, **options: Any) -> DatasetRef:
    return DatasetRef.model_validate(
        {"name": "qa", "provider": "local", "options": {"path": str(path), **options}}
    )


def refused(ref: DatasetRef) -> str:
    with pytest.raises(DatasetError) as caught:
        load_dataset(ref, 0)
    message = str(caught.value)
    assert "Traceback" not in message and "\n" not in message.strip()
    return message


def test_a_file_that_is_not_its_format(tmp_path: Path) -> None:
    bad = tmp_path / "qa.parquet"
    bad.write_bytes(b"PAR1 this is not parquet at all")
    assert refused(local(bad)).startswith(f"{bad}: cannot read as parquet:")
    jsonl = tmp_path / "qa.jsonl"
    jsonl.write_text('{"id": "a", "x": 1}\n{"id": "b", "x": \n')
    assert refused(local(jsonl)).startswith(f"{jsonl}: cannot read as json:")


def test_an_empty_file_a_fifo_and_a_folder_without_data(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert refused(local(empty)) == f"{empty}: the file is empty"
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    assert refused(local(fifo)) == f"{fifo}: a FIFO; only regular files are read"
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("x")
    assert refused(local(tmp_path / "folder")) == f"{tmp_path / 'folder'}: names no data files"
    assert refused(local(tmp_path / "nothing" / "*.csv")).endswith("names no data files")


def test_a_device_is_not_read() -> None:
    assert refused(local("/dev/zero")).endswith("not a regular file; only regular files are read")


def test_non_utf8_csv_is_named(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("id,question\na,caf\xe9\n".encode("latin-1"))
    assert refused(local(path)) == (
        f"{path}: row 1, column 'question': not UTF-8 text; convert the file to UTF-8"
    )


def test_a_size_cap(tmp_path: Path) -> None:
    path = tmp_path / "qa.csv"
    path.write_text("id,x\n" + "".join(f"r{i},{i}\n" for i in range(100)))
    assert refused(local(path, max_bytes=100)) == (
        f"{path}: {path.stat().st_size} bytes, over dataset.options.max_bytes (100); raise it to "
        "read this much"
    )


def test_deeply_nested_json_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text('{"id": "a", "x": ' + "[" * 5000 + "]" * 5000 + "}\n")
    assert refused(local(path)) == (
        f"{path}: JSON nested 5001 deep, over dataset.options.max_depth (64)"
    )
    path.write_text('{"id": "a", "x": [[1, 2], [3]]}\n')
    assert load_dataset(local(path), 0).examples.index.tolist() == ["a"]


def test_paths_are_read_as_given_and_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dataset path is the user's, as on a command line: '..', an absolute path and a
    symlink are read, and the run records exactly what was read."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "qa.csv").write_text("id,x\na,1\n")
    work = tmp_path / "work"
    work.mkdir()
    (work / "link.csv").symlink_to(data / "qa.csv")
    monkeypatch.chdir(work)
    for given in ("../data/qa.csv", str(data / "qa.csv"), "link.csv"):
        loaded = load_dataset(local(given), 0)
        assert loaded.source == given and list(loaded.examples.index) == ["a"]


def test_urls_that_lead_nowhere(tmp_path: Path) -> None:
    assert refused(local("memory://crucible-hostile/none.parquet")) == (
        "memory://crucible-hostile/none.parquet: no such file or folder (dataset.options.path)"
    )
    assert refused(local("nosuchscheme://bucket/qa.parquet")) == (
        "nosuchscheme://bucket/qa.parquet: cannot open: Unsupported filesystem: 'nosuchscheme'"
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            b'{"schema_version": 1, "dataset": "qa", "provider": "local", "fingerp',
            "expected the JSON ids record",
        ),
        (
            b'{"schema_version": 1, "dataset": "qa", "provider": "local", "fingerprint": "f", "ids": "a"}',
            "ids: Input should be a valid list",
        ),
        (
            b'{"schema_version": 1, "dataset": "other", "provider": "local", "fingerprint": "f", "ids": ["a"]}',
            "recorded for dataset 'other', not this run's 'qa'",
        ),
        (
            b'{"schema_version": 1, "dataset": "qa", "provider": "local", "fingerprint": "f", "ids": ["a", "a"]}',
            "duplicate ids",
        ),
        (
            b'{"schema_version": 1, "dataset": "qa", "provider": "local", "fingerprint": "f", '
            b'"ids": ["zz\\u001b[31m"]}',
            "1 of the 1 recorded ids are not in this dataset (first: 'zz\\x1b[31m')",
        ),
        (b"\xff\xfe not utf-8", "expected the JSON ids record"),
    ],
    ids=[
        "truncated",
        "wrong_type",
        "other_dataset",
        "duplicates",
        "control_characters",
        "non_utf8",
    ],
)
def test_an_ids_record_read_back(tmp_path: Path, content: bytes, expected: str) -> None:
    (tmp_path / "qa.csv").write_text("id,x\na,1\nb,2\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / IDS_FILE).write_bytes(content)
    ref = DatasetRef.model_validate(
        {
            "name": "qa",
            "provider": "local",
            "options": {"path": str(tmp_path / "qa.csv")},
            "sample": {"ids_from": str(run_dir)},
        }
    )
    message = refused(ref)
    assert expected in message
    assert "\x1b" not in message


def test_an_ids_record_that_is_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "qa.csv").write_text("id,x\na,1\n")
    ref = DatasetRef.model_validate(
        {
            "name": "qa",
            "provider": "local",
            "options": {"path": str(tmp_path / "qa.csv")},
            "sample": {"ids_from": str(tmp_path / "none")},
        }
    )
    assert "cannot read: No such file or directory" in refused(ref)


def test_a_refused_dataset_fails_the_run_and_writes_nothing_outside_it(tmp_path: Path) -> None:
    bad = tmp_path / "data" / "qa.parquet"
    bad.parent.mkdir()
    bad.write_bytes(b"not parquet")
    before = sorted(p for p in tmp_path.rglob("*"))
    experiment = Experiment.model_validate(
        {
            "id": "hostile_data",
            "dataset": {"name": "qa", "provider": "local", "options": {"path": str(bad)}},
            "pipeline": [{"name": "seen", "module": "tests.dataset_helpers:SeenExamples"}],
        }
    )
    result = run(experiment, artifacts_root=str(tmp_path / "runs"))
    assert result.failure is not None and result.failure.stage == "dataset"
    manifest = json.loads((Path(result.run_dir or "") / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["failure"]["reason"] == "unreadable"
    after = sorted(p for p in tmp_path.rglob("*") if "runs" not in p.relative_to(tmp_path).parts)
    assert after == before
    assert not (Path(result.run_dir or "") / IDS_FILE).exists()


def test_the_command_line_says_one_line_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from crucible_dagster.cli import main

    path = tmp_path / "exp.yaml"
    path.write_text(
        "id: cli_data\ndataset:\n  name: qa\n  provider: local\n  options: {path: "
        f"'{tmp_path / 'gone.csv'}'}}\npipeline:\n  - name: validate\n"
    )
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"dataset.options.path: no such file or folder: '{tmp_path / 'gone.csv'}'" in out
    assert "Traceback" not in out
