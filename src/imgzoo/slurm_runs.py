"""What both sides of a SLURM run share: a run as its job gets it (`TrainingRun`), the names of
jobs, and where a run's SLURM files go. The submitting side (`slurm_submit`, the executor), the
job side (`slurm_job`), `imgzoo status` and the workflow import this; it imports neither side.
Light: no torch, no submitit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imgzoo.spec import RunId, RunSpec

# Longest job name given to SLURM (a pack of many runs names them all).
NAME_LIMIT = 200
# In a pack's job folder: the log folders of its runs, one a line (for `imgzoo status`).
PACK_RUNS = "runs.txt"


def job_name(run: RunId) -> str:
    return f"imgzoo:{run.dataset}:{run.experiment}:s{run.seed}"


def pack_name(runs: list[RunId]) -> str:
    """The name of a job that runs several runs: `imgzoo:{dataset}:{experiment}:s{seed},{seed}`,
    `+`-joined where the pack holds more than one experiment or dataset."""
    seeds: dict[tuple[str, str], list[str]] = {}
    for run in runs:
        seeds.setdefault((run.dataset, run.experiment), []).append(str(run.seed))
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
    """What a run's process leaves in the run's log folder, named as submitit names a job's own
    files (so a run's log is found at the same place, packed or not):
    `{job id}/{job id}_0_result.pkl` and `{job id}/{job id}_0_log.{out,err}`."""
    folder = Path(log_folder) / str(job_id)
    return RunFiles(
        result=folder / f"{job_id}_0_result.pkl",
        stdout=folder / f"{job_id}_0_log.out",
        stderr=folder / f"{job_id}_0_log.err",
    )


@dataclass(frozen=True)
class TrainingRun:
    """One run as its SLURM job gets it: plain values (pickled on the login node, read in the
    job; JSON for a pack's processes), absolute paths (the job starts elsewhere). `spec` is the
    RunSpec as a dict, its resources those of this submission."""

    spec: dict
    data_path: str
    out_dir: str
    log_folder: str  # the run's own SLURM log folder (run_log_folder)
    threads: int  # torch's threads (the rule's, so that the numbers equal a local run's)
    compile_cache: str | None = None

    @property
    def run_spec(self) -> RunSpec:
        return RunSpec.from_dict(self.spec)

    @property
    def name(self) -> str:
        return job_name(self.run_spec.id)

    @property
    def gpu_mem_fraction(self) -> float | None:
        """Its share of the GPU's memory (None: no cap)."""
        return self.spec["resources"].get("gpu_mem_fraction")

    @property
    def mps(self) -> bool:
        """Whether its pack's processes run under NVIDIA's MPS (`resources.mps`)."""
        return bool(self.spec["resources"].get("mps"))
