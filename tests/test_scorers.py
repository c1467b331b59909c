"""Each scorer against hand-computed values or its library's own published ones.

sacrebleu: its README's corpus example (BLEU 48.53, chrF2 59.73) and the sentence values of
its tests (test_sentence_bleu.py, test_chrf.py); rouge-score: the values of its tests
(rouge_scorer_test.py) and its README example, computed by hand; token F1: SQuAD's
evaluation script's definition, computed by hand.
"""

from __future__ import annotations

from typing import Any

import pytest

from crucible_dagster.scorers.base import Sample
from crucible_dagster.scorers.judge import parse_score
from crucible_dagster.scorers.numeric import numbers_in
from crucible_dagster.scorers.registry import ScorerError, ScorerRef, build_scorer, scorer_class


def score(scorer_id: str, prediction: Any, reference: Any, **options: Any) -> float | None:
    scorer = build_scorer(ScorerRef(id=scorer_id, options=options))
    (scored,) = scorer.score_all([Sample("v", "s", prediction, reference)])
    assert scored.error is None, scored.error
    return scored.value


def problem(scorer_id: str, prediction: Any, reference: Any, **options: Any) -> str:
    scorer = build_scorer(ScorerRef(id=scorer_id, options=options))
    (scored,) = scorer.score_all([Sample("v", "s", prediction, reference)])
    assert scored.value is None and scored.error is not None
    return scored.error


# --- exact_match, contains, regex ----------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "reference", "options", "expected"),
    [
        ("  Paris ", "paris", {}, 1.0),  # the old metric's defaults: ignore case, strip
        ("Paris", "paris", {"case_sensitive": True}, 0.0),
        ("New  York", "new york", {}, 0.0),
        ("New  York", "new york", {"whitespace": "collapse"}, 1.0),
        (" Paris", "Paris", {"whitespace": "keep"}, 0.0),
        ("Paris!", "paris", {}, 0.0),
        ("Paris!", "paris", {"punctuation": True}, 1.0),
        ("«Paris»", "paris", {"punctuation": True}, 1.0),  # Unicode punctuation too
        ("The Eiffel tower", "eiffel tower", {}, 0.0),
        ("The Eiffel tower", "eiffel tower", {"articles": True}, 1.0),
        ("eat the cake", "eat cake", {"articles": True}, 1.0),
        ("theory", "theory", {"articles": True}, 1.0),  # 'the' inside a word stays
        ("Rome", ["paris", "rome"], {}, 1.0),  # any of several references
        (3, 3.0, {}, 1.0),
    ],
)
def test_exact_match_normalisation(
    prediction: Any, reference: Any, options: dict[str, Any], expected: float
) -> None:
    assert score("exact_match", prediction, reference, **options) == expected


def test_contains_and_regex() -> None:
    assert score("contains", "The answer is PARIS.", "paris") == 1.0
    assert score("contains", "The answer is Rome.", "paris") == 0.0
    assert score("regex", "answer: B", None, pattern=r"\bB\b") == 1.0
    assert score("regex", "answer: B!", None, pattern=r"answer: [A-D]", match="fullmatch") == 0.0
    assert score("regex", "ANSWER: b", None, pattern=r"answer: b", ignore_case=True) == 1.0
    assert score("regex", "2024-01-31", r"\d{4}-\d{2}-\d{2}") == 1.0  # the reference as pattern
    assert "not a regular expression" in problem("regex", "x", "(unclosed")
    assert "not a pattern" in problem("regex", "x", 42)


# --- numeric --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("1,234", [1234.0]),
        ("$5", [5.0]),
        ("-3.5", [-3.5]),
        ("1e3", [1000.0]),
        ("costs -$5.50", [-5.5]),
        ("1,234,567.25 units", [1234567.25]),
        ("1,2345", [1.0, 2345.0]),  # not a thousands group
        ("x-1 and 8 - 3 = 5", [1.0, 8.0, 3.0, 5.0]),  # a hyphen in a word is not a sign
        (".5 or 2.5e-3", [0.5, 0.0025]),
        ("no number", []),
    ],
)
def test_numbers_are_read_as_a_grader_would(text: str, numbers: list[float]) -> None:
    assert numbers_in(text) == numbers


