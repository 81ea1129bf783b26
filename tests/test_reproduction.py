"""The reproduction table and the headline on real run logs with known numbers."""

from __future__ import annotations

import base64
import json
import math
import re

import docutils.core
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from test_aggregate import make_log

from imgzoo.aggregate import accuracy, headline, read_logs, reproduction, tables
from imgzoo.cli import main
from imgzoo.errors import ConfigError
from imgzoo.frontpage import front_page
from imgzoo.paths import Layout

# "a" on digits: the test accuracy at the best-val epoch (the last: val rises) is 0.60, 0.62,
# 0.64 over seeds 0-2 (mean 0.62, std 0.02); the final val accuracy 0.70, 0.72, 0.74.
A_SELECTED = [0.60, 0.62, 0.64]
A_FINAL_VAL = [0.70, 0.72, 0.74]


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    paths = [
        make_log(root, "a", seed, val=[0.5, val], test=[0.4, test])
        for seed, (val, test) in enumerate(zip(A_FINAL_VAL, A_SELECTED, strict=True))
    ]
    # diverged with excellent numbers: left out of n and of the interval, counted
    paths.append(make_log(root, "a", 3, val=[0.99], test=[0.99], status="diverged"))
    # one seed only; a name that ends in "_" (a reference in reStructuredText)
    paths.append(make_log(root, "b_", 0, val=[0.3, 0.5], test=[0.3, 0.45], dataset="synthetic"))
    return paths


def entry(experiment, value, measures, dataset="digits", note=None):
    item = {"experiment": experiment, "dataset": dataset, "value": value, "measures": measures}
    item["source"] = "write-up, table 1"
    if note is not None:
        item["note"] = note
    return item


def t_interval(values):
    """The 95% t-interval of the mean, straight from the t distribution."""
    values = np.asarray(values)
    sem = values.std(ddof=1) / math.sqrt(len(values))
    return stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=sem)


LOW, HIGH = t_interval(A_SELECTED)  # about 57.0 and 67.0 percent
PUBLISHED = [
    entry("a", 63.0, "best_test"),  # inside the interval: match
    entry("a", 50.0, "final_test", note="trained on train+val"),  # below: we beat it
    entry("a", 80.0, "final_val"),  # above our final val interval: we miss it
    entry("a", 66.0, "best_test", note="best epoch on the test set, per the log file"),
    entry("b_", 40.0, "best_val", dataset="synthetic"),  # one seed: no interval
    entry("zz", 30.0, "best_test", dataset="cifar10"),  # no runs of ours
]


@pytest.fixture(scope="module")
def table(logs, tmp_path_factory):
    out = tmp_path_factory.mktemp("tables")
    reproduction.write_reproduction(logs, PUBLISHED, out)
    return out


def rows(table):
    frame = pd.read_csv(table / "reproduction.csv")
    return frame.fillna({"comparability": "", "source": ""})


def test_published_inside_the_interval_matches(table):
    row = rows(table).iloc[0]
    assert (row.experiment, row.measures, row.ours_metric) == (
        "a",
        "best_test",
        "test_acc_at_best_val",
    )
    assert row.n == 3 and row.n_diverged == 1  # the diverged seed is out
    assert row.ours_mean == pytest.approx(0.62) and row.ours_std == pytest.approx(0.02)
    assert (row.ci_low, row.ci_high) == pytest.approx((LOW, HIGH))
    assert row.published == pytest.approx(0.63) and row.difference == pytest.approx(-0.01)
    assert row.verdict == reproduction.MATCH
    assert "test set" in row.comparability  # the source chose its epoch on the test set


def test_published_below_or_above_the_interval_is_beaten_or_missed(table):
    final_test, final_val = rows(table).iloc[1], rows(table).iloc[2]
    # make_log's last test accuracy is the selected one here: final_test uses the same numbers
    assert final_test.ours_mean == pytest.approx(0.62) and final_test.verdict == reproduction.BEAT
    assert final_test.comparability == "trained on train+val"
    assert final_val.ours_metric == "final_val_acc"
    assert final_val.ours_mean == pytest.approx(0.72)
    assert (final_val.ci_low, final_val.ci_high) == pytest.approx(t_interval(A_FINAL_VAL))
    assert final_val.verdict == reproduction.MISS and final_val.comparability == ""


def test_a_note_that_names_the_test_set_is_kept_as_given(table):
    row = rows(table).iloc[3]
    assert row.comparability == "best epoch on the test set, per the log file"


def test_one_seed_gives_no_interval_and_no_runs_is_a_row(table):
    table_rows = rows(table)
    one = table_rows[table_rows.experiment == "b_"].iloc[0]
    assert one.n == 1 and one.verdict == reproduction.ONE_SEED
    assert (
        one.ours_mean == pytest.approx(0.5) and math.isnan(one.ci_low) and math.isnan(one.ci_high)
    )
    none = table_rows[table_rows.experiment == "zz"].iloc[0]
    assert none.n == 0 and none.verdict == reproduction.NO_RUNS and math.isnan(none.ours_mean)
    # datasets with runs first, in the runs' order; then the one without
    assert list(table_rows.dataset) == ["digits"] * 4 + ["synthetic", "cifar10"]


