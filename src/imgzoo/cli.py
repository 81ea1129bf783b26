"""The `imgzoo` command line: every workflow step can also be run by hand.

Exit codes: 0 success, 1 a run or file failed, 2 a usage or config error. Errors are one line on
stderr (`imgzoo: error: ...`); `--debug` shows the traceback. Heavy modules (torch, matplotlib)
are imported inside the commands that need them, so `imgzoo --help` stays light.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from imgzoo.errors import ConfigError, ImgzooError

DEFAULT_CONFIG = "config/config.yaml"


def _study(args):
    from imgzoo.config import load_study

    paths = args.config or [DEFAULT_CONFIG]
    return load_study(paths)


def cmd_check(args) -> int:
    study = _study(args)
    runs = study.runs
    print(
        f"config OK: {len(study.experiments)} experiments, {len(study.config['datasets'])} "
        f"datasets, {len(study.config['seeds'])} seeds -> {len(runs)} runs"
    )
    return 0


def cmd_prepare(args) -> int:
    from imgzoo import data

    if args.options is not None:
        options = json.loads(args.options)
    else:
        options = (
            _study(args).data_options(args.dataset)
            if (args.config or Path(DEFAULT_CONFIG).exists())
            else {}
        )
    data.prepare(args.dataset, options, args.out)
    print(f"prepared {args.dataset} -> {args.out}", file=sys.stderr)
    return 0


def cmd_train(args) -> int:
    from imgzoo.config import apply_overrides

    if args.spec:
        spec = json.loads(args.spec)
    else:
        spec = _study(args).run_spec(args.dataset, args.experiment, args.seed)
    spec = apply_overrides(spec, args.overrides)
    data_path = Path(args.data or f"results/data/{args.dataset}.h5")
    out_dir = Path(args.out or f"results/runs/{args.dataset}/{args.experiment}/seed{args.seed}")
    if not data_path.exists():
        from imgzoo import data

        print(f"{data_path} missing: preparing {args.dataset} first", file=sys.stderr)
        data.prepare(args.dataset, spec["data"], data_path)

    from imgzoo.progress import Progress
    from imgzoo.train import train

    progress = Progress(
        spec["train"]["epochs"], label=f"[{args.dataset}/{args.experiment}/s{args.seed}]"
    )
    log = train(spec, data_path, out_dir, threads=args.threads, progress=progress)
    epochs = log.epochs
    summary = f"{log.attrs['status']} after {len(epochs['epoch'])} epochs"
    if len(epochs["epoch"]):
        summary += f": final test acc {epochs['test_acc'][-1]:.4f}"
    print(f"{out_dir / 'metrics.h5'}: {summary}", file=sys.stderr)
    return 0


def cmd_tables(args) -> int:
    from imgzoo.aggregate.tables import write_tables

    write_tables([Path(p) for p in args.logs], Path(args.out_dir))
    return 0


def cmd_curves(args) -> int:
    from imgzoo.aggregate.curves import write_curves

    write_curves([Path(p) for p in args.logs], Path(args.out), title=args.title)
    return 0


def cmd_weights(args) -> int:
    from imgzoo.aggregate.weights import write_weight_grid

    write_weight_grid(Path(args.log), Path(args.out))
    return 0


def cmd_sweep_plot(args) -> int:
    from imgzoo.aggregate.sweeps import write_sweep_plot

    write_sweep_plot([Path(p) for p in args.logs], args.sweep, Path(args.out), metric=args.metric)
    return 0


def cmd_bench(args) -> int:
    from imgzoo import bench

    model_args = {}
    for item in args.model_args or []:
        name, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"bench --model-args '{item}': expected NAME=JSON")
        model_args[name] = json.loads(text)
    rows, meta, targets = bench.run(
        args.models or bench.DEFAULT_MODELS,
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
        # how it was started: `python -m imgzoo` runs imgzoo/__main__.py
        argv=[sys.argv[0].replace(str(Path(__file__).with_name("__main__.py")),
                                  "python -m imgzoo"), *sys.argv[1:]],
    )
    print(bench.report(rows, meta, targets))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imgzoo", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(p):
        p.add_argument(
            "--config",
            action="append",
            metavar="FILE",
            help=f"config file (repeatable; later ones win; default {DEFAULT_CONFIG})",
        )
        return p

    p = with_config(sub.add_parser("check", help="validate the config and count the runs"))
    p.set_defaults(func=cmd_check)

    p = with_config(sub.add_parser("prepare", help="prepare a dataset into an HDF5 file"))
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", required=True, help="results/data/{dataset}.h5")
    p.add_argument("--options", help="preparation options as JSON (default: from the config)")
    p.set_defaults(func=cmd_prepare)

    p = with_config(sub.add_parser("train", help="run (or resume) one training run"))
    p.add_argument("--experiment", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", help="run folder (default results/runs/DATASET/EXPERIMENT/seedSEED)")
    p.add_argument("--data", help="prepared dataset (default results/data/DATASET.h5)")
    p.add_argument("--spec", help="the resolved run spec as JSON (the workflow passes it)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="override training keys or model_args.KEY, e.g. lr=0.01 epochs=2",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("tables", help="runs and summary tables from run logs")
    p.add_argument("--out-dir", required=True)
    p.add_argument("logs", nargs="+")
    p.set_defaults(func=cmd_tables)

    p = sub.add_parser("curves", help="learning curves of one dataset's runs")
    p.add_argument("--out", required=True)
    p.add_argument("--title")
    p.add_argument("logs", nargs="+")
    p.set_defaults(func=cmd_curves)

    p = sub.add_parser("weights", help="first-layer weight grid of one run")
    p.add_argument("--out", required=True)
    p.add_argument("log")
    p.set_defaults(func=cmd_weights)

    p = sub.add_parser("sweep-plot", help="metric against swept value for one sweep")
    p.add_argument("--sweep", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--metric", default="test_acc_at_best_val")
    p.add_argument("logs", nargs="+")
    p.set_defaults(func=cmd_sweep_plot)

    p = sub.add_parser(
        "bench",
        help="training/eval throughput per model, against a reference PyTorch loop",
        description="Per model, on an in-memory synthetic dataset: images/s of the real training "
        "step and of evaluation, the share of the step spent outside the model, peak memory, "
        "and the same model trained by a torchvision/DataLoader reference loop.",
    )
    p.add_argument("--models", nargs="+", metavar="MODEL",
                   help="families, presets or vit-small (default: mlp mixer resnet18 vit-small)")
    p.add_argument("--model-args", action="append", metavar="MODEL=JSON",
                   help='model_args for one model, e.g. mixer=\'{"dim": 256}\' (repeatable)')
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--eval-batch-size", type=int,
                   help="default: the config's auto (1000 on CUDA, 128 on the CPU)")
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu")
    p.add_argument("--steps", type=int,
                   help="timed steps per series (default: fit --budget, 5 to 50)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    p.add_argument("--budget", type=float, default=15.0,
                   help="seconds per timed series when --steps is not given (default 15)")
    p.add_argument("--train-size", type=int, default=5000, help="synthetic images (default 5000)")
    p.add_argument("--test-size", type=int, default=1000, help="evaluation images (default 1000)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--compile", action="store_true", help="train with torch.compile")
    p.add_argument("--no-reference", action="store_true", help="skip the reference loop")
    p.add_argument("--out", action="append", metavar="FILE",
                   help="write the results to FILE.csv or FILE.json (repeatable)")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ImgzooError as e:
        if args.debug:
            raise
        print(f"imgzoo: error: {e}", file=sys.stderr)
        return e.exit_code
    except json.JSONDecodeError as e:
        if args.debug:
            raise
        print(f"imgzoo: error: {ConfigError(f'bad JSON argument ({e})')}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a missing or unreadable file: one line, named
        if args.debug:
            raise
        print(f"imgzoo: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("imgzoo: interrupted", file=sys.stderr)
        return 130
