"""The workflow end to end: a small grid through real Snakemake runs in a temporary folder."""

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import snakemake

from imgzoo import runlog
from imgzoo.paths import Layout

CONFIG = {
    "name": "grid",
    "datasets": ["digits", "synthetic"],
    "seeds": [0, 1],
    "data": {"synthetic": {"image_size": 16, "train_size": 1000, "test_size": 200}},
    "train": {"epochs": 3, "batch_size": 64, "lr": 0.01, "augment": "none"},
    "experiments": {
        "mlp": {"model": "mlp", "model_args": {"hidden": [32]}},
        "mixer": {
            "model": "mixer",
            "model_args": {"patch_size": 4, "dim": 32, "depth": 2},
            "per_dataset": {"digits": {"model_args": {"patch_size": 2}}},
        },
    },
}
LAYOUT = Layout(CONFIG["name"])


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("workflow")
    (workdir / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    result = snakemake(workdir, "--cores", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


@pytest.mark.slow
def test_tables_hold_one_row_per_run_with_the_logged_values(finished):
    runs = pd.read_csv(finished / LAYOUT.table("runs"))
    assert len(runs) == 2 * 2 * 2
    assert set(runs["experiment"]) == {"mlp", "mixer"}
    for row in runs.itertuples():
        log = runlog.read(finished / LAYOUT.run_log(row.dataset, row.experiment, row.seed))
        best = int(np.argmax(log.epochs["val_acc"]))
        assert row.final_test_acc == pytest.approx(log.epochs["test_acc"][-1])
        assert row.test_acc_at_best_val == pytest.approx(log.epochs["test_acc"][best])
        assert row.params == log.attrs["num_params"]
        assert row.status == "completed"
        assert row.final_test_acc > 0.15  # chance is 0.1: every model learns something
    summary = pd.read_csv(finished / LAYOUT.table("summary"))
    assert len(summary) == 2 * 2
    mlp = runs[(runs.experiment == "mlp") & (runs.dataset == "digits")]
    row = summary[(summary.experiment == "mlp") & (summary.dataset == "digits")].iloc[0]
    assert row.test_acc_at_best_val_mean == pytest.approx(mlp.test_acc_at_best_val.mean())
    assert row.test_acc_at_best_val_std == pytest.approx(mlp.test_acc_at_best_val.std())
    for name in ("runs", "summary"):
        assert (finished / LAYOUT.table(name, "md")).read_text().count("mlp") >= 2
        assert "<table" in (finished / LAYOUT.table(name, "html")).read_text()


@pytest.mark.slow
def test_figures_are_images(finished):
    pngs = [
        *[finished / LAYOUT.curves(d) for d in ("digits", "synthetic")],
        *[
            finished / LAYOUT.weight_grid(d, e, s)
            for d in ("digits", "synthetic")
            for e in ("mlp", "mixer")
            for s in (0, 1)
        ],
    ]
    for png in pngs:
        image = matplotlib.image.imread(png)
        assert image.ndim == 3 and image.shape[0] > 100 and image.std() > 0.01, png


@pytest.mark.slow
def test_second_run_has_nothing_to_do_and_report_builds(finished):
    again = snakemake(finished, "--cores", "2")
    assert again.returncode == 0
    assert "Nothing to be done" in again.stderr + again.stdout
    report = snakemake(finished, "--report", LAYOUT.report)
    assert report.returncode == 0, report.stderr[-2000:]
    html = (finished / LAYOUT.report).read_text()
    assert "curves.png" in html and "summary.html" in html and "first_layer.png" in html


@pytest.mark.slow
def test_one_run_alone(tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    target = LAYOUT.run_log("digits", "mlp", 1)
    result = snakemake(tmp_path, target, "--cores", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert [
        p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("results/*/runs/*/*/*/*.h5")
    ] == [target]


def test_bad_config_stops_before_any_job(tmp_path):
    config = {**CONFIG, "experiments": {"m": {"model": "resnet81"}}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "--cores", "1", timeout=120)
    assert result.returncode != 0
    assert "unknown model 'resnet81' (did you mean resnet18" in result.stderr
    assert not (tmp_path / "results").exists()
