"""Datasets of the study's own: an image folder (real image files of many kinds, written here) and
a NumPy archive; the study's checks of their names, options and sources; and every bad input's
one line, with no prepared file left behind."""

import gzip
import io
import itertools
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image, features

from imgzoo import data
from imgzoo.config import Run, Study, load_study
from imgzoo.data import decode_pool, image_decode
from imgzoo.errors import ConfigError, DataError
from imgzoo.paths import Layout

SIZE = 16
COPIES = 10  # of one image per class: 10 test, 9 train and 1 val image at test_fraction 0.5


def folder_options(source, **more):
    return {"format": "imagefolder", "source": str(source), "image_size": SIZE, **more}


def save(path, image, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)


def flat(value, mode="RGB", size=(SIZE, SIZE)):
    return Image.new(mode, size, value)


def asymmetric():
    """16×16 RGB whose every rotation and mirror differs (a gradient plus a marked corner)."""
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    pixels = np.stack([x * 15, y * 15, (x * y) % 256], -1).astype(np.uint8)
    pixels[:3, :3] = 255
    return pixels


@pytest.fixture()
def folder(tmp_path):
    """train/ and test/ with PNG, JPEG, BMP, GIF and TIFF files of many modes and sizes, plus
    the hidden and non-image files a real folder collects."""
    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for split, count in (("train", 12), ("test", 3)):
        for cls in ("cat", "dog", "emu"):
            for i in range(count):
                pixels = rng.integers(0, 256, (20 + i, 24 + 2 * i, 3), dtype=np.uint8)
                ext = ("png", "jpg", "bmp", "gif", "tif")[i % 5]
                save(root / split / cls / f"{i:02d}.{ext}", Image.fromarray(pixels))
    save(root / "train" / "cat" / "gray.png", flat(90, "L", (30, 17)))
    save(root / "train" / "cat" / "nested" / "deeper.jpeg", flat((1, 2, 3), size=(64, 64)))
    (root / "train" / "cat" / ".DS_Store").write_bytes(b"\0\1")
    (root / "train" / "dog" / "._00.png").write_bytes(b"AppleDouble")
    save(root / "train" / "dog" / ".ipynb_checkpoints" / "x.png", flat(0))
    (root / "train" / "emu" / "notes.txt").write_text("not an image")
    (root / "train" / "labels.csv").write_text("file,label\n")
    return root


def prepare(tmp_path, options, name="mine"):
    out = tmp_path / "out.h5"
    data.prepare(name, options, out)
    return data.load(out)


def test_an_image_folder_becomes_a_prepared_dataset(folder, tmp_path, capfd):
    got = prepare(tmp_path, folder_options(folder))
    assert got.class_names == ["cat", "dog", "emu"] and got.num_classes == 3
    assert (got.image_size, got.channels) == (SIZE, 3)
    assert len(got.train_y) + len(got.val_y) == 36 + 2  # gray.png, nested/deeper.jpeg
    assert sorted(np.bincount(got.test_y)) == [3, 3, 3] and got.preparation["test_split"] == "test/"
    assert got.preparation["ignored_files"] == {"hidden": 3, "not an image": 1,
                                                "outside a class folder": 1}
    assert got.skipped_files == [] and got.preparation["skipped_files"] == 0
    assert json.loads(got.attrs["options"])["format"] == "imagefolder"
    assert len(got.attrs["source_sha256"]) == 64
    log = capfd.readouterr().err
    assert "[mine] ignored 3 (hidden), e.g. " in log and "47 images of 3 classes" in log
    # the same folder gives the same file, row for row
    data.prepare("mine", folder_options(folder), tmp_path / "again.h5")
    again = data.load(tmp_path / "again.h5")
    np.testing.assert_array_equal(again.train_x, got.train_x)
    assert again.attrs["source_sha256"] == got.attrs["source_sha256"]


