"""What a layer without MACs does to memory and arithmetic: the work of a *pass*.

Convolution, fully connected and matmul layers are priced from their loop nests. Every
other layer (normalization, activation, element-wise arithmetic, pooling, data
movement) is one pass over tensors, described here device-independently, per input
sample, as a :class:`PassWork`: elements read from memory, elements written, and
element operations. The cost models price it (:mod:`hwprune.cost.passes`,
:mod:`hwprune.latency.passes`).

**How a layer runs** (:data:`RUNS_AS`), decided from the graph by :func:`pass_works`:

* ``folded``: a batch norm whose input is a conv/fc layer read by nothing else. Inference
  folds its scale and shift into that layer's weights and bias (as TFLite, TensorRT,
  ONNX Runtime and hwprune's own ONNX importer do): nothing is left to run.
* ``fused``: a point-wise activation, or an element-wise operation with a number
  (``x * 0.5``), whose input is a conv/fc/matmul layer (or a folded or fused layer
  after one) read by nothing else. It is applied to each output as the producing
  kernel writes it (CMSIS-NN's and cuDNN's fused activations, an accelerator's output
  stage): its operations are charged, no memory traffic.
* ``view``: reshape, flatten, expand, a constant, a slice or select of the outermost
  axis, a permute that keeps the order of the axes longer than one, adaptive pooling to
  the input's own size. Nothing is moved; the consumer reads the producer's tensor.
* ``copy``: permute, channel shuffle, concat, slice or select of an inner axis: every
  output element is read from its input and written once; no arithmetic.
* ``stream``: everything else (normalization and activations not fused, element-wise
  arithmetic and additions, pooling, reduction, upsampling): inputs read once, outputs
  written once, :attr:`PassWork.ops` operations.

**Element operations** count slots of the device's multiply-accumulate datapath: a
multiply-add, an add, a multiply, a compare or a max each count one (:data:`OPS_PER_ELEMENT`).
Exponentials, logarithms, tanh and erf cost :data:`TRANSCENDENTAL_OPS` each (range
reduction and a degree-6 polynomial by Horner's rule, as Cephes' ``expf``); a division,
square root or reciprocal :data:`DIVIDE_OPS` (a reciprocal estimate and two
Newton-Raphson steps). These are stated assumptions, the same on every device class
(a microcontroller's lookup-table sigmoid is cheaper; a GPU's special-function unit
overlaps the rest).

**Simplifications** (stated): a pass reads each input element once, even where
pooling windows overlap or a normalization computes its statistics first (the window
or the row is assumed to stay on chip); a concat is a copy, though a compiler can
often have its producers write in place; a slice of the outermost axis is a view
though its consumer then reads a strided tensor; layouts are channel-major
``(C, H, W)`` and token-major ``(T, D)`` on every device class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from ..errors import ShapeError
from .layer import Layer
from .network import Network
from .ops import (
    CATEGORIES,
    AdaptivePool2d,
    Concat,
    Elementwise,
    GlobalPool,
    Permute,
    Pool2d,
    Reduce,
    Select,
    Slice,
    Upsample,
)

KERNEL = "kernel"
"""How conv, fc and matmul layers run: a kernel priced from its loop nest."""

RUNS_AS = (KERNEL, "folded", "fused", "view", "copy", "stream")
"""How a layer runs: ``kernel`` for conv, fc and matmul, the rest for the layers
without MACs (module docstring). The ``runs_as`` column of the energy and latency
tables."""

TRANSCENDENTAL_OPS = 10
"""Element operations of one exp, log, tanh or erf (range reduction + degree-6 polynomial)."""

DIVIDE_OPS = 5
"""Element operations of one division, square root or reciprocal (estimate + 2 Newton steps)."""

_T, _D = TRANSCENDENTAL_OPS, DIVIDE_OPS
_SIGMOID = _T + 1 + _D                      # 1 / (1 + exp(-x))

OPS_PER_ELEMENT: Mapping[str, int] = {
    "relu": 1, "relu6": 2, "leaky_relu": 2, "hardtanh": 2, "hardsigmoid": 3, "hardswish": 4,
    "abs": 1, "neg": 1,
    "sigmoid": _SIGMOID, "silu": _SIGMOID + 1, "tanh": _SIGMOID + 2,      # 2 sigmoid(2x) - 1
    "gelu": _SIGMOID + 2 + 6,        # tanh form: x/2 (1 + tanh(0.798 (x + 0.0447 x^3)))
    "elu": _T + 2, "selu": _T + 3, "celu": _T + 3, "softplus": 2 * _T + 1,
    "mish": 2 * _T + 1 + _SIGMOID + 3, "softsign": _D + 2,
    "erf": _T, "exp": _T, "log": _T, "sqrt": _D, "rsqrt": _D, "reciprocal": _D,
    "softmax": _T + 3,               # max, exp(x - max), sum, times 1/sum
    "log_softmax": _T + 3,           # max, exp(x - max), sum, x - max - log(sum)
    # element-wise arithmetic, per output element and per operand after the first
    "add": 1, "sub": 1, "mul": 1, "max": 1, "min": 1, "div": _D, "pow": 2 * _T,
    # normalization, per element: mean, variance (subtract, multiply-add), normalize
    # (subtract, multiply), scale and shift (multiply-add); batch norm at inference is
    # one multiply-add (its statistics are constants)
    "batchnorm": 1, "layernorm": 6, "groupnorm": 6,
}
"""Element operations per output element of each function (module docstring)."""

ROW_FUNCTIONS = ("softmax", "log_softmax")
"""Activations that reduce along an axis: never fused into the producing kernel."""

_VIEWS = ("reshape", "flatten", "expand", "constant")
_COPIES = ("shuffle",)
_STREAMS = ("batchnorm", "layernorm", "groupnorm", "activation", "elementwise", "add")
_UPSAMPLE_TAPS = {"nearest": 0, "nearest-exact": 0, "linear": 2, "bilinear": 2, "trilinear": 2,
                  "bicubic": 4}
"""Input values each output of an upsampling mode blends, per spatial axis (one
multiply-add each; nearest copies)."""


@dataclass(frozen=True)
class PassWork:
    """One layer's pass, per input sample.

    Attributes:
        runs_as: one of :data:`RUNS_AS`.
        reads: elements read from memory (every input; a broadcast operand once).
        writes: elements written to memory (the output).
        ops: element operations (module docstring), charged even when ``fused``.
    """

    runs_as: str
    reads: int = 0
    writes: int = 0
    ops: int = 0

    def __post_init__(self) -> None:
        if self.runs_as not in RUNS_AS[1:]:
            raise ValueError(f"runs_as must be one of {RUNS_AS[1:]}, got {self.runs_as!r}")

    @property
    def moves_data(self) -> bool:
        return self.reads + self.writes > 0


def _size(shape) -> int:
    return int(math.prod(shape))


def _is_outer_axis(axis: int, shape) -> bool:
    """Whether ``axis`` has only axes of length 1 before it (a slice there is contiguous)."""
    a = axis % len(shape)
    return all(d == 1 for d in shape[:a])


def _permute_is_view(dims, shape) -> bool:
    kept = [d for d in dims if shape[d] != 1]
    return kept == sorted(kept)


def _window_ops(layer: Layer) -> int:
    """Compares or adds per output element of a pooling layer."""
    op = layer.op
    if isinstance(op, Pool2d):
        return op.kernel[0] * op.kernel[1]
    if isinstance(op, AdaptivePool2d):
        h, w = op.window(layer.input_shapes)
        return h * w
    if isinstance(op, GlobalPool):
        return _size(layer.input_shape[1:])
    if isinstance(op, Reduce):
        return max(1, _size(layer.input_shape) // max(1, _size(layer.output_shape)))
    raise ShapeError(f"layer {layer.name!r} ({layer.kind}) is not a pooling layer")


def _function_ops(fn: str, layer: Layer) -> int:
    try:
        return OPS_PER_ELEMENT[fn]
    except KeyError:
        raise ShapeError(f"layer {layer.name!r}: no operation count for {fn!r}; known: "
                         + ", ".join(OPS_PER_ELEMENT)) from None


def _standalone(layer: Layer) -> PassWork:
    """The layer's pass when nothing folds or fuses it."""
    kind, out = layer.kind, _size(layer.output_shape)
    reads = sum(_size(s) for s in layer.input_shapes)
    category = CATEGORIES.get(kind)
    if kind in _VIEWS:
        return PassWork("view")
    if kind in _COPIES or isinstance(layer.op, Concat):
        return PassWork("copy", reads, out)
    if isinstance(layer.op, (Slice, Select)):
        if _is_outer_axis(layer.op.axis, layer.input_shape):
            return PassWork("view")
        return PassWork("copy", out, out)
    if isinstance(layer.op, Permute):
        if _permute_is_view(layer.op.dims, layer.input_shape):
            return PassWork("view")
        return PassWork("copy", out, out)
    if isinstance(layer.op, Upsample):
        mode = layer.op.mode
        if mode not in _UPSAMPLE_TAPS:
            raise ShapeError(f"layer {layer.name!r}: no operation count for upsampling mode {mode!r}; "
                             f"known: {', '.join(_UPSAMPLE_TAPS)}")
        taps = _UPSAMPLE_TAPS[mode]         # input values per output, per spatial axis
        return PassWork("stream", reads, out, out * taps ** (len(layer.output_shape) - 1) if taps else 0)
    if category == "pooling":
        if isinstance(layer.op, AdaptivePool2d) and layer.output_shape == layer.input_shape:
            return PassWork("view")
        return PassWork("stream", reads, out, out * _window_ops(layer))
    if kind in _STREAMS:
        fn = getattr(layer.op, "fn", kind)
        per = _function_ops(fn, layer)
        if kind in ("add", "elementwise"):
            per *= max(1, len(layer.input_shapes) - 1)
        return PassWork("stream", reads, out, out * per)
    raise ShapeError(f"layer {layer.name!r}: kind {kind!r} has no pass model; known kinds: "
                     + ", ".join(sorted(k for k, c in CATEGORIES.items() if c != "compute")))


