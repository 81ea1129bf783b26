"""`imgzoo train ... KEY=VALUE`: a run's settings changed by hand."""

from __future__ import annotations

import copy
from dataclasses import replace

import yaml

from imgzoo import schema
from imgzoo.config.resolve import check_model
from imgzoo.errors import ConfigError, unknown_name
from imgzoo.spec import RunSpec


def apply_overrides(spec: RunSpec, overrides: list[str]) -> RunSpec:
    """`spec` with command-line `key=value` overrides (training keys, or model_args.KEY)."""
    if not overrides:
        return spec
    train = copy.deepcopy(spec.settings.train)
    model_args = copy.deepcopy(spec.settings.model_args)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"override '{item}': expected key=value")
        value = schema.coerce_numbers(yaml.safe_load(text))
        if key.startswith("model_args."):
            arg = key.removeprefix("model_args.")
            check_model("override", spec.settings.family, {arg: value})
            model_args[arg] = value
        elif key in train:
            train[key] = value
        else:
            raise ConfigError(f"override: {unknown_name('key', key, [*train, 'model_args.*'])}")
    schema.check_train_keys("override", train)
    return spec.with_settings(replace(spec.settings, model_args=model_args, train=train))
