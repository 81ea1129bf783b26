"""`format: imagefolder`: a folder of image files, one subfolder per class (torchvision's
ImageFolder layout, `image_files`), decoded to square images of one size (`image_decode`).

The test split is `test/` where the folder has one, else carved from train/ (stratified, with
the split seed and `test_fraction`), as the prepared file's `preparation` attribute records.
Rows keep the sorted file order, so `source_index` is the row in the sorted list of the split
folder's image files (train/'s for a carved test split).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from imgzoo.data import image_files, splits
from imgzoo.data import options as opts
from imgzoo.data.image_decode import RESIZE_MODES
from imgzoo.data.readers import Raw
from imgzoo.errors import ConfigError, DataError

OPTIONS = {
    "format": "imagefolder",
    "source": None,  # the folder holding train/ (and test/); required
    "image_size": None,  # side of the square images prepared, in pixels; required
    "channels": 3,  # 1: grayscale, 3: RGB, whatever the files hold
    "resize": "crop",  # how an image of another shape becomes a square: RESIZE_MODES
    "test_fraction": 0.2,  # share of train/ carved out as test where there is no test/
    "skip_bad": False,  # leave out files that do not decode instead of stopping
}


def check_options(name: str, options: dict) -> None:
    for key in ("source", "image_size"):
        if options[key] is None:
            raise ConfigError(f"dataset '{name}': option {key} is required for format "
                              f"imagefolder")
    if not isinstance(options["source"], str):
        raise ConfigError(f"dataset '{name}': option source must be a path, got "
                          f"{options['source']!r}")
    opts.integer(name, options, "image_size", minimum=1)
    if options["channels"] not in (1, 3) or isinstance(options["channels"], bool):
        raise ConfigError(f"dataset '{name}': option channels must be 1 or 3, got "
                          f"{options['channels']!r}")
    if options["resize"] not in RESIZE_MODES:
        raise ConfigError(f"dataset '{name}': option resize must be one of "
                          f"{', '.join(RESIZE_MODES)}, got {options['resize']!r}")
    opts.fraction(name, options, "test_fraction")
    if not isinstance(options["skip_bad"], bool):
        raise ConfigError(f"dataset '{name}': option skip_bad must be true or false, got "
                          f"{options['skip_bad']!r}")


def source_problem(name: str, options: dict) -> str | None:
    source = Path(options["source"]).expanduser()
    if not source.is_dir():
        what = "is not a folder" if source.exists() else "does not exist"
        return f"dataset '{name}': source {source} {what} (an image folder holds " \
               f"{image_files.LAYOUT})"
    if not (source / "train").is_dir():
        return f"dataset '{name}': source {source} has no train/ folder (an image folder " \
               f"holds {image_files.LAYOUT})"
    return None


def read(name: str, options: dict) -> Raw:
    from imgzoo.data import decode_pool  # PIL only when a folder is read
    from imgzoo.progress import CountProgress

    problem = source_problem(name, options)
    if problem:
        raise DataError(problem)
    source = Path(options["source"]).expanduser()
    found = image_files.list_images(source)
    for reason, count in sorted(found.ignored.items()):
        print(f"[{name}] ignored {count} ({reason}), e.g. {found.ignored_example[reason]}",
              file=sys.stderr)
    test = found.test or image_files.SplitFiles([], np.empty(0, np.int64))
    files = found.train.files + test.files
    labels = np.concatenate([found.train.labels, test.labels])
    progress = CountProgress(len(files), "images decoded", label=f"[{name}]")
    decoded = decode_pool.decode_files(
        source, files, size=options["image_size"], channels=options["channels"],
        resize=options["resize"], progress=progress, stop_at_failure=not options["skip_bad"])
    skipped = _skipped(name, source, files, decoded.failed, options["skip_bad"])
    kept = np.setdiff1d(np.arange(len(files)), list(decoded.failed)).astype(np.int64)
    n_train = len(found.train.files)
    train_rows, test_rows = kept[kept < n_train], kept[kept >= n_train]
    _require_every_class(source, found.class_names, labels[train_rows])
    if found.test is None:
        rng = np.random.default_rng([options["split_seed"], 0])
        keep, carve = splits.carve(labels[train_rows], rng, fraction=options["test_fraction"])
        train_rows, test_rows = train_rows[keep], train_rows[carve]
        test_split = (f"carved from train/: test_fraction {options['test_fraction']}, "
                      f"stratified, split_seed {options['split_seed']}")
    else:
        test_split = "test/"
    progress.finish(f"{len(kept)} images of {len(found.class_names)} classes "
                    f"({len(train_rows)} train, {len(test_rows)} test; test split: {test_split})"
                    + (f", {len(skipped)} unreadable files skipped" if skipped else ""))
    return Raw(
        train_x=_rows(decoded.images, train_rows), train_y=labels[train_rows],
        test_x=_rows(decoded.images, test_rows), test_y=labels[test_rows],
        class_names=found.class_names, source=str(source), source_sha256=decoded.sha256,
        train_index=train_rows, test_index=test_rows - (n_train if found.test else 0),
        preparation={"test_split": test_split, "ignored_files": dict(found.ignored),
                     "skipped_files": len(skipped)},
        skipped_files=skipped,
    )


def _skipped(name: str, source: Path, files: list[str], failed: dict[int, str],
             skip_bad: bool) -> list[str]:
    """The files left out ("path: reason"), each said in the log; without `skip_bad`, the
    first one stops preparation instead."""
    if failed and not skip_bad:
        row = min(failed)
        raise DataError(f"{source / files[row]}: {failed[row]}; remove or replace the file, or "
                        f"set data.{name}.skip_bad: true to leave such files out")
    skipped = [f"{files[row]}: {reason}" for row, reason in sorted(failed.items())]
    for line in skipped:
        print(f"[{name}] skipped {line}", file=sys.stderr)
    return skipped


def _rows(images: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """images[rows], as a view where the rows are consecutive (test/ and nothing skipped): a
    large set is then never copied."""
    if len(rows) and rows[-1] - rows[0] == len(rows) - 1:
        return images[rows[0] : rows[-1] + 1]
    return images[rows]


def _require_every_class(source: Path, class_names: list[str], train_labels: np.ndarray) -> None:
    """Every class keeps a training image once unreadable files are left out."""
    present = set(train_labels.tolist())
    for index, cls in enumerate(class_names):
        if index not in present:
            raise DataError(f"{source / 'train' / cls}: no readable image left in the class "
                            f"folder (every one was skipped as unreadable)")


def image_size(options: dict) -> int:
    return options["image_size"]
