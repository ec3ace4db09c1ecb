"""Which conv/fc layers of a network must lose the same output units.

Removing an output unit (a filter, a neuron) of a layer is a smaller model only if
every tensor that unit reaches can drop the matching channel. Two places in a network
tie units of different layers together:

* an element-wise **add** (a residual connection): its inputs' channel ``k`` are summed,
  so channel ``k`` is gone only if every branch removed it;
* a **depthwise convolution** (``groups`` = input = output channels): its filter ``k``
  reads only channel ``k``, so it loses the units its producer loses.

:func:`unit_couplings` follows each tensor back through the operations that keep
channels one to one (batch norm, activations, pooling, dropout: one input, the same
channel count) to the layer whose units it carries, and joins the layers an add or a
depthwise convolution ties, transitively (a ResNet stage's residual chain is one
group). A group that reaches the network's input through an add cannot lose units at
all: the input's channels are fixed.

This is the structure Torch-Pruning's DepGraph finds on a torch module
(:func:`hwprune.workload.torch_import.coupled_groups`), read here from any hwprune
:class:`~hwprune.workload.network.Network` (built-in, ONNX, ``from_torch``), with no
torch. *Simplification:* a concat ends a chain (the channels after it are a new
tensor), as a flatten does.
"""

from __future__ import annotations

from dataclasses import dataclass

from .layer import Layer
from .network import Network
from .ops import Add

INPUT = "input"


@dataclass(frozen=True)
class Couplings:
    """``groups``: tuples of two or more conv/fc layer names (network order) that must
    lose the same units; ``fixed``: names of the layers in a group that reaches the
    network input, which cannot lose units."""

    groups: tuple[tuple[str, ...], ...]
    fixed: frozenset[str]

    def group_of(self, name: str) -> tuple[str, ...] | None:
        """The group ``name`` belongs to, or None."""
        return next((g for g in self.groups if name in g), None)


def is_depthwise(layer: Layer) -> bool:
    """A convolution whose every filter reads one channel of its own."""
    return layer.kind == "conv" and layer.groups > 1 and \
        layer.groups == layer.input_shape[0] == layer.output_shape[0]


def unit_couplings(net: Network) -> Couplings:
    """The coupled layer groups of ``net`` (module docstring)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        parent[find(a)] = find(b)

    carries: dict[str, str] = {INPUT: INPUT}   # tensor -> the layer whose units it carries
    for lay in net.layers:
        sources = [carries.get(src, src) for src in lay.inputs]
        if lay.has_weights:
            if is_depthwise(lay):
                union(lay.name, sources[0])
            carries[lay.name] = lay.name
        elif isinstance(lay.op, Add):
            for s in sources[1:]:
                union(sources[0], s)
            carries[lay.name] = sources[0]
        elif len(sources) == 1 and lay.input_shape[0] == lay.output_shape[0] and lay.kind != "flatten":
            carries[lay.name] = sources[0]
        else:
            carries[lay.name] = lay.name            # a new tensor: concat, flatten, reshape
    members: dict[str, list[str]] = {}
    for lay in net.weighted_layers:
        members.setdefault(find(lay.name), []).append(lay.name)
    groups = tuple(tuple(m) for m in members.values() if len(m) > 1)
    fixed = frozenset(n for root, m in members.items() if find(INPUT) == root for n in m)
    return Couplings(groups, fixed)
