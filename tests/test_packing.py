"""Runs packed into one SLURM job (`resources.pack`), without a cluster: what the config makes of
the keys, what a pack asks SLURM for, and a pack's callable run by submitit's local executor
(the same code as in a SLURM job: one process per run, one result file each).
tests/test_slurm.py runs packs on the one-node cluster."""

import copy
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import submitit
from helpers import RAISED, RAISING_MODEL

from imgzoo import mps, runlog
from imgzoo.config import Run, Study
from imgzoo.errors import ConfigError
from imgzoo.slurm_job import PackJob
from imgzoo.slurm_runs import (
    PACK_RUNS,
    job_run_folders,
    pack_log_folder,
    pack_name,
    run_files,
    run_log_folder,
)
from imgzoo.slurm_status import Failed, JobState, RunWatch, Succeeded, read_result
from imgzoo.slurm_submit import SubmittedRun, job_parameters, pack_parameters, training_run
from imgzoo.train import train

EXACT = [k for k in runlog.EPOCH_SERIES if k not in runlog.TIMING_SERIES]

CONFIG = {
    "datasets": ["digits"],
    "seeds": [0, 1],
    "train": {"epochs": 2, "batch_size": 64, "lr": 0.003, "augment": "none"},
    "resources": {"cpus": 2, "mem_gb": 1.5, "time_min": 10, "pack": 4},
    "report": {"weight_grids": False},
    "experiments": {
        "mlp": {"model": "mlp", "model_args": {"hidden": [16]}},
        "longer": {"model": "mlp", "resources": {"time_min": 30}},
        "alone": {"model": "mlp", "resources": {"pack": 1, "gpu_mem_fraction": 0.25}},
        "raises": {"model": RAISING_MODEL},  # passes the study's checks, fails in its job
    },
}


def test_experiments_inherit_the_pack_and_override_it_key_by_key():
    study = Study(CONFIG)
    mlp = study.resources("mlp")
    assert mlp["pack"] == 4 and mlp["gpu_mem_fraction"] is None
    # overriding another resource keeps the study's pack (no schema default fills it in)
    assert study.resources("longer")["pack"] == 4 and study.resources("longer")["time_min"] == 30
    assert study.resources("alone")["pack"] == 1
    assert study.resources("alone")["gpu_mem_fraction"] == 0.25
    plain = copy.deepcopy(CONFIG)
    del plain["resources"]["pack"]
    assert Study(plain).resources("mlp")["pack"] == 1  # the schema's default


def test_how_runs_share_a_job_is_no_part_of_a_run():
    spec = Study(CONFIG).spec(Run("digits", "alone", 0))
    assert spec.resources["pack"] == 1 and spec.resources["gpu_mem_fraction"] == 0.25
    # the settings (the train rule's params, the checkpoint's key) are the same packed or not
    plain = copy.deepcopy(CONFIG)
    del plain["resources"]["pack"]
    plain["experiments"]["alone"]["resources"] = {}
    other = Study(plain).spec(Run("digits", "alone", 0))
    assert other.resources != spec.resources
    assert other.settings == spec.settings and other.key() == spec.key()


@pytest.mark.parametrize(
    ("resources", "key"),
    [
        ({"pack": 0}, "resources.pack"),
        ({"gpu_mem_fraction": 1.5}, "resources.gpu_mem_fraction"),
        ({"gpu_mem_fraction": 0}, "resources.gpu_mem_fraction"),
    ],
)
def test_bad_packing_values_are_config_errors_naming_the_key(resources, key):
    config = {**CONFIG, "resources": resources}
    with pytest.raises(ConfigError, match=f"config key '{key}'"):
        Study(config)


def test_a_pack_asks_for_one_runs_gpus_and_time_and_for_all_their_cpus_and_memory():
    study = Study(CONFIG)
    specs = [study.spec(Run("digits", e, s)) for e in ("mlp", "raises") for s in (0, 1)]
    params = pack_parameters(specs)
    one = job_parameters(specs[0])
    assert params == {
        **one,
        "name": "imgzoo:digits:mlp:s0,1+digits:raises:s0,1",
        "cpus_per_task": 4 * 2,
        "mem_gb": 4 * 1.5,
    }
    assert params["gpus_per_node"] == 1 and params["timeout_min"] == 10
    with pytest.raises(ValueError, match="same resources"):
        pack_parameters([specs[0], study.spec(Run("digits", "longer", 0))])
    assert len(pack_name([replace(specs[0].id, seed=s) for s in range(200)])) == 200


