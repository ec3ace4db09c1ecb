"""Each kind of user-given value checked in one place, with one error text.

Every module that takes a density, a batch size, a group width or an accuracy
tolerance from a user calls these; the CLI's argument types call them too, so the
command line and the Python API say the same thing about the same mistake.
"""

from __future__ import annotations

import math
import os
import re
import stat
from typing import Any, Callable

import numpy as np

from .errors import InputError

MAX_BATCH = 1 << 16
"""Largest batch the cost models accept."""


def _number(value: Any, what: str, accepted: str) -> float:
    if isinstance(value, (bool, np.bool_)):
        raise InputError(f"{what} must be {accepted}, got {value!r}")
    try:
        if isinstance(value, str) and "_" in value:
            raise ValueError(value)
        number = float(value)
    except (TypeError, ValueError, OverflowError):
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
    if isinstance(value, (bool, np.bool_)):
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


def check_seed(value: Any) -> int:
    """A random seed: an integer >= 0."""
    return _integer(value, "seed", 0, None)


def check_integer(value: Any, what: str, low: int, high: int | None = None) -> int:
    """An integer from ``low`` to ``high`` (no upper bound if None)."""
    return _integer(value, what, low, high)


def _kind(value: Any) -> str:
    text = repr(value)
    return f"{text} ({type(value).__name__})" if len(text) <= 60 \
        else f"a {type(value).__name__}"


def check_text(value: Any, what: str, accepted: str = "") -> str:
    """A name given as text (a scheme, criterion, model, dataflow, ...)."""
    if not isinstance(value, str):
        tail = f"; accepted: {accepted}" if accepted else ""
        raise InputError(f"{what} must be a name (text), got {_kind(value)}{tail}")
    return value


def check_name_or_path(value: Any, what: str, accepted: str) -> str | os.PathLike:
    """A name or a file path (``str`` or ``os.PathLike``); ``accepted`` says which
    other values the caller takes (they are checked before this)."""
    if not isinstance(value, (str, os.PathLike)):
        raise InputError(f"{what} must be {accepted}, got {_kind(value)}")
    return value


def check_list(value: Any, what: str, item: Callable[[Any], Any], accepted: str,
               single: tuple[type, ...] = (str, os.PathLike), empty: bool = True) -> list:
    """A list (or tuple, or any iterable that is not text or a mapping) of values each
    checked by ``item``; a lone value of a ``single`` type counts as a list of one."""
    if isinstance(value, single):
        return [item(value)]
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        raise InputError(f"{what} must be {accepted}, got {_kind(value)}")
    values = [item(v) for v in value]
    if not empty and not values:
        raise InputError(f"{what} must be {accepted}, got none")
    return values


def check_paths(value: Any, what: str = "profiles") -> list:
    """Directories or files given as paths: a list of ``str``/``os.PathLike`` (one
    path alone counts as a list of one)."""
    accepted = "a list of directory paths"
    return check_list(value, what, lambda v: check_name_or_path(v, f"{what} entries", "paths"),
                      accepted)


def check_densities(value: Any, what: str = "densities") -> tuple[float, ...]:
    """One or more densities: a sequence of fractions in (0, 1], or text of them
    separated by commas (``"0.5,0.25"``); never empty."""
    if isinstance(value, str):
        value = [t.strip() for t in value.split(",") if t.strip()]
    elif isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_)):
        value = [value]
    return tuple(check_list(value, what, lambda v: check_density(v, what),
                            "one or more fractions in (0, 1]", single=(), empty=False))


_FILE_TYPES = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISSOCK, "a socket"))


def file_kind(mode: int) -> str:
    """What a non-regular file is, for error messages ("a directory", "a FIFO", ...)."""
    return next((what for test, what in _FILE_TYPES if test(mode)), "not a regular file")


