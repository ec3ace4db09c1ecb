"""Scalpel's policy (Yu et al., ISCA 2017), derived from hwprune's simulators.

For a reference model, a device and an accuracy tolerance, choose per layer among
dense, SIMD-aware weight pruning (groups of ``g`` = the device's SIMD width), node
pruning and fine-grained pruning:

1. **What each scheme can reach.** Each candidate prunes the trained model (magnitude
   criterion, group RMS for SIMD groups as in Scalpel, with AGP retraining) at
   decreasing uniform densities; the lowest density whose test accuracy stays within
   ``tolerance`` of the dense model's is the scheme's achievable density (node: the
   fraction of units kept). Layers a SIMD group does not fit stay dense in that
   candidate. *Simplification:* one density per scheme for all layers, where Scalpel
   searches per layer.
2. **What it buys on the device.** Per layer, the latency simulator gives the scheme's
   latency at that layer's reached density and its break-even density; the energy
   model gives its energy (node pruning: the physically smaller dense network).
3. **Choice.** A scheme that does not beat dense latency (its density is above the
   break-even point) is out; of the rest the fastest wins (ties: lower energy). A layer
   with none stays dense. The reason names the numbers. The class layer cannot be
   node-pruned (its outputs are the classes), though it loses the inputs of removed
   units before it.
4. **Check.** The model is pruned with the mixed choice and retrained. The mix can
   lose more accuracy than each scheme alone; then every pruned layer backs off one
   grid step, up to three times, and the final accuracy is reported beside the
   tolerance either way. The table's speedup and energy ratio are the final model's as
   deployed (:mod:`hwprune.prune.costing`): a layer kept dense after a node-pruned one
   still loses the inputs of the removed units and runs as a smaller dense layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from ..api import device as get_device
from ..cost.energy import network_energy
from ..hardware.profile import DeviceProfile
from ..latency.network import breakeven, layer_latency
from . import models
from .costing import ENERGY_FORMAT, model_cost
from .model import Model
from .schedules import prune

CANDIDATES = ("fine", "simd", "node")
LATENCY_SCHEME = {"dense": "dense", "fine": "csr", "simd": "group-csr", "node": "compact"}
DENSITY_GRID = (0.7, 0.5, 0.35, 0.25, 0.18, 0.12, 0.08, 0.05)
SEARCH_EPOCHS = 8
MAX_BACKOFF = 3


def _step_up(d: float) -> float:
    """The next grid density above ``d`` (1 above the grid's top)."""
    higher = [x for x in DENSITY_GRID if x > d + 1e-9]
    return min(higher) if higher else 1.0


@dataclass(frozen=True)
class ScalpelResult:
    """``layers``: one row per prunable layer with columns ``layer``, ``scheme``
    (dense/fine/simd/node), ``density`` (kept weight fraction of the final model),
    ``speedup`` (simulated dense latency / chosen latency), ``energy_ratio`` (simulated
    chosen energy / dense energy), ``reason``, and per candidate ``<s>_density``,
    ``<s>_speedup``, ``<s>_breakeven``. ``search``: the accuracy of every
    (scheme, density) tried. Accuracies are fractions of the test set."""

    model: str
    device: str
    group: int
    tolerance: float
    dense_accuracy: float
    final_accuracy: float
    layers: pd.DataFrame
    search: pd.DataFrame
    pruned: Model


def _candidate_plan(model: Model, scheme: str, g: int) -> tuple[dict, dict]:
    """Per-layer granularity and group width of a candidate; a SIMD group that does not
    fit a layer leaves it dense (fine at density 1)."""
    gran, group = {}, {}
    for lay in model.prunable():
        if scheme == "simd":
            row = int(np.prod(lay.weight.shape[1:]))
            gran[lay.name], group[lay.name] = ("simd", g) if g <= row else ("fine", None)
        else:
            gran[lay.name], group[lay.name] = scheme, None
    return gran, group


def _search(name: str, scheme: str, g: int, tolerance: float, seed: int, dense_acc: float,
            progress=None):
    """Lowest grid density within tolerance; returns (density, pruned model, rows).
    Cached per process (the search does not depend on the device beyond ``g``)."""
    if progress:
        progress(f"{name}: how far {scheme}{f' (g={g})' if scheme == 'simd' else ''} prunes "
                 f"within the tolerance ...")
    return _search_cached(name, scheme, g, tolerance, seed, dense_acc)


@lru_cache(maxsize=64)
def _search_cached(name: str, scheme: str, g: int, tolerance: float, seed: int, dense_acc: float):
    rows, best = [], (1.0, None)
    for d in DENSITY_GRID:
        model, data = models.trained(name, seed)
        gran, group = _candidate_plan(model, scheme, g)
        density = {n: (d if gran[n] == scheme else 1.0) for n in gran}
        result = prune(model, data, "magnitude", gran, density, "agp", group, SEARCH_EPOCHS,
                       models.spec(name).recipe, seed)
        ok = result.accuracy_after >= dense_acc - tolerance
        rows.append({"scheme": scheme, "density": d, "accuracy": result.accuracy_after, "within": ok})
        if not ok:
            break
        best = (d, result.model)
    return best[0], best[1], rows


def scalpel(name: str, dev: str | DeviceProfile, tolerance: float = 0.01, seed: int = 0,
            progress=None) -> ScalpelResult:
    """Run the policy on reference model ``name`` for device ``dev`` (module doc)."""
    from ..errors import InputError

    if not 0 <= tolerance < 1:
        raise InputError(f"tolerance must be in [0, 1), got {tolerance}")
    dev = get_device(dev) if not isinstance(dev, DeviceProfile) else dev
    g = max(int(dev.compute.simd_lanes), 1)
    base, data = models.trained(name, seed)
    dense_acc = base.accuracy(data.x_test, data.y_test)
    net = models.to_network(base)
    layers = {lay.name: lay for lay in net.weighted_layers}
    dense_energy = network_energy(net, dev).set_index("layer")["energy_pj"]
    be = breakeven(net, dev, tuple(LATENCY_SCHEME[s] for s in CANDIDATES)).set_index(["layer", "scheme"])

    reached, searches = {}, []
    for scheme in CANDIDATES:
        d, pruned, rows = _search(name, scheme, g, tolerance, seed, dense_acc, progress)
        searches += rows
        reached[scheme] = pruned
    # A layer's energy depends on its own density only: one estimate per scheme.
    scheme_energy = {}
    for scheme, pruned in reached.items():
        if pruned is None:
            continue
        if scheme == "node":
            est = network_energy(models.to_network(pruned, compact=True), dev)
        else:
            est = network_energy(net, dev, densities={n: (float(pruned.layer(n).mask.mean()), 1.0)
                                                      for n in layers},
                                 weight_format=ENERGY_FORMAT[scheme])
        scheme_energy[scheme] = est.set_index("layer")["energy_pj"]
    table = []
    choice_gran, choice_group, choice_density = {}, {}, {}
    for lay in base.prunable():
        lname = lay.name
        dense_s = layer_latency(layers[lname], dev, "dense", 1.0).seconds
        row = {"layer": lname}
        options = []
        for scheme in CANDIDATES:
            pruned = reached[scheme]
            if pruned is None:
                row.update({f"{scheme}_density": 1.0, f"{scheme}_speedup": 1.0})
                continue
            d = float(pruned.layer(lname).mask.mean())
            fits = scheme != "simd" or g <= int(np.prod(lay.weight.shape[1:]))
            if scheme == "node" and lay is base.prunable()[-1]:
                fits = False        # the class layer keeps its outputs
            lat = layer_latency(layers[lname], dev, LATENCY_SCHEME[scheme], d).seconds if d < 1 else dense_s
            e = float(scheme_energy[scheme][lname])
            key = (lname, LATENCY_SCHEME[scheme])
            bkv = float(be.loc[key, "breakeven_density"]) if key in be.index else float("nan")
            row.update({f"{scheme}_density": d, f"{scheme}_speedup": dense_s / lat,
                        f"{scheme}_breakeven": bkv})
            if d < 1 and fits:
                options.append((lat, e, scheme, d, bkv))
        faster = [o for o in options if o[0] < dense_s]
        if faster:
            lat, e, scheme, d, bkv = min(faster, key=lambda o: (o[0], o[1]))
            others = ", ".join(f"{o[2]} {dense_s / o[0]:.2f}x" for o in options if o[2] != scheme)
            reason = (f"{scheme} reached density {d:.3f} in its search, below its break-even "
                      f"{'never' if np.isnan(bkv) else f'{bkv:.3f}'}, and was fastest there "
                      f"({dense_s / lat:.2f}x{'; ' + others if others else ''})")
        else:
            lat, e, scheme, d = dense_s, float(dense_energy[lname]), "dense", 1.0
            reason = "dense: " + (", ".join(
                f"{o[2]} at {o[3]:.3f} is not faster than dense (break-even "
                f"{'never' if np.isnan(o[4]) else f'{o[4]:.3f}'})" for o in options)
                or "no scheme prunes this layer within the tolerance")
        row.update({"scheme": scheme, "target_density": d, "speedup": dense_s / lat,
                    "energy_ratio": e / float(dense_energy[lname]), "reason": reason})
        table.append(row)
        choice_gran[lname] = {"dense": "fine"}.get(scheme, scheme)
        choice_group[lname] = g if scheme == "simd" else None
        choice_density[lname] = d
    # Units of node-pruned layers: the density reached was the weight density; prune to
    # the same fraction of units (the layer's own rows).
    for lname, gran in choice_gran.items():
        if gran == "node":
            lay = reached["node"].layer(lname)
            choice_density[lname] = float(lay.mask.reshape(lay.mask.shape[0], -1).any(axis=1).mean())
    # The mix can lose more than each scheme alone: back off one grid step per try.
    final, tries = None, 0
    while True:
        model, data = models.trained(name, seed)
        final = prune(model, data, "magnitude", choice_gran, choice_density, "agp", choice_group,
                      SEARCH_EPOCHS, models.spec(name).recipe, seed)
        if final.accuracy_after >= dense_acc - tolerance or tries == MAX_BACKOFF:
            break
        tries += 1
        choice_density = {n: _step_up(d) for n, d in choice_density.items()}
        if progress:
            progress(f"{name}: the mix lost {dense_acc - final.accuracy_after:.4f}; backing off "
                     f"one density step (try {tries} of {MAX_BACKOFF})")
    # The table reports the final model as deployed (hwprune.prune.costing): its
    # densities (a layer after a node-pruned one also loses the removed units' inputs,
    # and runs as a smaller layer), latency and energy at them.
    cost = model_cost(final.model, dev, {row["layer"]: row["scheme"] for row in table}) \
        .set_index("layer")
    for row in table:
        lname = row["layer"]
        row["density"] = float(final.model.layer(lname).mask.mean())
        dense_s = layer_latency(layers[lname], dev, "dense", 1.0).seconds
        row["speedup"] = dense_s / float(cost.loc[lname, "latency_s"])
        row["energy_ratio"] = float(cost.loc[lname, "energy_pj"]) / float(dense_energy[lname])
    df = pd.DataFrame(table).drop(columns=["target_density"])
    first = ["layer", "scheme", "density", "speedup", "energy_ratio", "reason"]
    df = df[first + [c for c in df.columns if c not in first]]
    return ScalpelResult(name, dev.id, g, tolerance, dense_acc, final.accuracy_after, df,
                         pd.DataFrame(searches), final.model)
