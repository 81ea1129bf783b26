"""Aggregation on hand-made run logs with known numbers: tables, curves, weight grids, sweeps."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from imgzoo import runlog
from imgzoo.aggregate import accuracy, curves, read_logs, sweeps, tables, weights
from imgzoo.errors import ConfigError, RunLogError


def make_log(
    root,
    experiment,
    seed,
    *,
    val,
    test,
    dataset="digits",
    status="completed",
    sweep=None,
    first_layer=None,
    kind="conv",
    nan_last_loss=False,
    planned=None,
):
    """Write a run log whose val/test accuracy series are `val`/`test`; the rest is derived.

    train_time is 1, 2, 3, ... (epoch_time one second more) and images_per_s 100, 200, ..., so
    their sum/mean are known; train_subset_acc ends at the last val accuracy + 0.1. A `sweep`
    point is recorded in LABELS, as a study would label the experiment.
    """
    n = len(val)
    spec = {
        "study": "test",
        "experiment": experiment,
        "dataset": dataset,
        "seed": seed,
        "settings": {"family": "resnet18", "model_args": {}, "data": {},
                     "train": {"epochs": planned or n, "batch_size": 32}},
        "resources": {},
    }
    if sweep:
        LABELS[experiment] = {"model": "resnet", "sweep": sweep}
    epochs = {
        "epoch": np.arange(1, n + 1),
        "train_loss": np.linspace(2.0, 1.0, n),
        "train_acc": np.asarray(val) + 0.05,
        "val_loss": np.linspace(2.1, 1.2, n),
        "val_acc": np.asarray(val, dtype=float),
        "test_loss": np.linspace(2.2, 1.3, n),
        "test_acc": np.asarray(test, dtype=float),
        "train_subset_acc": np.asarray(val) + 0.1,
        "lr": np.full(n, 1e-3),
        "train_time": np.arange(1.0, n + 1),
        "epoch_time": np.arange(2.0, n + 2),
        "images_per_s": 100.0 * np.arange(1, n + 1),
    }
    if nan_last_loss and n:
        epochs["train_loss"][-1] = np.nan
        epochs["val_loss"][-1] = np.inf
    attrs = runlog.run_attrs(
        spec,
        num_params=1234,
        status=status,
        epochs_completed=n,
        best_epoch=-1,
        started="2024-01-01T00:00:00",
        ended="2024-01-01T00:01:00",
        diverged_epoch=n + 1 if status == "diverged" else -1,
        wall_time_s=60.0,
    )
    path = root / dataset / experiment / f"seed{seed}" / "metrics.h5"
    log = runlog.RunLog(
        attrs,
        epochs,
        class_names=["a", "b"],
        first_layer=first_layer,
        first_layer_kind=kind if first_layer is not None else "",
    )
    runlog.write(path, log)
    return path


LRS = (0.1, 0.01, 0.001)
# How the hand-made study labels its experiments (as `imgzoo.config.Study.labels_of` would):
# make_log adds every sweep point.
LABELS: dict = {}


def sweep_point(lr):
    return {"name": "lr", "base": "alpha", "values": {"lr": lr}}


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    """Paths in "config order", deliberately interleaved to exercise sorting and grouping."""
    root = tmp_path_factory.mktemp("runs")
    p = {}
    # the test-set maximum (epoch 3) is not at the best-val epoch: selection must use val
    p["alpha0"] = make_log(
        root, "alpha", 0, val=[0.5, 0.7, 0.7, 0.6], test=[0.45, 0.62, 0.80, 0.66]
    )
    p["alpha1"] = make_log(root, "alpha", 1, val=[0.4, 0.6, 0.8, 0.75], test=[0.4, 0.55, 0.72, 0.9])
    p["other"] = make_log(root, "alpha", 0, dataset="synthetic", val=[0.3, 0.4], test=[0.3, 0.4])
    for i, lr in enumerate(LRS):
        for seed in (0, 1):
            base = 0.5 + 0.1 * i + 0.02 * seed
            p[f"lr{i}s{seed}"] = make_log(
                root,
                f"alpha@lr={lr:g}",
                seed,
                val=[base - 0.1, base],
                test=[base - 0.1, base],
                sweep=sweep_point(lr),
            )
        if i == 0:  # a plain experiment between sweep points: the sweep still stays together
            p["beta0"] = make_log(root, "beta", 0, val=[0.2, 0.3, 0.4], test=[0.25, 0.35, 0.45])
            p["beta1"] = make_log(root, "beta", 1, val=[0.2, 0.5, 0.4], test=[0.25, 0.3, 0.6])
            # diverged in epoch 3 with excellent numbers: they must not enter mean ± std
            p["beta2"] = make_log(
                root,
                "beta",
                2,
                val=[0.9, 0.99],
                test=[0.99, 0.99],
                status="diverged",
                nan_last_loss=True,
                planned=3,
            )
    tiles = np.repeat(np.arange(64, dtype=np.float32), 9).reshape(64, 3, 3)
    p["weights"] = make_log(root, "gamma", 0, val=[0.5], test=[0.5], first_layer=tiles)
    return p


ORDER = ["other", "alpha0", "alpha1"] + [f"lr{i}s{s}" for i in range(3) for s in (0, 1)]
ORDER += ["beta0", "beta1", "beta2"]


@pytest.fixture(scope="module")
def table_dir(logs, tmp_path_factory):
    out = tmp_path_factory.mktemp("tables")
    tables.write_tables([logs[k] for k in ORDER], out, labels=LABELS)
    return out


def test_runs_table_selects_epoch_on_val_not_test(table_dir):
    runs = pd.read_csv(table_dir / "runs.csv", keep_default_na=False)
    assert list(runs.columns) == list(tables.RUN_COLUMNS)
    alpha = runs[(runs.dataset == "digits") & (runs.experiment == "alpha")].set_index("seed")
    # seed 0: val max 0.7 at epochs 2 and 3 -> the earliest, 2; test max is at epoch 3
    assert alpha.loc[0, "best_epoch"] == 2
    assert alpha.loc[0, "test_acc_at_best_val"] == pytest.approx(0.62, abs=1e-12)
    assert alpha.loc[0, "final_test_acc"] == pytest.approx(0.66, abs=1e-12)
    assert alpha.loc[0, "best_val_acc"] == pytest.approx(0.7, abs=1e-12)
    assert alpha.loc[0, "train_subset_acc"] == pytest.approx(0.7, abs=1e-12)
    assert alpha.loc[0, "train_time_s"] == pytest.approx(10.0)
    assert alpha.loc[0, "images_per_s"] == pytest.approx(250.0)
    assert alpha.loc[0, "wall_time_s"] == pytest.approx(60.0)
    assert alpha.loc[0, "epochs_completed"] == 4 and alpha.loc[0, "params"] == 1234
    assert alpha.loc[0, "status"] == "completed" and alpha.loc[0, "diverged_epoch"] == ""
    assert alpha.loc[1, "best_epoch"] == 3
    assert alpha.loc[1, "test_acc_at_best_val"] == pytest.approx(0.72, abs=1e-12)
    diverged = runs[(runs.experiment == "beta") & (runs.seed == 2)].iloc[0]
    assert diverged.status == "diverged" and int(diverged.diverged_epoch) == 3
    assert int(diverged.epochs_completed) == 2


def test_rows_sorted_by_dataset_then_config_order_with_sweeps_grouped(table_dir):
    runs = pd.read_csv(table_dir / "runs.csv", keep_default_na=False)
    order = list(dict.fromkeys(zip(runs.dataset, runs.experiment, strict=True)))
    sweep_points = [("digits", f"alpha@lr={lr:g}") for lr in LRS]
    assert order == [("digits", "alpha"), *sweep_points, ("digits", "beta"), ("synthetic", "alpha")]
    assert list(runs.sweep) == ["", ""] + ["lr"] * 6 + ["", "", "", ""]
    assert list(runs.seed[:2]) == [0, 1]


def test_summary_mean_std_excludes_diverged(table_dir):
    summary = pd.read_csv(table_dir / "summary.csv")
    row = summary.set_index(["dataset", "experiment"])
    alpha = row.loc[("digits", "alpha")]
    assert alpha.n_seeds == 2 and alpha.n_diverged == 0 and alpha.epochs_planned == 4
    assert alpha.test_acc_at_best_val_mean == pytest.approx(0.67, abs=1e-12)
    assert alpha.test_acc_at_best_val_std == pytest.approx(0.1 / math.sqrt(2), abs=1e-12)
    assert alpha.final_test_acc_mean == pytest.approx(0.78, abs=1e-12)
    assert alpha.final_test_acc_std == pytest.approx(0.24 / math.sqrt(2), abs=1e-12)
    beta = row.loc[("digits", "beta")]
    assert beta.n_seeds == 3 and beta.n_diverged == 1 and beta.epochs_planned == 3
    # only seeds 0 and 1: best val at epochs 3 and 2 -> test 0.45 and 0.3
    assert beta.test_acc_at_best_val_mean == pytest.approx(0.375, abs=1e-12)
    assert beta.best_val_acc_mean == pytest.approx(0.45, abs=1e-12)
    assert beta.train_time_s_mean == pytest.approx(6.0)
    # a single seed: std left blank
    other = row.loc[("synthetic", "alpha")]
    assert other.n_seeds == 1 and math.isnan(other.test_acc_at_best_val_std)
    assert list(summary.sweep.fillna("")) == ["", "lr", "lr", "lr", "", ""]


def test_summary_marks_the_best_experiment_per_dataset(table_dir):
    summary = pd.read_csv(table_dir / "summary.csv").set_index(["dataset", "experiment"])
    # digits: alpha@lr=0.001 (0.70 and 0.72) beats alpha (0.67) and the rest; beta's diverged
    # seed (0.99) does not count; synthetic: alpha is alone
    assert list(summary.index[summary.best]) == [
        ("digits", "alpha@lr=0.001"),
        ("synthetic", "alpha"),
    ]
    md = (table_dir / "summary.md").read_text(encoding="utf-8")
    assert next(line for line in md.splitlines() if "alpha@lr=0.001" in line).count("| *") == 1
    assert sum("| *" in line for line in md.splitlines()) == 2


def test_tied_experiments_are_all_marked_best_and_a_lost_one_never(tmp_path):
    paths = [
        make_log(tmp_path, name, seed, val=[0.5], test=[test], status=status)
        for name, tests, status in [
            ("x", [0.5, 0.7], "completed"),
            ("y", [0.7, 0.5], "completed"),  # the same mean as x: a tie
            ("z", [0.4, 0.5], "completed"),
            ("lost", [0.9, 0.9], "diverged"),
        ]
        for seed, test in enumerate(tests)
    ]
    tables.write_tables(paths, tmp_path / "t")
    summary = pd.read_csv(tmp_path / "t" / "summary.csv")
    assert list(summary.experiment[summary.best]) == ["x", "y"]


def test_markdown_and_html_show_percent_mean_std(table_dir):
    for name in ("summary.md", "summary.html"):
        text = (table_dir / name).read_text(encoding="utf-8")
        assert "67.00 ± 7.07" in text  # alpha: test_acc_at_best_val
        assert "78.00 ± 16.97" in text  # alpha: final_test_acc
        assert "37.50 ± 10.61" in text  # beta without its diverged seed
        # the single-seed run (synthetic, the last row): numbers without a std
        single = text[text.index("synthetic") :]
        assert "40.00" in single and "±" not in single
    runs_md = (table_dir / "runs.md").read_text(encoding="utf-8")
    assert " 62.00 |" in runs_md and "diverged" in runs_md  # right-aligned number
    html = (table_dir / "runs.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "<table" in html and "62.00" in html
    assert not list(table_dir.glob(".*.tmp"))


def test_summary_leads_with_the_comparison_and_formats_numbers(table_dir):
    md = (table_dir / "summary.md").read_text(encoding="utf-8").splitlines()
    header = [cell.strip() for cell in md[4].strip("|").split("|")]
    assert header[:7] == [
        "dataset",
        "experiment",
        "test_acc_at_best_val (%)",
        "95% interval (%)",
        "best",
        "params",
        "seeds",
    ]
    # the other accuracies before what the runs cost
    assert header.index("final_test_acc (%)") < header.index("epochs_planned")
    assert header.index("train_subset_acc (%)") < header.index("train_time_s")
    beta = next(line for line in md if "| beta " in line)
    low, high = stats.t.interval(0.95, 1, loc=0.375, scale=0.075 / math.sqrt(1))
    assert f"[{low * 100:.2f}, {high * 100:.2f}]" in beta  # its two completed seeds
    assert "3 (1 diverged)" in beta
    html = (table_dir / "summary.html").read_text(encoding="utf-8")
    assert "<th>95% interval (%)</th>" in html and "text-align:right" in html


def test_summary_csv_keeps_its_columns_and_adds_the_interval(table_dir):
    summary = pd.read_csv(table_dir / "summary.csv")
    means = [f"{m}_{s}" for m in tables.METRICS for s in ("mean", "std")]
    assert list(summary.columns) == [
        *tables.SUMMARY_KEYS,
        *means,
        "test_acc_at_best_val_ci_low",
        "test_acc_at_best_val_ci_high",
    ]
    alpha = summary.set_index(["dataset", "experiment"]).loc[("digits", "alpha")]
    # seeds 0.62 and 0.72: the t-interval straight from the t distribution
    low, high = stats.t.interval(0.95, 1, loc=0.67, scale=0.05)
    assert (alpha.test_acc_at_best_val_ci_low, alpha.test_acc_at_best_val_ci_high) == (
        pytest.approx((low, high))
    )
    single = summary.set_index(["dataset", "experiment"]).loc[("synthetic", "alpha")]
    assert math.isnan(single.test_acc_at_best_val_ci_low)  # one seed: no interval


def test_params_and_speeds_with_thousands_separators(tmp_path):
    path = make_log(tmp_path, "big", 0, val=[0.5], test=[0.5])
    log = runlog.read(path)
    big = runlog.RunLog({**log.attrs, "num_params": 11172810}, log.epochs)
    runlog.write(tmp_path / "big.h5", big)
    tables.write_tables([tmp_path / "big.h5"], tmp_path / "t")
    for name in ("summary.md", "runs.md", "summary.html"):
        text = (tmp_path / "t" / name).read_text(encoding="utf-8")
        assert "11,172,810" in text and "11172810" not in text, name
    assert pd.read_csv(tmp_path / "t" / "summary.csv").params[0] == 11172810  # raw for scripts


def test_run_row_of_run_diverged_in_first_epoch(tmp_path):
    path = make_log(tmp_path, "x", 0, val=[], test=[], status="diverged")
    row = tables.run_row(runlog.read(path))
    assert row["best_epoch"] is None and row["diverged_epoch"] == 1
    assert all(math.isnan(row[m]) for m in tables.METRICS if m != "wall_time_s")
    assert row["wall_time_s"] == 60.0  # the run took its time all the same
    tables.write_tables([path], tmp_path / "t")
    summary = pd.read_csv(tmp_path / "t" / "summary.csv")
    assert summary.n_diverged[0] == 1 and math.isnan(summary.test_acc_at_best_val_mean[0])


def image(path):
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert np.ptp(pixels[..., :3]) > 0.5, "image is (nearly) one colour"
    return pixels


def published_entry(experiment, value, measures, dataset="digits"):
    return {"experiment": experiment, "dataset": dataset, "value": value, "measures": measures}


def test_accuracy_figure_dots_means_and_published_marks(logs, table_dir):
    runs = tables.runs_frame(read_logs([logs[k] for k in ORDER if k != "other"], labels=LABELS))
    published = [
        published_entry("alpha", 66.0, "best_test"),  # measures what the dots do: marked
        published_entry("alpha", 90.0, "final_val"),  # something else: reproduction table only
        published_entry("nobody", 50.0, "best_test"),  # never ran: no row to mark
    ]
    fig = accuracy.draw_accuracy(runs, published, title="digits")
    ax = fig.axes[0]
    names = [label.get_text() for label in ax.get_yticklabels()]
    # the summary's order (sweep points together); beta counts its diverged seed
    assert names == ["alpha", *[f"alpha@lr={lr:g}" for lr in LRS], "beta (1 diverged)"]
    bold = [label.get_text() for label in ax.get_yticklabels() if label.get_fontweight() == "bold"]
    assert bold == ["alpha@lr=0.001"]

    def marks(gid):
        return np.concatenate([c.get_offsets() for c in ax.collections if c.get_gid() == gid])

    # a dot per completed seed, on its experiment's row; beta's diverged seed a cross
    completed = runs[runs.status == "completed"]
    dots = marks("seeds")
    assert sorted(dots[:, 0]) == pytest.approx(sorted(completed.test_acc_at_best_val * 100))
    assert sorted(np.round(dots[:, 1]).astype(int)) == sorted(
        names.index(e) if e != "beta" else 4 for e in completed.experiment)
    assert marks("left out").tolist() == [[99.0, 4.0]]
    # the mean bars are the summary's means
    summary = tables.summary_frame(runs)
    means = [line.get_xdata()[0] for line in ax.lines if line.get_gid() == "mean"]
    assert means == pytest.approx(list(summary.test_acc_at_best_val_mean * 100))
    assert marks("published").tolist() == [[66.0, 0.0]]  # alpha's row, the top one
    low, high = ax.get_xlim()
    # accuracies and a margin, whatever the intervals of two seeds say (alpha's reaches 130%)
    assert -5.0 <= low and high <= 105.0


def test_accuracy_png(logs, tmp_path):
    out = tmp_path / "accuracy.png"
    paths = [logs[k] for k in ORDER if k != "other"]
    accuracy.write_accuracy_plot(paths, [published_entry("beta", 40.0, "best_test")], out,
                                 labels=LABELS)
    assert image(out).shape[1] == 500  # the front page's column
    with pytest.raises(ConfigError, match="'measures'"):
        accuracy.write_accuracy_plot(paths, [published_entry("beta", 40.0, "best")], out)


def test_curves_png(logs, tmp_path):
    out = tmp_path / "curves.png"
    curves.write_curves([logs[k] for k in ORDER if k != "other"], out)
    assert image(out).shape[:2] == (800, 1200)


def test_curves_with_thirty_experiments(tmp_path):
    paths = [
        make_log(tmp_path, f"experiment-{i:02d}", 0, val=[0.1, 0.2 + i / 100], test=[0.1, 0.2])
        for i in range(30)
    ]
    curves.write_curves(paths, tmp_path / "many.png", title="thirty")
    image(tmp_path / "many.png")


def test_sweep_png_and_axis_kinds(logs, tmp_path):
    out = tmp_path / "sweep.png"
    paths = [logs[k] for k in ORDER]
    sweeps.write_sweep_plot(paths, "lr", out, labels=LABELS)
    image(out)
    assert sweeps.axis_kind([0.1, 0.01, 0.001]) == "log"
    assert sweeps.axis_kind([1, 2, 4]) == "linear"
    assert sweeps.axis_kind(["flip", "none"]) == "category"
    with pytest.raises(ConfigError, match="no run of sweep 'nope'"):
        sweeps.write_sweep_plot(paths, "nope", out, labels=LABELS)


def test_categorical_sweep_with_a_lost_point(tmp_path):
    paths = []
    for i, augment in enumerate(["none", "flip", ["flip", "crop"]]):
        for seed in (0, 1):
            sweep = {"name": "aug", "base": "beta", "values": {"augment": augment, "p": 8}}
            status = "diverged" if i == 2 else "completed"
            paths.append(
                make_log(
                    tmp_path,
                    f"beta@aug={i}",
                    seed,
                    val=[0.3 + i / 10],
                    test=[0.3],
                    sweep=sweep,
                    status=status,
                )
            )
    assert sweeps.axis_kind(["none", "flip", '["flip", "crop"]']) == "category"
    sweeps.write_sweep_plot(paths, "aug", tmp_path / "aug.png", metric="best_val_acc",
                            labels=LABELS)
    image(tmp_path / "aug.png")
    with pytest.raises(ConfigError, match="does not sweep 'lr'"):
        sweeps.write_sweep_plot(paths, "aug", tmp_path / "aug.png", x="lr", labels=LABELS)
    with pytest.raises(ConfigError, match="unknown sweep metric"):
        sweeps.write_sweep_plot(paths, "aug", tmp_path / "aug.png", metric="test_acc",
                            labels=LABELS)


def test_weight_grid_is_8x8_in_row_major_order(logs, tmp_path):
    out = tmp_path / "weights.png"
    weights.write_weight_grid(logs["weights"], out)
    rgb = image(out)[..., :3]
    gap = np.array([int(weights.GAP_COLOUR[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    is_gap = np.all(np.abs(rgb - gap) < 0.02, axis=-1)
    rows_any, cols_any = np.where(is_gap.any(axis=1))[0], np.where(is_gap.any(axis=0))[0]
    grid = is_gap[rows_any[0] : rows_any[-1] + 1, cols_any[0] : cols_any[-1] + 1]
    tile_rows = _runs(~grid.all(axis=1))  # a separator line is gap from end to end
    tile_cols = _runs(~grid.all(axis=0))
    assert len(tile_rows) == 8 and len(tile_cols) == 8
    box = rgb[rows_any[0] :, cols_any[0] :]
    centres = np.array(
        [[box[(r0 + r1) // 2, (c0 + c1) // 2] for c0, c1 in tile_cols] for r0, r1 in tile_rows]
    )
    assert np.allclose(centres[..., 0], centres[..., 2])  # grayscale
    # tile i holds the constant i: after global min-max it is i/63, laid out row by row
    assert np.allclose(centres[..., 0].ravel(), np.arange(64) / 63, atol=1.5 / 255)


def _runs(flags):
    """(start, end) of each run of True in a 1-D boolean array."""
    edges = np.diff(np.concatenate([[0], flags.astype(int), [0]]))
    return list(zip(np.where(edges == 1)[0], np.where(edges == -1)[0], strict=True))


def test_weight_grid_layout_and_title(logs):
    assert weights.grid_shape(64) == (8, 8)
    assert weights.grid_shape(128) == (11, 12)
    assert weights.grid_shape(1) == (1, 1)
    log = runlog.read(logs["weights"])
    assert weights.grid_title(log, (64, 3, 3)) == "gamma / digits / seed 0: conv (64 tiles 3×3)"
    assert "first 256 of 300 tiles" in weights.grid_title(log, (300, 4, 4))
    assert np.allclose(weights.normalise(np.array([[[2.0, 4.0]]])), [[[0.0, 1.0]]])


def test_weight_grid_caps_tiles(tmp_path):
    tiles = np.random.default_rng(0).normal(size=(300, 4, 4)).astype(np.float32)
    path = make_log(
        tmp_path, "mixer", 0, val=[0.5], test=[0.5], first_layer=tiles, kind="token_mixing"
    )
    weights.write_weight_grid(path, tmp_path / "w.png")
    image(tmp_path / "w.png")


def test_weight_grid_without_first_layer_names_the_file(logs, tmp_path):
    with pytest.raises(RunLogError, match="no first-layer weights") as error:
        weights.write_weight_grid(logs["alpha0"], tmp_path / "w.png")
    assert str(logs["alpha0"]) in str(error.value)
    assert not (tmp_path / "w.png").exists()


AGGREGATIONS = {
    "tables": lambda paths, out: tables.write_tables(paths, out / "tables"),
    "curves": lambda paths, out: curves.write_curves(paths, out / "c.png"),
    "accuracy": lambda paths, out: accuracy.write_accuracy_plot(paths, [], out / "a.png"),
    "sweep": lambda paths, out: sweeps.write_sweep_plot(paths, "lr", out / "s.png", labels=LABELS),
    "weights": lambda paths, out: weights.write_weight_grid(paths[-1], out / "w.png"),
}


@pytest.mark.parametrize("problem", ["corrupt", "missing"])
@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_bad_log_is_an_error_naming_the_file(logs, tmp_path, aggregation, problem):
    bad = tmp_path / problem / "metrics.h5"
    if problem == "corrupt":
        bad.parent.mkdir()
        bad.write_bytes(b"not an HDF5 file at all")
    with pytest.raises(RunLogError) as error:
        AGGREGATIONS[aggregation]([logs["alpha0"], bad], tmp_path)
    assert str(bad) in str(error.value)
    # every log is read before anything is written
    assert not (tmp_path / "tables").exists()


def test_a_run_passed_twice_is_an_error(logs, tmp_path):
    with pytest.raises(RunLogError, match="same run"):
        tables.write_tables([logs["alpha0"], logs["alpha0"]], tmp_path)


def test_aggregation_never_imports_torch(logs, tmp_path):
    script = f"""
