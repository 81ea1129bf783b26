"""The model arguments' description (imgzoo.models.arguments): held to the builders, checked the
same way when a study is loaded and when a model is built."""

import inspect

import pytest
import yaml
from helpers import default_model_args

from imgzoo.cli import main
from imgzoo.config import Study
from imgzoo.errors import ConfigError
from imgzoo.models import arguments, builder, catalog, create


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
