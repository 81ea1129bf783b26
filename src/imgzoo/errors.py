"""The exceptions that the command line turns into one-line messages.

Every error a user can cause or meet (a bad config, a missing or corrupt file, a failed job) is one
of these, with a message that names the culprit and says what to do; anything else is a bug and
keeps its traceback.
"""

import difflib


class ImgzooError(Exception):
    """Base class; `exit_code` is what the command line exits with."""

    exit_code = 1


class ConfigError(ImgzooError):
    """A config key, value or name is wrong (usage error: exit code 2)."""

    exit_code = 2


class DataError(ImgzooError):
    """A dataset source or prepared dataset file is missing, corrupt or of the wrong version."""


class RunLogError(ImgzooError):
    """A run log (metrics.h5) is missing, partial, corrupt or of an unknown schema version."""


class CheckpointError(ImgzooError):
    """A checkpoint cannot be loaded: truncated, foreign or from another run."""


class RunFailed(ImgzooError):
    """A training run failed (diverged with on_diverge: fail, out of memory, a SLURM job failed)."""


def unknown_name(kind: str, name: str, known) -> ConfigError:
    """A ConfigError for an unknown name that lists the closest valid ones."""
    known = sorted(known)
    close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(known)}"
    return ConfigError(f"unknown {kind} '{name}' ({hint})")