import json, sys
from imgzoo.aggregate import (
    accuracy, comparisons, curves, efficiency, headline, reproduction, sweeps, tables, weights)
paths = json.loads(sys.argv[1])
tables.write_tables(paths, {str(tmp_path)!r})
efficiency.write_efficiency(paths, {str(tmp_path)!r})
published = [dict(experiment="alpha", dataset="digits", value=60, measures="best_test")]
reproduction.write_reproduction(paths, published, {str(tmp_path)!r})
headline.write_headline(paths, published, {str(tmp_path)!r})
comparisons.write_comparisons(paths, [["alpha", "beta"]], {str(tmp_path)!r})
curves.write_curves(paths, {str(tmp_path / "c.png")!r})
accuracy.write_accuracy_plot(paths, published, {str(tmp_path / "a.png")!r})
sweeps.write_sweep_plot(paths, "lr", {str(tmp_path / "s.png")!r}, labels={LABELS!r})
weights.write_weight_grid({str(logs["weights"])!r}, {str(tmp_path / "w.png")!r})
bad = [m for m in sys.modules if m.split(".")[0] == "torch" or m.startswith(
    ("imgzoo.models", "imgzoo.train"))]
assert not bad, bad
"""
    paths = json.dumps([str(logs[k]) for k in ORDER])
    result = subprocess.run([sys.executable, "-c", script, paths], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
