"""A sweep's metric against the swept value, mean ± std over seeds as error bars.

The runs of a sweep are those whose config carries `sweep.name`; `sweep.values` holds each point's
swept keys. The x-axis is one key (the first swept key unless `x` is given); every combination
of the other keys is a line of its own. The per-run numbers come from `tables.run_row`, and mean
± std follow the tables (diverged runs left out, sample std): the plot and the summary agree.
"""

from __future__ import annotations

import json
import numbers

import numpy as np

from imgzoo import schema
from imgzoo.aggregate import new_figure, read_logs, save_figure, sweep_of
from imgzoo.aggregate.seeds import mean_std
from imgzoo.aggregate.tables import ACCURACIES, METRICS, run_row
from imgzoo.errors import ConfigError


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _hashable(value):
    """A swept value usable as a point's key: lists and dicts (JSON) become their JSON text."""
    return json.dumps(value) if isinstance(value, list | dict) else value


def axis_kind(values) -> str:
    """'log' for positive numbers spanning more than a decade, 'linear' for other numbers,
    'category' for anything else (strings, booleans, lists)."""
    if not all(_is_number(v) for v in values):
        return "category"
    if all(v > 0 for v in values) and max(values) / min(values) > 10:
        return "log"
    return "linear"


def _points(logs, sweep_name: str, x: str | None):
    """The sweep's runs as (x key, base, rows); each row has the run_row numbers plus its
    swept `values`."""
    rows, base = [], None
    for log in logs:
        sweep = sweep_of(log)
        if not sweep or sweep.get("name") != sweep_name:
            continue
        base = sweep.get("base", base)
        values = {k: _hashable(v) for k, v in (sweep.get("values") or {}).items()}
        rows.append({**run_row(log), "values": values})
    if not rows:
        raise ConfigError(f"no run of sweep '{sweep_name}' among {len(logs)} run logs")
    keys = list(dict.fromkeys(k for row in rows for k in row["values"]))
    if x is None:
        x = keys[0] if keys else None
    if x not in keys:
        raise ConfigError(f"sweep '{sweep_name}' does not sweep '{x}' (it sweeps {keys})")
    return x, base, rows


def _line_label(values: dict, x: str, dataset: str, several_datasets: bool) -> str:
    parts = [f"{k}={v}" for k, v in values.items() if k != x]
    if several_datasets:
        parts.append(dataset)
    return ", ".join(parts)


def write_sweep_plot(
    log_paths,
    sweep_name: str,
    out_png,
    metric: str | None = None,
    x: str | None = None,
    same_as=(),
    labels=None,
) -> None:
    """Plot `metric` of sweep `sweep_name` against its swept value `x` into `out_png`; `same_as`:
    sweep points whose numbers are another run's (see `imgzoo.aggregate.read_logs`); `metric`
    None: the schema's default of a sweep's metric."""
    metric = metric or schema.default("sweeps", "metric")
    if metric not in METRICS:
        raise ConfigError(f"unknown sweep metric '{metric}' (known: {', '.join(METRICS)})")
    x, base, rows = _points(read_logs(log_paths, same_as, labels), sweep_name, x)
    datasets = list(dict.fromkeys(row["dataset"] for row in rows))
    xs_all = list(dict.fromkeys(row["values"].get(x) for row in rows))
    kind = axis_kind(xs_all)
    scale = 100.0 if metric in ACCURACIES else 1.0

    fig = new_figure((8, 5.5))
    ax = fig.add_subplot()
    position = {v: i for i, v in enumerate(xs_all)}  # categorical: config order
    for label, points in _lines(rows, x, metric, several_datasets=len(datasets) > 1).items():
        xs = sorted(points) if kind != "category" else list(points)
        where = [position[p] for p in xs] if kind == "category" else xs
        _draw_line(ax, label, where, [points[p] for p in xs], scale)
    _x_axis(ax, x, kind, xs_all)
    ax.set_ylabel(f"{metric} (%)" if scale == 100.0 else metric)
    ax.grid(alpha=0.3)
    handles, names = ax.get_legend_handles_labels()
    if names:
        unique = dict(zip(names, handles, strict=True))  # one "all seeds diverged" entry
        ax.legend(unique.values(), unique.keys(), fontsize=9)
    ax.set_title(
        f"sweep {sweep_name} (base {base}) on {', '.join(datasets)}\n"
        f"{metric}: mean ± std over seeds"
    )
    save_figure(fig, out_png)


def _lines(rows, x: str, metric: str, several_datasets: bool) -> dict[str, dict]:
    """Line label -> x value -> the metric of every run (None for a diverged run)."""
    lines: dict[str, dict] = {}
    for row in rows:
        label = _line_label(row["values"], x, row["dataset"], several_datasets)
        value = None if row["status"] == "diverged" else row[metric]
        lines.setdefault(label, {}).setdefault(row["values"].get(x), []).append(value)
    return lines


def _draw_line(ax, label: str, where: list, values: list[list], scale: float) -> None:
    """One line: mean ± std over seeds at each point; a point whose every seed diverged has no
    mean, and is marked on the axis floor instead."""
    stats = [mean_std([v for v in point if v is not None]) for point in values]
    means = np.array([m for m, _ in stats]) * scale
    stds = np.nan_to_num(np.array([s for _, s in stats]) * scale)  # one seed: no bar
    ax.errorbar(where, means, yerr=stds, marker="o", capsize=4, label=label or None)
    lost = [w for w, point in zip(where, values, strict=True) if all(v is None for v in point)]
    if lost:
        ax.plot(lost, [0.02] * len(lost), "x", color="red", markersize=9,
                transform=ax.get_xaxis_transform(), label="all seeds diverged")


def _x_axis(ax, x: str, kind: str, xs_all: list) -> None:
    if kind == "log":
        ax.set_xscale("log")
    if kind == "category":
        ax.set_xticks(range(len(xs_all)), [str(v) for v in xs_all])
    elif len(xs_all) <= 12:
        ax.set_xticks(sorted(xs_all), [f"{v:g}" for v in sorted(xs_all)])
        ax.minorticks_off()
    ax.set_xlabel(x)
