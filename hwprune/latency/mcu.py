"""Microcontroller latency: an in-order core without caches, counted instruction by
instruction (CMSIS-NN style q15 kernels).

Per kernel, with ``L`` = ``latency.load_cycles``, ``M`` = ``latency.mac_cycles``,
``B`` = ``latency.branch_cycles`` per ``latency.loop_unroll`` iterations:

* dense: per pair of MACs (``simd_lanes`` = 2 halfwords per word) one weight-word
  load, one input-word load and one dual MAC (SMLAD): ``2L + M``;
* csr: per nonzero an index load, a value load, a gathered input load and a single
  MAC (no pairing across a gather): ``3L + M``;
* group (width ``g``): per group an index load, then per pair of lanes ``2L + M``;
* compact: a gather of the kept columns (``2L`` + a store each), then dense;
* convolutions: the same inner loops with the ``n`` output positions as the outer
  loop, plus im2col (a load and a store per element).

Every row adds ``latency.row_cycles``. Weights and indices are read from the memory
level holding weights (flash on the built-in MCU): each line of it that the kernel
streams through costs that level's ``latency_cycles - load_cycles`` wait states once
(sequential reads inside one line are served by the line buffer). The core is in order,
so the terms add: ``cycles = issue + wait``.

Simplification: no flash cache or prefetch (the STM32's ART accelerator) is modelled,
and loads pay their full latency (back-to-back loads that pipeline to one cycle each
on a Cortex-M4 make the estimate an upper bound).
"""

from __future__ import annotations

import math

from ..hardware.profile import DeviceProfile
from ..schemes import Kernel
from .estimate import LatencyEstimate, latency_param, make_estimate
from .work import KernelWork


def _weights_level(dev: DeviceProfile):
    for lvl in reversed(dev.memory):
        if "weights" in lvl.holds and lvl.kind in ("flash", "sram", "dram"):
            return lvl
    return dev.memory[-1]


def mcu_latency(work: KernelWork, dev: DeviceProfile) -> LatencyEstimate:
    load = latency_param(dev, "load_cycles")
    mac = latency_param(dev, "mac_cycles")
    branch = latency_param(dev, "branch_cycles") / latency_param(dev, "loop_unroll")
    row = latency_param(dev, "row_cycles")
    pair = max(1, dev.compute.simd_lanes)
    shape = work.shape
    n = shape.n
    elem = dev.element_bytes
    index_bytes = dev.sparsity.index_bits / 8
    if work.kernel in (Kernel.DENSE, Kernel.COMPACT):
        words = math.ceil(work.stored / pair)
        inner = words * (2 * load + mac + branch)
        gather = work.gathers * (2 * load + 1 + branch)
    elif work.kernel is Kernel.CSR:
        inner = work.stored * (3 * load + mac + branch)
        gather = 0.0
    else:
        words = work.index_entries * math.ceil(work.group / pair)
        inner = work.index_entries * (load + branch) + words * (2 * load + mac)
        gather = 0.0
    issue = inner * n + gather + work.rows * n * row
    im2col = work.im2col_elements * (2 * load + branch)
    stream_bytes = work.stored * elem + work.index_entries * index_bytes
    lvl = _weights_level(dev)
    wait_per_line = max(0.0, lvl.latency_cycles - load)
    wait = math.ceil(stream_bytes / lvl.line_bytes) * wait_per_line * n
    parts = {"issue": issue, "im2col": im2col, "flash": wait}
    return make_estimate(dev, issue + im2col + wait, max(parts, key=parts.get), parts)
