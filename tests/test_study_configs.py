"""The three write-ups' study configs, pinned to what their code ran, and their published numbers.

Each row is (experiment, dataset) -> the resolved settings the source ran: training keys as the
run spec holds them, `model` (the configured preset or family) and model arguments that matter.
A change to a study config, a preset or a default that moves one of these fails here, so a
reproduction cannot drift silently; a deliberate difference is commented in the config file.
"""

import copy
from pathlib import Path

import pytest
from helpers import default_model_args

from imgzoo import data
from imgzoo.cli import main
from imgzoo.config import Run, Study, load_study, load_yaml, merge
from imgzoo.paths import Layout

STUDIES = Path(__file__).parents[1] / "config" / "studies"
OVERLAY = STUDIES / "overlays" / "small-data-transformers-pretrained.yaml"


def resolved(study, experiment: str, dataset: str) -> dict:
    """Training keys, `model` (the preset or family the config gave) and every model argument
    (defaults included) of one run, flat."""
    settings = study.spec(Run(dataset, experiment, 0)).settings
    model = study.experiments[experiment]["model"]
    args = {**default_model_args(model), **settings.model_args}
    return {**settings.train, **args, "model": model}


# --- study 1: YujunZhong/image_classification_models (CIFAR-10) --------------------------------
DEFAULTS_1 = {
    "batch_size": 128,
    "optimizer": "adamw",
    "lr": 1e-3,
    "weight_decay": 5e-4,
    "schedule": "constant",
    "warmup_epochs": 0,
    "augment": "resized_crop+flip",
    "drop_last": True,  # main.py's DataLoader(drop_last=True)
    # main.py's Normalize: the full 50k training set's mean/std
    "input_stats": {
        "mean": [0.49139968, 0.48215841, 0.44653091],
        "std": [0.24703223, 0.24348513, 0.26158784],
    },
    "precision": "fp32",
    "eval_every_steps": None,
}
# mlpmixer.py: Xavier-uniform on every Linear, He-normal stem, nn.LayerNorm's eps at the end
MIXER_INIT_1 = {"init": "xavier", "final_norm_eps": 1e-5}
STUDY_1 = {
    ("mlp", "cifar10"): {
        **DEFAULTS_1,
        "epochs": 100,
        "model": "mlp-1024-512-64-64-tanh",
        "hidden": [1024, 512, 64, 64],
        "activation": "tanh",
    },
    # its adam branch ignores weight decay, so the README's 1e-3 never applied
    ("resnet18", "cifar10"): {
        **DEFAULTS_1,
        "optimizer": "adam",
        "weight_decay": 0,
        "batch_size": 64,
        "epochs": 100,
        "model": "resnet18-study1",
        "stem": "cifar",
        "init": "torch",  # its convolutions keep nn.Conv2d's own draw
    },
    ("mixer", "cifar10"): {
        **DEFAULTS_1,
        **MIXER_INIT_1,
        "epochs": 84,
        "patch_size": 4,
        "dim": 512,
        "depth": 6,
        "token_mlp_ratio": 0.5,
        "channel_mlp_ratio": 4.0,
    },
    ("mixer-json", "cifar10"): {
        **DEFAULTS_1,
        **MIXER_INIT_1,
        "epochs": 15,
        "lr": 0.1,
        "patch_size": 16,
        "dim": 256,
    },
    # the learning-rate comparison ran patch 4 (folders mixer_p4_lr1..5), 15 epochs
    **{
        (name, "cifar10"): {
            **DEFAULTS_1,
            **MIXER_INIT_1,
            "epochs": 15,
            "lr": lr,
            "patch_size": 4,
            "dim": 256,
            "depth": 4,
        }
        for name, lr in [
            ("mixer-p4", 1e-3),
            ("mixer-p4@lr=0.1", 0.1),
            ("mixer-p4@lr=0.01", 0.01),
            ("mixer-p4@lr=0.001", 1e-3),
            ("mixer-p4@lr=0.0001", 1e-4),
            ("mixer-p4@lr=1e-05", 1e-5),
        ]
    },
}

