"""The score stage's scorers as settings (issue 24, section 3): each bad scorer option is one
line naming the file, the line of its list item and the field, with what was expected and what
was found; ``validate`` and run start refuse the same ones, and nothing is called or written.
(Scorer ids as dotted paths are the dotted-path family's: test_dotted_paths.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from crucible_dagster.experiment.loading import experiment_from_document, read_document
from crucible_dagster.runtime.runner import run
from tests.hostile.conftest import Cli, snapshot

HEAD = "id: scoring\npipeline:\n  - name: score\n    options:\n      scorers:\n"
#: (case, the list item's YAML, field, phrase)
CASES = [
    ("unknown_key", "{id: exact_match, options: {case_sensitiv: true}}",
     "scorers[0].options: case_sensitiv", "did you mean 'case_sensitive'?"),
    ("bool_for_number", "{id: numeric, options: {abs_tol: true}}",
     "scorers[0].options: abs_tol", "expected a number, got true"),
    ("out_of_range", "{id: numeric, options: {rel_tol: 2}}",
     "scorers[0].options: rel_tol", "expected a number in [0, 1), got 2"),
    ("negative", "{id: numeric, options: {abs_tol: -1}}",
     "scorers[0].options: abs_tol", "expected a number >= 0, got -1"),
    ("yaml11_word", "{id: exact_match, options: {whitespace: off}}",
     "scorers[0].options: whitespace", "YAML reads unquoted yes, no, on and off"),
    ("bad_choice", "{id: bleu, options: {tokenize: moses}}",
     "scorers[0].options: tokenize", "expected one of: 13a, none, intl, char, zh, got 'moses'"),
    ("bad_regex", "{id: regex, options: {pattern: '(unclosed'}}",
     "scorers[0].options: pattern", "not a regular expression"),
    ("unknown_id", "{id: exact_mach}", "scorers[0].id", "did you mean 'exact_match'?"),
    ("bad_name", "{name: 'a b', id: bleu}", "scorers[0].name", "letters, digits and _"),
    ("name_injection", "{name: '=cmd|x', id: bleu}", "scorers[0].name", "letters, digits and _"),
    ("template_syntax", "{id: judge, options: {rubric: '{{ x', backend: {id: noop}}}",
     "scorers[0].options: rubric", "template syntax error at line 1 of the template"),
    ("template_huge", "{id: judge, options: {rubric: '" + "x" * 65_537 + "', backend: {id: noop}}}",
     "scorers[0].options: rubric", "at most 65536 characters"),
    ("template_unknown_name", "{id: judge, options: {rubric: 'Q {{ question }}', backend: {id: noop}}}",
     "scorers[0].options: rubric", "reads 'question', which a rubric does not have"),
    ("template_sandbox", "{id: judge, options: {rubric: '{{ x.__globals__ }}', backend: {id: noop}}}",
     "scorers[0].options: rubric", "'__globals__' is refused"),
    ("system_template", "{id: judge, options: {rubric: x, system: '{% if %}', backend: {id: noop}}}",
     "scorers[0].options: system", "template syntax error"),
    ("judge_scale", "{id: judge, options: {rubric: x, backend: {id: noop}, scale: [5, 1]}}",
     "scorers[0].options: scale", "expected [lowest, highest]"),
    ("judge_backend_option", "{id: judge, options: {rubric: x, backend: {id: openai_compatible, "
     "options: {model: m, concurrency: 0}}}}", "scorers[0].options: backend: options.concurrency",
     "greater than or equal to 1 (found 0)"),
]  # fmt: skip


def write(folder: Path, item: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "exp.yaml"
    path.write_text(HEAD + f"        - {item}\n")
    return path


@pytest.mark.parametrize(
    ("item", "field", "phrase"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_validate_names_the_file_the_items_line_and_the_field(
    cli: Cli, tmp_path: Path, item: str, field: str, phrase: str
) -> None:
    path = write(tmp_path / "exps", item)
    before = snapshot(tmp_path)
    said = cli("validate", path)
    assert said.code == 1, said.text
    (line,) = said.out.splitlines()
    assert line.startswith(f"{path}:6: pipeline[0].options.{field}"), line
    assert phrase in line, line
    assert "Traceback" not in said.text
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("item", "field", "phrase"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_run_start_refuses_the_same_before_any_stage(
    tmp_path: Path, item: str, field: str, phrase: str
) -> None:
    path = write(tmp_path / "exps", item)
    experiment = experiment_from_document(read_document(path))
    result = run(experiment, artifacts_root=str(tmp_path / "artifacts"), run_id="r")
    assert result.failure is not None and phrase in result.failure.message
    assert result.status == "failed"


def test_the_one_scorer_form_and_the_list_do_not_mix(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(
        "id: scoring\npipeline:\n  - name: score\n    options:\n      metric: contains\n"
        "      scorers: [{id: bleu}]\n"
    )
    said = cli("validate", path)
    assert said.code == 1 and len(said.out.splitlines()) == 1, said.text
    assert "metric is the one-scorer form: with scorers, name the scorer there" in said.out
