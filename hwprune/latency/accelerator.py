"""Accelerator latency from the energy model's mapping: array utilization and the
bandwidth of every level.

The mapping the energy model chose (:func:`hwprune.cost.energy.layer_cost`) unrolls
some loop dimensions across the PE array; ``PEs used = product of its spatial
factors``. Then

* ``compute = executed MACs / (PEs used x macs_per_unit_per_cycle)``, where executed
  MACs are all MACs of the (possibly node-pruned, hence smaller) layer unless the
  profile's ``zero_weights`` / ``zero_activations`` is ``skip``: zero *gating* saves
  energy, not cycles;
* every storage level and the NoC move the element reads and writes the mapping
  implies: ``level = elements x element bytes / (bandwidth_bytes_per_cycle x instances)``;
* ``cycles = max(compute, levels)`` (double-buffered: transfers overlap compute).

Simplifications: no pipeline fill or drain, no stalls for tile switches, index bytes
of compressed weights are not added to the transfer time.
"""

from __future__ import annotations

import dataclasses
import math

from ..cost.dataflow import get_dataflow
from ..cost.densities import Density
from ..cost.energy import layer_cost
from ..cost.loopnest import LoopNest
from ..hardware.profile import DeviceProfile
from ..schemes import Kernel
from ..workload.layer import Layer
from .estimate import LatencyEstimate, make_estimate
from .work import KernelWork


def accelerator_latency(work: KernelWork, layer: Layer, dev: DeviceProfile,
                        act_density: float = 1.0) -> LatencyEstimate:
    nest = LoopNest.of(layer, 1)
    weight_density = work.density
    if work.kernel is Kernel.COMPACT:
        bounds = list(nest.bounds)
        bounds[1] = max(1, work.rows // nest.groups)
        nest = dataclasses.replace(nest, bounds=tuple(bounds))
        weight_density = 1.0
    cost = layer_cost(nest, dev, get_dataflow(dev.dataflow, dev),
                      Density(weight_density, act_density), work.scheme.storage, work.group)
    executed = float(nest.macs)
    if dev.sparsity.zero_weights == "skip":
        executed *= weight_density
    if dev.sparsity.zero_activations == "skip":
        executed *= act_density
    pes = math.prod(cost.mapping.spatial)
    parts = {"compute": executed / (pes * dev.compute.macs_per_unit_per_cycle)}
    storage = [lvl for lvl in dev.memory if lvl.kind != "noc"]
    noc = [lvl for lvl in dev.memory if lvl.kind == "noc"]
    traffic = (cost.reads + cost.writes).sum(axis=1) * dev.element_bytes
    for lvl, nbytes in zip(storage + noc, traffic):
        parts[lvl.name] = nbytes / (lvl.bandwidth_bytes_per_cycle * lvl.instances)
    bound = max(parts, key=parts.get)
    return make_estimate(dev, max(parts.values()), bound, parts)
