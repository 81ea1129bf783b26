"""The reproduction table: every published number beside ours, and whether it lies inside our
95% interval over seeds.

Published numbers arrive as a list of dicts, one per (experiment, dataset) (the config's
`Study.published()`, or JSON on the command line): `experiment`, `dataset`, `value` (in
PERCENT, as write-ups print it), `measures`, `source` and an optional `note`.

Ours is the metric that measures the same thing (`OURS`): a `best_test` number (the best epoch
chosen on the test set) is set against our `test_acc_at_best_val` (the epoch chosen on
validation, the honest version), `final_test` against `final_test_acc`, `best_val` against
`best_val_acc`, `final_val` against `final_val_acc`. Runs that evaluated every N steps as their
source did (`train.eval_every_steps`) meet a `best_test` number like with like: with their best
test evaluation (`best_test_acc`), chosen on the test set as the source's was, and the
comparability column says so (the runs table keeps the honest number). Ours is the mean ±
sample std over the experiment's completed seeds on that dataset, as in the summary: diverged
runs are left out and counted, unfinished ones (partial tables) left out.

Verdict (`n` seeds, 95% Student-t interval of our mean from scipy, `seeds.interval`): `match`
when the published value lies inside the interval (bounds included), `beat` when the whole
interval lies above it, `miss` when below. With one seed there is no interval, and a published
number without any run of ours is a row that says so: nothing is left out silently.

Comparability: where the published number does not measure what ours does, the `comparability`
column says why: the given note, and for `best_test` always that the source chose its epoch on
the test set (added in front of the note unless the note itself speaks of the test set).

Units as in the other tables: the CSV keeps fractions (the published value divided by 100),
Markdown and HTML show percent and differences in percentage points.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

from imgzoo.aggregate import read_logs
from imgzoo.aggregate.seeds import CONFIDENCE, finite_interval, mean_std
from imgzoo.aggregate.table_files import percent, write_table
from imgzoo.aggregate.tables import runs_frame
from imgzoo.errors import ConfigError

# What a published number measures -> our run-table metric that measures the same.
OURS = {
    "best_test": "test_acc_at_best_val",
    "final_test": "final_test_acc",
    "best_val": "best_val_acc",
    "final_val": "final_val_acc",
}

MATCH, BEAT, MISS = "match", "beat", "miss"
NO_RUNS, ONE_SEED = "no runs (n=0)", "one seed: no interval"
JUDGED = (MATCH, BEAT, MISS)

SELECTED_ON_TEST = (
    "the source chose its epoch on the test set, so its number is optimistic "
    "(ours: the test accuracy at the best-validation epoch)"
)
# `best_test` against runs that evaluated as the source did: ours chosen on the test set too.
BEST_TEST_EVALUATION = "best_test_acc"
LIKE_WITH_LIKE = (
    "like with like: ours is also the best of the test evaluations every {every} steps "
    "(chosen on the test set, optimistic as the source's; the honest number is in the runs table)"
)

ENTRY_KEYS = {"experiment": str, "dataset": str, "value": numbers.Real, "measures": str}
OPTIONAL_KEYS = {"source": str, "note": str}

COLUMNS = (
    "dataset",
    "experiment",
    "measures",
    "ours_metric",
    "published",
    "n",
    "n_diverged",
    "ours_mean",
    "ours_std",
    "difference",
    "ci_low",
    "ci_high",
    "verdict",
    "comparability",
    "source",
)
_TEXT_COLUMNS = ("dataset", "experiment", "measures", "verdict", "comparability", "source")
_NOTE = (
    "Accuracies in percent. ours: mean ± sample std over seeds (diverged runs left out) of the "
    "metric that measures what the published number measures (best_test: our test accuracy at "
    "the best-validation epoch; final_test, best_val, final_val: ours at the same place). "
    "difference: ours − published, in percentage points. verdict: match = the published value "
    f"lies inside our {CONFIDENCE:.0%} t-interval over seeds, beat = our interval lies above "
    "it, miss = below it; one seed gives no interval. comparability: why the published number "
    "does not measure the same as ours, where that holds."
)


def published_entries(raw) -> list[dict]:
    """The published numbers checked: a list of dicts with the keys above; ConfigError naming
    the entry and key otherwise. `note` and `source` default to ''."""
    if not isinstance(raw, list):
        raise ConfigError("published numbers: expected a list of entries, one per experiment")
    entries = []
    for i, entry in enumerate(raw):
        where = f"published numbers, entry {i}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a mapping, got {entry!r}")
        unknown = sorted(set(entry) - set(ENTRY_KEYS) - set(OPTIONAL_KEYS))
        if unknown:
            allowed = ", ".join([*ENTRY_KEYS, *OPTIONAL_KEYS])
            raise ConfigError(f"{where}: unknown key '{unknown[0]}' (known: {allowed})")
        for key in ENTRY_KEYS:
            if key not in entry:
                raise ConfigError(f"{where}: '{key}' is missing")
        for key, kind in {**ENTRY_KEYS, **OPTIONAL_KEYS}.items():
            value = entry.get(key)
            if key in OPTIONAL_KEYS and value is None:
                continue
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ConfigError(f"{where}: '{key}' = {value!r} is not a {kind.__name__}")
        if entry["measures"] not in OURS:
            raise ConfigError(
                f"{where}: 'measures' = {entry['measures']!r} is not one of {', '.join(OURS)}"
            )
        if not 0 <= entry["value"] <= 100:
            raise ConfigError(f"{where}: 'value' = {entry['value']} is not a percentage (0-100)")
        entries.append(
            {**entry, "source": entry.get("source") or "", "note": entry.get("note") or ""}
        )
    return entries


def comparability(entry: dict, evaluated_every: str | None = None) -> str:
    """Why the published number does not measure what ours does ('' where it does), or for a
    `best_test` number met by runs evaluated every `evaluated_every` steps, that it does."""
    note = entry.get("note") or ""
    if entry["measures"] == "best_test" and evaluated_every:
        like = LIKE_WITH_LIKE.format(every=evaluated_every)
        return f"{like}; {note}" if note else like
    if entry["measures"] == "best_test" and "test set" not in note.lower():
        return f"{SELECTED_ON_TEST}; {note}" if note else SELECTED_ON_TEST
    return note


def _ours_metric(entry: dict, runs: pd.DataFrame) -> str:
    """The runs-table metric that measures what `entry` does for these runs: OURS, but the best
    test evaluation for a `best_test` number where every run evaluated every N steps."""
    if entry["measures"] == "best_test" and len(runs) and (runs["n_evaluations"] > 0).all():
        return BEST_TEST_EVALUATION
    return OURS[entry["measures"]]


def verdict(published: float, n: int, low: float, high: float) -> str:
    if n == 0:
        return NO_RUNS
    if n == 1:
        return ONE_SEED
    if published < low:
        return BEAT
    if published > high:
        return MISS
    return MATCH


def _evaluated_every(runs: pd.DataFrame) -> str:
    """The runs' `eval_every_steps`, as text ("100", or "100/200" where they differ)."""
    return "/".join(str(n) for n in sorted(set(runs["eval_every_steps"])))


