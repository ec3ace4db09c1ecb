"""Microcontroller latency: an in-order Cortex-M4 core without a data cache, counted
instruction by instruction as CMSIS-NN's q15 kernels and their sparse counterparts run.
A core with a vector extension (a profile with ``latency.vector_bytes``: the Cortex-M55's
Helium) runs CMSIS-NN's int8 MVE kernels instead, counted in :mod:`hwprune.latency.mve`
with the same cycle costs and flash model.

Units: cycles of the core clock; bytes; counts. Every weight and activation is a q15
(16-bit) value, two per 32-bit word; indices are ``sparsity.index_bits`` wide.

Cycle rules (ARM Cortex-M4 TRM r0p1 table 3-1 and section 3.3 "Load/store timings",
reprinted in TI SWCU185 "Cortex-M4 instruction set / load/store timings"), with the
profile's ``[latency]`` keys:

* a load (LDR, LDRH) costs ``load_cycles`` (2); a load or store that directly follows a
  load whose result it does not use as an address costs ``pipelined_load_cycles`` (1):
  a *run* of ``k`` such back-to-back loads costs ``2 + (k - 1)``. A load whose address
  is the result of the instruction just before it (a gather through an index loaded one
  instruction earlier) starts a new run;
* SMLAD (two 16x16 MACs), SMLABB/SMLABT/MLA (one MAC): ``mac_cycles`` (1);
* ADD/SUBS/LSL/SSAT: ``alu_cycles`` (1); a taken branch: ``branch_cycles`` (1 + P,
  P = 2 assumed);
* each inner loop is unrolled ``loop_unroll`` (4) times: one loop test (SUBS + BNE)
  and one ADD per streamed pointer are paid per ``loop_unroll`` bodies,
  ``loop = ((pointers + 1) * alu + branch) / loop_unroll`` cycles per body;
* inside a body its loads form one run, then its MACs issue (the best schedule of the
  body's instructions; register pressure allows it for every body below except group
  bodies wider than 2, where it is optimistic).

``body = load + (loads - 1) * pipelined_load + macs * mac + loop``.

Dense kernels (the best dense code an MCU runs: CMSIS-NN,
github.com/ARM-software/CMSIS_5 at dafe87eb3, CMSIS/NN/Source):

* fully connected, batch 1: ``arm_fully_connected_q15_opt`` (FullyConnectedFunctions/
  arm_fully_connected_q15_opt.c), weights reordered offline so 4 rows interleave. Body,
  4 rows x 1 column pair (8 MACs): ``LDR inV,[pA]`` ; ``LDR w1..w4,[pB,#0..12]`` (one
  run of 5 loads: 6 cycles) ; ``SMLAD sum1..sum4, inV, w1..w4`` (4) ; loop with
  pointers pA, pB: (3 + 3) / 4 = 1.5. 11.5 cycles per 8 MACs. The left-over rows
  (``rows % 4``) run its 1-row loop: body 2 column pairs, ``LDR w; LDR x; LDR w; LDR
  x`` (5) + 2 SMLAD + 1.5 = 8.5 per 4 MACs. (CMSIS's inline assembly as shipped
  interleaves each load with an SMLAD, 17 cycles per body with the loop test; the model
  takes the load-grouped schedule of the same instructions.)
* convolution: ``arm_convolve_HWC_q15_fast`` (ConvolutionFunctions/
  arm_convolve_HWC_q15_fast.c): im2col of 2 output columns into a q15 buffer
  (``bufferA``), then 2 rows x 2 columns per body: ``LDR inA1,[pA]; LDR inB1,[pB];
  LDR inA2,[pA2]; LDR inB2,[pB2]`` (5) ; 4 SMLAD (4) ; loop over 4 pointers
  (5 + 3) / 4 = 2. 11 cycles per 8 MACs: every loaded word feeds two SMLADs. An odd
  row count runs 1 row x 2 columns (3 loads, 2 SMLAD); an odd column count runs its
  last column as 2 rows x 1 column (3 loads, 2 SMLAD, loop over 3 pointers) in the
  same weight layout. The same 2 x 2 kernel without im2col
  (``arm_nn_mat_mult_kernel``-style) prices a fully connected layer at batch > 1 with
  the batch as the columns: CMSIS-NN has no batched q15 fc; this is ``n/2`` passes
  over the weights instead of ``n`` matrix-vector passes (each weight word feeds 2
  samples).
* an odd ``cols`` leaves one single-MAC step per row block: ``LDRH`` x ``rows + cols``
  (one run) + one ``SMLABB`` per MAC.
* a row count that is not a multiple of the block's rows may be padded with zero rows
  (stored in flash) when that is faster; the model takes the faster of the two, which
  also keeps latency monotone in the rows kept.
* per output value ``row_cycles`` (8): bias load, shift and round, ASR + SSAT, STRH and
  the outer-loop share (arm_fully_connected_q15_opt: 31 cycles per 4-row block).
* im2col (``arm_convolve_HWC_q15_fast``: one ``memcpy`` of ``C`` q15 channels per kernel
  position, or a ``memset`` in the padding): per output column and kernel position
  ``im2col_position_cycles`` (bounds checks, address, call) + per word (or trailing
  halfword) copied ``2 * pipelined_load`` (an LDR/STR pair inside the copy's run). A
  1x1 kernel or a fully connected layer needs none (its columns are the HWC input's own
  pixel vectors or the batch's inputs).

Sparse kernels (same rules; no CMSIS kernel exists, so these are the straightforward
best loops; ``c`` = columns per pass, 1 for a matrix-vector pass, 2 for a pass over
the 2-column im2col buffer or 2 batch samples):

* ``csr`` (fine): per nonzero ``LDRH col,[pIdx]; LDRH w,[pVal]; LDRH x_j,[pX_j, col,
  LSL #1]`` for each of the c columns (one run of ``2 + c`` halfword loads: the
  gather's index was loaded two instructions earlier) ; ``SMLABB acc_j, w, x_j`` x c (a
  gather breaks the pairing, so one MAC per instruction) ; loop over pIdx, pVal
  (1.5). c = 1: 4 + 1 + 1.5 = 6.5 cycles per nonzero.
* ``group-csr`` (simd, Scalpel on the M4, group of ``g`` = 2 aligned weights): per group
  ``LDRH col,[pIdx]; LDR w01,[pVal]; LDR x01_j,[pX_j, col, LSL #1]`` for each column
  (one run of ``2 + c`` loads; ``col`` is even, so the gathered word is aligned) ;
  ``SMLAD acc_j, w01, x01_j`` x c ; loop 1.5. c = 1: 4 + 1 + 1.5 = 6.5 cycles per 2
  weights. Wider groups (vector/kernel schemes): one index load, then per pair of the
  group a weight word and c gathered words (a trailing odd weight by halfwords), one
  SMLAD (SMLABB) per pair and column.
* both sparse kernels: per row and pass, ``row_cycles`` per output value + ``LDR
  rowptr[i+1]`` (``load_cycles``) + a SUB for the trip count (``alu_cycles``).
* ``compact`` (node/filter pruning): the kept rows are a smaller dense matrix and run
  the dense kernel above (a smaller layer; for a convolution nothing else changes). A
  fully connected layer first gathers its kept input columns, per column of the
  product: ``LDRH col,[pIdx]; LDRH x,[pX, col, LSL #1]`` (dependent on the load just
  before: a new run) ``; STRH x,[pDst]`` (pipelined): ``2 * load + pipelined_load +
  loop`` = 6.5 cycles per kept column.

Memory: weights, indices and row pointers live in flash (``memory`` level holding
``weights``), inputs and the im2col buffer in SRAM (zero wait states at 168 MHz). The
STM32F4's ART accelerator (RM0090 3.5.2) is modelled as follows: instruction fetches hit
its 64-line instruction cache (every inner loop here is under 64 bytes), so they add no
wait states; data reads from flash go through its 8-line x 128-bit data cache, so a
sequential stream pays the flash wait states (``Flash.latency_cycles - load_cycles``,
5 at 168 MHz) once per 16-byte line and its other words hit; its prefetch serves the
instruction bus only and does not hide data misses. A kernel streams each array
(weights, indices, row pointers) once per pass over the columns; if everything it
streams fits in the data cache (``flash_cache_lines`` lines) only the first pass
misses. ``flash = lines x wait_states x passes``.

``cycles = issue + im2col + flash`` (in order, no overlap). Parts: ``issue`` (compute,
gathers and per-row work), ``im2col``, ``flash`` (wait states).

Simplifications: unrolled loops' remainder iterations are not counted (for dense and
sparse alike); unaligned word loads of odd-width groups are not charged; grouped
convolutions run the same kernel per group (CMSIS's depthwise kernels are not
modelled); the weights are assumed to live in flash even when a pruned layer would fit
in SRAM; no interrupts or bus contention.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..hardware.profile import DeviceProfile
from ..schemes import Kernel
from .estimate import LatencyEstimate, latency_param, make_estimate
from .mve import mve_parts
from .work import KernelWork


@dataclass(frozen=True)
class _Cycles:
    """The profile's ``[latency]`` costs (cycles) and the flash's wait states."""

    load: float
    lp: float
    mac: float
    alu: float
    branch: float
    unroll: float
    row: float
    position: float
    wait: float
    line: float
    cache_bytes: float

    def run(self, loads: int) -> float:
        """Cycles of ``loads`` back-to-back independent loads (0 for none)."""
        return 0.0 if loads <= 0 else self.load + (loads - 1) * self.lp

    def loop(self, pointers: int) -> float:
        """Loop test and pointer updates per body of a loop unrolled ``unroll`` times."""
        return ((pointers + 1) * self.alu + self.branch) / self.unroll

    def flash(self, streams: list[float], passes: int) -> float:
        """Wait states of reading ``streams`` (bytes of each array) ``passes`` times."""
        lines = sum(math.ceil(b / self.line) for b in streams if b > 0)
        if sum(streams) <= self.cache_bytes:
            passes = min(passes, 1)
        return lines * self.wait * passes


def _weights_level(dev: DeviceProfile):
    for lvl in reversed(dev.memory):
        if "weights" in lvl.holds and lvl.kind in ("flash", "sram", "dram"):
            return lvl
    return dev.memory[-1]


def _cycles(dev: DeviceProfile) -> _Cycles:
    load = latency_param(dev, "load_cycles")
    lvl = _weights_level(dev)
    return _Cycles(load=load, lp=latency_param(dev, "pipelined_load_cycles"),
                   mac=latency_param(dev, "mac_cycles"), alu=latency_param(dev, "alu_cycles"),
                   branch=latency_param(dev, "branch_cycles"),
                   # the vector kernels' low-overhead loops need no unrolling (mve.py)
                   unroll=(1.0 if "vector_bytes" in dev.latency
                           else latency_param(dev, "loop_unroll")),
                   row=latency_param(dev, "row_cycles"),
                   position=latency_param(dev, "im2col_position_cycles"),
                   wait=max(0.0, lvl.latency_cycles - load), line=float(lvl.line_bytes),
                   cache_bytes=latency_param(dev, "flash_cache_lines") * lvl.line_bytes)


# Dense blocks: (rows, columns, column pairs per body, streamed pointers): the full block
# and the block for a left-over row.
_MATVEC = {1: ((4, 1, 1, 2), (1, 1, 2, 2))}   # arm_fully_connected_q15_opt, then its 1-row loop
_GEMM = {2: ((2, 2, 1, 4), (1, 2, 1, 3)),     # arm_convolve_HWC_q15_fast's 2 x 2 kernel, odd row
         1: ((2, 1, 1, 3), (1, 1, 1, 2))}     # an odd last column, same weight layout


def _dense_block(cy: _Cycles, r: int, c: int, span: int, pointers: int, k: int) -> float:
    """Issue cycles of one ``r`` x ``c`` output block over ``k`` columns of the weights."""
    bodies, part = divmod(k // 2, span)
    cycles = bodies * (cy.run(span * (r + c)) + span * r * c * cy.mac + cy.loop(pointers))
    if part:                                 # a partial body: the left-over column pairs
        cycles += cy.run(part * (r + c)) + part * r * c * cy.mac + cy.loop(pointers)
    if k % 2:                                # a left-over single column: halfword loads, SMLABB
        cycles += cy.run(r + c) + r * c * cy.mac
    return cycles


def _dense(cy: _Cycles, rows: int, k: int, n: int, elem: float) -> tuple[float, float]:
    """(issue, flash) of a dense ``rows`` x ``k`` matrix times ``n`` columns: passes of 2
    columns and an odd last one (n > 1), or the matrix-vector kernel (n = 1). Rows are
    padded with zero rows to the block height when that is faster (which also keeps the
    cost monotone in ``rows``)."""
    layout = _MATVEC if n == 1 else _GEMM
    height = 4 if n == 1 else 2
    pairs, single = (0, 1) if n == 1 else divmod(n, 2)

    def cost(m: int) -> tuple[float, float]:
        issue = flash = 0.0
        for count, c in ((pairs, 2), (single, 1)):
            if count:
                (r, _, span, ptr), (r1, _, span1, ptr1) = layout[c]
                blocks, left = divmod(m, r)
                issue += count * (blocks * _dense_block(cy, r, c, span, ptr, k)
                                  + left * _dense_block(cy, r1, c, span1, ptr1, k)
                                  + m * c * cy.row)
                flash += cy.flash([m * k * elem], count)
        return issue, flash

    padded = -(-rows // height) * height
    return min(cost(rows), cost(padded), key=sum)


def _sparse(cy: _Cycles, work: KernelWork, rows: int, n: int, elem: float,
            index_bytes: float) -> tuple[float, float]:
    """(issue, flash) of the CSR or group-CSR kernel on one group's share of ``work``."""
    groups = work.shape.groups
    entries = work.index_entries / groups       # nonzeros (csr) or groups (group-csr)
    if work.kernel is Kernel.CSR:
        def body(c: int) -> float:
            return cy.run(2 + c) + c * cy.mac + cy.loop(2)
    else:
        g = work.group
        pairs, odd = divmod(g, 2)

        def body(c: int) -> float:
            # index, then per pair a weight word and c gathered words; a trailing odd
            # weight and its c inputs by halfwords
            return (cy.run(1 + (pairs + odd) * (1 + c)) + (pairs + odd) * c * cy.mac
                    + cy.loop(2))
    per_row = cy.load + cy.alu
    streams = [work.stored / groups * elem, entries * index_bytes, (rows + 1) * 4.0]
    pairs_n, single = divmod(n, 2)
    issue = flash = 0.0
    for count, c in ((pairs_n, 2), (single, 1)):
        if count:
            issue += count * (entries * body(c) + rows * (c * cy.row + per_row))
            flash += cy.flash(streams, count)
    return issue, flash


