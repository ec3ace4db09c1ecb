"""2-D block sparsity: the weight matrix cut into aligned ``r x c`` blocks, each kept or
removed whole (block-sparse GEMM kernels, Gray et al., "GPU Kernels for Block-Sparse
Weights", OpenAI 2017; scipy's ``bsr_matrix`` stores the same layout).

* :func:`block_mask`: the ``density`` fraction of blocks with the highest total score
  (ties: the earlier block in row-major order); blocks at the right or bottom edge of
  a matrix whose sides ``r`` or ``c`` do not divide are smaller.
* :class:`BlockMatrix`: block sparse rows: ``data[blocks, r, c]`` (a kept block stored
  whole, zeros included), ``indices[blocks]`` (int32 block column) and
  ``indptr[block_rows + 1]`` (int32), the matrix zero-padded to whole blocks; small
  narrow or tall blocks (:func:`uses_column_kernel`) also keep their values column by
  column (``columns``) for :func:`column_kernel`, which the matvec then runs.
* :func:`block_storage`: its bytes at a density: the kept blocks' values, one index per
  kept block and the block-row pointers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import numpy as np
from numba import njit, uint64

from ..checks import (
    check_block,  # noqa: F401 (re-exported)
    check_density,
)
from ..errors import InputError
from .arrays import as_matrix, as_vector, check_pair, layout_cost
from .storage import StorageCost, block_storage  # noqa: F401 (re-exported)


def _block_sums(scores: np.ndarray, r: int, c: int) -> np.ndarray:
    rows, cols = scores.shape
    br, bc = math.ceil(rows / r), math.ceil(cols / c)
    padded = np.zeros((br * r, bc * c))
    padded[:rows, :cols] = scores
    return padded.reshape(br, r, bc, c).sum(axis=(1, 3))


def block_mask(scores: np.ndarray, r: int, c: int, density: float) -> np.ndarray:
    """Boolean mask keeping ``round(density x blocks)`` whole ``r x c`` blocks (at least
    one), those with the highest summed ``scores`` (2-D, non-negative)."""
    r, c = check_block(r, c)
    density = check_density(density)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise InputError(f"block scores must be 2-D (rows x cols), got shape {scores.shape}")
    sums = _block_sums(scores, r, c)
    keep_count = max(1, round(density * sums.size))
    order = np.argsort(-sums.ravel(), kind="stable")[:keep_count]
    kept = np.zeros(sums.size, dtype=np.bool_)
    kept[order] = True
    kept = kept.reshape(sums.shape)
    full = np.repeat(np.repeat(kept, r, axis=0), c, axis=1)
    return full[:scores.shape[0], :scores.shape[1]]


@njit(cache=True, fastmath=True)
def block_matvec(data, indices, indptr, x_padded, y_padded):
    """``y = W x`` for block sparse rows; ``x`` and ``y`` padded to whole blocks."""
    n_block_rows = indptr.shape[0] - 1
    r = data.shape[1]
    c = data.shape[2]
    for bi in range(n_block_rows):
        row0 = bi * r
        for k in range(r):
            y_padded[row0 + k] = 0.0
        for p in range(indptr[bi], indptr[bi + 1]):
            col0 = uint64(indices[p]) * uint64(c)
            block = data[p]
            for k in range(r):
                acc = np.float32(0.0)
                for j in range(c):
                    acc += block[k, j] * x_padded[col0 + uint64(j)]
                y_padded[row0 + k] += acc


COLUMN_KERNEL_MAX = 32
"""Largest block (weights) that :func:`column_kernel` runs; see :func:`uses_column_kernel`."""


def uses_column_kernel(r: int, c: int) -> bool:
    """Whether an ``r x c`` block runs :func:`column_kernel`: narrow blocks (``c <= 4``)
    and tall ones (``r >= c``) of at most :data:`COLUMN_KERNEL_MAX` weights. On the
    AlexNet fc6/fc7 shapes at 10% (``benchmarks/bench_kernels.py``) it beat the
    row-major kernel on 4x4, 8x4, 4x2, 2x2 and 8x1 blocks, and lost on 2x8, 8x8 and
    16x16, whose long rows the row-major kernel already vectorizes."""
    return r * c <= COLUMN_KERNEL_MAX and (c <= 4 or r >= c)


@lru_cache(maxsize=None)
def column_kernel(r: int, c: int):
    """A matvec kernel compiled for ``r x c`` blocks stored column by column
    (``columns[p * r * c + r * j + k] = block_p[k, j]``): per block, each input value
    ``x[j]`` is loaded once and multiplies the block's column into ``r`` accumulators
    that stay in registers for the whole block row (``r`` and ``c`` are compile-time
    constants, so LLVM unrolls and vectorizes the column). Compiled on first use in a
    process (numba cannot cache a closure on disk)."""
    rows, cols, size = r, c, r * c

    @njit(fastmath=True)
    def kernel(columns, indices, indptr, x_padded, y_padded):
        acc = np.zeros(rows, dtype=np.float32)
        for bi in range(indptr.shape[0] - 1):
            for k in range(rows):
                acc[k] = 0.0
            for p in range(indptr[bi], indptr[bi + 1]):
                c0 = indices[p] * cols
                o = p * size
                for j in range(cols):
                    xj = x_padded[c0 + j]
                    for k in range(rows):
                        acc[k] += columns[o + rows * j + k] * xj
            for k in range(rows):
                y_padded[bi * rows + k] = acc[k]
    return kernel


@njit(cache=True, fastmath=True)
def block_matmat(data, indices, indptr, X_padded, Y_padded):
    """``Y = W X`` with ``X[cols_padded, batch]``."""
    n_block_rows = indptr.shape[0] - 1
    r = data.shape[1]
    c = data.shape[2]
    batch = X_padded.shape[1]
    for bi in range(n_block_rows):
        for k in range(r):
            for b in range(batch):
                Y_padded[bi * r + k, b] = 0.0
        for p in range(indptr[bi], indptr[bi + 1]):
            col0 = indices[p] * c
            for k in range(r):
                for j in range(c):
                    w = data[p, k, j]
                    for b in range(batch):
                        Y_padded[bi * r + k, b] += w * X_padded[col0 + j, b]


@dataclass(frozen=True, eq=False)
class BlockMatrix:
    """Block sparse rows (see the module docstring)."""

    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    shape: tuple[int, int]
    block: tuple[int, int]
    columns: np.ndarray | None = None
    name: ClassVar[str] = "block"

    @classmethod
    def from_dense(cls, weights: np.ndarray, mask: np.ndarray, r: int, c: int) -> "BlockMatrix":
        """Store ``weights * mask``; a block with any kept weight is stored whole."""
        r, c = check_block(r, c)
        weights, mask = check_pair(weights, mask)
        rows, cols = weights.shape
        br, bc = math.ceil(rows / r), math.ceil(cols / c)
        w = np.zeros((br * r, bc * c), dtype=np.float32)
        w[:rows, :cols] = np.where(mask, weights, 0)
        m = np.zeros((br * r, bc * c), dtype=np.bool_)
        m[:rows, :cols] = mask
        kept = m.reshape(br, r, bc, c).any(axis=(1, 3))
        bi, bj = np.nonzero(kept)                            # row-major
        indptr = np.zeros(br + 1, dtype=np.int32)
        np.cumsum(kept.sum(axis=1), out=indptr[1:])
        data = np.ascontiguousarray(w.reshape(br, r, bc, c).transpose(0, 2, 1, 3)[bi, bj],
                                    dtype=np.float32)
        columns = (np.ascontiguousarray(data.transpose(0, 2, 1)).reshape(-1)
                   if uses_column_kernel(r, c) else None)
        return cls(data, bj.astype(np.int32), indptr, (rows, cols), (r, c), columns)

    @property
    def stored_values(self) -> int:
        return self.data.size

    @property
    def storage(self) -> StorageCost:
        return layout_cost(self.data.size, self.indices.size, self.indptr.size, self.shape)

    def _padded(self) -> tuple[int, int]:
        r, c = self.block
        return (self.indptr.size - 1) * r, math.ceil(self.shape[1] / c) * c

    def to_dense(self) -> np.ndarray:
        r, c = self.block
        rows_p, cols_p = self._padded()
        out = np.zeros((rows_p // r, r, cols_p // c, c), dtype=np.float32)
        bi = np.repeat(np.arange(self.indptr.size - 1), np.diff(self.indptr))
        out[bi, :, self.indices, :] = self.data
        return out.reshape(rows_p, cols_p)[:self.shape[0], :self.shape[1]]

    def matvec(self, x: np.ndarray) -> np.ndarray:
        rows_p, cols_p = self._padded()
        xp = np.zeros(cols_p, dtype=np.float32)
        xp[:self.shape[1]] = as_vector(x, self.shape[1])
        y = np.empty(rows_p, dtype=np.float32)
        if self.columns is not None:
            column_kernel(*self.block)(self.columns, self.indices, self.indptr, xp, y)
        else:
            block_matvec(self.data, self.indices, self.indptr, xp, y)
        return y[:self.shape[0]]

    def matmat(self, X: np.ndarray) -> np.ndarray:
        X = as_matrix(X, self.shape[1])
        rows_p, cols_p = self._padded()
        Xp = np.zeros((cols_p, X.shape[1]), dtype=np.float32)
        Xp[:self.shape[1]] = X
        Y = np.empty((rows_p, X.shape[1]), dtype=np.float32)
        block_matmat(self.data, self.indices, self.indptr, Xp, Y)
        return Y[:self.shape[0]]
