"""The training step, evaluation and memory of imgzoo per model, against a reference loop.

    python benchmarks/train_step.py [--models mlp mixer resnet18 vit-small] [--out bench.csv]

Per model, on an in-memory `synthetic` dataset of the real shape, after warm-up, medians of:
- the real training step: `imgzoo.training.step.train_epoch` over `DeviceData.batches` itself
  (indexing, augmentation, normalisation, forward, backward, optimizer, the loop's bookkeeping),
  timed step by step between the batches it takes;
- the model alone: `TrainStep` (forward + loss + backward + optimizer) on batches made
  beforehand, so (step - model) / step is the share of the step spent outside the model (a noisy
  difference of two medians on a busy machine: the input path is also timed directly);
- the input path alone (`DeviceData.train_batch`: index the uint8 batch, augment, normalise);
- evaluation (`imgzoo.training.evaluate.evaluate`, inference mode, the eval batch size);
- optionally the same model trained by the reference loop (`reference_loop.py`, beside this
  script), written the way the three write-ups do it, in this process and this run;
  `speedup` = imgzoo / reference.
The timed series run in alternating rounds (imgzoo, model alone, reference), and the shares and
ratios are taken within each round, then their median over the rounds: a change of the machine's
load between rounds cannot pass for a difference between the series.

Peak memory is the process RSS sampled during each phase (imports included) and, on CUDA, the
allocator's max allocated during imgzoo's phases. The parts are built from the same spec a run
gets, with the run's own public builders: only the epochs are shorter. The targets it judges are
read from docs/performance.md. docs/performance.md says how to read the numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gc
import io
import itertools
import json
import math
import os
import platform
import re
import resource
import socket
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml
from specs import spec_of  # beside this script

from imgzoo.atomic import atomic_output, atomic_write_text
from imgzoo.errors import ConfigError, ImgzooError
from imgzoo.spec import RunSpec

REPO = Path(__file__).resolve().parents[1]
# The targets: a YAML block in the performance page, so that they have one home.
TARGETS_DOC = REPO / "docs" / "performance.md"
TARGETS_BLOCK = re.compile(r"```yaml\n# targets of benchmarks/train_step\.py\n(.*?)```", re.S)

DEFAULT_MODELS = ("mlp", "mixer", "resnet18", "vit-small")

# Bench names that are not catalog names: a family plus model_args. Any name a study's `model:`
# takes can be benchmarked as well (a family, a preset, `timm/<name>`, `file.py:callable`).
BENCH_MODELS = {
    # the ViT size the python-stack notes measured (timm's vit_tiny layout at patch 4: 64 tokens)
    "vit-small": ("vit", {"patch_size": 4, "dim": 192, "depth": 6, "heads": 3, "dropout": 0.0}),
}

# The split sizes of CIFAR-10 as imgzoo prepares it (val_fraction 0.1) and the per-epoch
# evaluations a run makes (val, test and the 200-image train subset): the eval share of an epoch.
CIFAR10_EPOCH = {"train": 45_000, "eval": 5_000 + 10_000 + 200}



def load_targets(path: Path = TARGETS_DOC) -> dict:
    """The targets block of docs/performance.md: outside_share_max, speedup_min (per family),
    speedup_min_any, eval_share_max."""
    found = TARGETS_BLOCK.search(path.read_text())
    if not found:
        raise ConfigError(f"{path}: no '# targets of benchmarks/train_step.py' YAML block")
    return yaml.safe_load(found.group(1))


# One row per model. None where a value does not apply (no reference run, no CUDA).
COLUMNS = (
    "model",  # bench name
    "family",
    "model_args",  # JSON
    "params",
    "device",
    "image_size",
    "batch_size",
    "warmup",  # untimed steps before each timed series
    "steps",  # timed steps per series
    "train_step_ms",  # median real training step
    "train_img_s",  # batch_size / train_step_ms
    "model_step_ms",  # median forward + backward + optimizer on pre-made batches
    "input_ms",  # median indexing + augmentation + normalisation of one batch
    "outside_share",  # (step - model) / step, median over the rounds of each round's medians
    "outside_share_noise",  # its median absolute deviation over the rounds: what the load adds
    "inputs_share",  # input_ms / train_step_ms: the direct part of the share, free of that noise
    "train_step_cpu_ms",  # the same three in process CPU time: what a busy machine cannot
    "model_step_cpu_ms",  # inflate by making the process wait for a core (exact with one
    "outside_share_cpu",  # torch thread; with more, threads waiting for each other count)
    "eval_batch_size",  # the batch evaluate used (`auto` resolved for the device)
    "eval_img_s",  # evaluate on the test split
    "eval_share_cifar10",  # eval time / epoch time for CIFAR-10 split sizes
    "rss_peak_mb",  # process RSS peak during imgzoo's phases
    "cuda_max_alloc_mb",
    "ref_step_ms",  # median reference-loop step
    "ref_img_s",
    "ref_rss_peak_mb",  # main process only (the DataLoader workers are separate processes)
    "speedup",  # imgzoo / reference img/s, median over the rounds of each round's ratio
    "ref_cpu_ms",  # CPU time per reference step, its DataLoader workers' included
    "speedup_cpu",  # ref_cpu_ms / train_step_cpu_ms: the CPU each needs for a step
)
META_COLUMNS = (
    "host",
    "platform",
    "cpu",
    "cpu_flags",
    "cpu_count",
    "threads",
    "python",
    "torch",
    "torchvision",
    "timm",
    "device_name",
    "loadavg_start",
    "loadavg_end",
    "date",
    "command",
)


# ---- measurement helpers ----------------------------------------------------------------------


def _hwm_mb() -> float | None:
    """The process's peak RSS since the last reset (Linux's VmHWM), or None where unknown."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class PeakRSS:
    """The process's peak RSS while the block runs (imports and all).

    On Linux the kernel keeps the high-water mark and lets a process reset its own
    (/proc/self/clear_refs, "5"), which costs the timed code nothing; a sampling thread would
    take the GIL from the training loop every few milliseconds. Elsewhere: the lifetime peak.
    """

    def __enter__(self):
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass
        self.peak = 0.0
        return self

    def __exit__(self, *exc):
        peak = _hwm_mb()
        if peak is None:  # not Linux: ru_maxrss is in KiB on Linux, bytes on macOS
            scale = 2**20 if sys.platform == "darwin" else 2**10
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale
        self.peak = peak


