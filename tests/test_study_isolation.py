"""A study is exactly its file: Snakemake plans the runs `imgzoo check` resolves, with the same
settings, and studies that share a checkout keep their own results."""

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import BIN, REPO, environment, snakemake

from imgzoo import data, runlog
from imgzoo.paths import Layout

STUDY_FILES = sorted((REPO / "config/studies").glob("*.yaml"))


def run(command: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, cwd=cwd, env=environment(), capture_output=True, text=True, timeout=timeout
    )


def checkout(tmp_path: Path) -> Path:
    """A working directory that holds the default study, as a clone of the repository does."""
    (tmp_path / "config").mkdir()
    shutil.copy(REPO / "config/config.yaml", tmp_path / "config/config.yaml")
    return tmp_path


def planned_runs(workdir: Path, *configfile: str) -> dict[str, dict]:
    """Run folder -> the run its train rule trains (identity and settings), from a dry run that
    prints the commands."""
    result = snakemake(workdir, "-n", "-p", "--forceall", *configfile)
    assert result.returncode == 0, result.stderr[-3000:]
    planned = {}
    for line in (result.stdout + result.stderr).splitlines():
        _, sep, command = line.partition("Shell command: ")
        if not sep or not command.startswith("imgzoo train"):
            continue
        argv = shlex.split(command.split(" 2>&1")[0])
        arg = dict(zip(argv, argv[1:], strict=False)).get  # an option -> its value
        planned[arg("--out")] = {
            "study": arg("--study"),
            "experiment": arg("--experiment"),
            "dataset": arg("--dataset"),
            "seed": int(arg("--seed")),
            "settings": json.loads(arg("--settings")),
        }
    return planned


def checked_runs(workdir: Path, *config: str) -> dict:
    result = run([str(BIN / "imgzoo"), "check", "--json", *config], cwd=workdir)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    "study", [None, *STUDY_FILES], ids=["default", *(p.stem for p in STUDY_FILES)]
)
def test_snakemake_trains_exactly_the_runs_imgzoo_check_resolves(study, tmp_path):
    workdir = checkout(tmp_path)  # the default study lies beside, as in every checkout
    for name in data.known_datasets():  # a source for each: planning checks they exist
        (workdir / "resources" / name).mkdir(parents=True)
        (workdir / "resources" / name / "archive").touch()
    if study is None:  # `make run`: no --configfile, the default study
        planned, checked = planned_runs(workdir), checked_runs(workdir)
    else:
        planned = planned_runs(workdir, "--configfile", str(study))
        checked = checked_runs(workdir, "--config", str(study))
    expected = {
        str(Path(r["run_log"]).parent): {k: v for k, v in r["spec"].items() if k != "resources"}
        for r in checked["runs"]
        if not r["same_as"]
    }
    assert planned.keys() == expected.keys()
    for run_dir, spec in planned.items():
        assert spec == expected[run_dir], run_dir
    root = checked["results"]
    assert all(run_dir.startswith(f"{root}/runs/") for run_dir in planned)
    if study is not None:
        assert root == Layout(study.stem).root


def test_repeated_settings_are_trained_once_and_listed(tmp_path):
    config = {
        "datasets": ["digits"],
        "seeds": [0],
        "train": {"epochs": 1, "lr": 0.01},
        "experiments": {"mlp": {"model": "mlp"}, "mlp-copy": {"model": "mlp", "lr": 0.01}},
        "sweeps": {"lr": {"base": "mlp", "grid": {"lr": [0.01, 0.001]}}},
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(config))
    checked = checked_runs(tmp_path, "--config", str(tmp_path / "s.yaml"))
    layout = Layout("s")
    same_as = {Path(r["run_log"]).parts[-3]: r["same_as"] for r in checked["runs"]}
    first = layout.run_log("digits", "mlp", 0)
    assert same_as == {"mlp": None, "mlp-copy": first, "mlp@lr=0.01": first, "mlp@lr=0.001": None}
    summary = run([str(BIN / "imgzoo"), "check", "--config", "s.yaml"], cwd=tmp_path).stdout
    assert "4 runs, 2 of them repeat another run's settings: 2 trainings" in summary


