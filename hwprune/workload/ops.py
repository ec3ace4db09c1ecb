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
    (bottom, right) where it differs, as ONNX's ``auto_pad=SAME_*`` and asymmetric
    ``pads`` give; ``None`` means the same as ``padding``.
    """

    out_channels: int
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    groups: int = 1
    bias: bool = True
    pad_end: tuple[int, int] | None = None
    kind: ClassVar[str] = "conv"

    def __post_init__(self) -> None:
        object.__setattr__(self, "kernel", _pair(self.kernel, "kernel"))
        object.__setattr__(self, "stride", _pair(self.stride, "stride"))
        object.__setattr__(self, "padding", _pair(self.padding, "padding"))
        _set_pad_end(self)
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
        e = _window_out(h, self.kernel[0], self.stride[0], self.padding[0], False, end[0])
        f = _window_out(w, self.kernel[1], self.stride[1], self.padding[1], False, end[1])
        return (self.out_channels, e, f)

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
class Linear:
    """Fully connected layer. A multi-dimensional input is flattened (as Caffe's
    InnerProduct does). Weight shape ``(out_features, in_features)``."""

    out_features: int
    bias: bool = True
    kind: ClassVar[str] = "fc"

    def __post_init__(self) -> None:
        if self.out_features < 1:
            raise ShapeError(f"out_features must be >= 1, got {self.out_features}")

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
    (scale and shift); 0 MACs because inference folds it into the previous layer."""

    kind: ClassVar[str] = "batchnorm"

    def output_shape(self, inputs: Sequence[Shape]) -> Shape:
        if len(inputs) != 1:
            raise ShapeError(f"batchnorm takes exactly one input, got {len(inputs)}")
        return inputs[0]

    def params(self, inputs: Sequence[Shape]) -> int:
        return 2 * inputs[0][0]


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
    """Concatenation along channels of feature maps with equal spatial size."""

    kind: ClassVar[str] = "concat"

    def output_shape(self, inputs: Sequence[Shape]) -> Shape:
        if len(inputs) < 2:
            raise ShapeError(f"concat needs at least two inputs, got {len(inputs)}")
        spatial = {s[1:] for s in inputs}
        if len(spatial) != 1:
            raise ShapeError(f"concat needs inputs of one spatial size, got {list(inputs)}")
        return (sum(s[0] for s in inputs), *inputs[0][1:])


@dataclass(frozen=True)
class Flatten(_Weightless):
    """Reshape to a vector: ``(C, H, W) -> (C*H*W,)``."""

    kind: ClassVar[str] = "flatten"

    def output_shape(self, inputs: Sequence[Shape]) -> Shape:
        if len(inputs) != 1:
            raise ShapeError(f"flatten takes exactly one input, got {len(inputs)}")
        return (math.prod(inputs[0]),)


Op = Conv2d | Linear | Pool2d | GlobalPool | BatchNorm | Add | Concat | Flatten
