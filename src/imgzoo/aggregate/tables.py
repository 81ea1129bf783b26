"""The runs table (one row per run) and the summary table (one row per dataset × experiment).

Model selection: a run's headline number, `test_acc_at_best_val`, is the test accuracy at the epoch
of best *validation* accuracy (ties: the earliest such epoch). The test set never picks the epoch;
`final_test_acc` (last epoch) is shown beside it. A run that evaluated every N steps
(`train.eval_every_steps`: the run log's `evaluations`) is chosen among those evaluations
instead: `best_epoch` is then the epoch of the best evaluation, and `best_val_acc` the best
evaluation's. The final accuracies are the last epoch's either way.

Units: the CSVs keep accuracies as fractions in [0, 1], as in the run log, and every number
unrounded; Markdown and HTML show accuracies in percent with 2 decimals, parameter counts and
times with thousands separators. Summary std is the sample standard deviation over seeds
(ddof=1), left blank for a single seed, where it is undefined; the 95% t-interval of the mean of
`test_acc_at_best_val` (`test_acc_at_best_val_ci_low`/`_ci_high`) needs two seeds too. Diverged
runs count in `n_seeds` and `n_diverged` but not in mean ± std. Non-finite values in a log are
treated as missing.

Columns: the CSVs keep their column order (scripts read them); the Markdown and HTML summary
lead with what a reader compares (dataset, experiment, test accuracy at the best-validation
epoch, its interval, the best mark, parameters, seeds), then the other accuracies, then epochs
and times. Columns empty for every row (no sweeps, no repeated runs) are left out of the display.

Rows: by dataset, then experiment in the order of first appearance in `log_paths`, with the
experiments of one sweep together (at the place of the sweep's first experiment), then seed.

Best: the summary's `best` column marks, per dataset, the experiment with the highest mean
`test_acc_at_best_val`. Ties are not broken: every experiment at the maximum is marked (with a
small test set equal means are common, and picking one by name or order would be arbitrary).

Statistics over seeds live in `imgzoo.aggregate.seeds`, writing a table's files in
`imgzoo.aggregate.table_files` (the other tables use both).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from imgzoo.aggregate import read_logs, sweep_of
from imgzoo.aggregate.seeds import CONFIDENCE, finite_interval, mean_std
from imgzoo.aggregate.table_files import format_count, percent, write_table

ACCURACIES = (
    "test_acc_at_best_val",
    "final_test_acc",
    "best_val_acc",
    "final_val_acc",
    "train_subset_acc",
)
# The metric that ranks experiments: test accuracy at the epoch the validation set chose.
SELECTED = "test_acc_at_best_val"
# train_time_s: seconds of training steps; wall_time_s: seconds the whole run took (setup,
# training, evaluation; every attempt of a requeued run together).
METRICS = (*ACCURACIES, "train_time_s", "wall_time_s", "images_per_s")

RUN_COLUMNS = (
    "dataset",
    "sweep",
    "experiment",
    "seed",
    "model",
    "status",
    "params",
    "epochs_completed",
    "best_epoch",
    *METRICS,
    "diverged_epoch",
    "same_run_as",
)
# In the runs frame, not in the runs table: what the summary (epochs_planned) and the
# reproduction table (a run's step evaluations and its best test accuracy) need.
EXTRA_RUN_COLUMNS = ("epochs_planned", "eval_every_steps", "n_evaluations", "best_test_acc")
SUMMARY_KEYS = (
    "dataset",
    "sweep",
    "experiment",
    "best",
    "n_seeds",
    "n_diverged",
    "params",
    "epochs_planned",
)

# Display precision (Markdown / HTML): accuracies are shown in percent.
_DIGITS = {**{m: 2 for m in ACCURACIES}, "train_time_s": 1, "wall_time_s": 1, "images_per_s": 0}
_SCALE = {**{m: 100.0 for m in ACCURACIES}, "train_time_s": 1.0, "wall_time_s": 1.0,
          "images_per_s": 1.0}
# The summary's interval column, as displayed.
INTERVAL = f"{CONFIDENCE:.0%} interval (%)"

# Columns aligned left in Markdown; every other column holds numbers and is aligned right.
TEXT_COLUMNS = (
    "dataset",
    "sweep",
    "experiment",
    "best",
    "model",
    "status",
    "same_run_as",
    "seeds",
)
_NOTE = (
    "Accuracies in percent. test_acc_at_best_val: test accuracy at the epoch of best validation "
    "accuracy (the model-selection metric). Summary: mean ± sample std over seeds (no std for a "
    f"single seed) and the {CONFIDENCE:.0%} t-interval of the mean (two seeds or more); "
    "diverged runs are counted in seeds and left out of mean ± std; best (*) marks the highest "
    "mean test_acc_at_best_val of each dataset (ties: all marked)."
)


def _finite(values) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return np.where(np.isfinite(values), values, np.nan)


def _last(values: np.ndarray) -> float:
    """The last finite value (a diverged run's last row may hold NaN), NaN if none."""
    finite = values[np.isfinite(values)]
    return float(finite[-1]) if finite.size else np.nan


def selection(log) -> dict:
    """Where the run's model is chosen: `best_epoch`, `best_val_acc`, `test_acc_at_best_val`,
    and `best_test_acc` (the best test accuracy there: the test set choosing, as some sources
    did), over its step evaluations where it has them, else over its epochs."""
    points = log.evaluations if len(log.evaluations.get("step", ())) else log.epochs
    epoch = np.asarray(points["epoch"])
    val, test = _finite(points["val_acc"]), _finite(points["test_acc"])
    chosen = {"best_epoch": None, "best_val_acc": np.nan, "test_acc_at_best_val": np.nan,
              "best_test_acc": float(np.nanmax(test)) if np.isfinite(test).any() else np.nan}
    if np.isfinite(val).any():
        best = int(np.nanargmax(val))  # first maximum: ties go to the earliest
        chosen.update(best_epoch=int(epoch[best]), best_val_acc=float(val[best]),
                      test_acc_at_best_val=float(test[best]))
    return chosen


def _eval_every_steps(log) -> int:
    """The run's `train.eval_every_steps` (0: once per epoch only)."""
    return int(log.spec.get("settings", {}).get("train", {}).get("eval_every_steps") or 0)


def run_row(log) -> dict:
    """One run's row of the runs table; the sweep plot uses the same numbers."""
    attrs, series = log.attrs, log.epochs
    val, test = _finite(series["val_acc"]), _finite(series["test_acc"])
    chosen = selection(log)
    times, speeds = _finite(series["train_time"]), _finite(series["images_per_s"])
    sweep = sweep_of(log)
    diverged_epoch = int(attrs.get("diverged_epoch", -1))
    return {
        "dataset": str(attrs["dataset"]),
        "sweep": str(sweep["name"]) if sweep else "",
        "experiment": str(attrs["experiment"]),
        "seed": int(attrs["seed"]),
        "model": str(attrs.get("model") or attrs["family"]),  # the label read_logs gives
        "status": str(attrs["status"]),
        "params": int(attrs["num_params"]),
        "epochs_completed": int(attrs["epochs_completed"]),
        "epochs_planned": int(attrs["epochs_planned"]),
        "best_epoch": chosen["best_epoch"],
        "test_acc_at_best_val": chosen["test_acc_at_best_val"],
        "final_test_acc": _last(test),
        "best_val_acc": chosen["best_val_acc"],
        "final_val_acc": _last(val),
        "train_subset_acc": _last(_finite(series["train_subset_acc"])),
        "train_time_s": float(np.nansum(times)) if np.isfinite(times).any() else np.nan,
        "wall_time_s": float(attrs.get("wall_time_s", np.nan)),
        "images_per_s": float(np.nanmean(speeds)) if np.isfinite(speeds).any() else np.nan,
        "diverged_epoch": diverged_epoch if diverged_epoch >= 0 else None,
        # a run with the same settings as another was not trained again: whose numbers these are
        "same_run_as": str(attrs.get("same_run_as", "")),
        # not shown in the runs table: for the reproduction table's like-with-like numbers
        "eval_every_steps": _eval_every_steps(log),
        "n_evaluations": len(log.evaluations.get("step", ())),
        "best_test_acc": chosen["best_test_acc"],
    }


def runs_frame(logs) -> pd.DataFrame:
    """All runs' rows (with EXTRA_RUN_COLUMNS, which the runs table does not show), in table
    order."""
    rows = [run_row(log) for log in logs]
    first_seen: dict[str, int] = {}  # experiment or "sweep:<name>" -> first position in logs
    for i, row in enumerate(rows):
        first_seen.setdefault(row["experiment"], i)
        if row["sweep"]:
            first_seen.setdefault("sweep:" + row["sweep"], i)
    frame = pd.DataFrame(rows, columns=[*RUN_COLUMNS, *EXTRA_RUN_COLUMNS])
    frame["_group"] = [
        first_seen["sweep:" + r["sweep"]] if r["sweep"] else first_seen[r["experiment"]]
        for r in rows
    ]
    frame["_order"] = [first_seen[r["experiment"]] for r in rows]
    frame = frame.sort_values(["dataset", "_group", "_order", "seed"], kind="stable")
    frame = frame.drop(columns=["_group", "_order"]).reset_index(drop=True)
    for column in ("best_epoch", "diverged_epoch"):  # integers that may be blank
        frame[column] = frame[column].astype("Int64")
    return frame


def summary_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset × experiment, in the runs table's order."""
    rows = []
    for (dataset, sweep, experiment), group in runs.groupby(
        ["dataset", "sweep", "experiment"], sort=False
    ):
        good = group[group["status"] == "completed"]  # not diverged, nor unfinished
        row = {
            "dataset": dataset,
            "sweep": sweep,
            "experiment": experiment,
            "n_seeds": len(group),
            "n_diverged": int((group["status"] == "diverged").sum()),
            "params": int(group["params"].iloc[0]),
            # what the experiment asked for: a diverged seed's completed count says less
            "epochs_planned": int(group["epochs_planned"].max()),
        }
        for metric in METRICS:
            row[f"{metric}_mean"], row[f"{metric}_std"] = mean_std(good[metric])
        row[f"{SELECTED}_ci_low"], row[f"{SELECTED}_ci_high"] = finite_interval(good[SELECTED])
        rows.append(row)
    columns = [
        *SUMMARY_KEYS,
        *(f"{m}_{s}" for m in METRICS for s in ("mean", "std")),
        # added after the others: scripts that read the columns by position keep working
        f"{SELECTED}_ci_low",
        f"{SELECTED}_ci_high",
    ]
    summary = pd.DataFrame(rows, columns=columns)
    summary["best"] = best_mask(summary)
    return summary


def best_mask(summary: pd.DataFrame) -> pd.Series:
    """True for each dataset's experiment(s) with the highest mean `SELECTED`; all tied ones.

    An experiment without a mean (every seed diverged) is never the best. Means equal to within
    1e-12 are a tie: the mean of the same numbers summed in another order may differ in the
    last bit.
    """
    means = summary[f"{SELECTED}_mean"].astype(float)
    top = means.groupby(summary["dataset"]).transform("max")
    return pd.Series(np.isfinite(means) & (means >= top - 1e-12), index=summary.index)


def format_number(value, metric: str) -> str:
    """A value of one of METRICS as the Markdown/HTML tables show it (thousands separated)."""
    if pd.isna(value):
        return ""
    return f"{value * _SCALE[metric]:,.{_DIGITS[metric]}f}"


def _header(metric: str) -> str:
    return f"{metric} (%)" if metric in ACCURACIES else metric


def _without_empty(shown: pd.DataFrame, optional) -> pd.DataFrame:
    """`shown` without those `optional` columns that are empty in every row."""
    empty = [c for c in optional if c in shown and not shown[c].astype(bool).any()]
    return shown.drop(columns=empty)


# The runs table as displayed: the run and its accuracies first, then size, time and the rest.
RUN_DISPLAY = (
    "dataset",
    "experiment",
    "seed",
    "status",
    "test_acc_at_best_val",
    "best_epoch",
    "final_test_acc",
    "best_val_acc",
    "final_val_acc",
    "train_subset_acc",
    "params",
    "epochs_completed",
    "model",
    "sweep",
    "train_time_s",
    "wall_time_s",
    "images_per_s",
    "diverged_epoch",
    "same_run_as",
)


def _runs_display(runs: pd.DataFrame) -> pd.DataFrame:
    shown = runs[list(RUN_DISPLAY)].astype(object)
    for metric in METRICS:
        shown[metric] = [format_number(v, metric) for v in runs[metric]]
    shown["params"] = [format_count(v) for v in runs["params"]]
    shown = shown.map(lambda v: "" if v is None or v is pd.NA else str(v))
    shown = _without_empty(shown, ("sweep", "diverged_epoch", "same_run_as"))
    return shown.rename(columns={m: _header(m) for m in METRICS})


def _mean_std(summary: pd.DataFrame, metric: str) -> list[str]:
    pairs = zip(summary[f"{metric}_mean"], summary[f"{metric}_std"], strict=True)
    return [
        format_number(m, metric) + (f" ± {format_number(s, metric)}" if not pd.isna(s) else "")
        for m, s in pairs
    ]


def _seeds(summary: pd.DataFrame) -> list[str]:
    return [
        f"{n} ({d} diverged)" if d else str(n)
        for n, d in zip(summary["n_seeds"], summary["n_diverged"], strict=True)
    ]


def _summary_display(summary: pd.DataFrame) -> pd.DataFrame:
    """The comparison first (accuracy, interval, best, size, seeds), then the rest."""
    lows, highs = summary[f"{SELECTED}_ci_low"], summary[f"{SELECTED}_ci_high"]
    shown = pd.DataFrame(
        {
            "dataset": summary["dataset"].astype(str),
            "experiment": summary["experiment"].astype(str),
            _header(SELECTED): _mean_std(summary, SELECTED),
            INTERVAL: [
                "" if pd.isna(lo) else f"[{percent(lo)}, {percent(hi)}]"
                for lo, hi in zip(lows, highs, strict=True)
            ],
            "best": ["*" if best else "" for best in summary["best"]],
            "params": [format_count(v) for v in summary["params"]],
            "seeds": _seeds(summary),
        }
    )
    for metric in METRICS:
        if metric != SELECTED:
            shown[_header(metric)] = _mean_std(summary, metric)
        if metric == ACCURACIES[-1]:  # after the accuracies: what the runs cost
            shown["epochs_planned"] = summary["epochs_planned"].astype(str)
            shown["sweep"] = summary["sweep"].astype(str)
    return _without_empty(shown, ("sweep",))


def write_tables(log_paths, out_dir, same_as=(), labels=None) -> None:
    """Write runs.{csv,md,html} and summary.{csv,md,html} into `out_dir` (`same_as`: runs shown
    under another name, see `imgzoo.aggregate.read_logs`).

    Every log is read before any file is written, so an unreadable log (RunLogError naming
    it) leaves the previous tables as they were.
    """
    runs = runs_frame(read_logs(log_paths, same_as, labels))
    summary = summary_frame(runs)
    write_table(
        out_dir,
        "runs",
        runs[list(RUN_COLUMNS)],
        _runs_display(runs),
        title="imgzoo runs",
        note=_NOTE,
        text_columns=TEXT_COLUMNS,
    )
    write_table(
        out_dir,
        "summary",
        summary,
        _summary_display(summary),
        title="imgzoo summary over seeds",
        note=_NOTE,
        text_columns=TEXT_COLUMNS,
    )
