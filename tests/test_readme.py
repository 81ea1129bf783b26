"""The README's commands, run as a new user types them, in a fresh copy of the checkout.

`make run` trains the default study for real (minutes), then the "Everyday use" block runs line by
line as written in the README, with the environment activated the way it says.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from imgzoo.paths import Layout

REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent.parent
README = (REPO / "README.md").read_text()
DEFAULT = Layout("default")


def code_block(heading: str) -> list[str]:
    """The commands of the first bash block after `heading`, without comments."""
    section = README.split(heading, 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    lines = [line.split("  #")[0].strip() for line in block.splitlines()]
    return [line for line in lines if line]


def shell(command: str, cwd: Path, timeout: int = 1800) -> subprocess.CompletedProcess:
    # `. .venv/bin/activate` as the README says, then the command as written
    return subprocess.run(
        ["bash", "-c", f". .venv/bin/activate && {command}"],
        cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env={k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"},
    )


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    root = tmp_path_factory.mktemp("clone")
    # What a clone holds: the files git knows (committed or not yet), nothing generated.
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    for name in files:
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name, follow_symlinks=False)  # keeps time stamps
    (root / ".venv").symlink_to(VENV)  # the environment `make` made (installing takes minutes)
    # `make` reinstalls when pyproject.toml is newer than the environment: never from this copy
    # (the environment is shared; `make test` brought it up to date before the tests ran).
    installed = (VENV / ".installed").stat().st_mtime
    os.utime(root / "pyproject.toml", (installed - 1, installed - 1))
    return root


@pytest.mark.slow
def test_quick_start_make_run_twice(checkout):
    assert code_block("## Quick start")[0] == "make run"
    first = subprocess.run(["make", "run"], cwd=checkout, capture_output=True, text=True,
                           timeout=3600)
    assert first.returncode == 0, first.stderr[-3000:]
    summary = pd.read_csv(checkout / DEFAULT.table("summary"))
    assert set(summary.experiment) == {"mlp", "resnet18", "mixer"}
    assert (summary.test_acc_at_best_val_mean > 0.2).all()  # chance is 0.1
    report = (checkout / DEFAULT.report).read_text()
    assert "summary.html" in report
    # the front page describes the study that ran, and docutils found nothing wrong with it
    assert re.search(r"trained <tt[^>]*>3</tt> configured experiments", report), "front page"
    assert "system-message" not in report
    again = subprocess.run(["make", "run"], cwd=checkout, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Nothing to be done" in again.stdout + again.stderr
    assert f"{DEFAULT.report} is up to date" in again.stdout


# What each "Everyday use" command must leave behind (checked after it ran), and the one that is
# planned instead of run: the Fashion-MNIST study trains for 20 minutes (its plan is checked by
# test_study_isolation, its MLP's training by test_fashion_mnist).
PLANNED_ONLY = "--configfile config/studies/fashion-mnist.yaml"


@pytest.mark.slow
def test_everyday_use_commands_as_written(checkout):
    if not (checkout / DEFAULT.report).exists():
        pytest.skip("needs the default study run by test_quick_start_make_run_twice")
    for command in code_block("## Everyday use"):
        if PLANNED_ONLY in command:
            command = command.replace("snakemake", "snakemake -n", 1)
        done = shell(command, checkout)
        assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
        if command.startswith("imgzoo train"):  # by hand, with overrides: apart from the study
            assert (checkout / DEFAULT.by_hand.run_log("digits", "resnet18", 0)).exists()
        if command.startswith("imgzoo check --list"):
            assert "results/fashion-mnist/runs/fashion_mnist/mlp/seed0" in done.stdout
