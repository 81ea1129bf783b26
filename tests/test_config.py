"""Config validation and resolution: every mistake is one message naming the key, exit code 2."""

import pytest
import yaml

from imgzoo.cli import main
from imgzoo.config import Run, Study, apply_overrides, load_study, load_yaml
from imgzoo.errors import ConfigError

BASE = {
    "datasets": ["digits"],
    "seeds": [0],
    "experiments": {"mlp": {"model": "mlp"}, "res": {"model": "resnet18", "lr": 0.01}},
}


def with_changes(**changes):
    config = yaml.safe_load(yaml.safe_dump(BASE))
    config.update(changes)
    return config


def test_default_config_resolves():
    study = load_study(["config/config.yaml"])
    assert sorted(study.experiments) == ["mixer", "mlp", "resnet18"]
    assert len(study.runs) == 3 * 2 * 2
    settings = study.spec(Run("digits", "mixer", 1)).settings
    assert settings.model_args["patch_size"] == 2  # per_dataset override
    assert study.spec(Run("synthetic", "mixer", 1)).settings.model_args["patch_size"] == 4
    assert settings.train["epochs"] == 10 and settings.train["label_smoothing"] == 0.0
    assert settings.data == {}
    assert study.spec(Run("synthetic", "mlp", 0)).settings.data["image_size"] == 16


def test_a_study_file_is_the_whole_study_and_names_its_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a checkout: the default study lies in config/config.yaml
    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text(yaml.safe_dump({**BASE, "name": "default"}))
    (tmp_path / "other.yaml").write_text(
        yaml.safe_dump({"datasets": ["synthetic"], "experiments": {"mix": {"model": "mixer"}}})
    )
    other = load_study(["other.yaml"])
    assert list(other.experiments) == ["mix"] and other.config["datasets"] == ["synthetic"]
    assert other.name == "other" and other.layout.root == "results/other"
    assert other.slurm_log_dir == "results/other/logs/slurm"
    assert load_study().name == "default"  # no file given: the default study
    assert load_study(["config/config.yaml"]).layout.run_log("digits", "mlp", 0) == (
        "results/default/runs/digits/mlp/seed0/metrics.h5"
    )


def test_files_merge_in_order_and_overrides_come_last(tmp_path):
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({**BASE, "train": {"lr": 0.1, "epochs": 2}}))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({"train": {"lr": 0.2}, "seeds": [3, 4]}))
    study = load_study([tmp_path / "a.yaml", tmp_path / "b.yaml"], {"seeds": [5], "name": "x"})
    assert study.train["lr"] == 0.2 and study.train["epochs"] == 2  # merged key by key
    assert study.config["seeds"] == [5] and study.name == "x"
    assert sorted(study.experiments) == ["mlp", "res"]
    with pytest.raises(ConfigError, match="config 'name': name 'a b' may use only"):
        load_study([tmp_path / "a.yaml"], {"name": "a b"})


def test_runs_with_equal_settings_are_trained_once():
    config = with_changes(
        experiments={"mlp": {"model": "mlp"}, "mlp2": {"model": "mlp", "lr": 0.001}},
        sweeps={"s": {"base": "mlp", "grid": {"lr": [0.001, 0.01]}}},
        seeds=[0, 1],
    )
    study = Study(config)
    assert {(r.experiment, r.seed): f.experiment for r, f in study.same_as.items()} == {
        ("mlp2", 0): "mlp", ("mlp2", 1): "mlp", ("mlp@lr=0.001", 0): "mlp",
        ("mlp@lr=0.001", 1): "mlp",
    }
    assert {r.experiment for r in study.trained_runs} == {"mlp", "mlp@lr=0.01"}
    sweep_runs = study.runs_of("digits", sweep="s")
    assert study.logs_of(sweep_runs) == [
        study.layout.run_log("digits", e, s) for e in ("mlp", "mlp@lr=0.01") for s in (0, 1)
    ]
    assert study.repeats_of(sweep_runs)[0] == {
        "log": study.layout.run_log("digits", "mlp", 0),
        "experiment": "mlp@lr=0.001",
    }
    assert study.labels_of(sweep_runs)["mlp@lr=0.001"] == {
        "model": "mlp",
        "sweep": {"name": "s", "base": "mlp", "values": {"lr": 0.001}},
    }
    # another seed, another dataset or another SLURM resource: only the seed and dataset count
    config["experiments"]["mlp2"]["resources"] = {"cpus": 2}
    assert len(Study(config).same_as) == 4


