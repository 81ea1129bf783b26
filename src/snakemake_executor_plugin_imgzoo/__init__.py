"""Snakemake executor `imgzoo`: every training run is one SLURM job submitted with submitit, and
this one process watches them all.

    snakemake --executor imgzoo --jobs 500 [--imgzoo-status-interval 10]   (profiles/slurm)

- `run_jobs` (`submitting.Submitting`) gets every run that is ready and submits each as a SLURM
  job that runs `imgzoo.slurm_job.TrainingJob` (requeued on its time-limit warning, resuming to
  the bit), with the experiment's resources, named `imgzoo:{dataset}:{experiment}:s{seed}`, its
  submitit files and logs in the run's SLURM log folder; or, where the experiment's
  `resources.pack` is K > 1, K ready runs of equal resources as one job that runs
  `imgzoo.slurm_job.PackJob` (each run in a process of its own, with its own log and result file
  in its own folder).
- Where sbatch's answer means "later" (a busy controller, a submit limit: `imgzoo.slurm_answers`)
  or a submit cap of the user's is full (`imgzoo.slurm_limits`), the run waits in this process
  (`imgzoo.slurm_queue`), counted by Snakemake as submitted, and is tried again in a later status
  round with backoff; a timeout's job, queued after all, is found by its batch script and kept.
  Nothing sleeps: Snakemake's scheduler and the status checks go on meanwhile (docs/slurm.md).
- `check_active_jobs` gets every active run once per status interval and asks SLURM about all of
  them in one query (`imgzoo.slurm_status`): the login node holds this process only, and SLURM
  sees one sacct call per interval however many runs are in flight. Then it submits what waits.
- `cancel_jobs` (Ctrl-C) scancels every job this process submitted.

Only the `train` rule is a job of this executor: every other rule must say `localrule: True` (it
then runs here, in Snakemake's own process tree), which is checked before anything runs. The rule's
log gets the run's job id, its state changes and the final line; a failure is also Snakemake's
error message for the rule.
"""

# No `from __future__ import annotations`: Snakemake builds the command-line options from the
# settings' field types, which must stay real types.
import threading
import time
from dataclasses import dataclass, field

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor
from snakemake_interface_executor_plugins.settings import CommonSettings, ExecutorSettingsBase

from imgzoo import slurm_limits, slurm_status, slurm_submit
from imgzoo.slurm_queue import SubmitQueue
from snakemake_executor_plugin_imgzoo.submitting import TRAINING_RULE, Submitting, note

