"""Every model the three write-up studies run has its source's parameter count, on every dataset
it runs on; the only differences are the declared ones, each named here.

The sources' counts were computed from the sources' own code (docs/models.md names each file
and commit): a model that changes under a published number is no reproduction. imgzoo's models
are built on the meta device, so the whole table (ViT-B, Swin-B included) takes seconds.
"""

from pathlib import Path

import pytest
import torch

import imgzoo.models as models
from imgzoo.config import load_study
from imgzoo.models import catalog

ROOT = Path(__file__).parents[1]
STUDIES = ROOT / "config" / "studies"
STUDY_FILES = {
    "1": [STUDIES / "mlp-resnet-mixer.yaml"],
    "2": [STUDIES / "cifar100-variants.yaml"],
    "3": [
        STUDIES / "small-data-transformers.yaml",
        STUDIES / "overlays" / "small-data-transformers-pretrained.yaml",
    ],
}
# (image size, channels, classes)
DATASETS = {
    "cifar10": (32, 3, 10),
    "cifar100": (32, 3, 100),
    "stl10": (96, 3, 10),
    "tinyimagenet": (64, 3, 200),
}
# Model arguments that change no parameter count (the key of a row leaves them out).
NOT_COUNTED = {"dropout", "attn_dropout", "ff_dropout", "normalizer", "pretrained_file"}

# The write-ups' repositories at the commits read, and where each model is in them (the file,
# and the library that built it where the file called one), as docs/models.md lists them.
REPOSITORIES = {
    1: "YujunZhong/image_classification_models@6ffa952",
    2: "enhuiz/image-classification@c6759ec",
    3: "395t/coding-assignment-week-8-vit-2@c9e1c76",
}
SOURCES = {
    "mlp-1024-512-64-64-tanh": (1, "mlp.py"),
    "resnet18-study1": (1, "resnet18.py"),
    "mixer-study1": (1, "mlpmixer.py"),
    "mixer-study1-json": (1, "mlpmixer.py"),
    **{
        f"c100-{name}": (2, f"src/models/__init__.py (torchvision {name[:8]})")
        for name in ("resnet18", "resnet18-tnc", "resnet34", "resnet18-wonorm",
                     "resnet18-pcnorm", "resnet18-gn", "resnet18-ms1", "resnet18-ms2",
                     "resnet18-ms3")
    },
    "toy-dilated": (2, "src/models/toy.py"),
    "vit-12x256-8x8": (2, "src/models/vit.py"),
    "vit-aux-3x4x256-8x8": (2, "src/models/vit_aux.py"),
    **{
        name: (2, "src/models/vit_native.py")
        for name in ("vitn-12x256-8x8", "vitn-12x256-8x8-ra", "vitn-12x256-8x8-dm",
                     "vitn-12x256-8x8-lt", "vitn-12x256-8x8-ltv", "vitn-12x256-8x8-dm-lt")
    },
    "swin-study3": (3, "src/swin/swin.py (timm 0.4.12)"),
    "swin-3stage": (3, "src/swin/swin_loss.py (timm 0.4.12)"),
    "tnt-study3": (3, "src/tnt/models/tnt.py (lucidrains/transformer-in-transformer@a63e4ad)"),
    **{
        name: (3, "src/perceiver/configs/ (perceiver-pytorch 0.7.5)")
        for name in ("perceiver-medium", "perceiver-large", "perceiver-xl")
    },
    "perceiver-io-cifar10": (
        3, "notebooks/PerceiverIO/PerceiverIOTraining.ipynb (perceiver-pytorch 0.7.5)"
    ),
    "mixer-s16": (3, "notebooks/MLP_Mixer.ipynb@b8c2e44 (timm 0.4.12 mixer_s16_224)"),
    "swin-base-pretrained": (3, "src/swin/swin.py (timm 0.4.12, a 200-way head)"),
    "tnt-s-pretrained": (3, "src/tnt/train.py (timm 0.4.12 tnt_s_patch16_224)"),
    # the notebook's last versions are not stored; its README: timm's Mixer-B/16, fine-tuned
    "mixer-b16-pretrained": (3, "README (timm 0.4.12 mixer_b16_224)"),
}

