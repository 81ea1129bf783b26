"""The claims table: each conclusion a write-up draws, put to the test by paired comparisons over
seeds.

A claim (the study's `compare.claims`, or JSON on the command line) holds the write-up's words
(`claim`, `source`), one or more experiment pairs [A, B], what it says of A against B
(`expect`: better, worse, same), the `metric` compared and, for `same`, a `margin` in
percentage points. For each pair and each dataset the claim speaks of (`datasets`, default every
dataset both ran on), the differences A − B are paired by seed as in the comparisons table
(`imgzoo.aggregate.comparisons.comparison_row`: completed runs of the seeds both ran, the mean
difference, its 95% Student-t interval, the paired t-test's p-value).

Verdict, from the interval [low, high] of A − B oriented so that positive means A is better
(for `generalisation_gap`, the overfitting gap, smaller is better):
- better: `supported` when low > 0; `contradicted` when high < 0.
- worse: `supported` when high < 0; `contradicted` when low > 0.
- same: `supported` when the whole interval lies within ±margin; `contradicted` when it lies
  wholly outside (low > margin or high < −margin).
- otherwise `not distinguishable with these seeds`: more seeds may decide it either way. Fewer
  than two paired seeds give no interval: `not tested`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from imgzoo import schema
from imgzoo.aggregate import read_logs
from imgzoo.aggregate.comparisons import MIN_SEEDS, comparison_row
from imgzoo.aggregate.seeds import CONFIDENCE
from imgzoo.aggregate.table_files import write_table
from imgzoo.aggregate.tables import runs_frame
from imgzoo.errors import ConfigError

# What a claim may compare -> +1 where larger is better, -1 where smaller is.
METRICS = {"test_acc_at_best_val": 1, "final_test_acc": 1, "generalisation_gap": -1}
EXPECTATIONS = ("better", "worse", "same")
SUPPORTED, CONTRADICTED = "supported", "contradicted"
UNDECIDED, NOT_TESTED = "not distinguishable with these seeds", "not tested"

COLUMNS = (
    "claim",
    "source",
    "experiment_a",
    "experiment_b",
    "dataset",
    "metric",
    "expect",
    "margin",
    "n",
    "seeds",
    "mean_difference",
    "ci_low",
    "ci_high",
    "p_value",
    "verdict",
    "note",
)
_TEXT_COLUMNS = ("claim", "A − B", "dataset", "metric", "expect", "seeds", "verdict", "note",
                 "source")
_NOTE = (
    "Each conclusion of the write-up, tested by the paired difference A − B over the seeds both "
    "ran (diverged runs left out), in percentage points, with its "
    f"{CONFIDENCE:.0%} t-interval. Metrics: test_acc_at_best_val (the test accuracy at the "
    "best-validation point), final_test_acc (the last epoch's), generalisation_gap (train-subset "
    "minus test accuracy at the last epoch: the overfitting; smaller is better). Verdict: "
    "supported = the interval lies wholly on the claimed side of 0 (better, worse) or wholly "
    "within ±margin (same); contradicted = wholly on the other side (or wholly outside "
    "±margin); otherwise not distinguishable with these seeds. Fewer than "
    f"{MIN_SEEDS} paired seeds: not tested."
)


def checked_claims(raw) -> list[dict]:
    """The claims as a list of dicts (`name`, `claim`, `source`, `pairs`, `expect`, `metric`,
    `margin`, optional `datasets`), defaults filled; ConfigError naming the claim otherwise."""
    if not isinstance(raw, list):
        raise ConfigError("claims: expected a list of claims")
    claims = []
    for i, claim in enumerate(raw):
        where = f"claims, entry {i}"
        if not isinstance(claim, dict):
            raise ConfigError(f"{where}: expected a mapping, got {claim!r}")
        for key in ("claim", "source", "pairs", "expect"):
            if key not in claim:
                raise ConfigError(f"{where}: '{key}' is missing")
        if claim["expect"] not in EXPECTATIONS:
            raise ConfigError(f"{where}: expect {claim['expect']!r} is not one of "
                              f"{', '.join(EXPECTATIONS)}")
        metric = claim.get("metric", schema.default("compare", "claims", "metric"))
        if metric not in METRICS:
            raise ConfigError(f"{where}: metric {metric!r} is not one of {', '.join(METRICS)}")
        pairs = claim["pairs"]
        if not isinstance(pairs, list) or not all(
            isinstance(p, list | tuple) and len(p) == 2 for p in pairs
        ):
            raise ConfigError(f"{where}: pairs must be a list of [A, B] pairs")
        margin = claim.get("margin", schema.default("compare", "claims", "margin"))
        claims.append({**claim, "metric": metric, "margin": margin,
                       "pairs": [tuple(p) for p in pairs]})
    return claims


def verdict(expect: str, direction: int, n: int, low: float, high: float, margin: float) -> str:
    """The verdict on a claim from the interval of A − B (see the module docstring); `margin`
    in the metric's units."""
    if n < MIN_SEEDS:
        return NOT_TESTED
    if direction < 0:  # oriented so that positive means A is better
        low, high = -high, -low
    if expect == "same":
        if -margin <= low and high <= margin:
            return SUPPORTED
        return CONTRADICTED if low > margin or high < -margin else UNDECIDED
    if low > 0:
        return SUPPORTED if expect == "better" else CONTRADICTED
    if high < 0:
        return SUPPORTED if expect == "worse" else CONTRADICTED
    return UNDECIDED


