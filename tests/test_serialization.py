"""Context <-> JSON + Parquet/.npy: lossless, content-addressed, versioned, never pickle."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crucible_dagster import Context, Experiment
from crucible_dagster.runtime.serialization import (
    BlobStore,
    UnstorableValue,
    load_context,
    load_stored,
    save_context,
    save_stored,
)


def test_roundtrip_of_every_supported_value(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"a": [1, 2, 3], "b": ["x", "y", "z"]}, index=pd.Index([10, 20, 30], name="i")
    )
    ctx = (
        Context(
            "e",
            "r",
            experiment=Experiment.model_validate({"id": "e", "pipeline": [{"name": "validate"}]}),
        )
        .with_trace()
        .emit_decision("d", "because")
        .assign(
            {
                "frame": frame,
                "series": pd.Series([1.5, 2.5], name="s"),
                "array": np.arange(6).reshape(2, 3),
                "tuple": (1, "a"),
                "nan": float("nan"),
                "when": datetime(2026, 1, 2, tzinfo=timezone.utc),
                "int_keys": {1: "one"},
                "np_scalar": np.float64(2.5),
            }
        )
        .add_output({"kind": "x"})
    )
    store = BlobStore(tmp_path / "blobs")
    back = load_context(save_context(ctx, tmp_path / "c.json", store), store)
    assert back.assigns["frame"].equals(frame)
    assert back.assigns["series"].tolist() == [1.5, 2.5] and back.assigns["series"].name == "s"
    assert np.array_equal(back.assigns["array"], np.arange(6).reshape(2, 3))
    assert back.assigns["tuple"] == (1, "a") and math.isnan(back.assigns["nan"])
    assert back.assigns["when"] == datetime(2026, 1, 2, tzinfo=timezone.utc) and back.assigns[
        "int_keys"
    ] == {1: "one"}
    assert back.assigns["np_scalar"] == 2.5
    assert (
        back.experiment == ctx.experiment
        and back.trace == ctx.trace
        and back.outputs == ctx.outputs
    )
    assert json.loads((tmp_path / "c.json").read_text())["schema_version"] == 1


def test_content_addressed_blobs(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    frame = pd.DataFrame({"a": np.arange(1000), "b": np.linspace(0, 1, 1000)})
    save_context(Context("e", "r").assign("t", frame), tmp_path / "1.json", store)
    save_context(
        Context("e", "r").assign("t", frame.copy()), tmp_path / "2.json", store
    )  # same content, other object
    assert len(list((tmp_path / "blobs").iterdir())) == 1
    changed = frame.copy()
    changed.loc[5, "b"] = 99.0
    save_context(Context("e", "r").assign("t", changed), tmp_path / "3.json", store)
    assert len(list((tmp_path / "blobs").iterdir())) == 2
    assert not list(tmp_path.rglob("*.pkl"))


@pytest.mark.parametrize("dtype", ["object", "string[python]", "string[pyarrow]", "category"])
def test_text_columns_are_hashed_by_content(tmp_path: Path, dtype: str) -> None:
    store = BlobStore(tmp_path / "blobs")
    words = pd.Series([f"w{i % 97}" for i in range(2000)], dtype=dtype)
    frame = pd.DataFrame({"word": words, "n": np.arange(2000)})
    names = {
        store.put_table(frame, "t"),
        store.put_table(frame.copy(), "t"),  # same content, another object
    }
    assert len(names) == 1
    changed = frame.copy()
    changed.loc[7, "word"] = "w1"
    assert store.put_table(changed, "t") not in names
    with_missing = frame.copy()
    with_missing.loc[3, "word"] = None
    assert store.put_table(with_missing, "t") not in names | {store.put_table(changed, "t")}


def test_unstorable_value_names_its_key(tmp_path: Path) -> None:
    with pytest.raises(
        UnstorableValue, match=r"assigns\['model'\]: cannot store a value of type builtins.object"
    ):
        save_context(
            Context("e", "r").assign("model", object()),
            tmp_path / "c.json",
            BlobStore(tmp_path / "b"),
        )
    with pytest.raises(UnstorableValue, match="column names must be strings"):
        save_context(
            Context("e", "r").assign("t", pd.DataFrame({0: [1]})),
            tmp_path / "c.json",
            BlobStore(tmp_path / "b"),
        )


def test_plain_values_and_old_versions(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "b")
    assert load_stored(
        save_stored({"trial": [1, 2], "x": None}, tmp_path / "v.json", store), store
    ) == {"trial": [1, 2], "x": None}
    path = save_context(Context("e", "r"), tmp_path / "c.json", store)
    payload = json.loads(path.read_text())
    payload["schema_version"] = 99
    path.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="schema version 99"):
        load_context(path, store)
