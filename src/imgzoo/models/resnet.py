"""ResNet-18/34 (BasicBlock) with the switches that study 2 compared on CIFAR-100.

- stem: "cifar" (3x3 stride-1 conv, no max-pool; keeps resolution for 32 px images) or
  "imagenet" (7x7 stride-2 conv + 3x3/2 max-pool; 16x fewer activations, what study 2 used).
- norm: "bn", "gn" (GroupNorm(16, C) in place of every BatchNorm, stem and shortcuts included)
  or "none".
- mixstyle: MixStyle after the first 0-3 stages (one shared, parameter-free module).
- init: the convolutions' initial weights: "kaiming" (He-normal, fan-out, as torchvision's
  ResNet and so study 2) or "torch" (what nn.Conv2d draws by itself, as study 1's code left them).

Study 2's running input normaliser and its 1000-way heads are the `normalizer` and
`head_outputs` arguments that every family takes.
"""

import torch
from torch import nn

from imgzoo.models._common import conv_tiles
from imgzoo.models.layers import MixStyle

BLOCKS_PER_STAGE = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
WIDTHS = (64, 128, 256, 512)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    if kind == "gn":
        return nn.GroupNorm(16, channels)
    return nn.Identity()


def _conv(c_in: int, c_out: int, kernel: int, stride: int, norm: str) -> nn.Conv2d:
    # A conv followed by a norm needs no bias; without a norm layer it does.
    return nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=norm == "none")


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, norm: str):
        super().__init__()
        self.conv1 = _conv(c_in, c_out, 3, stride, norm)
        self.norm1 = _norm(norm, c_out)
        self.conv2 = _conv(c_out, c_out, 3, 1, norm)
        self.norm2 = _norm(norm, c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(_conv(c_in, c_out, 1, stride, norm), _norm(norm, c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, depth, num_classes, in_chans, stem, norm, mixstyle, init):
        super().__init__()
        kernel, stride = (3, 1) if stem == "cifar" else (7, 2)
        self.conv1 = _conv(in_chans, WIDTHS[0], kernel, stride, norm)
        self.norm1 = _norm(norm, WIDTHS[0])
        self.pool = nn.Identity() if stem == "cifar" else nn.MaxPool2d(3, 2, 1)

        stages, c_in = [], WIDTHS[0]
        for i, (blocks, width) in enumerate(zip(BLOCKS_PER_STAGE[depth], WIDTHS, strict=True)):
            # Every stage but the first halves the resolution in its first block.
            stage = [BasicBlock(c_in, width, 1 if i == 0 else 2, norm)]
            stage += [BasicBlock(width, width, 1, norm) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*stage))
            c_in = width
        self.stages = nn.ModuleList(stages)
        self.mixstyle_after = mixstyle  # MixStyle follows stages 1..mixstyle
        self.mixstyle = MixStyle() if mixstyle else None
        self.fc = nn.Linear(WIDTHS[-1], num_classes)

        if init == "kaiming":
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
        if norm == "none":
            # Without a norm layer each residual sum doubles the variance (256x over ResNet18's
            # 8 blocks); starting every block as the identity keeps the signal at unit scale.
            for m in self.modules():
                if isinstance(m, BasicBlock):
                    nn.init.zeros_(m.conv2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.norm1(self.conv1(x))))
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i < self.mixstyle_after:
                x = self.mixstyle(x)
        return self.fc(x.mean(dim=(2, 3)))

    def first_layer_tiles(self):
        return conv_tiles(self.conv1)


# image_size is unused: global average pooling makes a ResNet size-agnostic (8 to 96 px and up).
# Arguments checked by imgzoo.models.arguments (create calls it).
def build_resnet18(num_classes, image_size, in_chans, *,
                   stem="cifar", norm="bn", mixstyle=0, init="kaiming"):
    return ResNet(18, num_classes, in_chans, stem, norm, mixstyle, init)


def build_resnet34(num_classes, image_size, in_chans, *,
                   stem="cifar", norm="bn", mixstyle=0, init="kaiming"):
    return ResNet(34, num_classes, in_chans, stem, norm, mixstyle, init)
