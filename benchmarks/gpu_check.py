"""The GPU acceptance check: one command, a few minutes on one GPU, one JSON and one Markdown file.

    PYTHONPATH=src python benchmarks/gpu_check.py --out gpu-check/           # on a GPU machine
    python benchmarks/gpu_check.py --quick --device cpu --out /tmp/check     # the same code, tiny

Runs from the source tree with the machine's own torch. Each section is timed and written to
`gpu_check.json` and `gpu_check.md` as soon as it ends (a check cut short keeps what it has); a
section that fails records its error and the next one runs; past `--budget-s` no section starts
(the check says where it stopped, and `--sections` runs the rest later). The targets it judges
are a YAML block of docs/performance.md. In order of what they are worth:

- profile: torch.profiler over training steps of the studies' small models, eager and as a CUDA
  graph: the host's time to issue a step, the CPU time in CUDA's launch calls, kernels per step,
  the GPU's busy time and its idle gaps (where a step's fixed cost is);
- step: imgzoo's real step with `cuda_graphs: false` (the eager step) against `auto` (a CUDA graph
  where the step can be captured), alternating rounds, medians: the targets of docs/performance.md;
- pack: total training images/s of K = 1, 2, 4, 8 runs side by side on the device, each in its
  own process (`benchmarks/pack_throughput.py`, as a packed SLURM job runs them), for resnet18
  and a study-3 transformer, and resnet18 again under MPS where the machine has it;
- determinism: the same run twice with `deterministic: true` gives identical logs, and a run
  stopped mid-epoch and resumed equals the uninterrupted one (a convnet and attention models);
  with `deterministic: false`, whether two runs differ;
- sync_free: one training step under `torch.cuda.set_sync_debug_mode("error")` (no host-device
  wait anywhere in the step: batching, augmentation, model, optimizer);
- cuda_tests: the suite's tests marked `cuda` (skipped on the CPU);
- seeds_loop: the write-ups' way of training (PIL images, per-image transforms, DataLoader
  workers), fp32 as they ran it and with bf16 autocast + pinned memory (like with like), against
  imgzoo's step with the same augmentation;
- overhead: resnet18 on a CIFAR-10-sized set (45,000 / 5,000 / 10,000 images at 32 px) through
  imgzoo's step against a bare loop written for speed over the same GPU-resident tensors (same
  model, bf16 autocast, channels-last, fused AdamW; a CUDA graph where imgzoo's is one);
  deterministic on and off, CUDA graphs off and on, compile off and on;
- models: training and evaluation images/s and peak memory of the studies' models at their
  image sizes and batch sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import yaml

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

ROUNDS = 5  # alternating timed series (imgzoo's step and the bare loop, eager and graphed)
# The targets: a YAML block of the performance page, their one home.
TARGETS_DOC = REPO / "docs" / "performance.md"
TARGETS_BLOCK = re.compile(r"```yaml\n# targets of benchmarks/gpu_check\.py\n(.*?)```", re.S)
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
# The steps the check profiles and judges (labels as the targets block names them).
STEP_MODELS = [
    ("resnet18 b128", "resnet18", {}, 32, 10, 128),
    ("resnet18 b64 (study 1)", "resnet18", {}, 32, 10, 64),
    ("vitn-12x256 (study 2)", "vitn-12x256-8x8", {}, 32, 100, 128),
    ("tnt (study 3)", "tnt-study3", {}, 32, 10, 64),
    ("perceiver medium (study 3)", "perceiver-medium", {}, 32, 10, 64),
]


def load_targets(path: Path = TARGETS_DOC) -> dict:
    """The targets block of docs/performance.md."""
    found = TARGETS_BLOCK.search(path.read_text())
    if not found:
        raise ValueError(f"{path}: no '# targets of benchmarks/gpu_check.py' YAML block")
    return yaml.safe_load(found.group(1))


def spec_for(model: str, model_args: dict, *, image_size: int, **train) -> RunSpec:
    """A run spec as a study resolves it: the schema's training defaults plus `train`."""
    return spec_of(model, model_args, data={"image_size": image_size}, **train)


