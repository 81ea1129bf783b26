"""Batched augmentation: shapes and range, determinism, and each operation's semantics."""

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

from imgzoo import augment, schema
from imgzoo.augment import ops
from imgzoo.errors import ConfigError


def _images(b, c, size, seed=0):
    return torch.rand(b, c, size, size, generator=torch.Generator().manual_seed(seed))


def _gen(seed, device="cpu"):
    return torch.Generator(device=device).manual_seed(seed)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [8, 32, 64, 96])
@pytest.mark.parametrize("preset", augment.PRESETS)
def test_shape_dtype_range(preset, size, channels):
    x = _images(6, channels, size)
    y = augment.build(preset, size)(x, _gen(1))
    assert y.shape == x.shape and y.dtype == torch.float32
    assert y.min() >= 0 and y.max() <= 1
    assert y is not x


@pytest.mark.parametrize("preset", augment.PRESETS)
def test_channels_last_input_gives_the_same_batch(preset):
    x = _images(8, 3, 64)  # e.g. a batch permuted from the N×H×W×C arrays
    aug = augment.build(preset, 64)
    y = aug(x.contiguous(memory_format=torch.channels_last), _gen(2))
    torch.testing.assert_close(y, aug(x, _gen(2)), atol=1e-6, rtol=0)


@pytest.mark.parametrize("preset", augment.PRESETS)
def test_same_generator_state_same_batch(preset):
    x = _images(16, 3, 32)
    aug = augment.build(preset, 32)
    assert torch.equal(aug(x, _gen(7)), aug(x, _gen(7)))
    if preset != "none":
        assert not torch.equal(aug(x, _gen(7)), aug(x, _gen(8)))


def test_none_is_identity():
    x = _images(4, 3, 32)
    assert torch.equal(augment.build("none", 32)(x, _gen(0)), x)


def test_flip_mirrors_about_half():
    x = _images(1, 1, 8).expand(2000, 1, 8, 8)  # random pixels: not symmetric
    y = augment.build("flip", 8)(x, _gen(0))
    mirrored = (y == x.flip(-1)).flatten(1).all(1)
    kept = (y == x).flatten(1).all(1)
    assert bool((mirrored ^ kept).all())
    assert 0.45 <= mirrored.float().mean() <= 0.55


def _leading(flags):
    """How many of the first values of a bool vector are True."""
    return int(flags.int().cumprod(0).sum())


def _find_shift(xi, yi, pad):
    """(dy, dx, mirrored) such that yi is xi shifted by (dy, dx) with zero fill, maybe mirrored.

    xi has no zeros, so the shift shows in yi's zero border: dy > 0 reads further down and
    leaves dy zero rows at the bottom; a mirror swaps the zero columns' side.
    """
    zero_rows, zero_cols = (yi[0] == 0).all(1), (yi[0] == 0).all(0)
    dy = _leading(zero_rows.flip(0)) - _leading(zero_rows)
    right, left = _leading(zero_cols.flip(0)), _leading(zero_cols)
    h, w = xi.shape[-2:]
    padded = F.pad(xi, (pad, pad, pad, pad))
    for mirrored, dx in ((False, right - left), (True, left - right)):
        if max(abs(dy), abs(dx)) > pad:
            continue
        shifted = padded[..., pad + dy : pad + dy + h, pad + dx : pad + dx + w]
        if torch.equal(yi, shifted.flip(-1) if mirrored else shifted):
            return dy, dx, mirrored
    raise AssertionError("an output is no zero-filled shift of its input within ±pad")


@pytest.mark.parametrize(
    "preset, size, pad",
    [
        ("crop", 8, 1),
        ("standard", 8, None),
        ("standard", 16, None),
        ("standard", 32, None),
        ("crop", 64, 2),
        ("standard", 96, 4),
        ("standard", 16, 0),
    ],
)
def test_crop_is_a_zero_filled_shift_of_crop_padding_px_at_every_size(preset, size, pad):
    x = 0.1 + 0.9 * _images(1000, 1, size)  # no zeros, so a zero in y can only be fill
    if pad is None:  # the default: an eighth of the image (1 px at 8 px, 4 px at 32 px)
        aug, pad = augment.build(preset, size), size // 8
    else:
        aug = augment.build(preset, size, crop_padding=pad)
    y = aug(x, _gen(0))
    found = [_find_shift(xi, yi, pad) for xi, yi in zip(x, y, strict=True)]
    assert len({(dy, dx) for dy, dx, _ in found}) == (2 * pad + 1) ** 2  # every shift occurs
    mirrored = {m for _, _, m in found}
    assert mirrored == ({False, True} if preset == "standard" else {False})


