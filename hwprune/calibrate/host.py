"""Calibrate a cpu profile of the machine hwprune runs on (``hwprune calibrate``).

What is measured, and how (single thread; the fastest of repeated runs):

* **clock**: the highest ``cpu MHz`` in ``/proc/cpuinfo``; without it, an effective
  clock from a chain of dependent integer additions (one per cycle).
* **cache geometry**: ``/sys/devices/system/cpu/cpu0/cache/index*`` (data and unified
  levels), else ``os.sysconf``.
* **latency per level**: a pointer chase through a random cycle of cache lines in a
  buffer sized between the level below and this one (half of L1; 8x the last level,
  at least 64 MiB, for DRAM).
* **bandwidth per level**: a vectorized sum over a buffer of half the level's size
  (64 MiB for DRAM), bytes per cycle.
* **kernel costs** (the ``[latency]`` table): hwprune's own numba kernels on small
  matrices that stay in L1/L2, timed, and fitted by non-negative least squares: cycles
  per dense MAC, per CSR nonzero, per group-CSR value and per row for matrix-vector;
  per axpy element and per axpy start for matrix-matrix; per im2col element.
* **stream bandwidth curve**: the vectorized read again and again over footprints
  from 16 KiB to twice the last level in steps of sqrt(2), best of 3 passes, made
  non-increasing in footprint (:func:`stream_curve`; the cpu model prices a
  matrix-vector kernel's memory time on it).
* **GEMV bandwidth curve** (:func:`gemv_curve`): the host's BLAS GEMV (numpy ``W @ x``,
  one thread) on ``r x 3r`` matrices (:func:`gemv_shape`) of the same footprints, bytes
  of ``W``, ``x`` and ``y`` per cycle, best of 3 passes, each point the fastest at its
  footprint or any larger one (non-increasing; small calls are slowed by numpy's
  dispatch, which the core terms price); the cpu model
  prices the dense and compact matrix-vector products' memory time on it (a BLAS
  GEMV reaches less than the sequential read once ``W`` leaves L2).
* **BLAS GEMM** (:func:`gemm_costs`): the host's SGEMM through numpy (float32
  ``matmul``, one thread via threadpoolctl) on :data:`GEMM_SHAPES`, and the cpu model's
  GEMM fraction of peak, per-micro-kernel and per-packed-element costs fitted by NNLS
  (the register and cache blocking is BLIS haswell's, assumed); the single-thread DRAM
  read bandwidth becomes ``dram_core_bytes_per_cycle``.
* **matrix-vector fit set**: the four matrix-vector kernels (dense: the host's BLAS GEMV,
  numpy ``W @ x``, one thread) timed on
  :data:`hwprune.calibrate.matvec_fit.FIT_SHAPES`, and the cpu model's per-element,
  per-row and per-call costs and overlaps fitted to them
  (:mod:`hwprune.calibrate.matvec_fit`; they replace the in-cache matrix-vector costs).
* **memory parallelism**: the latency of a pointer chase over a buffer of 4x L2
  divided by the time per independent random load into the same buffer.

Energies are not measured: they are Horowitz's 45 nm figures by cache size (an
assumption, stated in the file). These measurements are all the latency validation
fits on; ``benchmarks/validate_latency.py`` scores the model on other shapes.
"""

from __future__ import annotations

import math
import os
import platform
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from numba import njit

from ..errors import InputError
from ..hardware.loader import parse_profile
from .matvec_fit import FIT_DENSITIES, FIT_SHAPES, QUICK_SHAPES, best_seconds, fit_matvec, time_grid

__all__ = ["best_seconds", "calibrate", "gemv_curve", "gemv_shape", "host_caches", "kernel_costs",
           "stream_curve"]

SYS_CACHE = Path("/sys/devices/system/cpu/cpu0/cache")
DRAM_BUFFER = 64 << 20
SPREAD_SECONDS = 0.1
"""Each bandwidth and latency micro-benchmark takes the fastest of calls spread over at
least this many seconds."""


@dataclass(frozen=True)
class HostCache:
    """One data cache level of the host: ``size_bytes``, ``ways``, ``line_bytes``."""

    level: int
    size_bytes: int
    ways: int
    line_bytes: int
    source: str


