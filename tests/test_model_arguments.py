"""The model arguments' description (imgzoo.models.arguments): held to the builders, checked the
same way when a study is loaded and when a model is built."""

import inspect
import subprocess
import sys

import pytest
import yaml
from helpers import REPO, default_model_args

from imgzoo.cli import main
from imgzoo.config import Study
from imgzoo.errors import ConfigError
from imgzoo.models import arguments, builder, catalog, create

STUDIES = REPO / "config" / "studies"


@pytest.mark.parametrize("family", sorted(catalog.FAMILIES))
def test_the_description_names_exactly_the_builders_arguments(family):
    params = inspect.signature(builder(family)).parameters
    own = [n for n in params if n not in ("num_classes", "image_size", "in_chans")]
    assert sorted(own) == sorted(arguments.ARGUMENTS[family])


@pytest.mark.parametrize("name", catalog.known_models())
def test_every_default_and_preset_passes_the_check(name):
    family, _ = catalog.resolve(name)
    arguments.check_model_args(family, default_model_args(name))


def test_the_mlp_knows_exactly_the_described_activations():
    from imgzoo.models.mlp import ACTIVATIONS

    assert sorted(ACTIVATIONS) == sorted(arguments.ACTIVATIONS)


BAD = [
    # (model, model_args, text of the message)
    ("mlp", {"activation": "nope"}, "activation='nope' is not one of gelu, relu"),
    ("mlp", {"hiden": [8]}, "unknown argument 'hiden' (did you mean hidden?)"),
    ("mlp", {"hidden": [8, 0]}, "hidden=[8, 0] must be a list of positive integers"),
    ("mlp", {"dropout": 1.5}, "dropout=1.5 must be a number in [0, 1)"),
    ("resnet18", {"mixstyle": True}, "mixstyle=True is not one of 0, 1, 2, 3"),
    ("vit", {"heads": "4"}, "heads='4' must be a positive integer"),
    ("vit-spt-lsa", {"spt": "yes"}, "spt='yes' must be true or false"),
    ("swin", {"depths": []}, "depths=[] must be a non-empty list of positive integers"),
    ("tnt", {"pixel_heads": 0}, "pixel_heads=0 must be a positive integer, or null"),
    ("perceiver_io", {"query": "all"}, "query='all' is not one of single, per_class"),
    ("dilated", {"normalizer": "batch"}, "normalizer='batch' is not one of fixed, none"),
]


@pytest.mark.parametrize("model,model_args,message", BAD, ids=[b[2][:30] for b in BAD])
def test_a_bad_argument_is_one_message_when_the_study_loads_and_when_built(
    model, model_args, message
):
    family = catalog.resolve(model)[0]
    config = {"datasets": ["digits"], "experiments": {"x": {"model": model,
                                                            "model_args": model_args}}}
    with pytest.raises(ConfigError) as loaded:
        Study(config)
    assert str(loaded.value).startswith("config 'experiments.x.model_args': model family ")
    assert f"model family '{family}': {message}" in str(loaded.value)
    with pytest.raises(ConfigError) as built:
        create(model, num_classes=10, image_size=32, in_chans=3, **model_args)
    assert str(built.value) == str(loaded.value).removeprefix(
        "config 'experiments.x.model_args': "
    )


def test_the_readme_example_stops_imgzoo_check(tmp_path, capsys):
    config = {"experiments": {"m": {"model": "mlp", "model_args": {"activation": "nope"}}}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(config))
    assert main(["check", "--config", str(tmp_path / "s.yaml")]) == 2
    err = capsys.readouterr().err
    assert "config 'experiments.m.model_args': model family 'mlp': activation='nope'" in err


def test_the_write_ups_studies_are_checked_with_the_builders_defaults_without_torch():
    code = (
        "import sys; from pathlib import Path; from imgzoo.config import load_study; "
        f"[load_study([p], check_sources=False) for p in Path({str(STUDIES)!r}).glob('*.yaml')]; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("family", sorted(catalog.FAMILIES))
def test_the_builders_defaults_are_read_from_their_source(family):
    params = inspect.signature(builder(family)).parameters.values()
    signature = {p.name: p.default for p in params if p.default is not p.empty}
    assert arguments.builder_defaults(family) == signature


# What arguments must satisfy together and with the dataset's image size (12 px here).
JOINT = [
    # (model, model_args, the message after "model family '...': ")
    ("vit", {}, "patch_size 8 does not divide image_size 12; choose a patch size that divides it"),
    ("mixer", {"patch_size": 5}, "patch_size 5 does not divide image_size 12"),
    ("swin", {}, "4 stages need a token grid of at least 8, but image_size 12 / patch_size 4 = 3"),
    ("tnt", {"pixel_size": 3}, "pixel_size 3 does not divide patch_size 4"),
    ("vit", {"patch_size": 4, "dim": 100, "heads": 3}, "heads 3 must divide dim 100"),
]


@pytest.mark.parametrize("model,model_args,message", JOINT, ids=[j[2][:30] for j in JOINT])
def test_arguments_that_do_not_fit_the_image_size_stop_the_study_as_the_builder_does(
    model, model_args, message
):
    config = {
        "datasets": ["synthetic"],
        "data": {"synthetic": {"image_size": 12}},
        "experiments": {"x": {"model": model, "model_args": model_args}},
    }
    with pytest.raises(ConfigError) as loaded:
        Study(config)
    assert str(loaded.value).startswith(f"config 'experiments.x' on synthetic: model family "
                                        f"'{model}': {message}")
    with pytest.raises(ConfigError) as built:
        create(model, num_classes=10, image_size=12, in_chans=3, **model_args)
    where = "config 'experiments.x' on synthetic: "
    assert str(built.value) == str(loaded.value).removeprefix(where)


def test_the_image_size_is_checked_per_dataset_where_it_is_known(tmp_path):
    config = {
        "datasets": ["synthetic", "cifar10", "mine"],
        "data": {"synthetic": {"image_size": 12},
                 "mine": {"format": "npz", "source": str(tmp_path / "mine.npz")}},
        # patch 8 fits CIFAR's 32 px; at 12 px the experiment gives patch 4 on that dataset
        "experiments": {"x": {"model": "vit", "per_dataset": {
            "synthetic": {"model_args": {"patch_size": 4}}}}},
    }
    Study(config)  # and an archive's size is known in the job only: its builder checks it then
    del config["experiments"]["x"]["per_dataset"]
    with pytest.raises(ConfigError, match="'experiments.x' on synthetic: model family 'vit'"):
        Study(config)


def test_a_sweep_point_that_does_not_fit_is_named_where_the_config_writes_it():
    config = {
        "datasets": ["digits"],
        "experiments": {"v": {"model": "vit", "model_args": {"patch_size": 4}}},
        "sweeps": {"p": {"base": "v", "grid": {"patch_size": [4, 3]}}},
    }
    with pytest.raises(ConfigError) as loaded:
        Study(config)
    assert str(loaded.value).startswith(
        "config 'sweeps.p (point v@patch_size=3)' on digits: model family 'vit': patch_size 3 "
    )