@pytest.mark.parametrize("size, padding", [(8, 1), (12, 1), (16, 2), (32, 4), (96, 12), (4, 0)])
def test_auto_crop_padding_is_an_eighth_of_the_image(size, padding):
    assert schema.crop_padding_px("auto", size) == padding
    assert schema.crop_padding_px(3, size) == 3


@pytest.mark.parametrize("bad", [-1, 2.5, True, "4", "Auto"])
def test_crop_padding_must_be_a_whole_number_of_pixels(bad):
    with pytest.raises(ConfigError, match="crop_padding"):
        augment.build("standard", 32, crop_padding=bad)


def test_rotation_keeps_the_centre_of_a_constant_image():
    x = torch.full((64, 3, 96, 96), 0.7)
    y = augment.build("standard+rotate", 96)(x, _gen(0))
    # crop shifts by at most 12 px and rotation turns about the centre: the middle stays put
    torch.testing.assert_close(y[..., 40:56, 40:56], x[..., 40:56, 40:56])
    corners = y[..., 0, 0]
    assert (corners == 0).any() and (corners != 0).any()


def test_random_draws_one_to_four_of_eight_ops():
    draws = augment.draw_ops(20000, _gen(0))
    count = (draws >= 0).sum(1)
    assert count.min() == 1 and count.max() == 4
    assert ((count.bincount()[1:] / 20000 - 0.25).abs() < 0.015).all()  # uniform in 1..4
    assert ((draws >= 0).int().diff(dim=1) <= 0).all()  # the draws come first, then the -1s
    share = draws[draws >= 0].bincount(minlength=8) / (draws >= 0).sum()
    assert ((share - 1 / 8).abs() < 0.01).all()


def _only(monkeypatch, names, pool=augment.RANDOM_OPS):
    """Make `random` draw exactly `names`, in this order, for every image."""
    row = [pool.index(n) for n in names] + [-1] * (4 - len(names))

    def fixed(batch, generator, device=None, pool=pool):
        return torch.tensor(row, device=device).expand(batch, 4)

    monkeypatch.setattr(augment, "draw_ops", fixed)


@pytest.mark.parametrize("name", augment.COIN_OPS)
def test_flips_and_enhancements_keep_their_p_once_drawn(monkeypatch, name):
    # low contrast: autocontrast and equalise change it (equalise, from ~300 pixels on)
    x = 0.3 + 0.4 * _images(400, 3, 32)
    done = {
        "hflip": x.flip(-1),
        "vflip": x.flip(-2),
        "equalize": ops.equalize(x),
        "autocontrast": ops.autocontrast(x),
        "sharpness": ops.sharpen(x),
    }[name]
    _only(monkeypatch, [name])
    y = augment.build("random", 32)(x, _gen(5))
    applied = (y - done).flatten(1).abs().amax(1) < 1e-5
    kept = torch.equal(y[~applied], x[~applied])
    assert kept and 0.4 < applied.float().mean() < 0.6


def test_an_operation_drawn_twice_is_applied_twice(monkeypatch):
    x = _images(2000, 3, 8)
    once, twice = ops.sharpen(x), ops.sharpen(ops.sharpen(x))
    _only(monkeypatch, ["sharpness", "sharpness"])
    y = augment.build("random", 8)(x, _gen(1))

    def share(expected):
        return ((y - expected).flatten(1).abs().amax(1) < 1e-5).float().mean()

    # each draw keeps its own p=0.5: none, once, twice in 1/4, 1/2, 1/4 of the images
    assert abs(share(x) - 0.25) < 0.04 and abs(share(twice) - 0.25) < 0.04
    assert abs(share(once) - 0.5) < 0.04


def test_the_draws_apply_in_the_order_drawn(monkeypatch):
    x = 0.3 + 0.4 * _images(500, 3, 16)
    _only(monkeypatch, ["jitter", "autocontrast"])
    y = augment.build("random", 16)(x, _gen(2))
    # where the coin let autocontrast act, it acted last: every channel spans exactly 0..1
    stretched = (y.amin((2, 3)) == 0).all(1) & (y.amax((2, 3)) == 1).all(1)
    assert 0.4 < stretched.float().mean() < 0.6