# (model as configured, the run's own architecture arguments, dataset) -> the source's count.
SOURCE_COUNTS = [
    # write-up 1
    ("mlp-1024-512-64-64-tanh", {}, "cifar10", 3_709_194),
    ("resnet18-study1", {}, "cifar10", 11_173_962),
    ("mixer-study1", {}, "cifar10", 2_188_298),
    ("mixer-study1", {"dim": 512, "depth": 6}, "cifar10", 12_840_330),
    ("mixer-study1-json", {}, "cifar10", 2_310_938),
    # write-up 2: 1000 logits but for its -tnc run
    ("c100-resnet18", {}, "cifar100", 11_689_512),
    ("c100-resnet18-tnc", {}, "cifar100", 11_227_812),
    ("c100-resnet34", {}, "cifar100", 21_797_672),
    ("c100-resnet18-wonorm", {}, "cifar100", 11_689_512),
    ("c100-resnet18-pcnorm", {}, "cifar100", 11_689_512),
    ("c100-resnet18-gn", {}, "cifar100", 11_689_512),
    ("c100-resnet18-ms1", {}, "cifar100", 11_689_512),
    ("c100-resnet18-ms2", {}, "cifar100", 11_689_512),
    ("c100-resnet18-ms3", {}, "cifar100", 11_689_512),
    ("toy-dilated", {}, "cifar100", 61_896),
    ("vit-12x256-8x8", {}, "cifar100", 10_814_952),
    ("vit-12x256-8x8", {"depth": 24}, "cifar100", 20_292_072),
    ("vit-12x256-8x8", {"dim": 768, "heads": 12, "head_hidden": 3072}, "cifar100", 90_638_824),
    ("vit-aux-3x4x256-8x8", {}, "cifar100", 13_391_288),
    ("vitn-12x256-8x8", {}, "cifar100", 10_805_736),
    ("vitn-12x256-8x8-ra", {}, "cifar100", 11_598_312),
    ("vitn-12x256-8x8-dm", {}, "cifar100", 10_805_736),
    ("vitn-12x256-8x8-lt", {}, "cifar100", 10_805_748),
    ("vitn-12x256-8x8-ltv", {}, "cifar100", 10_805_748),
    ("vitn-12x256-8x8-dm-lt", {}, "cifar100", 10_805_748),
    # write-up 3
    ("swin-study3", {}, "cifar10", 13_822_390),
    ("swin-study3", {}, "stl10", 13_835_382),
    ("swin-study3", {}, "tinyimagenet", 13_924_084),
    ("swin-3stage", {}, "cifar10", 3_439_998),
    ("swin-3stage", {}, "stl10", 3_458_366),
    ("swin-3stage", {}, "tinyimagenet", 3_495_100),
    *[
        ("tnt-study3", {} if (p, q) == (4, 2) else {"patch_size": p, "pixel_size": q}, ds, n)
        for ds, p, q, n in [
            ("cifar10", 4, 2, 19_600_482),
            ("cifar10", 2, 2, 19_575_834),
            ("cifar10", 8, 1, 23_976_234),
            ("cifar10", 8, 2, 20_436_354),
            ("cifar10", 16, 2, 23_964_162),
            ("cifar10", 16, 4, 20_424_930),
            ("stl10", 4, 2, 20_124_770),
            ("stl10", 8, 2, 20_567_426),
            ("stl10", 16, 2, 23_996_930),
            ("stl10", 16, 4, 20_457_698),
            ("stl10", 32, 4, 23_970_146),
            ("tinyimagenet", 4, 2, 19_894_560),
            ("tinyimagenet", 8, 2, 20_582_976),
            ("tinyimagenet", 8, 4, 19_698_816),
            ("tinyimagenet", 16, 2, 24_073_920),
            ("tinyimagenet", 16, 4, 20_534_688),
            ("tinyimagenet", 16, 8, 19_653_120),
        ]
    ],
    # its own logs print 293,362 / 1,151,730 / 4,428,262 on CIFAR-10, 1,164,080 / 3,880,868 on
    # Tiny ImageNet
    ("perceiver-medium", {}, "cifar10", 293_362),
    ("perceiver-medium", {}, "stl10", 293_362),
    ("perceiver-large", {}, "cifar10", 1_151_730),
    ("perceiver-large", {}, "stl10", 1_151_730),
    ("perceiver-large", {}, "tinyimagenet", 1_164_080),
    ("perceiver-xl", {}, "cifar10", 4_428_262),
    ("perceiver-xl", {}, "stl10", 4_428_262),
    ("perceiver-xl", {"cross_dim_head": 48, "latent_dim_head": 48}, "tinyimagenet", 3_880_868),
    ("perceiver-io-cifar10", {}, "cifar10", 1_504_652),
    (
        "perceiver-io-cifar10",
        {"num_latents": 96, "latent_dim": 192, "cross_dim_head": 64, "latent_dim_head": 64},
        "stl10",
        5_785_228,
    ),
    (
        "perceiver-io-cifar10",
        {"cross_dim_head": 64, "latent_dim_head": 64},
        "tinyimagenet",
        2_094_688,
    ),
    ("mixer-s16", {}, "cifar10", 17_232_426),
    ("mixer-s16", {}, "stl10", 17_363_754),
    ("mixer-s16", {}, "tinyimagenet", 17_379_144),
    ("swin-base-pretrained", {}, "cifar10", 86_948_224),
    ("swin-base-pretrained", {}, "stl10", 86_948_224),
    ("swin-base-pretrained", {}, "tinyimagenet", 86_948_224),
    ("tnt-s-pretrained", {}, "cifar10", 23_374_186),
    ("tnt-s-pretrained", {}, "stl10", 23_374_186),
    ("tnt-s-pretrained", {}, "tinyimagenet", 23_447_336),
    ("mixer-b16-pretrained", {}, "cifar10", 59_119_162),
    ("mixer-b16-pretrained", {}, "stl10", 59_119_162),
    ("mixer-b16-pretrained", {}, "tinyimagenet", 59_265_272),
]


