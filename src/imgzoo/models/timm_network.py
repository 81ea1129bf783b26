"""Any timm architecture (`model: timm/<architecture>`), built in the job.

From scratch: `timm.create_model(arch, pretrained=False, num_classes=..., in_chans=...,
**model_args)` with `img_size` set to the dataset's image size where the architecture takes it
(ViT, Swin, Mixer, TnT: their position tables and windows are sized for it; convolutional
networks take any size as built). With `pretrained_file`: the architecture at its pretraining
size with those weights, fine-tuned (`imgzoo.models.pretrained`). timm's own errors (an unknown
argument, a constraint the dataset's shape breaks) become one line naming the architecture.
"""

from __future__ import annotations

import timm
from torch import nn

from imgzoo.errors import ConfigError, ImgzooError
from imgzoo.models import pretrained, timm_names
from imgzoo.models._common import UNEXPECTED_ARGUMENT, error_line


def build(arch: str, *, num_classes: int, image_size: int, in_chans: int,
          pretrained_file: str = "", input_size: int | None = None, **timm_args) -> nn.Module:
    who = f"model 'timm/{arch}'"
    timm_names.check(arch, known=frozenset(timm.list_models()))
    try:
        if pretrained_file:
            return pretrained.fine_tuned(arch, pretrained_file, num_classes=num_classes,
                                         in_chans=in_chans, input_size=input_size, **timm_args)
        return _from_scratch(arch, num_classes, image_size, in_chans, timm_args)
    except TypeError as error:
        unexpected = UNEXPECTED_ARGUMENT.search(str(error))
        if unexpected is None:
            raise ConfigError(f"{who}: {error_line(error)}") from error
        if unexpected[1] == "in_chans":
            raise ConfigError(
                f"{who} cannot take {in_chans}-channel images: the architecture has no in_chans"
            ) from error
        reason = str(error).splitlines()[0]
        raise ConfigError(f"{who}: unknown model argument '{unexpected[1]}' ({reason})") from error
    except ImgzooError:  # ours already: one line
        raise
    except Exception as error:  # a constraint of timm's that the dataset's shape breaks
        raise ConfigError(
            f"{who} cannot be built for {image_size}x{image_size} images with {in_chans} "
            f"channel(s): {error_line(error)}"
        ) from error


def _from_scratch(arch: str, num_classes: int, image_size: int, in_chans: int,
                  timm_args: dict) -> nn.Module:
    args = dict(pretrained=False, num_classes=num_classes, in_chans=in_chans, **timm_args)
    try:
        return timm.create_model(arch, img_size=image_size, **args)
    except TypeError as error:
        if "'img_size'" not in str(error):
            raise
    return timm.create_model(arch, **args)  # takes any image size as built (or says not)
