"""`imgzoo status`: where every run of a study stands, read from what the runs leave on disk.

Sources, read-only, so it never disturbs a run and works from a login node or a laptop while
Snakemake runs: the run log (`metrics.h5`: done or diverged), the run's `progress.json` (epoch,
best validation accuracy, time per epoch, who runs it), the SLURM queue (one `squeue` for all
runs: waiting or running jobs, known by the folder of their logs, which names study and run) and
the train rule's log (the one-line reason of a failure). Imports no torch.

States: done, diverged, running (epoch k of n), waiting (in the SLURM queue), stopped (has a
checkpoint's progress but nobody runs it: killed, or between a requeue and its restart), failed
(its rule's log ends in an error), not started.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import textwrap
from dataclasses import asdict, dataclass
from pathlib import Path

from imgzoo import live
from imgzoo.config import Run, Study
from imgzoo.slurm_runs import job_run_folders, run_log_folder

STATES = ("done", "diverged", "running", "waiting", "stopped", "failed", "not started")


@dataclass
class RunStatus:
    dataset: str
    experiment: str
    seed: int
    state: str
    epochs_completed: int = 0
    epochs_planned: int = 0
    best_val_acc: float | None = None
    epoch_time_s: float | None = None
    left_s: float | None = None  # estimated time to the end of the run
    reason: str = ""  # why it failed, one line
    slurm_job_id: str = ""  # the SLURM job that runs it (or ran it last), where known

    @property
    def name(self) -> str:
        return f"{self.dataset}/{self.experiment}/s{self.seed}"


def slurm_queue() -> dict[str, tuple[str, str]]:
    """This user's jobs in the SLURM queue: the log folder of each of a job's runs (which names
    its study's log folder and the run, `<log_dir>/<dataset>/<experiment>/seed<seed>`) -> (job
    id, state). {} without SLURM."""
    if shutil.which("squeue") is None:
        return {}
    try:
        out = subprocess.run(
            ["squeue", "-h", "-u", getpass.getuser(), "-O", "JobID:24|,State:24|,StdOut:4096"],
            capture_output=True, text=True, timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    queue = {}
    for line in out.stdout.splitlines():
        job_id, state, stdout = (field.strip() for field in line.split("|", 2))
        # <log folder>/%j/%j_0_log.out, %j as sbatch was given it
        for run_folder in job_run_folders(Path(stdout.replace("%j", job_id)).parent):
            queue[run_folder] = (job_id, state)
    return queue


def slurm_folder(study: Study, run: Run) -> str:
    """Where the SLURM route keeps a run's jobs' logs (one sub-folder per job), absolute."""
    log_dir = str(Path(study.slurm_log_dir).absolute())
    return run_log_folder(log_dir, run.dataset, run.experiment, run.seed)


def _alive(progress: dict) -> bool:
    """Whether the process that wrote `progress` still runs (only knowable on its own host)."""
    if progress.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(progress["pid"]), 0)
    except (ProcessLookupError, ValueError, KeyError):
        return False
    except PermissionError:
        return True
    return True


def _failure(log: Path) -> str:
    """The error line a failed train rule's log ends with, or "" if it holds none."""
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    for line in reversed(lines[-20:]):
        if line.startswith("imgzoo: error:") or "Error" in line.split(":")[0]:
            return line.removeprefix("imgzoo: error: ")
    return ""


def _finished(run_log: Path) -> tuple[str, int, float | None]:
    """(status, epochs completed, best val acc) of a finished run's log."""
    from imgzoo import runlog

    log = runlog.read(run_log)
    val = [v for v in log.epochs["val_acc"] if v == v]  # NaN-free
    return str(log.attrs["status"]), int(log.attrs["epochs_completed"]), max(val, default=None)


def run_status(study: Study, run: Run, queue: dict) -> RunStatus:
    run_dir = Path(study.run_dir(run))
    status = RunStatus(run.dataset, run.experiment, run.seed, "not started")
    status.epochs_planned = study.spec(run).train["epochs"]
    progress = live.read_progress(run_dir)
    progress_status = progress["attrs"]["status"] if progress else None
    if progress:
        history = progress["history"]
        status.epochs_completed = len(history["epoch"])
        status.best_val_acc = max(history["val_acc"], default=None)
        times = history["epoch_time"]
        status.epoch_time_s = sum(times) / len(times) if times else None
        status.slurm_job_id = progress["attrs"]["slurm_job_ids"].split(",")[-1]
    job = queue.get(slurm_folder(study, run))
    if job:
        status.slurm_job_id = job[0]
    metrics = Path(study.run_log(run))
    if metrics.exists():
        if progress and progress_status != "running":
            # the final progress.json says what the log says, and is 100x cheaper to read
            finished = progress_status
        else:
            finished, status.epochs_completed, status.best_val_acc = _finished(metrics)
        status.state = "done" if finished == "completed" else finished
        return status
    if job:
        status.state = "running" if job[1] in ("RUNNING", "COMPLETING") else "waiting"
    elif progress and progress_status == "running" and _alive(progress):
        status.state = "running"
    elif reason := _failure(Path(study.layout.train_log(run.dataset, run.experiment, run.seed))):
        status.state, status.reason = "failed", reason
    elif progress:
        status.state = "stopped"
    if status.epoch_time_s is not None and status.state in ("running", "waiting", "stopped"):
        status.left_s = (status.epochs_planned - status.epochs_completed) * status.epoch_time_s
    return status


