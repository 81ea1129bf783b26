"""The aggregation commands, run logs in, tables and figures out: `tables`, `reproduction`,
`compare`, `claims`, `headline`, `accuracy-plot`, `efficiency`, `curves`, `weights`,
`sweep-plot`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from imgzoo import schema
from imgzoo.cli.options import study_of, with_config
from imgzoo.errors import ConfigError


def cmd_tables(args) -> int:
    from imgzoo.aggregate.tables import write_tables

    if args.partial:
        from imgzoo.status import current_logs

        study = study_of(args, check_sources=False)
        logs, same_as, unfinished = current_logs(study)
        out_dir = Path(args.out_dir or study.layout.partial.tables)
        write_tables(logs, out_dir, same_as=same_as, labels=study.labels_of(study.runs))
        print(f"{out_dir}: {len(logs)} runs, {unfinished} unfinished", file=sys.stderr)
        return 0
    _need_logs(args, "--out-dir")
    write_tables([Path(p) for p in args.logs], Path(args.out_dir), same_as=args.same_as,
                 labels=args.labels)
    return 0


def cmd_reproduction(args) -> int:
    from imgzoo.aggregate.reproduction import write_reproduction

    logs, published = [Path(p) for p in args.logs], json.loads(args.published)
    write_reproduction(logs, published, args.out_dir, same_as=args.same_as, labels=args.labels)
    return 0


def cmd_compare(args) -> int:
    from imgzoo.aggregate.comparisons import write_comparisons

    logs, pairs = [Path(p) for p in args.logs], json.loads(args.pairs)
    write_comparisons(logs, pairs, args.out_dir, same_as=args.same_as, labels=args.labels)
    return 0


def cmd_claims(args) -> int:
    from imgzoo.aggregate.claims import write_claims

    logs, claims = [Path(p) for p in args.logs], json.loads(args.claims)
    write_claims(logs, claims, args.out_dir, same_as=args.same_as, labels=args.labels)
    return 0


def cmd_headline(args) -> int:
    from imgzoo.aggregate.headline import write_headline

    logs, published = [Path(p) for p in args.logs], json.loads(args.published)
    write_headline(logs, published, args.out_dir, same_as=args.same_as, labels=args.labels,
                   front_page=args.front_page)
    return 0


def cmd_accuracy_plot(args) -> int:
    from imgzoo.aggregate.accuracy import write_accuracy_plot

    logs, published = [Path(p) for p in args.logs], json.loads(args.published)
    write_accuracy_plot(logs, published, Path(args.out), title=args.title,
                        same_as=args.same_as, labels=args.labels)
    return 0


def cmd_efficiency(args) -> int:
    from imgzoo.aggregate.efficiency import write_efficiency

    write_efficiency([Path(p) for p in args.logs], args.out_dir, labels=args.labels)
    return 0


def cmd_curves(args) -> int:
    from imgzoo.aggregate.curves import write_curves

    if args.partial:
        from imgzoo.status import current_logs

        study = study_of(args, check_sources=False)
        for dataset in dict.fromkeys(run.dataset for run in study.runs):
            logs, same_as, unfinished = current_logs(study, dataset)
            if not logs:
                continue
            out = Path(study.layout.partial.curves(dataset))
            title = f"{dataset}: {unfinished} of {len(logs)} runs unfinished (mean over seeds)"
            write_curves(logs, out, title=title, same_as=same_as,
                         labels=study.labels_of(study.runs_of(dataset)))
            print(out, file=sys.stderr)
        return 0
    _need_logs(args, "--out")
    write_curves([Path(p) for p in args.logs], Path(args.out), title=args.title,
                 same_as=args.same_as, labels=args.labels)
    return 0


def _need_logs(args, out_option: str) -> None:
    if not args.logs or getattr(args, out_option.lstrip("-").replace("-", "_")) is None:
        raise ConfigError(f"{args.command}: give {out_option} and run logs, or --partial")


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
        labels=args.labels,
    )
    return 0


def with_names(p):
    """The options by which the workflow says how the study shows its runs: repeated runs under
    every name, and the study's labels (`with_labels`)."""
    p.add_argument(
        "--same-as",
        type=json.loads,
        default=[],
        metavar="JSON",
        help="runs that repeat another run's settings: [{log, experiment}, ...] "
        "(the workflow passes it)",
    )
    return with_labels(p)