def with_train(spec: RunSpec, **train) -> RunSpec:
    """`spec` with some training keys changed."""
    return spec.with_settings(replace(spec.settings, train={**spec.train, **train}))


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


def alternating(first, second, n: int, device: torch.device) -> list[tuple[float, float]]:
    """(seconds per call of first, of second) over ROUNDS rounds of `n` calls each, every round
    in the reverse order of the one before: a GPU's clocks and a shared host drift by more than
    the differences measured (one 0.5 s series each once gave ratios of 0.78 to 1.20)."""
    rounds = []
    for r in range(ROUNDS):
        if r % 2 == 0:
            a = timed_steps(first, n, device)
            b = timed_steps(second, n, device)
        else:
            b = timed_steps(second, n, device)
            a = timed_steps(first, n, device)
        rounds.append((a, b))
    return rounds


def endless(batches_of_epoch):
    epoch = 1
    while True:
        yield from batches_of_epoch(epoch)
        epoch += 1


class Stepper:
    """imgzoo's training step as a run takes it (`RunParts.graphed_step`: a CUDA graph where the
    spec's `cuda_graphs` and the device allow, captured here), on its own batches, epoch after
    epoch, one call at a time."""

    def __init__(self, parts):
        self.parts = parts
        self.notes: list[str] = []  # why a step asked to be a graph stays eager
        self.capture_s = parts.graphed_step.prepare(self.notes.append)
        self.graphed = parts.graphed_step.graph is not None
        self.batches = endless(parts.graphed_step.batches)
        self.index = 0

    def __call__(self) -> None:
        self.parts.graphed_step(*next(self.batches), self.index)
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


def case_parts(ctx, case, **train):
    """A run's parts for one of STEP_MODELS / QUICK_MODELS, on random data, with `train` keys."""
    _, model, args, size, classes, batch = case
    prepared = random_prepared((max(8 * batch, 1024), 64, 64), size, classes)
    spec = spec_for(model, args, image_size=size, batch_size=batch, augment="standard", **train)
    configure(ctx.device, ctx.threads, deterministic=spec.train["deterministic"])
    return build_parts(spec, prepared, ctx.device)


# CUDA's calls that launch work (what a launch-bound step spends its host time in).
LAUNCH_CALLS = ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx",
                "cudaGraphLaunch", "cudaMemcpyAsync", "cudaMemsetAsync")


