"""`snakemake --profile profiles/slurm` (the `imgzoo` executor) against a real one-node cluster.

Start the cluster first: `sudo slurm/testcluster/up` (CI does). Every test submits real jobs and
trains for real (the built-in digits dataset, small MLPs, a few epochs). The tests ask SLURM about
their jobs every second (`--imgzoo-status-interval 1`) instead of the profile's 10 seconds.
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

import helpers
import numpy as np
import pytest
import torch
import yaml
from helpers import BIN, RAISED, RAISING_MODEL, REPO, environment

from imgzoo import runlog
from imgzoo.config import Run, Study
from imgzoo.paths import Layout
from imgzoo.slurm_runs import run_log_folder

# On a GPU host the test cluster's fake GPUs hide a real one: the job then trains on it.
CUDA = torch.cuda.is_available()
EXACT = [k for k in runlog.EPOCH_SERIES if k not in runlog.TIMING_SERIES]
STATUS_INTERVAL = 1
# Every test's study is its folder's config.yaml: its files go to results/config/.
LAYOUT = Layout("config")


def on_cluster(test):
    """A test against the cluster: marked `slurm`, it needs the cluster (the `slurm_cluster`
    fixture fails or skips it otherwise) and cancels what it leaves in the queue."""
    return pytest.mark.slurm(pytest.mark.usefixtures("slurm_cluster", "no_leftover_jobs")(test))


GRID = {
    "datasets": ["digits"],
    "seeds": [0, 1],
    "train": {"epochs": 3, "batch_size": 64, "lr": 0.003, "augment": "none"},
    "resources": {"cpus": 1, "mem_gb": 1, "time_min": 10, "gpus": 1},
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
    "report": {"weight_grids": False},
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


def snakemake_command(workdir: Path, *extra: str, profile: str = "slurm") -> list[str]:
    """The workflow through a profile; with the SLURM one, asking SLURM every STATUS_INTERVAL."""
    if profile == "slurm":
        extra = ("--imgzoo-status-interval", str(STATUS_INTERVAL), *extra)
    # every test's study is workdir/config.yaml, which start_snakemake may write after this
    return helpers.snakemake_command(
        workdir, *extra, profile=profile, configfile=workdir / "config.yaml"
    )


def snakemake(
    workdir: Path, profile: str, *targets: str, timeout: int = 400
) -> subprocess.CompletedProcess:
    return subprocess.run(
        snakemake_command(workdir, *targets, profile=profile),
        env=environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_snakemake(workdir: Path, config: dict, command: list[str], env=None) -> subprocess.Popen:
    """Snakemake in the background, in its own process group (as in a terminal) and with SIGINT
    as a terminal gives it (a shell's background job would pass it on ignored); its output goes
    to workdir/snakemake.log."""
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    with (workdir / "snakemake.log").open("w") as out:
        return subprocess.Popen(
            command,
            env=env or environment(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )


def finish(proc: subprocess.Popen, timeout: float, workdir: Path) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
        raise AssertionError(
            f"snakemake did not finish in {timeout} s:\n{output(workdir)[-3000:]}"
        ) from None


def output(workdir: Path) -> str:
    return (workdir / "snakemake.log").read_text(errors="replace")


def train_log(workdir: Path, experiment: str, seed: int, dataset: str = "digits") -> Path:
    return workdir / LAYOUT.train_log(dataset, experiment, seed)


def run_dir(workdir: Path, experiment: str, seed: int, dataset: str = "digits") -> Path:
    return workdir / LAYOUT.run_dir(dataset, experiment, seed)


def slurm_logs(workdir: Path, experiment: str, seed: int, dataset: str = "digits") -> Path:
    """The run's SLURM log folder (one folder per job id inside)."""
    return Path(run_log_folder(workdir / LAYOUT.log("slurm"), dataset, experiment, seed))


def run_log(workdir: Path, experiment: str, seed: int, dataset: str = "digits") -> runlog.RunLog:
    return runlog.read(run_dir(workdir, experiment, seed, dataset) / "metrics.h5")


def assert_same_numbers(a: runlog.RunLog, b: runlog.RunLog) -> None:
    for key in EXACT:
        np.testing.assert_array_equal(a.epochs[key], b.epochs[key], err_msg=key)
    np.testing.assert_array_equal(a.confusion, b.confusion)


def wait_for_text(path: Path, pattern: str, proc, timeout: float = 60) -> re.Match:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace") if path.exists() else ""
        found = re.search(pattern, text)
        if found:
            return found
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"no {pattern!r} in {path}:\n{text[-2000:]}")


