"""The headline of a study, per dataset: the best experiment, and how many published numbers we
match within our interval, beat or miss.

The numbers are the summary table's (`best`: the highest mean test accuracy at the
best-validation epoch, ties all named) and the reproduction table's verdicts, computed by the
same functions from the same logs, so the headline cannot disagree with the tables.

The headline in words (`sentence`) leads the Markdown and HTML. Besides headline.{csv,md,html}
it writes headline.rst, the body of the report's front page (workflow/report/workflow.rst
includes it: Snakemake renders that page with Jinja and docutils, and docutils' `include`
directive pulls this file in when the report is built): per dataset the sentence, the accuracy
figure (`imgzoo.aggregate.accuracy`) and a link to the learning curves, then links to the tables,
as `imgzoo.frontpage.front_page` lists them. It holds no wide table: the front page's column is
narrow (Snakemake draws the workflow graph beside it) and the table is a report item of its own.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pandas as pd

from imgzoo.aggregate import read_logs, write_text
from imgzoo.aggregate.accuracy import PLOTTED_MEASURES, published_marks
from imgzoo.aggregate.reproduction import (
    BEAT,
    MATCH,
    MISS,
    published_entries,
    reproduction_frame,
)
from imgzoo.aggregate.seeds import CONFIDENCE
from imgzoo.aggregate.table_files import percent, write_table
from imgzoo.aggregate.tables import SELECTED, runs_frame, summary_frame
from imgzoo.errors import ConfigError
from imgzoo.frontpage import report_link

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
# The columns about published numbers, as displayed (only where the study has some).
_VERDICT_COLUMNS = {
    "published": "published numbers",
    "matched": "matched",
    "beaten": "beaten",
    "missed": "missed",
    "not_judged": "not judged",
    "not_comparable": "not comparable",
}
_NOTE_WITHOUT_PUBLISHED = (
    f"Best: the highest mean {SELECTED} (test accuracy at the best-validation epoch) over "
    "seeds, ± sample std (n seeds; ties: all named); diverged runs left out."
)
_NOTE = _NOTE_WITHOUT_PUBLISHED + (
    f" Published numbers: matched = inside our {CONFIDENCE:.0%} t-interval over seeds, beaten = "
    "our interval lies above, missed = below, not judged = fewer than two seeds of ours; not "
    "comparable counts those whose source measured something else (e.g. chose its epoch on the "
    "test set), judged all the same: see the reproduction table."
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


def _counted(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def sentence(row, literal=lambda text: text) -> str:
    """The headline of one dataset in words: "On cifar10, mixer is best: 59.1 ± 0.8% over 3
    seeds; our runs match 4 of 6 published numbers (1 beaten, 1 missed)." No ± for one seed,
    no clause about published numbers where there are none. `row`: a `headline_frame` row."""
    dataset = literal(row.dataset)
    if not row.best:
        text = f"On {dataset}, no experiment has a completed run"
    else:
        names = [literal(name) for name in row.best]
        who = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        verb = "is best" if len(names) == 1 else "are best (tied)"
        std = f" ± {percent(row.best_std, 1)}" if not pd.isna(row.best_std) else ""
        score = f"{percent(row.best_mean, 1)}{std}%"
        text = f"On {dataset}, {who} {verb}: {score} over {_counted(row.best_n, 'seed')}"
    if row.published:
        others = [(row.beaten, "beaten"), (row.missed, "missed"), (row.not_judged, "not judged")]
        detail = ", ".join(f"{n} {what}" for n, what in others if n)
        text += (
            f"; our runs match {row.matched} of {_counted(row.published, 'published number')}"
            + (f" ({detail})" if detail else "")
        )
    return text + "."


def _display(frame: pd.DataFrame) -> pd.DataFrame:
    """The table as shown; the columns about published numbers are left out where the study has
    none."""

    def selected(row) -> str:
        if pd.isna(row.best_mean):
            return ""
        std = f" ± {percent(row.best_std)}" if not pd.isna(row.best_std) else ""
        return f"{percent(row.best_mean)}{std} (n={row.best_n})"

    shown = pd.DataFrame(
        {
            "dataset": list(frame["dataset"]),
            "best experiment": [", ".join(names) if names else "none" for names in frame["best"]],
            f"{SELECTED} (%)": [selected(row) for row in frame.itertuples()],
        }
    )
    if frame["published"].any():
        for column, header in _VERDICT_COLUMNS.items():
            shown[header] = frame[column].astype(str)
    return shown


def _note(frame: pd.DataFrame) -> str:
    return _NOTE if frame["published"].any() else _NOTE_WITHOUT_PUBLISHED


def _data_uri(path) -> str:
    """The PNG at `path` as a data URI: the front page carries its figures inside itself (the
    report is one file; Snakemake's own `embeddedfigure` directive leaves the file's path)."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ConfigError(f"{path}: the front page's figure cannot be read ({error})") from None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _figure(path: str, dataset: str, marked: bool) -> str:
    """The accuracy figure of `dataset` and its caption, as a reStructuredText figure."""
    published = (
        f" A red diamond is a published number that measures {'/'.join(PLOTTED_MEASURES)}: "
        "the source chose its epoch on the test set, so it is optimistic beside ours."
        if marked
        else ""
    )
    # docutils takes a figure's URI over several lines (whitespace removed) and refuses lines
    # over 10,000 characters: the data URI goes in lines of 76
    uri = _data_uri(path)
    lines = "\n   ".join(uri[i : i + 76] for i in range(0, len(uri), 76))
    return (
        f".. figure:: {lines}\n"
        f"   :alt: test accuracy at the best-validation epoch of every experiment on {dataset}\n\n"
        f"   {_rst_literal(dataset)}: each dot a seed's test accuracy at its best-validation "
        f"epoch, the black bar the mean over seeds and its {CONFIDENCE:.0%} t-interval; the "
        f"best experiment in bold.{published}\n"
    )


