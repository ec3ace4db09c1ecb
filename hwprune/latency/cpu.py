"""CPU latency, one core: the dense baseline as a BLAS runs it (blocked GEMM, GEMV), the
sparse kernels counted instruction by instruction, cache-simulator stalls for gathered
loads, and a bandwidth roofline.

All counts are per call of the layer's kernel (all groups), in core clock cycles; bytes
are fp32 values (4 B) and int32 indices (``sparsity.index_bits``); ``L`` below is
``compute.simd_lanes`` (8 fp32 lanes for AVX2) and the keys are the profile's
``[latency]`` table (:data:`hwprune.hardware.profile.LATENCY_KEYS`).

**Dense matrix-matrix: GEMM as a BLAS runs it** (convolutions as im2col + GEMM; a fully
connected layer at batch ``b > 1``). ``C[M, N] = A[M, K] B[K, N]`` with ``A`` the
weights, ``B`` the im2col matrix (``K = C R S``, ``N = b E F``), per group. Goto & van
de Geijn (2008) and BLIS (Van Zee & van de Geijn 2015) block it in five loops: ``B`` is
packed in ``gemm_kc x gemm_nc`` panels (L3), ``A`` in ``gemm_mc x gemm_kc`` blocks (L2),
and a register-blocked micro-kernel updates a ``gemm_mr x gemm_nr`` tile of ``C`` held
in registers. The AVX2 ``6 x 16`` micro-kernel, per step of ``k``::

    vmovaps ymm, [B]        ; 2 vector loads: 16 values of B's row (L1-resident panel)
    vbroadcastss ymm, [A]   ; 6 broadcasts: one value of each of A's 6 rows (L2 block)
    vfmadd231ps             ; 12 vector FMAs into 12 accumulator registers

12 FMAs at 2 per cycle = 6 cycles, 8 loads at 2 per cycle = 4 cycles: FMA-bound, the
peak ``compute.macs_per_unit_per_cycle`` MACs per cycle (16 on Skylake). Modelled:

* tiles ``T = ceil(M / mr) ceil(N / nr)`` (or with ``mr`` and ``nr`` swapped, whichever
  pads less: a BLAS computes ``C^T = B^T A^T`` as readily); every tile is computed in
  full (edge tiles under-filled), so ``kernel = T mr nr K / (peak x gemm_efficiency)``;
  ``gemm_efficiency`` is the fraction of peak a BLAS reaches in steady state;
* ``tile = T ceil(K / kc) x gemm_tile_cycles``: per micro-kernel call the ``C`` tile
  is loaded, added and stored (``mr nr / L`` vector loads and stores) and the loop set up;
* ``pack = (K N + M K ceil(N / nc)) x pack_element_cycles``: ``B`` packed once, ``A``
  once per ``nc`` panel;
* im2col (convolutions with ``R S > 1``): ``K N x im2col_element_cycles``;
* memory: with the blocking, each operand crosses the memory system about once:
  ``4 (M K ceil(N / nc) + K N + 2 M N ceil(K / kc))`` bytes from the innermost level
  that holds the layer's footprint ``4 (M K + K N + M N)`` (see *Memory* below).

``core = kernel + tile + pack + im2col``; ``cycles = max(core, memory)`` (the packed,
prefetched loops overlap streaming with computation).

**Dense matrix-vector: GEMV as a BLAS runs it** (a fully connected layer at batch 1; numpy
``W @ x`` on a row-major ``W`` is OpenBLAS's ``sgemv_t``): four rows at once, per
``L`` columns::

    vmovups ymm, [x]        ; 1 vector load of the input, shared by the 4 rows
    vfmadd231ps ymm, [W_r]  ; 4 vector FMAs, each with its row's vector load (4 loads)

5 loads per ``4 L`` MACs at 2 loads per cycle: ``dense_mac_cycles`` per MAC (0.078 at
``L = 8``), plus ``dense_row_cycles`` per row (horizontal sum of the accumulator and
store) and ``dense_call_cycles`` per call. Bandwidth-bound once ``W`` leaves the caches, at
the GEMV's own measured bandwidth (see *Memory*).

**Sparse matrix-vector kernels** (batch 1), inner loop per stored element:

* ``csr`` (CSR SpMV, hwprune's ``csr_matvec``)::

      vmovss  xmm0, [val + p]        ; load value
      mov     eax, [idx + p]         ; load column index
      vfmadd231ss xmm1, xmm0, [x + 4*rax]  ; gathered load of x, scalar FMA
      add p / cmp / jb               ; loop (macro-fused), 4 accumulators unrolled

  3 loads at 2 per cycle: ``csr_nnz_cycles`` per stored nonzero; per row
  ``csr_row_cycles`` (the row-exit branch mispredicts, reduction, store).
* SIMD-group CSR (``group-csr``: Scalpel's SIMD-aware format, groups of ``g = L``
  aligned weights of a row, one index per group)::

      mov     eax, [group_col + q]   ; 1 index load per group
      vmovups ymm0, [val + q*32]     ; vector load of the g weights
      vfmadd231ps ymm1, ymm0, [x + 4*rax]  ; vector load of g inputs (aligned: groups
                                     ;   start at multiples of g), vector FMA
      add q / cmp / jb

  3 loads per group at 2 per cycle = 1.5 cycles, but two accumulators on a 4-cycle FMA
  latency allow one group per 2 cycles: ``group_value_cycles`` = 2 / g per stored value.
* ``compact`` (node pruning): gather of the ``K`` kept columns of ``x`` (index load,
  scalar load, store: ``csr_nnz_cycles`` each), then the dense GEMV above on the smaller
  ``kept_rows x K`` matrix (``compact_row_cycles`` per kept row includes the scatter of
  its result).

Gathered loads (``csr``, ``group-csr``) stall on misses: the kernel's exact address
trace runs through the cache simulator (:mod:`hwprune.cost.cachesim`), warm (the second
of two calls, or a sampled window of rows after a warming window), and ``stall = sum
over levels of (gathered loads that level serves) x latency_cycles /
memory_parallelism``. A random mask makes that count noisy in density; so that latency
never rises as density falls, the stall is simulated on the density grid ``1, 1/2, ...,
1/128``, each grid value replaced by the smallest at that density or above (a monotone
envelope), and interpolated linearly between grid points (proportionally to density
below the grid). Dense, compact and the sequential arrays are left to the prefetcher:
they cost bandwidth, not latency.

**Sparse matrix-matrix kernels** (convolutions; fc at batch ``b``): SpMM, sparse weights
times the dense im2col matrix ``X[K, N]``, one axpy over the ``N`` output columns per
stored weight (hwprune's ``csr_matmat`` and ``group_matmat``)::

      vbroadcastss ymm0, [val + p]   ; per stored weight: broadcast it, load its index,
      mov eax, [idx + p]             ;   set up the row pointer (axpy_cycles)
      loop over N / L:               ; per L columns:
        vmovups ymm1, [X + row(rax)] ;   load L values of X's row
        vfmadd213ps ymm1, ymm0, [Y]  ;   load L outputs, FMA
        vmovups [Y], ymm1            ;   store L outputs (1 store per cycle: the bound)

``(stored + rows) ceil(N / L) L x axpy_element_cycles + stored x axpy_cycles`` (the
``rows`` term zeroes the output), plus im2col. Unlike GEMM no register blocking reuses a
loaded ``X`` or ``Y`` vector across weights: every MAC moves a vector element in and out
of L1, and ``X``'s row is re-read for every stored weight, ``4 stored N`` bytes from the
innermost level that holds ``X`` and a row of ``Y`` (free when that is L1: the loads are
in the issue count). This is why CSR loses to GEMM on convolutions. ``compact`` on a
convolution is a dense GEMM on the kept rows.

**Fully connected at batch b > 1** is a GEMM with ``N = b`` (weights reused across the
batch) or, whichever is faster, ``b`` matrix-vector calls (what a BLAS does for very
thin products); the same holds for each sparse kernel.

**Memory**: bytes over the bandwidth of the level that serves them, one of three ways:

* the dense and compact matrix-vector products, with a measured ``gemv_bandwidth``
  curve (profiles written by ``hwprune calibrate``): ``bytes / gemv_bytes_per_cycle(
  footprint)``. The curve is what the host's BLAS GEMV itself achieves (numpy ``W @ x``
  on an ``r x 3r`` ``W``, one thread, called again and again; ``W``, ``x`` and ``y`` bytes per
  cycle against their footprint, best of passes, each point the fastest at its footprint
  or any larger one: a small call's numpy dispatch is priced by the core terms). It is
  measured because a BLAS GEMV does not reach the sequential-read stream's bandwidth
  once ``W`` leaves L2: on the 2-vCPU AMD EPYC host of the validation (32 MiB L3),
  OpenBLAS's ``sgemv_t`` moved 79-91% of what a vectorized sum of the same footprint
  reads at 1-16 MiB and 55-76% at 22-128 MiB (both curves of one ``hwprune calibrate``
  run; it walks four rows at once, five concurrent streams against one: plausibly
  fewer prefetched lines in flight per stream; not verified). In L1 and L2 the curve holds
  the GEMV's best in-cache rate on ``r x 3r`` matrices, and ``max(core, memory)`` takes
  the larger of it and the fitted core terms. Compact's bytes
  (kept ``W``, ``x``, its gathered copy, ``y``, indices) all go on this curve: the
  gather and scatter add ``3 K + kept_rows`` values to ``K x kept_rows`` (a
  simplification). The sparse kernels (hwprune's numba loops: one value, one index
  stream) stay on the stream curve;
* with a measured ``stream_bandwidth`` curve (profiles written by ``hwprune
  calibrate``): ``bytes / stream_bytes_per_cycle(footprint)``;
* otherwise the innermost cache level whose ``size_bytes`` holds the footprint serves
  every byte at its ``bandwidth_bytes_per_cycle`` (a single core's sustained rate; L1
  costs nothing beyond the issued loads), else DRAM at ``dram_core_bytes_per_cycle``
  (what one core sustains; the channels' peak needs several cores). The result names a
  term per level (``l2_bandwidth``, ``l3_bandwidth``, ``dram_bandwidth``), zero for the
  levels that do not serve. Profiles without curves (the built-in ``core-i7``) price
  the dense GEMV this way too.

Matrix-vector bytes: stored values, indices, row pointers, the input (compact: also its
gathered copy) and the output, each once per call.

**Overlap**: ``cycles = max(core, memory) + (1 - overlap) x min(core, memory)`` with
``core = issue + im2col + stall``; ``overlap`` per matrix-vector kernel
(``<kind>_overlap``, default 1, fitted by ``hwprune calibrate``); 1 for matrix-matrix.

Simplifications: one core, no TLB misses, no frequency scaling; the steady state of a
layer run call after call (its footprint stays in the cache that holds it); im2col is
skipped for 1x1 kernels whatever their stride; the GEMM micro-kernel's L2 traffic
(``mr`` values of ``A`` per ``mr nr`` MACs) is taken to hide under the FMAs.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ..cost import traces as T
from ..cost.cachesim import HITS, CacheSimulator, levels_of
from ..hardware.profile import DeviceProfile
from ..schemes import Kernel
from ..sparse import formats as F
from .estimate import LatencyEstimate, latency_param, make_estimate
from .work import KernelShape, KernelWork, kernel_work

SAMPLE_ACCESSES = 600_000
"""Accesses of the counted window of a sampled matrix-vector simulation."""

WHOLE_ACCESSES = 8_000_000
"""A matrix-vector trace up to this many accesses is simulated whole (twice, the second
call counted) instead of sampled."""

STALL_GRID = tuple(2.0 ** -i for i in range(8))
"""Densities at which the gather stall is simulated (1 down to 1/128); see
:func:`gather_stall`."""

ELEM = 4
"""Bytes of an fp32 value."""

GATHERED = T.IN_ID

NO_GEMM = {"kernel": 0.0, "tile": 0.0, "pack": 0.0}
"""The GEMM's terms (part of ``issue``), zero for the other kernels."""


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


