"""The bundled server's simulated models: the GSM8K questions the project ships are answered
right on a subset fixed by a hash, so two models differ, and the same every time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crucible_dagster.contrib.simulated_answers import (
    FEW_SHOT_BONUS,
    MODEL_ACCURACY,
    default_answer,
    read_answer_key,
    shipped_answer_key,
)
from crucible_dagster.datasets.benchmarks import SAMPLES

QA_DEMO = SAMPLES / "gsm8k" / "qa_demo.jsonl"


def questions() -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in QA_DEMO.read_text(encoding="utf-8").splitlines()]
    return [(r["question"], r["answer"].rsplit("####", 1)[1].strip()) for r in rows]


def right(model: str, system: str = "") -> list[bool]:
    marks = []
    for question, reference in questions():
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": f"Question: {question}\nAnswer:"})
        answer = default_answer(model, messages)
        assert answer.startswith("The answer is ") and len(answer.split()) == 4
        marks.append(answer == f"The answer is {reference}.")
    return marks


def test_the_key_holds_every_shipped_question_with_its_number() -> None:
    key = shipped_answer_key()
    assert len(key) == 53  # 10 test + 3 train + 40 qa_demo
    assert all(key[q] == ref for q, ref in questions())
    assert key["Lily has 4 apples and buys 5 more. How many apples does she have?"] == "9"


def test_the_large_model_is_right_more_often_and_on_a_different_subset() -> None:
    small, large = right("qa-small"), right("qa-large")
    assert sum(large) > sum(small)
    # roughly their accuracies (40 draws of a fixed hash: within 4 standard errors)
    for marks, model in ((small, "qa-small"), (large, "qa-large")):
        p = MODEL_ACCURACY[model]
        assert abs(sum(marks) / 40 - p) < 4 * (p * (1 - p) / 40) ** 0.5
    assert any(s and not big for s, big in zip(small, large, strict=True))  # not a subset


def test_the_same_messages_give_the_same_answer_and_a_prompt_reshuffles() -> None:
    assert right("qa-small") == right("qa-small")
    assert right("qa-small", system="Think step by step.") != right("qa-small")


def test_a_wrong_answer_is_a_different_number() -> None:
    for question, reference in questions():
        answer = default_answer("qa-small", [{"role": "user", "content": question}])
        number = answer.removeprefix("The answer is ").removesuffix(".")
        assert float(number) == float(reference) or 1 <= abs(float(number) - float(reference)) <= 9


def test_worked_examples_raise_the_accuracy() -> None:
    assert FEW_SHOT_BONUS > 0
    shot = [
        {"role": "user", "content": "Tom had 50 marbles and lost 12. How many does he have now?"},
        {"role": "assistant", "content": "The answer is 38."},
    ]
    plain = sum(
        default_answer("qa-small", [{"role": "user", "content": q}]) == f"The answer is {r}."
        for q, r in questions()
    )
    shots = sum(
        default_answer("qa-small", [*shot, {"role": "user", "content": q}]) == f"The answer is {r}."
        for q, r in questions()
    )
    # the same hash under a higher threshold: every question right before is still right
    assert shots >= plain


def test_anything_else_is_answered_as_before() -> None:
    assert default_answer("m", [{"role": "user", "content": "2+3"}]) == "5"
    assert default_answer("m", [{"role": "user", "content": "hello"}]) == "echo: hello"
    assert default_answer("m", [{"role": "user", "content": "is it?"}]) in {"yes", "no"}


def test_an_answer_key_file_that_is_not_gsm8k_is_refused_by_line(tmp_path: Path) -> None:
    path = tmp_path / "key.jsonl"
    path.write_text('{"question": "q", "answer": "#### 1,000"}\n\n{"question": "x"}\n')
    with pytest.raises(ValueError, match=r"key.jsonl: line 3: expected GSM8K's"):
        read_answer_key([path])
    path.write_text(
        '{"question": "q", "answer": "#### 1,000"}\n{"question": "r", "answer": "no"}\n'
    )
    assert read_answer_key([path]) == {"q": "1000"}  # a row without '####' is skipped