def regular_file(path: str | os.PathLike, what: str, accepted: str,
                 max_bytes: int | None = None) -> os.stat_result:
    """``os.stat`` of an input file that must be a regular file (of at most
    ``max_bytes``); anything else is an :class:`InputError` that begins with ``what``
    (e.g. ``densities file d.csv``) and ends with ``accepted``. Nothing is opened, so a
    FIFO or a device such as ``/dev/zero`` can neither block nor be read forever."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"{what}: no such file; give {accepted}") from None
    except OSError as exc:
        raise InputError(f"{what}: cannot be read ({exc.strerror or exc}); give {accepted}") from None
    except ValueError as exc:          # an embedded NUL byte
        raise InputError(f"{what}: is not a usable path ({exc}); give {accepted}") from None
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{what}: is {file_kind(info.st_mode)}, not a regular file; "
                         f"give {accepted}")
    if max_bytes is not None and info.st_size > max_bytes:
        raise InputError(f"{what}: {info.st_size} bytes, more than the {max_bytes} bytes "
                         f"accepted; give {accepted}")
    return info


# ------------------------------------------------------------ sparsity patterns and formats

def check_nm(n: object, m: object) -> tuple[int, int]:
    """``(n, m)`` as integers with ``1 <= n < m <= 256``, or a clear error."""
    if (isinstance(n, bool) or isinstance(m, bool) or not isinstance(n, (int, np.integer))
            or not isinstance(m, (int, np.integer))):
        raise InputError(f"N:M sparsity needs integers N and M, got {n!r}:{m!r}")
    n, m = int(n), int(m)
    if not 1 <= n < m <= 256:
        raise InputError(f"N:M sparsity needs 1 <= N < M <= 256, got {n}:{m} (accepted: 2:4, "
                         "1:4, 4:8, ...)")
    return n, m


def metadata_bits(m: int) -> int:
    """Bits that say where a kept value sits in its window of ``m``: ``ceil(log2 m)``."""
    return max(1, math.ceil(math.log2(m)))


MAX_BLOCK_SIDE = 256
"""Largest block side :func:`check_block` accepts."""


def check_block(r: object, c: object) -> tuple[int, int]:
    """``(r, c)`` as integers from 1 to :data:`MAX_BLOCK_SIDE`, not both 1 (that is
    fine-grained), or a clear error."""
    if (isinstance(r, bool) or isinstance(c, bool) or not isinstance(r, (int, np.integer))
            or not isinstance(c, (int, np.integer)) or not 1 <= r <= MAX_BLOCK_SIDE
            or not 1 <= c <= MAX_BLOCK_SIDE or r * c == 1):
        raise InputError(f"a block shape needs integers r, c from 1 to {MAX_BLOCK_SIDE} and more "
                         f"than one weight per block, got {r!r}x{c!r} (accepted: 1x4, 4x4, 8x8, "
                         "16x16, ...)")
    return int(r), int(c)


WEIGHT_FORMATS = ("dense", "csr", "simd-group", "rle", "N:M", "block-RxC")
"""The weight storage formats (:mod:`hwprune.sparse.storage` counts their bytes);
``N:M`` and ``block-RxC`` stand for their parametric names (``2:4``, ``block-8x8``),
see :func:`parse_format`."""
FORMAT_ALIASES = {"nm": "2:4", "block": "block-4x4"}
"""Short names of the default N:M and block formats."""

NM_NAME = re.compile(r"(\d+):(\d+)")
"""An N:M pattern's name (``2:4``)."""
BLOCK_NAME = re.compile(r"block-(\d+)x(\d+)")
"""A block shape's name (``block-4x4``)."""


def parse_format(fmt: str) -> tuple[str, tuple[int, int]]:
    """``(kind, parameters)`` of a weight format name: ``("nm", (N, M))`` for ``N:M``,
    ``("block", (R, C))`` for ``block-RxC``, ``(fmt, (0, 0))`` for the others; an
    :class:`InputError` naming the accepted formats for anything else."""
    fmt = FORMAT_ALIASES.get(str(fmt), str(fmt))
    if found := NM_NAME.fullmatch(fmt):
        return "nm", check_nm(int(found[1]), int(found[2]))
    if found := BLOCK_NAME.fullmatch(fmt):
        return "block", check_block(int(found[1]), int(found[2]))
    if fmt in WEIGHT_FORMATS[:4]:
        return fmt, (0, 0)
    raise InputError(f"unknown weight format {fmt!r}; accepted: " + ", ".join(WEIGHT_FORMATS[:4])
                     + ", N:M (e.g. 2:4, alias nm), block-RxC (e.g. block-8x8, alias block)")


