"""What the two kinds of imgzoo HDF5 file (prepared datasets, run logs) check the same way."""

from __future__ import annotations

import numpy as np


def checked_attrs(f, path, *, schema, version, required, what, redo, error) -> dict:
    """The root attributes of open file `f` as Python values, once it is shown to be an imgzoo
    `what` of this `version` (or of one of the versions, given a tuple) with every `required`
    attribute (for a tuple of versions: a dict version -> required); else `error` naming `path`."""
    if f.attrs.get("schema") != schema:
        raise error(f"{path}: not an imgzoo {what} ({redo})")
    found = int(f.attrs.get("schema_version", -1))
    versions = version if isinstance(version, tuple) else (version,)
    if found not in versions:
        readable = " or ".join(str(v) for v in versions)
        raise error(
            f"{path}: {what} schema version {found}, this imgzoo reads {readable} ({redo})"
        )
    if isinstance(required, dict):
        required = required[found]
    attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
    missing = [k for k in required if k not in attrs]
    if missing:
        raise error(f"{path}: {what} lacks attributes {missing} ({redo})")
    return attrs


def strings(values) -> list[str]:
    """An HDF5 string array (h5py gives bytes) as Python strings."""
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]
