"""What one layer's kernel has to do: the lowered shape and its operation counts.

A conv or fc layer runs as hwprune's kernels run it (:mod:`hwprune.sparse.kernels`): at
batch 1 a fully connected layer is a matrix-vector product ``y = W x`` with ``W`` of
``rows x cols``; a convolution is im2col followed by a matrix-matrix product with
``n = E * F`` columns, once per group. A batch of ``b`` inputs is one product with ``b``
times the columns: ``n = b`` for a fully connected layer (a matrix-matrix product, the
weights reused across the batch) and ``n = b * E * F`` for a convolution.

A :class:`~hwprune.schemes.Scheme` names the kernel that runs the pruned layer and what
``density`` means:

* ``dense`` kernel: every weight stored and multiplied (``density`` is ignored);
* ``csr`` (scheme ``fine``): a fraction ``density`` of the weights, one int index each;
* ``group-csr`` (``simd``, ``vector``, ``kernel``): aligned groups of the scheme's
  group width of a row, a fraction ``density`` of the groups, one index per group;
* ``compact`` (``filter``, ``node``, ``node-roundK``): a fraction ``density`` of the
  rows (output neurons or filters) kept (:meth:`Scheme.kept_units`: rounded up to a
  multiple of ``K``), the matrix physically smaller (a gather of the inputs for fc
  layers);
* ``nm`` (``N:M`` schemes): ``N`` value slots of every window of ``M`` columns of a
  row, one metadata entry each (``density`` is ignored: the scheme keeps ``N / M``);
* ``block`` (``block-RxC``): a fraction ``density`` of the ``R x C`` blocks, stored
  whole, one index per block; a block's ``R`` rows share its column index and its
  slice of the input.

:func:`runs_as` says how a device without hardware for a pattern runs it: N:M as CSR
and blocks as groups of ``C`` along each row (group-csr), the generic sparse kernels it
has, paying their index loads and gathers.

Counts are expected values for a uniformly random mask (rounded to whole elements),
not a particular mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ..checks import check_density
from ..errors import InputError
from ..schemes import FINE, Group, Kernel, Scheme, scheme
from ..workload.layer import Layer
from ..workload.ops import Conv2d, Linear, MatMul, TokenLinear


@dataclass(frozen=True)
class KernelShape:
    """A layer lowered to hwprune's kernels.

    Attributes:
        rows: output rows of one group's weight matrix (output channels per group).
        cols: columns of that matrix (``C / groups * R * S``).
        n: columns of the product: output positions times the batch (``b * E * F``;
            ``b`` for a fully connected layer).
        groups: convolution groups (1 for fc).
        kernel: ``(R, S)`` of a convolution, ``(1, 1)`` for fc.
        batch: inputs processed together (already in ``n``).
    """

    rows: int
    cols: int
    n: int
    groups: int = 1
    kernel: tuple[int, int] = (1, 1)
    batch: int = 1

    @property
    def is_matvec(self) -> bool:
        """A matrix-vector product: a fully connected layer (or a 1x1 layer of one
        output position) at batch 1."""
        return self.n == 1 and self.kernel == (1, 1)

    @property
    def is_fc(self) -> bool:
        """A fully connected layer (or a 1x1 layer of one output position) at any batch:
        its input needs no im2col, and its kernel-row and kernel groups are single
        weights."""
        return self.kernel == (1, 1) and self.n == self.batch

    @classmethod
    def of(cls, layer: Layer, batch: int = 1) -> "KernelShape":
        op = layer.op
        if isinstance(op, Linear):
            return cls(rows=layer.weight_shape[0], cols=int(math.prod(layer.weight_shape[1:])),
                       n=batch, batch=batch)
        if isinstance(op, TokenLinear):     # one product over every token: a 1x1 convolution
            return cls(rows=op.out_features, cols=layer.input_shape[-1],
                       n=batch * op.tokens(layer.input_shapes), batch=batch)
        if isinstance(op, MatMul):          # one product per batch position (head), dense
            heads, m, k, n = op.gemm(layer.input_shapes)
            return cls(rows=n, cols=k, n=batch * m, groups=heads, batch=batch)
        if isinstance(op, Conv2d):
            g = op.groups
            return cls(rows=layer.weight_shape[0] // g, cols=int(math.prod(layer.weight_shape[1:])),
                       n=batch * layer.output_shape[1] * layer.output_shape[2], groups=g,
                       kernel=tuple(op.kernel), batch=batch)
        raise InputError(f"layer {layer.name!r} is a {layer.kind} layer; latency is modelled "
                         "for conv and fc layers")


@dataclass(frozen=True)
class KernelWork:
    """Operation counts of one layer's kernel (all groups), expected for ``density``.

    Attributes:
        scheme: the pruning scheme as it runs on this layer (:meth:`Scheme.on`).
        density: fraction kept (weights, groups or rows, see the module docstring).
        group: group width of group schemes (1 otherwise).
        rows: output rows computed (all groups; kept rows for ``compact``).
        stored: stored weight values (all groups).
        index_entries: stored indices (nonzeros for csr, groups for group schemes,
            kept columns for compact, value slots (metadata entries) for N:M, kept
            blocks for blocks; 0 for dense).
        macs: multiply-accumulates executed (stored values x ``n``).
        gathers: input loads addressed through an index, per column of the product
            (per input vector of a fully connected layer; 0 for convolutions).
        im2col_elements: elements im2col writes (0 for fc).
        shape: the lowered layer.
    """

    scheme: Scheme
    density: float
    group: int
    rows: int
    stored: int
    index_entries: int
    macs: int
    gathers: int
    im2col_elements: int
    shape: KernelShape

    @property
    def kernel(self) -> Kernel:
        """The kernel that executes the layer."""
        return self.scheme.kernel


def kernel_work(shape: KernelShape, pruning: Scheme | str, density: float,
                simd_lanes: int = 8) -> KernelWork:
    """Counts of ``shape``'s kernel under scheme ``pruning`` at ``density`` (a fraction in
    (0, 1]); a kernel-row or kernel scheme on a fully connected layer runs as ``fine``."""
    s = scheme(pruning).on(shape.is_fc)
    density = check_density(density)
    g = s.group_width(shape.kernel, simd_lanes)
    m, k, n, groups = shape.rows, shape.cols, shape.n, shape.groups
    rows, gathers = m, 0
    if s.kernel is Kernel.DENSE:
        density = 1.0
        stored, index = m * k, 0
    elif s.kernel is Kernel.CSR:
        stored = max(1, round(density * m * k))
        index = stored
        gathers = stored if shape.is_fc else 0
    elif s.kernel is Kernel.COMPACT:
        rows = s.kept_units(m, density)
        stored, index = rows * k, k
        gathers = k if shape.is_fc else 0
    elif s.kernel is Kernel.NM:
        n_keep, window = s.nm
        density = n_keep / window
        stored = m * -(-k // window) * n_keep
        index = stored
        gathers = stored if shape.is_fc else 0
    elif s.kernel is Kernel.BLOCK:
        r, c = s.block
        blocks = -(-m // r) * -(-k // c)
        kept = max(1, round(density * blocks))
        stored, index = kept * r * c, kept
        gathers = kept * c if shape.is_fc else 0
    else:
        per_row = -(-k // g)
        kept = max(1, round(density * m * per_row))
        stored, index = kept * g, kept
        gathers = stored if shape.is_fc else 0
    im2col = 0 if shape.is_fc else k * n
    return KernelWork(scheme=s, density=float(density), group=g, rows=rows * groups,
                      stored=stored * groups, index_entries=index * groups,
                      macs=stored * groups * n, gathers=gathers * groups,
                      im2col_elements=im2col * groups, shape=shape)


def runs_as(work: KernelWork, hardware: bool) -> KernelWork:
    """``work`` as a device runs it: unchanged where the device has hardware for its
    pattern (``hardware``) or where it is not a structured pattern; otherwise N:M as
    CSR (one value and one index per kept slot) and blocks as group-csr with groups of
    ``C`` along each row (each of a block's ``R`` rows loads the block's index and its
    slice of the input again), the same weights kept."""
    if hardware or work.kernel not in (Kernel.NM, Kernel.BLOCK):
        return work
    if work.kernel is Kernel.NM:
        return replace(work, scheme=FINE)
    r, c = work.scheme.block
    groups = work.index_entries * r
    return replace(work, scheme=_row_groups(c), group=c, index_entries=groups,
                   gathers=work.stored if work.shape.is_fc else 0)


def _row_groups(width: int) -> Scheme:
    """A group-csr scheme of ``width`` weights per group (how a block runs without
    block hardware); not registered."""
    return Scheme(f"groups-of-{width}", f"groups of {width} weights of a row", Group.FIXED,
                  Kernel.GROUP_CSR, "simd-group", width=width)