# --- study 2: enhuiz/image-classification (CIFAR-100) ------------------------------------------
DEFAULTS_2 = {
    "epochs": 14,  # 14 x 351 = 4914 steps of 128 on 45k images (its 5000 on 50k)
    "batch_size": 128,
    "drop_last": True,
    "optimizer": "adam",
    "lr": 2e-4,
    "weight_decay": 0,
    "schedule": "linear",
    "schedule_step": "step",
    "warmup_epochs": 1.425,  # 500 steps at 351 per epoch
    "warmup_start_lr": 1e-6,  # WarmupDecayLR's warmup_min_lr, where it starts ...
    "min_lr": 1e-6,  # ... and ends
    "eval_every_steps": 100,  # its eval_every
    "precision": "fp32",
    "grad_clip": 100,
    "augment": "none",
    "crop_padding": 4,
    "normalizer": "running",  # its running input normaliser, on every model
    "head_outputs": 1000,  # torchvision's ImageNet head; its own models never got num_classes
}
RESNET_2 = {**DEFAULTS_2, "stem": "imagenet", "norm": "bn", "mixstyle": 0, "init": "kaiming"}
VIT_2 = {
    **DEFAULTS_2,
    "patch_size": 8,
    "dim": 256,
    "depth": 12,
    "heads": 4,
    "head_hidden": 1024,
    "dropout": 0.1,
    "pos": "sincos2d_sum",  # its row code + column code
    "init": "torch",  # torch.randn CLS token and u, v; nn.TransformerEncoder's copied layers
}
POST_NORM_2 = {**VIT_2, "norm": "post", "qkv_bias": True}  # nn.TransformerEncoderLayer
STUDY_2 = {
    ("resnet18", "cifar100"): {**RESNET_2, "model": "c100-resnet18"},
    ("resnet18-tnc", "cifar100"): {**RESNET_2, "model": "c100-resnet18-tnc", "head_outputs": None},
    ("resnet34", "cifar100"): {**RESNET_2, "model": "c100-resnet34"},
    ("resnet18-wonorm", "cifar100"): {**RESNET_2, "normalizer": "none"},
    ("resnet18-pcnorm", "cifar100"): {**RESNET_2, "normalizer": "running_per_channel"},
    ("resnet18-gn", "cifar100"): {**RESNET_2, "norm": "gn"},
    ("resnet18-ms1", "cifar100"): {**RESNET_2, "mixstyle": 1},
    ("resnet18-ms2", "cifar100"): {**RESNET_2, "mixstyle": 2},
    ("resnet18-ms3", "cifar100"): {**RESNET_2, "mixstyle": 3},
    ("resnet18-aug", "cifar100"): {**RESNET_2, "augment": "standard+rotate"},
    ("resnet18-clr1e-4", "cifar100"): {
        **RESNET_2,
        "schedule": "constant",
        "lr": 1e-4,
        "warmup_epochs": 0,
    },
    ("toy-dilated", "cifar100"): {
        **DEFAULTS_2,
        "width": 32,
        "dilations": [1, 2, 4, 8],
        "conv_bias": True,
    },
    ("vit-12x256-8x8", "cifar100"): POST_NORM_2,
    ("vit-24x256-8x8", "cifar100"): {**POST_NORM_2, "depth": 24},
    ("vit-b-8x8", "cifar100"): {
        **POST_NORM_2,
        "dim": 768,
        "heads": 12,
        "head_hidden": 3072,
    },
    ("vit-aux-3x4x256-8x8", "cifar100"): {**POST_NORM_2, "aux_heads": [4, 8]},
    ("vitn-12x256-8x8", "cifar100"): {**VIT_2, "norm": "pre", "rel_attn": False},
    ("vitn-12x256-8x8-ra", "cifar100"): {**VIT_2, "norm": "pre", "rel_attn": True},
    ("vitn-12x256-8x8-dm", "cifar100"): {**VIT_2, "norm": "pre", "diag_mask": True},
    ("vitn-12x256-8x8-lt", "cifar100"): {**VIT_2, "norm": "pre", "temperature": "log"},
    ("vitn-12x256-8x8-ltv", "cifar100"): {**VIT_2, "norm": "pre", "temperature": "vanilla"},
    ("vitn-12x256-8x8-dm-lt", "cifar100"): {
        **VIT_2,
        "norm": "pre",
        "diag_mask": True,
        "temperature": "log",
    },
}

# --- study 3: 395t/coding-assignment-week-8-vit-2 (CIFAR-10, STL-10, Tiny ImageNet) ------------
# every script's Normalize, on every dataset; float32
CIFAR_STATS = {"mean": [0.4914, 0.4822, 0.4465], "std": [0.2023, 0.1994, 0.2010]}
STUDY_3_ALL = {"input_stats": CIFAR_STATS, "precision": "fp32", "drop_last": False,
               "eval_every_steps": None}
