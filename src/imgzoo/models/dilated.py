"""Toy dilated CNN (study 2's "toy-dilated"): a few same-size dilated 3x3 convs, then pooling.

With dilations 1, 2, 4, 8 the receptive field grows to 31 px without any downsampling, so it
covers a 32 px image at full resolution with ~30k parameters: a cheap lower baseline.
conv_bias gives each convolution a bias, as study 2's did, although the BatchNorm after it
subtracts it again.
"""

import torch
from torch import nn

from imgzoo.models._common import conv_tiles


class DilatedCNN(nn.Module):
    def __init__(self, num_classes: int, in_chans: int, width: int, dilations: list[int],
                 conv_bias: bool):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_chans
        for d in dilations:
            # padding = dilation keeps the map size for a 3x3 kernel.
            layers += [nn.Conv2d(c_in, width, 3, padding=d, dilation=d, bias=conv_bias),
                       nn.BatchNorm2d(width), nn.GELU()]
            c_in = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))

    def first_layer_tiles(self):
        return conv_tiles(self.features[0])


def build(num_classes, image_size, in_chans, *, width=32, dilations=(1, 2, 4, 8),
          conv_bias=False):
    # arguments checked by imgzoo.models.arguments (create calls it)
    return DilatedCNN(num_classes, in_chans, width, list(dilations), conv_bias)
