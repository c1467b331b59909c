"""Scorers of n-gram overlap with the reference: ``bleu`` and ``chrf`` (sacrebleu) and ``rouge``
(rouge-score), each on its library's own scale (BLEU and chrF 0-100, ROUGE 0-1), so a number
here is the number the library's documentation and papers report.

BLEU and chrF are corpus metrics: beside each sample's sentence score (what the bench pairs),
each variant gets the corpus score of all its samples in the run's metrics. A sample may have
several references (a list); sacrebleu takes them all, ROUGE the best of them. Both libraries
are the ``eval`` extra: a file that names these scorers without it installed is told so at
``validate``, by name.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import Field, model_validator
from typing_extensions import Self

from crucible_dagster.scorers.base import Scorer, ScorerOptions, references_of


class LibraryOptions(ScorerOptions):
    """Options of a scorer on a library of the ``eval`` extra: a file that names the scorer
    without the library installed is told so at ``validate``, by name."""

    #: (the module the scorer imports, the package that installs it)
    library: ClassVar[tuple[str, str]]

    @model_validator(mode="after")
    def _installed(self) -> Self:
        module, package = self.library
        if importlib.util.find_spec(module) is None:
            raise ValueError(
                f"needs the {package!r} package: pip install 'crucible_dagster[eval]' "
                f"(or pip install {package})"
            )
        return self


def _texts(reference: Any) -> list[str]:
    return ["" if r is None else str(r) for r in references_of(reference)]


def _streams(references: Sequence[Any]) -> list[list[str]]:
    """Per-sample reference lists as sacrebleu's reference streams (a missing one is '')."""
    per_sample = [_texts(r) for r in references]
    width = max((len(r) for r in per_sample), default=0)
    return [[r[i] if i < len(r) else "" for r in per_sample] for i in range(width)]


class BleuOptions(LibraryOptions):
    library = ("sacrebleu", "sacrebleu")
    tokenize: Literal["13a", "none", "intl", "char", "zh"] = Field(
        default="13a", description="sacrebleu's tokenizer (13a: WMT's standard)."
    )
    lowercase: bool = Field(default=False)
    smooth_method: Literal["exp", "floor", "add-k", "none"] = Field(default="exp")
    smooth_value: float | None = Field(
        default=None, ge=0, description="For floor (default 0.1) and add-k (default 1)."
    )
    max_ngram_order: int = Field(default=4, ge=1, le=9)
    effective_order: bool = Field(
        default=True,
        description="Leave out n-gram orders a short sentence does not have (sacrebleu's advice "
        "for sentence BLEU); the corpus score never uses it.",
    )


SacrebleuOptionsT = TypeVar("SacrebleuOptionsT", bound=LibraryOptions)


class _SacrebleuScorer(Scorer[SacrebleuOptionsT]):
    """A sacrebleu metric (BLEU, chrF) built from the scorer's options, each passed by its own
    name: each sample's sentence score against its references, and each variant's corpus score
    (a metric built afresh, with ``corpus_settings`` over the options) in the metrics."""

    #: the class in ``sacrebleu.metrics``
    metric: ClassVar[str]
    #: what the corpus score's metric takes instead of the options
    corpus_settings: ClassVar[dict[str, Any]] = {}

    def __init__(self, options: SacrebleuOptionsT):
        super().__init__(options)
        self._sentence = self._metric(corpus=False)

    def _metric(self, corpus: bool) -> Any:
        from sacrebleu import metrics

        settings = {**self.options.model_dump(), **(self.corpus_settings if corpus else {})}
        return getattr(metrics, self.metric)(**settings)

    def score(self, prediction: Any, reference: Any) -> float:
        return float(self._sentence.sentence_score(str(prediction), _texts(reference)).score)

    def corpus(self, predictions: Sequence[Any], references: Sequence[Any]) -> float | None:
        hypotheses = [str(p) for p in predictions]
        return float(self._metric(corpus=True).corpus_score(hypotheses, _streams(references)).score)


class Bleu(_SacrebleuScorer[BleuOptions]):
    """Sentence BLEU (0-100) per sample; the corpus BLEU of each variant in the metrics."""

    description = "sacrebleu sentence BLEU (0-100); corpus BLEU per variant in the metrics"
    metric = "BLEU"
    corpus_settings = {"effective_order": False}


class ChrfOptions(LibraryOptions):
    library = ("sacrebleu", "sacrebleu")
    char_order: int = Field(default=6, ge=1, le=20)
    word_order: int = Field(default=0, ge=0, le=6, description="2 gives chrF++.")
    beta: int = Field(default=2, ge=1, le=10, description="Recall's weight (chrF2: 2).")
    lowercase: bool = Field(default=False)
    whitespace: bool = Field(default=False, description="Keep whitespace in character n-grams.")
    eps_smoothing: bool = Field(
        default=False, description="chrF++.py/NLTK's smoothing instead of effective order."
    )


class Chrf(_SacrebleuScorer[ChrfOptions]):
    """Sentence chrF (0-100) per sample; the corpus chrF of each variant in the metrics."""

    description = "sacrebleu sentence chrF (0-100); corpus chrF per variant in the metrics"
    metric = "CHRF"


class RougeOptions(LibraryOptions):
    library = ("rouge_score", "rouge-score")
    type: Literal["rouge1", "rouge2", "rougeL", "rougeLsum"] = Field(
        default="rougeL", description="Unigrams, bigrams, longest common subsequence."
    )
    measure: Literal["fmeasure", "precision", "recall"] = Field(default="fmeasure")
    use_stemmer: bool = Field(default=False, description="Porter-stem words first.")


class Rouge(Scorer[RougeOptions]):
    """ROUGE-1, -2 or -L (0-1) against the best reference."""

    description = "rouge-score ROUGE-1/2/L (0-1) against the best reference"

    def __init__(self, options: RougeOptions):
        super().__init__(options)
        from rouge_score import rouge_scorer

        self._scorer = rouge_scorer.RougeScorer([options.type], use_stemmer=options.use_stemmer)

    def score(self, prediction: Any, reference: Any) -> float:
        o = self.options
        return max(
            float(getattr(self._scorer.score(r, str(prediction))[o.type], o.measure))
            for r in _texts(reference)
        )
