"""Total training images/s of K runs side by side on one device, against one run alone: how many
runs to pack into one SLURM job (`resources.pack`) on your GPU.

    python benchmarks/pack_throughput.py --pack 1 2 4 8 --model resnet18 --device cuda
    python benchmarks/pack_throughput.py --pack 1 2 --model mlp --device cpu --seconds 3

For each K it starts K processes at once, as a packed SLURM job does (each with its own threads
and determinism settings, `imgzoo.training.device.configure`), each training the same model on
its own random data through imgzoo's own step (`imgzoo.train.build_parts`, a run's parts). Once
all K have built their parts and warmed up, they train together for the same wall-clock window;
each counts its steps and the device is drained before its clock stops. Total images/s is the
sum over the K processes; `speedup` is that total over K = 1's. On a GPU it also records each
process's peak memory (the allocator's) and the device's memory use with all K running.

`--gpu-mem-fraction F` caps each process's share of the GPU's memory as
`resources.gpu_mem_fraction` does; `--cuda-graphs` is the runs' `train.cuda_graphs` (default
auto: each run replays its step as a CUDA graph on a GPU); `--mps` starts NVIDIA's Multi-Process
Service for the K processes (`imgzoo.mps`: a daemon of this benchmark's own, stopped at the end)
where the machine has it, and says so where it has not.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from imgzoo import mps  # noqa: E402

# Bench names that are not catalog names: a family plus model_args (any family or preset of the
# catalog works as well).
MODELS = {
    "vit-small": ("vit", {"patch_size": 4, "dim": 192, "depth": 6, "heads": 3}),
    "mlp-small": ("mlp", {"hidden": [32]}),
}
# A worker's lines to the parent start with this (torch may print other lines).
TAG = "PACK "


def worker(args) -> int:
    """One of the K processes: build, warm up, say ready, wait for go, train the window, report."""
    import torch
    from gpu_check import Stepper, random_prepared, spec_for

    from imgzoo.train import build_parts
    from imgzoo.training.device import configure, synchronize

    device = torch.device(args.device)
    configure(device, args.threads, deterministic=True, memory_fraction=args.gpu_mem_fraction)
    model, model_args = MODELS.get(args.model, (args.model, {}))
    spec = spec_for(
        model,
        model_args,
        image_size=args.image_size,
        batch_size=args.batch_size,
        augment="standard",
        cuda_graphs=args.cuda_graphs,
    )
    sizes = (max(4 * args.batch_size, 512), 64, 64)
    parts = build_parts(spec, random_prepared(sizes, args.image_size, 10), device)
    step = Stepper(parts)
    for _ in range(args.warmup):
        step()
    synchronize(device)
    print(f"{TAG}ready", flush=True)
    sys.stdin.readline()  # go
    start = time.monotonic()
    deadline = start + args.seconds
    steps = 0
    while time.monotonic() < deadline:
        step()
        steps += 1
    synchronize(device)
    elapsed = time.monotonic() - start
    report = {"steps": steps, "seconds": elapsed, "img_s": steps * args.batch_size / elapsed,
              "graphed": step.graphed}
    if device.type == "cuda":
        report["peak_gb"] = torch.cuda.max_memory_allocated() / 2**30
    print(TAG + json.dumps(report), flush=True)
    sys.stdin.readline()  # stay alive (and on the device) until every worker has reported
    return 0


def device_memory_gb() -> float | None:
    """Memory in use on GPU 0, all processes together (nvidia-smi), or None without it."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return round(float(out.stdout.split()[0]) / 1024, 2) if out.returncode == 0 else None
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return None


def pack(k: int, args, extra_env: dict | None = None) -> dict:
    """K workers at once: their total images/s over the same window."""
    command = [
        sys.executable,
        "-u",
        __file__,
        "--worker",
        "--model",
        args.model,
        "--device",
        args.device,
        "--image-size",
        str(args.image_size),
        "--batch-size",
        str(args.batch_size),
        "--seconds",
        str(args.seconds),
        "--warmup",
        str(args.warmup),
        "--threads",
        str(args.threads),
        "--cuda-graphs",
        str(args.cuda_graphs).lower(),
    ]
    if args.gpu_mem_fraction:
        command += ["--gpu-mem-fraction", str(args.gpu_mem_fraction)]
    env = {
        **os.environ,
        **(extra_env or {}),
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])
        ),
    }
    # stderr to files: a pipe nobody reads could fill up and stop a worker
    errors = [tempfile.TemporaryFile("w+") for _ in range(k)]
    workers = [
        subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True, env=env
        )
        for err in errors
    ]
    try:
        for w, err in zip(workers, errors, strict=True):
            tagged(w, err, "ready")
        for w in workers:  # go, together
            w.stdin.write("go\n")
            w.stdin.flush()
        reports = [json.loads(tagged(w, err)) for w, err in zip(workers, errors, strict=True)]
        in_use = device_memory_gb() if args.device == "cuda" else None
        for w in workers:
            w.stdin.write("done\n")
            w.stdin.flush()
            w.wait(timeout=120)
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
        for err in errors:
            err.close()
    row = {
        "pack": k,
        "total_img_s": round(sum(r["img_s"] for r in reports)),
        "per_run_img_s": round(sum(r["img_s"] for r in reports) / k),
        "slowest_run_img_s": round(min(r["img_s"] for r in reports)),
        "steps_per_run": [r["steps"] for r in reports],
        "graphed": all(r["graphed"] for r in reports),
    }
    if args.device == "cuda":
        row["peak_gb_per_run"] = round(max(r["peak_gb"] for r in reports), 2)
        row["device_memory_gb"] = in_use
    return row


