"""A busy cluster, against the one-node test cluster (`sudo slurm/testcluster/up`; run these under
`flock /tmp/imgzoo-slurm.lock`): an sbatch that fails for a while, one that times out after
queueing, a QOS submit limit, and the efficiency table's numbers against sacct.

sbatch is made busy by a wrapper first on the PATH that answers as a loaded slurmctld does for
its first calls and then runs the real one; the QOS limit is a real one, set with sacctmgr on the
cluster's QOS `normal` and restored after (the cluster enforces limits:
`AccountingStorageEnforce=limits`).
"""

import getpass
import math
import os
import re
import shutil
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from helpers import environment
from test_slurm import (  # noqa: F401  (no_leftover_jobs: a fixture on_cluster uses)
    LAYOUT,
    finish,
    no_leftover_jobs,
    on_cluster,
    output,
    run_dir,
    run_log,
    snakemake_command,
    start_snakemake,
    train_log,
)

SEEDS = [0, 1, 2]
SMALL = {
    "datasets": ["digits"],
    "seeds": SEEDS,
    "train": {"epochs": 2, "batch_size": 64, "lr": 0.003, "augment": "none"},
    "resources": {"cpus": 1, "mem_gb": 1, "time_min": 10, "gpus": 0},
    "report": {"weight_grids": False},
    "experiments": {"mlp": {"model": "mlp", "model_args": {"hidden": [32]}}},
}
BUSY_ANSWERS = [
    "Batch job submission failed: Socket timed out on send/recv operation",
    "Batch job submission failed: Resource temporarily unavailable",
    "Batch job submission failed: Unable to contact slurm controller (connect failure)",
]


def sbatch_wrapper(folder: Path, body: str) -> Path:
    """An `sbatch` first on the PATH: `body` runs with $n, the number of this call (1, 2, ...),
    and $REAL, the real sbatch; each call is counted in folder/calls."""
    folder.mkdir(exist_ok=True)
    script = folder / "sbatch"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {folder}/calls\n'
        f"n=$(wc -l < {folder}/calls)\n"
        f"REAL={shutil.which('sbatch')}\n" + body
    )
    script.chmod(0o755)
    return folder


def run_workflow(
    workdir: Path, config: dict, wrappers: Path | None, *targets: str, timeout: float = 400
) -> dict:
    env = environment()
    if wrappers is not None:
        env["PATH"] = f"{wrappers}{os.pathsep}{env['PATH']}"
    started = datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
    time.sleep(1)  # sacct -S has whole seconds: no job of before may count
    proc = start_snakemake(workdir, config, snakemake_command(workdir, *targets), env=env)
    rc = finish(proc, timeout, workdir)
    return {"rc": rc, "workdir": workdir, "output": output(workdir), "started": started}


