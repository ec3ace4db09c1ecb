"""Build a :class:`Network` layer by layer, inferring every shape on the way."""

from __future__ import annotations

from typing import Sequence

from ..errors import ShapeError
from .layer import Layer
from .network import INPUT, Network
from .ops import (
    Activation,
    AdaptivePool2d,
    Add,
    BatchNorm,
    ChannelShuffle,
    Concat,
    Constant,
    Conv2d,
    Elementwise,
    Expand,
    Flatten,
    GlobalPool,
    GroupNorm,
    LayerNorm,
    Linear,
    MatMul,
    Op,
    Permute,
    Pool2d,
    Reduce,
    Reshape,
    Select,
    Shape,
    Slice,
    TokenLinear,
    Upsample,
)


class NetworkBuilder:
    """Appends layers in execution order; each method returns the new layer's name,
    which later layers pass as their input.

    >>> b = NetworkBuilder("tiny", (1, 28, 28))
    >>> x = b.conv("conv1", b.input, 8, 3, padding=1)
    >>> x = b.fc("fc", x, 10)
    >>> b.build().macs
    119168
    """

    def __init__(self, name: str, input_shape: Shape):
        self.name = name
        self.input_shape = tuple(int(d) for d in input_shape)
        self._layers: list[Layer] = []
        self._shapes: dict[str, Shape] = {INPUT: self.input_shape}

    @property
    def input(self) -> str:
        """Name of the network input, to pass as the first layer's input."""
        return INPUT

    def shape(self, name: str) -> Shape:
        """Output shape of an already added layer (or of the input)."""
        return self._shapes[name]

    def add_layer(self, name: str, op: Op, inputs: Sequence[str]) -> str:
        """Append ``op`` reading ``inputs``; returns ``name``."""
        if name in self._shapes:
            raise ShapeError(f"network {self.name!r}: layer name {name!r} is already used")
        unknown = [i for i in inputs if i not in self._shapes]
        if unknown:
            raise ShapeError(f"network {self.name!r}: layer {name!r} reads unknown {unknown}")
        in_shapes = tuple(self._shapes[i] for i in inputs)
        try:
            out = op.output_shape(in_shapes)
        except ShapeError as exc:
            raise ShapeError(f"network {self.name!r}, layer {name!r}: {exc}") from None
        self._layers.append(Layer(name, op, tuple(inputs), in_shapes, out))
        self._shapes[name] = out
        return name

    def conv(self, name: str, x: str, out_channels: int, kernel, stride=1, padding=0,
             groups: int = 1, bias: bool = True, dilation=1, pad_end=None) -> str:
        return self.add_layer(name, Conv2d(out_channels, kernel, stride, padding, groups, bias, pad_end,
                                           dilation), [x])

    def conv1d(self, name: str, x: str, out_channels: int, kernel: int, stride: int = 1, padding: int = 0,
               groups: int = 1, bias: bool = True, dilation: int = 1, pad_end: int | None = None) -> str:
        """A 1-D convolution of a ``(C, L)`` input: the 2-D convolution ``name`` with
        kernel ``(1, kernel)`` on the view ``(C, 1, L)`` (layer ``name.as2d``), viewed back
        as ``(M, L')`` (layer ``name.as1d``, returned). The two views move no data."""
        shape = self.shape(x)
        if len(shape) != 2:
            raise ShapeError(f"network {self.name!r}, layer {name!r}: conv1d needs a (C, L) input, "
                             f"got {shape}")
        v = self.reshape(f"{name}.as2d", x, (shape[0], 1, shape[1]))
        y = self.conv(name, v, out_channels, (1, kernel), (1, stride), (0, padding), groups, bias,
                      (1, dilation), None if pad_end is None else (0, pad_end))
        m, _, length = self.shape(y)
        return self.reshape(f"{name}.as1d", y, (m, length))

    def fc(self, name: str, x: str, out_features: int, bias: bool = True) -> str:
        return self.add_layer(name, Linear(out_features, bias), [x])

    def maxpool(self, name: str, x: str, kernel, stride, padding=0, ceil_mode=False) -> str:
        return self.add_layer(name, Pool2d("max", kernel, stride, padding, ceil_mode), [x])

    def avgpool(self, name: str, x: str, kernel, stride, padding=0, ceil_mode=False) -> str:
        return self.add_layer(name, Pool2d("avg", kernel, stride, padding, ceil_mode), [x])

    def global_avgpool(self, name: str, x: str) -> str:
        return self.add_layer(name, GlobalPool("avg"), [x])

    def batchnorm(self, name: str, x: str, affine: bool = True) -> str:
        return self.add_layer(name, BatchNorm(affine), [x])

    def add(self, name: str, xs: Sequence[str]) -> str:
        return self.add_layer(name, Add(), xs)

    def concat(self, name: str, xs: Sequence[str]) -> str:
        return self.add_layer(name, Concat(), xs)

    def flatten(self, name: str, x: str) -> str:
        return self.add_layer(name, Flatten(), [x])

    def token_fc(self, name: str, x: str, out_features: int, bias: bool = True) -> str:
        """A linear layer on the last axis of ``x`` (``nn.Linear`` on ``(T, D)`` tokens)."""
        return self.add_layer(name, TokenLinear(out_features, bias), [x])

    def matmul(self, name: str, a: str, b: str) -> str:
        return self.add_layer(name, MatMul(), [a, b])

    def layernorm(self, name: str, x: str, normalized_shape, affine: bool = True, bias: bool = True) -> str:
        return self.add_layer(name, LayerNorm(normalized_shape, affine, bias), [x])

    def groupnorm(self, name: str, x: str, groups: int, affine: bool = True) -> str:
        return self.add_layer(name, GroupNorm(groups, affine), [x])

    def activation(self, name: str, x: str, fn: str) -> str:
        return self.add_layer(name, Activation(fn), [x])

    def elementwise(self, name: str, fn: str, xs: Sequence[str]) -> str:
        return self.add_layer(name, Elementwise(fn), xs)

    def constant(self, name: str, shape, learned: bool = True) -> str:
        return self.add_layer(name, Constant(shape, learned), [])

    def adaptive_pool(self, name: str, x: str, mode: str, output_size) -> str:
        return self.add_layer(name, AdaptivePool2d(mode, output_size), [x])

    def reduce(self, name: str, x: str, mode: str, axes, keepdim: bool = False) -> str:
        return self.add_layer(name, Reduce(mode, axes, keepdim), [x])

    def upsample(self, name: str, x: str, size, mode: str = "nearest") -> str:
        return self.add_layer(name, Upsample(size, mode), [x])

    def reshape(self, name: str, x: str, shape) -> str:
        return self.add_layer(name, Reshape(shape), [x])

    def permute(self, name: str, x: str, dims) -> str:
        return self.add_layer(name, Permute(dims), [x])

    def transpose(self, name: str, x: str, a: int, b: int) -> str:
        """Swap axes ``a`` and ``b`` (a :class:`Permute`)."""
        dims = list(range(len(self.shape(x))))
        dims[a], dims[b] = dims[b], dims[a]
        return self.permute(name, x, dims)

    def slice(self, name: str, x: str, axis: int, start=None, stop=None, step: int = 1) -> str:
        return self.add_layer(name, Slice(axis, start, stop, step), [x])

    def select(self, name: str, x: str, axis: int, index: int) -> str:
        return self.add_layer(name, Select(axis, index), [x])

    def split(self, name: str, x: str, axis: int, sizes: Sequence[int]) -> list[str]:
        """``torch.split``: consecutive slices of ``axis`` of the given sizes, layers
        ``name.0``, ``name.1``, ..."""
        out, start = [], 0
        for i, size in enumerate(sizes):
            out.append(self.slice(f"{name}.{i}", x, axis, start, start + size))
            start += size
        return out

    def chunk(self, name: str, x: str, chunks: int, axis: int) -> list[str]:
        """``torch.chunk``: ``chunks`` slices of ``axis`` of ``ceil(n / chunks)`` (the last
        smaller), as :meth:`split`."""
        n = self.shape(x)[axis]
        size = -(-n // chunks)
        return self.split(name, x, axis, [min(size, n - s) for s in range(0, n, size)])

    def channel_shuffle(self, name: str, x: str, groups: int) -> str:
        return self.add_layer(name, ChannelShuffle(groups), [x])

    def expand(self, name: str, x: str, shape) -> str:
        return self.add_layer(name, Expand(shape), [x])

    def build(self, description: str = "", source: str = "") -> Network:
        return Network(self.name, self.input_shape, tuple(self._layers), description, source)
