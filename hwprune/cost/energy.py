"""Energy per layer by memory level and operand, dense or pruned.

For each conv/fc layer: build its loop nest, turn its densities into what sparsity does
to the data movement (:class:`SparsityParams`), find the cheapest legal mapping
(:mod:`hwprune.cost.search`) and price every access:

    energy = sum over levels and operands of (reads x read cost + writes x write cost)
             + NoC transfers x transfer cost + executed MACs x MAC cost

Sparsity (per the device's ``[sparsity]`` table, see docs/energy-model.md):

* Weights stored dense: zero weights cost like any other unless the device gates or
  skips them (``zero_weights``). Stored compressed (``csr``, ``rle``, ``simd-group``):
  zeros are neither stored, moved nor multiplied, and every level the weights cross
  is charged their index and pointer bytes.
* A MAC with a zero input activation is not charged, nor are its operand reads and
  partial-sum update at the innermost level, if the device gates or skips zeros
  (``zero_activations``).
* Activations stored run-length coded (``activation_format = "rle"``) shrink the input
  reads from the outermost memory, and the final output writes there at the next
  layer's input density, where the output is stored as that layer reads it
  (:func:`hwprune.workload.passes.stored_as_read`); else outputs are written dense.

Every other layer (normalization, activations, element-wise arithmetic, pooling,
data movement) is one pass over its tensors (:mod:`hwprune.workload.passes`), priced by
:mod:`hwprune.cost.passes`: a batch norm after a conv/fc layer is folded into it (no
cost), a point-wise activation after one is fused into its output stage (its
operations only), views cost nothing, and copies and streams read their inputs from
and write their outputs to the outermost memory. The table has one row per layer, and
its totals are the sums of its rows.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from ..checks import check_batch
from ..hardware.profile import OPERANDS, DeviceProfile
from ..sparse.storage import activation_ratio, parse_format, storage_cost
from ..workload.layer import Layer
from ..workload.network import Network
from ..workload.ops import CATEGORIES
from ..workload.passes import KERNEL, PassWork, pass_works, stored_as_read
from .dataflow import Dataflow, get_dataflow
from .densities import Density, resolve_densities
from .loopnest import LoopNest
from .passes import pass_accesses, pass_fits
from .search import Mapping, SparsityParams, device_arrays, find_mapping, price_mapping

OPERAND_COLUMNS = ("weights_pj", "index_pj", "inputs_pj", "outputs_pj", "compute_pj")


@dataclass(frozen=True)
class LayerCost:
    """Energy of one layer (all groups, whole batch).

    Attributes:
        macs: MACs of the dense layer.
        ops: element operations of a pass (:mod:`hwprune.workload.passes`); 0 for a kernel.
        executed_macs: MACs whose energy is spent (zero operands skipped or gated).
        reads, writes: element reads/writes, shape ``(levels + noc, 3)`` (weights,
            inputs, outputs); the NoC row (last, if the device has one) holds transfers.
        level_pj: energy per memory level (storage levels, then the NoC), pJ.
        operand_pj: energy of weights, indices, inputs, outputs and MACs, pJ.
        mapping: the mapping of one group (None for a pass, which has no loop nest).
        fits_memory: whether the layer's tensors fit the outermost memories holding
            them (weights stored as given; inputs and outputs dense).
    """

    macs: int
    executed_macs: float
    reads: np.ndarray
    writes: np.ndarray
    level_pj: np.ndarray
    operand_pj: dict[str, float]
    mapping: Mapping | None
    fits_memory: bool
    ops: float = 0.0

    @property
    def energy_pj(self) -> float:
        return float(self.level_pj.sum()) + self.operand_pj["compute_pj"]


def sparsity_params(nest: LoopNest, dev: DeviceProfile, density: Density,
                    weight_format: str, group: int | None = None) -> tuple[SparsityParams, float, float]:
    """What ``density`` does to one layer on ``dev`` with ``weight_format`` (``group``:
    weights per group of ``simd-group`` storage; default the device's SIMD lanes).

    Returns the parameters and the value and index byte ratios of the stored weights
    (per dense byte).
    """
    support = dev.sparsity
    eb = dev.element_bytes
    _, m, c, _, _, r, s = nest.bounds
    kind, pattern = parse_format(weight_format)
    cost = storage_cost(weight_format, m, c * r * s, density.weight, eb, support.index_bits,
                        group=group or dev.compute.simd_lanes)
    weight = density.weight
    if kind == "nm":       # every value slot is stored and multiplied, kept or not
        weight = pattern[0] / pattern[1]
    if kind == "dense":
        w_exec = weight if support.zero_weights != "none" else 1.0
        index_per_mac = 0.0
    else:
        w_exec = weight
        index_per_mac = cost.index_bytes / cost.value_bytes
    a_exec = density.act if support.zero_activations != "none" else 1.0
    skips = kind != "dense" or support.zero_weights == "skip"
    group_weights = {"simd-group": float(group or dev.compute.simd_lanes),
                     "block": float(pattern[0] * pattern[1])}.get(kind, 1.0)
    params = SparsityParams(
        executed=w_exec * a_exec,
        weight_ratio=cost.value_ratio + cost.index_ratio,
        index_per_mac=index_per_mac,
        input_top_ratio=activation_ratio(support.activation_format, density.act, eb,
                                         support.index_bits),
        group_weights=group_weights,
        group_keep=weight if skips else 1.0,
        output_top_ratio=activation_ratio(support.activation_format, density.out, eb,
                                          support.index_bits),
    )
    return params, cost.value_ratio, cost.index_ratio


LADDER = (1.0,) + tuple(2.0 ** (-k / 2) for k in range(1, 15))
"""Densities at which mappings are searched: 1 and two per octave down to 2^-7."""


@lru_cache(maxsize=8192)
def _ladder_mapping(nest: LoopNest, dev: DeviceProfile, flow: Dataflow, weight_format: str,
                    weight: float, act: float, group: int | None = None) -> Mapping:
    """The mapping searched at ladder densities (``weight``, ``act``); a pruned point
    starts from the dense point's mapping too."""
    params = sparsity_params(nest, dev, Density(weight, act), weight_format, group)[0]
    if weight == 1.0 and act == 1.0:
        return find_mapping(nest, dev, flow, params)
    seed = _ladder_mapping(nest, dev, flow, weight_format, 1.0, 1.0, group)
    return find_mapping(nest, dev, flow, params, seed)


def _rungs(value: float, matters: bool) -> list[float]:
    return [g for g in LADDER if g >= value * (1 - 1e-12)] if matters else [1.0]


@lru_cache(maxsize=4096)
def _mapping(nest: LoopNest, dev: DeviceProfile, flow: Dataflow, density: Density,
             weight_format: str, group: int | None = None) -> Mapping:
    """The cheapest of the ladder mappings at or above ``density`` (in weight and in
    activation density), priced at ``density``.

    A fixed mapping never costs more at a lower density, and a lower density only adds
    ladder points, so energy never increases as either density decreases. A ladder
    axis that does not change the sparsity parameters is skipped.
    """
    params = sparsity_params(nest, dev, density, weight_format, group)[0]
    w_matters = params != sparsity_params(nest, dev, replace(density, weight=1.0), weight_format,
                                          group)[0]
    a_matters = params != sparsity_params(nest, dev, replace(density, act=1.0),
                                          weight_format, group)[0]
    best = None
    for gw in _rungs(density.weight, w_matters):
        for ga in _rungs(density.act, a_matters):
            found = _ladder_mapping(nest, dev, flow, weight_format, gw, ga, group)
            priced = price_mapping(found, nest, dev, params)
            if best is None or priced.energy_pj < best.energy_pj:
                best = priced
    return best


def _access_costs(arrays) -> tuple[np.ndarray, np.ndarray]:
    """Energy per element read and written, shaped (storage levels [+ NoC], operands):
    each operand's own where its partition has one; a NoC transfer is a read."""
    if arrays.noc is None:
        return arrays.rd, arrays.wr
    return (np.vstack([arrays.rd, arrays.noc_pj]),
            np.vstack([arrays.wr, np.zeros(3)]))


def layer_cost(nest: LoopNest, dev: DeviceProfile, flow: Dataflow, density: Density,
               weight_format: str, group: int | None = None) -> LayerCost:
    """Price one layer's loop nest on ``dev``; ``group``: weights per group of
    ``simd-group`` storage (default: the device's SIMD lanes)."""
    arrays = device_arrays(dev)
    params, value_ratio, index_ratio = sparsity_params(nest, dev, density, weight_format, group)
    mapping = _mapping(nest, dev, flow, density, weight_format, group)
    g = nest.groups
    acc = mapping.accesses * g
    k = len(arrays.storage)
    has_noc = arrays.noc is not None
    rows = k + (1 if has_noc else 0)
    reads = np.zeros((rows, 3))
    writes = np.zeros((rows, 3))
    reads[:k] = acc[:k, :, 0]
    writes[:k] = acc[:k, :, 1]
    if has_noc:
        reads[k] = acc[k, :, 0]
    cost_r, cost_w = _access_costs(arrays)
    per_level_op = reads * cost_r + writes * cost_w

    executed = nest.macs * params.executed
    # Split the weight traffic into values and indices.
    weights_total = per_level_op[:, 0].copy()
    w_share_outer = value_ratio / params.weight_ratio
    w_share_inner = 1.0 / (1.0 + params.index_per_mac)
    values = weights_total * w_share_outer
    values[0] = weights_total[0] * w_share_inner
    operand_pj = {
        "weights_pj": float(values.sum()),
        "index_pj": float((weights_total - values).sum()),
        "inputs_pj": float(per_level_op[:, 1].sum()),
        "outputs_pj": float(per_level_op[:, 2].sum()),
        "compute_pj": float(executed * dev.compute.mac_energy_pj),
    }
    return LayerCost(
        macs=nest.macs,
        executed_macs=float(executed),
        reads=reads,
        writes=writes,
        level_pj=per_level_op.sum(axis=1),
        operand_pj=operand_pj,
        mapping=mapping,
        fits_memory=_fits(nest, dev, params.weight_ratio),
    )


def pass_cost(work: PassWork, dev: DeviceProfile, batch: int = 1) -> LayerCost:
    """Price the pass ``work`` of a layer without MACs for ``batch`` samples (see
    :mod:`hwprune.cost.passes`)."""
    reads, writes = pass_accesses(work, dev, batch)
    cost_r, cost_w = _access_costs(device_arrays(dev))
    per_level_op = reads * cost_r + writes * cost_w
    ops = float(work.ops * batch)
    return LayerCost(
        macs=0, executed_macs=0.0, reads=reads, writes=writes,
        level_pj=per_level_op.sum(axis=1),
        operand_pj={"weights_pj": 0.0, "index_pj": 0.0,
                    "inputs_pj": float(per_level_op[:, 1].sum()),
                    "outputs_pj": float(per_level_op[:, 2].sum()),
                    "compute_pj": ops * dev.compute.mac_energy_pj},
        mapping=None, fits_memory=pass_fits(work, dev, batch), ops=ops)


def network_costs(net: Network, dev: DeviceProfile, flow: Dataflow, densities: dict[str, Density],
                  weight_format: str, batch: int = 1):
    """``(layer, density, runs_as, cost)`` for every layer of ``net`` in order: conv, fc
    and matmul layers priced from their loop nests at their density, the others as
    passes."""
    passes = pass_works(net)
    next_reader = stored_as_read(net, passes)
    kernels = {layer.name: (LoopNest.of(layer, batch), _read_density(layer, densities, next_reader))
               for layer in net.layers if layer.name not in passes}
    _search_ahead(kernels.values(), dev, flow, weight_format)
    for layer in net.layers:
        if layer.name in passes:
            work = passes[layer.name]
            yield layer, Density(), work.runs_as, pass_cost(work, dev, batch)
        else:
            nest, density = kernels[layer.name]
            yield layer, density, KERNEL, layer_cost(nest, dev, flow, density, weight_format)


def _read_density(layer: Layer, densities: dict[str, Density],
                  next_reader: dict[str, str]) -> Density:
    """``layer``'s density, with the activation density of the layer that reads its
    outputs (``Density.out``)."""
    density = densities.get(layer.name, Density())
    reader = densities.get(next_reader.get(layer.name, ""), Density())
    return Density(density.weight, density.act, reader.act)


SEARCH_THREADS = min(4, os.cpu_count() or 1)
"""Threads that search distinct layers' mappings at once (the numba search releases
the GIL; each layer's search is deterministic, so results do not depend on it)."""


def _search_ahead(kernels, dev: DeviceProfile, flow: Dataflow, weight_format: str) -> None:
    """Fill the mapping cache for every distinct (loop nest, density) of a network, on
    :data:`SEARCH_THREADS` threads."""
    todo = list(dict.fromkeys(kernels))
    if SEARCH_THREADS <= 1 or len(todo) < 2:
        return
    with ThreadPoolExecutor(SEARCH_THREADS) as pool:
        list(pool.map(lambda job: _mapping(job[0], dev, flow, job[1], weight_format, None), todo))


def fits_memory(layer: Layer, dev: DeviceProfile, batch: int = 1) -> bool:
    """Whether ``layer``'s dense weights and its inputs and outputs for ``batch`` fit,
    together, the outermost memory level holding each (the ``fits_memory`` column: a
    layer that does not fit is still priced as if it did; spilling is not modelled)."""
    return _fits(LoopNest.of(layer, batch), dev, 1.0)


def _fits(nest: LoopNest, dev: DeviceProfile, weight_ratio: float) -> bool:
    eb = dev.element_bytes
    need = {"weights": nest.weights * eb * weight_ratio, "inputs": nest.inputs * eb,
            "outputs": nest.outputs * eb}
    used: dict[str, float] = {}
    for op in OPERANDS:
        holder = [lvl for lvl in dev.memory if op in lvl.holds][-1]
        used[holder.name] = used.get(holder.name, 0.0) + need[op]
    return all(used[lvl.name] <= lvl.total_bytes for lvl in dev.memory if lvl.name in used)


def _level_rows(dev: DeviceProfile) -> list[tuple[str, int]]:
    """(level name, row in the reads/writes arrays) in the device's memory order; the
    NoC's row is the last one."""
    arrays = device_arrays(dev)
    index = {lvl.name: i for i, lvl in enumerate(arrays.storage)}
    if arrays.noc is not None:
        index[arrays.noc.name] = len(arrays.storage)
    return [(lvl.name, index[lvl.name]) for lvl in dev.memory]


def _word_scale(dev: DeviceProfile) -> np.ndarray:
    """Words per element access, shaped like the reads/writes arrays (levels [+ NoC],
    operands): partial sums may be wider than data (``psum_bits``)."""
    arrays = device_arrays(dev)
    elem = arrays.elem
    if arrays.noc is not None:
        elem = np.vstack([elem, [dev.element_bytes, dev.element_bytes, dev.psum_bytes]])
    levels = list(arrays.storage) + ([arrays.noc] if arrays.noc is not None else [])
    return elem / np.array([lvl.word_bytes for lvl in levels], dtype=float)[:, None]


def level_columns(dev: DeviceProfile) -> list[str]:
    """Names of the levels as they appear in result columns: lower case, innermost first."""
    return [name.lower() for name, _ in _level_rows(dev)]


def _options(net: Network, dev: DeviceProfile, densities: Any, batch: Any,
             dataflow: str | None, weight_format: str | None):
    """Checked (dataflow, weight format, densities) for an energy estimate."""
    batch = check_batch(batch)
    flow = get_dataflow(dataflow or dev.dataflow, dev)
    fmt = weight_format or dev.sparsity.weight_format
    parse_format(fmt)          # an InputError naming the accepted formats
    return flow, fmt, resolve_densities(densities, net)


def network_energy(net: Network, dev: DeviceProfile, densities: Any = None, batch: int = 1,
                   dataflow: str | None = None,
                   weight_format: str | None = None) -> pd.DataFrame:
    """One row per layer of ``net`` on ``dev``: conv/fc layers and matmuls between two
    activations (dense, the right operand priced where the device keeps weights) from
    their loop nests, every other layer as a pass (:mod:`hwprune.cost.passes`); see
    :func:`hwprune.energy`."""
    flow, fmt, dens = _options(net, dev, densities, batch, dataflow, weight_format)
    level_rows = _level_rows(dev)
    scale = _word_scale(dev)
    storage_names = tuple(lvl.name for lvl in device_arrays(dev).storage)
    rows = []
    kind, pattern = parse_format(fmt)
    for layer, density, runs_as, cost in network_costs(net, dev, flow, dens, fmt, int(batch)):
        if kind == "nm" and layer.has_weights:      # N:M stores and runs N/M of every row
            density = replace(density, weight=pattern[0] / pattern[1])
        row: dict[str, Any] = {
            "layer": layer.name,
            "kind": layer.kind,
            "category": CATEGORIES[layer.kind],
            "runs_as": runs_as,
            "macs": cost.macs,
            "effective_macs": cost.executed_macs,
            "ops": cost.ops,
            "weight_density": density.weight,
            "act_density": density.act,
        }
        level_pj = cost.level_pj
        row["energy_pj"] = float(level_pj.sum()) + cost.operand_pj["compute_pj"]
        row["energy_norm"] = row["energy_pj"] / dev.compute.mac_energy_pj
        words = ((cost.reads + cost.writes) * scale).sum(axis=1)
        for name, i in level_rows:
            row[f"{name.lower()}_accesses"] = float(words[i])
            row[f"{name.lower()}_pj"] = float(level_pj[i])
        row.update(cost.operand_pj)
        row["energy_unit"] = dev.energy_unit
        row["fits_memory"] = cost.fits_memory
        row["dataflow"] = flow.name
        row["weight_format"] = fmt
        row["mapping"] = cost.mapping.describe(storage_names) if cost.mapping else f"pass ({runs_as})"
        rows.append(row)
    return pd.DataFrame(rows)


def energy_breakdown(net: Network, dev: DeviceProfile, densities: Any = None, batch: int = 1,
                     dataflow: str | None = None,
                     weight_format: str | None = None) -> pd.DataFrame:
    """Long table: one row per (layer, level, operand) with element reads and writes,
    word accesses and energy (``energy_pj``, in ``energy_unit``: pJ, or MAC-equivalents
    on a normalized device); the NoC row's reads are transfers."""
    flow, fmt, dens = _options(net, dev, densities, batch, dataflow, weight_format)
    cost_r, cost_w = _access_costs(device_arrays(dev))
    scale = _word_scale(dev)
    rows = []
    for layer, _, _, cost in network_costs(net, dev, flow, dens, fmt, int(batch)):
        for name, i in _level_rows(dev):
            lvl = dev.level(name)
            for j, op in enumerate(OPERANDS):
                r, w = cost.reads[i, j], cost.writes[i, j]
                rows.append({
                    "layer": layer.name, "level": lvl.name, "operand": op,
                    "reads": float(r), "writes": float(w),
                    "word_accesses": float((r + w) * scale[i, j]),
                    "energy_pj": float(r * cost_r[i, j] + w * cost_w[i, j]),
                    "energy_unit": dev.energy_unit,
                })
    return pd.DataFrame(rows)

