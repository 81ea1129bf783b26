"""A study on a real dataset format, end to end: a tiny CIFAR-10 archive in the official format,
prepared, trained with a sweep, aggregated, and bundled into the HTML report."""

import hashlib

import matplotlib.image
import pandas as pd
import pytest
import yaml
from archives import cifar10_members, learnable_images, write_tar
from test_workflow import snakemake

from imgzoo.paths import Layout

LAYOUT = Layout("config")  # the study's file is config.yaml


@pytest.mark.slow
def test_study_on_a_cifar10_archive_runs_end_to_end(tmp_path):
    train_x, train_y = learnable_images(200, 10, seed=0)
    test_x, test_y = learnable_images(50, 10, seed=1)
    archive = write_tar(
        tmp_path / "cifar-10-python.tar.gz", cifar10_members(train_x, train_y, test_x, test_y)
    )
    config = {
        "datasets": ["cifar10"],
        "seeds": [0, 1],
        "data": {
            "cifar10": {
                "source": str(archive),
                "val_size": 20,
                "checksum": hashlib.md5(archive.read_bytes()).hexdigest(),
            }
        },
        "train": {"epochs": 2, "batch_size": 32, "lr": 3.0e-3, "augment": "standard"},
        "experiments": {
            "mlp": {"model": "mlp", "model_args": {"hidden": [32]}},
            "mixer": {"model": "mixer-study1", "model_args": {"dim": 16, "depth": 1}},
        },
        "sweeps": {"mlp-lr": {"base": "mlp", "grid": {"lr": [1.0e-2, 1.0e-3]}}},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake(tmp_path, "--cores", "2")
    assert result.returncode == 0, result.stderr[-3000:]

    summary = pd.read_csv(tmp_path / LAYOUT.table("summary"))
    assert list(summary["experiment"]) == ["mlp", "mixer", "mlp@lr=0.01", "mlp@lr=0.001"]
    assert list(summary["sweep"].fillna("")) == ["", "", "mlp-lr", "mlp-lr"]
    assert (summary["n_seeds"] == 2).all()
    mlp = summary[summary.experiment == "mlp"].iloc[0]
    assert mlp.test_acc_at_best_val_mean > 0.3  # chance is 0.1; colours are easy

    for png in [
        tmp_path / LAYOUT.curves("cifar10"),
        tmp_path / LAYOUT.sweep_plot("cifar10", "mlp-lr"),
        tmp_path / LAYOUT.weight_grid("cifar10", "mixer", 0),
        tmp_path / LAYOUT.weight_grid("cifar10", "mlp@lr=0.01", 1),
    ]:
        image = matplotlib.image.imread(png)
        assert image.shape[0] > 100 and image.std() > 0.01, png

    report = snakemake(tmp_path, "--report", LAYOUT.report)
    assert report.returncode == 0, report.stderr[-2000:]
    html = (tmp_path / LAYOUT.report).read_text()
    for name in ("summary.html", "runs.html", "curves.png", "sweep-mlp-lr.png", "first_layer.png"):
        assert name in html, name
