"""Measure every storage format's kernel on this machine, beside scipy and numpy.

For each layer shape and density, each format runs on a weight matrix pruned at that
density with the format's own granularity: single weights for ``csr`` and scipy,
aligned groups of 8 for ``group-csr``, kernel rows (``vector``) and whole kernels
(``kernel``) for convolutions, whole rows (output neurons or filters) for
``compact``. The dense baselines (hwprune's ``dense`` kernel and numpy/BLAS with one
thread and with all threads) run on the fine-grained masked matrix.

Fully connected shapes run a matrix-vector product (batch 1). Convolution shapes run
im2col and then a matrix-matrix product; im2col is timed for every format alike.

Each time is the median of repeated calls (at least ``repeats`` calls and 0.2 s).
The single-thread streaming read bandwidth of the machine is measured in the same
run. The break-even density of a format is the highest density at which it beats
one-thread BLAS dense, interpolated on a log scale between measured densities
(NaN: never faster at the measured densities).
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse
from numba import njit
from threadpoolctl import threadpool_limits

from ..errors import InputError
from . import formats as F
from .kernels import im2col
from .masks import random_mask


@dataclass(frozen=True)
class Shape:
    """A benchmark layer: ``rows x cols`` weights; convolutions also give the input
    ``(C, H, W)``, kernel, stride and padding."""

    name: str
    rows: int
    cols: int
    conv_input: tuple[int, int, int] | None = None
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)

    @property
    def is_conv(self) -> bool:
        return self.conv_input is not None


SHAPES = (
    Shape("alexnet-fc6", 4096, 9216),
    Shape("alexnet-fc7", 4096, 4096),
    Shape("lenet300-fc1", 300, 784),
    Shape("alexnet-conv3", 384, 256 * 9, (256, 13, 13), (3, 3), (1, 1), (1, 1)),
    Shape("lenet5-conv2", 50, 20 * 25, (20, 12, 12), (5, 5)),
)
QUICK_SHAPES = ("alexnet-fc7", "lenet300-fc1", "lenet5-conv2")
DENSITIES = (1.0, 0.5, 0.3, 0.2, 0.1, 0.05, 0.02, 0.01)
QUICK_DENSITIES = (1.0, 0.3, 0.1, 0.02)
STORAGE = ("dense", "csr", "group-csr", "vector", "kernel", "compact", "scipy-csr",
           "numpy-1t", "numpy-mt")
BASELINE = "numpy-1t"
GROUP = 8


@njit(cache=True, fastmath=True)
def _stream_sum(a):
    acc = np.float32(0.0)
    for i in range(a.size):
        acc += a[i]
    return acc


def _median_time(call: Callable[[], object], repeats: int, budget_s: float = 0.2) -> float:
    call()
    times = []
    start = time.perf_counter()
    while len(times) < repeats or (time.perf_counter() - start < budget_s and len(times) < 200):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def stream_bandwidth(megabytes: int = 256, repeats: int = 5) -> float:
    """Single-thread streaming read bandwidth, GB/s (1e9 bytes per second)."""
    a = np.ones(megabytes * 2**20 // 4, dtype=np.float32)
    return a.nbytes / _median_time(lambda: _stream_sum(a), repeats) / 1e9


def _mask(kind: str, shape: Shape, density: float, rng: np.random.Generator) -> np.ndarray:
    """A random mask with the granularity of storage ``kind``."""
    if kind in ("rows", "fine"):
        return random_mask(kind, shape.rows, shape.cols, density, rng)
    block = {"group-csr": GROUP, "vector": shape.kernel[1],
             "kernel": shape.kernel[0] * shape.kernel[1]}[kind]
    return random_mask("group", shape.rows, shape.cols, density, rng, block)


def _storage_for(shape: Shape, storage: Sequence[str]) -> list[str]:
    chosen = [s for s in storage if shape.is_conv or s not in ("vector", "kernel")]
    return [s for s in chosen if not (s in ("vector", "kernel") and shape.kernel == (1, 1))]


def run(shapes: Sequence[Shape] = SHAPES, densities: Sequence[float] = DENSITIES,
        storage: Sequence[str] = STORAGE, repeats: int = 7, seed: int = 0,
        progress: Callable[[str], None] | None = None) -> tuple[pd.DataFrame, float]:
    """Run the benchmark. Returns one row per (shape, density, storage) and the
    streaming bandwidth in GB/s.

    Columns: ``shape``, ``op`` (``matvec``/``conv``), ``density`` (target),
    ``storage``, ``stored_density`` (stored values per dense element, zeros in kept
    groups included), ``median_s`` (per call), ``gb_s`` (matrix, index, input and
    output bytes per second), ``ns_per_value`` (per stored value), ``speedup``
    (one-thread BLAS time / this time, same shape and density), ``breakeven_density``
    (see the module docstring).
    """
    unknown = [s for s in storage if s not in STORAGE]
    if unknown:
        raise InputError(f"unknown storage {unknown[0]!r}; accepted: " + ", ".join(STORAGE))
    rng = np.random.default_rng(seed)
    rows_out = []
    for shape in shapes:
        weights = rng.standard_normal((shape.rows, shape.cols)).astype(np.float32)
        if shape.is_conv:
            x_in = rng.standard_normal(shape.conv_input).astype(np.float32)
            c, h, w = shape.conv_input
            out_h = (h + 2 * shape.padding[0] - shape.kernel[0]) // shape.stride[0] + 1
            out_w = (w + 2 * shape.padding[1] - shape.kernel[1]) // shape.stride[1] + 1
            cols_args = (*shape.kernel, *shape.stride, *shape.padding, out_h, out_w)
            in_bytes = x_in.nbytes
            out_bytes = shape.rows * out_h * out_w * 4
        else:
            x_in = rng.standard_normal(shape.cols).astype(np.float32)
            in_bytes, out_bytes = x_in.nbytes, shape.rows * 4
        for density in densities:
            fine = _mask("fine", shape, density, rng)
            for name in _storage_for(shape, storage):
                if progress:
                    progress(f"{shape.name} density {density:g} {name}")
                call, stored, matrix_bytes = _prepare(name, shape, weights, fine, density,
                                                      rng, x_in, cols_args if shape.is_conv
                                                      else None)
                with threadpool_limits(limits=None if name == "numpy-mt" else 1,
                                       user_api="blas"):
                    median = _median_time(call, repeats)
                rows_out.append({
                    "shape": shape.name, "op": "conv" if shape.is_conv else "matvec",
                    "density": density, "storage": name,
                    "stored_density": stored / (shape.rows * shape.cols),
                    "median_s": median,
                    "gb_s": (matrix_bytes + in_bytes + out_bytes) / median / 1e9,
                    "ns_per_value": median / max(stored, 1) * 1e9,
                })
    df = pd.DataFrame(rows_out)
    base = df[df["storage"] == BASELINE].set_index(["shape", "density"])["median_s"]
    df["speedup"] = [base.get((s, d), np.nan) / t
                     for s, d, t in zip(df["shape"], df["density"], df["median_s"])]
    breakeven = {key: breakeven_density(group.sort_values("density"))
                 for key, group in df.groupby(["shape", "storage"])}
    df["breakeven_density"] = [breakeven[(s, f)] for s, f in zip(df["shape"], df["storage"])]
    return df, stream_bandwidth()


def _prepare(name, shape, weights, fine, density, rng, x_in, cols_args):
    """(call, stored values, matrix bytes) for one storage at one density."""
    def conv_or_matvec(matvec, matmat):
        if cols_args is None:
            return lambda: matvec(x_in)
        return lambda: matmat(im2col(x_in, *cols_args))

    if name in ("numpy-1t", "numpy-mt"):
        dense = np.where(fine, weights, np.float32(0))
        return conv_or_matvec(dense.dot, dense.dot), dense.size, dense.nbytes
    if name == "scipy-csr":
        matrix = scipy.sparse.csr_matrix(np.where(fine, weights, np.float32(0)))
        nbytes = matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes
        return conv_or_matvec(matrix.dot, matrix.dot), matrix.nnz, nbytes
    if name in ("dense", "csr"):
        matrix = F.make_matrix(name, weights, fine)
    elif name == "compact":
        matrix = F.CompactMatrix.from_dense(weights, _mask("rows", shape, density, rng))
    else:
        mask = _mask(name, shape, density, rng)
        group = {"group-csr": GROUP, "vector": shape.kernel[1],
                 "kernel": shape.kernel[0] * shape.kernel[1]}[name]
        matrix = F.GroupCSRMatrix.from_dense(weights, mask, group)
    return (conv_or_matvec(matrix.matvec, matrix.matmat), matrix.stored_values,
            matrix.storage.total_bytes)


def breakeven_density(rows: pd.DataFrame) -> float:
    """Highest density where ``speedup`` >= 1, interpolated in log density between the
    neighbouring measurements; NaN if never (rows sorted by density, ascending)."""
    dens = rows["density"].to_numpy()
    speed = rows["speedup"].to_numpy()
    faster = speed >= 1.0
    if not faster.any():
        return float("nan")
    top = np.flatnonzero(faster).max()
    if top == len(dens) - 1:
        return float(dens[top])
    d0, d1, s0, s1 = dens[top], dens[top + 1], speed[top], speed[top + 1]
    frac = (s0 - 1.0) / (s0 - s1)
    return float(math.exp(math.log(d0) + frac * (math.log(d1) - math.log(d0))))


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (shape, storage): the break-even density and the speedup at 10%."""
    at10 = df[df["density"] == 0.1].set_index(["shape", "storage"])["speedup"]
    out = df.groupby(["shape", "storage"], sort=False)["breakeven_density"].first().reset_index()
    out["speedup_at_0.1"] = [at10.get((s, f), np.nan) for s, f in zip(out["shape"], out["storage"])]
    return out


def shapes_by_name(names: Sequence[str]) -> list[Shape]:
    known = {s.name: s for s in SHAPES}
    missing = [n for n in names if n not in known]
    if missing:
        raise InputError(f"unknown shape {missing[0]!r}; accepted: " + ", ".join(known))
    return [known[n] for n in names]


def stderr_progress(message: str) -> None:
    if sys.stderr.isatty():
        print(f"\r\033[K{message}", end="", file=sys.stderr, flush=True)
