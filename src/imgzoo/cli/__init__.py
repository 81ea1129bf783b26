"""The `imgzoo` command line: every workflow step can also be run by hand.

Exit codes: 0 success, 1 a run or file failed, 2 a usage or config error. Errors are one line on
stderr (`imgzoo: error: ...`); `--debug` shows the traceback. Heavy modules (torch, matplotlib)
are imported inside the commands that need them, so `imgzoo --help` stays light. The commands
live in `runs` (check, prepare, train, status) and `aggregation` (tables and figures).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from imgzoo.cli import aggregation, runs
from imgzoo.errors import ConfigError, ImgzooError


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imgzoo", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    runs.register(sub)
    aggregation.register(sub)
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
