"""Training curves: train/val accuracy and loss against epoch, one colour per experiment.

The line is the mean over an experiment's completed seeds and the band their min–max (with the
2–5 seeds a study affords, a ±std band would pretend to know a distribution). Diverged runs are
left out of mean and band, as in the tables, and drawn as thin dotted lines of the experiment's
colour that stop where the run diverged, with a cross at the end.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from imgzoo.aggregate import new_figure, read_logs, save_figure

# (series, y label, scale): accuracies are drawn in percent
PANELS = (
    ("train_acc", "train accuracy (%)", 100.0),
    ("val_acc", "val accuracy (%)", 100.0),
    ("train_loss", "train loss", 1.0),
    ("val_loss", "val loss", 1.0),
)
LINESTYLES = ("-", "--", "-.")  # cycled after the 20 colours of tab20 run out


def _experiments(logs) -> dict[str, list]:
    """Logs grouped by experiment in the order of first appearance (the config's order).

    When the logs span several datasets, each dataset's runs of an experiment are a line of
    their own.
    """
    several = len({log.attrs["dataset"] for log in logs}) > 1
    groups: dict[str, list] = {}
    for log in logs:
        label = str(log.attrs["experiment"])
        if several:
            label += f" ({log.attrs['dataset']})"
        groups.setdefault(label, []).append(log)
    return groups


def _series(log, key: str) -> pd.Series:
    values = np.asarray(log.epochs[key], dtype=np.float64)
    values = np.where(np.isfinite(values), values, np.nan)  # non-finite = missing
    return pd.Series(values, index=np.asarray(log.epochs["epoch"]))


def _style(i: int, n: int) -> dict:
    import matplotlib

    if n <= 10:
        return {"color": matplotlib.colormaps["tab10"](i), "linestyle": "-"}
    return {
        "color": matplotlib.colormaps["tab20"](i % 20),
        "linestyle": LINESTYLES[(i // 20) % len(LINESTYLES)],
    }


def _draw(ax, runs, key: str, scale: float, style: dict) -> None:
    good = [r for r in runs if r.attrs["status"] != "diverged"]
    if good:
        # one column per seed, aligned on epoch; a missing value is skipped, not zero
        frame = pd.concat([_series(r, key) for r in good], axis=1) * scale
        mean = frame.mean(axis=1)
        ax.plot(mean.index, mean.to_numpy(), linewidth=1.6, **style)
        if len(good) > 1:
            ax.fill_between(
                frame.index,
                frame.min(axis=1),
                frame.max(axis=1),
                color=style["color"],
                alpha=0.18,
                linewidth=0,
            )
    for run in runs:
        if run.attrs["status"] == "diverged":
            values = _series(run, key).dropna() * scale
            if len(values):
                ax.plot(
                    values.index,
                    values.to_numpy(),
                    linewidth=0.9,
                    color=style["color"],
                    linestyle=":",
                )
                ax.plot(
                    values.index[-1:],
                    values.to_numpy()[-1:],
                    marker="x",
                    markersize=6,
                    color=style["color"],
                    linestyle="none",
                )


def _label(name: str, runs) -> str:
    diverged = sum(r.attrs["status"] == "diverged" for r in runs)
    return f"{name} ({diverged}/{len(runs)} diverged)" if diverged else name


def _legend(fig, handles) -> None:
    """One legend below the panels, in as many columns as fit the figure's width.

    A label's width depends on its text and the font, so it is measured: start at 6 columns and
    drop one until the legend fits (long sweep-point names need fewer).
    """
    if not handles:
        return
    renderer = fig.canvas.get_renderer()
    for ncol in range(min(len(handles), 6), 0, -1):
        legend = fig.legend(
            handles=handles, loc="outside lower center", ncol=ncol, fontsize=9, frameon=False
        )
        if ncol == 1 or legend.get_window_extent(renderer).width <= 0.98 * fig.bbox.width:
            return
        legend.remove()


def write_curves(log_paths, out_png, title: str | None = None, same_as=(), labels=None) -> None:
    """Draw the 4-panel curve figure of `log_paths` into `out_png` (12×8 in, dpi 100); `same_as`:
    runs drawn under another name too (see `imgzoo.aggregate.read_logs`)."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    logs = read_logs(log_paths, same_as, labels)
    groups = _experiments(logs)
    fig = new_figure((12, 8))
    axes = fig.subplots(2, 2, sharex=True).ravel()
    handles = []
    for i, (name, runs) in enumerate(groups.items()):
        style = _style(i, len(groups))
        for ax, (key, _, scale) in zip(axes, PANELS, strict=True):
            _draw(ax, runs, key, scale, style)
        handles.append(Line2D([], [], linewidth=1.6, label=_label(name, runs), **style))
    for ax, (_, ylabel, _) in zip(axes, PANELS, strict=True):
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[2:]:
        ax.set_xlabel("epoch")
    if title is None:
        datasets = ", ".join(dict.fromkeys(str(log.attrs["dataset"]) for log in logs))
        title = f"{datasets}: mean over seeds, band = min–max, dotted = diverged run"
    fig.suptitle(title)
    _legend(fig, handles)
    save_figure(fig, out_png)
