"""Load, validate and resolve the workflow config into runs.

One place decides what a run is: `Study.runs` lists every (dataset, experiment, seed) and
`Study.run_spec` gives the fully resolved settings of one run; the Snakefile, the command line
and the launchers all go through here. Validation happens before any job runs and every mistake
is one ConfigError naming the key. Imports no torch: the Snakefile and a login node load this.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from imgzoo.errors import ConfigError, unknown_name
from imgzoo.models import arguments as model_arguments
from imgzoo.models import catalog
from imgzoo.paths import Layout

SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")

# How runs share a SLURM job, not what a job asks for nor what a run computes: kept out of the
# run spec (and so out of the train rule's params), so that packing runs, or not, never re-runs a
# finished run or discards a checkpoint. The train rule gives them to the executor as resources.
SHARING_KEYS = ("pack", "gpu_mem_fraction")
EXPERIMENT_KEYS = ("model", "model_args", "datasets", "per_dataset", "resources", "published")
# Keys of a sweep point that say where it runs and what was published, not what it varies.
POINT_KEYS = ("datasets", "published")


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


def train_defaults() -> dict:
    props = schema()["$defs"]["train"]["properties"]
    return {key: copy.deepcopy(p["default"]) for key, p in props.items()}


def resource_defaults() -> dict:
    """The resource keys whose defaults the schema holds."""
    props = schema()["$defs"]["resources"]["properties"]
    return {key: copy.deepcopy(p["default"]) for key, p in props.items() if "default" in p}


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


# ---- schema validation ----------------------------------------------------------------------


def _key_path(parts) -> str:
    return ".".join(str(p) for p in parts) or "<top level>"


def validate(config: dict) -> dict:
    """A copy of `config` checked against the schema, with its defaults filled in."""
    config = coerce_numbers(copy.deepcopy(config))
    _check(schema(), config)
    _fill_defaults(schema(), config)
    return config


def check_train_keys(where: str, keys: dict) -> None:
    """Check training keys given outside `train:` (an experiment, per_dataset, an override)."""
    _check(schema()["$defs"]["train"], keys, prefix=where)


def _check(subschema: dict, instance, prefix: str = "") -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(subschema)
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


# ---- model arguments, checked without importing torch -----------------------------------------


def _check_model(where: str, model: str, model_args: dict) -> str:
    """The family of `model`; ConfigError naming the key for an unknown model, an unknown model
    argument or a bad value of one (imgzoo.models.arguments, the check `create` makes too)."""
    try:
        family, _ = catalog.resolve(model)
    except KeyError:
        raise ConfigError(
            f"config '{where}.model': {unknown_name('model', model, catalog.known_models())}"
        ) from None
    try:
        model_arguments.check_model_args(family, model_args)
    except ConfigError as e:
        raise ConfigError(f"config '{where}.model_args': {e}") from None
    return family


# ---- the study: experiments x datasets x seeds ------------------------------------------------


@dataclass(frozen=True)
class Run:
    dataset: str
    experiment: str
    seed: int


class Study:
    """A validated config, with sweeps expanded into experiments.

    `name` decides where the study's files go (`layout`: results/<name>/...). Runs whose
    resolved settings are identical (a sweep point equal to its base, say) are trained once:
    `same_as` maps each such run to the first run with its settings, and `trained_runs` leaves
    them out.
    """

    def __init__(self, config: dict):
        from imgzoo.data import checked_options, dataset_names

        self.config = validate(config)
        self.name = self.config["name"]
        self.layout = Layout(self.name)
        slurm = self.config["slurm"]
        slurm["log_dir"] = slurm["log_dir"] or self.layout.log("slurm")
        self.train = self.config["train"]
        self.experiments: dict[str, dict] = {}
        for name, exp in self.config["experiments"].items():
            self._add_experiment(name, exp)
        self.sweeps = self.config["sweeps"]
        for name, sweep in self.sweeps.items():
            self._expand_sweep(name, sweep)
        known = dataset_names(self.config["data"])
        for name in self.config["datasets"]:
            if name not in known:
                raise ConfigError(f"config 'datasets': {unknown_name('dataset', name, known)}")
        for name, exp in self.experiments.items():
            for dataset in exp.get("datasets", []):
                if dataset not in known:
                    err = unknown_name("dataset", dataset, known)
                    raise ConfigError(f"config 'experiments.{name}.datasets': {err}")
        for dataset, options in self.config["data"].items():
            if dataset not in known:
                raise ConfigError(f"config 'data': {unknown_name('dataset', dataset, known)}")
            try:
                checked_options(dataset, options)
            except ConfigError as e:
                raise ConfigError(f"config 'data.{dataset}': {e}") from None
        if len(set(self.config["seeds"])) != len(self.config["seeds"]):
            raise ConfigError("config 'seeds': a seed is listed twice")
        self.same_as = self._find_repeated_runs()
        self.comparisons()  # unknown names in `compare:` stop the workflow before any job

    def _add_experiment(self, name: str, exp: dict, where: str | None = None) -> None:
        where = where or f"experiments.{name}"
        if name in self.experiments:
            raise ConfigError(f"config '{where}': two experiments are named '{name}'")
        allowed = [*EXPERIMENT_KEYS, *self.train]
        for key in exp:
            if key not in allowed and key != "sweep":
                raise ConfigError(f"config '{where}': {unknown_name('key', key, allowed)}")
        check_train_keys(where, _train_keys(exp))
        _check_model(where, exp["model"], exp.get("model_args", {}))
        for dataset, overrides in exp.get("per_dataset", {}).items():
            for key in overrides:
                if key not in [*self.train, "model_args"]:
                    err = unknown_name("key", key, [*self.train, "model_args"])
                    raise ConfigError(f"config '{where}.per_dataset.{dataset}': {err}")
            check_train_keys(f"{where}.per_dataset.{dataset}", _train_keys(overrides))
            _check_model(
                f"{where}.per_dataset.{dataset}", exp["model"], overrides.get("model_args", {})
            )
        datasets = exp.get("datasets", self.config["datasets"])
        for dataset in exp.get("published", {}):
            if dataset not in datasets:
                raise ConfigError(
                    f"config '{where}.published.{dataset}': experiment '{name}' does not run on "
                    f"dataset '{dataset}' (its datasets: {', '.join(datasets)})"
                )
        self.experiments[name] = exp

    def _expand_sweep(self, name: str, sweep: dict) -> None:
        where = f"sweeps.{name}"
        if ("grid" in sweep) == ("points" in sweep):
            raise ConfigError(f"config '{where}': give either 'grid' or 'points'")
        base_name = sweep["base"]
        if base_name not in self.config["experiments"]:
            err = unknown_name("experiment", base_name, self.config["experiments"])
            raise ConfigError(f"config '{where}.base': {err}")
        base = self.config["experiments"][base_name]
        family, _ = catalog.resolve(base["model"])
        if "grid" in sweep:
            keys = list(sweep["grid"])
            points = [dict(zip(keys, v, strict=True))
                      for v in itertools.product(*(sweep["grid"][k] for k in keys))]
        else:
            points = sweep["points"]
        allowed = [*self.train, *model_arguments.names(family)]
        base_datasets = base.get("datasets", self.config["datasets"])
        # what each point varies (its other keys say where it runs and what was published)
        swept = [{k: v for k, v in point.items() if k not in POINT_KEYS} for point in points]
        for i, (point, values) in enumerate(zip(points, swept, strict=True)):
            for key in values:
                if key not in allowed:
                    err = unknown_name("key to sweep", key, allowed)
                    raise ConfigError(f"config '{where}': {err}")
            if not values:
                raise ConfigError(f"config '{where}.points.{i}': a point must set a key to sweep")
            for dataset in point.get("datasets", []):
                if dataset not in base_datasets:
                    raise ConfigError(
                        f"config '{where}.points.{i}.datasets': the base experiment "
                        f"'{base_name}' does not run on dataset '{dataset}' (its datasets: "
                        f"{', '.join(base_datasets)})"
                    )
        # every dataset of the base gets a sweep plot, so each needs at least one point
        for dataset in base_datasets:
            if not any(dataset in p.get("datasets", base_datasets) for p in points):
                raise ConfigError(
                    f"config '{where}': no point runs on dataset '{dataset}' of the base "
                    f"experiment '{base_name}'; list only the datasets the sweep covers there"
                )
        for point, values in zip(points, swept, strict=True):
            exp = copy.deepcopy(base)
            exp.pop("published", None)  # the base's numbers belong to the base
            for key, value in values.items():
                # the swept value wins over the base's per-dataset value of the same key
                for overrides in exp.get("per_dataset", {}).values():
                    holder = overrides if key in self.train else overrides.get("model_args", {})
                    holder.pop(key, None)
                if key in self.train:
                    exp[key] = value
                else:
                    exp.setdefault("model_args", {})[key] = value
            for key in POINT_KEYS:
                if key in point:
                    exp[key] = point[key]
            exp["sweep"] = {"name": name, "base": base_name, "values": values}
            label = ",".join(f"{k}={_format_value(v)}" for k, v in values.items())
            self._add_experiment(f"{base_name}@{label}", exp, where=where)

    def published(self) -> list[dict]:
        """The published numbers, one dict per (experiment, dataset): experiment, dataset,
        value (percent), measures, source and note ("" when the config gives none)."""
        return [
            {
                "experiment": name,
                "dataset": dataset,
                "value": float(entry["value"]),
                "measures": entry["measures"],
                "source": entry["source"],
                "note": entry.get("note", ""),
            }
            for name, exp in self.experiments.items()
            for dataset, entry in exp.get("published", {}).items()
        ]

    def datasets_of(self, experiment: str) -> list[str]:
        return self.experiments[experiment].get("datasets", self.config["datasets"])

    @property
    def runs(self) -> list[Run]:
        return [
            Run(dataset, name, seed)
            for name in self.experiments
            for dataset in self.datasets_of(name)
            for seed in self.config["seeds"]
        ]

    @property
    def trained_runs(self) -> list[Run]:
        """The runs that train: every run but those that repeat an earlier run's settings."""
        return [run for run in self.runs if run not in self.same_as]

    def _find_repeated_runs(self) -> dict[Run, Run]:
        first: dict[str, Run] = {}
        repeats = {}
        for run in self.runs:
            key = settings_key(self.run_spec(run.dataset, run.experiment, run.seed))
            if key in first:
                repeats[run] = first[key]
            else:
                first[key] = run
        return repeats

    def run_dir(self, run: Run) -> str:
        return self.layout.run_dir(run.dataset, run.experiment, run.seed)

    def run_log(self, run: Run) -> str:
        return self.layout.run_log(run.dataset, run.experiment, run.seed)

    def runs_of(self, dataset: str | None = None, sweep: str | None = None) -> list[Run]:
        """The runs on one dataset, or of one sweep, or both (None: any)."""
        return [
            run
            for run in self.runs
            if dataset in (None, run.dataset)
            and sweep in (None, self.experiments[run.experiment].get("sweep", {}).get("name"))
        ]

    def logs_of(self, runs: list[Run]) -> list[str]:
        """The run logs that hold the numbers of `runs`, each once, in the order of `runs`
        (a run that repeats another's settings is read from that run's log)."""
        return list(dict.fromkeys(self.run_log(self.same_as.get(run, run)) for run in runs))

    def repeats_of(self, runs: list[Run]) -> list[dict]:
        """For each of `runs` that repeats an earlier run: the log that holds its numbers and the
        name (and sweep) to show them under. The aggregation commands take this (`--same-as`)."""
        return [
            {
                "log": self.run_log(self.same_as[run]),
                "experiment": run.experiment,
                "sweep": self.experiments[run.experiment].get("sweep"),
            }
            for run in runs
            if run in self.same_as
        ]

    def comparisons(self) -> list[tuple[str, str]]:
        """The `compare:` pairs (A, B), compared as A - B: every `pairs` entry, then every other
        experiment against the `baseline` where they share a dataset; each pair once."""
        compare = self.config["compare"]
        pairs = []
        for i, pair in enumerate(compare["pairs"]):
            where = f"compare.pairs.{i}"
            for name in pair:
                if name not in self.experiments:
                    err = unknown_name("experiment", name, self.experiments)
                    raise ConfigError(f"config '{where}': {err}")
            a, b = pair
            if a == b:
                raise ConfigError(f"config '{where}': compares '{a}' with itself")
            if not set(self.datasets_of(a)) & set(self.datasets_of(b)):
                raise ConfigError(f"config '{where}': '{a}' and '{b}' share no dataset")
            pairs.append((a, b))
        baseline = compare.get("baseline")
        if baseline is not None:
            if baseline not in self.experiments:
                err = unknown_name("experiment", baseline, self.experiments)
                raise ConfigError(f"config 'compare.baseline': {err}")
            pairs += [
                (name, baseline)
                for name in self.experiments
                if name != baseline
                and set(self.datasets_of(name)) & set(self.datasets_of(baseline))
            ]
        return list(dict.fromkeys(pairs))

    def data_options(self, dataset: str) -> dict:
        return dict(self.config["data"].get(dataset, {}))

    def resources(self, experiment: str) -> dict:
        return {
            **self.config["resources"],  # the schema's defaults filled in
            **self.experiments[experiment].get("resources", {}),
        }

    def run_spec(self, dataset: str, experiment: str, seed: int) -> dict:
        """Everything one run needs, resolved: what the train command gets and the log keeps."""
        if experiment not in self.experiments:
            raise ConfigError(
                f"experiment: {unknown_name('experiment', experiment, self.experiments)}"
            )
        exp = self.experiments[experiment]
        if dataset not in self.datasets_of(experiment):
            raise ConfigError(
                f"experiment '{experiment}' does not run on dataset '{dataset}' "
                f"(its datasets: {', '.join(self.datasets_of(experiment))})"
            )
        per_dataset = exp.get("per_dataset", {}).get(dataset, {})
        train = {**self.train, **_train_keys(exp), **_train_keys(per_dataset)}
        family, model_args = catalog.resolve(
            exp["model"], {**exp.get("model_args", {}), **per_dataset.get("model_args", {})}
        )
        spec = {
            "experiment": experiment,
            "dataset": dataset,
            "seed": int(seed),
            "model": exp["model"],  # as configured: a family or a preset
            "family": family,
            "model_args": model_args,
            "train": train,
            "data": self.data_options(dataset),
            "resources": {
                k: v for k, v in self.resources(experiment).items() if k not in SHARING_KEYS
            },
        }
        if "sweep" in exp:
            spec["sweep"] = exp["sweep"]
        return spec


