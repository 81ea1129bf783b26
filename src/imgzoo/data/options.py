"""Dataset options: the ones every dataset takes, defaults, and the checks that name a bad one."""

from __future__ import annotations

from imgzoo.errors import ConfigError, unknown_name

# Options every dataset takes (the split of the official training set into train and val).
COMMON = {
    "split_seed": 0,  # which rows go to val (and, for digits, to test)
    "val_fraction": 0.1,  # share of the official training set carved out as val
    "val_size": None,  # exact number of val rows; overrides val_fraction
    "limit_train": None,  # keep only the first N rows of the (stratified-shuffled) train split
}


def resolve(dataset: str, own: dict, given: dict | None) -> dict:
    """Defaults (COMMON, then the dataset's `own`) overlaid with `given`; unknown keys refused."""
    defaults = {**COMMON, **own}
    given = dict(given or {})
    for key in given:
        if key not in defaults:
            raise ConfigError(f"dataset '{dataset}': {unknown_name('option', key, defaults)}")
    options = {**defaults, **given}
    integer(dataset, options, "split_seed", minimum=0)
    fraction(dataset, options, "val_fraction")
    integer(dataset, options, "val_size", minimum=1, optional=True)
    integer(dataset, options, "limit_train", minimum=1, optional=True)
    return options


def integer(dataset: str, options: dict, key: str, *, minimum: int,
            optional: bool = False) -> None:
    """Check that options[key] is an int >= minimum (or None where `optional`)."""
    value = options[key]
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(
            f"dataset '{dataset}': option {key} must be an integer >= {minimum}, got {value!r}"
        )


def fraction(dataset: str, options: dict, key: str) -> None:
    """Check that options[key] is a number strictly between 0 and 1."""
    value = options[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise ConfigError(
            f"dataset '{dataset}': option {key} must be a number between 0 and 1, got {value!r}"
        )
