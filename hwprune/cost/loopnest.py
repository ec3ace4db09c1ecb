"""A layer as a loop nest over (N, M, C, E, F, R, S).

``N`` batch, ``M`` output channels, ``C`` input channels, ``E x F`` output map,
``R x S`` kernel (the names of Chen et al., ISCA 2016). A grouped convolution is
``groups`` independent loop nests with ``M/groups`` and ``C/groups`` channels; a
fully connected layer is ``E = F = R = S = 1`` with ``C`` the flattened input size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..checks import check_batch
from ..errors import InputError
from ..hardware.profile import LOOP_DIMS
from ..workload.layer import Layer
from ..workload.ops import Conv2d, Linear, MatMul, TokenLinear

DIMS = LOOP_DIMS
"""Loop dimensions, in the order every array indexed by dimension uses (one home:
:data:`hwprune.hardware.profile.LOOP_DIMS`)."""

N, M, C, E, F, R, S = range(7)


@dataclass(frozen=True)
class LoopNest:
    """Bounds of one group's loop nest, plus what input footprints need.

    Attributes:
        bounds: (N, M, C, E, F, R, S) of one group.
        groups: number of identical, independent groups.
        stride: (vertical, horizontal) convolution stride.
        in_hw: (H, W) of the unpadded input map (1, 1 for fully connected layers).
    """

    bounds: tuple[int, int, int, int, int, int, int]
    groups: int = 1
    stride: tuple[int, int] = (1, 1)
    in_hw: tuple[int, int] = (1, 1)

    @classmethod
    def of(cls, layer: Layer, batch: int = 1) -> "LoopNest":
        """The loop nest of a convolution or fully connected layer for ``batch`` inputs."""
        batch = check_batch(batch)
        op = layer.op
        if isinstance(op, Conv2d):
            c, h, w = layer.input_shape
            m, e, f = layer.output_shape
            g = op.groups
            return cls((batch, m // g, c // g, e, f, *op.kernel), g, op.stride, (h, w))
        if isinstance(op, Linear):
            return cls((batch, op.out_features, math.prod(layer.input_shape), 1, 1, 1, 1))
        if isinstance(op, TokenLinear):     # a 1x1 convolution over the tokens' positions
            tokens = op.tokens(layer.input_shapes)
            return cls((batch, op.out_features, layer.input_shape[-1], tokens, 1, 1, 1),
                       in_hw=(tokens, 1))
        if isinstance(op, MatMul):
            # (..., M, K) @ (..., K, N): one group per batch position (an attention
            # head), the right operand in the weights' place, M rows as positions.
            heads, m, k, n = op.gemm(layer.input_shapes)
            return cls((batch, n, k, m, 1, 1, 1), groups=heads, in_hw=(m, 1))
        raise InputError(
            f"layer {layer.name!r} is a {layer.kind} layer; only conv and fc layers have a "
            "loop nest"
        )

    @property
    def macs(self) -> int:
        """MACs of all groups."""
        return math.prod(self.bounds) * self.groups

    @property
    def weights(self) -> int:
        """Weight elements of all groups."""
        n, m, c, e, f, r, s = self.bounds
        return m * c * r * s * self.groups

    @property
    def outputs(self) -> int:
        """Output elements of all groups (whole batch)."""
        n, m, c, e, f, r, s = self.bounds
        return n * m * e * f * self.groups

    @property
    def inputs(self) -> int:
        """Input elements of all groups (whole batch, unpadded)."""
        n, m, c, e, f, r, s = self.bounds
        return n * c * self.in_hw[0] * self.in_hw[1] * self.groups
