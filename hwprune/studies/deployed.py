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
    pooling, batch norm, flatten and residual adds)."""
    adapter = as_adapter(model)
    net = adapter.network()
    layers = adapter.prunable()
    reads = {lay.name: np.ones(lay.mask.shape, dtype=bool) for lay in layers}
    entries: dict[str, LayerPlan] = {}
    for i, lay in enumerate(layers):
        s = scheme(schemes if not isinstance(schemes, Mapping) else schemes[lay.name])
        s = s.on(lay.weight.ndim == 2)
        mask = lay.mask.astype(bool)
        units = mask.reshape(mask.shape[0], -1).any(axis=1)
        if s.removes_units and i < len(layers) - 1:
            density = float(units.mean())
            for consumer, read in adapter.consumer_masks(lay.name, units).items():
                reads[consumer] = reads[consumer] & read
        else:
            r = reads[lay.name]
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