ADAM = {**STUDY_3_ALL, "optimizer": "adam", "weight_decay": 0, "crop_padding": 4}
# torch's AdamW default, as it left it
ADAMW = {**STUDY_3_ALL, "optimizer": "adamw", "weight_decay": 0.01}
SWIN = {
    **ADAM,
    "lr": 5e-4,
    "epochs": 30,
    "augment": "standard",
    "schedule": "constant",
    "embed_dim": 64,
    "depths": [2, 2, 8, 2],
    "num_heads": [2, 4, 8, 16],
    "patch_size": 4,
    "window_size": None,  # the family's choice: 8 at 32 and 64 px, 12 at 96 px, as its code
    "drop_path": 0.1,  # timm's SwinTransformer default, which it kept
}
SWIN_3STAGE = {
    **ADAM,
    "epochs": 5,
    "batch_size": 256,
    "augment": "none",
    "depths": [2, 8, 2],
    "num_heads": [2, 4, 8],
}
TNT = {
    **ADAM,
    "schedule": "cosine",
    # CosineAnnealingLR stepped once per epoch with step(epoch - 1): two epochs late
    "schedule_step": "epoch",
    "schedule_lag_epochs": 2,
    "augment": "standard",
    "patch_size": 4,
    "pixel_size": 2,
    "dim": 512,
    "pixel_dim": 24,
    "depth": 6,
    "dropout": 0.1,
}
TNT_CS = {**TNT, "batch_size": 64, "epochs": 30}  # CIFAR-10 and STL-10 (its log names)
TNT_TIN = {**TNT, "batch_size": 128, "epochs": 10, "lr": 1e-4}  # Tiny ImageNet, every ablation
PERCEIVER = {**ADAMW, "augment": "random", "batch_size": 64, "epochs": 100, "normalizer": "fixed"}
MEDIUM = {
    "depth": 4,
    "num_latents": 32,
    "latent_dim": 32,
    "cross_dim_head": 16,
    "latent_dim_head": 16,
}
LARGE = {
    "depth": 4,
    "num_latents": 32,
    "latent_dim": 64,
    "cross_dim_head": 32,
    "latent_dim_head": 32,
}
XL = {"depth": 6, "num_latents": 48, "latent_dim": 96, "cross_dim_head": 32, "latent_dim_head": 64}
STL_PERCEIVER = {"batch_size": 32, "epochs": 200}
IO = {
    **ADAMW,
    "drop_last": True,  # its loops stop at the first partial batch
    "input_stats": {"mean": [0.5] * 3, "std": [0.5] * 3},  # x * 2 - 1
    "lr": 3e-4,
    "batch_size": 128,
    "epochs": 100,
    "input_mode": "flat",
    "depth": 2,
    "cross_heads": 1,
    "latent_heads": 8,
}
IO_CIFAR = {**IO, "augment": "flip+brightness_hue", "num_latents": 32, "latent_dim": 64}
MIXER = {
    **ADAM,
    "epochs": 20,
    "augment": "color",
    "patch_size": 16,
    "dim": 512,
    "depth": 8,
    "normalizer": "none",  # its loaders: ToTensor only
}
STUDY_3 = {
    ("swin", "cifar10"): {**SWIN, "batch_size": 1024},
    ("swin", "stl10"): {**SWIN, "batch_size": 256},
    ("swin", "tinyimagenet"): {**SWIN, "batch_size": 256},
    **{
        (f"swin-3stage{point}", dataset): {**SWIN_3STAGE, "lr": lr}
        for point, lr in [("", 5e-4), ("@lr=0.005", 5e-3), ("@lr=5e-05", 5e-5)]
        for dataset in ("cifar10", "stl10", "tinyimagenet")
    },
    ("tnt", "cifar10"): {**TNT_CS, "lr": 1e-4},
    ("tnt", "stl10"): {**TNT_CS, "lr": 1e-4},
    ("tnt", "tinyimagenet"): TNT_TIN,
    # learning rates: CIFAR-10 and STL-10 at batch 64, 30 epochs; Tiny ImageNet 128, 10
    ("tnt@lr=0.001", "cifar10"): {**TNT_CS, "lr": 1e-3},
    ("tnt@lr=0.001", "tinyimagenet"): {**TNT_TIN, "lr": 1e-3},
    ("tnt@lr=0.0003", "stl10"): {**TNT_CS, "lr": 3e-4},
    ("tnt@lr=1e-05", "tinyimagenet"): {**TNT_TIN, "lr": 1e-5},
    ("tnt@lr=3e-06", "cifar10"): {**TNT_CS, "lr": 3e-6},
    ("tnt@lr=1e-06", "tinyimagenet"): {**TNT_TIN, "lr": 1e-6},
    # its 5-epoch runs at lr 2e-4 (log names): batch 256 on CIFAR-10, 64 on STL-10
    ("tnt-5ep", "cifar10"): {**TNT, "epochs": 5, "lr": 2e-4, "batch_size": 256},
    ("tnt-5ep", "stl10"): {**TNT, "epochs": 5, "lr": 2e-4, "batch_size": 64},
    # patch / pixel: lr 3e-4 on CIFAR-10 and STL-10, the main settings on Tiny ImageNet
    ("tnt-arch", "cifar10"): {**TNT_CS, "lr": 3e-4},
    ("tnt-arch", "tinyimagenet"): TNT_TIN,
    ("tnt-arch@patch_size=2,pixel_size=2", "cifar10"): {
        **TNT_CS,
        "lr": 3e-4,
        "patch_size": 2,
        "pixel_size": 2,
    },
    ("tnt-arch@patch_size=32,pixel_size=4", "stl10"): {
        **TNT_CS,
        "lr": 3e-4,
        "patch_size": 32,
        "pixel_size": 4,
    },
    ("tnt-arch@patch_size=16,pixel_size=8", "tinyimagenet"): {
        **TNT_TIN,
        "patch_size": 16,
        "pixel_size": 8,
    },
    ("perceiver-medium", "cifar10"): {**PERCEIVER, **MEDIUM, "lr": 1e-3, "attn_dropout": 0.2},
    ("perceiver-medium", "stl10"): {**PERCEIVER, **MEDIUM, **STL_PERCEIVER, "lr": 3e-4},
    ("perceiver-large", "cifar10"): {**PERCEIVER, **LARGE, "lr": 3e-4, "ff_dropout": 0.3},
    ("perceiver-large", "stl10"): {**PERCEIVER, **LARGE, **STL_PERCEIVER, "lr": 3e-4},
    # Tiny ImageNet: dropout 0.2, no input normalisation (its transforms: ToTensor only)
    ("perceiver-large", "tinyimagenet"): {
        **PERCEIVER,
        **LARGE,
        "lr": 3e-4,
        "attn_dropout": 0.2,
        "ff_dropout": 0.2,
        "normalizer": "none",
    },
    ("perceiver-large-tinyimagenet", "tinyimagenet"): {
        **PERCEIVER,
        **LARGE,
        "lr": 3e-4,
        "attn_dropout": 0.2,
        "ff_dropout": 0.2,
        "normalizer": "none",
    },
    ("perceiver-xl", "cifar10"): {**PERCEIVER, **XL, "lr": 3e-4, "attn_dropout": 0.3},
    ("perceiver-xl", "stl10"): {**PERCEIVER, **XL, **STL_PERCEIVER, "lr": 3e-4},
    ("perceiver-xl", "tinyimagenet"): {
        **PERCEIVER,
        **XL,
        "lr": 3e-4,
        "cross_dim_head": 48,
        "latent_dim_head": 48,
        "attn_dropout": 0.2,
        "ff_dropout": 0.2,
        "normalizer": "none",
    },
    # overfitting studies: none / dropout only / dropout + augmentation
    ("perceiver-regular", "cifar10"): {**PERCEIVER, **MEDIUM, "lr": 1e-3, "ff_dropout": 0.2},
    ("perceiver-regular@augment=none,attn_dropout=0.0,ff_dropout=0.0", "cifar10"): {
        **PERCEIVER,
        **MEDIUM,
        "lr": 1e-3,
        "augment": "none",
        "attn_dropout": 0.0,
        "ff_dropout": 0.0,
    },
    ("perceiver-regular@augment=none", "cifar10"): {
        **PERCEIVER,
        **MEDIUM,
        "augment": "none",
        "attn_dropout": 0.2,
    },
    ("perceiver-large-tinyimagenet@augment=none", "tinyimagenet"): {
        **PERCEIVER,
        **LARGE,
        "augment": "none",
        "attn_dropout": 0.2,
        "normalizer": "none",
    },
    ("perceiver-io", "cifar10"): {**IO_CIFAR, "cross_dim_head": 128, "latent_dim_head": 128},
    ("perceiver-io", "stl10"): {
        **IO,
        "augment": "random",
        "num_latents": 96,
        "latent_dim": 192,
        "cross_dim_head": 64,
        "latent_dim_head": 64,
    },
    ("perceiver-io", "tinyimagenet"): {
        **IO,
        "augment": "random",
        "num_latents": 32,
        "latent_dim": 64,
        "cross_dim_head": 64,
        "latent_dim_head": 64,
    },
    ("perceiver-io@batch_size=8", "cifar10"): {**IO_CIFAR, "batch_size": 8},
    ("perceiver-io@batch_size=16", "tinyimagenet"): {**IO, "batch_size": 16, "augment": "random"},
    ("perceiver-io-12ep", "cifar10"): {**IO_CIFAR, "epochs": 12, "lr": 1e-4},
    ("perceiver-io-12ep@lr=1.0", "cifar10"): {**IO_CIFAR, "epochs": 12, "lr": 1.0},
    ("mixer", "cifar10"): {**MIXER, "batch_size": 512, "lr": 1e-3},
    ("mixer", "stl10"): {**MIXER, "batch_size": 256, "lr": 1e-4},
    ("mixer", "tinyimagenet"): {**MIXER, "batch_size": 512, "lr": 1e-2},
    # the search's value beats the chosen per-dataset one
    ("mixer@lr=0.0001,batch_size=1024", "stl10"): {**MIXER, "batch_size": 1024, "lr": 1e-4},
    ("mixer@lr=0.01,batch_size=256", "tinyimagenet"): {**MIXER, "batch_size": 256, "lr": 1e-2},
}

