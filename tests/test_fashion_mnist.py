"""The one real benchmark these machines have: the study's MLP on Fashion-MNIST reaches the
published MLP baselines (about 0.883 test accuracy)."""

import io
import os
from pathlib import Path

import pytest

from imgzoo import data
from imgzoo.config import Run, load_study
from imgzoo.progress import Progress
from imgzoo.train import train

DEBIAN_FOLDER = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.slow
def test_mlp_on_fashion_mnist_reaches_the_published_baseline(tmp_path):
    if not (DEBIAN_FOLDER / "train-images-idx3-ubyte.gz").exists():
        message = "Fashion-MNIST missing: apt-get install dataset-fashion-mnist"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    study = load_study(["config/studies/fashion-mnist.yaml"])
    spec = study.spec(Run("fashion_mnist", "mlp", 0))
    data_path = tmp_path / "fashion_mnist.h5"
    data.prepare("fashion_mnist", spec.settings.data, data_path)
    prepared = data.load(data_path)
    assert len(prepared.test_y) == 10_000
    assert len(prepared.train_y) + len(prepared.val_y) == 60_000
    log = train(
        spec,
        data_path,
        tmp_path / "run",
        threads=2,
        progress=Progress(spec.train["epochs"], stream=io.StringIO()),
    )
    best = int(log.epochs["val_acc"].argmax())
    assert log.epochs["test_acc"][best] >= 0.88, log.epochs["test_acc"]
