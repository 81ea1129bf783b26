"""The GPU acceptance check: one command, a few minutes on one GPU, one JSON and one Markdown file.

    PYTHONPATH=src python benchmarks/gpu_check.py --out gpu-check/           # on a GPU machine
    python benchmarks/gpu_check.py --quick --device cpu --out /tmp/check     # the same code, tiny

Runs from the source tree with the machine's own torch. Each section is timed and written to
`gpu_check.json` and `gpu_check.md` as soon as it ends (a check cut short keeps what it has); a
section that fails records its error and the next one runs. In order of what they are worth:

- determinism: the same run twice with `deterministic: true` gives identical logs, and a run
  stopped mid-epoch and resumed equals the uninterrupted one (a convnet and attention models);
  with `deterministic: false`, whether two runs differ;
- sync_free: one training step under `torch.cuda.set_sync_debug_mode("error")` (no host-device
  wait anywhere in the step: batching, augmentation, model, optimizer);
- cuda_tests: the suite's tests marked `cuda` (skipped on the CPU);
- overhead: resnet18 on a CIFAR-10-sized set (45,000 / 5,000 / 10,000 images at 32 px) through
  imgzoo's step against a bare loop written for speed over the same GPU-resident tensors (same
  model, bf16 autocast, channels-last, fused AdamW); deterministic on and off, compile off and on;
- seeds_loop: the write-ups' way of training (PIL images, per-image transforms, DataLoader
  workers), fp32 as they ran it and with bf16 autocast + pinned memory (like with like), against
  imgzoo's step with the same augmentation;
- pack: total training images/s of K = 1, 2, 4, 8 runs side by side on the device, each in its
  own process (`benchmarks/pack_throughput.py`, as a packed SLURM job runs them): how many runs
  to pack into one job (`resources.pack`);
- models: training and evaluation images/s and peak memory of the studies' models at their
  image sizes and batch sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from specs import spec_of  # noqa: E402

from imgzoo import data, runlog  # noqa: E402
from imgzoo.data.store import Prepared  # noqa: E402
from imgzoo.models import create  # noqa: E402
from imgzoo.progress import Progress  # noqa: E402
from imgzoo.spec import RunSpec  # noqa: E402
from imgzoo.train import build_parts, train  # noqa: E402
from imgzoo.training.device import autocast, configure  # noqa: E402
from imgzoo.training.evaluate import evaluate  # noqa: E402
from imgzoo.training.step import Preempted, build_optimizer  # noqa: E402

ROUNDS = 5  # alternating timed series of imgzoo's step and the bare loop
# Series that must agree to the bit between two runs (times are the machine's, not the run's).
EXACT = [k for k in runlog.EPOCH_SERIES if k not in runlog.TIMING_SERIES]

# The studies' models at their image sizes and batch sizes (config/studies/*.yaml).
STUDY_MODELS = [
    # (label, model, model_args, image size, classes, batch size)
    ("mlp (study 1)", "mlp-1024-512-64-64-tanh", {}, 32, 10, 128),
    ("resnet18 (study 1)", "resnet18", {}, 32, 10, 64),
    ("mixer S/16 (study 3)", "mixer-s16", {}, 32, 10, 512),
    ("vit-small", "vit", {"patch_size": 4, "dim": 192, "depth": 6, "heads": 3}, 32, 10, 128),
    ("vitn-12x256 (study 2)", "vitn-12x256-8x8", {}, 32, 100, 128),
    ("swin (study 3)", "swin-study3", {}, 32, 10, 1024),
    ("swin (study 3, STL-10)", "swin-study3", {}, 96, 10, 256),
    ("tnt (study 3)", "tnt-study3", {}, 32, 10, 64),
    ("perceiver medium (study 3)", "perceiver-medium", {}, 32, 10, 64),
]
QUICK_MODELS = [
    ("mlp", "mlp", {"hidden": [32]}, 8, 10, 32),
    ("vit", "vit", {"patch_size": 4, "dim": 32, "depth": 1, "heads": 2}, 8, 10, 32),
]


def spec_for(model: str, model_args: dict, *, image_size: int, **train) -> RunSpec:
    """A run spec as a study resolves it: the schema's training defaults plus `train`."""
    return spec_of(model, model_args, data={"image_size": image_size}, **train)


