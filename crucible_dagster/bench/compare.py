"""Compare named groups: automatic test selection with a decision record, post-hoc pairs, corrections.

The engine's roles live beside it: ``settings`` (design, tests, the decision record),
``selection`` (which test, and why), ``pairwise`` (one test on one pair, its row) and
``omnibus`` (one test over every group). Every comparison row is ``group_a − group_b``: with a
``control``, every other group minus the control; otherwise every pair in the declared order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from crucible_dagster.bench.blocking import block_problem
from crucible_dagster.bench.data import BenchDataError, as_sample, overflow_reason
from crucible_dagster.bench.multiple import adjust_p_values
from crucible_dagster.bench.omnibus import run_omnibus
from crucible_dagster.bench.pairwise import pair_row, run_pairwise
from crucible_dagster.bench.parametric import paired_ttest
from crucible_dagster.bench.result import NAN
from crucible_dagster.bench.rows import ComparisonRow, OmnibusRow
from crucible_dagster.bench.selection import choose_omnibus, choose_pairwise_test
from crucible_dagster.bench.settings import (
    OMNIBUS_TESTS,
    PAIRED_ONLY,
    PAIRWISE_TESTS,
    ComparisonSettings,
    Decision,
    Design,
)


@dataclass
class Comparison:
    groups: list[str]
    design: Design
    rows: list[ComparisonRow] = field(default_factory=list)
    omnibus: list[OmnibusRow] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    summary: dict[str, dict[str, Any]] = field(default_factory=dict)
    settings: ComparisonSettings = field(default_factory=ComparisonSettings)

    def to_dict(self) -> dict[str, Any]:
        s = self.settings
        return {
            "design": self.design,
            "groups": self.groups,
            "difference": "group_a - group_b"
            + (
                f" (each group minus control {s.control!r})"
                if s.control
                else " (pairs in declared order)"
            ),
            "alpha": s.alpha,
            "confidence_level": s.confidence_level,
            "correction": s.correction,
            "control": s.control,
            "summary": self.summary,
            "omnibus": [o.to_dict() for o in self.omnibus],
            "comparisons": [r.to_dict() for r in self.rows],
            "decisions": [d.to_dict() for d in self.decisions],
            "tests_run": sorted({r.test for r in self.rows} | {o.test for o in self.omnibus}),
        }


def describe_sample(values: np.ndarray, confidence_level: float) -> dict[str, Any]:
    """n, mean, SD and the mean's t interval; a mean or SD that overflowed is NaN (null in
    JSON) beside a ``reason``, never the infinity numpy gives."""
    from scipy import stats

    n = int(values.size)
    with np.errstate(over="ignore", invalid="ignore"):
        mean = float(values.mean()) if n else NAN
        sd = float(values.std(ddof=1)) if n > 1 else NAN
    out: dict[str, Any] = {"n": n}
    if not (math.isfinite(mean) or n == 0) or math.isinf(sd):
        which = "mean" if not math.isfinite(mean) else "standard deviation"
        out["reason"] = overflow_reason(f"the {which}")
        mean, sd = (mean, NAN) if math.isfinite(mean) else (NAN, NAN)
    if n > 1 and sd > 0:
        half = float(stats.t.ppf(1 - (1 - confidence_level) / 2, n - 1)) * sd / math.sqrt(n)
        ci = [mean - half, mean + half]
    else:
        ci = [NAN, NAN]
    return out | {"mean": mean, "sd": sd, "ci_low": ci[0], "ci_high": ci[1]}


def _pairs(names: list[str], control: str | None) -> list[tuple[str, str]]:
    if control:
        return [(n, control) for n in names if n != control]
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]


def _requested_tests(settings: ComparisonSettings) -> tuple[list[str], list[str]]:
    """The pairwise and omnibus tests the settings name (both empty: choose automatically)."""
    tests = settings.tests or []
    unknown = [t for t in tests if t not in PAIRWISE_TESTS + OMNIBUS_TESTS]
    if unknown:
        raise BenchDataError(
            f"unknown test(s) {unknown}; expected {', '.join(PAIRWISE_TESTS + OMNIBUS_TESTS)}"
        )
    return [t for t in tests if t in PAIRWISE_TESTS], [t for t in tests if t in OMNIBUS_TESTS]


def _size(values: Any) -> int:
    """How many values a group had, checked or not (an undefined row still reports its n)."""
    try:
        return len(values)
    except TypeError:
        return 1


def compare_groups(
    groups: Mapping[str, Any],
    settings: ComparisonSettings | None = None,
    blocks: Mapping[str, Any] | None = None,
) -> Comparison:
    """Compare every group (in the mapping's order) as ``settings`` says; never raises for bad
    group data. ``blocks`` (each group's block ids, in the order of its values) are checked
    for a paired or blocked design: a block missing, repeated or not in every group refuses it."""
    settings = settings or ComparisonSettings()
    names = list(groups)
    data: dict[str, np.ndarray] = {}
    problems: dict[str, str] = {}
    for name in names:
        try:
            data[name] = as_sample(groups[name], name, 1)
        except BenchDataError as exc:
            problems[name] = str(exc)
    comparison = Comparison(names, settings.design, settings=settings)
    comparison.summary = {
        name: describe_sample(data[name], settings.confidence_level)
        if name in data
        else {"n": _size(groups[name]), "error": problems[name]}
        for name in names
    }
    if settings.control is not None and settings.control not in groups:
        raise BenchDataError(f"control group {settings.control!r} is not among the groups {names}")
    pairing = (
        block_problem({n: blocks[n] for n in names if n in blocks}, settings.design)
        if blocks is not None and settings.design != "independent"
        else None
    )
    requested, omnibus = _requested_tests(settings)
    if settings.tests is None and len(names) >= 3 and pairing is None:
        omnibus = [choose_omnibus(data, settings, comparison.decisions)]
    for test in omnibus:
        shared = {**problems, "(blocks)": pairing} if pairing else problems
        comparison.omnibus.append(run_omnibus(test, names, data, shared, settings))
    for a, b in _pairs(names, settings.control):
        problem = problems.get(a) or problems.get(b) or pairing
        if problem is None and settings.design != "independent" and data[a].size != data[b].size:
            problem = (
                f"a {settings.design} design needs one value per block in both groups, "
                f"got {data[a].size} and {data[b].size}"
            )
        if problem is not None:
            test = requested[0] if requested else "auto"
            sizes = _size(groups[a]), _size(groups[b])
            comparison.rows.append(
                ComparisonRow(a, b, test, reason=problem, n_a=sizes[0], n_b=sizes[1])
            )
            continue
        tests = requested or [
            choose_pairwise_test(a, b, data[a], data[b], settings, comparison.decisions)
        ]
        for test in tests:
            comparison.rows += _pair_rows(a, b, test, data[a], data[b], settings)
    _adjust(comparison.rows, settings)
    return comparison


def _pair_rows(
    a: str, b: str, test: str, x: np.ndarray, y: np.ndarray, settings: ComparisonSettings
) -> list[ComparisonRow]:
    """One test of one pair; an automatically chosen corrected t brings the naive t beside it."""
    if test in PAIRED_ONLY and settings.design == "independent" and settings.tests is not None:
        return [
            ComparisonRow(
                a,
                b,
                test,
                reason=f"{test} needs a paired design (design: paired or blocked)",
                n_a=x.size,
                n_b=y.size,
            )
        ]
    try:
        rows = [pair_row(a, b, run_pairwise(test, x, y, settings), settings.design, settings.alpha)]
        if not (rows[0].n_a or rows[0].n_b):  # an undefined result that never counted its n
            rows[0].n_a, rows[0].n_b = x.size, y.size
    except BenchDataError as exc:
        rows = [ComparisonRow(a, b, test, reason=str(exc), n_a=x.size, n_b=y.size)]
    if test == "mcnemar" and settings.tests is None:
        # beside the test on the discordant samples, a paired bootstrap of the difference
        try:
            boot = run_pairwise("bootstrap", x, y, settings)
        except BenchDataError:
            return rows
        rows.append(pair_row(a, b, boot, settings.design, settings.alpha))
        return rows
    if test == "corrected_resampled_ttest" and settings.tests is None:
        # show the naive paired t beside it, so the report can say why the correction matters
        try:
            naive = paired_ttest(x, y, confidence_level=settings.confidence_level)
        except BenchDataError:
            return rows
        row = pair_row(a, b, naive, settings.design, settings.alpha)
        row.test, row.reference_only = "paired_ttest (naive, for reference)", True
        rows.append(row)
    return rows


def _adjust(rows: list[ComparisonRow], settings: ComparisonSettings) -> None:
    """Correct within each test family; reference-only rows are not part of any family."""
    families: dict[str, list[ComparisonRow]] = {}
    for row in rows:
        if row.reference_only:
            row.p_adjusted = row.p_value
        else:
            families.setdefault(row.test, []).append(row)
    for family in families.values():
        adjusted = adjust_p_values([r.p_value for r in family], settings.correction)
        for row, p in zip(family, adjusted, strict=True):
            row.p_adjusted = p
    for row in rows:
        row.significant = bool(math.isfinite(row.p_adjusted) and row.p_adjusted < settings.alpha)
