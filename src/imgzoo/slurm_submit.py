"""Submitting training runs to SLURM with submitit, from the login node.

What a run's `resources` become (sbatch options, through submitit's parameters), the job's name,
and the submission itself: submitit pickles the job's callable (`imgzoo.slurm_job`) and writes its
sbatch script into a log folder, and `sbatch` queues it. A run alone in its job trains in the
job's own process (`TrainingJob`, its files in the run's own log folder); runs packed into one
job (`resources.pack`) each train in a process of their own beside the others (`PackJob`, the
job's files in `<log_dir>/packs/`, each run's log and result in its own log folder). Nothing here
waits: Snakemake's one process (`snakemake_executor_plugin_imgzoo`) watches every submitted run,
and tries again later where sbatch's answer means "later" (`SubmitLater`; a timeout's job, found
in the queue after all, is adopted with `adopt`).

Imports nothing heavy (no torch, and submitit only inside `submit`): Snakemake loads every
executor plugin at start, local runs included.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imgzoo.errors import ConfigError, DataError, RunFailed
from imgzoo.slurm_answers import SbatchAnswer, classify
from imgzoo.slurm_resources import pack_resources, submitit_parameters
from imgzoo.slurm_runs import (
    PACK_RUNS,
    TrainingRun,
    job_name,
    pack_log_folder,
    pack_name,
    run_files,
)
from imgzoo.spec import RunSpec


def training_run(
    spec: RunSpec,
    data_path,
    out_dir,
    log_folder,
    *,
    threads: int | None = None,
    compile_cache=None,
) -> TrainingRun:
    """The run ready to submit (`spec` with the resources of this submission), its output folder
    made; DataError where its prepared dataset is missing, ConfigError for resources a job cannot
    ask for (before anything is queued). `threads` None means the job's `cpus`."""
    job_parameters(spec)  # checks them
    data_path, out_dir = Path(data_path).absolute(), Path(out_dir).absolute()
    if not data_path.is_file():
        raise DataError(f"{data_path}: prepared dataset missing (run `imgzoo prepare` first)")
    out_dir.mkdir(parents=True, exist_ok=True)
    return TrainingRun(
        spec=spec.to_dict(),
        data_path=str(data_path),
        out_dir=str(out_dir),
        log_folder=str(Path(log_folder).absolute()),
        threads=int(threads if threads is not None else spec.resources["cpus"]),
        compile_cache=str(Path(compile_cache).absolute()) if compile_cache else None,
    )


def job_parameters(spec: RunSpec) -> dict:
    """The submitit parameters of a job that runs `spec` alone."""
    missing = [k for k in ("time_min", "mem_gb", "cpus") if spec.resources.get(k) is None]
    if missing:
        raise ConfigError(f"{spec.id.name}: no {', '.join(missing)} among its job's resources")
    return submitit_parameters(spec.resources, job_name(spec.id))


def pack_parameters(specs: list[RunSpec]) -> dict:
    """The submitit parameters of one job that runs `specs` side by side (their resources are
    equal): one run's GPUs, time and options, the CPUs and memory of all of them."""
    if any(spec.resources != specs[0].resources for spec in specs):
        raise ValueError("runs packed into one SLURM job must ask for the same resources")
    resources = pack_resources(specs[0].resources, len(specs))
    return submitit_parameters(resources, pack_name([spec.id for spec in specs]))


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


class SubmitLater(Exception):
    """sbatch answered "later" (a busy controller, a submit limit): try again in a while.
    `leftovers`: where the answer may have queued the job anyway (a timeout), this attempt's
    files, to adopt the job if the queue shows it (`adopt`), else to remove."""

    def __init__(self, answer: SbatchAnswer, leftovers: Leftovers | None):
        super().__init__(answer.reason)
        self.answer = answer
        self.leftovers = leftovers


