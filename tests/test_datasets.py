"""Datasets (issue 24, section 1): every provider and format, the benchmark loaders on their
shipped samples, the schema check located by row and column, seeded sampling, the content
fingerprint, and the dataset as the first stage sees it in a run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from crucible_dagster import Experiment, run
from crucible_dagster.datasets import DatasetError, columns_of, dataset_problems, load_dataset
from crucible_dagster.datasets.fingerprint import fingerprint_table
from crucible_dagster.experiment.ir import DatasetRef

QA = pa.table(
    {
        "id": ["q1", "q2", "q3", "q4", "q5", "q6"],
        "question": ["one?", "two?", "three?", "four?", "five?", "six?"],
        "answer": [1, 2, 3, 4, 5, 6],
        "topic": ["a", "a", "a", "a", "b", "b"],
    }
)


def write(table: pa.Table, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    elif path.suffix == ".csv":
        pacsv.write_csv(table, path)
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in table.to_pylist()))
    else:
        feather.write_feather(table, path)
    return path


def local(path: str | Path, **fields: Any) -> DatasetRef:
    options = {"path": str(path), **fields.pop("options", {})}
    return DatasetRef.model_validate(
        {"name": "qa", "provider": "local", "options": options, **fields}
    )


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl", ".arrow"])
def test_each_format_loads_the_same_examples_with_the_same_fingerprint(
    tmp_path: Path, suffix: str
) -> None:
    loaded = load_dataset(local(write(QA, tmp_path / f"qa{suffix}")), seed=0)
    reference = load_dataset(local(write(QA, tmp_path / "ref.parquet")), seed=0)
    assert list(loaded.examples.index) == ["q1", "q2", "q3", "q4", "q5", "q6"]
    assert loaded.examples.index.name == "id"
    assert list(loaded.examples.columns) == ["question", "answer", "topic"]
    assert loaded.examples["answer"].tolist() == [1, 2, 3, 4, 5, 6]
    # the content hash is of what was loaded, not of the file's bytes or format
    assert loaded.fingerprint == reference.fingerprint


def test_a_folder_a_glob_and_a_split_subfolder(tmp_path: Path) -> None:
    write(QA.slice(0, 3), tmp_path / "parts" / "a.parquet")
    write(QA.slice(3, 3), tmp_path / "parts" / "b.parquet")
    assert len(load_dataset(local(tmp_path / "parts"), 0).examples) == 6
    assert len(load_dataset(local(tmp_path / "parts" / "*.parquet"), 0).examples) == 6
    write(QA.slice(0, 2), tmp_path / "splits" / "train" / "x.csv")
    write(QA.slice(2, 4), tmp_path / "splits" / "test" / "x.csv")
    test = load_dataset(local(tmp_path / "splits", split="test"), 0)
    assert list(test.examples.index) == ["q3", "q4", "q5", "q6"]


def test_an_fsspec_memory_url_and_a_file_url(tmp_path: Path) -> None:
    import fsspec

    memory = fsspec.filesystem("memory")
    with memory.open("/crucible-tests/qa.parquet", "wb") as handle:
        pq.write_table(QA, handle)
    loaded = load_dataset(local("memory://crucible-tests/qa.parquet"), 0)
    assert list(loaded.examples.index) == list(QA["id"].to_pylist())
    with memory.open("/crucible-tests/folder/p1.jsonl", "wb") as handle:
        handle.write(b'{"id": "z", "question": "q", "answer": 1, "topic": "t"}\n')
    assert list(load_dataset(local("memory://crucible-tests/folder"), 0).examples.index) == ["z"]
    path = write(QA, tmp_path / "qa.parquet")
    assert load_dataset(local(f"file://{path}"), 0).fingerprint == loaded.fingerprint


def test_the_row_number_is_the_id_when_there_is_no_id_column(tmp_path: Path) -> None:
    loaded = load_dataset(local(write(QA.drop_columns(["id"]), tmp_path / "qa.csv")), 0)
    assert list(loaded.examples.index) == ["0", "1", "2", "3", "4", "5"]
    other = load_dataset(local(tmp_path / "qa.csv", options={"id_column": "question"}), 0)
    assert other.examples.index[0] == "one?"


def test_a_duplicate_id_is_located(tmp_path: Path) -> None:
    table = QA.set_column(0, "id", pa.array(["q1", "q2", "q3", "q2", "q5", "q6"]))
    with pytest.raises(
        DatasetError, match=r"qa.csv: row 2, column 'id': the id 'q2' is not unique"
    ):
        load_dataset(local(write(table, tmp_path / "qa.csv")), 0)


# --- schema -----------------------------------------------------------------------------------


def test_a_schema_mismatch_is_located_by_row_and_column(tmp_path: Path) -> None:
    path = tmp_path / "qa.csv"
    path.write_text("id,question,answer\nq1,one?,1\nq2,two?,2\nq3,three?,three\nq4,four?,4\n")
    ref = local(path, schema={"question": "string", "answer": "int64"})
    with pytest.raises(DatasetError) as caught:
        load_dataset(ref, 0)
    assert str(caught.value) == (
        f"{path}: dataset.schema: row 3, column 'answer': expected int64, found 'three' (string)"
    )


def test_a_schema_names_the_file_of_the_row_among_several(tmp_path: Path) -> None:
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "a.jsonl").write_text(
        "".join(f'{{"id": "a{i}", "answer": {i}.0}}\n' for i in range(3))
    )
    (parts / "b.jsonl").write_text('{"id": "x1", "answer": 1.0}\n{"id": "x2", "answer": 2.5}\n')
    ref = local(tmp_path / "parts", schema={"answer": "int64"})
    with pytest.raises(
        DatasetError,
        match=r"b.jsonl row 1: dataset.schema: row 5, column 'answer': expected int64, found 2.5",
    ):
        load_dataset(ref, 0)


def test_a_schema_casts_refuses_nulls_and_names_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text(
        '{"id": "a", "answer": "1", "note": null}\n{"id": "b", "answer": "2", "note": "x"}\n'
    )
    loaded = load_dataset(
        local(path, schema={"answer": "int64", "note": {"type": "string", "nullable": True}}), 0
    )
    assert loaded.examples["answer"].tolist() == [1, 2]
    with pytest.raises(DatasetError, match=r"row 1, column 'note': expected string, found null"):
        load_dataset(local(path, schema={"note": "string"}), 0)
    with pytest.raises(
        DatasetError, match=r"column 'question' is missing; the table has 'id', 'answer', 'note'"
    ):
        load_dataset(local(path, schema={"question": "string"}), 0)


def test_a_bad_type_name_is_a_validate_problem(tmp_path: Path) -> None:
    ref = local(write(QA, tmp_path / "qa.csv"), schema={"answer": "integr"})
    assert dataset_problems(ref) == [
        (
            "dataset.schema.answer",
            "expected a type name (string, int64, float64, bool, list<string> ...), found 'integr'",
        )
    ]


# --- sampling ---------------------------------------------------------------------------------


def test_sampling_is_seeded_reproducible_and_recorded(tmp_path: Path) -> None:
    big = pa.table({"id": [f"r{i}" for i in range(200)], "g": ["x"] * 150 + ["y"] * 50})
    path = write(big, tmp_path / "big.parquet")
    ref = local(path, sample={"n": 40, "strategy": "stratified", "by": "g"})
    first, again, other = load_dataset(ref, 7), load_dataset(ref, 7), load_dataset(ref, 8)
    assert first.ids == again.ids and first.fingerprint == again.fingerprint
    assert first.ids != other.ids and first.fingerprint != other.fingerprint
    assert first.examples["g"].value_counts().to_dict() == {"x": 30, "y": 10}  # 3:1 kept
    assert first.rows_loaded == 200 and len(first.ids) == 40
    fraction = load_dataset(local(path, sample={"fraction": 0.1}), 7)
    assert len(fraction.ids) == 20
    limited = load_dataset(local(path, limit=10), 7)
    assert limited.ids == [f"r{i}" for i in range(10)]


def test_folds_balance_the_groups(tmp_path: Path) -> None:
    big = pa.table({"id": [f"r{i}" for i in range(100)], "g": ["x"] * 80 + ["y"] * 20})
    loaded = load_dataset(local(write(big, tmp_path / "b.parquet"), folds={"k": 5, "by": "g"}), 3)
    counts = loaded.examples.groupby(["fold", "g"]).size().unstack()
    assert counts["x"].tolist() == [16] * 5 and counts["y"].tolist() == [4] * 5
    assert (
        load_dataset(local(tmp_path / "b.parquet", folds=4), 3)
        .examples["fold"]
        .value_counts()
        .tolist()
        == [25] * 4
    )


def test_a_later_run_takes_the_same_ids_from_a_run_directory(tmp_path: Path) -> None:
    from crucible_dagster.datasets.ids_record import write_ids

    path = write(QA, tmp_path / "qa.parquet")
    first = load_dataset(local(path, sample={"n": 3}), 11)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_ids(run_dir, first.ids_record())
    again = load_dataset(local(path, sample={"ids_from": str(run_dir)}), 99)
    assert again.ids == first.ids and again.fingerprint == first.fingerprint


def test_sample_settings_are_refused_in_the_ir() -> None:
    with pytest.raises(ValueError, match="exactly one of n, fraction or ids_from"):
        DatasetRef.model_validate({"name": "x", "sample": {"n": 3, "fraction": 0.5}})
    with pytest.raises(ValueError, match="needs 'by'"):
        DatasetRef.model_validate({"name": "x", "sample": {"n": 3, "strategy": "stratified"}})
    with pytest.raises(ValueError, match="greater than or equal to 2"):
        DatasetRef.model_validate({"name": "x", "folds": 1})


# --- fingerprint ------------------------------------------------------------------------------


def test_the_fingerprint_is_the_content_however_chunked() -> None:
    chunked = pa.Table.from_batches(QA.to_batches(max_chunksize=2))
    assert (
        fingerprint_table(chunked)
        == fingerprint_table(QA)
        == fingerprint_table(QA.combine_chunks())
    )
    assert fingerprint_table(QA.slice(1, 3)) == fingerprint_table(
        pa.Table.from_pylist(QA.slice(1, 3).to_pylist())
    )
    changed = QA.set_column(2, "answer", pa.array([1, 2, 3, 4, 5, 7]))
    assert fingerprint_table(changed) != fingerprint_table(QA)
    renamed = QA.rename_columns(["id", "question", "reply", "topic"])
    assert fingerprint_table(renamed) != fingerprint_table(QA)


def test_a_version_pins_the_content(tmp_path: Path) -> None:
    path = write(QA, tmp_path / "qa.parquet")
    found = load_dataset(local(path), 0)
    full = fingerprint_table(QA.drop_columns(["id"]), QA["id"])
    assert found.fingerprint == full
    assert load_dataset(local(path, version=full[:12]), 0).fingerprint == full
    with pytest.raises(
        DatasetError, match=r"dataset.version: the data's fingerprint is [0-9a-f]{32}, not 'abc'"
    ):
        load_dataset(local(path, version="abc"), 0)


# --- benchmarks on their shipped samples ---------------------------------------------------------


def test_gsm8k_answers_are_the_number_after_the_hashes() -> None:
    loaded = load_dataset(DatasetRef(name="gsm8k"), 0)
    assert loaded.provider == "gsm8k"
    assert loaded.examples["reference"].tolist() == [
        "26",
        "270",
        "7",
        "900",
        "12",
        "40",
        "-5",
        "72",
        "40",
        "15",
    ]
    assert loaded.examples["input"].iloc[0].startswith("Ana has 3 boxes")
    assert loaded.examples["solution"].iloc[0].endswith("#### 26")
    train = load_dataset(DatasetRef(name="gsm8k", split="train"), 0)
    assert train.examples["reference"].tolist() == ["9", "120", "38"]


def test_gsm8k_without_an_answer_line_is_located(tmp_path: Path) -> None:
    path = tmp_path / "gsm.jsonl"
    path.write_text(
        '{"question": "a", "answer": "x\\n#### 1,000"}\n{"question": "b", "answer": "no hashes"}\n'
    )
    ref = DatasetRef.model_validate({"name": "gsm8k", "options": {"path": str(path)}})
    with pytest.raises(
        DatasetError, match=r"row 2, column 'answer': expected a solution ending '#### <answer>'"
    ):
        load_dataset(ref, 0)
    path.write_text('{"question": "a", "answer": "x\\n#### 1,000"}\n')
    assert load_dataset(ref, 0).examples["reference"].tolist() == ["1000"]


def test_mmlu_in_the_original_csv_and_in_the_hub_layout(tmp_path: Path) -> None:
    loaded = load_dataset(DatasetRef(name="mmlu"), 0)
    examples = loaded.examples
    assert len(examples) == 9 and set(examples["subject"]) == {
        "astronomy",
        "elementary_mathematics",
    }
    first = examples.iloc[0]
    assert first["input"] == "Which planet is closest to the Sun?"
    assert (
        list(first["choices"]) == ["Venus", "Earth", "Mercury", "Mars"]
        and first["reference"] == "C"
    )
    assert len(load_dataset(DatasetRef(name="mmlu", split="dev"), 0).examples) == 2
    hub = pa.table(
        {
            "question": ["2+2?"],
            "subject": ["math"],
            "choices": [["3", "4", "5", "6"]],
            "answer": [1],
        }
    )
    ref = DatasetRef.model_validate(
        {
            "name": "mmlu",
            "options": {"path": str(write(hub, tmp_path / "test.parquet"))},
            "format": "parquet",
        }
    )
    assert load_dataset(ref, 0).examples["reference"].tolist() == ["B"]


def test_humaneval_keeps_prompt_tests_and_entry_point() -> None:
    examples = load_dataset(DatasetRef(name="humaneval"), 0).examples
    assert list(examples.index) == ["Sample/0", "Sample/1", "Sample/2"]
    assert examples.loc["Sample/1", "entry_point"] == "is_palindrome"
    assert "def check(candidate)" in examples.loc["Sample/1", "tests"]
    assert str(examples.loc["Sample/0", "input"]).startswith("def add(a: int, b: int)")
    assert examples.loc["Sample/0", "reference"] == "    return a + b\n"


def test_no_robots_references_the_last_assistant_message() -> None:
    examples = load_dataset(DatasetRef(name="no_robots"), 0).examples
    assert (
        examples.loc["sample0002", "reference"]
        == "Water boils at 100 degrees Celsius at sea level."
    )
    assert examples.loc["sample0003", "category"] == "Classify"
    assert columns_of(DatasetRef(name="no_robots")) == [
        "input",
        "reference",
        "messages",
        "category",
    ]


# --- scikit-learn -------------------------------------------------------------------------------


@pytest.mark.slow
def test_every_bundled_sklearn_table_loads_and_the_list_is_complete() -> None:
    from sklearn import datasets

    from crucible_dagster.datasets.scikit_learn import NOT_TABLES, SKLEARN_DATASETS

    bundled = {n.removeprefix("load_") for n in dir(datasets) if n.startswith("load_")} - NOT_TABLES
    assert bundled == set(SKLEARN_DATASETS)
    for name in SKLEARN_DATASETS:
        loaded = load_dataset(DatasetRef(name=name, provider="sklearn"), 0)
        assert loaded.features is not None and loaded.target is not None
        assert len(loaded.features) == len(loaded.target) > 0
    iris = load_dataset(DatasetRef(name="iris"), 0)  # the default provider resolves the name
    assert iris.provider == "sklearn" and iris.target.tolist()[:2] == [0, 0]
    assert "target" not in iris.features.columns


def test_validate_finds_what_can_be_known_without_loading(tmp_path: Path) -> None:
    def problems(**fields: Any) -> list[tuple[str, str]]:
        return dataset_problems(DatasetRef.model_validate({"name": "x", **fields}))

    assert problems(name="iris", provider="sklearn") == []
    assert problems(name="iriss", provider="sklearn") == [
        (
            "dataset.name",
            "expected a dataset bundled with scikit-learn (breast_cancer, diabetes, digits, "
            "iris, linnerud, wine), found 'iriss'",
        )
    ]
    assert problems(name="gsm8", provider="crucible_datasets")[0][1].endswith(
        "not 'gsm8'; did you mean 'gsm8k'? (for your own files set provider: local and options.path)"
    )
    assert problems(provider="locl")[0] == ("dataset.provider", problems(provider="locl")[0][1])
    assert "did you mean 'local'?" in problems(provider="locl")[0][1]
    assert problems(provider="local", options={"path": str(tmp_path / "none.csv")}) == [
        ("dataset.options.path", f"no such file or folder: {str(tmp_path / 'none.csv')!r}")
    ]
    assert problems(provider="local")[0][0] == "dataset.options.path"
    assert problems(provider="local", options={"path": "memory://x/y.csv", "max_byte": 3})[0] == (
        "dataset.options.max_byte",
        "Extra inputs are not permitted; did you mean 'max_bytes'?",
    )


def test_a_provider_by_dotted_path_and_its_kind_check() -> None:
    ref = DatasetRef.model_validate(
        {"name": "c", "provider": "tests.dataset_helpers:CountingProvider", "options": {"rows": 5}}
    )
    assert load_dataset(ref, 0).examples["x"].tolist() == [0, 1, 2, 3, 4]
    assert columns_of(ref) == ["x", "label"]
    bad = DatasetRef(name="c", provider="tests.dataset_helpers:NotAProvider")
    [(field, message)] = dataset_problems(bad)
    assert field == "dataset.provider" and "a class without a load method" in message
    [(field, message)] = dataset_problems(DatasetRef(name="c", provider="os:system"))
    assert "names the standard library ('os')" in message


# --- the run: what the first stage sees --------------------------------------------------------


def _experiment(dataset: dict[str, Any]) -> Experiment:
    return Experiment.model_validate(
        {
            "id": "seen",
            "seed": 5,
            "dataset": dataset,
            "pipeline": [{"name": "seen", "module": "tests.dataset_helpers:SeenExamples"}],
        }
    )


def test_a_run_hands_the_examples_to_the_first_stage_and_records_them(tmp_path: Path) -> None:
    path = write(QA, tmp_path / "qa.parquet")
    dataset = {
        "name": "qa",
        "provider": "local",
        "options": {"path": str(path)},
        "sample": {"n": 4},
    }
    result = run(_experiment(dataset), artifacts_root=str(tmp_path / "runs"))
    assert result.ok, result.failure
    seen = result.context.metrics["seen"]
    assert (
        seen["has_examples"]
        and seen["rows"] == 4
        and seen["columns"] == ["question", "answer", "topic"]
    )
    assert seen["index_is_unique"] and not seen["has_features"]
    manifest = json.loads((Path(result.run_dir or "") / "manifest.json").read_text())
    fingerprint = manifest["data_fingerprints"]["qa"]
    assert fingerprint == result.context.metrics["dataset"]["fingerprint"]
    ids = json.loads((Path(result.run_dir or "") / "dataset_ids.json").read_text())
    assert ids["ids"] == seen["ids"] and ids["fingerprint"] == fingerprint


def test_a_dataset_that_cannot_load_fails_the_run_before_the_first_stage(tmp_path: Path) -> None:
    dataset = {"name": "qa", "provider": "local", "options": {"path": str(tmp_path / "gone.csv")}}
    result = run(_experiment(dataset), artifacts_root=str(tmp_path / "runs"))
    assert result.failure is not None and result.failure.stage == "dataset"
    assert (
        result.failure.message
        == f"{tmp_path / 'gone.csv'}: no such file or folder (dataset.options.path)"
    )
    manifest = json.loads((Path(result.run_dir or "") / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["failure"]["stage"] == "dataset"
    assert manifest["stages"]["seen"]["status"] == "pending"
    assert "seen" not in result.context.metrics


def test_examples_with_list_columns_travel_as_parquet(tmp_path: Path) -> None:
    from crucible_dagster.runtime.serialization import BlobStore, decode, encode

    examples = load_dataset(DatasetRef(name="mmlu"), 0).examples
    store = BlobStore(tmp_path / "blobs")
    back = decode(json.loads(json.dumps(encode(examples, store, "examples"))), store)
    assert list(back.index) == list(examples.index) and back.index.name == "id"
    assert [list(c) for c in back["choices"]] == [list(c) for c in examples["choices"]]
    assert next(iter((tmp_path / "blobs").iterdir())).suffix == ".parquet"
    pd.testing.assert_frame_equal(
        back.drop(columns=["choices"]), examples.drop(columns=["choices"])
    )


def test_the_dataset_as_named_has_its_own_fingerprint_beside_the_samples(tmp_path: Path) -> None:
    """The shared dataset asset's data version is the dataset before any experiment's sample."""
    from crucible_dagster.datasets import load_as_named

    path = write(QA, tmp_path / "qa.parquet")
    whole = load_dataset(local(path), seed=0)
    assert whole.named_fingerprint == whole.fingerprint
    for selection in ({"sample": {"n": 3}}, {"limit": 2}, {"folds": 2}):
        taken = load_dataset(local(path, **selection), seed=4)
        assert taken.named_fingerprint == whole.fingerprint != taken.fingerprint
        assert load_as_named(local(path, **selection)).fingerprint == whole.fingerprint
        assert taken.metric()["named_fingerprint"] == whole.fingerprint