def test_a_packs_files_sit_beside_the_runs_folders_and_each_run_keeps_its_own():
    run_folder = run_log_folder("/r/logs/slurm", "digits", "mlp", 3)
    assert pack_log_folder(run_folder) == "/r/logs/slurm/packs"
    files = run_files(run_folder, "4711")
    assert str(files.stderr) == "/r/logs/slurm/digits/mlp/seed3/4711/4711_0_log.err"
    assert str(files.result) == "/r/logs/slurm/digits/mlp/seed3/4711/4711_0_result.pkl"


def test_imgzoo_status_finds_every_run_of_a_packs_job(tmp_path):
    # what submit() leaves in a pack's job folder, and a job folder of a run alone
    folders = [run_log_folder(str(tmp_path / "slurm"), "digits", "mlp", s) for s in (0, 1)]
    pack_job = tmp_path / "slurm" / "packs" / "4711"
    pack_job.mkdir(parents=True)
    (pack_job / PACK_RUNS).write_text("".join(f"{f}\n" for f in folders))
    assert job_run_folders(pack_job) == folders
    assert job_run_folders(f"{folders[0]}/4712") == [folders[0]]


# One run's process on the GPU, capped at a quarter of its memory (run apart: the cap is the
# process's).
CAPPED = """
import torch
from imgzoo.training.device import configure
configure(torch.device("cuda"), 1, memory_fraction=0.25)
total = torch.cuda.get_device_properties(0).total_memory
torch.empty(int(total * 0.2), dtype=torch.uint8, device="cuda")  # within its share
try:
    torch.empty(int(total * 0.3), dtype=torch.uint8, device="cuda")
except torch.cuda.OutOfMemoryError:
    print("capped")
"""


