"""A network from the user's own file, read without running it: `model: nets/my_net.py:build`.

When a study loads (Snakemake's parse, `imgzoo check`) the file is only parsed, never imported
(importing it would import torch, and run the user's code, on a login node): it must exist, be
Python, and define the callable at its top level; where the callable is a plain `def`, its
parameters must take `num_classes`, `image_size`, `in_chans` and every model argument the study
gives. What needs the network itself (a module comes back, its logits' shape) is checked when
the job builds it (`imgzoo.models.file_network`).

The file's content hash is part of the run's settings (`imgzoo.spec.Settings.model_file_sha256`),
so editing the file re-runs exactly the runs that use it, and a job refuses a file that changed
after the workflow planned the run.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import os
from pathlib import Path

from imgzoo.errors import ConfigError

# What imgzoo passes to the callable, by name: the dataset's shape.
SHAPE_ARGS = ("num_classes", "image_size", "in_chans")


def sha256(path: str) -> str:
    """The file's content hash (cached while its size and modification time stay the same)."""
    stat = _stat(path)
    return _sha256(str(Path(path).absolute()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=256)
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _stat(path: str) -> os.stat_result:
    try:
        return os.stat(path)
    except OSError as e:
        raise ConfigError(
            f"model file '{path}' does not exist (a path relative to the working directory "
            f"{Path.cwd()}): {e.strerror}"
        ) from None


def check(path: str, name: str, model_args: dict) -> None:
    """ConfigError naming the file unless it defines `name` at its top level and, where that is
    a plain function, the function takes the dataset's shape and every one of `model_args`."""
    where = f"model file '{path}'"
    if not name.isidentifier():
        raise ConfigError(f"{where}: name the callable after ':' (e.g. '{path}:build')")
    _stat(path)
    try:
        tree = ast.parse(Path(path).read_bytes(), filename=path)
    except SyntaxError as e:
        raise ConfigError(f"{where}: line {e.lineno}: {e.msg}") from None
    except (OSError, ValueError) as e:
        raise ConfigError(f"{where}: cannot be read ({e})") from None
    defined = _top_level_names(tree)
    if name not in defined:
        known = ", ".join(sorted(defined)) or "nothing"
        raise ConfigError(f"{where}: defines no '{name}' at its top level (it defines {known})")
    function = defined[name]
    if function is not None:
        _check_parameters(where, function, model_args)


def _top_level_names(tree: ast.Module) -> dict[str, ast.FunctionDef | None]:
    """Names the module binds at its top level (in `if`/`try`/`with` blocks too) -> their `def`
    (None for classes, assignments and imports, whose parameters are not read here)."""
    names: dict[str, ast.FunctionDef | None] = {}
    statements = list(tree.body)
    while statements:
        node = statements.pop(0)
        if isinstance(node, ast.FunctionDef):
            names[node.name] = node
        elif isinstance(node, ast.ClassDef | ast.AsyncFunctionDef):
            names[node.name] = None
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update((t.id, None) for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update(((a.asname or a.name).split(".")[0], None) for a in node.names)
        elif isinstance(node, ast.If | ast.Try | ast.With):
            handlers = [h.body for h in getattr(node, "handlers", [])]
            for body in (node.body, getattr(node, "orelse", []), *handlers,
                         getattr(node, "finalbody", [])):
                statements.extend(body)
    return names


def _check_parameters(where: str, function: ast.FunctionDef, model_args: dict) -> None:
    a = function.args
    named = [p.arg for p in (*a.args, *a.kwonlyargs)]  # imgzoo passes them by keyword
    if a.kwarg is not None:
        return  # **kwargs takes any name
    for key in SHAPE_ARGS:
        if key not in named:
            raise ConfigError(
                f"{where}: {function.name}() must take {', '.join(SHAPE_ARGS)} (imgzoo passes "
                f"the dataset's shape by these names); it has no parameter '{key}'"
            )
    for key in model_args:
        if key not in named and key != "normalizer":  # imgzoo's own (models.input_normalizer)
            own = [p for p in named if p not in SHAPE_ARGS]
            raise ConfigError(
                f"{where}: {function.name}() takes no model argument '{key}' (its arguments: "
                f"{', '.join(own) or 'none'})"
            )


def check_unchanged(path: str, expected_sha256: str) -> None:
    """ConfigError unless the file still has the content the run was planned with."""
    if sha256(path) != expected_sha256:
        raise ConfigError(
            f"model file '{path}' changed after this run was planned (its sha256 is no longer "
            f"{expected_sha256[:12]}...): run the workflow again to plan it with the new file"
        )
