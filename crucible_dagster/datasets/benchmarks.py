"""Named benchmarks, read in their own formats and mapped to the canonical columns: ``input``
(the question or prompt) and ``reference`` (the answer), keeping their other fields.

- ``mmlu``: the original CSV release (no header; question, A-D, answer letter; the subject from
  the file name) or the hub layout (question, subject, choices, answer index): ``choices`` is a
  list, ``reference`` the letter.
- ``gsm8k``: ``reference`` is the number after ``####`` (thousands commas dropped); the worked
  solution stays as ``solution``.
- ``humaneval``: ``input`` is the prompt, ``reference`` the canonical solution, ``tests`` and
  ``entry_point`` kept; scoring by running code is out of scope (it needs a sandbox: a separate
  process with resource limits, a timeout and no network), so nothing here executes anything.
- ``no_robots``: ``input`` is the prompt, ``reference`` the last assistant message.

``options.path`` reads a file, folder, glob or URL in that format; ``options.hub`` a hub dataset
(the ``hf`` extra); neither reads the small sample shipped in ``datasets/samples``.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from pydantic import Field, model_validator

from crucible_dagster.datasets.base import DatasetError, LoadedTable, Provider, ProviderOptions
from crucible_dagster.datasets.local import FORMATS, DataFiles, check_depth, data_format, read_files
from crucible_dagster.experiment.ir import DatasetRef

SAMPLES = Path(__file__).resolve().parent / "samples"
LETTERS = "ABCD"
GSM8K_ANSWER = re.compile(r"####\s*(.+?)\s*$", re.DOTALL)


class BenchmarkOptions(ProviderOptions):
    path: str | None = Field(
        default=None, min_length=1, description="The benchmark's files (path or fsspec URL)."
    )
    hub: str | None = Field(default=None, min_length=1, description="A Hugging Face hub name.")
    config: str | None = Field(default=None, min_length=1, description="The hub dataset's config.")
    max_bytes: int = Field(default=50 * 2**30, ge=1)

    @model_validator(mode="after")
    def _one_source(self) -> BenchmarkOptions:
        if self.path is not None and self.hub is not None:
            raise ValueError("expected path or hub, not both")
        return self


class Benchmark(Provider):
    """A benchmark: read its files (or hub split), then ``map`` its fields."""

    Options = BenchmarkOptions
    uses_version = False  # a hub revision when ``hub`` is set, else a content pin
    #: the split read when the file does not name one (the benchmark's evaluation split)
    default_split: ClassVar[str] = "test"
    canonical: ClassVar[list[str]] = ["input", "reference"]

    def split(self, ref: DatasetRef) -> str:
        return ref.split if "split" in ref.model_fields_set else self.default_split

    def read(self, ref: DatasetRef, options: BenchmarkOptions) -> tuple[Any, str]:
        """The benchmark's own table and where it came from."""
        split = self.split(ref)
        if options.hub is not None:
            from crucible_dagster.datasets.huggingface import load_hf

            return load_hf(
                options.hub, split, config=options.config, revision=ref.version, cache_dir=None
            )
        location = options.path or str(SAMPLES / self.name)
        fmt = FORMATS.get((ref.format or "").lower())
        files = DataFiles(location, split, fmt)
        files.check(options.max_bytes)
        fmt = data_format(ref, files.paths)
        if fmt == "json":
            check_depth(files, 64)
        table, _ = read_files(files, fmt)
        return table, location

    def load(self, ref: DatasetRef, options: BenchmarkOptions) -> LoadedTable:
        table, source = self.read(ref, options)
        frame = self.map(table.to_pandas(), source)
        import pyarrow as pa

        mapped = pa.Table.from_pandas(frame, preserve_index=False)
        notes = {"split": self.split(ref)} | (
            {} if options.path or options.hub else {"sample": True}
        )
        return LoadedTable(mapped, source, None, options.target, notes)

    def columns(self, ref: DatasetRef, options: BenchmarkOptions) -> list[str] | None:
        return list(self.canonical)

    def map(self, frame: Any, source: str) -> Any:
        raise NotImplementedError


