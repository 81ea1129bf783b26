"""Shared fixtures."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_UP = {"idle", "mixed", "allocated", "completing"}


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` need a GPU: skipped where torch sees none (benchmarks/gpu_check.py
    runs them on a GPU machine with `-m cuda`). Torch is imported only where such tests are."""
    cuda_tests = [item for item in items if "cuda" in item.keywords]
    if not cuda_tests:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in cuda_tests:
        item.add_marker(skip)


@pytest.fixture
def one_torch_thread():
    """Torch on one thread, seeded 0, for one test (the model tests: small operations, whose
    numbers and speed should not depend on the machine's cores); restored after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def digits_h5(tmp_path_factory) -> Path:
    """scikit-learn's digits, prepared once for the whole session (read-only: copy to change)."""
    from imgzoo import data

    path = tmp_path_factory.mktemp("digits") / "digits.h5"
    data.prepare("digits", {}, path)
    return path


@pytest.fixture(scope="session")
def slurm_cluster():
    """The one-node test cluster that `slurm/testcluster/up` starts: its node answers `sinfo`
    and accounting answers `sacct`. Missing: a failure when the CI variable is set (CI must run
    the SLURM tests, never skip them), a skip elsewhere."""
    problem = None
    if shutil.which("sinfo") is None:
        problem = "the SLURM commands are not installed"
    else:
        try:
            node = subprocess.run(
                ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30
            )
            states = set(node.stdout.split())
            if node.returncode != 0 or not states & NODE_UP:
                problem = f"sinfo: {(node.stderr.strip() or node.stdout.strip() or 'no node')}"
            elif subprocess.run(["sacct", "-n", "-X"], capture_output=True, timeout=30).returncode:
                problem = "sacct does not answer (slurmdbd is not running)"
        except subprocess.TimeoutExpired:
            problem = "sinfo or sacct did not answer in 30 s"
    if problem:
        message = f"no SLURM test cluster ({problem}): start one with `sudo slurm/testcluster/up`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
