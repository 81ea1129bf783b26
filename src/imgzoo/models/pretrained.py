"""A timm architecture with weights from a local file, for fine-tuning: `model: timm/<arch>` with
`model_args: {pretrained_file: path}` (study 3's Pre-TnT, Swin-B, Mixer-B/16;
`imgzoo.models.timm_network` builds timm models and comes here when a file is given).

Weights come from a file the user put on disk (cluster nodes often have no internet): a
state_dict saved with torch.save (read with weights_only=True, so a file cannot run code) or a
.safetensors file. Everything but the classifier must match the architecture exactly; the
classifier is new, with num_classes outputs.

The model takes pixels in [0, 1] (input_normalization = "raw"), resizes the batch to the
architecture's input size and normalises with the mean/std the weights were trained with:
pretrained features expect those statistics, not the dataset's. `standardise_with` replaces
them by given constants (`train.input_stats`; study 3's scripts fed CIFAR-10's to every
pretrained model).
"""

import sys
from pathlib import Path

import numpy as np
import timm
import torch
import torch.nn.functional as F
from torch import nn

from imgzoo.errors import ConfigError, DataError
from imgzoo.models._common import error_line


def _who(arch: str) -> str:
    return f"model 'timm/{arch}'"


class Pretrained(nn.Module):
    input_normalization = "raw"

    def __init__(self, backbone: nn.Module, input_size: int, in_chans: int):
        super().__init__()
        self.backbone = backbone
        self.input_size = input_size
        cfg = backbone.pretrained_cfg
        self.backbone_chans = cfg.get("input_size", (3,))[0]
        self.gray_to_rgb = in_chans == 1 and self.backbone_chans != 1
        channels = self.backbone_chans
        mean = torch.tensor(cfg.get("mean", (0.5,) * channels), dtype=torch.float32)
        std = torch.tensor(cfg.get("std", (0.5,) * channels), dtype=torch.float32)
        self.register_buffer("mean", mean.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, -1, 1, 1), persistent=False)

    def standardise_with(self, mean, std) -> None:
        """Standardise with these per-channel constants instead of the weights' own."""
        if len(mean) != self.backbone_chans or len(std) != self.backbone_chans:
            raise ConfigError(
                f"{_who(self.backbone.pretrained_cfg.get('architecture', '?'))}: input_stats "
                f"has {len(mean)} means and {len(std)} stds; the architecture takes "
                f"{self.backbone_chans} channels"
            )
        self.mean.copy_(torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.std.copy_(torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gray_to_rgb:
            x = x.expand(-1, self.backbone_chans, -1, -1)
        if x.shape[-2:] != (self.input_size, self.input_size):
            x = F.interpolate(
                x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False
            )
        return self.backbone((x - self.mean) / self.std)

    def first_layer_tiles(self) -> tuple[np.ndarray, str] | None:
        name = self.backbone.pretrained_cfg.get("first_conv")
        if not name:
            return None
        weight = self.backbone.get_parameter(f"{name}.weight")
        if weight.ndim != 4:
            return None
        kind = "patch_embedding" if "patch_embed" in name else "conv"
        return weight.detach().mean(dim=1).float().cpu().numpy(), kind


def read_state_dict(path: Path, arch: str) -> dict[str, torch.Tensor]:
    """A state_dict from a torch.save file or a .safetensors file (DataError if unreadable)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any reader error means the same thing to the user
        raise DataError(
            f"{_who(arch)}: cannot read weights file '{path}' ({error_line(error)}); "
            "save it with torch.save(model.state_dict(), path) or as .safetensors"
        ) from error
    # training checkpoints often wrap the weights
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise DataError(f"{_who(arch)}: '{path}' holds no state_dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def is_classifier(key: str, names) -> bool:
    return any(key == name or key.startswith(f"{name}.") for name in names)


def load_backbone_weights(backbone: nn.Module, path: Path, arch: str) -> None:
    """Load everything but the classifier, strictly: raise naming the file and the first
    mismatching keys."""
    names = backbone.pretrained_cfg.get("classifier") or ()
    names = (names,) if isinstance(names, str) else tuple(names)
    state = {k: v for k, v in read_state_dict(path, arch).items() if not is_classifier(k, names)}
    # timm's own converter for the architecture: resamples position tables to the model's input
    # size and converts original (non-timm) checkpoint layouts
    convert = getattr(sys.modules[type(backbone).__module__], "checkpoint_filter_fn", None)
    if convert is not None:
        try:
            state = convert(state, backbone)
        except Exception as error:
            raise ConfigError(
                f"{_who(arch)}: '{path}' cannot be converted for timm architecture '{arch}' "
                f"({error_line(error)}); use weights saved from '{arch}'"
            ) from error
    expected = {k: v for k, v in backbone.state_dict().items() if not is_classifier(k, names)}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected and not is_classifier(k, names)]
    wrong = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = [
        f"{label} {', '.join(keys[:3])}{f' (+{len(keys) - 3} more)' if len(keys) > 3 else ''}"
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("wrong shape (file vs model)", wrong),
        )
        if keys
    ]
    if problems:
        raise ConfigError(
            f"{_who(arch)}: '{path}' does not fit the architecture: {'; '.join(problems)}; "
            f"use weights saved from '{arch}'"
        )
    backbone.load_state_dict({k: state[k] for k in expected}, strict=False)


def fine_tuned(
    arch: str,
    pretrained_file: str,
    *,
    num_classes: int,
    in_chans: int,
    input_size: int | None = None,
    **timm_args,
) -> Pretrained:
    """timm `arch` with weights from `pretrained_file`; the batch is resized to input_size
    (default: the architecture's pretraining size, e.g. 224). `timm_args` go to
    timm.create_model."""
    path = Path(pretrained_file).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"{_who(arch)}: weights file '{path}' does not exist; put the {arch} weights there "
            "or fix pretrained_file"
        )
    backbone = timm.create_model(arch, pretrained=False, num_classes=num_classes, **timm_args)
    default_size = backbone.pretrained_cfg["input_size"][-1]
    if input_size and input_size != default_size:
        # architectures with position tables must be built for the size they will see
        try:
            backbone = timm.create_model(
                arch, pretrained=False, num_classes=num_classes, img_size=input_size, **timm_args
            )
        except TypeError:
            pass  # convolutional: any input size works as built
    channels = backbone.pretrained_cfg["input_size"][0]
    if in_chans not in (1, channels):
        raise ConfigError(
            f"{_who(arch)}: its weights take {channels}-channel images, the dataset has {in_chans}"
        )
    load_backbone_weights(backbone, path, arch)
    return Pretrained(backbone, input_size or default_size, in_chans)
