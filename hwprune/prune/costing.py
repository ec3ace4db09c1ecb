"""What a pruned reference model costs on a device: energy, latency and bytes per layer.

The model is costed as it would be deployed:

* **Physically smaller layers.** Output units with no weight left (node or filter
  pruning, or a row emptied by fine pruning) are removed, together with the next
  layer's inputs that read them (they would only multiply zeros: a removed unit's bias
  is masked too). The costs come from that compact network (``to_network(compact=True)``).
* **Stored format per layer** follows how the layer was pruned: ``fine`` as CSR,
  ``simd`` as SIMD-group CSR (``g`` = the device's SIMD width), ``vector``/``kernel`` as
  group CSR with kernel-row / whole-kernel groups (CSR on fully connected layers, where
  those groups are single weights), ``node``/``filter``/``dense`` as dense. A layer whose
  weights are all kept in the compact shape is dense whatever its scheme.
* **Energy** is the loop-nest model at the layer's weight density in that format
  (*simplification:* ``vector``/``kernel`` are priced as CSR there, with one index per
  weight, which over-counts their index traffic); **latency** the device class's
  latency model; **bytes** the exact storage of values, indices and row pointers
  (:mod:`hwprune.sparse.storage`), with the device's element and index widths.
"""

from __future__ import annotations

from typing import Mapping

import pandas as pd

from ..cost.dataflow import get_dataflow
from ..cost.densities import Density
from ..cost.energy import layer_cost
from ..cost.loopnest import LoopNest
from ..hardware.profile import DeviceProfile
from ..latency.network import layer_latency
from ..sparse.storage import storage_cost
from .model import Model
from .models import to_network

LATENCY_SCHEME = {"fine": "csr", "simd": "group-csr", "vector": "vector", "kernel": "kernel"}
ENERGY_FORMAT = {"fine": "csr", "simd": "simd-group", "vector": "csr", "kernel": "csr"}


def model_cost(model: Model, dev: DeviceProfile, schemes: str | Mapping[str, str]) -> pd.DataFrame:
    """One row per prunable layer: ``layer``, ``scheme`` (as costed), ``rows``/``cols``
    (compact weight matrix), ``density`` (kept fraction of the compact matrix),
    ``energy_pj``, ``latency_s`` (batch 1), ``bytes`` (values + indices + pointers)."""
    net = to_network(model, compact=True)
    layers = {lay.name: lay for lay in net.weighted_layers}
    flow = get_dataflow(dev.dataflow, dev)
    rows = []
    for lay in model.prunable():
        scheme = schemes if isinstance(schemes, str) else schemes[lay.name]
        wl = layers[lay.name]
        nest = LoopNest.of(wl, 1)
        _, m, c, _, _, r, s = nest.bounds
        compact_size = m * c * r * s * nest.groups
        kept = int(lay.mask.sum())
        density = min(kept / compact_size, 1.0)
        is_fc = lay.weight.ndim == 2
        if scheme in ("vector", "kernel") and is_fc:
            scheme = "fine"
        if scheme not in LATENCY_SCHEME or density >= 1.0:
            scheme = "dense"
        fmt = ENERGY_FORMAT.get(scheme, "dense")
        cost = layer_cost(nest, dev, flow, Density(density, 1.0), fmt)
        energy = float(cost.level_pj.sum()) + cost.operand_pj["compute_pj"]
        lat = layer_latency(wl, dev, LATENCY_SCHEME.get(scheme, "dense"), density).seconds
        group = {"simd": dev.compute.simd_lanes, "vector": s, "kernel": r * s}.get(scheme, 1)
        store = storage_cost({"dense": "dense", "fine": "csr"}.get(scheme, "simd-group"),
                             m * nest.groups, c * r * s, density, dev.element_bytes,
                             dev.sparsity.index_bits, group=max(int(group), 1))
        rows.append({"layer": lay.name, "scheme": scheme, "rows": m * nest.groups, "cols": c * r * s,
                     "density": density, "energy_pj": energy, "latency_s": lat,
                     "bytes": float(store.total_bytes)})
    return pd.DataFrame(rows)