def reproduction_row(runs: pd.DataFrame, entry: dict) -> dict:
    """One published number against our runs of its experiment on its dataset."""
    mine = runs[(runs["dataset"] == entry["dataset"]) & (runs["experiment"] == entry["experiment"])]
    good = mine[mine["status"] == "completed"]  # as the summary: not diverged, nor unfinished
    metric = _ours_metric(entry, good)
    every = _evaluated_every(good) if metric == BEST_TEST_EVALUATION else None
    values = good[metric].to_numpy(dtype=np.float64)
    values = values[np.isfinite(values)]
    mean, std = mean_std(values)
    low, high = finite_interval(values)
    published = entry["value"] / 100.0
    return {
        "dataset": entry["dataset"],
        "experiment": entry["experiment"],
        "measures": entry["measures"],
        "ours_metric": metric,
        "published": published,
        "n": int(values.size),
        "n_diverged": int((mine["status"] == "diverged").sum()),
        "ours_mean": mean,
        "ours_std": std,
        "difference": mean - published,
        "ci_low": low,
        "ci_high": high,
        "verdict": verdict(published, values.size, low, high),
        "comparability": comparability(entry, every),
        "source": entry["source"],
    }


def reproduction_frame(runs: pd.DataFrame, published) -> pd.DataFrame:
    """One row per published number, by dataset (in the runs table's order, datasets without
    runs after them), then in the order given."""
    rows = [reproduction_row(runs, entry) for entry in published_entries(published)]
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    order = {d: i for i, d in enumerate(dict.fromkeys([*runs["dataset"], *frame["dataset"]]))}
    frame["_order"] = frame["dataset"].map(order)
    frame = frame.sort_values("_order", kind="stable").drop(columns="_order")
    return frame.reset_index(drop=True)


def _display(frame: pd.DataFrame) -> pd.DataFrame:
    def ours(row) -> str:
        if row.n == 0:
            return ""
        return percent(row.ours_mean) + (f" ± {percent(row.ours_std)}" if row.n > 1 else "")

    def pp(value) -> str:
        return "" if pd.isna(value) else f"{value * 100.0:+.2f}"

    def bounds(row) -> str:
        return "" if row.n < 2 else f"[{percent(row.ci_low)}, {percent(row.ci_high)}]"

    rows = frame.itertuples()
    return pd.DataFrame(
        [
            {
                "dataset": r.dataset,
                "experiment": r.experiment,
                "published (%)": percent(r.published),
                "measures": r.measures,
                "ours (%)": ours(r),
                "n": str(r.n) + (f" (+{r.n_diverged} diverged)" if r.n_diverged else ""),
                "difference (pp)": pp(r.difference),
                f"{CONFIDENCE:.0%} interval (%)": bounds(r),
                "verdict": r.verdict,
                "comparability": r.comparability,
                "source": r.source,
            }
            for r in rows
        ],
        columns=[
            "dataset",
            "experiment",
            "published (%)",
            "measures",
            "ours (%)",
            "n",
            "difference (pp)",
            f"{CONFIDENCE:.0%} interval (%)",
            "verdict",
            "comparability",
            "source",
        ],
    )


def write_reproduction(log_paths, published, out_dir, same_as=(), labels=None) -> None:
    """Write reproduction.{csv,md,html} into `out_dir` (`same_as`: runs shown under another
    name, see `imgzoo.aggregate.read_logs`).

    The published numbers are checked and every log is read before anything is written.
    """
    published = published_entries(published)
    frame = reproduction_frame(runs_frame(read_logs(log_paths, same_as, labels)), published)
    note = _NOTE if len(frame) else "No published numbers are given for this study."
    write_table(
        out_dir,
        "reproduction",
        frame,
        _display(frame),
        title="imgzoo: published numbers against ours",
        note=note,
        text_columns=_TEXT_COLUMNS,
    )
