"""A layer: one operator applied to named inputs, with its shapes resolved."""

from __future__ import annotations

from dataclasses import dataclass

from .ops import Conv2d, Linear, Op, Shape, TokenLinear


@dataclass(frozen=True)
class Layer:
    """One node of a network, with input and output shapes already inferred.

    Attributes:
        name: unique within its network.
        op: what the layer computes (:mod:`hwprune.workload.ops`).
        inputs: names of the layers it reads; ``"input"`` is the network input.
        input_shapes: shape of each input, batch dimension excluded.
        output_shape: shape of the output, batch dimension excluded.
    """

    name: str
    op: Op
    inputs: tuple[str, ...]
    input_shapes: tuple[Shape, ...]
    output_shape: Shape

    @property
    def kind(self) -> str:
        """Short operator name: ``conv``, ``fc``, ``maxpool``, ``add``, ..."""
        return self.op.kind

    @property
    def input_shape(self) -> Shape:
        """Shape of the first (for most layers the only) input."""
        return self.input_shapes[0]

    @property
    def macs(self) -> int:
        """Multiply-accumulates for one input sample (0 for layers without weights)."""
        return self.op.macs(self.input_shapes, self.output_shape)

    @property
    def params(self) -> int:
        """Trainable parameters (weights + biases; BN scale + shift)."""
        return self.op.params(self.input_shapes)

    @property
    def weight_shape(self) -> Shape | None:
        """``(M, C/groups, R, S)`` for conv, ``(out, in)`` for fc, else ``None``."""
        return self.op.weight_shape(self.input_shapes)

    @property
    def has_weights(self) -> bool:
        """True for the layers pruning acts on: convolution and fully connected (a
        linear layer over tokens included)."""
        return isinstance(self.op, (Conv2d, Linear, TokenLinear))

    @property
    def groups(self) -> int:
        """Convolution groups (1 for every other layer)."""
        return self.op.groups if isinstance(self.op, Conv2d) else 1
