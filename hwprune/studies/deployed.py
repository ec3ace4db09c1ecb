"""A pruned reference model as it would be deployed: its network and its :class:`Plan`.

The masks of a pruned :class:`~hwprune.prune.model.Model` become a plan for its
unpruned network (:func:`hwprune.prune.models.to_network`), which
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
from ..prune.model import Model, expand_units
from ..prune.models import to_network
from ..schemes import DENSE, Scheme, scheme
from ..workload.network import Network


def plan_of(model: Model, schemes: str | Scheme | Mapping[str, str | Scheme]) -> tuple[Network, Plan]:
    """The unpruned network of ``model`` and the plan its masks realize, each layer
    pruned by ``schemes`` (one scheme, or one per prunable layer)."""
    net = to_network(model)
    layers = model.prunable()
    entries: dict[str, LayerPlan] = {}
    units_before: np.ndarray | None = None
    for lay in layers:
        s = scheme(schemes if not isinstance(schemes, Mapping) else schemes[lay.name])
        s = s.on(lay.weight.ndim == 2)
        mask = lay.mask.astype(bool)
        reads = (expand_units(lay, units_before) if units_before is not None
                 else np.ones_like(mask, dtype=bool))
        units = mask.reshape(mask.shape[0], -1).any(axis=1)
        if s.removes_units and lay is not layers[-1]:
            density = float(units.mean())
            units_before = units
        else:
            density = float((mask & reads).sum() / max(int(reads.sum()), 1))
            units_before = None
        if density < 1.0 and s.prunes:
            entries[lay.name] = LayerPlan(s, density)
        else:
            entries[lay.name] = LayerPlan(DENSE, 1.0)
    return net, Plan(entries)


def evaluate_model(model: Model, dev: DeviceProfile,
                   schemes: str | Scheme | Mapping[str, str | Scheme], batch: int = 1) -> Evaluation:
    """:func:`evaluate` of the model as deployed (module docstring)."""
    net, plan = plan_of(model, schemes)
    return evaluate(net, dev, plan, batch)
