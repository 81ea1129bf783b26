"""Resolution: a study's config in, its experiments out, every mistake found on the way.

`resolve(config)` validates the config against the schema (filling its defaults), checks every
name and value that can be checked without data or torch (models and their arguments, datasets
and their options, resources and sbatch flags, comparisons), and expands sweeps into
experiments. It is a pure function of the config: `imgzoo.config.Study` answers questions about
its result. Every mistake is one ConfigError naming the key.
"""

from __future__ import annotations

import copy
import itertools
import json
from dataclasses import dataclass

from imgzoo import schema
from imgzoo.errors import ConfigError, unknown_name
from imgzoo.models import arguments as model_arguments
from imgzoo.models import catalog, file_source, joint_checks, timm_names
from imgzoo.slurm_resources import sbatch_flags

EXPERIMENT_KEYS = ("model", "model_args", "datasets", "per_dataset", "resources", "published")
# Keys of a sweep point that say where it runs and what was published, not what it varies.
POINT_KEYS = ("datasets", "published")


@dataclass(frozen=True)
class Resolved:
    config: dict  # validated, defaults filled
    experiments: dict[str, dict]  # sweeps expanded; a sweep point's `sweep` names its sweep
    comparisons: list[tuple[str, str]]  # the `compare:` pairs (A, B), each once
    claims: list[dict]  # the `compare.claims`, each with its `name` and pairs as tuples


def resolve(config: dict) -> Resolved:
    config = schema.validate(config)
    check_resources("resources", config["resources"])
    train_keys = list(config["train"])
    experiments: dict[str, dict] = {}
    for name, exp in config["experiments"].items():
        _add_experiment(experiments, name, exp, config, train_keys)
    for name, sweep in config["sweeps"].items():
        for point_name, exp in _sweep_points(name, sweep, config, train_keys):
            _add_experiment(experiments, point_name, exp, config, train_keys, f"sweeps.{name}")
    _check_datasets(config, experiments)
    for name, exp in experiments.items():
        for dataset in datasets_of(config, exp):
            per_dataset = exp.get("per_dataset", {}).get(dataset, {})
            train = {**config["train"], **train_keys_of(exp), **train_keys_of(per_dataset)}
            check_train_together(_key_of(name, exp), dataset, train)
            check_model_together(_key_of(name, exp), dataset, exp, per_dataset, config)
    if len(set(config["seeds"])) != len(config["seeds"]):
        raise ConfigError("config 'seeds': a seed is listed twice")
    return Resolved(
        config,
        experiments,
        _comparisons(config["compare"], experiments, config),
        _claims(config["compare"]["claims"], experiments, config),
    )


def _key_of(name: str, exp: dict) -> str:
    """Where the config writes the experiment: its entry, or the sweep that makes its point."""
    if "sweep" in exp:
        return f"sweeps.{exp['sweep']['name']} (point {name})"
    return f"experiments.{name}"


def check_resources(where: str, resources: dict) -> None:
    """What the schema cannot see: every `extra_sbatch` item is an sbatch option."""
    try:
        sbatch_flags(resources.get("extra_sbatch", []))
    except ConfigError as e:
        raise ConfigError(f"config '{where}.extra_sbatch': {e}") from None


def check_model(where: str, model: str, model_args: dict) -> str:
    """The family of `model`; ConfigError naming the key for an unknown model, an unknown model
    argument or a bad value of one (imgzoo.models.arguments, the check `create` makes too). A
    timm architecture must be timm's, a model file must define its callable (read, not run)."""
    try:
        family, _ = catalog.resolve(model)
    except KeyError:
        raise ConfigError(f"config '{where}.model': {_unknown_model(model)}") from None
    try:
        if catalog.timm_architecture(family) is not None:
            timm_names.check(catalog.timm_architecture(family))
        elif catalog.model_file(family) is not None:
            file_source.check(*catalog.model_file(family), model_args)
    except ConfigError as e:
        raise ConfigError(f"config '{where}.model': {e}") from None
    try:
        model_arguments.check_model_args(family, model_args)
    except ConfigError as e:
        raise ConfigError(f"config '{where}.model_args': {e}") from None
    return family


def _unknown_model(model: str) -> str:
    if model.endswith(".py"):
        return f"model file '{model}' names no callable: write '{model}:build'"
    others = "; other models: timm/<architecture>, path/to/file.py:callable"
    return f"{unknown_name('model', model, catalog.known_models())}{others}"


def check_needs(where: str, model: str, model_args: dict) -> None:
    """ConfigError unless an experiment gives what its preset needs (a weights file, say)."""
    missing = catalog.missing_needs(model, model_args)
    if missing:
        raise ConfigError(f"config '{where}.model_args': model '{model}' needs {missing[0]}")