PINNED = {
    "mlp-resnet-mixer.yaml": STUDY_1,
    "cifar100-variants.yaml": STUDY_2,
    "small-data-transformers.yaml": STUDY_3,
}


@pytest.fixture(scope="module")
def studies():
    return {name: load_study([STUDIES / name], check_sources=False) for name in PINNED}


def _rows():
    return [(name, exp, ds) for name, table in PINNED.items() for exp, ds in table]


@pytest.mark.parametrize(("study", "experiment", "dataset"), _rows())
def test_each_run_has_the_settings_its_source_ran(studies, study, experiment, dataset):
    got = resolved(studies[study], experiment, dataset)
    expected = PINNED[study][(experiment, dataset)]
    wrong = {
        key: (got.get(key, "<absent>"), value)
        for key, value in expected.items()
        if got.get(key, "<absent>") != value
    }
    assert not wrong, f"{experiment} on {dataset}: (config, source) {wrong}"


def test_every_experiment_of_the_three_studies_is_pinned(studies):
    """A new experiment without a row here is a reproduction nobody checked against its source."""
    pinned_experiments = {(s, e) for s, e, _ in _rows()}
    unpinned = [
        (name, exp)
        for name, study in studies.items()
        for exp in study.experiments
        if "sweep" not in study.experiments[exp] and (name, exp) not in pinned_experiments
    ]
    assert not unpinned