def test_without_test_folder_the_test_split_is_carved_from_train(folder, tmp_path):
    shutil.rmtree(folder / "test")
    got = prepare(tmp_path, folder_options(folder, test_fraction=0.25, split_seed=3))
    assert len(got.test_y) == 10 and sorted(np.bincount(got.test_y)) == [3, 3, 4]
    assert got.preparation["test_split"] == ("carved from train/: test_fraction 0.25, "
                                             "stratified, split_seed 3")
    rows = [set(got.source_index[s].tolist()) for s in ("train", "val", "test")]
    assert sum(map(len, rows)) == 38 and set.union(*rows) == set(range(38))


@pytest.mark.parametrize("orientation, turn", [(3, 2), (6, -1), (8, 1)])
@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_exif_orientation_is_applied(tmp_path, orientation, turn, ext):
    shown = asymmetric()
    stored = np.ascontiguousarray(np.rot90(shown, -turn))  # what a camera wrote
    exif = Image.Exif()
    exif[image_decode.ORIENTATION] = orientation
    for cls, i in itertools.product("ab", range(COPIES)):
        save(tmp_path / "f" / "train" / cls / f"{i}.{ext}", Image.fromarray(stored), exif=exif,
             **({"quality": 95, "subsampling": 0} if ext == "jpg" else {}))
    got = prepare(tmp_path, folder_options(tmp_path / "f", test_fraction=0.5))
    error = np.abs(got.train_x[0].astype(int) - shown)
    # JPEG is lossy (a few levels); a wrong turn would be off by about a hundred
    assert error.max() == 0 if ext == "png" else error.mean() < 3


def one_image(tmp_path, image, filename="x.png", **options):
    """The prepared dataset of one image, saved as `filename` (copies in two classes, enough
    for a train, val and test split)."""
    shutil.rmtree(tmp_path / "f", ignore_errors=True)
    for cls, i in itertools.product("ab", range(COPIES)):
        save(tmp_path / "f" / "train" / cls / f"{i}{filename}", image)
    return prepare(tmp_path, folder_options(tmp_path / "f", test_fraction=0.5, **options))


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path):
    wide = np.array([[0, 257 * 128, 65535, 1000]] * 4, dtype=np.uint16)
    image = Image.fromarray(wide)
    assert image.mode.startswith("I;16")
    got = one_image(tmp_path, image, channels=1, image_size=4, resize="stretch")
    assert got.train_x[0, 0, :, 0].tolist() == [0, 128, 255, 4]


def test_cmyk_palette_rgba_and_gray_become_the_configured_channels(tmp_path):
    cmyk = Image.new("CMYK", (SIZE, SIZE), (0, 255, 255, 0))  # magenta and yellow ink: red
    assert one_image(tmp_path, cmyk, "x.tif").train_x[0, 0, 0].tolist() == [255, 0, 0]
    palette = Image.new("P", (SIZE, SIZE), 1)
    palette.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    assert one_image(tmp_path, palette, "p.png").train_x[0, 5, 5].tolist() == [10, 200, 30]
    rgba = Image.new("RGBA", (SIZE, SIZE), (0, 0, 255, 255))
    rgba.paste((200, 0, 0, 0), (0, 0, 8, SIZE))  # transparent left half, over white
    got = one_image(tmp_path, rgba, "r.png").train_x[0]
    assert got[0, 0].tolist() == [255, 255, 255] and got[0, 15].tolist() == [0, 0, 255]
    gray = one_image(tmp_path, flat(77, "L"), "g.png").train_x[0]
    assert gray.shape == (SIZE, SIZE, 3) and (gray == 77).all()
    luma = one_image(tmp_path, flat((0, 255, 0)), "c.png", channels=1).train_x[0]
    assert luma.shape == (SIZE, SIZE, 1) and (luma == 150).all()  # 0.587 * 255