def check_train_together(where: str, dataset: str, train: dict) -> None:
    """What the schema cannot see: training keys that only make sense together."""
    if train["schedule_lag_epochs"] and train["schedule_step"] != "epoch":
        raise ConfigError(
            f"config '{where}' on {dataset}: schedule_lag_epochs "
            f"{train['schedule_lag_epochs']} needs schedule_step: epoch (the lag is in epochs)"
        )
    stats = train["input_stats"]
    if isinstance(stats, dict) and len(stats["mean"]) != len(stats["std"]):
        raise ConfigError(
            f"config '{where}' on {dataset}: input_stats has {len(stats['mean'])} means and "
            f"{len(stats['std'])} stds; give one of each per channel"
        )


def check_model_together(where: str, dataset: str, exp: dict, per_dataset: dict,
                         config: dict) -> None:
    """What the model's arguments must satisfy together and with the dataset's image size
    (imgzoo.models.joint_checks), where that size is known before the data is prepared: a
    patch size that does not divide it stops the study, not each of its jobs."""
    from imgzoo.data import image_size

    args = {**exp.get("model_args", {}), **per_dataset.get("model_args", {})}
    family, args = catalog.resolve(exp["model"], args)
    size = image_size(dataset, config["data"].get(dataset, {}))
    try:
        joint_checks.check(family, args, size)
    except ConfigError as e:
        raise ConfigError(f"config '{where}' on {dataset}: {e}") from None


def train_keys_of(mapping: dict) -> dict:
    """The training keys an experiment (or its per_dataset entry) sets."""
    return {k: v for k, v in mapping.items() if k not in (*EXPERIMENT_KEYS, "sweep")}


def datasets_of(config: dict, exp: dict) -> list[str]:
    return exp.get("datasets", config["datasets"])


def _add_experiment(experiments, name, exp, config, train_keys, where=None) -> None:
    where = where or f"experiments.{name}"
    if name in experiments:
        raise ConfigError(f"config '{where}': two experiments are named '{name}'")
    allowed = [*EXPERIMENT_KEYS, *train_keys]
    for key in exp:
        if key not in allowed and key != "sweep":
            raise ConfigError(f"config '{where}': {unknown_name('key', key, allowed)}")
    schema.check_train_keys(where, train_keys_of(exp))
    check_model(where, exp["model"], exp.get("model_args", {}))
    if "resources" in exp:
        check_resources(f"{where}.resources", exp["resources"])
    for dataset, overrides in exp.get("per_dataset", {}).items():
        here = f"{where}.per_dataset.{dataset}"
        for key in overrides:
            if key not in [*train_keys, "model_args"]:
                raise ConfigError(
                    f"config '{here}': {unknown_name('key', key, [*train_keys, 'model_args'])}"
                )
        schema.check_train_keys(here, train_keys_of(overrides))
        check_model(here, exp["model"], overrides.get("model_args", {}))
    datasets = datasets_of(config, exp)
    for dataset in datasets:
        args = {**exp.get("model_args", {}),
                **exp.get("per_dataset", {}).get(dataset, {}).get("model_args", {})}
        check_needs(where, exp["model"], args)
    for dataset in exp.get("published", {}):
        if dataset not in datasets:
            raise ConfigError(
                f"config '{where}.published.{dataset}': experiment '{name}' does not run on "
                f"dataset '{dataset}' (its datasets: {', '.join(datasets)})"
            )
    experiments[name] = exp


def _sweep_points(name: str, sweep: dict, config: dict, train_keys: list[str]):
    """(name, experiment) of every point of a sweep: its base with the point's values."""
    where = f"sweeps.{name}"
    if ("grid" in sweep) == ("points" in sweep):
        raise ConfigError(f"config '{where}': give either 'grid' or 'points'")
    base_name = sweep["base"]
    if base_name not in config["experiments"]:
        err = unknown_name("experiment", base_name, config["experiments"])
        raise ConfigError(f"config '{where}.base': {err}")
    base = config["experiments"][base_name]
    if "grid" in sweep:
        keys = list(sweep["grid"])
        points = [dict(zip(keys, v, strict=True))
                  for v in itertools.product(*(sweep["grid"][k] for k in keys))]
    else:
        points = sweep["points"]
    # what each point varies (its other keys say where it runs and what was published)
    swept = [{k: v for k, v in point.items() if k not in POINT_KEYS} for point in points]
    _check_points(where, base_name, base, points, swept, config, train_keys)
    for point, values in zip(points, swept, strict=True):
        exp = _point_experiment(base, point, values, train_keys)
        exp["sweep"] = {"name": name, "base": base_name, "values": values}
        label = ",".join(f"{k}={_format_value(v)}" for k, v in values.items())
        yield f"{base_name}@{label}", exp


