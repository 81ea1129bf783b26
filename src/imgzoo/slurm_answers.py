"""What sbatch's refusal means: "later" or "never".

A loaded or restarting slurmctld answers with a timeout or a refused connection; a user who has as
many jobs queued as the QOS or association allows is told so by name
(`QOSMaxSubmitJobPerUserLimit`). Both only mean "later": the executor keeps such runs waiting and
tries again (`imgzoo.slurm_queue`). Anything else (an unknown partition, account or QOS, more than a
node has, an invalid option) will not change by waiting, and fails the run at once with sbatch's
own words.

A timeout may come after slurmctld queued the job: such an answer says so (`may_have_queued`), and
the run's job is looked for in the queue before it is submitted again. Light: plain strings only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BUSY = "busy"  # the controller did not take the request (in time): try again later
LIMIT = "limit"  # a submit limit of the user, account or QOS is reached: later, as jobs end
REFUSED = "refused"  # the job as asked for will never be accepted

# The controller is loaded, restarting or unreachable for a moment (sbatch's and the SLURM API's
# words for it, 20.11 to 24.05).
_BUSY = re.compile(
    r"Socket timed out on send/recv operation"
    r"|Resource temporarily unavailable"
    r"|slurm_receive_msg"
    r"|Zero Bytes were transmitted or received"
    r"|Unable to contact slurm controller"
    r"|Connection refused"
    r"|Connection reset by peer"
    r"|Transport endpoint is not connected"
    r"|Slurm temporarily unable to accept job"
    r"|Communication connection failure",
    re.IGNORECASE,
)
# The controller never got the request: nothing can have been queued.
_NOT_SENT = re.compile(r"Unable to contact slurm controller|Connection refused", re.IGNORECASE)
# Submit limits by the reason names slurmctld gives (sbatch prints the name on a line of its own
# before "Job violates accounting/QOS policy"). That generic policy line alone is no evidence: it
# is the same for a time or size limit, which waiting does not lift.
_LIMIT = re.compile(
    r"\b(?:QOS|Assoc)\w*SubmitJobs?\w*Limit\b|\bMaxSubmitJobs(?:PerUser|PerAccount|PU|PA)?\b"
)
_PREFIX = re.compile(r"^(?:sbatch: )?(?:error: )?(?:Batch job submission failed: )?")


@dataclass(frozen=True)
class SbatchAnswer:
    kind: str  # BUSY, LIMIT or REFUSED
    reason: str  # sbatch's words, one line
    may_have_queued: bool = False  # a timeout: slurmctld may have queued the job anyway

    @property
    def later(self) -> bool:
        return self.kind in (BUSY, LIMIT)


def classify(stderr: str) -> SbatchAnswer:
    """What sbatch's error output (its stderr) means."""
    reason = words(stderr)
    if _LIMIT.search(stderr):
        return SbatchAnswer(LIMIT, reason)
    if _BUSY.search(stderr):
        return SbatchAnswer(BUSY, reason, may_have_queued=not _NOT_SENT.search(stderr))
    return SbatchAnswer(REFUSED, reason)


def words(stderr: str) -> str:
    """sbatch's error lines as one line, without its prefixes: `Memory specification can not be
    satisfied; Requested node configuration is not available`."""
    lines = []
    for line in stderr.splitlines():
        text = _PREFIX.sub("", line.strip()).strip()
        if text and text not in lines and not text.startswith('Try "sbatch --help"'):
            lines.append(text)
    return "; ".join(lines) or "no reason given"