def test_random_rotation_is_nearest_neighbour(monkeypatch):
    x = _images(64, 3, 16)
    _only(monkeypatch, ["rotate"])
    y = augment.build("random", 16)(x, _gen(0))
    # every output pixel is an input pixel of its image and channel, or the zero fill
    for image, rotated in zip(x, y, strict=True):
        for channel, out in zip(image, rotated, strict=True):
            assert torch.isin(out, torch.cat([channel.flatten(), torch.zeros(1)])).all()
    assert not torch.equal(y, x)


def test_random_affine_shifts_by_whole_pixels(monkeypatch):
    # a constant image with a border of zeros shows the shift; with no rotation, scale or shear
    # (all drawn as 0) the image moves by a whole number of pixels
    monkeypatch.setattr(ops, "uniform", _zeros_but_shift(ops.uniform))
    x = torch.zeros(200, 1, 32, 32)
    x[:, :, 8:24, 8:24] = 1.0
    y = ops.random_affine(x, _gen(0))
    assert set(y.unique().tolist()) <= {0.0, 1.0}
    assert (y.sum((1, 2, 3)) == 256).all()  # the square moved whole, never blurred


def _zeros_but_shift(uniform):
    def draw(generator, like, low, high, n=None):
        values = uniform(generator, like, low, high, n)
        if n == 5:  # angle, shift x, shift y, scale, shear: keep the shifts only
            values = values * torch.tensor([0.0, 1, 1, 0, 0]).view(5, 1)
        return values

    return draw


def test_random_pool_has_the_resized_crop_from_64_px():
    assert augment.random_pool(32) == augment.RANDOM_OPS and len(augment.RANDOM_OPS) == 8
    for size in (64, 96):
        pool = augment.random_pool(size)
        assert len(pool) == 9 and set(pool) == {"resized_crop", *augment.RANDOM_OPS}


def test_resized_crop_is_one_member_of_the_pool_not_applied_to_every_image(monkeypatch):
    pool = augment.RANDOM_OPS_WITH_CROP
    draws = augment.draw_ops(40000, _gen(0), pool=pool)
    share = draws[draws >= 0].bincount(minlength=9) / (draws >= 0).sum()
    assert ((share - 1 / 9).abs() < 0.01).all()

    x = 0.3 + 0.4 * _images(48, 3, 64)
    _only(monkeypatch, ["hflip"], pool)
    y = augment.build("random", 64)(x, _gen(5))
    # an image that drew only the flip is flipped or kept whole: it was not cropped
    flipped = (y - x.flip(-1)).flatten(1).abs().amax(1) < 1e-6
    assert torch.equal(y[~flipped], x[~flipped]) and flipped.any()
    _only(monkeypatch, ["resized_crop"], pool)
    y = augment.build("random", 64)(x, _gen(5))
    assert ((y - x).flatten(1).abs().amax(1) > 1e-3).float().mean() > 0.95


def test_resized_crop_is_torchvisions_box_resized():
    x = _images(100, 3, 32)
    y = ops.resized_crop(x, _gen(3))
    g = _gen(3)  # the same draws: ten boxes per image, then the box's top and left
    area = 32 * 32 * ops.uniform(g, x, 0.5, 1.0, n=10).T
    aspect = ops.uniform(g, x, math.log(3 / 4), math.log(4 / 3), n=10).T.exp()
    width, height = (area * aspect).sqrt().round(), (area / aspect).sqrt().round()
    fits = (width <= 32) & (height <= 32)
    top_u, left_u = ops.uniform(g, x, 0.0, 1.0), ops.uniform(g, x, 0.0, 1.0)
    for i in range(100):
        k = int(fits[i].int().argmax())  # the first box that fits
        w, h = int(width[i, k]), int(height[i, k])
        top, left = int(top_u[i] * (32 - h + 1)), int(left_u[i] * (32 - w + 1))
        reference = TF.resized_crop(
            x[i], top, left, h, w, [32, 32], InterpolationMode.BILINEAR, antialias=False
        )
        torch.testing.assert_close(y[i], reference, atol=1e-5, rtol=0)


def test_random_resized_crop_stays_inside_the_image():
    x = torch.full((256, 3, 64, 64), 0.6)
    y = ops.resized_crop(x, _gen(0))  # a box outside the image would bring in zeros
    torch.testing.assert_close(y, x)
    z = _images(256, 3, 64)
    assert ((ops.resized_crop(z, _gen(0)) - z).flatten(1).abs().amax(1) > 0.01).all()