def _declared(model: str, dataset: str) -> tuple[int, str] | None:
    """(imgzoo's count minus the source's, why) for a declared difference, else None."""
    classes = DATASETS[dataset][2]
    if model.startswith("vitn-"):
        return 2 * 256, "LayerNorm before the head (its ViTN fed the raw residual stream)"
    if model == "perceiver-io-cifar10":
        return classes, "one learned query (its query was torch.rand, never trained)"
    if model == "swin-base-pretrained" and classes != 200:
        return (classes - 200) * (1024 + 1), "the dataset's classes (its script hard-coded 200)"
    return None


def _count(model: str, args: dict, dataset: str) -> int:
    size, channels, classes = DATASETS[dataset]
    family, _ = catalog.resolve(model, args)
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        architecture = catalog.timm_architecture(family)
        if architecture is not None:  # fine-tuned: its wrapper adds no parameters
            import timm

            return models.count_params(timm.create_model(architecture, num_classes=classes))
        return models.count_params(
            models.create(model, num_classes=classes, image_size=size, in_chans=channels, **args)
        )


def _row_id(row) -> str:
    model, args, dataset, _ = row
    extra = ",".join(f"{k}={v}" for k, v in args.items())
    return f"{model}[{extra}]@{dataset}" if extra else f"{model}@{dataset}"


@pytest.mark.parametrize("row", SOURCE_COUNTS, ids=_row_id)
def test_the_count_is_the_sources(row):
    model, args, dataset, source = row
    declared = _declared(model, dataset)
    difference = _count(model, args, dataset) - source
    assert difference == (declared[0] if declared else 0), (
        f"{model} on {dataset}: imgzoo - source = {difference:+,}"
    )


def _architecture(model: str, args: dict, dataset: str) -> tuple:
    """What decides a run's parameter count: model, every counted argument, dataset."""
    _, merged = catalog.resolve(model, args)
    counted = {k: v for k, v in merged.items() if k not in NOT_COUNTED}
    return model, sorted(counted.items()), dataset


def test_every_run_of_the_three_studies_has_a_row():
    rows = [_architecture(*row[:3]) for row in SOURCE_COUNTS]
    assert len(rows) == len(set(map(str, rows)))  # each row once
    missing = set()
    for files in STUDY_FILES.values():
        study = load_study(files, check_sources=False)
        for run in study.runs:
            model = study.experiments[run.experiment]["model"]  # as configured
            args = study.spec(run).settings.model_args
            if _architecture(model, args, run.dataset) not in rows:
                missing.add(f"{run.experiment} on {run.dataset}")
    assert not missing, f"runs whose source count nobody pinned: {sorted(missing)}"


def test_every_model_row_names_its_source():
    assert {row[0] for row in SOURCE_COUNTS} <= set(SOURCES)


def test_docs_table_is_this_table():
    """docs/models.md shows these rows; on a change, the expected table is in the message."""
    expected = markdown_rows()
    text = (ROOT / "docs" / "models.md").read_text()
    section = text.split("## The write-ups' models beside their sources", 1)[1].split("\n## ")[0]
    shown = [line for line in section.splitlines() if line.startswith("| `")]
    assert shown == expected, "\n" + "\n".join(expected)


def markdown_rows() -> list[str]:
    lines = []
    for model, args, dataset, source in SOURCE_COUNTS:
        ours = source + (_declared(model, dataset) or (0, ""))[0]
        declared = _declared(model, dataset)
        note = f"{declared[0]:+,}: {declared[1]}" if declared else "same"
        extra = ", ".join(f"{k} {v}" for k, v in args.items())
        where = "{}: {}".format(*SOURCES[model])
        lines.append(
            f"| `{model}` | {extra} | {dataset} | {where} | {source:,} | {ours:,} | {note} |"
        )
    return lines
