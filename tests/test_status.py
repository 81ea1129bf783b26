"""Watching a study while it runs: `imgzoo status`, TensorBoard files, partial tables and curves.

The runs are real: one trained to the end, one held mid-run by a process that keeps its
progress and checkpoint, one whose training failed on a corrupt checkpoint (its rule's log says
why), one not started.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from imgzoo import runlog
from imgzoo.config import load_study
from imgzoo.live import TENSORBOARD_DIR, TENSORBOARD_TAGS
from imgzoo.paths import CHECKPOINT

BIN = Path(sys.executable).parent
STUDY = {
    "datasets": ["digits"],
    "seeds": [0, 1, 2, 3],
    "train": {"epochs": 3, "batch_size": 64, "lr": 0.01, "augment": "none"},
    "experiments": {"mlp": {"model": "mlp", "model_args": {"hidden": [16]}}},
}
# What the held run has done: a process that wrote one epoch of progress and stays alive.
HOLDER = textwrap.dedent(
    """
    import sys, time
    from imgzoo import live, runlog
    from imgzoo.config import Run, load_study
    study = load_study([sys.argv[1]])
    spec = study.spec(Run("digits", "mlp", 1)).to_dict()
    history = {"epoch": [1], "train_loss": [1.2], "train_acc": [0.6], "val_loss": [1.0],
               "val_acc": [0.7], "test_loss": [1.1], "test_acc": [0.65],
               "train_subset_acc": [0.62], "lr": [0.01], "train_time": [3.0],
               "epoch_time": [4.0], "images_per_s": [300.0]}
    attrs = runlog.run_attrs(spec, num_params=1234, status="running", epochs_completed=1,
                             best_epoch=1, started=runlog.now())
    live.write_progress(sys.argv[2], spec, history, attrs=attrs)
    print("ready", flush=True)
    time.sleep(300)
    """
)


def imgzoo(*args: str, cwd: Path, **output) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "COLUMNS": "80"}
    output = output or {"capture_output": True}
    return subprocess.run([str(BIN / "imgzoo"), *args], cwd=cwd, env=env, text=True,
                          timeout=300, **output)


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    root = tmp_path_factory.mktemp("watch")
    (root / "s.yaml").write_text(yaml.safe_dump(STUDY))
    study = load_study([root / "s.yaml"])
    run = {seed: study.layout.run_dir("digits", "mlp", seed) for seed in range(4)}
    # done
    done = imgzoo("train", "--config", "s.yaml", "--experiment", "mlp", "--dataset", "digits",
                  "--seed", "0", cwd=root)
    assert done.returncode == 0, done.stderr
    # running: a process holds the run mid-way (its progress and checkpoint on disk)
    (root / run[1]).mkdir(parents=True)
    (root / run[1] / CHECKPOINT).write_bytes(b"held")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, "s.yaml", run[1]], cwd=root,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "ready"
    # failed: the train rule's command on a corrupt checkpoint, its output in the rule's log
    (root / run[2]).mkdir(parents=True)
    (root / run[2] / CHECKPOINT).write_bytes(b"not a checkpoint")
    log = root / study.layout.train_log("digits", "mlp", 2)
    log.parent.mkdir(parents=True)
    with open(log, "w") as out:
        failed = imgzoo("train", "--config", "s.yaml", "--experiment", "mlp", "--dataset",
                        "digits", "--seed", "2", cwd=root, stderr=subprocess.STDOUT,
                        stdout=out)
    assert failed.returncode == 1
    yield root, study
    holder.kill()
    holder.wait()


def test_status_reports_each_run_as_it_stands(grid):
    root, study = grid
    result = imgzoo("status", "--json", "--config", "s.yaml", cwd=root)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    states = {r["seed"]: r for r in status["run_states"]}
    assert [states[s]["state"] for s in range(4)] == ["done", "running", "failed", "not started"]
    log = runlog.read(root / study.run_log(study.runs[0]))
    assert states[0]["epochs_completed"] == 3 and states[0]["epochs_planned"] == 3
    assert states[0]["best_val_acc"] == max(log.epochs["val_acc"])
    assert states[1]["epochs_completed"] == 1 and states[1]["best_val_acc"] == 0.7
    assert states[1]["epoch_time_s"] == 4.0 and states[1]["left_s"] == 8.0  # 2 epochs left
    assert "checkpoint.pt: not a readable imgzoo checkpoint" in states[2]["reason"]
    assert status["counts"] == {"done": 1, "diverged": 0, "running": 1, "waiting": 0,
                                "stopped": 0, "failed": 1, "not started": 1}
    assert status["left_s"] > 0  # the running run's and the unstarted run's epochs


def test_status_table_fits_80_columns(grid):
    root, _ = grid
    result = imgzoo("status", "--config", "s.yaml", cwd=root)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    text = result.stdout
    for expected in ("digits/mlp/s1", "running", "1/3", "70.0%", "failed", "not started",
                     "1 done, 1 running, 1 failed, 1 not started"):
        assert expected in text, expected


def test_tensorboard_files_hold_the_run_logs_values(grid):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root, study = grid
    run_dir = root / study.layout.run_dir("digits", "mlp", 0)
    events = EventAccumulator(str(run_dir / TENSORBOARD_DIR))
    events.Reload()
    log = runlog.read(run_dir / "metrics.h5")
    for key, tag in TENSORBOARD_TAGS.items():
        scalars = events.Scalars(tag)
        assert [s.step for s in scalars] == list(log.epochs["epoch"]), tag
        np.testing.assert_allclose([s.value for s in scalars], log.epochs[key], rtol=1e-6)


def test_partial_tables_and_curves_show_unfinished_runs(grid):
    root, study = grid
    for command in ("tables", "curves"):
        done = imgzoo(command, "--partial", "--config", "s.yaml", cwd=root)
        assert done.returncode == 0, done.stderr
    runs = pd.read_csv(root / study.layout.partial.table("runs"))
    assert dict(zip(runs.seed, runs.status, strict=True)) == {0: "completed", 1: "running"}
    summary = pd.read_csv(root / study.layout.partial.table("summary"))
    finished = runs[runs.seed == 0].iloc[0]
    # mean over the finished runs only; the unfinished one is counted, not averaged
    assert summary.n_seeds[0] == 2
    assert summary.test_acc_at_best_val_mean[0] == finished.test_acc_at_best_val
    assert (root / study.layout.partial.curves("digits")).stat().st_size > 10_000
    assert not (root / study.layout.table("runs")).exists()  # the study's own tables untouched
