"""The style checks the project keeps clean run with the tests, so style cannot drift."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

CHECKS = {
    "ruff": [str(BIN / "ruff"), "check", "src", "tests", "benchmarks"],
    "snakefmt": [str(BIN / "snakefmt"), "--check", "."],
    "snakemake-lint": [str(BIN / "snakemake"), "--lint", "-n"],
}


@pytest.mark.parametrize("name", CHECKS)
def test_style_check_is_clean(name):
    done = subprocess.run(CHECKS[name], cwd=REPO, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    if name == "snakemake-lint":  # --lint exits 0 even when it lists lints
        assert "Congratulations" in output, output[-3000:]
