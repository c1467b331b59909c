"""Few-shot examples: drawn once per run, with a fixed seed, from another split or a JSONL file.

Why once per run and not per sample: every sample (and every prompt of a sweep trial, which
shares the trial's seed) sees the same solved examples, so two prompts differ only by their
wording, and answers stay cached across re-runs. Why the seed: the draw is the experiment's
``seed`` (a sweep's trial seed) unless ``few_shot.seed`` fixes it, so ``seeds: [1, 2, 3]``
also varies the shots, and a re-run draws the same ones.

A file is JSON Lines (one object a line) or a JSON list of objects, at most ``MAX_FILE_BYTES``,
a regular file inside the working folder (no ``..`` out of it, no symlink on the way), UTF-8.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator, model_validator

from crucible_dagster.common.files import UnreadableFile, read_regular, safe_join
from crucible_dagster.common.jsonsafe import DuplicateJsonKey, duplicate_json_keys
from crucible_dagster.common.templates import TemplateText
from crucible_dagster.experiment.ir.base import SEED_MAX
from crucible_dagster.runtime.stage import StageOptions

if TYPE_CHECKING:
    from crucible_dagster.experiment.ir import Experiment

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_SHOTS = 64
SUFFIXES = (".jsonl", ".json")


class FewShot(StageOptions):
    split: str | None = Field(
        default=None, description="A split of the experiment's dataset to draw the shots from."
    )
    file: str | None = Field(
        default=None, description="A JSONL file (or JSON list) of examples, in the working folder."
    )
    n: int = Field(ge=1, le=MAX_SHOTS, description="How many shots.")
    seed: int | None = Field(
        default=None, ge=0, le=SEED_MAX, description="Default: the experiment's (a trial's) seed."
    )
    assistant: TemplateText = Field(
        default="{{ reference }}",
        description="Jinja2 template of a shot's answer (the assistant turn), over its fields.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> FewShot:
        if (self.split is None) == (self.file is None):
            raise ValueError("expected exactly one of 'split' and 'file'")
        return self

    @field_validator("file")
    @classmethod
    def _suffix(cls, value: str | None) -> str | None:
        if value is not None and not value.endswith(SUFFIXES):
            raise ValueError(
                f"expected a .jsonl or .json file of examples, found {value!r} (other formats: "
                "load them as a split of the experiment's dataset)"
            )
        return value


class FewShotError(ValueError):
    """Shots that cannot be had: the message names the file (and line) or the split."""


#: what a few-shot file that cannot be read is, by common.files.UnreadableFile's problem
_UNREADABLE = {
    "missing": "no such file",
    "open": "cannot open ({detail})",
    "not_regular": "expected a regular file",
    "read": "cannot read ({detail})",
}


def _read_capped(path: Path, shown: str) -> bytes:
    """The file's bytes: a regular file (never blocks on a FIFO), not a symlink, within the cap."""
    try:
        return read_regular(path, MAX_FILE_BYTES)
    except UnreadableFile as exc:
        found = f", found {exc.detail}" if exc.detail else ""
        said = _UNREADABLE.get(exc.problem, f"expected at most {MAX_FILE_BYTES} bytes{found}")
        raise FewShotError(f"few_shot.file: {shown}: {said.format(detail=exc.detail)}") from None


def _parsed_records(text: str, shown: str, lines: bool) -> list[dict[str, Any]]:
    """Objects of a JSONL (``lines``) or JSON-list text; the first bad one located."""
    chunks = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        chunks = [(1, text)]
    records: list[Any] = []
    for number, chunk in chunks:
        try:
            value = json.loads(chunk, object_pairs_hook=duplicate_json_keys)
        except DuplicateJsonKey as exc:
            at = f"line {number}" if lines else "an object"
            raise FewShotError(
                f"few_shot.file: {shown}: {at}: duplicate key {str(exc)!r}"
            ) from None
        except json.JSONDecodeError as exc:
            line = number if lines else exc.lineno
            raise FewShotError(
                f"few_shot.file: {shown}: line {line}: not JSON ({exc.msg})"
            ) from None
        except RecursionError:
            raise FewShotError(
                f"few_shot.file: {shown}: line {number}: nested too deeply"
            ) from None
        if lines:
            records.append((number, value))
        elif isinstance(value, list):
            records += [(f"item {i}", item) for i, item in enumerate(value)]
        else:
            found = type(value).__name__
            raise FewShotError(f"few_shot.file: {shown}: expected a list of objects, found {found}")
    found_records = []
    for where, record in records:
        if not isinstance(record, dict):
            at = f"line {where}" if lines else where
            found = type(record).__name__
            raise FewShotError(f"few_shot.file: {shown}: {at}: expected an object, found {found}")
        found_records.append(record)
    return found_records


def read_shot_file(file: str, root: Path | None = None) -> list[dict[str, Any]]:
    """The examples of a few-shot file, relative to ``root`` (the working folder)."""
    shown = json.dumps(file)[1:-1]  # control characters escaped for one terminal line
    try:
        path = safe_join(root or Path.cwd(), file)
    except PermissionError as exc:
        raise FewShotError(f"few_shot.file: {exc}") from None
    data = _read_capped(path, shown)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FewShotError(f"few_shot.file: {shown}: not UTF-8 (byte {exc.start})") from None
    records = _parsed_records(text, shown, lines=file.endswith(".jsonl"))
    if not records:
        raise FewShotError(f"few_shot.file: {shown}: expected examples, found none (empty)")
    return records


def split_examples(experiment: Experiment | None, split: str, seed: int) -> list[dict[str, Any]]:
    """The rows of another split of the experiment's dataset, through the dataset loader."""
    if experiment is None or experiment.dataset is None:
        raise FewShotError(f"few_shot.split {split!r}: the experiment has no dataset to split")
    from crucible_dagster.datasets import DatasetError, load_dataset

    ref = experiment.dataset.model_copy(update={"split": split})
    try:
        loaded = load_dataset(ref, seed)
    except DatasetError as exc:
        raise FewShotError(f"few_shot.split {split!r}: {exc}") from None
    return [{str(k): v for k, v in row.items()} for row in loaded.examples.to_dict("records")]


def shot_pool(few_shot: FewShot, seed: int, experiment: Experiment | None) -> list[dict[str, Any]]:
    if few_shot.file is not None:
        return read_shot_file(few_shot.file)
    return split_examples(experiment, str(few_shot.split), seed)


def draw_shots(
    few_shot: FewShot, seed: int, experiment: Experiment | None = None
) -> list[dict[str, Any]]:
    """``n`` examples drawn without replacement with ``few_shot.seed`` (else ``seed``)."""
    import numpy as np

    pool = shot_pool(few_shot, seed, experiment)
    if few_shot.n > len(pool):
        where = few_shot.file or f"split {few_shot.split!r}"
        raise FewShotError(f"few_shot.n: {few_shot.n} shots asked, {where} has {len(pool)}")
    draw_seed = few_shot.seed if few_shot.seed is not None else seed
    chosen = np.random.default_rng(draw_seed).choice(len(pool), size=few_shot.n, replace=False)
    return [pool[int(i)] for i in chosen]
