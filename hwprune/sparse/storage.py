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
* ``N:M`` (``2:4``, ``1:4``, ``4:8``, ...; ``nm`` is ``2:4``): ``N`` value slots per
  aligned window of ``M`` columns of a row, each with ``ceil(log2 M)`` bits of
  metadata (its position in the window); the stored size depends only on the shape
  (:func:`nm_storage`; the layout of NVIDIA's sparse tensor cores, Mishra et al.,
  arXiv:2104.08378).
* ``block-RxC`` (``block`` is ``block-4x4``): block sparse rows: ``R x C`` values per
  kept block, one index per kept block, one pointer per block row plus one
  (:func:`block_storage`; scipy's ``bsr_matrix``). ``density`` is the fraction of
  blocks kept.
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

from ..checks import (  # noqa: F401 (the format checks are re-exported with the formats)
    WEIGHT_FORMATS,
    check_block,
    check_density,
    check_group_width,
    check_nm,
    metadata_bits,
    parse_format,
)

FORMATS = WEIGHT_FORMATS
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


def nm_storage(rows: int, cols: int, n: int, m: int, element_bytes: float) -> StorageCost:
    """Bytes of a ``rows x cols`` matrix stored N:M: ``n`` value slots and their
    metadata per window (:func:`metadata_bits` each), whatever the weights."""
    n, m = check_nm(n, m)
    slots = rows * math.ceil(cols / m) * n
    return StorageCost(slots * element_bytes, slots * metadata_bits(m) / 8,
                       rows * cols * element_bytes)


def block_storage(rows: int, cols: int, r: int, c: int, density: float, element_bytes: float,
                  index_bits: int) -> StorageCost:
    """Expected bytes of a ``rows x cols`` matrix with ``density`` of its ``r x c``
    blocks kept: ``r x c`` values per kept block, ``index_bits`` per kept block, and
    one 4-byte pointer per block row plus one."""
    r, c = check_block(r, c)
    density = check_density(density)
    br, bc = math.ceil(rows / r), math.ceil(cols / c)
    kept = density * br * bc
    return StorageCost(kept * r * c * element_bytes,
                       kept * index_bits / 8 + (br + 1) * POINTER_BYTES,
                       rows * cols * element_bytes)


def storage_cost(fmt: str, rows: int, cols: int, density: float, element_bytes: float,
                 index_bits: int, group: int = 1) -> StorageCost:
    """Expected storage of a ``rows x cols`` matrix at ``density`` in format ``fmt``
    (an N:M format ignores ``density``: it keeps ``N / M`` of every row)."""
    kind, params = parse_format(fmt)
    density = check_density(density)
    if kind == "nm":
        return nm_storage(rows, cols, *params, element_bytes)
    if kind == "block":
        return block_storage(rows, cols, *params, density, element_bytes, index_bits)
    fmt = kind
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
