"""Paired comparisons between experiments: is A better than B, beyond the noise of the seeds?

For each pair (A, B) and each dataset both ran on, the differences A − B of the selected test
accuracy (`test_acc_at_best_val`) are paired by seed: a seed counts when both A and B ran it
and both runs completed (neither diverged nor unfinished; the note names the seeds left out).
Over those n seeds: the mean difference, its 95% Student-t interval and the two-sided p-value
of the paired t-test, all from `scipy.stats.ttest_rel`. Fewer than two paired seeds give no
interval and no test: the row says the comparison needs at least two, instead of a number.

Pairing removes what the seed does to both runs alike (the training order of every epoch is
drawn from (seed, epoch), the same for A and B), so it sees smaller differences than comparing
two means.
A pair that shares no dataset is still a row (n = 0): nothing is left out silently.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from imgzoo.aggregate import read_logs
from imgzoo.aggregate.seeds import CONFIDENCE
from imgzoo.aggregate.table_files import write_table
from imgzoo.aggregate.tables import SELECTED, runs_frame
from imgzoo.errors import ConfigError

MIN_SEEDS = 2

COLUMNS = (
    "dataset",
    "experiment_a",
    "experiment_b",
    "metric",
    "n",
    "seeds",
    "mean_difference",
    "ci_low",
    "ci_high",
    "p_value",
    "note",
)
_TEXT_COLUMNS = ("dataset", "A", "B", "seeds", "note")
_NOTE = (
    f"A − B of {SELECTED} (test accuracy at the best-validation epoch), in percentage points, "
    "paired by seed over the seeds both ran (diverged runs left out): mean difference, its "
    f"{CONFIDENCE:.0%} t-interval and the p-value of the paired t-test (two-sided). Positive: "
    f"A is better. An interval that excludes 0 (p < {1 - CONFIDENCE:.2g}) is a difference the "
    f"seeds do not explain; fewer than {MIN_SEEDS} seeds allow no such statement."
)


def comparison_pairs(raw) -> list[tuple[str, str]]:
    """The pairs checked: a list of [A, B] experiment names; ConfigError otherwise."""
    if not isinstance(raw, list):
        raise ConfigError("comparisons: expected a list of [A, B] pairs of experiments")
    pairs = []
    for i, pair in enumerate(raw):
        ok = isinstance(pair, list | tuple) and len(pair) == 2
        if not ok or not all(isinstance(name, str) for name in pair):
            raise ConfigError(f"comparisons, pair {i}: expected [A, B] (two names), got {pair!r}")
        if pair[0] == pair[1]:
            raise ConfigError(f"comparisons, pair {i}: compares '{pair[0]}' with itself")
        pairs.append((pair[0], pair[1]))
    return pairs


def _selected_by_seed(runs: pd.DataFrame, dataset: str, experiment: str, metric: str):
    """(every seed the experiment ran on the dataset, {seed: metric} of its usable runs)."""
    mine = runs[(runs["dataset"] == dataset) & (runs["experiment"] == experiment)]
    # as the summary: completed runs only (not diverged, nor unfinished)
    usable = mine[(mine["status"] == "completed") & np.isfinite(mine[metric].astype(float))]
    return set(mine["seed"]), dict(zip(usable["seed"], usable[metric].astype(float), strict=True))


def paired_test(a, b, confidence: float = CONFIDENCE) -> tuple[float, float, float, float]:
    """(mean of a − b, interval low, high, p-value) of the paired t-test, from scipy.

    When every seed gives the same difference the variance is zero: scipy then answers an
    interval of width zero and p = 0 (or NaN for a difference of exactly 0), and warns about
    precision loss; that warning is not news here and is silenced.
    """
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_rel(a, b)
        ci = result.confidence_interval(confidence)
    mean = float(np.mean(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)))
    return mean, float(ci.low), float(ci.high), float(result.pvalue)


def comparison_row(runs, dataset, a, b, metric=SELECTED) -> dict:
    ran_a, good_a = _selected_by_seed(runs, dataset, a, metric)
    ran_b, good_b = _selected_by_seed(runs, dataset, b, metric)
    seeds = sorted(set(good_a) & set(good_b))
    left_out = sorted((ran_a & ran_b) - set(seeds))
    notes = []
    if left_out:
        seeds_text = ("seed " if len(left_out) == 1 else "seeds ") + ", ".join(map(str, left_out))
        notes.append(f"{seeds_text} left out (a run diverged or is unfinished)")
    row = {
        "dataset": dataset,
        "experiment_a": a,
        "experiment_b": b,
        "metric": metric,
        "n": len(seeds),
        "seeds": " ".join(map(str, seeds)),
        "mean_difference": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "p_value": np.nan,
    }
    if len(seeds) < MIN_SEEDS:
        notes.insert(0, f"needs ≥{MIN_SEEDS} seeds that both ran (n={len(seeds)}): no comparison")
    else:
        mean, low, high, p = paired_test([good_a[s] for s in seeds], [good_b[s] for s in seeds])
        row.update(mean_difference=mean, ci_low=low, ci_high=high, p_value=p)
        if np.isnan(p):
            notes.append("every seed gives a difference of 0: no test")
    return {**row, "note": "; ".join(notes)}


def comparisons_frame(runs: pd.DataFrame, pairs, metric: str = SELECTED) -> pd.DataFrame:
    """One row per pair and dataset where both experiments ran (datasets in the runs table's
    order, pairs in the order given); a pair with no such dataset is one row saying so."""
    rows = []
    datasets = list(dict.fromkeys(runs["dataset"]))
    ran = {d: set(runs.loc[runs["dataset"] == d, "experiment"]) for d in datasets}
    for a, b in comparison_pairs(pairs):
        common = [d for d in datasets if {a, b} <= ran[d]]
        for dataset in common:
            rows.append(comparison_row(runs, dataset, a, b, metric))
        if not common:
            rows.append(
                {
                    **dict.fromkeys(COLUMNS, np.nan),
                    "dataset": "",
                    "experiment_a": a,
                    "experiment_b": b,
                    "metric": metric,
                    "n": 0,
                    "seeds": "",
                    "note": "no dataset on which both ran (n=0): no comparison",
                }
            )
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    order = {d: i for i, d in enumerate(datasets)}
    frame["_order"] = frame["dataset"].map(order).fillna(len(order))
    frame = frame.sort_values("_order", kind="stable").drop(columns="_order")
    return frame.reset_index(drop=True)


def _p_value(p) -> str:
    return "" if pd.isna(p) else f"{p:.3g}"


def _display(frame: pd.DataFrame) -> pd.DataFrame:
    def pp(value) -> str:
        return "" if pd.isna(value) else f"{value * 100.0:+.2f}"

    return pd.DataFrame(
        {
            "dataset": frame["dataset"],
            "A": frame["experiment_a"],
            "B": frame["experiment_b"],
            "n": frame["n"].astype(str),
            "seeds": frame["seeds"],
            "A − B (pp)": [pp(v) for v in frame["mean_difference"]],
            f"{CONFIDENCE:.0%} interval (pp)": [
                "" if pd.isna(lo) else f"[{pp(lo)}, {pp(hi)}]"
                for lo, hi in zip(frame["ci_low"], frame["ci_high"], strict=True)
            ],
            "p": [_p_value(p) for p in frame["p_value"]],
            "note": frame["note"],
        }
    )


def write_comparisons(log_paths, pairs, out_dir, same_as=(), labels=None) -> None:
    """Write comparisons.{csv,md,html} into `out_dir` (pairs and logs checked first; `same_as`:
    runs shown under another name, see `imgzoo.aggregate.read_logs`)."""
    pairs = comparison_pairs(pairs)
    frame = comparisons_frame(runs_frame(read_logs(log_paths, same_as, labels)), pairs)
    note = _NOTE if len(frame) else "No comparisons are configured for this study (compare:)."
    write_table(
        out_dir,
        "comparisons",
        frame,
        _display(frame),
        title="imgzoo: paired comparisons between experiments",
        note=note,
        text_columns=_TEXT_COLUMNS,
    )
