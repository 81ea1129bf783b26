"""The runs table (one row per run) and the summary table (one row per dataset × experiment).

Model selection: a run's headline number, `test_acc_at_best_val`, is the test accuracy at the epoch
of best *validation* accuracy (ties: the earliest such epoch). The test set never picks the epoch;
`final_test_acc` (last epoch) is shown beside it.

Units: the CSVs keep accuracies as fractions in [0, 1], as in the run log; Markdown and HTML show
them in percent with 2 decimals. Summary std is the sample standard deviation over seeds (ddof=1),
left blank for a single seed, where it is undefined. Diverged runs count in `n_seeds` and
`n_diverged` but not in mean ± std. Non-finite values in a log are treated as missing.

Rows: by dataset, then experiment in the order of first appearance in `log_paths`, with the
experiments of one sweep together (at the place of the sweep's first experiment), then seed.

Best: the summary's `best` column marks, per dataset, the experiment with the highest mean
`test_acc_at_best_val`. Ties are not broken: every experiment at the maximum is marked (with a
small test set equal means are common, and picking one by name or order would be arbitrary).

`write_table` writes any table as CSV (the data) and Markdown and HTML (the display): the
reproduction, comparison and headline tables use it too.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

from imgzoo.aggregate import read_logs, sweep_of, write_text

ACCURACIES = (
    "test_acc_at_best_val",
    "final_test_acc",
    "best_val_acc",
    "final_val_acc",
    "train_subset_acc",
)
# The metric that ranks experiments: test accuracy at the epoch the validation set chose.
SELECTED = "test_acc_at_best_val"
# The confidence of every interval over seeds (reproduction verdicts, paired comparisons).
CONFIDENCE = 0.95
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

# Columns aligned left in Markdown; every other column holds numbers and is aligned right.
TEXT_COLUMNS = ("dataset", "sweep", "experiment", "best", "model", "status", "same_run_as")
_NOTE = (
    "Accuracies in percent. test_acc_at_best_val: test accuracy at the epoch of best validation "
    "accuracy (the model-selection metric). Summary: mean ± sample std over seeds (no std for a "
    "single seed); diverged runs are counted in n_diverged and left out of mean ± std; "
    "best (*) marks the highest mean test_acc_at_best_val of each dataset (ties: all marked)."
)


def _finite(values) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return np.where(np.isfinite(values), values, np.nan)


def _last(values: np.ndarray) -> float:
    """The last finite value (a diverged run's last row may hold NaN), NaN if none."""
    finite = values[np.isfinite(values)]
    return float(finite[-1]) if finite.size else np.nan


def run_row(log) -> dict:
    """One run's row of the runs table; the sweep plot uses the same numbers."""
    attrs, series = log.attrs, log.epochs
    epoch = np.asarray(series["epoch"])
    val, test = _finite(series["val_acc"]), _finite(series["test_acc"])
    best_epoch, best_val, at_best = None, np.nan, np.nan
    if np.isfinite(val).any():
        best = int(np.nanargmax(val))  # first maximum: ties go to the earliest epoch
        best_epoch, best_val, at_best = int(epoch[best]), float(val[best]), float(test[best])
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
        "best_epoch": best_epoch,
        "test_acc_at_best_val": at_best,
        "final_test_acc": _last(test),
        "best_val_acc": best_val,
        "final_val_acc": _last(val),
        "train_subset_acc": _last(_finite(series["train_subset_acc"])),
        "train_time_s": float(np.nansum(times)) if np.isfinite(times).any() else np.nan,
        "wall_time_s": float(attrs.get("wall_time_s", np.nan)),
        "images_per_s": float(np.nanmean(speeds)) if np.isfinite(speeds).any() else np.nan,
        "diverged_epoch": diverged_epoch if diverged_epoch >= 0 else None,
        # a run with the same settings as another was not trained again: whose numbers these are
        "same_run_as": str(attrs.get("same_run_as", "")),
    }


def runs_frame(logs) -> pd.DataFrame:
    """All runs' rows (with `epochs_planned`, which only the summary shows), in table order."""
    rows = [run_row(log) for log in logs]
    first_seen: dict[str, int] = {}  # experiment or "sweep:<name>" -> first position in logs
    for i, row in enumerate(rows):
        first_seen.setdefault(row["experiment"], i)
        if row["sweep"]:
            first_seen.setdefault("sweep:" + row["sweep"], i)
    frame = pd.DataFrame(rows, columns=[*RUN_COLUMNS, "epochs_planned"])
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