def test_the_ablations_run_on_every_dataset_the_write_ups_ran_them_on(studies):
    study = studies["small-data-transformers.yaml"]
    three = ["cifar10", "stl10", "tinyimagenet"]

    def points(base):
        return {
            e: study.datasets_of(e)
            for e, exp in study.experiments.items()
            if exp.get("sweep", {}).get("base") == base
        }

    assert study.datasets_of("swin-3stage") == three
    assert all(ds == three for ds in points("swin-3stage").values())
    tnt_lr = {e.split("=")[1]: ds for e, ds in points("tnt").items()}
    assert tnt_lr == {
        "0.001": three,
        "0.0001": three,
        "0.0003": ["cifar10", "stl10"],
        "1e-05": three,
        "3e-06": ["cifar10", "stl10"],
        "1e-06": ["tinyimagenet"],
    }
    pairs = {
        (exp["sweep"]["values"]["patch_size"], exp["sweep"]["values"]["pixel_size"]): tuple(
            study.datasets_of(e)
        )
        for e, exp in study.experiments.items()
        if exp.get("sweep", {}).get("base") == "tnt-arch"
    }
    per_dataset = {ds: {pair for pair, where in pairs.items() if ds in where} for ds in three}
    assert per_dataset == {  # its log names
        "cifar10": {(2, 2), (4, 2), (8, 1), (8, 2), (16, 2), (16, 4)},
        "stl10": {(4, 2), (8, 2), (16, 2), (16, 4), (32, 4)},
        "tinyimagenet": {(4, 2), (8, 2), (8, 4), (16, 2), (16, 4), (16, 8)},
    }
    assert len(points("perceiver-regular")) == 3
    assert len(points("perceiver-large-tinyimagenet")) == 3
    assert len(points("mixer")) == 9
    assert all(ds == three for ds in points("mixer").values())


def test_a_sweep_point_that_repeats_its_base_is_trained_once(studies):
    study = studies["small-data-transformers.yaml"]
    repeats = {(run.experiment, run.dataset): first for run, first in study.same_as.items()}
    assert repeats[("tnt@lr=0.0001", "stl10")].experiment == "tnt"
    assert repeats[("perceiver-regular", "cifar10")].experiment == "perceiver-medium"
    assert repeats[("perceiver-large-tinyimagenet", "tinyimagenet")].experiment == "perceiver-large"
    assert repeats[("mixer@lr=0.001,batch_size=512", "cifar10")].experiment == "mixer"
    assert ("mixer@lr=0.001,batch_size=512", "stl10") not in repeats


# --- published numbers ---------------------------------------------------------------------------

