"""A network from the user's own file, built in the job (`model: nets/my_net.py:build`).

The file is imported as a module of its own. Where it imports modules beside it
(`imgzoo.models.file_source.local_modules`, which the workflow watches with the file), its folder
is put first on sys.path so that Python finds them there; otherwise nothing is added to
sys.path. The callable is called with the dataset's shape
and the study's model arguments, by keyword:
`build(num_classes=..., image_size=..., in_chans=..., **model_args)`. Whatever goes wrong is one
line naming the file (and the line of it an exception came from).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from torch import nn

from imgzoo.errors import ConfigError
from imgzoo.models import file_source
from imgzoo.models._common import UNEXPECTED_ARGUMENT, error_line


def build(path: str, name: str, *, num_classes: int, image_size: int, in_chans: int,
          **model_args) -> nn.Module:
    where = f"model file '{path}'"
    file_source.check(path, name, model_args)  # what the study's check saw, still true
    factory = getattr(_import(path, where), name)
    if not callable(factory):
        raise ConfigError(f"{where}: '{name}' is a {type(factory).__name__}, not a callable")
    try:
        model = factory(
            num_classes=num_classes, image_size=image_size, in_chans=in_chans, **model_args
        )
    except TypeError as error:
        unexpected = UNEXPECTED_ARGUMENT.search(str(error))
        if unexpected is None:
            raise ConfigError(f"{where}: {name}() failed: {error_line(error, path)}") from error
        raise ConfigError(f"{where}: {name}() takes no model argument '{unexpected[1]}'") from error
    except Exception as error:  # the user's code: any failure is theirs to see, in one line
        raise ConfigError(f"{where}: {name}() failed: {error_line(error, path)}") from error
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"{where}: {name}() returned a {type(model).__name__}, not a torch.nn.Module"
        )
    return model


def _import(path: str, where: str) -> ModuleType:
    module_name = f"imgzoo_model_file_{file_source.source_sha256(path)[:16]}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    _put_folder_on_path(path, where)
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look a module up by name
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[module_name]
        raise ConfigError(f"{where}: importing it failed: {error_line(error, path)}") from error
    return module


def _put_folder_on_path(path: str, where: str) -> None:
    """Where the file imports modules beside it, its folder first on sys.path, so that they are
    found there; a local module whose name this process has already imported from elsewhere (an
    installed package of the same name, or another network's module) is a ConfigError, not a
    silent mix-up."""
    modules = file_source.local_modules(path)
    if not modules:
        return
    folder = Path(path).parent.absolute()
    for module in modules:
        relative = Path(module).absolute().relative_to(folder)
        name = ".".join(relative.with_suffix("").parts).removesuffix(".__init__")
        loaded = getattr(sys.modules.get(name), "__file__", None)
        if loaded is not None and Path(loaded).absolute() != Path(module).absolute():
            raise ConfigError(
                f"{where}: its module '{name}' ({module}) has the name of a module already "
                f"imported from {loaded}: rename it"
            )
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
