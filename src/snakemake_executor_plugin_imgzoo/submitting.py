"""The submitting half of the executor `imgzoo`: ready runs to SLURM jobs, now where SLURM takes
them, else later.

`Submitting.run_jobs` gets the runs that are ready, groups them into submissions (packs), and
submits each now unless SLURM said "later" a moment ago or a submit cap is full; the others wait
in a `SubmitQueue` (imgzoo.slurm_queue), counted by Snakemake as submitted, and
`submit_waiting`, called again every status round, submits them as the backoff and the caps allow.
Nothing waits here: a busy controller costs one sbatch per try, never a stalled scheduler. The
executor (`snakemake_executor_plugin_imgzoo.Executor`) mixes this in and watches what it submits.
"""

import json
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo

from imgzoo import slurm_limits, slurm_resources, slurm_status, slurm_submit
from imgzoo.errors import ImgzooError
from imgzoo.slurm_queue import Waiting
from imgzoo.slurm_runs import pack_name
from imgzoo.spec import RunId, RunSpec, Settings

TRAINING_RULE = "train"


class Submitting:
    """The executor's submissions (a mixin of `Executor`, which sets `queue`, `submit_lock`,
    `limits`, `caps_told`, `in_flight` and `in_flight_lock` in its __post_init__)."""

    def run_jobs(self, jobs):
        """Submit the ready runs now where SLURM takes them; the others wait in `self.queue`
        (SLURM said "later", or a submit cap is full), counted by Snakemake as submitted, and
        are tried again in later status rounds: nothing here waits."""
        with self.submit_lock:
            for group in self.submissions(jobs):
                for job in group:
                    self.run_job_pre(job)
                submission = self.prepared(group)
                if submission is not None:
                    self.queue.add(Waiting(submission, submission.name, self.caps(submission)))
            self.submit_waiting()
            for waiting in self.queue.waiting:
                if waiting.item.infos is None:
                    self.register_waiting(waiting)

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

    def prepared(self, group: list) -> "Submission | None":
        """The group's runs, ready for one SLURM job; a run that cannot go (no dataset, a bad
        option) fails alone, and the others go without it."""
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
        return Submission(jobs, runs) if runs else None

    def caps(self, submission: "Submission") -> dict[str, int]:
        """The submit caps the submission's job counts against, read from SLURM's accounting
        at the first submission (none where it does not answer: Snakemake's --jobs then)."""
        if self.limits is None:
            self.limits = slurm_limits.read_limits() or slurm_limits.NO_LIMITS
        caps = self.limits.of(submission.runs[0].run_spec.resources)
        for cap, most in caps.items():
            if cap not in self.caps_told:
                self.caps_told.add(cap)
                self.logger.info(
                    f"SLURM lets this user queue at most {most} jobs ({cap}): runs beyond that "
                    "wait here and go as jobs end"
                )
        return caps

    def submit_waiting(self) -> None:
        """One round of submissions: find the jobs of answers that may have queued them anyway
        (one squeue for all), then submit in order what the caps and the backoff allow, up to
        SLURM's first "later"."""
        with self.submit_lock:
            self.confirm_unconfirmed()
            now = time.monotonic()
            for waiting in self.queue.due(now):
                if not self.try_submit(waiting, now):
                    break

    def confirm_unconfirmed(self) -> None:
        """A submission whose sbatch timed out is adopted where its batch script is the command
        of a job in the queue (no second job for it), else submitted again in turn. Where
        squeue does not answer either, the next round asks again."""
        unconfirmed = self.queue.unconfirmed()
        if not unconfirmed:
            return
        queued = slurm_status.queued_scripts()
        if queued is None:  # squeue does not answer either: ask again next round
            return
        for waiting in unconfirmed:
            leftovers, waiting.leftovers = waiting.leftovers, None
            job_id = queued.get(str(leftovers.script))
            if job_id is None:
                leftovers.remove()
                continue
            self.queue.remove(waiting)
            try:
                runs = slurm_submit.adopt(waiting.item.runs, leftovers, job_id)
            except OSError as e:  # its files cannot be put in place: the job cannot run it
                slurm_status.cancel([job_id])
                self.fail(
                    waiting.item,
                    f"SLURM queued job {job_id} for {waiting.name} after "
                    f"sbatch timed out, but its files could not be moved there ({e})",
                )
                continue
            for job in waiting.item.jobs:
                note(
                    job,
                    f"imgzoo: sbatch answered '{waiting.answer}', yet SLURM had queued job "
                    f"{job_id}: kept, not submitted again",
                )
            self.submitted(waiting, runs)

    def try_submit(self, waiting: Waiting, now: float) -> bool:
        """Submit one waiting submission: True where SLURM took it or refused it for good (go
        on with the next), False where it said "later"."""
        submission = waiting.item
        try:
            with ctrl_c_deferred():
                runs = slurm_submit.submit(
                    submission.runs, max_requeues=max_requeues(submission.jobs[0])
                )
                self.queue.remove(waiting)
                self.submitted(waiting, runs)
        except slurm_submit.SubmitLater as later:
            waiting.leftovers = later.leftovers
            give_up = self.queue.later(waiting, later.answer, now)
            told = (
                f"sbatch said later (try {waiting.tries}, {later.answer.kind}): "
                f"{later.answer.reason}; next try in {self.queue.delay_s:.0f} s"
            )
            for job in submission.jobs:
                note(job, f"imgzoo: {told}")
            self.logger.info(f"{submission.name}: {told}")
            if waiting.leftovers is not None:
                # At once, as submitit does after an answered sbatch: a job queued all the same
                # may start in a moment, and its log folder must be there by then.
                self.confirm_unconfirmed()
            if give_up:
                self.give_up(now)
            return False
        except (ImgzooError, OSError) as e:
            self.queue.remove(waiting)
            self.fail(submission, str(e))
        return True

    def submitted(self, waiting: Waiting, runs: list) -> None:
        """SLURM holds the submission's job: its runs are watched from now on."""
        submission, first = waiting.item, runs[0]
        self.queue.taken(first.job_id, waiting.caps, len(runs), time.monotonic())
        grace = max(5.0, float(self.workflow.execution_settings.latency_wait))
        infos = submission.infos or [SubmittedJobInfo(job) for job in submission.jobs]
        for info, run in zip(infos, runs, strict=True):
            shared = f" in a pack of {len(runs)} runs" if len(runs) > 1 else ""
            note(
                info.job,
                f"imgzoo: submitted SLURM job {run.job_id} ({run.name}){shared}; "
                f"logs: {run.stderr}",
            )
            info.external_jobid = run.job_id
            info.aux = {"watch": slurm_status.RunWatch(run, grace)}
            if submission.infos is None:
                with self.in_flight_lock:
                    self.in_flight[id(info)] = info
                self.report_job_submission(info)
        submission.infos = infos
        if len(runs) > 1:
            self.logger.info(
                f"{submission.name}: SLURM job {first.job_id}, {len(runs)} runs side by side "
                f"(logs: {first.job_log}, and each run's own)"
            )
        else:
            self.logger.info(f"{first.name}: SLURM job {first.job_id} (logs: {first.stderr})")

    def register_waiting(self, waiting: Waiting) -> None:
        """Snakemake counts the runs of a waiting submission as submitted; their rule logs say
        why they wait."""
        submission = waiting.item
        submission.infos = [SubmittedJobInfo(job, aux={}) for job in submission.jobs]
        full = self.queue.full(waiting.caps)
        why = f"{full}: it goes when one ends" if full else "SLURM said later a moment ago"
        for info in submission.infos:
            note(info.job, f"imgzoo: waiting to be submitted: {why}")
            with self.in_flight_lock:
                self.in_flight[id(info)] = info
            self.report_job_submission(info)

    def give_up(self, now: float) -> None:
        """SLURM took no job for longer than --imgzoo-submit-wait: every waiting run fails (but
        those whose job may be queued, which the next round looks for)."""
        minutes = self.queue.waited_s(now) / 60
        for waiting in list(self.queue.waiting):
            if waiting.leftovers is not None:
                continue
            self.queue.remove(waiting)
            last = f"; its last answer: {waiting.answer}" if waiting.answer else ""
            self.fail(
                waiting.item,
                f"SLURM took no job for {minutes:.0f} min (--imgzoo-submit-wait), so "
                f"{waiting.name} was not submitted{last}",
            )

    def fail(self, submission: "Submission", message: str) -> None:
        if submission.infos is None:
            for job in submission.jobs:
                self.fail_before_submission(job, message)
            return
        for info in submission.infos:  # reported by the next status round
            note(info.job, f"imgzoo: error: {message}")
            info.aux["failed"] = message

    def fail_before_submission(self, job, message: str) -> None:
        note(job, f"imgzoo: error: {message}")
        self.report_job_error(SubmittedJobInfo(job), msg=message)


@dataclass(eq=False)
class Submission:
    """Runs that go to SLURM as one job: their Snakemake jobs, in order, the runs, and once
    Snakemake counts them as submitted (a submission that had to wait) their SubmittedJobInfos."""

    jobs: list
    runs: list
    infos: list | None = None

    @property
    def name(self) -> str:
        if len(self.runs) == 1:
            return self.runs[0].name
        return pack_name([run.run_spec.id for run in self.runs])


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
