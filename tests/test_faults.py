"""Bad input and broken files: one line on stderr naming the culprit, the right exit code, and no
output left behind that Snakemake would take as complete."""

import shutil

import h5py
import numpy as np
import pytest
import yaml

from imgzoo import runlog
from imgzoo.cli import main
from imgzoo.paths import CHECKPOINT

CONFIG = {
    "datasets": ["digits"],
    "seeds": [0],
    "train": {"epochs": 1, "batch_size": 128},
    "experiments": {"mlp": {"model": "mlp", "model_args": {"hidden": [16]}}},
}


@pytest.fixture(scope="module")
def world(tmp_path_factory, digits_h5):
    """A config, a prepared dataset and one complete run log to break in different ways."""
    root = tmp_path_factory.mktemp("faults")
    (root / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    shutil.copy(digits_h5, root / "digits.h5")
    run = root / "run"
    assert main(train_args(root, root / "digits.h5", run)) == 0
    return root


def truncated_copy(src, dst):
    dst.write_bytes(src.read_bytes()[: src.stat().st_size // 3])
    return dst


def foreign_h5(path):
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.arange(3))
    return path


def dataset_with_version(src, dst, version):
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "a") as f:
        f.attrs["schema_version"] = version
    return dst


def train_args(root, data_path, out, *extra):
    return [
        "train",
        "--config",
        str(root / "config.yaml"),
        "--experiment",
        "mlp",
        "--dataset",
        "digits",
        "--seed",
        "0",
        "--data",
        str(data_path),
        "--out",
        str(out),
        "--threads",
        "1",
        *extra,
    ]


# (id, setup(root, tmp) -> (argv, path that must not exist afterwards), exit code, culprit text)
CASES = [
    (
        "truncated run log",
        lambda r, t: (
            [
                "tables",
                "--out-dir",
                str(t / "tables"),
                str(truncated_copy(r / "run/metrics.h5", t / "metrics.h5")),
            ],
            t / "tables/runs.csv",
        ),
        1,
        "metrics.h5: unreadable run log",
    ),
    (
        "foreign run log",
        lambda r, t: (
            ["tables", "--out-dir", str(t / "tables"), str(foreign_h5(t / "metrics.h5"))],
            t / "tables/summary.csv",
        ),
        1,
        "metrics.h5: not an imgzoo run log",
    ),
    (
        "missing run log",
        lambda r, t: (["curves", "--out", str(t / "c.png"), str(t / "nope.h5")], t / "c.png"),
        1,
        "nope.h5",
    ),
    (
        "weight grid of a log without first layer",
        lambda r, t: (["weights", "--out", str(t / "w.png"), str(r / "nolayer.h5")], t / "w.png"),
        1,
        "nolayer.h5",
    ),
    (
        "dataset of another schema version",
        lambda r, t: (
            train_args(r, dataset_with_version(r / "digits.h5", t / "d.h5", 99), t / "o"),
            t / "o/metrics.h5",
        ),
        1,
        "d.h5",
    ),
    (
        "truncated dataset",
        lambda r, t: (
            train_args(r, truncated_copy(r / "digits.h5", t / "d.h5"), t / "o"),
            t / "o/metrics.h5",
        ),
        1,
        "d.h5",
    ),
    (
        "foreign dataset",
        lambda r, t: (train_args(r, foreign_h5(t / "d.h5"), t / "o"), t / "o/metrics.h5"),
        1,
        "d.h5",
    ),
    (
        "truncated checkpoint",
        lambda r, t: (train_args(r, r / "digits.h5", t / "o"), t / "o/metrics.h5"),
        1,
        "checkpoint.pt: not a readable imgzoo checkpoint",
    ),
    (
        "unknown experiment",
        lambda r, t: (
            [
                "train",
                "--config",
                str(r / "config.yaml"),
                "--experiment",
                "mpl",
                "--dataset",
                "digits",
                "--seed",
                "0",
                "--out",
                str(t / "o"),
            ],
            t / "o/metrics.h5",
        ),
        2,
        "'mpl'",
    ),
    (
        "unknown override key",
        lambda r, t: (train_args(r, r / "digits.h5", t / "o", "lrate=1"), t / "o/metrics.h5"),
        2,
        "'lrate'",
    ),
    (
        "bad override value",
        lambda r, t: (train_args(r, r / "digits.h5", t / "o", "batch_size=0"), t / "o/metrics.h5"),
        2,
        "batch_size",
    ),
    (
        "unknown model argument override",
        lambda r, t: (
            train_args(r, r / "digits.h5", t / "o", "model_args.hiden=[3]"),
            t / "o/metrics.h5",
        ),
        2,
        "'hiden'",
    ),
    (
        "invalid model argument value",
        lambda r, t: (
            train_args(r, r / "digits.h5", t / "o", "model_args.activation=swish"),
            t / "o/metrics.h5",
        ),
        2,
        "swish",
    ),
    (
        "unknown dataset to prepare",
        lambda r, t: (
            ["prepare", "--dataset", "cifar11", "--options", "{}", "--out", str(t / "x.h5")],
            t / "x.h5",
        ),
        2,
        "'cifar11'",
    ),
    (
        "unknown dataset option",
        lambda r, t: (
            [
                "prepare",
                "--dataset",
                "synthetic",
                "--options",
                '{"img_size": 8}',
                "--out",
                str(t / "x.h5"),
            ],
            t / "x.h5",
        ),
        2,
        "'img_size'",
    ),
    (
        "missing dataset source",
        lambda r, t: (
            [
                "prepare",
                "--dataset",
                "cifar10",
                "--options",
                f'{{"source": "{t}/cifar-10-python.tar.gz"}}',
                "--out",
                str(t / "x.h5"),
            ],
            t / "x.h5",
        ),
        1,
        "cifar-10-python.tar.gz",
    ),
    (
        "malformed settings JSON",
        lambda r, t: (
            train_args(r, r / "digits.h5", t / "o", "--settings", "{not json"),
            t / "o/metrics.h5",
        ),
        2,
        "JSON",
    ),
]


@pytest.mark.parametrize("name,setup,exit_code,culprit", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line(world, tmp_path, capsys, name, setup, exit_code, culprit):
    if name == "truncated checkpoint":
        (tmp_path / "o").mkdir()
        truncated_copy(world / "run/model.pt", tmp_path / "o" / CHECKPOINT)
    if name == "weight grid of a log without first layer":
        log = runlog.read(world / "run/metrics.h5")
        log.first_layer = None
        runlog.write(world / "nolayer.h5", log)
    argv, must_not_exist = setup(world, tmp_path)
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == exit_code, err
    assert err and err[-1].startswith("imgzoo: error: "), err
    assert culprit in err[-1], err
    assert "Traceback" not in "\n".join(err)
    assert not must_not_exist.exists()
    assert not list(tmp_path.rglob("*.tmp")), "a temporary file was left behind"


def test_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--experiment", "mlp"])
    assert exit_info.value.code == 2


def test_debug_shows_the_traceback(world, tmp_path):
    with pytest.raises(Exception, match="cifar11"):
        main(
            [
                "--debug",
                "prepare",
                "--dataset",
                "cifar11",
                "--options",
                "{}",
                "--out",
                str(tmp_path / "x.h5"),
            ]
        )


def test_full_disk_while_checkpointing_keeps_the_previous_file(world, tmp_path, monkeypatch):
    """A failing write (ENOSPC) leaves the earlier complete checkpoint and no temporary file."""
    import errno

    import torch

    from imgzoo.training import checkpoint

    checkpoint.save_atomic({"format": "imgzoo.checkpoint", "epoch": 1}, tmp_path / CHECKPOINT)
    before = (tmp_path / CHECKPOINT).read_bytes()

    def full_disk(obj, f, *args, **kwargs):
        with open(f, "wb") as handle:
            handle.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        checkpoint.save_atomic({"format": "imgzoo.checkpoint", "epoch": 2}, tmp_path / CHECKPOINT)
    assert (tmp_path / CHECKPOINT).read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT]


def test_full_disk_while_writing_the_run_log_leaves_no_file(world, tmp_path, monkeypatch):
    log = runlog.read(world / "run/metrics.h5")

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runlog.os, "replace", full_disk)
    with pytest.raises(OSError):
        runlog.write(tmp_path / "metrics.h5", log)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_aggregation_while_a_run_trains_reads_only_complete_logs(world, tmp_path):
    """A run in progress has a checkpoint but no metrics.h5: aggregation cannot mistake it."""
    import subprocess
    import sys
    import time

    import pandas as pd

    config = {**CONFIG, "train": {"epochs": 30, "batch_size": 32}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "runs/digits/mlp/seed1"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "imgzoo",
            "train",
            "--config",
            str(tmp_path / "config.yaml"),
            "--experiment",
            "mlp",
            "--dataset",
            "digits",
            "--seed",
            "1",
            "--data",
            str(world / "digits.h5"),
            "--out",
            str(out),
            "--threads",
            "1",
        ],
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        while not (out / CHECKPOINT).exists() and time.time() < deadline:
            time.sleep(0.05)
        assert (out / CHECKPOINT).exists() and not (out / "metrics.h5").exists()
        logs = [str(p) for p in [world / "run/metrics.h5", *tmp_path.rglob("metrics.h5")]]
        assert main(["tables", "--out-dir", str(tmp_path / "tables"), *logs]) == 0
        runs = pd.read_csv(tmp_path / "tables/runs.csv")
        assert list(runs["seed"]) == [0] and list(runs["status"]) == ["completed"]
    finally:
        proc.wait(timeout=300)
    assert (out / "metrics.h5").exists()
