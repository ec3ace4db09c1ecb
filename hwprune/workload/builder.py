"""Build a :class:`Network` layer by layer, inferring every shape on the way."""

from __future__ import annotations

from typing import Sequence

from ..errors import ShapeError
from .layer import Layer
from .network import INPUT, Network
from .ops import Add, BatchNorm, Concat, Conv2d, Flatten, GlobalPool, Linear, Op, Pool2d, Shape


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
             groups: int = 1, bias: bool = True) -> str:
        return self.add_layer(name, Conv2d(out_channels, kernel, stride, padding, groups, bias), [x])

    def fc(self, name: str, x: str, out_features: int, bias: bool = True) -> str:
        return self.add_layer(name, Linear(out_features, bias), [x])

    def maxpool(self, name: str, x: str, kernel, stride, padding=0, ceil_mode=False) -> str:
        return self.add_layer(name, Pool2d("max", kernel, stride, padding, ceil_mode), [x])

    def avgpool(self, name: str, x: str, kernel, stride, padding=0, ceil_mode=False) -> str:
        return self.add_layer(name, Pool2d("avg", kernel, stride, padding, ceil_mode), [x])

    def global_avgpool(self, name: str, x: str) -> str:
        return self.add_layer(name, GlobalPool("avg"), [x])

    def batchnorm(self, name: str, x: str) -> str:
        return self.add_layer(name, BatchNorm(), [x])

    def add(self, name: str, xs: Sequence[str]) -> str:
        return self.add_layer(name, Add(), xs)

    def concat(self, name: str, xs: Sequence[str]) -> str:
        return self.add_layer(name, Concat(), xs)

    def flatten(self, name: str, x: str) -> str:
        return self.add_layer(name, Flatten(), [x])

    def build(self, description: str = "", source: str = "") -> Network:
        return Network(self.name, self.input_shape, tuple(self._layers), description, source)