def profile_steps(step_once, n: int, device: torch.device) -> dict:
    """torch.profiler over `n` calls of `step_once()`, per step: the wall time and the host's
    time to issue the step (both under the profiler, which slows the host), the aten operators
    called, CUDA's launch calls and the CPU time inside them, and on a GPU the kernels, the GPU's
    busy time (kernels and copies, overlaps counted once), its idle share between the first and
    the last kernel, and the longest idle gap."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    sync(device)
    with torch_profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(n):
            step_once()
        issued = time.perf_counter() - start
        sync(device)
        wall = time.perf_counter() - start
    events = prof.events()
    cpu = [e for e in events if e.device_type == DeviceType.CPU]
    launches = [e for e in cpu if e.name in LAUNCH_CALLS]
    row = {
        "wall_ms": round(wall / n * 1e3, 2),
        "host_issue_ms": round(issued / n * 1e3, 2),
        "aten_ops": round(sum(e.name.startswith("aten::") for e in cpu) / n),
        "launch_calls": round(len(launches) / n),
        "launch_cpu_ms": round(sum(e.time_range.elapsed_us() for e in launches) / n / 1e3, 2),
    }
    gpu = sorted((e.time_range.start, e.time_range.end, e.name) for e in events
                 if e.device_type == DeviceType.CUDA)
    if gpu:
        busy, gaps, reached = 0.0, [], gpu[0][0]
        for begin, end, _ in gpu:
            if begin > reached:
                gaps.append(begin - reached)
            busy += max(0.0, end - max(begin, reached))
            reached = max(reached, end)
        window = reached - gpu[0][0]
        row.update(
            kernels=round(sum(not name.startswith(("Memcpy", "Memset")) for _, _, name in gpu) / n),
            gpu_busy_ms=round(busy / n / 1e3, 2),
            gpu_idle_share=round(1 - busy / window, 3) if window else None,
            longest_gap_us=round(max(gaps, default=0.0), 1),
        )
    return row


def profile(ctx) -> dict:
    """Where a step's time goes, eager and as a CUDA graph (torch.profiler)."""
    steps = 2 if ctx.quick else 10
    rows = []
    for case in QUICK_MODELS if ctx.quick else STEP_MODELS:
        for graphs in (False, "auto"):
            row = {"model": case[0], "batch": case[5], "cuda_graphs": graphs}
            if ctx.out_of_time(reserve=20):
                rows.append({**row, "skipped": "out of time"})
                continue
            try:
                stepper = Stepper(case_parts(ctx, case, cuda_graphs=graphs))
                step_s = stepper.seconds_per_step(steps, ctx.device, warmup=3)
                rows.append({**row, "graphed": stepper.graphed, "step_ms": round(step_s * 1e3, 2),
                             **profile_steps(stepper, steps, ctx.device)})
                del stepper
            except Exception as e:  # one model's failure is a row, not the end of the section
                rows.append({**row, "error": f"{e.__class__.__name__}: {e}"[:300]})
    return {"ok": None if not any("error" in r for r in rows) else False, "rows": rows}


def step(ctx) -> dict:
    """The real step eager (`cuda_graphs: false`, the default) against `auto`, alternating
    rounds, medians; judged against the targets block (on CUDA)."""
    targets = load_targets()["step"]
    steps = 3 if ctx.quick else 20
    rows = []
    for case in QUICK_MODELS if ctx.quick else STEP_MODELS:
        label, batch = case[0], case[5]
        if ctx.out_of_time(reserve=30):
            rows.append({"model": label, "skipped": "out of time"})
            continue
        try:
            eager = Stepper(case_parts(ctx, case, cuda_graphs=False))
            graphed = Stepper(case_parts(ctx, case, cuda_graphs="auto"))
            for _ in range(3):
                eager()
                graphed()
            rounds = alternating(eager, graphed, steps, ctx.device)
            eager_s = float(np.median([r[0] for r in rounds]))
            graphed_s = float(np.median([r[1] for r in rounds]))
            row = {"model": label, "batch": batch, "graphed": graphed.graphed,
                   "capture_s": round(graphed.capture_s, 2),
                   "eager_img_s": round(batch / eager_s), "img_s": round(batch / graphed_s),
                   "speedup": round(eager_s / graphed_s, 2), "note": "; ".join(graphed.notes)}
            row.update(judge_step(row, targets.get(label)))
            rows.append(row)
            del eager, graphed
        except Exception as e:
            rows.append({"model": label, "error": f"{e.__class__.__name__}: {e}"[:300]})
    judged = [r["met"] for r in rows if "met" in r]
    ok = (all(judged) if judged else None) if ctx.device.type == "cuda" else None
    return {"ok": False if any("error" in r for r in rows) else ok,
            "deterministic": True, "rows": rows}


