"""GPU-hours of a study: every run's epochs x images over images/s measured on the GPU at hand.

Three steps, because the GPU machine need not have the config's dependencies (jsonschema):

    python benchmarks/study_gpu_hours.py shapes --config config/studies/X.yaml > shapes.json
    python benchmarks/study_gpu_hours.py measure shapes.json > speed.json      # on the GPU
    python benchmarks/study_gpu_hours.py estimate --config config/studies/X.yaml speed.json

`shapes` lists each distinct (model, model_args, image size, channels, classes, batch size) of
the runs; `measure` times, for each, training steps (bf16 autocast, Adam, channels-last for
convolutional networks, as imgzoo.train does) and evaluation at batch 1000 on synthetic data,
and each augmentation preset per image size; `estimate` sums per run epochs x (train images x
(1 / train images/s + 1 / augmentation images/s) + val and test images / eval images/s) and
prints hours per experiment group, each training counted once (a run that repeats another's
settings is not trained again). Loading, logging and checkpoints are left out: the estimate is of
GPU compute.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter

# (image size, channels, classes, official train images, test images) of the studies' datasets
DATASETS = {
    "cifar10": (32, 3, 10, 50_000, 10_000),
    "cifar100": (32, 3, 100, 50_000, 10_000),
    "stl10": (96, 3, 10, 5_000, 8_000),
    "tinyimagenet": (64, 3, 200, 100_000, 10_000),
    "fashion_mnist": (28, 1, 10, 60_000, 10_000),
}
EVAL_BATCH = 1000  # eval_batch_size "auto" on CUDA


def _shape(spec, study) -> str:
    size, channels, classes, _, _ = DATASETS[spec.id.dataset]
    model = study.experiments[spec.id.experiment]["model"]  # the configured preset or family
    batch = spec.train["batch_size"]
    args = spec.settings.model_args
    return json.dumps([model, args, size, channels, classes, batch], sort_keys=True)


def _specs(paths):
    from imgzoo.config import load_study

    study = load_study(paths)
    for run in study.runs:
        yield run, study.spec(run), study


def shapes(args) -> None:
    found = sorted({_shape(spec, study) for _, spec, study in _specs(args.config)})
    augment = sorted(
        {
            (spec.train["augment"], DATASETS[run.dataset][0])
            for run, spec, _ in _specs(args.config)
        }
    )
    json.dump({"shapes": found, "augment": augment}, sys.stdout)


def _timed(step, sync, min_time=1.0, max_steps=40, warm=3) -> float:
    """Seconds per call of `step`, after `warm` calls."""
    for _ in range(warm):
        step()
    sync()
    start, n = time.perf_counter(), 0
    while True:
        step()
        n += 1
        if n % 5 == 0 or n >= max_steps:
            sync()
            if time.perf_counter() - start > min_time or n >= max_steps:
                return (time.perf_counter() - start) / n


def _speed_of(key: str, dev, sync, bf16) -> dict:
    """Training and evaluation images/s of one shape."""
    import torch
    import torch.nn.functional as F

    import imgzoo.models as models

    name, model_args, size, channels, classes, batch = json.loads(key)
    torch.manual_seed(0)
    model = models.create(
        name, num_classes=classes, image_size=size, in_chans=channels, **model_args
    )
    conv = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()) > 1
    layout = torch.channels_last if conv else torch.contiguous_format
    model = model.to(dev, memory_format=layout)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(batch, channels, size, size, device=dev).contiguous(memory_format=layout)
    y = torch.randint(0, classes, (batch,), device=dev)
    xe = torch.rand(EVAL_BATCH, channels, size, size, device=dev)
    xe = xe.contiguous(memory_format=layout)

    def train_step():
        with bf16:
            out = model(x)
            out = out[0] if isinstance(out, tuple) else out
            loss = F.cross_entropy(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    @torch.no_grad()
    def eval_step():
        with bf16:
            model(xe)

    model.train()
    train = batch / _timed(train_step, sync)
    model.eval()
    evaluate = EVAL_BATCH / _timed(eval_step, sync, min_time=0.5, max_steps=20, warm=2)
    return {"train_images_per_s": train, "eval_images_per_s": evaluate}


def measure(args) -> None:
    import torch

    from imgzoo import augment

    todo = json.load(open(args.shapes))
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    bf16 = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    device = torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"
    speed = {"device": device, "models": {}, "augment": {}}
    for key in todo["shapes"]:
        try:
            speed["models"][key] = _speed_of(key, dev, sync, bf16)
        except Exception as error:  # a shape that fails is reported, the others still measured
            speed["models"][key] = {"error": repr(error)[:300]}
        print(key, speed["models"][key], file=sys.stderr, flush=True)
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    generator = torch.Generator(device=dev.type).manual_seed(0)
    for preset, size in todo["augment"]:
        aug = augment.build(preset, size)
        x = torch.rand(128, 3, size, size, device=dev)
        per_call = _timed(lambda a=aug, x=x: a(x, generator), sync, 0.3, 50, 2)
        speed["augment"][f"{preset}@{size}"] = 128 / per_call
    json.dump(speed, sys.stdout, indent=1)


def estimate(args) -> None:
    speed = json.load(open(args.speed))
    hours, runs = Counter(), Counter()
    missing = set()
    for run, spec, study in _specs(args.config):
        if run in study.same_as:
            continue  # repeats another run's settings: trained once
        got = speed["models"].get(_shape(spec, study), {})
        if "train_images_per_s" not in got:
            missing.add(_shape(spec, study))
            continue
        size, _, _, train_images, test_images = DATASETS[run.dataset]
        options = study.data_options(run.dataset)
        val = options.get("val_size") or round(options.get("val_fraction", 0.1) * train_images)
        augment_rate = speed["augment"].get(f"{spec.train['augment']}@{size}")
        per_image = 1 / got["train_images_per_s"] + (1 / augment_rate if augment_rate else 0)
        evaluated = val + test_images + spec.train["train_subset_size"]
        seconds = spec.train["epochs"] * (
            (train_images - val) * per_image + evaluated / got["eval_images_per_s"]
        )
        group = run.experiment.split("@")[0] + (" (sweep points)" if "@" in run.experiment else "")
        hours[group] += seconds / 3600
        runs[group] += 1
    for group in sorted(hours):
        print(f"{group:45s} {runs[group]:4d} runs {hours[group]:7.1f} h")
    total = f"total on {speed['device']}"
    print(f"{total:45s} {sum(runs.values()):4d} runs {sum(hours.values()):7.1f} h")
    if missing:
        print(f"not measured ({len(missing)} shapes): {sorted(missing)}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("shapes")
    p.add_argument("--config", action="append", required=True)
    p.set_defaults(func=shapes)
    p = sub.add_parser("measure")
    p.add_argument("shapes")
    p.set_defaults(func=measure)
    p = sub.add_parser("estimate")
    p.add_argument("--config", action="append", required=True)
    p.add_argument("speed")
    p.set_defaults(func=estimate)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
