"""Microcontroller latency with a vector extension (Arm Helium, M-profile Vector
Extension): CMSIS-NN's int8 MVE kernels and their sparse counterparts, counted
instruction by instruction. :mod:`hwprune.latency.mcu` uses this module for a profile
whose ``[latency]`` gives ``vector_bytes`` (the Cortex-M55), and its own q15 kernels
otherwise (the Cortex-M4).

Units: cycles of the core clock; bytes; counts. ``V = vector_bytes / element bytes``
lanes per vector instruction (16 int8 values in a 128-bit Q register).

Cycle rules (Arm-authored LLVM scheduling model ``llvm/lib/Target/ARM/ARMScheduleM55.td``;
J. Marsh, *Arm Helium Technology*, Arm Education Media 2020, 3.1 and 3.3), with the
profile's ``[latency]`` keys:

* the Cortex-M55 executes a 128-bit vector instruction as four 32-bit beats, two per
  cycle: a vector load (VLDRB) holds the load/store pipe ``load_cycles`` (2) cycles, a
  vector multiply-accumulate (VMLADAVA, ``V`` MACs) the multiply pipe ``mac_cycles``
  (2) cycles. The two pipes overlap, so a loop body costs the busier pipe:
  ``body = max(load pipe, MAC pipe)`` (Marsh p. 167: 5 VLDRB + 4 VMLADAVA, 64 MACs, in
  10 cycles);
* a scalar load (index, row pointer) holds the load/store pipe ``pipelined_load_cycles``
  cycles; a gather load (``VLDRB.U16`` with 16-bit offsets, ``V / 2`` lanes) makes one
  access per element (Marsh 5.2, p. 91): ``V / 2`` cycles of the load/store pipe;
* loops use the low-overhead branch extension (``WLSTP``/``LETP``) with post-incremented
  addresses and tail predication: a body pays no loop test, pointer update or branch
  (Marsh 3.3, pp. 33-34), and a last, partial vector of a row costs a whole body. A
  loop's first iteration pays ``branch_cycles`` once per row (sparse kernels; the dense
  kernels' share is inside ``row_cycles``).

Dense kernels (CMSIS-NN, github.com/ARM-software/CMSIS-NN, MVE paths):

* fully connected, batch 1: ``arm_nn_vec_mat_mult_t_s8`` runs 4 weight rows at once;
  per ``V`` columns ``VLDRB`` x 5 (the input and 4 rows) and ``VMLADAVA`` x 4:
  ``max(5 load, 4 mac)`` = 10 cycles per 64 MACs. Left-over rows (``rows % 4``) run
  1 row at a time: ``max(2 load, mac)`` per ``V`` columns. A row count may be padded
  with zero rows to a multiple of 4 when that is faster (keeps the cost monotone).
* convolution and fully connected at batch > 1: im2col (below), then
  ``arm_nn_mat_mult_nt_t_s8``: 4 columns of the product (output positions, or batch
  samples) against one weight row at a time, per ``V`` columns ``VLDRB`` x 5 and
  ``VMLADAVA`` x 4 (10 cycles per 64 MACs); left-over columns (``n % 4``) 1 at a time
  (``max(2 load, mac)``).
* per output value ``row_cycles`` (requantization and store: 12 for the matrix-vector
  kernel, derived in the profile; *simplification*: the GEMM's per-channel
  requantization, about 17, is charged the same).
* im2col (``arm_convolve_s8``'s copy of ``C`` int8 channels per kernel position with
  ``arm_memcpy_s8``, ``VLDRB`` + ``VSTRB`` per ``V`` bytes): per output column and
  kernel position ``im2col_position_cycles`` + ``ceil(C / V) x 2 x load`` cycles. A 1x1
  kernel or a fully connected layer needs none.

Sparse kernels (no CMSIS-NN kernel exists; these are the straightforward best MVE loops,
one column of the product per pass):

* ``csr`` (fine): per ``V / 2`` nonzeros of a row ``VLDRH`` of the column indices and
  ``VLDRB.S16`` of the weights (2 vector loads), the gather ``VLDRB.U16 x[idx]``
  (``V / 2`` cycles), ``VMLADAVA.S16``: ``max(2 load + V/2, mac)`` per ``V / 2``
  nonzeros (12 cycles per 8 on the M55, against the dense kernel's 1.25 per 8 MACs).
* ``group-csr`` (SIMD-aware groups of ``g``, and blocks as a device without block
  hardware runs them: groups of ``C`` along each of a block's rows): per group a scalar
  index load, ``ceil(g / V)`` weight and ``ceil(g / V)`` input vector loads (the input
  slice is contiguous) and ``ceil(g / V)`` VMLADAVA: ``max(scalar + 2 ceil(g/V) load,
  ceil(g/V) mac)``. A group narrower than ``V`` costs a whole (predicated) vector.
* both: per row and pass ``row_cycles`` + a row-pointer load + the first loop branch
  (``branch_cycles``).
* ``compact`` (node, filter): the dense kernel on the kept rows; a fully connected layer
  first gathers its kept input columns, per kept column a scalar index load, a load
  through it (``load_cycles``) and a store (``pipelined_load_cycles`` each).

Memory: as on the Cortex-M4 (:mod:`hwprune.latency.mcu`): weights, indices and row
pointers stream from the level holding weights (the MRAM through the data cache on the
Alif E3), paying its wait states once per line and pass unless they fit in
``flash_cache_lines`` lines. ``cycles = issue + im2col + flash``.

Simplifications: one column per pass in the sparse kernels (no reuse of an index across
columns); the dense GEMM's requantization is charged as the matrix-vector kernel's;
grouped and depthwise convolutions run the same kernel per group (CMSIS-NN's depthwise
MVE kernels are not modelled); no interrupts or bus contention.
"""

