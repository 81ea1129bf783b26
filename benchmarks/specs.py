"""Run specs for the benchmarks, resolved by a study as a run's are (schema defaults, presets,
checks): a benchmark measures what a run of that model would train, never a spec made by hand."""

from __future__ import annotations

from imgzoo.config import Run, Study
from imgzoo.spec import RunSpec


def spec_of(
    model: str,
    model_args: dict | None = None,
    *,
    dataset: str = "synthetic",
    data: dict | None = None,
    **train,
) -> RunSpec:
    """Seed 0 of a one-experiment study of `model` (any name a study's `model:` takes, with
    `model_args`) on `dataset` (with preparation options `data`): the config's training
    defaults, no warm-up, then `train`."""
    study = Study(
        {
            "name": "bench",
            "datasets": [dataset],
            "seeds": [0],
            "data": {dataset: data or {}},
            "train": {"warmup_epochs": 0, **train},
            "experiments": {"bench": {"model": model, "model_args": model_args or {}}},
        }
    )
    return study.spec(Run(dataset, "bench", 0))