def test_a_file_whose_extension_lies_is_read_by_its_content(tmp_path):
    for cls, i in itertools.product("ab", range(COPIES)):
        save(tmp_path / "f" / "train" / cls / f"{i}.png", flat((200, 100, 0)), format="JPEG")
    got = prepare(tmp_path, folder_options(tmp_path / "f", test_fraction=0.5))
    assert np.abs(got.train_x[0].astype(int) - [200, 100, 0]).max() <= 3


@pytest.mark.skipif(not features.check("webp"), reason="Pillow without WebP")
def test_webp_is_read(tmp_path):
    got = one_image(tmp_path, flat((9, 99, 199)), "x.webp")
    assert np.abs(got.train_x[0].astype(int) - [9, 99, 199]).max() <= 3


@pytest.mark.parametrize("resize", ["crop", "stretch", "pad"])
def test_resize_modes(tmp_path, resize):
    wide = np.zeros((16, 48), dtype=np.uint8)
    wide[:, 16:32] = 255  # a white middle third
    got = one_image(tmp_path, Image.fromarray(wide), image_size=8, channels=1, resize=resize)
    image = got.train_x[0, :, :, 0]
    assert (image[4, 3:5] > 200).all()  # the white middle, in every mode
    if resize == "crop":  # the centre square: all of it white
        assert (image > 200).all()
    else:  # the whole width squeezed in: black at both sides
        assert (image[4, [0, 1, 6, 7]] < 50).all()
    if resize == "pad":  # 8×3 px of image in black bands
        assert (image[[0, 1, 5, 6, 7]] == 0).all()
    if resize == "stretch":
        assert (image == image[4]).all()


@pytest.mark.parametrize("start_method", ["fork", "forkserver"])
def test_worker_processes_decode_as_the_caller_would(folder, monkeypatch, start_method):
    import multiprocessing

    from imgzoo.data.image_files import list_images
    from imgzoo.progress import CountProgress

    (folder / "train" / "dog" / "07.bmp").write_bytes(b"BM broken")
    files = list_images(folder).train.files
    args = {"size": SIZE, "channels": 3, "resize": "crop", "stop_at_failure": False}
    quiet = CountProgress(len(files), "images", stream=io.StringIO())
    alone = decode_pool.decode_files(folder, files, progress=quiet, workers=1, **args)
    monkeypatch.setattr(decode_pool, "MIN_FOR_WORKERS", 0)
    monkeypatch.setattr(decode_pool, "MIN_CHUNK", 5)
    monkeypatch.setattr(decode_pool, "_start_method",
                        lambda: multiprocessing.get_context(start_method))
    pooled = decode_pool.decode_files(folder, files, progress=quiet, workers=2, **args)
    np.testing.assert_array_equal(alone.images, pooled.images)
    assert alone.sha256 == pooled.sha256 and alone.failed == pooled.failed
    assert list(pooled.failed) == [files.index("train/dog/07.bmp")]