def _median(values) -> float:
    return float(statistics.median(values)) if values else math.nan


def _mad(values) -> float | None:
    """Median absolute deviation; None for fewer than 3 values, which cannot show a spread."""
    if len(values) < 3:
        return None
    mid = _median(values)
    return _median([abs(v - mid) for v in values])


def _now() -> tuple[float, float]:
    """(wall, CPU) seconds. On a shared machine wall time counts the waits for a core too; the
    process's CPU time does not (with one torch thread it is what the step costs)."""
    return time.perf_counter(), time.process_time()


def _cpu_with_children() -> float:
    """CPU seconds of this process and of its children that have ended (DataLoader workers)."""
    own = time.process_time()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own + children.ru_utime + children.ru_stime


def _since(a: tuple[float, float], b: tuple[float, float] | None = None) -> tuple[float, float]:
    b = b or _now()
    return b[0] - a[0], b[1] - a[1]


def _loadavg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return ""


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _cpu_flags() -> str:
    """The vector extensions that decide CPU speed (bf16 needs avx512_bf16 or amx to be fast)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
                return " ".join(f for f in wanted if f in flags)
    return ""


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def resolve_model(name: str, model_args: dict | None = None) -> tuple[str, dict]:
    """(family or preset, model_args) of a bench name; ConfigError for an unknown one."""
    from imgzoo.errors import unknown_name
    from imgzoo.models import catalog

    if name in BENCH_MODELS:
        family, args = BENCH_MODELS[name]
        return family, {**args, **(model_args or {})}
    if name in catalog.FAMILIES or name in catalog.PRESETS or catalog.is_open(name):
        return name, dict(model_args or {})
    raise unknown_name("model", name, [*BENCH_MODELS, *catalog.known_models()])


def _spec(name: str, model_args: dict, settings: dict) -> RunSpec:
    """The run spec a real run of this model would get (config defaults + the bench's keys)."""
    family, args = resolve_model(name, model_args)
    train = {
        "epochs": 1,
        "batch_size": settings["batch_size"],
        "augment": settings["augment"],
        "device": settings["device"],
        "compile": settings["compile"],
    }
    if settings["eval_batch_size"]:
        train["eval_batch_size"] = settings["eval_batch_size"]
    return spec_of(family, args, data=settings["data"], **train)


# ---- one model --------------------------------------------------------------------------------


def _timed(batches, marks: list, sync):
    """`batches`, with a clock read (after a device sync) at the start and each time the loop
    comes back for the next batch: consecutive marks bound one whole step of the loop."""
    sync()
    marks.append(_now())
    for batch in batches:
        yield batch
        sync()
        marks.append(_now())


def _train_steps(parts, epochs, n_steps: int, progress, sync) -> list[tuple[float, float]]:
    """Durations of `n_steps` real training steps, run as short epochs of the real loop.

    An epoch of k steps takes the first k batches of a real epoch; k stays below the epoch's
    step count, so every timed batch is a full one (the last batch of an epoch takes the rest of
    the split). A step lasts from the loop asking for its batch (made then: index, augment,
    normalise) to the loop asking for the next; an epoch's first step also carries the epoch's
    seeding and shuffle (the medians do not feel it), its end (the losses read back) is outside.
    """
    from imgzoo.training.step import train_epoch

    per_epoch = max(1, parts.data.steps_per_epoch - 1)
    durations: list[tuple[float, float]] = []
    while len(durations) < n_steps:
        k = min(per_epoch, n_steps - len(durations))
        marks: list[tuple[float, float]] = []
        # the run's step: a CUDA graph where train.cuda_graphs and the device allow
        step = parts.graphed_step
        batches = _timed(itertools.islice(step.batches(next(epochs)), k), marks, sync)
        train_epoch(step, batches, first_step=0, total_steps=k, progress=progress)
        durations += [_since(a, b) for a, b in itertools.pairwise(marks)]
    return durations


def bench_model(name: str, model_args: dict, data_path: Path, settings: dict, log) -> dict:
    import torch

    from imgzoo import data
    from imgzoo.progress import Progress
    from imgzoo.train import build_parts
    from imgzoo.training.device import configure, select_device, synchronize
    from imgzoo.training.evaluate import evaluate

    spec = _spec(name, model_args, settings)
    device = select_device(spec.train["device"])
    cuda = device.type == "cuda"
    sync = lambda: synchronize(device)  # noqa: E731
    quiet = Progress(1, stream=io.StringIO())
    row: dict = {c: None for c in COLUMNS}
    peaks = {"imgzoo": 0.0, "reference": 0.0, "cuda": 0.0}

    @contextlib.contextmanager
    def phase(kind):
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        with PeakRSS() as rss:
            yield
        peaks[kind] = max(peaks[kind], rss.peak)
        if cuda and kind == "imgzoo":
            peaks["cuda"] = max(peaks["cuda"], torch.cuda.max_memory_allocated() / 2**20)

    with phase("imgzoo"):
        # The parts a run builds, from the same spec; the bench writes no checkpoint or log.
        configure(device, settings["threads"])
        prepared = data.load(data_path)
        parts = build_parts(spec, prepared, device)
        parts.graphed_step.prepare(note=log)  # captures the step as a run does (CUDA)
        epochs = itertools.count(1)  # every short epoch draws its own (seed, epoch) batches
        train_data, step, network = parts.data, parts.step, parts.network
        bs = spec.train["batch_size"]
        n_train = train_data.size("train")
        if n_train < bs:
            raise ConfigError(
                f"bench: the synthetic train split has {n_train} images, fewer than one "
                f"batch of {bs}: raise --train-size"
            )
        row.update(
            model=name,
            family=spec.settings.family,
            model_args=json.dumps(spec.settings.model_args, sort_keys=True),
            params=network.num_params,
            device=str(device),
            image_size=prepared.image_size,
            batch_size=bs,
        )
        # Warm-up, and the step time that sizes the timed series.
        warm = _train_steps(parts, epochs, settings["warmup"], quiet, sync)
        steps = settings["steps"] or _auto_steps(warm[-1][0], settings)
        row.update(warmup=settings["warmup"], steps=steps)
        log(f"{name}: warm-up step {warm[-1][0] * 1e3:.0f} ms -> {steps} timed steps per series")

        # Pre-made batches for the model alone: the inputs a training step would make.
        gen = torch.Generator(device=device).manual_seed(1)
        batches = []
        for _ in range(min(4, max(1, n_train // bs))):
            idx = torch.randperm(n_train, generator=gen, device=device)[:bs]
            batches.append(train_data.train_batch(idx, gen))
        network.net.train()
        step(*batches[0], 0)  # warm-up

    ref = None
    if settings["reference"]:
        from reference_loop import ReferenceLoop  # beside this script; imports torchvision

        with phase("reference"):
            ref = ReferenceLoop(spec, prepared, device, settings["ref_workers"])
            ref.steps(max(2, settings["warmup"]))  # workers start, first batches
        # Each round starts the loader's workers afresh: the first steps wait for them.
        skip = 1 if warm[-1][0] > 1.0 else 3

    # The series alternate in rounds, so that a change of machine load hits all of them alike.
    full, model_only, input_times, evals, reference, ref_cpu = [], [], [], [], [], []
    paired: dict[str, list[float]] = {"outside": [], "outside_cpu": [], "speedup": []}
    rounds = min(settings["rounds"], steps)
    per_round = math.ceil(steps / rounds)

    def real_steps(k):
        with phase("imgzoo"):
            full.extend(_train_steps(parts, epochs, k, quiet, sync))

    def model_steps(k):
        with phase("imgzoo"):
            network.net.train()
            for j in range(k):
                sync()
                t0 = _now()
                step(*batches[j % len(batches)], 0)
                sync()
                model_only.append(_since(t0))

    def reference_steps(k):
        with phase("reference"):
            cpu0 = _cpu_with_children()
            reference.extend(ref.steps(k, skip=skip))
            ref_cpu.append((_cpu_with_children() - cpu0) / ref.last_steps)
        # Let the ended workers' exit (unmapping a copy of this process) finish before the
        # next timed steps: it is the reference's cost, not theirs.
        time.sleep(0.25)

    def inputs(k):
        with phase("imgzoo"):
            order = torch.randperm(n_train, generator=gen, device=device)
            for i in range(max(3, k)):
                sync()
                t0 = time.perf_counter()
                idx = order[(i * bs) % (n_train - bs + 1) :][:bs]
                train_data.train_batch(idx, gen)  # as the epoch's batches are made
                sync()
                input_times.append(time.perf_counter() - t0)

    # Every other round runs its parts in the reverse order, so that the real steps and the
    # reference take turns at each place in a round.
    series = [real_steps, model_steps, *([reference_steps] if ref is not None else [])]
    for r in range(rounds):
        k = min(per_round, steps - len(full))
        if k <= 0:
            break
        n_full, n_model, n_ref = len(full), len(model_only), len(reference)
        for timed_series in series if r % 2 == 0 else series[::-1]:
            timed_series(k)
        inputs(k)
        # Ratios within a round, whose series ran minutes apart at most: a load that changes
        # between rounds moves both sides of each ratio.
        real = [_median(col) for col in zip(*full[n_full:], strict=True)]
        alone = [_median(col) for col in zip(*model_only[n_model:], strict=True)]
        paired["outside"].append((real[0] - alone[0]) / real[0])
        paired["outside_cpu"].append((real[1] - alone[1]) / real[1])
        if reference[n_ref:]:
            paired["speedup"].append(_median(reference[n_ref:]) / real[0])

    # Evaluation last: a large evaluation batch frees so much memory that the training step
    # after it pays to map it again, which a real epoch pays once in hundreds of steps.
    n_eval, eval_batch = train_data.size("test"), parts.eval_batch_size
    with phase("imgzoo"):
        evaluate(network.model, train_data, "train_subset", eval_batch)  # warm-up
        if spec.train["compile"]:  # a new batch size: compiled again, not to be timed
            evaluate(network.model, train_data, "test", eval_batch)
        while len(evals) < 3 and (not evals or sum(evals) < settings["budget_s"] / 2):
            sync()
            t0 = time.perf_counter()
            evaluate(network.model, train_data, "test", eval_batch)
            sync()
            evals.append(time.perf_counter() - t0)

    step_s, model_s = _median([w for w, _ in full]), _median([w for w, _ in model_only])
    step_cpu, model_cpu = _median([c for _, c in full]), _median([c for _, c in model_only])
    train_ips = bs / step_s
    eval_ips = n_eval / _median(evals)
    eval_time = CIFAR10_EPOCH["eval"] / eval_ips
    row.update(
        train_step_ms=step_s * 1e3,
        train_img_s=train_ips,
        model_step_ms=model_s * 1e3,
        input_ms=_median(input_times) * 1e3,
        outside_share=_median(paired["outside"]),
        outside_share_noise=_mad(paired["outside"]),
        inputs_share=_median(input_times) / step_s,
        train_step_cpu_ms=step_cpu * 1e3,
        model_step_cpu_ms=model_cpu * 1e3,
        outside_share_cpu=_median(paired["outside_cpu"]),
        eval_batch_size=eval_batch,
        eval_img_s=eval_ips,
        eval_share_cifar10=eval_time / (CIFAR10_EPOCH["train"] / train_ips + eval_time),
        rss_peak_mb=peaks["imgzoo"],
        cuda_max_alloc_mb=peaks["cuda"] if cuda else None,
    )
    if reference:
        ref_s = _median(reference)
        row.update(
            ref_step_ms=ref_s * 1e3,
            ref_img_s=bs / ref_s,
            ref_rss_peak_mb=peaks["reference"],
            speedup=_median(paired["speedup"]),
            ref_cpu_ms=_median(ref_cpu) * 1e3,
            speedup_cpu=_median(ref_cpu) / step_cpu,
        )
    log(
        f"{name}: step {row['train_step_ms']:.1f} ms, model {row['model_step_ms']:.1f} ms, "
        f"inputs {row['input_ms']:.2f} ms, eval {eval_ips:.0f} img/s"
        + (f", reference step {row['ref_step_ms']:.1f} ms" if reference else "")
    )
    return row


def _auto_steps(step_s: float, settings: dict) -> int:
    return int(min(settings["max_steps"], max(5, settings["budget_s"] / max(step_s, 1e-6))))


# ---- the command ------------------------------------------------------------------------------


def _meta(settings: dict, argv: list[str]) -> dict:
    import torch

    cuda = settings["device"] != "cpu" and torch.cuda.is_available()
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpu_flags": _cpu_flags(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "timm": _version("timm"),
        "device_name": torch.cuda.get_device_name() if cuda else _cpu_name(),
        "loadavg_start": settings["loadavg_start"],
        "loadavg_end": _loadavg(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(argv),
    }


def check_targets(rows: list[dict], targets: dict | None = None) -> list[dict]:
    """Each target (default: docs/performance.md's) that the rows can answer: what, measured
    value, limit, met."""
    targets = targets or load_targets()
    out = []

    def add(what, model, value, limit, met, noise=None):
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            out.append({
                "target": what, "model": model, "value": value, "limit": limit, "met": met,
                "noise": noise,
            })

    for row in rows:
        family, share = row["family"], row["outside_share"]
        cpu = row["device"] == "cpu"
        limits = targets["outside_share_max"]["cpu" if cpu else "cuda"]
        if family in limits:
            lim = limits[family]
            noise = row["outside_share_noise"]
            add("share outside the model <=", row["model"], share, lim, share <= lim, noise)
        if row["speedup"] is not None:
            lim = targets["speedup_min"].get(family, targets["speedup_min_any"])
            add("imgzoo / reference >=", row["model"], row["speedup"], lim, row["speedup"] >= lim)
        lim = targets["eval_share_max"]
        share = row["eval_share_cifar10"]
        add("eval share of a CIFAR-10 epoch <=", row["model"], share, lim, share <= lim)
    return out


def _fmt(value, digits=1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_table(rows: list[dict]) -> str:
    head = (
        "model", "params", "train img/s", "step ms", "model ms", "inputs ms", "inputs",
        "outside", "+-", "eval img/s", "eval share", "RSS MB", "ref img/s", "imgzoo/ref",
        "imgzoo/ref (CPU)",
    )
    lines = [head]
    for r in rows:
        lines.append((
            r["model"],
            f"{r['params'] / 1e6:.2f}M",
            _fmt(r["train_img_s"], 0),
            _fmt(r["train_step_ms"]),
            _fmt(r["model_step_ms"]),
            _fmt(r["input_ms"], 2),
            f"{r['inputs_share']:.2%}",
            f"{r['outside_share']:.1%}",
            "-" if r["outside_share_noise"] is None else f"{r['outside_share_noise']:.1%}",
            _fmt(r["eval_img_s"], 0),
            f"{r['eval_share_cifar10']:.1%}",
            _fmt(r["rss_peak_mb"], 0),
            _fmt(r["ref_img_s"], 0),
            _fmt(r["speedup"], 2),
            _fmt(r["speedup_cpu"], 2),
        ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    text = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    ]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)


def write(path: Path, rows: list[dict], meta: dict, targets: list[dict]) -> None:
    if path.suffix == ".json":
        doc = {"meta": meta, "columns": list(COLUMNS), "rows": rows, "targets": targets}
        atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
        return
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*COLUMNS, *META_COLUMNS])
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, **meta})


def run(
    models=DEFAULT_MODELS,
    *,
    image_size: int = 32,
    batch_size: int = 128,
    device: str = "cpu",
    steps: int | None = None,
    warmup: int = 2,
    budget_s: float = 15.0,
    max_steps: int = 50,
    rounds: int = 5,
    train_size: int = 5000,
    test_size: int = 1000,
    channels: int = 3,
    num_classes: int = 10,
    augment: str = "standard",
    eval_batch_size: int | None = None,
    threads: int | None = None,
    compile: bool = False,
    reference: bool = True,
    ref_workers: int = 2,
    model_args: dict | None = None,
    outputs=(),
    argv: list[str] | None = None,
    log=None,
) -> tuple[list[dict], dict, list[dict]]:
    """Benchmark `models`; write each of `outputs` (.csv or .json); (rows, meta, targets)."""
    for out in outputs:
        if Path(out).suffix not in (".csv", ".json"):
            raise ConfigError(f"--out {out}: the file must end in .csv or .json")
    model_args = model_args or {}
    for name in models:
        resolve_model(name)
    if (steps is not None and steps < 1) or warmup < 1:
        raise ConfigError("--steps and --warmup must be at least 1")
    log = log or (lambda msg: print(f"bench: {msg}", file=sys.stderr, flush=True))
    settings = {
        "batch_size": batch_size,
        "device": device,
        "steps": steps,
        "warmup": warmup,
        "budget_s": budget_s,
        "max_steps": max_steps,
        "rounds": rounds,
        "augment": augment,
        "eval_batch_size": eval_batch_size,
        "compile": compile,
        "threads": threads,
        "reference": reference,
        "ref_workers": ref_workers,
        "loadavg_start": _loadavg(),
        "data": {
            "image_size": image_size,
            "channels": channels,
            "num_classes": num_classes,
            "train_size": train_size,
            "test_size": test_size,
        },
    }
    import torch

    from imgzoo import data

    # Each model's parts are configured as a run's (deterministic algorithms, threads): the
    # process's settings are restored afterwards.
    was = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="imgzoo-bench-") as tmp:
            data_path = Path(tmp) / "synthetic.h5"
            data.prepare("synthetic", settings["data"], data_path)
            for name in models:
                rows.append(bench_model(name, model_args.get(name, {}), data_path, settings, log))
                gc.collect()  # the model, its optimizer and the reference's, before the next
                if device != "cpu" and torch.cuda.is_available():
                    torch.cuda.empty_cache()
    finally:
        torch.use_deterministic_algorithms(was[0])
        torch.set_num_threads(was[1])
    meta = _meta(settings, argv or sys.argv)
    if threads:
        meta["threads"] = threads
    targets = check_targets(rows)
    for out in outputs:
        write(Path(out), rows, meta, targets)
    return rows, meta, targets


