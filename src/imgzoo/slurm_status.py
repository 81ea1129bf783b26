"""What SLURM says about many jobs at once, and what became of each submitted run.

The login node asks about every active job together: one `sacct` call for all their ids (it
knows finished jobs too), or one `squeue` call where accounting does not answer. Accounting may
list a job only a while after its submission; a job sacct has not listed for a few rounds in a
row is asked about with squeue in that round (in case SLURM lost it), so a round costs at most
two calls whatever the number of jobs, and rarely more than one. (`queued_scripts` lists the
user's queued jobs by batch script, for a submission whose sbatch timed out.)

A run's fate comes from its own result file first (submitit writes it in the job: success with a
summary, or the exception's traceback) and from its job's state where the job died without one
(cancelled, out of memory, time limit, node failure). A run packed with others into one job has
a result file and log of its own: its error fails it at once, while its pack-mates train on. A
failure is one line: the job id, its final state and exit code, what went wrong (the exception,
or slurmstepd's notice), and its log.

Imports nothing heavy: it runs in Snakemake's process on the login node.
"""

from __future__ import annotations

import getpass
import re
import shlex
import time
from dataclasses import dataclass, field

from imgzoo.slurm_commands import ask, chunks
from imgzoo.slurm_submit import SubmittedRun

# sacct/squeue states after which a job will not run again (PREEMPTED: unless it is requeued).
FINAL_STATES = {
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "OUT_OF_MEMORY",
    "NODE_FAIL",
    "BOOT_FAIL",
    "DEADLINE",
    "PREEMPTED",
    "REVOKED",
    "SPECIAL_EXIT",
}
# Rounds in a row without sacct listing a job before squeue is asked about it (then again after
# as many more).
UNLISTED_ROUNDS = 5


@dataclass(frozen=True)
class JobState:
    state: str  # "RUNNING", "FAILED", ... ("CANCELLED by 0" is read as CANCELLED)
    exit_code: str = ""  # sacct's "1:0"; empty where squeue answered

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def over(self) -> bool:
        """SLURM no longer holds the job: a final state, or it knows the job no more."""
        return self.final or self is GONE


GONE = JobState("UNKNOWN")  # neither sacct nor squeue knows the job (any more)


def sacct_states(job_ids: list[str]) -> dict[str, JobState] | None:
    """The newest record of each job that accounting knows; None where sacct does not answer."""
    states = {}
    for ids in chunks(job_ids):
        out = ask(
            ["sacct", "-n", "-P", "-X", "-o", "JobIDRaw,State,ExitCode", "-j", ",".join(ids)]
        )
        if out is None or out.returncode != 0:
            return None
        for line in out.stdout.splitlines():  # oldest first: a reused id keeps its newest job
            parts = line.strip().split("|")
            if len(parts) == 3 and parts[1]:
                states[parts[0]] = JobState(parts[1].split()[0], parts[2])
    return states


def squeue_states(job_ids: list[str]) -> dict[str, JobState] | None:
    """The state of each job slurmctld still knows (finished ones for MinJobAge seconds), GONE
    for the others; None where squeue does not answer."""
    states = {}
    for ids in chunks(job_ids):
        out = ask(["squeue", "-h", "-t", "all", "-o", "%i|%T", "-j", ",".join(ids)])
        if out is None:
            return None
        if out.returncode != 0 and "Invalid job id" not in out.stderr:
            return None
        for line in out.stdout.splitlines():
            job_id, _, state = line.strip().partition("|")
            if state:
                states[job_id] = JobState(state)
    return {job_id: states.get(job_id, GONE) for job_id in job_ids}


def queued_scripts(user: str | None = None) -> dict[str, str] | None:
    """The batch script of every job of the user's that SLURM holds (pending or running):
    {script path: job id}; None where squeue does not answer. A submission whose sbatch timed
    out is found here by its script, which names one submission only (a job's name could be
    another checkout's run of the same name)."""
    user = user or getpass.getuser()
    out = ask(["squeue", "-h", "-u", user, "-o", "%i|%o"])
    if out is None or out.returncode != 0:
        return None
    scripts = {}
    for line in out.stdout.splitlines():
        job_id, _, script = line.strip().partition("|")
        if script:
            scripts[script] = job_id
    return scripts


@dataclass
class StatusQuery:
    """Asks SLURM about many jobs per round: sacct for all, squeue for those sacct does not know
    (all of them where sacct fails). Jobs it has no answer for are left out of the result."""

    unlisted: dict[str, int] = field(default_factory=dict)  # job id -> rounds sacct missed it

    def states(self, job_ids: list[str]) -> dict[str, JobState]:
        job_ids = sorted(set(job_ids))
        if not job_ids:
            return {}
        states = sacct_states(job_ids)
        if states is None:
            ask_squeue = job_ids
            states = {}
        else:
            for job_id in job_ids:
                self.unlisted[job_id] = 0 if job_id in states else self.unlisted.get(job_id, 0) + 1
            ask_squeue = [j for j in job_ids if self.unlisted[j] >= UNLISTED_ROUNDS]
            for job_id in ask_squeue:
                self.unlisted[job_id] = 0
        if ask_squeue:
            states.update(squeue_states(ask_squeue) or {})
        for job_id in list(self.unlisted):
            if job_id not in job_ids:  # no longer asked about: forget it
                del self.unlisted[job_id]
        return states


def cancel(job_ids: list[str]) -> None:
    """scancel every job (one call); jobs already over are no error."""
    for ids in chunks(sorted(set(job_ids))):
        ask(["scancel", *ids])


# ---- what became of one run ---------------------------------------------------------------------


