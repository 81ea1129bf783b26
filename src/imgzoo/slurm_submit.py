"""Submitting training runs to SLURM with submitit, from the login node.

What a run's `resources` become (sbatch options, through submitit's parameters), the job's name,
and the submission itself: submitit pickles the job's callable (`imgzoo.slurm_job`) and writes its
sbatch script into a log folder, and `sbatch` queues it. A run alone in its job trains in the
job's own process (`TrainingJob`, its files in the run's own log folder); runs packed into one
job (`resources.pack`) each train in a process of their own beside the others (`PackJob`, the
job's files in `<log_dir>/packs/`, each run's log and result in its own log folder). Nothing here
waits: Snakemake's one process (`snakemake_executor_plugin_imgzoo`) watches every submitted run.

Imports nothing heavy (no torch, and submitit only inside `submit`): Snakemake loads every
executor plugin at start, local runs included.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imgzoo.errors import ConfigError, DataError, RunFailed

# Longest job name given to SLURM (a pack of many runs names them all).
NAME_LIMIT = 200


def job_name(spec: dict) -> str:
    return f"imgzoo:{spec['dataset']}:{spec['experiment']}:s{spec['seed']}"


def pack_name(specs: list[dict]) -> str:
    """The name of a job that runs several runs: `imgzoo:{dataset}:{experiment}:s{seed},{seed}`,
    `+`-joined where the pack holds more than one experiment or dataset."""
    seeds: dict[tuple[str, str], list[str]] = {}
    for spec in specs:
        seeds.setdefault((spec["dataset"], spec["experiment"]), []).append(str(spec["seed"]))
    name = "imgzoo:" + "+".join(f"{d}:{e}:s{','.join(s)}" for (d, e), s in seeds.items())
    return name if len(name) <= NAME_LIMIT else name[: NAME_LIMIT - 3] + "..."


def run_log_folder(log_dir: str, dataset: str, experiment: str, seed) -> str:
    """Where one run's SLURM jobs keep their logs and results (one folder per job id inside), and
    submitit's files where the run has its job to itself:
    `{log_dir}/{dataset}/{experiment}/seed{seed}`."""
    return f"{log_dir}/{dataset}/{experiment}/seed{seed}"


def pack_log_folder(run_folder: str) -> str:
    """Where the jobs of packs keep submitit's files and their own logs (one folder per job id
    inside): `{log_dir}/packs`, beside the folders of `run_log_folder` (`run_folder`: one of
    them)."""
    return str(Path(run_folder).parents[2] / "packs")


# In a pack's job folder: the log folders of its runs, one a line (for `imgzoo status`).
PACK_RUNS = "runs.txt"


def job_run_folders(job_folder) -> list[str]:
    """The log folders of the runs a job's folder (`<log folder>/<job id>`, where its output
    goes) belongs to: a pack's, as listed there, else the one run whose folder holds it."""
    try:
        return (Path(job_folder) / PACK_RUNS).read_text().split("\n")[:-1]
    except OSError:
        return [str(Path(job_folder).parent)]


@dataclass(frozen=True)
class RunFiles:
    result: Path  # ("success", summary) or ("error", traceback), in submitit's pickle format
    stdout: Path
    stderr: Path


def run_files(log_folder, job_id: str) -> RunFiles:
    """What a packed run's process leaves in the run's log folder, named as submitit names a job's
    own files (so a run's log is found at the same place, packed or not):
    `{job id}/{job id}_0_result.pkl` and `{job id}/{job id}_0_log.{out,err}`."""
    folder = Path(log_folder) / str(job_id)
    return RunFiles(
        result=folder / f"{job_id}_0_result.pkl",
        stdout=folder / f"{job_id}_0_log.out",
        stderr=folder / f"{job_id}_0_log.err",
    )


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


def pack_parameters(specs: list[dict]) -> dict:
    """The resources of one job that runs `specs` side by side (their resources are equal): one
    run's GPUs, time and options, the CPUs and memory of all of them."""
    if any(spec.get("resources") != specs[0].get("resources") for spec in specs):
        raise ValueError("runs packed into one SLURM job must ask for the same resources")
    params = submitit_parameters(specs[0])
    params["name"] = pack_name(specs)
    params["cpus_per_task"] *= len(specs)
    params["mem_gb"] *= len(specs)
    return params


