"""A systolic array's cycles and SRAM traffic, by SCALE-Sim's analytical accounting.

A conv or fc layer is the matrix product of SCALE-Sim's operand matrices (Samajdar et
al., "SCALE-Sim", arXiv:1811.02883; ``scalesim`` 3.0.0, ``compute/operand_matrix.py``),
per group:

* ifmap matrix ``P x K``: ``P = batch * E * F`` output pixels, ``K = C/groups * R * S``
  the convolution window (im2col);
* filter matrix ``K x M`` (``M`` filters of the group);
* ofmap matrix ``P x M``.

A dataflow names what the array's ``rows x cols`` PEs hold and what streams
(``scalesim/compute/systolic_compute_{ws,os,is}.py``); ``Sr`` is mapped down the rows,
``Sc`` across the columns, ``T`` streams through in time:

=========================  ======  ======  ======  ==============================
dataflow                   ``Sr``  ``Sc``  ``T``   stationary in the PEs
=========================  ======  ======  ======  ==============================
weight-stationary (ws)     K       M       P       one filter element per PE
output-stationary (os)     P       M       K       one output's partial sum per PE
input-stationary (is)      K       P       M       one ifmap element per PE
=========================  ======  ======  ======  ==============================

Folds (units: counts, cycles, elements):

* ``row_folds = ceil(Sr / rows)``, ``col_folds = ceil(Sc / cols)``,
  ``folds = row_folds * col_folds``. The last fold of each axis may be partial: its
  idle PEs cost the same cycles as busy ones (under-used PEs are counted).
* Cycles of one fold, with the pipeline fill and drain:

  - ws and is: ``rows`` cycles to load the stationary operand (one row of it per
    cycle), ``T`` cycles to stream the moving operand, ``rows - 1`` cycles of skew
    before the last row starts (fill) and ``cols - 1`` cycles for the last partial
    sums to leave the array (drain): ``2*rows + cols + T - 2``;
  - os: ``T`` cycles of streaming, ``rows - 1`` and ``cols - 1`` cycles of skew on
    the two operands' edges: ``rows + cols + T - 2``.

  Folds do not overlap (SCALE-Sim lets each fold drain before the next starts).
* ``cycles = groups * folds * fold_cycles``. SCALE-Sim reports the index of the last
  cycle, one less per layer.

SRAM traffic (elements; SCALE-Sim's read and write counters, which count the
demand matrices' entries before the idle PEs' null requests are added):

* ws: ifmap reads ``P*K*col_folds`` (the whole ifmap streams once per column fold);
  filter reads ``K*M`` (each weight loaded once); ofmap writes ``P*M*row_folds``
  (one partial-sum write per row fold; the SRAM accumulates in place, the read of a
  partial sum is not counted).
* os: ifmap reads ``P*K*col_folds``; filter reads ``K*M*row_folds``; ofmap writes
  ``P*M`` (each output written once). SCALE-Sim 3.0.0 adds ``rows + cols`` to its
  ofmap-write counter per fold (``systolic_compute_os.py``: ``ofmap_writes +=
  shape[0] + shape[1]`` after the fold is padded), which is not a write: hwprune does
  not count it.
* is: ifmap reads ``P*K`` (each input loaded once); filter reads ``K*M*col_folds``;
  ofmap writes ``P*M*row_folds``.

All counts are per group times ``groups`` (SCALE-Sim has no grouped convolution: a
grouped layer runs its groups one after another).

Simplifications (SCALE-Sim's): the memory system feeds the array without stalls (the
DRAM interface is sized to the demand, SCALE-Sim's ``InterfaceBandwidth: CALC``), one
MAC per PE per cycle, every weight multiplied (no zero skipping).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..checks import check_batch
from ..errors import InputError, UnknownNameError
from ..workload.layer import Layer
from ..workload.ops import Conv2d, Linear, MatMul, TokenLinear

SYSTOLIC_DATAFLOWS = {"weight-stationary": "ws", "output-stationary": "os", "input-stationary": "is"}
"""Dataflows of the systolic model, with SCALE-Sim's short names (which are accepted too)."""