def read_result(path) -> tuple[str, object] | None:
    """submitit's result file: ("success", summary) or ("error", traceback text); None while it
    is missing (or half-written, or foreign: the job's state decides then)."""
    from submitit.core.utils import pickle_load

    try:
        outcome, value = pickle_load(path)
    except Exception:  # missing, half-written or foreign
        return None
    return (outcome, value) if outcome in ("success", "error") else None


@dataclass(frozen=True)
class Running:
    state: str


@dataclass(frozen=True)
class Succeeded:
    summary: dict


@dataclass(frozen=True)
class Failed:
    message: str


@dataclass
class RunWatch:
    """One submitted run, judged once per status round from its result file and its job's state.

    `grace_s` is how long a run may look over without the file that says how (a COMPLETED job
    whose result a shared file system shows late, a PREEMPTED job that SLURM may requeue, a
    raised exception whose job sacct has not yet recorded as ended) before it fails as it is."""

    run: SubmittedRun
    grace_s: float = 60.0
    state: str = "SUBMITTED"
    ended_at: float | None = None  # when it first looked over

    def judge(self, job: JobState | None, now: float, log_wait_s: float = 0.0):
        """Running, Succeeded or Failed. `job`: SLURM's answer about the run's job (None: none
        this round). `log_wait_s`: how long it may wait for slurmstepd's notice in the log of a
        job killed from outside."""
        if job is not None:
            self.state = job.state
        result = read_result(self.run.result)
        if result is not None and result[0] == "success":
            return Succeeded(result[1] if isinstance(result[1], dict) else {})
        if result is not None and self.run.job_log is not None:
            # A packed run's own process raised: it is over, while its pack-mates train on.
            return Failed(failure_message(self.run, JobState("FAILED"), traceback=str(result[1])))
        over = result is not None or (job is not None and job.over)
        if not over:
            self.ended_at = None  # e.g. requeued after a preemption
            return Running(self.state)
        if self.ended_at is None:
            self.ended_at = now
        waited = now - self.ended_at
        if result is not None:  # raised in the job: wait for sacct's final state and exit code
            if (job is None or not job.final) and waited < self.grace_s:
                return Running(self.state)
            final = job if job is not None and job.final else JobState("FAILED")
            return Failed(failure_message(self.run, final, traceback=str(result[1])))
        if (job is GONE or job.state in ("COMPLETED", "PREEMPTED")) and waited < self.grace_s:
            return Running(self.state)
        if job.state == "COMPLETED":
            return Failed(failure_message(self.run, job, detail="but it wrote no result file"))
        return Failed(failure_message(self.run, job, log_wait_s=log_wait_s))


def failure_message(
    run: SubmittedRun,
    job: JobState,
    *,
    traceback: str | None = None,
    detail: str | None = None,
    log_wait_s: float = 0.0,
) -> str:
    """`SLURM job 4711 FAILED (exit 1:0): <what went wrong> [logs: <stderr file>]`."""
    if job is GONE:
        detail = detail or "SLURM knows the job no more (neither sacct nor squeue)"
    if detail is None:
        detail = log_tail(run, job.state, traceback, log_wait_s)
    code = f" (exit {job.exit_code})" if job.exit_code and job.exit_code != "0:0" else ""
    return (
        f"SLURM job {run.job_id} {job.state}{code}: {detail} [logs: {shlex.quote(str(run.stderr))}]"
    )


# imgzoo.errors.RunFailed (divergence, out of memory) among them.
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Failed)\b")
_BOOKKEEPING = ("submitit ", "srun: error: ", "srun: launch/", "srun: Job step aborted")


def log_lines(run: SubmittedRun) -> list[str]:
    """The run's stderr, else its stdout, without submitit's and srun's bookkeeping."""
    for path in (run.stderr, run.stdout):
        lines = _lines(path)
        if lines:
            return lines
    return []


def _lines(path) -> list[str]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return [ln for ln in lines if not ln.startswith(_BOOKKEEPING)]


def log_tail(run: SubmittedRun, state: str, traceback: str | None, wait_s: float = 0.0) -> str:
    """What went wrong, in a few lines: the Python exception and what follows it where the run
    raised one; else what slurmstepd said (cancelled, time limit, out of memory); else the last
    lines of the log; else the traceback submitit sent back. A packed run's own log comes first,
    then its job's (slurmstepd's notices go there). A job killed from outside may get
    slurmstepd's notice into its log a moment after its state: wait up to `wait_s` for it."""
    deadline = time.monotonic() + (wait_s if state not in ("FAILED", "COMPLETED") else 0.0)
    while True:
        lines = log_lines(run)
        found = _exception_or_notice(lines)
        if not found and run.job_log is not None:
            found = _exception_or_notice(_lines(run.job_log))
        if found or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    if found:
        return found
    if traceback:
        lines = [ln.strip() for ln in traceback.strip().splitlines() if ln.strip()]
        return _exception_or_notice(lines) or _one_line(lines[-3:])
    return _one_line(lines[-3:]) if lines else "no log lines"


def _exception_or_notice(lines: list[str]) -> str | None:
    errors = [i for i, ln in enumerate(lines) if _EXCEPTION_LINE.match(ln)]
    if errors:
        return _one_line(lines[errors[-1] :][:3])
    notices = [ln for ln in lines if ln.startswith("slurmstepd")]
    if notices:
        return _one_line(notices[-2:])  # the job's and the step's
    return None


def _one_line(lines: list[str], limit: int = 500) -> str:
    text = " | ".join(lines)
    return text if len(text) <= limit else "..." + text[-limit:]
