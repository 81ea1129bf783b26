"""One training run: it learns, logs every series, is deterministic, and resumes to the bit."""

import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml
from helpers import stop_after

import imgzoo
from imgzoo import data, runlog
from imgzoo.cli import main
from imgzoo.config import Run, Study, apply_overrides
from imgzoo.errors import CheckpointError
from imgzoo.paths import BEST_MODEL, CHECKPOINT, METRICS, MODEL
from imgzoo.train import Preempted, build_parts, train
from imgzoo.training import checkpoint
from imgzoo.training.evaluate import confusion_matrix, evaluate

# Series that must match exactly between runs (times and throughput never do).
EXACT = [k for k in runlog.EPOCH_SERIES if k not in runlog.TIMING_SERIES]

CONFIG = {
    "datasets": ["digits"],
    "seeds": [0],
    "train": {"epochs": 3, "batch_size": 64, "lr": 0.003, "augment": "standard"},
    "experiments": {
        "mlp": {"model": "mlp", "model_args": {"hidden": [64]}, "augment": "none"},
        "mixer": {"model": "mixer", "model_args": {"patch_size": 2, "dim": 32, "depth": 1}},
        "convnet": {"model": "dilated", "model_args": {"width": 8, "dilations": [1, 2]}},
    },
}


@pytest.fixture(scope="module")
def steps(digits_h5):
    """Training steps per epoch at batch size 64."""
    return math.ceil(len(data.load(digits_h5).train_y) / 64)


def spec_for(experiment="mlp", *overrides):
    spec = Study(CONFIG).spec(Run("digits", experiment, 0))
    return apply_overrides(spec, list(overrides))


def test_run_learns_and_writes_a_complete_log(digits_h5, steps, tmp_path):
    log = train(spec_for(), digits_h5, tmp_path, threads=1)
    assert log.attrs["status"] == "completed"
    read = runlog.read(tmp_path / "metrics.h5")
    assert list(read.epochs["epoch"]) == [1, 2, 3]
    for key in runlog.EPOCH_SERIES:
        assert np.isfinite(read.epochs[key]).all(), key
    assert read.epochs["test_acc"][-1] > 0.85  # chance is 0.1
    assert read.epochs["train_subset_acc"][-1] > 0.85
    assert read.epochs["lr"][0] > read.epochs["lr"][-1]  # cosine decays
    assert read.confusion.shape == (10, 10) and read.confusion.sum() == len(
        data.load(digits_h5).test_y
    )
    assert read.first_layer.shape == (64, 8, 8) and read.first_layer_kind == "dense"
    assert read.attrs["num_params"] == 8 * 8 * 64 + 64 + 64 * 10 + 10
    assert len(read.steps["loss"]) == 3 * steps
    assert read.spec["settings"]["train"]["epochs"] == 3 and read.attrs["epochs_planned"] == 3
    assert read.attrs["schema_version"] == runlog.SCHEMA_VERSION == 3
    assert read.attrs["family"] == "mlp" and read.attrs["study"] == "default"
    assert (read.epochs["train_time"] < read.epochs["epoch_time"]).all()  # evaluation apart
    assert read.attrs["wall_time_s"] > read.epochs["epoch_time"].sum()
    assert read.attrs["imgzoo_version"] == imgzoo.version()
    assert (tmp_path / MODEL).exists() and (tmp_path / BEST_MODEL).exists()
    assert not (tmp_path / CHECKPOINT).exists()


# The convnet runs channels-last (as every convolutional network does): resuming must be exact
# in that memory format too.
@pytest.mark.parametrize("experiment", ["mixer", "convnet"])
def test_same_seed_same_numbers_and_resume_after_preemption(digits_h5, steps, tmp_path, experiment):
    whole = train(spec_for(experiment), digits_h5, tmp_path / "whole", threads=1)

    out = tmp_path / "resumed"
    with pytest.raises(Preempted):  # a few steps into epoch 3
        train(spec_for(experiment), digits_h5, out, threads=1, stop_flag=stop_after(2 * steps + 5))
    assert (out / CHECKPOINT).exists() and not (out / "metrics.h5").exists()
    resumed = train(spec_for(experiment), digits_h5, out, threads=1)
    for key in EXACT:
        np.testing.assert_array_equal(resumed.epochs[key], whole.epochs[key], err_msg=key)
    np.testing.assert_array_equal(resumed.steps["loss"], whole.steps["loss"])
    np.testing.assert_array_equal(resumed.confusion, whole.confusion)
    assert resumed.attrs["best_epoch"] == whole.attrs["best_epoch"]
    assert_same_weights(out / BEST_MODEL, tmp_path / "whole" / BEST_MODEL)
    again = train(spec_for(experiment), digits_h5, tmp_path / "again", threads=1)
    for key in EXACT:
        np.testing.assert_array_equal(again.epochs[key], whole.epochs[key], err_msg=key)


