"""What SLURM's accounting says finished jobs used, for the efficiency table: `sacct` asked about
all their ids at once (`imgzoo.slurm_commands`), on the login node, and again while one has not
ended yet (`job_usage`).

Per job, every attempt together (`sacct -D`: a requeued job has a record per attempt): the time it
ran, its longest attempt, the CPU time of its steps (`TotalCPU`) over its allocated CPUs and
time, and its peak memory, the largest `MaxRSS` of its steps (the batch script, the `srun` step
that trains, `extern`). sacct's own formats are read here and nowhere else.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass

from imgzoo.slurm_commands import ask, chunks
from imgzoo.slurm_status import FINAL_STATES

FIELDS = (
    "JobIDRaw",
    "State",
    "ElapsedRaw",
    "TotalCPU",
    "AllocCPUS",
    "MaxRSS",
    "ReqMem",
    "TimelimitRaw",
)
# How long to wait for accounting to record the end of jobs that have only just ended.
SETTLE_S = 60.0
_UNITS = {"B": 1 / 2**20, "K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0**2}


@dataclass(frozen=True)
class JobUsage:
    job_id: str
    state: str  # of its last attempt
    attempts: int
    elapsed_s: float  # every attempt together
    longest_attempt_s: float
    cpu_s: float  # TotalCPU of its steps, every attempt together
    cpus: int  # allocated
    max_rss_mb: float | None  # the largest MaxRSS of its steps; None where none was recorded
    req_mem_mb: float | None  # what it asked for
    time_limit_min: float | None


def seconds(text: str) -> float:
    """sacct's durations: `[D-]HH:MM:SS[.mmm]`, `MM:SS.mmm`; 0 for empty."""
    text = text.strip()
    if not text:
        return 0.0
    days, _, clock = text.rpartition("-")
    parts = [float(p) for p in clock.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0.0)
    hours, minutes, secs = parts
    return (float(days) if days else 0.0) * 86400 + hours * 3600 + minutes * 60 + secs


def megabytes(text: str, bare: str = "M") -> float | None:
    """sacct's sizes (`123456K`, `1.5G`, `4000M`; ReqMem's `16Gn`, `2Gc` of older versions: as
    written) in MiB, a number without a unit counted in `bare`; None for empty."""
    found = re.match(r"^([\d.]+)([KMGT]?)", text.strip())
    if not found:
        return None
    return float(found[1]) * _UNITS[found[2] or bare]


def sacct_available() -> bool:
    return shutil.which("sacct") is not None


def job_usage(job_ids: list[str], *, settle_s: float = SETTLE_S) -> dict[str, JobUsage] | None:
    """What each job used, as accounting recorded it; None where sacct is missing or does not
    answer. Jobs accounting does not know are left out. A job that accounting does not show as
    over yet (the last run of a study has just written its result) is asked about again, every
    2 s for up to `settle_s`, so that its time and peak memory are its final ones."""
    deadline = time.monotonic() + settle_s
    while True:
        usage = _sacct(job_ids)
        ending = [u for u in (usage or {}).values() if u.state not in FINAL_STATES]
        if usage is None or not ending or time.monotonic() >= deadline:
            return usage
        time.sleep(2.0)


def _sacct(job_ids: list[str]) -> dict[str, JobUsage] | None:
    ids = sorted(set(job_ids), key=lambda j: (len(j), j))
    lines = []
    for chunk in chunks(ids):
        out = ask(["sacct", "-n", "-P", "-D", "-o", ",".join(FIELDS), "-j", ",".join(chunk)])
        if out is None or out.returncode != 0:
            return None
        lines += out.stdout.splitlines()
    return {job_id: usage for job_id, usage in parse_sacct(lines).items() if job_id in ids}


def parse_sacct(lines) -> dict[str, JobUsage]:
    """`sacct -n -P -D -o <FIELDS>` output, one JobUsage per job."""
    records: dict[str, list[list[str]]] = {}
    for line in lines:
        fields = line.strip().split("|")
        if len(fields) == len(FIELDS):
            records.setdefault(fields[0].split(".")[0], []).append(fields)
    return {job_id: _usage(job_id, rows) for job_id, rows in records.items()}


def _usage(job_id: str, rows: list[list[str]]) -> JobUsage:
    """One job's records (its allocation, one per attempt, and its steps) as one JobUsage."""
    allocations = [dict(zip(FIELDS, r, strict=True)) for r in rows if "." not in r[0]]
    steps = [dict(zip(FIELDS, r, strict=True)) for r in rows if "." in r[0]]
    elapsed = [float(a["ElapsedRaw"] or 0) for a in allocations]
    rss = [m for s in steps if (m := megabytes(s["MaxRSS"], bare="B")) is not None]
    last = allocations[-1] if allocations else dict.fromkeys(FIELDS, "")
    limit = last["TimelimitRaw"]
    return JobUsage(
        job_id=job_id,
        state=(last["State"] or "UNKNOWN").split()[0],
        attempts=len(allocations),
        elapsed_s=sum(elapsed),
        longest_attempt_s=max(elapsed, default=0.0),
        # the steps' own figures: the allocation's TotalCPU is their sum, rounded
        cpu_s=sum(seconds(r["TotalCPU"]) for r in (steps or allocations)),
        cpus=int(last["AllocCPUS"] or 0),
        max_rss_mb=max(rss) if rss else None,
        req_mem_mb=megabytes(last["ReqMem"]),
        time_limit_min=float(limit) if limit.isdigit() else None,
    )