def tagged(worker_process: subprocess.Popen, stderr, expected: str | None = None) -> str:
    """The worker's next line for the parent (other output skipped); RuntimeError with the end of
    its stderr if it ends first."""
    for line in worker_process.stdout:
        if line.startswith(TAG):
            text = line[len(TAG) :].strip()
            if expected is None or text == expected:
                return text
    worker_process.wait(timeout=60)
    stderr.seek(0)
    raise RuntimeError(
        f"a worker ended early (exit {worker_process.returncode}):\n{stderr.read()[-3000:]}"
    )


def measure(args, out_of_time=lambda: False) -> dict:
    """Every K of `args.pack` (those `out_of_time()` leaves time for), with MPS where `args.mps`
    asks for it and the machine has it."""
    daemon, mps_note = (None, "")
    if args.mps:
        daemon, mps_note = mps.start()
        if daemon is None:
            return {**_settings(args), "mps": False, "mps_note": mps_note, "rows": []}
    try:
        rows = [pack(k, args, daemon.env if daemon else None) for k in args.pack
                if not out_of_time()]
        mps_servers = len(daemon.servers()) if daemon else 0
    finally:
        if daemon:
            daemon.stop()
    base = next((r["total_img_s"] for r in rows if r["pack"] == 1), None)
    for row in rows:
        row["speedup"] = round(row["total_img_s"] / base, 2) if base else None
    return {**_settings(args), "mps": bool(daemon), "mps_servers": mps_servers,
            "skipped_packs": [k for k in args.pack if k not in [r["pack"] for r in rows]],
            "rows": rows}


def _settings(args) -> dict:
    return {
        "model": args.model,
        "device": args.device,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "seconds": args.seconds,
        "threads": args.threads,
        "gpu_mem_fraction": args.gpu_mem_fraction,
        "cuda_graphs": args.cuda_graphs,
        "cpu_count": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def table(result: dict) -> str:
    title = (f"{result['model']} on {result['device']}, batch {result['batch_size']}, "
             f"{result['image_size']} px, {result['seconds']} s per K"
             + (", MPS" if result["mps"] else ""))
    if not result["rows"]:
        return f"{title}: not measured ({result.get('mps_note') or 'out of time'})"
    keys = ["pack", "total_img_s", "speedup", "per_run_img_s", "slowest_run_img_s"]
    keys += [k for k in ("peak_gb_per_run", "device_memory_gb") if k in result["rows"][0]]
    lines = [
        title,
        "| " + " | ".join(keys) + " |",
        "|" + "---|" * len(keys),
    ]
    lines += ["| " + " | ".join(str(r.get(k)) for k in keys) + " |" for r in result["rows"]]
    return "\n".join(lines)


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pack",
        type=int,
        nargs="+",
        default=[1, 2, 4, 8],
        help="numbers of runs side by side (default 1 2 4 8)",
    )
    parser.add_argument(
        "--model",
        default="resnet18",
        help=f"a catalog model or preset, or one of {', '.join(MODELS)}",
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=10.0, help="timed window per K")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before it")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads per run (default 1: the train rule's)"
    )
    parser.add_argument("--gpu-mem-fraction", type=float, default=None)
    parser.add_argument("--cuda-graphs", type=_setting, default="auto",
                        help="the runs' train.cuda_graphs: auto (default), true or false")
    parser.add_argument("--mps", action="store_true",
                        help="run the K processes under an MPS daemon of their own")
    parser.add_argument("--out", help="write the result as JSON here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if any(k < 1 for k in args.pack):
        parser.error("--pack: every K must be at least 1")
    return args


def _setting(text: str):
    values = {"auto": "auto", "true": True, "false": False}
    if text not in values:
        raise argparse.ArgumentTypeError("auto, true or false")
    return values[text]


def main(argv=None) -> int:
    args = parse(argv)
    if args.worker:
        return worker(args)
    result = measure(args)
    print(table(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
