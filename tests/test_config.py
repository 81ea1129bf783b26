"""Config validation and resolution: every mistake is one message naming the key, exit code 2."""

import pytest
import yaml

from imgzoo.cli import main
from imgzoo.config import Study, apply_overrides, load_study, load_yaml
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
    spec = study.run_spec("digits", "mixer", 1)
    assert spec["model_args"]["patch_size"] == 2  # per_dataset override
    assert study.run_spec("synthetic", "mixer", 1)["model_args"]["patch_size"] == 4
    assert spec["train"]["epochs"] == 10 and spec["train"]["label_smoothing"] == 0.0
    assert spec["data"] == {}
    assert study.run_spec("synthetic", "mlp", 0)["data"]["image_size"] == 16


def test_defaults_and_experiment_overrides():
    study = Study(with_changes())
    assert study.config["slurm"] == {"max_requeues": 3, "log_dir": "results/logs/slurm"}
    res = study.run_spec("digits", "res", 0)
    assert res["train"]["lr"] == 0.01 and res["train"]["optimizer"] == "adamw"
    assert study.run_spec("digits", "mlp", 0)["train"]["lr"] == 0.001
    assert res["resources"]["gpus"] == 1


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
    spec = study.run_spec("digits", "mlp@lr=0.01,dropout=0.5", 0)
    assert spec["train"]["lr"] == 0.01 and spec["model_args"]["dropout"] == 0.5
    assert spec["sweep"] == {"name": "lr", "base": "mlp", "values": {"lr": 0.01, "dropout": 0.5}}


def test_sweep_points_for_ablations_that_are_not_a_grid():
    config = with_changes(
        sweeps={"s": {"base": "mlp", "points": [{"lr": 0.1}, {"lr": 0.2, "dropout": 0.5}]}}
    )
    study = Study(config)
    assert [n for n in study.experiments if "@" in n] == ["mlp@lr=0.1", "mlp@lr=0.2,dropout=0.5"]
    with pytest.raises(ConfigError, match="either 'grid' or 'points'"):
        Study(with_changes(sweeps={"s": {"base": "mlp"}}))


def test_overrides():
    spec = Study(with_changes()).run_spec("digits", "mlp", 0)
    spec = apply_overrides(spec, ["lr=0.5", "epochs=2", "model_args.hidden=[8]"])
    assert spec["train"]["lr"] == 0.5 and spec["train"]["epochs"] == 2
    assert spec["model_args"]["hidden"] == [8]
    with pytest.raises(ConfigError, match="'lrr'.*lr"):
        apply_overrides(spec, ["lrr=1"])
    with pytest.raises(ConfigError, match="epochs"):
        apply_overrides(spec, ["epochs=0"])


def test_schema_knows_every_augmentation_preset():
    from imgzoo import augment
    from imgzoo.config import schema

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