@dataclass(frozen=True)
class Gemm:
    """One group of a layer as SCALE-Sim's operand matrices (see the module docstring).

    Attributes:
        pixels: ``P``, output pixels of the batch (rows of the ifmap and ofmap matrices).
        window: ``K``, elements of one convolution window (``C/groups * R * S``).
        filters: ``M``, filters (output channels) of one group.
        groups: independent groups, run one after another.
    """

    pixels: int
    window: int
    filters: int
    groups: int = 1

    @classmethod
    def of(cls, layer: Layer, batch: int = 1) -> "Gemm":
        """The operand matrices of a conv or fc layer for ``batch`` inputs."""
        batch = check_batch(batch)
        op = layer.op
        if isinstance(op, Conv2d):
            g = op.groups
            c, m = layer.input_shape[0], layer.output_shape[0]
            r, s = op.kernel
            return cls(batch * layer.output_shape[1] * layer.output_shape[2], c // g * r * s,
                       m // g, g)
        if isinstance(op, Linear):
            return cls(batch, math.prod(layer.input_shape), op.out_features)
        if isinstance(op, TokenLinear):
            return cls(batch * op.tokens(layer.input_shapes), layer.input_shape[-1], op.out_features)
        if isinstance(op, MatMul):
            heads, m, k, n = op.gemm(layer.input_shapes)
            return cls(batch * m, k, n, heads)
        raise InputError(f"layer {layer.name!r} is a {layer.kind} layer; the systolic model "
                         "takes conv and fc layers")


@dataclass(frozen=True)
class SystolicRun:
    """Cycles and SRAM traffic of one layer on one array (all groups).

    Attributes:
        dataflow: SCALE-Sim's short name (``ws``, ``os``, ``is``).
        sr, sc, t: the spatial rows, spatial columns and temporal extent of one group.
        row_folds, col_folds: folds along the array's rows and columns (per group).
        fold_cycles: cycles of one fold, fill and drain included.
        cycles: ``groups * row_folds * col_folds * fold_cycles``.
        ifmap_reads, filter_reads, ofmap_writes: SRAM element accesses (all groups).
        macs: multiply-accumulates of the layer (all groups).
        utilization: ``macs / (cycles * rows * cols)``, a fraction.
    """

    dataflow: str
    sr: int
    sc: int
    t: int
    row_folds: int
    col_folds: int
    fold_cycles: int
    cycles: int
    ifmap_reads: int
    filter_reads: int
    ofmap_writes: int
    macs: int
    utilization: float

    @property
    def folds(self) -> int:
        """Folds of one group."""
        return self.row_folds * self.col_folds


def short_dataflow(dataflow: str) -> str:
    """``ws``, ``os`` or ``is`` for a systolic dataflow's long or short name."""
    if dataflow in SYSTOLIC_DATAFLOWS:
        return SYSTOLIC_DATAFLOWS[dataflow]
    if dataflow in SYSTOLIC_DATAFLOWS.values():
        return dataflow
    raise UnknownNameError(f"unknown systolic dataflow {dataflow!r}; accepted: "
                           + ", ".join([*SYSTOLIC_DATAFLOWS, *SYSTOLIC_DATAFLOWS.values()]))


def systolic_run(gemm: Gemm, rows: int, cols: int, dataflow: str) -> SystolicRun:
    """SCALE-Sim's accounting of ``gemm`` on a ``rows x cols`` array (module docstring)."""
    if rows < 1 or cols < 1:
        raise InputError(f"a systolic array needs rows and cols >= 1, got {rows} x {cols}")
    df = short_dataflow(dataflow)
    p, k, m, g = gemm.pixels, gemm.window, gemm.filters, gemm.groups
    sr, sc, t = {"ws": (k, m, p), "os": (p, m, k), "is": (k, p, m)}[df]
    row_folds, col_folds = -(-sr // rows), -(-sc // cols)
    fill_drain = (rows if df != "os" else 0) + rows + cols - 2
    fold_cycles = fill_drain + t
    cycles = g * row_folds * col_folds * fold_cycles
    if df == "ws":
        reads_i, reads_f, writes_o = p * k * col_folds, k * m, p * m * row_folds
    elif df == "os":
        reads_i, reads_f, writes_o = p * k * col_folds, k * m * row_folds, p * m
    else:
        reads_i, reads_f, writes_o = p * k, k * m * col_folds, p * m * row_folds
    macs = g * p * k * m
    return SystolicRun(df, sr, sc, t, row_folds, col_folds, fold_cycles, cycles,
                       g * reads_i, g * reads_f, g * writes_o, macs,
                       macs / (cycles * rows * cols))


def systolic_layer(layer: Layer, rows: int, cols: int, dataflow: str,
                   batch: int = 1) -> SystolicRun:
    """:func:`systolic_run` of ``layer``'s operand matrices at ``batch``."""
    return systolic_run(Gemm.of(layer, batch), rows, cols, dataflow)
