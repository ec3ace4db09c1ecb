"""A network: layers in execution order, each naming the layers it reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from ..errors import InputError, UnknownNameError
from .layer import Layer
from .ops import Shape

INPUT = "input"
"""Name by which layers refer to the network's input tensor."""


@dataclass(frozen=True)
class Network:
    """A feed-forward network (a DAG in topological order).

    Attributes:
        name: identifier (``alexnet``) or file stem for imported models.
        input_shape: shape of one input sample, e.g. ``(3, 224, 224)``.
        layers: every layer, producers before consumers.
        description: one line for listings.
        source: where the architecture comes from (paper, reference model file).
    """

    name: str
    input_shape: Shape
    layers: tuple[Layer, ...]
    description: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        seen = {INPUT}
        for layer in self.layers:
            if layer.name in seen:
                raise InputError(
                    f"network {self.name!r}: layer name {layer.name!r} is used twice "
                    f"(or is the reserved name {INPUT!r}); names must be unique"
                )
            missing = [i for i in layer.inputs if i not in seen]
            if missing:
                raise InputError(
                    f"network {self.name!r}: layer {layer.name!r} reads {missing}, which "
                    "no earlier layer produces; layers must come after their inputs"
                )
            seen.add(layer.name)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise UnknownNameError(
            f"network {self.name!r} has no layer {name!r}; its layers are: "
            + ", ".join(layer.name for layer in self.layers)
        )

    @property
    def macs(self) -> int:
        """Total multiply-accumulates for one input sample."""
        return sum(layer.macs for layer in self.layers)

    @property
    def params(self) -> int:
        """Total trainable parameters."""
        return sum(layer.params for layer in self.layers)

    @property
    def weighted_layers(self) -> tuple[Layer, ...]:
        """The convolution and fully connected layers, in order."""
        return tuple(layer for layer in self.layers if layer.has_weights)

    @property
    def compute_layers(self) -> tuple[Layer, ...]:
        """The layers the energy and latency tables price: conv and fc layers, and
        matmuls between two activations (attention's), in order."""
        return tuple(layer for layer in self.layers if layer.has_weights or layer.kind == "matmul")

    @property
    def output_shape(self) -> Shape:
        """Shape of the last layer's output."""
        return self.layers[-1].output_shape if self.layers else self.input_shape
