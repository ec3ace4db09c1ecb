"""A pruned reference model as it would be deployed: its network and its :class:`Plan`.

The masks of a pruned model (a reference :class:`~hwprune.prune.model.Model`, or any
:class:`~hwprune.prune.adapter.ModelAdapter`, e.g. a torch module's) become a plan for
its unpruned network (``adapter.network()``), which
:func:`hwprune.evaluate.evaluate` then prices:

* a layer pruned by a scheme that removes units (``filter``, ``node``) keeps the
  units that still have a weight; its density is their fraction;
* any other layer's density is its kept weights over the weights it still reads (the
  inputs of units removed before it are gone, so they count neither way);
* a layer whose weights are all kept there runs ``dense``, whatever it was pruned with.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..errors import InputError
from ..evaluate import Evaluation, LayerPlan, Plan, evaluate
from ..hardware.profile import DeviceProfile
from ..prune.adapter import ModelAdapter, as_adapter
from ..prune.model import Model
from ..schemes import DENSE, Scheme, scheme
from ..workload.network import Network


def plan_of(model: Model | ModelAdapter,
            schemes: str | Scheme | Mapping[str, str | Scheme]) -> tuple[Network, Plan]:
    """The unpruned network of ``model`` and the plan its masks realize, each layer
    pruned by ``schemes`` (one scheme, or one per prunable layer).

    ``model``: a pruned reference :class:`~hwprune.prune.model.Model`, or any
    :class:`~hwprune.prune.adapter.ModelAdapter` (a pruned torch module's
    :class:`~hwprune.prune.torch_model.TorchAdapter`: its network is ``from_torch``'s).
    The inputs a layer no longer reads are those of the units removed in the layers
    feeding it (``adapter.consumer_masks``: for a torch module, through activations,
    pooling, batch norm, flatten and residual adds). Through an add, an input is gone
    only when every branch's producer removed it (the union of what they keep, as
    :func:`~hwprune.workload.torch_import.compact` keeps it). *Simplification*: an add
    fed straight by the network's input (no conv/fc before it) is not seen."""
    adapter = as_adapter(model)
    net = adapter.network()
    layers = adapter.prunable()
    used = {lay.name: scheme(schemes if not isinstance(schemes, Mapping) else schemes[lay.name])
            .on(lay.weight.ndim == 2) for lay in layers}
    reads: dict[str, np.ndarray] = {}
    for lay in layers[:-1]:
        units = lay.mask.reshape(lay.mask.shape[0], -1).astype(bool).any(axis=1)
        if used[lay.name].removes_units:
            found = adapter.consumer_masks(lay.name, units)
        else:
            try:      # its units all reach the layers it feeds (through an add, they count)
                found = adapter.consumer_masks(lay.name, np.ones_like(units))
            except InputError:
                continue
        for consumer, read in found.items():
            # An input reaching a layer through a residual add is gone only when every
            # branch of the add removed it: the union of what each producer keeps.
            reads[consumer] = reads[consumer] | read if consumer in reads else np.asarray(read)
    entries: dict[str, LayerPlan] = {}
    for i, lay in enumerate(layers):
        s = used[lay.name]
        mask = lay.mask.astype(bool)
        if s.removes_units and i < len(layers) - 1:
            density = float(mask.reshape(mask.shape[0], -1).any(axis=1).mean())
        else:
            r = reads.get(lay.name, np.ones(mask.shape, dtype=bool))
            density = float((mask & r).sum() / max(int(r.sum()), 1))
        if density < 1.0 and s.prunes:
            entries[lay.name] = LayerPlan(s, density)
        else:
            entries[lay.name] = LayerPlan(DENSE, 1.0)
    return net, Plan(entries)


def evaluate_model(model: Model | ModelAdapter, dev: DeviceProfile,
                   schemes: str | Scheme | Mapping[str, str | Scheme], batch: int = 1) -> Evaluation:
    """:func:`evaluate` of the model as deployed (module docstring)."""
    net, plan = plan_of(model, schemes)
    return evaluate(net, dev, plan, batch)
