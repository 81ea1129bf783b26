"""MLP-Mixer (Tolstikhin et al., 2021), built from timm's MlpMixer.

timm's registered mixer_* constructors hard-code patch_size, so the class is built directly.
Its defaults match study 1's model: GELU, LayerNorm eps 1e-6, final LayerNorm, mean over tokens,
linear head; the token-mixing hidden width is token_mlp_ratio * dim (not * tokens).
"""

from timm.models.mlp_mixer import MlpMixer

from imgzoo.errors import ConfigError
from imgzoo.models._common import to_tiles


class Mixer(MlpMixer):
    def __init__(self, image_size: int, patch_size: int, **kwargs):
        super().__init__(img_size=image_size, patch_size=patch_size, **kwargs)
        self.grid = image_size // patch_size

    def first_layer_tiles(self):
        """Block 0's token-mixing fc1 rows, each as a grid x grid map over the patches."""
        weight = self.blocks[0].mlp_tokens.fc1.weight  # (hidden tokens, num_patches)
        return to_tiles(weight.reshape(-1, self.grid, self.grid)), "token_mixing"


def build(num_classes, image_size, in_chans, *, patch_size=4, dim=128, depth=4,
          token_mlp_ratio=0.5, channel_mlp_ratio=4.0, dropout=0.0):
    # each argument checked by imgzoo.models.arguments (create calls it); here what they must
    # satisfy together and with the image size
    if image_size % patch_size:
        raise ConfigError(
            f"model family 'mixer': image size {image_size} is not divisible by "
            f"patch_size={patch_size}; choose a patch size that divides it"
        )
    if int(token_mlp_ratio * dim) < 1 or int(channel_mlp_ratio * dim) < 1:
        raise ConfigError(
            f"model family 'mixer': the MLP ratios give an empty hidden layer at dim={dim}"
        )
    return Mixer(
        image_size, patch_size, in_chans=in_chans, num_classes=num_classes,
        num_blocks=depth, embed_dim=dim, mlp_ratio=(token_mlp_ratio, channel_mlp_ratio),
        # dropout inside every token/channel MLP and before the head
        proj_drop_rate=dropout, drop_rate=dropout,
    )
