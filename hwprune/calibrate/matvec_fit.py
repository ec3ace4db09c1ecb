"""Time the matrix-vector kernels on this machine (the host's BLAS GEMV for dense and,
after a gather, for compact; hwprune's numba CSR and group-CSR kernels), one thread,
and fit the cpu latency model's per-kernel parameters to those times (part of
``hwprune calibrate``).

The **fit set** is :data:`FIT_SHAPES` x the four matrix-vector formats x
:data:`FIT_DENSITIES`: matrices whose footprints run from inside L1 to several times
the last-level cache, so that the fit sees every memory regime. None of these shapes
is in the validation grid of ``benchmarks/validate_latency.py``, which scores the
model on other shapes.

What is fitted, per kernel (``dense``, ``csr``, ``group`` for group-CSR, ``compact``):
cycles per element (MAC or stored value; compact takes dense's), cycles per row,
cycles per call, and the overlap fraction of :mod:`hwprune.latency.cpu`. The stall
of gathered loads (cache simulator) and the memory time (measured stream-bandwidth
curve) are the model's own, computed from the provisional profile, not fitted. The
fit minimizes the squared log of predicted over measured time (relative error, symmetric in over- and under-
prediction), within bounds (per-element cost 0.001-50 cycles, per-row 0.001-1000
cycles, overlap 0-1, per call 0-100 000 cycles).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import InputError

FIT_SHAPES = ((64, 256), (128, 768), (384, 1536), (640, 2560), (1536, 2304), (768, 12288),
              (2560, 6144), (6144, 384), (192, 16384), (3072, 1280))
"""``(rows, cols)`` of the fit set: footprints from 64 KiB to 63 MiB (dense), rows
from 64 to 6144 long, inputs from inside L1 (1 KiB) to beyond it (64 KiB)."""

QUICK_SHAPES = FIT_SHAPES[:3]
"""The fit set of ``hwprune calibrate --quick`` (in-cache shapes only)."""

FIT_DENSITIES = (1.0, 0.4, 0.12, 0.03)
"""Densities of the sparse formats in the fit set (dense runs once per shape)."""

FORMATS = ("dense", "csr", "group-csr", "compact")
GROUP = 8
"""Group width of the timed group-CSR kernel (``group_matvec8``: one AVX2 register)."""


def best_seconds(fn: Callable[[], object], repeats: int = 5, min_seconds: float = 0.0) -> float:
    """Fastest of at least ``repeats`` timed calls spread over at least ``min_seconds``
    seconds, after a warm-up call. On a shared machine other work only ever adds time,
    so the minimum is the kernel's own time; spreading the calls over time keeps one
    burst of other work from covering all of them."""
    fn()
    best = float("inf")
    count = 0
    start = time.perf_counter()
    while count < repeats or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        count += 1
    return best


def kernel_call(scheme: str, rows: int, cols: int, density: float,
                rng: np.random.Generator) -> Callable[[], None]:
    """A call of hwprune's matrix-vector kernel for ``scheme`` on a random matrix of
    ``rows x cols`` with a random mask of ``density`` (rows kept for ``compact``,
    aligned groups of :data:`GROUP` for ``group-csr``)."""
    from ..sparse import formats as F
    from ..sparse import kernels as K
    from ..sparse.masks import random_mask

    if scheme not in FORMATS:
        raise InputError(f"unknown matrix-vector format {scheme!r}; accepted: " + ", ".join(FORMATS))
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    x = rng.standard_normal(cols).astype(np.float32)
    y = np.empty(rows, dtype=np.float32)
    if scheme == "dense":
        # The dense baseline is the host's BLAS GEMV (numpy W @ x: sgemv), one thread
        # when called under :func:`one_thread`.
        return lambda: np.dot(w, x, out=y)
    if scheme == "csr":
        m = F.CSRMatrix.from_dense(w, random_mask("fine", rows, cols, density, rng))
        return lambda: K.csr_matvec(m.data, m.indices, m.indptr, x, y)
    if scheme == "group-csr":
        g = F.GroupCSRMatrix.from_dense(w, random_mask("group", rows, cols, density, rng, GROUP),
                                        GROUP)
        xp = np.zeros(-(-cols // GROUP) * GROUP, dtype=np.float32)
        xp[:cols] = x
        return lambda: K.group_matvec8(g.data, g.group_col, g.indptr, xp, y)
    c = F.CompactMatrix.from_dense(w, random_mask("rows", rows, cols, density, rng))
    xg = np.empty(c.col_index.size, dtype=np.float32)
    yk = np.empty(c.row_index.size, dtype=np.float32)

    def compact():
        # Gather the kept columns of x, BLAS GEMV on the smaller matrix, scatter the rows.
        np.take(x, c.col_index, out=xg)
        np.dot(c.values, xg, out=yk)
        y[c.row_index] = yk
    return compact


def one_thread():
    """A context in which the host's BLAS (and OpenMP pools) run on one thread
    (threadpoolctl): the cpu latency model is one core."""
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=1)


@dataclass(frozen=True)
class TimedPoint:
    """One measured kernel: ``seconds`` of ``scheme`` on ``rows x cols`` at ``density``."""

    scheme: str
    rows: int
    cols: int
    density: float
    seconds: float


def time_grid(shapes, densities, seed: int = 0, min_seconds: float = 0.1,
              repeats: int = 5, passes: int = 1,
              progress: Callable[[str], None] | None = None) -> list[TimedPoint]:
    """Time every format of every shape (dense once, the others at each density). With
    ``passes`` > 1 the whole grid is timed again that many times, the same matrices
    seconds to a minute apart, and each point keeps its fastest pass. Point ``i``'s
    random matrix comes from ``numpy.random.default_rng([seed, i])``."""
    calls = []
    for rows, cols in shapes:
        for scheme in FORMATS:
            for d in (densities if scheme != "dense" else (1.0,)):
                calls.append((scheme, rows, cols, d))
    best = [float("inf")] * len(calls)
    with one_thread():
        _time_passes(calls, best, seed, repeats, min_seconds, passes, progress)
    return [TimedPoint(scheme, rows, cols, d, t) for (scheme, rows, cols, d), t in zip(calls, best)]


def _time_passes(calls, best, seed, repeats, min_seconds, passes, progress) -> None:
    for n in range(passes):
        for i, (scheme, rows, cols, d) in enumerate(calls):
            if progress and (i == 0 or calls[i - 1][1:3] != (rows, cols)):
                progress(f"pass {n + 1} of {passes}, {rows}x{cols}")
            call = kernel_call(scheme, rows, cols, d, np.random.default_rng([seed, i]))
            best[i] = min(best[i], best_seconds(call, repeats, min_seconds))


_ELEMENT_KEY = {"dense": "dense_mac_cycles", "csr": "csr_nnz_cycles", "group": "group_value_cycles"}


def fit_matvec(points: list[TimedPoint], dev) -> dict[str, float]:
    """Fit per-element cost, per-row cost and overlap of each kernel kind to ``points``
    on the provisional profile ``dev`` (its clock, caches, ``memory_parallelism`` and
    ``stream_bandwidth``); returns the ``[latency]`` keys they set."""
    from scipy.optimize import least_squares

    from ..latency import cpu
    from ..latency.work import KernelShape, kernel_work

    terms = {}
    for p in points:
        work = kernel_work(KernelShape(rows=p.rows, cols=p.cols, n=1), p.scheme, p.density,
                           GROUP)
        stall, memory = cpu.matvec_stall_memory(work, dev)
        elements = work.macs if p.scheme in ("dense", "compact") else work.stored
        gathers = work.gathers if p.scheme == "compact" else 0
        terms[p] = (elements, work.rows, gathers, stall, memory,
                    p.seconds * dev.clock_hz)
    out: dict[str, float] = {}
    low, high = [1e-3, 1e-3, 0.0, 0.0], [50.0, 1000.0, 1.0, 1e5]
    for kind, scheme in (("csr", "csr"), ("group", "group-csr"), ("dense", "dense"),
                         ("compact", "compact")):
        rows = np.array([terms[p] for p in points if p.scheme == scheme], dtype=float)
        if len(rows) < 2:
            raise InputError(f"the fit set has {len(rows)} {scheme} points; at least 2 are needed")
        elements, nrows, gathers, stall, memory, measured = rows.T
        gather_cost = out.get("csr_nnz_cycles", dev.latency["csr_nnz_cycles"])
        # Compact multiplies like dense: its cost per MAC is dense's, not fitted again.
        element_cost = out.get("dense_mac_cycles") if kind == "compact" else None

        def predicted(q, elements=elements, nrows=nrows, gathers=gathers, stall=stall,
                      memory=memory, gather_cost=gather_cost, element_cost=element_cost):
            per_element = q[0] if element_cost is None else element_cost
            core = per_element * elements + q[1] * nrows + gathers * gather_cost + stall + q[3]
            return np.maximum(core, memory) + (1 - q[2]) * np.minimum(core, memory)

        # The max/min of the model make the cost surface piecewise: start from several
        # overlaps and keep the best fit.
        first = dev.latency[_ELEMENT_KEY.get(kind, "dense_mac_cycles")]
        fits = [least_squares(lambda q: np.log(predicted(q) / measured),
                              np.clip([first, dev.latency["row_cycles"], hidden, 100.0], low, high),
                              bounds=(low, high))
                for hidden in (0.0, 0.5, 1.0)]
        fit = min(fits, key=lambda f: f.cost)
        if element_cost is None:
            out[_ELEMENT_KEY[kind]] = float(fit.x[0])
        out[f"{kind}_row_cycles"] = float(fit.x[1])
        out[f"{kind}_overlap"] = float(fit.x[2])
        out[f"{kind}_call_cycles"] = float(fit.x[3])
    return out
