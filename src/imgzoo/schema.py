"""The config's schema (`config.schema.yaml`, beside this file): the one home of every key's
meaning and default. Validation against it, its defaults, and the checks of training keys given
outside `train:`. Imports no torch (the Snakefile and a login node load it)."""

from __future__ import annotations

import copy
import re
from functools import cache
from pathlib import Path

import yaml

from imgzoo.errors import ConfigError, unknown_name

SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")

# YAML 1.1 (PyYAML, and so Snakemake's configfile) reads `1e-3` as a string; researchers write
# learning rates that way, so such strings become numbers before validation.
_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)$")


def coerce_numbers(value):
    if isinstance(value, str) and _FLOAT.match(value):
        return float(value)
    if isinstance(value, dict):
        return {k: coerce_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [coerce_numbers(v) for v in value]
    return value


@cache
def schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _properties(definition: str) -> dict:
    return schema()["$defs"][definition]["properties"]


@cache
def _absent_as() -> dict:
    return {k: p["x-absent-as"] for k, p in _properties("train").items() if "x-absent-as" in p}


def train_keys_absent_as() -> dict:
    """Training keys added after runs were made without them -> the value that behaves as those
    runs did (`x-absent-as` in the schema)."""
    return copy.deepcopy(_absent_as())


def default(*path: str):
    """The schema's default of a key given by its path of properties, e.g.
    `default("sweeps", "metric")` (a sweep's, through the `additionalProperties` of `sweeps`)."""
    node = schema()
    for key in path:
        node = _resolve_ref(node)
        props = node.get("properties", {})
        if key in props:
            node = props[key]
        else:
            node = _resolve_ref(node["additionalProperties"])["properties"][key]
    return copy.deepcopy(_resolve_ref(node)["default"])


def crop_padding_px(crop_padding: int | str, image_size: int) -> int:
    """The crop presets' padding in pixels: the train key `crop_padding` as given, or for "auto"
    an eighth of the image, the share CIFAR's customary 4 px is of 32 px. A fixed 4 px would
    move a 12-px image by a third of its width and keep little of what it shows."""
    if crop_padding == "auto":
        return image_size // 8
    if isinstance(crop_padding, bool) or not isinstance(crop_padding, int) or crop_padding < 0:
        raise ConfigError(f"crop_padding={crop_padding!r} must be a whole number of pixels >= 0 "
                          f"or auto")
    return crop_padding


def validate(config: dict) -> dict:
    """A copy of `config` checked against the schema, with its defaults filled in."""
    config = coerce_numbers(copy.deepcopy(config))
    _check(schema(), config)
    _fill_defaults(schema(), config)
    return config


def check_train_keys(where: str, keys: dict) -> None:
    """Check training keys given outside `train:` (an experiment, per_dataset, an override)."""
    _check(schema()["$defs"]["train"], keys, prefix=where)


def check_resources(where: str, resources: dict) -> None:
    _check(schema()["$defs"]["resources"], resources, prefix=where)


def _key_path(parts) -> str:
    return ".".join(str(p) for p in parts) or "<top level>"


def _check(subschema: dict, instance, prefix: str = "") -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator({**subschema, "$defs": schema()["$defs"]})
    errors = sorted(validator.iter_errors(instance), key=lambda e: (len(e.path), list(e.path)))
    if errors:
        raise _schema_error(errors[0], prefix)


def _schema_error(error, prefix: str = "") -> ConfigError:
    where = _key_path([*([prefix] if prefix else []), *error.absolute_path])
    if error.validator == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        unexpected = sorted(set(error.instance) - set(allowed))
        err = unknown_name("key", unexpected[0], allowed)
        return ConfigError(f"config '{where}': {err}")
    if error.validator == "enum":
        err = unknown_name("value", error.instance, [str(v) for v in error.validator_value])
        return ConfigError(f"config key '{where}': {err}")
    if error.validator == "pattern":
        return ConfigError(
            f"config '{where}': name '{error.instance}' may use only letters, digits and _ . + - "
            "('@' is reserved for the points of sweeps)"
        )
    if error.validator == "required":
        return ConfigError(f"config '{where}': {error.message}")
    if error.validator == "anyOf" and "description" in error.schema:
        expected = error.schema["description"]
        return ConfigError(f"config key '{where}': {error.instance!r} is not {expected}")
    return ConfigError(f"config key '{where}': {error.message}")


def _resolve_ref(node: dict) -> dict:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return {**schema()["$defs"][name], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _fill_defaults(node: dict, instance) -> None:
    node = _resolve_ref(node)
    if not isinstance(instance, dict):
        return
    for key, sub in node.get("properties", {}).items():
        # A shared definition is filled where the config holds a section of its own (`train:`,
        # `resources:`, which give a default), not where it overrides one (an experiment's
        # `resources`): defaults there would hide the study's own values.
        overrides = "$ref" in sub and "default" not in sub
        sub = _resolve_ref(sub)
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance and not overrides:
            _fill_defaults(sub, instance[key])
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        for key, value in instance.items():
            if key not in node.get("properties", {}):
                _fill_defaults(extra, value)
