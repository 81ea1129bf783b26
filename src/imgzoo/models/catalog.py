"""What models exist, without importing torch: the Snakefile and config validation read this.

A model name is one of:
- a family of FAMILIES, which maps it to the module that builds it (imported only by `create`)
  and says whether the family has a first-layer view for the weight grids;
- a preset of PRESETS: a documented configuration, a model name plus model_args (an
  experiment's own model_args override the preset's; `needs` lists arguments it must be given);
- `timm/<architecture>`: any of timm's architectures (`imgzoo.models.timm_names` knows them);
- `path/to/file.py:callable`: a network from the user's own file (`imgzoo.models.file_source`).
The last two are *open* families: their arguments are the architecture's or the callable's,
not described here, and every such model has a first-layer view (its first convolution or
linear layer, `imgzoo.models.first_layer_tiles`).
"""

# Model arguments that every family takes; `imgzoo.models.create` handles them around the
# family's builder (imgzoo.models.input_normalizer explains each value).

# name -> (module, has_first_layer_view)
FAMILIES: dict[str, tuple[str, bool]] = {
    # --- MLPs, convolutional networks and the MLP-Mixer ---
    "mlp": ("imgzoo.models.mlp", True),
    # resnet18 and resnet34 share a module; it exposes build_resnet18 / build_resnet34.
    "resnet18": ("imgzoo.models.resnet", True),
    "resnet34": ("imgzoo.models.resnet", True),
    "dilated": ("imgzoo.models.dilated", True),
    "mixer": ("imgzoo.models.mixer", True),
    # --- attention models, and timm's ImageNet-pretrained models ---
    "vit": ("imgzoo.models.vit", True),
    "swin": ("imgzoo.models.swin", True),
    "tnt": ("imgzoo.models.tnt", True),
    "perceiver": ("imgzoo.models.perceiver", False),  # no image-shaped first layer
    "perceiver_io": ("imgzoo.models.perceiver_io", False),
}

TIMM_PREFIX = "timm/"

# What study 2 gave every model: its running global-scalar input normaliser, and 1000 logits
# (torchvision's ResNets keep ImageNet's head, and its code never passed its own ViTs and toy net
# the dataset's classes); only its "-tnc" ("tailor num classes") run had one logit per class.
STUDY2 = {"normalizer": "running", "head_outputs": 1000}
# Its torchvision ResNets: the ImageNet stem.
STUDY2_RESNET = {**STUDY2, "stem": "imagenet"}
# Its ViTs: the summed 2-D sin-cos position code, and PyTorch's own init (CLS token and relative
# attention's u, v from torch.randn; post-norm layers as nn.TransformerEncoder builds them).
STUDY2_VIT = {**STUDY2, "pos": "sincos2d_sum", "init": "torch"}
# Study 1's Mixer (mlpmixer.py): Xavier-uniform on every Linear, a He-normal stem, and the
# final LayerNorm at nn.LayerNorm's eps.
STUDY1_MIXER = {"init": "xavier", "final_norm_eps": 1e-5}

