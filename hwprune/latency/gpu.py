"""GPU latency: cuBLAS/cuDNN-class dense kernels on a roofline with tiles and waves,
cuSPARSE-class sparse kernels counted warp instruction by warp instruction.

Units: cycles of the profile's clock, bytes, fractions. ``elem`` = the profile's
element bytes (4, fp32), ``idx`` = index bytes (4, int32), ``W`` = ``latency.warp_size``
(32 lanes), ``SM`` = ``compute.units`` (24 on the Titan X), ``RT_dram`` / ``RT_l2`` =
the DRAM and L2 ``latency_cycles``. Every kernel ends as

    kernel cycles = launch + max(compute, dram, l2, issue, latency)

(the terms overlap; ``bound`` names the largest). A layer is one kernel, except a
sparse convolution, which is two: Caffe's ``im2col`` and then cuSPARSE ``csrmm`` on the
lowered matrix (as Scalpel ran fine-grained pruning on the GPU). Those two add.

Rooflines shared by every kernel:

* ``dram = bytes / (DRAM bytes per cycle x latency.dram_efficiency)``: every operand
  crosses DRAM once (weights, indices, row pointers, inputs, outputs).
  ``dram_efficiency`` is the best fraction of the GDDR5 peak a streaming cuBLAS kernel
  reached on a Titan X (DeepBench).
* ``l2 = bytes moved between L2 and the SMs / L2 bytes per cycle``, in whole
  ``latency.transaction_bytes`` sectors where loads are gathered.
* ``issue = warp instructions / (SM x latency.issue_per_unit)`` (Maxwell: four warp
  schedulers per SM, one instruction each per cycle; dual issue is not counted).
* ``latency = chain x max(1, warps / (SM x latency.max_warps_per_unit))``: ``chain``
  is what one warp does in sequence, the round trips it waits for plus one cycle per
  warp instruction it issues; resident warps run at once and more warps queue behind
  them. A layer with few warps leaves the SMs idle and this term then dominates
  (under-occupancy).

**Dense matrix-matrix (cuDNN implicit GEMM for convolutions, cuBLAS SGEMM for fc at
batch > 1, and node/filter-pruned layers, which are the same kernel on fewer rows).**
Per group, ``M`` = output rows, ``N`` = output positions x batch, ``K`` = ``C R S``. The
library tiles the output into ``tm x tn`` tiles, the long side ``latency.gemm_tile``
(128) and the short side halved from 128 down to ``latency.conv_tile_min`` (32: cuDNN's
``maxwell_scudnn_128x128/128x64/128x32`` kernels) for a convolution, or down to
``latency.gemm_tile_min`` (64: cuBLAS's ``maxwell_sgemm_128x128/128x64``) for a cuBLAS
GEMM, in either orientation. Every configuration (tile, split-K count ``s``) is priced and
the fastest is used: the library picks its fastest kernel (cuDNN's
``cudnnFindConvolutionForwardAlgorithm`` times every algorithm and returns the fastest,
``cudnnGetConvolutionForwardAlgorithm`` with ``CUDNN_CONVOLUTION_FWD_PREFER_FASTEST``
picks one by heuristic; DeepBench's ``code/nvidia/conv_bench.cu`` and Caffe's cuDNN layer
select this way; cuBLAS picks its ``maxwell_sgemm_*`` kernel by an internal heuristic,
here taken as ideal). Each thread computes an 8x8 register block
(maxas's SGEMM), so a tile has ``w = tm tn / 64 / W`` warps (8 for 128x128, 4 for 128x64, 2 for 128x32); a
warp issues at most one FFMA per cycle, so one tile retires

    rate = efficiency x macs_per_unit x min(w, issue_per_unit) / issue_per_unit

MACs per cycle, and ``per_sm = max(1, issue_per_unit // w)`` tiles share an SM
(``slots = SM x per_sm``). ``efficiency`` is ``latency.conv_efficiency`` (cuDNN
implicit GEMM) for a convolution and ``latency.gemm_efficiency`` (cuBLAS SGEMM) for a
1x1 kernel (fc, 1x1 convolution: no im2col). ``tiles = groups x ceil(M/tm) x
ceil(N/tn)`` (padded edge tiles are whole tiles); with fewer tiles than slots, ``K`` may
be split into any ``s`` from 1 to ``slots // tiles`` slices (the ``splitK`` kernels),
the partial tiles summed through DRAM. A slice is charged at least ``gemm_tile`` deep
(``depth = max(ceil(K / s), min(K, gemm_tile))``; assumption, the bound the previous
model put on ``s``: splitting below one tile's depth buys nothing).
``waves = ceil(tiles x s / slots)``; each wave pays one DRAM round trip to fill the
pipeline:

    compute = waves x (tm x tn x depth / rate + RT_dram)

A layer with fewer tiles than slots, or a last partial wave, leaves SMs idle: the time
of a whole wave is paid (under-occupancy and wave quantization). Monotone by
construction: for one configuration every term is non-decreasing in ``M``, ``N`` and
``K``, and a smaller problem has every configuration of a larger one available (its
``tiles`` are no more, so its split-K choices are a superset) -- the larger problem's
choice, padded, bounds the smaller's time, so a node-pruned layer never costs more. ``l2`` counts each
tile slice's operand panels (``(tm + tn) x ceil(K/s)`` elements). No issue or latency term:
the measured efficiencies contain them.

**Dense matrix-vector (cuBLAS SGEMV, fc at batch 1, node-pruned fc).** One warp per
output row; per step of 128 weights each lane runs::

    LDG.128  w[row, k..k+3]       ; 4 weights, coalesced (512 B per warp), DRAM
    LDG.128  x[k..k+3]            ; coalesced, L2 hit after the first row
    4 x FFMA
    3 x IADD/ISETP/BRA            ; address, loop
    -- 9 warp instructions per 128 MACs, one DRAM round trip per step

and per row 5 SHFL + 5 FADD (warp reduction), a store and set-up (12 instructions).
``chain = ceil(K / 128) x RT_dram + instructions of the warp``; ``warps = M``.

**CSR matrix-vector (cuSPARSE csrmv, CSR-vector: Bell & Garland 2009).** ``v`` lanes
per row, ``v`` = the power of two >= the mean stored values per row, from 2 to ``W``
(CUSP's choice), ``W / v`` rows per warp. Per step of ``v`` stored values each lane
runs::

    LDG   col[j]                  ; coalesced int32 indices, DRAM
    LDG   val[j]                  ; coalesced fp32 values, DRAM (overlaps the index)
    SHL + IADD                    ; &x[col]
    LDG   x[col]                  ; gathered, through L2 (waits for the index)
    FFMA
    3 x IADD/ISETP/BRA
    -- 9 warp instructions per step; chain = DRAM then L2 round trip per step
    -- plus the warp's instructions

and per row 2 row-pointer loads, ``log2 v`` SHFL + FADD, a store (``6 + 2 log2 v``).
A step's ``v`` values span ``v / row density`` columns, so the gathers touch
``min(1, elem / (row density x sector))`` sectors per stored value (1/8 unpruned, a
whole 32-byte sector each below 1/8).

**Group-CSR matrix-vector (Scalpel's SIMD-aware groups).** The group width ``g`` is the
profile's ``simd_lanes`` (32 on the Titan X: one warp). Per step of ``W`` stored values
(``max(1, W // g)`` groups)::

    LDG   col[group]              ; one index per group (broadcast), DRAM
    LDG   val[j]                  ; coalesced, DRAM
    SHL + IADD
    LDG   x[col + lane]           ; contiguous: ceil(g elem / sector) sectors per group, L2
    FFMA
    3 x IADD/ISETP/BRA

**Sparse matrix-matrix (cuSPARSE csrmm on the lowered matrix; fc at batch > 1 reads
the input directly).** For a convolution an ``im2col`` kernel first writes the
``K x N`` lowered matrix (its own launch; input read, lowered matrix written, DRAM
bound). Then one warp per (sparse row, 32 output positions); per chunk of 32 stored
values (one index per group for group schemes) the lanes load values and indices
coalesced (2 LDG + 3 loop instructions), then for each stored value::

    SHFL  col                     ; broadcast the index (once per group)
    SHFL  val
    IMAD                          ; &B[col, n0 + lane]
    LDG   B[col, n0 .. n0+31]     ; 128 B, L2 (DRAM the first time)
    FFMA
    -- 4 warp instructions per stored value + 1 per index

so every stored weight re-reads a whole row of ``B`` (``ceil(N elem / sector)``
sectors): nothing is reused from registers or shared memory, which is why fine-grained
sparsity slows a GPU down. The loads of one chunk are issued back to back: ``chain =
ceil(stored per row / 32) x (RT_dram + RT_l2) + instructions of the warp``;
``warps = rows x ceil(N / 32)``.

**N:M on sparse tensor cores** (a profile whose ``[sparsity] structured`` lists the
pattern, e.g. the A100's 2:4): the layer runs the dense kernel above (GEMM, or GEMV at
batch 1) on the compressed weights: the math rate is ``structured_speedup`` times the
dense rate (the units skip the pruned half of each window), and the weight operand
moves ``N / M`` of its values plus ``structured_metadata_bits`` per kept value (DRAM,
and the weight panels through L2); inputs and outputs are unchanged (cuSPARSELt's
``cusparseLtMatmul``; Mishra et al., arXiv:2104.08378). A device without the pattern
runs it as CSR (:func:`hwprune.latency.work.runs_as`).

**Channel multiples.** Where the profile gives ``[sparsity] channel_multiple`` (the
tensor cores' FP16 operand granularity), a dense GEMM's ``M``, ``N`` and ``K`` run
padded up to a multiple of it, so a node-pruned layer pays for the units rounding would
keep (and ``node-roundK`` costs nothing more).

Simplifications: the opt-in L1/texture cache is left out (gathers are served by L2);
misaligned sectors, bank conflicts and the split-K reduction's launch are not counted;
the implicit-GEMM input is read once (``C/groups x E F`` per group, i.e. stride and
padding ignored); one clock (the profile's) for cores and memory; dense kernels hide
latency inside the measured efficiency.
"""

