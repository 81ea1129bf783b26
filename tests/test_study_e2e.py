"""A study on a real dataset format, end to end: a tiny CIFAR-10 archive in the official format,
prepared, trained with a sweep, aggregated (with published numbers and comparisons), and bundled
into the HTML report."""

import base64
import hashlib
import re
from html import unescape

import matplotlib.image
import pandas as pd
import pytest
import yaml
from archives import cifar10_members, learnable_images, write_tar
from scipy import stats
from test_workflow import snakemake

from imgzoo.paths import Layout

LAYOUT = Layout("config")  # the study's file is config.yaml

PUBLISHED = {
    "mlp": {"value": 40.0, "measures": "best_test", "source": "a write-up, table 1"},
    "mixer": {
        "value": 99.0,
        "measures": "final_val",
        "source": "a write-up, figure 2",
        "note": "trained on train+val",
    },
}


def report_item(html: str, name: str) -> str:
    """The text of a result the report embeds (as a base64 data URI)."""
    match = re.search(rf"filename={re.escape(name)};base64,([A-Za-z0-9+/=]+)", html)
    assert match, f"{name} is not in the report"
    return base64.b64decode(match.group(1)).decode("utf-8")


def expected_verdict(values, published):
    """The verdict from the t distribution directly (seeds that agree: an interval of width 0)."""
    mean, sem = values.mean(), stats.sem(values)
    low, high = (
        stats.t.interval(0.95, len(values) - 1, loc=mean, scale=sem) if sem else (mean, mean)
    )
    return "beat" if published < low else "miss" if published > high else "match"


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
            "mlp": {
                "model": "mlp",
                "model_args": {"hidden": [32]},
                "published": {"cifar10": PUBLISHED["mlp"]},
            },
            "mixer": {
                "model": "mixer-study1",
                "model_args": {"dim": 16, "depth": 1},
                "published": {"cifar10": PUBLISHED["mixer"]},
            },
        },
        "sweeps": {"mlp-lr": {"base": "mlp", "grid": {"lr": [1.0e-2, 1.0e-3]}}},
        "compare": {"baseline": "mlp", "pairs": [["mlp@lr=0.01", "mlp@lr=0.001"]]},
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

    tables = tmp_path / LAYOUT.tables
    runs = pd.read_csv(tables / "runs.csv")
    selected = runs.groupby("experiment")["test_acc_at_best_val"].mean()
    best = set(selected.index[selected >= selected.max() - 1e-12])
    assert set(summary.experiment[summary.best]) == best

    reproduction = pd.read_csv(tables / "reproduction.csv").set_index("experiment")
    assert list(reproduction.index) == ["mlp", "mixer"] and (reproduction.n == 2).all()
    for experiment, metric in [("mlp", "test_acc_at_best_val"), ("mixer", "final_val_acc")]:
        row, published = reproduction.loc[experiment], PUBLISHED[experiment]
        values = runs[runs.experiment == experiment][metric].to_numpy()
        assert row.ours_metric == metric and row.ours_mean == pytest.approx(values.mean())
        assert row.verdict == expected_verdict(values, published["value"] / 100)
    assert "test set" in reproduction.loc["mlp", "comparability"]
    assert reproduction.loc["mixer", "comparability"] == "trained on train+val"

    comparisons = pd.read_csv(tables / "comparisons.csv")
    pairs = list(zip(comparisons.experiment_a, comparisons.experiment_b, strict=True))
    assert pairs == [
        ("mlp@lr=0.01", "mlp@lr=0.001"),
        ("mixer", "mlp"),
        ("mlp@lr=0.01", "mlp"),
        ("mlp@lr=0.001", "mlp"),
    ]
    assert (comparisons.n == 2).all() and (comparisons.dataset == "cifar10").all()
    by_seed = runs.set_index(["experiment", "seed"])["test_acc_at_best_val"]
    for row in comparisons.itertuples():
        difference = by_seed[row.experiment_a] - by_seed[row.experiment_b]
        assert row.mean_difference == pytest.approx(difference.mean())

    headline = pd.read_csv(tables / "headline.csv").iloc[0]
    assert headline.dataset == "cifar10" and set(headline.best.split("; ")) == best
    judged = headline.matched + headline.beaten + headline.missed
    assert headline.published == 2 and judged == 2 and headline.not_comparable == 2

    report = snakemake(tmp_path, "--report", LAYOUT.report)
    assert report.returncode == 0, report.stderr[-2000:]
    html = (tmp_path / LAYOUT.report).read_text()
    for name in ("summary.html", "runs.html", "curves.png", "sweep-mlp-lr.png", "first_layer.png"):
        assert name in html, name
    assert "mixer" in report_item(html, "reproduction.html")
    assert "mlp@lr=0.001" in report_item(html, "comparisons.html")
    assert "cifar10" in report_item(html, "headline.html")
    assert "accuracy.png" in html
    # the front page (workflow.rst, rendered by docutils) answers in words, shows the figure and
    # links the tables the study makes (a JavaScript string in the page: quotes escaped, "@"
    # written as &#64; by docutils)
    front = unescape(html.replace('\\"', '"'))
    start = front.index("var workflow_desc")
    front = front[start : front.index("var results", start)]
    assert "On <tt class=\"docutils literal\">cifar10</tt>, " in front
    assert "over 2 seeds; our runs match " in front
    for name in best:
        assert f'<tt class="docutils literal">{name}</tt>' in front
    accuracy_png = base64.b64encode((tmp_path / LAYOUT.accuracy_plot("cifar10")).read_bytes())
    assert f'src="data:image/png;base64,{accuracy_png.decode()}"' in front
    linked = re.findall(r'href="javascript:[^"]*?handleSelectedResult\(\'([^\']+)\'\)', front)
    assert [path.rsplit("/", 1)[1] for path in linked] == [
        "curves.png", "summary.html", "efficiency.html", "reproduction.html",
        "comparisons.html", "headline.html", "runs.html",
    ]
    assert "<table" not in front  # the tables are items of their own, a click away

    # a corrected published number re-makes what shows it (a best_test number: the figure too),
    # and trains nothing
    config["experiments"]["mlp"]["published"]["cifar10"]["value"] = 41.0
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    plan = snakemake(tmp_path, "-n", "--quiet", "rules")
    assert plan.returncode == 0, plan.stderr[-2000:]
    # the plan's "Job stats" table: one "rule count" line per rule, then "total"
    planned = set(re.findall(r"^(\w+)\s+\d+$", plan.stdout, flags=re.MULTILINE)) - {"total"}
    assert planned == {"reproduction", "headline", "accuracy_plot", "all"}, plan.stdout
