"""A run's resources in the three vocabularies they pass through: imgzoo's config (`time_min`,
`mem_gb`, ...), Snakemake's resources (the train rule's, named as snakemake-executor-plugin-slurm
names them, so that either executor reads them), and submitit's parameters (what sbatch gets).

Resources are never part of a run's settings: the train rule hands them to the executor as
Snakemake resources, so changing them re-runs nothing, and a resubmitted run asks for what its
new submission says (`snakemake --set-resources train:runtime=600` included). Torch-free, light.
"""

from __future__ import annotations

import shlex

from imgzoo.errors import ConfigError

# imgzoo's resource key -> the train rule's Snakemake resource.
SNAKEMAKE_NAMES = {
    "partition": "slurm_partition",
    "account": "slurm_account",
    "qos": "qos",
    "constraint": "constraint",
    "gpus": "gpu",
    "cpus": "cpus_per_task",
    "mem_gb": "mem_mb",
    "time_min": "runtime",
    "extra_sbatch": "slurm_extra",
    "pack": "pack",
    "gpu_mem_fraction": "gpu_mem_fraction",
    "mps": "mps",
}
# How the SLURM jobs of a run are handled, from the study's `slurm:` section.
MAX_REQUEUES = "max_requeues"
LOG_FOLDER = "slurm_logs"


def as_snakemake(resources: dict, *, max_requeues: int, log_folder: str) -> dict:
    """The train rule's resources of a run (None: left out, as Snakemake leaves unset ones).
    Text where Snakemake would round a number (gpu_mem_fraction) or could not hold a list."""
    fraction = resources["gpu_mem_fraction"]
    values = {
        "partition": resources["partition"],
        "account": resources["account"],
        "qos": resources["qos"],
        "constraint": resources["constraint"],
        "gpus": resources["gpus"] or None,
        "cpus": resources["cpus"],
        "mem_gb": int(resources["mem_gb"] * 1024),
        "time_min": resources["time_min"],
        "extra_sbatch": " ".join(shlex.quote(f) for f in resources["extra_sbatch"]) or None,
        "pack": resources["pack"],
        "gpu_mem_fraction": None if fraction is None else str(fraction),
        "mps": 1 if resources["mps"] else None,
    }
    return {
        **{SNAKEMAKE_NAMES[k]: v for k, v in values.items()},
        MAX_REQUEUES: max_requeues,
        LOG_FOLDER: log_folder,
    }


def from_snakemake(job_resources) -> dict:
    """imgzoo's resources of a train job, from its Snakemake resources (a mapping)."""
    get = job_resources.get
    mem_mb, fraction = get("mem_mb"), get("gpu_mem_fraction")
    return {
        "partition": get("slurm_partition"),
        "account": get("slurm_account"),
        "qos": get("qos"),
        "constraint": get("constraint"),
        "gpus": int(get("gpu") or 0),
        "cpus": int(get("cpus_per_task") or 1),
        "mem_gb": float(mem_mb) / 1024 if mem_mb else None,
        "time_min": int(get("runtime")) if get("runtime") else None,
        "extra_sbatch": shlex.split(get("slurm_extra") or ""),
        "pack": int(get("pack") or 1),
        "gpu_mem_fraction": float(fraction) if fraction else None,
        "mps": bool(int(get("mps") or 0)),
    }


def sbatch_flags(items: list[str]) -> dict:
    """`resources.extra_sbatch` (["--exclusive", "--nodelist=n1", "--mail-type END"]) as
    submitit's `slurm_additional_parameters` ({"exclusive": True, "nodelist": "n1", ...});
    ConfigError for an item that is not a long sbatch option."""
    flags = {}
    for item in items:
        text = str(item).strip()
        if not text.startswith("--") or len(text) < 3:
            raise ConfigError(
                f"'{item}' is not a long sbatch option; write it as --name or --name=value "
                "(e.g. --exclusive, --nodelist=node1)"
            )
        key, sep, value = text[2:].partition("=")
        if not sep and " " in key:
            key, value = key.split(None, 1)
            sep = "="
        flags[key] = value if sep else True
    return flags


def submitit_parameters(resources: dict, name: str) -> dict:
    """A job's resources as `AutoExecutor.update_parameters` keywords."""
    params = {
        "name": name,
        "timeout_min": int(resources["time_min"]),
        "mem_gb": resources["mem_gb"],
        "cpus_per_task": int(resources["cpus"]),
        "nodes": 1,
        "tasks_per_node": 1,
        # SLURM may requeue the job itself too (node failure); the run resumes either way.
        "slurm_additional_parameters": {
            "requeue": True,
            **sbatch_flags(resources["extra_sbatch"]),
        },
    }
    if resources["gpus"]:
        params["gpus_per_node"] = int(resources["gpus"])
    for key in ("partition", "account", "qos", "constraint"):
        if resources.get(key):
            params[f"slurm_{key}"] = resources[key]
    return params


def pack_resources(resources: dict, size: int) -> dict:
    """What one job that runs `size` runs of these resources side by side asks for: one run's
    GPUs, time and options, the CPUs and memory of all of them."""
    return {**resources, "cpus": resources["cpus"] * size, "mem_gb": resources["mem_gb"] * size}
