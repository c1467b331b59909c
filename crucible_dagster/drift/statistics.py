"""Per-feature drift between a reference sample and a current one, with scipy.

- numeric: the two-sample Kolmogorov-Smirnov test (``scipy.stats.ks_2samp``: exact for small
  samples, asymptotic otherwise) and the population stability index over the reference's
  quantile bins;
- categorical: the chi-squared test of homogeneity of the 2 x k table of category counts
  (``scipy.stats.chi2_contingency``) and the PSI over the categories;
- text: the length in words compared as a numeric feature, the vocabulary (the 50 words most
  frequent in both samples, and every other word as one cell) as a categorical one; the
  smaller p-value of the two, Bonferroni-corrected for the two looks.

Missing values are dropped (and counted). A feature the data cannot test (fewer than 3 values
on a side, a single category on both, more categories than a chi-squared test can hold: fewer
than 5 values a category on average) has no p-value and says why, never a number that looks
real. The PSI compares each side's shares with a floor of half a value of that side, so a cell
empty on one side counts without an infinite logarithm, and two disjoint sets of categories
are far apart however many there are.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Literal, TypedDict

import numpy as np
import pandas as pd

Kind = Literal["numeric", "categorical", "text"]
#: fewer values on a side and a feature is not tested
MIN_VALUES = 3
#: a chi-squared test wants this many values a category on average, or says it cannot tell
MIN_PER_CATEGORY = 5
#: words of the vocabulary profile: the most frequent over both samples, the rest one cell
VOCABULARY = 50
_WORD = re.compile(r"\w+", re.UNICODE)


class Sizes(TypedDict):
    reference_n: int
    current_n: int
    missing: int  # values dropped, both sides


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    kind: Kind
    test: str
    statistic: float | None
    p_value: float | None
    psi: float | None
    reference_n: int
    current_n: int
    missing: int  # values dropped, both sides
    reason: str | None = None  # why there is no p-value

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index of two count vectors over the same cells (an empty cell
    counts as half a value)."""
    ref = np.maximum(reference, 0.5) / reference.sum()
    cur = np.maximum(current, 0.5) / current.sum()
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def kind_of(reference: pd.Series, current: pd.Series) -> Kind:
    """Numbers are numeric (true/false is categorical); text of several words on average is
    text; any other value is a category."""
    both = pd.concat([reference, current], ignore_index=True).dropna()
    if pd.api.types.is_bool_dtype(both) or both.map(lambda v: isinstance(v, bool | np.bool_)).any():
        return "categorical"
    if pd.api.types.is_numeric_dtype(both):
        return "numeric"
    words = both.astype(str).map(lambda text: len(_WORD.findall(text)))
    return "text" if len(words) and float(words.mean()) >= 3 else "categorical"


def feature_drift(
    feature: str, reference: pd.Series, current: pd.Series, kind: Kind, bins: int = 10
) -> FeatureDrift:
    missing = int(reference.isna().sum() + current.isna().sum())
    ref, cur = reference.dropna(), current.dropna()
    sizes = Sizes(reference_n=len(ref), current_n=len(cur), missing=missing)
    if len(ref) < MIN_VALUES or len(cur) < MIN_VALUES:
        side, values = ("reference", ref) if len(ref) < MIN_VALUES else ("current", cur)
        reason = f"{len(values)} value(s) in the {side} sample, fewer than {MIN_VALUES}"
        return FeatureDrift(feature, kind, "none", None, None, None, **sizes,
                            reason=reason if len(values) else f"no value in the {side} sample")  # fmt: skip
    if kind == "numeric":
        return _numeric(feature, ref, cur, bins, sizes)
    if kind == "text":
        return _text(feature, ref, cur, bins, sizes)
    return _categorical(feature, ref.astype(str), cur.astype(str), sizes)


