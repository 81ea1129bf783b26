"""The GPU sampler (imgzoo.gpu_usage) with a fake `nvidia-smi` first on PATH (this machine has no
GPU), and the run log's optional `gpu` group that keeps its samples."""

import math
import os
import time
from dataclasses import replace

import numpy as np
import pytest
from helpers import one_epoch_log

from imgzoo import gpu_usage, runlog
from imgzoo.gpu_usage import GpuSampler

UUID = "GPU-5c3e2a1f-0000-4000-8000-000000000001"


@pytest.fixture
def fake_nvidia_smi(tmp_path, monkeypatch):
    """An `nvidia-smi` that answers a query as the real one does (`utilization.gpu, memory.used,
    memory.total` in %, MiB, MiB), cycling through three readings, and logs its arguments."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    script = bin_dir / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {calls}\n'
        f"n=$(wc -l < {calls})\n"
        "case $((n % 3)) in\n"
        '  1) echo "20, 1000, 81559" ;;\n'
        '  2) echo "40, 3000, 81559" ;;\n'
        '  0) echo "[N/A], 2000, 81559" ;;\n'
        "esac\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return calls


def test_sampler_reads_the_gpu_it_is_given_a_few_times_and_stops(fake_nvidia_smi):
    sampler = GpuSampler(UUID, interval_s=0.05)
    assert sampler.source == "nvidia-smi"  # no pynvml here
    sampler.start()
    time.sleep(0.4)
    samples = sampler.stop()
    calls = fake_nvidia_smi.read_text().splitlines()
    n = len(samples["time_s"])
    assert 3 <= n == len(calls), (n, calls)
    assert all(call.endswith(f"-i {UUID}") for call in calls)
    assert "--query-gpu=utilization.gpu,memory.used,memory.total" in calls[0]
    assert samples["utilization"][:3] == [20.0, 40.0, samples["utilization"][2]]
    assert math.isnan(samples["utilization"][2])  # "[N/A]"
    assert samples["memory_mb"][:3] == [1000.0, 3000.0, 2000.0]
    assert samples["memory_total_mb"] == 81559.0
    assert list(samples["time_s"]) == sorted(samples["time_s"])
    time.sleep(0.2)
    assert len(fake_nvidia_smi.read_text().splitlines()) == n  # stopped means stopped


def test_a_resumed_run_continues_its_earlier_samples_on_one_time_axis(fake_nvidia_smi):
    earlier = GpuSampler(UUID, interval_s=60)
    earlier.sample()
    earlier.sample()
    first = earlier.samples()
    resumed = GpuSampler(UUID, interval_s=60, earlier=first, offset_s=100.0)
    resumed.sample()
    both = resumed.samples()
    assert both["memory_mb"] == [1000.0, 3000.0, 2000.0]
    assert both["time_s"][:2] == first["time_s"] and both["time_s"][2] >= 100.0


def test_no_driver_means_no_sampler(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # neither nvidia-smi nor pynvml
    sampler = GpuSampler("0")
    assert not sampler.available and sampler.source is None
    assert sampler.start().stop()["time_s"] == []


def test_a_failing_nvidia_smi_gives_no_samples(tmp_path, monkeypatch):
    script = tmp_path / "nvidia-smi"
    script.write_text("#!/bin/sh\necho 'No devices were found' >&2\nexit 6\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    read = gpu_usage.nvidia_smi_reader("0")
    assert read is not None and read() is None


def test_run_log_keeps_the_gpu_samples_in_an_optional_group(tmp_path, fake_nvidia_smi):
    sampler = GpuSampler(UUID, interval_s=60)
    for _ in range(3):
        sampler.sample()
    log = one_epoch_log()
    runlog.write(tmp_path / "with.h5", replace(log, gpu=sampler.samples()))
    runlog.write(tmp_path / "without.h5", log)
    log = runlog.read(tmp_path / "with.h5")
    assert log.attrs["schema_version"] == 3
    np.testing.assert_array_equal(log.gpu["memory_mb"], [1000.0, 3000.0, 2000.0])
    assert log.gpu["source"] == "nvidia-smi" and log.gpu["device_id"] == UUID
    assert log.gpu["memory_total_mb"] == 81559.0 and len(log.gpu["time_s"]) == 3
    assert runlog.read(tmp_path / "without.h5").gpu == {}
