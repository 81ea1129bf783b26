"""The claims table: a write-up's conclusions as paired comparisons over seeds, with a verdict.

The verdict rules on run logs made by hand (every case of better / worse / same, the overfitting
gap's orientation, too few seeds), the checks of `compare.claims` when a study loads, and a
small study of real runs through Snakemake: one claim comes out supported, one not
distinguishable with three seeds."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import snakemake
from scipy import stats
from test_aggregate import make_log

from imgzoo import schema
from imgzoo.aggregate import claims
from imgzoo.cli import main
from imgzoo.config import Study
from imgzoo.errors import ConfigError
from imgzoo.paths import Layout

# Selected test accuracy per seed (the last epoch's: val rises), three seeds each.
TEST = {"base": [0.60, 0.62, 0.61], "up": [0.70, 0.71, 0.715], "flat": [0.605, 0.62, 0.612],
        "noisy": [0.65, 0.58, 0.63]}
# train-subset accuracy is val + 0.1 in make_log; val is [0.1, 0.2]: gap = 0.3 - test
CLAIMS = [
    {"claim": "up is better", "source": "README", "pairs": [["up", "base"]], "expect": "better"},
    {"claim": "base is worse", "source": "README", "pairs": [["base", "up"]], "expect": "worse"},
    {"claim": "up is worse", "source": "README", "pairs": [["up", "base"]], "expect": "worse"},
    {"claim": "flat changes nothing", "source": "README", "pairs": [["flat", "base"]],
     "expect": "same", "margin": 1.0},
    {"claim": "up changes nothing", "source": "README", "pairs": [["up", "base"]],
     "expect": "same"},
    {"claim": "noisy helps", "source": "README", "pairs": [["noisy", "base"]], "expect": "better"},
    {"claim": "up overfits less", "source": "README", "pairs": [["up", "base"]],
     "expect": "better", "metric": "generalisation_gap"},
    {"claim": "on a dataset nobody ran", "source": "README", "pairs": [["up", "lonely"]],
     "expect": "better"},
    # both ran, but not on the dataset the claim speaks of: said, not left out
    {"claim": "up is better on other", "source": "README", "pairs": [["up", "base"]],
     "expect": "better", "datasets": ["other"]},
]
VERDICTS = ["supported", "supported", "contradicted", "supported", "contradicted",
            "not distinguishable with these seeds", "supported", "not tested", "not tested"]


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    paths = [
        make_log(root, name, seed, val=[0.1, 0.2], test=[0.1, value])
        for name, values in TEST.items()
        for seed, value in enumerate(values)
    ]
    paths.append(make_log(root, "lonely", 0, val=[0.1, 0.2], test=[0.1, 0.5], dataset="other"))
    return paths


@pytest.fixture(scope="module")
def table(logs, tmp_path_factory):
    out = tmp_path_factory.mktemp("tables")
    claims.write_claims(logs, CLAIMS, out)
    return pd.read_csv(out / "claims.csv"), out


def test_each_claim_gets_its_verdict(table):
    rows, _ = table
    assert list(rows["claim"]) == [c["claim"] for c in CLAIMS]
    assert list(rows["verdict"]) == VERDICTS


def test_the_difference_and_interval_are_the_paired_t_tests(table):
    rows, _ = table
    row = rows.iloc[0]
    a, b = np.array(TEST["up"]), np.array(TEST["base"])
    low, high = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert row.mean_difference == pytest.approx((a - b).mean())
    assert (row.ci_low, row.ci_high) == pytest.approx((low, high))
    assert row.n == 3 and row.seeds == "0 1 2" and row.dataset == "digits"


def test_the_gap_is_train_subset_minus_test_and_smaller_is_better(table):
    rows, _ = table
    gap = rows[rows.metric == "generalisation_gap"].iloc[0]
    # the gap is 0.3 - test for every run here: up's gap is smaller by up - base
    difference = np.array(TEST["base"]) - np.array(TEST["up"])
    assert gap.mean_difference == pytest.approx(difference.mean())
    assert gap.mean_difference < 0 and gap.verdict == "supported"


def test_verdict_edges():
    v = claims.verdict
    assert v("better", 1, 3, 0.0, 0.02, 0.01) == claims.UNDECIDED  # 0 is not above 0
    assert v("same", 1, 3, -0.01, 0.01, 0.01) == claims.SUPPORTED  # bounds included
    assert v("same", 1, 3, 0.005, 0.02, 0.01) == claims.UNDECIDED  # partly outside
    assert v("same", 1, 3, 0.011, 0.02, 0.01) == claims.CONTRADICTED
    assert v("better", -1, 3, -0.05, -0.01, 0.01) == claims.SUPPORTED  # a gap that shrank
    assert v("better", 1, 1, 0.1, 0.2, 0.01) == claims.NOT_TESTED


def test_markdown_shows_the_claim_the_pair_and_percentage_points(table):
    _, out = table
    markdown = (out / "claims.md").read_text()
    assert "| up is better" in markdown and "up − base" in markdown
    assert "same (±1 pp)" in markdown and "+9.83" in markdown  # up − base in pp
    assert "<h3>imgzoo: the write-up&#x27;s claims, tested over seeds</h3>" in (
        out / "claims.html"
    ).read_text()


def test_cli_writes_the_table_and_refuses_a_bad_claim(logs, tmp_path, capsys):
    args = ["claims", "--claims", json.dumps(CLAIMS[:1]), "--out-dir", str(tmp_path)]
    assert main([*args, *map(str, logs)]) == 0
    assert pd.read_csv(tmp_path / "claims.csv").verdict[0] == "supported"
    bad = [{**CLAIMS[0], "expect": "bigger"}]
    assert main(["claims", "--claims", json.dumps(bad), "--out-dir", str(tmp_path),
                 *map(str, logs)]) == 2
    err = capsys.readouterr().err
    assert "claims, entry 0: expect 'bigger' is not one of better, worse, same" in err


def test_the_schema_knows_exactly_the_metrics_and_expectations_of_the_table():
    claim = schema.schema()["$defs"]["claim"]["properties"]
    assert claim["metric"]["enum"] == list(claims.METRICS)
    assert claim["expect"]["enum"] == list(claims.EXPECTATIONS)


STUDY = {
    "datasets": ["digits"],
    "seeds": [0, 1],
    "experiments": {"a": {"model": "mlp"}, "b": {"model": "mlp", "lr": 0.01},
                    "c": {"model": "mlp", "datasets": ["synthetic"]}},
}


@pytest.mark.parametrize(
    ("claim", "culprit"),
    [
        ({"pairs": [["a", "z"]]}, "compare.claims.x.pairs.0': unknown experiment 'z'"),
        ({"pairs": [["a", "a"]]}, "compare.claims.x.pairs.0': compares 'a' with itself"),
        ({"pairs": [["a", "c"]]}, "'a' and 'c' share no dataset the claim speaks of"),
        ({"datasets": ["synthetic"]}, "'b' and 'a' share no dataset the claim speaks of"),
        ({"expect": "bigger"}, "compare.claims.x.expect"),
        ({"source": None}, "compare.claims.x': 'source' is a required property"),
    ],
)
def test_a_bad_claim_stops_the_study_naming_it(claim, culprit):
    config = {**STUDY, "compare": {"claims": {"x": {
        "claim": "b beats a", "source": "README", "pairs": [["b", "a"]], "expect": "better",
        **claim}}}}
    config["compare"]["claims"]["x"] = {
        k: v for k, v in config["compare"]["claims"]["x"].items() if v is not None
    }
    with pytest.raises(ConfigError, match=culprit.replace("(", r"\(").replace(")", r"\)")):
        Study(config)


def test_a_study_resolves_its_claims_with_defaults():
    config = {**STUDY, "compare": {"claims": {"x": {
        "claim": "b beats a", "source": "README", "pairs": [["b", "a"]], "expect": "better"}}}}
    (claim,) = Study(config).claims
    assert claim["name"] == "x" and claim["pairs"] == [("b", "a")]
    assert (claim["metric"], claim["margin"]) == ("test_acc_at_best_val", 1.0)


# --- a small study of real runs -------------------------------------------------------------

REAL = {
    "name": "claims",
    "datasets": ["digits"],
    "seeds": [0, 1, 2],
    "train": {"epochs": 3, "batch_size": 64, "lr": 0.003, "augment": "none"},
    "experiments": {
        "mlp": {"model": "mlp", "model_args": {"hidden": [32]}},
        # a learning rate far too small for three epochs: clearly worse on every seed
        "mlp-starved": {"model": "mlp", "model_args": {"hidden": [32]}, "lr": 1.0e-5},
        # a hardly different weight decay: no difference three seeds can show
        "mlp-decay": {"model": "mlp", "model_args": {"hidden": [32]}, "weight_decay": 6.0e-4},
    },
    "compare": {
        "claims": {
            "learning": {"claim": "a usable learning rate learns", "source": "a write-up",
                         "pairs": [["mlp", "mlp-starved"]], "expect": "better"},
            "decay": {"claim": "more weight decay helps", "source": "a write-up",
                      "pairs": [["mlp-decay", "mlp"]], "expect": "better"},
        }
    },
}


@pytest.mark.slow
def test_a_study_of_real_runs_tests_its_claims(tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(REAL, sort_keys=False))
    result = snakemake(tmp_path, "--cores", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    tables = tmp_path / Layout("claims").tables
    table = pd.read_csv(tables / "claims.csv").set_index("claim")
    assert table.loc["a usable learning rate learns", "verdict"] == "supported"
    assert table.loc["more weight decay helps", "verdict"] == (
        "not distinguishable with these seeds"
    )
    runs = pd.read_csv(tables / "runs.csv").set_index(["experiment", "seed"])
    selected = runs["test_acc_at_best_val"]
    for claim, (a, b) in (("a usable learning rate learns", ("mlp", "mlp-starved")),
                          ("more weight decay helps", ("mlp-decay", "mlp"))):
        low, high = stats.ttest_rel(selected[a], selected[b]).confidence_interval(0.95)
        row = table.loc[claim]
        assert row.n == 3 and (row.ci_low, row.ci_high) == pytest.approx((low, high))
    report = snakemake(tmp_path, "--report", Layout("claims").report)
    assert report.returncode == 0, report.stderr[-2000:]
    assert "claims.html" in (tmp_path / Layout("claims").report).read_text()