def study_status(study: Study, queue: dict | None = None) -> tuple[list[RunStatus], dict]:
    """Every trained run's status and a summary: counts per state, runs that repeat another's
    settings, and an estimate of the time left for the whole grid."""
    queue = slurm_queue() if queue is None else queue
    runs = [run_status(study, run, queue) for run in study.trained_runs]
    counts = {state: sum(r.state == state for r in runs) for state in STATES}
    return runs, {
        "study": study.name,
        "runs": len(runs),
        "repeated_runs": len(study.runs) - len(runs),
        "counts": counts,
        "left_s": _grid_left(runs),
    }


def _grid_left(runs: list[RunStatus]) -> float | None:
    """Seconds until the grid ends at today's parallelism (runs running now, at least one):
    what each unfinished run has left, a run with no epoch yet costing what its experiment, else
    its dataset, else any run took per epoch. None while no run has timed an epoch."""
    timed = [r for r in runs if r.epoch_time_s is not None]
    if not timed:
        return None

    def per_epoch(run: RunStatus) -> float:
        for same in (
            lambda r: (r.dataset, r.experiment) == (run.dataset, run.experiment),
            lambda r: r.dataset == run.dataset,
            lambda r: True,
        ):
            times = [r.epoch_time_s for r in timed if same(r)]
            if times:
                return sum(times) / len(times)
        raise AssertionError("unreachable")

    work = 0.0
    for run in runs:
        if run.state in ("done", "diverged", "failed"):
            continue
        work += (run.epochs_planned - run.epochs_completed) * (run.epoch_time_s or per_epoch(run))
    parallel = max(1, sum(r.state == "running" for r in runs))
    return work / parallel


def current_logs(study: Study, dataset: str | None = None) -> tuple[list, list[dict], int]:
    """What the study's runs (on `dataset`, None: all) have so far, for tables and curves drawn
    before the grid ends: (a finished run's log path or an unfinished run's RunLog from its
    progress, per run that has either; `same_as` entries for `read_logs`; how many of the logs
    are unfinished)."""
    sources, unfinished = {}, 0
    for run in study.runs_of(dataset):
        if run in study.same_as:
            continue
        path = Path(study.run_log(run))
        if path.exists():
            sources[run] = path
        elif (partial := live.partial_log(study.run_dir(run))) is not None:
            sources[run] = partial
            unfinished += 1
    same_as = []
    for run, first in study.same_as.items():
        if first in sources and run.dataset in (dataset, first.dataset):
            (entry,) = study.repeats_of([run])
            source = sources[first]  # a path, or an unfinished run's RunLog
            same_as.append({**entry, "log": str(getattr(source, "path", source))})
    return list(sources.values()), same_as, unfinished


def up_to_date_logs(study: Study) -> list[str]:
    """The logs of the study's finished runs whose recorded settings (and dataset and seed) are
    the study's now: runs that need not train again, whatever Snakemake recorded of them."""
    from imgzoo import runlog
    from imgzoo.errors import RunLogError
    from imgzoo.spec import RunSpec

    logs = []
    for run in study.trained_runs:
        path = Path(study.run_log(run))
        if not path.exists():
            continue
        try:
            recorded = RunSpec.from_dict(runlog.read(path).spec)
        except (RunLogError, KeyError, TypeError, ValueError):
            continue  # unreadable: not up to date
        if recorded.key() == study.spec(run).key():
            logs.append(str(path))
    return logs


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def table(runs: list[RunStatus], summary: dict, width: int = 80) -> str:
    """The status as a text table no wider than `width` columns."""
    name_width = width - 50
    header = (
        f"{'run':<{name_width}} {'state':<11} {'epoch':>7} {'best val':>8} {'s/epoch':>9} "
        f"{'left':>9}"
    )
    lines = [header, "-" * len(header)]
    for r in runs:
        name = r.name if len(r.name) <= name_width else "…" + r.name[-(name_width - 1):]
        best = f"{100 * r.best_val_acc:.1f}%" if r.best_val_acc is not None else ""
        per_epoch = f"{r.epoch_time_s:.1f}" if r.epoch_time_s is not None else ""
        left = duration(r.left_s) if r.left_s is not None else ""
        lines.append(
            f"{name:<{name_width}} {r.state:<11} "
            f"{f'{r.epochs_completed}/{r.epochs_planned}':>7} {best:>8} "
            f"{per_epoch:>9} {left:>9}"
        )
        if r.reason:
            lines.append(("  ↳ " + r.reason)[:width])
    counts = ", ".join(f"{n} {state}" for state, n in summary["counts"].items() if n)
    footer = f"{summary['study']}: {summary['runs']} runs: {counts}"
    if summary["repeated_runs"]:
        footer += f" (+{summary['repeated_runs']} repeating another's settings)"
    lines.append("-" * len(header))
    lines.extend(textwrap.wrap(footer, width, subsequent_indent="  "))
    unfinished = sum(summary["counts"][s] for s in ("running", "waiting", "stopped", "not started"))
    if unfinished and summary["left_s"] is None:
        lines.append("time left: known once a run has finished an epoch")
    elif unfinished:
        parallel = max(1, summary["counts"]["running"])
        lines.append(f"about {duration(summary['left_s'])} left at {parallel} run(s) at a time")
    return "\n".join(line[:width].rstrip() for line in lines) + "\n"


def as_json(runs: list[RunStatus], summary: dict) -> dict:
    return {**summary, "run_states": [{**asdict(r), "name": r.name} for r in runs]}