def test_numeric_takes_the_last_number_and_reads_a_gsm8k_reference() -> None:
    answer = "Natalia sold 48 clips in April and 24 in May, so 48 + 24 = 72."
    assert score("numeric", answer, "She sold 48/2 = 24 in May.\n#### 72") == 1.0
    assert score("numeric", answer, "#### 72", extract="first") == 0.0
    assert score("numeric", "The total is $1,234.", "1234") == 1.0
    assert score("numeric", "I cannot tell.", "#### 7") == 0.0  # no answer: wrong, not an error
    assert score("numeric", "The answer is 12, i.e. 3 dozens", "12",
                 extract="pattern", pattern=r"answer is (\S+)") == 1.0  # fmt: skip
    assert "has no number" in problem("numeric", "42", "forty-two")


def test_numeric_tolerances_follow_math_isclose() -> None:
    assert score("numeric", "3.14", "3.14159") == 0.0
    assert score("numeric", "3.14", "3.14159", abs_tol=0.01) == 1.0
    assert score("numeric", "101", "100", rel_tol=0.01) == 1.0  # 1 <= 0.01 * max(101, 100)
    assert score("numeric", "102", "100", rel_tol=0.01) == 0.0
    assert score("numeric", 0.0, 0.0) == 1.0


def test_numeric_options_are_checked() -> None:
    with pytest.raises(ValueError, match="options\n  Value error, extract: pattern and pattern go"):
        ScorerRef(id="numeric", options={"pattern": "(x)"})
    with pytest.raises(ValueError, match=r"pattern: .*at most one group"):
        ScorerRef(id="numeric", options={"extract": "pattern", "pattern": "(a)(b)"})


# --- token_f1 (SQuAD) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        ("the Denver Broncos", "Denver Broncos", 1.0),  # articles and case go
        ("Denver Broncos won", "Denver Broncos", 0.8),  # P 2/3, R 1: 2·(2/3)/(5/3)
        ("Broncos", "Denver Broncos", 2 / 3),  # P 1, R 1/2
        ("Carolina Panthers", "Denver Broncos", 0.0),
        ("Santa Clara, California", "Santa Clara", 0.8),  # punctuation goes
        ("Broncos", ["Carolina", "Denver Broncos"], 2 / 3),  # the best reference
        ("the", "", 1.0),  # both empty after normalisation: equal
        ("a b", "", 0.0),
    ],
)
def test_token_f1_is_squads(prediction: str, reference: Any, expected: float) -> None:
    assert score("token_f1", prediction, reference) == pytest.approx(expected)


# --- bleu and chrf (sacrebleu) --------------------------------------------------------------

README_SYS = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
README_REFS = [
    ["The dog bit the man.", "The dog had bit the man."],
    ["It was not unexpected.", "No one was surprised."],
    ["The man bit him first.", "The man had bitten the dog."],
]


def test_corpus_bleu_and_chrf_are_sacrebleus_readme_values() -> None:
    bleu = build_scorer(ScorerRef(id="bleu"))
    chrf = build_scorer(ScorerRef(id="chrf"))
    assert bleu.corpus(README_SYS, README_REFS) == pytest.approx(48.53, abs=0.005)
    assert chrf.corpus(README_SYS, README_REFS) == pytest.approx(59.73, abs=0.005)


# sacrebleu's test/test_sentence_bleu.py (effective order on, as the scorer's default)
SENTENCE_REF = "producţia de zahăr brut se exprimă în zahăr alb;"
SENTENCE_SYS = "Producția de zahăr primă va fi exprimată în ceea ce privește zahărul alb;"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, 8.493),
        ({"smooth_method": "none"}, 0.0),
        ({"smooth_method": "floor"}, 4.51688),
        ({"smooth_method": "floor", "smooth_value": 0.5}, 10.10),
        ({"smooth_method": "add-k"}, 14.882),
        ({"smooth_method": "add-k", "smooth_value": 2}, 21.389),
        ({"tokenize": "none"}, 7.347),
        ({"tokenize": "intl"}, 8.493),
        ({"tokenize": "char"}, 40.8759),
        ({"tokenize": "char", "lowercase": True}, 42.0267),
    ],
)
def test_sentence_bleu_is_sacrebleus_test_value(options: dict[str, Any], expected: float) -> None:
    assert score("bleu", SENTENCE_SYS, SENTENCE_REF, **options) == pytest.approx(expected, abs=1e-3)


