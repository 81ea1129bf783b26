"""Time `imgzoo status` on a 1,000-run study (target: under 2 s, docs/performance.md).

The study: 10 experiments x 1 dataset x 100 seeds. Its run folders are filled as a study in
progress leaves them: a quarter finished (a real run log), a quarter running or stopped
(progress.json after 3 of 10 epochs), the rest not started. Runs the `imgzoo status --json`
command in a temporary folder; prints its wall time (median of the repeats), its peak RSS, and
whether it imported torch.

    python benchmarks/status_speed.py [--runs 1000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from imgzoo import live, runlog
from imgzoo.config import load_study

BIN = Path(sys.executable).parent
EXPERIMENTS = 10


def make_study(root: Path, runs: int) -> None:
    seeds = runs // EXPERIMENTS
    config = {
        "datasets": ["digits"],
        "seeds": list(range(seeds)),
        "train": {"epochs": 10},
        "experiments": {f"mlp{i}": {"model": "mlp", "model_args": {"hidden": [16 * (i + 1)]}}
                        for i in range(EXPERIMENTS)},
    }
    (root / "study.yaml").write_text(yaml.safe_dump(config))
    study = load_study([root / "study.yaml"])
    epochs = {k: np.linspace(0.1, 0.9, 10) for k in runlog.EPOCH_SERIES}
    epochs["epoch"] = np.arange(1, 11)
    for i, run in enumerate(study.runs):
        run_dir = root / study.run_dir(run)
        spec = study.spec(run).to_dict()
        if i % 4 == 0:  # finished
            attrs = runlog.run_attrs(spec, num_params=1000, status="completed",
                                     epochs_completed=10, best_epoch=10, started=runlog.now(),
                                     ended=runlog.now())
            runlog.write(run_dir / "metrics.h5", runlog.RunLog(attrs, epochs))
            history = {k: list(v) for k, v in epochs.items()}
            live.write_progress(run_dir, spec, history, attrs=attrs)
        elif i % 4 == 1:  # running or stopped: three epochs so far
            run_dir.mkdir(parents=True, exist_ok=True)
            history = {k: list(v[:3]) for k, v in epochs.items()}
            attrs = runlog.run_attrs(spec, num_params=1000, status="running",
                                     epochs_completed=3, best_epoch=3, started=runlog.now())
            live.write_progress(run_dir, spec, history, attrs=attrs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_study(root, args.runs)
        command = [str(BIN / "python"), "-X", "importtime", "-c",
                   "import sys; from imgzoo.cli import main; sys.exit(main())",
                   "status", "--json", "--config", "study.yaml"]
        times, cpu, rss = [], [], 0
        for _ in range(args.repeats):
            start, cpu0 = time.perf_counter(), _child_cpu_s()
            done = subprocess.run(command, cwd=root, capture_output=True, text=True,
                                  env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"})
            times.append(time.perf_counter() - start)
            cpu.append(_child_cpu_s() - cpu0)
            if done.returncode != 0:
                sys.exit(done.stderr)
            rss = max(rss, _child_rss_mb())
        torch = any(line.split("|")[-1].strip() == "torch" for line in done.stderr.splitlines())
        counts = json.loads(done.stdout)["counts"]
    print(f"imgzoo status --json on {args.runs} runs ({counts}): median "
          f"{statistics.median(times):.2f} s over {args.repeats} (min {min(times):.2f}, max "
          f"{max(times):.2f}); CPU time {statistics.median(cpu):.2f} s; peak RSS {rss:.0f} MB; "
          f"imports torch: {torch}")


def _child_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _child_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
