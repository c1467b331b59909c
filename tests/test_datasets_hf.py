"""provider: huggingface on local data (no download): a save_to_disk folder (one Dataset, and a
DatasetDict by split) and a folder of files, through the datasets library (the hf extra)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crucible_dagster.datasets import DatasetError, load_dataset
from crucible_dagster.experiment.ir import DatasetRef

pytestmark = pytest.mark.slow  # importing the datasets library takes over a second


def hf(path: Path, **fields: object) -> DatasetRef:
    return DatasetRef.model_validate(
        {"name": "qa", "provider": "huggingface", "options": {"path": str(path)}, **fields}
    )


def test_save_to_disk_folders_and_a_folder_of_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datasets

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    rows = {"id": ["a", "b", "c"], "question": ["x?", "y?", "z?"], "answer": [1, 2, 3]}
    datasets.Dataset.from_dict(rows).save_to_disk(str(tmp_path / "one"))
    one = load_dataset(hf(tmp_path / "one"), 0)
    assert list(one.examples.index) == ["a", "b", "c"]
    assert one.examples["answer"].tolist() == [1, 2, 3]
    split = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(rows),
            "test": datasets.Dataset.from_dict({**rows, "id": ["t1", "t2", "t3"]}),
        }
    )
    split.save_to_disk(str(tmp_path / "dict"))
    assert load_dataset(hf(tmp_path / "dict", split="test"), 0).ids == ["t1", "t2", "t3"]
    with pytest.raises(DatasetError, match=r"no split 'validation'; it has 'train', 'test'"):
        load_dataset(hf(tmp_path / "dict", split="validation"), 0)
    files = tmp_path / "files"
    files.mkdir()
    (files / "test.jsonl").write_text(
        "".join(json.dumps({"id": f"f{i}", "q": "?"}) + "\n" for i in range(4))
    )
    loaded = load_dataset(hf(files, split="test"), 0)
    assert loaded.ids == ["f0", "f1", "f2", "f3"] and loaded.provider == "huggingface"
    # the same content gives the same fingerprint whichever provider read it
    same = datasets.Dataset.from_dict(rows)
    same.to_parquet(str(tmp_path / "same.parquet"))
    local = DatasetRef.model_validate(
        {"name": "qa", "provider": "local", "options": {"path": str(tmp_path / "same.parquet")}}
    )
    assert load_dataset(local, 0).fingerprint == one.fingerprint
