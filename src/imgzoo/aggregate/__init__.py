"""Aggregation: run logs in, tables and figures out.

- `tables.write_tables(log_paths, out_dir)`: runs.{csv,md,html} and summary.{csv,md,html}
- `curves.write_curves(log_paths, out_png, title=None)`: accuracy and loss against epoch
- `weights.write_weight_grid(log_path, out_png)`: a run's first layer as grayscale tiles
- `sweeps.write_sweep_plot(log_paths, sweep_name, out_png, metric=...)`: metric vs swept value
- `reproduction.write_reproduction(log_paths, published, out_dir)`: published numbers against ours
- `comparisons.write_comparisons(log_paths, pairs, out_dir)`: paired A − B over seeds
- `headline.write_headline(log_paths, published, out_dir)`: per dataset the best experiment and
  the reproduction verdicts, also as reStructuredText for the report's front page

It reads run logs only (h5py, numpy, pandas, matplotlib) and never imports torch, the models or
the training loop: the aggregation rules then run in seconds anywhere, a login node included.
This module holds what they share: reading logs and writing outputs atomically. It imports
no submodule, so `import imgzoo.aggregate.tables` does not pull in matplotlib.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

from imgzoo import runlog
from imgzoo.errors import RunLogError


def read_logs(log_paths) -> list[runlog.RunLog]:
    """Read every log, in the order given (the order decides the order of rows and lines).

    An unreadable log raises RunLogError naming its file: a table that silently lacks a run would
    be wrong without anyone noticing. So does a run passed twice, which would count twice.
    """
    logs, seen = [], {}
    for path in log_paths:
        log = runlog.read(path)
        key = (log.attrs["dataset"], log.attrs["experiment"], int(log.attrs["seed"]))
        if key in seen:
            raise RunLogError(
                f"{path}: the same run (dataset, experiment, seed) = {key} as {seen[key]}; "
                "pass each run log once"
            )
        seen[key] = path
        logs.append(log)
    return logs


def run_config(log: runlog.RunLog) -> dict:
    """The run's resolved config; RunLogError naming the file if its JSON is broken."""
    try:
        config = json.loads(log.attrs["config"])
    except (TypeError, ValueError) as e:
        raise RunLogError(f"{log.path}: run log's config attribute is not JSON ({e})") from e
    if not isinstance(config, dict):
        raise RunLogError(f"{log.path}: run log's config attribute is not a JSON object")
    return config


def sweep_of(log: runlog.RunLog) -> dict | None:
    """The `sweep` entry of a run made by a sweep ({"name", "base", "values"}), else None."""
    return run_config(log).get("sweep") or None


@contextmanager
def atomic_output(path):
    """Yield a temporary path beside `path`, renamed to `path` only when the block succeeds.

    Snakemake and the report then never see a half-written table or figure.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def new_figure(figsize):
    """A matplotlib Figure on the Agg canvas, outside pyplot.

    No global backend switch and no pyplot figure registry: nothing leaks between figures and it
    works the same in a headless rule, a test or a notebook that uses another backend.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, out_png) -> None:
    # format is given because the temporary name does not end in .png
    with atomic_output(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
