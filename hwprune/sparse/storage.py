"""Storage size of a pruned weight matrix in each format, in bytes, from its density.

These are the expected sizes the energy model charges; they count values, indices
and pointers exactly as the formats lay them out:

* ``dense``: every element, zeros included.
* ``csr``: one value and one column index per nonzero, plus ``rows + 1`` row
  pointers of 4 bytes (int32).
* ``simd-group`` (Scalpel, Yu et al. ISCA 2017): weights kept or removed in aligned
  groups of ``group`` along a row; one column index per kept group, values stored
  contiguously per group, plus ``rows + 1`` int32 row pointers. Assumes the matrix
  was pruned by whole groups, so ``density`` is the fraction of groups kept.
* ``rle`` (run-length coding, as Eyeriss codes feature maps, Chen et al. JSSC 2017
  IV-B): one (run, value) pair per nonzero, with an extra pair whenever a run of zeros
  exceeds the largest run the index can hold. For zeros placed independently with
  probability ``1 - density``, the expected number of extra pairs per nonzero is
  ``q^L / (1 - q^L)`` with ``q = 1 - density`` and ``L = 2^index_bits``.

A weight matrix is ``rows x cols``: output channels by (input channels x kernel taps)
of one group.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..checks import check_density, check_group_width
from ..errors import InputError

FORMATS = ("dense", "csr", "simd-group", "rle")
POINTER_BYTES = 4


@dataclass(frozen=True)
class StorageCost:
    """Bytes of one stored weight matrix.

    Attributes:
        value_bytes: bytes of stored values (nonzeros, or kept groups, or all).
        index_bytes: bytes of indices, run lengths and pointers.
        dense_bytes: bytes of the same matrix stored dense.
    """

    value_bytes: float
    index_bytes: float
    dense_bytes: float

    @property
    def total_bytes(self) -> float:
        return self.value_bytes + self.index_bytes

    @property
    def value_ratio(self) -> float:
        """Stored value bytes per dense byte (fraction)."""
        return self.value_bytes / self.dense_bytes

    @property
    def index_ratio(self) -> float:
        """Index and pointer bytes per dense byte (fraction)."""
        return self.index_bytes / self.dense_bytes


def storage_cost(fmt: str, rows: int, cols: int, density: float, element_bytes: float,
                 index_bits: int, group: int = 1) -> StorageCost:
    """Expected storage of a ``rows x cols`` matrix at ``density`` in format ``fmt``."""
    if fmt not in FORMATS:
        raise InputError(f"unknown weight format {fmt!r}; accepted: " + ", ".join(FORMATS))
    density = check_density(density)
    dense = rows * cols * element_bytes
    if fmt == "dense":
        return StorageCost(dense, 0.0, dense)
    index_bytes = index_bits / 8
    nnz = density * rows * cols
    pointers = (rows + 1) * POINTER_BYTES
    if fmt == "csr":
        return StorageCost(nnz * element_bytes, nnz * index_bytes + pointers, dense)
    if fmt == "simd-group":
        group = check_group_width(group)
        groups_per_row = math.ceil(cols / group)
        kept = density * rows * groups_per_row
        return StorageCost(kept * group * element_bytes, kept * index_bytes + pointers, dense)
    q = 1.0 - density
    longest = 2 ** index_bits
    extra = 0.0 if q == 0 else q ** longest / (1.0 - q ** longest)
    pairs = nnz * (1.0 + extra)
    return StorageCost(pairs * element_bytes, pairs * index_bytes, dense)


def activation_ratio(fmt: str, density: float, element_bytes: float, index_bits: int) -> float:
    """Stored bytes per dense byte of an activation tensor at ``density`` (fraction).

    A run-length coder is only worth using when it shrinks the data, so the ratio is
    capped at 1 (a dense feature map is sent uncoded).
    """
    if fmt == "dense":
        return 1.0
    cost = storage_cost("rle", 1, 1_000_000, density, element_bytes, index_bits)
    return min(1.0, cost.total_bytes / cost.dense_bytes)
