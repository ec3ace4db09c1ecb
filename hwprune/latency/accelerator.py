"""Accelerator latency: the array's folds for compute, the energy model's mapping for
the traffic of every memory level and the on-chip network.

``cycles = max(compute, levels)``: transfers are double-buffered and overlap compute.

**Compute** (cycles), by the kind of array:

* A *systolic* array (a 2-D PE array whose dataflow is ``weight-stationary`` or
  ``output-stationary``, or ``input-stationary`` when asked for): SCALE-Sim's
  accounting (:mod:`hwprune.latency.systolic`): ``folds = ceil(Sr / rows) *
  ceil(Sc / cols)`` (the last fold of an axis partial, its idle PEs counted), each
  fold ``T`` streaming cycles plus its pipeline fill and drain (``2*rows + cols - 2``
  for ws and is, ``rows + cols - 2`` for os), folds one after another, per group;
  one MAC per PE per cycle (SCALE-Sim's PE). The PE registers and PE-to-PE links
  work inside that schedule (one hop per cycle) and are not separate terms; the level
  that feeds the array (the first above the per-PE level) moves SCALE-Sim's SRAM
  counts (ifmap reads + filter reads + ofmap writes), the levels above it the
  mapping's traffic (below).
* Any other spatial array (Eyeriss's ``row-stationary``): the dataflow's spatial axes
  (:mod:`hwprune.cost.dataflow`) unroll loop dimensions across the array with factors
  ``p_d`` that need not divide the loop bounds ``D_d``; on each axis the product of
  the factors is at most the axis size. A dimension unrolled with ``p_d`` takes
  ``ceil(D_d / p_d)`` folds, the last one partial. Per group::

      compute = prod_spatial ceil(D_d / p_d) * prod_temporal D_d / macs_per_unit_per_cycle
                + (used_rows - 1) + (used_cols - 1)

  The factors are those that minimize it (the dense baseline is the best unrolling
  the dataflow allows). The last term is the pipeline fill and drain: operands enter
  at one edge and partial sums leave at the other, one PE hop per cycle, once per
  group; folds are double-buffered and overlap (an assumption: the next fold's
  operands arrive while the last partial sums drain).

Batch: the loop nest and the operand matrices take the batch (``N = batch``, ``P =
batch x E x F``): a fully connected layer at batch ``b`` is a matrix-matrix product
whose weights, loaded once, serve the whole batch.

Executed MACs: every MAC of the (possibly node-pruned, hence smaller) layer, unless
the profile's ``zero_weights`` / ``zero_activations`` is ``skip``, which scales compute
by the fraction executed (zero *gating* saves energy, not cycles).

**Levels** (cycles): every storage level moves the element reads and writes of the
energy model's mapping (:func:`hwprune.cost.energy.layer_cost`):
``level = elements x element bytes / (bandwidth_bytes_per_cycle x instances)``. The
network-on-chip carries the operands that cross the array boundary and the partial
sums passed between PEs: ``noc = transfers x element bytes / bandwidth``, where

* a weight or input delivered to several PEs is one transfer per ``fanout`` copies
  when the profile's ``latency.noc_multicast_fanout`` says the network multicasts
  (Eyeriss: the global input network delivers one value to every PE whose tag
  matches in one cycle): ``transfers = max(unique values, copies / fanout)``, where
  the unique values are the reads of the level above the array;
* without the key every copy is a transfer (``fanout = 1``);
* partial sums passed from PE to PE are one transfer each; they share the network's
  bandwidth, unless the profile's ``latency.noc_psum_links`` names the point-to-point
  links (each ``line_bytes`` of the network wide) that carry them at once, a separate
  term ``<noc>_links = psum transfers x element bytes / (line_bytes x links)``
  (Eyeriss's local network between vertically adjacent PEs).

**Density.** A mapping found for a higher density runs a sparser layer too, never
moving more (compressed weights shrink, fewer MACs update partial sums). So the
levels' time at density ``d`` is the least, over the mappings found at the energy
model's ladder densities ``>= d`` (:data:`hwprune.cost.energy.LADDER`), and the
mappings found for every storage format at density 1, each priced at ``d`` (so
that a sparse format at density 1 is never faster than dense because its energy
search happened to find a faster mapping; the dense baseline is the fastest of
them). For the compact kernel (node and filter pruning: a smaller layer with ``m_d``
of ``m`` rows) the candidates are the mappings of the layers with ``m_r >= m_d`` rows
at the ladder densities ``r >= d``, their weight and output traffic scaled by
``m_d / m_r`` (the last row tile partly empty) and their input traffic kept (every
kept filter still reads every input). Each candidate's time never increases as ``d``
falls and the set of candidates only grows, so latency never increases as density falls.

**Removed inputs.** A layer whose inputs an earlier layer's node or filter pruning
removed (``C'`` of ``C`` input channels or features per group, given by the unpruned
layer) runs any mapping of a layer with more inputs, its last input tile partly
empty. Its candidates are those of the layers with ``C_r = ceil(r C) >= C'`` inputs
at the ladder fractions ``r``, their weight and input traffic scaled by ``C' / C_r``
and their output traffic kept (every output still sums over its kept inputs). The set
only grows as ``C'`` falls and each candidate's traffic only shrinks, so a layer that
lost more inputs is never slower. *Simplification:* the layer's own mapping is a
candidate only when ``C'`` is a ladder count, so its traffic can be overstated by up
to one ladder step (a factor ``2^(1/2)`` in inputs).

Simplifications: the compute term's unrolling and the energy mapping's unrolling are
chosen separately (the traffic is the energy-optimal mapping's); no stalls for tile
switches beyond double buffering; index bytes of compressed weights cross the levels
as the energy model counts them.
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache

import numpy as np

from ..cost.dataflow import PRESETS, Dataflow, array_axes, get_dataflow
from ..cost.densities import Density
from ..cost.energy import LADDER, layer_cost, sparsity_params
from ..cost.loopnest import DIMS, LoopNest
from ..cost.search import device_arrays, price_mapping
from ..hardware.profile import DeviceProfile
from ..schemes import Kernel, all_schemes
from ..workload.layer import Layer
from .estimate import LatencyEstimate, make_estimate
from .systolic import SYSTOLIC_DATAFLOWS, Gemm, SystolicRun, short_dataflow, systolic_run
from .work import KernelWork

M_DIM = DIMS.index("M")
C_DIM = DIMS.index("C")
W_OP, I_OP, O_OP = 0, 1, 2


def is_systolic(dev: DeviceProfile, dataflow: str | None = None) -> bool:
    """Whether ``dev`` runs ``dataflow`` (default: its own) as a systolic array."""
    flow = dataflow or dev.dataflow
    return dev.compute.array_rows is not None and (
        flow in SYSTOLIC_DATAFLOWS or flow in SYSTOLIC_DATAFLOWS.values())


def _useful_factors(bound: int, limit: int) -> list[int]:
    """Unrolling factors up to ``limit`` that give distinct fold counts of ``bound``:
    the smallest factor for each ``ceil(bound / f)``."""
    return sorted({-(-bound // -(-bound // f)) for f in range(1, min(bound, limit) + 1)})


def _axis_choices(bounds: tuple[int, ...], dims: tuple[str, ...], size: int) -> list[tuple[int, ...]]:
    """Factor vectors (7 dims) for one array axis: products of factors of ``dims`` up to
    ``size``."""
    choices = []
    idx = [DIMS.index(d) for d in dims]
    per_dim = [_useful_factors(bounds[i], size) for i in idx]
    for combo in itertools.product(*per_dim):
        if math.prod(combo) <= size:
            p = [1] * 7
            for i, f in zip(idx, combo):
                p[i] *= f
            choices.append(tuple(p))
    return choices


@lru_cache(maxsize=4096)
def spatial_folds(bounds: tuple[int, ...], spatial: tuple[tuple[str, ...], ...],
                  axes: tuple[int, ...]) -> tuple[float, tuple[int, ...], tuple[int, ...]]:
    """The best unrolling of one group's loop ``bounds`` (N M C E F R S) over an array
    with axis sizes ``axes``, each axis unrolling the dimensions ``spatial[i]``.

    Returns (fold cycles at one MAC per PE per cycle: ``prod ceil(D/p) * prod temporal
    D``, the factor of each dimension, the PEs used on each axis)."""
    if len(axes) == 1 and len(spatial) > 1:
        spatial = (tuple(dict.fromkeys(d for axis in spatial for d in axis)),)
    per_axis = [_axis_choices(bounds, spatial[i], axes[i]) for i in range(len(axes))]
    best = None
    for combo in itertools.product(*per_axis):
        p = [math.prod(c[d] for c in combo) for d in range(7)]
        work = math.prod(-(-b // f) for b, f in zip(bounds, p))
        used = tuple(math.prod(c) for c in combo)
        key = (work, math.prod(used))
        if best is None or key < best[0]:
            best = (key, tuple(p), used)
    (work, _), p, used = best
    return float(work), p, used


def _executed_fraction(dev: DeviceProfile, weight_density: float, act_density: float) -> float:
    f = 1.0
    if dev.sparsity.zero_weights == "skip":
        f *= weight_density
    if dev.sparsity.zero_activations == "skip":
        f *= act_density
    return f


def _systolic(nest: LoopNest, dev: DeviceProfile, flow_name: str) -> SystolicRun:
    n, m, c, e, f, r, s = nest.bounds
    gemm = Gemm(pixels=n * e * f, window=c * r * s, filters=m, groups=nest.groups)
    return systolic_run(gemm, dev.compute.array_rows, dev.compute.array_cols, flow_name)


def _spatial_compute(nest: LoopNest, dev: DeviceProfile, flow: Dataflow) -> float:
    """Cycles of all MACs of ``nest`` (every MAC executed) on a spatial array, with
    fill and drain."""
    axes = tuple(array_axes(dev, flow))
    work, _, used = spatial_folds(tuple(nest.bounds), flow.spatial, axes)
    fill_drain = float(sum(u - 1 for u in used))
    return nest.groups * (work / dev.compute.macs_per_unit_per_cycle + fill_drain)


def _noc_transfers(acc: np.ndarray, dev: DeviceProfile, input_top_ratio: float) -> tuple[float, float]:
    """(operand transfers, partial-sum transfers) on the NoC of one mapping's accesses
    ``acc`` (all groups)."""
    arrays = device_arrays(dev)
    k = len(arrays.storage)
    fanout = dev.latency.get("noc_multicast_fanout", 1.0)
    total = 0.0
    top_in = max(lv for lv in range(k) if arrays.holds[lv, I_OP])
    for op in (W_OP, I_OP):
        copies = acc[k, op, 0]
        if copies <= 0.0 or fanout <= 1.0:
            total += copies
            continue
        above = [lv for lv in range(arrays.sp + 1, k) if arrays.holds[lv, op]]
        unique = acc[above[0], op, 0] if above else copies
        if op == I_OP and above and above[0] == top_in and input_top_ratio > 0:
            unique /= input_top_ratio   # run-length coded reads at the top: count values
        total += min(copies, max(unique, copies / fanout))
    return total, acc[k, O_OP, 0]


def _level_cycles(acc: np.ndarray, dev: DeviceProfile, input_top_ratio: float) -> dict[str, float]:
    arrays = device_arrays(dev)
    eb = dev.element_bytes
    parts = {}
    for i, lvl in enumerate(arrays.storage):
        parts[lvl.name] = acc[i].sum() * eb / (lvl.bandwidth_bytes_per_cycle * lvl.instances)
    if arrays.noc is not None:
        noc = arrays.noc
        bw = noc.bandwidth_bytes_per_cycle * noc.instances
        operands, psums = _noc_transfers(acc, dev, input_top_ratio)
        links = dev.latency.get("noc_psum_links")
        if links is None:
            parts[noc.name] = (operands + psums) * eb / bw
        else:
            parts[noc.name] = operands * eb / bw
            parts[noc.name + "_links"] = psums * eb / (noc.line_bytes * links)
    return parts


def _rungs(density: float) -> list[float]:
    return [r for r in LADDER if r >= density * (1 - 1e-12)]


def _with_bound(nest: LoopNest, dim: int, value: int) -> LoopNest:
    bounds = list(nest.bounds)
    bounds[dim] = value
    return LoopNest(tuple(bounds), nest.groups, nest.stride, nest.in_hw)


def _with_rows(nest: LoopNest, rows: int) -> LoopNest:
    return _with_bound(nest, M_DIM, rows)


def _input_candidates(work: KernelWork, nest: LoopNest, full_inputs: int, dev: DeviceProfile,
                      flow: Dataflow, act_density: float) -> list[tuple[np.ndarray, float]]:
    """Candidates of a layer with ``nest.bounds[C]`` of ``full_inputs`` inputs per group
    left: those of the layers with more inputs, scaled (module docstring)."""
    c = nest.bounds[C_DIM]
    out = []
    for c_r in sorted({min(full_inputs, math.ceil(r * full_inputs - 1e-9))
                       for r in _rungs(c / full_inputs)}):
        for acc, top_ratio in _candidates(work, _with_bound(nest, C_DIM, c_r), dev, flow,
                                          act_density):
            acc = acc.copy()
            acc[:, W_OP] *= c / c_r
            acc[:, I_OP] *= c / c_r
            out.append((acc, top_ratio))
    return out


def _candidates(work: KernelWork, nest: LoopNest, dev: DeviceProfile, flow: Dataflow,
                act_density: float) -> list[tuple[np.ndarray, float]]:
    """(accesses of all groups, input top ratio) of every candidate mapping, priced at
    the work's density (see the module docstring)."""
    g = nest.groups
    storage = work.scheme.storage
    out = []
    if work.kernel is Kernel.COMPACT:
        m = nest.bounds[M_DIM]
        m_d = max(1, work.rows // g)
        for r in _rungs(m_d / m):
            m_r = max(m_d, min(m, round(r * m)))
            cost = layer_cost(_with_rows(nest, m_r), dev, flow, Density(1.0, act_density),
                              storage, work.group)
            acc = cost.mapping.accesses * g
            acc[:, W_OP] *= m_d / m_r
            acc[:, O_OP] *= m_d / m_r
            params = sparsity_params(nest, dev, Density(1.0, act_density), storage, work.group)[0]
            out.append((acc, params.input_top_ratio))
        return out
    wd = work.density
    params = sparsity_params(nest, dev, Density(wd, act_density), storage, work.group)[0]
    dense_params = sparsity_params(nest, dev, Density(1.0, act_density), storage, work.group)[0]
    rungs = _rungs(wd) if params != dense_params else [1.0]
    found = [layer_cost(nest, dev, flow, Density(r, act_density), storage, work.group).mapping
             for r in rungs]
    # Every format's full-density mapping too, so that a sparse format at density 1
    # is never faster than dense only because its search found another mapping.
    found += [layer_cost(nest, dev, flow, Density(1.0, act_density), fmt, grp).mapping
              for fmt, grp in _formats(work, dev)]
    for mapping in found:
        priced = price_mapping(mapping, nest, dev, params)
        if np.isfinite(priced.energy_pj):
            out.append((priced.accesses * g, params.input_top_ratio))
    return out


def _formats(work: KernelWork, dev: DeviceProfile) -> list[tuple[str, int]]:
    """(storage format, group width) of the work's scheme and of every registered
    scheme that runs an unstructured or group kernel (dense, csr, group-csr) on the
    work's layer; the N:M and block formats of other schemes are left out (their
    searches would only add time: their mappings are those of the formats above)."""
    kernel = work.shape.kernel
    lanes = dev.compute.simd_lanes
    schemes = [s for s in all_schemes() if s.kernel in (Kernel.DENSE, Kernel.CSR, Kernel.GROUP_CSR)]
    return sorted({(s.storage, s.on(work.shape.is_matvec).group_width(kernel, lanes))
                   for s in [*schemes, work.scheme] if s.kernel is not Kernel.COMPACT})


def accelerator_latency(work: KernelWork, layer: Layer, dev: DeviceProfile,
                        act_density: float = 1.0, batch: int | None = None,
                        dataflow: str | None = None,
                        unpruned: Layer | None = None) -> LatencyEstimate:
    """Latency of ``work`` (one layer's kernel) on accelerator ``dev`` for ``batch``
    inputs (default: the batch of ``work.shape``, else 1), with the device's dataflow
    or ``dataflow`` (a preset, or ``input-stationary`` on a systolic array).
    ``unpruned``: the layer before earlier layers removed some of ``layer``'s inputs
    (default: ``layer`` itself)."""
    if batch is None:
        batch = getattr(work.shape, "batch", 1)
    flow_name = dataflow or dev.dataflow
    systolic = is_systolic(dev, flow_name)
    if systolic:
        flow_name = short_dataflow(flow_name)
        long_name = next(k for k, v in SYSTOLIC_DATAFLOWS.items() if v == flow_name)
        mapping_flow = get_dataflow(long_name if long_name in PRESETS else dev.dataflow, dev)
    else:
        mapping_flow = get_dataflow(flow_name, dev)
    nest = LoopNest.of(layer, batch)
    kept_rows = max(1, work.rows // nest.groups) if work.kernel is Kernel.COMPACT \
        else nest.bounds[M_DIM]
    compute_nest = _with_rows(nest, kept_rows)
    run = _systolic(compute_nest, dev, flow_name) if systolic else None
    compute = float(run.cycles) if run else _spatial_compute(compute_nest, dev, mapping_flow)
    weight_density = 1.0 if work.kernel is Kernel.COMPACT else work.density
    compute *= _executed_fraction(dev, weight_density, act_density)
    full_inputs = LoopNest.of(unpruned, batch).bounds[C_DIM] if unpruned is not None else 0
    if full_inputs > nest.bounds[C_DIM]:
        candidates = _input_candidates(work, nest, full_inputs, dev, mapping_flow, act_density)
    else:
        candidates = _candidates(work, nest, dev, mapping_flow, act_density)
    best = None
    for acc, top_ratio in candidates:
        levels = _level_cycles(acc, dev, top_ratio)
        if run:
            levels = _systolic_levels(levels, run, dev)
        worst = max(levels.values(), default=0.0)
        if best is None or worst < best[0]:
            best = (worst, levels)
    parts = {"compute": compute, **(best[1] if best else {})}
    bound = max(parts, key=parts.get)
    return make_estimate(dev, max(parts.values()), bound, parts)


def _systolic_levels(levels: dict[str, float], run: SystolicRun,
                     dev: DeviceProfile) -> dict[str, float]:
    """A systolic array's levels: the per-PE registers and the PE-to-PE links work
    inside the compute schedule (one hop per cycle), the level that feeds the array
    moves SCALE-Sim's SRAM counts, the levels above it the mapping's traffic."""
    arrays = device_arrays(dev)
    if arrays.sp + 1 >= len(arrays.storage):
        return levels
    feeder = arrays.storage[arrays.sp + 1]
    sram = run.ifmap_reads + run.filter_reads + run.ofmap_writes
    out = {feeder.name: sram * dev.element_bytes / (feeder.bandwidth_bytes_per_cycle
                                                    * feeder.instances)}
    for lvl in arrays.storage[arrays.sp + 2:]:
        out[lvl.name] = levels[lvl.name]
    return out
