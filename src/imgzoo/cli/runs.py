"""The commands about a study's runs: `check`, `prepare`, `train`, `status`."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from imgzoo.cli.options import study_of, with_config
from imgzoo.config import DEFAULT_CONFIG
from imgzoo.errors import ConfigError
from imgzoo.paths import METRICS


def cmd_check(args) -> int:
    # A study whose data is still to be downloaded is a valid config: said below, not refused.
    study = study_of(args, check_sources=False)
    if args.up_to_date:
        from imgzoo.status import up_to_date_logs

        print("\n".join(up_to_date_logs(study)))
        return 0
    if args.json:
        runs = [
            {
                "spec": study.spec(run).to_dict(),
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
    # what is watched beside a model file, said once per file: nothing found silently
    for sources in dict.fromkeys(tuple(study.model_sources(run)) for run in study.runs):
        if len(sources) > 1:
            print(f"model file {sources[0]} imports {', '.join(sources[1:])} from beside it (an "
                  f"edit of any of them re-runs its runs)")
    if missing := missing_data(study):
        print(f"data missing (Snakemake will not start until it is there): {missing}")
    return 0


def missing_data(study) -> str | None:
    """What the study's datasets lack, in one line, or None."""
    from imgzoo.config.files import require_study_sources
    from imgzoo.errors import DataError

    try:
        require_study_sources(study)
    except DataError as e:
        return str(e)
    return None


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def cmd_prepare(args) -> int:
    from imgzoo import data

    # Options and output come from the study unless given; without a study file, no options.
    study = None
    has_study = args.config or Path(DEFAULT_CONFIG).exists()
    if (args.options is None or args.out is None) and has_study:
        study = study_of(args)
    if args.options is not None:
        options = json.loads(args.options)
    else:
        options = study.data_options(args.dataset) if study else {}
    if args.out is None and study is None:
        raise ConfigError(f"prepare: give --out (no study config: {DEFAULT_CONFIG} is missing)")
    out = args.out or study.layout.data(args.dataset)
    if args.workers:
        use_cores(args.workers)
    data.prepare(args.dataset, options, out)
    print(f"prepared {args.dataset} -> {out}", file=sys.stderr)
    return 0


def use_cores(n: int) -> None:
    """Keep this process, and the workers it starts, on `n` of the cores it may use (the
    workflow's `threads` of the rule): decoding a large image folder uses them all otherwise."""
    if hasattr(os, "sched_setaffinity"):
        allowed = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, allowed[: max(1, n)])


def cmd_train(args) -> int:
    from imgzoo.config import Run, apply_overrides
    from imgzoo.spec import RunId, RunSpec, Settings

    # The workflow passes the settings and both paths; by hand, the study gives what is missing.
    study = None if args.settings and args.data and args.out else study_of(args)
    if args.settings:
        name = args.study or (study.name if study else "")
        run = RunId(name, args.experiment, args.dataset, args.seed)
        spec = RunSpec(run, Settings.from_dict(json.loads(args.settings)))
    else:
        spec = study.spec(Run(args.dataset, args.experiment, args.seed)).with_resources({})
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
        data.prepare(args.dataset, spec.settings.data, data_path)

    from imgzoo.progress import Progress
    from imgzoo.train import train

    progress = Progress(spec.train["epochs"], label=f"[{spec.id.name}]")
    cache = args.compile_cache or (study.layout.compile_cache if study else None)
    log = train(spec, data_path, out_dir, threads=args.threads, progress=progress,
                compile_cache=cache)
    epochs = log.epochs
    summary = f"{log.attrs['status']} after {len(epochs['epoch'])} epochs"
    if len(epochs["epoch"]):
        summary += f": final test acc {epochs['test_acc'][-1]:.4f}"
    print(f"{out_dir / METRICS}: {summary}", file=sys.stderr)
    return 0


def cmd_status(args) -> int:
    import time

    from imgzoo import status

    study = study_of(args, check_sources=False)
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


def register(sub) -> None:
    """Add the commands to the parser's subparsers `sub`."""
    p = with_config(sub.add_parser("check", help="validate the config and count the runs"))
    p.add_argument("--list", action="store_true", help="list every run's folder")
    p.add_argument("--json", action="store_true", help="every run's resolved settings as JSON")
    p.add_argument(
        "--up-to-date",
        action="store_true",
        help="the logs of finished runs whose settings are the study's now (for `snakemake "
        "--touch` after an upgrade that changed what Snakemake records of a run)",
    )
    p.set_defaults(func=cmd_check)

    p = with_config(sub.add_parser("prepare", help="prepare a dataset into an HDF5 file"))
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", help="default: the study's results/<study>/data/DATASET.h5")
    p.add_argument("--options", help="preparation options as JSON (default: from the config)")
    p.add_argument("--workers", type=int, help="cores to decode images on (default: all allowed)")
    p.set_defaults(func=cmd_prepare)

    p = with_config(sub.add_parser("train", help="run (or resume) one training run"))
    p.add_argument("--study", help="the study's name (the workflow passes it with --settings)")
    p.add_argument("--experiment", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument(
        "--out", help="run folder (default results/<study>/runs/DATASET/EXPERIMENT/seedSEED)"
    )
    p.add_argument("--data", help="prepared dataset (default results/<study>/data/DATASET.h5)")
    p.add_argument(
        "--settings", help="the run's resolved settings as JSON (the workflow passes them)"
    )
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
