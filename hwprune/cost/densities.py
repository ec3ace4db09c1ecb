"""Per-layer weight and input-activation densities, from Python objects or a CSV file.

Density is the fraction of nonzero elements, in (0, 1]. Accepted forms:

* a mapping ``{layer: weight_density}``, ``{layer: (weight_density, act_density)}`` or
  ``{layer: {"weight_density": w, "act_density": a}}``;
* a pandas Series indexed by layer name, whose values are any of the mapping's values;
* a DataFrame with a ``layer`` column (or layer names as index) and
  ``weight_density`` and/or ``act_density`` columns;
* a CSV file (UTF-8, a leading BOM allowed) with header
  ``layer,weight_density,act_density`` (either density column may be left out).

Every form becomes the same rows (location, layer name, weight cell, act cell) and
goes through one checker (:func:`_check_rows`), so the same mistake gets the same
message whichever form it came in; messages name the row (``densities entry 2``,
``densities row 2``, ``densities file d.csv line 3``) and the layer.

The rule for missing values:

* **A density that is not given is 1 (dense):** a layer that is not named, a column
  of the DataFrame or CSV that is left out, a key of ``{"weight_density": ...}`` left
  out, and an **empty cell of a CSV file** (text with nothing in it).
* **A density that is given must be a number in (0, 1]**
  (:func:`hwprune.checks.check_density`): ``NaN``, ``None``, ``pd.NA``, ``True`` and
  ``False``, infinities and text that is not a number are errors in every form. In
  particular a NaN in a DataFrame column that exists is an error, not 1: give 1, or
  leave the column out.
* Layer names are text (integers are read as their decimal text, as pandas reads a
  numeric name from a CSV); surrounding spaces are dropped; an empty name and a
  layer named twice are errors in every form.
* Numbers may be given as text (``"0.5"``), as on the command line.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from ..checks import check_density, regular_file
from ..errors import InputError
from ..workload.network import Network

COLUMNS = ("weight_density", "act_density")
MAX_CSV_BYTES = 16 << 20
"""Largest densities file read (16 MiB: far more than any network's layers need)."""

_NOT_GIVEN = object()
"""A density left out (column, key or CSV cell): it means 1."""


@dataclass(frozen=True)
class Density:
    """Fractions of nonzero weights and nonzero input activations of one layer, and of
    its stored outputs (``out``: the next layer's input density where the graph says
    the output is written as that layer reads it; 1 otherwise)."""

    weight: float = 1.0
    act: float = 1.0
    out: float = 1.0


Row = tuple[str, Any, Any, Any]
"""(location for messages, raw layer name, weight cell, act cell)."""


def _layer_name(raw: Any, where: str) -> str:
    if isinstance(raw, str):
        name = raw.strip()
    elif isinstance(raw, (int, np.integer)) and not isinstance(raw, (bool, np.bool_)):
        name = str(int(raw))
    else:
        raise InputError(f"{where}: layer name must be text, got {raw!r}")
    if not name:
        raise InputError(f"{where}: empty layer name")
    return name


def _check_rows(rows: Iterable[Row]) -> dict[str, Density]:
    """The one checker every form goes through."""
    out: dict[str, Density] = {}
    for where, raw, weight, act in rows:
        layer = _layer_name(raw, where)
        if layer in out:
            raise InputError(f"{where}: layer {layer!r} named twice")
        here = f"{where} ({layer!r})"
        values = [1.0 if cell is _NOT_GIVEN else check_density(cell, f"{here}: {col}")
                  for col, cell in zip(COLUMNS, (weight, act))]
        out[layer] = Density(*values)
    return out


def _value_cells(value: Any, where: str) -> tuple[Any, Any]:
    """(weight cell, act cell) of one mapping or Series value."""
    if isinstance(value, Mapping):
        extra = [k for k in value if k not in COLUMNS]
        if extra:
            raise InputError(f"{where}: unknown key {extra[0]!r}; accepted: "
                             + ", ".join(COLUMNS))
        return value.get("weight_density", _NOT_GIVEN), value.get("act_density", _NOT_GIVEN)
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise InputError(f"{where}: give (weight_density, act_density), got {value!r}")
        return value[0], value[1]
    return value, _NOT_GIVEN


def _mapping_rows(items: Iterable[tuple[Any, Any]], what: str) -> Iterable[Row]:
    for i, (layer, value) in enumerate(items, start=1):
        where = f"{what} entry {i}"
        yield (where, layer, *_value_cells(value, f"{where} ({layer!r})"))


def _frame_rows(df: pd.DataFrame, where: str) -> Iterable[Row]:
    columns = list(df.columns)
    unknown = [c for c in columns if c not in ("layer", *COLUMNS)]
    if unknown:
        raise InputError(f"{where}: unknown column {unknown[0]!r}; accepted columns: layer, "
                         + ", ".join(COLUMNS))
    twice = [c for i, c in enumerate(columns) if c in columns[:i]]
    if twice:
        raise InputError(f"{where}: column {twice[0]!r} given twice")
    if not any(c in columns for c in COLUMNS):
        raise InputError(f"{where}: no density column; give weight_density and/or act_density")
    n = len(df)
    layers = list(df["layer"]) if "layer" in columns else list(df.index)
    cells = [list(df[c]) if c in columns else [_NOT_GIVEN] * n for c in COLUMNS]
    for i in range(n):
        yield f"{where} row {i + 1}", layers[i], cells[0][i], cells[1][i]


def _read_text(path: Path) -> str:
    what = f"densities file {path}"
    regular_file(path, what, f"a CSV file layer,weight_density,act_density of at most "
                 f"{MAX_CSV_BYTES >> 20} MiB", MAX_CSV_BYTES)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CSV_BYTES + 1)
        return data.decode("utf-8-sig")     # tolerate a spreadsheet's BOM
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{what}: cannot be read as UTF-8 text ({exc})") from None