# preset name -> {"model": family, "model_args": {...}}
PRESETS: dict[str, dict] = {
    # --- MLPs, convolutional networks and the MLP-Mixer ---
    # Study 1 (CIFAR-10): its MLP config, and its ResNet18, whose convolutions keep the weights
    # nn.Conv2d draws by itself.
    "mlp-1024-512-64-64-tanh": {
        "model": "mlp", "model_args": {"hidden": [1024, 512, 64, 64], "activation": "tanh"},
    },
    "resnet18-study1": {"model": "resnet18", "model_args": {"init": "torch"}},
    # Study 2 (CIFAR-100): torchvision ResNets (the ImageNet stem, 1000 logits) with its running
    # input normaliser; c100-resnet18-tnc is its "-tnc" run, with a 100-way head.
    "c100-resnet18": {"model": "resnet18", "model_args": {**STUDY2_RESNET}},
    "c100-resnet18-tnc": {
        "model": "resnet18", "model_args": {"stem": "imagenet", "normalizer": "running"},
    },
    "c100-resnet34": {"model": "resnet34", "model_args": {**STUDY2_RESNET}},
    "c100-resnet18-wonorm": {
        "model": "resnet18", "model_args": {**STUDY2_RESNET, "normalizer": "none"},
    },
    "c100-resnet18-pcnorm": {
        "model": "resnet18", "model_args": {**STUDY2_RESNET, "normalizer": "running_per_channel"},
    },
    "c100-resnet18-gn": {"model": "resnet18", "model_args": {**STUDY2_RESNET, "norm": "gn"}},
    **{
        f"c100-resnet18-ms{level}": {
            "model": "resnet18", "model_args": {**STUDY2_RESNET, "mixstyle": level},
        }
        for level in (1, 2, 3)
    },
    # Study 2's toy net (its convolutions have biases).
    "toy-dilated": {
        "model": "dilated",
        "model_args": {"width": 32, "dilations": [1, 2, 4, 8], "conv_bias": True, **STUDY2},
    },
    # Study 1's Mixer: its weight picture (128 token-mixing rows of 8x8) implies patch 4, dim 256;
    # its JSON config says patch 16 (only 4 tokens at 32 px).
    "mixer-study1": {
        "model": "mixer",
        "model_args": {"patch_size": 4, "dim": 256, "depth": 4, **STUDY1_MIXER},
    },
    "mixer-study1-json": {
        "model": "mixer",
        "model_args": {"patch_size": 16, "dim": 256, "depth": 4, **STUDY1_MIXER},
    },
    # Study 3: Mixer-S/16 trained at native resolution (needs images divisible by 16).
    "mixer-s16": {
        "model": "mixer",
        "model_args": {"patch_size": 16, "dim": 512, "depth": 8,
                       "token_mlp_ratio": 0.5, "channel_mlp_ratio": 4.0},
    },
    # --- attention models, and timm's ImageNet-pretrained models ---
    # Study 2 (CIFAR-100) ViTs: patch 8 (16 tokens at 32 px), dim 256, 4 heads, MLP head via 1024,
    # and what STUDY2_VIT says. "vit" = nn.TransformerEncoderLayer (post-norm, a q/k/v bias);
    # "vitn" = pre-norm, its own attention.
    **{
        name: {"model": "vit", "model_args": {**STUDY2_VIT, **args}}
        for name, args in {
            "vit-12x256-8x8": {"norm": "post", "qkv_bias": True},
            "vitn-12x256-8x8": {"norm": "pre"},
            "vitn-12x256-8x8-ra": {"norm": "pre", "rel_attn": True},
            "vitn-12x256-8x8-dm": {"norm": "pre", "diag_mask": True},
            "vitn-12x256-8x8-lt": {"norm": "pre", "temperature": "log"},
            "vitn-12x256-8x8-ltv": {"norm": "pre", "temperature": "vanilla"},
            "vitn-12x256-8x8-dm-lt": {"norm": "pre", "diag_mask": True, "temperature": "log"},
            # 3 blocks x 4 layers with an extra head after blocks 1 and 2 (layers 4 and 8).
            "vit-aux-3x4x256-8x8": {"norm": "post", "qkv_bias": True, "aux_heads": [4, 8]},
        }.items()
    },
    # "Vision Transformer for Small-Size Datasets" (arXiv 2112.13492): shifted patch tokens +
    # locality self-attention (diagonal mask, learned temperature), its CIFAR ViT size.
    "vit-spt-lsa": {
        "model": "vit",
        "model_args": {"norm": "pre", "spt": True, "diag_mask": True, "temperature": "log",
                       "patch_size": 4, "dim": 192, "depth": 9, "heads": 12, "mlp_ratio": 2},
    },
    # Study 3: Swin from scratch (window 8 at 32/64 px, 12 at 96 px), and its 3-stage LR-ablation
    # model.
    "swin-study3": {"model": "swin", "model_args": {}},
    "swin-3stage": {"model": "swin", "model_args": {"depths": [2, 8, 2], "num_heads": [2, 4, 8]}},
    # Study 3's Rand-TnT.
    "tnt-study3": {
        "model": "tnt",
        "model_args": {"patch_size": 4, "pixel_size": 2, "dim": 512, "pixel_dim": 24, "depth": 6,
                       "heads": 8, "dim_head": 64, "dropout": 0.1},
    },
    # Study 3's Perceivers (293,362 / 1,151,730 / 4,428,262 parameters on CIFAR-10).
    "perceiver-medium": {
        "model": "perceiver",
        "model_args": {"depth": 4, "num_latents": 32, "latent_dim": 32, "cross_heads": 1,
                       "latent_heads": 8, "cross_dim_head": 16, "latent_dim_head": 16,
                       "attn_dropout": 0.2, "ff_dropout": 0.2, "num_freq_bands": 6,
                       "max_freq": 10.0, "self_per_cross_attn": 2},
    },
    "perceiver-large": {
        "model": "perceiver",
        "model_args": {"depth": 4, "num_latents": 32, "latent_dim": 64, "cross_heads": 1,
                       "latent_heads": 8, "cross_dim_head": 32, "latent_dim_head": 32,
                       "attn_dropout": 0.3, "ff_dropout": 0.3, "num_freq_bands": 6,
                       "max_freq": 10.0, "self_per_cross_attn": 2},
    },
    "perceiver-xl": {
        "model": "perceiver",
        "model_args": {"depth": 6, "num_latents": 48, "latent_dim": 96, "cross_heads": 1,
                       "latent_heads": 8, "cross_dim_head": 32, "latent_dim_head": 64,
                       "attn_dropout": 0.3, "ff_dropout": 0.3, "num_freq_bands": 6,
                       "max_freq": 10.0, "self_per_cross_attn": 2},
    },
    # Study 3's Perceiver IO: the image as one flat token, one learned query of width
    # num_classes.
    "perceiver-io-cifar10": {
        "model": "perceiver_io",
        "model_args": {"input_mode": "flat", "depth": 2, "num_latents": 32, "latent_dim": 64,
                       "cross_heads": 1, "latent_heads": 8, "cross_dim_head": 128,
                       "latent_dim_head": 128},
    },
    "perceiver-io-stl10": {
        "model": "perceiver_io",
        "model_args": {"input_mode": "flat", "depth": 2, "num_latents": 96, "latent_dim": 192,
                       "cross_heads": 1, "latent_heads": 8, "cross_dim_head": 64,
                       "latent_dim_head": 64},
    },
    "perceiver-io-tinyimagenet": {
        "model": "perceiver_io",
        "model_args": {"input_mode": "flat", "depth": 2, "num_latents": 32, "latent_dim": 64,
                       "cross_heads": 1, "latent_heads": 8, "cross_dim_head": 64,
                       "latent_dim_head": 64},
    },
    # Study 3's fine-tuned ImageNet models; each experiment gives model_args.pretrained_file.
    "swin-base-pretrained": {
        "model": "timm/swin_base_patch4_window7_224", "needs": ["pretrained_file"],
    },
    # Pre-TnT: timm 0.4.12's tnt_s_patch16_224, which timm 1.0 renamed (its own
    # tnt_s_patch16_224 is a revised model whose weights differ).
    "tnt-s-pretrained": {"model": "timm/tnt_s_legacy_patch16_224", "needs": ["pretrained_file"]},
    "mixer-b16-pretrained": {"model": "timm/mixer_b16_224", "needs": ["pretrained_file"]},
}


