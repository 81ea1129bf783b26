"""Your own models end to end, docs/models.md's example as written: timm architectures and a
network from a file train on digits through `imgzoo train` and through Snakemake, reach the tables
and the weight grids, and editing the file re-runs exactly the runs that use it."""

import re
import subprocess

import matplotlib.image
import pandas as pd
import pytest
import yaml
from helpers import BIN, environment, snakemake
from test_own_models import NET, SPREAD, docs_block

from imgzoo import runlog
from imgzoo.models import file_source
from imgzoo.paths import Layout

# The study of docs/models.md, as written (its name: the file's, my-study).
STUDY_TEXT = docs_block("yaml")
STUDY = yaml.safe_load(STUDY_TEXT)
LAYOUT = Layout("my-study")
CHANCE = 0.1  # digits: 10 classes


def a_study(folder):
    (folder / "nets").mkdir()
    (folder / "nets" / "my_net.py").write_text(NET)
    (folder / "my-study.yaml").write_text(STUDY_TEXT)
    return folder


def read_log(folder, experiment):
    return runlog.read(folder / LAYOUT.run_log("digits", experiment, 0))


@pytest.mark.slow
def test_imgzoo_train_trains_a_timm_and_a_file_model(tmp_path):
    a_study(tmp_path)
    for experiment in ("resnet10t", "mine"):
        command = [str(BIN / "imgzoo"), "train", "--config", "my-study.yaml",
                   "--experiment", experiment, "--dataset", "digits", "--seed", "0"]
        done = subprocess.run(command, cwd=tmp_path, env=environment(), capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    timm_log, file_log = read_log(tmp_path, "resnet10t"), read_log(tmp_path, "mine")
    assert timm_log.attrs["family"] == "timm/resnet10t"
    assert timm_log.attrs["num_params"] > 4_000_000  # resnet10t with a 10-way head
    assert timm_log.first_layer_kind == "conv" and timm_log.first_layer.shape == (24, 3, 3)
    assert file_log.attrs["family"] == "nets/my_net.py:build"
    assert file_log.attrs["model_file"] == "nets/my_net.py"
    assert file_log.attrs["model_file_sha256"] == file_log.spec["settings"]["model_file_sha256"]
    assert file_log.attrs["num_params"] == 8 * 9 + 8 + 8 * 64 * 10 + 10
    assert file_log.first_layer_kind == "conv" and file_log.first_layer.shape == (8, 3, 3)
    for log in (timm_log, file_log):
        assert log.attrs["status"] == "completed"
        assert log.epochs["test_acc"][-1] > 4 * CHANCE, log.attrs["family"]


def train_jobs(dry_run: str) -> list[str]:
    """The runs a dry run would train (their log paths)."""
    return sorted(set(re.findall(r"output: (\S+/metrics\.h5)", dry_run)))


@pytest.mark.slow
def test_snakemake_runs_them_with_tables_and_weight_grids_and_an_edit_re_runs_only_its_runs(
    tmp_path,
):
    folder = a_study(tmp_path)
    # docs/models.md's commands (Snakemake run on the checkout's Snakefile in this folder)
    check = subprocess.run([str(BIN / "imgzoo"), "check", "--config", "my-study.yaml"],
                           cwd=folder, env=environment(), capture_output=True, text=True)
    assert check.returncode == 0 and "config OK" in check.stdout, check.stderr
    done = snakemake(folder, "--cores", "2", configfile=folder / "my-study.yaml")
    assert done.returncode == 0, done.stderr[-3000:]

    runs = pd.read_csv(folder / LAYOUT.table("runs")).set_index("experiment")
    assert runs.loc["resnet10t", "model"] == "timm/resnet10t"
    assert runs.loc["mine", "model"] == "nets/my_net.py:build"
    assert runs.loc["mine", "params"] == read_log(folder, "mine").attrs["num_params"]
    assert (runs["test_acc_at_best_val"] > 4 * CHANCE).all(), runs
    for experiment in STUDY["experiments"]:
        grid = matplotlib.image.imread(folder / LAYOUT.weight_grid("digits", experiment, 0))
        assert grid.ndim == 3 and grid.shape[0] > 50, experiment

    again = snakemake(folder, "-n", "--cores", "2", configfile=folder / "my-study.yaml")
    assert "Nothing to be done" in again.stdout + again.stderr
    (folder / "nets" / "my_net.py").write_text(NET + "# an edit\n")
    planned = snakemake(folder, "-n", "--cores", "2", configfile=folder / "my-study.yaml")
    assert planned.returncode == 0, planned.stderr[-2000:]
    assert train_jobs(planned.stdout) == [LAYOUT.run_log("digits", "mine", 0)]


@pytest.mark.slow
@pytest.mark.slurm
def test_the_slurm_profile_trains_them_in_jobs(tmp_path, slurm_cluster):
    folder = a_study(tmp_path)
    study = {**STUDY, "resources": {"cpus": 1, "mem_gb": 2, "time_min": 10, "gpus": 1}}
    (folder / "my-study.yaml").write_text(yaml.safe_dump(study))
    done = snakemake(folder, "--imgzoo-status-interval", "2", profile="slurm",
                     configfile=folder / "my-study.yaml")
    assert done.returncode == 0, done.stderr[-3000:]
    for experiment in ("resnet10t", "mine"):
        log = read_log(folder, experiment)
        assert log.attrs["slurm_job_ids"], experiment  # trained in a SLURM job
        assert log.epochs["test_acc"][-1] > 4 * CHANCE, experiment
    assert read_log(folder, "mine").attrs["model_file"] == "nets/my_net.py"


@pytest.mark.slow
def test_a_network_spread_over_files_trains_and_an_edit_of_its_module_re_runs_only_its_run(
    tmp_path, monkeypatch,
):
    for name, text in SPREAD.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    study = {
        "name": "spread", "datasets": ["digits"], "seeds": [0],
        "train": {"epochs": 2, "batch_size": 64, "lr": 0.01, "augment": "none"},
        "experiments": {"spread": {"model": "nets/spread.py:build"},
                        "plain": {"model": "mlp", "model_args": {"hidden": [32]}}},
    }
    (tmp_path / "spread.yaml").write_text(yaml.safe_dump(study))
    layout = Layout("spread")
    logs = [layout.run_log("digits", experiment, 0) for experiment in ("spread", "plain")]
    done = snakemake(tmp_path, "--cores", "2", *logs, configfile=tmp_path / "spread.yaml")
    assert done.returncode == 0, done.stderr[-3000:]
    log = runlog.read(tmp_path / logs[0])
    assert log.attrs["model_file"] == "nets/spread.py"
    monkeypatch.chdir(tmp_path)  # the source's paths are relative to the working directory
    assert log.attrs["model_file_sha256"] == file_source.source_sha256("nets/spread.py")
    assert log.attrs["model_file_sha256"] != file_source.sha256("nets/spread.py")
    assert log.epochs["test_acc"][-1] > 4 * CHANCE

    (tmp_path / "nets" / "parts" / "scale.py").write_text("FACTOR = 3.0\n")  # a module's edit
    planned = snakemake(tmp_path, "-n", "--cores", "2", *logs,
                        configfile=tmp_path / "spread.yaml")
    assert planned.returncode == 0, planned.stderr[-2000:]
    assert train_jobs(planned.stdout) == [logs[0]]
