"""The attention families (vit, swin, tnt, perceiver, perceiver_io) and timm's ImageNet-pretrained
models (`timm/<arch>` with a pretrained_file)."""

from types import SimpleNamespace

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from einops import rearrange
from helpers import default_model_args

import imgzoo.models as models
from imgzoo.errors import ConfigError, DataError
from imgzoo.models import catalog
from imgzoo.spec import Settings
from imgzoo.training.network import build_network

FAMILIES_HERE = ("vit", "swin", "tnt", "perceiver", "perceiver_io")
PRETRAINED_PRESETS = sorted(n for n, p in catalog.PRESETS.items() if "pretrained_file" in
                            p.get("needs", []))
PRESETS_HERE = sorted(
    [n for n, p in catalog.PRESETS.items() if p["model"] in FAMILIES_HERE] + PRETRAINED_PRESETS
)

# Tiny widths and depths keep the file fast on a 2-core CPU; the patch sizes divide 32, 64, 96.
TINY = {
    "vit": {"patch_size": 8, "dim": 16, "depth": 2, "heads": 2, "head_hidden": 8},
    "swin": {"patch_size": 4, "embed_dim": 8, "depths": [1, 1], "num_heads": [1, 2]},
    "tnt": {
        "patch_size": 8,
        "pixel_size": 4,
        "dim": 16,
        "pixel_dim": 8,
        "depth": 1,
        "heads": 2,
        "dim_head": 8,
    },
    "perceiver": {
        "depth": 1,
        "num_latents": 4,
        "latent_dim": 16,
        "latent_heads": 2,
        "cross_dim_head": 8,
        "latent_dim_head": 8,
        "self_per_cross_attn": 1,
        "num_freq_bands": 2,
    },
    "perceiver_io": {
        "depth": 1,
        "num_latents": 4,
        "latent_dim": 16,
        "latent_heads": 2,
        "cross_dim_head": 8,
        "latent_dim_head": 8,
    },
}
# For images smaller than the grid's patches (8x8 digits, 16x16).
SMALL = {
    "vit": {**TINY["vit"], "patch_size": 2},
    "swin": {**TINY["swin"], "patch_size": 2, "window_size": 4},
    "tnt": {**TINY["tnt"], "patch_size": 4, "pixel_size": 2},
    "perceiver": TINY["perceiver"],
    "perceiver_io": {**TINY["perceiver_io"], "input_mode": "pixels", "dim": 16},
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make(name, size=32, classes=10, chans=3, **args):
    return models.create(name, num_classes=classes, image_size=size, in_chans=chans, **args)


def forward_backward(model, size, chans=3, batch=2):
    """Logits of a training-mode forward, after a backward; asserts every grad is finite."""
    model.train()
    out = model(torch.randn(batch, chans, size, size))
    logits = out[0] if isinstance(out, tuple) else out
    logits.square().mean().backward()
    for name, p in model.named_parameters():
        if p.requires_grad and p.grad is not None:
            assert torch.isfinite(p.grad).all(), name
    return logits


# --- catalog -------------------------------------------------------------------------------


def test_the_catalog_lists_these_families_and_their_presets():
    for family in FAMILIES_HERE:
        assert catalog.FAMILIES[family][0] == f"imgzoo.models.{family}"
    assert not catalog.has_first_layer_view("perceiver-medium")
    assert not catalog.has_first_layer_view("perceiver-io-cifar10")
    assert catalog.has_first_layer_view("vit-12x256-8x8")
    assert catalog.has_first_layer_view("swin-study3")
    assert catalog.has_first_layer_view("tnt-study3")
    expected = {
        "vit-12x256-8x8",
        "vitn-12x256-8x8",
        "vitn-12x256-8x8-ra",
        "vitn-12x256-8x8-dm",
        "vitn-12x256-8x8-lt",
        "vitn-12x256-8x8-ltv",
        "vitn-12x256-8x8-dm-lt",
        "vit-aux-3x4x256-8x8",
        "vit-spt-lsa",
        "swin-study3",
        "swin-3stage",
        "tnt-study3",
        "perceiver-medium",
        "perceiver-large",
        "perceiver-xl",
        "perceiver-io-cifar10",
        "perceiver-io-stl10",
        "perceiver-io-tinyimagenet",
    }
    assert expected <= set(PRESETS_HERE)


@pytest.mark.parametrize("name", [n for n in PRESETS_HERE if n not in PRETRAINED_PRESETS])
def test_preset_builds_at_32px(name):
    model = make(name).eval()
    outputs = default_model_args(name)["head_outputs"] or 10  # study 2's ViTs: 1000
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, outputs)


