"""What sampling the GPU costs a training run (imgzoo.gpu_usage): one real run trained again and
again on the CPU, with no sampler, with the sampler at its rate (every 15 s) and at 15 times its
rate (every second), the three in turn, each round in that order, after one untimed run that
pays the first-time costs.

    python benchmarks/gpu_sampling_cost.py [--rounds 3] [--epochs 30] [--out cost.json]

The machine has no GPU, so the sampler reads a stand-in `nvidia-smi` (a shell script that prints
a reading, first on PATH): the cost measured is the job's side of sampling through nvidia-smi,
a thread that wakes up and starts a short process, which is the dearer of the two ways (NVML is a
library call). What nvidia-smi itself then does happens in the driver, not in the run's process.
Reported per mode: the median over rounds of the run's wall time (`imgzoo.train.train`, start to
end; its range) and of its training time (the sum of its epochs' `train_time`), each against no
sampler; and the cost of one sample, timed back to back (`--samples`): wall time, and the CPU
time of the run's process and of the nvidia-smi it starts, which a shared machine's load does not
blur as it blurs whole runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

MODES = {"off": None, "every 15 s": 15.0, "every 1 s": 1.0}
FAKE_NVIDIA_SMI = '#!/bin/sh\necho "37, 1234, 81559"\n'


def one_run(spec, data_path: Path, out: Path, interval_s: float | None) -> dict:
    from imgzoo.gpu_usage import GpuSampler
    from imgzoo.progress import Progress
    from imgzoo.train import train

    sampler = None
    if interval_s is not None:
        sampler = GpuSampler("0", interval_s=interval_s)
        assert sampler.source == "nvidia-smi", "the stand-in nvidia-smi is not first on PATH"
        sampler.start()
    began = time.perf_counter()
    log = train(
        spec,
        data_path,
        out,
        threads=1,
        progress=Progress(spec.train["epochs"], stream=open(os.devnull, "w")),
    )
    wall = time.perf_counter() - began
    samples = len(sampler.stop()["time_s"]) if sampler is not None else 0
    return {"wall_s": wall, "train_s": float(log.epochs["train_time"].sum()), "samples": samples}


def sample_cost(samples: int) -> dict:
    """Wall and CPU time of one sample, over `samples` taken back to back: CPU of this process
    (the sampling thread's work) and of the processes it started (nvidia-smi)."""
    import resource

    from imgzoo.gpu_usage import GpuSampler

    sampler = GpuSampler("0", interval_s=3600)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    began, cpu = time.perf_counter(), time.process_time()
    for _ in range(samples):
        sampler.sample()
    wall, cpu = time.perf_counter() - began, time.process_time() - cpu
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu += (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    assert len(sampler.samples()["time_s"]) == samples
    return {"samples": samples, "wall_ms": 1e3 * wall / samples, "cpu_ms": 1e3 * cpu / samples}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--samples", type=int, default=200, help="samples timed back to back")
    parser.add_argument("--out", help="write the measurements as JSON here")
    args = parser.parse_args(argv)

    from specs import spec_of

    from imgzoo import data

    spec = spec_of(
        "mlp",
        {"hidden": [512, 512]},
        dataset="digits",
        epochs=args.epochs,
        batch_size=32,
        augment="none",
    )
    results: dict[str, list[dict]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "bin").mkdir()
        (tmp / "bin" / "nvidia-smi").write_text(FAKE_NVIDIA_SMI)
        (tmp / "bin" / "nvidia-smi").chmod(0o755)
        os.environ["PATH"] = f"{tmp / 'bin'}{os.pathsep}{os.environ['PATH']}"
        data_path = tmp / "digits.h5"
        data.prepare("digits", {}, data_path)
        one_run(spec, data_path, tmp / "warm-up", None)  # first-time costs (imports, caches)
        for round_ in range(args.rounds):
            order = list(MODES)[round_ % 3 :] + list(MODES)[: round_ % 3]  # no mode always first
            for mode in order:
                interval = MODES[mode]
                out = tmp / f"run-{round_}-{mode.replace(' ', '')}"
                results[mode].append(one_run(spec, data_path, out, interval))
                print(f"round {round_ + 1} {mode}: {results[mode][-1]}", file=sys.stderr)
        per_sample = sample_cost(args.samples)
    summary = {}
    for mode, runs in results.items():
        summary[mode] = {
            "wall_s": statistics.median(r["wall_s"] for r in runs),
            "wall_min_s": min(r["wall_s"] for r in runs),
            "wall_max_s": max(r["wall_s"] for r in runs),
            "train_s": statistics.median(r["train_s"] for r in runs),
            "samples": statistics.median(r["samples"] for r in runs),
        }
    base = summary["off"]
    header = ("wall s", "min", "max", "vs off", "train s", "vs off", "samples")
    print(f"{'sampler':<12} " + " ".join(f"{h:>8}" for h in header))
    for mode, row in summary.items():
        print(
            f"{mode:<12} {row['wall_s']:8.2f} {row['wall_min_s']:8.2f} {row['wall_max_s']:8.2f} "
            f"{row['wall_s'] / base['wall_s'] - 1:+8.1%} {row['train_s']:8.2f} "
            f"{row['train_s'] / base['train_s'] - 1:+8.1%} {row['samples']:8.0f}"
        )
    print(
        f"one sample: {per_sample['wall_ms']:.2f} ms wall, {per_sample['cpu_ms']:.2f} ms CPU "
        f"(the run's thread and the nvidia-smi process together); at 4 a minute "
        f"{per_sample['cpu_ms'] * 4 / 60e3:.4%} of one core"
    )
    if args.out:
        measured = {"runs": results, "median": summary, "per_sample": per_sample}
        Path(args.out).write_text(json.dumps(measured, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
