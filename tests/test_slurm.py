"""The submitit launcher and the SLURM profile against a real one-node cluster.

Start the cluster first: `sudo slurm/testcluster/up` (CI does). Every test submits real jobs and
trains for real (the built-in digits dataset, small MLPs, a few epochs).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from imgzoo import data, runlog
from imgzoo.config import Study

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
EXACT = [k for k in runlog.EPOCH_SERIES if k not in ("epoch_time", "images_per_s")]


def on_cluster(test):
    """A test against the cluster: marked `slurm`, it needs the cluster (the `slurm_cluster`
    fixture fails or skips it otherwise) and cancels what it leaves in the queue."""
    return pytest.mark.slurm(pytest.mark.usefixtures("slurm_cluster", "no_leftover_jobs")(test))


GRID = {
    "datasets": ["digits"],
    "seeds": [0, 1],
    "train": {"epochs": 3, "batch_size": 64, "lr": 0.003, "augment": "none"},
    "resources": {"cpus": 1, "mem_gb": 1, "time_min": 10, "gpus": 1},
    "slurm": {"poll_interval_s": 1},
    "report": {"weight_grids": False},
    "experiments": {
        "mlp": {"model": "mlp", "model_args": {"hidden": [32]}},
        "mlp2": {
            "model": "mlp",
            "model_args": {"hidden": [16, 16]},
            "resources": {"cpus": 2, "mem_gb": 2, "time_min": 20},
        },
    },
}
RUNS = [(e, s) for e in GRID["experiments"] for s in GRID["seeds"]]

# One run, long enough (a few seconds of training) to be interrupted after its first epoch.
ONE = {
    "datasets": ["digits"],
    "seeds": [0],
    "train": {"epochs": 10, "batch_size": 32, "lr": 0.003, "augment": "none"},
    "resources": {"cpus": 1, "mem_gb": 1, "time_min": 10, "gpus": 1},
    "experiments": {"wide": {"model": "mlp", "model_args": {"hidden": [512, 512]}}},
}


def queued_jobs() -> set[int]:
    out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=True)
    return {int(job) for job in out.stdout.split()}


@pytest.fixture
def no_leftover_jobs():
    """Whatever a test leaves in the queue (when it fails half-way) is cancelled after it."""
    before = queued_jobs()
    yield
    leftover = queued_jobs() - before
    if leftover:
        subprocess.run(["scancel", *map(str, leftover)])


def environment(**extra) -> dict:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **extra}


def sacct(job_id, *fields: str, duplicates: bool = False) -> list[dict]:
    """sacct's allocation records of one job (with -D: every attempt of a requeued job)."""
    command = ["sacct", "-n", "-P", "-X", "-j", str(job_id), "-o", ",".join(fields)]
    out = subprocess.run(
        command + (["-D"] if duplicates else []), capture_output=True, text=True, check=True
    ).stdout
    return [dict(zip(fields, line.split("|"), strict=True)) for line in out.splitlines() if line]


def final_state(job_id, timeout: float = 30) -> str:
    """The job's state once sacct records it as over (accounting lags a little)."""
    deadline = time.monotonic() + timeout
    while True:
        records = sacct(job_id, "State")  # none yet right after submission
        state = records[-1]["State"].split()[0] if records else "PENDING"
        if state not in ("PENDING", "RUNNING", "REQUEUED", "COMPLETING") or (
            time.monotonic() > deadline
        ):
            return state
        time.sleep(0.5)


def snakemake(workdir: Path, profile: str, timeout: int = 400) -> subprocess.CompletedProcess:
    command = [
        str(BIN / "snakemake"),
        "--profile",
        str(REPO / "profiles" / profile),
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
    ]
    return subprocess.run(
        command, env=environment(), capture_output=True, text=True, timeout=timeout
    )


def run_log(workdir: Path, experiment: str, seed: int, dataset: str = "digits") -> runlog.RunLog:
    return runlog.read(workdir / f"results/runs/{dataset}/{experiment}/seed{seed}/metrics.h5")