def report(rows: list[dict], meta: dict, targets: list[dict]) -> str:
    lines = [
        f"imgzoo training step on {meta['device_name']} ({meta['cpu_count']} CPUs, "
        f"{meta['threads']} threads), torch {meta['torch']}, load average "
        f"{meta['loadavg_start']} -> {meta['loadavg_end']}",
        f"image size {rows[0]['image_size']}, batch {rows[0]['batch_size']}, device "
        f"{rows[0]['device']}; medians of timed steps after warm-up" if rows else "",
        "",
        format_table(rows),
    ]
    if targets:
        lines += ["", "targets:"]
        for t in targets:
            value = t["value"]
            shown = f"{value:.1%}" if "share" in t["target"] else f"{value:.2f}"
            limit = f"{t['limit']:.0%}" if "share" in t["target"] else f"{t['limit']:g}"
            verdict = "met" if t["met"] else "MISSED"
            noise = t.get("noise")
            if not t["met"] and noise is not None and t["value"] - noise <= t["limit"]:
                verdict += f", within the noise of the rounds (+-{noise:.1%})"
            lines.append(f"  {t['model']:<10} {t['target']} {limit}: {shown}  {verdict}")
    return "\n".join(lines)


# ---- the command ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/train_step.py",
        description="Per model, on an in-memory synthetic dataset: images/s of the real training "
        "step and of evaluation, the share of the step spent outside the model, peak memory, "
        "and the same model trained by a torchvision/DataLoader reference loop.",
    )
    parser.add_argument("--models", nargs="+", metavar="MODEL",
                        help="any model a study takes (a family, a preset, timm/<name>, "
                        "file.py:callable) or vit-small (default: mlp mixer resnet18 vit-small)")
    parser.add_argument("--model-args", action="append", metavar="MODEL=JSON",
                        help='model_args for one model, e.g. mixer=\'{"dim": 256}\' (repeatable)')
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--eval-batch-size", type=int,
                        help="default: the config's auto (1000 on CUDA, 128 on the CPU)")
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu")
    parser.add_argument("--steps", type=int,
                        help="timed steps per series (default: fit --budget, 5 to 50)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    parser.add_argument("--budget", type=float, default=15.0,
                        help="seconds per timed series when --steps is not given (default 15)")
    parser.add_argument("--train-size", type=int, default=5000,
                        help="synthetic images (default 5000)")
    parser.add_argument("--test-size", type=int, default=1000,
                        help="evaluation images (default 1000)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--compile", action="store_true", help="train with torch.compile")
    parser.add_argument("--no-reference", action="store_true", help="skip the reference loop")
    parser.add_argument("--out", action="append", metavar="FILE",
                        help="write the results to FILE.csv or FILE.json (repeatable)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The command: 0 on success, 2 for a usage error (one line on stderr)."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    try:
        model_args = {}
        for item in args.model_args or []:
            name, sep, text = item.partition("=")
            if not sep:
                raise ConfigError(f"--model-args '{item}': expected NAME=JSON")
            model_args[name] = json.loads(text)
        rows, meta, targets = run(
            args.models or DEFAULT_MODELS,
            image_size=args.image_size,
            batch_size=args.batch_size,
            eval_batch_size=args.eval_batch_size,
            device=args.device,
            steps=args.steps,
            warmup=args.warmup,
            budget_s=args.budget,
            train_size=args.train_size,
            test_size=args.test_size,
            threads=args.threads,
            compile=args.compile,
            reference=not args.no_reference,
            model_args=model_args,
            outputs=args.out or [],
            argv=["python", "benchmarks/train_step.py", *argv],
        )
    except ImgzooError as e:
        print(f"train_step.py: error: {e}", file=sys.stderr)
        return e.exit_code
    except json.JSONDecodeError as e:
        print(f"train_step.py: error: --model-args: bad JSON ({e})", file=sys.stderr)
        return 2
    print(report(rows, meta, targets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