def _require(frame: Any, columns: list[str], source: str, benchmark: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DatasetError(
            f"not in {benchmark}'s format: no column {missing[0]!r} (found "
            f"{', '.join(map(repr, map(str, frame.columns[:10])))})",
            reason="not_benchmark_format",
            where=source,
        )


def _row_error(row: int, column: str, problem: str, source: str) -> DatasetError:
    """A benchmark file's row (0-based) that cannot be mapped, as the located DatasetError: its
    1-based number, the column and the problem."""
    return DatasetError(
        f"row {row + 1}, column {column!r}: {problem}", reason="not_benchmark_format", where=source
    )


def _row_problem(frame: Any, column: str, bad: Any, expected: str, source: str) -> None:
    """The first row where ``bad`` holds, as the located DatasetError."""
    if bad.any():
        row = int(bad.to_numpy().argmax())
        found = repr(frame[column].iloc[row])[:60]
        raise _row_error(row, column, f"expected {expected}, found {found}", source)


def _texts(frame: Any, columns: list[str], source: str) -> None:
    """The benchmark's text columns hold text in every row (a null question is no question)."""
    for column in columns:
        bad = frame[column].map(lambda v: not isinstance(v, str))
        _row_problem(frame, column, bad, "text", source)


def _is_list(value: Any) -> bool:
    return not isinstance(value, str | bytes | dict) and hasattr(value, "__len__")


class GSM8K(Benchmark):
    name = "gsm8k"
    canonical = ["input", "reference", "solution"]

    def map(self, frame: Any, source: str) -> Any:
        _require(frame, ["question", "answer"], source, "GSM8K")
        _texts(frame, ["question", "answer"], source)
        answers = frame["answer"].astype(str)
        found = answers.str.extract(GSM8K_ANSWER, expand=False)
        if found.isna().any():
            row = int(found.isna().to_numpy().argmax())
            raise DatasetError(
                f"row {row + 1}, column 'answer': expected a solution ending '#### <answer>', "
                f"found {answers.iloc[row][-60:]!r}",
                reason="not_benchmark_format",
                where=source,
            )
        out = frame.drop(columns=["question", "answer"])
        out.insert(0, "input", frame["question"].astype(str))
        out.insert(1, "reference", found.str.replace(",", "", regex=False))
        out.insert(2, "solution", answers)
        return out


class MMLU(Benchmark):
    name = "mmlu"
    canonical = ["input", "reference", "choices", "subject"]

    def read(self, ref: DatasetRef, options: BenchmarkOptions) -> tuple[Any, str]:
        if options.hub is not None or (ref.format or "csv").lower() != "csv":
            return super().read(ref, options)
        return self._read_original(ref, options)

    def _read_original(self, ref: DatasetRef, options: BenchmarkOptions) -> tuple[Any, str]:
        """The original release: header-less CSV files named ``<subject>_<split>.csv``."""
        import pyarrow as pa
        import pyarrow.csv as csv

        location = options.path or str(SAMPLES / self.name)
        split = self.split(ref)
        files = DataFiles(location, split, "csv")
        files.check(options.max_bytes)
        names = ["question", "A", "B", "C", "D", "answer"]
        tables = []
        for path in files.paths:
            read = csv.ReadOptions(column_names=names)
            convert = csv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()))
            try:
                with files.fs.open(path, "rb") if files.fs else open(path, "rb") as handle:
                    table = csv.read_csv(handle, read_options=read, convert_options=convert)
            except (pa.ArrowException, OSError) as exc:
                raise DatasetError(f"cannot read as MMLU CSV: {exc}", where=path) from None
            subject = PurePosixPath(path).stem.removesuffix(f"_{split}")
            tables.append(table.append_column("subject", pa.array([subject] * table.num_rows)))
        return pa.concat_tables(tables), location

    def map(self, frame: Any, source: str) -> Any:
        if "choices" not in frame.columns:  # the original CSV columns
            _require(frame, ["question", *LETTERS, "answer"], source, "MMLU")
            frame = frame.assign(choices=frame[list(LETTERS)].values.tolist()).drop(
                columns=list(LETTERS)
            )
        _require(frame, ["question", "choices", "answer"], source, "MMLU")
        _texts(frame, ["question"], source)
        bad = frame["choices"].map(lambda c: not _is_list(c) or len(c) < 2)
        _row_problem(frame, "choices", bad, "a list of the answer choices", source)
        answers = frame["answer"].map(
            lambda a: LETTERS[a] if isinstance(a, int) and 0 <= a < 4 else str(a).strip()
        )
        bad = ~answers.isin(list(LETTERS))
        if bad.any():
            row = int(bad.to_numpy().argmax())
            found = frame["answer"].iloc[row]
            raise _row_error(row, "answer", f"expected A-D or 0-3, found {found!r}", source)
        out = frame.drop(columns=["question", "answer"])
        out.insert(0, "input", frame["question"].astype(str))
        out.insert(1, "reference", answers)
        out["choices"] = out["choices"].map(lambda c: [str(x) for x in c])
        return out


class HumanEval(Benchmark):
    name = "humaneval"
    canonical = ["input", "reference", "tests", "entry_point"]

    def map(self, frame: Any, source: str) -> Any:
        _require(
            frame,
            ["task_id", "prompt", "canonical_solution", "test", "entry_point"],
            source,
            "HumanEval",
        )
        renamed = frame.rename(
            columns={
                "task_id": "id",
                "prompt": "input",
                "canonical_solution": "reference",
                "test": "tests",
            }
        )
        return renamed[
            ["id", "input", "reference", "tests", "entry_point"]
            + [
                c
                for c in renamed.columns
                if c not in {"id", "input", "reference", "tests", "entry_point"}
            ]
        ]


class NoRobots(Benchmark):
    name = "no_robots"
    canonical = ["input", "reference", "messages", "category"]

    def map(self, frame: Any, source: str) -> Any:
        _require(frame, ["prompt", "prompt_id", "messages"], source, "No Robots")
        _texts(frame, ["prompt"], source)
        bad = frame["messages"].map(
            lambda ms: not _is_list(ms) or not all(isinstance(m, dict) for m in ms)
        )
        _row_problem(frame, "messages", bad, "a list of {role, content} messages", source)

        def last_answer(messages: Any) -> str | None:
            said = [m.get("content") for m in list(messages) if m.get("role") == "assistant"]
            return str(said[-1]) if said else None

        answers = frame["messages"].map(last_answer)
        if answers.isna().any():
            row = int(answers.isna().to_numpy().argmax())
            problem = "no assistant message to use as the reference"
            raise _row_error(row, "messages", problem, source)
        out = frame.drop(columns=["prompt", "prompt_id"])
        out.insert(0, "id", frame["prompt_id"].astype(str))
        out.insert(1, "input", frame["prompt"].astype(str))
        out.insert(2, "reference", answers)
        return out
