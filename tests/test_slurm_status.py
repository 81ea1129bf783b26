"""Judging a submitted run from its result file and its job's state (no cluster needed).

The files are real: result files written by submitit's own pickling, job logs as SLURM and
submitit leave them. tests/test_slurm.py runs the same code against the one-node cluster.
"""

from pathlib import Path

import pytest
from submitit.core.utils import cloudpickle_dump

from imgzoo.slurm_status import (
    GONE,
    Failed,
    JobState,
    Running,
    RunWatch,
    StatusQuery,
    Succeeded,
)
from imgzoo.slurm_submit import SubmittedRun

GRACE = 30.0
TRACEBACK = """Traceback (most recent call last):
  File "/x/submitit/core/submission.py", line 55, in process_job
    result = delayed.result()
imgzoo.errors.ConfigError: model family 'mlp': activation='nope' is not one of gelu, relu
"""


def submitted(tmp_path: Path, job_id: str = "17") -> SubmittedRun:
    folder = tmp_path / job_id
    folder.mkdir()
    return SubmittedRun(
        job_id=job_id,
        name="imgzoo:digits:mlp:s0",
        result=folder / f"{job_id}_0_result.pkl",
        stdout=folder / f"{job_id}_0_log.out",
        stderr=folder / f"{job_id}_0_log.err",
    )


def test_a_run_with_its_success_result_succeeds_whatever_slurm_says_yet(tmp_path):
    run = submitted(tmp_path)
    watch = RunWatch(run, GRACE)
    assert watch.judge(JobState("PENDING"), now=0) == Running("PENDING")
    summary = {"status": "completed", "epochs_completed": 3}
    cloudpickle_dump(("success", summary), run.result)
    assert watch.judge(JobState("RUNNING"), now=1) == Succeeded(summary)  # still ending
    assert watch.judge(None, now=2) == Succeeded(summary)


def test_a_run_that_raised_fails_with_the_exception_once_sacct_records_the_end(tmp_path):
    run = submitted(tmp_path)
    run.stderr.write_text(
        "submitit INFO (2026-11-30) - Starting with JobEnvironment(job_id=17)\n"
        + TRACEBACK
        + "srun: error: vm: task 0: Exited with exit code 1\n"
    )
    cloudpickle_dump(("error", TRACEBACK), run.result)
    watch = RunWatch(run, GRACE)
    assert isinstance(watch.judge(JobState("RUNNING", "0:0"), now=0), Running)
    verdict = watch.judge(JobState("FAILED", "1:0"), now=1)
    assert verdict == Failed(
        "SLURM job 17 FAILED (exit 1:0): imgzoo.errors.ConfigError: model family 'mlp': "
        f"activation='nope' is not one of gelu, relu [logs: {run.stderr}]"
    )


def test_a_run_that_raised_fails_after_the_grace_even_if_sacct_never_tells(tmp_path):
    run = submitted(tmp_path)
    cloudpickle_dump(("error", TRACEBACK), run.result)  # no log: the traceback is the detail
    watch = RunWatch(run, GRACE)
    assert isinstance(watch.judge(None, now=0), Running)
    verdict = watch.judge(None, now=GRACE)
    assert isinstance(verdict, Failed)
    assert verdict.message.startswith("SLURM job 17 FAILED: imgzoo.errors.ConfigError: model")


def test_a_job_killed_from_outside_fails_with_slurmstepds_notice(tmp_path):
    run = submitted(tmp_path)
    run.stderr.write_text(
        "[digits/mlp/s0] epoch 1/500 train_acc 0.41\n"
        "slurmstepd-vm: error: *** JOB 17 ON vm CANCELLED AT 2026-11-30T00:06:17 ***\n"
        "slurmstepd-vm: error: *** STEP 17.0 ON vm CANCELLED AT 2026-11-30T00:06:17 ***\n"
    )
    verdict = RunWatch(run, GRACE).judge(JobState("CANCELLED", "0:15"), now=0)
    assert isinstance(verdict, Failed)
    assert verdict.message.startswith(
        "SLURM job 17 CANCELLED (exit 0:15): slurmstepd-vm: error: ***"
    )
    assert "CANCELLED AT" in verdict.message and str(run.stderr) in verdict.message


@pytest.mark.parametrize("state", ["OUT_OF_MEMORY", "TIMEOUT", "NODE_FAIL"])
def test_a_job_that_died_without_a_log_fails_at_once_naming_its_state(tmp_path, state):
    verdict = RunWatch(submitted(tmp_path), GRACE).judge(JobState(state, "0:9"), now=0)
    assert verdict == Failed(
        f"SLURM job 17 {state} (exit 0:9): no log lines [logs: {tmp_path}/17/17_0_log.err]"
    )


def test_a_completed_job_gets_the_grace_for_its_result_file_then_fails(tmp_path):
    run = submitted(tmp_path)
    watch = RunWatch(run, GRACE)
    assert isinstance(watch.judge(JobState("COMPLETED", "0:0"), now=100), Running)
    assert isinstance(watch.judge(JobState("COMPLETED", "0:0"), now=100 + GRACE - 1), Running)
    verdict = watch.judge(JobState("COMPLETED", "0:0"), now=100 + GRACE)
    assert verdict == Failed(
        f"SLURM job 17 COMPLETED: but it wrote no result file [logs: {run.stderr}]"
    )


def test_a_preempted_job_that_slurm_requeues_keeps_running(tmp_path):
    watch = RunWatch(submitted(tmp_path), GRACE)
    assert isinstance(watch.judge(JobState("PREEMPTED"), now=0), Running)
    assert watch.judge(JobState("PENDING"), now=GRACE + 1) == Running("PENDING")
    assert watch.ended_at is None  # the grace starts again at its next end
    assert isinstance(watch.judge(JobState("PREEMPTED"), now=GRACE + 2), Running)
    assert isinstance(watch.judge(JobState("PREEMPTED"), now=2 * GRACE + 2), Failed)


def test_a_job_slurm_forgot_fails_after_the_grace(tmp_path):
    watch = RunWatch(submitted(tmp_path), GRACE)
    assert isinstance(watch.judge(GONE, now=0), Running)
    verdict = watch.judge(GONE, now=GRACE)
    assert isinstance(verdict, Failed)
    assert "UNKNOWN: SLURM knows the job no more (neither sacct nor squeue)" in verdict.message


def test_a_status_query_asks_nothing_for_no_jobs():
    assert StatusQuery().states([]) == {}