@dataclass(frozen=True)
class Leftovers:
    """What submitit wrote for a submission that sbatch did not confirm: its batch script (the
    command of the job, should SLURM have queued it) and the pickled callable, which the job
    reads from its own folder."""

    folder: Path  # submitit's folder pattern, `<log folder>/%j`
    script: Path
    callable_pickle: Path | None

    def remove(self) -> None:
        for path in (self.script, self.callable_pickle):
            if path is not None:
                path.unlink(missing_ok=True)


def submit(runs: list[TrainingRun], *, max_requeues: int) -> list[SubmittedRun]:
    """Queue the runs as one SLURM job; RunFailed where sbatch refuses it for good, SubmitLater
    where its answer means "later" (`imgzoo.slurm_answers`).

    One run trains in the job's own process (`TrainingJob`); several (a pack, with equal
    resources) share the job's GPU, each in a process of its own (`PackJob`): the job asks for one
    run's GPUs and time and for all their CPUs and memory. Returns one SubmittedRun per run, in
    order, all with the job's id."""
    import submitit
    from submitit.core.utils import FailedJobError

    from imgzoo.slurm_job import PackJob, TrainingJob  # the job side: imported to submit only

    specs = [run.run_spec for run in runs]
    if len(runs) == 1:
        params, folder = job_parameters(specs[0]), runs[0].log_folder
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
    before = _unconfirmed_files(folder)
    try:
        with submitit.helpers.clean_env():  # a head job's SLURM_* must not leak into the run
            job = executor.submit(callable_)
    except FailedJobError as e:  # sbatch said no (its stderr is the message)
        answer = classify(str(e))
        leftovers = _leftovers(folder, before)
        if leftovers is not None and not answer.may_have_queued:
            leftovers.remove()
            leftovers = None
        if answer.later:
            raise SubmitLater(answer, leftovers) from None
        raise RunFailed(
            f"sbatch refused {params['name']}: {answer.reason} "
            "(check the experiment's resources: partition, gpus, mem_gb, time_min, account)"
        ) from None
    return submitted_runs(runs, str(job.job_id), job.paths)


def adopt(runs: list[TrainingRun], leftovers: Leftovers, job_id: str) -> list[SubmittedRun]:
    """The runs of a submission whose sbatch answered "later" although SLURM queued its job
    `job_id` (found in the queue by its batch script): its files are put where the job and
    the login node look for them, as submitit does after a confirmed submission."""
    from submitit.core.utils import JobPaths

    paths = JobPaths(leftovers.folder, job_id=job_id, task_id=0)
    if leftovers.callable_pickle is not None:
        paths.move_temporary_file(leftovers.callable_pickle, "submitted_pickle")
    paths.move_temporary_file(leftovers.script, "submission_file", keep_as_symlink=True)
    return submitted_runs(runs, job_id, paths)


def submitted_runs(runs: list[TrainingRun], job_id: str, paths) -> list[SubmittedRun]:
    """One SubmittedRun per run of job `job_id` (`paths`: submitit's JobPaths of the job)."""
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


# submitit writes a submission's batch script and pickled callable into the folder first, under
# temporary names, and moves them into the job's folder once sbatch has named the job.
_SCRIPTS, _PICKLES = ".submission_file_*.sh", "*.pkl"


def _unconfirmed_files(folder) -> set[Path]:
    folder = Path(folder)
    return set(folder.glob(_SCRIPTS)) | set(folder.glob(_PICKLES)) if folder.is_dir() else set()


def _leftovers(folder, before: set[Path]) -> Leftovers | None:
    """The files of the attempt that just failed: those that were not there before it (the
    executor submits one job at a time)."""
    new = _unconfirmed_files(folder) - before
    scripts = [p for p in new if p.match(_SCRIPTS)]
    pickles = [p for p in new if p.match(_PICKLES)]
    if len(scripts) != 1 or len(pickles) > 1:
        for path in new:
            path.unlink(missing_ok=True)
        return None
    return Leftovers(Path(folder) / "%j", scripts[0], pickles[0] if pickles else None)