@pytest.mark.cuda
def test_gpu_mem_fraction_caps_what_a_runs_process_may_allocate():
    done = subprocess.run(
        [sys.executable, "-c", CAPPED], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "capped"


# ---- a packed run judged on its own --------------------------------------------------------


def packed(tmp_path, job_id="17") -> SubmittedRun:
    files = run_files(tmp_path / "run", job_id)
    files.result.parent.mkdir(parents=True)
    job_log = tmp_path / "packs" / job_id / f"{job_id}_0_log.err"
    job_log.parent.mkdir(parents=True)
    return SubmittedRun(
        job_id, "imgzoo:digits:mlp:s0", files.result, files.stdout, files.stderr, job_log
    )


def test_a_packed_run_that_raised_fails_at_once_while_its_job_runs_on(tmp_path):
    from submitit.core.utils import cloudpickle_dump

    run = packed(tmp_path)
    run.stderr.write_text(
        'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\n'
        "imgzoo.errors.RunFailed: CUDA out of memory in training of experiment 'mlp' on digits "
        "(batch_size 512: try a smaller batch_size)\n"
    )
    cloudpickle_dump(
        ("error", "Traceback ...\nimgzoo.errors.RunFailed: CUDA out of memory"), run.result
    )
    verdict = RunWatch(run, 30).judge(JobState("RUNNING"), now=0)
    assert verdict == Failed(
        "SLURM job 17 FAILED: imgzoo.errors.RunFailed: CUDA out of memory in training of "
        "experiment 'mlp' on digits (batch_size 512: try a smaller batch_size) "
        f"[logs: {run.stderr}]"
    )


def test_a_packed_run_of_a_cancelled_job_fails_with_the_notice_in_its_jobs_log(tmp_path):
    run = packed(tmp_path)
    run.stderr.write_text("[digits/mlp/s0] epoch 1/500: train loss 2.1\n")
    run.job_log.write_text(
        "slurmstepd-vm: error: *** JOB 17 ON vm CANCELLED AT 2026-11-30T00:06:17 ***\n"
    )
    verdict = RunWatch(run, 30).judge(JobState("CANCELLED", "0:15"), now=0)
    assert isinstance(verdict, Failed)
    assert verdict.message.startswith("SLURM job 17 CANCELLED (exit 0:15): slurmstepd-vm: error:")
    assert f"[logs: {run.stderr}]" in verdict.message


# ---- a pack run by submitit's local executor -------------------------------------------------


@pytest.mark.slow
def test_a_pack_trains_each_run_in_its_own_process_and_one_that_raises_fails_alone(
    tmp_path, digits_h5
):
    study = Study(CONFIG)
    members = [("mlp", 0), ("raises", 0), ("mlp", 1)]
    runs = [
        training_run(
            study.spec(Run("digits", e, s)),
            digits_h5,
            tmp_path / "runs" / f"{e}{s}",
            run_log_folder(tmp_path / "logs", "digits", e, s),
            threads=1,
        )
        for e, s in members
    ]
    executor = submitit.LocalExecutor(folder=tmp_path / "logs" / "packs" / "%j")
    executor.update_parameters(timeout_min=10)
    job = executor.submit(PackJob(runs))
    assert job.result() == {
        "imgzoo:digits:mlp:s0": "success",
        "imgzoo:digits:raises:s0": "error",
        "imgzoo:digits:mlp:s1": "success",
    }
    results = {run.name: read_result(run_files(run.log_folder, job.job_id).result) for run in runs}
    outcome, traceback = results["imgzoo:digits:raises:s0"]
    assert f"ConfigError: {RAISED}" in traceback
    # each run's own log holds its own story
    raised = run_files(runs[1].log_folder, job.job_id).stderr.read_text()
    assert RAISED in raised and "epoch 1/2" not in raised
    trained = run_files(runs[0].log_folder, job.job_id).stderr.read_text()
    assert "[digits/mlp/s0] epoch 2/2" in trained
    for run in (runs[0], runs[2]):
        files = run_files(run.log_folder, job.job_id)
        submitted = SubmittedRun(
            job.job_id, run.name, files.result, files.stdout, files.stderr, job.paths.stderr
        )
        assert RunWatch(submitted).judge(None, now=0) == Succeeded(results[run.name][1])
        # the numbers of the same run trained alone, in this process
        alone = train(
            run.run_spec, digits_h5, tmp_path / "alone" / run.name.replace(":", "-"), threads=1
        )
        packed_log = runlog.read(f"{run.out_dir}/metrics.h5")
        for key in EXACT:
            np.testing.assert_array_equal(packed_log.epochs[key], alone.epochs[key], err_msg=key)


def test_mps_is_asked_for_by_a_resource_and_changes_no_run():
    study = Study({**CONFIG, "resources": {**CONFIG["resources"], "mps": True}})
    spec = study.spec(Run("digits", "mlp", 0))
    assert spec.resources["mps"] is True and Study(CONFIG).resources("mlp")["mps"] is False
    assert spec.key() == Study(CONFIG).spec(Run("digits", "mlp", 0)).key()


def test_without_nvidias_mps_on_the_machine_no_daemon_starts():
    """This machine has no nvidia-cuda-mps-control (gpu_check's pack section starts one on a
    GPU machine that has it)."""
    assert mps.start() == (None, "no nvidia-cuda-mps-control on this machine")


@pytest.mark.slow
def test_a_pack_that_asks_for_mps_where_there_is_none_trains_and_says_so(tmp_path, digits_h5):
    study = Study({**CONFIG, "resources": {**CONFIG["resources"], "mps": True}})
    runs = [
        training_run(study.spec(Run("digits", "mlp", s)), digits_h5, tmp_path / "runs" / f"{s}",
                     run_log_folder(tmp_path / "logs", "digits", "mlp", s), threads=1)
        for s in (0, 1)
    ]
    executor = submitit.LocalExecutor(folder=tmp_path / "logs" / "packs" / "%j")
    executor.update_parameters(timeout_min=10)
    job = executor.submit(PackJob(runs))
    assert job.result() == {"imgzoo:digits:mlp:s0": "success", "imgzoo:digits:mlp:s1": "success"}
    said = "imgzoo: pack: no MPS (no nvidia-cuda-mps-control on this machine): the runs take turns"
    assert said in job.paths.stderr.read_text()
