"""Snakemake executor `imgzoo`: every training run is one SLURM job submitted with submitit, and
this one process watches them all.

    snakemake --executor imgzoo --jobs 500 [--imgzoo-status-interval 10]   (profiles/slurm)

- `run_jobs` gets every run that is ready and submits each as a SLURM job that runs
  `imgzoo.slurm_job.TrainingJob` (requeued on its time-limit warning, resuming to the bit), with
  the experiment's resources, named `imgzoo:{dataset}:{experiment}:s{seed}`, its submitit files
  and logs in the run's SLURM log folder; or, where the experiment's `resources.pack` is K > 1,
  K ready runs of equal resources as one job that runs `imgzoo.slurm_job.PackJob` (each run in a
  process of its own, with its own log and result file in its own folder).
- `check_active_jobs` gets every active run once per status interval and asks SLURM about all of
  them in one query (`imgzoo.slurm_status`): the login node holds this process only, and SLURM
  sees one sacct call per interval however many runs are in flight.
- `cancel_jobs` (Ctrl-C) scancels every job this process submitted.

Only the `train` rule is a job of this executor: every other rule must say `localrule: True` (it
then runs here, in Snakemake's own process tree), which is checked before anything runs. The rule's
log gets the run's job id, its state changes and the final line; a failure is also Snakemake's
error message for the rule.
"""

# No `from __future__ import annotations`: Snakemake builds the command-line options from the
# settings' field types, which must stay real types.
import json
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor
from snakemake_interface_executor_plugins.settings import CommonSettings, ExecutorSettingsBase

from imgzoo import slurm_resources, slurm_status, slurm_submit
from imgzoo.errors import ImgzooError
from imgzoo.slurm_runs import pack_name
from imgzoo.spec import RunId, RunSpec, Settings

TRAINING_RULE = "train"
# Per status round, how long the failure messages of jobs killed from outside may wait for
# slurmstepd's notice to reach their logs (all of them together).
LOG_WAIT_S = 3.0


@dataclass
class ExecutorSettings(ExecutorSettingsBase):
    status_interval: float = field(
        default=10.0,
        metadata={
            "help": "Seconds between two status queries; each asks SLURM about every active "
            "training job at once (one sacct call, squeue where accounting does not answer).",
            "env_var": False,
            "required": False,
        },
    )


common_settings = CommonSettings(
    non_local_exec=True,
    implies_no_shared_fs=False,
    job_deploy_sources=False,
    # The jobs run imgzoo's training, not Snakemake: nothing of Snakemake's is passed to them.
    pass_default_storage_provider_args=False,
    pass_default_resources_args=False,
    pass_envvar_declarations_to_cmd=False,
    auto_deploy_default_storage_provider=False,
    init_seconds_before_status_checks=0,
)