def random_prepared(sizes: tuple[int, int, int], image_size: int, classes: int) -> Prepared:
    """A prepared dataset of random pixels and labels (speed does not depend on content)."""
    rng = np.random.default_rng(0)

    def split(n):
        images = rng.integers(0, 256, (n, image_size, image_size, 3), dtype=np.uint8)
        return images, rng.integers(0, classes, n).astype(np.int64)

    (train_x, train_y), (val_x, val_y), (test_x, test_y) = (split(n) for n in sizes)
    return Prepared(
        "synthetic", [f"c{i}" for i in range(classes)], classes, image_size, 3,
        np.full(3, 0.5, np.float32), np.full(3, 0.25, np.float32),
        train_x, train_y, val_x, val_y, test_x, test_y,
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed_steps(step_once, n: int, device: torch.device) -> float:
    """Seconds per call of `step_once()` over `n` calls (the device drained before and after)."""
    sync(device)
    start = time.perf_counter()
    for _ in range(n):
        step_once()
    sync(device)
    return (time.perf_counter() - start) / n


def endless(batches_of_epoch):
    epoch = 1
    while True:
        yield from batches_of_epoch(epoch)
        epoch += 1


class Stepper:
    """imgzoo's training step on its own batches, epoch after epoch, one call at a time."""

    def __init__(self, parts):
        self.parts = parts
        self.batches = endless(parts.data.batches)
        self.index = 0

    def __call__(self) -> None:
        self.parts.step(*next(self.batches), self.index)
        self.index += 1

    def seconds_per_step(self, n: int, device: torch.device, warmup: int = 5) -> float:
        for _ in range(warmup):
            self()
        return timed_steps(self, n, device)


# ---- sections ------------------------------------------------------------------------------


def environment(ctx) -> dict:
    info = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "host": platform.node(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": str(ctx.device),
    }
    if ctx.device.type == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gb=round(props.total_memory / 2**30, 1))
    return info


class StopAfter:
    """A stop flag that asks the run to stop after `steps` steps (as SLURM's signal would)."""

    def __init__(self, steps: int):
        self.steps, self.calls = steps, 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.calls > self.steps


