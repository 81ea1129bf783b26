"""The runs that wait to be submitted, and the jobs of this workflow that SLURM holds.

The executor submits what is ready at once, unless SLURM's answer was "later" a moment ago or a
submit limit is reached (`imgzoo.slurm_limits`); then the run waits here and the executor tries
it again in a later status round. Nothing here sleeps or calls SLURM: the executor asks
`due(now)` once per round, so a busy controller never holds up Snakemake's scheduler or the
status checks of the runs in flight.

- **Backoff**: after a "later" answer (`imgzoo.slurm_answers`: a busy controller, a submit
  limit) the next try waits `base_s`, then twice as long after each further "later" answer, at
  most `cap_s`; a submission that goes through ends the backoff. One backoff for all waiting
  runs: one busy controller answers them all, so a round stops at its first "later".
- **Limits**: a run goes only while every cap its job counts against has room (counting this
  workflow's jobs that SLURM holds, until SLURM says they are over); runs behind a full cap
  wait, in order, and go as jobs end.
  A job that ends also ends the backoff after a limit refusal (the cap may have room now).
- **Bound**: where SLURM took none of this workflow's jobs for `give_up_s` while saying "later"
  (busy, or a limit with none of this workflow's jobs in flight to free it), `later` says to
  give up. Time spent behind the workflow's own jobs does not count: it ends as they end.
- **Unconfirmed**: a run whose answer may have queued its job anyway (a timeout) is not tried
  again before the executor has looked for that job in the queue (`unconfirmed`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from imgzoo.slurm_answers import LIMIT, SbatchAnswer


@dataclass(eq=False)
class Waiting:
    """One submission (a run, or a pack of runs) that waits."""

    item: object  # what the executor submits
    name: str  # the job's name, for messages
    caps: dict[str, int]  # the submit caps its job counts against (SubmitLimits.of)
    tries: int = 0  # "later" answers so far
    answer: str = ""  # the last of them, sbatch's words
    leftovers: object | None = None  # the files of an attempt that may have queued the job


@dataclass
class SubmitQueue:
    base_s: float = 10.0
    cap_s: float = 300.0
    give_up_s: float = 3600.0
    waiting: list[Waiting] = field(default_factory=list)
    # job id -> (the caps it counts against, its runs not yet over)
    jobs: dict[str, tuple[dict[str, int], int]] = field(default_factory=dict)
    retry_at: float = 0.0
    delay_s: float = 0.0
    after_limit: bool = False  # the backoff follows a limit refusal
    refused_since: float | None = None  # first "later" since SLURM last took a job

    # ---- this workflow's jobs in SLURM ------------------------------------------------------

    def held(self, cap: str) -> int:
        return sum(cap in caps for caps, _ in self.jobs.values())

    def full(self, caps: dict[str, int]) -> str | None:
        """Why a job of these caps cannot go now (`2 of 2 jobs queued under MaxSubmitJobsPerUser
        of QOS normal`), None where every cap has room."""
        for cap, most in caps.items():
            if self.held(cap) >= most:
                return f"{self.held(cap)} of {most} jobs queued under {cap}"
        return None

    def taken(self, job_id: str, caps: dict[str, int], runs: int, now: float) -> None:
        """SLURM holds a new job of the workflow, with `runs` runs."""
        self.jobs[job_id] = (caps, runs)
        self.delay_s, self.retry_at, self.refused_since = 0.0, 0.0, None

    def run_over(self, job_id: str, *, job_over: bool) -> None:
        """A run of the job is over. With its last run the job leaves the count, once SLURM says
        it is over (`job_over`): a run's result comes a moment before its job ends, and SLURM
        counts the job against its caps until then (else `job_over` later)."""
        if job_id not in self.jobs:
            return
        caps, runs = self.jobs[job_id]
        self.jobs[job_id] = (caps, max(0, runs - 1))
        if runs <= 1 and job_over:
            self.job_over(job_id)

    def ending(self) -> list[str]:
        """Jobs whose runs are over and which SLURM may still hold: ask about them."""
        return [job_id for job_id, (_, runs) in self.jobs.items() if runs == 0]

    def job_over(self, job_id: str) -> None:
        """SLURM says the job is over: it leaves the count."""
        if self.jobs.pop(job_id, None) is not None and self.after_limit:
            self.retry_at = 0.0  # the cap that refused may have room now

    # ---- the waiting runs -------------------------------------------------------------------

    def add(self, waiting: Waiting) -> None:
        self.waiting.append(waiting)

    def remove(self, waiting: Waiting) -> None:
        self.waiting.remove(waiting)

    def clear(self) -> list[Waiting]:
        waiting, self.waiting = self.waiting, []
        return waiting

    def unconfirmed(self) -> list[Waiting]:
        """The waiting runs whose job may be queued already: look for it before trying again."""
        return [w for w in self.waiting if w.leftovers is not None]

    def due(self, now: float):
        """The waiting runs to try now, in order: none while backing off; each whose caps have
        room, judged as it comes (so take each job the caller submits into account at once)."""
        for waiting in list(self.waiting):
            if now < self.retry_at:
                return
            if (
                waiting in self.waiting
                and waiting.leftovers is None
                and not self.full(waiting.caps)
            ):
                yield waiting

    def later(self, waiting: Waiting, answer: SbatchAnswer, now: float) -> bool:
        """SLURM said "later" to `waiting`: back off. True where SLURM has said so for longer
        than `give_up_s` without taking a job (the caller gives up on every waiting run)."""
        waiting.tries += 1
        waiting.answer = answer.reason
        self.delay_s = self.base_s if not self.delay_s else min(self.cap_s, 2 * self.delay_s)
        self.retry_at = now + self.delay_s
        self.after_limit = answer.kind == LIMIT
        if self.after_limit and self.jobs:
            self.refused_since = None  # the workflow's own jobs hold the cap: they will end
        elif self.refused_since is None:
            self.refused_since = now
        return self.refused_since is not None and now - self.refused_since > self.give_up_s

    def waited_s(self, now: float) -> float:
        return 0.0 if self.refused_since is None else now - self.refused_since