CPU = torch.device("cpu")


@pytest.mark.cuda
def test_resume_after_preemption_is_exact_on_the_gpu(digits_h5, steps, tmp_path):
    """The GPU path (data and generators on the device, bf16 autocast, channels-last)."""
    spec = spec_for("convnet", "device=cuda")
    whole = train(spec, digits_h5, tmp_path / "whole", threads=1)
    assert whole.attrs["device"].startswith("cuda")
    out = tmp_path / "resumed"
    with pytest.raises(Preempted):
        train(spec, digits_h5, out, threads=1, stop_flag=stop_after(2 * steps + 5))
    resumed = train(spec, digits_h5, out, threads=1)
    for key in EXACT:
        np.testing.assert_array_equal(resumed.epochs[key], whole.epochs[key], err_msg=key)
    np.testing.assert_array_equal(resumed.steps["loss"], whole.steps["loss"])
    np.testing.assert_array_equal(resumed.confusion, whole.confusion)


@pytest.mark.parametrize(
    "experiment,convnet", [("convnet", True), ("mixer", False), ("mlp", False)]
)
def test_only_convolutional_networks_run_channels_last(digits_h5, experiment, convnet):
    parts = build_parts(spec_for(experiment), data.load(digits_h5), CPU)
    network = parts.network
    assert network.channels_last is convnet  # a patch embedding alone does not make a convnet
    assert parts.data.channels_last is convnet  # and the inputs follow the model
    if convnet:  # the last convolution: more than one input channel, so the layout shows
        weight = [p for p in network.model.parameters() if p.dim() == 4][-1]
        assert weight.shape[1] > 1 and weight.is_contiguous(memory_format=torch.channels_last)


def test_auto_eval_batch_is_the_cpus(digits_h5):
    assert build_parts(spec_for(), data.load(digits_h5), CPU).eval_batch_size == 128
    spec = spec_for("mlp", "eval_batch_size=500")
    assert build_parts(spec, data.load(digits_h5), CPU).eval_batch_size == 500


def assert_same_weights(path_a, path_b):
    a, b = (checkpoint.load_weights(p) for p in (path_a, path_b))
    assert list(a) == list(b)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


@pytest.mark.parametrize("experiment", ["convnet", "mixer"])
def test_the_log_describes_the_best_validation_model(digits_h5, tmp_path, experiment):
    """model_best.pt is the epoch of best validation accuracy (ties: the earliest, as the tables
    select); the confusion matrix is its own; model.pt stays the last epoch's."""
    spec = spec_for(experiment, "epochs=4")
    log = train(spec, digits_h5, tmp_path, threads=1)
    best = int(np.argmax(log.epochs["val_acc"]))  # the first maximum
    assert log.attrs["best_epoch"] == log.epochs["epoch"][best]
    assert runlog.read(tmp_path / METRICS).attrs["best_epoch"] == log.attrs["best_epoch"]

    parts = build_parts(spec, data.load(digits_h5), CPU)  # the same network, fresh weights
    test_y = data.load(digits_h5).test_y
    for weights, epoch_index in ((BEST_MODEL, best), (MODEL, -1)):
        parts.network.model.load_state_dict(checkpoint.load_weights(tmp_path / weights))
        result = evaluate(parts.network.net, parts.data, "test", 128, predictions=True)
        assert result.acc == log.epochs["test_acc"][epoch_index], weights
        if weights == BEST_MODEL:
            np.testing.assert_array_equal(
                confusion_matrix(test_y, result.predictions, 10), log.confusion
            )
    assert np.trace(log.confusion) / log.confusion.sum() == log.epochs["test_acc"][best]


