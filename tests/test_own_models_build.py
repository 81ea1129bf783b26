"""Your own models as the job builds them: a timm architecture sized for the dataset, a network
from a file, each checked on a dummy batch; their first layers for the weight grids; every
mistake one line, before the dataset's images are read and before anything is written."""

import shutil
import sys

import h5py
import numpy as np
import pytest
import torch
import yaml
from test_own_models import NET, SPREAD

from imgzoo import models
from imgzoo.cli import main
from imgzoo.config import Run, Study
from imgzoo.data.store import read_shape
from imgzoo.errors import ConfigError
from imgzoo.models import catalog
from imgzoo.training.network import build_network

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make(name, size=16, chans=3, classes=10, **model_args):
    return models.create(name, num_classes=classes, image_size=size, in_chans=chans, **model_args)


def write(folder, text, name="net.py"):
    (folder / name).write_text(text)
    return name


# --- timm -----------------------------------------------------------------------------------


def test_a_timm_architecture_is_built_for_the_datasets_shape():
    vit = make("timm/vit_tiny_patch16_224", size=16, chans=1, classes=7, patch_size=4, depth=1)
    assert vit.patch_embed.img_size == (16, 16)  # img_size from the dataset: 16 tokens
    assert vit.pos_embed.shape[1] == 1 + 16
    assert vit.patch_embed.proj.in_channels == 1 and vit.head.out_features == 7
    assert vit.eval()(torch.rand(3, 1, 16, 16)).shape == (3, 7)
    resnet = make("timm/resnet10t", size=8, chans=1, drop_rate=0.2)  # takes any size as built
    assert resnet.drop_rate == 0.2 and resnet.conv1[0].in_channels == 1


def test_timms_mistakes_are_one_line_naming_the_architecture():
    with pytest.raises(ConfigError) as unknown:
        make("timm/resnet10t", widht=3)
    assert str(unknown.value).startswith(
        "model 'timm/resnet10t': unknown model argument 'widht' (ResNet.__init__() got an "
    )
    # convnext_atto halves the image 5 times: 8 px is too small
    with pytest.raises(ConfigError) as small:
        make("timm/convnext_atto", size=8, chans=1)
    message = str(small.value)
    assert message.startswith(
        "model 'timm/convnext_atto' cannot take the dataset's 8x8 images with 1 channel(s): "
    )
    assert "Kernel size can't be greater than actual input size" in message
    assert "\n" not in message


def test_timm_models_first_layer_is_found():
    tiles, kind = models.first_layer_tiles(make("timm/resnet10t", chans=1))
    assert kind == "conv" and tiles.shape == (24, 3, 3)  # timm's record: conv1.0
    vit = make("timm/vit_tiny_patch16_224", patch_size=4, depth=1)
    tiles, kind = models.first_layer_tiles(torch.compile(vit))
    assert kind == "patch_embedding" and tiles.shape == (192, 4, 4)
    weight = vit.patch_embed.proj.weight.detach().mean(dim=1).numpy()
    np.testing.assert_array_equal(tiles, weight)


# --- a network from a file ------------------------------------------------------------------


def test_a_file_network_is_built_with_the_shape_and_its_arguments(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, NET)
    model = make("net.py:build", size=8, chans=1, width=5)
    assert model[0].out_channels == 5 and model[-1].out_features == 10
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 10)
    assert model.training  # the dummy batch ran in eval mode, and left it as it was
    # its first layer: the convolution's kernels
    tiles, kind = models.first_layer_tiles(model)
    assert kind == "conv" and tiles.shape == (5, 3, 3)
    # imgzoo's own arguments of every model are not the callable's
    wider = make("net.py:build", size=8, chans=1, head_outputs=20)
    assert wider(torch.rand(2, 1, 8, 8)).shape == (2, 20)
    Study({"datasets": ["digits"], "experiments": {"x": {
        "model": "net.py:build", "model_args": {"head_outputs": 20, "normalizer": "none"}}}})


