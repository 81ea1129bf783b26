"""Every command the README and docs/ give, run as a new user types it, in a fresh copy of the
checkout.

`make run` trains the default study for real; then each documented block runs line by line as
written, with the environment activated the way the README says. What a user would have put in
place first is put there: a study's downloaded archives (`resources/<name>/`, as placeholders:
only `imgzoo check` and planning read them here), the README's example images (an image folder
made from Fashion-MNIST, PNG and JPEG of mixed modes and sizes), its study and network files
(written from the README's own blocks). `DOCUMENTED` holds every command of every ```bash block
and how it is run; a command added to the docs without a way to run it fails the first test.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import REPO

from imgzoo import runlog
from imgzoo.paths import Layout

VENV = Path(sys.executable).parent.parent
DEFAULT = Layout("default")
MY_STUDY = Layout("my-study")
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "config/README.md"]
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

# How each documented command is run: "run" (as written), "plan" (as written, with Snakemake's
# -n: it trains for hours or needs a write-up's real archive), "ci" (CI runs it: `make test`),
# "gpu" (needs a GPU: benchmarks/gpu_check.py runs it), "test_own_models_e2e" (that test runs
# docs/models.md's example as written).
DOCUMENTED = {
    "README.md": {
        "make run": "run",
        "make test": "ci",
        "snakemake -n": "run",
        "snakemake --cores all": "run",
        "snakemake --cores all --configfile config/studies/fashion-mnist.yaml": "plan",
        "snakemake results/default/runs/digits/resnet18/seed0/metrics.h5 --cores 1": "run",
        "snakemake --report results/default/report.html": "run",
        "imgzoo train --experiment resnet18 --dataset digits --seed 0 epochs=3 lr=3e-3": "run",
        "imgzoo check --config config/studies/cifar100-variants.yaml": "run",
        "imgzoo check --list --config config/studies/fashion-mnist.yaml": "run",
        "imgzoo check --config my-study.yaml": "run",
        "snakemake --cores all --configfile my-study.yaml": "run",
        "snakemake --report results/my-study/report.html --configfile my-study.yaml": "run",
        "snakemake --profile profiles/slurm --configfile my-study.yaml": "run",
        "mkdir -p results/logs/slurm": "run",
        "sbatch slurm/workflow.sbatch --configfile my-study.yaml": "run",
        "imgzoo status": "run",
        "imgzoo tables --partial": "run",
    },
    "docs/datasets.md": {
        "imgzoo prepare --dataset fashion_mnist --config config/studies/fashion-mnist.yaml": "run",
        "snakemake --cores all --configfile config/studies/fashion-mnist.yaml": "plan",
    },
    "docs/models.md": {
        "imgzoo check --config my-study.yaml": "test_own_models_e2e",
        "snakemake --cores 2 --configfile my-study.yaml": "test_own_models_e2e",
    },
    "docs/report.md": {"snakemake --report results/default/report.html": "run"},
    "docs/reproducing.md": {
        "imgzoo check --config config/studies/cifar100-variants.yaml": "run",
        "snakemake --profile profiles/slurm --configfile config/studies/cifar100-variants.yaml":
            "plan",
    },
    "docs/runlog.md": {
        "imgzoo check --up-to-date | xargs -r snakemake --touch": "run",
        "imgzoo check --up-to-date --config config/studies/fashion-mnist.yaml"
        " | xargs -r snakemake --touch --configfile=config/studies/fashion-mnist.yaml": "run",
    },
    "docs/slurm.md": {
        "snakemake --profile profiles/slurm": "plan",
        "snakemake --profile profiles/slurm --configfile my-study.yaml": "run",
        "python benchmarks/pack_throughput.py --pack 1 2 4 8 --model resnet18 --device cuda"
        " --batch-size 64": "gpu",
        "mkdir -p results/logs/slurm": "run",
        "sbatch slurm/workflow.sbatch": "run",
        "sbatch --time=2-00:00:00 slurm/workflow.sbatch --configfile my-study.yaml": "run",
        "python -m pytest -m slurm": "ci",
    },
    "docs/watching.md": {
        "imgzoo status --config config/studies/mlp-resnet-mixer.yaml": "run",
        "imgzoo status --watch --config config/studies/mlp-resnet-mixer.yaml": "run",
        "imgzoo status --json --config config/studies/mlp-resnet-mixer.yaml": "run",
    },
}
# The files a study's archives are downloaded as (placeholders: planning and `imgzoo check` only
# look for them).
ARCHIVES = {
    "cifar10": "cifar-10-python.tar.gz",
    "cifar100": "cifar-100-python.tar.gz",
    "stl10": "stl10_binary.tar.gz",
    "tinyimagenet": "tiny-imagenet-200.zip",
}


def blocks(path: Path, language: str) -> list[str]:
    """The ```language blocks of a Markdown file."""
    return re.findall(rf"```{language}\n(.*?)```", path.read_text(), re.S)


def commands(path: Path) -> list[str]:
    """Every command of the file's bash blocks, without comments."""
    lines = [ln.split("  #")[0].strip()
             for block in blocks(path, "bash") for ln in block.splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


def section_commands(path: Path, heading: str) -> list[str]:
    """The commands of the bash blocks under `heading` (to the next heading of its level)."""
    level = heading.split(" ")[0]
    text = path.read_text().split(heading + "\n", 1)[1].split(f"\n{level} ", 1)[0]
    part = path.with_name(".section.md")
    part.write_text(text)
    try:
        return commands(part)
    finally:
        part.unlink()


def shell(command: str, cwd: Path, timeout: int = 1800, **env) -> subprocess.CompletedProcess:
    # `. .venv/bin/activate` as the README says, then the command as written
    return subprocess.run(
        ["bash", "-c", f". .venv/bin/activate && {command}"],
        cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env={**{k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}, **env},
    )


def run_ok(command: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    done = shell(command, cwd, **kwargs)
    assert done.returncode == 0, f"{command}\n{done.stdout[-1500:]}\n{done.stderr[-3000:]}"
    return done


def plan(command: str) -> str:
    """The command with Snakemake's dry run (`-n`)."""
    assert command.startswith("snakemake "), command
    return command.replace("snakemake", "snakemake -n", 1)


def clone(root: Path) -> Path:
    """What a clone holds: the files git knows (committed or not yet), nothing generated, and the
    environment `make` made (installing takes minutes)."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    for name in files:
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name, follow_symlinks=False)  # keeps time stamps
    (root / ".venv").symlink_to(VENV)
    # `make` reinstalls when pyproject.toml is newer than the environment: never from this copy
    # (the environment is shared; `make test` brought it up to date before the tests ran).
    installed = (VENV / ".installed").stat().st_mtime
    os.utime(root / "pyproject.toml", (installed - 1, installed - 1))
    return root


def downloaded(root: Path) -> None:
    """The write-ups' archives where a user downloads them (placeholders)."""
    for name, archive in ARCHIVES.items():
        (root / "resources" / name).mkdir(parents=True, exist_ok=True)
        (root / "resources" / name / archive).write_bytes(b"placeholder")


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    root = clone(tmp_path_factory.mktemp("clone"))
    downloaded(root)
    return root


# ---- every documented command has a way to run ------------------------------------------------


def test_every_documented_command_is_run_by_a_test():
    found = {str(path.relative_to(REPO)): commands(path) for path in DOCS}
    found = {doc: cmds for doc, cmds in found.items() if cmds}
    assert {doc: sorted(set(cmds)) for doc, cmds in found.items()} == {
        doc: sorted(how) for doc, how in DOCUMENTED.items()
    }


# ---- the quick start, everyday use, watching, the report ---------------------------------------


@pytest.mark.slow
def test_quick_start_make_run_twice(checkout):
    assert section_commands(REPO / "README.md", "## Quick start")[0] == "make run"
    first = subprocess.run(["make", "run"], cwd=checkout, capture_output=True, text=True,
                           timeout=3600)
    assert first.returncode == 0, first.stderr[-3000:]
    summary = pd.read_csv(checkout / DEFAULT.table("summary"))
    assert set(summary.experiment) == {"mlp", "resnet18", "mixer"}
    assert (summary.test_acc_at_best_val_mean > 0.2).all()  # chance is 0.1
    report = (checkout / DEFAULT.report).read_text()
    assert "summary.html" in report
    # the front page describes the study that ran and answers first, in words, per dataset
    assert re.search(r"trained <tt[^>]*>3</tt> configured experiments", report), "front page"
    assert re.search(r"On <tt[^>]*>digits</tt>, <tt[^>]*>\w+</tt> (is|are) best", report), (
        "a headline sentence"
    )
    assert "system-message" not in report  # docutils found nothing wrong with the front page
    again = subprocess.run(["make", "run"], cwd=checkout, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Nothing to be done" in again.stdout + again.stderr
    assert f"{DEFAULT.report} is up to date" in again.stdout


def needs_the_default_study(checkout) -> None:
    if not (checkout / DEFAULT.report).exists():
        pytest.skip("needs the default study run by test_quick_start_make_run_twice")


@pytest.mark.slow
def test_everyday_use_commands_as_written(checkout):
    needs_the_default_study(checkout)
    for command in section_commands(REPO / "README.md", "## Everyday use"):
        how = DOCUMENTED["README.md"][command]
        done = run_ok(plan(command) if how == "plan" else command, checkout)
        if command.startswith("imgzoo train"):  # by hand, with overrides: apart from the study
            assert (checkout / DEFAULT.by_hand.run_log("digits", "resnet18", 0)).exists()
        if command.startswith("imgzoo check --list"):
            assert "results/fashion-mnist/runs/fashion_mnist/mlp/seed0" in done.stdout
        if command.startswith("imgzoo check --config config/studies/cifar100"):
            assert "config OK: study 'cifar100-variants'" in done.stdout


@pytest.mark.slow
def test_watching_report_and_upgrade_commands_as_written(checkout):
    needs_the_default_study(checkout)
    status = run_ok("imgzoo status", checkout)
    assert "default: 12 runs: 12 done" in status.stdout
    run_ok("imgzoo tables --partial", checkout)
    assert (checkout / DEFAULT.partial.table("summary")).exists()
    for command in commands(REPO / "docs/watching.md"):
        if "--watch" in command:  # refreshed until interrupted: shown once, then Ctrl-C
            assert watched_once(command, checkout)
        else:
            assert "mlp-resnet-mixer" in run_ok(command, checkout).stdout
    (command,) = commands(REPO / "docs/report.md")
    run_ok(command, checkout)
    for command in commands(REPO / "docs/runlog.md"):
        run_ok(command, checkout)
    assert "Nothing to be done" in run_ok("snakemake -n", checkout).stdout


def watched_once(command: str, cwd: Path) -> bool:
    """`imgzoo status --watch` prints the table, keeps refreshing and stops at Ctrl-C."""
    proc = subprocess.Popen(["bash", "-c", f". .venv/bin/activate && exec {command}"], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    time.sleep(8)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return "mlp-resnet-mixer" in out and "interrupted" in err and proc.returncode == 130


@pytest.mark.slow
def test_dataset_and_reproduction_commands_as_written(checkout):
    if not FASHION_MNIST.is_dir():
        pytest.skip("Fashion-MNIST missing: apt-get install dataset-fashion-mnist")
    for doc in ("docs/datasets.md", "docs/reproducing.md"):
        for command in commands(REPO / doc):
            how = DOCUMENTED[doc][command]
            run_ok(plan(command) if how == "plan" else command, checkout)
    assert (checkout / Layout("fashion-mnist").data("fashion_mnist")).exists()


# ---- your own models and images, locally and on SLURM ----------------------------------------


def fashion_mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    with gzip.open(FASHION_MNIST / f"{prefix}-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(FASHION_MNIST / f"{prefix}-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return images, labels


def image_folder(root: Path, per_class: int = 150, classes=(0, 1, 7)) -> None:
    """`my_images/train/<class>/` and `my_images/test/<class>/` from Fashion-MNIST (T-shirt,
    trouser, sneaker), as a user's photos come: PNG and JPEG, grayscale, RGB, palette and RGBA,
    at 28 to 40 px."""
    from PIL import Image

    names = {0: "tshirt", 1: "trouser", 7: "sneaker"}
    for split, count in (("train", per_class), ("test", per_class // 3)):
        images, labels = fashion_mnist(split)
        for cls in classes:
            folder = root / "my_images" / split / names[cls]
            folder.mkdir(parents=True, exist_ok=True)
            for i, image in enumerate(images[labels == cls][:count]):
                picture = Image.fromarray(image).resize((28 + 4 * (i % 4),) * 2)
                mode = ("L", "RGB", "P", "RGBA")[i % 4]
                picture = picture.convert(mode)
                if i % 2 and mode != "RGBA":
                    picture.convert("RGB").save(folder / f"{i}.jpg", quality=92)
                else:
                    picture.save(folder / f"{i}.png")


def own_study(root: Path) -> None:
    """What a user of the README's example has: its images, and its two files written from the
    README's blocks."""
    image_folder(root)
    section = (REPO / "README.md").read_text().split("## Your own models and images", 1)[1]
    (study,) = re.findall(r"```yaml\n(# my-study\.yaml\n.*?)```", section, re.S)
    (network,) = re.findall(r"```python\n(# nets/my_net\.py\n.*?)```", section, re.S)
    (root / "my-study.yaml").write_text(study)
    (root / "nets").mkdir(exist_ok=True)
    (root / "nets/my_net.py").write_text(network)


def assert_learned_with_every_output(root: Path) -> None:
    summary = pd.read_csv(root / MY_STUDY.table("summary"))
    assert set(summary.experiment) == {"resnet10t", "mine", "mlp"}
    assert (summary.test_acc_at_best_val_mean > 0.6).all(), summary  # chance is 1/3
    assert (root / MY_STUDY.curves("my_images")).stat().st_size > 10_000
    grids = list((root / MY_STUDY.root / "figures/my_images").glob("*/seed*/first_layer.png"))
    assert len(grids) == 6  # every model's first layer, timm's and the file's included
    assert "images decoded" in (root / MY_STUDY.log("data", "my_images.log")).read_text()


@pytest.mark.slow
def test_own_models_and_images_as_written(tmp_path):
    if not FASHION_MNIST.is_dir():
        pytest.skip("Fashion-MNIST missing: apt-get install dataset-fashion-mnist")
    root = clone(tmp_path)
    own_study(root)
    checked, trained, reported = section_commands(REPO / "README.md",
                                                  "## Your own models and images")
    assert "config OK: study 'my-study'" in run_ok(checked, root).stdout
    run_ok(trained, root)
    assert_learned_with_every_output(root)
    run_ok(reported, root)
    assert "accuracy.png" in (root / MY_STUDY.report).read_text()


@pytest.mark.slow
@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")
def test_slurm_commands_as_written(tmp_path, checkout):
    """The README's SLURM block and docs/slurm.md's on the test cluster: the example study
    through the profile (each run a job of its own), then the head job, which finds it done; the
    default study's head job and plan in the checkout where `make run` made it."""
    if not FASHION_MNIST.is_dir():
        pytest.skip("Fashion-MNIST missing: apt-get install dataset-fashion-mnist")
    needs_the_default_study(checkout)
    root = clone(tmp_path)
    own_study(root)
    profile_run, make_folder, head_job = section_commands(REPO / "README.md",
                                                          "## Running on a SLURM cluster")
    run_ok(profile_run, root, timeout=2400)
    assert_learned_with_every_output(root)
    for experiment in ("resnet10t", "mine", "mlp"):
        log = runlog.read(root / MY_STUDY.run_log("my_images", experiment, 0))
        assert log.attrs["slurm_job_ids"], experiment  # trained in a SLURM job of its own
    docs = commands(REPO / "docs/slurm.md")
    run_ok(make_folder, checkout)  # the default study's head job logs there too
    for command in (make_folder, head_job, *[c for c in docs if c.startswith("sbatch")]):
        where = root if "my-study" in command or command == make_folder else checkout
        done = run_ok(command.replace("sbatch ", "sbatch --parsable ", 1), where)
        if command.startswith("sbatch"):
            job = done.stdout.strip().split(";")[0]
            log = where / f"results/logs/slurm/head-{job}.log"
            assert head_job_ended(job) == "COMPLETED", log.read_text()[-3000:]
            assert "Nothing to be done" in log.read_text()
    for command in (c for c in docs if c.startswith("snakemake")):
        how = DOCUMENTED["docs/slurm.md"][command]
        where = root if "my-study" in command else checkout
        done = run_ok(plan(command) if how == "plan" else command, where)
        assert "Nothing to be done" in done.stdout + done.stderr


def head_job_ended(job: str, timeout: float = 900) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["sacct", "-n", "-P", "-X", "-j", job, "-o", "State"],
                             capture_output=True, text=True).stdout.split()
        if out and out[-1] not in ("PENDING", "RUNNING", "REQUEUED", "COMPLETING"):
            return out[-1]
        time.sleep(2)
    return "TIMEOUT"
