"""What a study costs the login node under `snakemake --profile profiles/slurm`, by runs in flight.

For each N (default 10, 50, 200): a study of N training runs goes through the SLURM profile on
the one-node test cluster (`sudo slurm/testcluster/up`); every run's job is submitted held
(`extra_sbatch: [--hold]`), so all N wait in the queue and nothing trains. Once all N are
submitted it watches for a number of status intervals, then sends SIGINT to Snakemake (Ctrl-C)
and checks that no job is left in the queue. Wrappers first on the PATH log every sacct and
squeue call. Prints, per N: the time to submit all N, the RSS of the Snakemake process (median
over the watch, and its peak), and the status calls per interval with the job ids each sacct
call asked about.

    python benchmarks/scheduler_load.py [--runs 10 50 200] [--interval 2] [--intervals 10]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def study(runs: int) -> dict:
    return {
        "datasets": ["digits"],
        "seeds": list(range(runs)),
        "train": {"epochs": 1},
        "resources": {
            "gpus": 0,
            "cpus": 1,
            "mem_gb": 1,
            "time_min": 10,
            "extra_sbatch": ["--hold"],
        },
        "report": {"weight_grids": False},
        "experiments": {"mlp": {"model": "mlp", "model_args": {"hidden": [32]}}},
    }


def logging_wrappers(folder: Path, calls: Path) -> None:
    """`sacct` and `squeue` that note the time, their name and arguments of each call."""
    folder.mkdir()
    for name in ("sacct", "squeue"):
        real = shutil.which(name)
        if real is None:
            sys.exit(f"no {name} on the PATH: start the test cluster (sudo slurm/testcluster/up)")
        wrapper = folder / name
        wrapper.write_text(
            f'#!/bin/sh\necho "$(date +%s.%N) {name} $*" >> {calls}\nexec {real} "$@"\n'
        )
        wrapper.chmod(0o755)


def rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process, in kB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return tuple(int(re.search(rf"{key}:\s*(\d+) kB", status)[1]) for key in ("VmRSS", "VmHWM"))


def submitted_jobs(workdir: Path) -> list[str]:
    jobs = []
    for log in (workdir / "results/logs/train").rglob("*.log"):
        found = re.search(r"submitted SLURM job (\d+)", log.read_text(errors="replace"))
        if found:
            jobs.append(found[1])
    return jobs


def queued(jobs: list[str]) -> set[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout
    return set(out.split()) & set(jobs)


def measure(runs: int, interval: float, intervals: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="imgzoo-scheduler-load-") as tmp:
        workdir = Path(tmp)
        (workdir / "config.yaml").write_text(yaml.safe_dump(study(runs)))
        calls = workdir / "status-calls"
        logging_wrappers(workdir / "bin", calls)
        env = {
            **os.environ,
            "PATH": f"{workdir / 'bin'}{os.pathsep}{BIN}{os.pathsep}{os.environ['PATH']}",
        }
        command = [
            str(BIN / "snakemake"),
            "--profile",
            str(REPO / "profiles/slurm"),
            "-s",
            str(REPO / "Snakefile"),
            "-d",
            str(workdir),
            "--configfile",
            str(workdir / "config.yaml"),
            "--imgzoo-status-interval",
            str(interval),
        ]
        with (workdir / "snakemake.log").open("w") as out:
            proc = subprocess.Popen(
                command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        started = time.time()
        jobs: list[str] = []
        try:
            while len(jobs) < runs:
                if proc.poll() is not None or time.time() - started > 60 + runs:
                    log = (workdir / "snakemake.log").read_text()
                    sys.exit(f"snakemake stopped or stalled:\n{log[-3000:]}")
                time.sleep(0.5)
                jobs = submitted_jobs(workdir)
            all_submitted = time.time()
            samples = []
            while time.time() < all_submitted + interval * intervals:
                samples.append(rss_kb(proc.pid)[0])
                time.sleep(0.5)
            peak = rss_kb(proc.pid)[1]
            watched = time.time() - all_submitted
        finally:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: Snakemake cancels every job
            proc.wait(timeout=120)
        deadline = time.time() + 30
        while queued(jobs) and time.time() < deadline:
            time.sleep(0.5)
        records = [line.split(" ", 2) for line in calls.read_text().splitlines()]
        window = [
            (name, args)
            for t, name, args in records
            if all_submitted <= float(t) <= all_submitted + watched
        ]
        ids = [
            len(re.search(r"-j (\S+)", args)[1].split(","))
            for name, args in window
            if name == "sacct"
        ]
        return {
            "runs": runs,
            "submit_s": all_submitted - started,
            "rss_mb": statistics.median(samples) / 1024,
            "peak_mb": peak / 1024,
            "calls_per_interval": len(window) / (watched / interval),
            "sacct": sum(name == "sacct" for name, _ in window),
            "squeue": sum(name == "squeue" for name, _ in window),
            "ids_per_sacct": max(ids, default=0),
            "left_in_queue": len(queued(jobs)),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--interval", type=float, default=2.0, help="status interval, seconds")
    parser.add_argument("--intervals", type=int, default=10, help="intervals watched per N")
    args = parser.parse_args()
    # Snakemake must get Ctrl-C's SIGINT even where this script was started in the background
    # (with SIGINT ignored, which its children would inherit).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    print(
        f"status interval {args.interval:g} s, {args.intervals} intervals watched per N; "
        f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}"
    )
    print(
        "| runs in flight | submit all (s) | Snakemake RSS MB (median) | peak RSS MB "
        "| status calls / interval | sacct, squeue calls | job ids per sacct | left in queue |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for runs in args.runs:
        r = measure(runs, args.interval, args.intervals)
        print(
            f"| {r['runs']} | {r['submit_s']:.1f} | {r['rss_mb']:.0f} | {r['peak_mb']:.0f} "
            f"| {r['calls_per_interval']:.2f} | {r['sacct']}, {r['squeue']} "
            f"| {r['ids_per_sacct']} | {r['left_in_queue']} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