def with_labels(p):
    """The option by which the workflow says how the study names its experiments."""
    p.add_argument(
        "--labels",
        type=json.loads,
        default={},
        metavar="JSON",
        help="how the study names its experiments: {experiment: {model, sweep}} "
        "(the workflow passes it; without it, a run shows its model family and no sweep)",
    )
    return p


def with_partial(p):
    with_config(p)
    p.add_argument(
        "--partial",
        action="store_true",
        help="from the study's runs as they stand (unfinished ones marked), into "
        "results/<study>/partial/",
    )
    return p


PUBLISHED = "published numbers as JSON: [{experiment, dataset, value (percent), measures, ...}]"


def register(sub) -> None:
    """Add the commands to the parser's subparsers `sub`."""
    register_tables(sub)
    register_figures(sub)


def register_tables(sub) -> None:
    p = with_partial(with_names(sub.add_parser("tables", help="runs and summary tables")))
    p.add_argument("--out-dir")
    p.add_argument("logs", nargs="*")
    p.set_defaults(func=cmd_tables)

    p = with_names(sub.add_parser("reproduction", help="published numbers against ours"))
    p.add_argument("--published", required=True, help=PUBLISHED)
    p.add_argument("--out-dir", required=True)
    p.add_argument("logs", nargs="+")
    p.set_defaults(func=cmd_reproduction)

    p = with_names(sub.add_parser("compare", help="paired comparisons A - B over seeds"))
    p.add_argument("--pairs", required=True, help='pairs as JSON: [["A", "B"], ...]')
    p.add_argument("--out-dir", required=True)
    p.add_argument("logs", nargs="+")
    p.set_defaults(func=cmd_compare)

    p = with_names(sub.add_parser("claims", help="a write-up's claims tested over seeds"))
    p.add_argument(
        "--claims",
        required=True,
        help="claims as JSON: [{claim, source, pairs: [[A, B], ...], expect, metric, margin}]",
    )
    p.add_argument("--out-dir", required=True)
    p.add_argument("logs", nargs="+")
    p.set_defaults(func=cmd_claims)

    p = with_names(sub.add_parser("headline", help="the best experiment, the verdicts"))
    p.add_argument("--published", required=True, help=PUBLISHED)
    p.add_argument("--out-dir", required=True)
    p.add_argument(
        "--front-page",
        type=json.loads,
        default=None,
        metavar="JSON",
        help="what headline.rst shows and links to: {figures, curves: {dataset: path}, "
        "tables: [{label, path}]} (the workflow passes it)",
    )
    p.add_argument("logs", nargs="+")
    p.set_defaults(func=cmd_headline)

    # per job: a repeated run has no job of its own, so no --same-as
    p = with_labels(
        sub.add_parser("efficiency", help="time, memory, CPUs and GPU used against asked for")
    )
    p.add_argument("--out-dir", required=True)
    p.add_argument("logs", nargs="+")
    p.set_defaults(func=cmd_efficiency)


def register_figures(sub) -> None:
    p = with_names(
        sub.add_parser("accuracy-plot", help="test accuracy at best val, seed by seed")
    )
    p.add_argument("--published", required=True, help=PUBLISHED)
    p.add_argument("--out", required=True)
    p.add_argument("--title")
    p.add_argument("logs", nargs="+")
    p.set_defaults(func=cmd_accuracy_plot)

    p = with_partial(with_names(sub.add_parser("curves", help="learning curves")))
    p.add_argument("--out")
    p.add_argument("--title")
    p.add_argument("logs", nargs="*")
    p.set_defaults(func=cmd_curves)

    p = sub.add_parser("weights", help="first-layer weight grid of one run")
    p.add_argument("--out", required=True)
    p.add_argument("log")
    p.set_defaults(func=cmd_weights)

    p = with_names(sub.add_parser("sweep-plot", help="metric against swept value for one sweep"))
    p.add_argument("--sweep", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--metric", default=schema.default("sweeps", "metric"))
    p.add_argument("logs", nargs="+")
    p.set_defaults(func=cmd_sweep_plot)