class Executor(RemoteExecutor):
    def __post_init__(self):
        settings = self.workflow.executor_settings
        interval = settings.status_interval if settings is not None else 10.0
        if interval <= 0:
            raise WorkflowError("--imgzoo-status-interval must be a positive number of seconds")
        self.next_seconds_between_status_checks = interval
        self.status_query = slurm_status.StatusQuery()
        # Every job submitted and not yet reported over, for cancel_jobs: Snakemake's own list
        # of active jobs is empty while a status round runs.
        self.in_flight: dict[int, SubmittedJobInfo] = {}
        self.in_flight_lock = threading.Lock()
        remote = [
            rule.name
            for rule in self.workflow.rules
            if rule.name != TRAINING_RULE and not self.workflow.is_local(rule)
        ]
        if remote:
            raise WorkflowError(
                f"executor imgzoo submits only the '{TRAINING_RULE}' rule to SLURM; mark "
                f"{', '.join(sorted(remote))} `localrule: True`"
            )

    # ---- submitting -------------------------------------------------------------------------

    def run_jobs(self, jobs):
        for group in self.submissions(jobs):
            for job in group:
                self.run_job_pre(job)
            with ctrl_c_deferred():
                self.submit(group)

    def run_job(self, job):
        self.run_jobs([job])

    def submissions(self, jobs) -> list[list]:
        """Which ready runs share a SLURM job: runs whose experiments ask for the same resources
        and pack K > 1 go K at a time, in the order they came (the last of them, or a run ready
        alone, makes a smaller pack); every other job goes alone. Each run keeps its own rule,
        outputs and result file, and is judged on its own."""
        groups: dict[str, list] = {}
        for job in jobs:
            key = pack_key(job)
            groups.setdefault(key if key is not None else str(id(job)), []).append(job)
        submissions = []
        for group in groups.values():
            size = max(1, pack_size(group[0]))
            submissions += [group[i : i + size] for i in range(0, len(group), size)]
        return submissions

    def submit(self, group: list) -> None:
        """One SLURM job for the group's runs; a run that cannot go (no dataset, a bad option)
        fails alone, and the others go without it."""
        jobs, runs = [], []
        for job in group:
            try:
                if job.rule.name != TRAINING_RULE:
                    raise WorkflowError(f"executor imgzoo cannot run rule {job.rule.name}")
                self.workflow.async_run(job.prepare())  # stale outputs and log out, folders in
                runs.append(training_run(job))
                jobs.append(job)
            except (ImgzooError, WorkflowError, OSError) as e:
                self.fail_before_submission(job, str(e))
        if not runs:
            return
        try:
            submitted = slurm_submit.submit(runs, max_requeues=max_requeues(jobs[0]))
        except (ImgzooError, OSError) as e:
            for job in jobs:
                self.fail_before_submission(job, str(e))
            return
        grace = max(5.0, float(self.workflow.execution_settings.latency_wait))
        for job, run in zip(jobs, submitted, strict=True):
            shared = f" in a pack of {len(runs)} runs" if len(runs) > 1 else ""
            note(
                job,
                f"imgzoo: submitted SLURM job {run.job_id} ({run.name}){shared}; "
                f"logs: {run.stderr}",
            )
            info = SubmittedJobInfo(
                job, external_jobid=run.job_id, aux={"watch": slurm_status.RunWatch(run, grace)}
            )
            with self.in_flight_lock:
                self.in_flight[id(info)] = info
            self.report_job_submission(info)
        first = submitted[0]
        if len(runs) > 1:
            name = pack_name([run.run_spec.id for run in runs])
            self.logger.info(
                f"{name}: SLURM job {first.job_id}, {len(runs)} runs side by side "
                f"(logs: {first.job_log}, and each run's own)"
            )
        else:
            self.logger.info(f"{first.name}: SLURM job {first.job_id} (logs: {first.stderr})")

    def fail_before_submission(self, job, message: str) -> None:
        note(job, f"imgzoo: error: {message}")
        self.report_job_error(SubmittedJobInfo(job), msg=message)

    # ---- watching ----------------------------------------------------------------------------

    async def check_active_jobs(self, active_jobs):
        if not active_jobs:
            return
        async with self.status_rate_limiter:
            states = self.status_query.states([info.external_jobid for info in active_jobs])
        log_deadline = time.monotonic() + LOG_WAIT_S
        for info in active_jobs:
            watch: slurm_status.RunWatch = info.aux["watch"]
            before = watch.state
            verdict = watch.judge(
                states.get(info.external_jobid),
                time.monotonic(),
                log_wait_s=max(0.0, log_deadline - time.monotonic()),
            )
            if watch.state != before:
                note(info.job, f"imgzoo: SLURM job {info.external_jobid}: {watch.state}")
            if isinstance(verdict, slurm_status.Running):
                yield info
                continue
            with self.in_flight_lock:
                self.in_flight.pop(id(info), None)
            if isinstance(verdict, slurm_status.Succeeded):
                note(info.job, success_line(watch.run, verdict.summary))
                self.report_job_success(info)
            else:
                note(info.job, f"imgzoo: error: {verdict.message}")
                self.report_job_error(info, msg=verdict.message)

    def print_job_error(self, job_info, msg=None, **kwargs):
        # The message names the job, its final state, what went wrong and its log already:
        # Snakemake's error report without RemoteExecutor's generic hint glued to its end.
        job_info.job.log_error(msg, external_jobid=job_info.external_jobid, **kwargs)

    def cancel_jobs(self, active_jobs):
        with self.in_flight_lock:
            infos = {id(info): info for info in active_jobs}
            infos.update(self.in_flight)
            self.in_flight.clear()
        ids = sorted({info.external_jobid for info in infos.values() if info.external_jobid})
        if not ids:
            return
        slurm_status.cancel(ids)
        for info in infos.values():
            note(info.job, f"imgzoo: cancelled SLURM job {info.external_jobid}")
        self.logger.info(f"cancelled {len(ids)} SLURM jobs: {' '.join(ids)}")


