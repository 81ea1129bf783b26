"""Multi-layer perceptron on flattened pixels (study 1's baseline)."""

import torch
from torch import nn

from imgzoo.models._common import to_tiles

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}


class MLP(nn.Module):
    def __init__(self, in_shape, hidden, num_classes, activation="relu", dropout=0.0):
        super().__init__()
        self.in_shape = tuple(in_shape)  # (C, H, W): the first layer's rows are images of it
        widths = [self.in_shape[0] * self.in_shape[1] * self.in_shape[2], *hidden]
        layers: list[nn.Module] = [nn.Flatten()]
        for n_in, n_out in zip(widths[:-1], widths[1:], strict=False):
            layers += [nn.Linear(n_in, n_out), ACTIVATIONS[activation]()]
            if dropout:
                layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(widths[-1], num_classes))
        self.layers = nn.Sequential(*layers)
        # Study 1 initialised every layer Xavier-normal with zero bias; tanh/sigmoid nets need it.
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    def first_layer_tiles(self):
        """Each first-layer row as an image, averaged over channels: (hidden[0], H, W)."""
        first = self.layers[1]
        rows = first.weight.reshape(first.out_features, *self.in_shape)
        return to_tiles(rows.mean(dim=1)), "dense"


def build(num_classes, image_size, in_chans, *, hidden=(512, 512), activation="relu", dropout=0.0):
    # arguments checked by imgzoo.models.arguments (create calls it)
    return MLP((in_chans, image_size, image_size), list(hidden), num_classes, activation, dropout)