def mean_std(values) -> tuple[float, float]:
    """Mean and sample std of the finite values; std NaN (blank) for fewer than two."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return np.nan, np.nan
    std = float(np.std(values, ddof=1)) if values.size > 1 else np.nan
    return float(np.mean(values)), std


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
        rows.append(row)
    columns = [*SUMMARY_KEYS, *(f"{m}_{s}" for m in METRICS for s in ("mean", "std"))]
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


def percent(value, digits: int = 2) -> str:
    """A fraction shown in percent ('' for a missing value)."""
    return "" if pd.isna(value) else f"{value * 100.0:.{digits}f}"


def format_number(value, metric: str) -> str:
    """A value of one of METRICS as the Markdown/HTML tables show it."""
    if pd.isna(value):
        return ""
    return f"{value * _SCALE[metric]:.{_DIGITS[metric]}f}"


def _header(metric: str) -> str:
    return f"{metric} (%)" if metric in ACCURACIES else metric


def _runs_display(runs: pd.DataFrame) -> pd.DataFrame:
    shown = runs[list(RUN_COLUMNS)].astype(object)
    for metric in METRICS:
        shown[metric] = [format_number(v, metric) for v in runs[metric]]
    shown = shown.rename(columns={m: _header(m) for m in METRICS})
    return shown.map(lambda v: "" if v is None or v is pd.NA else str(v))


def _summary_display(summary: pd.DataFrame) -> pd.DataFrame:
    shown = summary[list(SUMMARY_KEYS)].astype(str)
    shown["best"] = ["*" if best else "" for best in summary["best"]]
    for metric in METRICS:
        pairs = zip(summary[f"{metric}_mean"], summary[f"{metric}_std"], strict=True)
        shown[_header(metric)] = [
            format_number(m, metric) + (f" ± {format_number(s, metric)}" if not pd.isna(s) else "")
            for m, s in pairs
        ]
    return shown


_CSS = (
    "body{font-family:system-ui,sans-serif;font-size:13px;margin:1em}"
    "table{border-collapse:collapse}"
    "th,td{padding:3px 9px;border-bottom:1px solid #ddd;text-align:left;white-space:nowrap;"
    "font-variant-numeric:tabular-nums}"
    "th{background:#f2f2f2;position:sticky;top:0}"
    "tbody tr:hover{background:#f7f9fc}"
)


def _html(shown: pd.DataFrame, title: str, note: str) -> str:
    """The table under its title and note (paragraphs apart by a blank line, lines kept)."""
    table = shown.to_html(index=False, border=0)
    paragraphs = "".join(
        f"<p>{'<br>'.join(escape(line) for line in paragraph.splitlines())}</p>\n"
        for paragraph in note.split("\n\n")
    )
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_CSS}</style></head>\n<body>\n<h3>{escape(title)}</h3>\n"
        f"{paragraphs}{table}\n</body></html>\n"
    )


def markdown_table(shown: pd.DataFrame, text_columns=TEXT_COLUMNS) -> str:
    """`shown` as a Markdown table: text columns aligned left, numbers right, kept as written."""
    # disable_numparse: tabulate would otherwise re-format "93.10" as 93.1
    align = ["left" if c in text_columns else "right" for c in shown.columns]
    return shown.to_markdown(index=False, disable_numparse=True, colalign=align)


def write_table(
    out_dir,
    name: str,
    data: pd.DataFrame,
    shown: pd.DataFrame,
    *,
    title: str,
    note: str,
    text_columns=TEXT_COLUMNS,
) -> None:
    """Write `name`.csv (the `data`, numbers unrounded) and `name`.md and `name`.html (the
    `shown` strings, under `title` and `note`) into `out_dir`, each atomically."""
    out_dir = Path(out_dir)
    write_text(out_dir / f"{name}.csv", data.to_csv(index=False))
    markdown = markdown_table(shown, text_columns)
    write_text(out_dir / f"{name}.md", f"## {title}\n\n{note}\n\n{markdown}\n")
    write_text(out_dir / f"{name}.html", _html(shown, title, note))


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
    )
    write_table(
        out_dir,
        "summary",
        summary,
        _summary_display(summary),
        title="imgzoo summary over seeds",
        note=_NOTE,
    )
