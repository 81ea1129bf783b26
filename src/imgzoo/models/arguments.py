"""The model arguments of every family, described without torch: names, kinds of value, choices.

One mechanism checks them, with one wording: `imgzoo.config` when a study is loaded (so a wrong
name or value stops Snakemake before any job, a SLURM job included) and `imgzoo.models.create`
before it builds. What needs the image size or several arguments at once (a patch size that
divides the image, heads that divide the width) is `imgzoo.models.joint_checks`. A test holds
this table to the builders' signatures, so neither can drift from the other; the builders'
defaults are read from their source (`builder_defaults`), never written twice.

Timm architectures and networks from a file (`catalog.is_open`) take arguments of their own,
which only building them can check (in the job, `imgzoo.models.create`); here they are checked
for what imgzoo itself gives them (the dataset's shape: not theirs to set) and for imgzoo's own
arguments (`normalizer`, and a timm model's `pretrained_file` and `input_size`).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

from imgzoo.errors import ConfigError, unknown_name
from imgzoo.models import catalog

# Kinds of value (the text is what an error message says a value must be).
POSITIVE_INT = "a positive integer"
POSITIVE_INT_OR_NONE = "a positive integer, or null for the default"
COUNT = "0 or a positive integer"
POSITIVE_NUMBER = "a positive number"
FRACTION = "a number in [0, 1)"
BOOLEAN = "true or false"
INT_LIST = "a list of positive integers"
NON_EMPTY_INT_LIST = "a non-empty list of positive integers"
TEXT = "a string"

# Choices (a tuple is a kind too: the value must be one of it).
ACTIVATIONS = ("gelu", "relu", "sigmoid", "tanh")
RESNET_STEMS = ("cifar", "imagenet")
RESNET_NORMS = ("bn", "gn", "none")
RESNET_INITS = ("kaiming", "torch")
MIXER_INITS = ("timm", "xavier")
MIXSTYLE_STAGES = (0, 1, 2, 3)
VIT_NORMS = ("post", "pre")
VIT_POSITIONS = ("sincos2d", "sincos2d_sum", "learned")
VIT_TEMPERATURES = ("none", "log", "vanilla")
VIT_INITS = ("vit", "torch")
PERCEIVER_IO_INPUTS = ("flat", "pixels")
PERCEIVER_IO_QUERIES = ("single", "per_class")
INPUT_NORMALIZERS = ("fixed", "none", "running", "running_per_channel")

# Arguments every family takes; `create` applies them around the builder. head_outputs: the
# head's width when it should be wider than the dataset's classes (null: one per class).
COMMON = {"normalizer": INPUT_NORMALIZERS, "head_outputs": POSITIVE_INT_OR_NONE}

_RESNET = {
    "stem": RESNET_STEMS, "norm": RESNET_NORMS, "mixstyle": MIXSTYLE_STAGES, "init": RESNET_INITS,
}
_PERCEIVER_COMMON = {
    "depth": POSITIVE_INT,
    "num_latents": POSITIVE_INT,
    "latent_dim": POSITIVE_INT,
    "cross_heads": POSITIVE_INT,
    "latent_heads": POSITIVE_INT,
    "cross_dim_head": POSITIVE_INT,
    "latent_dim_head": POSITIVE_INT,
    "attn_dropout": FRACTION,
    "ff_dropout": FRACTION,
    "num_freq_bands": POSITIVE_INT,
    "max_freq": POSITIVE_NUMBER,
    "weight_tie_layers": BOOLEAN,
}

ARGUMENTS: dict[str, dict] = {
    "mlp": {"hidden": INT_LIST, "activation": ACTIVATIONS, "dropout": FRACTION},
    "resnet18": _RESNET,
    "resnet34": _RESNET,
    "dilated": {"width": POSITIVE_INT, "dilations": NON_EMPTY_INT_LIST, "conv_bias": BOOLEAN},
    "mixer": {
        "patch_size": POSITIVE_INT,
        "dim": POSITIVE_INT,
        "depth": POSITIVE_INT,
        "token_mlp_ratio": POSITIVE_NUMBER,
        "channel_mlp_ratio": POSITIVE_NUMBER,
        "dropout": FRACTION,
        "init": MIXER_INITS,
        "final_norm_eps": POSITIVE_NUMBER,
    },
    "vit": {
        "patch_size": POSITIVE_INT,
        "dim": POSITIVE_INT,
        "depth": POSITIVE_INT,
        "heads": POSITIVE_INT,
        "mlp_ratio": POSITIVE_NUMBER,
        "dropout": FRACTION,
        "norm": VIT_NORMS,
        "pos": VIT_POSITIONS,
        "head_hidden": COUNT,  # 0: a linear head
        "qkv_bias": BOOLEAN,
        "init": VIT_INITS,
        "rel_attn": BOOLEAN,
        "diag_mask": BOOLEAN,
        "temperature": VIT_TEMPERATURES,
        "spt": BOOLEAN,
        "aux_heads": INT_LIST,
    },
    "swin": {
        "embed_dim": POSITIVE_INT,
        "depths": NON_EMPTY_INT_LIST,
        "num_heads": NON_EMPTY_INT_LIST,
        "patch_size": POSITIVE_INT,
        "window_size": POSITIVE_INT_OR_NONE,
        "mlp_ratio": POSITIVE_NUMBER,
        "drop_path": FRACTION,
    },
    "tnt": {
        "patch_size": POSITIVE_INT,
        "pixel_size": POSITIVE_INT,
        "dim": POSITIVE_INT,
        "pixel_dim": POSITIVE_INT,
        "depth": POSITIVE_INT,
        "heads": POSITIVE_INT,
        "dim_head": POSITIVE_INT,
        "pixel_heads": POSITIVE_INT_OR_NONE,
        "pixel_dim_head": POSITIVE_INT_OR_NONE,
        "dropout": FRACTION,
    },
    "perceiver": {**_PERCEIVER_COMMON, "self_per_cross_attn": POSITIVE_INT},
    "perceiver_io": {
        **_PERCEIVER_COMMON,
        "input_mode": PERCEIVER_IO_INPUTS,
        "dim": POSITIVE_INT_OR_NONE,
        "queries_dim": POSITIVE_INT_OR_NONE,
        "query": PERCEIVER_IO_QUERIES,
        "decoder_ff": BOOLEAN,
    },
}

# A timm model's arguments that imgzoo reads itself (the rest go to timm.create_model): a local
# weights file to fine-tune from, and the size the batch is resized to for those weights.
TIMM_OWN = {"pretrained_file": TEXT, "input_size": POSITIVE_INT_OR_NONE}
DATASET_SHAPE = "imgzoo sets it from the dataset"
# Arguments of the open families that imgzoo sets, and why a study cannot.
SET_BY_IMGZOO = {
    "timm": {
        "num_classes": DATASET_SHAPE,
        "in_chans": DATASET_SHAPE,
        "img_size": DATASET_SHAPE,
        "pretrained": "imgzoo downloads nothing: give pretrained_file, a local weights file",
    },
    "file": {"num_classes": DATASET_SHAPE, "image_size": DATASET_SHAPE, "in_chans": DATASET_SHAPE},
}


def names(family: str) -> list[str] | None:
    """Every model argument of `family` (its own, then the common ones); None for a timm or
    file model, whose arguments are its own."""
    if catalog.is_open(family):
        return None
    return [*ARGUMENTS[family], *COMMON]


@functools.cache
def builder_defaults(family: str) -> dict:
    """The default of each keyword argument of `family`'s builder (`imgzoo.models.builder`),
    read from its module's source without importing it (which would import torch): the
    builders' signatures stay the one home of their defaults. Defaults are literals (a test
    holds this to the signatures)."""
    module = catalog.FAMILIES[family][0]
    source = Path(__file__).with_name(module.rsplit(".", 1)[1] + ".py")
    functions = {
        node.name: node for node in ast.parse(source.read_text()).body
        if isinstance(node, ast.FunctionDef)
    }
    args = (functions.get(f"build_{family}") or functions["build"]).args
    with_default = args.args[len(args.args) - len(args.defaults):]
    positional = list(zip(with_default, args.defaults, strict=True))
    # a keyword-only argument without a default has None here
    keyword = [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d]
    return {a.arg: ast.literal_eval(d) for a, d in [*positional, *keyword]}


def check_model_args(family: str, model_args: dict) -> None:
    """ConfigError naming the argument unless every one is known to `family` and of its kind."""
    if catalog.is_open(family):
        check_open_model_args(family, model_args)
        return
    kinds = {**ARGUMENTS[family], **COMMON}
    for key, value in model_args.items():
        if key not in kinds:
            raise ConfigError(
                f"model family '{family}': {unknown_name('argument', key, kinds)}"
            )
        check_value(family, key, value, kinds[key])


def check_open_model_args(family: str, model_args: dict) -> None:
    """What can be checked of a timm or file model's arguments without building it."""
    is_timm = catalog.timm_architecture(family) is not None
    set_by_imgzoo = SET_BY_IMGZOO["timm" if is_timm else "file"]
    kinds = {**(TIMM_OWN if is_timm else {}), **COMMON}
    for key, value in model_args.items():
        if key in set_by_imgzoo:
            raise ConfigError(f"model '{family}': {key} is not a model argument here "
                              f"({set_by_imgzoo[key]})")
        if key in kinds:
            check_value(family, key, value, kinds[key])
    if is_timm and model_args.get("input_size") and not model_args.get("pretrained_file"):
        raise ConfigError(
            f"model '{family}': input_size is the size a pretrained_file's weights want; "
            "without pretrained_file the model is built for the dataset's image size"
        )


