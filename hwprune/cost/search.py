"""Find the cheapest legal mapping of one loop nest on one device.

Spatial unrollings are enumerated from the dataflow (:mod:`hwprune.cost.dataflow`);
for each, the tiles and loop orders are hill-climbed by :func:`hwprune.cost.mapper.search`
from the smallest legal tiles upwards. The best spatial unrolling is then climbed
again from starts whose innermost tile is grown along one dimension, and the best
result over all starts is refined by iterated local search (kick one tile to an
extreme, climb again, keep improvements).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from ..errors import InputError
from ..hardware.profile import BACKING_KINDS, OPERANDS, DeviceProfile, MemoryLevel
from .dataflow import STATIONARY, Dataflow, array_axes
from .loopnest import DIMS, LoopNest
from .mapper import ORDERS, _cost, _jump, _step, evaluate, refine, search

MAX_ITER = 400

USE_BOUND = True
"""Skip a spatial unrolling whose :func:`lower_bound` is no lower than the best energy
found so far (tests turn it off to compare with searching every candidate)."""


@dataclass(frozen=True)
class DeviceArrays:
    """A device profile flattened into the arrays the numba kernels read.

    ``storage`` are the memory levels that hold data (the NoC, if any, is separate).
    ``elem`` (levels, operands): bytes of one element (partial sums ``psum_bytes`` wide
    below the outermost level holding outputs, everything else the data width).
    Energies are per element (pJ): ``rd``/``wr`` (levels, operands), each operand's own
    partition energy where the level has one; ``noc_pj`` (operands,) per transfer.
    Capacities in bytes per instance. ``loops_ok`` (levels, dims): the profile's
    ``[mapping.levels]`` constraint (True where a level may iterate over a dimension).
    """

    storage: tuple[MemoryLevel, ...]
    noc: MemoryLevel | None
    sp: int
    holds: np.ndarray
    group_of: np.ndarray
    group_cap: np.ndarray
    backing: np.ndarray
    rd: np.ndarray
    wr: np.ndarray
    noc_pj: np.ndarray
    elem: np.ndarray
    loops_ok: np.ndarray


@lru_cache(maxsize=64)
def device_arrays(dev: DeviceProfile) -> DeviceArrays:
    storage = tuple(lvl for lvl in dev.memory if lvl.kind != "noc")
    noc = next((lvl for lvl in dev.memory if lvl.kind == "noc"), None)
    k = len(storage)
    eb = dev.element_bytes
    holds = np.zeros((k, 3), dtype=np.bool_)
    group_of = np.zeros((k, 3), dtype=np.int64)
    group_cap = np.full((k, 3), np.inf)
    for i, lvl in enumerate(storage):
        for j, op in enumerate(OPERANDS):
            holds[i, j] = op in lvl.holds
        if lvl.partition_bytes:
            for g, (members, size) in enumerate(lvl.partition_bytes):
                group_cap[i, g] = size
                for member in members:
                    group_of[i, OPERANDS.index(member)] = g
        else:
            group_cap[i, 0] = lvl.size_bytes
    # Partial sums are psum_bytes wide below the outermost level holding outputs, where
    # the finished outputs are stored at the data width.
    elem = np.full((k, 3), eb)
    top_out = max(i for i in range(k) if holds[i, 2])
    elem[:top_out, 2] = dev.psum_bytes
    per_unit = [i for i, lvl in enumerate(storage) if lvl.instances > 1]
    sp = per_unit[-1] if per_unit and dev.compute.units > 1 else -1
    return DeviceArrays(
        storage=storage,
        noc=noc,
        sp=sp,
        holds=holds,
        group_of=group_of,
        group_cap=group_cap,
        backing=np.array([lvl.kind in BACKING_KINDS for lvl in storage], dtype=np.bool_),
        rd=np.array([[lvl.read_pj(op) * elem[i, j] / lvl.word_bytes for j, op in enumerate(OPERANDS)]
                     for i, lvl in enumerate(storage)]),
        wr=np.array([[lvl.write_pj(op) * elem[i, j] / lvl.word_bytes for j, op in enumerate(OPERANDS)]
                     for i, lvl in enumerate(storage)]),
        noc_pj=(np.zeros(3) if noc is None else
                np.array([eb, eb, dev.psum_bytes]) * noc.read_energy_pj / noc.word_bytes),
        elem=elem,
        loops_ok=np.array([[dev.level_loops(lvl.name) is None or d in dev.level_loops(lvl.name)
                            for d in DIMS] for lvl in storage], dtype=np.bool_),
    )


@dataclass(frozen=True)
class SparsityParams:
    """What sparsity does to one layer's data movement (all fractions).

    Attributes:
        executed: fraction of MACs whose energy is spent (the rest skipped or gated).
        weight_ratio: weight bytes moved and stored per dense weight byte (values +
            indices).
        index_per_mac: index bytes read per executed MAC, per element byte.
        input_top_ratio: input bytes per dense byte in the outermost memory.
        group_weights: weights per pruning group (1: single weights).
        group_keep: kept fraction of those groups where the device skips an
            innermost tile whose weights are all pruned (1: it never skips one); see
            :mod:`hwprune.cost.mapper`, *Granularity-aware reuse*.
        output_top_ratio: bytes per dense byte of the finished outputs in the
            outermost memory (run-length coded at the next layer's input density).
    """

    executed: float = 1.0
    weight_ratio: float = 1.0
    index_per_mac: float = 0.0
    input_top_ratio: float = 1.0
    group_weights: float = 1.0
    group_keep: float = 1.0
    output_top_ratio: float = 1.0


@dataclass(frozen=True)
class Mapping:
    """The mapping found for one loop nest (one group).

    Attributes:
        tiles: per storage level (innermost first), the tile of each dimension.
        spatial: factor of each dimension unrolled across units or the PE array.
        stationary: per storage level, the operand kept in the level below while
            the innermost loops run (``"-"`` for level 0, whose loops feed the MACs).
        energy_pj: energy of one group, pJ.
        accesses: ``(levels + 1, 3, 2)`` element reads/writes per storage level and
            operand (weights, inputs, outputs); the last row holds NoC transfers.
        bounds: the loop nest's own bounds (one group).
        padded: the bounds the tiles nest in: ``bounds``, or rounded up to a multiple
            of a spatial factor that does not divide its dimension (partial folds) or
            of a tile that does not (:func:`temporal_pads`); see
            :mod:`hwprune.cost.mapper`, *Partial factors*.
    """

    tiles: tuple[tuple[float, ...], ...]
    spatial: tuple[float, ...]
    stationary: tuple[str, ...]
    energy_pj: float
    accesses: np.ndarray
    bounds: tuple[float, ...]
    padded: tuple[float, ...]

    def utilization(self, units: int) -> float:
        """Fraction of ``units`` PEs doing real MACs, averaged over the folds: the PEs
        the unrolling uses times the layer's share of the padded iterations (idle PEs
        of a partial fold count as unused)."""
        return float(np.prod(self.spatial) / units
                     * np.prod(np.array(self.bounds) / np.array(self.padded)))

    def describe(self, level_names: tuple[str, ...]) -> str:
        """Compact text: spatial factors, then each level's tile and stationary operand."""
        def dims(values) -> str:
            parts = [f"{d}{v:g}" for d, v in zip(DIMS, values) if v > 1]
            return " ".join(parts) or "1"

        text = [f"spatial[{dims(self.spatial)}]"]
        pads = [f"{d}{p:g}" for d, b, p in zip(DIMS, self.bounds, self.padded) if p != b]
        if pads:
            text.append(f"padded[{' '.join(pads)}]")
        for name, tile, stat in zip(level_names, self.tiles, self.stationary):
            text.append(f"{name}[{dims(tile)}]" + ("" if stat == "-" else f"/{stat[0]}"))
        return " ".join(text)