def with_gap(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs with `generalisation_gap`: train-subset accuracy − test accuracy, both of the
    last epoch."""
    return runs.assign(generalisation_gap=runs["train_subset_acc"] - runs["final_test_acc"])


def claim_rows(runs: pd.DataFrame, claim: dict, datasets: list[str]) -> list[dict]:
    """One row per pair of `claim` and per dataset it speaks of where both experiments ran."""
    rows = []
    for a, b in claim["pairs"]:
        speaks = [d for d in datasets if d in claim.get("datasets", datasets)
                  and {a, b} <= set(runs.loc[runs["dataset"] == d, "experiment"])]
        for dataset in speaks:
            row = comparison_row(runs, dataset, a, b, claim["metric"])
            low, high = row["ci_low"], row["ci_high"]
            if row["n"] >= MIN_SEEDS and np.isnan(low):  # every seed the same difference
                low = high = row["mean_difference"]
            margin = claim["margin"] / 100.0
            rows.append({
                **row,
                "claim": claim["claim"],
                "source": claim["source"],
                "expect": claim["expect"],
                "margin": margin if claim["expect"] == "same" else np.nan,
                "verdict": verdict(claim["expect"], METRICS[claim["metric"]], row["n"],
                                   low, high, margin),
            })
        if not speaks:
            rows.append({
                **dict.fromkeys(COLUMNS, np.nan),
                "claim": claim["claim"], "source": claim["source"], "experiment_a": a,
                "experiment_b": b, "dataset": "", "metric": claim["metric"],
                "expect": claim["expect"], "n": 0, "seeds": "", "verdict": NOT_TESTED,
                "note": "no runs of both on a dataset the claim speaks of (n=0)",
            })
    return rows


def claims_frame(runs: pd.DataFrame, claims) -> pd.DataFrame:
    """Every claim's rows, in the order given; datasets in the runs table's order."""
    runs = with_gap(runs)
    datasets = list(dict.fromkeys(runs["dataset"]))
    rows = [row for claim in checked_claims(claims) for row in claim_rows(runs, claim, datasets)]
    return pd.DataFrame(rows, columns=list(COLUMNS)).reset_index(drop=True)


def _display(frame: pd.DataFrame) -> pd.DataFrame:
    def pp(value) -> str:
        return "" if pd.isna(value) else f"{value * 100.0:+.2f}"

    def expect(row) -> str:
        if row.expect == "same":
            return f"same (±{row.margin * 100.0:g} pp)"
        return str(row.expect)

    return pd.DataFrame(
        [
            {
                "claim": r.claim,
                "A − B": f"{r.experiment_a} − {r.experiment_b}",
                "dataset": r.dataset,
                "metric": r.metric,
                "expect": expect(r),
                "n": str(r.n),
                "seeds": r.seeds,
                "A − B (pp)": pp(r.mean_difference),
                f"{CONFIDENCE:.0%} interval (pp)": (
                    "" if pd.isna(r.ci_low) else f"[{pp(r.ci_low)}, {pp(r.ci_high)}]"
                ),
                "verdict": r.verdict,
                "note": "" if pd.isna(r.note) else r.note,
                "source": r.source,
            }
            for r in frame.itertuples()
        ],
        columns=["claim", "A − B", "dataset", "metric", "expect", "n", "seeds", "A − B (pp)",
                 f"{CONFIDENCE:.0%} interval (pp)", "verdict", "note", "source"],
    )


def write_claims(log_paths, claims, out_dir, same_as=(), labels=None) -> None:
    """Write claims.{csv,md,html} into `out_dir` (claims checked and every log read first;
    `same_as`, `labels`: see `imgzoo.aggregate.read_logs`)."""
    claims = checked_claims(claims)
    frame = claims_frame(runs_frame(read_logs(log_paths, same_as, labels)), claims)
    note = _NOTE if len(frame) else "No claims are configured for this study (compare.claims)."
    write_table(
        out_dir,
        "claims",
        frame,
        _display(frame),
        title="imgzoo: the write-up's claims, tested over seeds",
        note=note,
        text_columns=_TEXT_COLUMNS,
    )