def determinism(ctx) -> dict:
    """Same seed, same numbers; stopped and resumed, the same numbers too."""
    root = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    size = 8 if ctx.quick else 32
    options = {"image_size": size, "train_size": 600 if ctx.quick else 4096,
               "test_size": 200 if ctx.quick else 1024, "val_size": 100 if ctx.quick else 512}
    data_path = root / "synthetic.h5"
    data.prepare("synthetic", options, data_path)
    models = [("mlp", {"hidden": [32]})] if ctx.quick else [
        ("resnet18", {}),
        ("vit", {"patch_size": 4, "dim": 192, "depth": 6, "heads": 3}),
        ("tnt-study3", {}),
        ("perceiver-medium", {}),
    ]
    if ctx.quick:
        models.append(("vit", {"patch_size": 4, "dim": 32, "depth": 1, "heads": 2}))
    rows = []
    for model, args in models:
        spec = spec_of(model, args, data=options, epochs=2, batch_size=128,
                       augment="random" if model == "resnet18" else "standard",
                       device=ctx.device.type)
        runs = {}
        for name in ("a", "b"):
            runs[name] = train(spec, data_path, root / f"{model}-{name}", **ctx.quiet(spec))
        # stopped in the middle of epoch 2, then resumed by a second call
        steps = -(-int(options["train_size"] - options["val_size"]) // 128)
        resumed_dir = root / f"{model}-resumed"
        try:
            stop = StopAfter(steps + steps // 2)  # in the middle of epoch 2
            train(spec, data_path, resumed_dir, stop_flag=stop, **ctx.quiet(spec))
            stopped = False
        except Preempted:
            stopped = True
        runs["resumed"] = train(spec, data_path, resumed_dir, **ctx.quiet(spec))
        fast = spec.with_settings(
            replace(spec.settings, train={**spec.train, "deterministic": False})
        )
        for name in ("fast1", "fast2"):
            runs[name] = train(fast, data_path, root / f"{model}-{name}", **ctx.quiet(spec))

        def same(x, y):
            return all(np.array_equal(x.epochs[k], y.epochs[k]) for k in EXACT) and \
                np.array_equal(x.steps["loss"], y.steps["loss"])

        rows.append({
            "model": model,
            "repeat_identical": same(runs["a"], runs["b"]),
            "stopped_mid_epoch": stopped,
            "resume_identical": same(runs["a"], runs["resumed"]),
            "fast_mode_repeat_identical": same(runs["fast1"], runs["fast2"]),
            "test_acc": float(runs["a"].epochs["test_acc"][-1]),
        })
    ok = all(r["repeat_identical"] and r["resume_identical"] and r["stopped_mid_epoch"]
             for r in rows)
    return {"ok": ok, "rows": rows}


def sync_free(ctx) -> dict:
    """One training step (batch, augmentation, forward, backward, optimizer) with CUDA's sync
    debug mode set to raise: the step never waits on the GPU."""
    if ctx.device.type != "cuda":
        return {"ok": None, "note": "needs CUDA"}
    cases = [
        ("resnet18", {}, "standard"),
        ("resnet18", {}, "random"),
        ("c100-resnet18-ms2", {}, "standard+rotate"),
        ("vit", {"patch_size": 4, "dim": 192, "depth": 6, "heads": 3}, "color"),
        ("perceiver-medium", {}, "flip"),
    ]
    prepared = random_prepared((2048, 256, 256), 32, 10)
    rows = []
    for model, args, aug in cases:
        spec = spec_for(model, args, image_size=32, batch_size=128, augment=aug)
        configure(ctx.device, None, deterministic=True)
        step = Stepper(build_parts(spec, prepared, ctx.device))
        for _ in range(2):  # warm-up: lazy initialisations may sync once
            step()
        sync(ctx.device)
        error = ""
        torch.cuda.set_sync_debug_mode("error")
        try:
            step()
        except RuntimeError as e:
            error = str(e).splitlines()[0]
        finally:
            torch.cuda.set_sync_debug_mode("default")
        rows.append({"model": model, "augment": aug, "sync_free": not error, "error": error})
    return {"ok": all(r["sync_free"] for r in rows), "rows": rows}


def cuda_tests(ctx) -> dict:
    # A GPU machine may lack what some test modules import (Snakemake, say): run what collects.
    command = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider",
               "--continue-on-collection-errors", str(REPO / "tests")]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    lines = [ln for ln in done.stdout.splitlines() if ln.strip()]
    failures = [ln for ln in lines if ln.startswith("FAILED")]
    return {"ok": not failures and "passed" in (lines[-1] if lines else "")
            if ctx.device.type == "cuda" else done.returncode in (0, 5),
            "summary": lines[-1] if lines else "", "failures": failures,
            "not_collected": [ln for ln in lines if ln.startswith("ERROR")]}


class BareLoop:
    """Training written for speed alone over the same GPU-resident tensors: a gather, the input
    arithmetic, forward and backward under bf16 autocast, a fused optimizer; nothing else."""

    def __init__(self, spec: RunSpec, parts, device: torch.device, compile: bool):
        torch.manual_seed(0)
        ds = parts.data
        self.model = create(spec.settings.family, num_classes=10, image_size=32, in_chans=3,
                            **spec.settings.model_args).to(device,
                                                           memory_format=torch.channels_last)
        self.net = torch.compile(self.model) if compile else self.model
        self.opt = build_optimizer(self.model, spec.train, fused=device.type == "cuda")
        self.x, self.y = ds.x["train"], ds.y["train"]
        self.mean, self.std = ds.mean, ds.std
        self.batch, self.device = spec.train["batch_size"], device
        self.order = torch.randperm(len(self.y), device=device)
        self.i = 0

    def step(self) -> None:
        if (self.i + 1) * self.batch > len(self.order):
            self.i = 0
        idx = self.order[self.i * self.batch:(self.i + 1) * self.batch]
        self.i += 1
        x = self.x.index_select(0, idx).float().div_(255).sub_(self.mean).div_(self.std)
        x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.device):
            loss = torch.nn.functional.cross_entropy(self.net(x), self.y.index_select(0, idx))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


