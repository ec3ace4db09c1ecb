"""Numba kernels that execute each storage format, and numpy references for them.

Every kernel is single-threaded, ``nopython`` and cached (``cache=True``), and
accumulates in float32. Most use ``fastmath``, which lets LLVM reorder the float32
sums so that inner loops vectorize; the CSR matrix-vector kernel does not (vectorizing
its gather was slower). Results equal the numpy references within float32 rounding,
not bit for bit.

Matrix layouts (all C-contiguous):

* dense: ``values[rows, cols]``
* CSR: ``data[nnz]``, ``indices[nnz]`` (int32 column), ``indptr[rows + 1]`` (int32)
* group CSR (Scalpel's SIMD-aware format, and Mao et al.'s vector/kernel blocks):
  ``data[groups, g]``, ``group_col[groups]`` (int32 first column of the group),
  ``indptr[rows + 1]`` (int32, in groups); the input is padded to a multiple of g
* compacted dense (node pruning): ``values[kept_rows, kept_cols]`` with
  ``row_index`` and ``col_index`` (int32) mapping back to the full shape

Indices are converted to unsigned integers before they index an array: numba then
skips its negative-index wraparound check, which otherwise costs about a third of the
CSR inner loop.

``matvec`` computes ``y = W x`` (batch-1 fully connected), ``matmat`` ``Y = W X`` with
``X[cols, n]`` (batched fully connected; im2col convolution), and
:func:`conv2d` a convolution by im2col followed by ``matmat``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, uint64

ONE = uint64(1)

# ----------------------------------------------------------------------------- dense


@njit(cache=True, fastmath=True)
def dense_matvec(values, x, y):
    rows, cols = values.shape
    for i in range(rows):
        acc = np.float32(0.0)
        for j in range(cols):
            acc += values[i, j] * x[j]
        y[i] = acc


@njit(cache=True, fastmath=True)
def dense_matmat(values, X, Y):
    rows, cols = values.shape
    n = X.shape[1]
    for i in range(rows):
        for k in range(n):
            Y[i, k] = 0.0
        for j in range(cols):
            w = values[i, j]
            for k in range(n):
                Y[i, k] += w * X[j, k]


# ------------------------------------------------------------------------------- CSR


@njit(cache=True)
def csr_matvec(data, indices, indptr, x, y):
    """Four independent accumulators per row (no fastmath: reordering would let LLVM
    emit gathers, which are slow on the AMD cores measured here)."""
    rows = indptr.shape[0] - 1
    four = uint64(4)
    for i in range(rows):
        a0 = a1 = a2 = a3 = np.float32(0.0)
        p = uint64(indptr[i])
        end = uint64(indptr[i + 1])
        while p + four <= end:
            a0 += data[p] * x[uint64(indices[p])]
            a1 += data[p + ONE] * x[uint64(indices[p + ONE])]
            a2 += data[p + uint64(2)] * x[uint64(indices[p + uint64(2)])]
            a3 += data[p + uint64(3)] * x[uint64(indices[p + uint64(3)])]
            p += four
        while p < end:
            a0 += data[p] * x[uint64(indices[p])]
            p += ONE
        y[i] = (a0 + a1) + (a2 + a3)


@njit(cache=True, fastmath=True)
def csr_matmat(data, indices, indptr, X, Y):
    rows = indptr.shape[0] - 1
    n = X.shape[1]
    for i in range(rows):
        for k in range(n):
            Y[i, k] = 0.0
        for p in range(uint64(indptr[i]), uint64(indptr[i + 1])):
            w = data[p]
            c = uint64(indices[p])
            for k in range(n):
                Y[i, k] += w * X[c, k]


# ------------------------------------------------------------------------- group CSR


@njit(cache=True, fastmath=True)
def group_matvec(data, group_col, indptr, x_padded, y):
    rows = indptr.shape[0] - 1
    g = data.shape[1]
    lanes = np.zeros(g, dtype=np.float32)
    for i in range(rows):
        lanes[:] = 0.0
        for q in range(uint64(indptr[i]), uint64(indptr[i + 1])):
            c = uint64(group_col[q])
            for t in range(g):
                lanes[t] += data[q, t] * x_padded[c + uint64(t)]
        acc = np.float32(0.0)
        for t in range(g):
            acc += lanes[t]
        y[i] = acc


@njit(cache=True, fastmath=True)
def group_matvec8(data, group_col, indptr, x_padded, y):
    """:func:`group_matvec` for g = 8 (one AVX2 register of float32): two sets of
    eight scalar accumulators over alternate groups, so that two independent chains
    of multiply-adds are in flight."""
    rows = indptr.shape[0] - 1
    two = uint64(2)
    for i in range(rows):
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = np.float32(0.0)
        b0 = b1 = b2 = b3 = b4 = b5 = b6 = b7 = np.float32(0.0)
        q = uint64(indptr[i])
        end = uint64(indptr[i + 1])
        while q + ONE < end:
            c = uint64(group_col[q])
            r = q + ONE
            d = uint64(group_col[r])
            a0 += data[q, 0] * x_padded[c]
            a1 += data[q, 1] * x_padded[c + ONE]
            a2 += data[q, 2] * x_padded[c + uint64(2)]
            a3 += data[q, 3] * x_padded[c + uint64(3)]
            a4 += data[q, 4] * x_padded[c + uint64(4)]
            a5 += data[q, 5] * x_padded[c + uint64(5)]
            a6 += data[q, 6] * x_padded[c + uint64(6)]
            a7 += data[q, 7] * x_padded[c + uint64(7)]
            b0 += data[r, 0] * x_padded[d]
            b1 += data[r, 1] * x_padded[d + ONE]
            b2 += data[r, 2] * x_padded[d + uint64(2)]
            b3 += data[r, 3] * x_padded[d + uint64(3)]
            b4 += data[r, 4] * x_padded[d + uint64(4)]
            b5 += data[r, 5] * x_padded[d + uint64(5)]
            b6 += data[r, 6] * x_padded[d + uint64(6)]
            b7 += data[r, 7] * x_padded[d + uint64(7)]
            q += two
        if q < end:
            c = uint64(group_col[q])
            a0 += data[q, 0] * x_padded[c]
            a1 += data[q, 1] * x_padded[c + ONE]
            a2 += data[q, 2] * x_padded[c + uint64(2)]
            a3 += data[q, 3] * x_padded[c + uint64(3)]
            a4 += data[q, 4] * x_padded[c + uint64(4)]
            a5 += data[q, 5] * x_padded[c + uint64(5)]
            a6 += data[q, 6] * x_padded[c + uint64(6)]
            a7 += data[q, 7] * x_padded[c + uint64(7)]
        y[i] = (((a0 + b0) + (a1 + b1)) + ((a2 + b2) + (a3 + b3))) \
            + (((a4 + b4) + (a5 + b5)) + ((a6 + b6) + (a7 + b7)))


@njit(cache=True, fastmath=True)
def group_matmat(data, group_col, indptr, X_padded, Y):
    rows = indptr.shape[0] - 1
    g = data.shape[1]
    n = X_padded.shape[1]
    for i in range(rows):
        for k in range(n):
            Y[i, k] = 0.0
        for q in range(uint64(indptr[i]), uint64(indptr[i + 1])):
            c = uint64(group_col[q])
            for t in range(g):
                w = data[q, t]
                for k in range(n):
                    Y[i, k] += w * X_padded[c + uint64(t), k]


# ------------------------------------------------------------------ compacted dense


@njit(cache=True, fastmath=True)
def compact_matvec(values, row_index, col_index, x, y):
    kept_rows, kept_cols = values.shape
    xc = np.empty(kept_cols, dtype=np.float32)
    for j in range(kept_cols):
        xc[j] = x[uint64(col_index[j])]
    y[:] = 0.0
    for i in range(kept_rows):
        acc = np.float32(0.0)
        for j in range(kept_cols):
            acc += values[i, j] * xc[j]
        y[uint64(row_index[i])] = acc


@njit(cache=True, fastmath=True)
def compact_matmat(values, row_index, col_index, X, Y):
    kept_rows, kept_cols = values.shape
    n = X.shape[1]
    Y[:, :] = 0.0
    for i in range(kept_rows):
        r = uint64(row_index[i])
        for j in range(kept_cols):
            w = values[i, j]
            c = uint64(col_index[j])
            for k in range(n):
                Y[r, k] += w * X[c, k]


# ------------------------------------------------------------------------ convolution


@njit(cache=True)
def im2col(x, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, out_h, out_w):
    """``x[C, H, W]`` -> ``cols[C*R*S, E*F]`` (zero padding), the layout whose rows
    match a weight matrix ``W[M, C*R*S]`` flattened from ``(M, C, R, S)``."""
    channels, height, width = x.shape
    cols = np.zeros((channels * kernel_h * kernel_w, out_h * out_w), dtype=np.float32)
    for c in range(channels):
        for r in range(kernel_h):
            for s in range(kernel_w):
                row = (c * kernel_h + r) * kernel_w + s
                for e in range(out_h):
                    h = e * stride_h - pad_h + r
                    if h < 0 or h >= height:
                        continue
                    for f in range(out_w):
                        w = f * stride_w - pad_w + s
                        if 0 <= w < width:
                            cols[row, e * out_w + f] = x[c, h, w]
    return cols


# ------------------------------------------------------------------------- references


def reference_matvec(weights: np.ndarray, mask: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``(weights * mask) @ x`` in float64, the reference every kernel is tested against."""
    return (np.where(mask, weights, 0).astype(np.float64) @ x.astype(np.float64))


def reference_matmat(weights: np.ndarray, mask: np.ndarray, X: np.ndarray) -> np.ndarray:
    return np.where(mask, weights, 0).astype(np.float64) @ X.astype(np.float64)


def reference_conv2d(x: np.ndarray, weights4d: np.ndarray, stride: tuple[int, int],
                     padding: tuple[int, int]) -> np.ndarray:
    """Direct convolution with numpy sliding windows: ``x[C,H,W]``, ``w[M,C,R,S]``."""
    ph, pw = padding
    xp = np.pad(x.astype(np.float64), ((0, 0), (ph, ph), (pw, pw)))
    r, s = weights4d.shape[2:]
    windows = np.lib.stride_tricks.sliding_window_view(xp, (r, s), axis=(1, 2))
    windows = windows[:, ::stride[0], ::stride[1]]          # C, E, F, R, S
    return np.einsum("cefrs,mcrs->mef", windows, weights4d.astype(np.float64))
