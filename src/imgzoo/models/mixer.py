"""MLP-Mixer (Tolstikhin et al., 2021), built from timm's MlpMixer.

timm's registered mixer_* constructors hard-code patch_size, so the class is built directly.
Its layout matches study 1's model: GELU, LayerNorm eps 1e-6 in the blocks, a final LayerNorm,
mean over tokens, linear head; the token-mixing hidden width is token_mlp_ratio * dim (not *
tokens). Two arguments cover what study 1 drew differently:
- init: "timm" (timm's: Xavier-uniform MLPs with near-zero biases, a zero head, a LeCun-normal
  patch stem) or "xavier" (Xavier-uniform on every Linear, the head included, zero biases, a
  He-normal stem: study 1's mlpmixer.py).
- final_norm_eps: the final LayerNorm's eps (timm 1e-6; study 1 left nn.LayerNorm's 1e-5).
"""

from timm.models.mlp_mixer import MlpMixer
from torch import nn

from imgzoo.models import joint_checks
from imgzoo.models._common import to_tiles


def xavier_init(module: nn.Module) -> None:
    """Study 1's init, module by module (for nn.Module.apply)."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight)  # fan-in, gain sqrt(2)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class Mixer(MlpMixer):
    def __init__(self, image_size: int, patch_size: int, init: str, final_norm_eps: float,
                 **kwargs):
        super().__init__(img_size=image_size, patch_size=patch_size, **kwargs)
        self.grid = image_size // patch_size
        self.norm.eps = final_norm_eps
        if init == "xavier":
            self.apply(xavier_init)  # over timm's, which the constructor has already drawn

    def first_layer_tiles(self):
        """Block 0's token-mixing fc1 rows, each as a grid x grid map over the patches."""
        weight = self.blocks[0].mlp_tokens.fc1.weight  # (hidden tokens, num_patches)
        return to_tiles(weight.reshape(-1, self.grid, self.grid)), "token_mixing"


def build(num_classes, image_size, in_chans, *, patch_size=4, dim=128, depth=4,
          token_mlp_ratio=0.5, channel_mlp_ratio=4.0, dropout=0.0, init="timm",
          final_norm_eps=1e-6):
    joint_checks.mixer(image_size, patch_size, dim, token_mlp_ratio, channel_mlp_ratio)
    return Mixer(
        image_size, patch_size, init, final_norm_eps, in_chans=in_chans,
        num_classes=num_classes, num_blocks=depth, embed_dim=dim,
        mlp_ratio=(token_mlp_ratio, channel_mlp_ratio),
        # dropout inside every token/channel MLP and before the head
        proj_drop_rate=dropout, drop_rate=dropout,
    )