@pytest.mark.parametrize("name", PRETRAINED_PRESETS)
def test_pretrained_preset_needs_a_file(name):
    with pytest.raises(ConfigError, match="pretrained_file"):
        make(name)


def test_study2_presets_have_their_options():
    def attn(name):
        return make(name).blocks[0].attn

    assert make("vit-12x256-8x8").blocks[0].pre is False
    assert make("vitn-12x256-8x8").blocks[0].pre is True
    assert attn("vitn-12x256-8x8-ra").rel_attn
    assert attn("vitn-12x256-8x8-dm").diag_mask
    assert attn("vitn-12x256-8x8-lt").temperature == "log"
    assert attn("vitn-12x256-8x8-ltv").temperature == "vanilla"
    assert attn("vitn-12x256-8x8-dm-lt").diag_mask
    assert make("vit-aux-3x4x256-8x8").aux_after == [4, 8]
    lsa = make("vit-spt-lsa")
    assert len(lsa.blocks) == 9 and lsa.blocks[0].attn.heads == 12
    assert type(lsa.patch_embed).__name__ == "ShiftedPatchEmbedding"
    # study 3's Swin at 32 px: window 8 (timm clamps it to each stage's grid)
    swin = make("swin-study3")
    assert [len(stage.blocks) for stage in swin.layers] == [2, 2, 8, 2]
    assert make("swin-study3", size=96).layers[0].blocks[0].window_size == (12, 12)


# --- every family: shapes, gradients, sizes -------------------------------------------------


@pytest.mark.parametrize("classes", [10, 100, 200])
@pytest.mark.parametrize("size", [32, 64, 96])
@pytest.mark.parametrize("family", sorted(TINY))
def test_forward_backward(family, size, classes):
    model = make(family, size=size, classes=classes, **TINY[family])
    assert forward_backward(model, size).shape == (2, classes)


@pytest.mark.parametrize(("size", "chans"), [(8, 1), (16, 3)])
@pytest.mark.parametrize("family", sorted(SMALL))
def test_small_inputs(family, size, chans):
    model = make(family, size=size, chans=chans, **SMALL[family])
    assert forward_backward(model, size, chans).shape == (2, 10)


@pytest.mark.parametrize("family", ["vit", "swin", "tnt"])
def test_patch_size_must_divide_image_size(family):
    with pytest.raises(ConfigError, match="patch_size 8 does not divide image_size 20"):
        make(family, size=20, **{**TINY[family], "patch_size": 8})


def test_unknown_argument_is_named():
    with pytest.raises(ConfigError, match="'pach_size'.*patch_size"):
        make("vit", pach_size=4)


def test_vit_rejects_bad_options():
    for args in (
        {"norm": "mid"},
        {"pos": "rope"},
        {"temperature": "hot"},
        {"aux_heads": [2]},
        {"heads": 3},
    ):
        with pytest.raises(ConfigError):
            make("vit", **{**TINY["vit"], **args})


# --- ViT attention variants -----------------------------------------------------------------


def layer_logits(model, images) -> list[torch.Tensor]:
    """The attention logits (B, heads, T, T) each attention layer computes for the tokens it
    gets when the model sees `images` (its input caught by a forward pre-hook)."""
    tokens = []
    hooks = [layer.register_forward_pre_hook(lambda m, args: tokens.append(args[0]))
             for layer in model.attention_layers()]
    with torch.no_grad():
        model(images)
    for hook in hooks:
        hook.remove()
    return [layer.logits(*layer.qkv(x)[:2]) for layer, x in
            zip(model.attention_layers(), tokens, strict=True)]


def test_diag_mask_puts_the_minimum_on_the_diagonal():
    model = make("vit", **TINY["vit"], norm="pre", diag_mask=True, temperature="log").eval()
    for logits in layer_logits(model, torch.randn(2, 3, 32, 32)):
        # (B, heads, T, T), T = 16 patches + CLS
        assert logits.shape == (2, 2, 17, 17)
        eye = torch.eye(17, dtype=torch.bool)
        assert (logits[..., eye] == torch.finfo(logits.dtype).min).all()
        assert torch.isfinite(logits[..., ~eye]).all()
        assert (logits[..., ~eye] > -1e4).all()