def judge_step(row: dict, target: dict | None) -> dict:
    """The row's target (`img_s` at least, or `speedup` over the eager step at least) and
    whether it was met."""
    if not target:
        return {}
    if "img_s" in target:
        return {"target": f">= {target['img_s']} img/s", "met": row["img_s"] >= target["img_s"]}
    return {"target": f">= {target['speedup']}x eager", "met": row["speedup"] >= target["speedup"]}


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
        fast = with_train(spec, deterministic=False)
        for name in ("fast1", "fast2"):
            runs[name] = train(fast, data_path, root / f"{model}-{name}", **ctx.quiet(spec))
        # The same run with its step eager: whether replaying a graph trains the same numbers.
        eager = with_train(spec, cuda_graphs=False)
        runs["eager"] = train(eager, data_path, root / f"{model}-eager", **ctx.quiet(spec))

        def same(x, y):
            return all(np.array_equal(x.epochs[k], y.epochs[k]) for k in EXACT) and \
                np.array_equal(x.steps["loss"], y.steps["loss"])

        rows.append({
            "model": model,
            "repeat_identical": same(runs["a"], runs["b"]),
            "stopped_mid_epoch": stopped,
            "resume_identical": same(runs["a"], runs["resumed"]),
            "fast_mode_repeat_identical": same(runs["fast1"], runs["fast2"]),
            "capture_time_s": round(float(runs["a"].attrs["capture_time_s"]), 2),
            "graph_equals_eager": same(runs["a"], runs["eager"]),
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
        rows.append({"model": model, "augment": aug, "graphed": step.graphed,
                     "sync_free": not error, "error": error})
    return {"ok": all(r["sync_free"] for r in rows), "rows": rows}


def cuda_tests(ctx) -> dict:
    # A GPU machine may lack what some test modules import (Snakemake, say): run what collects.
    command = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider",
               "--continue-on-collection-errors", str(REPO / "tests")]
    try:
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                              timeout=max(60.0, ctx.remaining()))
    except subprocess.TimeoutExpired:
        return {"ok": None, "skipped": "out of time while the tests ran"}
    lines = [ln for ln in done.stdout.splitlines() if ln.strip()]
    failures = [ln for ln in lines if ln.startswith("FAILED")]
    return {"ok": not failures and "passed" in (lines[-1] if lines else "")
            if ctx.device.type == "cuda" else done.returncode in (0, 5),
            "summary": lines[-1] if lines else "", "failures": failures,
            "not_collected": [ln for ln in lines if ln.startswith("ERROR")]}


class BareLoop:
    """Training written for speed alone over the same GPU-resident tensors: a gather, the input
    arithmetic, forward and backward under bf16 autocast, a fused optimizer; nothing else. With
    `graphed` (on CUDA), all of it captured as one CUDA graph, as imgzoo's graphed step is."""

    def __init__(self, spec: RunSpec, parts, device: torch.device, compile: bool, graphed: bool):
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
        self.graph = self._capture() if graphed and device.type == "cuda" else None

    def train(self, idx: torch.Tensor) -> None:
        x = self.x.index_select(0, idx).float().div_(255).sub_(self.mean).div_(self.std)
        x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.device):
            loss = torch.nn.functional.cross_entropy(self.net(x), self.y.index_select(0, idx))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def step(self) -> None:
        if (self.i + 1) * self.batch > len(self.order):
            self.i = 0
        idx = self.order[self.i * self.batch:(self.i + 1) * self.batch]
        self.i += 1
        if self.graph is None:
            self.train(idx)
        else:
            self.idx.copy_(idx)
            self.graph.replay()

    def _capture(self) -> torch.cuda.CUDAGraph:
        self.idx = self.order[:self.batch].clone()
        for group in self.opt.param_groups:
            group["lr"] = torch.tensor(group["lr"], device=self.device)
            group["capturable"] = True
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                self.train(self.idx)
        torch.cuda.current_stream().wait_stream(side)
        self.opt.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.train(self.idx)
        return graph


