"""The hostile family of prompt templates and few-shot files (predict.options.prompt).

Every case goes through ``crucible validate`` as a user would: exit 1, one line that names the
file, its line, the field and what was expected (for a template: the line in the template), no
traceback, and nothing written anywhere.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from crucible_dagster.evaluation import few_shot as few_shot_module
from tests.hostile.conftest import Cli, snapshot

HEAD = (
    "id: prompts\n"  # 1
    "dataset:\n"  # 2
    "  name: qa\n"  # 3
    "  provider: local\n"  # 4
    "  options: {path: qa.jsonl}\n"  # 5
    "  split: test\n"  # 6
    "  schema: {question: string, reference: string}\n"  # 7
    "pipeline:\n"  # 8
    "  - name: predict\n"  # 9
    "    options:\n"  # 10
    "      prompt:\n"  # 11
)  # the prompt's own keys start at line 12


def experiment(folder: Path, prompt: str, tail: str = "") -> Path:
    """An experiment file whose predict prompt is ``prompt`` (YAML under ``prompt:``)."""
    (folder / "qa.jsonl").write_text(json.dumps({"question": "1+1", "reference": "2"}) + "\n")
    path = folder / "e.yaml"
    indented = "".join(f"        {line}\n" for line in prompt.splitlines())
    path.write_text(HEAD + indented + tail)
    return path


def refused(cli: Cli, folder: Path, path: Path, expected: str) -> str:
    """Validate ``path``: exit 1, the one problem line, nothing written."""
    before = snapshot(folder)
    said = cli("validate", path.name)
    assert said.code == 1, said.text
    problems = [line for line in said.out.splitlines() if line.startswith("e.yaml:")]
    assert len(problems) == 1, said.text
    assert problems[0].startswith(expected), said.text
    assert snapshot(folder) == before
    return problems[0]


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


# (case, prompt as YAML, the problem line's start, a phrase of its message)
TEMPLATE_CASES = [
    (
        "syntax",
        "user: |\n  Q:\n  {{ question }",
        "e.yaml:12: pipeline[0].options.prompt.user: ",
        "template syntax error at line 2 of the template: unexpected '}'",
    ),
    (
        "unclosed_block",
        'user: "{% if question %}x"',
        "e.yaml:12: pipeline[0].options.prompt.user: ",
        "template syntax error at line 1 of the template",
    ),
    (
        "user_wrong_type",
        "user: 3",
        "e.yaml:12: pipeline[0].options.prompt.user: ",
        "expected a string, got 3",
    ),
    (
        "system_wrong_type",
        "user: x\nsystem: [a]",
        "e.yaml:13: pipeline[0].options.prompt.system: ",
        "expected a string",
    ),
    (
        "few_shot_wrong_type",
        "user: x\nfew_shot: lots",
        "e.yaml:13: pipeline[0].options.prompt.few_shot: ",
        "expected a mapping",
    ),
    (
        "n_bool",
        "user: x\nfew_shot: {file: s.jsonl, n: true}",
        "e.yaml:13: pipeline[0].options.prompt.few_shot.n: ",
        "expected an integer, got true",
    ),
    (
        "n_out_of_range",
        "user: x\nfew_shot: {file: s.jsonl, n: 65}",
        "e.yaml:13: pipeline[0].options.prompt.few_shot.n: ",
        "between 1 and 64",
    ),
    (
        "seed_negative",
        "user: x\nfew_shot: {file: s.jsonl, n: 1, seed: -1}",
        "e.yaml:13: pipeline[0].options.prompt.few_shot.seed: ",
        "between 0 and 4294967295",
    ),
    (
        "two_sources",
        "user: x\nfew_shot: {file: s.jsonl, split: train, n: 1}",
        "e.yaml:13: pipeline[0].options.prompt.few_shot: ",
        "expected exactly one of 'split' and 'file'",
    ),
    (
        "unknown_key",
        "usr: x\nuser: y",
        "e.yaml:12: pipeline[0].options.prompt.usr: ",
        "did you mean 'user'?",
    ),
    (
        "bad_name",
        "name: two words\nuser: x",
        "e.yaml:12: pipeline[0].options.prompt.name: ",
        "try 'two_words'",
    ),
    (
        "huge",
        "user: " + "x" * (64 * 1024 + 1),
        "e.yaml:12: pipeline[0].options.prompt.user: ",
        "at most 65536 characters",
    ),
    (
        "deeply_nested",
        "user: '{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}'",
        "e.yaml:12: pipeline[0].options.prompt.user: ",
        "nested too deeply",
    ),
    (
        "dunder_attribute",
        "user: \"{{ ''.__class__.__mro__ }}\"",
        "e.yaml:12: pipeline[0].options.prompt.user: ",
        "line 1 of the template: '__mro__' is refused",
    ),
    (
        "dunder_item",
        "user: |\n  ok\n  {{ question['__globals__'] }}",
        "e.yaml:12: pipeline[0].options.prompt.user: ",
        "line 2 of the template: '__globals__' is refused",
    ),
    (
        "attr_filter",
        "user: \"{{ question|attr('__class__') }}\"",
        "e.yaml:12: pipeline[0].options.prompt.user: ",
        "'__class__' is refused",
    ),
    (
        "global_internals",
        "user: '{{ cycler.__init__.__globals__.os }}'",
        "e.yaml:12: pipeline[0].options.prompt.user: ",
        "'__globals__' is refused",
    ),
    (
        "generator_internals",
        "user: '{{ question.gi_frame.f_globals }}'",
        "e.yaml:12: pipeline[0].options.prompt.user: ",
        "'gi_frame' is refused",
    ),
    (
        "unknown_field",
        "user: |\n  Q: {{ question }}\n  Hint: {{ hint }}",
        "e.yaml:12: pipeline[0].options.prompt.user: ",
        "line 2 of the template reads 'hint', which the examples do not have (their fields: question, reference)",
    ),
    (
        "unknown_system_field",
        "user: x\nsystem: '{{ persona }}'",
        "e.yaml:13: pipeline[0].options.prompt.system: ",
        "reads 'persona'",
    ),
    (
        "shots_from_the_evaluated_split",
        "user: x\nfew_shot: {split: test, n: 1}",
        "e.yaml:13: pipeline[0].options.prompt.few_shot.split: ",
        "the split being evaluated ('test')",
    ),
    (
        "not_a_prompt",
        "[1, 2]",
        "e.yaml:11: pipeline[0].options.prompt: ",
        "expected a template (text) or a mapping",
    ),
]


@pytest.mark.parametrize(
    ("prompt", "start", "phrase"),
    [c[1:] for c in TEMPLATE_CASES],
    ids=[c[0] for c in TEMPLATE_CASES],
)
def test_a_bad_template_is_one_located_problem(
    cli: Cli, folder: Path, prompt: str, start: str, phrase: str
) -> None:
    line = refused(cli, folder, experiment(folder, prompt), start)
    assert phrase in line, line


def test_control_characters_in_a_template_are_escaped_on_the_terminal(
    cli: Cli, folder: Path
) -> None:
    line = refused(
        cli,
        folder,
        experiment(folder, 'user: "\\e[31m{{ \\e }}"'),
        "e.yaml:12: pipeline[0].options.prompt.user: ",
    )
    assert "\x1b" not in line and "template syntax error" in line


def test_the_prompt_and_the_backend_both_setting_a_system_message_is_refused(
    cli: Cli, folder: Path
) -> None:
    path = experiment(
        folder,
        "user: '{{ question }}'\nsystem: Be brief.",
        "backend: {id: openai_compatible, endpoint_url: 'http://127.0.0.1:9/v1', "
        "options: {model: m, system: Be kind.}}\n",
    )
    line = refused(cli, folder, path, "e.yaml:13: pipeline[0].options.prompt.system: ")
    assert "backend.options.system too: keep one" in line


def test_a_benchmark_s_columns_are_the_fields_a_template_may_read(cli: Cli, folder: Path) -> None:
    path = folder / "e.yaml"
    path.write_text(
        "id: gsm\n"
        "dataset: {name: gsm8k}\n"
        "pipeline:\n"
        "  - name: predict\n"
        "    options:\n"
        "      prompt: {user: 'Q: {{ question }}', few_shot: {split: train, n: 2}}\n"
    )
    line = refused(cli, folder, path, "e.yaml:6: pipeline[0].options.prompt.user: ")
    assert (
        "reads 'question', which the examples do not have (their fields: input, reference, " in line
    )
    path.write_text(path.read_text().replace("question", "input"))
    assert cli("validate", path.name).code == 0  # gsm8k's test split, shots from its train split


GRID = (
    "id: prompts\n"  # 1
    "dataset: {name: qa, provider: local, options: {path: qa.jsonl}, split: test,"
    " schema: {question: string, reference: string}}\n"  # 2
    "parameters:\n"  # 3
    "  prompt:\n"  # 4
    "    - {name: terse, user: '{{ question }}'}\n"  # 5
    "{second}"  # 6-
    "pipeline:\n"
    "  - name: predict\n"
    "    options: {prompt: '${params.prompt}'}\n"
)

GRID_CASES = [
    (
        "syntax",
        "    - name: wordy\n      user: '{{ question '\n",
        "e.yaml:7: parameters.prompt[1].user: template syntax error at line 1 of the template",
    ),
    (
        "unknown_field",
        "    - name: wordy\n      user: |\n        Please answer:\n        {{ questoin }}\n",
        "e.yaml:7: parameters.prompt[1].user: line 2 of the template reads 'questoin'",
    ),
    (
        "sandbox",
        "    - name: evil\n      user: \"{{ ''.__class__ }}\"\n",
        "e.yaml:7: parameters.prompt[1].user: line 1 of the template: '__class__' is refused",
    ),
    (
        "no_name",
        "    - user: 'Q: {{ question }}'\n",
        "e.yaml:6: parameters.prompt[1].name: a prompt of a sweep needs a name",
    ),
    (
        "same_name",
        "    - {name: terse, user: 'Q: {{ question }}'}\n",
        "e.yaml:6: parameters.prompt[1].name: 'terse' names parameters.prompt[0] too",
    ),
    (
        "wrong_type",
        "    - {name: n, user: 'x', system: 4}\n",
        "e.yaml:6: parameters.prompt[1].system: expected a string",
    ),
]


@pytest.mark.parametrize(
    ("second", "start"), [c[1:] for c in GRID_CASES], ids=[c[0] for c in GRID_CASES]
)
def test_every_prompt_of_a_sweep_is_checked_at_its_own_line(
    cli: Cli, folder: Path, second: str, start: str
) -> None:
    (folder / "qa.jsonl").write_text(json.dumps({"question": "1+1", "reference": "2"}) + "\n")
    path = folder / "e.yaml"
    path.write_text(GRID.replace("{second}", second))
    refused(cli, folder, path, start)


def test_a_grid_of_good_prompts_validates(cli: Cli, folder: Path) -> None:
    (folder / "qa.jsonl").write_text(json.dumps({"question": "1+1", "reference": "2"}) + "\n")
    path = folder / "e.yaml"
    path.write_text(
        GRID.replace("{second}", "    - {name: polite, user: 'Please: {{ question }}'}\n")
    )
    said = cli("validate", path.name)
    assert said.code == 0, said.text


# --- the few-shot file ---------------------------------------------------------------------

SHOTS = "user: '{{ question }}'\nfew_shot: {file: %s, n: 1}"
FILE_FIELD = "e.yaml:13: pipeline[0].options.prompt.few_shot.file: "


def write(folder: Path, name: str, data: bytes) -> None:
    (folder / name).write_bytes(data)


FILE_CASES = [
    (
        "bad_json_line",
        "s.jsonl",
        b'{"question": "1+1", "reference": "2"}\n{"question": \n',
        "s.jsonl: line 2: not JSON",
    ),
    (
        "line_not_an_object",
        "s.jsonl",
        b"[1, 2]\n",
        "s.jsonl: line 1: expected an object, found list",
    ),
    (
        "duplicate_key",
        "s.jsonl",
        b'{"question": "a", "question": "b"}\n',
        "line 1: duplicate key 'question'",
    ),
    (
        "json_not_a_list",
        "s.json",
        b'{"question": "a"}',
        "s.json: expected a list of objects, found dict",
    ),
    (
        "json_item_not_an_object",
        "s.json",
        b'[{"question": "a"}, 3]',
        "s.json: item 1: expected an object, found int",
    ),
    (
        "deeply_nested",
        "s.jsonl",
        b"[" * 200000 + b"]" * 200000 + b"\n",
        "line 1: nested too deeply",
    ),
    ("empty", "s.jsonl", b"", "s.jsonl: expected examples, found none (empty)"),
    ("blank_lines_only", "s.jsonl", b"\n \n", "found none (empty)"),
    ("non_utf8", "s.jsonl", b'{"question": "caf\xe9"}\n', "s.jsonl: not UTF-8 (byte 17)"),
    ("wrong_suffix", "s.csv", b"question\n1+1\n", "expected a .jsonl or .json file"),
]


@pytest.mark.parametrize(
    ("name", "data", "phrase"), [c[1:] for c in FILE_CASES], ids=[c[0] for c in FILE_CASES]
)
def test_a_bad_few_shot_file_is_one_located_problem(
    cli: Cli, folder: Path, name: str, data: bytes, phrase: str
) -> None:
    write(folder, name, data)
    line = refused(cli, folder, experiment(folder, SHOTS % name), FILE_FIELD)
    assert phrase in line, line


def test_a_huge_few_shot_file_is_refused_by_its_size(
    cli: Cli, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(few_shot_module, "MAX_FILE_BYTES", 100)
    write(folder, "s.jsonl", (json.dumps({"question": "q", "reference": "r"}) + "\n").encode() * 10)
    line = refused(cli, folder, experiment(folder, SHOTS % "s.jsonl"), FILE_FIELD)
    assert "expected at most 100 bytes, found 360" in line


def test_more_shots_than_the_file_has(cli: Cli, folder: Path) -> None:
    write(folder, "s.jsonl", b'{"question": "q", "reference": "r"}\n')
    path = experiment(folder, "user: '{{ question }}'\nfew_shot: {file: s.jsonl, n: 2}")
    line = refused(cli, folder, path, "e.yaml:13: pipeline[0].options.prompt.few_shot.n: ")
    assert "2 shots asked, the file has 1" in line


def test_a_shot_missing_a_field_the_template_reads(cli: Cli, folder: Path) -> None:
    write(folder, "s.jsonl", b'{"question": "q", "answer": "r"}\n')
    path = experiment(folder, SHOTS % "s.jsonl")  # the answer template reads 'reference'
    line = refused(cli, folder, path, "e.yaml:13: pipeline[0].options.prompt.few_shot.assistant: ")
    assert (
        "reads 'reference', which the few-shot examples do not have (their fields: answer, question)"
        in line
    )


def test_a_fifo_is_refused_without_blocking(cli: Cli, folder: Path) -> None:
    os.mkfifo(folder / "s.jsonl")
    line = refused(cli, folder, experiment(folder, SHOTS % "s.jsonl"), FILE_FIELD)
    assert "s.jsonl: expected a regular file" in line


def test_a_directory_is_refused(cli: Cli, folder: Path) -> None:
    (folder / "s.jsonl").mkdir()
    line = refused(cli, folder, experiment(folder, SHOTS % "s.jsonl"), FILE_FIELD)
    assert "expected a regular file" in line


def test_a_missing_file(cli: Cli, folder: Path) -> None:
    line = refused(cli, folder, experiment(folder, SHOTS % "nope.jsonl"), FILE_FIELD)
    assert "nope.jsonl: no such file" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_an_unreadable_file(cli: Cli, folder: Path) -> None:
    write(folder, "s.jsonl", b'{"question": "q", "reference": "r"}\n')
    (folder / "s.jsonl").chmod(0)
    line = refused(cli, folder, experiment(folder, SHOTS % "s.jsonl"), FILE_FIELD)
    assert "cannot open" in line


@pytest.mark.parametrize(
    "where",
    ["../outside.jsonl", "sub/../../outside.jsonl", "/etc/passwd.jsonl", "link/s.jsonl", "s.jsonl"],
)
def test_a_path_out_of_the_working_folder_is_refused(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    folder = tmp_path / "project"
    (folder / "sub").mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    write(tmp_path, "outside.jsonl", b'{"question": "q", "reference": "r"}\n')
    write(outside, "s.jsonl", b'{"question": "q", "reference": "r"}\n')
    (folder / "link").symlink_to(outside)
    if where == "s.jsonl":  # the file itself a symlink out
        (folder / "s.jsonl").symlink_to(outside / "s.jsonl")
    monkeypatch.chdir(folder)
    line = refused(cli, folder, experiment(folder, SHOTS % where), FILE_FIELD)
    assert re.search(r"escapes|goes through a symlink", line), line