def test_no_diag_mask_leaves_the_diagonal_alone():
    model = make("vit", **TINY["vit"]).eval()
    logits = layer_logits(model, torch.randn(1, 3, 32, 32))[0]
    assert (logits.diagonal(dim1=-2, dim2=-1) > -1e4).all()


@pytest.mark.parametrize(
    ("kind", "param", "init"), [("log", "log_inv_tau", 0.0), ("vanilla", "tau", 1.0)]
)
def test_learned_temperature_per_layer_gets_gradients(kind, param, init):
    model = make("vit", **TINY["vit"], norm="pre", temperature=kind)
    forward_backward(model, 32)
    for layer in model.attention_layers():
        tau = getattr(layer, param)
        assert tau.shape == () and tau.item() == init
        assert tau.grad is not None and tau.grad.abs() > 0


def test_temperature_scales_the_logits():
    model = make("vit", **TINY["vit"], norm="pre", temperature="vanilla").eval()
    layer = model.attention_layers()[0]
    x = torch.randn(1, 3, 32, 32)
    before = layer_logits(model, x)[0]
    with torch.no_grad():
        layer.tau.fill_(2.0)
    torch.testing.assert_close(layer_logits(model, x)[0], before / 2)


def test_rel_attn_has_u_and_v_biases():
    model = make("vit", **TINY["vit"], norm="pre", rel_attn=True)
    forward_backward(model, 32)
    for layer in model.attention_layers():
        for bias in (layer.pos_u, layer.pos_v):
            assert bias.shape == (2, 8)  # (heads, dim / heads)
            assert bias.grad is not None and bias.grad.abs().sum() > 0
        assert layer.to_pos.weight.grad is not None


def test_rel_attn_position_terms_depend_only_on_distance():
    model = make("vit", **TINY["vit"], norm="pre", rel_attn=True).eval()
    layer = model.attention_layers()[0]
    with torch.no_grad():
        layer.to_qkv.weight.zero_()  # no content: q = k = 0, only u·k (= 0) and v·R remain
        layer.pos_v.normal_()
    logits = layer_logits(model, torch.randn(1, 3, 32, 32))[0][0, 0]
    for offset in (-3, 0, 5):
        diagonal = logits.diagonal(offset)
        torch.testing.assert_close(diagonal, diagonal[:1].expand_as(diagonal))
    assert not torch.allclose(logits.diagonal(1)[0], logits.diagonal(-1)[0])


