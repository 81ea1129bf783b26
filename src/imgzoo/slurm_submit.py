"""Submitting one training run to SLURM with submitit, from the login node.

What a run's `resources` become (sbatch options, through submitit's parameters), the job's name,
and the submission itself: submitit pickles `imgzoo.slurm_job.TrainingJob` and writes its sbatch
script into the run's own log folder, and `sbatch` queues it. Nothing here waits: Snakemake's
one process (`snakemake_executor_plugin_imgzoo`) watches every submitted run at once.

Imports nothing heavy (no torch, and submitit only inside `submit`): Snakemake loads every
executor plugin at start, local runs included.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imgzoo.errors import ConfigError, DataError, RunFailed


def job_name(spec: dict) -> str:
    return f"imgzoo:{spec['dataset']}:{spec['experiment']}:s{spec['seed']}"


def run_log_folder(log_dir: str, dataset: str, experiment: str, seed) -> str:
    """Where one run's SLURM jobs keep submitit's files and their logs (one folder per job id
    inside): `{log_dir}/{dataset}/{experiment}/seed{seed}`."""
    return f"{log_dir}/{dataset}/{experiment}/seed{seed}"


def sbatch_flags(items: list[str]) -> dict:
    """`resources.extra_sbatch` (["--exclusive", "--nodelist=n1", "--mail-type END"]) as
    submitit's `slurm_additional_parameters` ({"exclusive": True, "nodelist": "n1", ...})."""
    flags = {}
    for item in items:
        text = str(item).strip()
        if not text.startswith("--") or len(text) < 3:
            raise ConfigError(
                f"config 'resources.extra_sbatch': '{item}' is not a long sbatch option; write "
                "it as --name or --name=value (e.g. --exclusive, --nodelist=node1)"
            )
        key, sep, value = text[2:].partition("=")
        if not sep and " " in key:
            key, value = key.split(None, 1)
            sep = "="
        flags[key] = value if sep else True
    return flags


def submitit_parameters(spec: dict) -> dict:
    """The run's resources as `AutoExecutor.update_parameters` keywords."""
    from imgzoo.config import resource_defaults

    res = {**resource_defaults(), **spec.get("resources", {})}
    params = {
        "name": job_name(spec),
        "timeout_min": int(res["time_min"]),
        "mem_gb": res["mem_gb"],
        "cpus_per_task": int(res["cpus"]),
        "nodes": 1,
        "tasks_per_node": 1,
        # SLURM may requeue the job itself too (node failure); the run resumes either way.
        "slurm_additional_parameters": {"requeue": True, **sbatch_flags(res["extra_sbatch"])},
    }
    if res["gpus"]:
        params["gpus_per_node"] = int(res["gpus"])
    for key in ("partition", "account", "qos", "constraint"):
        if res.get(key):
            params[f"slurm_{key}"] = res[key]
    return params


@dataclass(frozen=True)
class SubmittedRun:
    """One run in a SLURM job, and the files that tell what became of it."""

    job_id: str
    name: str
    result: Path  # written by submitit in the job: ("success", summary) or ("error", traceback)
    stdout: Path
    stderr: Path


def submit(
    spec: dict,
    data_path,
    out_dir,
    log_folder,
    *,
    max_requeues: int,
    threads: int | None = None,
    compile_cache=None,
) -> SubmittedRun:
    """Queue the run as one SLURM job; RunFailed where sbatch refuses it.

    `max_requeues`: the study's `slurm.max_requeues` (the schema holds its default).
    `threads` is what the job gives torch (the rule's own `threads`, so that the numbers equal a
    local run: CPU results depend on the thread count); None means the job's `cpus`."""
    import submitit
    from submitit.core.utils import FailedJobError

    from imgzoo.slurm_job import TrainingJob

    params = submitit_parameters(spec)  # a bad extra_sbatch fails before anything is written
    data_path, out_dir = Path(data_path).absolute(), Path(out_dir).absolute()
    if not data_path.is_file():
        raise DataError(f"{data_path}: prepared dataset missing (run `imgzoo prepare` first)")
    out_dir.mkdir(parents=True, exist_ok=True)
    if threads is None:
        threads = int(params["cpus_per_task"])
    try:
        executor = submitit.AutoExecutor(
            folder=Path(log_folder).absolute() / "%j",
            cluster="slurm",
            slurm_max_num_timeout=int(max_requeues),
        )
    except RuntimeError as e:  # no srun on PATH
        raise RunFailed(f"cannot submit {job_name(spec)} to SLURM from here ({e})") from None
    executor.update_parameters(**params)
    try:
        with submitit.helpers.clean_env():  # a head job's SLURM_* must not leak into the run
            cache = str(Path(compile_cache).absolute()) if compile_cache else None
            job = executor.submit(
                TrainingJob(spec, str(data_path), str(out_dir), threads, compile_cache=cache)
            )
    except FailedJobError as e:  # sbatch said no (its stderr is the message)
        lines = [ln for ln in str(e).splitlines() if ln.strip()]
        raise RunFailed(
            f"sbatch refused {job_name(spec)}: {lines[-1] if lines else 'no reason given'} "
            "(check the experiment's resources: partition, gpus, mem_gb, time_min, account)"
        ) from None
    paths = job.paths
    return SubmittedRun(
        job_id=str(job.job_id),
        name=job_name(spec),
        result=paths.result_pickle,
        stdout=paths.stdout,
        stderr=paths.stderr,
    )