def jobs_named(started: str, name: str) -> list[dict]:
    """Every job of that name sacct knows, submitted since `started` (every attempt)."""
    fields = ["JobIDRaw", "JobName", "State", "Submit", "End"]
    out = subprocess.run(
        ["sacct", "-n", "-P", "-X", "-S", started, "--name", name, "-o", ",".join(fields)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    jobs = [dict(zip(fields, line.split("|"), strict=True)) for line in out.splitlines() if line]
    # -S also selects jobs that were still running then: an earlier test's
    return [job for job in jobs if job["Submit"] >= started]


def sbatch_calls(wrappers: Path) -> int:
    return len((wrappers / "calls").read_text().splitlines())


def rule_logs(workdir: Path, experiment: str = "mlp") -> str:
    return "".join(train_log(workdir, experiment, seed).read_text() for seed in SEEDS)


def ended_jobs_named(started: str, name: str, timeout: float = 30) -> list[dict]:
    """jobs_named, once accounting records every one of them as over (it lags a little behind
    the result file that ends a run)."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = jobs_named(started, name)
        running = [j for j in jobs if j["State"] in ("PENDING", "RUNNING", "COMPLETING")]
        if not running or time.monotonic() > deadline:
            return jobs
        time.sleep(0.5)


def assert_one_completed_job_per_run(result: dict, experiment: str = "mlp", seeds=SEEDS):
    for seed in seeds:
        name = f"imgzoo:digits:{experiment}:s{seed}"
        jobs = ended_jobs_named(result["started"], name)
        assert [j["State"] for j in jobs] == ["COMPLETED"], (name, jobs)
        log = run_log(result["workdir"], experiment, seed)
        assert log.attrs["status"] == "completed"
        assert log.attrs["slurm_job_ids"] == jobs[0]["JobIDRaw"]


# ---- a controller that answers "later" for a while ----------------------------------------------

REFUSED = {"model": "mlp", "model_args": {"hidden": [16]}, "resources": {"partition": "nope"}}


@pytest.fixture(scope="module")
def busy(slurm_cluster, tmp_path_factory):
    """Three runs that SLURM takes and three it refuses for good (an unknown partition), through
    an sbatch whose first three calls fail as a busy controller's do."""
    workdir = tmp_path_factory.mktemp("busy")
    answers = "".join(
        f'  {i}) echo "sbatch: error: {text}" >&2; exit 1 ;;\n'
        for i, text in enumerate(BUSY_ANSWERS, start=1)
    )
    wrappers = sbatch_wrapper(workdir / "bin", f'case $n in\n{answers}esac\nexec $REAL "$@"\n')
    config = {**SMALL, "experiments": {**SMALL["experiments"], "refused": REFUSED}}
    targets = [LAYOUT.run_log("digits", e, s) for e in config["experiments"] for s in SEEDS]
    return {**run_workflow(workdir, config, wrappers, *targets), "wrappers": wrappers}


@on_cluster
def test_busy_controller_delays_the_runs_and_each_ends_with_one_completed_job(busy):
    assert busy["rc"] == 1, busy["output"][-3000:]  # the refused runs
    assert_one_completed_job_per_run(busy)
    # each busy answer was retried once, and said so in its run's rule log with sbatch's words
    told = rule_logs(busy["workdir"]) + rule_logs(busy["workdir"], "refused")
    for text in BUSY_ANSWERS:
        reason = text.removeprefix("Batch job submission failed: ")
        found = re.findall(
            rf"sbatch said later \(try (\d), busy\): {re.escape(reason)}; next try "
            r"in (\d+) s",
            told,
        )
        assert len(found) == 1, (reason, told)
    assert sbatch_calls(busy["wrappers"]) == len(BUSY_ANSWERS) + 2 * len(SEEDS)


@on_cluster
def test_a_definite_refusal_still_fails_its_run_at_once_with_sbatchs_words(busy):
    for seed in SEEDS:
        last = train_log(busy["workdir"], "refused", seed).read_text().strip().splitlines()[-1]
        assert last.startswith(f"imgzoo: error: sbatch refused imgzoo:digits:refused:s{seed}: ")
        assert "Invalid partition name specified" in last
        rule_log = train_log(busy["workdir"], "refused", seed).read_text()
        assert rule_log.count("sbatch refused") == 1  # sbatch's own refusal is never retried
        assert f"message: {last.removeprefix('imgzoo: error: ')}" in busy["output"]
        assert not (run_dir(busy["workdir"], "refused", seed) / "metrics.h5").exists()


# ---- a timeout after slurmctld queued the job ---------------------------------------------------


@pytest.fixture(scope="module")
def timed_out(slurm_cluster, tmp_path_factory):
    """Three runs through an sbatch whose first two calls queue the job and then report a timeout,
    as a loaded slurmctld's answer lost on the way does."""
    workdir = tmp_path_factory.mktemp("timed-out")
    wrappers = sbatch_wrapper(
        workdir / "bin",
        'if [ "$n" -le 2 ]; then\n'
        '  $REAL "$@" > /dev/null || exit 1\n'
        f'  echo "sbatch: error: {BUSY_ANSWERS[0]}" >&2; exit 1\n'
        'fi\nexec $REAL "$@"\n',
    )
    targets = [LAYOUT.run_log("digits", "mlp", s) for s in SEEDS]
    return {**run_workflow(workdir, SMALL, wrappers, *targets), "wrappers": wrappers}


@on_cluster
def test_a_job_queued_despite_a_timeout_is_kept_and_never_submitted_twice(timed_out):
    assert timed_out["rc"] == 0, timed_out["output"][-3000:]
    assert_one_completed_job_per_run(timed_out)
    kept = re.findall(
        r"sbatch answered 'Socket timed out on send/recv operation', yet SLURM had queued job "
        r"(\d+): kept, not submitted again",
        rule_logs(timed_out["workdir"]),
    )
    assert len(kept) == 2, rule_logs(timed_out["workdir"])
    assert sbatch_calls(timed_out["wrappers"]) == len(SEEDS)  # none submitted again


# ---- a QOS that allows two queued jobs per user -----------------------------------------------

LIMIT = 2


def qos_limit() -> str:
    out = subprocess.run(
        [
            "sacctmgr",
            "-n",
            "-P",
            "show",
            "qos",
            "where",
            "name=normal",
            "format=MaxSubmitJobsPerUser",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def set_qos_limit(value) -> None:
    subprocess.run(
        [
            "sacctmgr",
            "-i",
            "modify",
            "qos",
            "where",
            "name=normal",
            "set",
            f"MaxSubmitJobsPerUser={value}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )


@pytest.fixture(scope="module")
def qos_of_two(slurm_cluster):
    """The cluster's QOS `normal` allows each user LIMIT jobs queued or running; restored after."""
    enforce = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True)
    if "limits" not in re.search(r"AccountingStorageEnforce\s*=\s*(\S+)", enforce.stdout)[1]:
        pytest.fail(
            "the test cluster does not enforce limits: restart it with `sudo slurm/testcluster/up`"
        )
    before = qos_limit()
    set_qos_limit(LIMIT)
    try:
        yield LIMIT
    finally:
        set_qos_limit(before or -1)


SIX = {**SMALL, "seeds": list(range(6))}


@pytest.fixture(scope="module")
def limited(qos_of_two, tmp_path_factory):
    """Six runs and every table (efficiency included) under a QOS limit of two jobs."""
    workdir = tmp_path_factory.mktemp("limited")
    return run_workflow(workdir, SIX, None)


@on_cluster
def test_a_grid_larger_than_the_submit_limit_trickles_in_and_ends_done(limited):
    assert limited["rc"] == 0, limited["output"][-3000:]
    assert_one_completed_job_per_run(limited, seeds=SIX["seeds"])
    cap = "MaxSubmitJobsPerUser of QOS normal"
    assert f"SLURM lets this user queue at most {LIMIT} jobs ({cap})" in limited["output"]
    logs = "".join(train_log(limited["workdir"], "mlp", s).read_text() for s in SIX["seeds"])
    waited = logs.count(f"waiting to be submitted: {LIMIT} of {LIMIT} jobs queued under {cap}")
    assert waited >= len(SIX["seeds"]) - LIMIT, logs
    assert "sbatch said later" not in logs  # the executor kept below the limit: no refusal
    # never more than LIMIT of them in SLURM at once
    names = [f"imgzoo:digits:mlp:s{seed}" for seed in SIX["seeds"]]
    jobs = [job for name in names for job in jobs_named(limited["started"], name)]
    for job in jobs:
        held = [j for j in jobs if j["Submit"] <= job["Submit"] < j["End"]]
        assert len(held) <= LIMIT, (job, held)


@on_cluster
def test_a_limit_refusal_waits_for_a_job_to_end(qos_of_two, tmp_path):
    """Another job of the user's holds one of the two places: sbatch refuses the second run's job
    (QOSMaxSubmitJobPerUserLimit), which goes once the first has ended."""
    other = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "--hold",
            "-J",
            "imgzoo-test-other",
            f"--output={tmp_path}/%j",
            "--wrap",
            "true",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    try:
        result = run_workflow(
            tmp_path, SMALL, None, *[LAYOUT.run_log("digits", "mlp", s) for s in SEEDS]
        )
    finally:
        subprocess.run(["scancel", other], check=True)
    assert result["rc"] == 0, result["output"][-3000:]
    assert_one_completed_job_per_run(result)
    refused = re.findall(
        r"sbatch said later \(try \d, limit\): QOSMaxSubmitJobPerUserLimit; Job "
        r"violates accounting/QOS policy",
        rule_logs(tmp_path),
    )
    assert refused, rule_logs(tmp_path)


# ---- the efficiency table against sacct ----------------------------------------------------------


def sacct_fields(job_id: str, *fields: str, steps: bool = False) -> list[dict]:
    command = ["sacct", "-n", "-P", "-j", job_id, "-o", ",".join(fields)]
    out = subprocess.run(
        command + ([] if steps else ["-X"]), capture_output=True, text=True, check=True
    ).stdout
    return [dict(zip(fields, line.split("|"), strict=True)) for line in out.splitlines() if line]


def clock_s(text: str) -> float:
    """sacct's TotalCPU: [[H:]M:]S[.mmm]."""
    total = 0.0
    for part in text.split(":"):
        total = total * 60 + float(part)
    return total


@on_cluster
def test_efficiency_table_agrees_with_sacct(limited):
    table = pd.read_csv(limited["workdir"] / LAYOUT.table("efficiency"))
    assert len(table) == len(SIX["seeds"])
    for row in table.itertuples():
        job = str(row.slurm_job_ids)
        (alloc,) = sacct_fields(job, "ElapsedRaw", "AllocCPUS", "ReqMem", "TimelimitRaw", "State")
        steps = [
            step
            for step in sacct_fields(job, "JobIDRaw", "TotalCPU", "MaxRSS", steps=True)
            if "." in step["JobIDRaw"]  # the batch script, the srun step, extern
        ]
        rss = [float(step["MaxRSS"].removesuffix("K")) for step in steps if step["MaxRSS"]]
        assert row.where == "slurm" and row.state == alloc["State"] == "COMPLETED"
        assert row.attempts == 1
        assert row.time_used_min * 60 == pytest.approx(float(alloc["ElapsedRaw"]))
        assert row.time_asked_min == float(alloc["TimelimitRaw"]) == SIX["resources"]["time_min"]
        assert row.mem_asked_gb == pytest.approx(1.0) and alloc["ReqMem"] == "1G"
        assert row.cpus == int(alloc["AllocCPUS"])
        # TotalCPU of the job's steps over its CPUs' time
        cpu = sum(clock_s(step["TotalCPU"]) for step in steps)
        cpu_time = float(alloc["ElapsedRaw"]) * int(alloc["AllocCPUS"])
        assert 0 < row.cpu_efficiency == pytest.approx(cpu / cpu_time)
        # a job shorter than SLURM's accounting interval may have no MaxRSS recorded yet (or
        # ever), and one recorded after the table was made is not in it: the table then leaves
        # the peak blank instead of guessing
        if not rss:
            assert math.isnan(row.mem_peak_gb), f"job {job}: a peak sacct does not have"
        elif not math.isnan(row.mem_peak_gb):
            assert row.mem_peak_gb * 1024**2 == pytest.approx(max(rss))
    markdown = (limited["workdir"] / LAYOUT.table("efficiency", "md")).read_text()
    # 10 minutes asked, a few seconds used: the table says so
    assert re.search(
        r"- mlp: used at most \d+ of 10 minutes: time_min 5 would queue sooner", markdown
    ), markdown


@on_cluster
def test_the_limit_is_read_where_accounting_keeps_it(qos_of_two):
    from imgzoo.slurm_limits import read_limits

    limits = read_limits()
    assert limits.of({}) == {"MaxSubmitJobsPerUser of QOS normal": LIMIT}
    assert limits.of({"qos": "another"}) == {}


def sacctmgr(*args: str) -> None:
    subprocess.run(["sacctmgr", "-i", *args], capture_output=True, text=True, check=True)


@on_cluster
def test_a_limit_the_user_inherits_from_an_account_is_read(slurm_cluster):
    """A sub-account `lab` with MaxSubmitJobs=3 and the user in it: slurmdbd records the limit on
    the user's association in `lab`, where the executor reads it."""
    from imgzoo.slurm_limits import read_limits

    user = getpass.getuser()  # whose limits read_limits reads
    sacctmgr("add", "account", "lab", "parent=root")
    try:
        sacctmgr("add", "user", user, "account=lab")
        sacctmgr("modify", "account", "where", "name=lab", "set", "MaxSubmitJobs=3")
        caps = read_limits().of({"account": "lab"})  # (a QOS's cap may stand beside it)
        assert caps["MaxSubmitJobs of association lab"] == 3
        assert "MaxSubmitJobs of association root" not in read_limits().of({})  # the default
    finally:
        subprocess.run(["sacctmgr", "-i", "delete", "user", user, "account=lab"],
                       capture_output=True)
        sacctmgr("delete", "account", "lab")