STUDY_A = {
    "name": "study-a",
    "datasets": ["digits"],
    "seeds": [0, 1],
    "train": {"epochs": 2, "batch_size": 64, "lr": 0.01, "augment": "none"},
    "report": {"weight_grids": False},
    "experiments": {"mlp": {"model": "mlp", "model_args": {"hidden": [32]}}},
    # its first point equals the base: shown under both names, trained once
    "sweeps": {"mlp-lr": {"base": "mlp", "grid": {"lr": [0.01, 0.003]}}},
}
# Another study with an experiment of the same name on the same dataset, other settings.
STUDY_B = {
    "datasets": ["digits"],
    "seeds": [0],
    "train": {"epochs": 3, "batch_size": 32, "lr": 0.003, "augment": "none"},
    "report": {"weight_grids": False},
    "experiments": {"mlp": {"model": "mlp", "model_args": {"hidden": [16]}}},
}


@pytest.mark.slow
def test_two_studies_in_one_checkout_keep_their_own_results(tmp_path):
    workdir = checkout(tmp_path)
    (workdir / "a.yaml").write_text(yaml.safe_dump(STUDY_A))
    (workdir / "study-b.yaml").write_text(yaml.safe_dump(STUDY_B))
    a, b = Layout("study-a"), Layout("study-b")  # a by its name, b by its file name
    studies = {"a.yaml": a, "study-b.yaml": b}
    for configfile, layout in studies.items():
        done = snakemake(workdir, "--cores", "2", "--configfile", configfile)
        assert done.returncode == 0, done.stderr[-3000:]
        report = snakemake(workdir, "--report", layout.report, "--configfile", configfile)
        assert report.returncode == 0, report.stderr[-2000:]

    logs = {name: runlog.read(workdir / layout.run_log("digits", "mlp", 0))
            for name, layout in studies.items()}
    assert logs["a.yaml"].attrs["epochs_completed"] == 2
    assert logs["study-b.yaml"].attrs["epochs_completed"] == 3
    assert (workdir / a.report).exists() and (workdir / b.report).exists()
    assert not (workdir / "results/default").exists()  # the default study never ran

    # Study a's sweep point lr=0.01 is its base: trained once, shown under both names.
    assert not (workdir / a.run_dir("digits", "mlp@lr=0.01", 0)).exists()
    runs = pd.read_csv(workdir / a.table("runs"))
    assert sorted(runs.experiment) == sorted(["mlp", "mlp@lr=0.01", "mlp@lr=0.003"] * 2)
    base, point = (runs[(runs.experiment == e) & (runs.seed == 0)].iloc[0]
                   for e in ("mlp", "mlp@lr=0.01"))
    assert point.test_acc_at_best_val == base.test_acc_at_best_val
    assert point.same_run_as == "mlp" and pd.isna(base.same_run_as)
    assert list(pd.read_csv(workdir / b.table("runs")).experiment) == ["mlp"]
    assert (workdir / a.sweep_plot("digits", "mlp-lr")).exists()

    for configfile in studies:  # each study's results still stand: nothing to do
        again = snakemake(workdir, "--cores", "2", "--configfile", configfile)
        assert again.returncode == 0
        assert "Nothing to be done" in again.stdout + again.stderr, configfile


def test_command_line_overrides_layer_on_the_study(tmp_path):
    workdir = checkout(tmp_path)
    study = str(REPO / "config/studies/fashion-mnist.yaml")
    planned = planned_runs(workdir, "--configfile", study, "--config", "name=quick", "seeds=[1]")
    checked = checked_runs(workdir, "--config", study)["runs"]
    assert planned  # every planned run is the study's, in its own folder, seed 1 only
    assert {spec["seed"] for spec in planned.values()} == {1}
    assert all(run_dir.startswith(Layout("quick").root) for run_dir in planned)
    assert {s["experiment"] for s in planned.values()} == {
        r["spec"]["experiment"] for r in checked if not r["same_as"]
    }


def test_workflow_runs_without_activating_the_environment(tmp_path):
    """`.venv/bin/snakemake ...` with a PATH that lacks the environment: the rules still find
    the `imgzoo` command beside the Python that runs Snakemake."""
    workdir = checkout(tmp_path)
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    target = Layout("default").data("digits")
    done = subprocess.run(
        [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir), target,
         "--cores", "1"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (workdir / target).stat().st_size > 0