def test_workers_are_forked_unless_torch_is_loaded():
    """`imgzoo prepare` (no torch) forks its workers; a process with torch's threads does not."""
    import subprocess
    import sys

    code = ("import sys; from imgzoo.data import decode_pool as p; "
            "a = p._start_method().get_start_method(); import torch; "
            "print(a, p._start_method().get_start_method())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.split() == ["fork", "forkserver"]


# --- bad inputs: one line naming the file or folder, and no prepared file ----------------------


def fails(tmp_path, options, error, match):
    out = tmp_path / "out.h5"
    with pytest.raises(error, match=match) as caught:
        data.prepare("mine", options, out)
    assert "\n" not in str(caught.value)
    assert not out.exists() and not list(tmp_path.glob(".out.h5.*"))
    return str(caught.value)


def test_a_corrupt_image_names_the_file(folder, tmp_path):
    (folder / "train" / "dog" / "05.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    message = fails(tmp_path, folder_options(folder), DataError, "train/dog/05.png: ")
    assert "skip_bad: true" in message


def test_a_truncated_image_names_the_file(folder, tmp_path):
    path = folder / "train" / "emu" / "00.png"
    path.write_bytes(path.read_bytes()[:200])
    fails(tmp_path, folder_options(folder), DataError, r"train/emu/00.png: damaged image")


def test_skip_bad_leaves_unreadable_files_out_and_records_them(folder, tmp_path, capfd):
    (folder / "train" / "dog" / "05.png").write_bytes(b"not an image at all")
    (folder / "test" / "cat" / "01.jpg").write_bytes(b"\xff\xd8\xff broken jpeg")
    got = prepare(tmp_path, folder_options(folder, skip_bad=True))
    assert [line.split(":")[0] for line in got.skipped_files] == ["train/dog/05.png",
                                                                 "test/cat/01.jpg"]
    assert got.preparation["skipped_files"] == 2
    assert len(got.train_y) + len(got.val_y) == 37 and len(got.test_y) == 8
    assert "[mine] skipped train/dog/05.png: not an image" in capfd.readouterr().err


def test_skip_bad_that_empties_a_class_names_its_folder(folder, tmp_path):
    for path in (folder / "train" / "emu").iterdir():
        if path.suffix != ".txt":
            path.write_bytes(b"junk")
    fails(tmp_path, folder_options(folder, skip_bad=True), DataError,
          r"train/emu: no readable image left")


def test_an_empty_class_folder_names_it(folder, tmp_path):
    (folder / "train" / "yak").mkdir()
    (folder / "train" / "yak" / ".DS_Store").write_bytes(b"")
    fails(tmp_path, folder_options(folder), DataError, r"train/yak: class folder without image")


def test_a_test_class_that_train_lacks_names_it(folder, tmp_path):
    save(folder / "test" / "zebra" / "z.png", flat(0))
    fails(tmp_path, folder_options(folder), DataError,
          r"test/zebra: class 'zebra' is not one of train/'s classes \(cat, dog, emu\)")


def test_a_test_folder_without_classes_names_it(folder, tmp_path):
    shutil.rmtree(folder / "test")
    (folder / "test").mkdir()
    fails(tmp_path, folder_options(folder), DataError, r"images/test: no class folders")


def test_a_folder_without_train_says_the_layout(folder, tmp_path):
    shutil.rmtree(folder / "train")
    fails(tmp_path, folder_options(folder), DataError, r"has no train/ folder.*train/<class>")
    fails(tmp_path, folder_options(tmp_path / "nowhere"), DataError,
          r"source .*nowhere does not exist")


@pytest.mark.parametrize("options, match", [
    ({"image_size": None}, "option image_size is required"),
    ({"source": None}, "option source is required"),
    ({"channels": 2}, "option channels must be 1 or 3"),
    ({"resize": "squash"}, "option resize must be one of crop, stretch, pad"),
    ({"test_fraction": 1}, "test_fraction"),
    ({"skip_bad": "yes"}, "skip_bad"),
    ({"imagesize": 3}, "unknown option 'imagesize'"),
])
def test_bad_options_are_config_errors(folder, tmp_path, options, match):
    fails(tmp_path, {**folder_options(folder), **options}, ConfigError, f"'mine'.*{match}")


# --- npz ---------------------------------------------------------------------------------------


def write_npz(path, **arrays):
    rng = np.random.default_rng(1)
    base = {
        "x_train": rng.integers(0, 256, (40, 6, 6), dtype=np.uint8),
        "y_train": np.arange(40) % 4,
        "x_test": rng.integers(0, 256, (8, 6, 6), dtype=np.uint8),
        "y_test": np.arange(8) % 4,
    }
    np.savez(path, **{k: v for k, v in {**base, **arrays}.items() if v is not None})
    return {"format": "npz", "source": str(path)}


def test_an_npz_archive_becomes_a_prepared_dataset(tmp_path):
    options = write_npz(tmp_path / "set.npz", class_names=np.array(["a", "b", "c", "d"]))
    got = prepare(tmp_path, options)
    assert (got.image_size, got.channels, got.class_names) == (6, 1, ["a", "b", "c", "d"])
    assert len(got.train_y) + len(got.val_y) == 40 and len(got.test_y) == 8
    colour = write_npz(tmp_path / "rgb.npz",
                       x_train=np.zeros((40, 5, 5, 3), np.uint8),
                       x_test=np.zeros((8, 5, 5, 3), np.uint8))
    got = prepare(tmp_path, colour)
    assert (got.channels, got.class_names) == (3, ["0", "1", "2", "3"])


@pytest.mark.parametrize("arrays, match", [
    ({"y_test": None}, r"set.npz: lacks y_test"),
    ({"x_train": np.zeros((40, 6, 6), np.float32)}, r"x_train is float32"),
    ({"x_train": np.zeros((40, 6, 5), np.uint8)}, r"x_train is uint8 of shape \(40, 6, 5\)"),
    ({"x_test": np.zeros((8, 7, 7), np.uint8)}, r"x_train images are 6×6×1, x_test images"),
    ({"y_train": np.arange(39)}, r"y_train must be 40 integer class indices"),
    ({"y_train": np.full(40, -1)}, r"y_train must be 40 integer class indices"),
    ({"class_names": np.array(["a"])}, r"class_names must be a list of strings"),
    ({"class_names": np.array([{"a": 1}], dtype=object)}, r"not a readable .npz archive"),
])
def test_a_bad_npz_names_the_file_and_array(tmp_path, arrays, match):
    fails(tmp_path, write_npz(tmp_path / "set.npz", **arrays), DataError, match)


def test_a_file_that_is_no_npz_is_named(tmp_path):
    (tmp_path / "set.npz").write_text("hello")
    fails(tmp_path, {"format": "npz", "source": str(tmp_path / "set.npz")}, DataError,
          r"set.npz: not a readable .npz archive")


# --- the study: names, formats and sources checked before any job --------------------------


def study_config(data_section, datasets=("mine",)):
    return {"datasets": list(datasets), "data": data_section,
            "experiments": {"mlp": {"model": "mlp"}}}


def test_a_study_runs_on_a_dataset_it_names_itself(folder):
    study = Study(study_config({"mine": folder_options(folder)}))
    assert {run.dataset for run in study.runs} == {"mine"}
    assert study.spec(Run("mine", "mlp", 0)).settings.data["format"] == "imagefolder"
    assert "mine" in data.dataset_names({"mine": {"format": "npz"}})
    assert "mine" not in data.dataset_names({"mine": {}})


@pytest.mark.parametrize("data_section, datasets, match", [
    ({"cifar10": {"format": "imagefolder", "source": "x", "image_size": 8}}, ["cifar10"],
     r"data.cifar10': dataset 'cifar10': the name of a built-in dataset.*my_cifar10"),
    ({"mine": {"format": "jpegs", "source": "x"}}, ["mine"],
     r"unknown format 'jpegs' \(known: imagefolder, npz\)"),
    ({"mine": {"format": "imagefolder", "image_size": 8}}, ["mine"],
     r"data.mine': dataset 'mine': option source is required"),
    ({"my-set": {"format": "npz", "source": "x"}}, ["my-set"],
     r"dataset 'my-set': a dataset's name may use only letters, digits and _"),
    ({}, ["mine"], r"config 'datasets': unknown dataset 'mine'"),
])
def test_a_bad_dataset_of_ones_own_is_a_config_error(data_section, datasets, match):
    with pytest.raises(ConfigError, match=match):
        Study(study_config(data_section, datasets))


def test_a_missing_source_stops_the_study_unless_it_was_prepared(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(study_config(
        {"mine": folder_options("photos"), "arr": {"format": "npz", "source": "a.npz"}},
        ["mine", "arr"])))
    with pytest.raises(DataError, match=r"^dataset 'mine': source photos does not exist "
                                        r".*\(and the sources of arr\)$"):
        load_study(["s.yaml"])
    (tmp_path / "photos" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match=r"^dataset 'arr': source a.npz does not exist"):
        load_study(["s.yaml"])
    prepared = tmp_path / Layout("s").data("arr")
    prepared.parent.mkdir(parents=True)
    prepared.touch()  # prepared already: the source is not needed any more
    assert load_study(["s.yaml"]).name == "s"
    assert load_study(["s.yaml"], check_sources=False).name == "s"


# --- an image folder that a model learns from, through `imgzoo train` -------------------------

FASHION = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist


def fashion_images(prefix: str, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `count` images and labels of an official idx pair (train or t10k)."""
    images = gzip.decompress((FASHION / f"{prefix}-images-idx3-ubyte.gz").read_bytes())
    labels = gzip.decompress((FASHION / f"{prefix}-labels-idx1-ubyte.gz").read_bytes())
    x = np.frombuffer(images, np.uint8, offset=16).reshape(-1, 28, 28)[:count]
    return x, np.frombuffer(labels, np.uint8, offset=8)[:count]


def test_a_model_learns_from_an_image_folder_made_of_fashion_mnist(tmp_path, monkeypatch):
    if not (FASHION / "train-images-idx3-ubyte.gz").exists():
        message = "Fashion-MNIST missing: apt-get install dataset-fashion-mnist"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from imgzoo import runlog
    from imgzoo.cli import main
    from imgzoo.data.readers.fashion_mnist import CLASS_NAMES

    monkeypatch.chdir(tmp_path)
    folders = [name.replace("/", "_") for name in CLASS_NAMES]  # T-shirt/top is no folder name
    for split, prefix, count in (("train", "train", 2500), ("test", "t10k", 500)):
        for row, (image, label) in enumerate(zip(*fashion_images(prefix, count), strict=True)):
            # PNG and JPEG files alike, as a folder of photographs holds them
            save(Path("fashion", split, folders[label], f"{row}.{'jpg' if row % 4 else 'png'}"),
                 Image.fromarray(image), **({"quality": 95} if row % 4 else {}))
    study = {
        "datasets": ["fashion_folder"],
        "seeds": [0],
        "data": {"fashion_folder": {"format": "imagefolder", "source": "fashion",
                                    "image_size": 28, "channels": 1}},
        "train": {"epochs": 6, "batch_size": 64},  # the default augmentation, at 28 px
        "experiments": {"mlp": {"model": "mlp", "model_args": {"hidden": [256]}}},
    }
    Path("study.yaml").write_text(yaml.safe_dump(study))
    assert main(["train", "--config", "study.yaml", "--dataset", "fashion_folder",
                 "--experiment", "mlp", "--seed", "0", "--threads", "2"]) == 0
    prepared = data.load(Layout("study").data("fashion_folder"))
    assert prepared.class_names == sorted(folders) and prepared.channels == 1
    assert len(prepared.test_y) == 500
    log = runlog.read(Layout("study").run_log("fashion_folder", "mlp", 0))
    best = int(log.epochs["val_acc"].argmax())
    assert log.epochs["test_acc"][best] > 0.6, log.epochs["test_acc"]  # chance is 0.1


def test_snakemake_says_a_missing_source_before_any_job(tmp_path):
    """What a new user meets without the data: the one line in Snakemake's own output."""
    import subprocess
    import sys

    repo, bin_dir = Path(__file__).resolve().parents[1], Path(sys.executable).parent
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(
        study_config({"mine": folder_options("photos")})))
    done = subprocess.run(
        [str(bin_dir / "snakemake"), "-s", str(repo / "Snakefile"), "-d", str(tmp_path),
         "--configfile", str(tmp_path / "study.yaml"), "--cores", "1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    assert done.returncode != 0
    assert "imgzoo: error: dataset 'mine': source photos does not exist" in done.stderr
    assert not (tmp_path / "results").exists()
