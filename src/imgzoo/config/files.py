"""A study from its files: read, merged in order, Snakemake's `--config` overrides last."""

from __future__ import annotations

from pathlib import Path

import yaml

from imgzoo import schema
from imgzoo.config.study import Study
from imgzoo.errors import ConfigError

DEFAULT_CONFIG = "config/config.yaml"


def load_yaml(path: str | Path) -> dict:
    """A YAML file as a dict; ConfigError naming the file (and line) if missing or malformed."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file ({e.strerror})") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}:{where}: malformed YAML ({problem})") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must be a YAML mapping of keys")
    return data


def load_study(
    paths: list[str | Path] | None = None,
    overrides: dict | None = None,
    *,
    check_sources: bool = True,
) -> Study:
    """The study that config files describe: the only way a study is made from files, for
    Snakemake (common.smk) and the command line alike.

    `paths` are merged in order, key by key (later files win), and nothing else is added to them:
    no file but those given (the default study, `config/config.yaml`, only when none is given).
    `overrides` (Snakemake's `--config KEY=VALUE`) are merged last. The study's `name` defaults to
    the first file's name without extension. A dataset whose source is missing, and which was
    not prepared before, is a DataError here, before any job (`check_sources`).
    """
    paths = [Path(p) for p in (paths or [DEFAULT_CONFIG])]
    config: dict = {}
    for path in paths:
        config = merge(config, load_yaml(path))
    config = merge(config, _typed(dict(overrides or {})))
    config.setdefault("name", paths[0].stem)
    study = Study(config)
    if check_sources:
        require_study_sources(study)
    return study


def require_study_sources(study: Study) -> None:
    """DataError, one line, where a dataset the study's runs use has neither its source nor a
    prepared file (`imgzoo.data.require_sources`)."""
    from imgzoo.data import require_sources

    used = dict.fromkeys(run.dataset for run in study.runs)
    require_sources({d: study.data_options(d) for d in used}, study.layout.data)


def _typed(value):
    """Snakemake reads `--config seeds=[0,1]` with YAML's base loader: every scalar inside a list
    or mapping stays a string. Read such strings as YAML would in a config file."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    if isinstance(value, str):
        try:
            return schema.coerce_numbers(yaml.safe_load(value))
        except yaml.YAMLError:
            return value
    return value


def merge(base: dict, update: dict) -> dict:
    """Recursive dict merge, as Snakemake merges --configfile arguments."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out