def _can_fuse(layer: Layer) -> bool:
    """A point-wise layer that can run in its producer's output stage."""
    if layer.kind == "activation":
        return layer.op.fn not in ROW_FUNCTIONS
    return isinstance(layer.op, Elementwise) and len(layer.input_shapes) == 1


def pass_works(net: Network) -> dict[str, PassWork]:
    """The :class:`PassWork` of every layer of ``net`` that is not a conv, fc or matmul
    layer, by name, with the folding and fusion rules of the module docstring."""
    readers: dict[str, int] = {}
    for layer in net.layers:
        for name in layer.inputs:
            readers[name] = readers.get(name, 0) + 1
    kinds = {layer.name: layer.kind for layer in net.layers}
    merged: set[str] = set()       # kernels, and the layers folded or fused into one
    works: dict[str, PassWork] = {}
    for layer in net.layers:
        if CATEGORIES.get(layer.kind) == "compute":
            merged.add(layer.name)
            continue
        source = layer.inputs[0] if len(layer.inputs) == 1 else None
        sole = source in merged and readers.get(source, 0) == 1
        if layer.kind == "batchnorm" and sole and kinds[source] in ("conv", "fc"):
            works[layer.name] = PassWork("folded")
            merged.add(layer.name)
        elif sole and _can_fuse(layer):
            alone = _standalone(layer)
            works[layer.name] = PassWork("fused", ops=alone.ops)
            merged.add(layer.name)
        else:
            works[layer.name] = _standalone(layer)
    return works