@dataclass(frozen=True)
class TrainingRun:
    """One run as its SLURM job gets it: plain values (pickled here, read in the job), absolute
    paths (the job starts elsewhere)."""

    spec: dict
    data_path: str
    out_dir: str
    log_folder: str  # the run's own SLURM log folder (run_log_folder)
    threads: int  # torch's threads (the rule's, so that the numbers equal a local run's)
    compile_cache: str | None = None
    gpu_mem_fraction: float | None = None  # its share of the GPU's memory (None: no cap)

    @property
    def name(self) -> str:
        return job_name(self.spec)


def training_run(
    spec: dict,
    data_path,
    out_dir,
    log_folder,
    *,
    threads: int | None = None,
    compile_cache=None,
    gpu_mem_fraction: float | None = None,
) -> TrainingRun:
    """The run ready to submit, its output folder made; DataError where its prepared dataset is
    missing, ConfigError for a bad `extra_sbatch` (before anything is queued).

    `threads` None means the job's `cpus`."""
    params = submitit_parameters(spec)
    data_path, out_dir = Path(data_path).absolute(), Path(out_dir).absolute()
    if not data_path.is_file():
        raise DataError(f"{data_path}: prepared dataset missing (run `imgzoo prepare` first)")
    out_dir.mkdir(parents=True, exist_ok=True)
    return TrainingRun(
        spec=spec,
        data_path=str(data_path),
        out_dir=str(out_dir),
        log_folder=str(Path(log_folder).absolute()),
        threads=int(threads if threads is not None else params["cpus_per_task"]),
        compile_cache=str(Path(compile_cache).absolute()) if compile_cache else None,
        gpu_mem_fraction=float(gpu_mem_fraction) if gpu_mem_fraction else None,
    )


@dataclass(frozen=True)
class SubmittedRun:
    """One run in a SLURM job, and the files that tell what became of it."""

    job_id: str
    name: str
    result: Path  # written in the job: ("success", summary) or ("error", traceback)
    stdout: Path
    stderr: Path
    # A packed run: the log of the job it shares (slurmstepd's notices, the job's own errors).
    job_log: Path | None = None


def submit(runs: list[TrainingRun], *, max_requeues: int) -> list[SubmittedRun]:
    """Queue the runs as one SLURM job; RunFailed where sbatch refuses it.

    One run trains in the job's own process (`TrainingJob`); several (a pack, with equal
    resources) share the job's GPU, each in a process of its own (`PackJob`): the job asks for one
    run's GPUs and time and for all their CPUs and memory. Returns one SubmittedRun per run, in
    order, all with the job's id."""
    import submitit
    from submitit.core.utils import FailedJobError

    from imgzoo.slurm_job import PackJob, TrainingJob

    specs = [run.spec for run in runs]
    if len(runs) == 1:
        params, folder = submitit_parameters(specs[0]), runs[0].log_folder
        callable_ = TrainingJob(runs[0])
    else:
        params, folder = pack_parameters(specs), pack_log_folder(runs[0].log_folder)
        callable_ = PackJob(runs)
    try:
        executor = submitit.AutoExecutor(
            folder=Path(folder) / "%j",
            cluster="slurm",
            slurm_max_num_timeout=int(max_requeues),
        )
    except RuntimeError as e:  # no srun on PATH
        raise RunFailed(f"cannot submit {params['name']} to SLURM from here ({e})") from None
    executor.update_parameters(**params)
    try:
        with submitit.helpers.clean_env():  # a head job's SLURM_* must not leak into the run
            job = executor.submit(callable_)
    except FailedJobError as e:  # sbatch said no (its stderr is the message)
        lines = [ln for ln in str(e).splitlines() if ln.strip()]
        raise RunFailed(
            f"sbatch refused {params['name']}: {lines[-1] if lines else 'no reason given'} "
            "(check the experiment's resources: partition, gpus, mem_gb, time_min, account)"
        ) from None
    job_id, paths = str(job.job_id), job.paths
    if len(runs) == 1:
        return [SubmittedRun(job_id, runs[0].name, paths.result_pickle, paths.stdout, paths.stderr)]
    (paths.folder / PACK_RUNS).write_text("".join(f"{run.log_folder}\n" for run in runs))
    submitted = []
    for run in runs:
        files = run_files(run.log_folder, job_id)
        submitted.append(
            SubmittedRun(job_id, run.name, files.result, files.stdout, files.stderr, paths.stderr)
        )
    return submitted
