"""How busy a run keeps its GPU: the GPU's utilisation and memory in use, sampled a few times a
minute while the run trains, and stored in the run log (group `gpu`, docs/runlog.md).

Read through NVML (`pynvml`, where it imports and finds the GPU), else `nvidia-smi
--query-gpu`: what any machine with NVIDIA's driver has. The figures are the whole GPU's, as
NVIDIA reports them: utilisation is the share of the sample period in which a kernel ran, memory
what every process on it holds (runs packed on one GPU see their pack's use). A thread of the
run's process takes a sample every `interval_s` seconds; a sample costs a library call (NVML) or
one short process (nvidia-smi) every 15 s, which docs/performance.md measures as nothing a run
notices.

Imports no torch: the caller names the GPU (`device_id`: its UUID, `GPU-...`, or its index as
the driver counts them).
"""

from __future__ import annotations

import math
import shutil
import subprocess
import threading
import time

from imgzoo.runlog import GPU_SERIES

SAMPLE_INTERVAL_S = 15.0  # four samples a minute
QUERY_TIMEOUT_S = 10.0


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:  # "[N/A]", "[Not Supported]"
        return math.nan


def nvidia_smi_reader(device_id: str):
    """A reader of one GPU through `nvidia-smi`, or None where it is not on PATH. A reader
    returns (utilisation %, memory used MiB, memory total MiB), or None where no answer came."""
    if shutil.which("nvidia-smi") is None:
        return None
    command = [
        "nvidia-smi",
        "--query-gpu=utilization.gpu,memory.used,memory.total",
        "--format=csv,noheader,nounits",
        "-i",
        device_id,
    ]

    def read():
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=QUERY_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired):
            return None
        fields = out.stdout.strip().splitlines()[0].split(",") if out.stdout.strip() else []
        if out.returncode != 0 or len(fields) != 3:
            return None
        return tuple(_number(f.strip()) for f in fields)

    return read


def nvml_reader(device_id: str):
    """A reader of one GPU through NVML (pynvml), or None where pynvml does not import or the
    GPU is not found."""
    try:
        import pynvml

        pynvml.nvmlInit()
        if device_id.startswith("GPU-"):
            handle = pynvml.nvmlDeviceGetHandleByUUID(device_id)
        else:
            handle = pynvml.nvmlDeviceGetHandleByIndex(int(device_id))
    except Exception:  # no pynvml, no driver, no such GPU: nvidia-smi may still answer
        return None

    def read():
        try:
            utilization = pynvml.nvmlDeviceGetUtilizationRates(handle).gpu
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
        except pynvml.NVMLError:
            return None
        return float(utilization), memory.used / 2**20, memory.total / 2**20

    return read


def reader_of(device_id: str):
    """(how, reader) of the first way that reaches the GPU: NVML, then nvidia-smi; (None, None)
    where neither does."""
    for source, make in (("nvml", nvml_reader), ("nvidia-smi", nvidia_smi_reader)):
        read = make(device_id)
        if read is not None:
            return source, read
    return None, None


class GpuSampler:
    """Samples one GPU in a thread of this process from `start()` to `stop()`.

    `earlier`: the samples of the run's earlier attempts (a requeued run resumes), whose time
    axis continues: `time_s` counts the run's wall time, every attempt together, and this
    attempt's samples start at `offset_s`."""

    def __init__(
        self,
        device_id: str,
        *,
        interval_s: float = SAMPLE_INTERVAL_S,
        earlier: dict | None = None,
        offset_s: float = 0.0,
    ):
        self.device_id = device_id
        self.interval_s = interval_s
        self.source, self._read = reader_of(device_id)
        earlier = earlier or {}
        self._series = {key: list(earlier.get(key, [])) for key in GPU_SERIES}
        self.memory_total_mb = float(earlier.get("memory_total_mb", math.nan))
        self._offset_s = offset_s
        self._began = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="imgzoo-gpu-sampler", daemon=True)

    @property
    def available(self) -> bool:
        return self._read is not None

    def start(self) -> GpuSampler:
        self._began = time.monotonic()
        if self.available:
            self._thread.start()
        return self

    def stop(self) -> dict:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=QUERY_TIMEOUT_S + 1)
        return self.samples()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        """Take one sample now (the thread does, every interval_s)."""
        reading = self._read() if self._read is not None else None
        if reading is None:
            return
        utilization, used, total = reading
        with self._lock:
            self._series["time_s"].append(self._offset_s + time.monotonic() - self._began)
            self._series["utilization"].append(utilization)
            self._series["memory_mb"].append(used)
            if math.isfinite(total):
                self.memory_total_mb = total

    def samples(self) -> dict:
        """The samples so far (plain lists, for a checkpoint and the run log): the run log's
        GPU_SERIES and GPU_ATTRS."""
        with self._lock:
            series = {key: list(values) for key, values in self._series.items()}
        return {
            **series,
            "memory_total_mb": self.memory_total_mb,
            "source": self.source or "",
            "device_id": self.device_id,
            "interval_s": self.interval_s,
        }