# Per status round, how long the failure messages of jobs killed from outside may wait for
# slurmstepd's notice to reach their logs (all of them together).
LOG_WAIT_S = 3.0
# The longest wait between two tries of a submission SLURM answered "later".
RETRY_CAP_S = 300.0


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
    submit_wait: float = field(
        default=60.0,
        metadata={
            "help": "Minutes a run may wait to be submitted while SLURM answers 'later' (a "
            "busy controller, a submit limit that none of this workflow's jobs holds) and takes "
            "no job, before it fails with sbatch's last answer.",
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


class Executor(Submitting, RemoteExecutor):
    def __post_init__(self):
        settings = self.workflow.executor_settings
        interval = settings.status_interval if settings is not None else 10.0
        if interval <= 0:
            raise WorkflowError("--imgzoo-status-interval must be a positive number of seconds")
        wait_min = settings.submit_wait if settings is not None else 60.0
        if wait_min <= 0:
            raise WorkflowError("--imgzoo-submit-wait must be a positive number of minutes")
        self.next_seconds_between_status_checks = interval
        self.status_query = slurm_status.StatusQuery()
        # Runs waiting to be submitted, retried each status round: after a "later", first at
        # the next round, then after twice as long each time, at most every RETRY_CAP_S.
        self.queue = SubmitQueue(
            base_s=interval, cap_s=max(interval, RETRY_CAP_S), give_up_s=60 * wait_min
        )
        self.submit_lock = threading.RLock()  # run_jobs and the status rounds both submit
        self.limits: slurm_limits.SubmitLimits | None = None  # read at the first submission
        self.caps_told: set[str] = set()
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

    # ---- watching ----------------------------------------------------------------------------

    async def check_active_jobs(self, active_jobs):
        if not active_jobs:
            return
        in_slurm = [info for info in active_jobs if info.external_jobid]
        with self.submit_lock:
            ending = self.queue.ending()  # jobs whose runs are over: until SLURM lets them go
        states = {}
        if in_slurm or ending:
            async with self.status_rate_limiter:
                ids = [info.external_jobid for info in in_slurm] + ending
                states = self.status_query.states(ids)
        with self.submit_lock:
            for job_id in ending:
                if job_over(states.get(job_id)):
                    self.queue.job_over(job_id)
        log_deadline = time.monotonic() + LOG_WAIT_S
        for info in in_slurm:
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
            with self.submit_lock:
                job_id = info.external_jobid
                self.queue.run_over(job_id, job_over=job_over(states.get(job_id)))
            with self.in_flight_lock:
                self.in_flight.pop(id(info), None)
            if isinstance(verdict, slurm_status.Succeeded):
                note(info.job, success_line(watch.run, verdict.summary))
                self.report_job_success(info)
            else:
                note(info.job, f"imgzoo: error: {verdict.message}")
                self.report_job_error(info, msg=verdict.message)
        # The runs that wait go now where the jobs that just ended made room.
        self.submit_waiting()
        judged = {id(info) for info in in_slurm}
        for info in active_jobs:
            if id(info) in judged:
                continue
            failed = info.aux.get("failed")
            if failed is None:
                yield info  # still waiting, or submitted this round (judged from the next)
                continue
            with self.in_flight_lock:
                self.in_flight.pop(id(info), None)
            self.report_job_error(info, msg=failed)

    def print_job_error(self, job_info, msg=None, **kwargs):
        # The message names the job, its final state, what went wrong and its log already:
        # Snakemake's error report without RemoteExecutor's generic hint glued to its end.
        job_info.job.log_error(msg, external_jobid=job_info.external_jobid, **kwargs)

    def cancel_jobs(self, active_jobs):
        with self.submit_lock:
            waiting = self.queue.clear()
            # a job sbatch did not confirm may be queued all the same: cancelled too
            unconfirmed = [w.leftovers for w in waiting if w.leftovers is not None]
            queued = slurm_status.queued_scripts() if unconfirmed else None
            lost = [(queued or {}).get(str(left.script)) for left in unconfirmed]
            lost = [job_id for job_id in lost if job_id is not None]
            with self.in_flight_lock:
                infos = {id(info): info for info in active_jobs}
                infos.update(self.in_flight)
                self.in_flight.clear()
        for submission in (w.item for w in waiting):
            for job in submission.jobs:
                note(job, "imgzoo: cancelled while waiting to be submitted")
        ids = sorted({info.external_jobid for info in infos.values() if info.external_jobid})
        if not ids and not lost:
            return
        slurm_status.cancel(ids + lost)
        for info in infos.values():
            if info.external_jobid:
                note(info.job, f"imgzoo: cancelled SLURM job {info.external_jobid}")
        self.logger.info(f"cancelled {len(ids) + len(lost)} SLURM jobs: {' '.join(ids + lost)}")


def job_over(state: slurm_status.JobState | None) -> bool:
    """SLURM no longer holds the job (None: not asked about this round)."""
    return state is not None and state.over


def success_line(run: slurm_submit.SubmittedRun, summary: dict) -> str:
    acc = summary.get("final_test_acc")
    return (
        f"imgzoo: SLURM job {run.job_id} COMPLETED: {summary.get('status', 'done')} after "
        f"{summary.get('epochs_completed', '?')} epochs on {summary.get('device', '?')}"
        + (f", final test acc {acc:.4f}" if acc is not None else "")
    )
