"""The headline of a study, per dataset: the best experiment, and how many published numbers we
match within our interval, beat or miss.

The numbers are the summary table's (`best`: the highest mean test accuracy at the
best-validation epoch, ties all named) and the reproduction table's verdicts, computed by the
same functions from the same logs, so the headline cannot disagree with the tables.

Besides headline.{csv,md,html} it writes headline.rst, the reStructuredText that the report's
front page (workflow/report/workflow.rst) includes: Snakemake renders that page with Jinja and
docutils, and docutils' `include` directive pulls this file in when the report is built.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from imgzoo.aggregate import read_logs, write_text
from imgzoo.aggregate.reproduction import (
    BEAT,
    CONFIDENCE,
    MATCH,
    MISS,
    published_entries,
    reproduction_frame,
)
from imgzoo.aggregate.tables import SELECTED, percent, runs_frame, summary_frame, write_table

COLUMNS = (
    "dataset",
    "best",
    "best_mean",
    "best_std",
    "best_n",
    "published",
    "matched",
    "beaten",
    "missed",
    "not_judged",
    "not_comparable",
)
_TEXT_COLUMNS = ("dataset", "best experiment")
_NOTE = (
    f"best experiment: the highest mean {SELECTED} (test accuracy at the best-validation epoch) "
    "over seeds, ± sample std (n seeds; ties: all named). Published numbers: matched = inside "
    f"our {CONFIDENCE:.0%} t-interval over seeds, beaten = our interval lies above, missed = "
    "below, not judged = fewer than two seeds of ours; not comparable counts those whose source "
    "measured something else (e.g. chose its epoch on the test set), judged all the same: see "
    "the reproduction table."
)


def headline_frame(summary: pd.DataFrame, reproduction: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset (the summary's, then any only the published numbers name); `best`
    is the list of the best experiments' names (several when tied, none without a usable run)."""
    rows = []
    datasets = dict.fromkeys([*summary["dataset"], *reproduction["dataset"]])
    for dataset in datasets:
        best = summary[(summary["dataset"] == dataset) & summary["best"]]
        published = reproduction[reproduction["dataset"] == dataset]
        verdicts = published["verdict"]
        first = best.iloc[0] if len(best) else None
        rows.append(
            {
                "dataset": dataset,
                "best": list(best["experiment"]),
                "best_mean": first[f"{SELECTED}_mean"] if first is not None else float("nan"),
                "best_std": first[f"{SELECTED}_std"] if first is not None else float("nan"),
                "best_n": int(first["n_seeds"] - first["n_diverged"]) if first is not None else 0,
                "published": len(published),
                "matched": int((verdicts == MATCH).sum()),
                "beaten": int((verdicts == BEAT).sum()),
                "missed": int((verdicts == MISS).sum()),
                "not_judged": int((~verdicts.isin([MATCH, BEAT, MISS])).sum()),
                "not_comparable": int((published["comparability"] != "").sum()),
            }
        )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _display(frame: pd.DataFrame, literal=lambda text: text) -> pd.DataFrame:
    """The table as shown; `literal` marks up names (reStructuredText shows them as code)."""

    def selected(row) -> str:
        if pd.isna(row.best_mean):
            return ""
        std = f" ± {percent(row.best_std)}" if not pd.isna(row.best_std) else ""
        return f"{percent(row.best_mean)}{std} (n={row.best_n})"

    return pd.DataFrame(
        {
            "dataset": [literal(d) for d in frame["dataset"]],
            "best experiment": [
                ", ".join(literal(name) for name in names) if names else "none"
                for names in frame["best"]
            ],
            f"{SELECTED} (%)": [selected(row) for row in frame.itertuples()],
            "published numbers": frame["published"].astype(str),
            "matched": frame["matched"].astype(str),
            "beaten": frame["beaten"].astype(str),
            "missed": frame["missed"].astype(str),
            "not judged": frame["not_judged"].astype(str),
            "not comparable": frame["not_comparable"].astype(str),
        }
    )


def _rst_literal(text: str) -> str:
    # names may end in "_" or hold "*": as inline literals docutils reads them as plain text
    return f"``{text}``"


def headline_rst(frame: pd.DataFrame) -> str:
    """The headline as reStructuredText: a table and the note that explains it."""
    from tabulate import tabulate

    shown = _display(frame, literal=_rst_literal)
    table = tabulate(
        shown.values.tolist(), headers=list(shown.columns), tablefmt="rst", disable_numparse=True
    )
    return f"{table}\n\n{_NOTE}\n"


def write_headline(log_paths, published, out_dir, same_as=(), labels=None) -> None:
    """Write headline.{csv,md,html,rst} into `out_dir` (published numbers and logs checked
    first; `same_as`: runs shown under another name, see `imgzoo.aggregate.read_logs`)."""
    published = published_entries(published)
    runs = runs_frame(read_logs(log_paths, same_as, labels))
    frame = headline_frame(summary_frame(runs), reproduction_frame(runs, published))
    # the CSV's cell of tied names: names may hold ", " (a swept list) but never "; "
    data = frame.assign(best=["; ".join(names) for names in frame["best"]])
    write_table(
        out_dir,
        "headline",
        data,
        _display(frame),
        title="imgzoo headline",
        note=_NOTE,
        text_columns=_TEXT_COLUMNS,
    )
    write_text(Path(out_dir) / "headline.rst", headline_rst(frame))
