"""Asking SLURM's commands (sacct, squeue, scancel, sacctmgr, scontrol) from the login node: one
call for many jobs, a bounded wait, and no exception where SLURM does not answer. The modules that
ask (`slurm_status`, `slurm_usage`, `slurm_limits`) all go through here."""

from __future__ import annotations

import subprocess

# How long one command may take before it counts as no answer.
COMMAND_TIMEOUT_S = 60
# Job ids per sacct/squeue/scancel command line (far below any argument limit).
IDS_PER_CALL = 2000


def ask(
    command: list[str], timeout_s: float = COMMAND_TIMEOUT_S
) -> subprocess.CompletedProcess | None:
    """The command's result, or None where it is missing or did not answer in `timeout_s`."""
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired):
        return None


def rows(command: list[str], timeout_s: float = COMMAND_TIMEOUT_S) -> list[list[str]] | None:
    """The `|`-separated rows a command printed (sacct -P, sacctmgr -P, squeue -o with `|`), or
    None where it failed or did not answer."""
    out = ask(command, timeout_s)
    if out is None or out.returncode != 0:
        return None
    return [line.split("|") for line in out.stdout.splitlines() if line.strip()]


def chunks(ids: list[str]):
    """`ids` in groups of at most IDS_PER_CALL, one command each."""
    for start in range(0, len(ids), IDS_PER_CALL):
        yield ids[start : start + IDS_PER_CALL]