from __future__ import annotations

import math

from ..errors import InputError
from ..hardware.profile import DeviceProfile
from ..schemes import Kernel
from .estimate import LatencyEstimate, latency_param, make_estimate
from .work import KernelWork

GEMM_REGISTER_BLOCK = 64
"""Outputs per thread of a GEMM tile (an 8x8 register block, as maxas's SGEMM)."""

GEMV_STEP_ELEMS = 4
"""Weights one lane loads per step of the dense GEMV (one LDG.128)."""

GEMV_STEP_INSTRUCTIONS = 9
"""Warp instructions per step of the dense GEMV (2 LDG, 4 FFMA, 3 loop)."""

GEMV_ROW_INSTRUCTIONS = 12
"""Per-row warp instructions of the dense GEMV (5 SHFL + 5 FADD, store, set-up)."""

CSRMV_STEP_INSTRUCTIONS = 9
"""Warp instructions per step of csrmv and group-csrmv (3 LDG, 2 address, FFMA, 3 loop)."""

CSRMV_ROW_INSTRUCTIONS = 6
"""Per-row warp instructions of csrmv besides the reduction (2 row-pointer loads, store,
set-up)."""

CSRMM_VALUE_INSTRUCTIONS = 4
"""Warp instructions per stored value of csrmm (SHFL val, IMAD, LDG B, FFMA)."""