@lru_cache(maxsize=4096)
def _simulated_stall(shape: KernelShape, scheme: str, density: float, group: int,
                     dev: DeviceProfile) -> float:
    """Stall cycles of the gathered loads of one simulated random mask at ``density``."""
    counts, memory = matvec_counts(shape, scheme, density, group, dev)
    caches = [lvl for lvl in dev.memory if lvl.is_cache]
    stall = sum(counts[i, GATHERED, HITS] * lvl.latency_cycles
                for i, lvl in enumerate(caches[1:], start=1))
    stall += memory[GATHERED, 0] * dev.memory[-1].latency_cycles
    return float(stall) / latency_param(dev, "memory_parallelism")


def gather_stall(work: KernelWork, dev: DeviceProfile) -> float:
    """Stall cycles of a gathered matrix-vector kernel (``csr``, group schemes) at
    ``work.density``: the simulated stalls on :data:`STALL_GRID`, made non-increasing as
    density falls (each grid value the smallest at it or any density above), linear
    between grid points and proportional to density below the grid. Never rises as
    density falls, whatever the random masks."""
    shape = KernelShape(rows=work.shape.rows, cols=work.shape.cols, n=1, groups=work.shape.groups)
    d = work.density
    envelope = []
    for g in STALL_GRID:
        raw = _simulated_stall(shape, work.kernel.value, g, work.group, dev)
        envelope.append(raw if not envelope else min(raw, envelope[-1]))
        if g <= d:
            break
    if d >= 1.0:
        return envelope[0]
    if d < STALL_GRID[-1]:
        return envelope[-1] * d / STALL_GRID[-1]
    hi, lo = STALL_GRID[len(envelope) - 2], STALL_GRID[len(envelope) - 1]
    t = (d - lo) / (hi - lo)
    return envelope[-1] + t * (envelope[-2] - envelope[-1])


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


