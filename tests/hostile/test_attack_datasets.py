"""An outsider's attack on dataset files and URLs (issue 24, section 1): what the first hostile
family left open. Before the fixes a URL whose driver was missing or whose server refused was a
bare ImportError or ConnectionRefusedError (exit 70 from ``crucible run``), any table with a
date, timestamp or duration column failed with numpy's "cannot include dtype 'M' in a buffer",
ids of bytes or lists were a bare ArrowInvalid, a deep ``list<...>`` schema a RecursionError, a
header-only CSV ran on to fail at ``score`` with ``KeyError: 'variant'``, and a tampered
save_to_disk ``state.json`` made the datasets library open ``/etc/passwd`` or block on a FIFO."""

from __future__ import annotations

import datetime
import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from crucible_dagster import Experiment, run
from crucible_dagster.datasets import DatasetError, load_dataset
from crucible_dagster.experiment.ir import DatasetRef


def local(path: str | Path, **fields: Any) -> DatasetRef:
    return DatasetRef.model_validate(
        {"name": "qa", "provider": "local", "options": {"path": str(path)}, **fields}
    )


def refused(ref: DatasetRef) -> str:
    with pytest.raises(DatasetError) as caught:
        load_dataset(ref, 0)
    message = str(caught.value)
    assert "Traceback" not in message and "\n" not in message.strip()
    return message


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_urls_whose_filesystem_fails_are_located_errors(tmp_path: Path) -> None:
    refused_ftp = f"ftp://127.0.0.1:{closed_port()}/qa.csv"
    assert refused(local(refused_ftp)).startswith(f"{refused_ftp}: cannot ")
    archive = f"zip://qa.csv::{tmp_path / 'missing.zip'}"
    assert refused(local(archive)).startswith(f"{archive}: cannot ")
    http = f"http://127.0.0.1:{closed_port()}/qa.csv"  # aiohttp absent or the port closed
    assert refused(local(http)).startswith(f"{http}: cannot ")


