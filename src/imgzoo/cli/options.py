"""What several commands share: the study's config files (`--config`), the study they make."""

from __future__ import annotations

from imgzoo.config import DEFAULT_CONFIG


def with_config(p):
    p.add_argument(
        "--config",
        action="append",
        metavar="FILE",
        help=f"the study's config file (repeatable: merged in order, later ones win; "
        f"default {DEFAULT_CONFIG})",
    )
    return p


def study_of(args, *, check_sources: bool = True):
    """The study of the command's `--config` files (`imgzoo.config.load_study`); commands that
    only read what runs left (status, partial tables) need no dataset's source."""
    from imgzoo.config import load_study

    return load_study(args.config, check_sources=check_sources)
