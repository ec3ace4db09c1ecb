"""The spatial unrollings the energy model's mapper searches, and the lower bound that
may skip one (hwprune.cost.search)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hwprune
from hwprune.cost import search as S
from hwprune.cost.dataflow import get_dataflow
from hwprune.cost.densities import Density
from hwprune.cost.energy import sparsity_params
from hwprune.cost.loopnest import DIMS, LoopNest


def _brute_maximal(bounds, dims, size, fill=None):
    """Maximal assignments by brute force: every factor combination that fits, each
    factor a divisor of its dimension or, for the dimension ``fill``, the fewest-folds
    factor for the room the others leave it."""
    bound = [bounds[DIMS.index(d)] for d in dims]

    def options(i, room):
        opts = [f for f in range(1, min(bound[i], room) + 1) if bound[i] % f == 0]
        if dims[i] == fill:
            folds = -(-bound[i] // room)
            opts.append(-(-bound[i] // folds))
        return set(opts)

    out = []
    for combo in itertools.product(range(1, size + 1), repeat=len(dims)):
        if math.prod(combo) > size or math.prod(combo) == 1:
            continue
        rooms = [size // (math.prod(combo) // combo[i]) for i in range(len(dims))]
        if any(combo[i] not in options(i, rooms[i]) for i in range(len(dims))):
            continue
        if any(g > combo[i] for i in range(len(dims)) for g in options(i, rooms[i])):
            continue
        out.append({d: f for d, f in zip(dims, combo) if f > 1})
    return out


@settings(max_examples=60, deadline=None)
@given(bounds=st.tuples(*[st.integers(1, 64)] * 7), size=st.integers(2, 16),
       dims=st.sampled_from([("R", "C", "M"), ("E", "N", "M"), ("C", "R", "S"), ("M",)]))
def test_maximal_assignments_are_exactly_the_maximal_ones(bounds, size, dims):
    """Whole divisors only, plus the maximal ones where one dimension may use partial
    folds."""
    key = lambda a: sorted(a.items())      # noqa: E731
    whole = _brute_maximal(bounds, dims, size)
    assert (sorted(map(key, S._maximal_assignments(bounds, dims, size, partial=False)))
            == sorted(map(key, whole)))
    both = list(whole)
    for d in dims:
        both += [a for a in _brute_maximal(bounds, dims, size, fill=d) if a not in both]
    assert sorted(map(key, S._maximal_assignments(bounds, dims, size))) == sorted(map(key, both))


def test_alexnet_conv1_gets_the_eyeriss_unrolling():
    """Eyeriss maps AlexNet conv1's 11 filter rows down the array and 11 output rows
    across it; the old search kept only the 6 best-utilized unrollings and never
    tried it."""
    dev = hwprune.device("eyeriss")
    nest = LoopNest.of(hwprune.network("alexnet")["conv1"])
    cands = [tuple(p) for p in S.spatial_candidates(nest, dev, get_dataflow(dev.dataflow, dev))]
    assert (1, 1, 1, 11, 1, 11, 1) in cands


def test_a_partial_fold_uses_the_pes_a_divisor_leaves_idle():
    """AlexNet conv1's 55 output rows on Eyeriss's 14-PE axis: divisors use 11 of 14
    PEs; the partial fold E14 (4 folds, the last one 13 rows) is a candidate, its
    padded nest is 56 rows, and the search prefers it (fewer reloads)."""
    dev = hwprune.device("eyeriss")
    flow = get_dataflow(dev.dataflow, dev)
    nest = LoopNest.of(hwprune.network("alexnet")["conv1"])
    assert (1, 1, 1, 14, 1, 11, 1) not in [tuple(p) for p in S.spatial_candidates(nest, dev, flow)]
    assert (1, 1, 1, 14, 1, 11, 1) in [tuple(p) for p in S.partial_candidates(nest, dev, flow)]
    assert list(S.padded_bounds(nest.bounds, np.array((1, 1, 1, 14, 1, 11, 1)))) == \
        [1, 96, 3, 56, 55, 11, 11]
    params = sparsity_params(nest, dev, Density(), "dense")[0]
    mapping = S.find_mapping(nest, dev, flow, params)
    assert mapping.padded != mapping.bounds and "padded[E56]" in mapping.describe(("RF", "GLB", "DRAM"))
    assert mapping.utilization(dev.compute.units) == pytest.approx(14 * 11 / 168 * 55 / 56)


def _layers():
    return [("eyeriss", "alexnet", "conv2"), ("eyeriss", "vgg16", "features.10"),
            ("eyeriss", "resnet18", "layer3.0.conv1"), ("titan-x", "alexnet", "conv3"),
            ("core-i7", "resnet18", "layer2.0.conv2")]


@pytest.mark.parametrize("dev_id, net, layer", _layers())
def test_the_bound_never_exceeds_a_mapping_it_may_skip(dev_id, net, layer, monkeypatch):
    dev = hwprune.device(dev_id)
    flow = get_dataflow(dev.dataflow, dev)
    nest = LoopNest.of(hwprune.network(net)[layer])
    params = sparsity_params(nest, dev, Density(0.4), "csr")[0]
    candidates = S.spatial_candidates(nest, dev, flow)
    monkeypatch.setattr(S, "USE_BOUND", False)
    candidates += S.partial_candidates(nest, dev, flow)[:4]
    monkeypatch.setattr(S, "_partial_candidates", lambda *a: ())
    for p in candidates[:8] + candidates[-4:]:
        monkeypatch.setattr(S, "_spatial_candidates", lambda *a, p=p: (tuple(p),))
        found = S.find_mapping(nest, dev, flow, params)
        if np.array_equal(np.array(found.spatial), p):
            assert S.lower_bound(nest, dev, params, p) <= found.energy_pj


@pytest.mark.parametrize("dev_id, net, layer", _layers())
def test_skipping_by_the_bound_finds_what_searching_every_unrolling_finds(dev_id, net, layer, monkeypatch):
    dev = hwprune.device(dev_id)
    flow = get_dataflow(dev.dataflow, dev)
    nest = LoopNest.of(hwprune.network(net)[layer])
    params = sparsity_params(nest, dev, Density(), "dense")[0]
    with_bound = S.find_mapping(nest, dev, flow, params)
    monkeypatch.setattr(S, "USE_BOUND", False)
    every = S.find_mapping(nest, dev, flow, params)
    assert with_bound.energy_pj == every.energy_pj


def test_padding_is_taken_out_of_every_count(monkeypatch):
    """AlexNet conv1 on Eyeriss with E on 14 PEs: the nest runs 56 output rows, but the
    MACs, the weights read per MAC and the finished outputs written to DRAM are the
    layer's own (55 rows); the same tiles priced for a real 56-row layer move more."""
    dev = hwprune.device("eyeriss")
    flow = get_dataflow(dev.dataflow, dev)
    nest = LoopNest.of(hwprune.network("alexnet")["conv1"])
    p = (1, 1, 1, 14, 1, 11, 1)
    monkeypatch.setattr(S, "_spatial_candidates", lambda *a: (p,))
    monkeypatch.setattr(S, "_partial_candidates", lambda *a: ())
    params = sparsity_params(nest, dev, Density(), "dense")[0]
    mapping = S.find_mapping(nest, dev, flow, params)
    assert mapping.padded[3] == 56 and mapping.bounds[3] == 55
    macs = 96 * 3 * 55 * 55 * 11 * 11
    dram = len(mapping.tiles) - 1
    assert mapping.accesses[0, 0, 0] == macs                       # one weight read per MAC
    assert mapping.accesses[dram, 2, 1] == 96 * 55 * 55            # outputs written once
    padded_layer = LoopNest((1, 96, 3, 56, 55, 11, 11), 1, nest.stride, (231, 227))
    as_56 = S.price_mapping(mapping, padded_layer, dev, params)
    assert as_56.energy_pj > mapping.energy_pj
    assert as_56.accesses[dram, 2, 1] == 96 * 56 * 55


