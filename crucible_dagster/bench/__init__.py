"""Statistics for comparing experiment results, on scipy/numpy, checked against published values.

Every test returns a ``TestResult``; undefined results come back as NaN with a ``reason``,
never a silent p=0 or p=1. Bad input raises ``BenchDataError`` with a clear message.
Differences are always ``x - y`` (first group minus second) in the order given.
"""

from typing import TYPE_CHECKING

from crucible_dagster.common.lazy import lazy_exports

if TYPE_CHECKING:
    from crucible_dagster.bench.assumptions import levene, shapiro
    from crucible_dagster.bench.cochran import cochran_q
    from crucible_dagster.bench.data import BenchDataError
    from crucible_dagster.bench.effect_size import (
        EffectSize,
        cles_normal,
        cliffs_delta,
        cohens_d,
        epsilon_squared,
        glass_delta,
        hedges_g,
        paired_d_z,
        probability_of_superiority,
        rank_biserial,
        rank_biserial_ci,
        two_sample_effect_sizes,
    )
    from crucible_dagster.bench.equivalence import tost
    from crucible_dagster.bench.multiple import CORRECTIONS, adjust_p_values
    from crucible_dagster.bench.nonparametric import (
        friedman,
        kruskal_wallis,
        mann_whitney,
        mcnemar,
        wilcoxon,
    )
    from crucible_dagster.bench.parametric import (
        anova,
        corrected_resampled_ttest,
        cv_5x2,
        paired_ttest,
        ttest,
        welch_anova,
    )
    from crucible_dagster.bench.power import (
        SampleSize,
        detectable_effect,
        n_for_power,
        power_ttest,
    )
    from crucible_dagster.bench.resampling import (
        bca_acceleration,
        bootstrap,
        multi_sample_jackknife,
    )
    from crucible_dagster.bench.result import TestResult

# Exports load on first use: ``crucible_dagster.bench.rows`` (read by reports and quality
# targets) must not pull in scipy for a run that never computes a statistic.
_EXPORTS = {
    "BenchDataError": "data",
    "EffectSize": "effect_size",
    "SampleSize": "power",
    "bca_acceleration": "resampling",
    "multi_sample_jackknife": "resampling",
    "tost": "equivalence",
    "cles_normal": "effect_size",
    "probability_of_superiority": "effect_size",
    "rank_biserial_ci": "effect_size",
    "CORRECTIONS": "multiple",
    "TestResult": "result",
    "adjust_p_values": "multiple",
    "anova": "parametric",
    "bootstrap": "resampling",
    "cliffs_delta": "effect_size",
    "cochran_q": "cochran",
    "cohens_d": "effect_size",
    "corrected_resampled_ttest": "parametric",
    "cv_5x2": "parametric",
    "detectable_effect": "power",
    "epsilon_squared": "effect_size",
    "friedman": "nonparametric",
    "glass_delta": "effect_size",
    "hedges_g": "effect_size",
    "kruskal_wallis": "nonparametric",
    "levene": "assumptions",
    "mann_whitney": "nonparametric",
    "mcnemar": "nonparametric",
    "n_for_power": "power",
    "paired_d_z": "effect_size",
    "paired_ttest": "parametric",
    "power_ttest": "power",
    "rank_biserial": "effect_size",
    "shapiro": "assumptions",
    "ttest": "parametric",
    "two_sample_effect_sizes": "effect_size",
    "welch_anova": "parametric",
    "wilcoxon": "nonparametric",
}


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)


__all__ = [
    "CORRECTIONS",
    "BenchDataError",
    "EffectSize",
    "SampleSize",
    "TestResult",
    "adjust_p_values",
    "anova",
    "bca_acceleration",
    "bootstrap",
    "cles_normal",
    "cliffs_delta",
    "cochran_q",
    "cohens_d",
    "corrected_resampled_ttest",
    "cv_5x2",
    "detectable_effect",
    "epsilon_squared",
    "friedman",
    "glass_delta",
    "hedges_g",
    "kruskal_wallis",
    "levene",
    "mann_whitney",
    "mcnemar",
    "multi_sample_jackknife",
    "n_for_power",
    "paired_d_z",
    "paired_ttest",
    "power_ttest",
    "probability_of_superiority",
    "rank_biserial",
    "rank_biserial_ci",
    "shapiro",
    "tost",
    "ttest",
    "two_sample_effect_sizes",
    "welch_anova",
    "wilcoxon",
]