@pytest.fixture
def own_imports(tmp_path, monkeypatch):
    """sys.path as it was, and no module of tmp_path left imported, after the test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    for name, module in list(sys.modules.items()):
        if str(tmp_path) in str(getattr(module, "__file__", None)):
            del sys.modules[name]


def test_a_network_spread_over_files_is_built_from_the_modules_beside_it(tmp_path, monkeypatch,
                                                                        own_imports):
    monkeypatch.chdir(tmp_path)
    for name, text in SPREAD.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    model = make("nets/spread.py:build", size=8, chans=1)
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 10)
    assert sys.path[0] == str(tmp_path / "nets")
    assert sys.modules["blocks"].__file__ == str(tmp_path / "nets" / "blocks.py")
    assert "unused" not in sys.modules

    # another network whose module has the same name as one this process already imported
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "blocks.py").write_text(SPREAD["nets/blocks.py"])
    (tmp_path / "other" / "net.py").write_text(SPREAD["nets/spread.py"] + "# another\n")
    with pytest.raises(ConfigError) as clash:
        make("other/net.py:build", size=8, chans=1)
    assert str(clash.value) == (
        f"model file 'other/net.py': its module 'blocks' (other/blocks.py) has the name of a "
        f"module already imported from {tmp_path / 'nets' / 'blocks.py'}: rename it"
    )


FIRST_LAYERS = '''
import torch
from torch import nn


def flat(num_classes, image_size, in_chans):
    return nn.Sequential(nn.Flatten(), nn.Linear(in_chans * image_size**2, 6), nn.ReLU(),
                         nn.Linear(6, num_classes))


class Pixels(nn.Module):  # a linear layer on each pixel's channels: no image-shaped rows
    def __init__(self, num_classes, image_size, in_chans):
        super().__init__()
        self.mix = nn.Linear(in_chans, 4)
        self.head = nn.Linear(4, num_classes)

    def forward(self, x):
        return self.head(self.mix(x.permute(0, 2, 3, 1)).mean(dim=(1, 2)))


class Drawn(Pixels):
    def first_layer_tiles(self):
        return torch.ones(2, 3, 3).numpy(), "conv"
'''


def test_a_file_networks_first_layer_is_its_first_linear_layer(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, FIRST_LAYERS)
    flat = make("net.py:flat", size=8, chans=3)
    tiles, kind = models.first_layer_tiles(flat)
    assert kind == "dense" and tiles.shape == (6, 8, 8)  # rows as images, channels averaged
    rows = flat[1].weight.detach().reshape(6, 3, 8, 8).mean(dim=1).numpy()
    np.testing.assert_allclose(tiles, rows)
    tiles, kind = models.first_layer_tiles(make("net.py:Pixels", size=8, chans=3))
    assert kind == "matrix" and tiles.shape == (1, 4, 3)
    assert models.first_layer_tiles(make("net.py:Drawn"))[1] == "conv"  # its own view wins
    # a class's parameters are not read when the study loads: building it names the argument
    with pytest.raises(ConfigError) as unknown:
        make("net.py:Pixels", depth=2)
    assert str(unknown.value) == "model file 'net.py': Pixels() takes no model argument 'depth'"


BAD_FILES = [
    # (file text, callable, the message after "model file 'net.py': " or "model 'net.py:NAME'")
    ("def build(num_classes, image_size, in_chans):\n    return 3\n", "build",
     "model file 'net.py': build() returned a int, not a torch.nn.Module"),
    ("import torch\n\n\ndef build(num_classes, image_size, in_chans):\n"
     "    return torch.nn.Flatten()\n", "build",
     "model 'net.py:build': a batch of shape (2, 3, 16, 16) gives logits of shape (2, 768), not "
     "(2, 10) (N x num_classes)"),
    ("def build(num_classes, image_size, in_chans):\n    x = 1\n    return x / 0\n", "build",
     "model file 'net.py': build() failed: ZeroDivisionError: division by zero (line 3)"),
    ("import no_such_package\n\n\ndef build(num_classes, image_size, in_chans):\n    pass\n",
     "build", "model file 'net.py': importing it failed: ModuleNotFoundError: No module named "
     "'no_such_package' (line 1)"),
    ("from torch import nn\n\n\ndef build(num_classes, image_size, in_chans):\n"
     "    return Net()\n\n\nclass Net(nn.Module):\n    def forward(self, x):\n"
     "        return x.view(-1, 7)\n", "build",
     "model 'net.py:build' cannot take the dataset's 16x16 images with 3 channel(s): "
     "RuntimeError: shape '[-1, 7]' is invalid for input of size 1536 (line 10)"),
    ("build = 3\n", "build", "model file 'net.py': 'build' is a int, not a callable"),
]


@pytest.mark.parametrize("text,name,message", BAD_FILES, ids=[b[2][-30:] for b in BAD_FILES])
def test_a_bad_file_network_is_one_line_naming_the_file(tmp_path, monkeypatch, text, name,
                                                         message):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, text)
    with pytest.raises(ConfigError) as built:
        make(f"net.py:{name}")
    assert str(built.value) == message


# --- in the job: `imgzoo train` --------------------------------------------------------------


def train_args(tmp_path, data):
    return ["train", "--config", "study.yaml", "--experiment", "x", "--dataset", "digits",
            "--seed", "0", "--data", str(data), "--out", str(tmp_path / "run")]


def test_a_model_that_cannot_take_the_data_fails_before_the_images_are_read(
    tmp_path, monkeypatch, capsys, digits_h5
):
    monkeypatch.chdir(tmp_path)
    # a prepared file whose images are gone: reading them would fail, the model fails first
    damaged = tmp_path / "digits.h5"
    shutil.copy(digits_h5, damaged)
    with h5py.File(damaged, "a") as f:
        del f["train/images"]
    assert read_shape(damaged).image_size == 8
    config = {"datasets": ["digits"], "experiments": {"x": {"model": "timm/convnext_atto"}}}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(config))
    assert main(train_args(tmp_path, damaged)) == 2
    err = capsys.readouterr().err
    assert err.startswith("imgzoo: error: model 'timm/convnext_atto' cannot take the dataset's "
                          "8x8 images with 1 channel(s): ")
    assert err.count("\n") == 1
    assert not (tmp_path / "run").exists()  # nothing written, nothing that looks complete


def test_a_job_refuses_a_file_that_changed_after_the_run_was_planned(tmp_path, monkeypatch,
                                                                     digits_h5):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, NET)
    config = {"datasets": ["digits"], "experiments": {"x": {"model": "net.py:build"}}}
    settings = Study(config).spec(Run("digits", "x", 0)).settings
    write(tmp_path, NET.replace("width=8", "width=9"))
    with pytest.raises(ConfigError) as stale:
        build_network(settings, read_shape(digits_h5), torch.device("cpu"))
    assert str(stale.value).startswith(
        f"model file 'net.py' changed after this run was planned (its sha256 is no longer "
        f"{settings.model_file_sha256[:12]}...)"
    )


def test_the_family_of_a_file_model_is_its_name():
    assert catalog.is_open("nets/a.py:build") and catalog.is_open("timm/resnet10t")
    assert not catalog.is_open("mlp") and not catalog.is_open("tnt-s-pretrained")