def _csv_rows(text: str, path: Path) -> Iterable[Row]:
    what = f"densities file {path}"
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        lines = [(reader.line_num, row) for row in reader]
    except csv.Error as exc:
        raise InputError(f"{what} line {reader.line_num}: not CSV ({exc})") from None
    lines = [(n, row) for n, row in lines if row and any(c.strip() for c in row)]
    if not lines:
        raise InputError(f"{what}: empty; expected a header layer,weight_density,act_density")
    first, header = lines[0]
    header = [h.strip() for h in header]
    if "layer" not in header or not set(header) - {"layer"} <= set(COLUMNS) \
            or len(set(header)) != len(header) or header == ["layer"]:
        raise InputError(f"{what} line {first}: header {','.join(header)!r} is not "
                         "accepted; use layer,weight_density,act_density (one density column "
                         "may be left out)")
    for lineno, row in lines[1:]:
        where = f"{what} line {lineno}"
        if len(row) != len(header):
            raise InputError(f"{where}: {len(row)} fields, the header has {len(header)}")
        cells = dict(zip(header, (c.strip() for c in row)))
        yield (where, cells["layer"],
               *(cells[c] if cells.get(c) else _NOT_GIVEN for c in COLUMNS))


def read_densities_csv(path: str | Path) -> dict[str, Density]:
    """Read ``layer,weight_density,act_density`` rows; errors name the file and line."""
    path = Path(path)
    return _check_rows(_csv_rows(_read_text(path), path))


def parse_densities(densities: Any) -> dict[str, Density]:
    """The densities given, in any accepted form (see the module doc), checked; layers
    not named are not in the result."""
    if densities is None:
        return {}
    if isinstance(densities, (str, os.PathLike)):
        return read_densities_csv(densities)
    if isinstance(densities, pd.DataFrame):
        return _check_rows(_frame_rows(densities, "densities"))
    if isinstance(densities, pd.Series):
        return _check_rows(_mapping_rows(densities.items(), "densities"))
    if isinstance(densities, Mapping):
        return _check_rows(_mapping_rows(densities.items(), "densities"))
    raise InputError(f"densities must be a dict, Series, DataFrame or CSV path, got "
                     f"{type(densities).__name__}")


def resolve_densities(densities: Any, net: Network) -> dict[str, Density]:
    """Densities for every conv/fc layer of ``net`` (1 where not given).

    Raises :class:`InputError` for an unknown layer or a value outside (0, 1].
    """
    given = parse_densities(densities)
    weighted = {layer.name for layer in net.weighted_layers}
    unknown = [name for name in given if name not in weighted]
    if unknown:
        raise InputError(
            f"densities name layer {unknown[0]!r}, which network {net.name!r} does not have "
            "as a conv or fc layer; its conv/fc layers are: " + ", ".join(
                layer.name for layer in net.weighted_layers)
        )
    return {layer.name: given.get(layer.name, Density()) for layer in net.weighted_layers}
