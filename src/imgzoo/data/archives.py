"""A dataset's files from a tar archive, a zip archive or an extracted folder, read in place.

Nothing is ever extracted: members are read straight from the archive. Archives holding a member
with an absolute path, a `..` component or a link that leaves the archive are refused all the
same (DataError naming the member): no official archive has one, so the file is not what it
claims to be.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from imgzoo.errors import DataError

# What a damaged archive raises while being read (gzip.BadGzipFile is an OSError).
CORRUPT = (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError, OSError)


def open_tree(path: Path, root: str, sha256: str | None = None):
    """The files under `root/` (the archive's top folder) of the archive or folder `path`.

    `sha256` is the archive's, when the caller has already verified it.
    """
    if path.is_dir():
        return FolderTree(path / root if (path / root).is_dir() else path)
    if path.suffix.lower() == ".zip" or zipfile.is_zipfile(path):
        return ZipTree(path, root, sha256)
    return TarTree(path, root, sha256)


def check_member(archive: Path, name: str, link: str | None = None) -> None:
    """DataError if member `name`, or the link target `link`, would leave the archive's folder.

    `link` is the target as a path from the archive's root (see _tar_link_target).
    """
    escapes = _absolute(name) or ".." in name.replace("\\", "/").split("/")
    if link is not None:
        escapes = escapes or _absolute(link) or posixpath.normpath(link).split("/")[0] == ".."
    if escapes:
        target = f" (link to {link!r})" if link is not None else ""
        raise DataError(f"{archive}: unsafe member {name!r}{target}: absolute path, '..' or a "
                        f"link out of the archive; refusing an archive that is not the official "
                        f"one")


def _absolute(path: str) -> bool:
    return path.startswith(("/", "\\")) or (len(path) > 1 and path[1] == ":")


class TarTree:
    """Members of a (gzipped) tar, read in one streaming pass in archive order."""

    def __init__(self, path: Path, root: str, sha256: str | None):
        self.path, self.prefix, self.sha256 = path, f"{root}/", sha256

    def read(self, names: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        """(name, bytes) for each of `names` (relative to root), in archive order.

        Every member is checked and the archive is read to its end, so a truncated one fails
        here even when the checksum was turned off.
        """
        wanted, seen = set(names), set()
        try:
            with tarfile.open(self.path, "r:*") as tar:
                for member in tar:
                    link = _tar_link_target(member)
                    check_member(self.path, member.name, link)
                    rel = member.name.removeprefix(self.prefix)
                    if rel not in wanted or not member.name.startswith(self.prefix):
                        continue
                    if not member.isfile():
                        raise DataError(f"{self.path}: member {member.name} is not a regular "
                                        f"file; not the official archive")
                    seen.add(rel)
                    yield rel, tar.extractfile(member).read()
        except CORRUPT as e:
            raise DataError(f"{self.path}: truncated or corrupt archive ({e.__class__.__name__}: "
                            f"{e}); download it again") from e
        _require(self.path, wanted - seen, self.prefix)

    def digest(self) -> str | None:
        return self.sha256


def _tar_link_target(member: tarfile.TarInfo) -> str | None:
    """Where a link member points, as a path from the archive's root (None if not a link)."""
    if member.issym():
        if _absolute(member.linkname):
            return member.linkname
        return posixpath.join(posixpath.dirname(member.name), member.linkname)
    if member.islnk():
        return member.linkname
    return None


class ZipTree:
    """Members of a zip archive (random access); every member name is checked on opening."""

    def __init__(self, path: Path, root: str, sha256: str | None):
        self.path, self.prefix, self.sha256 = path, f"{root}/", sha256
        try:
            self.zip = zipfile.ZipFile(path)
        except CORRUPT as e:
            raise DataError(f"{path}: truncated or corrupt zip archive ({e}); download it "
                            f"again") from e
        for info in self.zip.infolist():
            check_member(path, info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise DataError(f"{path}: member {info.filename!r} is a symbolic link; "
                                f"refusing an archive that is not the official one")

    def names(self) -> list[str]:
        """All files under root/, relative to it."""
        return [i.filename.removeprefix(self.prefix) for i in self.zip.infolist()
                if i.filename.startswith(self.prefix) and not i.is_dir()]

    def read(self, names: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        for rel in names:
            try:
                yield rel, self.zip.read(self.prefix + rel)
            except KeyError:
                _require(self.path, {rel}, self.prefix)
            except CORRUPT as e:
                raise DataError(f"{self.path}: member {self.prefix + rel} is corrupt "
                                f"({e}); download the archive again") from e

    def digest(self) -> str | None:
        return self.sha256


class FolderTree:
    """Files of an extracted folder; their sha256 accumulates as they are read, in read order."""

    def __init__(self, base: Path):
        self.base, self.path = base, base
        self.hash = hashlib.sha256()

    def names(self) -> list[str]:
        out = []
        for folder, _, files in os.walk(self.base):
            rel = os.path.relpath(folder, self.base)
            out += [f if rel == "." else f"{rel}/{f}".replace(os.sep, "/") for f in files]
        return out

    def read(self, names: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        for rel in names:
            try:
                data = (self.base / rel).read_bytes()
            except FileNotFoundError:
                _require(self.base, {rel}, "")
            except OSError as e:
                raise DataError(f"{self.base / rel}: unreadable ({e.strerror})") from e
            self.hash.update(rel.encode() + b"\0" + data)
            yield rel, data

    def digest(self) -> str:
        return self.hash.hexdigest()


def _require(where: Path, missing: set[str], prefix: str) -> None:
    if missing:
        names = ", ".join(prefix + m for m in sorted(missing)[:3])
        raise DataError(f"{where}: lacks {names}{' ...' if len(missing) > 3 else ''} "
                        f"(not the official archive or folder?)")