def overhead(ctx) -> dict:
    sizes = (2000, 200, 200) if ctx.quick else (45_000, 5_000, 10_000)
    steps = 5 if ctx.quick else 40
    prepared = random_prepared(sizes, 32, 10)
    model, args = ("mlp", {"hidden": [64]}) if ctx.quick else ("resnet18", {})
    configs = [(True, False), (False, False)]
    if ctx.device.type == "cuda" or not ctx.quick:
        configs += [(False, True), (True, True)]
    rows = []
    for deterministic, compiled in configs:
        if ctx.out_of_time(reserve=100 if compiled else 20):
            rows.append({"deterministic": deterministic, "compile": compiled, "skipped": True})
            continue
        spec = spec_for(model, args, image_size=32, batch_size=128, augment="none",
                        compile=compiled, deterministic=deterministic)
        configure(ctx.device, ctx.threads, deterministic=deterministic)
        parts = build_parts(spec, prepared, ctx.device)
        step = Stepper(parts)
        first_step = timed_steps(step, 1, ctx.device)  # the first step compiles
        bare = BareLoop(spec, parts, ctx.device, compiled)
        for _ in range(6):
            step()
            bare.step()
        # Alternating rounds, medians: a GPU's clocks and a shared host drift by more than the
        # difference measured (one 0.5 s series each once gave ratios of 0.78 to 1.20).
        rounds = [(timed_steps(step, steps, ctx.device), timed_steps(bare.step, steps, ctx.device))
                  for _ in range(ROUNDS)]
        imgzoo_s = float(np.median([r[0] for r in rounds]))
        bare_s = float(np.median([r[1] for r in rounds]))
        # the run's epoch: evaluation of val, test and the train subset at the run's batch
        start = time.perf_counter()
        for split in ("val", "test", "train_subset"):
            evaluate(parts.network.model, parts.data, split, parts.eval_batch_size)
        sync(ctx.device)
        eval_s = time.perf_counter() - start
        rows.append({
            "deterministic": deterministic,
            "compile": compiled,
            "first_step_s": round(first_step, 2),
            "imgzoo_img_s": round(128 / imgzoo_s),
            "bare_img_s": round(128 / bare_s),
            "overhead_ratio": round(imgzoo_s / bare_s, 3),
            "ratio_range": [round(min(a / b for a, b in rounds), 3),
                            round(max(a / b for a, b in rounds), 3)],
            "epoch_s": round(sizes[0] / 128 * imgzoo_s + eval_s, 2),
            "eval_s": round(eval_s, 2),
        })
        del parts, step, bare
    spec = spec_for(model, args, image_size=32, batch_size=128, augment="standard")
    configure(ctx.device, ctx.threads, deterministic=True)
    standard_s = Stepper(build_parts(spec, prepared, ctx.device)).seconds_per_step(
        steps, ctx.device
    )
    measured = [r for r in rows if not r.get("skipped")]
    return {
        "ok": all(r["overhead_ratio"] <= 1.10 for r in measured) if ctx.device.type == "cuda"
        else None,
        "target": "overhead_ratio <= 1.10",
        "rows": rows,
        "imgzoo_standard_augmentation_img_s": round(128 / standard_s),
    }


def seeds_loop(ctx) -> dict:
    from reference_loop import ReferenceLoop

    sizes = (2000, 200, 200) if ctx.quick else (45_000, 5_000, 10_000)
    steps = 3 if ctx.quick else 30
    prepared = random_prepared(sizes, 32, 10)
    model, args = ("mlp", {"hidden": [64]}) if ctx.quick else ("resnet18", {})
    spec = spec_for(model, args, image_size=32, batch_size=128, augment="standard")
    configure(ctx.device, ctx.threads, deterministic=True)
    imgzoo_s = Stepper(build_parts(spec, prepared, ctx.device)).seconds_per_step(
        steps, ctx.device
    )
    rows = [{"loop": "imgzoo (batched augmentation on the device, bf16 on CUDA)",
             "img_s": round(128 / imgzoo_s)}]
    for label, amp in (("write-ups' loop as written (fp32, pageable copies)", False),
                       ("write-ups' loop with bf16 autocast and pinned memory", True)):
        if amp and ctx.device.type != "cuda":
            continue
        loop = ReferenceLoop(spec, prepared, ctx.device, num_workers=2, amp=amp)
        times = loop.steps(steps, skip=5)
        rows.append({"loop": label, "img_s": round(128 / float(np.median(times)))})
    for row in rows[1:]:
        row["imgzoo_speedup"] = round(rows[0]["img_s"] / row["img_s"], 2)
    return {"ok": None, "model": model, "augment": "standard", "rows": rows}


def pack(ctx) -> dict:
    """K runs of resnet18 (study 1's batch) side by side, K = 1, 2, 4, 8: total images/s."""
    import pack_throughput

    if ctx.quick:
        argv = ["--pack", "1", "2", "--model", "mlp-small", "--image-size", "8",
                "--batch-size", "32", "--seconds", "1", "--warmup", "2"]
    else:
        argv = ["--pack", "1", "2", "4", "8", "--model", "resnet18", "--batch-size", "64",
                "--seconds", "8"]
    argv += ["--device", ctx.device.type, "--threads", str(ctx.threads or 1)]
    result = pack_throughput.measure(pack_throughput.parse(argv))
    return {"ok": None, **result}


