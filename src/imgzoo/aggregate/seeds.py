"""Statistics over a run's seeds: mean ± sample std, and the Student-t interval of the mean."""

from __future__ import annotations

import warnings

import numpy as np

# The confidence of every interval over seeds (summary, reproduction verdicts, comparisons).
CONFIDENCE = 0.95


def mean_std(values) -> tuple[float, float]:
    """Mean and sample std of the finite values; std NaN (blank) for fewer than two."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return np.nan, np.nan
    std = float(np.std(values, ddof=1)) if values.size > 1 else np.nan
    return float(np.mean(values)), std


def interval(values, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Student-t interval of the mean of `values` (two or more), from scipy.

    Seeds that all give the same number (common with small test sets) give an interval of
    width zero; scipy warns about precision loss there, which is harmless for a zero width.
    """
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ci = stats.ttest_1samp(values, popmean=0.0).confidence_interval(confidence)
    return float(ci.low), float(ci.high)


def finite_interval(values) -> tuple[float, float]:
    """`interval` of the finite values; NaN, NaN (blank) for fewer than two."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    return interval(values) if values.size >= 2 else (np.nan, np.nan)
