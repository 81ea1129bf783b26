"""`head_outputs`: a head wider than the dataset's classes (study 2's 1000-way heads on CIFAR-100),
and how evaluation counts a prediction of an id that is no class."""

import numpy as np
import pytest
import torch

import imgzoo.models as models
from imgzoo.config import Study
from imgzoo.errors import ConfigError
from imgzoo.models import catalog
from imgzoo.training.evaluate import confusion_matrix


def make(name, classes=10, **args):
    return models.create(name, num_classes=classes, image_size=8, in_chans=1, **args)


@pytest.mark.parametrize(
    ("family", "args"),
    [
        ("mlp", {"hidden": [8]}),
        ("resnet18", {}),
        ("dilated", {"width": 4}),
        ("vit", {"patch_size": 4, "dim": 8, "depth": 1, "heads": 2, "head_hidden": 0}),
    ],
)
def test_any_family_can_have_a_wider_head(family, args):
    model = make(family, head_outputs=25, **args).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 1, 8, 8)).shape == (2, 25)
    assert make(family, **args).eval()(torch.rand(2, 1, 8, 8)).shape == (2, 10)


def test_a_head_narrower_than_the_classes_is_refused():
    with pytest.raises(ConfigError, match="head_outputs=5 is fewer than the dataset's 10"):
        make("mlp", head_outputs=5)
    with pytest.raises(ConfigError, match="head_outputs=0 must be a positive integer"):
        Study({"datasets": ["digits"],
               "experiments": {"x": {"model": "mlp", "model_args": {"head_outputs": 0}}}})


def test_only_study_twos_source_ran_1000_logits():
    wide = {n for n, p in catalog.PRESETS.items() if p.get("model_args", {}).get("head_outputs")}
    assert wide and all(n.startswith(("c100-", "toy-", "vit-1", "vit-aux", "vitn-")) for n in wide)
    assert "c100-resnet18-tnc" not in wide  # its "tailor num classes" run


def test_a_prediction_beyond_the_classes_is_wrong_and_has_no_column():
    labels = np.array([0, 1, 2, 2])
    predictions = np.array([0, 999, 2, 3])  # 999: a logit of the wide head's, no class
    confusion = confusion_matrix(labels, predictions, num_classes=3)
    assert confusion.shape == (3, 3)
    assert confusion.trace() == 2  # correct: the first and the third
    assert confusion.sum(1).tolist() == [1, 0, 1]  # predictions of no class are left out
