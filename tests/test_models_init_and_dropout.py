"""How models start and where they drop out, as the write-ups' code had it: the `init` arguments
of resnet18/34, mixer and vit, ViT layers as nn.TransformerEncoderLayer, and the dropout of the
Perceiver (perceiver-pytorch 0.7.x) and TnT (lucidrains')."""

import pytest
import torch
import torch.nn.functional as F
from helpers import default_model_args
from torch import nn

import imgzoo.models as models

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make(name, size=32, classes=10, **args):
    return models.create(name, num_classes=classes, image_size=size, in_chans=3, **args)


# --- convolutional networks and the Mixer ---------------------------------------------------


def test_resnet_init_torch_keeps_conv2ds_own_draw():
    torch_init, kaiming = make("resnet18", init="torch"), make("resnet18")
    for a, b in zip(torch_init.modules(), kaiming.modules(), strict=True):
        if isinstance(a, nn.Conv2d):
            fan_in = a.weight[0].numel()
            fan_out = a.weight.shape[0] * a.weight[0, 0].numel()
            # nn.Conv2d's own draw is uniform within 1/sqrt(fan_in); He-normal (fan-out) has
            # std sqrt(2 / fan_out)
            assert a.weight.abs().max() <= fan_in**-0.5
            assert abs(b.weight.std() / (2 / fan_out) ** 0.5 - 1) < 0.2
    assert default_model_args("resnet18-study1")["init"] == "torch"


def test_mixer_init_xavier_is_study_ones():
    timm_init, xavier = make("mixer", patch_size=4, dim=32, depth=2), make("mixer-study1")
    assert (timm_init.head.weight == 0).all()  # timm starts the head at zero
    linears = [m for m in xavier.modules() if isinstance(m, nn.Linear)]
    assert xavier.head in linears and xavier.head.weight.abs().max() > 0
    for m in linears:  # Xavier-uniform's bound, zero biases
        assert m.weight.abs().max() <= (6 / (m.in_features + m.out_features)) ** 0.5
        assert (m.bias == 0).all()
    stem = xavier.stem.proj
    assert (stem.bias == 0).all()
    assert abs(stem.weight.std() / (2 / stem.weight[0].numel()) ** 0.5 - 1) < 0.1  # He, fan-in
    assert xavier.norm.eps == 1e-5 and xavier.blocks[0].norm1.eps == 1e-6
    assert timm_init.norm.eps == 1e-6


# --- ViT ----------------------------------------------------------------------------------


def test_post_norm_layer_is_nn_transformer_encoder_layer():
    """With its weights, a post-norm layer with qkv_bias computes what PyTorch's does."""
    torch_layer = nn.TransformerEncoderLayer(32, 4, 128, dropout=0.1, batch_first=True).eval()
    vit = make("vit", patch_size=8, dim=32, depth=1, heads=4, qkv_bias=True).eval()
    block = vit.blocks[0]
    ours = dict(block.named_parameters())
    theirs = dict(torch_layer.named_parameters())
    names = {
        "attn.to_qkv.weight": "self_attn.in_proj_weight",
        "attn.to_qkv.bias": "self_attn.in_proj_bias",
        "attn.to_out.weight": "self_attn.out_proj.weight",
        "attn.to_out.bias": "self_attn.out_proj.bias",
        "ff.0.weight": "linear1.weight",
        "ff.0.bias": "linear1.bias",
        "ff.3.weight": "linear2.weight",
        "ff.3.bias": "linear2.bias",
        **{f"norm{i}.{p}": f"norm{i}.{p}" for i in (1, 2) for p in ("weight", "bias")},
    }
    assert sorted(names) == sorted(ours) and sorted(names.values()) == sorted(theirs)
    with torch.no_grad():
        for mine, its in names.items():
            ours[mine].copy_(theirs[its])
        x = torch.randn(2, 17, 32)
        torch.testing.assert_close(block(x), torch_layer(x), atol=1e-5, rtol=1e-5)