def shrunk(work: PassWork, layer: Layer, inputs_kept: Sequence[float], output_kept: float) -> PassWork:
    """``work`` of ``layer`` when a pruning plan leaves the fraction ``inputs_kept[i]``
    of input ``i``'s first axis (channels, units) and ``output_kept`` of its output's:
    reads, writes and operations scale with what is left (operations per output
    element). Folded and view passes stay free."""
    if work.runs_as in ("folded", "view"):
        return work
    full_reads = sum(_size(s) for s in layer.input_shapes)
    reads = sum(_size(s) * f for s, f in zip(layer.input_shapes, inputs_kept))
    return PassWork(work.runs_as,
                    round(work.reads * reads / full_reads) if full_reads else 0,
                    round(work.writes * output_kept), round(work.ops * output_kept))


def stored_as_read(net: Network, works: Mapping[str, PassWork] | None = None) -> dict[str, str]:
    """For each conv/fc/matmul layer whose output is stored exactly as one other such
    layer reads it, that reader's name: the path between them is only folded, fused and
    view layers, each read by nothing else (the producing kernel applies them as it
    writes). The next layer's input density is then the density of what the first one
    writes."""
    works = pass_works(net) if works is None else works
    readers: dict[str, list[str]] = {}
    for layer in net.layers:
        for name in layer.inputs:
            readers.setdefault(name, []).append(layer.name)
    out: dict[str, str] = {}
    for layer in net.layers:
        if layer.name in works:
            continue
        name = layer.name
        while len(readers.get(name, ())) == 1:
            nxt = readers[name][0]
            if nxt not in works:
                out[layer.name] = nxt
                break
            if works[nxt].runs_as not in ("folded", "fused", "view"):
                break
            name = nxt
    return out
