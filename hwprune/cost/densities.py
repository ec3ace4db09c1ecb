"""Per-layer weight and input-activation densities, from Python objects or a CSV file.

Density is the fraction of nonzero elements, in (0, 1]. A layer that is not named
keeps density 1 (dense). Accepted forms:

* a mapping ``{layer: weight_density}``, ``{layer: (weight_density, act_density)}`` or
  ``{layer: {"weight_density": w, "act_density": a}}``;
* a pandas Series of weight densities indexed by layer name;
* a DataFrame with a ``layer`` column (or layer names as index) and
  ``weight_density`` and/or ``act_density`` columns;
* a CSV file with header ``layer,weight_density,act_density`` (either density column
  may be left out; an empty cell means 1).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from ..checks import check_density
from ..errors import InputError
from ..workload.network import Network

COLUMNS = ("weight_density", "act_density")


@dataclass(frozen=True)
class Density:
    """Fractions of nonzero weights and nonzero input activations of one layer."""

    weight: float = 1.0
    act: float = 1.0


def _check(value: Any, what: str, where: str) -> float:
    return check_density(value, f"{where}: {what}")


def _from_mapping(raw: Mapping[str, Any]) -> dict[str, Density]:
    out = {}
    for layer, value in raw.items():
        where = f"densities[{layer!r}]"
        if isinstance(value, Mapping):
            extra = set(value) - set(COLUMNS)
            if extra:
                raise InputError(f"{where}: unknown key {sorted(extra)[0]!r}; accepted: "
                                 + ", ".join(COLUMNS))
            out[str(layer)] = Density(
                _check(value.get("weight_density", 1.0), "weight_density", where),
                _check(value.get("act_density", 1.0), "act_density", where))
        elif isinstance(value, (tuple, list)):
            if len(value) != 2:
                raise InputError(f"{where}: give (weight_density, act_density), got {value!r}")
            out[str(layer)] = Density(_check(value[0], "weight_density", where),
                                      _check(value[1], "act_density", where))
        else:
            out[str(layer)] = Density(_check(value, "weight_density", where))
    return out


def _from_frame(df: pd.DataFrame, where: str) -> dict[str, Density]:
    if "layer" not in df.columns:
        df = df.rename_axis("layer").reset_index()
    unknown = [c for c in df.columns if c not in ("layer", *COLUMNS)]
    if unknown:
        raise InputError(f"{where}: unknown column {unknown[0]!r}; accepted columns: layer, "
                         + ", ".join(COLUMNS))
    if not any(c in df.columns for c in COLUMNS):
        raise InputError(f"{where}: no density column; give weight_density and/or act_density")
    out = {}
    for i, row in enumerate(df.itertuples(index=False)):
        row = row._asdict()
        layer = str(row["layer"]).strip()
        here = f"{where} row {i + 1} ({layer!r})"
        if not layer:
            raise InputError(f"{where} row {i + 1}: empty layer name")
        if layer in out:
            raise InputError(f"{here}: layer named twice")
        values = {}
        for col in COLUMNS:
            cell = row.get(col, None)
            blank = cell is None or (isinstance(cell, float) and math.isnan(cell)) or cell == ""
            values[col] = 1.0 if blank else _check(cell, col, here)
        out[layer] = Density(values["weight_density"], values["act_density"])
    return out


def read_densities_csv(path: str | Path) -> dict[str, Density]:
    """Read ``layer,weight_density,act_density`` rows; errors name the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")     # tolerate a spreadsheet's BOM
    except FileNotFoundError:
        raise InputError(f"densities file {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"densities file {path}: cannot be read as text ({exc})") from None
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        raise InputError(f"densities file {path}: empty; expected a header "
                         "layer,weight_density,act_density")
    header = [h.strip() for h in rows[0]]
    if "layer" not in header or not set(header) - {"layer"} <= set(COLUMNS) \
            or len(set(header)) != len(header) or header == ["layer"]:
        raise InputError(f"densities file {path} line 1: header {','.join(header)!r} is not "
                         "accepted; use layer,weight_density,act_density (one density column "
                         "may be left out)")
    out: dict[str, Density] = {}
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        where = f"densities file {path} line {lineno}"
        if len(row) != len(header):
            raise InputError(f"{where}: {len(row)} fields, the header has {len(header)}")
        cells = dict(zip(header, (c.strip() for c in row)))
        layer = cells["layer"]
        if not layer:
            raise InputError(f"{where}: empty layer name")
        if layer in out:
            raise InputError(f"{where}: layer {layer!r} named twice")
        values = {c: (1.0 if not cells.get(c) else _check(cells[c], c, f"{where} ({layer!r})"))
                  for c in COLUMNS}
        out[layer] = Density(values["weight_density"], values["act_density"])
    return out


def resolve_densities(densities: Any, net: Network) -> dict[str, Density]:
    """Densities for every conv/fc layer of ``net`` (1 where not given).

    Raises :class:`InputError` for an unknown layer or a value outside (0, 1].
    """
    if densities is None:
        given: dict[str, Density] = {}
    elif isinstance(densities, (str, Path)):
        given = read_densities_csv(densities)
    elif isinstance(densities, pd.DataFrame):
        given = _from_frame(densities, "densities")
    elif isinstance(densities, pd.Series):
        given = _from_mapping(densities.to_dict())
    elif isinstance(densities, Mapping):
        given = _from_mapping(densities)
    else:
        raise InputError(f"densities must be a dict, Series, DataFrame or CSV path, got "
                         f"{type(densities).__name__}")
    weighted = {layer.name for layer in net.weighted_layers}
    unknown = [name for name in given if name not in weighted]
    if unknown:
        raise InputError(
            f"densities name layer {unknown[0]!r}, which network {net.name!r} does not have "
            "as a conv or fc layer; its conv/fc layers are: " + ", ".join(
                layer.name for layer in net.weighted_layers)
        )
    return {layer.name: given.get(layer.name, Density()) for layer in net.weighted_layers}