def _candidates(bound: int) -> list[float]:
    """Tile sizes a dimension may take: its divisors."""
    small = [d for d in range(1, math.isqrt(bound) + 1) if bound % d == 0]
    return sorted(float(v) for v in {*small, *(bound // d for d in small)})


def _largest_divisor(bound: int, limit: int) -> int:
    return max(f for f in range(1, min(bound, limit) + 1) if bound % f == 0)


def _axis_options(bounds: tuple[int, ...], dims: tuple[str, ...], size: int) -> list[dict]:
    """Ways to fill one array axis of ``size``: a primary dimension and, if it leaves
    room, a secondary one (Eyeriss's replication)."""
    options: list[dict] = [{}]
    for d1 in dims:
        f1 = _largest_divisor(bounds[DIMS.index(d1)], size)
        if f1 <= 1:
            continue
        options.append({d1: f1})
        room = size // f1
        for d2 in dims:
            if d2 == d1 or room < 2:
                continue
            f2 = _largest_divisor(bounds[DIMS.index(d2)], room)
            if f2 > 1:
                options.append({d1: f1, d2: f2})
    return options


def _fill_factor(bound: int, room: int) -> int:
    """The smallest factor that covers ``bound`` in as few folds of at most ``room`` as
    possible: ``ceil(bound / ceil(bound / room))`` (363 on 32 PEs: 12 folds of 31, the
    last one partial)."""
    return -(-bound // -(-bound // room)) if room >= 1 else 1


def _maximal_assignments(bounds: tuple[int, ...], dims: tuple[str, ...], size: int,
                         partial: bool = True) -> list[dict]:
    """Every way to fill one array axis of ``size`` with factors of ``dims`` that is
    maximal: no factor can grow to a larger option of its dimension, and no dimension
    can be added, without exceeding the axis. The options of a dimension are its
    divisors. With ``partial``, the maximal assignments in which one dimension may also
    take its fill factor for the room the others leave it (:func:`_fill_factor`:
    partial folds, the last one with idle PEs) are added, for each dimension in turn."""
    bound = {d: bounds[DIMS.index(d)] for d in dims}
    divisors = {d: [f for f in range(1, min(bound[d], size) + 1) if bound[d] % f == 0]
                for d in dims}

    def maximal_set(filled: str | None) -> list[dict]:
        def options(d: str, room: int) -> list[int]:
            found = [f for f in divisors[d] if f <= room]
            if d == filled and _fill_factor(bound[d], room) > found[-1]:
                found.append(_fill_factor(bound[d], room))
            return found

        walk = [d for d in dims if d != filled] + ([filled] if filled else [])
        assignments: list[dict] = []

        def extend(i: int, chosen: dict, used: int) -> None:
            if i == len(walk):
                assignments.append(dict(chosen))
                return
            d = walk[i]
            for f in options(d, size // used):
                if f > 1:
                    chosen[d] = f
                extend(i + 1, chosen, used * f)
                chosen.pop(d, None)

        extend(0, {}, 1)

        def maximal(a: dict) -> bool:
            used = math.prod(a.values())
            return not any(g > a.get(d, 1) for d in dims
                           for g in options(d, size // (used // a.get(d, 1))))

        return [a for a in assignments if a and maximal(a)]

    found = maximal_set(None)
    for filled in (dims if partial else ()):
        found += [a for a in maximal_set(filled) if a not in found]
    return found


def padded_bounds(bounds: tuple[int, ...], p: np.ndarray) -> np.ndarray:
    """The loop bounds a spatial unrolling ``p`` runs: each dimension rounded up to a
    multiple of its spatial factor (the padding is the idle PEs of the last fold)."""
    b = np.array(bounds, dtype=np.float64)
    return np.ceil(b / p - 1e-9) * p


TEMPORAL_STEPS = (2, 4, 8)
"""Multiples a dimension's bound may be padded to for partial temporal factors."""

TEMPORAL_WASTE = 0.15
"""The most padding (fraction of a dimension's bound) a partial temporal factor adds."""


def _divisor_count(n: int) -> int:
    return len(_candidates(n))


def temporal_pads(padded: np.ndarray, p: np.ndarray, bounds: tuple[int, ...]) -> list[np.ndarray]:
    """Further paddings of a nest (``padded``, already a multiple of the unrolling
    ``p``) that give its tiles more sizes: for each step ``m`` of
    :data:`TEMPORAL_STEPS`, every dimension rounded up to a multiple of ``lcm(p, m)``
    where that adds divisors and at most :data:`TEMPORAL_WASTE` of the layer's bound
    (a tile of 8 of AlexNet's 55 output rows: the nest runs 56, the last step is
    partial). Distinct paddings only."""
    found: list[np.ndarray] = []
    for m in TEMPORAL_STEPS:
        b = padded.copy()
        for d in range(7):
            step = math.lcm(int(round(p[d])), m)
            up = math.ceil(padded[d] / step - 1e-9) * step
            if (up > padded[d] and up <= bounds[d] * (1 + TEMPORAL_WASTE)
                    and _divisor_count(up) > _divisor_count(int(round(padded[d])))):
                b[d] = up
        if np.any(b != padded) and not any(np.array_equal(b, f) for f in found):
            found.append(b)
    return found


def _unrolling(combo) -> np.ndarray:
    p = np.ones(7)
    for choice in combo:
        for d, f in choice.items():
            p[DIMS.index(d)] *= f
    return p


def _utilization(nest: LoopNest, p: np.ndarray) -> float:
    """PEs doing real work on average: ``prod(p)`` times the real share of the padded
    iterations."""
    bounds = np.array(nest.bounds, dtype=np.float64)
    return float(np.prod(p) * np.prod(bounds / padded_bounds(nest.bounds, p)))


@lru_cache(maxsize=4096)
def _spatial_candidates(nest: LoopNest, dev: DeviceProfile, flow: Dataflow,
                        fallback: bool) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(p) for p in spatial_candidates(nest, dev, flow, fallback))


@lru_cache(maxsize=4096)
def _partial_candidates(nest: LoopNest, dev: DeviceProfile,
                        flow: Dataflow) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(p) for p in partial_candidates(nest, dev, flow))


def spatial_candidates(nest: LoopNest, dev: DeviceProfile, flow: Dataflow,
                       fallback: bool = False) -> list[np.ndarray]:
    """Spatial unrollings by whole divisors, best utilization first, every one of them
    searched (:func:`partial_candidates` adds those with partial folds):

    * on a 2-D PE array, on each axis every maximal assignment of the dataflow's
      dimensions to it (:func:`_maximal_assignments`; an axis nothing fits stays
      idle), in every combination across the two axes whose factors divide their
      dimensions; with ``fallback`` (no maximal unrolling had a legal mapping), the
      one- and two-dimension unrollings that use the largest divisors, partly idle
      axes included;
    * across cores or SMs (one axis), the one- and two-dimension splits that use the
      largest divisors (*simplification*: on the built-in cpu and gpu the maximal
      assignments found no cheaper mapping on AlexNet, VGG-16, ResNet-18 and
      MobileNet and took 1.5x the time).
    """
    if dev.compute.units <= 1:
        return [np.ones(7)]
    axes = array_axes(dev, flow)
    if len(axes) == 1:
        dims = tuple(dict.fromkeys(d for axis in flow.spatial for d in axis))
        per_axis = [_axis_options(nest.bounds, dims, axes[0])]
    elif fallback:
        per_axis = [_axis_options(nest.bounds, flow.spatial[i], axes[i]) for i in range(2)]
    else:
        per_axis = [_maximal_assignments(nest.bounds, flow.spatial[i], axes[i], partial=False)
                    or [{}] for i in range(2)]
    bounds = np.array(nest.bounds)
    seen = {}
    for combo in itertools.product(*per_axis):
        p = _unrolling(combo)
        if np.all(bounds % p == 0):
            seen.setdefault(tuple(p), p)
    return sorted(seen.values(), key=lambda p: -_utilization(nest, p))


def partial_candidates(nest: LoopNest, dev: DeviceProfile, flow: Dataflow) -> list[np.ndarray]:
    """Spatial unrollings of a 2-D PE array with partial folds (a factor that does not
    divide its dimension; the last fold leaves PEs idle): every combination across the
    two axes of the maximal assignments with one dimension per axis filled
    (:func:`_maximal_assignments`) that is not a whole-divisor one, best utilization
    first. Empty for other devices."""
    if dev.compute.units <= 1:
        return []
    axes = array_axes(dev, flow)
    if len(axes) != 2:
        return []
    bounds = np.array(nest.bounds, dtype=np.float64)
    per_axis = [_maximal_assignments(nest.bounds, flow.spatial[i], axes[i]) or [{}]
                for i in range(2)]
    seen = {}
    for combo in itertools.product(*per_axis):
        p = _unrolling(combo)
        # not whole, and one dimension on both axes not past its bound
        if np.any(bounds % p != 0) and not np.any(p > bounds):
            seen.setdefault(tuple(p), p)
    return sorted(seen.values(), key=lambda p: -_utilization(nest, p))


def lower_bound(nest: LoopNest, dev: DeviceProfile, sparsity: SparsityParams, p: np.ndarray) -> float:
    """A lower bound (pJ, one group) on the energy of every mapping of ``nest`` with the
    spatial unrolling ``p``: the executed MACs and their operand reads in the innermost
    level (where it holds them); every
    weight, input and output crossing each level above the innermost that holds it at
    least once; and across the array, every weight sent to each unit along the
    dimensions it does not depend on (``N E F``), every input to each unit along ``M``,
    and every output's partial sums reduced across the ``C R S`` units; and every
    executed MAC's product beyond the first of its output added to a partial sum at
    the cheapest place that can hold one (a level's read + write, or a network
    transfer). Inputs and partial sums are scaled by the smallest fraction of innermost
    tiles that keep a weight (``group_keep``). Used to skip unrollings that cannot beat
    the best found."""
    return float(lower_bounds(nest, dev, sparsity, [p])[0])


def lower_bounds(nest: LoopNest, dev: DeviceProfile, sparsity: SparsityParams,
                 ps) -> np.ndarray:
    """:func:`lower_bound` of each unrolling in ``ps`` (pJ)."""
    arrays = device_arrays(dev)
    n, m, c, e, f, r, s = nest.bounds
    sh, sw = nest.stride
    in_h, in_w = nest.in_hw
    macs = float(np.prod(nest.bounds))
    executed = macs * sparsity.executed
    keep = min(1.0, sparsity.group_keep)
    weights = m * c * r * s * sparsity.weight_ratio
    h = min(in_h, (e - 1) * sh + r, e * r)
    w = min(in_w, (f - 1) * sw + s, f * s)
    inputs = n * c * h * w * keep
    outputs = n * m * e * f * keep
    energy = executed * (dev.compute.mac_energy_pj
                         + arrays.holds[0, 0] * arrays.rd[0, 0] * (1.0 + sparsity.index_per_mac)
                         + arrays.holds[0, 1] * arrays.rd[0, 1])
    k = len(arrays.storage)
    holders = [np.flatnonzero(arrays.holds[:, op]) for op in range(3)]
    top_in = int(holders[1][-1]) if len(holders[1]) else -1
    for lv in holders[0][holders[0] > 0]:
        energy += weights * arrays.rd[lv, 0]
    for lv in holders[1][holders[1] > 0]:
        energy += inputs * arrays.rd[lv, 1] * (sparsity.input_top_ratio if lv == top_in else 1.0)
    if len(holders[2]):
        energy += (n * m * e * f * min(keep, sparsity.output_top_ratio)
                   * arrays.wr[holders[2][-1], 2])
    # Every executed MAC's product but the first of each output is added to a partial
    # sum somewhere: a read and a write at a level, or a transfer on the array network
    # (those reduced across the array are counted below, at the network's cost).
    adds = [arrays.rd[lv, 2] + arrays.wr[lv, 2] for lv in {0, *holders[2]}]
    if arrays.noc is not None:
        adds.append(arrays.noc_pj[2])
    accumulations = max(0.0, executed - n * m * e * f)
    energies = np.full(len(ps), energy)
    reduced = np.zeros(len(ps))
    if arrays.noc is not None and 0 <= arrays.sp < k - 1 and len(ps):
        pn, pm, pc, pe, pf, pr, ps_ = np.array(ps, dtype=np.float64).T
        sp = arrays.sp
        crosses = [bool(np.any(h <= sp)) and bool(np.any(h > sp)) for h in holders]
        if crosses[0]:
            energies += weights * pn * pe * pf * arrays.noc_pj[0]
        if crosses[1]:
            energies += inputs * pm * arrays.noc_pj[1]
        if crosses[2]:
            reduced = outputs * (pc * pr * ps_ - 1.0)
            energies += reduced * arrays.noc_pj[2]
    energies += np.maximum(0.0, accumulations - reduced) * min(adds)
    return energies * (1.0 - 1e-9)


def _initial_tiles(bounds: np.ndarray, p: np.ndarray, min_t0: np.ndarray, k: int,
                   sp: int) -> np.ndarray:
    t = np.ones((k, 7))
    t[0] = min_t0
    for lv in range(1, k):
        t[lv] = t[lv - 1] * (p if lv - 1 == sp else 1.0)
    t[k - 1] = bounds
    return t


def _context(nest: LoopNest, dev: DeviceProfile, sparsity: SparsityParams,
             padded: tuple[float, ...] | None = None):
    """The loop bounds the tiles nest in (``padded``, default the nest's own) and the
    constants tuple the numba kernels take."""
    arrays = device_arrays(dev)
    real = np.array(nest.bounds, dtype=np.float64)
    bounds = real if padded is None else np.array(padded, dtype=np.float64)
    sh, sw = (float(s) for s in nest.stride)
    in_h, in_w = (float(x) for x in nest.in_hw)
    ctx = (bounds, sh, sw, in_h, in_w, arrays.sp, arrays.noc is not None, arrays.holds,
           arrays.group_of, arrays.group_cap, arrays.backing, arrays.rd, arrays.wr,
           arrays.noc_pj, dev.compute.mac_energy_pj, arrays.elem,
           sparsity.executed, sparsity.weight_ratio, sparsity.index_per_mac,
           sparsity.input_top_ratio, float(sparsity.group_weights), float(sparsity.group_keep),
           1.0 if dev.fills == "charged" else 0.0, float(sparsity.output_top_ratio),
           arrays.loops_ok, bool(dev.memory[0].sliding_window), real)
    return bounds, ctx


def price_mapping(mapping: Mapping, nest: LoopNest, dev: DeviceProfile,
                  sparsity: SparsityParams) -> Mapping:
    """The same tiles, spatial unrolling and orders priced under other sparsity
    (energy ``inf`` if the tiles no longer fit)."""
    _, ctx = _context(nest, dev, sparsity, mapping.padded)
    k = len(mapping.tiles)
    acc = np.zeros((k + 1, 3, 2))
    order = np.array([0] + [STATIONARY.index(x) for x in mapping.stationary[1:]], dtype=np.int64)
    energy = evaluate(np.array(mapping.tiles), np.array(mapping.spatial), order, *ctx, acc)
    return replace(mapping, energy_pj=float(energy), accesses=acc)


@dataclass(frozen=True)
class _Problem:
    """One padded loop nest to search: its bounds, the kernels' constants, each
    dimension's tile candidates (its divisors) and the smallest innermost tiles."""

    bounds: np.ndarray
    ctx: tuple
    cand: np.ndarray
    ncand: np.ndarray
    min_t0: np.ndarray


def _problem(nest: LoopNest, dev: DeviceProfile, flow: Dataflow, sparsity: SparsityParams,
             padded: np.ndarray, pin: bool) -> _Problem:
    bounds, ctx = _context(nest, dev, sparsity, tuple(float(v) for v in padded))
    cand_lists = [_candidates(int(round(b))) for b in bounds]
    width = max(len(c) for c in cand_lists)
    cand = np.zeros((7, width))
    for d, values in enumerate(cand_lists):
        cand[d, :len(values)] = values
    ncand = np.array([len(c) for c in cand_lists], dtype=np.int64)
    min_t0 = np.ones(7)
    if pin:
        for d in flow.pinned:
            min_t0[DIMS.index(d)] = bounds[DIMS.index(d)]
    return _Problem(bounds, ctx, cand, ncand, min_t0)


def find_mapping(nest: LoopNest, dev: DeviceProfile, flow: Dataflow,
                 sparsity: SparsityParams, seed: Mapping | None = None) -> Mapping:
    """The cheapest legal mapping found for one group of ``nest``.

    ``seed`` (for instance the mapping of the same layer dense) is one more start;
    since a fixed mapping never costs more at a lower density, seeding a pruned layer
    with its dense mapping guarantees it never costs more than the dense layer.
    """
    arrays = device_arrays(dev)
    k = len(arrays.storage)
    # A pinned dimension too long for the innermost level (a 16-wide filter row on
    # Eyeriss's 12-entry ifmap scratchpad) is split into passes: searched unpinned. An
    # array that no maximal unrolling fits (its per-PE tiles too small for any) is
    # searched again with the partly idle unrollings.
    tries = [True, False] if flow.pinned else [False]
    for fallback in (False, True):
        for pin in tries:
            best = _search_all(nest, dev, flow, sparsity, seed, k, pin, fallback)
            if np.isfinite(best[0]):
                break
        if np.isfinite(best[0]):
            break
    energy, tiles, order, p, problem = best
    if not np.isfinite(energy):
        raise InputError(
            f"no legal mapping of loop nest {dict(zip(DIMS, nest.bounds))} on device "
            f"{dev.id!r} ({dev.origin}) with dataflow {flow.name!r}: even the smallest tiles "
            "do not fit the capacities of its levels " + ", ".join(
                f"{lvl.name} ({lvl.size_bytes} B)" for lvl in arrays.storage
                if lvl.kind not in BACKING_KINDS)
        )
    acc = np.zeros((k + 1, 3, 2))
    evaluate(tiles, p, order, *problem.ctx, acc)
    stationary = ("-",) + tuple(STATIONARY[o] for o in order[1:])
    return Mapping(
        tiles=tuple(tuple(float(v) for v in row) for row in tiles),
        spatial=tuple(float(v) for v in p),
        stationary=stationary,
        energy_pj=float(energy),
        accesses=acc,
        bounds=tuple(float(v) for v in nest.bounds),
        padded=tuple(float(v) for v in problem.bounds),
    )


def _greedy_tiles(t, p, sp, order, cand, ncand, min_t0, bounds, k, ctx) -> np.ndarray:
    """``t`` with each level's tile grown, outermost on-chip level first and one
    dimension at a time, as far as every tile still fits its level."""
    acc = np.zeros((k + 1, 3, 2))
    t = t.copy()
    for lv in range(k - 2, -1, -1):
        for d in range(7):
            while True:
                trial = t.copy()
                if not _step(trial, p, sp, lv, d, 1, cand, ncand, min_t0, bounds, k):
                    break
                if not np.isfinite(_cost(trial, p, order, ctx, acc)):
                    break
                t = trial
    return t


def _search_all(nest, dev, flow, sparsity, seed, k, pin, fallback=False):
    """(energy, tiles, order, spatial, problem) of the best mapping from every start,
    refined (infinite energy: none legal); ``pin``: the innermost tiles hold the
    dataflow's pinned dimensions whole."""
    arrays = device_arrays(dev)
    fixed = flow.stationary is not None
    # A preset's stationary operand is the one kept in the innermost level (level 1's
    # order); the levels above are searched either way. Level 0's order feeds the MACs
    # and is not searched.
    order0 = np.full(k, STATIONARY.index(flow.stationary) if fixed else 0, dtype=np.int64)
    allowed = np.ones((k, len(ORDERS)), dtype=np.bool_)
    allowed[0] = False
    if fixed:
        allowed[1] = np.arange(len(ORDERS)) == order0[1]
    sp = arrays.sp
    problems: dict[tuple, _Problem] = {}

    def problem_at(padded: np.ndarray) -> _Problem:
        key = tuple(padded)
        if key not in problems:
            problems[key] = _problem(nest, dev, flow, sparsity, padded, pin)
        return problems[key]

    def problem_of(p: np.ndarray) -> _Problem:
        return problem_at(padded_bounds(nest.bounds, p))

    best = (np.inf, None, None, None, None)
    order_starts = [order0] if fixed else [np.full(k, o, dtype=np.int64) for o in range(3)]
    spatial = ([np.array(p) for p in _spatial_candidates(nest, dev, flow, fallback)]
               if sp >= 0 else [np.ones(7)])
    whole = len(spatial)
    if sp >= 0 and not fallback:
        spatial += [np.array(p) for p in _partial_candidates(nest, dev, flow)]
    bound = lower_bounds(nest, dev, sparsity, spatial)
    # The lowest bound first: the sooner a good mapping is found, the more unrollings
    # the bound skips. Unrollings with partial folds are climbed from the loop orders of
    # the best mapping found so far only.
    for i in np.argsort(bound, kind="stable"):
        p = spatial[i]
        if USE_BOUND and bound[i] >= best[0]:
            continue            # no mapping with this unrolling can beat the best found
        pr = problem_of(p)
        t0 = _initial_tiles(pr.bounds, p, pr.min_t0, k, sp)
        starts = order_starts
        if i >= whole and best[2] is not None:
            starts = [best[2]]      # a partial fold: from the best mapping's orders
        for start in starts:
            energy, tiles, order = search(t0, p, start, allowed, pr.cand, pr.ncand, pr.min_t0,
                                          pr.ctx, MAX_ITER)
            if energy < best[0]:
                best = (energy, tiles, order, p, pr)
    if seed is not None:
        seed_p = np.array(seed.spatial)
        pr = problem_at(np.array(seed.padded))
        seed_order = np.array([0] + [STATIONARY.index(x) for x in seed.stationary[1:]],
                              dtype=np.int64)
        energy, tiles, order = search(np.array(seed.tiles), seed_p, seed_order, allowed,
                                      pr.cand, pr.ncand, pr.min_t0, pr.ctx, MAX_ITER)
        if energy < best[0]:
            best = (energy, tiles, order, seed_p, pr)
    energy, tiles, order, p, pr = best
    if np.isfinite(energy):
        cand, ncand, min_t0, ctx = pr.cand, pr.ncand, pr.min_t0, pr.ctx
        # More diverse starts for the best spatial unrolling: the innermost tile grown
        # as far as it goes along one dimension.
        t0 = _initial_tiles(pr.bounds, p, min_t0, k, sp)
        for d in range(7):
            start_t = t0.copy()
            if not _jump(start_t, p, sp, 0, d, 1, cand, ncand, min_t0, pr.bounds, k):
                continue
            for start in order_starts:
                e, t2, o2 = search(start_t, p, start, allowed, cand, ncand, min_t0,
                                   ctx, MAX_ITER)
                if e < energy:
                    energy, tiles, order = e, t2, o2
        energy, tiles, order = refine(tiles, p, order, allowed, cand, ncand, min_t0,
                                      ctx, MAX_ITER)
        # And from the largest tiles that fit, outermost on-chip level first (a layer
        # that fits a big buffer whole: single steps from small tiles can stall short
        # of it, each one costing more before several together cost less).
        greedy = _greedy_tiles(t0, p, sp, order0, cand, ncand, min_t0, pr.bounds, k, ctx)
        for start in order_starts:
            e, t2, o2 = search(greedy, p, start, allowed, cand, ncand, min_t0, ctx, MAX_ITER)
            if e < energy:
                energy, tiles, order = e, t2, o2
        # Partial temporal factors: the best unrolling's nest padded further, so that
        # a dimension with few divisors (55 output rows) takes tiles that do not
        # divide it (8 rows: 7 steps, the last one partial); kept where cheaper.
        for padded in temporal_pads(pr.bounds, p, nest.bounds):
            alt = problem_at(padded)
            t0 = _initial_tiles(alt.bounds, p, alt.min_t0, k, sp)
            e, t2, o2 = search(t0, p, order, allowed, alt.cand, alt.ncand, alt.min_t0, alt.ctx,
                               MAX_ITER)
            if e < energy:
                e, t2, o2 = refine(t2, p, o2, allowed, alt.cand, alt.ncand, alt.min_t0, alt.ctx,
                                   MAX_ITER)
                energy, tiles, order, pr = e, t2, o2, alt
    return energy, tiles, order, p, pr