# sacrebleu's test/test_chrf.py, sentence level (eps smoothing)
@pytest.mark.parametrize(
    ("hypothesis", "reference", "expected"),
    [
        (
            "Co nás nejvíc trápí, protože lékaři si vybírají, kdo bude žít a kdo zemře.",
            "Nejvíce smutní jsme z toho, že musíme rozhodovat o tom, kdo bude žít a kdo zemře.",
            39.14078509,
        ),
        (
            "Nebo prostě nemají vybavení, které by jim pomohlo, uvedli lékaři.",
            "A někdy nemáme ani potřebný materiál, abychom jim pomohli, popsali lékaři.",
            31.22557079,
        ),
        (
            "Lapali po dechu, jejich životy skončily dřív, než skutečně začaly.",
            "Lapali po dechu a pak jejich život skončil - dřív, než skutečně mohl začít, "
            "připomněli.",
            57.15704367,
        ),
    ],
)
def test_sentence_chrf_is_sacrebleus_test_value(
    hypothesis: str, reference: str, expected: float
) -> None:
    found = score("chrf", hypothesis, [reference], eps_smoothing=True)
    assert found == pytest.approx(expected, abs=1e-4)


def test_chrf_plus_plus_and_identical_text() -> None:
    same = "Niemand hat die Absicht, eine Mauer zu errichten"
    assert score("chrf", same, same, beta=3, eps_smoothing=True) == pytest.approx(100.0)
    assert score("chrf", same, same, word_order=2) == pytest.approx(100.0)


# --- rouge (rouge-score) ---------------------------------------------------------------------


# rouge-score imports nltk (a few seconds the first time): these are marked slow
@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "prediction", "target", "precision", "recall", "fmeasure"),
    [  # rouge-score's rouge_scorer_test.py (score(target, prediction))
        ("rouge1", "testing", "testing one two", 1, 1 / 3, 1 / 2),
        ("rouge2", "testing one", "testing one two", 1, 1 / 2, 2 / 3),
        ("rougeL", "testing one", "testing one two", 1, 2 / 3, 4 / 5),
        ("rougeL", "testing two", "testing one two", 1, 2 / 3, 4 / 5),
        ("rouge1", "", "testing one two", 0, 0, 0),
    ],
)
def test_rouge_is_rouge_scores_test_value(
    kind: str, prediction: str, target: str, precision: float, recall: float, fmeasure: float
) -> None:
    for measure, expected in (("precision", precision), ("recall", recall), ("fmeasure", fmeasure)):
        found = score("rouge", prediction, target, type=kind, measure=measure)
        assert found == pytest.approx(expected), measure


@pytest.mark.slow
def test_rouge_readme_example_by_hand() -> None:
    """rouge-score's README example: target 'The quick brown fox jumps over the lazy dog' (9
    tokens), prediction 'The quick brown dog jumps on the log.' (8). Unigrams in common: the ×2,
    quick, brown, dog, jumps = 6, so P 6/8, R 6/9, F 12/17; the longest common subsequence is
    'the quick brown jumps the' (5), so P 5/8, R 5/9, F 10/17."""
    target = "The quick brown fox jumps over the lazy dog"
    prediction = "The quick brown dog jumps on the log."
    found = score("rouge", prediction, target, type="rouge1", use_stemmer=True)
    assert found == pytest.approx(12 / 17)
    assert score("rouge", prediction, target, type="rougeL", use_stemmer=True) == pytest.approx(
        10 / 17
    )
    assert score("rouge", prediction, ["unrelated words", target], type="rougeL") == pytest.approx(
        10 / 17
    )