def _size(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    return int(text.rstrip("KMG")) * scale


def host_caches(root: Path = SYS_CACHE) -> list[HostCache]:
    """Data and unified cache levels, innermost first."""
    found = {}
    for index in sorted(root.glob("index*")):
        try:
            kind = (index / "type").read_text().strip()
            if kind not in ("Data", "Unified"):
                continue
            level = int((index / "level").read_text())
            found[level] = HostCache(level, _size((index / "size").read_text()),
                                     int((index / "ways_of_associativity").read_text()),
                                     int((index / "coherency_line_size").read_text()),
                                     f"{index}")
        except (OSError, ValueError):
            continue
    if found:
        return [found[k] for k in sorted(found)]
    caches = []
    for level, name in ((1, "LEVEL1_DCACHE"), (2, "LEVEL2_CACHE"), (3, "LEVEL3_CACHE")):
        try:
            size = os.sysconf(f"SC_{name}_SIZE")
            ways = os.sysconf(f"SC_{name}_ASSOC")
            line = os.sysconf(f"SC_{name}_LINESIZE")
        except (ValueError, OSError):
            continue
        if size > 0 and ways > 0 and line > 0:
            caches.append(HostCache(level, size, ways, line, f"os.sysconf SC_{name}_*"))
    if not caches:
        raise InputError("cannot read this machine's cache geometry (no /sys/devices/system/cpu/"
                         "cpu0/cache and no os.sysconf cache values); write a profile by hand "
                         "(see docs/device-profiles.md)")
    return caches


@njit(cache=True)
def _add_chain(n):
    x = np.int64(0)
    for i in range(n):
        x = (x + i) ^ (x >> 13)
    return x


def host_clock_hz() -> tuple[float, str]:
    try:
        mhz = [float(line.split(":")[1]) for line in Path("/proc/cpuinfo").read_text().splitlines()
               if line.startswith("cpu MHz")]
        if mhz:
            return max(mhz) * 1e6, "calibrated on host: highest 'cpu MHz' in /proc/cpuinfo"
    except OSError:
        pass
    n = 50_000_000
    seconds = best_seconds(lambda: _add_chain(n), 3)
    return 2 * n / seconds, ("calibrated on host: effective clock from a chain of dependent "
                             "add/xor pairs (two operations per iteration)")


@njit(cache=True)
def _chase(nxt, steps):
    p = np.int64(0)
    for _ in range(steps):
        p = nxt[p]
    return p


def chase_seconds(nbytes: int, line: int, rng: np.random.Generator) -> float:
    """Seconds per dependent load in a random cycle over the lines of ``nbytes``."""
    stride = line // 8
    lines = max(2, nbytes // line)
    order = rng.permutation(lines)
    nxt = np.zeros(lines * stride, dtype=np.int64)
    nxt[order * stride] = np.roll(order, -1) * stride
    steps = 2_000_000
    return best_seconds(lambda: _chase(nxt, steps), 3, SPREAD_SECONDS) / steps


@njit(cache=True, fastmath=True)
def _sum(a, reps):
    total = np.float32(0.0)
    for _ in range(reps):
        acc = np.float32(0.0)
        for i in range(a.shape[0]):
            acc += a[i]
        total += acc
    return total


def read_bandwidth(nbytes: int) -> float:
    """Bytes per second of a single-thread vectorized read of ``nbytes``."""
    a = np.ones(max(1024, nbytes // 4), dtype=np.float32)
    reps = max(1, int(256 << 20) // a.nbytes)
    return a.nbytes * reps / best_seconds(lambda: _sum(a, reps), 3, SPREAD_SECONDS)


def curve_footprints(largest: int, step: float = 2.0, smallest: int = 16 << 10) -> list[int]:
    """Footprints of the bandwidth curves: ``smallest`` to ``largest`` bytes in steps of
    ``step``x, whole cache lines."""
    sizes = []
    size = float(smallest)
    while size <= largest * 1.0001:
        sizes.append(int(size) // 64 * 64)
        size *= step
    return sizes


def _non_increasing(best: dict[int, float]) -> list[tuple[int, float]]:
    # A larger footprint is never streamed faster: the curve is made non-increasing
    # (each point the slowest at its footprint or any smaller one), so that a noisy
    # pass cannot make a smaller kernel slower in the model.
    curve, slowest = [], float("inf")
    for nbytes in sorted(best):
        slowest = min(slowest, best[nbytes])
        curve.append((nbytes, slowest))
    return curve


def non_increasing_from_above(best: dict[int, float]) -> list[tuple[int, float]]:
    """``[(footprint, bytes per cycle), ...]`` in increasing footprint, each point the
    fastest at its footprint or any larger one (non-increasing the other way). A smaller
    footprint is never served more slowly by the memory system; where a small call
    measures slower, the per-call and per-row work (numpy's dispatch, the horizontal
    sums) holds it down, and the model prices those apart."""
    curve, fastest = [], 0.0
    for nbytes in sorted(best, reverse=True):
        fastest = max(fastest, best[nbytes])
        curve.append((nbytes, fastest))
    return curve[::-1]


def stream_curve(clock_hz: float, largest: int, step: float = 2.0, smallest: int = 16 << 10,
                 passes: int = 3) -> list[tuple[int, float]]:
    """``[(footprint_bytes, bytes_per_cycle), ...]``: read bandwidth of a buffer read
    again and again (the steady state of a layer run call after call), for footprints
    from ``smallest`` to ``largest`` bytes in steps of ``step``x. Each footprint keeps
    its best of ``passes`` passes over all of them, seconds apart: the bandwidth of
    the machine when other tenants leave it alone, as the kernels' fastest calls see it."""
    sizes = curve_footprints(largest, step, smallest)
    best = dict.fromkeys(sizes, 0.0)
    for _ in range(passes):
        for nbytes in sizes:
            best[nbytes] = max(best[nbytes], read_bandwidth(nbytes) / clock_hz)
    return _non_increasing(best)


GEMV_ASPECT = 3
"""Columns per row of the matrices of the GEMV curve (``W`` is ``r x 3r``: an input three
times the output, between the fit set's wide and tall shapes). Not a power of two, so
that no point of the power-of-two footprint grid is a validation shape (the validation
script asserts it)."""


def gemv_shape(footprint: int) -> tuple[int, int]:
    """``(rows, cols)`` of the GEMV curve's matrix at ``footprint`` bytes: ``cols =``
    :data:`GEMV_ASPECT` ``x rows``, ``4 (rows cols + rows + cols) <= footprint``."""
    rows = max(1, int(math.sqrt(footprint / (4 * GEMV_ASPECT))))
    while rows > 1 and 4 * (rows * GEMV_ASPECT * rows + rows + GEMV_ASPECT * rows) > footprint:
        rows -= 1
    return rows, GEMV_ASPECT * rows


def gemv_bandwidth(footprint: int, min_seconds: float = SPREAD_SECONDS) -> float:
    """Bytes per second the host's BLAS GEMV (numpy ``np.dot(W, x, out=y)``, float32, on
    the calling thread's BLAS settings) moves on :func:`gemv_shape`'s matrix: ``W``,
    ``x`` and ``y`` bytes over the fastest call's time (each timed call repeats the
    product until about 256 MiB have moved)."""
    rows, cols = gemv_shape(footprint)
    w = np.full((rows, cols), 0.5, dtype=np.float32)
    x = np.full(cols, 0.25, dtype=np.float32)
    y = np.empty(rows, dtype=np.float32)
    moved = 4 * (rows * cols + rows + cols)
    reps = max(1, int(256 << 20) // moved)

    def call():
        for _ in range(reps):
            np.dot(w, x, out=y)
    return moved * reps / best_seconds(call, 3, min_seconds)


def gemv_curve(clock_hz: float, largest: int, step: float = 2.0, smallest: int = 16 << 10,
               passes: int = 3) -> list[tuple[int, float]]:
    """``[(footprint_bytes, bytes_per_cycle), ...]``: what the host's BLAS GEMV moves per
    cycle (:func:`gemv_bandwidth`, one thread via threadpoolctl) called again and again,
    on the footprints of :func:`stream_curve`; each footprint's best of ``passes``
    passes, made non-increasing in footprint from the largest down (each point the
    fastest at its footprint or any larger one). The GEMV of a matrix that fits in L1 is
    held down by numpy's per-call dispatch (about 1 us: at 16 KiB a third of L2's
    rate), work the model prices in its core terms (``dense_call_cycles``,
    ``dense_row_cycles``); the memory system never serves a smaller footprint more
    slowly. The cpu model prices the dense and compact matrix-vector products' memory
    time on it."""
    from .matvec_fit import one_thread

    sizes = curve_footprints(largest, step, smallest)
    best = dict.fromkeys(sizes, 0.0)
    with one_thread():
        for _ in range(passes):
            for nbytes in sizes:
                best[nbytes] = max(best[nbytes], gemv_bandwidth(nbytes) / clock_hz)
    return non_increasing_from_above(best)


@njit(cache=True)
def _gather(x, idx):
    acc = np.float32(0.0)
    for i in range(idx.shape[0]):
        acc += x[idx[i]]
    return acc


def _fit(rows: list[list[float]], cycles: list[float]) -> np.ndarray:
    from scipy.optimize import nnls

    a = np.asarray(rows, dtype=float)
    b = np.asarray(cycles, dtype=float)
    scale = a.max(axis=0)
    scale[scale == 0] = 1.0
    # Relative error matters, not absolute: weight each benchmark by 1 / its cycles.
    w = 1.0 / b
    sol, _ = nnls(a / scale * w[:, None], b * w)
    return sol / scale


def kernel_costs(clock_hz: float, seed: int = 0) -> dict[str, float]:
    """The ``[latency]`` cycle costs, fitted on small in-cache kernel runs."""
    from ..sparse import kernels as K
    from ..sparse.formats import CSRMatrix, GroupCSRMatrix
    from ..sparse.masks import random_mask

    rng = np.random.default_rng(seed)
    rows_mv, cyc_mv = [], []
    for m, k, d in ((64, 256, 0.25), (256, 64, 0.25), (16, 1024, 0.25), (512, 32, 0.5),
                    (128, 512, 0.1)):
        w = rng.standard_normal((m, k)).astype(np.float32)
        x = rng.standard_normal(k).astype(np.float32)
        y = np.empty(m, dtype=np.float32)
        reps = max(1, 4_000_000 // (m * k))

        def dense(w=w, x=x, y=y, reps=reps):
            for _ in range(reps):
                K.dense_matvec(w, x, y)
        rows_mv.append([m, m * k, 0, 0])
        cyc_mv.append(best_seconds(dense) / reps * clock_hz)
        csr = CSRMatrix.from_dense(w, random_mask("fine", m, k, d, rng))

        def sparse(c=csr, x=x, y=y, reps=reps):
            for _ in range(reps):
                K.csr_matvec(c.data, c.indices, c.indptr, x, y)
        rows_mv.append([m, 0, csr.data.size, 0])
        cyc_mv.append(best_seconds(sparse) / reps * clock_hz)
        grp = GroupCSRMatrix.from_dense(w, random_mask("group", m, k, d, rng, 8), 8)
        xp = np.zeros(-(-k // 8) * 8, dtype=np.float32)
        xp[:k] = x

        def group(g=grp, xp=xp, y=y, reps=reps):
            for _ in range(reps):
                K.group_matvec8(g.data, g.group_col, g.indptr, xp, y)
        rows_mv.append([m, 0, 0, grp.data.size])
        cyc_mv.append(best_seconds(group) / reps * clock_hz)
    row, dense_mac, csr_nnz, group_value = _fit(rows_mv, cyc_mv)

    rows_mm, cyc_mm = [], []
    for m, k, n, d in ((32, 64, 128, 1.0), (32, 64, 16, 1.0), (64, 32, 256, 0.3), (16, 128, 8, 0.5)):
        w = rng.standard_normal((m, k)).astype(np.float32)
        X = rng.standard_normal((k, n)).astype(np.float32)
        Y = np.empty((m, n), dtype=np.float32)
        csr = CSRMatrix.from_dense(w, random_mask("fine", m, k, d, rng))
        reps = max(1, 2_000_000 // (csr.data.size * n))

        def matmat(c=csr, X=X, Y=Y, reps=reps):
            for _ in range(reps):
                K.csr_matmat(c.data, c.indices, c.indptr, X, Y)
        rows_mm.append([csr.data.size * n + m * n, csr.data.size])
        cyc_mm.append(best_seconds(matmat) / reps * clock_hz)
    axpy_element, axpy = _fit(rows_mm, cyc_mm)

    x = rng.standard_normal((16, 32, 32)).astype(np.float32)
    elements = 16 * 9 * 32 * 32
    im2col = best_seconds(lambda: K.im2col(x, 3, 3, 1, 1, 1, 1, 32, 32)) * clock_hz / elements
    return {"dense_mac_cycles": dense_mac, "csr_nnz_cycles": csr_nnz,
            "group_value_cycles": group_value, "row_cycles": row,
            "axpy_element_cycles": axpy_element, "axpy_cycles": axpy,
            "im2col_element_cycles": im2col}


GEMM_SHAPES = ((512, 512, 512), (96, 1200, 729), (256, 2304, 169), (50, 500, 64), (20, 25, 576),
               (64, 27, 3025), (1000, 4096, 8), (384, 3456, 169))
"""``(m, k, n)`` of the BLAS GEMMs ``hwprune calibrate`` times: square, convolution-like
(im2col shapes of AlexNet and LeNet-5 layers) and a thin fc-at-batch-8 product."""

QUICK_GEMM_SHAPES = ((256, 256, 256), (50, 500, 64), (20, 25, 576), (96, 300, 200))

GEMM_BLOCKING = {"gemm_mr": 6, "gemm_kc": 256, "gemm_nc": 4080}
"""Register and cache blocking assumed for the host's BLAS (BLIS haswell's sgemm, with
``gemm_nr`` two vectors of the host's lanes); the fit absorbs a library's different
blocking into ``gemm_efficiency``, ``gemm_tile_cycles`` and ``pack_element_cycles``."""


def gemm_costs(clock_hz: float, lanes: int, quick: bool = False) -> dict[str, float]:
    """Time the host's BLAS SGEMM (numpy ``A @ B`` in float32, one thread) and fit the
    cpu model's GEMM terms by NNLS (relative error): cycles = ``a`` x padded MACs / peak
    + ``gemm_tile_cycles`` x micro-kernel calls + ``pack_element_cycles`` x packed
    elements, with ``gemm_efficiency = 1 / a`` (at most 1) and peak ``2 x lanes`` MACs
    per cycle."""
    from .matvec_fit import one_thread

    block = {**GEMM_BLOCKING, "gemm_nr": 2 * lanes}
    mr, nr, kc, nc = block["gemm_mr"], block["gemm_nr"], block["gemm_kc"], block["gemm_nc"]
    peak = 2 * lanes
    rng = np.random.default_rng(0)
    rows, cycles = [], []
    with one_thread():
        for m, k, n in (QUICK_GEMM_SHAPES if quick else GEMM_SHAPES):
            a = rng.standard_normal((m, k)).astype(np.float32)
            b = rng.standard_normal((k, n)).astype(np.float32)
            c = np.empty((m, n), dtype=np.float32)
            reps = max(1, int(2e7 // (m * k * n)))

            def call(a=a, b=b, c=c, reps=reps):
                for _ in range(reps):
                    np.matmul(a, b, out=c)
            seconds = best_seconds(call, 3 if quick else 5, 0.0 if quick else SPREAD_SECONDS) / reps
            tiles = min(math.ceil(m / mr) * math.ceil(n / nr), math.ceil(m / nr) * math.ceil(n / mr))
            rows.append([tiles * mr * nr * k / peak, tiles * math.ceil(k / kc),
                         k * n + m * k * math.ceil(n / nc)])
            cycles.append(seconds * clock_hz)
    inverse, tile, pack = _fit(rows, cycles)
    return {**{key: float(v) for key, v in block.items()},
            "gemm_efficiency": float(min(1.0, 1.0 / max(inverse, 1e-3))),
            "gemm_tile_cycles": float(max(tile, 1e-3)), "pack_element_cycles": float(max(pack, 1e-3))}


def _horowitz_pj(size_bytes: int) -> float:
    """Horowitz ISSCC 2014 (45 nm) read energy per 64-bit access by SRAM size, linear in
    log2(size) between 8 KB 10 pJ, 32 KB 20 pJ and 1 MB 100 pJ, halved for 32 bits."""
    kb = max(8.0, size_bytes / 1024)
    points = [(8, 10.0), (32, 20.0), (1024, 100.0)]
    if kb >= 1024:
        return 100.0 / 2 * (1 + math.log2(kb / 1024) * 0.25)
    for (k0, e0), (k1, e1) in zip(points, points[1:]):
        if kb <= k1:
            t = math.log2(kb / k0) / math.log2(k1 / k0)
            return (e0 + t * (e1 - e0)) / 2
    return 50.0


def calibrate(progress: Callable[[str], None] | None = None, quick: bool = False) -> str:
    """Measure this machine and return its profile as TOML text. ``quick`` fits the
    matrix-vector parameters on in-cache shapes only and measures a coarser
    bandwidth curve in one pass (about 15 s instead of about 80 s; less accurate on
    matrices larger than the caches)."""
    say = progress or (lambda _msg: None)
    rng = np.random.default_rng(0)
    say("clock")
    clock, clock_src = host_clock_hz()
    caches = host_caches()
    say("cache latency and bandwidth")
    levels = []
    below = 0
    for c in caches:
        # Between the level below and this one (geometric mean; half of L1): larger
        # buffers add TLB misses to the chase.
        span = c.size_bytes // 2 if not below else int(math.sqrt(below * c.size_bytes))
        below = c.size_bytes
        latency = chase_seconds(span, c.line_bytes, rng) * clock
        bandwidth = read_bandwidth(c.size_bytes // 2) / clock
        levels.append((c, latency, bandwidth))
    last = caches[-1]
    dram_bytes = max(DRAM_BUFFER, 8 * last.size_bytes)
    dram_latency = chase_seconds(dram_bytes, last.line_bytes, rng) * clock
    dram_bw = read_bandwidth(dram_bytes)
    say("memory parallelism")
    # A buffer past L2 but within the TLB's reach (4x L2): latency of a dependent chase
    # over it, divided by the time per independent random load over it.
    span = 4 * caches[min(1, len(caches) - 1)].size_bytes
    x = np.ones(span // 4, dtype=np.float32)
    idx = rng.integers(0, x.size, 2_000_000).astype(np.int64)
    gather = best_seconds(lambda: _gather(x, idx), 3) / idx.size * clock
    chased = chase_seconds(span, caches[0].line_bytes, rng) * clock
    mlp = float(min(32.0, max(1.0, chased / gather)))
    say("kernel micro-benchmarks")
    costs = kernel_costs(clock)
    costs["memory_parallelism"] = mlp
    say("BLAS GEMM")
    costs.update(gemm_costs(clock, _lanes(), quick))
    costs["dram_core_bytes_per_cycle"] = dram_bw / clock
    say("stream bandwidth curve")
    largest, step = max(dram_bytes // 2, 2 * last.size_bytes), 4.0 if quick else 2 ** 0.5
    curve = stream_curve(clock, largest, step, passes=1 if quick else 3)
    say("BLAS GEMV bandwidth curve")
    gemv = gemv_curve(clock, largest, step, passes=1 if quick else 3)
    provisional = _toml(clock, clock_src, levels, dram_latency, dram_bw, dram_bytes, costs, curve,
                        gemv=gemv)
    dev = parse_profile(tomllib.loads(provisional), "provisional calibrated profile")
    points = time_grid(QUICK_SHAPES if quick else FIT_SHAPES,
                       (1.0, 0.1) if quick else FIT_DENSITIES,
                       min_seconds=0.02 if quick else 0.1, passes=1 if quick else 2,
                       progress=lambda what: say(f"matrix-vector fit set: {what}"))
    costs.update({k: round(v, 4) if k.endswith("_overlap") else v
                  for k, v in fit_matvec(points, dev).items()})
    fit_set = ", ".join(f"{r}x{c}" for r, c in (QUICK_SHAPES if quick else FIT_SHAPES))
    return _toml(clock, clock_src, levels, dram_latency, dram_bw, dram_bytes, costs, curve,
                 fit_set, gemv)


def _latency_source(key: str, fit_set: str) -> str:
    if key == "memory_parallelism":
        return "chase latency / time per independent random load, buffer 4x L2"
    if key in GEMM_BLOCKING or key == "gemm_nr":
        return ("not measured: BLIS haswell sgemm blocking (MR 6, NR two vectors, KC 256, "
                "NC 4080) assumed for the host's BLAS (assumption)")
    if key in ("gemm_efficiency", "gemm_tile_cycles", "pack_element_cycles"):
        return ("the host's BLAS SGEMM (numpy float32 matmul, one thread via threadpoolctl) "
                "timed on hwprune.calibrate.host.GEMM_SHAPES, NNLS fit of the cpu GEMM model")
    if key == "dram_core_bytes_per_cycle":
        return "single-thread vectorized read of the DRAM buffer, bytes per cycle"
    if fit_set and key in FITTED_KEYS:
        return (f"least-squares fit (relative error) to hwprune's matrix-vector kernels timed "
                f"on {fit_set} (the fit set; not the validation shapes)")
    return "hwprune kernels on in-cache matrices, NNLS fit"


FITTED_KEYS = frozenset({"dense_mac_cycles", "csr_nnz_cycles", "group_value_cycles",
                         *(f"{kind}_{what}" for kind in ("dense", "csr", "group", "compact")
                           for what in ("row_cycles", "overlap", "call_cycles"))})
"""``[latency]`` keys that :func:`hwprune.calibrate.matvec_fit.fit_matvec` sets."""


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def _lanes() -> int:
    """fp32 SIMD lanes from /proc/cpuinfo flags: avx512f 16, avx2/avx 8, else 4."""
    flags = _cpuinfo()
    return 16 if " avx512f" in flags else 8 if " avx2" in flags or " avx " in flags else 4


def _toml(clock, clock_src, levels, dram_latency, dram_bw, dram_bytes, costs, curve,
          fit_set: str = "", gemv=()) -> str:
    cpus = os.cpu_count() or 1
    flags = _cpuinfo()
    lanes = _lanes()
    machine = platform.processor() or platform.machine() or "unknown cpu"
    model = next((line.split(":", 1)[1].strip() for line in flags.splitlines()
                  if line.startswith("model name")), machine)
    stamp = time.strftime("%Y-%m-%d %H:%M")
    cal = "calibrated on host"
    out = [
        f"# hwprune device profile of this machine ({model}), calibrated on host {stamp}",
        "# by 'hwprune calibrate'. Latencies, bandwidths, clock and the [latency] table are",
        "# measured here; energies are Horowitz 45 nm figures by size (assumption, not measured).",
        "",
        'id = "host"',
        f'name = "{model} (calibrated on host)"',
        'class = "cpu"',
        f'description = "calibrated on host {stamp}: {cpus} logical CPUs, {lanes}-lane fp32 SIMD"',
        f"clock_hz = {clock:.6g}",
        'dataflow = "cache-tiling"',
        "",
        "[sources]",
        f'clock_hz = "{clock_src}"',
        "",
        "[compute]",
        f"units = {cpus}",
        f"simd_lanes = {lanes}",
        "simd_element_bits = 32",
        f"macs_per_unit_per_cycle = {2 * lanes}",
        "mac_energy_pj = 4.6",
        "",
        "[compute.sources]",
        f'units = "{cal}: os.cpu_count()"',
        f'simd_lanes = "{cal}: /proc/cpuinfo flags (avx512f 16, avx2 8, else 4 fp32 lanes)"',
        'simd_element_bits = "fp32 elements"',
        'macs_per_unit_per_cycle = "assumption: two FMA pipes of simd_lanes each"',
        'mac_energy_pj = "Horowitz ISSCC 2014 (45 nm): fp32 multiply 3.7 pJ + add 0.9 pJ (not measured)"',
        "",
        "[sparsity]",
        "index_bits = 32",
        "",
        "[sparsity.sources]",
        'index_bits = "int32 column indices, as in hwprune\'s CSR kernels"',
        "",
        "[latency]",
        *[f"{k} = {v:.6g}" for k, v in costs.items()],
        "",
        "[latency.sources]",
        *[f'{k} = "{cal}: {_latency_source(k, fit_set)}"' for k in costs],
        "",
        "[stream_bandwidth]",
        "footprint_bytes = [" + ", ".join(str(f) for f, _ in curve) + "]",
        "bytes_per_cycle = [" + ", ".join(f"{b:.4g}" for _, b in curve) + "]",
        "",
        "[stream_bandwidth.sources]",
        f'footprint_bytes = "{cal}: buffers from {curve[0][0] >> 10} KiB to {curve[-1][0] >> 20} MiB"',
        f'bytes_per_cycle = "{cal}: single-thread vectorized read of the buffer, again and again '
        '(fastest of calls spread over 0.1 s, best of 3 passes)"',
        "",
    ]
    if gemv:
        out += [
            "[gemv_bandwidth]",
            "footprint_bytes = [" + ", ".join(str(f) for f, _ in gemv) + "]",
            "bytes_per_cycle = [" + ", ".join(f"{b:.4g}" for _, b in gemv) + "]",
            "",
            "[gemv_bandwidth.sources]",
            f'footprint_bytes = "{cal}: W, x and y of r x {GEMV_ASPECT}r matrices from '
            f'{gemv[0][0] >> 10} KiB to {gemv[-1][0] >> 20} MiB (the stream curve\'s footprints)"',
            f'bytes_per_cycle = "{cal}: the host\'s BLAS GEMV (numpy W @ x, float32, one thread '
            'via threadpoolctl) again and again, W, x and y bytes per cycle (fastest of calls '
            'spread over 0.1 s, best of 3 passes; each point the fastest at its footprint or '
            'any larger one)"',
            "",
        ]
    out += [
        "[[memory]]",
        'name = "RF"',
        'kind = "register_file"',
        f"size_bytes = {16 * lanes * 4}",
        f"instances = {cpus}",
        f"line_bytes = {lanes * 4}",
        "word_bytes = 4",
        "latency_cycles = 0",
        "read_energy_pj = 1.0",
        "write_energy_pj = 1.0",
        f"bandwidth_bytes_per_cycle = {6 * lanes * 4}",
        "",
        "[memory.sources]",
        'size_bytes = "assumption: 16 vector registers of simd_lanes fp32"',
        'instances = "one register file per logical CPU"',
        'line_bytes = "one vector register"',
        'word_bytes = "fp32"',
        'latency_cycles = "register operands are read in the issuing cycle"',
        'read_energy_pj = "Horowitz ISSCC 2014: register file ~1 pJ per 32-bit access (assumption)"',
        'write_energy_pj = "as read_energy_pj (assumption)"',
        'bandwidth_bytes_per_cycle = "assumption: 2 FMAs x 3 vector operands per cycle"',
    ]
    for c, latency, bandwidth in levels:
        pj = _horowitz_pj(c.size_bytes)
        out += [
            "",
            "[[memory]]",
            f'name = "L{c.level}"',
            'kind = "cache"',
            f"size_bytes = {c.size_bytes}",
            f"line_bytes = {c.line_bytes}",
            "word_bytes = 4",
            f"associativity = {c.ways}",
            f"latency_cycles = {latency:.4g}",
            f"read_energy_pj = {pj:.4g}",
            f"write_energy_pj = {pj:.4g}",
            f"bandwidth_bytes_per_cycle = {bandwidth:.4g}",
            "",
            "[memory.sources]",
            f'size_bytes = "{cal}: {c.source}"',
            f'line_bytes = "{cal}: {c.source}"',
            'word_bytes = "fp32"',
            f'associativity = "{cal}: {c.source}"',
            f'latency_cycles = "{cal}: pointer chase over a buffer between the level below and this one"',
            'read_energy_pj = "Horowitz ISSCC 2014 (45 nm) by SRAM size, per 32-bit access (assumption)"',
            'write_energy_pj = "as read_energy_pj (assumption)"',
            f'bandwidth_bytes_per_cycle = "{cal}: single-thread vectorized read of half the level"',
        ]
    out += [
        "",
        "[[memory]]",
        'name = "DRAM"',
        'kind = "dram"',
        f"size_bytes = {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')}",
        "line_bytes = 64",
        "word_bytes = 4",
        f"latency_cycles = {dram_latency:.4g}",
        "read_energy_pj = 640.0",
        "write_energy_pj = 640.0",
        f"bandwidth_gb_s = {dram_bw / 1e9:.4g}",
        "",
        "[memory.sources]",
        f'size_bytes = "{cal}: os.sysconf physical pages"',
        'line_bytes = "one cache line per burst"',
        'word_bytes = "fp32"',
        f'latency_cycles = "{cal}: pointer chase over {dram_bytes >> 20} MiB"',
        'read_energy_pj = "Horowitz ISSCC 2014: DRAM 1.3-2.6 nJ per 64 bits, ~640 pJ per 32 (assumption)"',
        'write_energy_pj = "as read_energy_pj (assumption)"',
        f'bandwidth_gb_s = "{cal}: single-thread vectorized read of {dram_bytes >> 20} MiB"',
        "",
    ]
    return "\n".join(out)