def settings_key(spec: dict) -> str:
    """What decides a run's numbers (the family and its arguments, not the names of experiment,
    preset or SLURM resources), as a comparable string:
    two runs with the same key train the same model on the same data with the same seed."""
    decisive = ("dataset", "seed", "family", "model_args", "train", "data")
    return json.dumps({k: spec[k] for k in decisive}, sort_keys=True)


def _train_keys(mapping: dict) -> dict:
    return {k: v for k, v in mapping.items() if k not in (*EXPERIMENT_KEYS, "sweep")}


def _format_value(value) -> str:
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


def apply_overrides(spec: dict, overrides: list[str]) -> dict:
    """Apply command-line `key=value` overrides (train keys, or model_args.KEY) to a run spec."""
    spec = copy.deepcopy(spec)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"override '{item}': expected key=value")
        value = coerce_numbers(yaml.safe_load(text))
        if key.startswith("model_args."):
            arg = key.removeprefix("model_args.")
            _check_model("override", spec["family"], {arg: value})
            spec["model_args"][arg] = value
        elif key in spec["train"]:
            spec["train"][key] = value
        else:
            raise ConfigError(
                f"override: {unknown_name('key', key, [*spec['train'], 'model_args.*'])}"
            )
    check_train_keys("override", spec["train"])
    return spec


DEFAULT_CONFIG = "config/config.yaml"


def load_study(paths: list[str | Path] | None = None, overrides: dict | None = None, *,
               check_sources: bool = True) -> Study:
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
        from imgzoo.data import require_sources

        used = dict.fromkeys(run.dataset for run in study.runs)
        require_sources({d: study.data_options(d) for d in used}, study.layout.data)
    return study


def _typed(value):
    """Snakemake reads `--config seeds=[0,1]` with YAML's base loader: every scalar inside a list
    or mapping stays a string. Read such strings as YAML would in a config file."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    if isinstance(value, str):
        try:
            return coerce_numbers(yaml.safe_load(value))
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