def assert_same_numbers(a: runlog.RunLog, b: runlog.RunLog) -> None:
    for key in EXACT:
        np.testing.assert_array_equal(a.epochs[key], b.epochs[key], err_msg=key)
    np.testing.assert_array_equal(a.confusion, b.confusion)


def wait_for_text(path: Path, pattern: str, proc, timeout: float = 60) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace") if path.exists() else ""
        found = re.search(pattern, text)
        if found:
            return found
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"no {pattern!r} in the waiting process's output:\n{text[-2000:]}")


# ---- what a run's resources become (no cluster needed) ----------------------------------------


def test_resources_become_sbatch_options():
    from imgzoo.launch import submitit_parameters

    spec = one_spec()
    spec["resources"].update(
        partition="gpu",
        account="lab",
        qos="high",
        constraint="a100",
        gpus=2,
        cpus=8,
        mem_gb=1.5,
        time_min=90,
        extra_sbatch=["--exclusive", "--nodelist=n1", "--mail-type END"],
    )
    assert submitit_parameters(spec) == {
        "name": "imgzoo:digits:wide:s0",
        "timeout_min": 90,
        "mem_gb": 1.5,
        "cpus_per_task": 8,
        "gpus_per_node": 2,
        "nodes": 1,
        "tasks_per_node": 1,
        "slurm_partition": "gpu",
        "slurm_account": "lab",
        "slurm_qos": "high",
        "slurm_constraint": "a100",
        "slurm_additional_parameters": {
            "requeue": True,
            "exclusive": True,
            "nodelist": "n1",
            "mail-type": "END",
        },
    }
    spec["resources"].update(gpus=0, partition=None, extra_sbatch=[])
    params = submitit_parameters(spec)
    assert "gpus_per_node" not in params and "slurm_partition" not in params


def test_short_sbatch_options_are_refused_with_the_key():
    from imgzoo.errors import ConfigError
    from imgzoo.launch import sbatch_flags

    with pytest.raises(ConfigError, match="resources.extra_sbatch.*'-x n1'.*--name=value"):
        sbatch_flags(["-x n1"])


# ---- the whole grid through the profile, against the same grid run locally --------------------


@pytest.fixture(scope="module")
def grids(slurm_cluster, tmp_path_factory):
    dirs = {}
    for profile in ("slurm", "local"):
        workdir = tmp_path_factory.mktemp(f"grid-{profile}")
        (workdir / "config.yaml").write_text(yaml.safe_dump(GRID))
        result = snakemake(workdir, profile)
        assert result.returncode == 0, result.stderr[-3000:]
        dirs[profile] = workdir
    return dirs


@on_cluster
@pytest.mark.slow
def test_profile_sends_every_run_to_slurm_with_its_experiments_resources(grids):
    workdir = grids["slurm"]
    for experiment, seed in RUNS:
        log = run_log(workdir, experiment, seed)
        ids = log.attrs["slurm_job_ids"].split(",")
        assert len(ids) == 1 and ids[0].isdigit(), ids
        (job,) = sacct(ids[0], "JobName", "State", "AllocTRES", "Timelimit")
        assert job["JobName"] == f"imgzoo:digits:{experiment}:s{seed}"
        assert job["State"] == "COMPLETED"
        tres = dict(item.split("=") for item in job["AllocTRES"].split(","))
        resources = {**GRID["resources"], **GRID["experiments"][experiment].get("resources", {})}
        assert tres["gres/gpu"] == "1"
        assert tres["cpu"] == str(resources["cpus"])
        assert tres["mem"] == f"{resources['mem_gb']}G"
        assert job["Timelimit"] == f"00:{resources['time_min']}:00"
        # submitit's files and the job's logs sit next to the run they belong to
        run_logs = workdir / f"results/logs/slurm/digits/{experiment}/seed{seed}"
        folders = [f for f in run_logs.iterdir() if f.is_dir()]  # (and submitit's script links)
        assert [f.name for f in folders] == ids
        stderr = (folders[0] / f"{ids[0]}_0_log.err").read_text()
        # the fake GPU: SLURM set CUDA_VISIBLE_DEVICES, torch has no CUDA, the run used the CPU
        assert re.search(r"CUDA_VISIBLE_DEVICES=\d but torch has no usable CUDA device", stderr)
        assert log.attrs["device"] == "cpu"
        train_log = (workdir / f"results/logs/train/digits/{experiment}/seed{seed}.log").read_text()
        assert f"submitted SLURM job {ids[0]}" in train_log
    assert (workdir / "results/tables/runs.csv").exists()