# Every accuracy ../shared/notes/studies.md lists: (study, experiment, dataset) -> (value,
# measures).
PUBLISHED = {
    **{
        ("cifar100-variants.yaml", exp, "cifar100"): (value, "best_test")
        for exp, value in [
            ("resnet18-aug", 40.77),
            ("vitn-12x256-8x8-ra", 38.77),
            ("resnet18-ms2", 38.51),
            ("resnet18-ms1", 37.68),
            ("vitn-12x256-8x8-dm", 37.14),
            ("resnet18-gn", 37.03),
            ("vitn-12x256-8x8", 36.70),
            ("vitn-12x256-8x8-lt", 36.53),
            ("vitn-12x256-8x8-ltv", 36.53),
            ("resnet18-ms3", 36.17),
            ("vit-aux-3x4x256-8x8", 35.75),
            ("resnet18-wonorm", 35.72),
            ("resnet18-pcnorm", 35.19),
            ("resnet18", 35.39),  # torchvision's 1000-way head, as it ran
            ("resnet18-tnc", 34.77),  # the same with a 100-way head
            ("vit-12x256-8x8", 34.50),
            ("resnet34", 33.38),
            ("resnet18-clr1e-4", 31.84),
            ("toy-dilated", 18.86),
        ]
    },
    **{
        ("small-data-transformers.yaml", exp, ds): (value, measures)
        for exp, ds, value, measures in [
            ("swin", "cifar10", 77.1, "best_test"),
            ("swin", "stl10", 50.9, "best_test"),
            ("swin", "tinyimagenet", 37.8, "best_test"),
            ("tnt", "cifar10", 78.55, "best_test"),
            ("tnt", "stl10", 60.42, "best_test"),
            ("tnt", "tinyimagenet", 36.69, "best_test"),
            ("tnt-5ep", "cifar10", 60.48, "best_test"),
            ("tnt-5ep", "stl10", 40.73, "best_test"),
            ("tnt-arch@patch_size=2,pixel_size=2", "cifar10", 78.27, "best_test"),
            ("tnt@lr=0.0003", "cifar10", 71.67, "best_test"),
            ("tnt-arch@patch_size=16,pixel_size=2", "cifar10", 63.43, "best_test"),
            ("perceiver-medium", "cifar10", 66.17, "best_test"),
            ("perceiver-large", "cifar10", 67.11, "best_test"),
            ("perceiver-xl", "cifar10", 67.70, "best_test"),
            ("perceiver-medium", "stl10", 53.10, "best_test"),
            ("perceiver-large", "stl10", 54.87, "best_test"),
            ("perceiver-xl", "stl10", 53.26, "best_test"),
            ("perceiver-large", "tinyimagenet", 24.85, "best_test"),
            ("perceiver-xl", "tinyimagenet", 24.81, "best_test"),
            (
                "perceiver-regular@augment=none,attn_dropout=0.0,ff_dropout=0.0",
                "cifar10",
                60.37,
                "best_test",
            ),
            ("perceiver-regular@augment=none", "cifar10", 60.47, "best_test"),
            ("perceiver-regular", "cifar10", 66.12, "best_test"),
            ("perceiver-io", "cifar10", 56.19, "final_test"),
            ("perceiver-io", "stl10", 47.48, "final_test"),
            ("perceiver-io", "tinyimagenet", 12.01, "final_test"),
            ("perceiver-io-12ep@lr=1.0", "cifar10", 11.08, "final_test"),
            ("mixer", "cifar10", 59.0, "final_test"),
            ("mixer", "stl10", 44.0, "final_test"),
            ("mixer", "tinyimagenet", 18.0, "final_test"),
        ]
    },
}
# The fine-tuned pretrained models (an overlay on study 3).
PUBLISHED_PRETRAINED = {
    ("swin-pretrained", "cifar10"): 96.39,
    ("swin-pretrained", "stl10"): 78.1,
    ("swin-pretrained", "tinyimagenet"): 79.9,
    ("tnt-pretrained@lr=1e-05", "cifar10"): 97.53,  # Pre-TnT's best learning rate per dataset
    ("tnt-pretrained", "stl10"): 97.81,
    ("tnt-pretrained@lr=1e-05", "tinyimagenet"): 85.73,
    ("mixer-pretrained", "cifar10"): 95.0,
    ("mixer-pretrained", "stl10"): 94.9,
    ("mixer-pretrained", "tinyimagenet"): 83.3,
}


def _published(study) -> dict:
    return {(p["experiment"], p["dataset"]): p for p in study.published()}


def test_every_accuracy_the_notes_list_is_in_its_study_config(studies):
    for (name, experiment, dataset), (value, measures) in PUBLISHED.items():
        entry = _published(studies[name]).get((experiment, dataset))
        assert entry, f"{name}: no published number for {experiment} on {dataset}"
        assert (entry["value"], entry["measures"]) == (value, measures), (experiment, dataset)
        assert entry["source"]
    assert not studies["mlp-resnet-mixer.yaml"].published()  # it published curves only


def test_published_entries_name_runs_of_the_study(studies):
    for name, study in studies.items():
        for entry in study.published():
            assert entry["dataset"] in study.datasets_of(entry["experiment"]), (name, entry)
            assert 0 < entry["value"] <= 100
            # every source selected or reported on its test split: the note says so
            if name != "mlp-resnet-mixer.yaml":
                assert entry["note"], (name, entry)