def dram_bytes_per_cycle(dev: DeviceProfile) -> float:
    """What one core streams from DRAM per cycle: ``dram_core_bytes_per_cycle``, else the
    last memory level's bandwidth."""
    return dev.latency.get("dram_core_bytes_per_cycle", dev.memory[-1].bandwidth_bytes_per_cycle)


def memory_terms(dev: DeviceProfile, moved: float, footprint: float,
                 gemv: bool = False) -> dict[str, float]:
    """Cycles to move ``moved`` bytes of a kernel whose data spans ``footprint`` bytes:
    ``{"gemv": ...}`` on the measured BLAS GEMV curve when ``gemv`` (the dense and
    compact matrix-vector products) and the profile has one, else ``{"stream": ...}``
    on a measured stream curve, else one term per level below L1 (only the innermost
    level that holds the footprint is non-zero; nothing when L1 holds it)."""
    if gemv and dev.gemv_bandwidth:
        return {"gemv": moved / dev.gemv_bytes_per_cycle(footprint)}
    if dev.stream_bandwidth:
        return {"stream": moved / dev.stream_bytes_per_cycle(footprint)}
    caches = [lvl for lvl in dev.memory if lvl.is_cache]
    terms = {lvl.name: 0.0 for lvl in caches[1:]}
    terms[dev.memory[-1].name] = 0.0
    if caches and footprint <= caches[0].size_bytes:
        return terms
    for lvl in caches[1:]:
        if footprint <= lvl.size_bytes:
            terms[lvl.name] = moved / lvl.bandwidth_bytes_per_cycle
            return terms
    terms[dev.memory[-1].name] = moved / dram_bytes_per_cycle(dev)
    return terms