def training_run(job) -> slurm_submit.TrainingRun:
    """The run a train job stands for, as its SLURM job gets it: its identity from the rule's
    wildcards and params, its settings from the params, its resources from the job's Snakemake
    resources (so that a new time limit or partition takes effect at once, re-running nothing)."""
    w = job.wildcards
    spec = RunSpec(
        RunId(job.params.study, w.experiment, w.dataset, int(w.seed)),
        Settings.from_dict(json.loads(job.params.settings)),
        slurm_resources.from_snakemake(job.resources),
    )
    return slurm_submit.training_run(
        spec,
        job.input.data,
        job.params.outdir,
        job.resources.get(slurm_resources.LOG_FOLDER),
        threads=job.threads,
        compile_cache=job.params.compile_cache,
    )


def max_requeues(job) -> int:
    return int(job.resources.get(slurm_resources.MAX_REQUEUES) or 0)


def pack_size(job) -> int:
    """`resources.pack` of a train job's experiment (1 for any other job)."""
    if job.rule.name != TRAINING_RULE:
        return 1
    return int(job.resources.get("pack") or 1)


def pack_key(job) -> str | None:
    """What runs must share to go into one job: the SLURM resources they ask for (the pack's
    size and each run's GPU memory share among them), threads, the requeues allowed. None: a job
    that goes alone."""
    if pack_size(job) <= 1:
        return None
    try:
        key = [slurm_resources.from_snakemake(job.resources), job.threads, max_requeues(job)]
    except (AttributeError, KeyError, TypeError, ValueError):
        return None  # submit() says what is wrong with it
    return json.dumps(key, sort_keys=True)


@contextmanager
def ctrl_c_deferred():
    """Ctrl-C (KeyboardInterrupt) waits until the submission in progress is registered, so that
    cancel_jobs knows its job: an interrupt between sbatch and the registration would leave the
    job running unseen. sbatch itself must not die of it either (a terminal's Ctrl-C reaches the
    whole process group): it may have queued the job already, and its id would be lost. SIGINT
    is blocked in this thread meanwhile, and so in the sbatch it starts (a child inherits the
    mask); here it is delivered once unblocked."""
    if threading.current_thread() is not threading.main_thread():
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)  # a held-back Ctrl-C: caught now
        signal.signal(signal.SIGINT, previous)
    if caught and callable(previous):
        previous(signal.SIGINT, None)


def note(job, line: str) -> None:
    """Append a line to the rule's log (where the run's job id, states and outcome are kept)."""
    for path in job.log:
        try:
            with open(path, "a") as f:
                print(line, file=f)
        except OSError:
            pass  # a log that cannot be written must not stop the watching


def success_line(run: slurm_submit.SubmittedRun, summary: dict) -> str:
    acc = summary.get("final_test_acc")
    return (
        f"imgzoo: SLURM job {run.job_id} COMPLETED: {summary.get('status', 'done')} after "
        f"{summary.get('epochs_completed', '?')} epochs on {summary.get('device', '?')}"
        + (f", final test acc {acc:.4f}" if acc is not None else "")
    )
