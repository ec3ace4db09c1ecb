"""A pruning plan: a scheme and a density per layer, and what it does across layers.

A :class:`Plan` names, per conv/fc layer, the :class:`~hwprune.schemes.Scheme` it is
pruned with and the density it reaches (the kept fraction of what that scheme
removes: weights, groups, or output units); layers it does not name stay dense.

The effects one layer has on another are derived here, once (:func:`shapes_as_run`):
a scheme that removes whole units (``filter``, ``node``) makes its layer physically
smaller, and the layers that read its output lose the matching inputs: the input
channels of a convolution, or the input features of a fully connected layer (through
a flatten: each removed channel takes its ``H x W`` positions with it). Pooling,
batch normalization and other one-input layers that keep the channel count pass the
removal on.

An element-wise ``add`` keeps a unit unless every branch removed it. Its branches
keeping the same number of units are taken to keep the same units (hwprune's pruners
remove the units of coupled layers together, :mod:`hwprune.prune.pruner`); a branch
that keeps every unit keeps the add whole (a residual connection around a node-pruned
layer keeps its width).

*Simplifications:* branches of an add that keep different numbers of units, none of
them all, are priced as keeping the sum of their counts (at most every unit): an upper
bound, exact when they share no unit. A ``concat`` keeps the sum of what its inputs
keep, and a grouped convolution scales its per-group channels by the kept fraction
(rounded, at least one per group).
Rows emptied by fine-grained pruning stay in the network: an empty CSR row costs only
its pointer, and only schemes that remove units shrink the next layer.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from ..checks import check_density
from ..errors import InputError
from ..schemes import DENSE, Scheme, scheme
from ..workload.layer import Layer
from ..workload.network import Network
from ..workload.ops import Add, Concat, Conv2d, Elementwise, Flatten, Linear, TokenLinear


@dataclass(frozen=True)
class LayerPlan:
    """How one layer is pruned: ``scheme``, ``density`` (kept fraction of what the
    scheme removes, of the layer as it runs after upstream removal), ``act_density``
    (fraction of nonzero input activations, for the energy model)."""

    scheme: Scheme = DENSE
    density: float = 1.0
    act_density: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "scheme", scheme(self.scheme))
        object.__setattr__(self, "density", check_density(self.density))
        object.__setattr__(self, "act_density", check_density(self.act_density, "act_density"))
        if not self.scheme.prunes:
            object.__setattr__(self, "density", 1.0)


DENSE_LAYER = LayerPlan()


@dataclass(frozen=True)
class Plan:
    """A :class:`LayerPlan` per layer name; layers not named are dense."""

    layers: Mapping[str, LayerPlan] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        fixed = {}
        for name, lp in dict(self.layers).items():
            if isinstance(lp, tuple):
                lp = LayerPlan(*lp)
            elif not isinstance(lp, LayerPlan):
                raise InputError(f"plan entry for {name!r} must be a LayerPlan or a (scheme, "
                                 f"density) pair, got {lp!r}")
            fixed[str(name)] = lp
        object.__setattr__(self, "layers", MappingProxyType(fixed))

    def __getitem__(self, name: str) -> LayerPlan:
        return self.layers.get(name, DENSE_LAYER)

    @classmethod
    def uniform(cls, net: Network, pruning: Scheme | str, density: float,
                skip: tuple[str, ...] = ()) -> "Plan":
        """Every conv/fc layer of ``net`` (but ``skip``) with one scheme and density."""
        return cls({lay.name: LayerPlan(pruning, density) for lay in net.weighted_layers
                    if lay.name not in skip})

    def with_layer(self, name: str, layer_plan: LayerPlan) -> "Plan":
        """A copy with ``name``'s entry replaced."""
        return Plan({**self.layers, name: layer_plan})

    def check(self, net: Network) -> None:
        """Raise :class:`InputError` for a layer ``net`` lacks, or for a scheme that
        removes units on the network's last conv/fc layer (its outputs leave the
        network: for a classifier, the classes)."""
        weighted = [lay.name for lay in net.weighted_layers]
        unknown = [n for n in self.layers if n not in weighted]
        if unknown:
            raise InputError(f"the plan names layer {unknown[0]!r}, which network {net.name!r} does "
                             "not have as a conv or fc layer; its conv/fc layers are: "
                             + ", ".join(weighted))
        for lay in net.weighted_layers:
            lp = self[lay.name]
            if lp.scheme.removes_units and lp.density < 1 and not can_remove_units(lay):
                raise InputError(f"layer {lay.name!r} is a linear layer over tokens; removing its "
                                 f"units (scheme {lp.scheme.name!r}) is not modelled yet (its "
                                 "units are the last axis, which the plan does not carry to the "
                                 "layers after it); prune it with a scheme that keeps units")
        last = self[weighted[-1]]
        if last.scheme.removes_units and last.density < 1:
            raise InputError(f"layer {weighted[-1]!r} is the network's last conv/fc layer; "
                             f"scheme {last.scheme.name!r} would remove its outputs (the "
                             "network's results); prune it with a scheme that keeps units")