def _im2col(cy: _Cycles, work: KernelWork, elem: float) -> float:
    """Cycles of im2col (all groups, all columns); 0 for 1x1 kernels and fc layers."""
    shape = work.shape
    positions = shape.kernel[0] * shape.kernel[1]
    if shape.is_fc or positions == 1:
        return 0.0
    channels = shape.cols / positions
    copies = math.ceil(channels * elem / 4)      # words, a trailing halfword as one copy
    per_column = positions * (cy.position + copies * 2 * cy.lp)
    return per_column * shape.n * shape.groups


def mcu_latency(work: KernelWork, dev: DeviceProfile) -> LatencyEstimate:
    """Predicted cycles of ``work`` on the microcontroller ``dev``: Helium (MVE) kernels
    where the profile gives ``vector_bytes`` (:mod:`hwprune.latency.mve`), else the q15
    kernels of the module docstring."""
    cy = _cycles(dev)
    if "vector_bytes" in dev.latency:
        parts = mve_parts(cy, work, dev)
        return make_estimate(dev, sum(parts.values()), max(parts, key=parts.get), parts)
    shape = work.shape
    n, groups, k = shape.n, shape.groups, shape.cols
    elem = dev.element_bytes
    index_bytes = dev.sparsity.index_bits / 8
    rows = work.rows // groups
    gather = 0.0
    if work.kernel in (Kernel.DENSE, Kernel.COMPACT):
        issue, flash = _dense(cy, rows, k, n, elem)
        if work.gathers:
            per_column = work.gathers / groups
            gather = n * per_column * (2 * cy.load + cy.lp + cy.loop(2))
            flash += cy.flash([per_column * index_bytes], n)
    else:
        issue, flash = _sparse(cy, work, rows, n, elem, index_bytes)
    issue = (issue + gather) * groups
    flash *= groups
    im2col = _im2col(cy, work, elem)
    parts = {"issue": issue, "im2col": im2col, "flash": flash}
    return make_estimate(dev, issue + im2col + flash, max(parts, key=parts.get), parts)
