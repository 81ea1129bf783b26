"""The `normalizer` model argument: any family standardises its own raw input (study 2's way)."""

import pytest
import torch

import imgzoo.models as models
from imgzoo.config import Run, Study
from imgzoo.errors import ConfigError
from imgzoo.models import catalog
from imgzoo.models.input_normalizer import RunningNormalizer

# One small model of each kind of first layer: dense, convolutional, patch embedding, pixels.
SMALL = {
    "mlp": {"hidden": [16]},
    "dilated": {"width": 8, "dilations": [1, 2]},
    "resnet18": {"stem": "imagenet"},
    "vit": {"patch_size": 8, "dim": 16, "depth": 1, "heads": 2, "head_hidden": 8},
    "perceiver": {
        "depth": 1,
        "num_latents": 4,
        "latent_dim": 16,
        "cross_dim_head": 8,
        "latent_dim_head": 8,
        "latent_heads": 2,
    },
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make(name, normalizer=None, size=16, chans=3, **args):
    if normalizer is not None:
        args["normalizer"] = normalizer
    return models.create(name, num_classes=5, image_size=size, in_chans=chans, **args)


@pytest.mark.parametrize("family", SMALL)
@pytest.mark.parametrize("normalizer", ["running", "running_per_channel"])
def test_every_family_takes_raw_pixels_and_trains(family, normalizer):
    model = make(family, normalizer, **SMALL[family]).train()
    assert model.input_normalization == "raw"
    assert isinstance(model.input_normalizer, RunningNormalizer)
    assert "input_normalizer.running_mean" in model.state_dict()
    out = model(torch.rand(4, 3, 16, 16))
    assert out.shape == (4, 5)
    out.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize(
    ("normalizer", "shape"), [("running", (1,)), ("running_per_channel", (3,))]
)
def test_running_statistics_update_only_in_training(normalizer, shape):
    model = make("vit", normalizer, **SMALL["vit"])
    norm = model.input_normalizer
    first = torch.rand(4, 3, 16, 16) * 0.5 + 0.2
    with torch.no_grad():
        model.train()(first)
    # The first training batch sets the statistics outright.
    dims = (0, 1, 2, 3) if normalizer == "running" else (0, 2, 3)
    expected = first.mean(dims).reshape(shape)
    assert norm.running_mean.shape == shape
    torch.testing.assert_close(norm.running_mean, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(
        norm.running_var, first.var(dims, unbiased=False).reshape(shape), atol=1e-6, rtol=0
    )
    # Later ones move them by momentum 0.01.
    second = torch.rand(4, 3, 16, 16)
    with torch.no_grad():
        model(second)
    moved = 0.99 * expected + 0.01 * second.mean(dims).reshape(shape)
    torch.testing.assert_close(norm.running_mean, moved, atol=1e-6, rtol=0)
    # Evaluation reads the statistics and never writes them.
    before = norm.running_mean.clone(), norm.running_var.clone()
    with torch.no_grad():
        model.eval()(torch.rand(4, 3, 16, 16) + 5)
    assert torch.equal(norm.running_mean, before[0]) and torch.equal(norm.running_var, before[1])


def test_the_model_sees_the_standardised_input():
    model = make("mlp", "running", **SMALL["mlp"]).train()
    seen = {}
    model.layers.register_forward_pre_hook(lambda m, args: seen.update(x=args[0]))
    x = 3.0 + 2.0 * torch.randn(64, 3, 16, 16)
    model(x)
    flat = seen["x"]
    assert abs(flat.mean().item()) < 1e-5 and abs(flat.std().item() - 1) < 1e-3


def test_fixed_leaves_the_model_alone_and_none_asks_for_raw_pixels():
    fixed = make("dilated", **SMALL["dilated"])
    assert getattr(fixed, "input_normalization", "dataset") == "dataset"
    assert not hasattr(fixed, "input_normalizer")
    assert (
        make("dilated", "fixed", **SMALL["dilated"]).state_dict().keys()
        == fixed.state_dict().keys()
    )
    raw = make("dilated", "none", **SMALL["dilated"])
    assert raw.input_normalization == "raw" and not hasattr(raw, "input_normalizer")
    torch.manual_seed(1)
    plain = make("dilated", **SMALL["dilated"]).eval()
    torch.manual_seed(1)
    unnormalised = make("dilated", "none", **SMALL["dilated"]).eval()
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(plain(x), unnormalised(x))


def test_first_layer_view_and_presets_keep_working():
    model = make("c100-resnet18", size=32)
    assert model.input_normalization == "raw"
    tiles, kind = models.first_layer_tiles(model)
    assert kind == "conv" and tiles.shape == (64, 7, 7)
    assert not hasattr(make("c100-resnet18-wonorm", size=32), "input_normalizer")
    assert make("c100-resnet18-pcnorm", size=32).input_normalizer.running_mean.shape == (3,)
    for name in ("toy-dilated", "vit-12x256-8x8", "vitn-12x256-8x8-ra", "vit-aux-3x4x256-8x8"):
        assert catalog.PRESETS[name]["model_args"]["normalizer"] == "running", name


def test_bad_values_name_the_argument():
    with pytest.raises(ConfigError, match=r"'mlp'.*normalizer='batch'"):
        make("mlp", "batch", **SMALL["mlp"])
    config = {
        "datasets": ["digits"],
        "experiments": {"a": {"model": "mlp", "model_args": {"normalizer": "runing"}}},
    }
    with pytest.raises(ConfigError, match=r"model_args.*normalizer='runing'.*running"):
        Study(config)
    # every family takes it, so config validation knows the name
    ok = {
        "datasets": ["digits"],
        "experiments": {"a": {"model": "tnt", "model_args": {"normalizer": "none"}}},
    }
    assert Study(ok).spec(Run("digits", "a", 0)).settings.model_args == {"normalizer": "none"}


def test_a_family_that_normalises_its_own_input_refuses_a_second_normaliser(tmp_path):
    timm = pytest.importorskip("timm")
    source = timm.create_model("resnet10t", pretrained=False, num_classes=3)
    path = tmp_path / "w.pt"
    torch.save(source.state_dict(), path)
    args = {"pretrained_file": str(path), "input_size": 32}
    assert make("timm/resnet10t", size=32, **args).input_normalization == "raw"
    with pytest.raises(ConfigError, match="normalises its own input"):
        make("timm/resnet10t", "running", size=32, **args)