def _without_published(config: dict) -> dict:
    config = copy.deepcopy(config)
    for exp in config["experiments"].values():
        exp.pop("published", None)
    for sweep in config.get("sweeps", {}).values():
        for point in sweep.get("points", []):
            point.pop("published", None)
    return config


@pytest.mark.parametrize("name", PINNED)
def test_published_numbers_do_not_enter_run_specs(studies, name):
    study = studies[name]
    bare = Study(_without_published(load_yaml(STUDIES / name)))
    assert not bare.published()
    for run in study.runs:
        spec = study.spec(run)
        assert "published" not in spec.to_json()
        assert spec.key() == bare.spec(run).key()


def test_the_pretrained_overlay_adds_the_fine_tuning_runs():
    study = load_study([STUDIES / "small-data-transformers.yaml", OVERLAY], check_sources=False)
    published = _published(study)
    for key, value in PUBLISHED_PRETRAINED.items():
        assert published[key]["value"] == value, key
    swin = resolved(study, "swin-pretrained", "stl10")
    assert (swin["epochs"], swin["batch_size"], swin["lr"]) == (1, 16, 5e-4)
    assert swin["model"] == "swin-base-pretrained"
    # the preset is timm's Swin-B, fine-tuned from the experiment's weights file
    swin_settings = study.spec(Run("stl10", "swin-pretrained", 0)).settings
    assert swin_settings.family == "timm/swin_base_patch4_window7_224"
    assert swin_settings.model_args == {
        "pretrained_file": "resources/weights/swin_base_patch4_window7_224.safetensors"
    }
    tnt = resolved(study, "tnt-pretrained@lr=1e-06", "tinyimagenet")
    assert (tnt["epochs"], tnt["batch_size"], tnt["lr"], tnt["schedule"]) == (
        5,
        128,
        1e-6,
        "cosine",
    )
    assert (tnt["schedule_step"], tnt["schedule_lag_epochs"]) == ("epoch", 2)  # its step(e - 1)
    mixer = resolved(study, "mixer-pretrained", "tinyimagenet")
    assert (mixer["epochs"], mixer["batch_size"], mixer["lr"]) == (1, 32, 5e-5)
    # its Swin and TnT scripts standardised with CIFAR-10's constants; the Mixer's is unknown
    assert swin["input_stats"] == tnt["input_stats"] == CIFAR_STATS
    assert mixer["input_stats"] == "auto"
    # the overlay only adds: the study's own runs are unchanged
    alone = load_study([STUDIES / "small-data-transformers.yaml"], check_sources=False)
    assert set(alone.experiments) < set(study.experiments)
    merged = merge(load_yaml(STUDIES / "small-data-transformers.yaml"), load_yaml(OVERLAY))
    assert merged["train"] == load_yaml(STUDIES / "small-data-transformers.yaml")["train"]


# --- claims ---------------------------------------------------------------------------------------

