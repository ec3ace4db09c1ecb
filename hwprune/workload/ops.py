"""Operators: what one layer computes, as small frozen value objects.

An operator knows how its output shape, multiply-accumulate count (MACs), parameter
count and weight shape follow from its input shapes. Shapes never include the batch
dimension: a feature map is ``(C, H, W)``, a vector is ``(F,)``.

Counting conventions (the ones the published model-zoo figures use):

* MACs count multiply-accumulates of convolution and fully connected layers only.
  Pooling, batch normalization, element-wise addition and activations are 0 MACs.
* Parameters are trainable weights and biases. Batch normalization counts its affine
  scale and shift (2 per channel); its running statistics are buffers, not
  parameters (the convention of ``torchvision``'s published counts).
* Activations (ReLU, ...), LRN and dropout change no shape and carry no weights or
  MACs, so the built-in zoo leaves them out.
* Matrix products between two activations (:class:`MatMul`, attention) count
  ``M * K * N`` MACs per product, like a weight layer; every other new operator
  (normalizations, activations, element-wise arithmetic, pooling, data movement) is
  0 MACs. Each operator's ``kind`` falls in one of :data:`CATEGORIES`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Sequence

from ..errors import ShapeError

Shape = tuple[int, ...]


def _pair(value: int | Sequence[int], what: str) -> tuple[int, int]:
    if isinstance(value, int):
        pair = (value, value)
    else:
        pair = tuple(int(v) for v in value)
        if len(pair) != 2:
            raise ShapeError(f"{what} must be an int or a pair of ints, got {value!r}")
    return pair  # type: ignore[return-value]


def _feature_map(shapes: Sequence[Shape], op: str) -> Shape:
    if len(shapes) != 1:
        raise ShapeError(f"{op} takes exactly one input, got {len(shapes)}")
    shape = shapes[0]
    if len(shape) != 3:
        raise ShapeError(f"{op} needs a (C, H, W) feature map as input, got shape {shape}")
    return shape


def _window_out(size: int, kernel: int, stride: int, pad: int, ceil_mode: bool,
                pad_end: int | None = None) -> int:
    """Output extent of a window sliding over ``size`` padded by ``pad`` at the start and
    ``pad_end`` (default: ``pad``) at the end."""
    total = size + pad + (pad if pad_end is None else pad_end)
    span = total - kernel
    if span < 0:
        raise ShapeError(
            f"window {kernel} is larger than the padded input extent {total}"
        )
    steps = -(-span // stride) if ceil_mode else span // stride
    out = steps + 1
    # PyTorch's rule (Caffe's too when padded): the last window must start inside the
    # input or its left padding.
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _set_pad_end(op) -> None:
    """Normalise ``pad_end``: a pair, or ``None`` when it equals ``padding`` (so a
    symmetric operator compares equal however it was built)."""
    if op.pad_end is not None:
        end = _pair(op.pad_end, "pad_end")
        object.__setattr__(op, "pad_end", None if end == op.padding else end)


def _check_window(kernel, stride, padding, pad_end) -> None:
    if min(kernel) < 1 or min(stride) < 1 or min(padding) < 0 or min(pad_end or padding) < 0:
        extra = f", padding at the end {pad_end}" if pad_end else ""
        raise ShapeError(
            f"kernel and stride must be >= 1 and padding >= 0, got kernel {kernel}, "
            f"stride {stride}, padding {padding}{extra}"
        )


class _Weightless:
    """Mixin for operators without weights: no weight shape, 0 parameters, 0 MACs."""

    def weight_shape(self, inputs: Sequence[Shape]) -> None:
        return None

    def params(self, inputs: Sequence[Shape]) -> int:
        return 0

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        return 0


@dataclass(frozen=True)
class Conv2d:
    """2-D convolution, including grouped (``groups > 1``) and depthwise convolution.

    Weight shape ``(out_channels, in_channels // groups, R, S)``. ``padding`` is the
    padding before each spatial axis (top, left); ``pad_end`` the padding after it
    (bottom, right) where it differs, as ONNX's ``auto_pad=SAME_*``, asymmetric ``pads``
    and PyTorch's ``padding='same'`` with an even window give; ``None`` means the same
    as ``padding``. ``dilation`` spreads the kernel taps: the window covers
    ``dilation * (kernel - 1) + 1`` pixels, the MACs stay one per weight and output.
    A 1-D convolution is this operator on a ``(C, 1, L)`` map (kernel ``(1, k)``).
    """

    out_channels: int
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    groups: int = 1
    bias: bool = True
    pad_end: tuple[int, int] | None = None
    dilation: tuple[int, int] = (1, 1)
    kind: ClassVar[str] = "conv"

    def __post_init__(self) -> None:
        object.__setattr__(self, "kernel", _pair(self.kernel, "kernel"))
        object.__setattr__(self, "stride", _pair(self.stride, "stride"))
        object.__setattr__(self, "padding", _pair(self.padding, "padding"))
        object.__setattr__(self, "dilation", _pair(self.dilation, "dilation"))
        _set_pad_end(self)
        if min(self.dilation) < 1:
            raise ShapeError(f"dilation must be >= 1, got {self.dilation}")
        if self.out_channels < 1 or self.groups < 1:
            raise ShapeError(
                f"out_channels and groups must be >= 1, got {self.out_channels} and {self.groups}"
            )
        _check_window(self.kernel, self.stride, self.padding, self.pad_end)
        if self.out_channels % self.groups:
            raise ShapeError(
                f"out_channels {self.out_channels} is not divisible by groups {self.groups}"
            )

    def output_shape(self, inputs: Sequence[Shape]) -> Shape:
        c, h, w = _feature_map(inputs, "conv")
        if c % self.groups:
            raise ShapeError(f"input channels {c} are not divisible by groups {self.groups}")
        end = self.pad_end or self.padding
        span = self.span()
        e = _window_out(h, span[0], self.stride[0], self.padding[0], False, end[0])
        f = _window_out(w, span[1], self.stride[1], self.padding[1], False, end[1])
        return (self.out_channels, e, f)

    def span(self) -> tuple[int, int]:
        """Extent of the (dilated) window in input pixels, per spatial axis."""
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation))  # type: ignore

    def weight_shape(self, inputs: Sequence[Shape]) -> Shape:
        c = inputs[0][0]
        return (self.out_channels, c // self.groups, *self.kernel)

    def params(self, inputs: Sequence[Shape]) -> int:
        return math.prod(self.weight_shape(inputs)) + (self.out_channels if self.bias else 0)

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        m, e, f = output
        _, c_per_group, r, s = self.weight_shape(inputs)
        return m * e * f * c_per_group * r * s


@dataclass(frozen=True)
class _FullyConnected:
    """What :class:`Linear` and :class:`TokenLinear` share: ``out_features`` units, an
    optional bias, kind ``fc``."""

    out_features: int
    bias: bool = True
    kind: ClassVar[str] = "fc"

    def __post_init__(self) -> None:
        if self.out_features < 1:
            raise ShapeError(f"out_features must be >= 1, got {self.out_features}")


@dataclass(frozen=True)
class Linear(_FullyConnected):
    """Fully connected layer. A multi-dimensional input is flattened (as Caffe's
    InnerProduct does). Weight shape ``(out_features, in_features)``."""

    def _in_features(self, inputs: Sequence[Shape]) -> int:
        if len(inputs) != 1:
            raise ShapeError(f"fc takes exactly one input, got {len(inputs)}")
        return math.prod(inputs[0])

    def output_shape(self, inputs: Sequence[Shape]) -> Shape:
        self._in_features(inputs)
        return (self.out_features,)

    def weight_shape(self, inputs: Sequence[Shape]) -> Shape:
        return (self.out_features, self._in_features(inputs))

    def params(self, inputs: Sequence[Shape]) -> int:
        return self.out_features * self._in_features(inputs) + (
            self.out_features if self.bias else 0
        )

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        return self.out_features * self._in_features(inputs)


@dataclass(frozen=True)
class Pool2d(_Weightless):
    """Max or average pooling over a window. ``ceil_mode`` rounds the output size up,
    as Caffe always does and PyTorch does on request."""

    mode: str
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int] = (0, 0)
    ceil_mode: bool = False
    pad_end: tuple[int, int] | None = None     # as in Conv2d

    def __post_init__(self) -> None:
        if self.mode not in ("max", "avg"):
            raise ShapeError(f"pooling mode must be 'max' or 'avg', got {self.mode!r}")
        object.__setattr__(self, "kernel", _pair(self.kernel, "kernel"))
        object.__setattr__(self, "stride", _pair(self.stride, "stride"))
        object.__setattr__(self, "padding", _pair(self.padding, "padding"))
        _set_pad_end(self)
        _check_window(self.kernel, self.stride, self.padding, self.pad_end)

    @property
    def kind(self) -> str:
        return f"{self.mode}pool"

    def output_shape(self, inputs: Sequence[Shape]) -> Shape:
        c, h, w = _feature_map(inputs, self.kind)
        end = self.pad_end or self.padding
        e = _window_out(h, self.kernel[0], self.stride[0], self.padding[0], self.ceil_mode, end[0])
        f = _window_out(w, self.kernel[1], self.stride[1], self.padding[1], self.ceil_mode, end[1])
        return (c, e, f)


@dataclass(frozen=True)
class GlobalPool(_Weightless):
    """Pooling over the whole spatial extent: ``(C, H, W) -> (C, 1, 1)``."""

    mode: str = "avg"

    def __post_init__(self) -> None:
        if self.mode not in ("max", "avg"):
            raise ShapeError(f"pooling mode must be 'max' or 'avg', got {self.mode!r}")

    @property
    def kind(self) -> str:
        return f"global_{self.mode}pool"

    def output_shape(self, inputs: Sequence[Shape]) -> Shape:
        c, _, _ = _feature_map(inputs, self.kind)
        return (c, 1, 1)


@dataclass(frozen=True)
class BatchNorm(_Weightless):
    """Batch normalization over channels (dimension 0). 2 parameters per channel
    (scale and shift; none when ``affine`` is false); 0 MACs because inference folds it
    into the previous layer."""

    affine: bool = True
    kind: ClassVar[str] = "batchnorm"

    def output_shape(self, inputs: Sequence[Shape]) -> Shape:
        if len(inputs) != 1:
            raise ShapeError(f"batchnorm takes exactly one input, got {len(inputs)}")
        return inputs[0]

    def params(self, inputs: Sequence[Shape]) -> int:
        return 2 * inputs[0][0] if self.affine else 0


@dataclass(frozen=True)
class Add(_Weightless):
    """Element-wise sum of two or more inputs of one shape (residual connections)."""

    kind: ClassVar[str] = "add"

    def output_shape(self, inputs: Sequence[Shape]) -> Shape:
        if len(inputs) < 2:
            raise ShapeError(f"add needs at least two inputs, got {len(inputs)}")
        if len(set(inputs)) != 1:
            raise ShapeError(f"add needs inputs of one shape, got {list(inputs)}")
        return inputs[0]


@dataclass(frozen=True)
class Concat(_Weightless):
    """Concatenation along ``axis`` (default 0: channels of feature maps with equal
    spatial size; for tokens ``(T, D)`` axis 0 joins token lists). One input is a copy
    (PyTorch's ``torch.cat([x])``, as DenseNet's first layer of a block does)."""

    axis: int = 0
    kind: ClassVar[str] = "concat"

    def output_shape(self, inputs: Sequence[Shape]) -> Shape:
        if len(inputs) < 1:
            raise ShapeError("concat needs at least one input, got none")
        ranks = {len(s) for s in inputs}
        if len(ranks) != 1 or not 0 <= self.axis < len(inputs[0]):
            raise ShapeError(f"concat on axis {self.axis} needs inputs of one rank with that axis, "
                             f"got {list(inputs)}")
        a = self.axis
        rest = {s[:a] + s[a + 1:] for s in inputs}
        if len(rest) != 1:
            what = "one spatial size" if a == 0 else f"equal sizes on every axis but {a}"
            raise ShapeError(f"concat needs inputs of {what}, got {list(inputs)}")
        s0 = inputs[0]
        return (*s0[:a], sum(s[a] for s in inputs), *s0[a + 1:])


@dataclass(frozen=True)
class Flatten(_Weightless):
    """Reshape to a vector: ``(C, H, W) -> (C*H*W,)``."""

    kind: ClassVar[str] = "flatten"

    def output_shape(self, inputs: Sequence[Shape]) -> Shape:
        if len(inputs) != 1:
            raise ShapeError(f"flatten takes exactly one input, got {len(inputs)}")
        return (math.prod(inputs[0]),)


# -- operators of transformers and modern CNNs -----------------------------------------
#
# Shapes are PyTorch's with the batch dimension removed, in PyTorch's own layout: a token
# sequence is ``(T, D)``, attention scores ``(heads, T, S)``, ConvNeXt's channels-last
# block ``(H, W, C)``. Axes count from 0 within that per-sample shape.


def _one(inputs: Sequence[Shape], op: str) -> Shape:
    if len(inputs) != 1:
        raise ShapeError(f"{op} takes exactly one input, got {len(inputs)}")
    return inputs[0]


def _axis(axis: int, rank: int, op: str) -> int:
    """``axis`` (negative counts from the end) as an index into a shape of ``rank``."""
    a = axis + rank if axis < 0 else axis
    if not 0 <= a < rank:
        raise ShapeError(f"{op}: axis {axis} is out of range for a shape of {rank} dimensions")
    return a


def broadcast(shapes: Sequence[Shape], op: str = "broadcast") -> Shape:
    """NumPy's (and PyTorch's) broadcasting: shapes aligned at the right, a 1 stretches."""
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        sizes = {s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0} - {1}
        if len(sizes) > 1:
            raise ShapeError(f"{op}: shapes {list(shapes)} do not broadcast (axis {i} of the result)")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


@dataclass(frozen=True)
class TokenLinear(_FullyConnected):
    """A linear layer applied to the last axis of a multi-dimensional input, as
    PyTorch's ``nn.Linear`` does: ``(..., in) -> (..., out)``. Every position of the
    leading axes (the *tokens*: ``T`` of ``(T, D)``, ``H*W`` of a channels-last map) is
    one input vector. Weight shape ``(out_features, in_features)``; MACs
    ``tokens * in * out``; parameters ``in * out (+ out)``. Unlike :class:`Linear`,
    nothing is flattened."""

    def tokens(self, inputs: Sequence[Shape]) -> int:
        """Input vectors per sample: the product of all axes but the last."""
        return math.prod(_one(inputs, "fc")[:-1])

    def in_features(self, inputs: Sequence[Shape]) -> int:
        shape = _one(inputs, "fc")
        if not shape:
            raise ShapeError("fc over tokens needs an input with at least one axis, got a scalar")
        return shape[-1]

    def output_shape(self, inputs: Sequence[Shape]) -> Shape:
        self.in_features(inputs)
        return (*inputs[0][:-1], self.out_features)

    def weight_shape(self, inputs: Sequence[Shape]) -> Shape:
        return (self.out_features, self.in_features(inputs))

    def params(self, inputs: Sequence[Shape]) -> int:
        return self.out_features * self.in_features(inputs) + (self.out_features if self.bias else 0)

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        return self.tokens(inputs) * self.in_features(inputs) * self.out_features


@dataclass(frozen=True)
class MatMul(_Weightless):
    """Matrix product of two activations (attention's ``Q K^T`` and ``A V``), as
    ``torch.matmul``: ``(..., M, K) @ (..., K, N) -> (..., M, N)`` with the leading
    (batch) axes broadcast; a 1-D operand is a vector (its axis dropped from the
    result). No weights: both operands are computed tensors. MACs
    ``prod(batch axes) * M * K * N``."""

    kind: ClassVar[str] = "matmul"

    def _dims(self, inputs: Sequence[Shape]) -> tuple[Shape, int, int, int, Shape]:
        """(broadcast batch axes, M, K, N, output shape)."""
        if len(inputs) != 2:
            raise ShapeError(f"matmul takes exactly two inputs, got {len(inputs)}")
        a, b = inputs
        if not a or not b:
            raise ShapeError(f"matmul needs operands with at least one axis, got {a} and {b}")
        a2 = (1, *a) if len(a) == 1 else a
        b2 = (*b, 1) if len(b) == 1 else b
        if a2[-1] != b2[-2]:
            raise ShapeError(f"matmul: inner sizes differ, got {a} @ {b}")
        batch = broadcast([a2[:-2], b2[:-2]], "matmul") if (a2[:-2] or b2[:-2]) else ()
        out = (*batch, *([a2[-2]] if len(a) > 1 else []), *([b2[-1]] if len(b) > 1 else []))
        return batch, a2[-2], a2[-1], b2[-1], out

    def output_shape(self, inputs: Sequence[Shape]) -> Shape:
        return self._dims(inputs)[4]

    def gemm(self, inputs: Sequence[Shape]) -> tuple[int, int, int, int]:
        """(products: the broadcast batch positions, M, K, N) of the matrix products."""
        batch, m, k, n, _ = self._dims(inputs)
        return math.prod(batch), m, k, n

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        heads, m, k, n = self.gemm(inputs)
        return heads * m * k * n


@dataclass(frozen=True)
class LayerNorm(_Weightless):
    """Layer normalization over the last ``len(normalized_shape)`` axes. Parameters:
    the affine scale (and shift, ``bias``), one per normalized element; 0 MACs (a
    normalization pass, like :class:`BatchNorm`: mean, variance, scale per element)."""

    normalized_shape: tuple[int, ...]
    affine: bool = True
    bias: bool = True
    kind: ClassVar[str] = "layernorm"

    def __post_init__(self) -> None:
        ns = (self.normalized_shape,) if isinstance(self.normalized_shape, int) else self.normalized_shape
        object.__setattr__(self, "normalized_shape", tuple(int(d) for d in ns))

    def output_shape(self, inputs: Sequence[Shape]) -> Shape:
        shape = _one(inputs, "layernorm")
        n = len(self.normalized_shape)
        if tuple(shape[len(shape) - n:]) != self.normalized_shape or n > len(shape):
            raise ShapeError(f"layernorm over {self.normalized_shape} needs an input ending in those "
                             f"sizes, got {shape}")
        return shape

    def params(self, inputs: Sequence[Shape]) -> int:
        per = math.prod(self.normalized_shape)
        return per * (int(self.affine) + int(self.affine and self.bias))


@dataclass(frozen=True)
class GroupNorm(_Weightless):
    """Group normalization of ``(C, ...)`` in ``groups`` channel groups. Parameters: a
    scale and shift per channel when ``affine``; 0 MACs (a normalization pass)."""

    groups: int
    affine: bool = True
    kind: ClassVar[str] = "groupnorm"

    def output_shape(self, inputs: Sequence[Shape]) -> Shape:
        shape = _one(inputs, "groupnorm")
        if not shape or self.groups < 1 or shape[0] % self.groups:
            raise ShapeError(f"groupnorm: {shape[0] if shape else 'no'} channels are not divisible "
                             f"into {self.groups} groups (input {shape})")
        return shape

    def params(self, inputs: Sequence[Shape]) -> int:
        return 2 * inputs[0][0] if self.affine else 0


ACTIVATIONS = ("relu", "relu6", "leaky_relu", "hardtanh", "elu", "selu", "celu", "gelu", "silu",
               "mish", "hardswish", "hardsigmoid", "sigmoid", "tanh", "softplus", "softsign",
               "softmax", "log_softmax", "erf", "exp", "log", "sqrt", "rsqrt", "abs", "neg",
               "reciprocal")
"""Functions :class:`Activation` accepts."""


@dataclass(frozen=True)
class Activation(_Weightless):
    """A function applied element by element (``fn``: one of :data:`ACTIVATIONS`),
    shape unchanged; no weights, 0 MACs (the MACs convention counts conv, fc and matmul
    only). ``softmax``/``log_softmax`` normalise along one axis (exponent, sum, divide);
    they are recorded here as one pass over the tensor all the same."""

    fn: str
    kind: ClassVar[str] = "activation"

    def __post_init__(self) -> None:
        if self.fn not in ACTIVATIONS:
            raise ShapeError(f"activation {self.fn!r} is not known; accepted: {', '.join(ACTIVATIONS)}")

    def output_shape(self, inputs: Sequence[Shape]) -> Shape:
        return _one(inputs, f"activation {self.fn}")


ELEMENTWISE = ("add", "sub", "mul", "div", "pow", "max", "min")
"""Functions :class:`Elementwise` accepts."""


@dataclass(frozen=True)
class Elementwise(_Weightless):
    """An element-wise arithmetic operation (``fn``: one of :data:`ELEMENTWISE`) on one
    or more inputs broadcast to one shape (NumPy's rules: squeeze-excite's
    ``(C, 1, 1) * (C, H, W)``, a position embedding added to tokens). One input means
    the other operand is a Python number (``x * 0.5``). No weights, 0 MACs.
    Residual additions of equal shapes are :class:`Add`."""

    fn: str
    kind: ClassVar[str] = "elementwise"

    def __post_init__(self) -> None:
        if self.fn not in ELEMENTWISE:
            raise ShapeError(f"elementwise {self.fn!r} is not known; accepted: {', '.join(ELEMENTWISE)}")

    def output_shape(self, inputs: Sequence[Shape]) -> Shape:
        if not inputs:
            raise ShapeError(f"elementwise {self.fn} needs at least one input, got none")
        return broadcast(inputs, f"elementwise {self.fn}")


@dataclass(frozen=True)
class Constant:
    """A stored tensor the network reads as an activation (no inputs): a learned
    parameter used outside a conv/fc layer (ViT's class token and position embedding,
    ConvNeXt's layer scale) or a buffer. ``learned`` tensors count as parameters; no
    MACs; no weight shape (pruning does not act on them)."""

    shape: tuple[int, ...]
    learned: bool = True
    kind: ClassVar[str] = "constant"

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))

    def output_shape(self, inputs: Sequence[Shape]) -> Shape:
        if inputs:
            raise ShapeError(f"a constant has no inputs, got {len(inputs)}")
        return self.shape

    def weight_shape(self, inputs: Sequence[Shape]) -> None:
        return None

    def params(self, inputs: Sequence[Shape]) -> int:
        return math.prod(self.shape) if self.learned else 0

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        return 0


def _adaptive_bins(size: int, out: int) -> int:
    """Largest window PyTorch's adaptive pooling uses to make ``out`` bins of ``size``."""
    return max(-(-((i + 1) * size) // out) - (i * size) // out for i in range(out))


@dataclass(frozen=True)
class AdaptivePool2d(_Weightless):
    """Adaptive max or average pooling of ``(C, H, W)`` to ``output_size`` (``None`` on
    an axis keeps it), bins as PyTorch's: bin ``i`` of ``n`` covers
    ``[floor(i*H/n), ceil((i+1)*H/n))``. To ``(1, 1)`` it is a global pool; to the input's
    own size (VGG's and AlexNet's at 224x224) an identity copy."""

    mode: str
    output_size: tuple[int | None, int | None]

    def __post_init__(self) -> None:
        if self.mode not in ("max", "avg"):
            raise ShapeError(f"pooling mode must be 'max' or 'avg', got {self.mode!r}")
        size = self.output_size
        size = (size, size) if size is None or isinstance(size, int) else tuple(size)
        if len(size) != 2 or any(s is not None and int(s) < 1 for s in size):
            raise ShapeError(f"adaptive pooling output size must be one or two sizes >= 1 (or None), "
                             f"got {self.output_size!r}")
        object.__setattr__(self, "output_size", tuple(None if s is None else int(s) for s in size))

    @property
    def kind(self) -> str:
        return f"adaptive_{self.mode}pool"

    def output_shape(self, inputs: Sequence[Shape]) -> Shape:
        c, h, w = _feature_map(inputs, self.kind)
        oh, ow = (h if self.output_size[0] is None else self.output_size[0],
                  w if self.output_size[1] is None else self.output_size[1])
        return (c, oh, ow)

    def window(self, inputs: Sequence[Shape]) -> tuple[int, int]:
        """Largest bin in input pixels per axis (the pooling window's extent)."""
        _, h, w = inputs[0]
        _, oh, ow = self.output_shape(inputs)
        return (_adaptive_bins(h, oh), _adaptive_bins(w, ow))


@dataclass(frozen=True)
class Reduce(_Weightless):
    """Mean, max or sum over ``axes`` (``x.mean([2, 3])`` of ShuffleNet: a global pool
    that also drops the axes unless ``keepdim``). No weights, 0 MACs."""

    mode: str
    axes: tuple[int, ...]
    keepdim: bool = False
    kind: ClassVar[str] = "reduce"

    def __post_init__(self) -> None:
        if self.mode not in ("mean", "max", "sum", "min"):
            raise ShapeError(f"reduce mode must be 'mean', 'max', 'min' or 'sum', got {self.mode!r}")
        axes = (self.axes,) if isinstance(self.axes, int) else self.axes
        object.__setattr__(self, "axes", tuple(int(a) for a in axes))

    def output_shape(self, inputs: Sequence[Shape]) -> Shape:
        shape = _one(inputs, f"reduce {self.mode}")
        axes = {_axis(a, len(shape), f"reduce {self.mode}") for a in self.axes}
        if self.keepdim:
            return tuple(1 if i in axes else d for i, d in enumerate(shape))
        return tuple(d for i, d in enumerate(shape) if i not in axes)


@dataclass(frozen=True)
class Upsample(_Weightless):
    """Resize ``(C, *spatial)`` to ``(C, *size)`` (``nn.Upsample``, ``F.interpolate``);
    ``mode`` is PyTorch's (``nearest``, ``bilinear``, ...). No weights; 0 MACs (the
    interpolation's few multiplies per output are not counted, as torch's FLOP counter
    does not count them)."""

    size: tuple[int, ...]
    mode: str = "nearest"
    kind: ClassVar[str] = "upsample"

    def __post_init__(self) -> None:
        size = (self.size,) if isinstance(self.size, int) else self.size
        object.__setattr__(self, "size", tuple(int(s) for s in size))
        if not self.size or min(self.size) < 1:
            raise ShapeError(f"upsample size must be one or more sizes >= 1, got {self.size}")

    @classmethod
    def by_scale(cls, spatial: Sequence[int], scale, mode: str = "nearest") -> "Upsample":
        """The operator scaling ``spatial`` by ``scale`` (one factor or one per axis),
        rounding down as PyTorch does."""
        scales = [scale] * len(spatial) if isinstance(scale, (int, float)) else list(scale)
        if len(scales) != len(spatial):
            raise ShapeError(f"upsample: {len(scales)} scale factors for {len(spatial)} spatial axes")
        return cls(tuple(int(math.floor(s * f)) for s, f in zip(spatial, scales)), mode)

    def output_shape(self, inputs: Sequence[Shape]) -> Shape:
        shape = _one(inputs, "upsample")
        if len(shape) != len(self.size) + 1:
            raise ShapeError(f"upsample to {self.size} needs a (C, {len(self.size)} spatial axes) "
                             f"input, got {shape}")
        return (shape[0], *self.size)


# -- data movement: no weights, no MACs; shapes follow PyTorch's ----------------------


@dataclass(frozen=True)
class Reshape(_Weightless):
    """View the input as ``shape`` (``view``, ``reshape``, ``flatten`` beyond the batch
    axis, ``unflatten``, ``squeeze``/``unsqueeze``); one size may be ``-1``. Moves no
    data in a contiguous layout."""

    shape: tuple[int, ...]
    kind: ClassVar[str] = "reshape"

    def __post_init__(self) -> None:
        shape = (self.shape,) if isinstance(self.shape, int) else self.shape
        object.__setattr__(self, "shape", tuple(int(d) for d in shape))
        if sum(d == -1 for d in self.shape) > 1 or any(d < -1 for d in self.shape):
            raise ShapeError(f"reshape target {self.shape} may have one -1 and no other negative size")

    def output_shape(self, inputs: Sequence[Shape]) -> Shape:
        shape = _one(inputs, "reshape")
        total, known = math.prod(shape), math.prod(d for d in self.shape if d != -1)
        if -1 in self.shape:
            if known == 0 or total % known:
                raise ShapeError(f"cannot reshape {shape} ({total} elements) to {self.shape}")
            return tuple(total // known if d == -1 else d for d in self.shape)
        if known != total:
            raise ShapeError(f"cannot reshape {shape} ({total} elements) to {self.shape} ({known})")
        return self.shape


@dataclass(frozen=True)
class Permute(_Weightless):
    """Reorder the axes (``permute``, ``transpose``): output axis ``i`` is input axis
    ``dims[i]``. A copy wherever the consumer needs a contiguous layout."""

    dims: tuple[int, ...]
    kind: ClassVar[str] = "permute"

    def __post_init__(self) -> None:
        object.__setattr__(self, "dims", tuple(int(d) for d in self.dims))

    def output_shape(self, inputs: Sequence[Shape]) -> Shape:
        shape = _one(inputs, "permute")
        if sorted(self.dims) != list(range(len(shape))):
            raise ShapeError(f"permute {self.dims} is not an order of the {len(shape)} axes of {shape}")
        return tuple(shape[d] for d in self.dims)


@dataclass(frozen=True)
class Slice(_Weightless):
    """Elements ``start:stop:step`` of one axis (``x[:, :k]``, each output of
    ``chunk``/``split``). Python's slice rules (negative and out-of-range bounds)."""

    axis: int
    start: int | None = None
    stop: int | None = None
    step: int = 1
    kind: ClassVar[str] = "slice"

    def output_shape(self, inputs: Sequence[Shape]) -> Shape:
        shape = _one(inputs, "slice")
        a = _axis(self.axis, len(shape), "slice")
        if self.step < 1:
            raise ShapeError(f"slice step must be >= 1, got {self.step}")
        n = len(range(shape[a])[slice(self.start, self.stop, self.step)])
        if n == 0:
            raise ShapeError(f"slice {self.start}:{self.stop}:{self.step} of axis {self.axis} of {shape} "
                             "is empty")
        return (*shape[:a], n, *shape[a + 1:])


@dataclass(frozen=True)
class Select(_Weightless):
    """One index of one axis, the axis removed (``x[:, 0]``: ViT's class token;
    ``unbind``)."""

    axis: int
    index: int
    kind: ClassVar[str] = "select"

    def output_shape(self, inputs: Sequence[Shape]) -> Shape:
        shape = _one(inputs, "select")
        a = _axis(self.axis, len(shape), "select")
        if not -shape[a] <= self.index < shape[a]:
            raise ShapeError(f"select: index {self.index} is out of range for axis {self.axis} of {shape}")
        return (*shape[:a], *shape[a + 1:])


@dataclass(frozen=True)
class ChannelShuffle(_Weightless):
    """ShuffleNet's channel shuffle of ``(C, ...)`` in ``groups`` (``nn.ChannelShuffle``;
    the reshape-transpose-reshape it is written as imports as those three layers)."""

    groups: int
    kind: ClassVar[str] = "shuffle"

    def output_shape(self, inputs: Sequence[Shape]) -> Shape:
        shape = _one(inputs, "shuffle")
        if not shape or self.groups < 1 or shape[0] % self.groups:
            raise ShapeError(f"channel shuffle: {shape} has channels not divisible by {self.groups} groups")
        return shape


@dataclass(frozen=True)
class Expand(_Weightless):
    """Broadcast the input to ``shape`` (``expand``): a view, copied where consumed."""

    shape: tuple[int, ...]
    kind: ClassVar[str] = "expand"

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))

    def output_shape(self, inputs: Sequence[Shape]) -> Shape:
        shape = _one(inputs, "expand")
        if broadcast([shape, self.shape], "expand") != self.shape:
            raise ShapeError(f"expand: {shape} does not broadcast to {self.shape}")
        return self.shape


Op = (Conv2d | Linear | Pool2d | GlobalPool | BatchNorm | Add | Concat | Flatten | TokenLinear | MatMul
      | LayerNorm | GroupNorm | Activation | Elementwise | Constant | AdaptivePool2d | Reduce | Upsample
      | Reshape | Permute | Slice | Select | ChannelShuffle | Expand)

CATEGORIES = {
    "conv": "compute", "fc": "compute", "matmul": "compute",
    "batchnorm": "normalization", "layernorm": "normalization", "groupnorm": "normalization",
    "activation": "elementwise", "elementwise": "elementwise", "add": "elementwise",
    "maxpool": "pooling", "avgpool": "pooling", "global_maxpool": "pooling", "global_avgpool": "pooling",
    "adaptive_maxpool": "pooling", "adaptive_avgpool": "pooling", "reduce": "pooling",
    "upsample": "data", "reshape": "data", "flatten": "data", "permute": "data", "slice": "data",
    "select": "data", "concat": "data", "shuffle": "data", "expand": "data", "constant": "data",
}
"""Operator kind -> what a cost model does with it: ``compute`` (MACs: conv, fc and
matmul), ``normalization`` and ``elementwise`` (passes over the tensor: memory-bound
streams, no MACs), ``pooling`` (a window or reduction read per output), ``data``
(moves or views data, computes nothing)."""
