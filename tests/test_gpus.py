"""Local runs on a machine with several GPUs: how many may run at once, and which GPU each takes."""

import subprocess
import sys

from imgzoo import gpus


def test_count_here_follows_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert gpus.count_here() == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert gpus.count_here() == 0
    assert gpus.local_limit({"gpu": 1}) == 1  # what --resources gave wins
    assert gpus.local_limit({}) == 1_000_000  # no GPU here: no limit on CPU runs


def claims(folder, n: int) -> list[int]:
    """The GPUs a fresh process claims, `n` times in a row (it holds each until it exits)."""
    done = subprocess.run(
        [sys.executable, "-c", "from pathlib import Path; from imgzoo import gpus; "
         f"print(*(gpus.claim(3, Path({str(folder)!r})) for _ in range({n})))"],
        capture_output=True, text=True, check=True,
    )
    return [int(i) for i in done.stdout.split()]


def test_each_process_claims_a_gpu_no_other_holds(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from imgzoo import gpus; "
         f"print(gpus.claim(3, Path({str(tmp_path)!r})), flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "0"
        # 0 is held by the other process; when all are held, the first (the resource keeps
        # that from happening)
        assert claims(tmp_path, 3) == [1, 2, 0]
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert claims(tmp_path, 1) == [0]  # the lock went with the process that held it
