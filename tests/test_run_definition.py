"""What decides a run, through real Snakemake runs: its settings re-run it, its resources never do.

A finished study whose SLURM resources change (time limit, partition, account, qos, CPUs,
memory, sbatch flags, packing, requeues, log folder) plans no training; a changed learning rate
re-runs exactly the runs it touches; an unfinished run whose resources change resumes from its
checkpoint; after an upgrade that changed what Snakemake records of a run, `snakemake --touch`
of `imgzoo check --up-to-date` marks exactly the runs whose settings stand.
"""

import copy
import re
import subprocess
import time

import pytest
import yaml
from helpers import BIN, environment, snakemake, snakemake_command

from imgzoo.paths import CHECKPOINT, Layout

STUDY = {
    "name": "runs",
    "datasets": ["digits"],
    "seeds": [0],
    "train": {"epochs": 2, "batch_size": 64, "lr": 0.01, "augment": "none"},
    "report": {"weight_grids": False},
    "experiments": {
        "narrow": {"model": "mlp", "model_args": {"hidden": [16]}},
        "wide": {"model": "mlp", "model_args": {"hidden": [32]}},
    },
}
LAYOUT = Layout("runs")
# Everything a job asks SLURM for, changed at once (each key differs from the schema's default).
NEW_RESOURCES = {
    "resources": {
        "time_min": 600,
        "partition": "long",
        "account": "lab",
        "qos": "high",
        "cpus": 8,
        "mem_gb": 64,
        "gpus": 2,
        "constraint": "a100",
        "extra_sbatch": ["--exclusive"],
        "pack": 4,
        "gpu_mem_fraction": 0.25,
    },
    "slurm": {"max_requeues": 9, "log_dir": "elsewhere/slurm"},
}


def planned_trainings(workdir) -> list[str]:
    """The runs a dry run would train (their run logs)."""
    dry = snakemake(workdir, "-n", "-p", "--cores", "1")
    assert dry.returncode == 0, dry.stderr[-3000:]
    return sorted(set(re.findall(r"output: (\S+/metrics\.h5)", dry.stdout + dry.stderr)))


def write(workdir, config) -> None:
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("finished")
    write(workdir, STUDY)
    done = snakemake(workdir, "--cores", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    return workdir


@pytest.mark.slow
def test_new_resources_plan_no_training_and_a_new_lr_exactly_its_runs(finished):
    try:
        write(finished, {**STUDY, **NEW_RESOURCES})
        assert planned_trainings(finished) == []
        changed = copy.deepcopy(STUDY)
        changed["experiments"]["wide"]["lr"] = 0.003
        write(finished, {**changed, **NEW_RESOURCES})
        assert planned_trainings(finished) == [LAYOUT.run_log("digits", "wide", 0)]

        # What an upgrade that changes Snakemake's records needs: the runs whose settings stand
        # marked done (`snakemake --touch`), the others planned.
        listed = subprocess.run(
            [str(BIN / "imgzoo"), "check", "--up-to-date", "--config", "config.yaml"],
            cwd=finished, env=environment(), capture_output=True, text=True,
        )
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.split() == [LAYOUT.run_log("digits", "narrow", 0)]
        touched = snakemake(finished, "--touch", "--cores", "1", *listed.stdout.split())
        assert touched.returncode == 0, touched.stderr[-2000:]
        assert planned_trainings(finished) == [LAYOUT.run_log("digits", "wide", 0)]
    finally:
        write(finished, STUDY)


@pytest.mark.slow
def test_an_unfinished_run_keeps_its_checkpoint_when_its_resources_change(tmp_path):
    slow = copy.deepcopy(STUDY)
    slow["train"].update(epochs=40, batch_size=16)
    slow["experiments"] = {"wide": {"model": "mlp", "model_args": {"hidden": [512, 512]}}}
    write(tmp_path, slow)
    run_dir = tmp_path / LAYOUT.run_dir("digits", "wide", 0)
    first = subprocess.Popen(
        snakemake_command(tmp_path, "--cores", "1"), cwd=tmp_path, env=environment(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not (run_dir / CHECKPOINT).exists():
        assert first.poll() is None and time.monotonic() < deadline, "no checkpoint"
        time.sleep(0.1)
    # the run dies after an epoch (killed, as a node failure or a Ctrl-C would stop it)
    out = LAYOUT.run_dir("digits", "wide", 0)  # as the rule gives it, relative
    assert subprocess.run(["pkill", "-KILL", "-f", f"imgzoo train .*--out {out}"]).returncode == 0
    first.wait(timeout=120)
    assert not (run_dir / "metrics.h5").exists() and (run_dir / CHECKPOINT).exists()

    write(tmp_path, {**slow, **NEW_RESOURCES})
    again = snakemake(tmp_path, "--cores", "1")
    assert again.returncode == 0, again.stderr[-3000:]
    log = (tmp_path / LAYOUT.train_log("digits", "wide", 0)).read_text()
    assert re.search(r"resuming from .*checkpoint\.pt after epoch \d+", log), log[-2000:]
    assert "starting afresh" not in log