CSRMM_INDEX_INSTRUCTIONS = 1
"""Warp instructions per stored index of csrmm (SHFL col)."""

CSRMM_CHUNK_INSTRUCTIONS = 5
"""Warp instructions per chunk of ``warp`` stored values of csrmm (2 LDG, 3 loop)."""

CSRMM_ROW_INSTRUCTIONS = 12
"""Per-warp set-up of csrmm (row pointers, output address, store)."""

_FRACTIONS = ("gemm_efficiency", "conv_efficiency", "dram_efficiency")


def _level(dev: DeviceProfile, kind: str):
    for lvl in dev.memory:
        if lvl.kind == kind:
            return lvl
    return dev.memory[-1]


class GpuParams:
    """The profile values the kernels read, looked up once."""

    def __init__(self, dev: DeviceProfile):
        self.dev = dev
        self.warp = int(latency_param(dev, "warp_size"))
        self.max_warps = latency_param(dev, "max_warps_per_unit")
        self.launch = latency_param(dev, "launch_cycles")
        self.sector = latency_param(dev, "transaction_bytes")
        for key in _FRACTIONS:
            value = latency_param(dev, key)
            if not 0 < value <= 1:
                raise InputError(f"device {dev.id!r}: latency.{key} must be a fraction in (0, 1], "
                                 f"got {value!r}")
        self.gemm_eff = latency_param(dev, "gemm_efficiency")
        self.conv_eff = latency_param(dev, "conv_efficiency")
        self.dram_eff = latency_param(dev, "dram_efficiency")
        self.tile = int(latency_param(dev, "gemm_tile"))
        self.gemm_tile_min = int(min(latency_param(dev, "gemm_tile_min"), self.tile))
        self.conv_tile_min = int(min(latency_param(dev, "conv_tile_min"), self.tile))
        self.issue_width = latency_param(dev, "issue_per_unit")
        self.units = dev.compute.units
        self.unit_macs = dev.compute.macs_per_unit_per_cycle
        self.elem = dev.element_bytes
        self.idx = dev.sparsity.index_bits / 8
        self.dram = _level(dev, "dram")
        self.l2 = next((lvl for lvl in dev.memory if lvl.is_cache), self.dram)
        self.resident = self.units * self.max_warps
        self.multiple = dev.sparsity.channel_multiple

    def padded(self, size: int) -> int:
        """``size`` rounded up to the profile's ``channel_multiple``."""
        return -(-size // self.multiple) * self.multiple

    def dram_cycles(self, nbytes: float) -> float:
        return nbytes / (self.dram.bandwidth_bytes_per_cycle * self.dram_eff)

    def l2_cycles(self, nbytes: float) -> float:
        return nbytes / self.l2.bandwidth_bytes_per_cycle

    def issue_cycles(self, warp_instructions: float) -> float:
        return warp_instructions / (self.units * self.issue_width)

    def latency_cycles(self, chain: float, warps: float) -> float:
        return chain * max(1.0, warps / self.resident)

    def tiles(self, shortest: int) -> list[tuple[int, int]]:
        """(tm, tn) of the tile family: the long side ``gemm_tile``, the short side
        halved down to ``shortest``, in both orientations."""
        shorts, s = [], self.tile
        while s >= shortest:
            shorts.append(s)
            s //= 2
        return sorted({(self.tile, s) for s in shorts} | {(s, self.tile) for s in shorts})


def _gemm(g: GpuParams, m: int, n: int, k: int, groups: int, efficiency: float, shortest: int,
          weight_elems: float, in_elems: float, speedup: float = 1.0,
          weight_share: float = 1.0) -> dict[str, float]:
    """Terms of the dense tiled GEMM (module docstring): the fastest tile of the family.
    ``speedup``: math rate over dense (sparse tensor cores); ``weight_share``: bytes of
    the weight panels per dense byte (N:M values and metadata)."""
    best = None
    m, n, k = g.padded(m), g.padded(n), g.padded(k)
    for tm, tn in g.tiles(shortest):
        # 8x8 outputs per thread: tm*tn/64 threads; a warp issues one FFMA per cycle.
        warps = max(1, tm * tn // (GEMM_REGISTER_BLOCK * g.warp))
        rate = speedup * g.warp * min(warps, g.issue_width) * efficiency * g.unit_macs / (
            g.warp * g.issue_width)
        per_sm = max(1, int(g.issue_width // warps))
        slots = g.units * per_sm
        tiles = groups * math.ceil(m / tm) * math.ceil(n / tn)
        # Split-K into s slices fills idle slots: any s with tiles x s <= slots (the
        # choices only grow as the problem shrinks). A slice shallower than gemm_tile
        # costs as much as one gemm_tile deep (it is the same kernel on a padded slice).
        for s in range(1, max(1, slots // tiles) + 1):
            waves = math.ceil(tiles * s / slots)
            k_slice = math.ceil(k / s)
            depth = max(k_slice, min(k, g.tile))
            compute = waves * (tm * tn * depth / rate + g.dram.latency_cycles)
            partial = (s - 1) * 2 * groups * m * n      # split-K partial tiles, written and read
            dram = g.dram_cycles((weight_elems + in_elems + groups * m * n + partial) * g.elem)
            l2 = g.l2_cycles(tiles * s * (tm * weight_share + tn) * k_slice * g.elem)
            terms = {"compute": compute, "dram": dram, "l2": l2, "issue": 0.0, "latency": 0.0}
            if best is None or max(terms.values()) < max(best.values()):
                best = terms
    return best


def dense_kernel_terms(dev: DeviceProfile, m: int, n: int, k: int, *, convolution: bool,
                       in_elems: float | None = None) -> dict[str, float]:
    """Roofline terms (cycles, launch excluded) of one dense ``m x k`` by ``k x n`` product
    on the GPU ``dev``: cuDNN's implicit GEMM when ``convolution`` (``conv_efficiency``,
    tiles down to ``conv_tile_min``), cuBLAS SGEMM otherwise. ``in_elems`` is the input
    read from DRAM (default ``k x n``; a convolution reads ``C H W`` per image). For
    checks against measured kernels (benchmarks/validate_gpu.py); the time is the
    largest term."""
    g = GpuParams(dev)
    if min(m, n, k) < 1:
        raise InputError(f"a dense product needs m, n, k >= 1, got m={m}, n={n}, k={k}")
    efficiency, shortest = ((g.conv_eff, g.conv_tile_min) if convolution
                            else (g.gemm_eff, g.gemm_tile_min))
    return _gemm(g, m, n, k, 1, efficiency, shortest, m * k,
                 k * n if in_elems is None else in_elems)


def _gemv(g: GpuParams, rows: int, cols: int, speedup: float = 1.0,
          weight_share: float = 1.0) -> dict[str, float]:
    """Terms of the dense GEMV (module docstring); ``speedup`` and ``weight_share`` as
    in :func:`_gemm` (a sparse tensor-core GEMV: fewer steps, fewer weight bytes)."""
    steps = math.ceil(cols * weight_share / (g.warp * GEMV_STEP_ELEMS))
    instructions = rows * (steps * GEMV_STEP_INSTRUCTIONS + GEMV_ROW_INSTRUCTIONS)
    x_l2 = rows * math.ceil(cols * g.elem / g.sector) * g.sector
    return {"compute": rows * cols / (g.units * g.unit_macs * speedup),
            "dram": g.dram_cycles((rows * cols * weight_share + cols + rows) * g.elem),
            "l2": g.l2_cycles(rows * cols * weight_share * g.elem + x_l2),
            "issue": g.issue_cycles(instructions),
            "latency": g.latency_cycles(steps * g.dram.latency_cycles
                                        + steps * GEMV_STEP_INSTRUCTIONS + GEMV_ROW_INSTRUCTIONS, rows)}


def _sparse_mv(g: GpuParams, work: KernelWork) -> dict[str, float]:
    """csrmv (CSR-vector) and group-csrmv (module docstring)."""
    shape, rows = work.shape, work.rows
    cols = shape.cols * shape.groups
    per_row = work.stored / rows
    meta = (work.stored * g.elem + work.index_entries * g.idx + (rows + 1) * 4
            + (cols + rows) * g.elem)
    if work.kernel is Kernel.CSR:
        v = min(g.warp, max(2, 2 ** math.ceil(math.log2(max(per_row, 1.0)))))
        steps = math.ceil(per_row / v)
        warps = math.ceil(rows * v / g.warp)
        per_warp = steps * CSRMV_STEP_INSTRUCTIONS + CSRMV_ROW_INSTRUCTIONS + 2 * math.log2(v)
        # A step's v values span v / (row density) columns: min(1, elem/(density x sector))
        # sectors per stored value, i.e. at most one sector per element of the dense row.
        gather = min(work.stored, rows * cols * g.elem / g.sector)
    else:
        grp = work.group
        per_step = max(1, g.warp // grp)
        steps = math.ceil(work.index_entries / rows / per_step) * math.ceil(grp / g.warp)
        warps = rows
        per_warp = (steps * CSRMV_STEP_INSTRUCTIONS + CSRMV_ROW_INSTRUCTIONS
                    + 2 * math.log2(g.warp))
        gather = work.index_entries * math.ceil(grp * g.elem / g.sector)
    stream = math.ceil((work.stored * g.elem + work.index_entries * g.idx) / g.sector)
    return {"compute": work.macs / (g.units * g.unit_macs),
            "dram": g.dram_cycles(meta),
            "l2": g.l2_cycles((stream + gather) * g.sector),
            "issue": g.issue_cycles(warps * per_warp),
            "latency": g.latency_cycles(
                steps * (g.dram.latency_cycles + g.l2.latency_cycles) + per_warp, warps)}


def _csrmm(g: GpuParams, work: KernelWork) -> dict[str, float]:
    """cuSPARSE csrmm on the lowered matrix (module docstring)."""
    shape, rows = work.shape, work.rows
    n = shape.n
    per_row = work.stored / rows
    per_row_index = work.index_entries / rows
    chunks = math.ceil(per_row / g.warp)
    warps = rows * math.ceil(n / g.warp)
    per_warp = (per_row * CSRMM_VALUE_INSTRUCTIONS + per_row_index * CSRMM_INDEX_INSTRUCTIONS
                + chunks * CSRMM_CHUNK_INSTRUCTIONS + CSRMM_ROW_INSTRUCTIONS)
    lowered = shape.cols * n * shape.groups
    meta = work.stored * g.elem + work.index_entries * g.idx + (rows + 1) * 4
    b_sectors = work.stored * math.ceil(n * g.elem / g.sector)
    stream = math.ceil(meta / g.sector)
    return {"compute": work.macs / (g.units * g.unit_macs),
            "dram": g.dram_cycles(meta + (lowered + rows * n) * g.elem),
            "l2": g.l2_cycles((stream + b_sectors) * g.sector),
            "issue": g.issue_cycles(warps * per_warp),
            "latency": g.latency_cycles(
                chunks * (g.dram.latency_cycles + g.l2.latency_cycles) + per_warp, warps)}


def gpu_latency(work: KernelWork, dev: DeviceProfile) -> LatencyEstimate:
    """Predicted cycles of ``work``'s kernel(s) on the GPU ``dev`` (module docstring)."""
    g = GpuParams(dev)
    shape = work.shape
    structured = work.kernel is Kernel.NM
    if structured and not dev.sparsity.runs_natively(work.scheme.name):
        raise InputError(f"device {dev.id!r} has no hardware for {work.scheme.name}; price it "
                         "through hwprune.latency.layer_latency, which runs it as CSR")
    dense = work.kernel in (Kernel.DENSE, Kernel.COMPACT) or structured
    speedup, share = 1.0, 1.0
    if structured:
        share = work.stored / (work.rows * shape.cols)
        share += share * dev.sparsity.structured_metadata_bits / (8 * g.elem)
        speedup = dev.sparsity.structured_speedup
    fc = shape.kernel == (1, 1) and shape.n == shape.batch
    launches, before = 1, 0.0
    if shape.is_matvec:
        terms = (_gemv(g, work.rows, shape.cols * shape.groups, speedup, share) if dense
                 else _sparse_mv(g, work))
    elif dense:
        m = work.rows // shape.groups
        in_elems = (shape.cols * shape.n * shape.groups
                    // (shape.kernel[0] * shape.kernel[1]))
        if shape.kernel == (1, 1):
            efficiency, shortest = g.gemm_eff, g.gemm_tile_min
        else:
            efficiency, shortest = g.conv_eff, g.conv_tile_min
        terms = _gemm(g, m, shape.n, shape.cols, shape.groups, efficiency, shortest,
                      m * shape.cols * shape.groups * share, in_elems, speedup, share)
    else:
        if not fc:
            # Caffe's im2col: read the input once, write the K x N lowered matrix.
            lowered = shape.cols * shape.n * shape.groups
            before = g.dram_cycles((lowered + lowered // (shape.kernel[0] * shape.kernel[1]))
                                   * g.elem)
            launches = 2
        terms = _csrmm(g, work)
    bound = max(terms, key=terms.get)
    parts = dict(terms)
    if before:
        parts["im2col"] = before
    parts["launch"] = launches * g.launch
    return make_estimate(dev, launches * g.launch + before + max(terms.values()), bound, parts)
