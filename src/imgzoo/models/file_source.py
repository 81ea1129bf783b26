"""A network from the user's own file, read without running it: `model: nets/my_net.py:build`.

When a study loads (Snakemake's parse, `imgzoo check`) the file is only parsed, never imported
(importing it would import torch, and run the user's code, on a login node): it must exist, be
Python, and define the callable at its top level; where the callable is a plain `def`, its
parameters must take `num_classes`, `image_size`, `in_chans` and every model argument the study
gives. What needs the network itself (a module comes back, its logits' shape) is checked when
the job builds it (`imgzoo.models.file_network`).

The network's source is the file and the modules beside it that it imports (`from blocks import
Block` finds `blocks.py` or `blocks/` in the file's folder, and so on through what those import):
they are found by reading the import statements, so they are watched as the file is. Their
content hash (`source_sha256`: the file's own hash where it imports nothing beside it) is part of
the run's settings (`imgzoo.spec.Settings.model_file_sha256`), so editing any of them re-runs
exactly the runs that use it, and a job refuses a source that changed after the workflow planned
the run.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import os
from pathlib import Path

from imgzoo.errors import ConfigError
from imgzoo.models.arguments import COMMON

# What imgzoo passes to the callable, by name: the dataset's shape.
SHAPE_ARGS = ("num_classes", "image_size", "in_chans")


def sha256(path: str) -> str:
    """The file's content hash (cached while its size and modification time stay the same)."""
    stat = _stat(path)
    return _sha256(str(Path(path).absolute()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=256)
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def source_sha256(path: str) -> str:
    """The hash of the network's source: the file's own where it imports nothing beside it, else
    of the file and its local modules together (their paths relative to its folder, and hashes)."""
    modules = local_modules(path)
    if not modules:
        return sha256(path)
    folder = Path(path).parent
    lines = [f"{Path(p).relative_to(folder)} {sha256(p)}\n" for p in [path, *modules]]
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def local_modules(path: str) -> list[str]:
    """The files beside `path` (in its folder, and under it) that it imports, directly or through
    each other, sorted: the modules Python finds there once the folder is on its path. Installed
    packages are not among them (they are not in the folder)."""
    folder = Path(path).parent
    found: set[Path] = set()
    todo = [Path(path)]
    while todo:
        current = todo.pop()
        for module in _imported_files(current, folder):
            if module not in found and module != Path(path):
                found.add(module)
                todo.append(module)
    return sorted(str(p) for p in found)


def _imported_files(path: Path, folder: Path) -> list[Path]:
    """The files under `folder` that the module at `path` imports (absolute imports resolved from
    `folder`, relative ones from the module's own package)."""
    stat = _stat(str(path))
    files = []
    for level, dotted in _imported_names(str(path.absolute()), stat.st_mtime_ns, stat.st_size):
        base = folder
        if level:  # `from .x import y` is x beside the module; each further dot one folder up
            base = path.parent
            for _ in range(level - 1):
                base = base.parent
        parts = dotted.split(".") if dotted else []
        # `a.b.c` runs a, a.b and a.b.c: each a module file or a package's __init__.py (and
        # `from . import x` its own package's)
        candidates = [base / "__init__.py"] if not parts else []
        for depth in range(1, len(parts) + 1):
            stem = base.joinpath(*parts[:depth])
            candidates += [stem.with_suffix(".py"), stem / "__init__.py"]
        files += [c for c in candidates if c.is_file() and folder in c.parents]
    return files


@functools.lru_cache(maxsize=256)
def _tree(path: str, mtime_ns: int, size: int) -> ast.Module:
    """The file parsed (once while its size and modification time stay the same: a study checks
    it for every experiment and sweep point that uses it). Not to be changed by the caller."""
    return ast.parse(Path(path).read_bytes(), filename=path)


@functools.lru_cache(maxsize=256)
def _imported_names(path: str, mtime_ns: int, size: int) -> tuple[tuple[int, str], ...]:
    """(level, dotted name) of every module the file may import, wherever the import statement
    is: `from a import b` may import the module a.b, so both a and a.b are named. A file that
    does not parse imports nothing here (`check` says what is wrong with the network's file)."""
    try:
        tree = _tree(path, mtime_ns, size)
    except (SyntaxError, ValueError):
        return ()
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend((0, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names.append((node.level, module))
            names.extend(
                (node.level, f"{module}.{alias.name}" if module else alias.name)
                for alias in node.names if alias.name != "*"
            )
    return tuple(names)


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
    stat = _stat(path)
    try:
        tree = _tree(str(Path(path).absolute()), stat.st_mtime_ns, stat.st_size)
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
        if key not in named and key not in COMMON:  # imgzoo's own, handled around the callable
            own = [p for p in named if p not in SHAPE_ARGS]
            raise ConfigError(
                f"{where}: {function.name}() takes no model argument '{key}' (its arguments: "
                f"{', '.join(own) or 'none'})"
            )


def check_unchanged(path: str, expected_sha256: str) -> None:
    """ConfigError unless the file and its local modules still have the content the run was
    planned with."""
    if source_sha256(path) != expected_sha256:
        modules = local_modules(path)
        what = f" or a module beside it ({', '.join(modules)})" if modules else ""
        raise ConfigError(
            f"model file '{path}'{what} changed after this run was planned (its sha256 is no "
            f"longer {expected_sha256[:12]}...): run the workflow again to plan it with the new "
            f"source"
        )