def models(ctx) -> dict:
    table = QUICK_MODELS if ctx.quick else STUDY_MODELS
    steps = 3 if ctx.quick else 15
    rows = []
    for label, model, args, size, classes, batch in table:
        if ctx.out_of_time(reserve=15):
            rows.append({"model": label, "skipped": True})
            continue
        try:
            prepared = random_prepared((max(4 * batch, 512), 256, 1000 if not ctx.quick else 64),
                                       size, classes)
            spec = spec_for(model, args, image_size=size, batch_size=batch, augment="standard")
            configure(ctx.device, ctx.threads, deterministic=True)
            if ctx.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            parts = build_parts(spec, prepared, ctx.device)
            step_s = Stepper(parts).seconds_per_step(steps, ctx.device, warmup=3)
            start = time.perf_counter()
            evaluate(parts.network.model, parts.data, "test", parts.eval_batch_size)
            sync(ctx.device)
            eval_img_s = parts.data.size("test") / (time.perf_counter() - start)
            peak = torch.cuda.max_memory_allocated() / 2**30 if ctx.device.type == "cuda" else None
            rows.append({"model": label, "image_size": size, "batch_size": batch,
                         "params_m": round(parts.network.num_params / 1e6, 2),
                         "train_img_s": round(batch / step_s), "eval_img_s": round(eval_img_s),
                         "peak_gb": round(peak, 2) if peak is not None else None})
            del parts
        except Exception as e:  # one model's failure is a row, not the end of the section
            rows.append({"model": label, "error": f"{e.__class__.__name__}: {e}"[:300]})
    return {"ok": all("error" not in r for r in rows), "rows": rows}


SECTIONS = {
    "environment": environment,
    "determinism": determinism,
    "sync_free": sync_free,
    "cuda_tests": cuda_tests,
    "overhead": overhead,
    "seeds_loop": seeds_loop,
    "pack": pack,
    "models": models,
}


class Check:
    def __init__(self, args):
        self.quick = args.quick
        self.threads = args.threads
        wanted = args.device
        if wanted == "auto":
            wanted = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(wanted)
        self.out = Path(args.out)
        self.budget = args.budget_s
        self.start = time.perf_counter()
        self.results: dict = {}

    def quiet(self, spec: RunSpec) -> dict:
        """train()'s keywords for a run whose epochs the check need not print."""
        return {"threads": self.threads,
                "progress": Progress(spec.train["epochs"], stream=open(os.devnull, "w"))}

    def out_of_time(self, reserve: float = 0.0) -> bool:
        return time.perf_counter() - self.start + reserve > self.budget

    def run(self, names) -> dict:
        for name in names:
            if self.out_of_time():
                self.results[name] = {"ok": None, "skipped": "out of time"}
                continue
            t0 = time.perf_counter()
            try:
                result = SECTIONS[name](self)
            except Exception as e:
                result = {"ok": False, "error": f"{e.__class__.__name__}: {e}",
                          "traceback": traceback.format_exc()[-3000:]}
            result["seconds"] = round(time.perf_counter() - t0, 1)
            self.results[name] = result
            self.write()
            print(f"{name}: {summary_line(result)}", flush=True)
        return self.results

    def write(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "gpu_check.json").write_text(json.dumps(self.results, indent=1) + "\n")
        (self.out / "gpu_check.md").write_text(markdown(self.results))


def summary_line(result: dict) -> str:
    verdict = {True: "ok", False: "FAILED", None: "measured"}[result.get("ok")]
    extra = result.get("error") or result.get("summary") or result.get("skipped") or ""
    return f"{verdict} ({result.get('seconds', 0)} s) {extra}".strip()


def markdown(results: dict) -> str:
    lines = ["# GPU check (benchmarks/gpu_check.py)", ""]
    for name, result in results.items():
        lines.append(f"## {name}: {summary_line(result)}")
        rows = result.get("rows")
        if rows:
            keys = list(dict.fromkeys(k for r in rows for k in r))
            lines += ["", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
            lines += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in rows]
        other = {k: v for k, v in result.items()
                 if k not in ("rows", "ok", "seconds", "traceback")}
        lines += ["", *(f"- {k}: {v}" for k, v in other.items()), ""]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: the code paths only")
    parser.add_argument("--out", default="gpu-check", help="folder for gpu_check.{json,md}")
    parser.add_argument("--budget-s", type=float, default=480.0,
                        help="stop starting sections after this many seconds (default 480)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--sections", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    args = parser.parse_args(argv)
    os.environ.setdefault("IMGZOO_TENSORBOARD", "0")  # the check's runs need no live files
    results = Check(args).run(args.sections)
    failed = [name for name, r in results.items() if r.get("ok") is False]
    print(f"wrote {Path(args.out) / 'gpu_check.md'}; failed: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
