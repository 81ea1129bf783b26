"""Aggregation: run logs in, tables and figures out.

- `tables.write_tables(log_paths, out_dir, same_as=())`: runs.{csv,md,html}, summary.{csv,md,html}
- `curves.write_curves(log_paths, out_png, title=None, same_as=())`: accuracy and loss vs epoch
- `weights.write_weight_grid(log_path, out_png)`: a run's first layer as grayscale tiles
- `sweeps.write_sweep_plot(log_paths, sweep_name, out_png, metric=..., same_as=())`: metric vs
  swept value
- `reproduction.write_reproduction(log_paths, published, out_dir, same_as=())`: published
  numbers against ours
- `comparisons.write_comparisons(log_paths, pairs, out_dir, same_as=())`: paired A − B over seeds
- `headline.write_headline(log_paths, published, out_dir, same_as=())`: per dataset the best
  experiment and the reproduction verdicts, also as reStructuredText for the report's front page
(`same_as`: runs shown under another name, see `read_logs`.)

It reads run logs only (h5py, numpy, pandas, matplotlib, scipy) and never imports torch, the
models or the training loop: the aggregation rules then run in seconds anywhere, a login node
included. This module holds what they share: reading logs and writing outputs atomically
(`imgzoo.atomic`). It imports
no submodule, so `import imgzoo.aggregate.tables` does not pull in matplotlib.
"""

from __future__ import annotations

import dataclasses
import json

from imgzoo import runlog
from imgzoo.atomic import atomic_output, atomic_write_text
from imgzoo.errors import RunLogError


def read_logs(log_paths, same_as=()) -> list[runlog.RunLog]:
    """Read every log, in the order given (the order decides the order of rows and lines); an
    item may also be a RunLog already in memory (an unfinished run's, say).

    `same_as` lists runs that repeat another run's settings and so were not trained again: each
    entry {"log", "experiment", "sweep"} adds that log once more under the run's own name (and
    sweep), its attribute `same_run_as` naming the experiment that trained it.

    An unreadable log raises RunLogError naming its file: a table that silently lacks a run would
    be wrong without anyone noticing. So does a run passed twice, which would count twice.
    """
    given = [p if isinstance(p, runlog.RunLog) else runlog.read(p) for p in log_paths]
    by_path = {str(log.path): log for log in given}
    repeats = [
        shown_as(
            by_path.get(str(entry["log"])) or runlog.read(entry["log"]),
            entry["experiment"],
            entry.get("sweep"),
        )
        for entry in same_as
    ]
    logs, seen = [], {}
    for log in [*given, *repeats]:
        path = log.path
        key = (log.attrs["dataset"], log.attrs["experiment"], int(log.attrs["seed"]))
        if key in seen:
            raise RunLogError(
                f"{path}: the same run (dataset, experiment, seed) = {key} as {seen[key]}; "
                "pass each run log once"
            )
        seen[key] = path
        logs.append(log)
    return logs


def shown_as(log: runlog.RunLog, experiment: str, sweep: dict | None) -> runlog.RunLog:
    """`log` under another experiment name (and sweep): a run whose settings equal the logged
    run's, which the workflow therefore did not train twice."""
    config = {**run_config(log), "experiment": experiment}
    config.pop("sweep", None)
    if sweep:
        config["sweep"] = sweep
    attrs = {
        **log.attrs,
        "experiment": experiment,
        "config": json.dumps(config),
        "same_run_as": str(log.attrs["experiment"]),
    }
    return dataclasses.replace(log, attrs=attrs)


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


def write_text(path, text: str) -> None:
    atomic_write_text(path, text)


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
