"""Time from process start to the first training step of `imgzoo train` (target: under 10 s).

For each default experiment (config/config.yaml: mlp, resnet18, mixer) on `digits`, starts
`imgzoo train ... --threads 1 epochs=1` as the workflow's rule does, through a thin wrapper that
prints a timestamp when the first `TrainStep` starts (its batch made) and times the phases on the
way: interpreter up, `import imgzoo.train` (torch), the model's build (its family's imports: timm
for mixer), the first step. The child is stopped at its first step.
Prints the median of the repeats and which heavy packages were loaded by then.

    python benchmarks/startup.py [--repeats 3] [--experiments mlp resnet18 mixer]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torch._dynamo", "torchvision", "timm", "einops", "h5py", "sklearn", "scipy",
         "pandas", "matplotlib", "PIL", "snakemake", "submitit")

CHILD = r"""
import sys, time
print(f"@ start {time.time()} {time.process_time()}", file=sys.stderr, flush=True)
import imgzoo.train
print(f"@ imported {time.time()} {time.process_time()}", file=sys.stderr, flush=True)
import imgzoo.training.network as N
from imgzoo.training.step import TrainStep
create = N.create
def timed_create(*a, **k):
    print(f"@ model_build {time.time()} {time.process_time()}", file=sys.stderr, flush=True)
    model = create(*a, **k)
    print(f"@ model_built {time.time()} {time.process_time()}", file=sys.stderr, flush=True)
    return model
N.create = timed_create
step = TrainStep.__call__
def first_step(self, *a, **k):
    heavy = " ".join(m for m in HEAVY if m in sys.modules)
    now, cpu = time.time(), time.process_time()
    print(f"@ first_step {now} {cpu} {heavy}", file=sys.stderr, flush=True)
    TrainStep.__call__ = step
    return step(self, *a, **k)
TrainStep.__call__ = first_step
from imgzoo.cli import main
sys.exit(main(sys.argv[1:]))
"""


def one(experiment: str, data: Path, out: Path) -> dict:
    code = f"HEAVY = {HEAVY!r}\n{CHILD}"
    command = [
        sys.executable, "-c", code, "train", "--experiment", experiment, "--dataset", "digits",
        "--seed", "0", "--data", str(data), "--out", str(out), "--threads", "1", "epochs=1",
    ]
    t0 = time.time()
    child = subprocess.Popen(command, cwd=REPO, stderr=subprocess.PIPE, text=True)
    marks: dict = {}
    for line in child.stderr:
        if line.startswith("@ "):
            _, name, stamp, cpu, *rest = line.split()
            marks[name] = float(stamp) - t0
            marks[f"{name}_cpu"] = float(cpu)
            if name == "first_step":
                marks["heavy"] = rest
                break
    child.kill()
    child.wait()
    if "first_step" not in marks:
        sys.exit(f"{experiment}: the run never reached its first step")
    return marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--experiments", nargs="+", default=["mlp", "resnet18", "mixer"])
    args = parser.parse_args()
    from imgzoo import data

    with tempfile.TemporaryDirectory(prefix="imgzoo-startup-") as tmp:
        path = Path(tmp) / "digits.h5"
        data.prepare("digits", {}, path)
        print(f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
        print("wall-clock seconds since the process was spawned (CPU seconds of the process)")
        print(f"{'experiment':<10} {'python up':>9} {'import train':>14} {'build model':>14} "
              f"{'model built':>14} {'first step':>14}   loaded by the first step")
        for experiment in args.experiments:
            runs = [one(experiment, path, Path(tmp) / f"run-{experiment}-{i}")
                    for i in range(args.repeats)]
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0] if k != "heavy"}
            worst = max(r["first_step"] for r in runs)
            cells = " ".join(
                f"{med[k]:>6.2f} ({med[k + '_cpu']:>5.2f})"
                for k in ("imported", "model_build", "model_built", "first_step")
            )
            print(f"{experiment:<10} {med['start']:>8.2f}s {cells}   "
                  f"{' '.join(runs[-1]['heavy'])}  (worst first step {worst:.2f}s)")
        print(f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