def test_defaults_and_experiment_overrides():
    study = Study(with_changes())
    assert study.config["slurm"] == {"max_requeues": 3, "log_dir": None}
    assert study.slurm_log_dir == "results/default/logs/slurm"
    res = study.spec(Run("digits", "res", 0))
    assert res.train["lr"] == 0.01 and res.train["optimizer"] == "adamw"
    assert study.spec(Run("digits", "mlp", 0)).train["lr"] == 0.001
    assert res.resources["gpus"] == 1


def test_sweep_expands_into_named_experiments():
    config = with_changes(
        sweeps={"lr": {"base": "mlp", "grid": {"lr": [0.1, 0.01], "dropout": [0.0, 0.5]}}}
    )
    study = Study(config)
    names = [n for n in study.experiments if n.startswith("mlp@")]
    assert names == [
        "mlp@lr=0.1,dropout=0.0",
        "mlp@lr=0.1,dropout=0.5",
        "mlp@lr=0.01,dropout=0.0",
        "mlp@lr=0.01,dropout=0.5",
    ]
    spec = study.spec(Run("digits", "mlp@lr=0.01,dropout=0.5", 0))
    assert spec.train["lr"] == 0.01 and spec.settings.model_args["dropout"] == 0.5
    assert study.experiments["mlp@lr=0.01,dropout=0.5"]["sweep"] == {
        "name": "lr", "base": "mlp", "values": {"lr": 0.01, "dropout": 0.5}
    }


def test_sweep_points_for_ablations_that_are_not_a_grid():
    config = with_changes(
        sweeps={"s": {"base": "mlp", "points": [{"lr": 0.1}, {"lr": 0.2, "dropout": 0.5}]}}
    )
    study = Study(config)
    assert [n for n in study.experiments if "@" in n] == ["mlp@lr=0.1", "mlp@lr=0.2,dropout=0.5"]
    with pytest.raises(ConfigError, match="either 'grid' or 'points'"):
        Study(with_changes(sweeps={"s": {"base": "mlp"}}))


def test_overrides():
    spec = Study(with_changes()).spec(Run("digits", "mlp", 0))
    spec = apply_overrides(spec, ["lr=0.5", "epochs=2", "model_args.hidden=[8]"])
    assert spec.train["lr"] == 0.5 and spec.train["epochs"] == 2
    assert spec.settings.model_args["hidden"] == [8]
    with pytest.raises(ConfigError, match="'lrr'.*lr"):
        apply_overrides(spec, ["lrr=1"])
    with pytest.raises(ConfigError, match="epochs"):
        apply_overrides(spec, ["epochs=0"])


def test_schema_knows_every_augmentation_preset():
    from imgzoo import augment
    from imgzoo.schema import schema

    assert set(schema()["$defs"]["train"]["properties"]["augment"]["enum"]) == set(augment.PRESETS)