def known_models() -> list[str]:
    return sorted([*FAMILIES, *PRESETS])


def timm_architecture(name: str) -> str | None:
    """`resnet10t` for the model name `timm/resnet10t`; None for any other name."""
    if not name.startswith(TIMM_PREFIX):
        return None
    return name.removeprefix(TIMM_PREFIX) or None


def model_file(name: str) -> tuple[str, str] | None:
    """(path, callable) for the model name `path/to/file.py:callable`; None for any other name
    (a name that ends in `.py`, without a callable, too: the config's check says what is
    missing)."""
    path, colon, attr = name.rpartition(":")
    if not colon or not path.endswith(".py"):
        return None
    return path, attr


def is_open(family: str) -> bool:
    """A timm architecture or a network from a file: its arguments are its own (not described
    in `imgzoo.models.arguments`), imgzoo sets only those that come from the dataset."""
    return timm_architecture(family) is not None or model_file(family) is not None


def resolve(name: str, model_args: dict | None = None) -> tuple[str, dict]:
    """(family, merged model_args) for a model name; KeyError if it is no model name. The
    family of a timm or file model is its name (`timm/resnet10t`, `nets/net.py:build`)."""
    if name in PRESETS:
        preset = PRESETS[name]
        return preset["model"], {**preset.get("model_args", {}), **(model_args or {})}
    if name in FAMILIES or is_open(name):
        return name, dict(model_args or {})
    raise KeyError(name)


def missing_needs(name: str, model_args: dict) -> list[str]:
    """The arguments preset `name` needs that `model_args` lacks (weights files, say)."""
    return [k for k in PRESETS.get(name, {}).get("needs", []) if not model_args.get(k)]


def has_first_layer_view(name: str) -> bool:
    family, _ = resolve(name)
    return is_open(family) or FAMILIES[family][1]
