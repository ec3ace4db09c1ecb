"""CPU latency: instruction issue from operation counts, miss penalties from the cache
simulator, bandwidth rooflines, one core.

* **Issue** (cycles per operation from the profile's ``[latency]`` table, which
  encodes the SIMD width and load/store ports: an 8-lane FMA fed by two loads per
  cycle is 0.125 cycles per MAC):

  - matrix-vector: ``MACs x dense_mac_cycles`` (dense, compact),
    ``stored x csr_nnz_cycles`` (csr), ``stored x group_value_cycles`` (group
    schemes), plus ``csr_nnz_cycles`` per gathered column of compact, plus
    ``<kernel>_row_cycles`` per row (default ``row_cycles``) and
    ``<kernel>_call_cycles`` per call and group (default 0), ``<kernel>`` being
    ``dense``, ``csr``, ``group`` or ``compact``;
  - matrix-matrix (convolutions): ``MACs x axpy_element_cycles`` (the axpy over the
    ``n`` output positions) + ``stored x axpy_cycles`` + zeroing the output +
    ``im2col_element_cycles`` per im2col element.

* **Miss penalties** (csr and group schemes; dense and compact read their input in
  order, which the prefetcher streams): the kernel's exact address trace runs through
  the cache simulator (:mod:`hwprune.cost.cachesim`) on the device's cache levels.
  A layer small enough is simulated twice and the second (warm) call counted: the
  steady state of a layer run again and again. Large layers are sampled: a window of
  rows warms the caches, the next window of the same size is counted, and its counts
  are scaled to all rows. Misses of *gathered*
  loads (inputs addressed through an index) stall: ``sum over levels of (loads that
  level serves) x its latency_cycles / memory_parallelism``. Sequential streams are
  left to the hardware prefetcher: they cost bandwidth, not latency.
* **Memory time** (matrix-vector), one of two ways:

  - with a measured ``stream_bandwidth`` curve (profiles written by ``hwprune
    calibrate``): every array the kernel touches (values, indices, pointers, input,
    output) is streamed once per call, at the curve's bandwidth for the kernel's whole
    footprint: ``bytes / stream_bytes_per_cycle(bytes)``. The curve is measured on
    the host, so it holds what the geometry alone does not (a last-level cache shared
    with other tenants delivers less than its nominal size);
  - otherwise per level: bytes each level delivers (the simulator's line fills;
    memory loads and write-backs for DRAM) over that level's
    ``bandwidth_bytes_per_cycle``; the slowest level counts.

  For convolutions the simulator is not run (a trace has ``3 x MACs`` accesses); the
  im2col matrix is re-read once per stored weight row from the first cache level it
  fits in, and the tensors cross DRAM once.
* **Overlap**: ``cycles = max(core, memory) + (1 - overlap) x min(core, memory)``
  with ``core = issue + im2col + stall``. ``overlap`` is the fraction of the shorter
  time hidden under the longer: 1 (the default, a roofline) when an out-of-order core
  overlaps streaming with computation completely, 0 when they add. The profile gives
  it per matrix-vector kernel (``dense_overlap``, ``csr_overlap``, ``group_overlap``,
  ``compact_overlap``); ``hwprune calibrate`` fits it on the host.
  Convolutions use 1.

Simplifications: one core (the kernels are single-threaded), no TLB misses, no
frequency scaling; the im2col reuse model for convolutions is analytic; the stream
curve is one sequential-read loop interpolated in log(footprint), so a kernel whose
footprint sits on a cache cliff is priced between the measured points around it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..cost import traces as T
from ..cost.cachesim import HITS, LOAD_BYTES, STORE_BYTES, CacheSimulator, levels_of
from ..hardware.profile import DeviceProfile
from ..schemes import Kernel
from ..sparse import formats as F
from .estimate import LatencyEstimate, latency_param, make_estimate
from .work import KernelShape, KernelWork

SAMPLE_ACCESSES = 600_000
"""Accesses of the counted window of a sampled matrix-vector simulation."""

WHOLE_ACCESSES = 8_000_000
"""A matrix-vector trace up to this many accesses is simulated whole (twice, the second
call counted) instead of sampled."""

GATHERED = T.IN_ID


@lru_cache(maxsize=4096)
def matvec_counts(shape: KernelShape, scheme: str, density: float, group: int,
                  dev: DeviceProfile, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Cache-simulator counts of a matrix-vector kernel, scaled to the whole layer:
    ``(counts[level, structure, counter], memory[structure, 4])`` (see
    :class:`hwprune.cost.cachesim.CacheSimulator`)."""
    rows, cols = shape.rows, shape.cols
    kept_density = density if scheme != "dense" else 1.0
    per_row = 3 * kept_density * cols + 3 if scheme != "dense" else 2 * cols + 1
    window = max(1, int(SAMPLE_ACCESSES // per_row))
    rng = np.random.default_rng(seed)
    sim = CacheSimulator(levels_of(dev), T.STRUCTURES)
    if rows * per_row <= WHOLE_ACCESSES:
        # Small enough to simulate whole: a first call warms the caches, the second is
        # counted (the steady state of a layer run again and again).
        matrix = F.random_matrix(scheme, rows, cols, density, rng, group)
        for chunk in T.matvec_trace(matrix):
            sim.run(chunk.addr, chunk.size, chunk.is_write, chunk.struct)
        warm_counts, warm_memory = sim.counts.copy(), sim.memory.copy()
        for chunk in T.matvec_trace(matrix):
            sim.run(chunk.addr, chunk.size, chunk.is_write, chunk.struct)
        return ((sim.counts - warm_counts) * shape.groups,
                (sim.memory - warm_memory) * shape.groups)
    matrix = F.random_matrix(scheme, 2 * window, cols, density, rng, group)
    kept = matrix.values.shape[0] if isinstance(matrix, F.CompactMatrix) else 2 * window
    half = max(1, kept // 2)
    for chunk in T.matvec_trace(matrix, (0, half)):
        sim.run(chunk.addr, chunk.size, chunk.is_write, chunk.struct)
    warm_counts, warm_memory = sim.counts.copy(), sim.memory.copy()
    for chunk in T.matvec_trace(matrix, (half, kept)):
        sim.run(chunk.addr, chunk.size, chunk.is_write, chunk.struct)
    scale = rows / (2 * window - window) * shape.groups
    return (sim.counts - warm_counts) * scale, (sim.memory - warm_memory) * scale


_KIND = {"dense": "dense", "compact": "compact", "csr": "csr"}
"""Which per-kernel ``[latency]`` keys (``<kind>_row_cycles``, ``<kind>_call_cycles``,
``<kind>_overlap``) a scheme reads; group schemes read ``group_*``."""


def _kind(kernel: Kernel | str) -> str:
    return _KIND.get(Kernel(kernel).value, "group")


def row_cost(dev: DeviceProfile, scheme: str) -> float:
    """Cycles of per-row work of ``scheme``'s matrix-vector kernel: the profile's
    ``<kind>_row_cycles``, else its ``row_cycles``."""
    key = f"{_kind(scheme)}_row_cycles"
    return dev.latency[key] if key in dev.latency else latency_param(dev, "row_cycles")


def call_cost(dev: DeviceProfile, scheme: str) -> float:
    """Cycles of one call of ``scheme``'s matrix-vector kernel, whatever its size
    (``<kind>_call_cycles``, default 0)."""
    return dev.latency.get(f"{_kind(scheme)}_call_cycles", 0.0)


def overlap(dev: DeviceProfile, scheme: str) -> float:
    """Fraction of the shorter of core and memory time hidden under the longer for
    ``scheme``'s matrix-vector kernel (``<kind>_overlap``, default 1)."""
    return dev.latency.get(f"{_kind(scheme)}_overlap", 1.0)


def stream_bytes(work: KernelWork, dev: DeviceProfile) -> float:
    """Bytes a matrix-vector kernel reads and writes per call: stored values, indices,
    row pointers (csr and group schemes), the input (and for compact its gathered
    copy, written and read) and the output."""
    shape, elem = work.shape, dev.element_bytes
    index = dev.sparsity.index_bits / 8
    groups = shape.groups
    x = shape.cols * groups * elem
    y = shape.rows * groups * elem
    total = work.stored * elem + work.index_entries * index + x + y
    if work.kernel is Kernel.COMPACT:
        total += 2 * work.index_entries * elem + work.rows * index
    elif work.kernel is not Kernel.DENSE:
        total += (shape.rows + 1) * groups * index
    return total


def _issue(work: KernelWork, dev: DeviceProfile) -> tuple[float, float]:
    """(kernel issue cycles, im2col issue cycles)."""
    shape = work.shape
    if shape.is_matvec:
        if work.kernel is Kernel.DENSE:
            inner = work.macs * latency_param(dev, "dense_mac_cycles")
        elif work.kernel is Kernel.COMPACT:
            inner = (work.macs * latency_param(dev, "dense_mac_cycles")
                     + work.gathers * latency_param(dev, "csr_nnz_cycles"))
        elif work.kernel is Kernel.CSR:
            inner = work.stored * latency_param(dev, "csr_nnz_cycles")
        else:
            inner = work.stored * latency_param(dev, "group_value_cycles")
        return (inner + work.rows * row_cost(dev, work.kernel)
                + work.shape.groups * call_cost(dev, work.kernel)), 0.0
    element = latency_param(dev, "axpy_element_cycles")
    inner = ((work.macs + work.rows * shape.n) * element
             + work.stored * latency_param(dev, "axpy_cycles"))
    return inner, work.im2col_elements * latency_param(dev, "im2col_element_cycles")


def _matvec_memory(work: KernelWork, dev: DeviceProfile) -> tuple[float, dict[str, float]]:
    """(gather stall cycles, memory cycles per term): the stall from the cache
    simulator; the memory terms from the ``stream_bandwidth`` curve (one term,
    ``stream``) when the profile has one, else per level from the simulator. Only
    csr and group schemes gather: dense and compact read the input in order, which
    the prefetcher streams."""
    gathers = work.kernel not in (Kernel.DENSE, Kernel.COMPACT)
    stream = {}
    if dev.stream_bandwidth:
        moved = stream_bytes(work, dev)
        stream = {"stream": moved / dev.stream_bytes_per_cycle(moved)}
        if not gathers:
            return 0.0, stream
    counts, memory = matvec_counts(work.shape, work.kernel.value, work.density, work.group, dev)
    caches = [lvl for lvl in dev.memory if lvl.is_cache]
    backing = dev.memory[-1]
    stall = 0.0
    if gathers:
        for i, lvl in enumerate(caches[1:], start=1):
            stall += counts[i, GATHERED, HITS] * lvl.latency_cycles
        stall += memory[GATHERED, 0] * backing.latency_cycles
        stall /= latency_param(dev, "memory_parallelism")
    if stream:
        return stall, stream
    bandwidth: dict[str, float] = {}
    for i, lvl in enumerate(caches[1:], start=1):
        moved = counts[i, :, LOAD_BYTES].sum() + counts[i, :, STORE_BYTES].sum()
        bandwidth[lvl.name] = moved / lvl.bandwidth_bytes_per_cycle
    dram_bytes = memory[:, 1].sum() + memory[:, 3].sum()
    bandwidth[backing.name] = dram_bytes / backing.bandwidth_bytes_per_cycle
    return stall, bandwidth


def _matmat_memory(work: KernelWork, dev: DeviceProfile) -> dict[str, float]:
    shape = work.shape
    elem = 4.0
    x_bytes = shape.cols * shape.n * elem
    y_row = shape.n * elem
    backing = dev.memory[-1]
    caches = [lvl for lvl in dev.memory if lvl.is_cache]
    reread = work.stored * shape.n * elem            # one X row per stored weight
    source = next((lvl for lvl in caches[1:] if lvl.size_bytes >= x_bytes + y_row), backing)
    bandwidth = {source.name: reread / source.bandwidth_bytes_per_cycle}
    once = (work.stored * elem + work.index_entries * 4 + 2 * x_bytes * shape.groups
            + work.rows * y_row + shape.cols * shape.groups * elem)
    bandwidth[backing.name] = bandwidth.get(backing.name, 0.0) + once / backing.bandwidth_bytes_per_cycle
    return bandwidth


def cpu_latency(work: KernelWork, dev: DeviceProfile) -> LatencyEstimate:
    issue, im2col = _issue(work, dev)
    if work.shape.is_matvec:
        stall, bandwidth = _matvec_memory(work, dev)
        hidden = overlap(dev, work.kernel)
    else:
        stall, bandwidth = 0.0, _matmat_memory(work, dev)
        hidden = 1.0
    core = issue + im2col + stall
    slowest = max(bandwidth, key=bandwidth.get)
    memory = bandwidth[slowest]
    parts = {"issue": issue, "im2col": im2col, "stall": stall,
             **{f"{name.lower()}_bandwidth": v for name, v in bandwidth.items()}}
    if core >= memory:
        bound = "stall" if stall > issue + im2col else "issue"
    else:
        bound = f"{slowest.lower()}_bandwidth"
    cycles = max(core, memory) + (1.0 - hidden) * min(core, memory)
    return make_estimate(dev, cycles, bound, parts)