from __future__ import annotations

import math

from ..hardware.profile import DeviceProfile
from ..schemes import Kernel
from .estimate import latency_param
from .work import KernelWork

ROW_BLOCK = 4
"""Weight rows (matrix-vector) or product columns (GEMM) per body of CMSIS-NN's MVE
kernels (``arm_nn_vec_mat_mult_t_s8``, ``arm_nn_mat_mult_nt_t_s8``)."""


def lanes(dev: DeviceProfile) -> int:
    """Elements per vector instruction: ``vector_bytes`` / element bytes."""
    return max(1, int(latency_param(dev, "vector_bytes") // dev.element_bytes))


def _body(cy, vector_loads: float, macs: float, scalar_loads: float = 0.0,
          gathered: float = 0.0) -> float:
    """Cycles of one loop body: the busier of the load/store and the multiply pipes."""
    return max(vector_loads * cy.load + scalar_loads * cy.lp + gathered, macs * cy.mac)


def _dense(cy, rows: int, k: int, n: int, v: int, elem: float) -> tuple[float, float]:
    """(issue, flash) of a dense ``rows x k`` matrix times ``n`` columns."""
    steps = math.ceil(k / v)
    full, single = _body(cy, ROW_BLOCK + 1, ROW_BLOCK), _body(cy, 2, 1)

    def cost(m: int) -> tuple[float, float]:
        if n == 1:
            blocks, left = divmod(m, ROW_BLOCK)
            issue = steps * (blocks * full + left * single)
            passes = 1
        else:
            blocks, left = divmod(n, ROW_BLOCK)
            issue = m * steps * (blocks * full + left * single)
            passes = blocks + left
        return issue + m * n * cy.row, cy.flash([m * k * elem], passes)

    padded = -(-rows // ROW_BLOCK) * ROW_BLOCK if n == 1 else rows
    return min(cost(rows), cost(padded), key=sum)


def _sparse(cy, work: KernelWork, rows: int, n: int, v: int, elem: float,
            index_bytes: float) -> tuple[float, float]:
    """(issue, flash) of the CSR or group-CSR kernel on one group's share of ``work``."""
    groups = work.shape.groups
    entries = work.index_entries / groups         # nonzeros (csr) or groups (group-csr)
    if work.kernel is Kernel.CSR:
        half = max(1, v // 2)
        per_entry = _body(cy, 2, 1, gathered=half) / half
    else:
        vectors = math.ceil(work.group / v)
        per_entry = _body(cy, 2 * vectors, vectors, scalar_loads=1)
    per_row = cy.row + cy.lp + cy.branch
    streams = [work.stored / groups * elem, entries * index_bytes, (rows + 1) * 4.0]
    return n * (entries * per_entry + rows * per_row), cy.flash(streams, n)


def _im2col(cy, work: KernelWork, v: int) -> float:
    shape = work.shape
    positions = shape.kernel[0] * shape.kernel[1]
    if shape.is_fc or positions == 1:
        return 0.0
    channels = shape.cols / positions
    per_column = positions * (cy.position + math.ceil(channels / v) * 2 * cy.load)
    return per_column * shape.n * shape.groups


def mve_parts(cy, work: KernelWork, dev: DeviceProfile) -> dict[str, float]:
    """``{"issue", "im2col", "flash"}`` cycles of ``work`` on the vector core ``dev``
    (module docstring); ``cy``: :mod:`hwprune.latency.mcu`'s cycle costs of ``dev``."""
    v = lanes(dev)
    shape = work.shape
    n, groups, k = shape.n, shape.groups, shape.cols
    elem = dev.element_bytes
    index_bytes = dev.sparsity.index_bits / 8
    rows = work.rows // groups
    if work.kernel in (Kernel.DENSE, Kernel.COMPACT):
        issue, flash = _dense(cy, rows, k, n, v, elem)
        if work.gathers:
            per_column = work.gathers / groups
            issue += n * per_column * (cy.load + 2 * cy.lp)
            flash += cy.flash([per_column * index_bytes], n)
    else:
        issue, flash = _sparse(cy, work, rows, n, v, elem, index_bytes)
    return {"issue": issue * groups, "im2col": _im2col(cy, work, v), "flash": flash * groups}
