"""The model registry: `create` is the only door to a model.

This module must stay importable without torch (the Snakefile and config validation import the
package); torch and a family's own dependencies (timm, einops) load only inside `create`, and only
for the family asked for.

A family module exposes `build(num_classes, image_size, in_chans, **args)`. A module that serves
several families (resnet18 and resnet34 share one) exposes `build_<family>` instead; `create`
looks that up first. The builder's keyword parameters are the family's model arguments;
`imgzoo.models.arguments` describes them (names, kinds, choices) without torch, for the config's
checks and for `create`'s, and a test holds the two together. The arguments of
`arguments.COMMON` (`normalizer`, `head_outputs`) every family takes: `create` applies them around
the builder.

Timm architectures (`timm/<name>`, `imgzoo.models.timm_network`) and networks from the user's
file (`path.py:callable`, `imgzoo.models.file_network`) come through the same door. Their
arguments are their own, so `create` checks what they build instead: the model maps a dummy
batch of the dataset's shape to (N, outputs) logits before any data is loaded, and their
first layer is searched for (`first_layer_tiles`) unless they draw their own.
"""

import importlib

from imgzoo.errors import ConfigError, unknown_name
from imgzoo.models import arguments, catalog


def builder(family: str):
    """The function that builds `family` (its keyword parameters are the model arguments)."""
    module = importlib.import_module(catalog.FAMILIES[family][0])
    return getattr(module, f"build_{family}", None) or module.build


def create(name: str, *, num_classes: int, image_size: int, in_chans: int, **model_args):
    """Build model `name` (a family, a preset, `timm/<name>` or `file.py:callable`); its head
    has `num_classes` outputs, or `head_outputs` where the arguments ask for more.

    `model_args` override a preset's arguments. Unknown names or arguments raise ConfigError.
    """
    from imgzoo.models import input_normalizer

    try:
        family, args = catalog.resolve(name, model_args)
    except KeyError:
        raise unknown_name("model", name, catalog.known_models()) from None
    missing = catalog.missing_needs(name, args)
    if missing:
        raise ConfigError(f"model '{name}' needs model_args.{missing[0]}")
    arguments.check_model_args(family, args)  # names and values, before a (slow) build
    normalizer = args.pop("normalizer", "fixed")
    outputs = _head_outputs(family, args.pop("head_outputs", None), num_classes)
    shape = {"num_classes": outputs, "image_size": image_size, "in_chans": in_chans}
    if not catalog.is_open(family):
        model = builder(family)(**shape, **args)
        return input_normalizer.attach(model, normalizer, in_chans, family)
    model = input_normalizer.attach(_build_open(family, shape, args), normalizer, in_chans, family)
    from imgzoo.models._common import check_logits

    file = (catalog.model_file(family) or (None,))[0]
    check_logits(model, f"model '{family}'", **shape, file=file)
    if not callable(getattr(model, "first_layer_tiles", None)):
        model.first_layer_search = (in_chans, image_size, image_size)  # see first_layer_tiles
    return model


def _build_open(family: str, shape: dict, args: dict):
    """A timm architecture or a network from a file (`catalog.is_open`)."""
    arch = catalog.timm_architecture(family)
    if arch is not None:
        from imgzoo.models import timm_network

        return timm_network.build(arch, **shape, **args)
    from imgzoo.models import file_network

    return file_network.build(*catalog.model_file(family), **shape, **args)


def _head_outputs(family: str, head_outputs: int | None, num_classes: int) -> int:
    """The head's width: the dataset's classes unless `head_outputs` asks for more.

    Extra logits are never a label's; training pushes them down like any wrong class, and a
    prediction that lands on one counts as wrong (study 2's models kept torchvision's and its
    own 1000-way heads on CIFAR-100, and it measured that this changes the result).
    """
    if head_outputs is None:
        return num_classes
    if head_outputs < num_classes:
        raise ConfigError(
            f"model family '{family}': head_outputs={head_outputs} is fewer than the dataset's "
            f"{num_classes} classes; leave it out or give at least {num_classes}"
        )
    return head_outputs


def first_layer_tiles(model):
    """(tiles float32 (K, h, w), kind) for the weight grids, or None if the model has no view.

    A family's model draws its own (`model.first_layer_tiles()`); a timm or file model that does
    not is searched: timm's record of its first convolution, else its first Conv2d, else its first
    Linear (`imgzoo.models._common.found_first_layer`)."""
    # torch.compile wraps the model; the tiles live on the original module.
    model = getattr(model, "_orig_mod", model)
    tiles = getattr(model, "first_layer_tiles", None)
    if callable(tiles):
        return tiles()
    if getattr(model, "first_layer_search", None):
        from imgzoo.models._common import found_first_layer

        return found_first_layer(model, model.first_layer_search)
    return None


def count_params(model) -> int:
    """Number of parameters (trainable or not), each shared tensor counted once."""
    return sum(p.numel() for p in model.parameters())
