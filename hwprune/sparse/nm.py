"""N:M structured sparsity: at most N kept weights in every M consecutive weights of a
weight row (2:4 is what NVIDIA's Ampere and Hopper sparse tensor cores run at twice the
dense math rate, with 2 bits of metadata per kept value; Mishra et al., "Accelerating
Sparse Deep Neural Networks", arXiv:2104.08378, 2021).

A weight row is the reduction dimension of a layer: a fully connected row, or a
convolution's im2col row ``C x R x S`` flattened in C order (the dimension sparse
tensor cores compress). Rows are cut into aligned *windows* of ``M`` columns; a last
window shorter than ``M`` (a row length that ``M`` does not divide) keeps at most
``min(N, its length)``.

* :func:`nm_mask`: the ``N`` best-scoring weights of every window (ties: the lower
  column).
* :class:`NMMatrix`: the compressed layout hardware uses: ``values[rows, windows x N]``
  and ``meta[rows, windows x N]`` (uint8, each kept value's position in its window);
  a window with fewer than ``N`` kept weights stores zeros in its free slots, as the
  hardware does (the stored size depends only on the shape).
* :func:`nm_storage`: its bytes: ``N / M`` of the values, plus ``ceil(log2 M)`` bits of
  metadata per stored value (2:4: 2 bits).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numba import njit, uint64

from ..checks import check_nm, metadata_bits  # noqa: F401 (re-exported)
from ..errors import InputError
from .arrays import VALUE_BYTES, as_matrix, as_vector, check_pair
from .storage import StorageCost, nm_storage  # noqa: F401 (re-exported)

ONE = uint64(1)


def nm_mask(scores: np.ndarray, n: int, m: int) -> np.ndarray:
    """Boolean mask keeping the ``n`` highest ``scores`` of every aligned window of
    ``m`` consecutive columns of each row (2-D ``rows x cols``; ties keep the lower
    column); a last, shorter window keeps ``min(n, its length)``."""
    n, m = check_nm(n, m)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise InputError(f"N:M scores must be 2-D (rows x cols), got shape {scores.shape}")
    rows, cols = scores.shape
    windows = math.ceil(cols / m)
    padded = np.full((rows, windows * m), -np.inf)
    padded[:, :cols] = scores
    by_window = padded.reshape(rows, windows, m)
    # stable sort of the negated scores: the highest first, the lower column on ties
    order = np.argsort(-by_window, axis=2, kind="stable")[:, :, :n]
    keep = np.zeros_like(by_window, dtype=np.bool_)
    np.put_along_axis(keep, order, True, axis=2)
    keep &= np.isfinite(by_window)              # the padding of a short last window
    return keep.reshape(rows, windows * m)[:, :cols]


@njit(cache=True)
def _nm_row(values, meta, i, n, m, x):
    """One row's dot product (the odd last row of :func:`nm_matvec`)."""
    acc = np.float32(0.0)
    base = uint64(0)
    j = uint64(0)
    end = uint64(values.shape[1])
    while j < end:
        for _ in range(n):
            acc += values[i, j] * x[base + uint64(meta[i, j])]
            j += ONE
        base += uint64(m)
    return acc


@njit(cache=True)
def nm_matvec(values, meta, n, m, x, y):
    """``y = W x`` for ``values[rows, windows * n]`` and ``meta`` (each value's position
    in its window of ``m``). Two rows at a time, one accumulator each (two independent
    chains in flight); unsigned indices (no
    wraparound check); no fastmath (as the CSR kernel: reordering makes LLVM emit slow
    gathers)."""
    rows, length = values.shape
    mm = uint64(m)
    end = uint64(length)
    i = 0
    while i + 1 < rows:
        a = np.float32(0.0)
        b = np.float32(0.0)
        base = uint64(0)
        j = uint64(0)
        while j < end:
            for _ in range(n):
                a += values[i, j] * x[base + uint64(meta[i, j])]
                b += values[i + 1, j] * x[base + uint64(meta[i + 1, j])]
                j += ONE
            base += mm
        y[i] = a
        y[i + 1] = b
        i += 2
    if i < rows:
        y[i] = _nm_row(values, meta, i, n, m, x)


