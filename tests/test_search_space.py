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


def _brute_maximal(bounds, dims, size):
    divisors = [[f for f in range(1, min(bounds[DIMS.index(d)], size) + 1)
                 if bounds[DIMS.index(d)] % f == 0] for d in dims]
    fits = [combo for combo in itertools.product(*divisors) if math.prod(combo) <= size]
    out = []
    for combo in fits:
        grows = any(g > combo[i] and math.prod(combo) // combo[i] * g <= size
                    for i in range(len(dims)) for g in divisors[i])
        if not grows and math.prod(combo) > 1:
            out.append({d: f for d, f in zip(dims, combo) if f > 1})
    return out


@settings(max_examples=60, deadline=None)
@given(bounds=st.tuples(*[st.integers(1, 64)] * 7), size=st.integers(2, 16),
       dims=st.sampled_from([("R", "C", "M"), ("E", "N", "M"), ("C", "R", "S"), ("M",)]))
def test_maximal_assignments_are_exactly_the_maximal_ones(bounds, size, dims):
    got = S._maximal_assignments(bounds, dims, size)
    want = _brute_maximal(bounds, dims, size)
    key = lambda a: sorted(a.items())      # noqa: E731
    assert sorted(map(key, got)) == sorted(map(key, want))


def test_alexnet_conv1_gets_the_eyeriss_unrolling():
    """Eyeriss maps AlexNet conv1's 11 filter rows down the array and 11 output rows
    across it; the old search kept only the 6 best-utilized unrollings and never
    tried it."""
    dev = hwprune.device("eyeriss")
    nest = LoopNest.of(hwprune.network("alexnet")["conv1"])
    cands = [tuple(p) for p in S.spatial_candidates(nest, dev, get_dataflow(dev.dataflow, dev))]
    assert (1, 1, 1, 11, 1, 11, 1) in cands
    assert all(np.all(np.array(nest.bounds) % np.array(p) == 0) for p in cands)


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
    for p in candidates[:8]:
        monkeypatch.setattr(S, "spatial_candidates", lambda *a, p=p: [p])
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