def check_value(family: str, key: str, value, kind) -> None:
    """ConfigError unless `value` is of `kind` (a kind above, or a tuple of choices)."""
    who = f"model '{family}'" if catalog.is_open(family) else f"model family '{family}'"
    if isinstance(kind, tuple):
        # by type too: YAML's `true` must not pass for the choice 1
        if not any(value == c and type(value) is type(c) for c in kind):
            choices = ", ".join(str(c) for c in kind)
            raise ConfigError(f"{who}: {key}={value!r} is not one of {choices}")
        return
    if not _is(kind, value):
        raise ConfigError(f"{who}: {key}={value!r} must be {kind}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is(kind: str, value) -> bool:
    if kind == POSITIVE_INT:
        return _is_int(value) and value > 0
    if kind == POSITIVE_INT_OR_NONE:
        return value is None or (_is_int(value) and value > 0)
    if kind == COUNT:
        return _is_int(value) and value >= 0
    if kind == POSITIVE_NUMBER:
        return isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    if kind == FRACTION:
        return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1
    if kind == BOOLEAN:
        return isinstance(value, bool)
    if kind in (INT_LIST, NON_EMPTY_INT_LIST):
        return (
            isinstance(value, list | tuple)
            and all(_is_int(v) and v > 0 for v in value)
            and (kind == INT_LIST or len(value) > 0)
        )
    if kind == TEXT:
        return isinstance(value, str)
    raise AssertionError(f"unknown kind of model argument: {kind!r}")
