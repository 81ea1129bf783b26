"""Aggregation: run logs in, tables and figures out.

- `tables.write_tables(log_paths, out_dir, ...)`: runs.{csv,md,html}, summary.{csv,md,html}
- `curves.write_curves(log_paths, out_png, title=None, ...)`: accuracy and loss vs epoch
- `weights.write_weight_grid(log_path, out_png)`: a run's first layer as grayscale tiles
- `sweeps.write_sweep_plot(log_paths, sweep_name, out_png, metric=..., ...)`: metric vs
  swept value
- `reproduction.write_reproduction(log_paths, published, out_dir, ...)`: published
  numbers against ours
- `comparisons.write_comparisons(log_paths, pairs, out_dir, ...)`: paired A − B over seeds
- `claims.write_claims(log_paths, claims, out_dir, ...)`: a write-up's conclusions, each
  supported, contradicted or not distinguishable by paired A − B over seeds
- `headline.write_headline(log_paths, published, out_dir, ..., front_page=None)`: per dataset
  the best experiment and the reproduction verdicts, in words and as a table; headline.rst is the
  body of the report's front page (with the accuracy figures and links of `front_page`)
- `accuracy.write_accuracy_plot(log_paths, published, out_png, ...)`: per experiment the test
  accuracy at the best-validation epoch, a dot per seed, the mean with its 95% interval
(`same_as`: runs shown under another name; `labels`: how the study names its experiments; see
`read_logs`.)

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


def read_logs(log_paths, same_as=(), labels=None) -> list[runlog.RunLog]:
    """Read every log, in the order given (the order decides the order of rows and lines); an
    item may also be a RunLog already in memory (an unfinished run's, say).

    `same_as` lists runs that repeat another run's settings and so were not trained again: each
    entry {"log", "experiment"} adds that log once more under the run's own name, its attribute
    `same_run_as` naming the experiment that trained it. `labels` says how the study names its
    experiments ({experiment: {"model", "sweep"}}, `imgzoo.config.Study.labels_of`): each log's
    attributes `model` (the model as configured) and `sweep` (a sweep point's {name, base,
    values}, JSON) come from it; without an entry, `model` is the run's family and it belongs to
    no sweep.

    An unreadable log raises RunLogError naming its file: a table that silently lacks a run would
    be wrong without anyone noticing. So does a run passed twice, which would count twice.
    """
    labels = labels or {}
    given = [p if isinstance(p, runlog.RunLog) else runlog.read(p) for p in log_paths]
    by_path = {str(log.path): log for log in given}
    repeats = [
        shown_as(by_path.get(str(entry["log"])) or runlog.read(entry["log"]), entry["experiment"])
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
        logs.append(labelled(log, labels.get(str(log.attrs["experiment"]))))
    return logs


def shown_as(log: runlog.RunLog, experiment: str) -> runlog.RunLog:
    """`log` under another experiment name: a run whose settings equal the logged run's, which
    the workflow therefore did not train twice."""
    attrs = {**log.attrs, "experiment": experiment, "same_run_as": str(log.attrs["experiment"])}
    return dataclasses.replace(log, attrs=attrs)


def labelled(log: runlog.RunLog, label: dict | None) -> runlog.RunLog:
    """`log` with the attributes `model` and `sweep` of its experiment's label."""
    label = label or {}
    attrs = {
        **log.attrs,
        "model": str(label.get("model") or log.attrs["family"]),
        "sweep": json.dumps(label.get("sweep")),
    }
    return dataclasses.replace(log, attrs=attrs)


def sweep_of(log: runlog.RunLog) -> dict | None:
    """The sweep of a run made by a sweep's point ({"name", "base", "values"}), else None (a
    log read by `read_logs`)."""
    return json.loads(log.attrs.get("sweep") or "null")


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