@on_cluster
@pytest.mark.slow
def test_runs_through_slurm_give_the_numbers_of_local_runs(grids):
    for experiment, seed in RUNS:
        on_slurm = run_log(grids["slurm"], experiment, seed)
        local = run_log(grids["local"], experiment, seed)
        assert local.attrs["slurm_job_ids"] == ""
        assert_same_numbers(on_slurm, local)


# ---- one run through the command line --------------------------------------------------------


@pytest.fixture(scope="module")
def digits_h5(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "digits.h5"
    data.prepare("digits", {}, path)
    return path


def train_command(spec: dict, data_path: Path, out: Path, logs: Path, *extra, poll=1) -> list:
    return [
        str(BIN / "imgzoo"),
        "train",
        *("--experiment", spec["experiment"], "--dataset", spec["dataset"]),
        *("--seed", str(spec["seed"]), "--data", str(data_path), "--out", str(out)),
        *("--threads", "1", "--launcher", "submitit", "--spec", json.dumps(spec)),
        *("--slurm", json.dumps({"poll_interval_s": poll, "log_dir": str(logs)})),
        *extra,
    ]


def one_spec(**train) -> dict:
    spec = Study(ONE).run_spec("digits", "wide", 0)
    spec["train"].update(train)
    return spec


# `imgzoo ARGS` that reports at exit whether torch got imported and its peak memory. VmHWM, not
# getrusage: a child's ru_maxrss starts at the RSS of the process that forked it (here pytest,
# with torch loaded), because exec keeps the high-water mark of the forked image.
LIGHT_CHECK = """
import atexit, re, sys
def report():
    status = open("/proc/self/status").read()
    hwm = int(re.search(r"VmHWM:\\s*(\\d+) kB", status)[1])
    print(f"waiter: torch imported={'torch' in sys.modules} peak RSS={hwm} kB", file=sys.stderr)
atexit.register(report)
from imgzoo.cli import main
raise SystemExit(main())
"""


@pytest.fixture(scope="module")
def interrupted(slurm_cluster, tmp_path_factory, digits_h5):
    """One run whose job gets SLURM's time-limit signal (`scancel --signal=USR2`, what
    submitit's `job._interrupt(timeout=True)` sends) once its first epoch checkpoint exists. The
    waiting process runs with `-X importtime` and reports its peak memory at exit."""
    tmp = tmp_path_factory.mktemp("interrupted")
    spec = one_spec()
    out, logs, stderr_path = tmp / "run", tmp / "logs", tmp / "waiter.err"
    command = train_command(spec, digits_h5, out, logs)
    command = [sys.executable, "-X", "importtime", "-c", LIGHT_CHECK, *command[1:]]
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(command, env=environment(), stderr=stderr, text=True)
    started = time.monotonic()
    job_id = wait_for_text(stderr_path, r"submitted SLURM job (\d+)", proc)[1]
    while not (out / "checkpoint.pt").exists():
        assert time.monotonic() - started < 120 and proc.poll() is None, "no checkpoint"
        time.sleep(0.05)
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
    try:
        proc.wait(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("the interrupted run did not finish in 300 s") from None
    reference = tmp / "local"
    local = subprocess.run(
        [str(BIN / "imgzoo"), "train", "--experiment", "wide", "--dataset", "digits"]
        + ["--seed", "0", "--data", str(digits_h5), "--out", str(reference), "--threads", "1"]
        + ["--spec", json.dumps(spec)],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert local.returncode == 0, local.stderr[-2000:]
    return {
        "rc": proc.returncode,
        "stderr": stderr_path.read_text(),
        "job_id": job_id,
        "out": out,
        "logs": logs,
        "reference": reference,
    }


@on_cluster
@pytest.mark.slow
def test_interrupted_job_is_requeued_resumes_and_ends_with_the_uninterrupted_numbers(interrupted):
    assert interrupted["rc"] == 0, interrupted["stderr"][-2000:]
    job_id = interrupted["job_id"]
    states = [r["State"] for r in sacct(job_id, "State", duplicates=True)]
    assert "REQUEUED" in states and states[-1] == "COMPLETED", states
    job_log = next(interrupted["logs"].glob(f"digits/wide/seed0/{job_id}/{job_id}_0_log.err"))
    resumed_after = re.findall(
        r"resuming from .*checkpoint.pt after epoch (\d+)", job_log.read_text()
    )
    assert len(resumed_after) == 1 and 1 <= int(resumed_after[0]) < ONE["train"]["epochs"]
    log = runlog.read(interrupted["out"] / "metrics.h5")
    assert log.attrs["slurm_job_ids"] == job_id  # the same job, requeued
    assert list(log.epochs["epoch"]) == list(range(1, ONE["train"]["epochs"] + 1))
    assert_same_numbers(log, runlog.read(interrupted["reference"] / "metrics.h5"))


@on_cluster
@pytest.mark.slow
def test_waiting_side_stays_light(interrupted):
    imports = re.findall(r"^import time:.*\|\s*([\w.]+)$", interrupted["stderr"], re.M)
    assert "imgzoo.launch" in imports and "submitit" in imports
    heavy = [m for m in imports if m.split(".")[0] in ("torch", "torchvision", "timm")]
    assert not heavy, heavy
    # of the models, only the torch-free catalog (config validation needs it)
    ours = {m for m in imports if m.startswith(("imgzoo.train", "imgzoo.models"))}
    assert ours <= {"imgzoo.models", "imgzoo.models.catalog"}, ours
    report = re.search(r"waiter: torch imported=(\w+) peak RSS=(\d+) kB", interrupted["stderr"])
    assert report[1] == "False"
    print(f"waiting process: peak RSS {int(report[2]) / 1024:.1f} MB")
    assert int(report[2]) < 100 * 1024


@on_cluster
@pytest.mark.slow
def test_job_that_fails_inside_gives_one_line_with_its_id_state_and_log(tmp_path, digits_h5):
    # The config check knows the argument's name; only building the model rejects its value.
    command = train_command(
        one_spec(), digits_h5, tmp_path / "run", tmp_path / "logs", "model_args.activation=nope"
    )
    result = subprocess.run(command, env=environment(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr[-2000:]
    error = result.stderr.strip().splitlines()[-1]
    found = re.match(r"imgzoo: error: SLURM job (\d+) FAILED \(exit 1:0\): (.*)", error)
    assert found, error
    assert "ConfigError: model family 'mlp': activation='nope'" in found[2]
    assert f"logs: {tmp_path}/logs/digits/wide/seed0/{found[1]}/{found[1]}_0_log.err" in error
    assert final_state(found[1]) == "FAILED"


@pytest.fixture
def logging_sacct(tmp_path):
    """A `sacct` first on the PATH that notes the time of each call, then runs the real one."""
    folder = tmp_path / "bin"
    folder.mkdir()
    wrapper = folder / "sacct"
    wrapper.write_text(
        f'#!/bin/sh\ndate +%s.%N >> {tmp_path}/sacct-calls\nexec {shutil.which("sacct")} "$@"\n'
    )
    wrapper.chmod(0o755)
    return folder, tmp_path / "sacct-calls"


@on_cluster
def test_cancelled_job_gives_one_line_error_within_seconds(tmp_path, digits_h5, logging_sacct):
    folder, calls = logging_sacct
    stderr_path = tmp_path / "waiter.err"
    command = train_command(
        one_spec(epochs=500), digits_h5, tmp_path / "run", tmp_path / "logs", poll=2
    )
    env = environment()
    env["PATH"] = f"{folder}{os.pathsep}{env['PATH']}"
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(command, env=env, stderr=stderr, text=True)
    job_id = wait_for_text(stderr_path, r"SLURM job (\d+): RUNNING", proc)[1]
    subprocess.run(["scancel", job_id], check=True)
    cancelled = time.monotonic()
    proc.wait(timeout=60)
    waited = time.monotonic() - cancelled
    error = stderr_path.read_text().strip().splitlines()[-1]
    assert proc.returncode == 1, error
    assert re.match(rf"imgzoo: error: SLURM job {job_id} CANCELLED\b.*CANCELLED AT", error), error
    assert waited < 10
    times = [float(t) for t in calls.read_text().split()]
    assert len(times) >= 2 and min(np.diff(times)) >= 1.9  # polls at most every poll_interval_s


@on_cluster
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_while_waiting_cancels_the_job(tmp_path, digits_h5, sig):
    stderr_path = tmp_path / "waiter.err"
    command = train_command(one_spec(epochs=500), digits_h5, tmp_path / "run", tmp_path / "logs")
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(command, env=environment(), stderr=stderr, text=True)
    job_id = wait_for_text(stderr_path, r"SLURM job (\d+): RUNNING", proc)[1]
    proc.send_signal(sig)
    assert proc.wait(timeout=30) == (130 if sig == signal.SIGINT else 128 + sig)
    assert f"cancelled SLURM job {job_id}" in stderr_path.read_text()
    assert final_state(job_id) == "CANCELLED"


@on_cluster
def test_ctrl_c_on_snakemake_cancels_the_jobs_it_started(tmp_path):
    config = {**GRID, "train": {**GRID["train"], "epochs": 500}}
    config["experiments"] = {"mlp": GRID["experiments"]["mlp"]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    command = [str(BIN / "snakemake"), "--profile", str(REPO / "profiles/slurm")]
    command += ["-s", str(REPO / "Snakefile"), "-d", str(tmp_path)]
    command += ["--configfile", str(tmp_path / "config.yaml")]
    proc = subprocess.Popen(  # its own process group, as in a terminal
        command,
        env=environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    jobs = []
    for seed in config["seeds"]:
        log = tmp_path / f"results/logs/train/digits/mlp/seed{seed}.log"
        jobs.append(wait_for_text(log, r"SLURM job (\d+): RUNNING", proc, timeout=120)[1])
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
    assert proc.wait(timeout=60) != 0
    for job in jobs:
        assert final_state(job) == "CANCELLED"


# ---- the head job ------------------------------------------------------------------------------


@on_cluster
@pytest.mark.slow
def test_head_job_script_runs_a_grid_to_completion(tmp_path):
    config = {**GRID, "experiments": {"mlp": GRID["experiments"]["mlp"]}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    head_log = tmp_path / "head.log"
    submitted = subprocess.run(
        ["sbatch", "--parsable", f"--output={head_log}", "slurm/workflow.sbatch"]
        + ["-s", str(REPO / "Snakefile"), "-d", str(tmp_path)]
        + ["--configfile", str(tmp_path / "config.yaml")],
        cwd=REPO,
        env=environment(IMGZOO_VENV=sys.prefix),
        capture_output=True,
        text=True,
        check=True,
    )
    head = submitted.stdout.strip().split(";")[0]
    state = final_state(head, timeout=300)
    assert state == "COMPLETED", head_log.read_text()[-3000:]
    assert (tmp_path / "results/tables/runs.csv").exists()
    for seed in config["seeds"]:
        (job,) = run_log(tmp_path, "mlp", seed).attrs["slurm_job_ids"].split(",")
        assert job != head  # the head job submitted the run as a job of its own
        assert sacct(job, "JobName")[0]["JobName"] == f"imgzoo:digits:mlp:s{seed}"
