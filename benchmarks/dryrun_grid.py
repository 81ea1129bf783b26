"""Time `snakemake -n` over a 2,000-run grid (target: under 30 s, docs/performance.md).

The grid: 20 experiments, each with a 4-point learning-rate sweep (100 experiments in all),
x 2 built-in datasets x 10 seeds = 2,000 training runs, plus their weight grids, curves, sweep
plots and tables. Runs the repository's Snakefile with `-s`, in a temporary folder (`-d`) with the
grid as `--configfile`; nothing is trained. Prints the job count, wall time (median of the
repeats) and the peak RSS of the snakemake process.

    python benchmarks/dryrun_grid.py [--repeats 3] [--quiet-too]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

BASES = [  # 20 experiments over the three default families, differing in their arguments
    *({"model": "mlp", "model_args": {"hidden": [w, w // 2]}} for w in (64, 128, 256, 512, 1024)),
    *({"model": "mlp", "model_args": {"hidden": [w], "activation": "tanh"}} for w in (64, 256)),
    *({"model": "resnet18", "model_args": {"norm": n}} for n in ("bn", "gn", "none")),
    *({"model": "mixer", "model_args": {"patch_size": 2, "dim": d, "depth": k}}
      for d in (32, 64) for k in (1, 2, 4, 8, 12)),
]


def grid_config() -> dict:
    assert len(BASES) == 20
    experiments = {f"e{i:02d}": base for i, base in enumerate(BASES)}
    sweeps = {
        f"lr-{name}": {"base": name, "grid": {"lr": [3e-4, 3e-3, 1e-2, 3e-2]}}
        for name in experiments
    }
    return {
        "datasets": ["digits", "synthetic"],
        "seeds": list(range(10)),
        "data": {"synthetic": {"image_size": 8, "train_size": 1000, "test_size": 200}},
        "train": {"epochs": 2},
        "experiments": experiments,
        "sweeps": sweeps,
    }


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def dry_run(workdir: Path, *extra: str) -> tuple[float, float, str]:
    """(wall s, CPU s, output) of one dry run. On a loaded machine the CPU time is what the
    dry run costs by itself; the wall time is what a user waits."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    command = [
        str(BIN / "snakemake"), "-n", *extra,
        "-s", str(REPO / "Snakefile"), "-d", str(workdir),
        "--configfile", str(workdir / "config.yaml"),
    ]
    cpu, start = _child_cpu(), time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    elapsed, cpu = time.perf_counter() - start, _child_cpu() - cpu
    if result.returncode:
        sys.exit(f"snakemake failed:\n{result.stderr[-3000:]}")
    return elapsed, cpu, result.stdout + result.stderr


def job_counts(output: str) -> dict[str, int]:
    """Snakemake's job-stats table: rule -> count (and 'total')."""
    counts = {}
    for line in output.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)\s*$", line.strip())
        if m:
            counts[m.group(1)] = int(m.group(2))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quiet-too", action="store_true", help="also time `snakemake -n -q`")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="imgzoo-dryrun-") as tmp:
        workdir = Path(tmp)
        (workdir / "config.yaml").write_text(yaml.safe_dump(grid_config()))
        check = subprocess.run(
            [str(BIN / "imgzoo"), "check", "--config", str(workdir / "config.yaml")],
            capture_output=True, text=True,
        )
        print(check.stdout.strip() or check.stderr.strip())
        variants = [("snakemake -n", ())]
        if args.quiet_too:
            variants.append(("snakemake -n -q", ("-q",)))
        counts: dict[str, int] = {}
        for label, extra in variants:
            times, cpus, output = [], [], ""
            for _ in range(args.repeats):
                elapsed, cpu, output = dry_run(workdir, *extra)
                times.append(elapsed)
                cpus.append(cpu)
            counts = job_counts(output) or counts
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            print(
                f"{label}: {counts.get('total', '?')} jobs ({counts.get('train', '?')} train), "
                f"median {statistics.median(times):.1f} s over {len(times)} "
                f"(min {min(times):.1f}, max {max(times):.1f}), CPU time median "
                f"{statistics.median(cpus):.1f} s; peak RSS {peak:.0f} MiB; "
                f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}"
            )


if __name__ == "__main__":
    main()