def _add(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: a.get(k, 0.0) + b.get(k, 0.0) for k in {**a, **b}}


# ------------------------------------------------------------------ dense: BLAS GEMM


def gemm(dev: DeviceProfile, m: int, k: int, n: int, groups: int = 1
         ) -> tuple[dict[str, float], dict[str, float]]:
    """A BLAS SGEMM ``C[m, n] = A[m, k] B[k, n]``, ``groups`` times: ``(core terms
    {"kernel", "tile", "pack"}, memory terms)`` in cycles (see the module docstring)."""
    mr, nr = int(latency_param(dev, "gemm_mr")), int(latency_param(dev, "gemm_nr"))
    kc, nc = int(latency_param(dev, "gemm_kc")), int(latency_param(dev, "gemm_nc"))
    peak = dev.compute.macs_per_unit_per_cycle * latency_param(dev, "gemm_efficiency")
    tiles = min(math.ceil(m / mr) * math.ceil(n / nr), math.ceil(m / nr) * math.ceil(n / mr))
    kernel = tiles * mr * nr * k / peak
    tile = tiles * math.ceil(k / kc) * latency_param(dev, "gemm_tile_cycles")
    pack = (k * n + m * k * math.ceil(n / nc)) * latency_param(dev, "pack_element_cycles")
    moved = ELEM * (m * k * math.ceil(n / nc) + k * n + 2 * m * n * math.ceil(k / kc))
    footprint = ELEM * (m * k + k * n + m * n) * groups
    core = {"kernel": kernel * groups, "tile": tile * groups, "pack": pack * groups}
    return core, memory_terms(dev, moved * groups, footprint)


def _im2col(work: KernelWork, dev: DeviceProfile) -> float:
    if work.shape.is_fc or work.shape.kernel == (1, 1):
        return 0.0
    return work.im2col_elements * latency_param(dev, "im2col_element_cycles")


# ---------------------------------------------------------------- per kernel kind


