"""The figure the report's front page opens with: per dataset, every experiment's test accuracy at
the best-validation epoch (`test_acc_at_best_val`), seed by seed.

One row per experiment, in the summary's order (the runs table's: a sweep's points together, on
a grey band). Each completed seed is a dot; the black bar is the mean over those seeds with its
95% Student-t interval (`seeds.interval`, the summary's `_ci_low`/`_ci_high`); the best
experiment's name is bold (`tables.best_mask`: ties all bold). Diverged runs are left out of mean
and interval, as in the tables, and drawn as grey crosses where they have a number.

A published number is a red diamond on its experiment's row where it measures what the dots
measure: `PLOTTED_MEASURES`, those the reproduction table sets against our
`test_acc_at_best_val` (`best_test`: the source's test accuracy at an epoch it chose on the test
set, so optimistic beside ours). Numbers that measure something else (final or validation
accuracy) are in the reproduction table only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from imgzoo.aggregate import new_figure, read_logs, save_figure
from imgzoo.aggregate.reproduction import OURS, published_entries
from imgzoo.aggregate.seeds import CONFIDENCE
from imgzoo.aggregate.tables import SELECTED, runs_frame, summary_frame

PLOTTED_MEASURES = tuple(m for m, ours in OURS.items() if ours == SELECTED)
# 5 in at dpi 100: 500 px, the front page's column (Snakemake's report gives it 512 px)
WIDTH_IN = 5.0
SEED_COLOR, PUBLISHED_COLOR, LEFT_OUT_COLOR, BAND_COLOR = "#1f77b4", "#d62728", "#7f7f7f", "#eeeeee"
XLABEL = "test accuracy at the best-validation epoch (%)"


def published_marks(runs: pd.DataFrame, published) -> dict[tuple[str, str], list[float]]:
    """(dataset, experiment) -> the published values (fractions) that the figure marks: those
    of `PLOTTED_MEASURES`, on the rows of experiments that ran (`runs`: the runs table)."""
    ran = set(zip(runs["dataset"], runs["experiment"], strict=True))
    marks: dict[tuple[str, str], list[float]] = {}
    for entry in published_entries(published):
        key = (entry["dataset"], entry["experiment"])
        if entry["measures"] in PLOTTED_MEASURES and key in ran:
            marks.setdefault(key, []).append(entry["value"] / 100.0)
    return marks


def _spread(n: int) -> np.ndarray:
    """Vertical offsets of n seeds' dots on one row: apart, so equal numbers stay visible."""
    return np.linspace(-0.18, 0.18, n) if n > 1 else np.zeros(n)


def _draw_row(ax, y: int, row, mine: pd.DataFrame, published: list[float]) -> None:
    values = mine[SELECTED].to_numpy(dtype=float) * 100.0
    good = (mine["status"] == "completed").to_numpy() & np.isfinite(values)
    left_out = ~good & np.isfinite(values)
    # gid: what each mark is, for readers of the SVG and for the tests
    ax.scatter(values[good], y + _spread(good.sum()), s=22, color=SEED_COLOR, alpha=0.8,
               zorder=3, gid="seeds")
    ax.scatter(values[left_out], np.full(left_out.sum(), y), marker="x", s=28,
               color=LEFT_OUT_COLOR, zorder=3, gid="left out")
    mean = getattr(row, f"{SELECTED}_mean") * 100.0
    if np.isfinite(mean):
        low, high = getattr(row, f"{SELECTED}_ci_low"), getattr(row, f"{SELECTED}_ci_high")
        if np.isfinite(low):
            ax.plot([low * 100.0, high * 100.0], [y, y], color="black", linewidth=1.4, zorder=4,
                    gid="interval")
        ax.plot([mean, mean], [y - 0.3, y + 0.3], color="black", linewidth=2.2, zorder=4,
                gid="mean")
    ax.scatter(np.asarray(published) * 100.0, np.full(len(published), y), marker="D", s=42,
               facecolor="none", edgecolor=PUBLISHED_COLOR, linewidth=1.6, zorder=5,
               gid="published")