def _rst_literal(text: str) -> str:
    # names may end in "_" or hold "*": as inline literals docutils reads them as plain text
    return f"``{text}``"


def headline_rst(frame: pd.DataFrame, front_page=None, marked=()) -> str:
    """The front page's answers as reStructuredText: per dataset the headline in words, then
    (with `front_page`, `imgzoo.frontpage.front_page`) its accuracy figure and a link to its
    learning curves; then links to the tables and the note that explains the numbers.
    `marked`: the datasets whose figure marks published numbers (its caption says what)."""
    front_page = front_page or {}
    figures, curves = front_page.get("figures", {}), front_page.get("curves", {})
    parts = []
    for row in frame.itertuples():
        parts.append(f".. rubric:: {row.dataset}\n\n{sentence(row, _rst_literal)}\n")
        if row.dataset in figures:
            parts.append(_figure(figures[row.dataset], row.dataset, row.dataset in marked))
        if row.dataset in curves:
            parts.append(report_link(f"Learning curves on {row.dataset}", curves[row.dataset]))
    tables = front_page.get("tables", [])
    if tables:
        links = "\n".join(f"- {report_link(t['label'], t['path'])}" for t in tables)
        parts.append(f".. rubric:: Tables\n\n{links}\n")
    parts.append(_note(frame))
    return "\n\n".join(part.rstrip("\n") for part in parts) + "\n"


def write_headline(
    log_paths, published, out_dir, same_as=(), labels=None, front_page=None
) -> None:
    """Write headline.{csv,md,html,rst} into `out_dir` (published numbers and logs checked
    first; `same_as`: runs shown under another name, see `imgzoo.aggregate.read_logs`;
    `front_page`: what headline.rst shows and links to, see `headline_rst`)."""
    published = published_entries(published)
    runs = runs_frame(read_logs(log_paths, same_as, labels))
    frame = headline_frame(summary_frame(runs), reproduction_frame(runs, published))
    # the CSV's cell of tied names: names may hold ", " (a swept list) but never "; "
    data = frame.assign(best=["; ".join(names) for names in frame["best"]])
    words = " ".join(sentence(row) for row in frame.itertuples())
    marked = {dataset for dataset, _ in published_marks(runs, published)}
    rst = headline_rst(frame, front_page, marked)  # reads the figures before anything is written
    write_table(
        out_dir,
        "headline",
        data,
        _display(frame),
        title="imgzoo headline",
        note=f"{words} {_note(frame)}",
        text_columns=_TEXT_COLUMNS,
    )
    write_text(Path(out_dir) / "headline.rst", rst)
