"""Render result tables as text, CSV or JSON, and write files atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError

FORMATS = ("table", "csv", "json")
"""Accepted values of ``--format``."""


def _cell(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return ""
        if float(value).is_integer() and abs(value) < 1e6:
            return f"{int(value):,}"
        return f"{value:.4g}"
    return str(value)


def _table_text(df: pd.DataFrame) -> str:
    """Aligned columns: text left, numbers right, digits grouped."""
    if df.empty:
        return "(no rows)\n"
    columns = [str(c) for c in df.columns]
    cells = [[_cell(v) for v in df[c].tolist()] for c in df.columns]
    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]
    widths = [max(len(name), *(len(v) for v in col)) for name, col in zip(columns, cells)]

    def line(values: list[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "  ".join(parts).rstrip()

    rows = [line(columns)] + [line([col[i] for col in cells]) for i in range(len(df))]
    return "\n".join(rows) + "\n"


def render(df: pd.DataFrame, fmt: str) -> str:
    """``df`` as text in ``fmt`` (one of :data:`FORMATS`).

    ``table`` aligns columns and groups digits for reading; ``csv`` and ``json``
    keep full precision. ``json`` is a list of row objects, numbers as numbers.
    """
    if fmt == "table":
        return _table_text(df)
    if fmt == "csv":
        return df.to_csv(index=False)
    if fmt == "json":
        return df.to_json(orient="records", indent=2, double_precision=15) + "\n"
    raise InputError(f"unknown format {fmt!r}; accepted formats: " + ", ".join(FORMATS))


def check_out_path(path: str | Path) -> Path:
    """``path`` if a file can be written there, else an :class:`InputError` (checked
    before long work starts, so that a typo costs nothing)."""
    text = str(path)
    path = Path(path)
    if text.endswith(("/", "\\")) or path.is_dir():
        raise InputError(f"cannot write {text}: it is a directory; give a file name")
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise InputError(f"cannot write {path}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise InputError(f"cannot write {path}: directory {directory} is not writable")
    return path


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and
    a rename, so that a failure never leaves a partial file behind. The file gets the
    usual permissions (0666 less the umask)."""
    path = check_out_path(path)
    directory = path.parent if str(path.parent) else Path(".")
    mode = "wb" if isinstance(data, bytes) else "w"
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise InputError(f"cannot write {path}: {exc.strerror}") from None
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