def test_a_kill_before_the_best_model_was_written_is_repaired_on_resume(digits_h5, steps, tmp_path):
    """Epoch 1 is always the best so far; its checkpoint is written before model_best.pt."""
    whole = train(spec_for("mixer"), digits_h5, tmp_path / "whole", threads=1)
    out = tmp_path / "resumed"
    with pytest.raises(Preempted):
        train(spec_for("mixer"), digits_h5, out, threads=1, stop_flag=stop_after(steps + 1))
    (out / BEST_MODEL).unlink()
    resumed = train(spec_for("mixer"), digits_h5, out, threads=1)
    np.testing.assert_array_equal(resumed.confusion, whole.confusion)
    assert_same_weights(out / BEST_MODEL, tmp_path / "whole" / BEST_MODEL)


def test_changed_settings_do_not_resume_a_foreign_checkpoint(digits_h5, steps, tmp_path):
    with pytest.raises(Preempted):
        train(spec_for(), digits_h5, tmp_path, threads=1, stop_flag=stop_after(steps + 1))
    with pytest.warns(UserWarning):
        log = train(spec_for("mlp", "epochs=1"), digits_h5, tmp_path, threads=1)
    assert list(log.epochs["epoch"]) == [1]


def test_divergence_is_logged_not_fatal(digits_h5, tmp_path, capsys):
    log = train(
        spec_for("mlp", "lr=1e12", "optimizer=sgd", "schedule=constant"),
        digits_h5,
        tmp_path,
        threads=1,
    )
    assert log.attrs["status"] == "diverged" and log.attrs["diverged_epoch"] == 1
    assert runlog.read(tmp_path / "metrics.h5").attrs["status"] == "diverged"


def test_divergence_fails_when_asked(digits_h5, tmp_path, capsys):
    argv = [
        "train",
        "--experiment",
        "mlp",
        "--dataset",
        "digits",
        "--seed",
        "0",
        "--data",
        str(digits_h5),
        "--out",
        str(tmp_path),
        "--threads",
        "1",
    ]
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    code = main([*argv, "--config", str(cfg), "lr=1e12", "optimizer=sgd", "on_diverge=fail"])
    assert code == 1
    err = capsys.readouterr().err
    assert "diverged in epoch 1" in err.splitlines()[-1]
    assert not (tmp_path / "metrics.h5").exists()


def test_truncated_checkpoint_is_refused_in_one_line(digits_h5, steps, tmp_path):
    with pytest.raises(Preempted):
        train(spec_for(), digits_h5, tmp_path, threads=1, stop_flag=stop_after(steps + 1))
    ckpt = tmp_path / CHECKPOINT
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="checkpoint.pt: not a readable imgzoo checkpoint"):
        train(spec_for(), digits_h5, tmp_path, threads=1)


@pytest.mark.slow
def test_killed_process_resumes_to_identical_numbers(digits_h5, tmp_path):
    """SIGKILL a real `imgzoo train` process mid-run, start it again, compare with a clean run."""
    cfg = tmp_path / "c.yaml"
    config = {**CONFIG, "train": {**CONFIG["train"], "epochs": 6}}
    cfg.write_text(yaml.safe_dump(config))

    def command(out):
        return [
            sys.executable,
            "-m",
            "imgzoo",
            "train",
            "--config",
            str(cfg),
            "--experiment",
            "mixer",
            "--dataset",
            "digits",
            "--seed",
            "0",
            "--data",
            str(digits_h5),
            "--out",
            str(out),
            "--threads",
            "1",
        ]

    subprocess.run(command(tmp_path / "whole"), check=True, capture_output=True)
    proc = subprocess.Popen(command(tmp_path / "killed"), stderr=subprocess.PIPE)
    ckpt = tmp_path / "killed" / CHECKPOINT
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "metrics.h5").exists(), "the run finished before the kill"
    subprocess.run(command(tmp_path / "killed"), check=True, capture_output=True)
    whole = runlog.read(tmp_path / "whole" / "metrics.h5")
    killed = runlog.read(tmp_path / "killed" / "metrics.h5")
    for key in EXACT:
        np.testing.assert_array_equal(killed.epochs[key], whole.epochs[key], err_msg=key)