def test_temporal_pads_by_hand():
    """AlexNet conv1's bounds: to a multiple of 2 (or 4), 55 -> 56 and 11 -> 12 (more
    divisors, under 15% more); to a multiple of 8, 11 -> 16 is too much padding; 3 -> 4
    always is; the batch of 1 never pads."""
    padded = np.array([1, 96, 3, 55, 55, 11, 11], dtype=float)
    pads = S.temporal_pads(padded, np.ones(7), (1, 96, 3, 55, 55, 11, 11))
    assert [list(p) for p in pads] == [[1, 96, 3, 56, 56, 12, 12], [1, 96, 3, 56, 56, 11, 11]]
    # a spatial factor stays a divisor: E unrolled 14 wide pads to a multiple of 14
    pads = S.temporal_pads(np.array([1, 96, 3, 56, 55, 11, 11], dtype=float),
                           np.array([1, 1, 1, 14, 1, 11, 1], dtype=float), (1, 96, 3, 55, 55, 11, 11))
    assert all(p[3] % 14 == 0 and p[5] % 11 == 0 for p in pads)


def test_a_partial_temporal_factor_prices_a_prime_bound(monkeypatch):
    """ViT-B/16's attention context (197 tokens, a prime) on cortex-m4: padding the nest
    to 198 or 200 tokens gives tiles that fit its SRAM better, and the search keeps the
    padded mapping because it costs less; every count keeps the layer's own size."""
    dev = hwprune.device("cortex-m4")
    flow = get_dataflow(dev.dataflow, dev)
    layer = hwprune.network("vit-b16")["encoder.layers.encoder_layer_0.self_attention.context"]
    nest = LoopNest.of(layer)
    params = sparsity_params(nest, dev, Density(), "dense")[0]
    padded = S.find_mapping(nest, dev, flow, params)
    monkeypatch.setattr(S, "TEMPORAL_STEPS", ())
    whole = S.find_mapping(nest, dev, flow, params)
    assert padded.padded != padded.bounds and whole.padded == whole.bounds
    assert padded.energy_pj < whole.energy_pj
    macs = math.prod(nest.bounds)
    assert padded.accesses[0, 0, 0] == pytest.approx(macs)