# Each write-up's own conclusions: claim name -> (expect, metric, pairs). Study 1 draws none about
# accuracy (its analysis is of first-layer weights).
PATCH = "tnt-arch@patch_size={},pixel_size={}"
CLAIMS = {
    "mlp-resnet-mixer.yaml": {},
    "cifar100-variants.yaml": {
        "mixstyle-overfitting": ("better", "generalisation_gap", [
            ("resnet18-ms1", "resnet18"), ("resnet18-ms2", "resnet18"),
            ("resnet18-ms3", "resnet18")]),
        "lower-training-accuracy": ("better", "test_acc_at_best_val", [
            ("resnet18-ms1", "resnet18"), ("resnet18-ms2", "resnet18"),
            ("resnet18-ms3", "resnet18"), ("resnet18-aug", "resnet18")]),
        "relative-attention": ("better", "test_acc_at_best_val",
                               [("vitn-12x256-8x8-ra", "vitn-12x256-8x8")]),
        "diagonal-mask": ("better", "test_acc_at_best_val",
                          [("vitn-12x256-8x8-dm", "vitn-12x256-8x8")]),
        "learned-temperature": ("same", "test_acc_at_best_val", [
            ("vitn-12x256-8x8-lt", "vitn-12x256-8x8"),
            ("vitn-12x256-8x8-ltv", "vitn-12x256-8x8")]),
    },
    "small-data-transformers.yaml": {
        "tnt-smaller-patches": ("better", "test_acc_at_best_val", [
            (PATCH.format(2, 2), PATCH.format(4, 2)), (PATCH.format(4, 2), PATCH.format(8, 2)),
            (PATCH.format(8, 2), PATCH.format(16, 2))]),
        "tnt-smaller-pixels": ("better", "test_acc_at_best_val", [
            (PATCH.format(8, 1), PATCH.format(8, 2)), (PATCH.format(8, 2), PATCH.format(8, 4)),
            (PATCH.format(16, 2), PATCH.format(16, 4)),
            (PATCH.format(16, 4), PATCH.format(16, 8))]),
        "perceiver-dropout": ("same", "test_acc_at_best_val", [
            ("perceiver-regular@augment=none",
             "perceiver-regular@augment=none,attn_dropout=0.0,ff_dropout=0.0")]),
        "perceiver-augmentation": ("better", "test_acc_at_best_val",
                                   [("perceiver-regular", "perceiver-regular@augment=none")]),
        "perceiver-augmentation-gap": ("better", "generalisation_gap",
                                       [("perceiver-regular", "perceiver-regular@augment=none")]),
        "perceiver-augmentation-tinyimagenet": ("same", "test_acc_at_best_val", [
            ("perceiver-large-tinyimagenet", "perceiver-large-tinyimagenet@augment=none")]),
        "perceiver-sizes-cifar10": ("same", "test_acc_at_best_val", [
            ("perceiver-large", "perceiver-medium"), ("perceiver-xl", "perceiver-medium")]),
        "perceiver-large-stl10": ("better", "test_acc_at_best_val", [
            ("perceiver-large", "perceiver-medium"), ("perceiver-large", "perceiver-xl")]),
        "perceiver-io-batch-size": ("same", "test_acc_at_best_val", [
            (f"perceiver-io@batch_size={b}", "perceiver-io") for b in (8, 16, 32, 64)]),
        "perceiver-io-learning-rate": ("worse", "test_acc_at_best_val", [
            (f"perceiver-io-12ep@lr={lr}", "perceiver-io-12ep")
            for lr in ("0.001", "0.01", "0.1", "1.0")]),
        "swin-learning-rate": ("same", "test_acc_at_best_val", [
            ("swin-3stage@lr=0.005", "swin-3stage"), ("swin-3stage@lr=5e-05", "swin-3stage")]),
    },
}
CLAIMS_PRETRAINED = {
    "tnt-pretraining": ("better", "test_acc_at_best_val", [("tnt-pretrained", "tnt")]),
    "swin-pretraining": ("better", "test_acc_at_best_val", [("swin-pretrained", "swin")]),
    "mixer-pretraining": ("better", "test_acc_at_best_val", [("mixer-pretrained", "mixer")]),
}


def _claims(study) -> dict:
    return {c["name"]: (c["expect"], c["metric"], c["pairs"]) for c in study.claims}


def test_each_write_ups_conclusions_are_claims_in_its_study(studies):
    for name, expected in CLAIMS.items():
        assert _claims(studies[name]) == expected, name
        for claim in studies[name].claims:
            assert claim["claim"] and claim["source"].startswith("write-up README")


def test_the_pretrained_overlay_adds_its_claims_to_the_studys():
    study = load_study([STUDIES / "small-data-transformers.yaml", OVERLAY], check_sources=False)
    assert _claims(study) == {**CLAIMS["small-data-transformers.yaml"], **CLAIMS_PRETRAINED}


@pytest.mark.parametrize("path", sorted(STUDIES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_study_passes_imgzoo_check(path, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where each real dataset's source is (checked for existence)
    for name in data.known_datasets():
        (tmp_path / "resources" / name).mkdir(parents=True)
        (tmp_path / "resources" / name / "archive").touch()
    assert main(["check", "--config", str(path)]) == 0
    assert "config OK" in capsys.readouterr().out


def test_imgzoo_check_says_which_source_is_missing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # the config is valid: check says so, and in one more line which file is missing and where
    assert main(["check", "--config", str(STUDIES / "mlp-resnet-mixer.yaml")]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith("config OK: study 'mlp-resnet-mixer'") and len(out) == 2
    assert out[1].startswith("data missing (Snakemake will not start until it is there): "
                             "dataset 'cifar10': no source in resources/cifar10/ ")
    assert "cifar-10-python.tar.gz" in out[1]
    # once prepared, the study needs its source no more
    prepared = tmp_path / Layout("mlp-resnet-mixer").data("cifar10")
    prepared.parent.mkdir(parents=True)
    prepared.touch()
    assert main(["check", "--config", str(STUDIES / "mlp-resnet-mixer.yaml")]) == 0
    assert "data missing" not in capsys.readouterr().out


def test_default_model_args_are_the_builders_then_the_presets():
    assert default_model_args("swin")["drop_path"] == 0.1
    assert default_model_args("swin")["depths"] == [2, 2, 8, 2]  # a tuple default, as a list
    assert default_model_args("swin-3stage")["depths"] == [2, 8, 2]
    assert default_model_args("mlp")["normalizer"] == "fixed"
    assert default_model_args("c100-resnet18")["normalizer"] == "running"
    with pytest.raises(KeyError):
        default_model_args("resnet19")