def _numeric(feature: str, ref: pd.Series, cur: pd.Series, bins: int, sizes: Sizes) -> FeatureDrift:
    import warnings

    from scipy import stats

    a, b = _numbers(feature, ref, "reference"), _numbers(feature, cur, "current")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return FeatureDrift(feature, "numeric", "ks", None, None, None, **sizes,
                            reason="an infinite value")  # fmt: skip
    with warnings.catch_warnings():  # the exact p-value's fallback to the asymptotic one
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ks_2samp(a, b)
    edges = np.unique(np.quantile(a, np.linspace(0, 1, bins + 1)[1:-1]))
    index = np.searchsorted(edges, a, side="right"), np.searchsorted(edges, b, side="right")
    cells = len(edges) + 1
    stability = psi(np.bincount(index[0], minlength=cells), np.bincount(index[1], minlength=cells))
    return FeatureDrift(feature, "numeric", "ks", float(result.statistic), float(result.pvalue),
                        stability, **sizes)  # fmt: skip


class DriftDataError(ValueError):
    """A column that is not of the kind it was given (``reliability.drift.kinds``)."""


def _numbers(feature: str, values: pd.Series, side: str) -> np.ndarray:
    numbers = pd.to_numeric(values, errors="coerce")
    bad = values[numbers.isna()]
    if len(bad):
        found = repr(bad.iloc[0])[:60]
        raise DriftDataError(
            f"column {feature!r} of the {side} sample: expected numbers, found {found}"
        )
    return numbers.to_numpy(dtype=np.float64)


def _categorical(
    feature: str, ref: pd.Series, cur: pd.Series, sizes: Sizes, kind: Kind = "categorical"
) -> FeatureDrift:
    from scipy import stats

    counts = pd.DataFrame({"reference": ref.value_counts(), "current": cur.value_counts()})
    table = counts.fillna(0).to_numpy(dtype=np.float64).T  # 2 x k
    stability = psi(table[0], table[1])
    if table.shape[1] < 2:
        return FeatureDrift(feature, kind, "chi2", None, None, stability, **sizes,
                            reason="a single category in both samples")  # fmt: skip
    values = int(table.sum())
    if table.shape[1] * MIN_PER_CATEGORY > values:
        reason = (
            f"{table.shape[1]} categories for {values} values: too many for a chi-squared test "
            f"(fewer than {MIN_PER_CATEGORY} values a category); its PSI still compares them"
        )
        return FeatureDrift(feature, kind, "chi2", None, None, stability, **sizes, reason=reason)
    result = stats.chi2_contingency(table, correction=False)
    return FeatureDrift(feature, kind, "chi2", float(result.statistic), float(result.pvalue),
                        stability, **sizes)  # fmt: skip


def _text(feature: str, ref: pd.Series, cur: pd.Series, bins: int, sizes: Sizes) -> FeatureDrift:
    def words(series: pd.Series) -> list[list[str]]:
        return [_WORD.findall(str(text).lower()) for text in series]

    ref_words, cur_words = words(ref), words(cur)
    lengths = _numeric(
        feature, pd.Series([len(w) for w in ref_words]), pd.Series([len(w) for w in cur_words]),
        bins, sizes,
    )  # fmt: skip
    common = Counter(w for text in ref_words + cur_words for w in text).most_common(VOCABULARY)
    kept = {word for word, _ in common}

    def cells(texts: list[list[str]]) -> pd.Series:
        return pd.Series([w if w in kept else "\0other" for text in texts for w in text])

    vocabulary = _categorical(feature, cells(ref_words), cells(cur_words), sizes, "text")
    looks = [p for p in (lengths.p_value, vocabulary.p_value) if p is not None]
    p_value = min(1.0, 2 * min(looks)) if looks else None
    return FeatureDrift(
        feature, "text", "length ks + vocabulary chi2",
        lengths.statistic, p_value, vocabulary.psi, **sizes,
        reason=None if looks else (vocabulary.reason or lengths.reason),
    )  # fmt: skip