def test_resized_crop_and_flip_keeps_80_to_100_percent_of_each_side():
    b, size = 2000, 32
    ramp = torch.linspace(0, 1, size)
    across = ramp.view(1, 1, 1, size).expand(b, 1, size, size)  # value = column
    down = ramp.view(1, 1, size, 1).expand(b, 1, size, size)  # value = row
    aug = augment.build("resized_crop+flip", size)
    wide, tall = aug(across, _gen(3)), aug(down, _gen(3))
    # the box's sides: sqrt(area * ratio) and sqrt(area / ratio), area 0.8-1, ratio 0.9-1.1
    width = (wide[..., -1] - wide[..., 0]).abs().mean((1, 2))
    height = (tall[..., -1, :] - tall[..., 0, :]).mean((1, 2))
    for side in (width, height):
        assert side.min() > 0.8 and side.max() <= 1 + 1e-5
        assert side.min() < 0.88 and side.max() > 0.97  # the whole range is drawn
    mirrored = wide[..., -1].mean((1, 2)) < wide[..., 0].mean((1, 2))
    assert 0.45 < mirrored.float().mean() < 0.55
    assert not (tall[..., -1, :] < tall[..., 0, :]).any()  # no vertical flips


def test_flip_brightness_hue_is_torchvisions_colour_jitter_with_those_strengths():
    x = _images(8, 3, 16)
    y = augment.build("flip+brightness_hue", 16)(x, _gen(4))
    g = _gen(4)  # the same draws: the flip's (zero) shift and coin, then the jitter's
    torch.randint(0, 1, (2, 8, 1), generator=g)
    mirror = torch.rand(8, 1, generator=g) < 0.5
    factor = 1 + 0.5 * (2 * torch.rand(3, 8, generator=g)[0] - 1)
    hue = -0.25 + 0.5 * torch.rand(8, generator=g)
    order = ops.jitter_order(8, g)
    for i in range(8):
        ref = x[i].flip(-1) if mirror[i] else x[i]
        brightness_first = order[i].tolist().index(0) < order[i].tolist().index(3)
        if brightness_first:
            ref = TF.adjust_hue(TF.adjust_brightness(ref, float(factor[i])), float(hue[i]))
        else:
            ref = TF.adjust_brightness(TF.adjust_hue(ref, float(hue[i])), float(factor[i]))
        torch.testing.assert_close(y[i], ref, atol=1e-5, rtol=0)
    # brightness factors fill 0.5-1.5: a mid-grey image comes out anywhere in 0.25-0.75
    grey = augment.build("flip+brightness_hue", 8)(torch.full((4000, 3, 8, 8), 0.5), _gen(0))
    level = grey.mean((1, 2, 3))
    assert level.min() > 0.25 - 1e-6 and level.max() < 0.75 + 1e-6
    assert level.min() < 0.26 and level.max() > 0.74
    assert abs(level.mean() - 0.5) < 0.01
    assert torch.allclose(grey, grey[:, :1])  # grey stays grey: no saturation or hue change


def test_equalize_flattens_the_histogram_as_torchvision_does():
    skewed = (_images(4, 3, 64) ** 3 * 255).round().to(torch.uint8)
    x = skewed.float() / 255
    y = ops.equalize(x)
    assert torch.equal((y * 255).round().to(torch.uint8), TF.equalize(skewed))
    share = torch.histc(y[0, 0], bins=8, min=0, max=1) / y[0, 0].numel()
    assert ((share - 1 / 8).abs() < 0.03).all()
    flat = torch.full((1, 1, 8, 8), 0.5)
    assert torch.equal(ops.equalize(flat), flat)


def test_colour_ops_match_torchvision():
    x = _images(8, 3, 32)
    torch.testing.assert_close(ops.autocontrast(x), TF.autocontrast(x))
    torch.testing.assert_close(ops.sharpen(x), TF.adjust_sharpness(x, 2.0))
    for turns in (-0.2, 0.05, 0.2):
        shifted = ops.shift_hue(x, torch.full((8,), turns))
        torch.testing.assert_close(shifted, TF.adjust_hue(x, turns), atol=1e-5, rtol=0)


def test_colour_jitter_is_torchvisions_in_an_order_drawn_per_image():
    x = _images(8, 3, 16)
    y = ops.color_jitter(x, _gen(4))
    g = _gen(4)  # the same draws: three factors per image, the hue, then the order
    factor = 1 + 0.2 * (2 * torch.rand(3, 8, generator=g) - 1)
    hue = -0.2 + 0.4 * torch.rand(8, generator=g)
    order = ops.jitter_order(8, g)
    for i in range(8):
        adjust = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
        strength = [*factor[:, i].tolist(), float(hue[i])]
        ref = x[i]
        for step in order[i].tolist():
            ref = adjust[step](ref, strength[step])
        torch.testing.assert_close(y[i], ref, atol=1e-5, rtol=0)
    orders = ops.jitter_order(24000, _gen(0))
    assert len({tuple(o) for o in orders.tolist()}) == 24  # every permutation of the four


