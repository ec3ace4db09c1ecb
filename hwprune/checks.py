"""Each kind of user-given value checked in one place, with one error text.

Every module that takes a density, a batch size, a group width or an accuracy
tolerance from a user calls these; the CLI's argument types call them too, so the
command line and the Python API say the same thing about the same mistake.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import InputError

MAX_BATCH = 1 << 16
"""Largest batch the cost models accept."""


def _number(value: Any, what: str, accepted: str) -> float:
    if isinstance(value, bool):
        raise InputError(f"{what} must be {accepted}, got {value!r}")
    try:
        if isinstance(value, str) and "_" in value:
            raise ValueError(value)
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be {accepted}, got {value!r}") from None
    if not math.isfinite(number):
        raise InputError(f"{what} must be {accepted}, got {value!r}")
    return number


def check_density(value: Any, what: str = "density") -> float:
    """A fraction kept, in (0, 1]."""
    number = _number(value, what, "a fraction in (0, 1]")
    if not 0.0 < number <= 1.0:
        raise InputError(f"{what} must be a fraction in (0, 1], got {value!r}")
    return number


def check_tolerance(value: Any, what: str = "tolerance") -> float:
    """An accuracy drop allowed (or an accuracy budget), a fraction in [0, 1)."""
    number = _number(value, what, "a fraction in [0, 1)")
    if not 0.0 <= number < 1.0:
        raise InputError(f"{what} must be a fraction in [0, 1), got {value!r}")
    return number


def _integer(value: Any, what: str, low: int, high: int | None) -> int:
    accepted = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
    if isinstance(value, bool):
        raise InputError(f"{what} must be {accepted}, got {value!r}")
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise InputError(f"{what} must be {accepted}, got {value!r}") from None
    if not hasattr(value, "__index__"):
        raise InputError(f"{what} must be {accepted}, got {value!r}")
    number = int(value)
    if number < low or (high is not None and number > high):
        raise InputError(f"{what} must be {accepted}, got {value!r}")
    return number


def check_batch(value: Any) -> int:
    """Inputs processed together: 1 to :data:`MAX_BATCH`."""
    return _integer(value, "batch", 1, MAX_BATCH)


def check_group_width(value: Any) -> int:
    """Weights per group along a weight row: an integer >= 1."""
    return _integer(value, "group width", 1, None)


def check_count(value: Any, what: str, low: int = 0) -> int:
    """A count (epochs, seed, repeats): an integer >= ``low``."""
    return _integer(value, what, low, None)
