"""Random pruning masks at a given density and granularity.

Used where hwprune needs *a* mask of a given structure rather than one chosen by an
importance criterion: the kernel benchmark and the cache simulator. Granularities:

* ``fine``: each weight kept independently with probability ``density``;
* ``group``: aligned groups of ``group`` columns kept or removed whole (Scalpel's
  SIMD groups; Mao et al.'s vector and kernel blocks);
* ``rows``: whole rows (neurons, filters) kept or removed (node pruning).
"""

from __future__ import annotations

import math

import numpy as np

from ..checks import check_density, check_group_width
from ..errors import InputError

GRANULARITIES = ("fine", "group", "rows")


def random_mask(granularity: str, rows: int, cols: int, density: float,
                rng: np.random.Generator, group: int = 1) -> np.ndarray:
    """A ``rows x cols`` boolean mask keeping about ``density`` of the weights."""
    density = check_density(density)
    if density >= 1.0:
        return np.ones((rows, cols), dtype=np.bool_)
    if granularity == "fine":
        return rng.random((rows, cols)) < density
    if granularity == "rows":
        return np.repeat((rng.random(rows) < density)[:, None], cols, axis=1)
    if granularity == "group":
        group = check_group_width(group)
        keep = rng.random((rows, math.ceil(cols / group))) < density
        return np.repeat(keep, group, axis=1)[:, :cols]
    raise InputError(f"unknown granularity {granularity!r}; accepted: " + ", ".join(GRANULARITIES))