def job_of(workdir: Path, experiment: str, seed: int, proc, timeout: float = 120) -> str:
    """The SLURM job id of a run, once the executor has submitted it (from the rule's log)."""
    log = train_log(workdir, experiment, seed)
    return wait_for_text(log, r"submitted SLURM job (\d+)", proc, timeout)[1]


def wait_for_file(path: Path, proc, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline and proc.poll() is None, f"no {path}"
        time.sleep(0.05)


# ---- what a run's resources become, and the executor's registration (no cluster needed) ---------


def test_snakemake_finds_the_executor_that_the_slurm_profile_names():
    from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry

    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    plugin = ExecutorPluginRegistry().get_plugin(profile["executor"])
    settings = {s["cliarg"]: s["default"] for s in plugin.get_settings_info()}
    assert settings == {"--imgzoo-status-interval": 10, "--imgzoo-submit-wait": 60}
    assert profile["imgzoo-status-interval"] == settings["--imgzoo-status-interval"]
    assert profile["imgzoo-submit-wait"] == settings["--imgzoo-submit-wait"]
    assert plugin.common_settings.non_local_exec


def test_executor_refuses_a_workflow_with_a_rule_it_cannot_submit(tmp_path):
    (tmp_path / "Snakefile").write_text(
        'rule train:\n    output: "a"\n    shell: "touch {output}"\n\n'
        'rule other:\n    input: "a"\n    output: "b"\n    shell: "touch {output}"\n'
    )
    result = subprocess.run(
        [str(BIN / "snakemake"), "--executor", "imgzoo", "--jobs", "1", "-d", str(tmp_path)]
        + ["-s", str(tmp_path / "Snakefile"), "b"],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "executor imgzoo submits only the 'train' rule to SLURM; mark other" in result.stderr
    assert not (tmp_path / "a").exists()


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
        run_logs = slurm_logs(workdir, experiment, seed)
        folders = [f for f in run_logs.iterdir() if f.is_dir()]  # (and submitit's script links)
        assert [f.name for f in folders] == ids
        stderr = (folders[0] / f"{ids[0]}_0_log.err").read_text()
        # the fake GPU: SLURM set CUDA_VISIBLE_DEVICES; where torch has no CUDA (this test
        # cluster's usual host) the run says so and trains on the CPU
        if not CUDA:
            assert re.search(r"CUDA_VISIBLE_DEVICES=\d but torch has no usable CUDA device", stderr)
        assert log.attrs["device"] == ("cuda" if CUDA else "cpu")
        rule_log = train_log(workdir, experiment, seed).read_text()
        assert f"submitted SLURM job {ids[0]} (imgzoo:digits:{experiment}:s{seed})" in rule_log
        assert re.search(rf"SLURM job {ids[0]} COMPLETED: completed after 3 epochs", rule_log)
    assert (workdir / LAYOUT.table("runs")).exists()


@on_cluster
@pytest.mark.slow
def test_runs_through_slurm_give_the_numbers_of_local_runs(grids):
    for experiment, seed in RUNS:
        on_slurm = run_log(grids["slurm"], experiment, seed)
        local = run_log(grids["local"], experiment, seed)
        assert local.attrs["slurm_job_ids"] == ""
        assert_same_numbers(on_slurm, local)


# ---- many runs in flight: the status load, then Ctrl-C ------------------------------------------

# 8 runs in 5 jobs: 4 runs alone, 4 in a pack; 2 jobs run at once (2 fake GPUs), the others wait
# in the queue.
IN_FLIGHT = {"mlp": 1, "packed": 4}  # experiment: its pack
SEEDS_IN_FLIGHT = [0, 1, 2, 3]


@pytest.fixture(scope="module")
def in_flight(slurm_cluster, tmp_path_factory):
    """A grid of 8 long runs through the profile (4 alone in their jobs, 4 in one pack), with
    every sacct and squeue call logged (time and arguments) by wrappers first on the PATH. Once
    all are submitted and two jobs run, it watches for a few status intervals, then sends SIGINT
    to Snakemake's process group (Ctrl-C)."""
    workdir = tmp_path_factory.mktemp("in-flight")
    wrappers, calls = workdir / "bin", workdir / "status-calls"
    wrappers.mkdir()
    for name in ("sacct", "squeue"):
        wrapper = wrappers / name
        wrapper.write_text(
            f'#!/bin/sh\necho "$(date +%s.%N) {name} $*" >> {calls}\n'
            f'exec {shutil.which(name)} "$@"\n'
        )
        wrapper.chmod(0o755)
    mlp = GRID["experiments"]["mlp"]
    config = {
        **GRID,
        "seeds": SEEDS_IN_FLIGHT,
        "train": {**GRID["train"], "epochs": 500},
        "experiments": {
            # another width: runs of the same settings would be trained once
            name: {**mlp, "model_args": {"hidden": [32 + i]}, "resources": {"pack": pack}}
            for i, (name, pack) in enumerate(IN_FLIGHT.items())
        },
    }
    env = environment()
    env["PATH"] = f"{wrappers}{os.pathsep}{env['PATH']}"
    proc = start_snakemake(workdir, config, snakemake_command(workdir), env=env)
    runs = [(e, seed) for e in IN_FLIGHT for seed in SEEDS_IN_FLIGHT]
    jobs = {run: job_of(workdir, *run, proc) for run in runs}
    submitted = time.time()
    running = set()
    while len(running) < 2:
        assert proc.poll() is None and time.time() - submitted < 120, output(workdir)[-3000:]
        running = {jobs[run] for run in runs if ": RUNNING" in train_log(workdir, *run).read_text()}
        time.sleep(0.2)
    time.sleep(6 * STATUS_INTERVAL)
    status = subprocess.run(
        [str(BIN / "imgzoo"), "status", "--json", "--config", "config.yaml"],
        cwd=workdir,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    interrupted = time.time()
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
    rc = finish(proc, 60, workdir)
    records = [line.split(" ", 2) for line in calls.read_text().splitlines()]
    return {
        "rc": rc,
        "jobs": jobs,
        "submitted": submitted,
        "interrupted": interrupted,
        "calls": [(float(t), name, args) for t, name, args in records],
        "workdir": workdir,
        "status": status,
    }


@on_cluster
def test_status_queries_stay_one_per_interval_for_all_runs_in_flight(in_flight):
    start, end = in_flight["submitted"], in_flight["interrupted"]
    calls = [c for c in in_flight["calls"] if start <= c[0] <= end]
    intervals = (end - start) / STATUS_INTERVAL
    # The bound: at most 2 calls per interval (sacct for all; squeue now and then for jobs that
    # accounting does not list yet), whatever the number of runs. One waiting process per run
    # made 12.7 per interval for 8 runs.
    assert len(calls) <= 2 * intervals + 2, (len(calls), intervals)
    sacct_calls = [args for _, name, args in calls if name == "sacct"]
    assert intervals / 2 <= len(sacct_calls) <= intervals + 1, (len(sacct_calls), intervals)
    for args in sacct_calls:  # one call asks about every run in flight
        asked = re.search(r"-j (\S+)", args)[1].split(",")
        assert sorted(asked) == sorted(set(in_flight["jobs"].values())), args


@on_cluster
def test_status_shows_each_run_of_a_pack_in_the_queue_with_its_job(in_flight):
    assert in_flight["status"].returncode == 0, in_flight["status"].stderr[-2000:]
    runs = json.loads(in_flight["status"].stdout)["run_states"]
    states = {(r["experiment"], r["seed"]): (r["state"], r["slurm_job_id"]) for r in runs}
    for run, job in in_flight["jobs"].items():  # every run is in the queue, packed or not
        assert states[run][0] in ("waiting", "running") and states[run][1] == job, states


@on_cluster
def test_ctrl_c_on_snakemake_cancels_every_job_it_submitted(in_flight):
    assert in_flight["rc"] != 0
    jobs = set(in_flight["jobs"].values())
    packs = {in_flight["jobs"][("packed", seed)] for seed in SEEDS_IN_FLIGHT}
    assert len(jobs) == 5 and len(packs) == 1  # the pack is one job, and it is cancelled too
    assert {final_state(job) for job in jobs} == {"CANCELLED"}
    deadline = time.monotonic() + 30  # the running ones are killed (COMPLETING) a moment later
    while queued_jobs() & {int(job) for job in jobs}:
        assert time.monotonic() < deadline, queued_jobs()
        time.sleep(0.5)
    for run, job in in_flight["jobs"].items():
        assert f"cancelled SLURM job {job}" in train_log(in_flight["workdir"], *run).read_text()


@on_cluster
def test_ctrl_c_while_snakemake_submits_leaves_no_job_behind(tmp_path):
    config = {
        **GRID,
        "seeds": list(range(30)),
        "resources": {**GRID["resources"], "gpus": 0, "extra_sbatch": ["--hold"]},
        "experiments": {"mlp": GRID["experiments"]["mlp"]},
    }
    before = queued_jobs()
    proc = start_snakemake(tmp_path, config, snakemake_command(tmp_path))
    scripts = tmp_path / LAYOUT.log("slurm")
    deadline = time.monotonic() + 120
    while len(list(scripts.rglob("*_submission.sh")) if scripts.exists() else []) < 5:
        assert time.monotonic() < deadline and proc.poll() is None, output(tmp_path)[-3000:]
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGINT)  # in the middle of the submissions
    assert finish(proc, 60, tmp_path) != 0
    submitted = re.findall(r"cancelled \d+ SLURM jobs: ([\d ]+)", output(tmp_path))
    assert submitted and len(submitted[0].split()) >= 5, output(tmp_path)[-3000:]
    deadline = time.monotonic() + 30
    while queued_jobs() - before:
        assert time.monotonic() < deadline, queued_jobs() - before
        time.sleep(0.5)


# ---- time limit, retries, and the login node's weight -----------------------------------------


def trained_locally(config: dict, data_path: Path, out: Path) -> runlog.RunLog:
    """The config's one run trained here, start to end, as the local profile would (1 thread):
    the numbers an interrupted run must end with."""
    (experiment,) = config["experiments"]
    return trained_side_by_side(config, [experiment], data_path, out)[experiment]


def trained_side_by_side(
    config: dict, experiments: list[str], data_path: Path, out: Path
) -> dict[str, runlog.RunLog]:
    """Seed 0 of each experiment trained here (each run in a process of its own, all at once),
    start to end, as the local profile would (1 thread)."""
    study = Study(config)
    processes = {
        experiment: subprocess.Popen(
            [str(BIN / "imgzoo"), "train", "--experiment", experiment, "--dataset", "digits"]
            + ["--seed", "0", "--data", str(data_path), "--out", str(out / experiment)]
            + ["--threads", "1", "--study", study.name]
            + ["--settings", study.spec(Run("digits", experiment, 0)).settings.to_json()],
            env=environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for experiment in experiments
    }
    for experiment, process in processes.items():
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, f"{experiment}: {err[-2000:]}"
    return {e: runlog.read(out / e / "metrics.h5") for e in experiments}


@pytest.fixture(scope="module")
def uninterrupted(slurm_cluster, tmp_path_factory, digits_h5):
    return trained_locally(ONE, digits_h5, tmp_path_factory.mktemp("uninterrupted"))


# Only the run: no tables or figures after it.
ONE_RUN = LAYOUT.run_log("digits", "wide", 0)


# Snakemake itself, reporting at exit whether torch got imported and its peak memory. VmHWM,
# not getrusage: a child's ru_maxrss starts at the RSS of the process that forked it (here
# pytest, with torch loaded), because exec keeps the high-water mark of the forked image.
LIGHT_CHECK = """
import atexit, re, sys
def report():
    status = open("/proc/self/status").read()
    hwm = int(re.search(r"VmHWM:\\s*(\\d+) kB", status)[1])
    print(f"login node: torch imported={'torch' in sys.modules} peak RSS={hwm} kB", file=sys.stderr)
atexit.register(report)
from snakemake.cli import main
main()
"""


@pytest.fixture(scope="module")
def interrupted(slurm_cluster, tmp_path_factory):
    """One run through the profile whose job gets SLURM's time-limit signal (`scancel
    --signal=USR2`, what submitit's `job._interrupt(timeout=True)` sends) once its first epoch
    checkpoint exists. Snakemake runs with `-X importtime` and reports its peak memory at exit."""
    workdir = tmp_path_factory.mktemp("interrupted")
    command = snakemake_command(workdir, ONE_RUN)
    command = [sys.executable, "-X", "importtime", "-c", LIGHT_CHECK, *command[1:]]
    proc = start_snakemake(workdir, ONE, command)
    job_id = job_of(workdir, "wide", 0, proc)
    wait_for_file(run_dir(workdir, "wide", 0) / "checkpoint.pt", proc)
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
    rc = finish(proc, 300, workdir)
    return {"rc": rc, "job_id": job_id, "workdir": workdir, "output": output(workdir)}


@on_cluster
@pytest.mark.slow
def test_interrupted_job_is_requeued_resumes_and_ends_with_the_uninterrupted_numbers(
    interrupted, uninterrupted
):
    assert interrupted["rc"] == 0, interrupted["output"][-3000:]
    job_id, workdir = interrupted["job_id"], interrupted["workdir"]
    states = [r["State"] for r in sacct(job_id, "State", duplicates=True)]
    assert "REQUEUED" in states and states[-1] == "COMPLETED", states
    job_log = slurm_logs(workdir, "wide", 0) / job_id / f"{job_id}_0_log.err"
    resumed_after = re.findall(
        r"resuming from .*checkpoint.pt after epoch (\d+)", job_log.read_text()
    )
    assert len(resumed_after) == 1 and 1 <= int(resumed_after[0]) < ONE["train"]["epochs"]
    log = run_log(workdir, "wide", 0)
    assert log.attrs["slurm_job_ids"] == job_id  # the same job, requeued
    assert list(log.epochs["epoch"]) == list(range(1, ONE["train"]["epochs"] + 1))
    assert_same_numbers(log, uninterrupted)


@on_cluster
@pytest.mark.slow
def test_login_node_holds_one_light_process(interrupted):
    err = interrupted["output"]
    imports = re.findall(r"^import time:.*\|\s*([\w.]+)$", err, re.M)
    # (the plugin's package itself is imported by importlib, which -X importtime does not show)
    assert {"imgzoo.slurm_status", "imgzoo.slurm_submit", "submitit"} <= set(imports)
    heavy = [m for m in imports if m.split(".")[0] in ("torch", "torchvision", "timm")]
    assert not heavy, heavy
    # of the models, only the torch-free catalog (config validation needs it)
    ours = {m for m in imports if m.startswith(("imgzoo.train", "imgzoo.models"))}
    # the torch-free parts of the models: names, presets, the arguments' description and their
    # joint checks, timm's names (asked of a child process, cached) and a model file's checks
    # (parsed, not run)
    torch_free = {"imgzoo.models", "imgzoo.models.catalog", "imgzoo.models.arguments",
                  "imgzoo.models.joint_checks", "imgzoo.models.timm_names",
                  "imgzoo.models.file_source"}
    assert ours <= torch_free, ours
    report = re.search(r"login node: torch imported=(\w+) peak RSS=(\d+) kB", err)
    assert report[1] == "False"
    print(f"snakemake on the login node: peak RSS {int(report[2]) / 1024:.1f} MB")
    assert int(report[2]) < 250 * 1024


# A run still training 5 s after a plain scancel: submitit's job ignores SIGTERM and trains on
# until SLURM's SIGKILL (KillWait, 5 s on the test cluster).
LONGER = {**ONE, "train": {**ONE["train"], "epochs": 100}}


@on_cluster
@pytest.mark.slow
def test_retry_resubmits_a_cancelled_run_and_resumes_from_its_checkpoint(tmp_path, digits_h5):
    workdir = tmp_path / "slurm"
    workdir.mkdir()
    command = snakemake_command(workdir, "--retries", "1", ONE_RUN)
    proc = start_snakemake(workdir, LONGER, command)
    first = job_of(workdir, "wide", 0, proc)
    wait_for_file(run_dir(workdir, "wide", 0) / "checkpoint.pt", proc)
    subprocess.run(["scancel", first], check=True)
    assert finish(proc, 300, workdir) == 0, output(workdir)[-3000:]
    assert re.search(rf"SLURM job {first} CANCELLED: .*CANCELLED AT", output(workdir))
    log = run_log(workdir, "wide", 0)
    ids = log.attrs["slurm_job_ids"].split(",")
    assert ids[0] == first and len(ids) == 2, ids
    job_log = slurm_logs(workdir, "wide", 0) / ids[1] / f"{ids[1]}_0_log.err"
    resumed_after = re.findall(
        r"resuming from .*checkpoint.pt after epoch (\d+)", job_log.read_text()
    )
    assert len(resumed_after) == 1 and 1 <= int(resumed_after[0]) < LONGER["train"]["epochs"]
    assert_same_numbers(log, trained_locally(LONGER, digits_h5, tmp_path / "local"))


# ---- packs: several runs in one job, side by side on its GPU ----------------------------------

PACKED = {
    "datasets": ["digits"],
    "seeds": list(range(6)),
    "train": {"epochs": 2, "batch_size": 64, "lr": 0.003, "augment": "none"},
    "resources": {"cpus": 1, "mem_gb": 1, "time_min": 10, "gpus": 1, "pack": 4},
    "report": {"weight_grids": False},
    "experiments": {
        "mlp": {"model": "mlp", "model_args": {"hidden": [32]}},
        "mlp2": {"model": "mlp", "model_args": {"hidden": [16, 16]}},
    },
}
PACKED_RUNS = [(e, s) for e in PACKED["experiments"] for s in PACKED["seeds"]]


@pytest.fixture(scope="module")
def packed_grids(slurm_cluster, tmp_path_factory):
    """The 12 runs of PACKED through the profile (ready together: packs of 4) and locally (the
    runs only: no tables or figures after them)."""
    dirs = {}
    targets = [LAYOUT.run_log("digits", e, s) for e, s in PACKED_RUNS]
    for profile in ("slurm", "local"):
        workdir = tmp_path_factory.mktemp(f"packed-{profile}")
        (workdir / "config.yaml").write_text(yaml.safe_dump(PACKED))
        result = snakemake(workdir, profile, *targets)
        assert result.returncode == 0, result.stderr[-3000:]
        dirs[profile] = workdir
    return dirs


@on_cluster
@pytest.mark.slow
def test_twelve_runs_packed_by_four_are_three_jobs_with_the_numbers_of_local_runs(packed_grids):
    workdir = packed_grids["slurm"]
    runs_of_job = {}
    for experiment, seed in PACKED_RUNS:
        log = run_log(workdir, experiment, seed)
        (job,) = log.attrs["slurm_job_ids"].split(",")
        runs_of_job.setdefault(job, []).append(f"{experiment}:s{seed}")
        assert_same_numbers(log, run_log(packed_grids["local"], experiment, seed))
        # each run keeps its own log, and its rule's log says where it went
        own = slurm_logs(workdir, experiment, seed) / job / f"{job}_0_log.err"
        assert f"[digits/{experiment}/s{seed}] epoch 2/2" in own.read_text()
        rule_log = train_log(workdir, experiment, seed).read_text()
        name = f"imgzoo:digits:{experiment}:s{seed}"
        assert f"submitted SLURM job {job} ({name}) in a pack of 4 runs; logs: {own}" in rule_log
        assert re.search(rf"SLURM job {job} COMPLETED: completed after 2 epochs", rule_log)
    assert sorted(map(len, runs_of_job.values())) == [4, 4, 4]
    # three sbatch calls in all, whose submitit files sit in the packs' folder
    scripts = sorted((workdir / LAYOUT.log("slurm")).rglob("*_submission.sh"))
    assert [s.parent.parent.name for s in scripts] == ["packs"] * 3
    assert sorted(s.parent.name for s in scripts) == sorted(runs_of_job)
    for job, runs in runs_of_job.items():
        (record,) = sacct(job, "JobName", "State", "AllocTRES")
        assert record["State"] == "COMPLETED"
        tres = dict(item.split("=") for item in record["AllocTRES"].split(","))
        assert (tres["gres/gpu"], tres["cpu"], tres["mem"]) == ("1", "4", "4G")  # one GPU
        # named after its runs: imgzoo:digits:mlp:s0,1+digits:mlp2:s3,4
        named = {
            f"{part.split(':')[1]}:s{seed}"
            for part in record["JobName"].removeprefix("imgzoo:").split("+")
            for seed in part.split(":s")[1].split(",")
        }
        assert named == set(runs), (record["JobName"], runs)


# One pack of four: two long runs, one that ends after its only epoch, one that raises at once.
PACK_INTERRUPTED = {
    "datasets": ["digits"],
    "seeds": [0],
    "train": {"epochs": 40, "batch_size": 32, "lr": 0.003, "augment": "none"},
    "resources": {"cpus": 1, "mem_gb": 1, "time_min": 10, "gpus": 1, "pack": 4},
    "report": {"weight_grids": False},
    "experiments": {
        "wide": {"model": "mlp", "model_args": {"hidden": [512, 512]}},
        "wide2": {"model": "mlp", "model_args": {"hidden": [256, 256]}},
        "short": {"model": "mlp", "model_args": {"hidden": [32]}, "epochs": 1},
        "raises": {"model": RAISING_MODEL},  # passes the study's checks, fails in its job
    },
}
RESUMED = ["wide", "wide2"]


@pytest.fixture(scope="module")
def pack_interrupted(slurm_cluster, tmp_path_factory):
    """PACK_INTERRUPTED's pack through the profile; once its short run has ended and its long
    ones have their first epoch checkpoint, the job gets SLURM's time-limit signal (`scancel
    --signal=USR2`)."""
    workdir = tmp_path_factory.mktemp("pack-interrupted")
    targets = [LAYOUT.run_log("digits", e, 0) for e in PACK_INTERRUPTED["experiments"]]
    proc = start_snakemake(workdir, PACK_INTERRUPTED, snakemake_command(workdir, *targets))
    job_id = job_of(workdir, "wide", 0, proc)
    for experiment in RESUMED:
        wait_for_file(run_dir(workdir, experiment, 0) / "checkpoint.pt", proc)
    wait_for_file(run_dir(workdir, "short", 0) / "metrics.h5", proc)
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
    rc = finish(proc, 300, workdir)
    return {"rc": rc, "job_id": job_id, "workdir": workdir, "output": output(workdir)}


@pytest.fixture(scope="module")
def pack_uninterrupted(slurm_cluster, tmp_path_factory, digits_h5):
    out = tmp_path_factory.mktemp("pack-uninterrupted")
    return trained_side_by_side(PACK_INTERRUPTED, [*RESUMED, "short"], digits_h5, out)


def own_log(workdir: Path, experiment: str, job_id: str) -> str:
    return (slurm_logs(workdir, experiment, 0) / job_id / f"{job_id}_0_log.err").read_text()


@on_cluster
@pytest.mark.slow
def test_interrupted_pack_is_requeued_once_and_its_runs_end_with_the_uninterrupted_numbers(
    pack_interrupted, pack_uninterrupted
):
    job_id, workdir = pack_interrupted["job_id"], pack_interrupted["workdir"]
    assert pack_interrupted["rc"] == 1, pack_interrupted["output"][-3000:]  # the run that raised
    states = [r["State"] for r in sacct(job_id, "State", duplicates=True)]
    assert states.count("REQUEUED") == 1 and states[-1] == "COMPLETED", states
    epochs = PACK_INTERRUPTED["train"]["epochs"]
    for experiment in RESUMED:
        own = own_log(workdir, experiment, job_id)
        assert "got SIGUSR2: stopping after this step to requeue" in own
        resumed_after = re.findall(r"resuming from .*checkpoint.pt after epoch (\d+)", own)
        assert len(resumed_after) == 1 and 1 <= int(resumed_after[0]) < epochs, resumed_after
        log = run_log(workdir, experiment, 0)
        assert log.attrs["slurm_job_ids"] == job_id  # the same job, requeued
        assert list(log.epochs["epoch"]) == list(range(1, epochs + 1))
        assert_same_numbers(log, pack_uninterrupted[experiment])
    # the run that had ended before the signal is not run again
    short = own_log(workdir, "short", job_id)
    assert short.count("epoch 1/1") == 1 and "resuming" not in short
    assert_same_numbers(run_log(workdir, "short", 0), pack_uninterrupted["short"])
    pack_log = workdir / LAYOUT.log("slurm", "packs", job_id, f"{job_id}_0_log.err")
    assert "2 of 4 runs stopped for the time limit: requeueing the job" in pack_log.read_text()


@on_cluster
@pytest.mark.slow
def test_a_run_that_raises_in_a_pack_fails_alone_with_its_own_message(pack_interrupted):
    job_id, workdir = pack_interrupted["job_id"], pack_interrupted["workdir"]
    own = slurm_logs(workdir, "raises", 0) / job_id / f"{job_id}_0_log.err"
    last = train_log(workdir, "raises", 0).read_text().strip().splitlines()[-1]
    message = last.removeprefix("imgzoo: error: ")
    assert re.fullmatch(
        rf"SLURM job {job_id} FAILED: imgzoo\.errors\.ConfigError: {re.escape(RAISED)}.* "
        rf"\[logs: {re.escape(str(own))}\]",
        message,
    ), message
    assert f"message: {message}" in pack_interrupted["output"]  # Snakemake's error report
    # not started again after the requeue: its error once
    assert own.read_text().count(f"imgzoo.errors.ConfigError: {RAISED}") == 1
    assert not (run_dir(workdir, "raises", 0) / "metrics.h5").exists()
    for experiment in [*RESUMED, "short"]:  # its pack-mates finished
        assert run_log(workdir, experiment, 0).attrs["status"] == "completed"


# ---- failures: one line each, and the rest of the grid finishes --------------------------------

FAILING = {
    "datasets": ["digits"],
    "seeds": [0],
    "train": {"epochs": 3, "batch_size": 64, "lr": 0.003, "augment": "none"},
    "resources": {"cpus": 1, "mem_gb": 1, "time_min": 10, "gpus": 0},
    "report": {"weight_grids": False},
    "experiments": {
        "fine": {"model": "mlp", "model_args": {"hidden": [32]}},
        "raises": {"model": RAISING_MODEL},  # passes the study's checks, fails in its job
        "refused": {"model": "mlp", "resources": {"partition": "nope"}},
        "cancelled": {"model": "mlp", "epochs": 500},
    },
}


@pytest.fixture(scope="module")
def failures(slurm_cluster, tmp_path_factory):
    """A grid with a run that raises in its job, one that sbatch refuses, one whose job is
    scancelled while it runs, and one that is fine."""
    workdir = tmp_path_factory.mktemp("failures")
    proc = start_snakemake(workdir, FAILING, snakemake_command(workdir))
    job = job_of(workdir, "cancelled", 0, proc)
    wait_for_text(train_log(workdir, "cancelled", 0), r": RUNNING", proc)
    subprocess.run(["scancel", job], check=True)
    cancelled = time.monotonic()
    wait_for_text(workdir / "snakemake.log", rf"SLURM job {job} CANCELLED", proc)
    reported_after = time.monotonic() - cancelled
    rc = finish(proc, 120, workdir)
    return {
        "rc": rc,
        "workdir": workdir,
        "output": output(workdir),
        "cancelled": job,
        "reported_after": reported_after,
    }


def error_line(failures, experiment: str) -> str:
    """The rule's failure, as the rule's log ends with it (and Snakemake's error report says)."""
    last = train_log(failures["workdir"], experiment, 0).read_text().strip().splitlines()[-1]
    assert last.startswith("imgzoo: error: "), last
    message = last.removeprefix("imgzoo: error: ")
    assert f"message: {message}" in failures["output"]
    return message


@on_cluster
def test_job_that_raises_fails_its_rule_with_its_id_state_and_exception(failures):
    message = error_line(failures, "raises")
    found = re.match(r"SLURM job (\d+) FAILED \(exit 1:0\): (.*) \[logs: (.*)\]$", message)
    assert found, message
    assert f"ConfigError: {RAISED}" in found[2]
    workdir = failures["workdir"]
    assert found[3] == f"{slurm_logs(workdir, 'raises', 0)}/{found[1]}/{found[1]}_0_log.err"
    assert final_state(found[1]) == "FAILED"


@on_cluster
def test_cancelled_job_fails_its_rule_within_seconds(failures):
    message = error_line(failures, "cancelled")
    assert re.match(rf"SLURM job {failures['cancelled']} CANCELLED\b.*CANCELLED AT", message)
    assert failures["reported_after"] < 10


@on_cluster
def test_submission_that_sbatch_refuses_fails_its_rule_with_the_reason(failures):
    message = error_line(failures, "refused")
    assert message.startswith("sbatch refused imgzoo:digits:refused:s0: ")
    assert "Invalid partition name specified" in message


@on_cluster
def test_other_runs_of_a_failing_grid_still_finish(failures):
    assert failures["rc"] == 1
    workdir = failures["workdir"]
    assert run_log(workdir, "fine", 0).attrs["status"] == "completed"
    for experiment in ("raises", "refused", "cancelled"):
        assert not (run_dir(workdir, experiment, 0) / "metrics.h5").exists()
    assert not (workdir / LAYOUT.table("runs")).exists()


# ---- where accounting does not answer ------------------------------------------------------------


@on_cluster
def test_status_falls_back_to_squeue_where_sacct_does_not_answer(tmp_path, monkeypatch):
    from imgzoo.slurm_status import GONE, JobState, StatusQuery

    # what sacct says with AccountingStorageType=accounting_storage/none
    broken = tmp_path / "sacct"
    broken.write_text("#!/bin/sh\necho 'Slurm accounting storage is disabled' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    jobs = [
        subprocess.run(
            ["sbatch", "--parsable", f"--output={tmp_path}/%j.out", "--wrap", command],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for command in ("sleep 1", "exit 3")
    ]
    query = StatusQuery()
    deadline = time.monotonic() + 30
    while True:
        states = query.states([*jobs, "999999"])
        if states[jobs[0]].state == "COMPLETED" and states[jobs[1]].state == "FAILED":
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.5)
    assert states[jobs[0]] == JobState("COMPLETED")  # squeue has no exit codes
    assert states["999999"] is GONE


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
        + ["--configfile", str(tmp_path / "config.yaml")]
        + ["--imgzoo-status-interval", str(STATUS_INTERVAL)],
        cwd=REPO,
        env=environment(IMGZOO_VENV=sys.prefix),
        capture_output=True,
        text=True,
        check=True,
    )
    head = submitted.stdout.strip().split(";")[0]
    state = final_state(head, timeout=300)
    assert state == "COMPLETED", head_log.read_text()[-3000:]
    assert (tmp_path / LAYOUT.table("runs")).exists()
    for seed in config["seeds"]:
        (job,) = run_log(tmp_path, "mlp", seed).attrs["slurm_job_ids"].split(",")
        assert job != head  # the head job submitted the run as a job of its own
        assert sacct(job, "JobName")[0]["JobName"] == f"imgzoo:digits:mlp:s{seed}"