@dataclass(frozen=True)
class LayerShape:
    """A conv/fc layer as it runs under a plan.

    Attributes:
        layer: the layer with the inputs it still has (the original when no unit
            before it was removed); its own removed units are the scheme's to price
            (its kernel keeps a fraction of the rows).
        outputs_kept: output units kept by its own scheme, fraction of the layer's.
        inputs_kept: input channels (features) kept, fraction of the original's.
    """

    layer: Layer
    outputs_kept: float
    inputs_kept: float


def can_remove_units(layer: Layer) -> bool:
    """Whether a plan may remove ``layer``'s output units: conv and fc layers whose
    units are their output's first axis (not a linear layer over tokens, whose units
    are its last axis: *simplification*, not modelled yet)."""
    return layer.has_weights and not isinstance(layer.op, TokenLinear)


def _kept_units(total: int, groups: int, fraction: float) -> int:
    per_group = total // groups
    return groups * max(1, round(per_group * fraction))


def _shrink(layer: Layer, out_units: int, in_units: int) -> Layer:
    """``layer`` with ``out_units`` outputs and ``in_units`` input channels (features)."""
    op = layer.op
    in_shape = (in_units, *layer.input_shape[1:])
    if isinstance(op, Conv2d):
        op = dataclasses.replace(op, out_channels=out_units)
    elif isinstance(op, Linear):
        op = dataclasses.replace(op, out_features=out_units)
    out_shape = (out_units, *layer.output_shape[1:])
    return dataclasses.replace(layer, op=op, input_shapes=(in_shape,), output_shape=out_shape)


def shapes_as_run(net: Network, plan: Plan) -> dict[str, LayerShape]:
    """Per conv/fc layer of ``net``, its shape once ``plan``'s unit removals are
    carried through the network (module docstring)."""
    return _carry(net, plan)[1]


def kept_entries(net: Network, plan: Plan) -> dict[str, int]:
    """Per layer of ``net`` (and ``"input"``), how many entries of its output's first
    axis (channels, units, features) ``plan`` leaves (module docstring)."""
    return _carry(net, plan)[0]


def _carry(net: Network, plan: Plan) -> tuple[dict[str, int], dict[str, LayerShape]]:
    plan.check(net)
    kept: dict[str, int] = {"input": net.input_shape[0]}   # kept first-dimension entries
    out: dict[str, LayerShape] = {}
    for lay in net.layers:
        first = [kept.get(src, shape[0]) for src, shape in zip(lay.inputs, lay.input_shapes)]
        full = lay.output_shape[0]
        op = lay.op
        if lay.has_weights:
            lp = plan[lay.name]
            groups = lay.groups
            c_full = lay.input_shape[0]
            frac_in = first[0] / c_full
            c_kept = c_full if frac_in >= 1 else _kept_units(c_full, groups, frac_in)
            m_kept = (groups * lp.scheme.kept_units(full // groups, lp.density)
                      if lp.scheme.removes_units and lp.density < 1 else full)
            run = lay if c_kept == c_full else _shrink(lay, full, c_kept)
            out[lay.name] = LayerShape(run, m_kept / full, c_kept / c_full)
            kept[lay.name] = m_kept
        elif isinstance(op, Flatten):
            kept[lay.name] = first[0] * math.prod(lay.input_shape[1:])
        elif isinstance(op, Concat):
            kept[lay.name] = sum(first)
        elif isinstance(op, Add):
            kept[lay.name] = first[0] if len(set(first)) == 1 else min(full, sum(first))
        elif len(first) == 1 and lay.input_shape[0] == full:
            kept[lay.name] = first[0]
        elif isinstance(op, Elementwise) and len(set(first)) == 1 and \
                all(shape[0] == full for shape in lay.input_shapes):
            kept[lay.name] = first[0]          # squeeze-excite's scale: both operands lost them
        else:
            kept[lay.name] = full
    return kept, out
