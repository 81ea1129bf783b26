"""The model registry, and the MLP, convolutional and MLP-Mixer families: mlp, resnet18/34,
dilated, mixer."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import default_model_args
from torch import nn

import imgzoo.models as models
from imgzoo.errors import ConfigError
from imgzoo.models import catalog
from imgzoo.models.layers import MixStyle

FAMILIES_HERE = ("mlp", "resnet18", "resnet34", "dilated", "mixer")
PRESETS_HERE = sorted(n for n, p in catalog.PRESETS.items() if p["model"] in FAMILIES_HERE)

# Small widths keep the whole file fast on a 2-core CPU; the ResNets have no width argument, so
# they use the cheap ImageNet stem (4x downsampling) from 64 px up.
TINY = {
    "mlp": {"hidden": [32]},
    "resnet18": {},
    "resnet34": {"stem": "imagenet"},
    "dilated": {"width": 8},
    "mixer": {"patch_size": 4, "dim": 32, "depth": 2},
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make(name, size=32, classes=10, chans=3, **args):
    return models.create(name, num_classes=classes, image_size=size, in_chans=chans, **args)


def test_registry_module_does_not_import_torch():
    code = "import sys, imgzoo.models; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_catalog_lists_these_families_and_their_presets():
    for family in FAMILIES_HERE:
        assert family in catalog.FAMILIES
        assert catalog.has_first_layer_view(family)
    expected = {
        "mlp-1024-512-64-64-tanh", "resnet18-study1", "c100-resnet18", "c100-resnet18-tnc",
        "c100-resnet34", "c100-resnet18-wonorm",
        "c100-resnet18-pcnorm", "c100-resnet18-gn", "c100-resnet18-ms1", "c100-resnet18-ms2",
        "c100-resnet18-ms3", "toy-dilated", "mixer-study1", "mixer-study1-json", "mixer-s16",
    }
    assert expected <= set(PRESETS_HERE)


@pytest.mark.parametrize("name", PRESETS_HERE + list(FAMILIES_HERE))
def test_every_family_and_preset_builds_with_the_right_head(name):
    model = make(name, size=32, classes=100).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 32, 32))
    # one logit per class, unless the preset keeps its source's wider head (study 2's 1000)
    assert out.shape == (2, default_model_args(name)["head_outputs"] or 100)
    assert torch.isfinite(out).all()


# (image size, classes, channels): digits-like 8x8 grey, CIFAR, Tiny ImageNet, STL-10 sizes.
CASES = [(8, 10, 1), (32, 10, 3), (64, 100, 3), (96, 200, 3)]


@pytest.mark.parametrize("family", FAMILIES_HERE)
@pytest.mark.parametrize(("size", "classes", "chans"), CASES)
def test_forward_backward(family, size, classes, chans):
    args = dict(TINY[family])
    if family == "resnet18" and size >= 64:
        args["stem"] = "imagenet"
    model = make(family, size, classes, chans, **args).train()
    out = model(torch.rand(2, chans, size, size))
    assert out.shape == (2, classes)
    out.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name


def test_gn_replaces_every_batchnorm():
    bn = make("resnet18")
    gn = make("resnet18", norm="gn")
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in bn.modules())
    assert n_bn == 20  # stem + 2 per block x 8 blocks + 3 downsampling shortcuts
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in gn.modules())
    groups = [m for m in gn.modules() if isinstance(m, nn.GroupNorm)]
    assert len(groups) == n_bn and all(m.num_groups == 16 for m in groups)
    # A preset's arguments can be overridden by the experiment's.
    gn_preset = make("c100-resnet18", norm="gn")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in gn_preset.modules())


def test_norm_none_has_no_norm_layers_and_trains_stably():
    model = make("resnet18", norm="none").train()
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) for m in model.modules())
    out = model(torch.rand(4, 3, 16, 16))
    assert torch.isfinite(out).all() and out.abs().max() < 100


def test_mixstyle_is_identity_in_eval_and_mixes_in_training():
    x = torch.randn(6, 8, 5, 5) * torch.rand(6, 1, 1, 1) * 3 + torch.randn(6, 1, 1, 1)
    layer = MixStyle(p=1.0)
    assert torch.equal(layer.eval()(x), x)
    mixed = layer.train()(x)
    assert not torch.allclose(mixed, x)
    # Mixing leaves each sample's normalised pattern alone and changes only its statistics.
    def standardise(t):
        return (t - t.mean((2, 3), keepdim=True)) / t.std((2, 3), keepdim=True)
    assert torch.allclose(standardise(mixed), standardise(x), atol=1e-3)

    plain = make("resnet18", mixstyle=0)
    mix = make("resnet18", mixstyle=3)
    mix.load_state_dict(plain.state_dict())  # MixStyle has no parameters or buffers
    images = torch.rand(4, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(mix.eval()(images), plain.eval()(images))
        mix.mixstyle.p = 1.0  # make the coin toss certain
        assert not torch.allclose(mix.train()(images), plain.train()(images))
        mix.mixstyle.p = 0.0
        assert torch.allclose(mix(images), plain(images))

    # Deep stages of 8 px images are 1x1 maps: statistics must stay finite there.
    digits = make("c100-resnet18-ms3", size=8, chans=1).train()
    digits.mixstyle.p = 1.0
    assert torch.isfinite(digits(torch.rand(4, 1, 8, 8))).all()


def test_unknown_model_name_suggests_close_match():
    with pytest.raises(ConfigError, match="resnet18"):
        make("resnet19")
    with pytest.raises(ConfigError, match="c100-resnet18-gn"):
        make("c100-resnet18-gm")


def test_unknown_argument_names_it_and_the_family():
    with pytest.raises(ConfigError, match=r"'mlp'.*'hiden'.*hidden"):
        make("mlp", hiden=[8])
    with pytest.raises(ConfigError, match=r"'resnet34'.*'depth'"):
        make("c100-resnet34", depth=50)


@pytest.mark.parametrize(("name", "args", "match"), [
    ("mlp", {"activation": "swish"}, "activation"),
    ("mlp", {"hidden": 64}, "hidden"),
    ("mlp", {"dropout": 1.5}, "dropout"),
    ("resnet18", {"stem": "tiny"}, "stem"),
    ("resnet18", {"norm": "ln"}, "norm"),
    ("resnet18", {"normalizer": "batch"}, "normalizer"),
    ("resnet18", {"mixstyle": 4}, "mixstyle"),
    ("dilated", {"dilations": []}, "dilations"),
    ("mixer", {"dim": 0}, "dim"),
])
def test_bad_argument_values(name, args, match):
    with pytest.raises(ConfigError, match=match):
        make(name, **args)


def test_mixer_patch_must_divide_image():
    with pytest.raises(ConfigError, match="does not divide image_size"):
        make("mixer-s16", size=8, chans=1)  # patch 16 on 8x8 digits
    with pytest.raises(ConfigError, match="does not divide image_size"):
        make("mixer", size=30, patch_size=4)


def test_first_layer_tiles():
    def tiles(model):
        result = models.first_layer_tiles(model)
        assert result is not None and result[0].dtype == np.float32
        return result[0].shape, result[1]

    assert tiles(make("resnet18")) == ((64, 3, 3), "conv")
    assert tiles(make("c100-resnet18")) == ((64, 7, 7), "conv")
    assert tiles(make("dilated", chans=1, size=8)) == ((32, 3, 3), "conv")
    assert tiles(make("mixer", size=32, dim=32, depth=1)) == ((16, 8, 8), "token_mixing")
    assert tiles(make("mixer-study1")) == ((128, 8, 8), "token_mixing")  # study 1's picture
    assert tiles(make("mlp", size=8, chans=3, hidden=[24, 16])) == ((24, 8, 8), "dense")
    assert models.first_layer_tiles(nn.Linear(3, 2)) is None
    assert tiles(torch.compile(make("dilated"))) == ((32, 3, 3), "conv")  # wrapper is unwrapped

    # The MLP tiles are the first layer's rows as (C, H, W) images, averaged over channels.
    mlp = make("mlp", size=4, chans=2, hidden=[5])
    weight = mlp.layers[1].weight.detach().numpy().reshape(5, 2, 4, 4)
    np.testing.assert_allclose(models.first_layer_tiles(mlp)[0], weight.mean(axis=1), rtol=1e-6)
    # The mixer tiles are block 0's token-mixing fc1 rows over the patch grid.
    mixer = make("mixer", size=16, dim=8, depth=1)
    rows = mixer.blocks[0].mlp_tokens.fc1.weight.detach().numpy()
    np.testing.assert_array_equal(models.first_layer_tiles(mixer)[0], rows.reshape(4, 4, 4))


def test_count_params():
    # 3*8*8 inputs -> 16 hidden -> 10 classes, with biases
    assert models.count_params(make("mlp", size=8, hidden=[16])) == 192 * 16 + 16 + 16 * 10 + 10
    assert 11_000_000 < models.count_params(make("resnet18")) < 11_300_000


def prototype_task(classes=4, size=8, chans=3, n=32):
    """Noisy copies of one random blocky image per class: easy, but far from noise-free."""
    gen = torch.Generator().manual_seed(1)
    protos = torch.rand(classes, chans, 4, 4, generator=gen)
    protos = nn.functional.interpolate(protos, size=size, mode="nearest")
    labels = torch.arange(n) % classes
    images = protos[labels] + 0.3 * torch.randn(n, chans, size, size, generator=gen)
    return images.clamp(0, 1), labels


# (name, model_args, Adam steps). A ResNet step at 8 px still costs ~0.3 s on one CPU core (its
# 11-21M weights dominate), and ResNets fit this task in a few steps, so they get fewer.
LEARNERS = [
    ("mlp", {"hidden": [64]}, 30),
    ("c100-resnet18", {}, 6),  # study 2's setup: ImageNet stem + running input normaliser
    ("resnet34", {"stem": "imagenet"}, 6),
    ("dilated", {"width": 16}, 30),
    ("mixer", {"patch_size": 2, "dim": 32, "depth": 2}, 30),
]


@pytest.mark.parametrize(("name", "args", "steps"), LEARNERS)
def test_each_family_learns_an_easy_task(name, args, steps):
    """Full-batch Adam reaches >= 0.8 train accuracy on 4 classes (chance 0.25)."""
    x, y = prototype_task()
    model = make(name, size=8, classes=4, **args).train()
    if getattr(model, "input_normalization", "dataset") == "dataset":
        x = (x - x.mean((0, 2, 3), keepdim=True)) / x.std((0, 2, 3), keepdim=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(steps):
        opt.zero_grad()
        logits = model(x)
        nn.functional.cross_entropy(logits, y).backward()
        opt.step()
    accuracy = (logits.argmax(1) == y).float().mean().item()  # the last step's train accuracy
    assert accuracy >= 0.8, f"{name}: train accuracy {accuracy:.2f} on 4 classes"
