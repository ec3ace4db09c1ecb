"""GPU latency: warps, coalesced versus gathered transactions, rooflines, launch
overhead and occupancy.

The kernels are the usual GPU ones: one warp per output row for matrix-vector
products (cuSPARSE's CSR-vector scheme), a tiled GEMM for dense convolutions, and one
warp per (row, stored weight) axpy over the ``n`` output positions for sparse
convolutions (no tile reuse, the reason sparse GEMM is slow on GPUs).

* **Transactions** (``latency.transaction_bytes`` each, served by L2): stored
  values and indices are read coalesced; a dense input vector is read coalesced once
  per row; a gathered input costs one transaction per stored value (csr) or per group
  of ``g`` contiguous values (``ceil(4g / transaction)``).
* **Rooflines:** ``compute = MACs / peak`` (dense GEMM at ``latency.gemm_efficiency``
  of peak), ``dram = bytes / DRAM bandwidth`` (weights, indices, inputs, outputs once),
  ``l2 = transactions x bytes / L2 bandwidth``.
* **Latency and occupancy:** in a matrix-vector product each warp walks its row in
  steps of a warp's width; a step waits for a DRAM round trip (values, indices) plus,
  when inputs are gathered, an L2 round trip. In a sparse convolution a warp owns 32
  output positions of one row and takes one step per stored weight of the row. Resident
  warps are ``units x latency.max_warps_per_unit``; more warps run in further waves:
  ``latency = waves x steps x round trip``. A layer with fewer warps than resident
  slots leaves the device under-occupied, and this term then dominates. A tiled
  dense GEMM hides latency (no latency term).
* ``cycles = launch + max(compute, dram, l2, latency)`` (the terms overlap).

Simplifications: one kernel launch per layer (im2col is fused into the GEMM, as
implicit-GEMM convolutions do), no shared-memory tiling for sparse kernels, no
bank conflicts, one clock for core and memory system.
"""

from __future__ import annotations

import math

from ..hardware.profile import DeviceProfile
from ..schemes import Kernel
from .estimate import LatencyEstimate, latency_param, make_estimate
from .work import KernelWork


def _level(dev: DeviceProfile, kind: str):
    for lvl in dev.memory:
        if lvl.kind == kind:
            return lvl
    return dev.memory[-1]


def gpu_latency(work: KernelWork, dev: DeviceProfile) -> LatencyEstimate:
    warp = latency_param(dev, "warp_size")
    max_warps = latency_param(dev, "max_warps_per_unit")
    launch = latency_param(dev, "launch_cycles")
    sector = latency_param(dev, "transaction_bytes")
    efficiency = latency_param(dev, "gemm_efficiency")
    dram = _level(dev, "dram")
    l2 = next((lvl for lvl in dev.memory if lvl.is_cache), dram)
    shape = work.shape
    n = shape.n
    elem = dev.element_bytes
    index_bytes = dev.sparsity.index_bits / 8
    peak = dev.compute.peak_macs_per_cycle
    rows = work.rows
    per_row = work.stored / max(rows, 1)
    weight_bytes = work.stored * elem + work.index_entries * index_bytes + (rows + 1) * 4
    in_bytes = shape.cols * shape.groups * n * elem if not shape.is_matvec else shape.cols * elem
    out_bytes = rows * n * elem
    dram_cycles = (weight_bytes + in_bytes + out_bytes) / dram.bandwidth_bytes_per_cycle
    value_tx = math.ceil(weight_bytes / sector)
    if shape.is_matvec:
        if work.kernel in (Kernel.DENSE, Kernel.COMPACT):
            input_tx = rows * math.ceil(shape.cols * elem / sector)
        elif work.kernel is Kernel.CSR:
            input_tx = work.stored
        else:
            input_tx = work.index_entries * math.ceil(work.group * elem / sector)
        compute = work.macs / peak
        steps = math.ceil(per_row / warp)
        warps = rows
    else:
        if work.kernel in (Kernel.DENSE, Kernel.COMPACT):
            compute = work.macs / (peak * efficiency)
            # Tiled GEMM: each input element is re-read once per 64-row output tile.
            input_tx = math.ceil(in_bytes * math.ceil(rows / 64) / sector)
        else:
            compute = work.macs / peak
            input_tx = work.stored * math.ceil(n * elem / sector)
        # One warp per (row, 32 output positions); a step loads one stored weight's
        # inputs. A tiled dense GEMM hides latency (no latency term).
        steps = 0 if work.kernel in (Kernel.DENSE, Kernel.COMPACT) else math.ceil(per_row)
        warps = rows * math.ceil(n / warp)
    l2_cycles = (value_tx + input_tx) * sector / l2.bandwidth_bytes_per_cycle
    resident = dev.compute.units * max_warps
    waves = math.ceil(warps / resident)
    if shape.is_matvec:
        gathered = work.kernel not in (Kernel.DENSE, Kernel.COMPACT)   # compact gathers in a prologue
        round_trip = dram.latency_cycles + (l2.latency_cycles if gathered else 0.0)
    else:
        round_trip = l2.latency_cycles
    latency = waves * steps * round_trip
    parts = {"compute": compute, "dram": dram_cycles, "l2": l2_cycles, "latency": latency}
    bound = max(parts, key=parts.get)
    parts["launch"] = launch
    return make_estimate(dev, launch + max(compute, dram_cycles, l2_cycles, latency), bound, parts)
