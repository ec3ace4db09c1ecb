"""Storage formats for pruned weight matrices, all behind one small contract.

A weight matrix is ``rows x cols``: output channels by inputs (for a convolution,
``M x C*R*S``, the ``(M, C, R, S)`` tensor flattened in C order). Every format:

* is built with ``Format.from_dense(weights, mask, ...)`` (the stored matrix is
  ``weights * mask``, float32);
* round-trips exactly: ``to_dense()`` returns ``where(mask, weights, 0)``;
* reports ``storage`` (a :class:`hwprune.sparse.storage.StorageCost`: value bytes,
  index and pointer bytes, dense bytes);
* runs ``matvec(x)`` and ``matmat(X)`` with its numba kernel
  (:mod:`hwprune.sparse.kernels`).

Formats:

``DenseMatrix``
    every element, zeros included.
``CSRMatrix``
    compressed sparse rows with int32 column indices and row pointers.
``GroupCSRMatrix``
    Scalpel's SIMD-aware format (Yu et al., ISCA 2017): each row is cut into aligned
    groups of ``g`` columns; a group with any kept weight is stored whole, values
    contiguous, with one int32 column index per group. With ``g = S`` (one kernel row)
    it is Mao et al.'s *vector* granularity, with ``g = R*S`` (one 2-D kernel) their
    *kernel* granularity; see :func:`granularity_group`.
``CompactMatrix``
    node pruning: rows (neurons, filters) and columns (inputs) with no kept weight are
    physically removed; ``row_index``/``col_index`` map the kept ones back. Mao et al.'s
    *filter* granularity removes whole rows, so it is this format.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..checks import check_group_width
from ..errors import InputError
from ..schemes import Kernel
from . import kernels
from .arrays import as_matrix, as_vector, check_pair, layout_cost
from .masks import random_mask
from .storage import StorageCost


@dataclass(frozen=True, eq=False)
class DenseMatrix:
    """Every element stored (``values[rows, cols]``, float32)."""

    values: np.ndarray
    name: ClassVar[str] = "dense"

    @classmethod
    def from_dense(cls, weights: np.ndarray, mask: np.ndarray) -> "DenseMatrix":
        weights, mask = check_pair(weights, mask)
        return cls(np.where(mask, weights, np.float32(0)))

    @property
    def shape(self) -> tuple[int, int]:
        return self.values.shape

    @property
    def stored_values(self) -> int:
        return self.values.size

    @property
    def storage(self) -> StorageCost:
        return layout_cost(self.values.size, 0, 0, self.shape)

    def to_dense(self) -> np.ndarray:
        return self.values.copy()

    def matvec(self, x: np.ndarray) -> np.ndarray:
        y = np.empty(self.shape[0], dtype=np.float32)
        kernels.dense_matvec(self.values, as_vector(x, self.shape[1]), y)
        return y

    def matmat(self, X: np.ndarray) -> np.ndarray:
        X = as_matrix(X, self.shape[1])
        Y = np.empty((self.shape[0], X.shape[1]), dtype=np.float32)
        kernels.dense_matmat(self.values, X, Y)
        return Y


@dataclass(frozen=True, eq=False)
class CSRMatrix:
    """Compressed sparse rows: ``data[nnz]``, ``indices[nnz]``, ``indptr[rows+1]``."""

    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    shape: tuple[int, int]
    name: ClassVar[str] = "csr"

    @classmethod
    def from_dense(cls, weights: np.ndarray, mask: np.ndarray) -> "CSRMatrix":
        weights, mask = check_pair(weights, mask)
        rows, cols = np.nonzero(mask)          # row-major order
        indptr = np.zeros(weights.shape[0] + 1, dtype=np.int32)
        np.cumsum(np.bincount(rows, minlength=weights.shape[0]), out=indptr[1:])
        return cls(np.ascontiguousarray(weights[rows, cols]), cols.astype(np.int32),
                   indptr, weights.shape)

    @property
    def stored_values(self) -> int:
        return self.data.size

    @property
    def storage(self) -> StorageCost:
        return layout_cost(self.data.size, self.indices.size, self.indptr.size, self.shape)

    def to_dense(self) -> np.ndarray:
        out = np.zeros(self.shape, dtype=np.float32)
        rows = np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))
        out[rows, self.indices] = self.data
        return out

    def matvec(self, x: np.ndarray) -> np.ndarray:
        y = np.empty(self.shape[0], dtype=np.float32)
        kernels.csr_matvec(self.data, self.indices, self.indptr, as_vector(x, self.shape[1]), y)
        return y

    def matmat(self, X: np.ndarray) -> np.ndarray:
        X = as_matrix(X, self.shape[1])
        Y = np.empty((self.shape[0], X.shape[1]), dtype=np.float32)
        kernels.csr_matmat(self.data, self.indices, self.indptr, X, Y)
        return Y


@dataclass(frozen=True, eq=False)
class GroupCSRMatrix:
    """Aligned groups of ``g`` columns kept or removed whole: ``data[groups, g]``,
    ``group_col[groups]`` (first column), ``indptr[rows+1]`` (in groups)."""

    data: np.ndarray
    group_col: np.ndarray
    indptr: np.ndarray
    shape: tuple[int, int]
    group: int
    name: ClassVar[str] = "group-csr"

    @classmethod
    def from_dense(cls, weights: np.ndarray, mask: np.ndarray, group: int) -> "GroupCSRMatrix":
        weights, mask = check_pair(weights, mask)
        group = check_group_width(group)
        rows, cols = weights.shape
        n_groups = math.ceil(cols / group)
        padded = n_groups * group
        w = np.zeros((rows, padded), dtype=np.float32)
        w[:, :cols] = np.where(mask, weights, np.float32(0))
        m = np.zeros((rows, padded), dtype=np.bool_)
        m[:, :cols] = mask
        kept = m.reshape(rows, n_groups, group).any(axis=2)       # rows x groups
        grow, gidx = np.nonzero(kept)
        indptr = np.zeros(rows + 1, dtype=np.int32)
        np.cumsum(kept.sum(axis=1), out=indptr[1:])
        data = np.ascontiguousarray(w.reshape(rows, n_groups, group)[grow, gidx])
        return cls(data, (gidx * group).astype(np.int32), indptr, (rows, cols), int(group))

    @property
    def stored_values(self) -> int:
        return self.data.size

    @property
    def storage(self) -> StorageCost:
        return layout_cost(self.data.size, self.group_col.size, self.indptr.size, self.shape)

    def _padded_cols(self) -> int:
        return math.ceil(self.shape[1] / self.group) * self.group

    def to_dense(self) -> np.ndarray:
        out = np.zeros((self.shape[0], self._padded_cols()), dtype=np.float32)
        rows = np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))
        cols = self.group_col[:, None] + np.arange(self.group)[None, :]
        out[rows[:, None], cols] = self.data
        return out[:, :self.shape[1]]

    def matvec(self, x: np.ndarray) -> np.ndarray:
        x = as_vector(x, self.shape[1])
        padded = self._padded_cols()
        if padded != x.size:
            x = np.concatenate([x, np.zeros(padded - x.size, dtype=np.float32)])
        y = np.empty(self.shape[0], dtype=np.float32)
        kernel = kernels.group_matvec8 if self.group == 8 else kernels.group_matvec
        kernel(self.data, self.group_col, self.indptr, x, y)
        return y

    def matmat(self, X: np.ndarray) -> np.ndarray:
        X = as_matrix(X, self.shape[1])
        padded = self._padded_cols()
        if padded != X.shape[0]:
            X = np.concatenate([X, np.zeros((padded - X.shape[0], X.shape[1]), np.float32)])
        Y = np.empty((self.shape[0], X.shape[1]), dtype=np.float32)
        kernels.group_matmat(self.data, self.group_col, self.indptr, X, Y)
        return Y


@dataclass(frozen=True, eq=False)
class CompactMatrix:
    """Node pruning: the kept rows and columns as a smaller dense matrix, with
    ``row_index``/``col_index`` (int32) mapping them back to the full shape."""

    values: np.ndarray
    row_index: np.ndarray
    col_index: np.ndarray
    shape: tuple[int, int]
    name: ClassVar[str] = "compact"

    @classmethod
    def from_dense(cls, weights: np.ndarray, mask: np.ndarray) -> "CompactMatrix":
        weights, mask = check_pair(weights, mask)
        rows = np.flatnonzero(mask.any(axis=1)).astype(np.int32)
        cols = np.flatnonzero(mask.any(axis=0)).astype(np.int32)
        sub = np.where(mask, weights, np.float32(0))[np.ix_(rows, cols)]
        return cls(np.ascontiguousarray(sub), rows, cols, weights.shape)

    @property
    def stored_values(self) -> int:
        return self.values.size

    @property
    def storage(self) -> StorageCost:
        return layout_cost(self.values.size, self.row_index.size + self.col_index.size, 0,
                           self.shape)

    def to_dense(self) -> np.ndarray:
        out = np.zeros(self.shape, dtype=np.float32)
        out[np.ix_(self.row_index, self.col_index)] = self.values
        return out

    def matvec(self, x: np.ndarray) -> np.ndarray:
        y = np.empty(self.shape[0], dtype=np.float32)
        kernels.compact_matvec(self.values, self.row_index, self.col_index,
                               as_vector(x, self.shape[1]), y)
        return y

    def matmat(self, X: np.ndarray) -> np.ndarray:
        X = as_matrix(X, self.shape[1])
        Y = np.empty((self.shape[0], X.shape[1]), dtype=np.float32)
        kernels.compact_matmat(self.values, self.row_index, self.col_index, X, Y)
        return Y


SparseMatrix = DenseMatrix | CSRMatrix | GroupCSRMatrix | CompactMatrix
GRANULARITIES = ("fine", "vector", "kernel", "filter")


def granularity_group(granularity: str, kernel: tuple[int, int]) -> int:
    """Group width that stores Mao et al.'s ``vector`` (one kernel row, ``S``) or
    ``kernel`` (one 2-D kernel, ``R*S``) blocks in a :class:`GroupCSRMatrix`."""
    if granularity == "vector":
        return kernel[1]
    if granularity == "kernel":
        return kernel[0] * kernel[1]
    raise InputError(f"granularity {granularity!r} has no group width; 'vector' and "
                     "'kernel' are stored as groups, 'fine' as CSR, 'filter' compacted")


def make_matrix(fmt: str, weights: np.ndarray, mask: np.ndarray, group: int = 8) -> SparseMatrix:
    """Build format ``fmt`` (``dense``, ``csr``, ``group-csr``, ``compact``)."""
    if fmt == "dense":
        return DenseMatrix.from_dense(weights, mask)
    if fmt == "csr":
        return CSRMatrix.from_dense(weights, mask)
    if fmt == "group-csr":
        return GroupCSRMatrix.from_dense(weights, mask, group)
    if fmt == "compact":
        return CompactMatrix.from_dense(weights, mask)
    raise InputError(f"unknown format {fmt!r}; accepted: dense, csr, group-csr, compact")


def random_matrix(kernel: Kernel, rows: int, cols: int, density: float,
                  rng: np.random.Generator, group: int = 1) -> SparseMatrix:
    """A random ``rows x cols`` weight matrix in ``kernel``'s format, pruned at
    ``density`` with that format's structure: single weights (dense, csr), aligned
    groups of ``group`` columns (group-csr), whole rows (compact). The access pattern
    of a kernel does not depend on the values, so the simulators run on these."""
    weights = rng.standard_normal((rows, cols)).astype(np.float32)
    kernel = Kernel(kernel)
    if kernel in (Kernel.DENSE, Kernel.CSR):
        return make_matrix(kernel.value, weights, random_mask("fine", rows, cols, density, rng))
    if kernel is Kernel.COMPACT:
        return CompactMatrix.from_dense(weights, random_mask("rows", rows, cols, density, rng))
    mask = random_mask("group", rows, cols, density, rng, group)
    return GroupCSRMatrix.from_dense(weights, mask, group)


def conv2d(matrix: SparseMatrix, x: np.ndarray, kernel: tuple[int, int],
           stride: tuple[int, int] = (1, 1), padding: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Convolution of ``x[C, H, W]`` with a weight matrix ``M x C*R*S`` in any format:
    im2col, then the format's ``matmat``. Returns ``y[M, E, F]`` (one group)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise InputError(f"convolution input must be (C, H, W), got shape {x.shape}")
    c, h, w = x.shape
    r, s = kernel
    if min(stride) < 1 or min(padding) < 0 or min(kernel) < 1:
        raise InputError(f"kernel and stride must be >= 1 and padding >= 0, got kernel {kernel}, "
                         f"stride {stride}, padding {padding}")
    if matrix.shape[1] != c * r * s:
        raise InputError(f"weight matrix has {matrix.shape[1]} columns, but C*R*S = "
                         f"{c}*{r}*{s} = {c * r * s}")
    out_h = (h + 2 * padding[0] - r) // stride[0] + 1
    out_w = (w + 2 * padding[1] - s) // stride[1] + 1
    if out_h < 1 or out_w < 1:
        raise InputError(f"kernel {kernel} does not fit input {h}x{w} with padding {padding}")
    cols = kernels.im2col(x, r, s, stride[0], stride[1], padding[0], padding[1], out_h, out_w)
    return matrix.matmat(cols).reshape(matrix.shape[0], out_h, out_w)