def test_markdown_and_html_show_percent(table):
    for name in ("reproduction.md", "reproduction.html"):
        text = (table / name).read_text(encoding="utf-8")
        assert "62.00 ± 2.00" in text and f"[{LOW * 100:.2f}, {HIGH * 100:.2f}]" in text
        assert "3 (+1 diverged)" in text and "-1.00" in text
        assert reproduction.ONE_SEED in text and reproduction.NO_RUNS in text


BAD = [
    ({"measures": "best"}, "'measures'"),
    ({"value": 150}, "percentage"),
    ({"value": "77"}, "'value'"),
    ({"measure": "best_val"}, "unknown key 'measure'"),
]


@pytest.mark.parametrize("change,culprit", BAD, ids=[c for _, c in BAD])
def test_bad_published_number_is_one_config_error(logs, tmp_path, capsys, change, culprit):
    bad = {**entry("a", 60.0, "best_val"), **change}
    with pytest.raises(ConfigError, match=culprit):
        reproduction.published_entries([entry("a", 1.0, "best_val"), bad])
    args = ["--published", json.dumps([bad]), "--out-dir", str(tmp_path), str(logs[0])]
    assert main(["reproduction", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("imgzoo: error: published numbers, entry 0") and culprit in err
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_missing_key_and_broken_json(tmp_path, capsys):
    item = entry("a", 60.0, "best_val")
    del item["dataset"]
    with pytest.raises(ConfigError, match="'dataset' is missing"):
        reproduction.published_entries([item])
    with pytest.raises(ConfigError, match="a list"):
        reproduction.published_entries({"a": item})
    assert main(["reproduction", "--published", "[{", "--out-dir", str(tmp_path), "x.h5"]) == 2
    assert "bad JSON argument" in capsys.readouterr().err


def test_cli_writes_the_table(logs, tmp_path):
    args = ["--published", json.dumps(PUBLISHED), "--out-dir", str(tmp_path)]
    assert main(["reproduction", *args, *map(str, logs)]) == 0
    assert len(pd.read_csv(tmp_path / "reproduction.csv")) == len(PUBLISHED)


def test_no_published_numbers_is_an_empty_table_that_says_so(logs, tmp_path):
    reproduction.write_reproduction(logs, [], tmp_path)
    assert "No published numbers" in (tmp_path / "reproduction.md").read_text(encoding="utf-8")
    assert len(pd.read_csv(tmp_path / "reproduction.csv")) == 0


def test_headline_counts_verdicts_and_names_the_best(logs, tmp_path):
    headline.write_headline(logs, PUBLISHED, tmp_path)
    frame = pd.read_csv(tmp_path / "headline.csv").fillna({"best": ""}).set_index("dataset")
    digits = frame.loc["digits"]
    assert digits.best == "a" and digits.best_mean == pytest.approx(0.62) and digits.best_n == 3
    # 63 and 66 inside, 50 beaten, 80 missed; not comparable: both best_test numbers (chosen on
    # the test set) and the one trained on train+val
    assert (digits.published, digits.matched, digits.beaten, digits.missed) == (4, 2, 1, 1)
    assert (digits.not_judged, digits.not_comparable) == (0, 3)
    synthetic = frame.loc["synthetic"]
    assert synthetic.best == "b_" and (synthetic.published, synthetic.not_judged) == (1, 1)
    cifar = frame.loc["cifar10"]  # published, never run: still a row
    assert cifar.best == "" and (cifar.published, cifar.not_judged) == (1, 1)
    markdown = (tmp_path / "headline.md").read_text(encoding="utf-8")
    assert "62.00 ± 2.00 (n=3)" in markdown and "|   not comparable |" in markdown
    assert SENTENCES["digits"] in markdown  # the headline in words leads


# The headline in words, per dataset, as the front page and headline.md say it.
SENTENCES = {
    "digits": "On digits, a is best: 62.0 ± 2.0% over 3 seeds; our runs match 2 of 4 published "
    "numbers (1 beaten, 1 missed).",
    "synthetic": "On synthetic, b_ is best: 45.0% over 1 seed; our runs match 0 of 1 published "
    "number (1 not judged).",
    "cifar10": "On cifar10, no experiment has a completed run; our runs match 0 of 1 published "
    "number (1 not judged).",
}


def test_headline_in_words(logs):
    runs = tables.runs_frame(read_logs(logs))
    frame = headline.headline_frame(
        tables.summary_frame(runs), reproduction.reproduction_frame(runs, PUBLISHED)
    )
    assert {row.dataset: headline.sentence(row) for row in frame.itertuples()} == SENTENCES


def test_headline_without_published_numbers_says_nothing_of_them(tmp_path):
    paths = [
        make_log(tmp_path, name, seed, val=[0.5], test=[test])
        for name, tests in {"x": [0.5, 0.7], "y": [0.7, 0.5], "z": [0.4, 0.5]}.items()
        for seed, test in enumerate(tests)
    ]
    headline.write_headline(paths, [], tmp_path / "out")
    markdown = (tmp_path / "out/headline.md").read_text(encoding="utf-8")
    assert "On digits, x and y are best (tied): 60.0 ± 14.1% over 2 seeds." in markdown
    header = next(line for line in markdown.splitlines() if line.startswith("| dataset"))
    assert [cell.strip() for cell in header.strip("|").split("|")] == [
        "dataset", "best experiment", "test_acc_at_best_val (%)"
    ]
    assert "published" not in markdown  # neither a column nor a clause
    # the CSV keeps its columns for scripts, counts of zero
    assert list(pd.read_csv(tmp_path / "out/headline.csv").columns) == list(headline.COLUMNS)


def test_headline_rst_is_clean_restructured_text(logs, tmp_path):
    headline.write_headline(logs, PUBLISHED, tmp_path)
    rst = (tmp_path / "headline.rst").read_text(encoding="utf-8")
    # halt_level 2: any docutils warning (a name read as a reference, a broken line) fails
    html = docutils.core.publish_parts(
        rst, writer="html", settings_overrides={"halt_level": 2, "report_level": 5}
    )["body"]
    assert ">b_<" in html and "62.0 ± 2.0% over 3 seeds" in html
    assert "<table" not in html  # the front page's column is narrow: the table is its own item


def test_headline_rst_embeds_the_figures_and_links_what_the_workflow_makes(logs, tmp_path):
    layout = Layout("study")
    figure = tmp_path / layout.accuracy_plot("digits")
    accuracy.write_accuracy_plot(logs[:4], PUBLISHED, figure)
    outputs = [layout.accuracy_plot("digits"), layout.curves("digits"), layout.table("summary"),
               layout.table("claims", "html")]
    page = front_page(layout, ["digits", "synthetic"], outputs)
    page["figures"] = {"digits": str(figure)}  # where this test drew it
    headline.write_headline(logs, PUBLISHED, tmp_path / "out", front_page=page)
    rst = (tmp_path / "out/headline.rst").read_text(encoding="utf-8")
    parts = docutils.core.publish_parts(
        rst, writer="html", settings_overrides={"halt_level": 2, "report_level": 5}
    )
    sources = re.findall(r'<img [^>]*src="data:image/png;base64,([^"]+)"', parts["body"])
    assert [base64.b64decode(src) for src in sources] == [figure.read_bytes()]
    assert "red diamond" in rst  # digits' figure marks its best_test numbers
    links = re.findall(r'<a class="reference external" href="([^"]+)">([^<]+)</a>', parts["body"])
    assert [text for _, text in links] == ["Learning curves on digits", "Summary over seeds",
                                           "Claims"]
    assert "handleSelectedResult('results/study/tables/claims.html')" in links[2][0]


def test_headline_with_a_missing_figure_writes_nothing(logs, tmp_path):
    page = {"figures": {"digits": str(tmp_path / "nowhere.png")}}
    with pytest.raises(ConfigError, match="nowhere.png"):
        headline.write_headline(logs, PUBLISHED, tmp_path / "out", front_page=page)
    assert not (tmp_path / "out").exists()


def test_accuracy_plot_command(logs, tmp_path):
    out = tmp_path / "digits.png"
    args = ["--published", json.dumps(PUBLISHED), "--out", str(out), "--title", "digits"]
    assert main(["accuracy-plot", *args, *map(str, logs[:4])]) == 0
    assert out.stat().st_size > 1000


def test_headline_names_every_tied_best(tmp_path):
    paths = [
        make_log(tmp_path, name, seed, val=[0.5], test=[test])
        for name, tests in {"x": [0.5, 0.7], "y": [0.7, 0.5], "z": [0.4, 0.5]}.items()
        for seed, test in enumerate(tests)
    ]
    headline.write_headline(paths, [], tmp_path / "out")
    frame = pd.read_csv(tmp_path / "out/headline.csv")
    assert list(frame.best) == ["x; y"] and frame.published[0] == 0


def test_the_config_schema_knows_exactly_the_measures_the_table_knows():
    from imgzoo.schema import schema

    def measures_enums(node):
        if isinstance(node, dict):
            if isinstance(node.get("measures"), dict) and "enum" in node["measures"]:
                yield node["measures"]["enum"]
            for value in node.values():
                yield from measures_enums(value)
        elif isinstance(node, list):
            for value in node:
                yield from measures_enums(value)

    enums = list(measures_enums(schema()))
    assert enums and all(set(enum) == set(reproduction.OURS) for enum in enums)
