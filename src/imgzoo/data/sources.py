"""Where a real dataset's files are, and whether they are the published ones.

A source is the official archive, or a folder holding it or its extracted files: the dataset's
`source` option, else `resources/<name>/` under the current folder. Archives are checked
against their published md5 before anything in them is unpickled or decoded; extracted folders
cannot be, and skip the check.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from imgzoo.errors import ConfigError, DataError

# Options every real dataset takes.
SOURCE_OPTIONS = {
    "source": None,  # path to the official archive or the extracted folder
    "checksum": None,  # None: the published md5; "<md5 or sha256 hex>": one's own copy; false
    "download": False,  # fetch the official files into resources/<name>/ (needs internet)
}

RESOURCES = Path("resources")
_HEX = re.compile(r"^[0-9a-fA-F]{32}([0-9a-fA-F]{32})?$")


def check_options(name: str, options: dict) -> None:
    """The source options' values (not whether the files exist: a study is checked where it is
    planned, which need not be where the dataset is prepared)."""
    source, checksum = options["source"], options["checksum"]
    if source is not None and not isinstance(source, str):
        raise ConfigError(f"dataset '{name}': option source must be a path, got {source!r}")
    if not (checksum in (None, True, False) or isinstance(checksum, str) and _HEX.match(checksum)):
        raise ConfigError(f"dataset '{name}': option checksum must be an md5 (32 hex digits) "
                          f"or sha256 (64) or false, got {checksum!r}")
    if not isinstance(options["download"], bool):
        raise ConfigError(f"dataset '{name}': option download must be true or false, "
                          f"got {options['download']!r}")
    if options["download"] and source is not None:
        raise ConfigError(f"dataset '{name}': download: true fetches into "
                          f"{RESOURCES / name}/; drop the source option or the download")


@dataclass(frozen=True)
class Official:
    """A dataset's published files: names, md5s and the URL folder they are served from."""

    url: str
    md5: dict[str, str]

    @property
    def files(self) -> list[str]:
        return list(self.md5)


def help_text(name: str, official: Official) -> str:
    """How to get the files: which to download, from where, and where to put them."""
    files = ", ".join(f"{official.url}{f} (md5 {m})" for f, m in official.md5.items())
    return (f"download {files} into {RESOURCES / name}/, or set the dataset's option source: to "
            f"its path (archive or extracted folder); on a machine with internet, option "
            f"download: true fetches it there (needs torchvision)")


def missing(name: str, options: dict, official: Official,
            default: Path | None = None) -> str | None:
    """Why the dataset's files cannot be found, in one line, or None when they can (or will be
    downloaded). Existence only, nothing is read: cheap enough for a study's check before any
    job, and the same verdict `locate` gives when the dataset is prepared."""
    if options["download"]:
        return None
    if options["source"] is not None:
        path = Path(options["source"]).expanduser()
        if path.exists():
            return None
        return f"dataset '{name}': source {path} does not exist ({help_text(name, official)})"
    if _resources(name) is not None or (default is not None and default.is_dir()):
        return None
    return f"dataset '{name}': no source in {RESOURCES / name}/ ({help_text(name, official)})"


def _resources(name: str) -> Path | None:
    """resources/<name>/ when it holds anything."""
    path = RESOURCES / name
    return path if path.is_dir() and any(path.iterdir()) else None


def locate(name: str, options: dict, official: Official, default: Path | None = None) -> Path:
    """The path to read: the `source` option, else resources/<name>/ (else `default`).

    A folder holding the official archive resolves to the archive.
    """
    if options["download"]:
        download(name, official)
    problem = missing(name, {**options, "download": False}, official, default)
    if problem is not None:
        raise DataError(problem)
    if options["source"] is not None:
        path = Path(options["source"]).expanduser()
    else:
        path = _resources(name) or default
    if path.is_dir():
        archives = [path / f for f in official.files if (path / f).is_file()]
        if len(official.files) == 1 and archives:
            return archives[0]
    return path


def download(name: str, official: Official) -> None:
    """Fetch the official files into resources/<name>/ with torchvision's checked downloader."""
    from torchvision.datasets.utils import download_url  # torch only for this rare path

    for filename, md5 in official.md5.items():
        download_url(official.url + filename, str(RESOURCES / name), filename, md5)


def verify(name: str, path: Path, options: dict, published_md5: str) -> str:
    """Check `path` against the `checksum` option (default: the published md5); its sha256.

    Reads the file once; DataError naming the file when the checksum differs.
    """
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            md5.update(block)
            sha256.update(block)
    expected = options["checksum"]
    if expected is False:
        warnings.warn(f"dataset '{name}': checksum: false, {path} is not verified", stacklevel=2)
        return sha256.hexdigest()
    if expected is None or expected is True:
        expected, what = published_md5, "the published md5"
    else:  # a hex digest: check_options made sure
        expected, what = expected.lower(), "the checksum option"
    actual = (md5 if len(expected) == 32 else sha256).hexdigest()
    if actual != expected:
        raise DataError(f"{path}: checksum {actual} does not match {what} {expected} (a truncated "
                        f"or different file: download it again, or set checksum: to your own "
                        f"copy's md5 or sha256)")
    return sha256.hexdigest()


def open_archive_or_folder(name: str, options: dict, official: Official, root: str):
    """The dataset's files (see archives.open_tree), the archive verified before any is read.

    `root` is the archive's top folder (e.g. cifar-10-batches-py).
    """
    from imgzoo.data import archives

    path = locate(name, options, official)
    if path.is_dir():
        if options["checksum"] not in (None, True, False):
            warnings.warn(f"dataset '{name}': checksum applies to the archive; the extracted "
                          f"folder {path} is not verified", stacklevel=2)
        return archives.open_tree(path, root)
    (published,) = official.md5.values()  # archive datasets publish one file
    return archives.open_tree(path, root, verify(name, path, options, published))