BAD_CONFIGS = [
    # (description, change to BASE, text the message must contain)
    ("unknown top-level key", {"experimnts": {}}, "'experimnts'"),
    ("unknown train key", {"train": {"epoch": 3}}, "'epoch'"),
    ("unknown experiment key", {"experiments": {"m": {"model": "mlp", "lrate": 1}}}, "'lrate'"),
    ("unknown model", {"experiments": {"m": {"model": "resnet81"}}}, "resnet18"),
    (
        "unknown model arg",
        {"experiments": {"m": {"model": "mlp", "model_args": {"hiden": [1]}}}},
        "'hiden'",
    ),
    ("unknown dataset", {"datasets": ["digit"]}, "digits"),
    ("unknown optimizer", {"train": {"optimizer": "adamx"}}, "'adamx'"),
    ("unknown schedule", {"train": {"schedule": "cosin"}}, "cosine"),
    ("wrong type", {"train": {"epochs": "ten"}}, "train.epochs"),
    ("zero epochs", {"train": {"epochs": 0}}, "train.epochs"),
    (
        "negative batch size",
        {"experiments": {"m": {"model": "mlp", "batch_size": -4}}},
        "batch_size",
    ),
    ("eval batch neither a size nor auto", {"train": {"eval_batch_size": "big"}}, "or auto"),
    ("empty seeds", {"seeds": []}, "seeds"),
    ("sweep over a missing key", {"sweeps": {"s": {"base": "mlp", "grid": {"lrr": [1]}}}}, "'lrr'"),
    (
        "sweep of a missing experiment",
        {"sweeps": {"s": {"base": "mpl", "grid": {"lr": [1]}}}},
        "'mpl'",
    ),
    ("launcher is gone (profiles/slurm sends runs to SLURM)", {"launcher": "local"}, "launcher"),
    ("unknown augmentation", {"train": {"augment": "standart"}}, "standard"),
    ("reserved character in a name", {"experiments": {"a@b": {"model": "mlp"}}}, "'a@b'"),
    ("unknown dataset option", {"data": {"digits": {"val_fractoin": 0.2}}}, "val_fraction"),
    ("bad dataset option value", {"data": {"synthetic": {"image_size": 2}}}, "image_size"),
    ("bad checksum", {"data": {"cifar10": {"checksum": "xyz"}}}, "data.cifar10"),
    ("compare with an unknown baseline", {"compare": {"baseline": "mpl"}}, "compare.baseline"),
    (
        "compare an unknown pair",
        {"compare": {"pairs": [["mlp", "rez"]]}},
        "'rez' (did you mean res",
    ),
    ("compare a pair of one", {"compare": {"pairs": [["mlp"]]}}, "compare.pairs.0"),
    ("unknown compare key", {"compare": {"base": "mlp"}}, "'base'"),
]


@pytest.mark.parametrize("description,change,culprit", BAD_CONFIGS, ids=[b[0] for b in BAD_CONFIGS])
def test_bad_config_is_one_clear_message(tmp_path, capsys, description, change, culprit):
    config = with_changes(**change)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["check", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("imgzoo: error: ") and err.count("\n") == 1, err
    assert culprit in err, err


def test_duplicate_experiment_name_from_sweep():
    config = with_changes(
        sweeps={
            "a": {"base": "mlp", "grid": {"lr": [0.1]}},
            "b": {"base": "mlp", "grid": {"lr": [0.1]}},
        },
    )
    with pytest.raises(ConfigError, match="two experiments are named 'mlp@lr=0.1'"):
        Study(config)


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("experiments:\n  mlp: {model: mlp\nseeds: [0]\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: line \d+: malformed YAML"):
        load_yaml(path)


def test_missing_config_file(tmp_path, capsys):
    assert main(["check", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: cannot read config file" in capsys.readouterr().err


def test_compare_pairs_and_baseline():
    config = with_changes(
        experiments={
            "mlp": {"model": "mlp"},
            "res": {"model": "resnet18"},
            "mix": {"model": "mixer"},
            "syn": {"model": "mlp", "datasets": ["synthetic"]},  # shares no dataset with mlp
        },
        sweeps={"lr": {"base": "mix", "grid": {"lr": [0.1]}}},
        compare={"baseline": "mlp", "pairs": [["res", "mix"], ["mix@lr=0.1", "mlp"]]},
    )
    # pairs first, then every other experiment against the baseline; each pair once
    assert Study(config).comparisons == [
        ("res", "mix"),
        ("mix@lr=0.1", "mlp"),
        ("res", "mlp"),
        ("mix", "mlp"),
    ]
    assert Study(with_changes()).comparisons == []
    with pytest.raises(ConfigError, match=r"compare.pairs.0': 'mlp' and 'syn' share no dataset"):
        Study({**config, "compare": {"pairs": [["mlp", "syn"]]}})
    with pytest.raises(ConfigError, match="compares 'res' with itself"):
        Study({**config, "compare": {"pairs": [["res", "res"]]}})


def test_a_preset_and_its_family_written_out_are_one_run():
    config = with_changes(experiments={
        "preset": {"model": "mlp-1024-512-64-64-tanh"},
        "written": {"model": "mlp", "model_args": {"hidden": [1024, 512, 64, 64],
                                                   "activation": "tanh"}},
    })
    study = Study(config)
    assert {r.experiment: f.experiment for r, f in study.same_as.items()} == {"written": "preset"}