def test_vit_init_torch_starts_as_study_twos_code():
    vit = make("vit-12x256-8x8", classes=100)
    # CLS token from torch.randn
    assert 0.8 < vit.cls_token.std() < 1.2
    # every layer a copy of the first, with nn.MultiheadAttention's zero biases
    first = vit.blocks[0].state_dict()
    for block in vit.blocks[1:]:
        assert all(torch.equal(first[k], v) for k, v in block.state_dict().items())
    assert (vit.blocks[0].attn.to_qkv.bias == 0).all()
    assert (vit.blocks[0].attn.to_out.bias == 0).all()
    # vit-aux: one nn.TransformerEncoder per head, so copies within each run of 4 layers only
    aux = make("vit-aux-3x4x256-8x8", classes=100)

    def same(i, j):
        return torch.equal(aux.blocks[i].ff[0].weight, aux.blocks[j].ff[0].weight)

    assert same(0, 3) and same(4, 7) and same(8, 11)
    assert not same(3, 4) and not same(7, 8)
    # vitn: independent layers (its own nn.Sequential), u and v from torch.randn
    vitn = make("vitn-12x256-8x8-ra", classes=100)
    assert not torch.equal(vitn.blocks[0].ff[0].weight, vitn.blocks[1].ff[0].weight)
    assert 0.8 < vitn.blocks[0].attn.pos_u.std() < 1.2
    # the default keeps the ViT papers' small start
    assert make("vit", depth=2).cls_token.std() < 0.05


# --- Perceiver and TnT: dropout on outputs, never on attention weights -----------------------


@pytest.fixture
def attention_dropout_p(monkeypatch):
    """The dropout_p of every scaled_dot_product_attention call."""
    seen = []
    sdpa = F.scaled_dot_product_attention

    def recording(*args, **kwargs):
        seen.append(kwargs.get("dropout_p", 0.0))
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", recording)
    return seen


def zeros_share(module, x, target):
    """Share of exact zeros in what `target` receives (input) during a forward of `module`."""
    got = {}
    handle = target.register_forward_pre_hook(lambda m, args: got.update(x=args[0]))
    module(x)
    handle.remove()
    return (got["x"] == 0).float().mean().item()


def test_perceiver_dropout_is_perceiver_pytorch_07s(attention_dropout_p):
    from imgzoo.models.perceiver import Attention, FeedForward

    attention = Attention(16, heads=2, dim_head=8, dropout=0.5).train()
    out = attention(torch.randn(4, 32, 16))
    assert set(attention_dropout_p) == {0.0}  # not on the attention weights...
    assert 0.4 < (out == 0).float().mean() < 0.6  # ...on the attention's output
    ff = FeedForward(16, dropout=0.5).train()
    # between GEGLU and the last Linear
    assert 0.4 < zeros_share(ff, torch.randn(4, 32, 16), ff.down) < 0.6
    with torch.no_grad():
        assert (ff(torch.randn(4, 32, 16)) != 0).all()  # not after it


def test_tnt_dropout_falls_on_outputs_only(attention_dropout_p):
    model = make("tnt", size=16, patch_size=4, pixel_size=2, dim=16, pixel_dim=8, depth=1,
                 heads=2, dim_head=8, dropout=0.5).train()
    model(torch.randn(2, 3, 16, 16))
    assert attention_dropout_p and set(attention_dropout_p) == {0.0}


def test_tnt_keeps_lucidrains_three_position_tables():
    model = make("tnt-study3")
    params = dict(model.named_parameters())
    for name, rows in (("patch_tokens", 65), ("patch_pos_emb", 65), ("pixel_pos_emb", 4)):
        assert params[name].shape[0] == rows  # CLS + 64 patches; 2x2 pixels per 4 px patch
        assert 0.7 < params[name].std() < 1.3  # torch.randn, as there (96+ values)
