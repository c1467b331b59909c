"""The scorer contract: a class with an ``Options`` model that scores one prediction against its
reference, so the score stage can run several scorers over the same per-sample table.

A scorer answers each ``Sample`` with a ``Scored``: a number, or ``None`` with the reason when
that sample cannot be scored (a judge whose answer has no score, a reference with no number).
A per-sample problem is never an exception for the batch: one bad sample does not lose the
others. ``binary`` scorers answer 0 or 1 (the bench compares them with McNemar's test, and a
sample with no prediction scores 0); the others are continuous (Wilcoxon or a paired t, and a
sample with no prediction is left out and counted).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Generic, TypeVar, get_args, get_origin

from pydantic import AfterValidator, ConfigDict

from crucible_dagster.experiment.strict_numbers import RefuseBoolForNumbers


class ScorerOptions(RefuseBoolForNumbers):
    """Options of a scorer, from ``scorers[i].options``; unknown keys are refused (typos)."""

    model_config = ConfigDict(extra="forbid")


#: seconds a user's pattern may spend on one text: a pattern such as ``(a|aa)*$`` backtracks
#: exponentially on 40 a's and a b (a model's answer is not ours to trust), and Python's re
#: cannot be stopped, so user patterns run on the ``regex`` module (re's syntax), which can
MATCH_SECONDS = 1.0


def user_pattern(value: str, ignore_case: bool = False) -> Any:
    """A user's pattern compiled by ``regex`` (re's syntax); ``regex.error`` when it is none."""
    import regex

    return regex.compile(value, regex.IGNORECASE if ignore_case else 0)


def regex_of(value: str) -> Any:
    """``value`` compiled, or the ValueError an option's validator raises: a pattern that does
    not compile is refused at validate, not once for every sample."""
    import regex

    try:
        return user_pattern(value)
    except regex.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None


def stopped(pattern: Any, method: str, text: str) -> Any:
    """``pattern.<method>(text)`` within MATCH_SECONDS (a finditer's matches as a list); the
    sample's ScoreProblem, with what to write instead, when it backtracks past that."""
    try:
        found = getattr(pattern, method)(text, timeout=MATCH_SECONDS)
        return list(found) if method == "finditer" else found
    except TimeoutError:
        raise ScoreProblem(
            f"the pattern took over {MATCH_SECONDS:g} s on this text ({len(text)} characters) "
            "and was stopped: it backtracks too much (nested repeats such as '(a+)+'?); a "
            "possessive 'a++' or an atomic group '(?>...)' avoids that"
        ) from None


def _compiles(value: str) -> str:
    regex_of(value)
    return value


#: an option that holds a Python regular expression
RegexOption = Annotated[str, AfterValidator(_compiles)]


class ScoreProblem(ValueError):
    """One sample that cannot be scored: its message becomes that sample's score error."""


@dataclass(frozen=True)
class Sample:
    """What a scorer sees of one row of the per-sample table (``example``: the sample's own
    fields when the score stage found them, for templates such as a judge's rubric)."""

    variant: str
    sample_id: str
    prediction: Any
    reference: Any
    example: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Scored:
    value: float | None
    error: str | None = None


def references_of(reference: Any) -> list[Any]:
    """A sample's references: a list (or array) of them is several, anything else is one; an
    empty list is that sample's problem."""
    found: Any = reference
    tolist = getattr(reference, "tolist", None)  # a Parquet list cell reads back as an array
    if callable(tolist) and not isinstance(reference, str | bytes):
        found = tolist()
    if not isinstance(found, list | tuple):
        return [found]
    if not found:
        raise ScoreProblem("the sample's list of references is empty")
    return list(found)


OptionsT = TypeVar("OptionsT", bound=ScorerOptions)


class Scorer(Generic[OptionsT]):
    """Subclass as ``Scorer[MyOptions]`` (or set ``Options``) and implement ``score`` (or
    ``score_all`` for batches)."""

    Options: ClassVar[type[ScorerOptions]] = ScorerOptions
    #: scores are 0 or 1: a sample without a prediction scores 0 instead of being left out
    #: (an instance may set it from its options)
    binary: bool = False
    #: a sample without a reference is not scored (a judge's rubric may not need one)
    needs_reference: ClassVar[bool] = True
    #: the score stage finds each sample's own fields for it (``Sample.example``)
    reads_examples: ClassVar[bool] = False
    #: for the reader of a report: whether a larger score is a better prediction
    higher_is_better: ClassVar[bool] = True
    description: ClassVar[str] = ""

    #: the scorer sends requests (a judge): the run's budget applies to them
    sends_requests: ClassVar[bool] = False

    options: OptionsT

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """``class Numeric(Scorer[NumericOptions])`` names its options model once: it is the
        class's ``Options`` (what a file's ``options:`` are validated with) and the type of
        ``self.options``. A class that sets ``Options`` itself keeps it."""
        super().__init_subclass__(**kwargs)
        if "Options" in cls.__dict__:
            return
        for base in cls.__dict__.get("__orig_bases__", ()):
            origin, model = get_origin(base), (get_args(base) or (None,))[0]
            named = isinstance(model, type) and issubclass(model, ScorerOptions)
            if isinstance(origin, type) and issubclass(origin, Scorer) and named:
                cls.Options = model

    def __init__(self, options: OptionsT):
        self.options = options

    def with_budget(self, ledger: Any) -> None:
        """The run's budget ledger (None without a budget), for a scorer that sends requests."""

    def score(self, prediction: Any, reference: Any) -> float:
        """One prediction against its reference; ``ScoreProblem`` when it cannot be scored."""
        raise NotImplementedError

    def score_all(self, samples: Sequence[Sample]) -> list[Scored]:
        """Every sample, each problem that sample's error (a judge overrides this to batch)."""
        scored = []
        for sample in samples:
            try:
                scored.append(Scored(float(self.score(sample.prediction, sample.reference))))
            except ScoreProblem as exc:
                scored.append(Scored(None, str(exc)))
            except Exception as exc:  # a scorer's bug on one sample is that sample's error
                scored.append(Scored(None, f"{type(exc).__name__}: {str(exc)[:300]}"))
        return scored

    def corpus(self, predictions: Sequence[Any], references: Sequence[Any]) -> float | None:
        """A corpus-level score of one variant where the metric has one (BLEU, chrF), else None."""
        return None

    def usage(self) -> dict[str, Any]:
        """What scoring cost (a judge's requests, tokens and cost), for the run's metrics."""
        return {}