def _xlim(runs: pd.DataFrame, summary: pd.DataFrame, marks: dict) -> tuple[float, float]:
    """The x range (percent): every dot, mean and mark, and the intervals as far as accuracies
    go. With two seeds an interval can reach far beyond 0-100% (Student's t for 1 degree of
    freedom is 12.7); it is drawn up to the edge, not allowed to squash the dots."""
    points = [
        runs[SELECTED].to_numpy(dtype=float),
        summary[[f"{SELECTED}_{s}" for s in ("mean", "ci_low", "ci_high")]].to_numpy(dtype=float),
        np.asarray([v for values in marks.values() for v in values], dtype=float),
    ]
    values = np.concatenate([p.ravel() for p in points]) * 100.0
    values = np.clip(values[np.isfinite(values)], 0.0, 100.0)
    if values.size == 0:
        return 0.0, 100.0
    low, high = float(values.min()), float(values.max())
    pad = max(0.05 * (high - low), 0.5)
    return low - pad, high + pad


def _sweep_bands(ax, summary: pd.DataFrame) -> None:
    """A grey band behind each run of consecutive rows of one sweep."""
    sweeps = list(summary["sweep"].fillna(""))
    start = 0
    for y in range(1, len(sweeps) + 1):
        if y == len(sweeps) or sweeps[y] != sweeps[start]:
            if sweeps[start]:
                ax.axhspan(start - 0.5, y - 0.5, color=BAND_COLOR, zorder=0, linewidth=0)
            start = y


def _labels(summary: pd.DataFrame) -> list[str]:
    several = summary["dataset"].nunique() > 1
    names = []
    for row in summary.itertuples():
        name = f"{row.experiment} ({row.dataset})" if several else str(row.experiment)
        names.append(name + (f" ({row.n_diverged} diverged)" if row.n_diverged else ""))
    return names


def _legend(fig, marks: dict, runs: pd.DataFrame, summary: pd.DataFrame) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [
        Line2D([], [], marker="o", linestyle="none", color=SEED_COLOR, label="a seed"),
        Line2D([], [], marker="|", markersize=12, markeredgewidth=2.2, color="black",
               linewidth=1.4, label=f"mean, {CONFIDENCE:.0%} interval"),
    ]
    if marks:
        measures = "/".join(PLOTTED_MEASURES)
        handles.append(Line2D([], [], marker="D", linestyle="none", markerfacecolor="none",
                              markeredgecolor=PUBLISHED_COLOR, label=f"published ({measures})"))
    if (runs["status"] != "completed").any():
        handles.append(Line2D([], [], marker="x", linestyle="none", color=LEFT_OUT_COLOR,
                              label="diverged (left out)"))
    if summary["sweep"].fillna("").astype(bool).any():
        handles.append(Patch(color=BAND_COLOR, label="a sweep's points"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 3),
               fontsize=8, frameon=False)


def draw_accuracy(runs: pd.DataFrame, published, title: str | None = None):
    """The figure (a matplotlib Figure) of the runs table `runs` (`tables.runs_frame`)."""
    summary = summary_frame(runs)
    marks = published_marks(runs, published)
    fig = new_figure((WIDTH_IN, 1.4 + 0.32 * len(summary)))
    ax = fig.subplots()
    _sweep_bands(ax, summary)
    for y, row in enumerate(summary.itertuples()):
        mine = runs[(runs["dataset"] == row.dataset) & (runs["experiment"] == row.experiment)]
        _draw_row(ax, y, row, mine, marks.get((row.dataset, row.experiment), []))
    ax.set_yticks(range(len(summary)), _labels(summary), fontsize=9)
    for label, best in zip(ax.get_yticklabels(), summary["best"], strict=True):
        label.set_fontweight("bold" if best else "normal")
    ax.set_ylim(len(summary) - 0.5, -0.5)  # the first experiment on top
    ax.set_xlim(*_xlim(runs, summary, marks))
    ax.set_xlabel(XLABEL, fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    if title is None:
        title = ", ".join(dict.fromkeys(runs["dataset"]))
    ax.set_title(title, fontsize=10)
    _legend(fig, marks, runs, summary)
    return fig


def write_accuracy_plot(
    log_paths, published, out_png, title: str | None = None, same_as=(), labels=None
) -> None:
    """Draw the figure of `log_paths` into `out_png` (5 in wide, dpi 100; published numbers and
    logs checked first; `same_as`, `labels`: see `imgzoo.aggregate.read_logs`)."""
    published = published_entries(published)
    runs = runs_frame(read_logs(log_paths, same_as, labels))
    save_figure(draw_accuracy(runs, published, title), out_png)