@njit(cache=True)
def nm2_matvec(values, meta, m, x, y):
    """:func:`nm_matvec` for ``n = 2`` (2:4, 2:8), unrolled: two rows at a time, a
    window's two values in one step."""
    rows, length = values.shape
    mm = uint64(m)
    two = uint64(2)
    end = uint64(length)
    i = 0
    while i + 1 < rows:
        a0 = np.float32(0.0)
        a1 = np.float32(0.0)
        b0 = np.float32(0.0)
        b1 = np.float32(0.0)
        base = uint64(0)
        j = uint64(0)
        while j < end:
            a0 += values[i, j] * x[base + uint64(meta[i, j])]
            a1 += values[i, j + ONE] * x[base + uint64(meta[i, j + ONE])]
            b0 += values[i + 1, j] * x[base + uint64(meta[i + 1, j])]
            b1 += values[i + 1, j + ONE] * x[base + uint64(meta[i + 1, j + ONE])]
            j += two
            base += mm
        y[i] = a0 + a1
        y[i + 1] = b0 + b1
        i += 2
    if i < rows:
        y[i] = _nm_row(values, meta, i, 2, m, x)


@njit(cache=True, fastmath=True)
def nm_matmat(values, meta, n, m, X, Y):
    """``Y = W X`` with ``X[cols, batch]``."""
    rows, length = values.shape
    batch = X.shape[1]
    for i in range(rows):
        for b in range(batch):
            Y[i, b] = 0.0
        for j in range(length):
            w = values[i, j]
            row = X[(j // n) * m + meta[i, j]]
            for b in range(batch):
                Y[i, b] += w * row[b]


@dataclass(frozen=True, eq=False)
class NMMatrix:
    """A weight matrix in N:M layout (see the module docstring)."""

    values: np.ndarray
    meta: np.ndarray
    shape: tuple[int, int]
    n: int
    m: int
    name: ClassVar[str] = "nm"

    @classmethod
    def from_dense(cls, weights: np.ndarray, mask: np.ndarray, n: int, m: int) -> "NMMatrix":
        """Store ``weights * mask``; the mask must keep at most ``n`` weights per window."""
        n, m = check_nm(n, m)
        weights, mask = check_pair(weights, mask)
        rows, cols = weights.shape
        windows = math.ceil(cols / m)
        keep = np.zeros((rows, windows * m), dtype=np.bool_)
        keep[:, :cols] = mask
        keep = keep.reshape(rows, windows, m)
        per_window = keep.sum(axis=2)
        if per_window.max(initial=0) > n:
            r, g = np.unravel_index(int(per_window.argmax()), per_window.shape)
            raise InputError(f"the mask keeps {per_window[r, g]} weights in window {g} of row {r} "
                             f"(columns {g * m}..{min(cols, g * m + m) - 1}); {n}:{m} storage "
                             f"holds at most {n} per {m}")
        w = np.zeros((rows, windows * m), dtype=np.float32)
        w[:, :cols] = np.where(mask, weights, np.float32(0))
        w = w.reshape(rows, windows, m)
        # kept positions first (in column order), then free slots pointing at column 0
        order = np.argsort(~keep, axis=2, kind="stable")[:, :, :n]
        meta = np.where(np.take_along_axis(keep, order, axis=2), order, 0).astype(np.uint8)
        values = np.where(np.take_along_axis(keep, order, axis=2),
                          np.take_along_axis(w, order, axis=2), np.float32(0))
        return cls(np.ascontiguousarray(values.reshape(rows, windows * n), dtype=np.float32),
                   np.ascontiguousarray(meta.reshape(rows, windows * n)), (rows, cols), n, m)

    @property
    def stored_values(self) -> int:
        return self.values.size

    @property
    def storage(self) -> StorageCost:
        return nm_storage(*self.shape, self.n, self.m, VALUE_BYTES)

    def to_dense(self) -> np.ndarray:
        rows, length = self.values.shape
        out = np.zeros((rows, length // self.n * self.m), dtype=np.float32)
        cols = np.arange(length)[None, :] // self.n * self.m + self.meta
        np.add.at(out, (np.repeat(np.arange(rows), length), cols.ravel()), self.values.ravel())
        return out[:, :self.shape[1]]

    def matvec(self, x: np.ndarray) -> np.ndarray:
        x = as_vector(x, self.shape[1])
        y = np.empty(self.shape[0], dtype=np.float32)
        if self.n == 2:
            nm2_matvec(self.values, self.meta, self.m, x, y)
        else:
            nm_matvec(self.values, self.meta, self.n, self.m, x, y)
        return y

    def matmat(self, X: np.ndarray) -> np.ndarray:
        X = as_matrix(X, self.shape[1])
        Y = np.empty((self.shape[0], X.shape[1]), dtype=np.float32)
        nm_matmat(self.values, self.meta, self.n, self.m, X, Y)
        return Y