def _matvec(work: KernelWork, dev: DeviceProfile) -> tuple[dict[str, float], dict[str, float], float]:
    """(core terms, memory terms, overlap) of a matrix-vector kernel."""
    if work.kernel is Kernel.DENSE:
        inner = work.macs * latency_param(dev, "dense_mac_cycles")
    elif work.kernel is Kernel.COMPACT:
        inner = (work.macs * latency_param(dev, "dense_mac_cycles")
                 + work.gathers * latency_param(dev, "csr_nnz_cycles"))
    elif work.kernel is Kernel.CSR:
        inner = work.stored * latency_param(dev, "csr_nnz_cycles")
    else:
        inner = work.stored * latency_param(dev, "group_value_cycles")
    issue = (inner + work.rows * row_cost(dev, work.kernel)
             + work.shape.groups * call_cost(dev, work.kernel))
    gathers = work.kernel not in (Kernel.DENSE, Kernel.COMPACT)
    stall = gather_stall(work, dev) if gathers else 0.0
    moved = stream_bytes(work, dev)
    memory = memory_terms(dev, moved, moved, gemv=not gathers)
    return {"issue": issue, **NO_GEMM, "im2col": 0.0, "stall": stall}, memory, overlap(dev, work.kernel)


def matvec_stall_memory(work: KernelWork, dev: DeviceProfile) -> tuple[float, float]:
    """(gather stall cycles, memory cycles of the slowest level) of a matrix-vector kernel:
    the terms :mod:`hwprune.calibrate.matvec_fit` holds fixed while it fits the rest."""
    core, memory, _ = _matvec(work, dev)
    return core["stall"], max(memory.values())


def _matmat(work: KernelWork, dev: DeviceProfile) -> tuple[dict[str, float], dict[str, float], float]:
    """(core terms, memory terms, overlap) of a matrix-matrix kernel."""
    shape = work.shape
    im2col = _im2col(work, dev)
    if work.kernel in (Kernel.DENSE, Kernel.COMPACT):
        rows = work.rows // shape.groups
        core, memory = gemm(dev, rows, shape.cols, shape.n, shape.groups)
        return {"issue": sum(core.values()), **core, "im2col": im2col, "stall": 0.0}, memory, 1.0
    lanes = dev.compute.simd_lanes
    n_padded = math.ceil(shape.n / lanes) * lanes
    issue = ((work.stored + work.rows) * n_padded * latency_param(dev, "axpy_element_cycles")
             + work.stored * latency_param(dev, "axpy_cycles"))
    index = dev.sparsity.index_bits / 8
    x_bytes = ELEM * shape.cols * shape.n
    # X's row re-read per stored weight, from the innermost level holding X and a row of Y.
    reread = memory_terms(dev, ELEM * work.stored * shape.n, x_bytes + ELEM * shape.n)
    once = (ELEM * work.stored + index * (work.index_entries + (shape.rows + 1) * shape.groups)
            + x_bytes * shape.groups + ELEM * work.rows * shape.n)
    memory = _add(reread, memory_terms(dev, once, once))
    return {"issue": issue, **NO_GEMM, "im2col": im2col, "stall": 0.0}, memory, 1.0


def _combine(core: dict[str, float], memory: dict[str, float], hidden: float) -> tuple[float, str]:
    busy = core["issue"] + core["im2col"] + core["stall"]
    slowest = max(memory, key=memory.get)
    mem = memory[slowest]
    if busy >= mem:
        bound = "stall" if core["stall"] > core["issue"] + core["im2col"] else "issue"
    else:
        bound = f"{slowest.lower()}_bandwidth"
    return max(busy, mem) + (1.0 - hidden) * min(busy, mem), bound


def cpu_latency(work: KernelWork, dev: DeviceProfile) -> LatencyEstimate:
    """Predicted time of ``work`` on the cpu profile ``dev`` (see the module docstring)."""
    shape = work.shape
    core, memory, hidden = (_matvec if shape.is_matvec else _matmat)(work, dev)
    cycles, bound = _combine(core, memory, hidden)
    if shape.is_fc and not shape.is_matvec:
        # A thin product: b matrix-vector calls when they are faster than a GEMM/SpMM.
        single = kernel_work(KernelShape(rows=shape.rows, cols=shape.cols, n=1),
                             work.scheme, work.density, dev.compute.simd_lanes)
        v_core, v_memory, v_hidden = _matvec(single, dev)
        v_cycles, v_bound = _combine(v_core, v_memory, v_hidden)
        if shape.n * v_cycles < cycles:
            core = {k: v * shape.n for k, v in v_core.items()}
            memory = {k: v * shape.n for k, v in v_memory.items()}
            cycles, bound = shape.n * v_cycles, v_bound
    parts = {**core, **{f"{name.lower()}_bandwidth": v for name, v in memory.items()}}
    return make_estimate(dev, cycles, bound, parts)
