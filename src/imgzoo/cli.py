"""The `imgzoo` command line: every workflow step can also be run by hand.

Exit codes: 0 success, 1 a run or file failed, 2 a usage or config error. Errors are one line on
stderr (`imgzoo: error: ...`); `--debug` shows the traceback. Heavy modules (torch, matplotlib)
are imported inside the commands that need them, so `imgzoo --help` stays light.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from imgzoo.config import DEFAULT_CONFIG
from imgzoo.errors import ConfigError, ImgzooError
from imgzoo.paths import METRICS


def put_command_on_path() -> None:
    """Make sure the rules' `imgzoo` command is found on PATH (Snakemake's jobs inherit it): as
    it is, or with the folder of the Python that runs Snakemake first, where the command lies
    beside it (a `.venv/bin/snakemake` run without activating the environment)."""
    path = os.environ.get("PATH", "")
    if shutil.which("imgzoo", path=path):
        return
    here = Path(sys.executable).parent
    if not (here / "imgzoo").exists():
        raise ImgzooError(
            f"the workflow's rules call the `imgzoo` command, found neither on PATH nor in "
            f"{here}: install the project (`make venv`) and activate its environment "
            "(`. .venv/bin/activate`)"
        )
    os.environ["PATH"] = os.pathsep.join([str(here), *filter(None, [path])])


def _study(args):
    from imgzoo.config import load_study

    return load_study(args.config)


def cmd_check(args) -> int:
    study = _study(args)
    if args.json:
        runs = [
            {
                "spec": study.run_spec(run.dataset, run.experiment, run.seed),
                "run_log": study.run_log(run),
                "same_as": study.run_log(study.same_as[run]) if run in study.same_as else None,
            }
            for run in study.runs
        ]
        print(json.dumps({"study": study.name, "results": study.layout.root, "runs": runs}))
        return 0
    if args.list:
        for run in study.runs:
            first = study.same_as.get(run)
            note = f"  (same settings as {first.experiment}: not trained again)" if first else ""
            print(f"{study.run_dir(run)}{note}")
    runs, trained = study.runs, study.trained_runs
    repeats = len(runs) - len(trained)
    counts = ", ".join(
        _count(n, what)
        for n, what in ((len(study.experiments), "experiment"),
                        (len(study.config["datasets"]), "dataset"),
                        (len(study.config["seeds"]), "seed"))
    )
    print(
        f"config OK: study '{study.name}' -> {study.layout.root}/: {counts} -> "
        f"{_count(len(runs), 'run')}"
        + (f", {repeats} of them repeat another run's settings" if repeats else "")
        + f": {_count(len(trained), 'training')}"
    )
    return 0


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def cmd_prepare(args) -> int:
    from imgzoo import data

    # Options and output come from the study unless given; without a study file, no options.
    study = None
    has_study = args.config or Path(DEFAULT_CONFIG).exists()
    if (args.options is None or args.out is None) and has_study:
        study = _study(args)
    if args.options is not None:
        options = json.loads(args.options)
    else:
        options = study.data_options(args.dataset) if study else {}
    if args.out is None and study is None:
        raise ConfigError(f"prepare: give --out (no study config: {DEFAULT_CONFIG} is missing)")
    out = args.out or study.layout.data(args.dataset)
    data.prepare(args.dataset, options, out)
    print(f"prepared {args.dataset} -> {out}", file=sys.stderr)
    return 0


def cmd_train(args) -> int:
    from imgzoo.config import apply_overrides

    # The workflow passes the spec and both paths; by hand, the study gives what is missing.
    study = None if args.spec and args.data and args.out else _study(args)
    if args.spec:
        spec = json.loads(args.spec)
    else:
        spec = study.run_spec(args.dataset, args.experiment, args.seed)
    spec = apply_overrides(spec, args.overrides)
    data_path = Path(args.data or study.layout.data(args.dataset))
    if args.out:
        out_dir = Path(args.out)
    else:
        # A run by hand with settings of its own must not pass for the study's run of that name.
        layout = study.layout.by_hand if args.overrides else study.layout
        out_dir = Path(layout.run_dir(args.dataset, args.experiment, args.seed))
    if not data_path.exists():
        from imgzoo import data

        print(f"{data_path} missing: preparing {args.dataset} first", file=sys.stderr)
        data.prepare(args.dataset, spec["data"], data_path)

    from imgzoo.progress import Progress
    from imgzoo.train import train

    progress = Progress(
        spec["train"]["epochs"], label=f"[{args.dataset}/{args.experiment}/s{args.seed}]"
    )
    cache = args.compile_cache or (study.layout.compile_cache if study else None)
    log = train(spec, data_path, out_dir, threads=args.threads, progress=progress,
                compile_cache=cache)
    epochs = log.epochs
    summary = f"{log.attrs['status']} after {len(epochs['epoch'])} epochs"
    if len(epochs["epoch"]):
        summary += f": final test acc {epochs['test_acc'][-1]:.4f}"
    print(f"{out_dir / METRICS}: {summary}", file=sys.stderr)
    return 0


def cmd_tables(args) -> int:
    from imgzoo.aggregate.tables import write_tables

    if args.partial:
        from imgzoo.status import current_logs

        study = _study(args)
        logs, same_as, unfinished = current_logs(study)
        out_dir = Path(args.out_dir or study.layout.partial.tables)
        write_tables(logs, out_dir, same_as=same_as)
        print(f"{out_dir}: {len(logs)} runs, {unfinished} unfinished", file=sys.stderr)
        return 0
    _need_logs(args, "--out-dir")
    write_tables([Path(p) for p in args.logs], Path(args.out_dir), same_as=args.same_as)
    return 0


def cmd_reproduction(args) -> int:
    from imgzoo.aggregate.reproduction import write_reproduction

    logs, published = [Path(p) for p in args.logs], json.loads(args.published)
    write_reproduction(logs, published, args.out_dir, same_as=args.same_as)
    return 0


def cmd_compare(args) -> int:
    from imgzoo.aggregate.comparisons import write_comparisons

    logs, pairs = [Path(p) for p in args.logs], json.loads(args.pairs)
    write_comparisons(logs, pairs, args.out_dir, same_as=args.same_as)
    return 0


def cmd_headline(args) -> int:
    from imgzoo.aggregate.headline import write_headline

    logs, published = [Path(p) for p in args.logs], json.loads(args.published)
    write_headline(logs, published, args.out_dir, same_as=args.same_as)
    return 0


def cmd_curves(args) -> int:
    from imgzoo.aggregate.curves import write_curves

    if args.partial:
        from imgzoo.status import current_logs

        study = _study(args)
        for dataset in dict.fromkeys(run.dataset for run in study.runs):
            logs, same_as, unfinished = current_logs(study, dataset)
            if not logs:
                continue
            out = Path(study.layout.partial.curves(dataset))
            title = f"{dataset}: {unfinished} of {len(logs)} runs unfinished (mean over seeds)"
            write_curves(logs, out, title=title, same_as=same_as)
            print(out, file=sys.stderr)
        return 0
    _need_logs(args, "--out")
    write_curves([Path(p) for p in args.logs], Path(args.out), title=args.title,
                 same_as=args.same_as)
    return 0


def _need_logs(args, out_option: str) -> None:
    if not args.logs or getattr(args, out_option.lstrip("-").replace("-", "_")) is None:
        raise ConfigError(f"{args.command}: give {out_option} and run logs, or --partial")


def cmd_status(args) -> int:
    import time

    from imgzoo import status

    study = _study(args)
    while True:
        runs, summary = status.study_status(study)
        if args.json:
            text = json.dumps(status.as_json(runs, summary)) + "\n"
        else:
            width = min(shutil.get_terminal_size((80, 24)).columns, 120)
            text = status.table(runs, summary, width=max(width, 60))
        if args.watch and sys.stdout.isatty():
            sys.stdout.write("\033[H\033[J")  # clear the screen: a refreshed view
        sys.stdout.write(text)
        sys.stdout.flush()
        if not args.watch:
            return 0
        time.sleep(args.watch)


def cmd_weights(args) -> int:
    from imgzoo.aggregate.weights import write_weight_grid

    write_weight_grid(Path(args.log), Path(args.out))
    return 0


def cmd_sweep_plot(args) -> int:
    from imgzoo.aggregate.sweeps import write_sweep_plot

    write_sweep_plot(
        [Path(p) for p in args.logs],
        args.sweep,
        Path(args.out),
        metric=args.metric,
        same_as=args.same_as,
    )
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
            help=f"the study's config file (repeatable: merged in order, later ones win; "
            f"default {DEFAULT_CONFIG})",
        )
        return p

    def with_same_as(p):
        p.add_argument(
            "--same-as",
            type=json.loads,
            default=[],
            metavar="JSON",
            help="runs that repeat another run's settings: [{log, experiment, sweep}, ...] "
            "(the workflow passes it)",
        )
        return p

    p = with_config(sub.add_parser("check", help="validate the config and count the runs"))
    p.add_argument("--list", action="store_true", help="list every run's folder")
    p.add_argument("--json", action="store_true", help="every run's resolved settings as JSON")
    p.set_defaults(func=cmd_check)

    p = with_config(sub.add_parser("prepare", help="prepare a dataset into an HDF5 file"))
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", help="default: the study's results/<study>/data/DATASET.h5")
    p.add_argument("--options", help="preparation options as JSON (default: from the config)")
    p.set_defaults(func=cmd_prepare)

    p = with_config(sub.add_parser("train", help="run (or resume) one training run"))
    p.add_argument("--experiment", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument(
        "--out", help="run folder (default results/<study>/runs/DATASET/EXPERIMENT/seedSEED)"
    )
    p.add_argument("--data", help="prepared dataset (default results/<study>/data/DATASET.h5)")
    p.add_argument("--spec", help="the resolved run spec as JSON (the workflow passes it)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument(
        "--compile-cache", help="torch.compile's kernel cache (default results/<study>/cache/)"
    )
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="override training keys or model_args.KEY, e.g. lr=0.01 epochs=2",
    )
    p.set_defaults(func=cmd_train)

    def with_partial(p):
        with_config(p)
        p.add_argument(
            "--partial",
            action="store_true",
            help="from the study's runs as they stand (unfinished ones marked), into "
            "results/<study>/partial/",
        )
        return p

    p = with_partial(with_same_as(sub.add_parser("tables", help="runs and summary tables")))
    p.add_argument("--out-dir")
    p.add_argument("logs", nargs="*")
    p.set_defaults(func=cmd_tables)

    published = "published numbers as JSON: [{experiment, dataset, value (percent), measures, ...}]"
    p = with_same_as(sub.add_parser("reproduction", help="published numbers against ours"))
    p.add_argument("--published", required=True, help=published)
    p.add_argument("--out-dir", required=True)
    p.add_argument("logs", nargs="+")
    p.set_defaults(func=cmd_reproduction)

    p = with_same_as(sub.add_parser("compare", help="paired comparisons A - B over seeds"))
    p.add_argument("--pairs", required=True, help='pairs as JSON: [["A", "B"], ...]')
    p.add_argument("--out-dir", required=True)
    p.add_argument("logs", nargs="+")
    p.set_defaults(func=cmd_compare)

    p = with_same_as(sub.add_parser("headline", help="the best experiment, the verdicts"))
    p.add_argument("--published", required=True, help=published)
    p.add_argument("--out-dir", required=True)
    p.add_argument("logs", nargs="+")
    p.set_defaults(func=cmd_headline)

    p = with_partial(with_same_as(sub.add_parser("curves", help="learning curves")))
    p.add_argument("--out")
    p.add_argument("--title")
    p.add_argument("logs", nargs="*")
    p.set_defaults(func=cmd_curves)

    p = with_config(sub.add_parser("status", help="where every run of the study stands"))
    p.add_argument("--json", action="store_true", help="the status as JSON, for scripts")
    p.add_argument(
        "--watch",
        type=float,
        nargs="?",
        const=30.0,
        metavar="SECONDS",
        help="refresh every SECONDS (default 30) until interrupted",
    )
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("weights", help="first-layer weight grid of one run")
    p.add_argument("--out", required=True)
    p.add_argument("log")
    p.set_defaults(func=cmd_weights)

    p = with_same_as(sub.add_parser("sweep-plot", help="metric against swept value for one sweep"))
    p.add_argument("--sweep", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--metric", default="test_acc_at_best_val")
    p.add_argument("logs", nargs="+")
    p.set_defaults(func=cmd_sweep_plot)

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
