"""Granularity per layer from the simulators alone, at a density the user expects.

For a network with no trained weights here (a built-in network, an ONNX file, an
imported PyTorch module), how far each scheme can prune within an accuracy tolerance
cannot be measured; :mod:`hwprune.prune.scalpel` does that for the reference models.
This module asks the other half of Scalpel's question: if every scheme reached the
given ``density``, which one runs fastest on the device? Candidates are fine-grained
(CSR), SIMD-aware (g = the device's SIMD width; only where a group fits a weight row)
and node pruning (``density`` of the units kept, a physically smaller dense layer; not
on the last layer, whose outputs are the classes). A scheme slower than dense at that
density (above its break-even point) is out; the fastest of the rest wins (ties: lower
energy), else the layer stays dense.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from ..cost.dataflow import get_dataflow
from ..cost.densities import Density
from ..cost.energy import layer_cost
from ..cost.loopnest import LoopNest
from ..errors import InputError
from ..hardware.profile import DeviceProfile
from ..latency.network import breakeven, layer_latency
from ..latency.work import KernelShape
from ..workload.network import Network

SCHEMES = {"fine": ("csr", "csr"), "simd": ("group-csr", "simd-group"), "node": ("compact", "dense")}


def _energy(nest: LoopNest, dev: DeviceProfile, flow, density: float, fmt: str) -> float:
    cost = layer_cost(nest, dev, flow, Density(density, 1.0), fmt)
    return float(cost.level_pj.sum()) + cost.operand_pj["compute_pj"]


def recommend(net: Network, dev: DeviceProfile, density: float) -> pd.DataFrame:
    """One row per conv/fc layer: ``layer``, ``kind``, ``scheme``, ``density``,
    ``speedup`` (dense latency / chosen, simulated), ``energy_ratio`` (chosen / dense
    energy, simulated), ``reason``, then ``<scheme>_speedup`` and ``<scheme>_breakeven``
    for fine, simd and node."""
    if not 0 < density <= 1:
        raise InputError(f"density must be in (0, 1], got {density}")
    flow = get_dataflow(dev.dataflow, dev)
    g = max(int(dev.compute.simd_lanes), 1)
    be = breakeven(net, dev, tuple(s for s, _ in SCHEMES.values())).set_index(["layer", "scheme"])
    last = net.weighted_layers[-1].name
    rows = []
    for layer in net.weighted_layers:
        nest = LoopNest.of(layer, 1)
        dense_s = layer_latency(layer, dev, "dense", 1.0).seconds
        dense_e = _energy(nest, dev, flow, 1.0, "dense")
        row = {"layer": layer.name, "kind": layer.kind}
        options = []
        for scheme, (lat_scheme, fmt) in SCHEMES.items():
            fits = not (scheme == "simd" and g > KernelShape.of(layer).cols) and \
                not (scheme == "node" and layer.name == last)
            key = (layer.name, lat_scheme)
            bkv = float(be.loc[key, "breakeven_density"]) if key in be.index else float("nan")
            if not fits:
                row.update({f"{scheme}_speedup": float("nan"), f"{scheme}_breakeven": bkv})
                continue
            lat = layer_latency(layer, dev, lat_scheme, density).seconds
            if scheme == "node":
                n, m, *rest = nest.bounds
                energy = _energy(replace(nest, bounds=(n, max(1, round(m * density)), *rest)), dev, flow,
                                 1.0, "dense")
            else:
                energy = _energy(nest, dev, flow, density, fmt)
            row.update({f"{scheme}_speedup": dense_s / lat, f"{scheme}_breakeven": bkv})
            options.append((lat, energy, scheme, bkv))
        faster = [o for o in options if o[0] < dense_s]
        if faster:
            lat, energy, scheme, bkv = min(faster, key=lambda o: (o[0], o[1]))
            others = ", ".join(f"{o[2]} {dense_s / o[0]:.2f}x" for o in options if o[2] != scheme)
            reason = (f"{scheme} at {density:g} is below its break-even "
                      f"{'never' if np.isnan(bkv) else f'{bkv:.3f}'} and fastest "
                      f"({dense_s / lat:.2f}x{'; ' + others if others else ''})")
            chosen_density = density
        else:
            lat, energy, scheme, chosen_density = dense_s, dense_e, "dense", 1.0
            reason = "dense: " + ", ".join(
                f"{o[2]} is not faster at {density:g} (break-even "
                f"{'never' if np.isnan(o[3]) else f'{o[3]:.3f}'})" for o in options)
        row.update({"scheme": scheme, "density": chosen_density, "speedup": dense_s / lat,
                    "energy_ratio": energy / dense_e, "reason": reason})
        rows.append(row)
    df = pd.DataFrame(rows)
    first = ["layer", "kind", "scheme", "density", "speedup", "energy_ratio", "reason"]
    return df[first + [c for c in df.columns if c not in first]]
