"""What many test files share: where the checkout and its tools are, the one way tests run
Snakemake, the model arguments a run gets by default (for tests that pin resolved settings), a
model that fails in its job, and a minimal run log for tests of what reads logs."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from imgzoo import runlog
from imgzoo.models import builder, catalog

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# A model that passes every check a study makes and fails in its job: a user's network whose
# build() raises, and the message the job fails with.
RAISING_FILE = REPO / "tests" / "nets" / "raises.py"
RAISING_MODEL = f"{RAISING_FILE}:build"
RAISED = f"model file '{RAISING_FILE}': build() failed: ValueError: the network has a bug"


def environment(**extra: str) -> dict:
    """The tests' environment with the venv's commands first on PATH (the rules call `imgzoo`)."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **extra}


def snakemake_command(
    workdir: Path, *args: str, profile: str | None = None, configfile: Path | None = None
) -> list[str]:
    """The repository's workflow run in `workdir`, with a profile of profiles/ and a study file
    (`configfile`; default `workdir/config.yaml` where it exists). `--configfile` takes several
    values: it goes last, after any target."""
    command = [str(BIN / "snakemake")]
    if profile:
        command += ["--profile", str(REPO / "profiles" / profile)]
    command += [*args, "-s", str(REPO / "Snakefile"), "-d", str(workdir)]
    if configfile is None and (workdir / "config.yaml").exists():
        configfile = workdir / "config.yaml"
    if configfile is not None:  # named: it may be written after the command is made
        command += ["--configfile", str(configfile)]
    return command


def snakemake(
    workdir: Path, *args: str, profile: str | None = None, configfile: Path | None = None,
    timeout: int = 600, env: dict | None = None,
) -> subprocess.CompletedProcess:
    return subprocess.run(
        snakemake_command(workdir, *args, profile=profile, configfile=configfile),
        cwd=workdir,
        env=env or environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def default_model_args(name: str) -> dict:
    """Every model argument of a family or preset with the value a run gets when the config
    gives none: the builder's defaults, then the preset's (tuples as lists, as a config writes
    them); of a timm or file model, imgzoo's own. KeyError for an unknown name."""
    family, preset_args = catalog.resolve(name)
    if catalog.is_open(family):  # a timm or file model: its own defaults, unknown here
        return {"normalizer": "fixed", **preset_args}
    defaults = {
        p.name: list(p.default) if isinstance(p.default, tuple) else p.default
        for p in inspect.signature(builder(family)).parameters.values()
        if p.name not in ("num_classes", "image_size", "in_chans")
        and p.default is not inspect.Parameter.empty
    }
    # `fixed`: the dataset's mean/std; head_outputs None: one logit per class of the dataset
    return {**defaults, "normalizer": "fixed", "head_outputs": None, **preset_args}


def one_epoch_log(experiment: str = "e", seed: int = 0, *, resources: dict | None = None,
                  gpu: dict | None = None, **attrs) -> runlog.RunLog:
    """The log of a completed one-epoch run of a tiny MLP on digits, its numbers zeros: for
    tests of what reads logs (`attrs`: further run-log attributes, e.g. wall_time_s)."""
    spec = {
        "study": "s",
        "experiment": experiment,
        "dataset": "digits",
        "seed": seed,
        "resources": resources or {},
        "settings": {"family": "mlp", "model_args": {}, "data": {}, "train": {"epochs": 1}},
    }
    run_attrs = runlog.run_attrs(spec, num_params=1, status="completed", epochs_completed=1,
                                 best_epoch=1, started="2026-01-01T00:00:00+00:00", **attrs)
    epochs = {k: np.zeros(1) for k in runlog.EPOCH_SERIES}
    return runlog.RunLog(run_attrs, epochs, gpu=gpu or {})


def stop_after(steps: int):
    """A stop flag that asks a run to stop (as on preemption) after `steps` training steps."""
    calls = {"n": 0}

    def flag():
        calls["n"] += 1
        return calls["n"] > steps

    return flag