def _check_points(where, base_name, base, points, swept, config, train_keys) -> None:
    """Each point sweeps known keys and runs on some of the base's datasets; each of the base's
    datasets has a point (it gets a sweep plot)."""
    # a timm or file model's own arguments are known when it is built: any key may be swept
    # (the point's experiment is checked as any other)
    model_args = model_arguments.names(catalog.resolve(base["model"])[0])
    allowed = [*train_keys, *model_args] if model_args is not None else None
    base_datasets = datasets_of(config, base)
    for i, (point, values) in enumerate(zip(points, swept, strict=True)):
        for key in values:
            if allowed is not None and key not in allowed:
                raise ConfigError(f"config '{where}': {unknown_name('key to sweep', key, allowed)}")
        if not values:
            raise ConfigError(f"config '{where}.points.{i}': a point must set a key to sweep")
        for dataset in point.get("datasets", []):
            if dataset not in base_datasets:
                raise ConfigError(
                    f"config '{where}.points.{i}.datasets': the base experiment "
                    f"'{base_name}' does not run on dataset '{dataset}' (its datasets: "
                    f"{', '.join(base_datasets)})"
                )
    for dataset in base_datasets:
        if not any(dataset in p.get("datasets", base_datasets) for p in points):
            raise ConfigError(
                f"config '{where}': no point runs on dataset '{dataset}' of the base "
                f"experiment '{base_name}'; list only the datasets the sweep covers there"
            )


def _point_experiment(base: dict, point: dict, values: dict, train_keys: list[str]) -> dict:
    """The base experiment with a point's values (and where it runs), without the base's
    published numbers, which belong to the base."""
    exp = copy.deepcopy(base)
    exp.pop("published", None)
    for key, value in values.items():
        # the swept value wins over the base's per-dataset value of the same key
        for overrides in exp.get("per_dataset", {}).values():
            holder = overrides if key in train_keys else overrides.get("model_args", {})
            holder.pop(key, None)
        if key in train_keys:
            exp[key] = value
        else:
            exp.setdefault("model_args", {})[key] = value
    for key in POINT_KEYS:
        if key in point:
            exp[key] = point[key]
    return exp


def _format_value(value) -> str:
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


def _check_datasets(config: dict, experiments: dict[str, dict]) -> None:
    from imgzoo.data import checked_options, dataset_names

    known = dataset_names(config["data"])
    for name in config["datasets"]:
        if name not in known:
            raise ConfigError(f"config 'datasets': {unknown_name('dataset', name, known)}")
    for name, exp in experiments.items():
        for dataset in exp.get("datasets", []):
            if dataset not in known:
                err = unknown_name("dataset", dataset, known)
                raise ConfigError(f"config 'experiments.{name}.datasets': {err}")
    for dataset, options in config["data"].items():
        if dataset not in known:
            raise ConfigError(f"config 'data': {unknown_name('dataset', dataset, known)}")
        try:
            checked_options(dataset, options)
        except ConfigError as e:
            raise ConfigError(f"config 'data.{dataset}': {e}") from None


def _comparisons(compare: dict, experiments: dict[str, dict], config: dict):
    """The `compare:` pairs (A, B), compared as A - B: every `pairs` entry, then every other
    experiment against the `baseline` where they share a dataset; each pair once."""

    def shared(a: str, b: str) -> bool:
        return bool(
            set(datasets_of(config, experiments[a])) & set(datasets_of(config, experiments[b]))
        )

    pairs = []
    for i, pair in enumerate(compare["pairs"]):
        where = f"compare.pairs.{i}"
        for name in pair:
            if name not in experiments:
                raise ConfigError(
                    f"config '{where}': {unknown_name('experiment', name, experiments)}"
                )
        a, b = pair
        if a == b:
            raise ConfigError(f"config '{where}': compares '{a}' with itself")
        if not shared(a, b):
            raise ConfigError(f"config '{where}': '{a}' and '{b}' share no dataset")
        pairs.append((a, b))
    baseline = compare.get("baseline")
    if baseline is not None:
        if baseline not in experiments:
            err = unknown_name("experiment", baseline, experiments)
            raise ConfigError(f"config 'compare.baseline': {err}")
        pairs += [(name, baseline) for name in experiments
                  if name != baseline and shared(name, baseline)]
    return list(dict.fromkeys(pairs))


def _claims(claims: dict, experiments: dict[str, dict], config: dict) -> list[dict]:
    """The `compare.claims`, checked: every experiment exists, every pair shares a dataset the
    claim speaks of, every dataset it names is one some pair ran on."""
    resolved = []
    for name, claim in claims.items():
        where = f"compare.claims.{name}"
        pairs = []
        for i, (a, b) in enumerate(claim["pairs"]):
            here = f"{where}.pairs.{i}"
            for experiment in (a, b):
                if experiment not in experiments:
                    err = unknown_name("experiment", experiment, experiments)
                    raise ConfigError(f"config '{here}': {err}")
            if a == b:
                raise ConfigError(f"config '{here}': compares '{a}' with itself")
            shared = set(datasets_of(config, experiments[a])) & set(
                datasets_of(config, experiments[b])
            )
            if not shared & set(claim.get("datasets", shared)):
                raise ConfigError(f"config '{here}': '{a}' and '{b}' share no dataset the claim "
                                  "speaks of")
            pairs.append((a, b, shared))
        for dataset in claim.get("datasets", []):
            if not any(dataset in shared for _, _, shared in pairs):
                raise ConfigError(f"config '{where}.datasets': no pair of the claim runs on "
                                  f"dataset '{dataset}'")
        resolved.append({**claim, "name": name, "pairs": [(a, b) for a, b, _ in pairs]})
    return resolved
