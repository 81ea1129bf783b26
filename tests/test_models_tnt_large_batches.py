"""TnT's inner attention over more sequences than CUDA's attention kernels take in one call."""

import torch

import imgzoo.models as models
from imgzoo.models import tnt


def test_inner_attention_in_slices_gives_the_same_logits(monkeypatch):
    torch.manual_seed(0)
    model = models.create(
        "tnt",
        num_classes=10,
        image_size=16,
        in_chans=3,
        patch_size=2,
        pixel_size=2,
        dim=16,
        pixel_dim=8,
        depth=1,
        heads=2,
        dim_head=8,
    ).eval()
    x = torch.rand(6, 3, 16, 16)  # 6 x 64 patches: 384 inner sequences of one pixel each
    with torch.no_grad():
        whole = model(x)
        monkeypatch.setattr(tnt, "MAX_SEQUENCES", 50)  # the CUDA limit, scaled down
        sliced = model(x)
    torch.testing.assert_close(sliced, whole)
    # training (dropout on) runs through the slices too
    model.train()(x).sum().backward()