@pytest.mark.parametrize(
    "values",
    [
        [datetime.datetime(2020, 1, 1), None],
        [datetime.date(2020, 1, 1), datetime.date(2021, 5, 2)],
        [datetime.timedelta(days=1), datetime.timedelta(seconds=3)],
    ],
    ids=["timestamp_with_null", "date", "duration"],
)
def test_date_time_and_duration_columns_load_and_are_fingerprinted(
    tmp_path: Path, values: list[Any]
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": ["a", "b"], "when": values}), tmp_path / "one.parquet")
    pq.write_table(pa.table({"id": ["a", "b"], "when": values[::-1]}), tmp_path / "two.parquet")
    one = load_dataset(local(tmp_path / "one.parquet"), 0)
    assert list(one.examples.index) == ["a", "b"] and len(one.examples["when"]) == 2
    again = load_dataset(local(tmp_path / "one.parquet"), 0)
    other = load_dataset(local(tmp_path / "two.parquet"), 0)
    assert one.fingerprint == again.fingerprint != other.fingerprint


def test_a_csv_with_iso_timestamps_loads(tmp_path: Path) -> None:
    path = tmp_path / "qa.csv"
    path.write_text("id,asked,input\na,2020-01-01T10:00:00,1+1\nb,2020-01-02T11:00:00,2+2\n")
    assert len(load_dataset(local(path), 0).examples) == 2


@pytest.mark.parametrize(
    ("ids", "kind"), [([b"\xff", b"\xfe"], "binary"), ([[1], [2]], "list<element: int64>")]
)
def test_ids_that_are_neither_text_nor_numbers(tmp_path: Path, ids: list[Any], kind: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "qa.parquet"
    pq.write_table(pa.table({"id": ids, "x": [1, 2]}), path)
    assert refused(local(path)) == (
        f"{path}: column 'id': expected ids as text (UTF-8) or numbers, found {kind} values that "
        "are not (set dataset.options.id_column to another column)"
    )


def test_a_schema_type_nested_too_deep(tmp_path: Path) -> None:
    path = tmp_path / "qa.csv"
    path.write_text("id,x\na,1\n")
    deep = "list<" * 5000 + "int64" + ">" * 5000
    message = refused(local(path, schema={"x": deep}))
    assert message.startswith("dataset.schema.x: expected lists nested at most 32 deep")


def test_a_json_file_holding_one_array_says_it_wants_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "qa.json"
    path.write_text(' \n[{"id": "a", "input": "x"}]')
    assert refused(local(path)) == (
        f"{path}: expected JSON Lines (one object a line), found a JSON array; write one object "
        "a line (a .json file is read as JSON Lines too)"
    )


def test_a_header_only_file_is_refused_at_the_dataset_step(tmp_path: Path) -> None:
    path = tmp_path / "qa.csv"
    path.write_text("id,input,reference\n")
    assert refused(local(path)) == (
        f"{path}: expected examples, found none (a header only, or an empty table)"
    )
    experiment = Experiment.model_validate(
        {
            "id": "no_rows",
            "dataset": {"name": "qa", "provider": "local", "options": {"path": str(path)}},
            "pipeline": [{"name": "seen", "module": "tests.dataset_helpers:SeenExamples"}],
        }
    )
    result = run(experiment, artifacts_root=str(tmp_path / "runs"))
    assert result.failure is not None and result.failure.stage == "dataset"
    manifest = json.loads((Path(result.run_dir or "") / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["failure"]["reason"] == "no_rows"


# --- provider huggingface: a save_to_disk folder whose records were tampered with ----------


def _saved(tmp_path: Path) -> Path:
    import datasets

    folder = tmp_path / "saved"
    datasets.Dataset.from_dict({"id": ["a", "b"], "input": ["x", "y"]}).save_to_disk(str(folder))
    return folder


def _state(folder: Path, **changes: Any) -> None:
    state = json.loads((folder / "state.json").read_text())
    state.update(changes)
    (folder / "state.json").write_text(json.dumps(state))


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _hf(folder: Path) -> DatasetRef:
    return DatasetRef.model_validate(
        {"name": "qa", "provider": "huggingface", "options": {"path": str(folder)}}
    )


@pytest.mark.slow  # importing the datasets library takes over a second
@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (lambda f: _state(f, _data_files=[{"filename": "../../../../etc/passwd"}]), "escapes"),
        (lambda f: _state(f, _data_files=[{"filename": "/etc/hostname"}]), "escapes"),
        (lambda f: _state(f, _data_files="data.arrow"), "_data_files: expected a list"),
        (lambda f: _state(f, _data_files=[{}]), "_data_files: expected a list"),
        (lambda f: (f / "state.json").write_text("[1]"), "_data_files: expected a list"),
        (lambda f: (f / "state.json").write_text('{"x'), "expected a save_to_disk state (JSON)"),
        (lambda f: _fifo(f / "dataset_info.json"), "not a regular file"),
    ],
    ids=["dotdot", "absolute", "not_a_list", "no_filename", "a_list", "truncated", "info_fifo"],
)  # fmt: skip
def test_a_tampered_save_to_disk_record_is_refused_before_the_library_opens_anything(
    tmp_path: Path, tamper: Any, expected: str
) -> None:
    folder = _saved(tmp_path)
    tamper(folder)
    message = refused(_hf(folder))
    assert str(folder) in message and expected in message, message


@pytest.mark.slow  # importing the datasets library takes over a second
def test_a_data_file_that_is_a_fifo_or_a_symlink_out_is_not_opened(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    (data,) = folder.glob("*.arrow")
    outside = tmp_path / "outside.arrow"
    data.rename(outside)
    data.symlink_to(outside)
    assert "escapes" in refused(_hf(folder))
    data.unlink()
    os.mkfifo(data)  # opening it would block the run
    assert refused(_hf(folder)).endswith(f"{data.name!r} is not a regular file")


# --- benchmark loaders on rows that are not in their format ---------------------------------

BENCHMARK_ROWS = [
    ("no_robots", {"prompt": "p", "prompt_id": "1", "messages": "hello"},
     "row 1, column 'messages': expected a list of {role, content} messages, found 'hello'"),
    ("no_robots", {"prompt": "p", "prompt_id": "1", "messages": None},
     "row 1, column 'messages': expected a list of {role, content} messages, found None"),
    ("no_robots", {"prompt": "p", "prompt_id": "1", "messages": ["a", "b"]},
     "row 1, column 'messages': expected a list of {role, content} messages"),
    ("mmlu", {"question": "q", "choices": None, "answer": 1},
     "row 1, column 'choices': expected a list of the answer choices, found None"),
    ("mmlu", {"question": "q", "choices": "abcd", "answer": 1},
     "row 1, column 'choices': expected a list of the answer choices, found 'abcd'"),
    ("gsm8k", {"question": None, "answer": "x #### 5"},
     "row 1, column 'question': expected text, found None"),
]  # fmt: skip


@pytest.mark.parametrize(("benchmark", "row", "expected"), BENCHMARK_ROWS)
def test_a_benchmark_row_not_in_its_format_is_located(
    tmp_path: Path, benchmark: str, row: dict[str, Any], expected: str
) -> None:
    path = tmp_path / f"{benchmark}.jsonl"
    path.write_text(json.dumps(row) + "\n")
    ref = DatasetRef.model_validate(
        {"name": "b", "provider": benchmark, "format": "jsonl", "options": {"path": str(path)}}
    )
    message = refused(ref)
    assert message.startswith(f"{path}: {expected}"), message


@pytest.mark.parametrize(
    ("value", "found"),
    [("true", "got true (true/false is not a number)"), ("'100'", "got '100'"), ("1.0", "got 1.0")],
)
def test_a_provider_option_given_a_bool_or_text_for_a_number_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, found: str
) -> None:
    """``max_bytes: true`` was read as 1 byte (and every file was then 'too large')."""
    from crucible_dagster.cli import main

    (tmp_path / "qa.csv").write_text("id,x\na,1\n")
    path = tmp_path / "exp.yaml"
    path.write_text(
        "id: strict\ndataset:\n  name: qa\n  provider: local\n  options: {path: "
        f"'{tmp_path / 'qa.csv'}', max_bytes: {value}}}\npipeline:\n  - name: validate\n"
    )
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"dataset.options.max_bytes: expected an integer, {found}" in out, out
    assert "(found" not in out  # the value is said once


def test_stratifying_by_a_column_of_distinct_values_groups_rows_in_one_sort() -> None:
    """Stratified samples and folds ``by`` a column of 200,000 distinct values took 24 s and
    49 s: each group was found by its own scan of every row. The groups found by one stable
    sort are the very ones the scans found, so the same seed still takes the same rows."""
    import numpy as np

    from crucible_dagster.datasets.sampling import _groups

    codes = np.random.default_rng(3).integers(0, 50, size=2_000)
    scanned = [np.flatnonzero(codes == g) for g in range(codes.max() + 1)]
    sorted_once = _groups(codes)
    assert len(sorted_once) == len(scanned)
    assert all(np.array_equal(a, b) for a, b in zip(sorted_once, scanned, strict=True))
    assert _groups(np.array([], dtype=int)) == []


@pytest.mark.slow
def test_a_sample_and_folds_by_a_column_of_distinct_values(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 8_000
    path = tmp_path / "wide.parquet"
    pq.write_table(pa.table({"id": [f"r{i}" for i in range(rows)], "u": range(rows)}), path)
    sample = {"n": 10, "strategy": "stratified", "by": "u"}
    taken = load_dataset(local(path, sample=sample), 5)
    assert (
        len(taken.examples) == 10 and taken.ids == load_dataset(local(path, sample=sample), 5).ids
    )
    folds = load_dataset(local(path, folds={"k": 4, "by": "u"}), 5).examples["fold"]
    assert sorted(folds.value_counts().tolist()) == [2_000] * 4


@pytest.mark.slow  # a 3 MB row parsed twice, over a second
@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_a_row_longer_than_pyarrows_block_is_read(tmp_path: Path, suffix: str) -> None:
    """A long document in one row (3 MB) failed with pyarrow's 'straddling object straddles
    two block boundaries (try to increase block size?)', a setting the user cannot reach."""
    path = tmp_path / f"long.{suffix}"
    text = "x" * 3_000_000
    if suffix == "csv":
        path.write_text(f"id,text\na,{text}\nb,short\n")
    else:
        path.write_text(json.dumps({"id": "a", "text": text}) + '\n{"id": "b", "text": "short"}\n')
    loaded = load_dataset(local(path), 0)
    assert loaded.examples["text"].str.len().tolist() == [3_000_000, 5]


@pytest.mark.slow  # 20,000 columns, over a second
def test_a_csv_header_longer_than_pyarrows_block_is_read(tmp_path: Path) -> None:
    """A header over 1 MiB (here 20,000 long column names) failed with 'Empty CSV file'."""
    columns = [f"{'a_rather_long_column_name_' * 2}{i}" for i in range(20_000)]
    path = tmp_path / "wide.csv"
    path.write_text(
        ",".join(["id", *columns]) + "\n" + ",".join(["a"] + ["1"] * len(columns)) + "\n"
    )
    assert path.stat().st_size > 2**20
    assert load_dataset(local(path), 0).examples.shape == (1, 20_000)


def test_validate_never_walks_a_tree_for_a_glob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dataset path '/**/x.csv' made `crucible validate` (and the Dagster loader) walk the
    whole filesystem for minutes before saying anything, holding up every other experiment."""
    from crucible_dagster.datasets import dataset_problems
    from crucible_dagster.datasets import local as local_module

    walked: list[str] = []
    (tmp_path / "a").mkdir()

    def recording(pattern: str, *args: Any, **kwargs: Any) -> Any:
        walked.append(pattern)
        return iter(())

    monkeypatch.setattr(local_module.globbing, "glob", recording)
    monkeypatch.setattr(local_module.globbing, "iglob", recording)
    assert dataset_problems(local("/**/zzzz_nothing*.csv")) == []
    assert dataset_problems(local(tmp_path / "a" / "*" / "*.csv")) == []
    assert walked == []  # neither expanded: the run expands them
    assert dataset_problems(local(tmp_path / "nope" / "*.csv")) == [
        (
            "dataset.options.path",
            f"the glob '{tmp_path / 'nope' / '*.csv'}' starts in '{tmp_path / 'nope'}', which "
            "is not a folder",
        )
    ]
    assert dataset_problems(local(tmp_path / "*.csv")) == [
        ("dataset.options.path", f"the glob '{tmp_path / '*.csv'}' matches no file")
    ]
    assert walked == [str(tmp_path / "*.csv")]  # one listing of one folder


@pytest.mark.parametrize("field", ["version", "split"])
def test_an_empty_version_or_split_is_refused(field: str) -> None:
    """``version: ""`` pinned nothing (every fingerprint starts with ""), silently."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="at least 1 character"):
        DatasetRef.model_validate({"name": "qa", "provider": "local", field: ""})