def test_aux_heads_only_in_training_mode():
    model = make("vit", **{**TINY["vit"], "depth": 3}, aux_heads=[1, 2])
    model.train()
    logits, aux = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10) and len(aux) == 2
    assert all(a.shape == (2, 10) for a in aux)
    sum(F.cross_entropy(out, torch.tensor([0, 1])) for out in [logits, *aux]).backward()
    assert all(p.grad is not None for p in model.aux_heads.parameters())
    model.eval()
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert make("vit", **TINY["vit"]).train()(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_every_option_works_with_either_norm(norm):
    model = make(
        "vit",
        **TINY["vit"],
        norm=norm,
        rel_attn=True,
        diag_mask=True,
        temperature="log",
        spt=True,
        pos="learned",
        aux_heads=[1],
    )
    assert forward_backward(model, 32).shape == (2, 10)


def test_sincos_positions_are_fixed_and_distinct():
    model = make("vit", **TINY["vit"])
    assert "pos_embed" not in dict(model.named_parameters())
    pos = model.pos_embed[0]  # (16 patches, dim)
    assert torch.cdist(pos, pos).add(torch.eye(16)).min() > 1e-3  # (r, c) != (c, r)
    learned = make("vit", **TINY["vit"], pos="learned")
    assert "pos_embed" in dict(learned.named_parameters())


def test_shifted_patches_see_the_neighbouring_half_patches():
    model = make("vit", **TINY["vit"], spt=True)
    embed = model.patch_embed
    seen = {}
    embed.norm.register_forward_hook(lambda m, args, out: seen.update(x=args[0]))
    image = torch.zeros(1, 3, 32, 32)
    image[0, :, 4, 4] = 1.0  # inside the top-left patch (8x8)
    embed(image)
    # token features are (5 channel groups x 3 channels) x 8 x 8; a shift by 4 px moves the
    # pixel into the neighbouring patches for some groups
    active = seen["x"][0].abs().sum(dim=1) > 0  # which tokens see the pixel
    assert active[0] and active.sum() == 4  # its own patch and 3 diagonal/edge neighbours


def test_first_layer_tiles():
    tiles, kind = models.first_layer_tiles(make("vit", **TINY["vit"]))
    assert kind == "patch_embedding" and tiles.shape == (16, 8, 8) and tiles.dtype == np.float32
    tiles, _ = models.first_layer_tiles(make("vit", **TINY["vit"], spt=True))
    assert tiles.shape == (16, 8, 8)
    tiles, kind = models.first_layer_tiles(make("swin", **TINY["swin"]))
    assert kind == "patch_embedding" and tiles.shape == (8, 4, 4)
    tiles, kind = models.first_layer_tiles(make("tnt", **TINY["tnt"]))
    assert kind == "patch_embedding" and tiles.shape == (8, 4, 4)  # (pixel_dim, pixel, pixel)
    assert models.first_layer_tiles(make("perceiver", **TINY["perceiver"])) is None
    assert models.first_layer_tiles(make("perceiver_io", **TINY["perceiver_io"])) is None


# --- Swin, TnT, Perceiver -------------------------------------------------------------------


def test_swin_rejects_too_many_stages_for_the_grid():
    with pytest.raises(ConfigError, match="stages"):
        make("swin", size=8, chans=1, patch_size=4)


STUDY3_TNT_PAIRS = [(2, 2), (4, 2), (8, 1), (8, 2), (8, 4), (16, 2), (16, 4), (32, 4)]


@pytest.mark.parametrize(("patch", "pixel"), STUDY3_TNT_PAIRS)
def test_tnt_study3_ablation_pairs(patch, pixel):
    args = {**TINY["tnt"], "patch_size": patch, "pixel_size": pixel}
    model = make("tnt", **args).eval()
    assert model.pixel_pos_emb.shape[0] == (patch // pixel) ** 2  # inner tokens per patch
    assert model.patch_tokens.shape[0] == 1 + (32 // patch) ** 2
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


@pytest.mark.parametrize(
    ("patch", "pixel", "message"),
    [
        (8, 3, "pixel_size 3 does not divide patch_size 8"),
        (4, 8, "pixel_size 8 does not divide patch_size 4"),
        (6, 2, "patch_size 6 does not divide image_size 32"),
        (8, 0, "pixel_size"),
    ],
)
def test_tnt_invalid_pairs(patch, pixel, message):
    with pytest.raises(ConfigError, match=message):
        make("tnt", **{**TINY["tnt"], "patch_size": patch, "pixel_size": pixel})


def test_perceiver_weight_tying_shares_later_layers():
    args = {**TINY["perceiver"], "depth": 3}
    tied = make("perceiver", **args, weight_tie_layers=True)
    assert tied.layers[1] is tied.layers[2] and tied.layers[0] is not tied.layers[1]
    untied = make("perceiver", **args)
    assert models.count_params(tied) < models.count_params(untied)
    assert forward_backward(tied, 32).shape == (2, 10)


def test_perceiver_fourier_features():
    from imgzoo.models.perceiver import fourier_features

    features = fourier_features(4, num_bands=6, max_freq=10.0)
    assert features.shape == (16, 2 * (2 * 6 + 1))
    # the raw coordinates are part of the features, from -1 to 1
    assert features.min() == -1.0 and features.max() == 1.0


@pytest.mark.parametrize("query", ["single", "per_class"])
@pytest.mark.parametrize("mode", ["flat", "pixels"])
def test_perceiver_io_modes(mode, query):
    model = make(
        "perceiver_io",
        **TINY["perceiver_io"],
        input_mode=mode,
        query=query,
        queries_dim=12,
        dim=16,
        decoder_ff=True,
    )
    assert forward_backward(model, 32).shape == (2, 10)


def test_perceiver_io_flat_is_one_token_of_all_pixels():
    model = make("perceiver-io-cifar10")
    assert model.encoder.attn.to_kv.in_features == 3 * 32 * 32
    assert model.queries.shape == (1, 10)  # study 3: one learned query of width num_classes


# --- timm models fine-tuned from a weights file --------------------------------------------


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory):
    """A resnet10t state_dict with a 7-way head, as if fine-tuned elsewhere."""
    torch.manual_seed(1)
    source = timm.create_model("resnet10t", pretrained=False, num_classes=7)
    path = tmp_path_factory.mktemp("weights") / "resnet10t.pt"
    torch.save(source.state_dict(), path)
    return path, source.state_dict()


def test_pretrained_loads_weights_and_replaces_the_head(resnet_file):
    path, saved = resnet_file
    model = make("timm/resnet10t", classes=10, pretrained_file=str(path), input_size=32)
    assert model.input_normalization == "raw"
    loaded = model.backbone.state_dict()
    for key, value in saved.items():
        if not key.startswith("fc."):
            assert torch.equal(loaded[key], value), key
    assert loaded["fc.weight"].shape == (10, 512)
    assert forward_backward(model, 32).shape == (2, 10)
    tiles, kind = models.first_layer_tiles(model)
    assert kind == "conv" and tiles.ndim == 3


def test_pretrained_standardises_with_given_constants(resnet_file):
    """train.input_stats replaces the weights' own mean/std (study 3 fed its pretrained models
    CIFAR-10's), through the network a run builds."""
    path, _ = resnet_file
    stats = {"mean": [0.4914, 0.4822, 0.4465], "std": [0.2023, 0.1994, 0.2010]}
    prepared = SimpleNamespace(num_classes=10, image_size=32, channels=3)
    args = {"pretrained_file": str(path), "input_size": 32}
    for given, mean in (("auto", (0.485, 0.456, 0.406)), (stats, stats["mean"])):
        settings = Settings("timm/resnet10t", args, {"input_stats": given, "channels_last": False,
                                                  "compile": False}, {})
        model = build_network(settings, prepared, torch.device("cpu")).model
        assert model.mean.flatten().tolist() == pytest.approx(mean)
    with pytest.raises(ConfigError, match="input_stats has 1 means and 1 stds"):
        model.standardise_with([0.5], [0.5])


def test_pretrained_grayscale_small_images(resnet_file):
    path, _ = resnet_file
    model = make("timm/resnet10t", size=8, chans=1, pretrained_file=str(path), input_size=32)
    assert forward_backward(model, 8, chans=1).shape == (2, 10)


def test_pretrained_safetensors_and_position_resampling(tmp_path):
    save_file = pytest.importorskip("safetensors.torch").save_file
    source = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=3)
    path = tmp_path / "vit.safetensors"
    save_file(source.state_dict(), str(path))
    # a 224-px checkpoint, used at 32 px: timm's converter resamples the position table
    model = make("timm/vit_tiny_patch16_224", pretrained_file=str(path), input_size=32)
    assert torch.equal(model.backbone.blocks[0].attn.qkv.weight, source.blocks[0].attn.qkv.weight)
    assert model.backbone.pos_embed.shape == (1, 1 + 4, 192)
    assert model.eval()(torch.rand(1, 3, 32, 32)).shape == (1, 10)


def test_pretrained_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nowhere.pt"
    with pytest.raises(ConfigError, match="nowhere.pt.*does not exist"):
        make("timm/resnet10t", pretrained_file=str(missing))


def test_pretrained_mismatching_file_names_file_and_keys(resnet_file):
    path, _ = resnet_file
    pattern = r"timm/resnet14t.*resnet10t\.pt.*(missing|unexpected|wrong shape)"
    with pytest.raises(ConfigError, match=pattern):
        make("timm/resnet14t", pretrained_file=str(path), input_size=32)


def test_pretrained_unreadable_file_and_unknown_arch(tmp_path, resnet_file):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a state dict")
    with pytest.raises(DataError, match="garbage.pt"):
        make("timm/resnet10t", pretrained_file=str(garbage))
    with pytest.raises(ConfigError, match="unknown timm architecture 'resnet10tt'.*timm/resnet10t"):
        make("timm/resnet10tt", pretrained_file=str(resnet_file[0]))


# --- a short training on easy tasks ----------------------------------------------------------


def stripes(n, seed, size=16):
    """4 classes: horizontal, vertical, diagonal, anti-diagonal stripes (period 4 px, random
    phase) under noise. Local texture, no position needed."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    phase = torch.randint(0, 4, (n, 1, 1), generator=g)
    r = torch.arange(size).view(size, 1).expand(size, size)
    c = torch.arange(size).view(1, size).expand(size, size)
    coord = torch.stack([r, c, r + c, r - c + size])[y]
    image = (((coord + phase) // 2) % 2).float() * 2 - 1
    return image[:, None].expand(-1, 3, -1, -1) + 0.5 * torch.randn(
        n, 3, size, size, generator=g
    ), y


def quadrants(n, seed, size=16):
    """4 classes: which quadrant is brighter, under noise. Needs absolute position."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    x = 0.5 * torch.randn(n, 3, size, size, generator=g)
    half = size // 2
    for k in range(4):
        r, c = divmod(k, 2)
        x[y == k, :, r * half : (r + 1) * half, c * half : (c + 1) * half] += 1.5
    return x, y


# Swin has no absolute position (relative bias + global average pooling), so it gets the
# texture task; a one-cross-attention Perceiver cannot read local orientation in a few dozen
# steps, so it gets the position task. Chance is 25%.
TRAINING = {
    "vit": (
        stripes,
        40,
        3e-3,
        {
            "patch_size": 4,
            "dim": 32,
            "depth": 2,
            "heads": 2,
            "head_hidden": 0,
            "dropout": 0.0,
            "norm": "pre",
        },
    ),
    "swin": (
        stripes,
        80,
        3e-3,
        {
            "patch_size": 2,
            "embed_dim": 16,
            "depths": [1, 1],
            "num_heads": [1, 2],
            "window_size": 4,
            "drop_path": 0.0,
        },
    ),
    "tnt": (  # its outer tokens start N(0, 1), as study 3's: slower to start than the others
        stripes,
        100,
        3e-3,
        {
            "patch_size": 4,
            "pixel_size": 2,
            "dim": 32,
            "pixel_dim": 8,
            "depth": 1,
            "heads": 2,
            "dim_head": 16,
            "dropout": 0.0,
        },
    ),
    "perceiver": (
        quadrants,
        60,
        3e-3,
        {
            "depth": 1,
            "num_latents": 8,
            "latent_dim": 32,
            "latent_heads": 2,
            "cross_dim_head": 16,
            "latent_dim_head": 16,
            "attn_dropout": 0.0,
            "ff_dropout": 0.0,
            "self_per_cross_attn": 1,
        },
    ),
    "perceiver_io": (
        stripes,
        80,
        1e-3,
        {
            "depth": 1,
            "num_latents": 8,
            "latent_dim": 32,
            "latent_heads": 2,
            "cross_dim_head": 16,
            "latent_dim_head": 16,
        },
    ),
}


@pytest.mark.parametrize("family", sorted(TRAINING))
def test_short_training_beats_chance(family):
    task, steps, lr, args = TRAINING[family]
    model = make(family, size=16, classes=4, **args)
    batch = 32
    x, y = task(steps * batch, seed=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for step in range(steps):
        rows = slice(step * batch, (step + 1) * batch)
        loss = F.cross_entropy(model(x[rows]), y[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    test_x, test_y = task(256, seed=2)
    model.eval()
    with torch.no_grad():
        accuracy = (model(test_x).argmax(dim=1) == test_y).float().mean().item()
    assert accuracy >= 0.75, accuracy  # 3x chance


@pytest.mark.parametrize(
    "options",
    [{}, {"diag_mask": True}, {"temperature": "log"}, {"temperature": "vanilla"},
     {"diag_mask": True, "temperature": "log"}],
    ids=["plain", "diag_mask", "log_temperature", "vanilla_temperature", "lsa"],
)
def test_fused_attention_equals_the_written_out_logits(options):
    """The attention runs through scaled_dot_product_attention unless its logits are asked for;
    both compute the same numbers."""
    from imgzoo.models.vit import Attention

    torch.manual_seed(0)
    attention = Attention(64, 4, **options).eval()
    if "temperature" in options:  # a learned temperature away from its start
        with torch.no_grad():
            for p in attention.parameters():
                if p.ndim == 0:
                    p.fill_(0.7)
    x = torch.randn(3, 17, 64)
    fused = attention(x)
    written_out = attention.to_out(rearrange(attention.attend(*attention.qkv(x)),
                                             "b h t d -> b t (h d)"))
    torch.testing.assert_close(fused, written_out, rtol=1e-5, atol=1e-5)