@pytest.mark.parametrize("channels", [1, 3])
def test_colour_jitter_keeps_range_and_changes_colours(channels):
    x = _images(64, channels, 16)
    x[:, :, :4] = 0.0  # extremes, where clamping matters
    x[:, :, -4:] = 1.0
    y = ops.color_jitter(x, _gen(0))
    assert y.min() >= 0 and y.max() <= 1
    assert ((y - x).flatten(1).abs().amax(1) > 1e-3).all()


def test_geometry_matches_torchvision():
    x = _images(4, 3, 32)
    bilinear, nearest = InterpolationMode.BILINEAR, InterpolationMode.NEAREST
    for angle in (30.0, -70.0, 150.0):
        turn = ops.forward_map(torch.full((4,), angle))
        torch.testing.assert_close(
            ops.warp(x, turn), TF.rotate(x, angle, bilinear), atol=1e-4, rtol=0
        )
        assert torch.equal(ops.warp(x, turn, mode="nearest"), TF.rotate(x, angle, nearest))
    # torchvision's affine turns clockwise and shears the other way; the ranges are symmetric
    forward = ops.forward_map(torch.full((4,), -10.0), 1.1, -12.0, 3.0, -2.0)
    reference = TF.affine(x, 10.0, [3, -2], 1.1, [12.0, 0.0], interpolation=bilinear)
    torch.testing.assert_close(ops.warp(x, forward), reference, atol=1e-4, rtol=0)


def test_unknown_preset_suggests_a_close_name():
    with pytest.raises(ConfigError, match="did you mean standard"):
        augment.build("standrad", 32)
    assert set(augment.DESCRIPTIONS) == set(augment.PRESETS)
    assert all(line and "\n" not in line for line in augment.DESCRIPTIONS.values())


@pytest.mark.cuda
@pytest.mark.parametrize("preset", augment.PRESETS)
def test_cuda(preset):
    x = _images(32, 3, 64).cuda()
    aug = augment.build(preset, 64)
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)  # as training runs it: no op may refuse
    try:
        y = aug(x, _gen(3, "cuda"))
    finally:
        torch.use_deterministic_algorithms(was)
    assert y.device == x.device and y.shape == x.shape
    assert y.min() >= 0 and y.max() <= 1
    assert torch.equal(y, aug(x, _gen(3, "cuda")))
    if preset == "random":
        draws = augment.draw_ops(32, _gen(3, "cuda"), "cuda")
        assert draws.device.type == "cuda" and (draws[:, 0] >= 0).all()


def test_the_default_augmentation_keeps_small_images_learnable(tmp_path):
    """An MLP on a 7-class synthetic set of 12-px images learns about as well with the default
    augmentation (crop with auto padding, 1 px here, and flip) as with none; a fixed 4 px, the
    default before, cost it a third of its accuracy."""
    import io

    from imgzoo import data
    from imgzoo.config import Run, Study
    from imgzoo.progress import Progress
    from imgzoo.train import train

    options = {"image_size": 12, "num_classes": 7, "train_size": 5000, "test_size": 700}
    data.prepare("synthetic", options, tmp_path / "small.h5")
    config = {"datasets": ["synthetic"], "seeds": [0], "data": {"synthetic": options},
              "train": {"epochs": 10, "device": "cpu"}, "experiments": {"mlp": {"model": "mlp"}}}
    spec = Study(config).spec(Run("synthetic", "mlp", 0))
    # the default, auto, is resolved where the image size is known: an eighth of 12 px
    assert (spec.train["augment"], spec.train["crop_padding"]) == ("standard", 1)

    def accuracy(**train_keys):
        run = spec.with_settings(replace(spec.settings, train={**spec.train, **train_keys}))
        log = train(run, tmp_path / "small.h5", tmp_path / str(train_keys), threads=1,
                    progress=Progress(10, stream=io.StringIO()))
        return log.epochs["test_acc"][int(log.epochs["val_acc"].argmax())]

    default, without = accuracy(), accuracy(augment="none")
    assert default > without - 0.04, (default, without)
    assert accuracy(crop_padding=4) < without - 0.15
