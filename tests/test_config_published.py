"""Published numbers in the config (`published:`), and what a sweep point may carry."""

import copy

import pytest

from imgzoo.config import Run, Study
from imgzoo.errors import ConfigError

ENTRY = {"value": 77.1, "measures": "best_test", "source": "write-up README, Swin table"}

CONFIG = {
    "datasets": ["digits", "synthetic"],
    "seeds": [0, 1],
    "train": {"epochs": 2, "lr": 1.0e-3},
    "experiments": {
        "mlp": {
            "model": "mlp",
            "per_dataset": {"synthetic": {"lr": 3.0e-3, "model_args": {"dropout": 0.1}}},
            "published": {
                "digits": {**ENTRY, "note": "selected on the test set"},
                "synthetic": {"value": 50, "measures": "final_val", "source": "log.csv"},
            },
        },
        "tiny": {"model": "mlp", "datasets": ["digits"], "model_args": {"hidden": [8]}},
    },
    "sweeps": {
        "mlp-lr": {"base": "mlp", "grid": {"lr": [0.1, 0.01]}},
        "mlp-drop": {
            "base": "mlp",
            "points": [
                {"dropout": 0.0, "datasets": ["synthetic"]},
                {
                    "dropout": 0.5,
                    "published": {
                        "digits": {"value": 12.5, "measures": "final_test", "source": "s"}
                    },
                },
            ],
        },
    },
}


def study(**changes) -> Study:
    config = copy.deepcopy(CONFIG)
    for path, value in changes.items():
        *keys, last = path.split("__")
        node = config
        for key in keys:
            node = node[key]
        node[last] = value
    return Study(config)


def test_published_lists_one_entry_per_experiment_and_dataset():
    rows = study().published()
    assert rows == [
        {
            "experiment": "mlp",
            "dataset": "digits",
            "value": 77.1,
            "measures": "best_test",
            "source": "write-up README, Swin table",
            "note": "selected on the test set",
        },
        {
            "experiment": "mlp",
            "dataset": "synthetic",
            "value": 50.0,
            "measures": "final_val",
            "source": "log.csv",
            "note": "",
        },
        {
            "experiment": "mlp@dropout=0.5",
            "dataset": "digits",
            "value": 12.5,
            "measures": "final_test",
            "source": "s",
            "note": "",
        },
    ]


def test_published_numbers_never_enter_a_run_spec():
    base = study()
    changed = study(experiments__mlp__published={"digits": {**ENTRY, "value": 12.0}})
    for run in base.runs:
        spec = base.spec(Run(run.dataset, run.experiment, run.seed))
        assert "published" not in str(spec)
        assert spec == changed.spec(Run(run.dataset, run.experiment, run.seed))


def test_sweep_points_do_not_inherit_the_base_numbers():
    s = study()
    assert "published" not in s.experiments["mlp@lr=0.1"]
    assert "published" not in s.experiments["mlp@dropout=0.0"]


def test_a_point_may_run_on_some_of_the_base_datasets():
    s = study()
    assert s.datasets_of("mlp@dropout=0.0") == ["synthetic"]
    assert s.datasets_of("mlp@dropout=0.5") == ["digits", "synthetic"]
    (label,) = s.labels_of([Run("synthetic", "mlp@dropout=0.0", 1)]).values()
    assert label["sweep"]["values"] == {"dropout": 0.0}  # where it runs is no swept value
    with pytest.raises(ConfigError, match=r"sweeps\.x\.points\.0\.datasets.*'tiny'.*'synthetic'"):
        study(sweeps__x={"base": "tiny", "points": [{"hidden": [4], "datasets": ["synthetic"]}]})
    with pytest.raises(ConfigError, match=r"sweeps\.x.*no point runs on dataset 'digits'"):
        study(sweeps__x={"base": "mlp", "points": [{"hidden": [4], "datasets": ["synthetic"]}]})
    with pytest.raises(ConfigError, match=r"sweeps\.x\.points\.0.*must set a key"):
        study(sweeps__x={"base": "tiny", "points": [{"datasets": ["digits"]}]})


def test_a_swept_value_wins_over_the_base_per_dataset_value():
    s = study()
    assert s.spec(Run("synthetic", "mlp", 0)).train["lr"] == 3.0e-3
    for lr in (0.1, 0.01):
        assert s.spec(Run("synthetic", f"mlp@lr={lr}", 0)).train["lr"] == lr
        assert s.spec(Run("digits", f"mlp@lr={lr}", 0)).train["lr"] == lr
    # the base's other per-dataset settings stay
    assert s.spec(Run("synthetic", "mlp@lr=0.1", 0)).settings.model_args["dropout"] == 0.1
    assert s.spec(Run("synthetic", "mlp@dropout=0.5", 0)).settings.model_args["dropout"] == 0.5
    assert s.spec(Run("synthetic", "mlp@dropout=0.5", 0)).train["lr"] == 3.0e-3


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        (
            "experiments__tiny__published",
            {"synthetic": ENTRY},
            r"experiments\.tiny\.published\.synthetic.*does not run on dataset 'synthetic'",
        ),
        (
            "experiments__mlp__published",
            {"digits": {**ENTRY, "measures": "best"}},
            r"experiments\.mlp\.published\.digits\.measures.*best_test",
        ),
        (
            "experiments__mlp__published",
            {"digits": {**ENTRY, "value": 0.771e3}},
            r"experiments\.mlp\.published\.digits\.value",
        ),
        (
            "experiments__mlp__published",
            {"digits": {"value": 70, "measures": "best_val"}},
            r"experiments\.mlp\.published\.digits.*'source' is a required property",
        ),
        (
            "experiments__mlp__published",
            {"digits": {**ENTRY, "epoch": 3}},
            r"experiments\.mlp\.published\.digits.*'epoch'",
        ),
        (
            "sweeps__mlp-drop__points",
            [{"dropout": 0.1, "published": {"digits": {**ENTRY, "measures": "top1"}}}],
            r"sweeps\.mlp-drop\.points\.0\.published\.digits\.measures",
        ),
    ],
)
def test_bad_published_entries_name_the_key(path, value, match):
    with pytest.raises(ConfigError, match=match):
        study(**{path: value})