# --- json_match ------------------------------------------------------------------------------


def test_json_match_reads_wrapped_json_and_compares_fields() -> None:
    wrapped = 'Sure!\n```json\n{"city": "Paris", "population": 2100000, "extra": 1}\n```'
    reference = '{"city": "paris", "population": 2.1e6}'
    assert score("json_match", wrapped, reference, fields=["city", "population"]) == 0.0
    assert score("json_match", wrapped, reference, fields=["population"]) == 1.0  # 2100000 == 2.1e6
    assert score("json_match", wrapped, reference,
                 fields=["city", "population"], case_sensitive=False) == 1.0  # fmt: skip
    assert score("json_match", wrapped, reference, fields=["city", "population"],
                 aggregate="fraction") == 0.5  # fmt: skip
    assert score("json_match", wrapped, reference, extract=False, fields=["population"]) == 0.0
    nested = '{"result": {"items": [3, {"name": "x"}]}}'
    assert score("json_match", nested, {"result": {"items": [3, {"name": "x"}]}},
                 fields=["result.items.1.name", "result.items.0"]) == 1.0  # fmt: skip
    assert score("json_match", "[1, 2]", "[1, 2]") == 1.0  # a whole array, one reference
    assert score("json_match", "not json", '{"a": 1}') == 0.0
    assert score("json_match", '{"a": true}', '{"a": 1}', fields=["a"]) == 0.0  # true is not 1
    assert "the reference is not JSON" in problem("json_match", "{}", "{oops")
    assert "has no field 'b'" in problem("json_match", '{"b": 1}', '{"a": 1}', fields=["b"])


def test_json_match_fraction_is_not_a_binary_score() -> None:
    assert build_scorer(ScorerRef(id="json_match")).binary
    assert not build_scorer(ScorerRef(id="json_match", options={"aggregate": "fraction"})).binary


# --- the judge's answer ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("8", 8.0),
        ("8.", 8.0),
        ("Score: 7", 7.0),
        ("The answer is mostly right. Rating = 6.5/10", 6.5),
        ('{"score": 9, "reason": "good"}', 9.0),
        ('Here you go: {"score": "4"}', 4.0),
        ("I would give it a 7/10 overall.", 7.0),
        ("I would give it 7 out of 10.", 7.0),
        ("Step 1 is fine, step 2 too. Score: 3", 3.0),  # the labelled one, not the first number
        ("score: 11", None),  # outside the scale
        ("It is good.", None),
        ("", None),
    ],
)
def test_a_judges_answer_is_read_robustly(answer: str, expected: float | None) -> None:
    assert parse_score(answer, (1.0, 10.0)) == expected


def test_a_judges_pattern_of_ones_own() -> None:
    assert parse_score("verdict [[4]] (of 5)", (1, 5), r"\[\[(.*?)\]\]") == 4.0
    assert parse_score("verdict 4", (1, 5), r"\[\[(.*?)\]\]") is None


# --- the registry ----------------------------------------------------------------------------


def test_an_unknown_id_is_refused_with_a_suggestion_and_the_choices() -> None:
    with pytest.raises(ScorerError, match=r"^id: did you mean 'exact_match'\? expected a scorer"):
        scorer_class("exact_mach")
    with pytest.raises(ScorerError, match=r"absolute_error, bleu, chrf, contains"):
        scorer_class("zzz")


def test_options_are_checked_by_the_scorers_own_model() -> None:
    with pytest.raises(ValueError, match=r"options\s*\n?.*tokenize"):
        ScorerRef(id="bleu", options={"tokenize": "moses"})
    with pytest.raises(ValueError, match=r"did you mean .case_sensitive.\?"):
        ScorerRef(id="exact_match", options={"case_sensitiv": True})
    with pytest.raises(ValueError, match="true/false is not a number"):
        ScorerRef(id="numeric", options={"abs_tol": True})
    with pytest.raises(ValueError, match="letters, digits and _"):
        ScorerRef(name="my score", id="bleu")
