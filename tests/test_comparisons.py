"""Paired comparisons on real run logs, checked against scipy directly."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from test_aggregate import make_log

from imgzoo.aggregate import comparisons
from imgzoo.cli import main
from imgzoo.errors import ConfigError

# The selected test accuracy (the last epoch's: val rises) per seed on digits.
A = [0.70, 0.74, 0.71, 0.90]
B = [0.65, 0.69, 0.67, 0.10]  # seed 3 of B diverges: it and A's seed 3 are left out
C_SYNTHETIC = [0.5]


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    paths = []
    for name, values in {"a": A, "b": B}.items():
        for seed, value in enumerate(values):
            status = "diverged" if (name, seed) == ("b", 3) else "completed"
            paths.append(
                make_log(root, name, seed, val=[0.1, 0.2], test=[0.1, value], status=status)
            )
    # on synthetic, a has seeds 0 and 1 and c only seed 0: one paired seed
    for seed in (0, 1):
        paths.append(
            make_log(root, "a", seed, val=[0.1, 0.2], test=[0.1, 0.6], dataset="synthetic")
        )
    paths.append(make_log(root, "c", 0, val=[0.1, 0.2], test=[0.1, 0.5], dataset="synthetic"))
    # d runs only on a dataset b never ran on
    paths.append(make_log(root, "d", 0, val=[0.1, 0.2], test=[0.1, 0.5], dataset="other"))
    return paths


PAIRS = [["a", "b"], ["c", "a"], ["b", "d"]]


@pytest.fixture(scope="module")
def table(logs, tmp_path_factory):
    out = tmp_path_factory.mktemp("tables")
    comparisons.write_comparisons(logs, PAIRS, out)
    return pd.read_csv(out / "comparisons.csv").fillna(
        {"note": "", "seeds": "", "dataset": ""}
    ), out


def test_paired_difference_interval_and_p_value_are_scipys(table):
    rows, _ = table
    row = rows.iloc[0]
    assert (row.dataset, row.experiment_a, row.experiment_b) == ("digits", "a", "b")
    assert row.n == 3 and row.seeds == "0 1 2" and "seed 3 left out" in row.note
    a, b = np.array(A[:3]), np.array(B[:3])
    expected = stats.ttest_rel(a, b)
    assert row.p_value == pytest.approx(expected.pvalue)
    d = a - b
    assert row.mean_difference == pytest.approx(d.mean())
    # the interval from the t distribution itself, not from the same scipy call
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    assert (row.ci_low, row.ci_high) == pytest.approx((d.mean() - half, d.mean() + half))
    assert row.ci_low > 0 and row.p_value < 0.05  # a is better, beyond the seeds' noise


def test_one_common_seed_needs_two_and_prints_no_number(table):
    rows, out = table
    row = rows.iloc[1]
    assert (row.dataset, row.experiment_a, row.experiment_b, row.n) == ("synthetic", "c", "a", 1)
    assert "needs ≥2 seeds" in row.note
    assert all(math.isnan(row[c]) for c in ("mean_difference", "ci_low", "ci_high", "p_value"))
    markdown = (out / "comparisons.md").read_text(encoding="utf-8")
    line = next(line for line in markdown.splitlines() if "| synthetic" in line)
    assert "needs ≥2 seeds" in line and not any(ch.isdigit() for ch in line.split("|")[6])


def test_a_pair_without_a_common_dataset_is_a_row(table):
    rows, _ = table
    row = rows.iloc[2]
    assert (row.dataset, row.experiment_a, row.experiment_b, row.n) == ("", "b", "d", 0)
    assert "no dataset on which both ran" in row.note
    assert len(rows) == 3


def test_markdown_shows_percentage_points(table):
    _, out = table
    text = (out / "comparisons.md").read_text(encoding="utf-8")
    d = np.array(A[:3]) - np.array(B[:3])
    assert f"{d.mean() * 100:+.2f}" in text and "A − B (pp)" in text
    html = (out / "comparisons.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    # numbers aligned right as in the Markdown: n, A − B, the interval, p (columns 4, 6-8)
    numbers = "td:nth-child(4),th:nth-child(4),td:nth-child(6),th:nth-child(6),td:nth-child(7)"
    assert numbers in html and "td:nth-child(5)" not in html


def test_identical_differences_give_zero_width_and_no_warning(tmp_path):
    tests = {"x": [0.5, 0.6], "y": [0.4, 0.5], "z": [0.5, 0.6]}
    paths = [
        make_log(tmp_path, name, seed, val=[0.1, 0.2], test=[0.1, value])
        for name, values in tests.items()
        for seed, value in enumerate(values)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # scipy's precision-loss warning
        comparisons.write_comparisons(paths, [["x", "y"], ["x", "z"]], tmp_path / "out")
    rows = pd.read_csv(tmp_path / "out/comparisons.csv").fillna({"note": ""})
    same_gap, same = rows.iloc[0], rows.iloc[1]
    # x - y is 0.1 on both seeds (to the last bit or nearly): an interval of width ~0
    assert same_gap.mean_difference == pytest.approx(0.1)
    assert (same_gap.ci_low, same_gap.ci_high) == pytest.approx((0.1, 0.1))
    # x - z is exactly 0 on both seeds: no test at all
    assert same.mean_difference == 0 and same.ci_low == same.ci_high == 0
    assert math.isnan(same.p_value) and "no test" in same.note


@pytest.mark.parametrize(
    "pairs,culprit",
    [({"a": "b"}, "a list"), ([["a"]], "pair 0"), ([["a", "a"]], "with itself")],
)
def test_bad_pairs_are_one_config_error(logs, tmp_path, capsys, pairs, culprit):
    with pytest.raises(ConfigError, match=culprit):
        comparisons.comparison_pairs(pairs)
    args = ["--pairs", json.dumps(pairs), "--out-dir", str(tmp_path), str(logs[0])]
    assert main(["compare", *args]) == 2
    assert culprit in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_cli_writes_the_table(logs, tmp_path):
    args = ["--pairs", json.dumps(PAIRS), "--out-dir", str(tmp_path), *map(str, logs)]
    assert main(["compare", *args]) == 0
    assert len(pd.read_csv(tmp_path / "comparisons.csv")) == 3