def overhead(ctx) -> dict:
    target = load_targets()["bare_loop_ratio_max"]
    sizes = (2000, 200, 200) if ctx.quick else (45_000, 5_000, 10_000)
    steps = 5 if ctx.quick else 40
    prepared = random_prepared(sizes, 32, 10)
    model, args = ("mlp", {"hidden": [64]}) if ctx.quick else ("resnet18", {})
    # (deterministic, compile, cuda_graphs): today's default first, then the new one
    configs = [(True, False, False), (True, False, "auto"), (False, False, "auto")]
    if ctx.device.type == "cuda" or not ctx.quick:
        configs += [(True, True, "auto")]
    rows = []
    for deterministic, compiled, graphs in configs:
        row = {"deterministic": deterministic, "compile": compiled, "cuda_graphs": graphs}
        if ctx.out_of_time(reserve=100 if compiled else 20):
            rows.append({**row, "skipped": True})
            continue
        spec = spec_for(model, args, image_size=32, batch_size=128, augment="none",
                        compile=compiled, deterministic=deterministic, cuda_graphs=graphs)
        configure(ctx.device, ctx.threads, deterministic=deterministic)
        parts = build_parts(spec, prepared, ctx.device)
        start = time.perf_counter()
        step = Stepper(parts)  # captures the graph (and compiles) where asked
        first_step = timed_steps(step, 1, ctx.device) + time.perf_counter() - start
        bare = BareLoop(spec, parts, ctx.device, compiled, graphed=step.graphed)
        for _ in range(6):
            step()
            bare.step()
        rounds = alternating(step, bare.step, steps, ctx.device)
        imgzoo_s = float(np.median([r[0] for r in rounds]))
        bare_s = float(np.median([r[1] for r in rounds]))
        # the run's epoch: evaluation of val, test and the train subset at the run's batch
        start = time.perf_counter()
        for split in ("val", "test", "train_subset"):
            evaluate(parts.network.model, parts.data, split, parts.eval_batch_size)
        sync(ctx.device)
        eval_s = time.perf_counter() - start
        rows.append({
            **row,
            "graphed": step.graphed,
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
        "ok": all(r["overhead_ratio"] <= target for r in measured) if ctx.device.type == "cuda"
        else None,
        "target": f"overhead_ratio <= {target}",
        "rows": rows,
        "imgzoo_standard_augmentation_img_s": round(128 / standard_s),
    }


def seeds_loop(ctx) -> dict:
    from reference_loop import ReferenceLoop

    target = load_targets()["seeds_loop_speedup_min"]
    sizes = (2000, 200, 200) if ctx.quick else (45_000, 5_000, 10_000)
    steps = 3 if ctx.quick else 30
    prepared = random_prepared(sizes, 32, 10)
    model, args = ("mlp", {"hidden": [64]}) if ctx.quick else ("resnet18", {})
    spec = spec_for(model, args, image_size=32, batch_size=128, augment="standard")
    configure(ctx.device, ctx.threads, deterministic=True)
    stepper = Stepper(build_parts(spec, prepared, ctx.device))
    imgzoo_s = stepper.seconds_per_step(steps, ctx.device)
    rows = [{"loop": "imgzoo (batched augmentation on the device, bf16 on CUDA)",
             "graphed": stepper.graphed, "img_s": round(128 / imgzoo_s)}]
    for label, amp in (("write-ups' loop as written (fp32, pageable copies)", False),
                       ("write-ups' loop with bf16 autocast and pinned memory", True)):
        if amp and ctx.device.type != "cuda":
            continue
        loop = ReferenceLoop(spec, prepared, ctx.device, num_workers=2, amp=amp)
        times = loop.steps(steps, skip=5)
        rows.append({"loop": label, "img_s": round(128 / float(np.median(times)))})
    for row in rows[1:]:
        row["imgzoo_speedup"] = round(rows[0]["img_s"] / row["img_s"], 2)
    ok = min(r["imgzoo_speedup"] for r in rows[1:]) >= target
    return {"ok": ok if ctx.device.type == "cuda" else None,
            "target": f"imgzoo_speedup >= {target}", "model": model, "augment": "standard",
            "rows": rows}


def pack(ctx) -> dict:
    """K = 1, 2, 4, 8 runs side by side (each its own process): resnet18 at study 1's batch, a
    study-3 transformer at its batch, and resnet18 again under MPS where the machine has it."""
    import pack_throughput

    target = load_targets()["pack4_speedup_min"]
    if ctx.quick:
        series = [("mlp-small", 8, 32, False), ("mlp-small", 8, 32, True)]
        common = ["--pack", "1", "2", "--seconds", "1", "--warmup", "2"]
    else:
        series = [("resnet18", 32, 64, False), ("tnt-study3", 32, 64, False),
                  ("resnet18", 32, 64, True)]
        common = ["--pack", "1", "2", "4", "8", "--seconds", "4", "--warmup", "3"]
    results, rows = [], []
    for model, size, batch, mps in series:
        argv = [*common, "--model", model, "--image-size", str(size), "--batch-size", str(batch),
                "--device", ctx.device.type, "--threads", str(ctx.threads or 1)]
        if mps:
            argv.append("--mps")
        result = pack_throughput.measure(pack_throughput.parse(argv),
                                         out_of_time=lambda: ctx.out_of_time(reserve=25))
        results.append({k: v for k, v in result.items() if k != "rows"})
        rows += [{"model": model, "batch": batch, "mps": result["mps"], **r}
                 for r in result["rows"]]
    four = [r["speedup"] for r in rows if r["model"] == "resnet18" and r["pack"] == 4]
    ok = max(four) >= target if four and ctx.device.type == "cuda" else None
    return {"ok": ok, "target": f"resnet18 b64, pack 4: speedup >= {target}",
            "series": results, "rows": rows}


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
            stepper = Stepper(parts)
            step_s = stepper.seconds_per_step(steps, ctx.device, warmup=3)
            start = time.perf_counter()
            evaluate(parts.network.model, parts.data, "test", parts.eval_batch_size)
            sync(ctx.device)
            eval_img_s = parts.data.size("test") / (time.perf_counter() - start)
            peak = torch.cuda.max_memory_allocated() / 2**30 if ctx.device.type == "cuda" else None
            rows.append({"model": label, "image_size": size, "batch_size": batch,
                         "params_m": round(parts.network.num_params / 1e6, 2),
                         "graphed": stepper.graphed, "capture_s": round(stepper.capture_s, 2),
                         "train_img_s": round(batch / step_s), "eval_img_s": round(eval_img_s),
                         "peak_gb": round(peak, 2) if peak is not None else None})
            del parts, stepper
        except Exception as e:  # one model's failure is a row, not the end of the section
            rows.append({"model": label, "error": f"{e.__class__.__name__}: {e}"[:300]})
    return {"ok": all("error" not in r for r in rows), "rows": rows}


SECTIONS = {  # in order of what they are worth to the next GPU session
    "environment": environment,
    "profile": profile,
    "step": step,
    "pack": pack,
    "determinism": determinism,
    "sync_free": sync_free,
    "cuda_tests": cuda_tests,
    "seeds_loop": seeds_loop,
    "overhead": overhead,
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
        return self.remaining() < reserve

    def remaining(self) -> float:
        """Seconds of the budget left."""
        return self.budget - (time.perf_counter() - self.start)

    def stopped(self) -> str:
        """Where the budget stopped the check, and how to run the rest ("" if it did not)."""
        left = [name for name, r in self.results.items() if r.get("skipped") == "out of time"]
        if not left:
            return ""
        spent = time.perf_counter() - self.start
        return (f"out of time after {spent:.0f} s (--budget-s {self.budget:.0f}): stopped before "
                f"'{left[0]}'; the rest: --sections {' '.join(left)}")

    def run(self, names) -> dict:
        for name in names:
            if self.out_of_time():
                self.results[name] = {"ok": None, "skipped": "out of time"}
                self.write()
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
    check = Check(args)
    results = check.run(args.sections)
    if check.stopped():
        print(check.stopped(), flush=True)
    failed = [name for name, r in results.items() if r.get("ok") is False]
    print(f"wrote {Path(args.out) / 'gpu_check.md'}; failed: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
