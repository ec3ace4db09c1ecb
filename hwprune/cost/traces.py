"""Address traces of hwprune's kernels, access for access, for the cache simulator.

Each generator emits the loads and stores of one kernel of
:mod:`hwprune.sparse.kernels` in the order its source performs them (for
``a += w * x[idx]``: the weight, the index, then the input; for ``Y[i, k] += ...``:
``Y`` is loaded, then the operand, then ``Y`` is stored). Arrays are laid out one after
another, each aligned to 4 KiB, exactly as large as the kernel's arrays; every
element access is 4 bytes (float32 values, int32 indices).

Traces stream: generators yield chunks of whole rows (at most about ``CHUNK``
accesses each), so a trace of any length needs bounded memory.

Structure ids: 0 weights (values), 1 indices (column indices, group columns, row
pointers, index maps), 2 inputs (x, X, im2col columns, gathered inputs, lane
accumulators), 3 outputs (y, Y).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np
from numba import njit

from ..errors import InputError
from ..sparse import formats as F

STRUCTURES = ("weights", "indices", "inputs", "outputs")
W_ID, IDX_ID, IN_ID, OUT_ID = range(4)
CHUNK = 1 << 22
ALIGN = 4096
BASE = 1 << 28


@dataclass(frozen=True)
class Chunk:
    """One piece of a trace: byte addresses, sizes, write flags, structure ids."""

    addr: np.ndarray
    size: np.ndarray
    is_write: np.ndarray
    struct: np.ndarray

    def __len__(self) -> int:
        return self.addr.shape[0]


def layout(*nbytes: int, start: int = BASE) -> list[int]:
    """Base addresses for arrays of the given sizes, each aligned to 4 KiB, from
    ``start``; the last entry is the first free address after them."""
    bases, cursor = [], start
    for n in nbytes:
        bases.append(cursor)
        cursor += -(-max(n, 1) // ALIGN) * ALIGN
    return bases + [cursor]


@njit(cache=True)
def _emit(addr, write, struct, k, a, w, s):
    addr[k] = a
    write[k] = w
    struct[k] = s
    return k + 1


# ---------------------------------------------------------------------- matvec traces


@njit(cache=True)
def _dense_matvec(rows, cols, r0, r1, bw, bx, by, addr, write, struct):
    k = 0
    for i in range(r0, r1):
        for j in range(cols):
            k = _emit(addr, write, struct, k, bw + 4 * (i * cols + j), False, W_ID)
            k = _emit(addr, write, struct, k, bx + 4 * j, False, IN_ID)
        k = _emit(addr, write, struct, k, by + 4 * i, True, OUT_ID)
    return k


@njit(cache=True)
def _csr_matvec(indptr, indices, r0, r1, bw, bi, bp, bx, by, addr, write, struct):
    k = 0
    for i in range(r0, r1):
        k = _emit(addr, write, struct, k, bp + 4 * i, False, IDX_ID)
        k = _emit(addr, write, struct, k, bp + 4 * (i + 1), False, IDX_ID)
        for p in range(indptr[i], indptr[i + 1]):
            k = _emit(addr, write, struct, k, bw + 4 * p, False, W_ID)
            k = _emit(addr, write, struct, k, bi + 4 * p, False, IDX_ID)
            k = _emit(addr, write, struct, k, bx + 4 * indices[p], False, IN_ID)
        k = _emit(addr, write, struct, k, by + 4 * i, True, OUT_ID)
    return k


@njit(cache=True)
def _group_lanes(q, g, c, bw, bx, addr, write, struct, k):
    for t in range(g):
        k = _emit(addr, write, struct, k, bw + 4 * (q * g + t), False, W_ID)
        k = _emit(addr, write, struct, k, bx + 4 * (c + t), False, IN_ID)
    return k


@njit(cache=True)
def _group8_matvec(indptr, group_col, r0, r1, bw, bc, bp, bx, by, addr, write, struct):
    """:func:`hwprune.sparse.kernels.group_matvec8`: two groups per step."""
    k = 0
    for i in range(r0, r1):
        k = _emit(addr, write, struct, k, bp + 4 * i, False, IDX_ID)
        k = _emit(addr, write, struct, k, bp + 4 * (i + 1), False, IDX_ID)
        q = indptr[i]
        end = indptr[i + 1]
        while q + 1 < end:
            k = _emit(addr, write, struct, k, bc + 4 * q, False, IDX_ID)
            k = _emit(addr, write, struct, k, bc + 4 * (q + 1), False, IDX_ID)
            k = _group_lanes(q, 8, group_col[q], bw, bx, addr, write, struct, k)
            k = _group_lanes(q + 1, 8, group_col[q + 1], bw, bx, addr, write, struct, k)
            q += 2
        if q < end:
            k = _emit(addr, write, struct, k, bc + 4 * q, False, IDX_ID)
            k = _group_lanes(q, 8, group_col[q], bw, bx, addr, write, struct, k)
        k = _emit(addr, write, struct, k, by + 4 * i, True, OUT_ID)
    return k


@njit(cache=True)
def _group_matvec(indptr, group_col, g, r0, r1, bw, bc, bp, bx, by, bl, addr, write, struct):
    """:func:`hwprune.sparse.kernels.group_matvec` (any g): lane accumulators in memory."""
    k = 0
    for i in range(r0, r1):
        for t in range(g):
            k = _emit(addr, write, struct, k, bl + 4 * t, True, IN_ID)
        k = _emit(addr, write, struct, k, bp + 4 * i, False, IDX_ID)
        k = _emit(addr, write, struct, k, bp + 4 * (i + 1), False, IDX_ID)
        for q in range(indptr[i], indptr[i + 1]):
            k = _emit(addr, write, struct, k, bc + 4 * q, False, IDX_ID)
            c = group_col[q]
            for t in range(g):
                k = _emit(addr, write, struct, k, bl + 4 * t, False, IN_ID)
                k = _emit(addr, write, struct, k, bw + 4 * (q * g + t), False, W_ID)
                k = _emit(addr, write, struct, k, bx + 4 * (c + t), False, IN_ID)
                k = _emit(addr, write, struct, k, bl + 4 * t, True, IN_ID)
        for t in range(g):
            k = _emit(addr, write, struct, k, bl + 4 * t, False, IN_ID)
        k = _emit(addr, write, struct, k, by + 4 * i, True, OUT_ID)
    return k


@njit(cache=True)
def _compact_gather(col_index, bci, bx, bxc, by, rows, addr, write, struct):
    """Prologue of compact_matvec: gather the kept inputs, zero the output."""
    k = 0
    for j in range(col_index.shape[0]):
        k = _emit(addr, write, struct, k, bci + 4 * j, False, IDX_ID)
        k = _emit(addr, write, struct, k, bx + 4 * col_index[j], False, IN_ID)
        k = _emit(addr, write, struct, k, bxc + 4 * j, True, IN_ID)
    for i in range(rows):
        k = _emit(addr, write, struct, k, by + 4 * i, True, OUT_ID)
    return k


@njit(cache=True)
def _compact_matvec(row_index, kept_cols, r0, r1, bw, bri, bxc, by, addr, write, struct):
    k = 0
    for i in range(r0, r1):
        for j in range(kept_cols):
            k = _emit(addr, write, struct, k, bw + 4 * (i * kept_cols + j), False, W_ID)
            k = _emit(addr, write, struct, k, bxc + 4 * j, False, IN_ID)
        k = _emit(addr, write, struct, k, bri + 4 * i, False, IDX_ID)
        k = _emit(addr, write, struct, k, by + 4 * row_index[i], True, OUT_ID)
    return k


# ---------------------------------------------------------------------- matmat traces


@njit(cache=True)
def _zero_row(i, n, by, addr, write, struct, k):
    for c in range(n):
        k = _emit(addr, write, struct, k, by + 4 * (i * n + c), True, OUT_ID)
    return k


@njit(cache=True)
def _axpy(i, row, n, bx, by, addr, write, struct, k):
    """``Y[i, :] += w * X[row, :]``: load Y, load X, store Y per column."""
    for c in range(n):
        k = _emit(addr, write, struct, k, by + 4 * (i * n + c), False, OUT_ID)
        k = _emit(addr, write, struct, k, bx + 4 * (row * n + c), False, IN_ID)
        k = _emit(addr, write, struct, k, by + 4 * (i * n + c), True, OUT_ID)
    return k


@njit(cache=True)
def _dense_matmat(cols, n, r0, r1, bw, bx, by, addr, write, struct):
    k = 0
    for i in range(r0, r1):
        k = _zero_row(i, n, by, addr, write, struct, k)
        for j in range(cols):
            k = _emit(addr, write, struct, k, bw + 4 * (i * cols + j), False, W_ID)
            k = _axpy(i, j, n, bx, by, addr, write, struct, k)
    return k


@njit(cache=True)
def _csr_matmat(indptr, indices, n, r0, r1, bw, bi, bp, bx, by, addr, write, struct):
    k = 0
    for i in range(r0, r1):
        k = _zero_row(i, n, by, addr, write, struct, k)
        k = _emit(addr, write, struct, k, bp + 4 * i, False, IDX_ID)
        k = _emit(addr, write, struct, k, bp + 4 * (i + 1), False, IDX_ID)
        for p in range(indptr[i], indptr[i + 1]):
            k = _emit(addr, write, struct, k, bw + 4 * p, False, W_ID)
            k = _emit(addr, write, struct, k, bi + 4 * p, False, IDX_ID)
            k = _axpy(i, indices[p], n, bx, by, addr, write, struct, k)
    return k


@njit(cache=True)
def _group_matmat(indptr, group_col, g, n, r0, r1, bw, bc, bp, bx, by, addr, write, struct):
    k = 0
    for i in range(r0, r1):
        k = _zero_row(i, n, by, addr, write, struct, k)
        k = _emit(addr, write, struct, k, bp + 4 * i, False, IDX_ID)
        k = _emit(addr, write, struct, k, bp + 4 * (i + 1), False, IDX_ID)
        for q in range(indptr[i], indptr[i + 1]):
            k = _emit(addr, write, struct, k, bc + 4 * q, False, IDX_ID)
            c = group_col[q]
            for t in range(g):
                k = _emit(addr, write, struct, k, bw + 4 * (q * g + t), False, W_ID)
                k = _axpy(i, c + t, n, bx, by, addr, write, struct, k)
    return k


@njit(cache=True)
def _compact_matmat(row_index, col_index, n, r0, r1, rows_full, bw, bri, bci, bx, by, addr,
                    write, struct):
    k = 0
    if r0 == 0:
        for i in range(rows_full):
            k = _zero_row(i, n, by, addr, write, struct, k)
    kept_cols = col_index.shape[0]
    for i in range(r0, r1):
        k = _emit(addr, write, struct, k, bri + 4 * i, False, IDX_ID)
        r = row_index[i]
        for j in range(kept_cols):
            k = _emit(addr, write, struct, k, bw + 4 * (i * kept_cols + j), False, W_ID)
            k = _emit(addr, write, struct, k, bci + 4 * j, False, IDX_ID)
            k = _axpy(r, col_index[j], n, bx, by, addr, write, struct, k)
    return k


@njit(cache=True)
def _im2col_zero(n, row0, row1, bcols, addr, write, struct):
    """np.zeros of the im2col columns, rows row0..row1."""
    k = 0
    for row in range(row0, row1):
        for e in range(n):
            k = _emit(addr, write, struct, k, bcols + 4 * (row * n + e), True, IN_ID)
    return k


@njit(cache=True)
def _im2col(channels, height, width, kh, kw, sh, sw, ph, pw, out_h, out_w, c0, c1, bx, bcols,
            addr, write, struct):
    """:func:`hwprune.sparse.kernels.im2col` filling channels c0..c1 (after zeroing)."""
    k = 0
    n = out_h * out_w
    for c in range(c0, c1):
        for r in range(kh):
            for s in range(kw):
                row = (c * kh + r) * kw + s
                for e in range(out_h):
                    h = e * sh - ph + r
                    if h < 0 or h >= height:
                        continue
                    for f in range(out_w):
                        w = f * sw - pw + s
                        if 0 <= w < width:
                            k = _emit(addr, write, struct, k, bx + 4 * ((c * height + h) * width + w),
                                      False, IN_ID)
                            k = _emit(addr, write, struct, k, bcols + 4 * (row * n + e * out_w + f),
                                      True, IN_ID)
    return k


# ------------------------------------------------------------------------ drivers


def _buffers(n: int):
    return (np.empty(n, dtype=np.int64), np.empty(n, dtype=np.bool_), np.empty(n, dtype=np.int64))


def _chunks(total_rows: int, per_row: float, step, window: tuple[int, int] | None = None
            ) -> Iterator[Chunk]:
    first, last = window if window is not None else (0, total_rows)
    rows_per_chunk = max(1, int(CHUNK // max(per_row, 1.0)))
    for r0 in range(first, last, rows_per_chunk):
        r1 = min(last, r0 + rows_per_chunk)
        addr, write, struct = step(r0, r1)
        yield Chunk(addr, np.full(addr.shape[0], 4, dtype=np.int64), write, struct)


def _run(fn, capacity, *args) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    addr, write, struct = _buffers(int(capacity))
    k = fn(*args, addr, write, struct)
    return addr[:k], write[:k], struct[:k]


def matvec_trace(matrix: F.SparseMatrix, rows: tuple[int, int] | None = None) -> Iterator[Chunk]:
    """The access sequence of ``matrix.matvec(x)``; ``rows=(first, stop)`` gives only the
    accesses of those output rows (for compact matrices: of those kept rows, and the
    input gather only when ``first`` is 0)."""
    window = rows
    rows, cols = matrix.shape
    if window is not None:
        limit = matrix.values.shape[0] if isinstance(matrix, F.CompactMatrix) else rows
        if not 0 <= window[0] <= window[1] <= limit:
            raise InputError(f"row window {window} is outside the matrix's {limit} rows")
    if isinstance(matrix, F.DenseMatrix):
        bw, bx, by, _ = layout(rows * cols * 4, cols * 4, rows * 4)
        per_row = 2 * cols + 1
        return _chunks(rows, per_row, lambda r0, r1: _run(
            _dense_matvec, (r1 - r0) * per_row, rows, cols, r0, r1, bw, bx, by), window)
    if isinstance(matrix, F.CSRMatrix):
        bw, bi, bp, bx, by, _ = layout(matrix.data.nbytes, matrix.indices.nbytes,
                                       matrix.indptr.nbytes, cols * 4, rows * 4)
        ip = matrix.indptr
        per_row = 3 * matrix.data.size / max(rows, 1) + 3
        return _chunks(rows, per_row, lambda r0, r1: _run(
            _csr_matvec, 3 * (ip[r1] - ip[r0]) + 3 * (r1 - r0), ip, matrix.indices, r0, r1,
            bw, bi, bp, bx, by), window)
    if isinstance(matrix, F.GroupCSRMatrix):
        g = matrix.group
        padded = -(-cols // g) * g
        bw, bc, bp, bx, by, bl, _ = layout(matrix.data.nbytes, matrix.group_col.nbytes,
                                           matrix.indptr.nbytes, padded * 4, rows * 4, g * 4)
        ip, gc = matrix.indptr, matrix.group_col
        if g == 8:
            per_row = 17 * (ip[-1] / max(rows, 1)) + 3
            return _chunks(rows, per_row, lambda r0, r1: _run(
                _group8_matvec, 17 * (ip[r1] - ip[r0]) + 3 * (r1 - r0), ip, gc, r0, r1,
                bw, bc, bp, bx, by), window)
        per_row = (4 * g + 1) * (ip[-1] / max(rows, 1)) + 2 * g + 3
        return _chunks(rows, per_row, lambda r0, r1: _run(
            _group_matvec, (4 * g + 1) * (ip[r1] - ip[r0]) + (2 * g + 3) * (r1 - r0), ip, gc,
            g, r0, r1, bw, bc, bp, bx, by, bl), window)
    if isinstance(matrix, F.CompactMatrix):
        kr, kc = matrix.values.shape
        bw, bri, bci, bx, bxc, by, _ = layout(matrix.values.nbytes, matrix.row_index.nbytes,
                                              matrix.col_index.nbytes, cols * 4, kc * 4,
                                              rows * 4)

        def chunks() -> Iterator[Chunk]:
            if window is None or window[0] == 0:
                addr, write, struct = _run(_compact_gather, 3 * kc + rows, matrix.col_index,
                                           bci, bx, bxc, by, rows)
                yield Chunk(addr, np.full(addr.shape[0], 4, dtype=np.int64), write, struct)
            yield from _chunks(kr, 2 * kc + 2, lambda r0, r1: _run(
                _compact_matvec, (r1 - r0) * (2 * kc + 2), matrix.row_index, kc, r0, r1, bw,
                bri, bxc, by), window)
        return chunks()
    raise InputError(f"no trace generator for {type(matrix).__name__}")


def matmat_trace(matrix: F.SparseMatrix, n: int, x_base: int | None = None,
                 start: int = BASE) -> Iterator[Chunk]:
    """The access sequence of ``matrix.matmat(X)`` with ``X`` of ``n`` columns, arrays
    laid out from ``start``. ``x_base`` places ``X`` instead (for a convolution, where
    im2col wrote it)."""
    rows, cols = matrix.shape
    group = getattr(matrix, "group", 1)
    x_rows = -(-cols // group) * group
    if isinstance(matrix, F.DenseMatrix):
        w_bytes, idx_bytes, ptr_bytes = matrix.values.nbytes, 4, 4
    elif isinstance(matrix, F.CSRMatrix):
        w_bytes, idx_bytes, ptr_bytes = matrix.data.nbytes, matrix.indices.nbytes, matrix.indptr.nbytes
    elif isinstance(matrix, F.GroupCSRMatrix):
        w_bytes, idx_bytes, ptr_bytes = (matrix.data.nbytes, matrix.group_col.nbytes,
                                         matrix.indptr.nbytes)
    elif isinstance(matrix, F.CompactMatrix):
        w_bytes, idx_bytes, ptr_bytes = (matrix.values.nbytes, matrix.row_index.nbytes,
                                         matrix.col_index.nbytes)
    else:
        raise InputError(f"no trace generator for {type(matrix).__name__}")
    bw, bi, bp, bx, by, _ = layout(w_bytes, idx_bytes, ptr_bytes, x_rows * n * 4, rows * n * 4,
                                   start=start)
    if x_base is not None:
        bx = x_base
    if isinstance(matrix, F.DenseMatrix):
        per_row = n + cols * (1 + 3 * n)
        return _chunks(rows, per_row, lambda r0, r1: _run(
            _dense_matmat, (r1 - r0) * per_row, cols, n, r0, r1, bw, bx, by))
    if isinstance(matrix, F.CSRMatrix):
        ip = matrix.indptr
        return _chunks(rows, n + 2 + (2 + 3 * n) * ip[-1] / max(rows, 1), lambda r0, r1: _run(
            _csr_matmat, (n + 2) * (r1 - r0) + (2 + 3 * n) * (ip[r1] - ip[r0]), ip,
            matrix.indices, n, r0, r1, bw, bi, bp, bx, by))
    if isinstance(matrix, F.GroupCSRMatrix):
        ip, g = matrix.indptr, matrix.group
        return _chunks(rows, n + 2 + (1 + g * (1 + 3 * n)) * ip[-1] / max(rows, 1),
                       lambda r0, r1: _run(
                           _group_matmat, (n + 2) * (r1 - r0) + (1 + g * (1 + 3 * n))
                           * (ip[r1] - ip[r0]), ip, matrix.group_col, g, n, r0, r1, bw, bi, bp,
                           bx, by))
    kr, kc = matrix.values.shape
    return _chunks(kr, 1 + kc * (2 + 3 * n), lambda r0, r1: _run(
        _compact_matmat, (r1 - r0) * (1 + kc * (2 + 3 * n)) + (rows * n if r0 == 0 else 0),
        matrix.row_index, matrix.col_index, n, r0, r1, rows, bw, bi, bp, bx, by))


def conv_layout_bytes(matrix: F.SparseMatrix, in_shape: tuple[int, int, int],
                      out_elements: int) -> int:
    """Bytes of address space one convolution trace lays out (input, columns, the
    matmat's arrays), so that a next group can start after it."""
    group = getattr(matrix, "group", 1)
    rows, cols = matrix.shape
    x_rows = -(-cols // group) * group
    total = [math.prod(in_shape) * 4, x_rows * out_elements * 4, matrix.storage.total_bytes + 8,
             x_rows * out_elements * 4, rows * out_elements * 4, 3 * ALIGN]
    return layout(*total, start=0)[-1] + 4 * ALIGN


def conv_trace(matrix: F.SparseMatrix, in_shape: tuple[int, int, int], kernel: tuple[int, int],
               stride: tuple[int, int] = (1, 1), padding: tuple[int, int] = (0, 0),
               start: int = BASE) -> Iterator[Chunk]:
    """The access sequence of :func:`hwprune.sparse.formats.conv2d`: im2col, then the
    format's matmat on the columns. The input and the columns are laid out from
    ``start``, the matmat's weights, indices and output after them."""
    c, h, w = in_shape
    kh, kw = kernel
    out_h = (h + 2 * padding[0] - kh) // stride[0] + 1
    out_w = (w + 2 * padding[1] - kw) // stride[1] + 1
    n = out_h * out_w
    group = getattr(matrix, "group", 1)
    x_rows = -(-(c * kh * kw) // group) * group
    bx, bcols, after = layout(c * h * w * 4, x_rows * n * 4, start=start)
    per_channel = kh * kw * n * 2

    def chunks() -> Iterator[Chunk]:
        yield from _chunks(c * kh * kw, n, lambda r0, r1: _run(
            _im2col_zero, (r1 - r0) * n, n, r0, r1, bcols))
        yield from _chunks(c, per_channel, lambda c0, c1: _run(
            _im2col, (c1 - c0) * per_channel, c, h, w, kh, kw, stride[0], stride[1], padding[0],
            padding[1], out_h, out_w, c0, c1, bx, bcols))
        yield from matmat_trace(matrix, n, x_base=bcols, start=after)
    return chunks()
